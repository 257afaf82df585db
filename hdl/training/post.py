"""Post-processing of the GEMM results: FWD, DX and UPDATE.

:class:`PostProcessor` walks an op's output matrix, :class:`PostLanes` does
the lanes' arithmetic. Every formula is :mod:`reference.training`'s.
"""

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from reference.training_numerics import LFSR_SEED, LFSR_TAPS, Numerics

from . import ports
from .program import POST_STAGES, Act, Kind

__all__ = ["PostLanes", "PostProcessor", "LANE_CONTROL", "LANE_INPUTS", "LANE_OUTPUTS"]

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


def _lfsr_step(s):
    """The LFSR's next state (an int)."""
    return (s >> 1) ^ (LFSR_TAPS if s & 1 else 0)


def _lfsr_ahead(s, k):
    """The LFSR's state ``k`` steps after ``s`` (a 16-bit value), each bit one XOR of ``s``'s bits: the
    steps are linear over GF(2), so the bit is the XOR of the bits of ``s`` whose unit vector, stepped
    ``k`` times, has it set (issue 13: two LUT levels, not ``k`` chained steps)."""
    columns = []
    for i in range(16):
        v = 1 << i
        for _ in range(k):
            v = _lfsr_step(v)
        columns.append(v)
    return Cat(*(Cat(*(s[i] for i in range(16) if columns[i] >> b & 1)).xor() for b in range(16)))


class _Stages:
    """A lane's pipeline: :meth:`next` registers values into the next stage."""

    def __init__(self, m, prefix=""):
        self.m, self.prefix, self.count = m, prefix, 0

    def next(self, **values):
        """Each of ``values`` registered, as the next stage's signals (named ``<prefix><name>_p<stage>``)."""
        self.count += 1
        regs = {}
        for name, v in values.items():
            shape = v.shape() if isinstance(v, data.View) else Value.cast(v).shape()
            regs[name] = Signal(shape, name=f"{self.prefix}{name}_p{self.count}")
            self.m.d.sync += regs[name].eq(v)
        return SimpleNamespace(**regs)


def _clamp(v, bits):
    """``v`` (signed) saturated to ``bits`` signed bits, by its top bits (all equal: it fits) and not by
    compares against the limits: a tree of ANDs and ORs, not two carry chains (issue 13)."""
    top = v[bits - 1 :]
    fits = top.all() | ~top.any()
    hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
    return Mux(fits, v[:bits].as_signed(), Mux(v[-1], Const(lo, signed(bits)), Const(hi, signed(bits))))


#: The lane inputs and outputs of :class:`PostLanes` (each an array of one value per lane).
LANE_INPUTS = {
    "acc": signed(32),
    "bias": signed(32),
    "weight": signed(16),
    "mom": signed(32),
    "y_prev": signed(8),
    "rand": unsigned(16),
    "in_range": unsigned(1),
    "ones": unsigned(1),
}
LANE_OUTPUTS = {
    "y": signed(8),
    "fwd": signed(8),
    "dx": signed(8),
    "dx_masked": signed(8),
    "mom_new": signed(32),
    "weight_new": signed(16),
    "bias_new": signed(32),
    "weight8": signed(8),
}


