"""The GEMM engine's buffer layouts, as the host (or a ROM) must fill and read
them: the spec the RTL (:mod:`hdl.systolic.engine`) implements.

Operands: element (r, c) of a stored matrix with ``cols`` columns is in lane
``(r + c) mod R`` of word ``r·W + c div R``, ``W = ceil(cols / R)``.
Results: ``C[m, n]`` is lane ``n mod C`` of word ``(n div C)·M + m``.
"""

import numpy as np

__all__ = [
    "pack_operand",
    "unpack_operand",
    "operand_words",
    "pack_results",
    "unpack_results",
    "result_words",
]


def operand_words(rows, cols, R):
    return rows * -(-cols // R)


def result_words(M, N, C):
    return -(-N // C) * M


def _pad_columns(mat, multiple):
    """``mat`` (as int64) with zero columns added up to a multiple of ``multiple``."""
    mat = np.asarray(mat, dtype=np.int64)
    return np.pad(mat, ((0, 0), (0, (-mat.shape[1]) % multiple)))


def pack_operand(mat, R):
    """``(words, W)``: the words (R lane values each, in lane order) and the row stride."""
    padded = _pad_columns(mat, R)
    rows, W = padded.shape[0], padded.shape[1] // R
    r = np.arange(rows)[:, None, None]
    q = np.arange(W)[None, :, None]
    b = np.arange(R)[None, None, :]
    words = padded[r, q * R + (b - r) % R]  # (rows, W, R)
    return words.reshape(rows * W, R), W


def unpack_operand(words, rows, cols, R):
    """The rows×cols matrix from its stored words (lanes in bank order): :func:`pack_operand` undone."""
    W = -(-cols // R)
    words = np.asarray(words, dtype=np.int64).reshape(rows, W, R)
    r = np.arange(rows)[:, None, None]
    q = np.arange(W)[None, :, None]
    b = np.arange(R)[None, None, :]
    out = np.zeros((rows, W, R), dtype=np.int64)
    np.put_along_axis(
        out.reshape(rows, W * R), (q * R + (b - r) % R).reshape(rows, W * R), words.reshape(rows, W * R), axis=1
    )
    return out.reshape(rows, W * R)[:, :cols]


def pack_results(c, C):
    """The result words (C lane values each) holding the M×N matrix ``c``."""
    padded = _pad_columns(c, C)
    M, nt = padded.shape[0], padded.shape[1] // C
    return padded.reshape(M, nt, C).transpose(1, 0, 2).reshape(nt * M, C)


def unpack_results(words, M, N, C):
    """The M×N matrix from its result words."""
    words = np.asarray(words, dtype=np.int64)
    nt = -(-N // C)
    return words.reshape(nt, M, C).transpose(1, 0, 2).reshape(M, nt * C)[:, :N]
