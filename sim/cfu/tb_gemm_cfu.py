"""cocotb tests of the combined CFU (``GemmCfu``: the MAC4 family and the GEMM ops) against
:class:`reference.cfu_gemm.CombinedCfuModel`.

Every response is compared bit for bit with the model stepped at the op's
accept cycle (:class:`sim.cfu.gemm_scoreboard.GemmCfuScoreboard`), and the
WAIT/READ timing rules are checked on the way. Streams a reset does not cut
are also checked against the definitions alone (``reference.gemm.gemm`` of
the matrices written, TFLM's output stage with the parameters written): see
:mod:`sim.cfu.gemm_stimulus`.

Environment (set by :func:`sim.runner.run_cocotb`):
``GEMM_CFU_OPS`` commands in ``random_stream`` (default 4,000);
``GEMM_CFU_MAX_DIM`` the largest M, K, N it draws (default 16);
``STIMULUS_SEED`` seed of the streams (default cocotb's seed);
``GEMM_CFU_FLIP`` ``KIND:BIT``: a deliberately wrong model that inverts bit BIT
of every answer to ops of KIND (``READ32``, ``GSET``, ``MAC``, ...; see
:func:`sim.cfu.gemm_scoreboard.op_kind`), to show that one wrong bit fails;
``$DESIGN_PARAMS`` the geometry (cols, operand_depth, result_depth, channels).
"""

import os
import random

import cocotb

from reference.cfu_gemm import CombinedCfuModel
from reference.cfu_gemm_isa import GOP, TRANSFER_OPS, GemmCfuGeometry, GemmOp, GemmReg, info_word
from reference.cfu_isa import Funct3, Reg, function_id
from reference.gemm import MODES
from sim.cfu.bus import CfuBus
from sim.cfu.coverage import GemmCfuCoverage, directed_corners
from sim.cfu.gemm_scoreboard import GemmCfuScoreboard
from sim.cfu.gemm_stimulus import GemmStream, gget, gop, gset
from sim.cfu.stimulus import random_commands
from sim.common import Mismatch
from sim.results import design_params, env_int, errors_recorded, record

DESIGN = "gemm_cfu"
TIMEOUT_MS = 5000  # simulated time; a run of 100,000 ops stays far below


def _seed():
    return env_int("STIMULUS_SEED", cocotb.RANDOM_SEED)


def _geometry():
    p = design_params()
    return GemmCfuGeometry(**{k: p[k] for k in ("cols", "operand_depth", "result_depth", "channels") if k in p})


def _flip():
    text = os.environ.get("GEMM_CFU_FLIP", "")
    if not text:
        return None
    kind, _, bit = text.partition(":")
    return kind, int(bit)


_coverage = []


def coverage(g):
    """The run's functional coverage (one per process: the bins add up over the tests)."""
    if not _coverage:
        _coverage.append(GemmCfuCoverage(g))
    return _coverage[0]


async def _bus(dut, seed, g, strict=False):
    sb = GemmCfuScoreboard(CombinedCfuModel(g), strict=strict, flip=_flip())
    bus = CfuBus(dut, random.Random(seed), scoreboard=sb, coverage=coverage(g))
    await bus.start()
    return bus


async def _run(bus, stream, **kw):
    """Run a stream's commands; the hang limit covers its longest GEMM."""
    bus.HANG_LIMIT = max(CfuBus.HANG_LIMIT, stream.max_cycles() + 64)
    offset = bus.scoreboard.accepted
    stats = await bus.run(stream.commands, **kw)
    return offset, stats


def _values(bus, offset):
    """Responses by command position (counted from ``offset``)."""
    return {i - offset: v for i, v, _ in bus.scoreboard.responses if i >= offset}


