"""Post-processing of the GEMM results: FWD, DX and UPDATE.

:class:`PostProcessor` walks an op's output matrix, :class:`PostLane` does
one lane's arithmetic. Every formula is :mod:`reference.training`'s.
"""

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from reference.training_numerics import LFSR_SEED, LFSR_TAPS, Numerics

from . import ports
from .program import Act, Kind

__all__ = ["PostLane", "PostProcessor", "LANE_CONTROL"]

#: What every lane of a word shares: the op's activation and momentum, the
#: step's lr, the requantizing shift (FWD, DX) and the update's shift, split
#: (``round``: s > 0 draws from the LFSR; ``pre_shift``: the bits floored
#: first when s > 16; ``s_eff``: min(s, 16); ``s_left``: -s when s < 0;
#: ``frac_mask``: 2^s_eff - 1).
LANE_CONTROL = data.StructLayout(
    {
        "act": Act,
        "momentum": 1,
        "lr": 16,
        "post_shift": 6,
        "round": 1,
        "pre_shift": 6,
        "s_eff": 6,
        "s_left": range(16),
        "frac_mask": 17,
    }
)


def _sat(v, bits):
    hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
    return Mux(v > hi, hi, Mux(v < lo, lo, v))


def _lfsr_next(s):
    return Mux(s[0], (s >> 1) ^ LFSR_TAPS, s >> 1)


