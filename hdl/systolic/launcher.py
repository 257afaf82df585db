"""``TileLauncher``: takes a GEMM, decides when each weight tile is launched,
and says when the GEMM is over.

Tiles ``(n_t, k_t)`` run n-major, k-minor. Cycles count from the one in
which ``start`` is taken: tile 0 is launched in ``P_0 = 1`` and tile T in
``P_T = max(P_{T-1} + max(M, C), P_{T-2} + M + R - 1)`` (one weight port,
C cycles a tile; the bank that tile T-2 used must have drained), which is
:func:`reference.gemm.tile_launches`.

Built with ``chain``, it takes the next GEMM while the last one drains: from
the cycle after the last one's last launch, while no other waits behind it.
Its tiles follow the same recurrence over the tiles before them, each with its
own M (:func:`reference.gemm.chain_launches`).
"""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .signatures import DIM_BITS, GemmConfig, start_signature

__all__ = ["Tile", "TileLaunch", "TileLauncher"]


class Tile(data.Struct):
    """One weight tile: ``k0``..``k0 + R - 1`` by ``n0``..``n0 + C - 1`` of ``B'``."""

    n0: DIM_BITS  #: n_t·C
    k0: DIM_BITS  #: k_t·R
    c_base: 2 * DIM_BITS  #: n_t·M: the result word of the tile's row 0 (mod the result space)
    first_k: 1  #: k_t = 0: its sums are written, not added
    last_k: 1  #: its column block's last K tile: the sums it leaves are final
    last: 1  #: the GEMM's last tile
    bank: 1  #: the weight bank it uses, T mod 2
    # Products the streamer's operand addresses need, kept by adds as the tiles advance
    # (mod 2^DIM_BITS; the buffers decode the low bits):
    a_k0s: DIM_BITS  #: k0·(A's stride)
    b_k0s: DIM_BITS  #: k0·(B's stride)
    b_n0s: DIM_BITS  #: n0·(B's stride)


class TileLaunch(wiring.Signature):
    """``valid`` for one cycle, ``P_T``, with the tile launched."""

    def __init__(self):
        super().__init__({"valid": Out(1), "tile": Out(Tile)})


