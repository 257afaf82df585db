"""The GEMM CFU in amaranth.sim: GemmCfuCore, CombinedCfuCore and GemmCfu against the golden model.

Every response is compared, bit for bit, with :class:`reference.cfu_gemm.CombinedCfuModel`
(or :class:`~reference.cfu_gemm.GemmCfuModel`), stepped with the cycle in which the
RTL accepted each op, so that START's refusals, WAIT's answer, the READs' holds and
the counters are checked as well as the data. The streams are GEMM programs (operands
written with WRITE_A/B, per-channel parameters, START, results read back as int32 and
through the output stage while the next GEMM computes) with odd shapes, MAC4-family
ops mixed in, undefined and bad ops, random gaps, back-pressure and resets mid-GEMM.
The rest pins the timing: latencies, one WRITE a cycle, WAIT's and the held READs'
answer cycles.
"""

import random

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Module, ResetSignal
from amaranth.sim import Simulator

from hdl.cfu import GemmCfu
from hdl.cfu.gemm_cfu import CombinedCfuCore, GemmCfuCore
from reference import cfu_gemm_isa, cfu_isa
from reference.cfu_gemm import CombinedCfuModel, GemmCfuModel
from reference.cfu_gemm_isa import GOP, GSET, Counter, GemmCfuGeometry, GemmOp, GemmReg
from reference.cfu_isa import Funct3, Reg, function_id, split_function_id
from reference.gemm import MODES, gemm_cycles, stored_shapes
from reference.gemm_layout import result_words
from sim.cfu.stimulus import random_commands

M32 = 0xFFFFFFFF
SMALL = GemmCfuGeometry(cols=4, operand_depth=64, result_depth=32, channels=8)
FOUR_CHANNELS = GemmCfuGeometry(cols=8, operand_depth=32, result_depth=32, channels=4)


def gset(reg, value):
    return (function_id(GSET, int(reg)), int(value) & M32, 0)


def gop(o, in0=0, in1=0):
    return (function_id(GOP, int(o)), int(in0) & M32, int(in1) & M32)


RESET = "reset"


# -- the bench -----------------------------------------------------------------
class _Top(Elaboratable):
    """The DUT in a sync domain whose reset the bench drives; GemmCfu's clk and reset from it."""

    def __init__(self, dut):
        self.dut, self.cd = dut, ClockDomain("sync")

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = self.cd
        m.submodules.dut = self.dut
        if isinstance(self.dut, GemmCfu):
            m.d.comb += [self.dut.clk.eq(ClockSignal()), self.dut.reset.eq(ResetSignal())]
        return m


class _Ports:
    """The command/response signals of a stream core or of GemmCfu's flat ports."""

    def __init__(self, dut):
        if isinstance(dut, GemmCfu):
            self.cmd_valid, self.cmd_ready = dut.cmd_valid, dut.cmd_ready
            self.rsp_valid, self.rsp_ready, self.out = dut.rsp_valid, dut.rsp_ready, dut.rsp_payload_outputs_0
            self._fid, self._in0, self._in1 = (
                dut.cmd_payload_function_id,
                dut.cmd_payload_inputs_0,
                dut.cmd_payload_inputs_1,
            )
        else:
            self.cmd_valid, self.cmd_ready = dut.cmd.valid, dut.cmd.ready
            self.rsp_valid, self.rsp_ready, self.out = dut.rsp.valid, dut.rsp.ready, dut.rsp.payload.outputs_0
            self._payload = dut.cmd.payload
            self._fid = None

    def set_command(self, ctx, fid, in0, in1):
        if self._fid is not None:
            ctx.set(self._fid, fid)
            ctx.set(self._in0, in0)
            ctx.set(self._in1, in1)
        else:
            funct3, funct7 = split_function_id(fid)
            ctx.set(
                self._payload,
                {"function_id": {"funct3": funct3, "funct7": funct7}, "inputs_0": in0, "inputs_1": in1},
            )


