"""Self-test vectors: GEMMs whose operands and expected results the golden
model (:func:`reference.gemm.gemm`) computes, in the engine's buffer layouts,
for the self-test's ROMs. They are computed here, outside ``hdl/``, and passed
to :class:`hdl.selftest.GemmSelfTest`, so the design never computes what it
is checked against."""

from dataclasses import dataclass

import numpy as np

from .gemm import MODE_CODE, gemm, gemm_cycles, logical_operands, stored_shapes
from .gemm_layout import pack_operand, pack_results

__all__ = ["Vector", "make_vector", "default_vectors", "expected_cycles", "VECTOR_SEED"]

#: Seed of the self-test's random operands (the ROM contents).
VECTOR_SEED = 1


@dataclass
class Vector:
    M: int
    K: int
    N: int
    mode: str
    a_words: np.ndarray  # (words, R) in the engine's operand layout
    a_stride: int
    b_words: np.ndarray
    b_stride: int
    c_words: np.ndarray  # (words, C): the golden result in the result layout

    @property
    def mode_code(self):
        return MODE_CODE[self.mode]

    def cycles(self, R, C):
        return gemm_cycles(R, C, self.M, self.K, self.N, self.mode)


def make_vector(a, b, mode, R, C):
    c = gemm(a, b, mode)
    M, N = c.shape
    K = logical_operands(a, b, mode)[0].shape[1]
    a_words, a_stride = pack_operand(a, R)
    b_words, b_stride = pack_operand(b, R)
    return Vector(M, K, N, mode, a_words, a_stride, b_words, b_stride, pack_results(c, C))


def default_vectors(R, C, seed=VECTOR_SEED):
    """Four GEMMs: every mode, sizes off the tile grid, and -128·-128 over K."""
    rng = np.random.default_rng(seed)
    out = []
    for M, K, N, mode in [
        (2 * R + 1, 2 * R, 2 * C, "nn"),
        (R + 3, 3 * R + 1, C + 1, "nt"),
        (5, 2 * R + 2, 2 * C + 3, "tn"),
    ]:
        a_shape, b_shape = stored_shapes(M, K, N, mode)
        a = rng.integers(-128, 128, a_shape)
        b = rng.integers(-128, 128, b_shape)
        out.append(make_vector(a, b, mode, R, C))
    out.append(make_vector(np.full((R, 4 * R), -128), np.full((4 * R, C), -128), "nn", R, C))
    return out


def expected_cycles(R, C, seed=VECTOR_SEED):
    """The GEMM cycles the self-test sums and shows: the cycle model's."""
    return sum(v.cycles(R, C) for v in default_vectors(R, C, seed))
