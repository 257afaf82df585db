"""cocotb test of ``GemmSelfTest``: it runs to the end, reports, and a reset
in the middle of a run starts it again. It records what the self-test
reported; tests/test_selftest.py decides whether that was right (a design
with an injected fault must fail). Clock, reset and sampling are
:mod:`sim.common`'s: the outputs (all registered) are read at falling edges."""

import cocotb

from reference.selftest_vectors import VECTOR_SEED, expected_cycles
from sim.common import edge, reset, start_clock
from sim.results import design_params, record


async def _run_to_done(dut, limit):
    """Run from a reset until ``done``; ``run_cycles`` counts the clock edges it took."""
    for cycle in range(limit):
        await edge(dut.clk)
        if int(dut.done.value):
            return {
                "passed": int(dut.passed.value),
                "failed": int(dut.failed.value),
                "errors": int(dut.errors.value),
                "cycles": int(dut.cycles.value),
                "run_cycles": cycle + 1,
            }
    raise AssertionError(f"the self-test did not finish in {limit} cycles")


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def selftest(dut):
    p = design_params()  # the runner passes rows and cols (and seed, if not the default)
    cycles_model = expected_cycles(p["rows"], p["cols"], p.get("seed", VECTOR_SEED))
    start_clock(dut.clk)
    await reset(dut.clk, dut.rst)
    first = await _run_to_done(dut, 100_000)
    # The reset button: press it in the middle of a run; the run starts over.
    await reset(dut.clk, dut.rst)
    for _ in range(first["run_cycles"] // 2):
        await edge(dut.clk)
    assert not int(dut.done.value), "done in the middle of a run"
    await reset(dut.clk, dut.rst)
    again = await _run_to_done(dut, 100_000)
    record(selftest={"first": first, "after_reset": again, "expected_cycles": cycles_model})