def _verify_checks(bus, stream, offset):
    """Answers the definitions fix (the stream's ``checks``); the model already agreed with the RTL,
    so a difference here is the golden model's."""
    values = _values(bus, offset)
    for i, want, what in stream.checks:
        got = values.get(i)
        if got != want:
            raise Mismatch(
                design=DESIGN,
                where=f"command #{offset + i} ({what}): the RTL and the golden model agree, but the definitions say",
                expected=f"0x{want:08x}",
                got=None if got is None else f"0x{got:08x}",
            )
    return len(stream.checks)


def _result_words(sb):
    return sb.checked_kinds["READ32"] + sb.checked_kinds["READ8"]


def _summary(sb):
    return {
        "accepted": sb.accepted,
        "checked": sb.checked,
        "skipped_undefined": sb.skipped,
        "dropped_by_reset": sb.dropped,
        "ops_by_kind": dict(sb.kinds),
        "read32_checked": sb.checked_kinds["READ32"],
        "read8_checked": sb.checked_kinds["READ8"],
        "gemms_started": sum(1 for _ in sb.model.gemm.windows),
        "max_latency": sb.max_latency,
        "held_answer_after_last_busy": {f"{k} +{d}": v for (k, d), v in sorted(sb.held_after.items())},
        "resets": sb.resets,
    }


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def random_stream(dut):
    """Constrained-random GEMM scenarios mixed with MAC4-family ops: the first half with gaps,
    back-pressure and resets anywhere (three, or one per 400 commands), the second back to back with the
    latencies checked."""
    seed, n, g = _seed(), env_int("GEMM_CFU_OPS", 4000), _geometry()
    max_dim = env_int("GEMM_CFU_MAX_DIM", 16)
    bus = await _bus(dut, seed, g)
    sb = bus.scoreboard
    half = n // 2
    first = GemmStream(g, seed, max_dim=max_dim)
    first.random(half)
    rng = random.Random(seed)
    # Resets anywhere in the first half's cycles (about 1.6 a command with these gaps and back-pressure).
    starts = sorted(rng.sample(range(10, max(14, int(1.6 * half))), max(3, half // 400)))
    resets = [c for s in starts for c in range(s, s + rng.randint(1, 3))]
    second = GemmStream(g, seed + 1, max_dim=max_dim)
    second.random(n - half)
    with errors_recorded(DESIGN, "random_stream"):
        _, stats_a = await _run(bus, first, gap=0.3, backpressure=0.3, reset_cycles=resets)
        gemms_a = len(sb.model.gemm.windows)
        sb.strict = True
        offset, stats_b = await _run(bus, second)
        definitions = _verify_checks(bus, second, offset)
    assert sb.accepted == n, f"{n - sb.accepted} commands were never accepted"
    assert sb.checked + sb.skipped + sb.dropped == n, "a response was lost or duplicated"
    coverage(g).record()
    record(
        random_stream={
            **_summary(sb),
            "commands": n,
            "seed": seed,
            "gemms_started": gemms_a + len(sb.model.gemm.windows),
            "definition_checks": definitions,
            "cycles": stats_a["cycles"] + stats_b["cycles"],
            "cycles_per_second": (stats_a["cycles"] + stats_b["cycles"])
            / (stats_a["wall_seconds"] + stats_b["wall_seconds"]),
        }
    )


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def odd_shapes(dut):
    """M, K, N of 1, below, equal to and above 8 or C, multiples and not, K past 64, in all three modes,
    bases in both halves, strides with padding: every result word read back as READ32 and as READ8
    (per-channel parameters, channel entries wrapping), checked against the model and against the
    definitions; then the output stage's corners (:meth:`GemmStream.output_stage_corners`)."""
    g = _geometry()
    C = g.cols
    shapes = [
        (1, 1, 1),
        (1, 1, 9),
        (1, 9, 1),
        (9, 1, 1),
        (2, 3, 5),
        (8, 8, 8),
        (7, 9, C + 1),
        (9, 17, 3),
        (17, 2, 2 * C - 1),
        (3, 16, C - 1),
        (16, 5, 2 * C),
        (5, 8, C),
        (2, 66, 3),  # K past 64: a tile's k0 + t uses bit 6 (the small geometry fits it in nt only)
    ]
    s = GemmStream(g, seed=11, mac_rate=0.05)
    i = 0
    for mode in MODES:
        for shape in shapes:
            h = i % 2
            try:
                job = s.job(halves=(h, 1 - h, h), shape=shape, mode=mode, extra_stride=i % 3 // 2)
            except ValueError:  # does not fit a small geometry's buffers
                continue
            s.write_job(job)
            s.configure(job)
            s.start(job)
            if i % 2:
                s.wait()
            s.read_back(job, "read32")
            s.channel_params(job, per_tensor=i % 5 == 4)
            s.read_back(job, "read8", point=True)
            i += 1
    s.output_stage_corners()
    bus = await _bus(dut, 11, g, strict=True)
    with errors_recorded(DESIGN, "odd_shapes"):
        offset, stats = await _run(bus, s)
        definitions = _verify_checks(bus, s, offset)
        # Slow and fast MAC4-family ops in turn, with random idle cycles: a fast op one idle cycle behind
        # a slow one finds it gone from the pipeline and answers from stage 1 (found by make coverage).
        slow, fast = (function_id(Funct3.SRDHM), 3 << 29, 5 << 28), (function_id(Funct3.GET, Reg.ACC), 0, 0)
        bus.scoreboard.strict = False
        await bus.run([slow, fast] * 16, gap=0.5)
    sb = bus.scoreboard
    coverage(g).record()
    record(odd_shapes={**_summary(sb), "jobs": len(s.jobs), "definition_checks": definitions, **stats})


def _counter_reads():
    return [gop(GemmOp.COUNTER, c) for c in range(5)]


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def double_buffered(dut):
    """Jobs in alternating halves, the CPU writing the next operands and reading the last results while
    the engine computes; the counters: BUSY the sum of the GEMMs' cycles, WAIT + OVERLAP = BUSY,
    OVERLAP > 0, TRANSFERS and LAST exact. Once back to back, once with gaps and back-pressure."""
    g = _geometry()
    out = []
    bus = await _bus(dut, 3, g)
    for run, (gap, bp) in enumerate([(0.0, 0.0), (0.25, 0.25)]):
        s = GemmStream(g, seed=20 + run, mac_rate=0.1, max_dim=16)
        s.emit(gop(GemmOp.WAIT))
        s.emit(gop(GemmOp.CLEAR), mac=False)
        s.double_buffered(jobs=5)
        # One more job, waited for at once: busy cycles the CPU spends waiting.
        job = s.job(shape=(16, 16, 16))
        s.write_job(job)
        s.configure(job)
        s.start(job)
        s.wait()
        s.read_back(job, "read32")
        at = len(s.commands)
        for c in _counter_reads():
            s.emit(c, mac=False)
        bus.scoreboard.strict = gap == 0
        with errors_recorded(DESIGN, "double_buffered"):
            offset, stats = await _run(bus, s, gap=gap, backpressure=bp)
            _verify_checks(bus, s, offset)
        v = _values(bus, offset)
        busy, wait, overlap, transfers, last = (v[at + k] for k in range(5))
        cycles = [j.cycles(g.cols) for j in s.jobs]
        n_transfers = sum(1 for c in s.commands[:at] if c[0] & 7 == GOP and c[0] >> 3 in TRANSFER_OPS)
        # From the definitions, not the model: the bench's own count of the stream.
        assert busy == sum(cycles), f"BUSY {busy}, the GEMMs' cycles sum to {sum(cycles)}"
        assert wait + overlap == busy, f"WAIT {wait} + OVERLAP {overlap} != BUSY {busy}"
        assert overlap > 0 and wait > 0, f"WAIT {wait} and OVERLAP {overlap} must both count"
        assert transfers == n_transfers, f"TRANSFERS {transfers}, the stream has {n_transfers}"
        assert last == cycles[-1], f"LAST {last}, the last GEMM took {cycles[-1]}"
        out.append(
            {"gap": gap, "backpressure": bp, "busy": busy, "wait": wait, "overlap": overlap, "transfers": transfers}
        )
    coverage(g).record()
    record(double_buffered={"runs": out, **_summary(bus.scoreboard)})


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def control_ops(dut):
    """WAIT with nothing started, STATUS, START refused (sizes 0, mode 3, busy), unknown sub-ops,
    GSET of read-only and unknown registers, GGET and COUNTER of everything, CH_* beyond the channels,
    CLEAR; every register read back unchanged after the ops that must change nothing."""
    g = _geometry()
    bus = await _bus(dut, 4, g, strict=True)
    s = GemmStream(g, seed=4, mac_rate=0)
    s.running = None
    groups = {
        "idle": [gop(GemmOp.WAIT), gop(GemmOp.STATUS), *_counter_reads(), gop(GemmOp.COUNTER, 0xFFFFFFFF)],
        "regs": [gget(r) for r in range(32)] + [gget(0xFFFFFFFF), gget(1 << 16)],
        "read_only": [gset(r, 0x5A5A5A5A) for r in [GemmReg.INFO, GemmReg.B_ROWSUM, *range(len(GemmReg), 128)]],
        "regs_after_gset": None,
        "unknown": [gop(op, 0xFFFFFFFF, 0x12345678) for op in range(len(GemmOp), 128)],
        "channels": [
            gop(op, 77, ch) for op in (GemmOp.CH_BIAS, GemmOp.CH_MULT, GemmOp.CH_SHIFT) for ch in (g.channels, -1)
        ],
        "regs_after_ops": None,
    }
    at = {}
    for name, commands in groups.items():
        at[name] = len(s.commands)
        for c in commands or groups["regs"]:
            s.emit(c)
    s.emit(gop(GemmOp.START), check=(0, "START with sizes 0"))
    job = s.job(halves=(1, 0, 1), shape=(9, 10, 11), mode="nt")
    T = job.cycles(g.cols)
    s.jobs.append(job)  # for the hang limit
    s.write_job(job)
    s.configure(job)
    s.set(GemmReg.MODE, 3, junk=False)
    s.emit(gop(GemmOp.START), check=(0, "START in mode 3"))
    s.set(GemmReg.MODE, MODES.index(job.mode), junk=False)
    s.emit(gop(GemmOp.START), check=(1, "START"))
    s.emit(gop(GemmOp.START), check=(0, "START while busy"))
    s.emit(gop(GemmOp.STATUS), check=(1, "STATUS while busy"))
    s.set(GemmReg.M, 1)  # the running GEMM keeps the sizes it started with
    s.emit(gop(GemmOp.WAIT), check=(T, "WAIT"))
    s.emit(gop(GemmOp.STATUS), check=(0, "STATUS after WAIT"))
    s.emit(gop(GemmOp.WAIT), check=(T, "WAIT again, nothing running"))
    s.emit(gop(GemmOp.COUNTER, 4), check=(T, "COUNTER LAST"))
    s.emit(gop(GemmOp.CLEAR), check=(0, "CLEAR"))
    s.emit(gop(GemmOp.COUNTER, 0), check=(0, "COUNTER BUSY after CLEAR"))
    s.emit(gop(GemmOp.COUNTER, 4), check=(T, "COUNTER LAST after CLEAR"))
    s.read_back(job, "read32")
    with errors_recorded(DESIGN, "control_ops"):
        offset, _ = await _run(bus, s)
        _verify_checks(bus, s, offset)
        v = _values(bus, offset)

        def answers(name, n=None):
            return [v[at[name] + i] for i in range(n or len(groups[name] or groups["regs"]))]

        assert answers("idle") == [0] * len(groups["idle"]), "WAIT, STATUS and COUNTER after reset answer 0"
        regs = answers("regs")
        assert regs[GemmReg.INFO] == info_word(g), f"INFO 0x{regs[GemmReg.INFO]:08x}"
        assert regs[GemmReg.ACT_MIN] == 0xFFFFFF80 and regs[GemmReg.ACT_MAX] == 127
        for name in ("read_only", "unknown", "channels"):
            assert set(answers(name)) == {0}, f"{name}: ops that change nothing answer 0"
        assert answers("regs_after_gset") == regs == answers("regs_after_ops"), "a refused op changed a register"
    coverage(g).record()
    record(control_ops=_summary(bus.scoreboard))


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def reset_mid_gemm(dut):
    """Resets in the middle of a GEMM, of an operand transfer, of a READ waiting for the engine and of
    a held WAIT; afterwards the registers and counters restart while the buffers and channel entries
    keep their contents (the same GEMM, restarted without reloading, gives the same results)."""
    g = _geometry()
    bus = await _bus(dut, 6, g)
    sb = bus.scoreboard
    s = GemmStream(g, seed=6, mac_rate=0.1)
    s.running = None
    M = K = N = min(16, g.result_depth // 2)
    job = s.job(halves=(0, 1, 1), shape=(M, K, N), mode="nn", extra_stride=0)
    T = job.cycles(g.cols)
    s.channel_params(job, per_tensor=False)
    s.write_job(job)
    s.configure(job)
    with errors_recorded(DESIGN, "reset_mid_gemm"):
        await _run(bus, s)
        # 1. Mid-GEMM: START in the run's first cycle, reset halfway.
        await bus.run([gop(GemmOp.START), gop(GemmOp.STATUS)], reset_cycles=range(T // 2, T // 2 + 2))
        assert sb.resets[-1]["engine_busy"], f"the reset came outside the GEMM ({sb.resets[-1]})"
        skipped = sb.skipped
        s2 = GemmStream(g, seed=7, mac_rate=0.1)
        s2.running = None
        for c in [gop(GemmOp.STATUS), gop(GemmOp.WAIT), *_counter_reads()] + [gget(r) for r in GemmReg]:
            s2.emit(c)
        s2.read_back(job, "read32", point=True, check=False)  # undefined: the GEMM stopped halfway
        s2.configure(job)  # registers reset; buffers and channel entries did not
        s2.start(job)
        s2.read_back(job, "read32")
        s2.channel_params(job, entries=False)
        s2.read_back(job, "read8", point=True)
        offset, _ = await _run(bus, s2)
        assert sb.skipped - skipped == M * N, f"{sb.skipped - skipped} reads skipped, expected {M * N}"
        _verify_checks(bus, s2, offset)
        # 2. Mid-transfer: a WRITE_B burst with back-pressure, reset while ops wait and mid-row.
        s3 = GemmStream(g, seed=8, mac_rate=0)
        s3.running = None
        s3.set(GemmReg.B_STRIDE, 3)
        s3.set(GemmReg.B_WADDR, 17)
        s3.set(GemmReg.B_WROW, 0)
        for k in range(40):
            s3.emit(gop(GemmOp.WRITE_B, 0x01020304 * k, 0x7F80FF00 ^ k))
        await _run(bus, s3, backpressure=0.5, reset_cycles=range(20, 22))
        r = sb.resets[-1]
        assert r["ops_in_flight"] or r["mid_row"], f"the reset missed the transfer ({r})"
        # 3. A response waiting (rsp_ready low) when the reset comes: dropped.
        dropped = sb.dropped
        await bus.run([gop(GemmOp.WRITE_A, 1, 2)], backpressure=1.0, reset_cycles=range(6, 8))
        assert sb.dropped > dropped, "the reset dropped no op in flight"
        # 4. Reset while a READ waits for the engine, and 5. while a WAIT holds.
        for held in (gop(GemmOp.READ32), gop(GemmOp.WAIT)):
            s4 = GemmStream(g, seed=9, mac_rate=0)
            s4.running = None
            s4.configure(job)
            await _run(bus, s4)
            await bus.run([gop(GemmOp.START), held], reset_cycles=range(T // 3, T // 3 + 1))
            assert sb.resets[-1]["engine_busy"] and sb.resets[-1]["ops_in_flight"], sb.resets[-1]
        # Afterwards: a whole job from scratch, checked against the definitions.
        s5 = GemmStream(g, seed=10, mac_rate=0.1)
        s5.running = None
        s5.single()
        s5.wait()
        s5.emit(gop(GemmOp.COUNTER, 3))
        offset, _ = await _run(bus, s5)
        _verify_checks(bus, s5, offset)
    coverage(g).record()
    record(reset_mid_gemm=_summary(sb))


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def throughput(dut):
    """With rsp_ready high, one instruction a cycle: a burst of WRITE_A, a mix of fast GEMM ops, and the
    MAC4 family with its own latencies."""
    g = _geometry()
    seed = _seed()
    bus = await _bus(dut, seed, g, strict=True)
    rng = random.Random(seed)
    n = 256
    write_a = [gset(GemmReg.A_STRIDE, 4), gset(GemmReg.A_WADDR, 0), gset(GemmReg.A_WROW, 0)]
    burst = [gop(GemmOp.WRITE_A, rng.getrandbits(32), rng.getrandbits(32)) for _ in range(n)]
    fast = [
        gop(GemmOp.WRITE_B, rng.getrandbits(32), rng.getrandbits(32)),
        gset(GemmReg.OUT_OFFSET, 3),
        gop(GemmOp.CH_BIAS, 5, 1),
        gop(GemmOp.CH_MULT, 1 << 30, 2),
        gop(GemmOp.CH_SHIFT, -3, 3),
        gop(GemmOp.STATUS),
        gop(GemmOp.COUNTER, 3),
        gget(GemmReg.A_WADDR),
        gget(GemmReg.B_ROWSUM),
        gop(GemmOp.WAIT),  # nothing runs: a fast op
        gop(100),
    ]
    mixed = [rng.choice(fast) for _ in range(n)]
    mac = [c for c in random_commands(2 * n, seed) if c[0] & 7 < 6][:n]
    results = {}
    with errors_recorded(DESIGN, "throughput"):
        await bus.run(write_a)
        for name, commands in (("write_a", burst), ("fast_gemm_ops", mixed), ("mac4_family", mac)):
            done = len(bus.scoreboard.responses)
            stats = await bus.run(commands)
            latencies = [lat for _, _, lat in bus.scoreboard.responses[done:]]
            assert stats["accept_span"] == len(commands), (
                f"{name}: {len(commands)} commands were accepted over {stats['accept_span']} cycles"
            )
            assert stats["busy_cycles"] == len(commands) + latencies[-1]
            if name != "mac4_family":
                assert set(latencies) == {1}, f"{name}: latencies {sorted(set(latencies))}, documented 1"
            results[name] = {
                "ops": len(commands),
                "accept_span": stats["accept_span"],
                "busy_cycles": stats["busy_cycles"],
                "ops_per_cycle": len(commands) / stats["accept_span"],
            }
    coverage(g).record()
    record(throughput=results)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def corner_cases(dut):
    """The cases random streams reach rarely (:func:`sim.cfu.coverage.directed_corners`): a reset in
    each pipeline state (a READ32 and a READ8 in flight too), SRDHM's MIN x MIN, RDBPOT ties of both
    signs, long back-pressure and gaps over MAC4-family and fast GEMM ops."""
    g = _geometry()
    bus = await _bus(dut, 12, g)
    rng = random.Random(12)
    mixed = [c for c in random_commands(120, 12) if c[0] & 7 < 6][:60]
    mixed += [gop(GemmOp.STATUS), gget(GemmReg.M), gop(GemmOp.COUNTER, 3), gset(GemmReg.OUT_OFFSET, 5)] * 5
    rng.shuffle(mixed)
    with errors_recorded(DESIGN, "corner_cases"):
        await directed_corners(bus, reset_ops=[gop(GemmOp.READ32), gop(GemmOp.READ8)], mixed=mixed)
    coverage(g).record()