def run(dut, items, gap=0.0, backpressure=0.0, seed=0, budget=None):
    """Stream ``items`` (commands ``(fid, in0, in1)``, or ``(RESET, cycles)``) through ``dut``.

    Returns ``(events, responses)``: ``events`` in time order, ``("cmd", command, cycle)`` for
    each accepted command and ``(RESET, cycle)`` for each reset's first cycle; ``responses``,
    ``(value, cycle, resets_before)``. Checks the stream rules every cycle."""
    top, ports = _Top(dut), _Ports(dut)
    events, responses = [], []
    budget = budget or 200 + 40 * len(items)

    async def bench(ctx):
        rng = random.Random(seed)
        pending, current, waiting, cycle, resets = list(reversed(items)), None, None, 0, 0
        while pending or current is not None:
            if current is None and pending and rng.random() >= gap:
                current = pending.pop()
                if current[0] == RESET:
                    events.append((RESET, cycle))
                    resets += 1
                    ctx.set(ports.cmd_valid, 0)
                    ctx.set(top.cd.rst, 1)
                    for _ in range(current[1]):
                        assert not ctx.get(ports.cmd_ready) and not ctx.get(ports.rsp_valid), "handshake in reset"
                        await ctx.tick()
                        cycle += 1
                    ctx.set(top.cd.rst, 0)
                    current, waiting = None, None
                    continue
                ports.set_command(ctx, *current)
            ctx.set(ports.cmd_valid, current is not None)
            ready = rng.random() >= backpressure
            ctx.set(ports.rsp_ready, ready)
            c_ready, r_valid = ctx.get(ports.cmd_ready), ctx.get(ports.rsp_valid)
            value = ctx.get(ports.out) if r_valid else None
            assert waiting is None or value == waiting, f"cycle {cycle}: a waiting response changed or went"
            assert not (r_valid and not ready and c_ready), f"cycle {cycle}: cmd.ready while a response waits"
            if current is not None and c_ready:
                events.append(("cmd", current, cycle))
                current = None
            if r_valid and ready:
                responses.append((value, cycle, resets))
            waiting = value if r_valid and not ready else None
            await ctx.tick()
            cycle += 1
            assert cycle < budget, "the unit hung"
        # Drain: the ops taken since the last reset all answer.
        ctx.set(ports.cmd_valid, 0)
        epoch_ops = sum(1 for e in events[_last_reset(events) :] if e[0] == "cmd")
        while sum(1 for r in responses if r[2] == resets) < epoch_ops:
            ready = rng.random() >= backpressure
            ctx.set(ports.rsp_ready, ready)
            if ctx.get(ports.rsp_valid) and ready:
                responses.append((ctx.get(ports.out), cycle, resets))
            await ctx.tick()
            cycle += 1
            assert cycle < budget, "the unit hung"

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return events, responses


def _last_reset(events):
    idx = [i for i, e in enumerate(events) if e[0] == RESET]
    return idx[-1] + 1 if idx else 0


def expected_responses(model, events):
    """Step ``model`` through ``events``; per epoch (between resets), the expected answers in order."""
    epochs = [[]]
    for e in events:
        if e[0] == RESET:
            model.reset(cycle=e[1])
            epochs.append([])
        else:
            _, (fid, in0, in1), cycle = e
            epochs[-1].append(((fid, in0, in1), cycle, model.step(fid, in0, in1, cycle=cycle)))
    return epochs


def check(model, events, responses):
    """Every response equals the model's, in order; only ops in flight at a reset go unanswered."""
    epochs = expected_responses(model, events)
    got = [[] for _ in epochs]
    for value, cycle, epoch in responses:
        got[epoch].append((value, cycle))
    compared = 0
    for e, (want, have) in enumerate(zip(epochs, got)):
        assert len(have) <= len(want), f"epoch {e}: more responses than commands"
        if e == len(epochs) - 1:
            assert len(have) == len(want), f"{len(want) - len(have)} ops never answered"
        else:
            assert len(want) - len(have) <= 4, f"epoch {e}: {len(want) - len(have)} ops lost at a reset"
        for i, ((command, accepted, expected), (value, answered)) in enumerate(zip(want, have)):
            if expected is None:
                continue  # a result a reset left undefined
            fid, in0, in1 = command
            assert value == expected, (
                f"epoch {e} op #{i} funct3/7={split_function_id(fid)} in0=0x{in0:08x} in1=0x{in1:08x} "
                f"accepted {accepted}, answered {answered}: expected 0x{expected:08x}, got 0x{value:08x}"
            )
            compared += 1
    return compared


# -- stimulus ------------------------------------------------------------------
def _i8(rng, shape):
    """int8 values, an extreme (-128, 127) one time in four."""
    v = rng.integers(-128, 128, shape)
    return np.where(rng.random(shape) < 0.25, rng.choice([-128, 127], shape), v)


