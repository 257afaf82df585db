"""Fast amaranth.sim tests of the training core's components, one at a time
(no Verilator build): the post-processor's lane arithmetic against
:mod:`reference.training`'s formulas, a whole UPDATE (LFSR draws in the
golden model's order), the sequencer on good and bad programs, the loss
feeder with the loss unit on a few rows, the operand writer's rotation, and
GemmPort's frontiers over two chained GEMMs."""

import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import data, memory, wiring
from amaranth.sim import Simulator

from hdl.training.loss_feeder import LossFeeder
from hdl.training.loss_unit import Loss, LossUnit
from hdl.training.post import LANE_OUTPUTS, PostLanes
from hdl.training.program import (
    OP_LAYOUT,
    POST_STAGES,
    Act,
    CoreGeometry,
    Kind,
    Phase,
    PlanError,
    loss_write_cycle,
    pack_op,
)
from hdl.training.sequencer import Sequencer
from reference.training import (
    Lfsr16,
    loss_error,
    round_half_up_shift,
    sat,
    stochastic_round_shift,
    stochastic_round_with,
    update_draws,
)
from reference.training_numerics import Numerics

NM = Numerics()


def _run(top, bench, deadline=None):
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run_until(deadline) if deadline else sim.run()


# -- PostLanes ----------------------------------------------------------------


def _lane_ctl(s=0, post_shift=0, act=Act.RELU, momentum=0, lr=0):
    """LANE_CONTROL for the update shift ``s``, split as its docstring says."""
    s_eff = min(max(s, 0), 16)
    return {
        "act": act,
        "momentum": momentum,
        "lr": lr,
        "post_shift": post_shift,
        "round": int(s > 0),
        "pre_shift": max(s - 16, 0),
        "s_eff": s_eff,
        "s_left": max(-s, 0),
        "frac_mask": (1 << s_eff) - 1,
    }


def _lane_bench(cases, check):
    """The cases one a cycle, back to back, each checked LATENCY cycles after it went in: lane 0 takes
    case i, lane 1 the inputs of case i + 1 under case i's shared control (the lanes are independent)."""
    lanes = PostLanes(NM, lanes=2)
    checked = []

    def inputs_of(i, lane):
        return cases[(i + lane) % len(cases)][0]

    async def bench(ctx):
        for i in range(len(cases) + PostLanes.LATENCY):
            if i >= PostLanes.LATENCY:
                j = i - PostLanes.LATENCY
                for e in range(2):
                    got = {name: ctx.get(getattr(lanes, name)[e]) for name in LANE_OUTPUTS}
                    check(inputs_of(j, e), cases[j][1], got)
                checked.append(j)
            if i < len(cases):
                for e in range(2):
                    for name, v in inputs_of(i, e).items():
                        ctx.set(getattr(lanes, name)[e], v)
                ctx.set(lanes.ctl, lanes.ctl.shape().const(cases[i][1]))
            await ctx.tick()

    sim = Simulator(lanes)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert checked == list(range(len(cases)))


@pytest.mark.parametrize("act", [Act.NONE, Act.RELU, Act.LEAKY])
def test_lane_fwd_and_dx(act):
    rng = np.random.default_rng(act.value)
    cases = []
    for i in range(150):
        shift = int(rng.integers(0, 32))
        inputs = {
            "acc": int(rng.integers(-(1 << 31), 1 << 31)) >> int(rng.integers(0, 24)),
            "bias": int(rng.integers(-(1 << 31), 1 << 31)) >> int(rng.integers(0, 24)),
            "y_prev": int(rng.integers(-128, 128)),
            "in_range": int(i % 7 != 0),
            "ones": int(i % 2),
            "weight": 0,
            "mom": 0,
            "rand": 0,
        }
        cases.append((inputs, _lane_ctl(post_shift=shift, act=act)))

    def check(i, c, got):
        if not i["in_range"]:
            assert (got["y"], got["fwd"], got["dx"], got["dx_masked"]) == (0, i["ones"], 0, 0)
            return
        y = int(
            sat(
                round_half_up_shift(
                    i["acc"] + sat(round_half_up_shift(i["bias"], NM.master_extra), 32), c["post_shift"]
                ),
                8,
            )
        )
        fwd = {Act.NONE: y, Act.RELU: max(y, 0), Act.LEAKY: y if y > 0 else y >> NM.leaky_shift}[act]
        dx = int(sat(round_half_up_shift(i["acc"], c["post_shift"]), 8))
        masked = dx if i["y_prev"] > 0 else (dx >> NM.leaky_shift if act == Act.LEAKY else 0)
        assert (got["y"], got["fwd"], got["dx"], got["dx_masked"]) == (y, fwd, dx, masked), (i, c)

    _lane_bench(cases, check)


