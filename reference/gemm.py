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
    "chain_launches",
    "chain_ready",
    "final_writes",
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
    return chain_launches(R, C, [(M, K, N, 0)])[0][1]


def chain_launches(R, C, gemms):
    """GEMMs given one after another to an engine that chains them (``GemmEngine(chain=True)``):
    ``gemms`` lists ``(M, K, N, offer)``, each GEMM's ``start`` held valid from cycle ``offer`` on
    (the first's offer is its take). Returns ``(take, launches, last_write)`` for each, in the same
    cycles: the cycle its ``start`` is taken, its tiles' launch cycles and the cycle of its last write.

    The engine takes a GEMM while idle, or while it runs one whose tiles have all been launched
    (from the cycle after its last launch) and no other: at most two GEMMs are in flight, so a
    third waits for the older one's last write. Every tile follows :func:`tile_launches`'
    recurrence over the tiles before it, whichever GEMM they belong to, each with its own M: the
    first tile of a GEMM is launched at the earliest in the cycle after its take, when the tile
    before it has read its C weight columns and streamed its M rows, and the bank of the tile
    before that has drained. Taken after the engine went idle, that is the cycle after the take.
    """
    out, tiles = [], []  # tiles: (launch, M) of every tile so far
    for M, K, N, offer in gemms:
        _check(R, C, M, K, N)
        take = max(offer, chain_ready(out))
        launches = []
        for _ in range(ceil(K / R) * ceil(N / C)):
            p = take + 1
            if tiles:
                p = max(p, tiles[-1][0] + max(tiles[-1][1], C))
            if len(tiles) >= 2:
                p = max(p, tiles[-2][0] + tiles[-2][1] + R - 1)
            launches.append(p)
            tiles.append((p, M))
        out.append((take, launches, _row_exit(R, C, launches[-1], M - 1)))
    return out


def chain_ready(chain):
    """The first cycle in which an engine that chains GEMMs takes one more after ``chain`` (what
    :func:`chain_launches` returns for the GEMMs before it): the cycle after the last one's last
    tile launch, and after the last write of the one before it (two in flight at most)."""
    ready = chain[-1][1][-1] + 1 if chain else 0
    return max(ready, chain[-2][2] + 1) if len(chain) >= 2 else ready


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
    return final_writes(R, C, M, K, N, tile_launches(R, C, M, K, N))[(n // C) * M + m]


def final_writes(R, C, M, K, N, launches):
    """The cycle in which each result word of a GEMM whose tiles were launched in ``launches`` is
    written final (its column block's last K tile), in the order of the result layout: word
    ``(n div C)·M + m``, rising (docs/systolic.md)."""
    kt = ceil(K / R)
    return [_row_exit(R, C, launches[nb * kt + kt - 1], m) for nb in range(ceil(N / C)) for m in range(M)]


def scalesim_cycles(R, C, M, K, N):
    """SCALE-Sim's weight-stationary estimate: ``(2R + C + M - 2)·ceil(K/R)·ceil(N/C)``."""
    _check(R, C, M, K, N)
    return (2 * R + C + M - 2) * ceil(K / R) * ceil(N / C)


def ideal_cycles(R, C, M, K, N):
    """``ceil(M·K·N / (R·C))``: every PE busy every cycle."""
    _check(R, C, M, K, N)
    return -(-(M * K * N) // (R * C))