def write_matrix(cmds, which, mat, base, stride, start_row=0, between=None):
    """WRITE_A/WRITE_B the rows of ``mat`` from word ``base``, ``stride`` words a row (padding zero);
    ``between()`` after each WRITE may add other ops."""
    a = which == "a"
    R = GemmReg
    op = GemmOp.WRITE_A if a else GemmOp.WRITE_B
    cmds += [
        gset(R.A_WADDR if a else R.B_WADDR, base),
        gset(R.A_WROW if a else R.B_WROW, start_row),
        gset(R.A_STRIDE if a else R.B_STRIDE, stride),
    ]
    rows, cols = mat.shape
    for r in range(rows):
        row = [int(v) for v in mat[r]] + [0] * (8 * stride - cols)
        for q in range(stride):
            w = sum((v & 0xFF) << (8 * i) for i, v in enumerate(row[8 * q : 8 * q + 8]))
            cmds.append(gop(op, w & M32, w >> 32))
            if between:
                between()


def mac_commands(n, seed):
    """MAC4-family commands (funct3 0-5) from the MAC CFU's own constrained-random stream."""
    return [c for c in random_commands(n, seed=seed) if split_function_id(c[0])[0] < GSET]


def junk(rng, g):
    """An undefined or bad GEMM op: each answers 0 (or its defined value) and changes nothing it must not."""
    kind = int(rng.integers(7))
    if kind == 0:
        return gop(int(rng.integers(len(GemmOp), 128)), int(rng.integers(M32)), int(rng.integers(M32)))
    if kind == 1:
        return gset(int(rng.choice([GemmReg.INFO, GemmReg.B_ROWSUM, int(rng.integers(len(GemmReg), 128))])), 77)
    if kind == 2:
        return gop(GemmOp.GGET, int(rng.choice([int(rng.integers(len(GemmReg))), int(rng.integers(M32))])))
    if kind == 3:
        o = int(rng.choice([GemmOp.CH_BIAS, GemmOp.CH_MULT, GemmOp.CH_SHIFT]))
        return gop(o, int(rng.integers(M32)), int(rng.choice([g.channels, g.channels + 5, M32])))
    if kind == 4:
        return gop(GemmOp.COUNTER, int(rng.choice([int(rng.integers(len(Counter) + 3)), M32])))
    if kind == 5:
        return gop(GemmOp.STATUS)
    return gset(int(rng.choice([GemmReg.OUT_OFFSET, GemmReg.ACT_MIN, GemmReg.ACT_MAX])), int(rng.integers(M32)))


SHAPES = [1, 2, 3, 4, 5, 7, 8, 9, 11, 13, 16, 17]