class _Draws:
    """A stand-in LFSR for the golden formula: hands out the draw the lane got."""

    def __init__(self, rand):
        self.rand = rand

    def draws(self, n):
        return np.array([self.rand] * n, dtype=np.int64)


@pytest.mark.parametrize("momentum", [0, 1])
def test_lane_update_stochastic_rounding(momentum):
    rng = np.random.default_rng(10 + momentum)
    lfsr = Lfsr16()
    cases = []
    for i in range(200):
        s = int(rng.integers(-15, 48))
        inputs = {
            "acc": int(rng.integers(-(1 << 28), 1 << 28)) >> int(rng.integers(0, 20)),
            "mom": int(rng.integers(-(1 << 28), 1 << 28)) >> int(rng.integers(0, 20)),
            "weight": int(rng.integers(-(1 << 15), 1 << 15)),
            "bias": int(rng.integers(-(1 << 31), 1 << 31)),
            "rand": lfsr.next(),
            "in_range": int(i % 9 != 0),
            "ones": 0,
            "y_prev": 0,
        }
        cases.append((inputs, _lane_ctl(s=s, momentum=momentum, lr=int(rng.integers(0, 1 << 16)))))

    def check(i, c, got):
        if not i["in_range"]:
            assert (got["weight_new"], got["bias_new"], got["mom_new"], got["weight8"]) == (
                i["weight"],
                i["bias"],
                i["mom"],
                0,
            )
            return
        s = c["s_eff"] + c["pre_shift"] if c["round"] else -c["s_left"]
        q = i["mom"] + ((i["acc"] - i["mom"]) >> NM.momentum_shift)
        g = q if momentum else i["acc"]
        step = int(stochastic_round_shift(np.int64(g * c["lr"]), s, _Draws(i["rand"])))
        w = int(sat(i["weight"] - step, 16))
        want = (w, int(sat(i["bias"] - step, 32)), q, int(sat(round_half_up_shift(w, NM.master_extra), 8)))
        assert (got["weight_new"], got["bias_new"], got["mom_new"], got["weight8"]) == want, (i, c)

    _lane_bench(cases, check)


def test_lane_update_steps_at_the_34_bit_clamp():
    """Left-shifted steps around ±2^31, ±2^32 and ±2^33 (the lanes clamp them to 34 bits) against the
    unclamped formula: each master saturates the same way either side of the clamp."""

    def factor(t):
        """(acc, lr, s_left) with acc·lr·2^s_left = t, |acc| < 2^31, 0 < lr < 2^16."""
        for shift in range(16):
            for lr in range(1, 1 << 16):
                a, r = divmod(abs(t), lr << shift)
                if r == 0 and a < (1 << 31):
                    return (a if t > 0 else -a), lr, shift
        raise AssertionError(t)

    cases = []
    for t in [sign * (1 << k) + d for k in (31, 32, 33) for sign in (1, -1) for d in (-2, -1, 0, 1, 2)]:
        acc, lr, shift = factor(t)
        for weight, bias in ((0, 0), (32767, (1 << 31) - 1), (-32768, -(1 << 31)), (1234, -5678)):
            inputs = {"acc": acc, "mom": 0, "weight": weight, "bias": bias, "rand": 0, "in_range": 1}
            cases.append(({**inputs, "ones": 0, "y_prev": 0}, _lane_ctl(s=-shift, lr=lr)))

    def check(i, c, got):
        step = i["acc"] * c["lr"] << c["s_left"]
        w = int(sat(i["weight"] - step, 16))
        want = (w, int(sat(i["bias"] - step, 32)), int(sat(round_half_up_shift(w, NM.master_extra), 8)))
        assert (got["weight_new"], got["bias_new"], got["weight8"]) == want, (i, c)

    _lane_bench(cases, check)


# -- Sequencer ----------------------------------------------------------------


