"""``TileStreamer``: turns each launched tile into the two operand streams.

For a tile launched in cycle P (cycles as in :mod:`.launcher`):

* weights: column j of ``B'`` (rows k0..k0+R-1, column n0 + j) is read in
  ``P + 1 + j`` and written into the tile's bank of array column j in
  ``P + 3 + j``;
* activations: row m of ``A'`` (m, k0..k0+R-1) is read in ``P + 2 + m`` and
  enters the array in ``P + 4 + m``, tagged for the result buffer in
  ``P + 3 + m``, the cycle before it enters.

An operand buffer's vector comes two cycles after its read (the block RAM,
then the rotation into a register), so column j's weights land one cycle
before the tile's first row reaches it. Reads are given as lines of the
operands as stored: ``tn`` reads a column of the stored K×M A, ``nt`` a row
of the stored N×K B. B's elements past K (and its columns past N) read as
zero; A's are not masked, since they meet those zero weights in the array.

Each read's word address is kept in a register and moved on by an add a
line: the stride for a row read, one word every R lines for a column read.
A tile's first address comes from the products the launcher keeps
(``k0·stride``, ``n0·stride``), so no multiplier sits before the buffers'
address pins.

Built with ``chain`` (the launcher takes the next GEMM while the last one's
tiles still stream), each stream keeps the fields of ``config`` it reads from
its tile's launch on, so a GEMM taken meanwhile changes only the streams of
its own tiles.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
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
    a_origin, b_origin : In
        Each operand's first word in its buffer (:class:`.TileLauncher`).
    launch : In(TileLaunch)
        A tile, in its launch cycle.
    a_read, b_read : Out(VectorRead)
        Operand reads: one row of ``A'`` / column of ``B'`` a cycle.
    w_en, w_bank, w_col : Out
        Two cycles after a ``b_read``: write its vector into that bank and column of the array.
    a_valid, a_bank : Out
        Two cycles after an ``a_read``: its vector enters the array, with the tile's bank.
    row : Out(RowTag)
        Each row, the cycle after its ``a_read`` (the cycle before it enters).
    streaming : Out(1)
        A launched tile has rows still to read.
    """

    def __init__(self, rows, cols, operand_depth, result_depth, chain=False):
        self.rows, self.cols, self.chain = rows, cols, chain
        self.operand_depth = operand_depth
        super().__init__(
            {
                "config": In(GemmConfig),
                "a_origin": In(range(2 * operand_depth)),
                "b_origin": In(range(2 * operand_depth)),
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
        launch, tile = self.launch, self.launch.tile
        lg = R.bit_length() - 1
        op_bits = (2 * self.operand_depth - 1).bit_length()
        a_pending = Signal()  # a tile launched last cycle: its activations stream from now

        def keep(stream, when, *names):
            """The config's fields a stream reads after the cycle ``when`` starts it: with ``chain``, kept
            in that cycle (the stream before it may still run in it, with its own)."""
            fields = {name: getattr(self.config, name) for name in names}
            if not self.chain:
                return fields
            kept = {name: Signal.like(v, name=f"{stream}_{name}") for name, v in fields.items()}
            with m.If(when):
                m.d.sync += [kept[name].eq(v) for name, v in fields.items()]
            return kept

        b_cfg = keep("b", launch.valid, "mode", "b_stride", "k", "n")
        a_cfg = keep("a", a_pending, "mode", "a_stride", "m", "k", "result_base", "result_half")
        is_nt, is_tn = b_cfg["mode"] == Mode.NT, a_cfg["mode"] == Mode.TN
        # A stream's start reads the config of the tile it starts.
        starts_nt, starts_tn = self.config.mode == Mode.NT, self.config.mode == Mode.TN

        def k_mask(k0, k, extra=1):  # element t is k0 + t of K
            return Cat(*[(k0 + t < k) & extra for t in range(R)])

        def low(x):  # x mod R
            return x[:lg] if lg else 0

        def next_line(first, rot, column, stride):
            """The address of the next line: a row read is ``stride`` words on; a
            column read moves to the next word when the line passes a multiple of R."""
            wrap = (rot[:lg] == R - 1) if lg else 1
            return [rot.eq(rot + 1), first.eq(Mux(column, first + wrap, first + stride))]

        # Weights: C columns, one a cycle, from the cycle after launch. Column n of B'
        # is column n of the stored K×N B (a column read from row k0), or row n of the
        # stored N×K B in nt (a row read from column k0).
        # The tile registers need no reset: each is loaded at its stream's start, before anything reads it.
        b_act, b_j, b_tile = Signal(), Signal(range(C + 1)), Signal(Tile, reset_less=True)
        b_first, b_rot = Signal(op_bits), Signal(max(lg, 1))
        b_column = ~is_nt
        with m.If(launch.valid):
            m.d.sync += [
                b_act.eq(1),
                b_j.eq(0),
                b_tile.eq(tile),
                b_rot.eq(low(tile.n0)),
                b_first.eq(Mux(~starts_nt, tile.b_k0s + (tile.n0 >> lg), tile.b_n0s + (tile.k0 >> lg)) + self.b_origin),
            ]
        with m.Elif(b_act):
            m.d.sync += b_j.eq(b_j + 1)
            m.d.sync += next_line(b_first, b_rot, b_column, b_cfg["b_stride"])
            with m.If(b_j == C - 1):
                m.d.sync += b_act.eq(0)
        b_n = Signal(DIM_BITS)
        m.d.comb += b_n.eq(b_tile.n0 + b_j)

        # Activations: M rows, one a cycle, from two cycles after launch. Row m of A'
        # is row m of the stored M×K A (a row read from column k0), or column m of the
        # stored K×M A in tn (a column read from row k0).
        a_tile = Signal(Tile, reset_less=True)
        pend = Signal(Tile, reset_less=True)
        a_act, a_m = Signal(), Signal(DIM_BITS)
        a_first, a_rot = Signal(op_bits), Signal(max(lg, 1))
        m.d.sync += a_pending.eq(launch.valid)
        with m.If(launch.valid):
            m.d.sync += pend.eq(tile)
        with m.If(a_pending):
            m.d.sync += [
                a_act.eq(1),
                a_m.eq(0),
                a_tile.eq(pend),
                a_rot.eq(0),
                a_first.eq(Mux(starts_tn, pend.a_k0s, pend.k0 >> lg) + self.a_origin),
            ]
        with m.Elif(a_act):
            m.d.sync += a_m.eq(a_m + 1)
            m.d.sync += next_line(a_first, a_rot, is_tn, a_cfg["a_stride"])
            with m.If(a_m + 1 >= a_cfg["m"]):
                m.d.sync += a_act.eq(0)
        a_issue, a_issue_d = Signal(), Signal()  # a row read this cycle, last cycle
        m.d.sync += a_issue_d.eq(a_issue)
        # A row read but not yet in the array still counts as streaming.
        m.d.comb += [a_issue.eq(a_act & (a_m < a_cfg["m"])), self.streaming.eq(a_act | a_pending | a_issue_d)]

        a, b = self.a_read, self.b_read
        m.d.comb += [
            a.en.eq(a_issue),
            a.first.eq(a_first),
            a.rot.eq(a_rot),
            a.column.eq(is_tn),
            # The buffers register the stride's multiples: a stream's shows in the cycle that starts it.
            a.stride.eq(Mux(a_pending, self.config.a_stride, a_cfg["a_stride"]) if self.chain else a_cfg["a_stride"]),
            b.en.eq(b_act),
            b.first.eq(b_first),
            b.rot.eq(b_rot),
            b.column.eq(b_column),
            b.mask.eq(k_mask(b_tile.k0, b_cfg["k"], b_n < b_cfg["n"])),
            b.stride.eq(
                Mux(launch.valid, self.config.b_stride, b_cfg["b_stride"]) if self.chain else b_cfg["b_stride"]
            ),
        ]
        # The row's tag, the cycle after its read.
        row = self.row
        m.d.sync += [
            row.valid.eq(a_issue),
            row.addr.eq(a_tile.c_base + a_m + a_cfg["result_base"]),
            row.half.eq(a_cfg["result_half"]),
            row.first_k.eq(a_tile.first_k),
            row.last_k.eq(a_tile.last_k),
            row.last.eq(a_issue & a_tile.last & (a_m + 1 == a_cfg["m"])),
        ]
        # The vectors arrive from the buffers two cycles after their reads.
        w_en, w_col, w_bank, a_valid, a_bank = Signal(), Signal.like(b_j), Signal(), Signal(), Signal()
        m.d.sync += [
            w_en.eq(b_act),
            w_col.eq(b_j),
            w_bank.eq(b_tile.bank),
            a_valid.eq(a_issue),
            a_bank.eq(a_tile.bank),
            self.w_en.eq(w_en),
            self.w_col.eq(w_col),
            self.w_bank.eq(w_bank),
            self.a_valid.eq(a_valid),
            self.a_bank.eq(a_bank),
        ]
        return m
