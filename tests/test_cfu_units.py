"""CfuCore in amaranth.sim (no Verilator): its streams against the golden model, in a few seconds.

The cocotb regression (tests/test_cfu_rtl.py) stays the system-level check,
on the generated Verilog with reset mid-stream; these check the component
itself: every response equals :class:`reference.cfu.CfuModel`'s, in order,
under gaps and back-pressure; the stream rules hold; one op is taken per
cycle; and the latencies are the spec's.
"""

import random

import pytest
from amaranth.sim import Simulator

from hdl.cfu.core import COMMAND, FUNCTION_ID, CfuCore
from reference import cfu_isa
from reference.cfu import CfuModel
from reference.cfu_isa import Funct3, Reg, function_id, split_function_id
from sim.cfu.stimulus import random_commands


def _payload(fid, in0, in1):
    funct3, funct7 = split_function_id(fid)
    return {"function_id": {"funct3": funct3, "funct7": funct7}, "inputs_0": in0, "inputs_1": in1}


def run_core(commands, gap=0.0, backpressure=0.0, seed=0):
    """Stream ``commands`` through a CfuCore; returns ``(accepted, responses)``,
    ``[(command, cycle)]`` and ``[(value, cycle)]``, checking the stream rules each cycle."""
    dut = CfuCore()
    accepted, responses = [], []

    async def bench(ctx):
        rng = random.Random(seed)
        pending, current, waiting, cycle = list(reversed(commands)), None, None, 0
        while pending or current is not None or len(responses) < len(accepted):
            if current is None and pending and rng.random() >= gap:
                current = pending.pop()
                ctx.set(dut.cmd.payload, _payload(*current))
            ctx.set(dut.cmd.valid, current is not None)
            ready = rng.random() >= backpressure
            ctx.set(dut.rsp.ready, ready)
            # Testbench reads settle: these are what the coming edge registers.
            c_ready, r_valid = ctx.get(dut.cmd.ready), ctx.get(dut.rsp.valid)
            value = ctx.get(dut.rsp.payload.outputs_0) if r_valid else None
            assert waiting is None or value == waiting, f"cycle {cycle}: a waiting response changed or went"
            assert not (r_valid and not ready and c_ready), f"cycle {cycle}: cmd.ready while a response waits"
            if current is not None and c_ready:
                accepted.append((current, cycle))
                current = None
            if r_valid and ready:
                responses.append((value, cycle))
            waiting = value if r_valid and not ready else None
            await ctx.tick()
            cycle += 1
            assert cycle < 64 + 8 * len(commands), "the core hung"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return accepted, responses


def check_in_order(accepted, responses):
    model = CfuModel()
    assert len(responses) == len(accepted)
    for i, ((command, _), (value, _)) in enumerate(zip(accepted, responses)):
        expected = model.step(*command)
        assert value == expected, f"command #{i} {command}: expected 0x{expected:08x}, got 0x{value:08x}"


@pytest.mark.parametrize("gap, backpressure", [(0.0, 0.0), (0.3, 0.3), (0.0, 0.7)])
def test_random_ops_match_the_golden_model(gap, backpressure):
    commands = random_commands(300, seed=11)
    accepted, responses = run_core(commands, gap=gap, backpressure=backpressure, seed=5)
    assert [c for c, _ in accepted] == commands
    check_in_order(accepted, responses)


def test_latencies_are_the_specs():
    assert (CfuCore.FAST_LATENCY, CfuCore.MAC_LATENCY, CfuCore.SLOW_LATENCY) == (1, 2, 9)
    assert (CfuCore.FAST_LATENCY, CfuCore.MAC_LATENCY, CfuCore.SLOW_LATENCY) == (
        cfu_isa.FAST_LATENCY,
        cfu_isa.MAC_LATENCY,
        cfu_isa.SLOW_LATENCY,
    )
    fast = [
        function_id(Funct3.SET, Reg.ACC),
        function_id(Funct3.GET, Reg.ACT_MAX),
        function_id(Funct3.MAC4, 2),  # undefined
        function_id(7, 3),
    ]
    mac = [function_id(Funct3.MAC4), function_id(Funct3.MAC4, 1), function_id(Funct3.GET, Reg.ACC)]
    slow = [function_id(Funct3.SRDHM), function_id(Funct3.RDBPOT), function_id(Funct3.POST)]
    for fids, latency in [(fast, cfu_isa.FAST_LATENCY), (mac, cfu_isa.MAC_LATENCY), (slow, cfu_isa.SLOW_LATENCY)]:
        for fid in fids:
            accepted, responses = run_core([(fid, 0x01020304, 0x7F80FF01)])
            check_in_order(accepted, responses)
            assert responses[0][1] - accepted[0][1] == latency, f"function_id {fid}"


def test_one_op_a_cycle_in_order():
    commands = random_commands(120, seed=3)
    accepted, responses = run_core(commands)
    check_in_order(accepted, responses)
    cycles = [cycle for _, cycle in accepted]
    assert cycles == list(range(cycles[0], cycles[0] + len(commands)))
    # Back to back, the last answer comes its op's latency after the last accept, at most.
    assert responses[-1][1] - cycles[-1] == cfu_isa.latency(*split_function_id(commands[-1][0]))


def test_function_id_layout_is_cfu_playgrounds():
    for funct3 in range(8):
        for funct7 in (0, 1, 6, 127):
            bits = FUNCTION_ID.const({"funct3": funct3, "funct7": funct7}).as_bits()
            assert bits == function_id(funct3, funct7)
    assert COMMAND.size == cfu_isa.FUNCTION_ID_BITS + 64