def _sequencer_run(ops, gemm_cycles=4, limit=200):
    """Load ``ops`` (dicts or packed words), start, and play every unit (done
    ``gemm_cycles`` cycles after go). Returns (error, busy cycles, units in order, counters)."""
    seq = Sequencer(CoreGeometry())
    out = {}

    async def bench(ctx):
        for addr, op in enumerate(ops):
            ctx.set(seq.prog.en, 1)
            ctx.set(seq.prog.addr, addr)
            ctx.set(seq.prog.data.as_value(), op if isinstance(op, int) else pack_op(op))
            await ctx.tick()
        ctx.set(seq.prog.en, 0)
        ctx.set(seq.gemm_ready, 1)  # the engine is idle: gemm_busy stays low
        ctx.set(seq.start, 1)
        await ctx.tick()
        ctx.set(seq.start, 0)
        units, pending, cycles = [], None, 0
        while ctx.get(seq.busy):
            assert cycles < limit, "the sequencer hung"
            for name in ("gemm", "post", "loss"):
                if ctx.get(getattr(seq, name).go):
                    units.append(name)
                    pending = [name, gemm_cycles]
            for name in ("gemm", "post", "loss"):
                ctx.set(getattr(seq, name).done, 0)
            if pending:
                pending[1] -= 1
                if pending[1] < 0:
                    ctx.set(getattr(seq, pending[0]).done, 1)
                    pending = None
            if not pending or pending[0] != "post":  # as PostProcessor: done while it runs no op
                ctx.set(seq.post.done, 1)
            await ctx.tick()
            cycles += 1
        out.update(
            error=ctx.get(seq.error),
            cycles=cycles,
            units=units,
            counters=[ctx.get(seq.cnt_cycles[p.value]) for p in Phase],
        )

    _run(seq, bench)
    return out


def test_sequencer_runs_a_program():
    ops = [
        {"kind": Kind.GEMM, "phase": Phase.FORWARD},
        {"kind": Kind.FWD, "phase": Phase.FORWARD},
        {"kind": Kind.LOSS, "phase": Phase.BACKWARD, "m": 2, "n": 10, "k": 2},
        {"kind": Kind.UPDATE, "phase": Phase.UPDATE},
        {"kind": Kind.END, "phase": Phase.UPDATE},
    ]
    r = _sequencer_run(ops, gemm_cycles=4)
    assert r["error"] == 0 and r["units"] == ["gemm", "post", "loss", "post"]
    # The first op: FETCH, DECODE, START, then the unit's 4 cycles until done. Each op after it: DECODE
    # (its word fetched in the cycle the op before ends), START and 4 cycles; END: its DECODE.
    assert r["cycles"] == (3 + 4) + 3 * (2 + 4) + 1
    # Each cycle goes to the held op's phase: an op's DECODE to the op before it.
    assert r["counters"] == [7 + 6 + 1, 5 + 1, 5 + 1]


@pytest.mark.parametrize(
    "bad",
    [
        6,
        7,
        {"kind": Kind.LOSS, "m": 4, "n": 17, "k": 3},
        {"kind": Kind.LOSS, "m": 0, "n": 4, "k": 1},
        {"kind": Kind.LOSS, "m": 4, "n": 4, "k": 2},
    ],
    ids=str,
)
def test_sequencer_stops_on_bad_ops(bad):
    """An unknown kind or a row the loss unit cannot take: error, never a hang."""
    r = _sequencer_run([{"kind": Kind.GEMM}, bad, {"kind": Kind.END}])
    assert r["error"] == 1 and r["units"] == ["gemm"]
    assert _sequencer_run([{"kind": Kind.END}])["error"] == 0


def test_pack_op_checks_its_fields():
    assert pack_op({"kind": Kind.LOSS, "m": 3}) == OP_LAYOUT.const({"kind": Kind.LOSS, "m": 3}).as_bits()
    with pytest.raises(PlanError, match="op field m = 65536 does not fit"):
        pack_op({"m": 1 << 16})
    with pytest.raises(PlanError, match="op field kind = 7 is not a Kind"):
        pack_op({"kind": 7})


# -- LossFeeder and LossUnit -----------------------------------------------------


