"""The state signature a step's check compares: a multiple-input signature
register (MISR) over the words the host port would read back.

The register is as wide as a host-port word (R lanes of 32 bits, lane 0 in
the low bits). It starts at 0 and takes one word per cycle, as a Galois
LFSR of characteristic polynomial x^W + x^10 + x^5 + x^2 + 1 with the word
XORed in::

    s' = ((s << 1) mod 2^W) ^ (TAPS if s's top bit else 0) ^ word

Every step is linear over GF(2) and invertible, so an error confined to one
bit of one word always changes the final signature; errors spread over
several words can cancel only in patterns the LFSR aliases.
(:class:`hdl.training.harness.TrainHarness` computes it in hardware;
``sim.training.tb_train`` compares the two after every step.)
"""

import numpy as np

__all__ = ["TAPS", "misr", "region_words"]

#: The feedback taps below x^W: x^10 + x^5 + x^2 + 1.
TAPS = (1 << 10) | (1 << 5) | (1 << 2) | 1


def misr(words, width, state=0):
    """The signature of ``words`` (integers of ``width`` bits, in read order), from ``state``."""
    top, mask = 1 << (width - 1), (1 << width) - 1
    for w in words:
        state = ((state << 1) & mask) ^ (TAPS if state & top else 0) ^ w
    return state


def region_words(mat, rows, stride, R):
    """A matrix as the host port reads it from a row-major region of ``rows`` rows of ``stride`` words:
    padded with zeros to ``rows`` rows of ``stride·R`` columns, R lanes to a word (a vector is one row)."""
    mat = np.atleast_2d(np.asarray(mat, dtype=np.int64))
    padded = np.pad(mat, ((0, rows - mat.shape[0]), (0, stride * R - mat.shape[1])))
    lanes = (padded.reshape(-1, R) & 0xFFFFFFFF).astype("<u4")  # two's complement, lane 0 first
    return [int.from_bytes(row.tobytes(), "little") for row in lanes]