def _shape(rng, g):
    """(M, K, N, mode) whose operands fit half an operand buffer and whose result fits half the result buffer."""
    while True:
        M, K, N = (int(rng.choice(SHAPES)) for _ in range(3))
        mode = MODES[int(rng.integers(3))]
        (ar, ac), (br, bc) = stored_shapes(M, K, N, mode)
        if max(ar * -(-ac // 8), br * -(-bc // 8)) <= g.operand_depth // 2 and result_words(M, N, g.cols) <= (
            g.result_depth
        ):
            return M, K, N, mode


def gemm_program(g, n_gemms, seed, mac_rate=0.08, junk_rate=0.04, reset_at=None):
    """A firmware-like stream: each GEMM's per-channel parameters and operands are written into one
    half while the previous GEMM computes on the other; WAIT; START (sometimes a second START while
    busy); the previous GEMM's results read back (READ32 or READ8) while this one computes, and
    sometimes this GEMM's own (held until it ends); counters. MAC4-family and bad ops mixed in.
    ``reset_at``: GEMM indices after whose START a short reset comes."""
    rng = np.random.default_rng(seed)
    macs = iter(mac_commands(4000, seed))
    R = GemmReg
    cmds, prev = [], None

    def sprinkle():
        while rng.random() < mac_rate:
            cmds.append(next(macs))
        if rng.random() < junk_rate:
            cmds.append(junk(rng, g))

    def read_back(info, rows=None, read8=None, setup=True):
        """Read a GEMM's results; ``setup=False``: with the read pointer and output stage as they are."""
        M, N, c_base, ch_base = info["M"], info["N"], info["c_base"], info["ch_base"]
        read8 = bool(rng.random() < 0.6) if read8 is None else read8
        if setup:
            cmds.extend([gset(R.R_BASE, c_base), gset(R.R_M, M), gset(R.R_N, N), gset(R.R_ROW, 0), gset(R.R_COL, 0)])
        if read8 and setup:
            lo = int(rng.choice([-128, -100, 0, int(rng.integers(-(1 << 31), 1 << 31))]))
            hi = int(rng.choice([127, 100, 5, int(rng.integers(-(1 << 31), 1 << 31))]))
            out_off = int(rng.integers(-128, 128)) if rng.random() < 0.8 else int(rng.integers(M32))
            cmds.extend(
                [gset(R.OUT_OFFSET, out_off), gset(R.ACT_MIN, lo), gset(R.ACT_MAX, hi), gset(R.CH_BASE, ch_base)]
            )
        per_row = -(-N // 4) if read8 else N
        for _ in range(M if rows is None else rows):
            for _ in range(per_row):
                cmds.append(gop(GemmOp.READ8 if read8 else GemmOp.READ32))
                sprinkle()

    for i in range(n_gemms):
        half = i % 2
        M, K, N, mode = _shape(rng, g)
        (ar, ac), (br, bc) = stored_shapes(M, K, N, mode)
        a, b = _i8(rng, (ar, ac)), _i8(rng, (br, bc))
        a_stride = -(-ac // 8) + int(rng.random() < 0.2)
        b_stride = -(-bc // 8) + int(rng.random() < 0.2)
        room = g.operand_depth
        a_base = half * room + int(rng.integers(0, room - ar * a_stride + 1))
        b_base = half * room + int(rng.integers(0, room - br * b_stride + 1))
        c_room = g.result_depth
        c_base = half * c_room + int(rng.integers(0, c_room - result_words(M, N, g.cols) + 1))
        ch_base = int(rng.integers(g.channels))
        # Per-channel parameters of this GEMM's N channels (entries wrap at g.channels).
        for n in range(min(N, g.channels)):
            ch = (ch_base + n) % g.channels
            bias = int(rng.choice([int(rng.integers(-(1 << 16), 1 << 16)), int(rng.integers(-(1 << 31), 1 << 31))]))
            mult = int(rng.integers(1 << 30, 1 << 31)) if rng.random() < 0.8 else int(rng.integers(M32))
            shift = int(rng.integers(-12, 3)) if rng.random() < 0.8 else int(rng.integers(-40, 40))
            cmds.extend([gop(GemmOp.CH_BIAS, bias, ch), gop(GemmOp.CH_MULT, mult, ch), gop(GemmOp.CH_SHIFT, shift, ch)])
            sprinkle()
        write_matrix(cmds, "a", a, a_base, a_stride, between=sprinkle)
        write_matrix(cmds, "b", b, b_base, b_stride, between=sprinkle)
        if rng.random() < 0.5:
            cmds.append(gop(GemmOp.GGET, R.B_ROWSUM))
        cmds.append(gop(GemmOp.WAIT))  # the previous GEMM, on the other half, must end first
        cmds.extend(
            [
                gset(R.M, M),
                gset(R.K, K),
                gset(R.N, N),
                gset(R.MODE, MODES.index(mode)),
                gset(R.A_BASE, a_base),
                gset(R.B_BASE, b_base),
                gset(R.C_BASE, c_base),
                gop(GemmOp.START),
            ]
        )
        if rng.random() < 0.3:
            cmds.append(gop(GemmOp.START))  # refused while busy (or, after a gap, a harmless re-run)
        cmds.append(gop(GemmOp.STATUS))
        if reset_at and i in reset_at:
            cmds.append((RESET, int(rng.integers(1, 4))))
            prev = None  # its results are undefined (the model answers None for them)
            continue
        sprinkle()
        this = {"M": M, "N": N, "c_base": c_base, "ch_base": ch_base}
        pick = rng.random()
        if pick < 0.3:
            read_back(this, rows=1, setup=False)  # START set the read pointer: held until the GEMM ends
        elif pick < 0.45:
            cmds.append(gop(GemmOp.WAIT))  # held until it ends
        if prev is not None:
            read_back(prev)
        if rng.random() < 0.3:
            cmds.extend(gop(GemmOp.COUNTER, c) for c in Counter)
            if rng.random() < 0.5:
                cmds.append(gop(GemmOp.CLEAR))
        prev = this
    cmds.append(gop(GemmOp.WAIT))
    if prev is not None:
        read_back(prev)
    cmds.extend(gop(GemmOp.COUNTER, c) for c in Counter)
    return cmds


# -- random programs against the golden model ----------------------------------
def _accepts(events):
    return [e for e in events if e[0] == "cmd"]


@pytest.mark.parametrize(
    "g, gap, backpressure, seed",
    [(SMALL, 0.0, 0.0, 1), (SMALL, 0.3, 0.3, 2), (SMALL, 0.0, 0.6, 3), (FOUR_CHANNELS, 0.1, 0.1, 10)],
)
def test_gemm_core_programs_match_the_model(g, gap, backpressure, seed):
    cmds = gemm_program(g, 6, seed=seed, mac_rate=0.0)
    events, responses = run(GemmCfuCore(g), cmds, gap=gap, backpressure=backpressure, seed=seed)
    assert [e[1] for e in _accepts(events)] == cmds
    assert check(GemmCfuModel(g), events, responses) == len(cmds)


@pytest.mark.parametrize("gap, backpressure, seed", [(0.0, 0.0, 4), (0.2, 0.4, 5)])
def test_combined_core_programs_with_mac_ops_match_the_model(gap, backpressure, seed):
    cmds = gemm_program(SMALL, 6, seed=seed, mac_rate=0.25)
    assert sum(split_function_id(c[0])[0] < GSET for c in cmds) > 60
    events, responses = run(CombinedCfuCore(SMALL), cmds, gap=gap, backpressure=backpressure, seed=seed)
    assert check(CombinedCfuModel(SMALL), events, responses) == len(cmds)


def test_gemm_cfu_ports_default_geometry_with_resets_mid_gemm():
    g = cfu_gemm_isa.DEFAULT_GEOMETRY
    cmds = gemm_program(g, 7, seed=6, mac_rate=0.1, reset_at={1, 4})
    events, responses = run(GemmCfu(g), cmds, gap=0.1, backpressure=0.2, seed=6)
    assert sum(1 for e in events if e[0] == RESET) == 2
    check(CombinedCfuModel(g), events, responses)


def test_the_programs_reach_the_corners():
    """The streams above do what they claim: GEMMs start and are refused, READs and WAITs hold,
    READ8 lanes past N read 0, counters count, bad ops appear."""
    g = SMALL
    cmds = gemm_program(g, 8, seed=2, mac_rate=0.0)
    events, responses = run(GemmCfuCore(g), cmds, gap=0.3, backpressure=0.3, seed=2)
    model = GemmCfuModel(g)
    starts, holds, refused = 0, 0, 0
    for _, (fid, in0, in1), cycle in _accepts(events):
        waits = len(model.waits)
        value = model.step(fid, in0, in1, cycle=cycle)
        holds += len(model.waits) > waits
        if (fid, in0, in1) == gop(GemmOp.START):
            starts += value == 1
            refused += value == 0
    assert starts >= 6 and refused >= 1 and holds >= 3
    assert model.regs[GemmReg.M] and model._counter(Counter.BUSY, events[-1][2] + 1) > 0


def test_a_one_bit_error_fails():
    cmds = gemm_program(SMALL, 2, seed=7, mac_rate=0.0)
    events, responses = run(GemmCfuCore(SMALL), cmds)
    check(GemmCfuModel(SMALL), events, responses)
    reads = [i for i, e in enumerate(_accepts(events)) if e[1][0] in (gop(GemmOp.READ8)[0], gop(GemmOp.READ32)[0])]
    for i in reads[:: max(1, len(reads) // 8)]:
        for bit in (0, 7, 31):
            bad = list(responses)
            value, cycle, epoch = bad[i]
            bad[i] = (value ^ (1 << bit), cycle, epoch)
            with pytest.raises(AssertionError):
                check(GemmCfuModel(SMALL), events, bad)


# -- timing --------------------------------------------------------------------
def _latency(dut, cmds):
    """Accept-to-response cycles of each command, streamed back to back with rsp_ready high."""
    events, responses = run(dut, cmds)
    accepted = [e[2] for e in _accepts(events)]
    return [r[1] - a for r, a in zip(responses, accepted)], events, responses


FAST_GEMM_OPS = [
    gset(GemmReg.M, 3),
    gop(GemmOp.WRITE_A, 1, 2),
    gop(GemmOp.WRITE_B, 1, 2),
    gop(GemmOp.STATUS),
    gop(GemmOp.CH_BIAS, 5, 1),
    gop(GemmOp.CH_MULT, 5, 1),
    gop(GemmOp.CH_SHIFT, 5, 1),
    gop(GemmOp.COUNTER, Counter.TRANSFERS),
    gop(GemmOp.CLEAR),
    gop(GemmOp.GGET, GemmReg.INFO),
    gop(GemmOp.WAIT),  # nothing started: at once, answering 0
    gop(99),
    gset(GemmReg.INFO, 1),
]


def test_latencies_are_the_specs():
    assert (GemmCfu.GEMM_FAST_LATENCY, GemmCfu.READ32_LATENCY, GemmCfu.READ8_LATENCY) == (
        cfu_gemm_isa.GEMM_FAST_LATENCY,
        cfu_gemm_isa.READ32_LATENCY,
        cfu_gemm_isa.READ8_LATENCY,
    )
    assert (GemmCfu.FAST_LATENCY, GemmCfu.SLOW_LATENCY) == (cfu_isa.FAST_LATENCY, cfu_isa.SLOW_LATENCY)
    assert GemmCfu.START_LATENCY == cfu_gemm_isa.START_LATENCY
    # The ISA document's figures (docs/cfu_gemm.md), for the pipeline cut for 100 MHz.
    isa = cfu_gemm_isa
    assert (isa.GEMM_FAST_LATENCY, isa.WAIT_IDLE_LATENCY, isa.START_LATENCY) == (1, 1, 4)
    assert (isa.READ_ISSUE, isa.READ32_LATENCY, isa.READ8_LATENCY) == (2, 5, 12)
    for dut in (GemmCfuCore(SMALL), CombinedCfuCore(SMALL)):
        latencies, events, responses = _latency(dut, FAST_GEMM_OPS)
        assert latencies == [cfu_gemm_isa.GEMM_FAST_LATENCY] * len(FAST_GEMM_OPS)
        cycles = [e[2] for e in _accepts(events)]
        assert cycles == list(range(cycles[0], cycles[0] + len(cycles)))  # one a cycle
        assert check(GemmCfuModel(SMALL), events, responses) == len(FAST_GEMM_OPS)
        assert responses[-3][0] == 0  # WAIT with nothing started
        slow = [gop(GemmOp.START), gop(GemmOp.READ32), gop(GemmOp.READ8), gop(GemmOp.READ32), gop(GemmOp.START)]
        latencies, events, responses = _latency(dut, slow)  # START refused: K and N are 0
        assert latencies == [isa.START_LATENCY, isa.READ32_LATENCY, isa.READ8_LATENCY, isa.READ32_LATENCY] + [
            isa.START_LATENCY
        ]
        assert check(GemmCfuModel(SMALL), events, responses) == len(slow)
        cycles = [e[2] for e in _accepts(events)]
        assert [b - a for a, b in zip(cycles, cycles[1:])] == latencies[:-1]  # each taken as the last answers


def test_write_bursts_one_per_cycle():
    rng = np.random.default_rng(8)
    cmds = [gset(GemmReg.A_STRIDE, 3), gset(GemmReg.B_STRIDE, 2)]
    cmds += [gop(int(rng.integers(2)), int(rng.integers(M32)), int(rng.integers(M32))) for _ in range(96)]
    cmds += [gop(GemmOp.GGET, GemmReg.B_ROWSUM), gop(GemmOp.GGET, GemmReg.A_WROW), gop(GemmOp.COUNTER, 3)]
    for dut in (GemmCfuCore(SMALL), GemmCfu(SMALL)):
        latencies, events, responses = _latency(dut, cmds)
        cycles = [e[2] for e in _accepts(events)]
        assert cycles == list(range(cycles[0], cycles[0] + len(cmds)))
        assert set(latencies) == {1}
        assert check(CombinedCfuModel(SMALL), events, responses) == len(cmds)


def _small_gemm(M=5, K=9, N=6, mode="nn", seed=0, c_base=0):
    rng = np.random.default_rng(seed)
    (ar, ac), (br, bc) = stored_shapes(M, K, N, mode)
    cmds = []
    write_matrix(cmds, "a", _i8(rng, (ar, ac)), 0, -(-ac // 8))
    write_matrix(cmds, "b", _i8(rng, (br, bc)), 0, -(-bc // 8))
    cmds += [gset(GemmReg.M, M), gset(GemmReg.K, K), gset(GemmReg.N, N), gset(GemmReg.MODE, MODES.index(mode))]
    cmds += [gset(GemmReg.C_BASE, c_base)]
    return cmds


def test_wait_and_held_reads_answer_when_the_engine_ends():
    M, K, N = 5, 9, 6
    T = gemm_cycles(8, SMALL.cols, M, K, N)
    cases = [
        (gop(GemmOp.WAIT), cfu_gemm_isa.WAIT_IDLE_LATENCY - 1),  # in cycle t + T + 1
        # reads in t + T + 1, then answers its latency less the address cycles
        (gop(GemmOp.READ32), cfu_gemm_isa.READ32_LATENCY - cfu_gemm_isa.READ_ISSUE),
        (gop(GemmOp.READ8), cfu_gemm_isa.READ8_LATENCY - cfu_gemm_isa.READ_ISSUE),
    ]
    for held, after in cases:
        cmds = _small_gemm(M, K, N) + [gop(GemmOp.START), held, gop(GemmOp.STATUS)]
        events, responses = run(GemmCfuCore(SMALL), cmds)
        check(GemmCfuModel(SMALL), events, responses)
        t = _accepts(events)[-3][2]
        assert responses[-2][1] == t + T + 1 + after, held
        assert responses[-1][0] == 0  # STATUS after: idle
    # A READ of the other result half does not wait.
    cmds = _small_gemm(M, K, N) + [gop(GemmOp.START), gset(GemmReg.R_BASE, SMALL.result_depth), gop(GemmOp.READ32)]
    events, responses = run(GemmCfuCore(SMALL), cmds)
    check(GemmCfuModel(SMALL), events, responses)
    assert responses[-1][1] - _accepts(events)[-1][2] == cfu_gemm_isa.READ32_LATENCY


def test_start_while_busy_answers_0_and_changes_nothing():
    cmds = _small_gemm() + [gop(GemmOp.START), gset(GemmReg.N, 3), gop(GemmOp.START), gop(GemmOp.STATUS)]
    cmds += [gop(GemmOp.GGET, GemmReg.R_N), gop(GemmOp.WAIT), gop(GemmOp.START), gop(GemmOp.GGET, GemmReg.R_N)]
    events, responses = run(GemmCfuCore(SMALL), cmds)
    check(GemmCfuModel(SMALL), events, responses)
    values = [r[0] for r in responses[-8:]]
    T = gemm_cycles(8, SMALL.cols, 5, 9, 6)
    assert values == [1, 3, 0, 1, 6, T, 1, 3]


def test_reset_mid_gemm_stops_the_engine_and_keeps_the_buffers():
    cmds = _small_gemm() + [gop(GemmOp.START), gop(GemmOp.STATUS), (RESET, 2), gop(GemmOp.STATUS)]
    cmds += [gop(GemmOp.WAIT), gop(GemmOp.COUNTER, Counter.BUSY), gop(GemmOp.GGET, GemmReg.M)]
    cmds += [gop(GemmOp.READ32)] * 4  # undefined: the model answers None
    # Registers are back at reset values; the operands are still there: run it again.
    cmds += [gset(GemmReg.M, 5), gset(GemmReg.K, 9), gset(GemmReg.N, 6), gset(GemmReg.A_STRIDE, 2)]
    cmds += [gset(GemmReg.B_STRIDE, 1), gop(GemmOp.START), gop(GemmOp.WAIT)] + [gop(GemmOp.READ32)] * 30
    events, responses = run(CombinedCfuCore(SMALL), cmds)
    # All compared but the reset item, the STATUS the reset cut off and the 4 undefined READs.
    assert check(CombinedCfuModel(SMALL), events, responses) == len(cmds) - 1 - 1 - 4
    after = [r for r in responses if r[2] == 1]
    assert [r[0] for r in after[:4]] == [0, 0, 0, 0]  # STATUS, WAIT, BUSY, M after the reset
    assert any(r[0] for r in after[-30:])


def test_combined_keeps_the_mac_timing_and_interleaves_in_order():
    from hdl.cfu.core import CfuCore

    macs = mac_commands(200, seed=9)
    ev_mac, rs_mac = run(CfuCore(), macs, gap=0.2, backpressure=0.2, seed=9)
    ev_comb, rs_comb = run(CombinedCfuCore(SMALL), macs, gap=0.2, backpressure=0.2, seed=9)
    assert ev_comb == ev_mac and rs_comb == rs_mac  # same cycles, same values
    # GEMM and MAC ops back to back: a fast op of either side right behind the other's.
    mixed = [
        gop(GemmOp.STATUS),
        (function_id(Funct3.SET, Reg.ACC), 5, 0),
        gop(GemmOp.GGET, GemmReg.ACT_MAX),
        (function_id(Funct3.POST), 7, 0),
        gop(GemmOp.GGET, GemmReg.INFO),
        (function_id(Funct3.GET, Reg.ACC), 0, 0),
    ]
    events, responses = run(CombinedCfuCore(SMALL), mixed)
    check(CombinedCfuModel(SMALL), events, responses)
    cycles = [e[2] for e in _accepts(events)]
    # The GEMM op behind POST waits for POST's answer (SLOW_LATENCY cycles) to keep the order;
    # GET ACC answers from the MAC side's stage 1 (MAC_LATENCY).
    assert [b - a for a, b in zip(cycles, cycles[1:])] == [1, 1, 1, cfu_isa.SLOW_LATENCY, 1]
    assert [r[1] - c for r, c in zip(responses, cycles)] == [1, 1, 1, cfu_isa.SLOW_LATENCY, 1, cfu_isa.MAC_LATENCY]


def test_combined_counts_a_full_mac_pipeline():
    """As many slow MAC ops in flight as CfuCore holds (a stage each and the response), then GEMM
    ops: the combined core's in-flight count must not wrap, or a GEMM op overtakes (formal found it)."""
    from hdl.cfu.core import CfuCore

    slow = [(function_id(Funct3.SRDHM), 1 << 30, 3 + i) for i in range(CfuCore.STAGES + 4)]
    cmds = slow + [gop(GemmOp.STATUS), gop(GemmOp.GGET, GemmReg.INFO)] + slow[:3]
    events, responses = run(CombinedCfuCore(SMALL), cmds)
    assert check(CombinedCfuModel(SMALL), events, responses) == len(cmds)


def test_last_is_the_cycle_model_for_large_shapes():
    """START computes T (COUNTER LAST) in closed form: equal to reference.gemm.gemm_cycles for
    shapes whose products the model cannot afford to compute (checked against the cycle model alone)."""
    rng = np.random.default_rng(12)
    shapes = [(65535, 1, 1), (1, 65535, 1), (1, 1, 2000), (3, 9, 4), (4, 17, 9), (5, 30, 30)]
    shapes += [tuple(int(v) for v in rng.integers(1, [65536, 2000, 2000])) for _ in range(6)]
    cmds = []
    for M, K, N in shapes:
        cmds += [gset(GemmReg.M, M), gset(GemmReg.K, K), gset(GemmReg.N, N), gop(GemmOp.START)]
        cmds += [gop(GemmOp.COUNTER, Counter.LAST), gop(GemmOp.STATUS), (RESET, 1)]
    for g in (SMALL, FOUR_CHANNELS):
        events, responses = run(GemmCfuCore(g), cmds)
        # Each reset's epoch answers GSET x3, START, COUNTER (the 5th), and maybe STATUS.
        lasts = [[r[0] for r in responses if r[2] == e][4] for e in range(len(shapes))]
        assert lasts == [gemm_cycles(8, g.cols, *shape) & M32 for shape in shapes]


# -- the Verilog -----------------------------------------------------------------
def test_gemm_cfu_verilog_has_cfu_playgrounds_ports_and_lints_clean(tmp_path):
    import subprocess

    from hdl.generate import lint_waivers, write_verilog
    from sim.runner import ensure_simulator
    from tests.test_verilog import CFU_PLAYGROUND_PORTS, _ports

    path = tmp_path / "gemm_cfu.v"
    module = write_verilog("gemm_cfu", path, cols=4, channels=4)
    assert module == "Cfu" and _ports(path.read_text(), module) == CFU_PLAYGROUND_PORTS  # CFU Playground's name
    ensure_simulator("verilator")
    assert lint_waivers("gemm_cfu") == ["WIDTH"]
    result = subprocess.run(
        ["verilator", "--lint-only", "-Wno-WIDTH", "--top-module", module, str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0 and "%Warning" not in result.stderr, result.stderr