class PostLanes(wiring.Component):
    """``lanes`` lanes' arithmetic, pipelined: the outputs are the inputs' of :data:`LATENCY` cycles before.

    Inputs, one per lane: the accumulator ``acc``; the words the op read
    beside it (the master ``bias`` and ``weight``, the momentum ``mom``, the
    previous layer's ``y_prev``); ``rand``, the lane's LFSR draw;
    ``in_range`` (the column is inside the matrix) and ``ones`` (it is the
    ones column). Shared: ``ctl`` (:data:`LANE_CONTROL`), carried down the
    stages once for every lane.

    Outputs, one per lane: FWD ``y`` (kept) and ``fwd`` (activated, or 1
    in the ones column); DX ``dx`` (kept) and ``dx_masked`` (the layer
    below's dY); UPDATE ``mom_new``, ``weight_new``, ``bias_new`` and
    ``weight8`` (the int8 weight the GEMMs read). Outside the matrix, the
    kept and written int8 values are 0 and the masters and momentum keep
    their old values.

    The stages (issue 13: each about one carry chain or one variable shift,
    for a 75 MHz core on the ECP5): 1, the rounding adds (bias, DX) and
    ``acc - mom``; 2, the bias's and DX's shifts and saturations, the
    momentum, the multiplier's operand; 3, ``acc + bias`` and the two
    16-bit halves of the product by lr; 4, their sum, FWD's rounding add;
    5, the update's floor shift and its left shift, FWD's shift; 6, the
    stochastic rounding's shift and compare, FWD's saturation and
    activation, the left shift's saturation to 34 bits; 7, the step and
    the int8 weight's rounding add; 8, the masters less the step; 9, their
    saturation and the int8 weight.

    The left-shifted step is saturated to 34 bits: a step at or past 2^33
    in magnitude saturates the 32-bit bias, the 16-bit weight and the int8
    weight the same way as the clamped one does, and the narrower step
    keeps stages 7 to 9 within 64 bits (a third of the simulator's time
    went to the wider words).
    """

    #: Cycles from the inputs to the outputs (program.POST_STAGES: the schedule's).
    LATENCY = POST_STAGES

    def __init__(self, numerics=Numerics(), lanes=1):
        if not 0 <= numerics.master_extra <= 8:
            raise ValueError(
                f"master_extra must be in 0..8 (the int8 weight is the int16 master's top byte or more), "
                f"not {numerics.master_extra}"
            )
        self.numerics, self.lanes = numerics, lanes
        ports = {name: In(data.ArrayLayout(shape, lanes)) for name, shape in LANE_INPUTS.items()}
        ports |= {"ctl": In(LANE_CONTROL)}
        ports |= {name: Out(data.ArrayLayout(shape, lanes)) for name, shape in LANE_OUTPUTS.items()}
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        # The shared control, stage by stage: ctls[k] is the word's in stage k (ctls[0], the input's).
        ctls = [self.ctl]
        for k in range(1, 7):
            reg = Signal(LANE_CONTROL, name=f"ctl_p{k}")
            m.d.sync += reg.eq(ctls[-1])
            ctls.append(reg)
        # The rounding terms 2^(s-1) (0 for s = 0) of FWD's and DX's shift, shared by the lanes.
        halves = {}
        for stage, width in ((0, 34), (3, 40)):
            halves[stage] = Signal(unsigned(width), name=f"half_p{stage}")
            m.d.comb += halves[stage].eq((Const(1, width + 1) << ctls[stage].post_shift)[1:])
        for e in range(self.lanes):
            inputs = {name: getattr(self, name)[e] for name in LANE_INPUTS}
            outputs = self._lane(m, e, inputs, ctls, halves)
            m.d.comb += [getattr(self, name)[e].eq(v) for name, v in outputs.items()]
        return m

    def _lane(self, m, e, i, ctls, halves):
        """Lane ``e``'s stages, from its inputs ``i``, the shared control ``ctls`` and rounding terms
        ``halves`` (each by its stage): its outputs."""
        nm, st = self.numerics, _Stages(m, prefix=f"l{e}_")
        E = nm.master_extra
        half_e = (1 << E) >> 1

        # 1. The round-half-up adds: the bias master's top (FWD), acc's (DX); acc - mom.
        ctl = ctls[0]
        p = st.next(
            acc=i["acc"],
            bias=i["bias"],
            weight=i["weight"],
            mom=i["mom"],
            y_prev=i["y_prev"],
            rand=i["rand"],
            ok=i["in_range"],
            ones=i["ones"],
            bias_h=i["bias"] + half_e,
            acc_h=i["acc"] + halves[0],
            diff=i["acc"] - i["mom"],
        )
        # 2. FWD's bias, sat32(rhu(bias)); DX, sat8(rhu(acc)); the momentum q and the multiplier's operand.
        ctl = ctls[1]
        q = Signal(signed(32), name=f"l{e}_q")
        m.d.comb += q.eq(p.mom + (p.diff >> nm.momentum_shift))
        keep = lambda p, *names: {name: getattr(p, name) for name in names}  # values carried on unchanged
        p = st.next(
            **keep(p, "acc", "bias", "weight", "y_prev", "rand", "ok", "ones"),
            mom_new=Mux(p.ok, q, p.mom),
            bias_r=_clamp(p.bias_h >> E, 32),
            dx=_clamp(p.acc_h >> ctl.post_shift, 8),
            operand=Mux(ctl.momentum, q, p.acc),
        )
        # 3. acc + bias; the product operand x lr in two halves (each fits a multiplier); DX's mask.
        ctl = ctls[2]
        act = lambda v, y, ctl: Mux(y > 0, v, Mux(ctl.act == Act.LEAKY, v >> nm.leaky_shift, 0))
        p = st.next(
            **keep(p, "bias", "weight", "mom_new", "rand", "ok", "ones"),
            dx=Mux(p.ok, p.dx, 0),
            dx_masked=Mux(p.ok, act(p.dx, p.y_prev, ctl), 0),
            total=p.acc + p.bias_r,
            prod_lo=p.operand.as_unsigned()[:16] * ctl.lr,
            prod_hi=p.operand[16:].as_signed() * ctl.lr,
        )
        # 4. The product; FWD's rounding add.
        ctl = ctls[3]
        prod = Signal(signed(50), name=f"l{e}_prod")
        m.d.comb += prod.eq(p.prod_lo + (p.prod_hi << 16))
        p = st.next(
            **keep(p, "bias", "weight", "mom_new", "rand", "ok", "ones", "dx", "dx_masked"),
            prod=prod,
            total_h=p.total + halves[3],
        )
        # 5. The update's floor shift (s > 16) and its exact left shift (s < 0); FWD's shift.
        ctl = ctls[4]
        p = st.next(
            **keep(p, "bias", "weight", "mom_new", "rand", "ok", "ones", "dx", "dx_masked"),
            pre=p.prod >> ctl.pre_shift,
            left=p.prod << ctl.s_left,
            y_wide=p.total_h >> ctl.post_shift,
        )
        # 6. Stochastic rounding: the shift by s_eff and the draw's compare; FWD's saturation and
        # activation; the left shift saturated to 34 bits (exact: see the class's docstring).
        ctl = ctls[5]
        y = Signal(signed(8), name=f"l{e}_y")
        m.d.comb += y.eq(_clamp(p.y_wide, 8))
        frac = p.pre.as_unsigned()[:17] & ctl.frac_mask
        p = st.next(
            **keep(p, "bias", "weight", "mom_new", "ok", "dx", "dx_masked"),
            left=_clamp(p.left, 34),
            y=Mux(p.ok, y, 0),
            fwd=Mux(p.ok, Mux(ctl.act == Act.NONE, y, act(y, y, ctl)), Mux(p.ones, 1, 0)),
            floor=p.pre >> ctl.s_eff,
            up=frac > (p.rand & ctl.frac_mask),
        )
        # 7. The step: master -= step; the int8 weight's round-half-up add.
        ctl = ctls[6]
        p = st.next(
            **keep(p, "bias", "weight", "mom_new", "ok", "dx", "dx_masked", "y", "fwd"),
            step=Mux(ctl.round, p.floor + p.up, p.left),
            w_h=p.weight + half_e,
        )
        # 8. The masters less the step (and the int8 weight's rounding term less it).
        p = st.next(
            **keep(p, "bias", "weight", "mom_new", "ok", "dx", "dx_masked", "y", "fwd"),
            w_diff=p.weight - p.step,
            b_diff=p.bias - p.step,
            w8_diff=p.w_h - p.step,
        )
        # 9. Saturation. weight8 = sat8(rhu(sat16(w_diff))) = sat8(rhu(w_diff)) for master_extra <= 8:
        # a w_diff past int16 rounds past int8 either way.
        p = st.next(
            **keep(p, "mom_new", "dx", "dx_masked", "y", "fwd"),
            weight_new=Mux(p.ok, _clamp(p.w_diff, 16), p.weight)[:16].as_signed(),
            bias_new=Mux(p.ok, _clamp(p.b_diff, 32), p.bias)[:32].as_signed(),
            weight8=Mux(p.ok, _clamp(p.w8_diff >> E, 8), 0)[:8].as_signed(),
        )
        assert st.count == self.LATENCY
        return {name: getattr(p, name) for name in LANE_OUTPUTS}


