"""``TileStreamer``: turns each launched tile into the two operand streams.

For a tile launched in cycle P (cycles as in :mod:`.launcher`):

* weights: column j of ``B'`` (rows k0..k0+R-1, column n0 + j) is read in
  ``P + 1 + j`` and written into the tile's bank of array column j in
  ``P + 2 + j``;
* activations: row m of ``A'`` (m, k0..k0+R-1) is read in ``P + 2 + m`` and
  enters the array in ``P + 3 + m``, tagged for the result buffer in its read cycle.

So column j's weights land one cycle before the tile's first row reaches it.
Reads are given as lines of the operands as stored: ``tn`` reads a column of
the stored K×M A, ``nt`` a row of the stored N×K B. Elements past K (and
columns past N) read as zero.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .launcher import Tile, TileLaunch
from .operand_buffer import VectorRead
from .result_buffer import RowTag
from .signatures import DIM_BITS, GemmConfig, Mode

__all__ = ["TileStreamer"]


class TileStreamer(wiring.Component):
    """Parameters
    ----------
    rows, cols : int
        The array's R and C.

    Attributes
    ----------
    config : In(GemmConfig)
        The running GEMM.
    launch : In(TileLaunch)
        A tile, in its launch cycle.
    a_read, b_read : Out(VectorRead)
        Operand reads: one row of ``A'`` / column of ``B'`` a cycle.
    w_en, w_bank, w_col : Out
        The cycle after a ``b_read``: write its vector into that bank and column of the array.
    a_valid, a_bank : Out
        The cycle after an ``a_read``: its vector enters the array, with the tile's bank.
    row : Out(RowTag)
        Each row, in its ``a_read`` cycle.
    streaming : Out(1)
        A launched tile has rows still to read.
    """

    def __init__(self, rows, cols, operand_depth, result_depth):
        self.rows, self.cols = rows, cols
        super().__init__(
            {
                "config": In(GemmConfig),
                "launch": In(TileLaunch()),
                "a_read": Out(VectorRead(rows, operand_depth)),
                "b_read": Out(VectorRead(rows, operand_depth)),
                "w_en": Out(1),
                "w_bank": Out(1),
                "w_col": Out(range(cols + 1)),
                "a_valid": Out(1),
                "a_bank": Out(1),
                "row": Out(RowTag(result_depth)),
                "streaming": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        cfg, launch = self.config, self.launch
        is_nt, is_tn = cfg.mode == Mode.NT, cfg.mode == Mode.TN

        def k_mask(k0, extra=1):  # element t is k0 + t of K
            return Cat(*[(k0 + t < cfg.k) & extra for t in range(R)])

        # Weights: C columns, one a cycle, from the cycle after launch.
        b_act, b_j, b_tile = Signal(), Signal(range(C + 1)), Signal(Tile)
        with m.If(launch.valid):
            m.d.sync += [b_act.eq(1), b_j.eq(0), b_tile.eq(launch.tile)]
        with m.Elif(b_act):
            m.d.sync += b_j.eq(b_j + 1)
            with m.If(b_j == C - 1):
                m.d.sync += b_act.eq(0)
        b_n = Signal(DIM_BITS)
        m.d.comb += b_n.eq(b_tile.n0 + b_j)

        # Activations: M rows, one a cycle, from two cycles after launch.
        a_pending, a_tile = Signal(), Signal(Tile)  # launched last cycle
        pend = Signal(Tile)
        a_act, a_m = Signal(), Signal(DIM_BITS)
        m.d.sync += a_pending.eq(launch.valid)
        with m.If(launch.valid):
            m.d.sync += pend.eq(launch.tile)
        with m.If(a_pending):
            m.d.sync += [a_act.eq(1), a_m.eq(0), a_tile.eq(pend)]
        with m.Elif(a_act):
            m.d.sync += a_m.eq(a_m + 1)
            with m.If(a_m + 1 >= cfg.m):
                m.d.sync += a_act.eq(0)
        a_issue = Signal()
        m.d.comb += [a_issue.eq(a_act & (a_m < cfg.m)), self.streaming.eq(a_act | a_pending)]

        a, b, row = self.a_read, self.b_read, self.row
        m.d.comb += [
            # Row m of A' is row m of A, or column m of the stored K×M A in tn.
            a.en.eq(a_issue),
            a.line.eq(a_m),
            a.start.eq(a_tile.k0),
            a.column.eq(is_tn),
            a.mask.eq(k_mask(a_tile.k0)),
            a.stride.eq(cfg.a_stride),
            a.base.eq(cfg.a_base),
            a.half.eq(cfg.operand_half),
            # Column n of B' is column n of B, or row n of the stored N×K B in nt.
            b.en.eq(b_act),
            b.line.eq(b_n),
            b.start.eq(b_tile.k0),
            b.column.eq(~is_nt),
            b.mask.eq(k_mask(b_tile.k0, b_n < cfg.n)),
            b.stride.eq(cfg.b_stride),
            b.base.eq(cfg.b_base),
            b.half.eq(cfg.operand_half),
            row.valid.eq(a_issue),
            row.addr.eq(a_tile.c_base + a_m + cfg.result_base),
            row.half.eq(cfg.result_half),
            row.first_k.eq(a_tile.first_k),
            row.last.eq(a_issue & a_tile.last & (a_m + 1 == cfg.m)),
        ]
        # The vectors arrive from the buffers a cycle after their reads.
        m.d.sync += [
            self.w_en.eq(b_act),
            self.w_col.eq(b_j),
            self.w_bank.eq(b_tile.bank),
            self.a_valid.eq(a_issue),
            self.a_bank.eq(a_tile.bank),
        ]
        return m