class PostLane(wiring.Component):
    """One lane's arithmetic, combinational (outputs follow inputs in the same cycle).

    Inputs: the accumulator ``acc``; the words the op read beside it (the
    master ``bias`` and ``weight``, the momentum ``mom``, the previous
    layer's ``y_prev``); ``rand``, this lane's LFSR draw; ``in_range``
    (the column is inside the matrix) and ``ones`` (it is the ones column);
    ``ctl`` (:data:`LANE_CONTROL`).

    Outputs: FWD ``y`` (kept) and ``fwd`` (activated, or 1 in the ones
    column); DX ``dx`` (kept) and ``dx_masked`` (the layer below's dY);
    UPDATE ``mom_new``, ``weight_new``, ``bias_new`` and ``weight8`` (the
    int8 weight the GEMMs read). Outside the matrix, the kept and written
    int8 values are 0 and the masters and momentum keep their old values.
    """

    def __init__(self, numerics=Numerics()):
        self.numerics = numerics
        super().__init__(
            {
                "acc": In(signed(32)),
                "bias": In(signed(32)),
                "weight": In(signed(16)),
                "mom": In(signed(32)),
                "y_prev": In(signed(8)),
                "rand": In(16),
                "in_range": In(1),
                "ones": In(1),
                "ctl": In(LANE_CONTROL),
                "y": Out(signed(8)),
                "fwd": Out(signed(8)),
                "dx": Out(signed(8)),
                "dx_masked": Out(signed(8)),
                "mom_new": Out(signed(32)),
                "weight_new": Out(signed(16)),
                "bias_new": Out(signed(32)),
                "weight8": Out(signed(8)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        nm, c, acc, ok = self.numerics, self.ctl, self.acc, self.in_range

        def rhu(v, s, width):
            """Round half up: ``(v + 2^(s-1)) >> s`` (``v`` for s = 0)."""
            if isinstance(s, int):
                return (v + ((1 << s) >> 1)) >> s
            half = Signal(unsigned(width))
            m.d.comb += half.eq((Const(1, width + 1) << s)[1:])
            return (v + half) >> s

        # FWD: y = sat8(rhu(acc + bias)); the bias is the master's top, rounded.
        bias, y = Signal(signed(32)), Signal(signed(8))
        m.d.comb += [
            bias.eq(_sat(rhu(self.bias, nm.master_extra, 34), 32)),
            y.eq(_sat(rhu(acc + bias, c.post_shift, 40), 8)),
        ]
        act = Mux(y > 0, y, Mux(c.act == Act.LEAKY, y >> nm.leaky_shift, 0))
        m.d.comb += [
            self.y.eq(Mux(ok, y, 0)),
            self.fwd.eq(Mux(ok, Mux(c.act == Act.NONE, y, act), Mux(self.ones, 1, 0))),
        ]
        # DX: dx = sat8(rhu(acc)); the layer below's dY is dx under its mask.
        dx = Signal(signed(8))
        m.d.comb += dx.eq(_sat(rhu(acc, c.post_shift, 34), 8))
        masked = Mux(self.y_prev > 0, dx, Mux(c.act == Act.LEAKY, dx >> nm.leaky_shift, 0))
        m.d.comb += [self.dx.eq(Mux(ok, dx, 0)), self.dx_masked.eq(Mux(ok, masked, 0))]
        # UPDATE: momentum, then master -= stochastic_round(g · lr / 2^s).
        q, prod, pre = Signal(signed(32)), Signal(signed(50)), Signal(signed(50))
        m.d.comb += [
            q.eq(self.mom + ((acc - self.mom) >> nm.momentum_shift)),
            prod.eq(Mux(c.momentum, q, acc) * c.lr),
            pre.eq(prod >> c.pre_shift),
        ]
        frac = pre.as_unsigned()[:17] & c.frac_mask
        step = Signal(signed(66))
        m.d.comb += step.eq(Mux(c.round, (pre >> c.s_eff) + (frac > (self.rand & c.frac_mask)), prod << c.s_left))
        m.d.comb += [
            self.weight_new.eq(Mux(ok, _sat(self.weight - step, 16), self.weight)),
            self.bias_new.eq(Mux(ok, _sat(self.bias - step, 32), self.bias)),
            self.mom_new.eq(Mux(ok, q, self.mom)),
            self.weight8.eq(Mux(ok, _sat(rhu(self.weight_new, nm.master_extra, 18), 8), 0)),
        ]
        return m


class PostProcessor(wiring.Component):
    """FWD, DX and UPDATE over the held op's output matrix.

    ``run.go`` starts it (an op with no rows or words ends at once). It walks
    the matrix row by row (with the op's ``by_column``, word column by word
    column), one word of R lanes a cycle, in two stages: stage
    0 presents the result address (``results``) and the addresses of the
    words the op needs beside it (``vmem_rd`` for y, ``wmem_rd``,
    ``bmem_rd``, ``mmem_rd``); stage 1, the next cycle, computes from their
    data and writes: y or dx to ``vmem_wr``, masters and momenta to
    ``wmem_wr``/``bmem_wr``/``mmem_wr``, and the int8 word for the operand
    buffers to ``dst``. ``run.done`` is high once the last word is written
    (rows × words + 2 cycles after ``go``). Each UPDATE word advances
    ``lfsr`` by the lanes that drew from it.

    With the op's ``follow`` set, the op follows the GEMM that writes its
    results, still running: stage 0 waits on a word at or above ``frontier``
    (:class:`.gemm_port.GemmPort`'s, one past the GEMM's last final word) and
    reads it in the cycle after the GEMM has written it final. Such an op
    walks by column, the order the GEMM finishes its words in. When another
    GEMM is started while it runs (``gemm_go``, chained behind its GEMM), it
    waits on ``older`` instead, its GEMM's frontier, from the next cycle on.
    """

    def __init__(self, geometry, numerics=Numerics()):
        self.geometry, self.numerics = geometry, numerics
        g = geometry
        lanes = lambda shape: data.ArrayLayout(shape, g.rows)
        super().__init__(
            {
                "ctl": In(ports.control()),
                "run": In(ports.run()),
                "frontier": In(range(2 * g.result_depth + 1)),
                "older": In(range(2 * g.result_depth + 1)),
                "gemm_go": In(1),
                "results": Out(ports.mem_read(2 * g.result_depth, lanes(signed(32)), en=True)),
                "vmem_rd": Out(ports.mem_read(g.vmem_depth, lanes(signed(8)))),
                "wmem_rd": Out(ports.mem_read(g.wmem_depth, lanes(signed(16)))),
                "bmem_rd": Out(ports.mem_read(g.bmem_depth, lanes(signed(32)))),
                "mmem_rd": Out(ports.mem_read(g.mmem_depth, lanes(signed(32)))),
                "vmem_wr": Out(ports.mem_write(g.vmem_depth, lanes(signed(8)))),
                "wmem_wr": Out(ports.mem_write(g.wmem_depth, lanes(signed(16)))),
                "bmem_wr": Out(ports.mem_write(g.bmem_depth, lanes(signed(32)))),
                "mmem_wr": Out(ports.mem_write(g.mmem_depth, lanes(signed(32)))),
                "dst": Out(ports.operand_word(g.rows)),
                "lfsr": Out(16, init=LFSR_SEED),
            }
        )

    def elaborate(self, platform):
        m = Module()
        R = self.geometry.rows
        lg = R.bit_length() - 1
        op, busy, lfsr = self.ctl.post_op, self.ctl.busy, self.lfsr
        # Stage 0: row pm, word pt.
        run, pm, pt = Signal(), Signal(16), Signal(16)
        with m.If(self.run.go):
            m.d.sync += [run.eq((op.m != 0) & (op.k != 0)), pm.eq(0), pt.eq(0)]

        def walk(inner, inner_n, outer, outer_n):  # the inner index to its end, then the outer one step
            with m.If(inner + 1 >= inner_n):
                m.d.sync += [inner.eq(0), outer.eq(outer + 1)]
                with m.If(outer + 1 >= outer_n):
                    m.d.sync += run.eq(0)
            with m.Else():
                m.d.sync += inner.eq(inner + 1)

        row_words, res_addr, advance = Signal(32), Signal(32), Signal()
        # follow: the word is read once the GEMM has written it final (a cycle before, or earlier); once
        # another GEMM is started behind it, by the older frontier.
        chained = Signal()
        with m.If(self.run.go):
            m.d.sync += chained.eq(0)
        with m.Elif(self.gemm_go):
            m.d.sync += chained.eq(1)
        frontier = Mux(chained, self.older, self.frontier)
        m.d.comb += advance.eq(run & ~(op.follow & (res_addr >= frontier)))
        with m.If(advance & ~op.by_column):
            walk(pt, op.k, pm, op.m)  # word by word along a row, then the next row
        with m.Elif(advance):
            walk(pm, op.m, pt, op.k)  # by_column: row by row down a word column, then the next column
        s1, s1_m, s1_t, s1_last_row = Signal(), Signal(16), Signal(16), Signal()  # stage 1
        m.d.sync += [s1.eq(advance), s1_m.eq(pm), s1_t.eq(pt), s1_last_row.eq(pm + 1 == op.m)]
        m.d.comb += self.run.done.eq(~run & ~s1)  # the last word has been written
        m.d.comb += [
            row_words.eq(pm * op.k + pt),
            res_addr.eq(op.r_base + pt * op.m + pm),
            self.results.en.eq(run),
            self.results.addr.eq(res_addr),
            self.vmem_rd.addr.eq(op.vr_base + pm * op.vr_stride + pt),
            self.wmem_rd.addr.eq(op.p_base + row_words),
            self.bmem_rd.addr.eq(op.bb_base + pt),
            self.mmem_rd.addr.eq(op.q_base + row_words),
        ]

        # Stage 1: the lanes, and what they share.
        ctl, col0 = Signal(LANE_CONTROL), Signal(16)
        s_raw, remaining, valid_lanes = Signal(signed(7)), Signal(signed(18)), Signal(range(R + 1))
        m.d.comb += [
            col0.eq(s1_t << lg),
            s_raw.eq(Mux(s1_last_row, op.shift1, op.shift0)),
            remaining.eq(op.n - col0),
            valid_lanes.eq(Mux(remaining >= R, R, Mux(remaining < 0, 0, remaining))),
        ]
        # The update's shift s: s > 16 floors s - 16 bits first; s <= 0 is an
        # exact left shift that draws nothing from the LFSR.
        m.d.comb += [
            ctl.act.eq(op.act),
            ctl.momentum.eq(op.momentum),
            ctl.lr.eq(self.ctl.lr),
            ctl.post_shift.eq(op.shift0.as_unsigned()[:6]),  # the plan checks >= 0
            ctl.round.eq(s_raw > 0),
            ctl.s_left.eq(Mux(s_raw < 0, -s_raw, 0)),
            ctl.s_eff.eq(Mux(s_raw > 16, 16, Mux(s_raw < 0, 0, s_raw))),
            ctl.pre_shift.eq(Mux(s_raw > 16, s_raw - 16, 0)),
            ctl.frac_mask.eq((Const(1, 17) << ctl.s_eff) - 1),
        ]
        states = [lfsr]  # lane e draws the state after e + 1 steps
        for e in range(R):
            nxt = Signal(16, name=f"lfsr_{e + 1}")
            m.d.comb += nxt.eq(_lfsr_next(states[-1]))
            states.append(nxt)
        lanes = []
        for e in range(R):
            m.submodules[f"lane{e}"] = lane = PostLane(self.numerics)
            m.d.comb += [
                lane.acc.eq(self.results.data[e]),
                lane.bias.eq(self.bmem_rd.data[e]),
                lane.weight.eq(self.wmem_rd.data[e]),
                lane.mom.eq(self.mmem_rd.data[e]),
                lane.y_prev.eq(self.vmem_rd.data[e]),
                lane.rand.eq(states[e + 1]),
                lane.in_range.eq(col0 + e < op.n),
                lane.ones.eq(op.ones & (col0 + e == op.n)),
                lane.ctl.eq(ctl),
            ]
            lanes.append(lane)
        word = lambda name: [getattr(lane, name) for lane in lanes]
        self._writes(m, s1 & busy, s1_m, s1_t, s1_last_row, word)
        with m.If(s1 & busy & (op.kind == Kind.UPDATE)):
            m.d.sync += lfsr.eq(Array(states)[Mux(ctl.round, valid_lanes, 0)])
        return m

    def _writes(self, m, s1, s1_m, s1_t, last_row, word):
        """Stage 1's writes, by the op's kind."""
        op = self.ctl.post_op
        s1_words = Signal(32)
        m.d.comb += [
            s1_words.eq(s1_m * op.k + s1_t),
            self.dst.row.eq(s1_m),
            self.dst.to.eq(op.dst),
            self.dst.addr.eq(op.dst_base + s1_m * op.dst_stride + s1_t),
        ]
        vw_addr = op.vw_base + s1_m * op.vw_stride + s1_t
        with m.If(s1):
            with m.Switch(op.kind):
                with m.Case(Kind.FWD):
                    m.d.comb += [self.vmem_wr.en.eq(1), self.vmem_wr.addr.eq(vw_addr), self.dst.en.eq(1)]
                    m.d.comb += [self.vmem_wr.data[e].eq(v) for e, v in enumerate(word("y"))]
                    m.d.comb += [self.dst.data[e].eq(v) for e, v in enumerate(word("fwd"))]
                with m.Case(Kind.DX):
                    m.d.comb += [self.vmem_wr.en.eq(1), self.vmem_wr.addr.eq(vw_addr), self.dst.en.eq(1)]
                    m.d.comb += [self.vmem_wr.data[e].eq(v) for e, v in enumerate(word("dx"))]
                    m.d.comb += [self.dst.data[e].eq(v) for e, v in enumerate(word("dx_masked"))]
                with m.Case(Kind.UPDATE):
                    m.d.comb += [
                        self.mmem_wr.en.eq(op.momentum),
                        self.mmem_wr.addr.eq(op.q_base + s1_words),
                        self.wmem_wr.en.eq(~last_row),
                        self.wmem_wr.addr.eq(op.p_base + s1_words),
                        self.bmem_wr.en.eq(last_row),
                        self.bmem_wr.addr.eq(op.bb_base + s1_t),
                        self.dst.en.eq(~last_row),
                    ]
                    for e, (q, w, b, w8) in enumerate(
                        zip(word("mom_new"), word("weight_new"), word("bias_new"), word("weight8"))
                    ):
                        m.d.comb += [
                            self.mmem_wr.data[e].eq(q),
                            self.wmem_wr.data[e].eq(w),
                            self.bmem_wr.data[e].eq(b),
                            self.dst.data[e].eq(w8),
                        ]