class PostProcessor(wiring.Component):
    """FWD, DX and UPDATE over the held op's output matrix.

    ``run.go`` starts it (an op with no rows or words ends at once). It walks
    the matrix row by row (with the op's ``by_column``, word column by word
    column), one word of R lanes a cycle. Stage 0 presents the result
    address (``results``) and the addresses of the words the op needs beside
    it (``vmem_rd`` for y, ``wmem_rd``, ``bmem_rd``, ``mmem_rd``); stage 1,
    the next cycle, hands their data to the lanes (:class:`PostLanes`, whose
    pipeline is :data:`.program.POST_STAGES` deep) and steps ``lfsr`` by the
    lanes that drew from it (UPDATE); the last stage, POST_STAGES cycles
    later, writes: y or dx to ``vmem_wr``, masters and momenta to
    ``wmem_wr``/``bmem_wr``/``mmem_wr``, and the int8 word for the operand
    buffers to ``dst``, at addresses that stage 0's walk keeps by adds and
    that are carried beside the lanes. A word read in cycle c is written in c + 1 + POST_STAGES.
    ``run.done`` is high once the last word is written (rows × words + 2 +
    POST_STAGES cycles after ``go``).

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

        # follow: the word is read once the GEMM has written it final (a cycle before, or earlier); once
        # another GEMM is started behind it, by the older frontier.
        res_addr, advance, wrap = Signal(32), Signal(), Signal()
        chained = Signal()
        with m.If(self.run.go):
            m.d.sync += chained.eq(0)
        with m.Elif(self.gemm_go):
            m.d.sync += chained.eq(1)
        # Both frontiers are compared at once and the older one's verdict picked after (issue 13: the
        # pick is not in front of the compare).
        blocked = Mux(chained, res_addr >= self.older, res_addr >= self.frontier)
        # Whether pm and pt are at their last values, kept as they move (issue 13: no add and compare
        # in the walk's path).
        m_end, k_end = Signal(), Signal()
        m.d.comb += [
            advance.eq(run & ~(op.follow & blocked)),
            # the inner index at its end: word by word along a row (by_column: row by row down a word column)
            wrap.eq(Mux(op.by_column, m_end, k_end)),
        ]
        with m.If(self.run.go):
            m.d.sync += [m_end.eq(op.m <= 1), k_end.eq(op.k <= 1)]
        with m.If(advance):
            with m.If(wrap):
                with m.If(Mux(op.by_column, k_end, m_end)):
                    m.d.sync += run.eq(0)
                with m.If(op.by_column):
                    m.d.sync += [pm.eq(0), m_end.eq(op.m <= 1), pt.eq(pt + 1), k_end.eq(pt + 2 >= op.k)]
                with m.Else():
                    m.d.sync += [pt.eq(0), k_end.eq(op.k <= 1), pm.eq(pm + 1), m_end.eq(pm + 2 >= op.m)]
            with m.Elif(op.by_column):
                m.d.sync += [pm.eq(pm + 1), m_end.eq(pm + 2 >= op.m)]
            with m.Else():
                m.d.sync += [pt.eq(pt + 1), k_end.eq(pt + 2 >= op.k)]

        def strided(name, base, stride, width=16, swapped=False):
            """A register that holds ``base + pm·stride + pt`` (``swapped``: ``base + pt·stride + pm``) for
            stage 0's word, kept by adds as the walk moves (a multiply would stand in the read path): the
            index added unscaled moves fastest, and ``line`` holds the address where the walk's current
            line began. The two steps, along a line and to the next, are set when the op starts."""
            addr, line, inner, outer = (
                Signal(width, name=f"{name}{part}") for part in ("", "_line", "_inner", "_outer")
            )
            b_inner = op.by_column if swapped else ~op.by_column  # the index added unscaled moves fastest
            with m.If(self.run.go):
                m.d.sync += [
                    addr.eq(base),
                    line.eq(base),
                    inner.eq(Mux(b_inner, 1, stride)),
                    outer.eq(Mux(b_inner, stride, 1)),
                ]
            with m.If(advance & ~wrap):
                m.d.sync += addr.eq(addr + inner)
            with m.If(advance & wrap):  # the next line
                m.d.sync += [line.eq(line + outer), addr.eq(line + outer)]
            return addr

        m.d.comb += res_addr.eq(strided("res_addr", op.r_base, op.m, width=32, swapped=True))
        v_rd, vw, dst = (
            strided(f"{n}_addr", getattr(op, f"{n}_base"), getattr(op, f"{n}_stride")) for n in ("vr", "vw", "dst")
        )
        w_addr, q_addr = strided("w_addr", op.p_base, op.k), strided("q_addr", op.q_base, op.k)
        s1, s1_m, s1_t = Signal(), Signal(16), Signal(16)  # stage 1
        s1_addr = {name: Signal(16, name=f"s1_{name}") for name in ("dst", "vw", "w", "q")}
        m.d.sync += [s1.eq(advance), s1_m.eq(pm), s1_t.eq(pt)]
        m.d.sync += [s1_addr[name].eq(v) for name, v in (("dst", dst), ("vw", vw), ("w", w_addr), ("q", q_addr))]
        m.d.comb += [
            self.results.en.eq(run),
            self.results.addr.eq(res_addr),
            self.vmem_rd.addr.eq(v_rd),
            self.wmem_rd.addr.eq(w_addr),
            self.bmem_rd.addr.eq(op.bb_base + pt),
            self.mmem_rd.addr.eq(q_addr),
        ]

        # What the lanes share, from stage 0's row into stage 1's register. The update's shift s: s > 16
        # floors s - 16 bits first; s <= 0 is an exact left shift that draws nothing from the LFSR. The
        # op's two shifts (the weights' rows, the bias row) are split when it starts, and each word picks
        # its row's (issue 13: the split is not in the walk's path).
        def split(s_raw):
            s_eff = Mux(s_raw > 16, 16, Mux(s_raw < 0, 0, s_raw))[:6]
            return {
                "round": s_raw > 0,
                "s_left": Mux(s_raw < 0, -s_raw, 0)[:4],
                "s_eff": s_eff,
                "pre_shift": Mux(s_raw > 16, s_raw - 16, 0)[:6],
                "frac_mask": ((Const(1, 17) << s_eff) - 1)[:17],
            }

        splits = []
        for name in ("shift0", "shift1"):
            fields = split(getattr(op, name))
            regs = {f: Signal(Value.cast(v).shape(), name=f"{name}_{f}") for f, v in fields.items()}
            with m.If(self.run.go):
                m.d.sync += [regs[f].eq(v) for f, v in fields.items()]
            splits.append(regs)
        ctl = Signal(LANE_CONTROL)
        last_row = Signal()
        m.d.comb += last_row.eq(pm + 1 == op.m)
        m.d.sync += [
            ctl.act.eq(op.act),
            ctl.momentum.eq(op.momentum),
            ctl.lr.eq(self.ctl.lr),
            ctl.post_shift.eq(op.shift0.as_unsigned()[:6]),  # the plan checks >= 0
            *(getattr(ctl, f).eq(Mux(last_row, splits[1][f], splits[0][f])) for f in splits[0]),
        ]

        # Stage 1: the lanes' inputs, and the LFSR's draws (the LFSR steps here, word by word, by the
        # word's lanes inside the matrix: counted in stage 0, from its word).
        col0, remaining, valid_lanes = Signal(16), Signal(signed(18)), Signal(range(R + 1))
        m.d.comb += [
            col0.eq(s1_t << lg),
            remaining.eq(op.n - (pt << lg)),
        ]
        m.d.sync += valid_lanes.eq(Mux(remaining >= R, R, Mux(remaining < 0, 0, remaining)))
        states = [lfsr]  # lane e draws the state after e + 1 steps
        for e in range(R):
            nxt = Signal(16, name=f"lfsr_{e + 1}")
            m.d.comb += nxt.eq(_lfsr_ahead(lfsr, e + 1))
            states.append(nxt)
        m.submodules.lanes = lanes = PostLanes(self.numerics, lanes=R)
        m.d.comb += lanes.ctl.eq(ctl)
        for e in range(R):
            m.d.comb += [
                lanes.acc[e].eq(self.results.data[e]),
                lanes.bias[e].eq(self.bmem_rd.data[e]),
                lanes.weight[e].eq(self.wmem_rd.data[e]),
                lanes.mom[e].eq(self.mmem_rd.data[e]),
                lanes.y_prev[e].eq(self.vmem_rd.data[e]),
                lanes.rand[e].eq(states[e + 1]),
                lanes.in_range[e].eq(col0 + e < op.n),
                lanes.ones[e].eq(op.ones & (col0 + e == op.n)),
            ]
        with m.If(s1 & busy & (op.kind == Kind.UPDATE)):
            m.d.sync += lfsr.eq(Array(states)[Mux(ctl.round, valid_lanes, 0)])

        # The word's write (its addresses from stage 0's walk), carried beside the lanes: written POST_STAGES
        # cycles on.
        last = Signal(16)
        m.d.comb += last.eq(op.m - 1)
        wr = {
            "valid": s1,
            "row": s1_m,
            "last_row": s1_m == last,
            "dst_addr": s1_addr["dst"],
            "vw_addr": s1_addr["vw"],
            "w_addr": s1_addr["w"],
            "q_addr": s1_addr["q"],
            "b_addr": (op.bb_base + s1_t)[:16],
        }
        pending = []  # the words in the lanes' stages
        for stage in range(1, POST_STAGES + 1):
            regs = {name: Signal(Value.cast(v).shape(), name=f"wr_{name}_p{stage}") for name, v in wr.items()}
            m.d.sync += [regs[name].eq(v) for name, v in wr.items()]
            pending.append(regs["valid"])
            wr = regs
        m.d.comb += self.run.done.eq(~run & ~s1 & ~Cat(*pending).any())  # the last word has been written
        word = lambda name: [getattr(lanes, name)[e] for e in range(R)]
        self._writes(m, wr, word)
        return m

    def _writes(self, m, wr, word):
        """The last stage's writes, by the op's kind: ``wr`` is the word's (its stage 1's addresses)."""
        op = self.ctl.post_op
        m.d.comb += [self.dst.row.eq(wr["row"]), self.dst.to.eq(op.dst), self.dst.addr.eq(wr["dst_addr"])]
        with m.If(wr["valid"] & self.ctl.busy):
            with m.Switch(op.kind):
                with m.Case(Kind.FWD):
                    m.d.comb += [self.vmem_wr.en.eq(1), self.vmem_wr.addr.eq(wr["vw_addr"]), self.dst.en.eq(1)]
                    m.d.comb += [self.vmem_wr.data[e].eq(v) for e, v in enumerate(word("y"))]
                    m.d.comb += [self.dst.data[e].eq(v) for e, v in enumerate(word("fwd"))]
                with m.Case(Kind.DX):
                    m.d.comb += [self.vmem_wr.en.eq(1), self.vmem_wr.addr.eq(wr["vw_addr"]), self.dst.en.eq(1)]
                    m.d.comb += [self.vmem_wr.data[e].eq(v) for e, v in enumerate(word("dx"))]
                    m.d.comb += [self.dst.data[e].eq(v) for e, v in enumerate(word("dx_masked"))]
                with m.Case(Kind.UPDATE):
                    last_row = wr["last_row"]
                    m.d.comb += [
                        self.mmem_wr.en.eq(op.momentum),
                        self.mmem_wr.addr.eq(wr["q_addr"]),
                        self.wmem_wr.en.eq(~last_row),
                        self.wmem_wr.addr.eq(wr["w_addr"]),
                        self.bmem_wr.en.eq(last_row),
                        self.bmem_wr.addr.eq(wr["b_addr"]),
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