@pytest.mark.parametrize("stalls", [False, True], ids=["flowing", "stalled"])
@pytest.mark.parametrize("loss", list(Loss), ids=lambda loss: loss.name.lower())
def test_loss_feeder_through_the_loss_unit(loss, stalls):
    """Rows through the feeder and the unit, bit-exact, on time. ``stalled``: ``ctl.busy`` (and with it
    ``errors.ready``) is low 12 cycles in 24, so the unit's stages fill up and the feeder must show a
    word the unit did not take again."""
    g = CoreGeometry(rows=4, classes=10)
    R, rows, n = g.rows, 8, 10
    rng = np.random.default_rng(3)
    logits = rng.integers(-60, 60, (rows, n))
    logits[1] = 7  # all equal
    labels = rng.integers(0, n, rows)
    W = -(-n // R)
    stride = W + 1  # a gap between the rows
    vmem_words = np.zeros((rows * stride + 4, R), dtype=np.int64)
    for r in range(rows):
        vmem_words[2 + r * stride : 2 + r * stride + W] = np.pad(logits[r], (0, W * R - n)).reshape(W, R)
    m = Module()
    m.submodules.feeder = feeder = LossFeeder(g)
    m.submodules.unit = unit = LossUnit(g.classes, R, NM)
    m.submodules.vmem = vmem = memory.Memory(
        shape=data.ArrayLayout(signed(8), R), depth=g.vmem_depth, init=[[int(v) for v in w] for w in vmem_words]
    )
    lab_words = np.pad(labels, (0, -rows % R)).reshape(-1, R)
    m.submodules.labels = lab = memory.Memory(
        shape=data.ArrayLayout(range(g.classes), R),
        depth=g.label_depth // R,
        init=[[int(v) for v in w] for w in lab_words],
    )
    v_rd, l_rd = vmem.read_port(), lab.read_port()
    wiring.connect(m, feeder.logits, unit.logits)
    wiring.connect(m, unit.errors, feeder.errors)
    m.d.comb += [
        unit.loss.eq(feeder.loss),
        unit.label.eq(feeder.label),
        unit.count.eq(feeder.count),
        v_rd.addr.eq(feeder.vmem_rd.addr),
        feeder.vmem_rd.data.eq(v_rd.data),
        l_rd.addr.eq(feeder.labels_rd.addr),
        feeder.labels_rd.data.eq(l_rd.data),
    ]
    got, took, held, writes = {}, [], [], []

    async def bench(ctx):
        ctx.set(
            feeder.ctl.op,
            OP_LAYOUT.const(
                {
                    "kind": Kind.LOSS,
                    "m": rows,
                    "n": n,
                    "k": W,
                    "loss": loss,
                    "vr_base": 2,
                    "vr_stride": stride,
                    "dst_base": 100,
                    "dst_stride": W,
                }
            ),
        )
        ctx.set(feeder.ctl.busy, 1)
        ctx.set(feeder.run.go, 1)
        await ctx.tick()
        ctx.set(feeder.run.go, 0)
        stall = [stalls and (c // 12) % 2 == 1 for c in range(1000)]  # 12 cycles stalled, 12 not
        for cycle in range(1, 4 * rows * W + 3 + sum(stall[: 8 * rows * W])):
            ctx.set(feeder.ctl.busy, int(not stall[cycle]))
            held.append(ctx.get(unit.logits.valid) and not ctx.get(unit.logits.ready))
            if ctx.get(feeder.dst.en):
                writes.append(ctx.get(feeder.dst.addr))
                got[writes[-1]] = (ctx.get(feeder.dst.row), list(ctx.get(feeder.dst.data)))
            if ctx.get(feeder.run.done):
                took.append(cycle)
                return
            await ctx.tick()

    _run(m, bench)
    if stalls:
        assert took and sum(held) > 0, "no word was held back"
    else:
        # The timing model (program.loss_write_cycle): the first word 2 cycles after go, a row every W
        # cycles, each word a cycle in the unit's input register, the last row's errors issued
        # 2W + LossUnit.SUM_LATENCY cycles after its last word left it (the tail stage's sum) and out of the
        # divider's pipeline LossUnit.LATENCY cycles after that, for either loss; the unit never holds a
        # word back.
        want = (rows + 2) * W + 1 + LossUnit.INPUT_LATENCY + LossUnit.SUM_LATENCY + LossUnit.LATENCY
        assert took == [want] == [loss_write_cycle(rows - 1, W - 1, W)]
        assert not any(held), "the unit held a word back"
    # Each error word written once, in row order: none lost or written twice when the unit stalls.
    assert writes == [100 + i for i in range(rows * W)]
    want = loss_error(logits, labels, loss.name.lower(), NM)
    for r in range(rows):
        row = [v for w in range(W) for v in got[100 + r * W + w][1]]
        assert row == [int(v) for v in want[r]] + [0] * (W * R - n), r
        assert {got[100 + r * W + w][0] for w in range(W)} == {r}


# -- PostProcessor: an UPDATE, LFSR draws in the golden model's order -----------


@pytest.mark.parametrize(
    "s_w,s_b,momentum,finals,chained",
    [
        (20, 5, 0, None, None),
        (3, -2, 1, None, None),
        (9, 17, 0, None, None),
        # follow: the GEMM writes word column 0 final in cycles 5-8 and column 1 in 30-33
        (9, 17, 1, [5, 6, 7, 8, 30, 31, 32, 33], None),
        (20, 5, 0, [1, 2, 3, 4, 5, 40, 41, 44], None),
        # another GEMM started in cycle 10, chained behind the one it follows
        (9, 17, 1, [5, 6, 7, 8, 30, 31, 32, 33], 10),
        (20, 5, 0, [1, 2, 3, 4, 5, 40, 41, 44], 3),
    ],
)
def test_post_update_matches_the_golden_update(s_w, s_b, momentum, finals, chained):
    """An UPDATE over [dW; db] (rows x 6 columns, 2 words of 4 lanes), walked by word column as the plan
    walks it: masters, biases and momenta, and the LFSR after it, as reference.training's update with
    Lfsr16 drawing in that walk's order (update_draws). With ``finals`` the op follows a GEMM that
    writes word i of the walk final in cycle finals[i] (go in cycle 0), shown on ``frontier`` from
    the cycle after: the unit must read each word after it and finish when program.schedule says
    (each read in the cycle after its word's write, or the cycle after the last read, whichever is
    later). A word held in the result buffer but not yet final reads as a wrong value here: its
    address holds a decoy until its final cycle. With ``chained``, another GEMM is started
    (``gemm_go``) in that cycle: from the next one the GEMM followed shows its frontier on ``older``,
    as GemmPort does, and ``frontier`` is the new GEMM's, here past every word (a unit that went on
    reading by it would read the decoys)."""
    from hdl.training.post import PostProcessor

    g = CoreGeometry(
        rows=4,
        operand_depth=16,
        result_depth=16,
        vmem_depth=16,
        wmem_depth=16,
        bmem_depth=4,
        mmem_depth=16,
        label_depth=8,
        program_depth=4,
        classes=4,
    )
    R, ins, n, lr = g.rows, 3, 6, 3000
    W = -(-n // R)
    rows = ins + 1
    rng = np.random.default_rng(s_w)
    grad = rng.integers(-5000, 5000, (rows, n))
    w = rng.integers(-(1 << 15), 1 << 15, (ins, n))
    b = rng.integers(-(1 << 20), 1 << 20, n)
    mom = rng.integers(-3000, 3000, (rows, n))
    pad = lambda a: np.pad(a, ((0, 0), (0, W * R - n)))
    words = lambda a: [[int(v) for v in row] for row in pad(a).reshape(-1, R)]
    res = np.zeros((W * rows, R), dtype=np.int64)
    for pm in range(rows):
        for pt in range(W):
            res[pt * rows + pm] = pad(grad)[pm, pt * R : (pt + 1) * R]
    final_res = res.copy()
    if finals is not None:
        res = res + 12345  # the decoys: each word's final value is written in its cycle
    m = Module()
    m.submodules.post = post = PostProcessor(g, NM)
    lanes = lambda shape: data.ArrayLayout(shape, R)
    mems = {
        "results": memory.Memory(
            shape=lanes(signed(32)), depth=2 * g.result_depth, init=[[int(v) for v in r] for r in res]
        ),
        "wmem": memory.Memory(shape=lanes(signed(16)), depth=g.wmem_depth, init=words(w)),
        "bmem": memory.Memory(shape=lanes(signed(32)), depth=g.bmem_depth, init=words(b[None, :])),
        "mmem": memory.Memory(shape=lanes(signed(32)), depth=g.mmem_depth, init=words(mom)),
        "vmem": memory.Memory(shape=lanes(signed(8)), depth=g.vmem_depth, init=[]),
    }
    for name, mem in mems.items():
        m.submodules[name] = mem
        rd = mem.read_port()
        port = post.results if name == "results" else getattr(post, f"{name}_rd")
        m.d.comb += [rd.addr.eq(port.addr), port.data.eq(rd.data)]
        if name != "results":
            wr, src = mem.write_port(), getattr(post, f"{name}_wr")
            m.d.comb += [wr.en.eq(src.en), wr.addr.eq(src.addr), wr.data.eq(src.data)]
    gemm_write = mems["results"].write_port()  # the GEMM's final writes, from the bench
    out = {}
    last = rows * W + 3 + POST_STAGES + (max(finals) if finals else 0)

    def drive_gemm(ctx, cycle):
        """The GEMM's side in ``cycle``: a final write, and the frontier its earlier ones give."""
        if finals is None:
            return
        true, everything = sum(f < cycle for f in finals), 2 * g.result_depth
        ctx.set(post.gemm_go, cycle == chained)
        before = chained is None or cycle <= chained
        ctx.set(post.frontier, true if before else everything)
        ctx.set(post.older, everything if before else true)
        i = finals.index(cycle) if cycle in finals else None
        ctx.set(gemm_write.en, i is not None)
        if i is not None:
            ctx.set(gemm_write.addr, i)
            ctx.set(gemm_write.data, [int(v) for v in final_res[i]])

    async def bench(ctx):
        ctx.set(
            post.ctl.post_op,
            OP_LAYOUT.const(
                {
                    "kind": Kind.UPDATE,
                    "m": rows,
                    "k": W,
                    "n": n,
                    "shift0": s_w,
                    "shift1": s_b,
                    "momentum": momentum,
                    "by_column": 1,
                    "follow": finals is not None,
                }
            ),
        )
        ctx.set(post.ctl.busy, 1)
        ctx.set(post.ctl.lr, lr)
        ctx.set(post.run.go, 1)
        drive_gemm(ctx, 0)
        await ctx.tick()
        ctx.set(post.run.go, 0)
        for cycle in range(1, last):
            drive_gemm(ctx, cycle)
            await ctx.tick()
            if ctx.get(post.run.done):
                out["cycles"] = cycle + 1  # go's cycle included: rows x words + 2 + POST_STAGES without finals
                break
        read = lambda name, count: np.array([list(ctx.get(mems[name].data[i])) for i in range(count)])
        out.update(w=read("wmem", ins * W), b=read("bmem", W), mom=read("mmem", rows * W), lfsr=ctx.get(post.lfsr))

    _run(m, bench)

    read = 0  # the cycle of the last read: one a cycle from go + 1, each after its word's final write
    for final in finals or [-1] * (rows * W):
        read = max(read + 1, final + 1)
    assert out["cycles"] == read + 2 + POST_STAGES
    lfsr = Lfsr16()
    if momentum:
        mom_new = mom + ((grad - mom) >> NM.momentum_shift)
        grad = mom_new
        assert np.array_equal(out["mom"].reshape(rows, -1)[:, :n], mom_new)
    r_w, r_b = update_draws(ins, n, s_w, s_b, lfsr, R)
    w_new = sat(w - stochastic_round_with(grad[:-1] * lr, s_w, r_w), 16)
    b_new = sat(b - stochastic_round_with(grad[-1] * lr, s_b, r_b), 32)
    assert np.array_equal(out["w"].reshape(ins, -1)[:, :n], w_new)
    assert np.array_equal(out["b"].reshape(-1)[:n], b_new)
    assert out["lfsr"] == lfsr.state


def test_operand_writer_rotates_and_picks_its_source():
    """Lane e of row r goes to bank (r + e) mod R, to the source's ``to``; the loss feeder's word in a
    cycle it writes one (a post-op's word beside it, with no operand words to write, is dropped), the
    post-processor's otherwise."""
    from hdl.training.operand_writer import OperandWriter
    from hdl.training.program import Dst

    g = CoreGeometry()
    R = g.rows
    wr = OperandWriter(g)
    word = list(range(1, R + 1))

    async def bench(ctx):
        for kind, dst in ((Kind.FWD, Dst.A), (Kind.LOSS, Dst.BOTH), (Kind.UPDATE, Dst.B), (Kind.FWD, Dst.NONE)):
            src, other = (wr.loss, wr.post) if kind == Kind.LOSS else (wr.post, wr.loss)
            ctx.set(src.to, dst)
            ctx.set(other.to, Dst.A if dst != Dst.A else Dst.B)
            ctx.set(other.addr, 7)
            for row in range(R + 1):
                ctx.set(src.en, 1)
                ctx.set(other.en, kind == Kind.LOSS and row % 2)  # a FWD beside the LOSS
                ctx.set(src.addr, 40 + row)
                ctx.set(src.row, row)
                ctx.set(src.data, word)
                assert ctx.get(wr.write.en) == (dst != Dst.NONE)
                assert (ctx.get(wr.write.sel), ctx.get(wr.write.both)) == (dst == Dst.B, dst == Dst.BOTH)
                assert ctx.get(wr.write.addr) == 40 + row
                assert list(ctx.get(wr.write.data)) == [word[(b - row) % R] for b in range(R)]

    sim = Simulator(wr)
    sim.add_testbench(bench)
    sim.run()


# -- GemmPort -----------------------------------------------------------------


def test_gemm_port_frontiers_follow_the_final_writes():
    """GemmPort's ``frontier`` and ``older`` every cycle, against reference.gemm's model of two chained
    GEMMs (chain_launches, final_writes): the second GEMM's ``go`` comes in a cycle where the first
    writes a word final, so ``older`` must count that write from the next cycle (GemmPort's
    ``Mux(finished, written, frontier)`` at go). Each frontier is its GEMM's base plus the words written
    final in earlier cycles (0 before the first); ``older`` is past the whole result space when no GEMM
    is queued, and ``frontier`` when the engine is idle."""
    from hdl.training.gemm_port import GemmPort
    from hdl.training.program import Mode
    from reference.gemm import chain_launches, chain_ready, final_writes

    g = CoreGeometry(rows=2, operand_depth=32, result_depth=32, label_depth=8, program_depth=4, classes=4)
    R, everything = g.rows, 2 * g.result_depth
    (M0, K0, N0, base0), (M1, K1, N1, base1) = (3, 3, 4, 5), (2, 2, 2, 40)
    first = chain_launches(R, R, [(M0, K0, N0, 0)])
    writes0 = final_writes(R, R, M0, K0, N0, first[0][1])
    # A cycle the first GEMM writes a word final, with some of its writes before it and some after.
    ready = [w for w in writes0 if w >= chain_ready(first)]
    go1 = ready[len(ready) // 2]
    assert writes0[0] < go1 < writes0[-1], (writes0, go1)
    (_, launches0, last0), (take1, launches1, last1) = chain_launches(R, R, [(M0, K0, N0, 0), (M1, K1, N1, go1)])
    assert take1 == go1, "the model takes the second GEMM later than its go: pick another cycle"
    writes1 = final_writes(R, R, M1, K1, N1, launches1)

    def front(base, writes, c):
        done = sum(w < c for w in writes)
        return base + done if done else 0

    def op(M, K, N, base):
        return OP_LAYOUT.const(
            {"kind": Kind.GEMM, "mode": Mode.NN, "m": M, "k": K, "n": N, "a_stride": -(-K // R)}
            | {"b_stride": -(-N // R), "b_base": 16, "r_base": base}
        )

    port = GemmPort(g)
    seen = []

    async def bench(ctx):
        for c in range(last1 + 3):  # cycle c: inputs set, outputs read before the edge
            if c in (0, go1):
                M, K, N, base = (M0, K0, N0, base0) if c == 0 else (M1, K1, N1, base1)
                ctx.set(port.ctl.op, op(M, K, N, base))
            ctx.set(port.run.go, c in (0, go1))
            seen.append((c, ctx.get(port.frontier), ctx.get(port.older)))
            await ctx.tick()

    _run(port, bench)
    for c, frontier, older in seen:
        if 0 < c <= go1:
            assert frontier == front(base0, writes0, c), (c, "frontier, first GEMM")
        elif go1 < c <= last1:
            assert frontier == front(base1, writes1, c), (c, "frontier, second GEMM")
        if go1 < c <= last0:
            assert older == front(base0, writes0, c), (c, "older")
        elif c <= go1 or c > last0 + 1:
            assert older == everything, (c, "older with no GEMM queued")
        if c > last1 + 1:
            assert frontier == everything, (c, "frontier, engine idle")
    assert writes0[-1] == last0 > go1, "the first GEMM's last write is not after the second's go"
