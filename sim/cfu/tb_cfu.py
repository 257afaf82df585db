"""cocotb tests of ``Cfu`` against the golden model (:mod:`reference.cfu`).

Environment (set by :func:`sim.runner.run_cocotb`):
``CFU_OPS`` random commands in ``random_stream`` (default 10,000);
``WORKLOAD_SAMPLES`` digits test images in ``mlp_workload`` (default 16);
``STIMULUS_SEED`` seed of the random streams (default cocotb's seed).
"""

import random

import cocotb
import numpy as np

from hdl.cfu import Cfu
from reference.cfu_isa import MAC4_ACCUMULATE, Funct3, Reg, function_id, latency, split_function_id
from reference.digits import load_split
from reference.float_mlp import digits_mlp
from reference.tflm import fully_connected
from sim.cfu.bus import CfuBus, CfuScoreboard
from sim.cfu.coverage import CfuCoverage, directed_corners
from sim.cfu.stimulus import random_commands
from sim.cfu.workload import fc_commands
from sim.results import env_int, errors_recorded, record, record_mismatch


def _seed():
    return env_int("STIMULUS_SEED", cocotb.RANDOM_SEED)


_coverage = []


def coverage():
    """The run's functional coverage (one per process: the bins add up over the tests)."""
    if not _coverage:
        _coverage.append(CfuCoverage())
    return _coverage[0]


