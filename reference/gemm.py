"""Golden GEMM in the three transpose modes, and the engine's cycle model.

The math is NumPy int64 (exact for int8 operands; the engine's int32 sums
must equal it). The cycle model predicts the RTL's count exactly from the
schedule documented in ``hdl/systolic/engine.py`` and ``docs/systolic.md``;
tests compare the two over sweeps of shapes and array sizes. The modes, their
encoding and the array latency are the spec the RTL reads from here.
"""

from math import ceil

import numpy as np

__all__ = [
    "MODES",
    "MODE_CODE",
    "stored_shapes",
    "array_latency",
    "logical_operands",
    "gemm",
    "tile_launches",
    "gemm_cycles",
    "weight_stall_cycles",
    "row_exit_cycle",
    "scalesim_cycles",
    "ideal_cycles",
]

#: Transpose modes; a mode's encoding (``GemmConfig.mode``) is its index.
MODES = ("nn", "nt", "tn")
#: The encoding of each mode.
MODE_CODE = {mode: code for code, mode in enumerate(MODES)}


def array_latency(R, C):
    """Cycles from an input vector entering an R×C weight-stationary array to
    its deskewed column sums: R - 1 hops down the skewed rows, C - 1 across,
    and one for the product register in each PE (multiply, then add)."""
    return R + C


def _check(R, C, M, K, N):
    for name, v in (("R", R), ("C", C), ("M", M), ("K", K), ("N", N)):
        if not (isinstance(v, (int, np.integer)) and v >= 1):
            raise ValueError(f"{name} must be a positive integer, not {v!r}")


def stored_shapes(M, K, N, mode):
    """The shapes of A and B as stored for ``C = A'·B'`` (M×K by K×N) in ``mode``:
    A is K×M in ``tn``, else M×K; B is N×K in ``nt``, else K×N."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return ((K, M) if mode == "tn" else (M, K)), ((N, K) if mode == "nt" else (K, N))


def logical_operands(a, b, mode):
    """A' (M×K) and B' (K×N) from the operands as stored in ``mode``."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    return (a.T if mode == "tn" else a), (b.T if mode == "nt" else b)


def gemm(a, b, mode="nn"):
    """``C = A'·B'`` in int64: nn ``A·B``, nt ``A·Bᵀ``, tn ``Aᵀ·B``."""
    a_, b_ = logical_operands(a, b, mode)
    if a_.shape[1] != b_.shape[0]:
        raise ValueError(f"inner dimensions differ: A' is {a_.shape}, B' is {b_.shape}")
    return a_ @ b_


def tile_launches(R, C, M, K, N):
    """Launch cycle ``P_T`` of every tile, counted from the cycle ``start`` is taken.

    ``P_0 = 1``; ``P_T = max(P_{T-1} + max(M, C), P_{T-2} + M + R - 1)``:
    one weight column is read a cycle (C a tile), and tile T may overwrite
    column j of its weight bank only in or after the cycle in which tile T-2,
    which used the same bank, makes its last use of it: its last row reaches
    the bottom PE of column j ``M - 1 + R - 1 + j`` cycles after its first
    row entered, and tile T writes column j one cycle before its own first
    row reaches column j (``j - 1`` cycles after that row enters).
    """
    _check(R, C, M, K, N)
    tiles = ceil(K / R) * ceil(N / C)
    launches = [1]
    for t in range(1, tiles):
        p = launches[-1] + max(M, C)
        if t >= 2:
            p = max(p, launches[-2] + M + R - 1)
        launches.append(p)
    return launches


#: From a tile's launch to its first row entering the array: the weight
#: column 0 is read (P+1) and written (P+3), the row is read (P+2) and enters
#: (P+4). An operand buffer's vector is registered: it comes two cycles after its read.
ROW_ENTRY = 4


def _row_exit(R, C, launch, m):
    """Cycle in which row m of the tile launched in ``launch`` leaves the
    array (deskewed) and is written to the result buffer."""
    return launch + ROW_ENTRY + m + array_latency(R, C)


def gemm_cycles(R, C, M, K, N, mode="nn"):
    """Cycles from ``start`` to the last result written (``GemmCounters.total``):
    the exit of the last tile's last row. The mode does not change the
    timing: transposed operands are read from the same diagonally banked
    buffers at one vector a cycle.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return _row_exit(R, C, tile_launches(R, C, M, K, N)[-1], M - 1)


def weight_stall_cycles(R, C, M, K, N):
    """Cycles between the first and the last activation row with no row entering (``GemmCounters.weight_stall``)."""
    p = tile_launches(R, C, M, K, N)
    return sum(b - a - M for a, b in zip(p, p[1:]))


def row_exit_cycle(R, C, M, K, N, m, n):
    """Cycle in which C[m, n]'s final sum leaves the array (and is written)."""
    kt = ceil(K / R)
    return _row_exit(R, C, tile_launches(R, C, M, K, N)[(n // C) * kt + kt - 1], m)


def scalesim_cycles(R, C, M, K, N):
    """SCALE-Sim's weight-stationary estimate: ``(2R + C + M - 2)·ceil(K/R)·ceil(N/C)``."""
    _check(R, C, M, K, N)
    return (2 * R + C + M - 2) * ceil(K / R) * ceil(N / C)


def ideal_cycles(R, C, M, K, N):
    """``ceil(M·K·N / (R·C))``: every PE busy every cycle."""
    _check(R, C, M, K, N)
    return -(-(M * K * N) // (R * C))