class TileLauncher(wiring.Component):
    """Parameters
    ----------
    rows, cols : int
        The array's R and C.

    Attributes
    ----------
    start : In(stream of GemmConfig)
        Taken in a cycle with ``ready`` (idle) high.
    config : Out(GemmConfig)
        The GEMM taken, from the cycle after ``start`` until the next one is taken, less its
        bases (0 here: ``a_origin`` and ``b_origin`` carry them).
    a_origin, b_origin : Out
        Each operand's first word in its buffer's space of two halves (``base``
        plus ``half``'s depth), with ``config``.
    launch : Out(TileLaunch)
        Each tile, in its launch cycle.
    pending : Out(1)
        Tiles remain to be launched.
    last_written : In(1)
        The last row's sums are written this cycle.
    busy, done : Out(1)
        ``busy`` from the cycle after ``start`` to the cycle of the last
        write; ``done`` in that cycle (or, with M, K or N zero, in the cycle after ``start``).
        With ``chain``, ``busy`` lasts until the last GEMM in flight is written, and ``done``
        marks that write only.
    queued : Out(1), with ``chain``
        A second GEMM is in flight behind the first, from the cycle after it is taken to the
        cycle of the first one's last write. A GEMM with M, K or N zero taken behind another
        is not queued: it ends with the one before it.
    """

    def __init__(self, rows, cols, operand_depth, result_depth, chain=False):
        self.rows, self.cols, self.chain = rows, cols, chain
        self.operand_depth, self.result_depth = operand_depth, result_depth
        super().__init__(
            {
                "start": In(start_signature()),
                "config": Out(GemmConfig),
                "a_origin": Out(range(2 * operand_depth)),
                "b_origin": Out(range(2 * operand_depth)),
                "launch": Out(TileLaunch()),
                "pending": Out(1),
                "last_written": In(1),
                "busy": Out(1),
                "done": Out(1),
                **({"queued": Out(1)} if chain else {}),
            }
        )

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        cfg, new, busy, tile = self.config, self.start.payload, self.busy, self.launch.tile
        op_bits, res_bits = (2 * self.operand_depth - 1).bit_length(), (2 * self.result_depth - 1).bit_length()
        take, fresh, retire = Signal(), Signal(), Signal()
        queued = self.queued if self.chain else Const(0)
        first = Signal()  # no tile launched yet
        # Idle, or (chain) every tile of the one GEMM in flight launched.
        ready = ~busy | (~self.pending & ~first & ~queued) if self.chain else ~busy
        m.d.comb += [self.start.ready.eq(ready), take.eq(self.start.valid & ready), fresh.eq(take & ~busy)]

        interval = Signal(DIM_BITS + 1)  # max(M, C): one weight port
        bank_free = Signal(DIM_BITS + 1)  # M + R - 1: tile T-2 has drained its bank
        # The next tile: k_t, n0 = n_t·C, k0 = k_t·R, c_base = n_t·M (mod the result space), its bank.
        k_t, n0, k0, c_base, bank = Signal(DIM_BITS), Signal(DIM_BITS), Signal(DIM_BITS), Signal(res_bits), Signal()
        a_k0s, b_k0s, b_n0s = Signal(DIM_BITS), Signal(DIM_BITS), Signal(DIM_BITS)
        b_cstride = Signal(DIM_BITS)  # C·(B's stride), the step of b_n0s
        lg = R.bit_length() - 1
        since_last, since_prev = Signal(DIM_BITS + 2), Signal(DIM_BITS + 2)  # cycles since P_{T-1}, P_{T-2}
        sat = (1 << (DIM_BITS + 2)) - 1
        last_k, last_n = k0 + R >= cfg.k, n0 + C >= cfg.n

        if self.chain:  # the last two tiles' waits: each tile's own, whichever GEMM it belongs to
            interval_last, free_last, free_prev = Signal.like(interval), Signal.like(bank_free), Signal.like(bank_free)
        else:
            interval_last, free_prev = interval, bank_free
        launch = self.launch.valid
        m.d.comb += [
            launch.eq(busy & self.pending & (first | ((since_last >= interval_last) & (since_prev >= free_prev)))),
            tile.n0.eq(n0),
            tile.k0.eq(k0),
            tile.c_base.eq(c_base),
            tile.first_k.eq(k_t == 0),
            tile.last_k.eq(last_k),
            tile.last.eq(last_k & last_n),
            tile.bank.eq(bank),
            tile.a_k0s.eq(a_k0s),
            tile.b_k0s.eq(b_k0s),
            tile.b_n0s.eq(b_n0s),
        ]
        half_words = self.operand_depth  # ``half`` is the operand space's top bit
        nonempty = (new.m != 0) & (new.k != 0) & (new.n != 0)
        b_stride_new = new.b_stride[:op_bits]
        with m.If(take):
            m.d.sync += [
                cfg.eq(new),
                # The streams start from a_origin and b_origin: the bases are not kept.
                cfg.a_base.eq(0),
                cfg.b_base.eq(0),
                # Addresses wrap at a buffer's size: keep only the bits it decodes.
                cfg.a_stride.eq(new.a_stride[:op_bits]),
                cfg.b_stride.eq(new.b_stride[:op_bits]),
                cfg.result_base.eq(new.result_base[:res_bits]),
                interval.eq(Mux(new.m > C, new.m, C)),
                bank_free.eq(new.m + R - 1),
                k_t.eq(0),
                n0.eq(0),
                k0.eq(0),
                c_base.eq(0),
                a_k0s.eq(0),
                b_k0s.eq(0),
                b_n0s.eq(0),
                # C·stride by shifts and adds: a constant multiply, kept out of the DSPs.
                b_cstride.eq(sum((b_stride_new << i for i in range(C.bit_length()) if C >> i & 1), Const(0))),
                self.a_origin.eq(new.a_base + Mux(new.operand_half, half_words, 0)),
                self.b_origin.eq(new.b_base + Mux(new.operand_half, half_words, 0)),
                # A GEMM with an empty dimension has no tiles: it ends at once.
                self.pending.eq(nonempty),
            ]
        with m.If(fresh):
            m.d.sync += [
                busy.eq(1),
                first.eq(1),
                bank.eq(0),
                since_last.eq(sat),
                since_prev.eq(sat),  # no earlier tiles to wait for
            ]
        with m.Elif(launch):
            m.d.sync += [
                first.eq(0),
                bank.eq(~bank),
                since_last.eq(1),
                since_prev.eq(Mux(since_last == sat, sat, since_last + 1)),
            ]
            if self.chain:
                m.d.sync += [interval_last.eq(interval), free_last.eq(bank_free), free_prev.eq(free_last)]
            with m.If(last_k):
                m.d.sync += [
                    k_t.eq(0),
                    k0.eq(0),
                    n0.eq(n0 + C),
                    c_base.eq(c_base + cfg.m),
                    a_k0s.eq(0),
                    b_k0s.eq(0),
                    b_n0s.eq(b_n0s + b_cstride),
                ]
                with m.If(last_n):
                    m.d.sync += self.pending.eq(0)
            with m.Else():
                m.d.sync += [
                    k_t.eq(k_t + 1),
                    k0.eq(k0 + R),
                    a_k0s.eq(a_k0s + (cfg.a_stride << lg)),
                    b_k0s.eq(b_k0s + (cfg.b_stride << lg)),
                ]
        with m.Else():
            m.d.sync += [
                since_last.eq(Mux(since_last == sat, sat, since_last + 1)),
                since_prev.eq(Mux(since_prev == sat, sat, since_prev + 1)),
            ]

        # The oldest GEMM in flight ends; done if no other is in flight or taken now.
        chained = take & busy
        m.d.comb += [
            retire.eq(busy & (self.last_written | (~self.pending & first))),
            self.done.eq(retire & ~queued & ~chained),
        ]
        with m.If(self.done):
            m.d.sync += busy.eq(0)
        if self.chain:
            with m.If(chained):
                m.d.sync += queued.eq(nonempty & ~retire)
            with m.Elif(retire):
                m.d.sync += queued.eq(0)
        return m