async def _bus(dut, seed):
    bus = CfuBus(dut, random.Random(seed), coverage=coverage())
    await bus.start()
    return bus


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def random_stream(dut):
    """Constrained-random ops with gaps, back-pressure and a reset mid-stream."""
    seed = _seed()
    n = env_int("CFU_OPS", 10_000)
    bus = await _bus(dut, seed)
    commands = random_commands(n, seed)
    half = n // 2
    with errors_recorded():
        # First half: random gaps and back-pressure, with a reset in the middle.
        stats_a = await bus.run(
            commands[:half], gap=0.3, backpressure=0.3, reset_cycles=range(half // 2, half // 2 + 3)
        )
        # Second half: back to back, rsp_ready always high.
        stats_b = await bus.run(commands[half:])
    sb = bus.scoreboard
    assert sb.accepted == n, f"{n - sb.accepted} commands were never accepted"
    assert len(sb.responses) + sb.dropped == n, "a response was lost or duplicated"
    coverage().record()
    record(
        random_stream={
            "commands": n,
            "checked": len(sb.responses),
            "dropped_by_reset": sb.dropped,
            "seed": seed,
            "cycles": stats_a["cycles"] + stats_b["cycles"],
        }
    )


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def reset_mid_flight(dut):
    """A reset while responses wait discards them, restores the registers, and the unit goes on."""
    bus = await _bus(dut, 0)
    setup = [(function_id(Funct3.SET, Reg.ACC), 1234, 0), (function_id(Funct3.SET, Reg.ACT_MAX), 55, 0)]
    in_flight = [
        (function_id(Funct3.POST), 7, 0),
        (function_id(Funct3.MAC4), 0x01010101, 0x02020202),
        (function_id(Funct3.SRDHM), 1 << 30, 1 << 30),
    ]
    after = [(function_id(Funct3.GET, r), 0, 0) for r in Reg] + random_commands(200, 3)
    with errors_recorded():
        await bus.run(setup)
        # rsp_ready stays low: the three ops fill the pipeline and wait; then reset.
        await bus.run(in_flight, backpressure=1.0, reset_cycles=range(8, 10))
        assert bus.scoreboard.dropped == len(in_flight), (
            f"{bus.scoreboard.dropped} ops dropped by reset, expected {len(in_flight)}"
        )
        await bus.run(after)
    assert len(bus.scoreboard.responses) == len(setup) + len(after)
    coverage().record()


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def corner_cases(dut):
    """The cases random streams reach rarely (:func:`sim.cfu.coverage.directed_corners`): a reset in
    each pipeline state, SRDHM's MIN x MIN, RDBPOT ties of both signs, long back-pressure and gaps."""
    bus = await _bus(dut, 5)
    with errors_recorded():
        await directed_corners(bus, mixed=random_commands(80, 9))
    coverage().record()


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def reset_state(dut):
    """After reset every register reads its reset value; undefined registers read 0."""
    bus = await _bus(dut, 0)
    commands = [(function_id(Funct3.GET, r), 0, 0) for r in range(len(Reg) + 2)]
    with errors_recorded():
        await bus.run(commands)
    assert len(bus.scoreboard.responses) == len(commands)
    coverage().record()


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def throughput_and_latency(dut):
    """With rsp_ready high: one command a cycle, and the documented latencies."""
    seed = _seed()
    bus = await _bus(dut, seed)
    rng = np.random.default_rng(seed)
    mac4 = [
        (function_id(Funct3.MAC4, MAC4_ACCUMULATE), int(a), int(b)) for a, b in rng.integers(0, 1 << 32, size=(200, 2))
    ]
    slow = [(function_id(Funct3.SRDHM), int(a), int(b)) for a, b in rng.integers(0, 1 << 32, size=(200, 2))]
    # SETs and GETs of the registers but ACC: one cycle.
    others = [r for r in Reg if r != Reg.ACC]
    plain = [
        (function_id(int(f3), int(others[r])), int(v), 0)
        for f3, r, v in zip(
            rng.choice([Funct3.SET, Funct3.GET], 200), rng.integers(0, len(others), 200), rng.integers(0, 1 << 32, 200)
        )
    ]
    mixed = random_commands(2000, seed + 1)
    results = {}
    with errors_recorded():
        for name, commands, documented in [
            ("MAC4", mac4, Cfu.MAC_LATENCY),
            ("fast", plain, Cfu.FAST_LATENCY),
            ("slow", slow, Cfu.SLOW_LATENCY),
            ("mixed", mixed, None),
        ]:
            done = len(bus.scoreboard.responses)
            stats = await bus.run(commands)
            latencies = [lat for _, _, lat in bus.scoreboard.responses[done:]]
            if documented is not None:
                assert set(latencies) == {documented}, (
                    f"{name} ops: latencies {sorted(set(latencies))}, documented {documented}"
                )
            # One command accepted every cycle, and the last answer its latency later.
            assert stats["accept_span"] == len(commands), (
                f"{name}: {len(commands)} commands were accepted over {stats['accept_span']} cycles"
            )
            assert stats["busy_cycles"] == len(commands) + latencies[-1]
            results[name] = {
                "ops": len(commands),
                "busy_cycles": stats["busy_cycles"],
                "ops_per_cycle": len(commands) / stats["accept_span"],
                "cycles_per_second": stats["cycles_per_second"],
            }
    coverage().record()
    record(throughput=results)


INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _slow_corners():
    """Slow ops at their saturation and rounding corners (SRDHM's MIN x MIN, RDBPOT ties, POST clamped at
    both ends), each after a SET so that the registers vary, as (function_id, in0, in1), unsigned."""
    u = [v & 0xFFFFFFFF for v in (INT32_MIN, INT32_MAX)]
    srdhm, rdbpot, post = (function_id(f) for f in (Funct3.SRDHM, Funct3.RDBPOT, Funct3.POST))
    ops = [
        (srdhm, u[0], u[0]),  # the one overflow: INT32_MAX
        (srdhm, u[0], u[1]),
        (srdhm, u[1], u[1]),
        (srdhm, u[0], 1),
        (rdbpot, 3 << 4, 5),  # 1.5 -> 2: a tie rounds away from zero
        (rdbpot, (-3 << 4) & 0xFFFFFFFF, 5),
        (rdbpot, u[0], 31),
        (rdbpot, u[1], 31),
    ]
    sets = [
        (function_id(Funct3.SET, Reg.OUTPUT_MULTIPLIER), u[0], 0),
        (function_id(Funct3.SET, Reg.OUTPUT_SHIFT), 0, 0),
        (function_id(Funct3.SET, Reg.ACC), u[0], 0),
    ]
    posts = [(post, 0, 0), (post, u[1], 0), (post, 5, 0)]  # clamps at ACT_MIN, at ACT_MAX, and a plain one
    return sets + ops + posts


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def corners_stalled(dut):
    """The slow ops' corners with back-pressure and gaps, so that each waits in every pipeline stage."""
    commands = _slow_corners() * 40
    bus = CfuBus(dut, random.Random(7))
    await bus.start()
    with errors_recorded():
        await bus.run(commands, gap=0.3, backpressure=0.6)
    assert len(bus.scoreboard.responses) == len(commands)


class _TimedScoreboard(CfuScoreboard):
    """Also records when each command was taken (and its documented latency) and when each was answered."""

    def __init__(self):
        super().__init__()
        self.taken, self.answered = [], []

    def accept(self, command, cycle):
        super().accept(command, cycle)
        self.taken.append((cycle, latency(*split_function_id(command[0]))))

    def respond(self, value, cycle):
        super().respond(value, cycle)
        self.answered.append(cycle)


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def latency_with_gaps(dut):
    """docs/cfu_isa.md's latency rule with rsp_ready high and random gaps: each op answers its latency
    after it is taken unless an older one is still in flight, then in the cycle after that one's answer."""
    sb = _TimedScoreboard()
    bus = CfuBus(dut, random.Random(_seed()), scoreboard=sb)
    await bus.start()
    with errors_recorded():
        await bus.run(random_commands(1000, _seed() + 2), gap=0.5)
        previous = None
        for i, ((taken, lat), answered) in enumerate(zip(sb.taken, sb.answered)):
            due = taken + lat
            if previous is not None:
                due = max(due, previous + 1)
            assert answered == due, (
                f"command #{i} (latency {lat}, taken in cycle {taken}): answered in cycle "
                f"{answered}, the latency rule says {due}"
            )
            previous = answered


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def mlp_workload(dut):
    """The int8 digits MLP, layer by layer, as CFU op streams; outputs equal TFLM's."""
    samples = env_int("WORKLOAD_SAMPLES", 16)
    mlp, float_accuracy = digits_mlp()
    _, _, x_test, y_test = load_split()
    samples = min(samples, len(x_test))
    x = mlp.quantize_input(x_test[:samples])
    bus = await _bus(dut, 0)
    layers, cycles, ops, wall = [], 0, 0, 0.0
    exact = []  # one entry per layer whose outputs were all compared equal
    with errors_recorded():
        for l, p in enumerate(mlp.layers):
            commands, post_indices = fc_commands(x, p)
            done = len(bus.scoreboard.responses)
            stats = await bus.run(commands)
            values = {i - done: v for i, v, _ in bus.scoreboard.responses[done:]}
            rtl = np.array([[values[i] for i in row] for row in post_indices], dtype=np.int64)
            rtl = np.where(rtl >= 1 << 31, rtl - (1 << 32), rtl)
            expected = fully_connected(x, p)
            bad = np.argwhere(rtl != expected)
            if len(bad):
                first = tuple(int(i) for i in bad[0])
                record(mlp_workload={"samples": samples, "layers": layers, "bit_exact": False})
                record_mismatch(
                    "cfu",
                    f"mlp_workload, layer {l}",
                    tensor="output",
                    index=list(first),
                    expected=int(expected[first]),
                    got=int(rtl[first]),
                    detail=f"{len(bad)} of {rtl.size} outputs differ",
                )
            assert not len(bad), (
                f"layer {l} output [{bad[0][0]}, {bad[0][1]}]: expected "
                f"{expected[tuple(bad[0])]}, got {rtl[tuple(bad[0])]}"
            )
            exact.append(True)
            layers.append(
                {
                    "layer": l,
                    "in": int(p.filter.shape[1]),
                    "out": int(p.filter.shape[0]),
                    "commands": len(commands),
                    "cycles": stats["busy_cycles"],
                }
            )
            cycles += stats["cycles"]
            ops += len(commands)
            wall += stats["wall_seconds"]
            x = rtl
    predicted = np.argmax(x, axis=1)
    reference_predicted = mlp.predict(mlp.quantize_input(x_test[:samples]))
    assert np.array_equal(predicted, reference_predicted)
    coverage().record()
    record(
        mlp_workload={
            "samples": samples,
            "layers": layers,
            "commands": ops,
            "cycles": cycles,
            "bit_exact": len(exact) == len(mlp.layers),
            "int8_accuracy": float(np.mean(predicted == y_test[:samples])),
            "float_accuracy_full_test_split": float_accuracy,
            "sim_cycles_per_second": cycles / wall if wall else None,
            "wall_seconds": wall,
        }
    )
