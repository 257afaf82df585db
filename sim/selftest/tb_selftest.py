"""cocotb test of ``GemmSelfTest``: it runs to the end, reports, and a reset
in the middle of a run starts it again. It records what the self-test
reported; tests/test_selftest.py decides whether that was right (a design
with an injected fault must fail)."""
import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from reference.selftest_vectors import expected_cycles, VECTOR_SEED
from sim.results import record, design_params


async def _run_to_done(dut, limit):
    for cycle in range(limit):
        await RisingEdge(dut.clk)
        await ReadOnly()
        if int(dut.done.value):
            return {"passed": int(dut.passed.value), "failed": int(dut.failed.value),
                    "errors": int(dut.errors.value), "cycles": int(dut.cycles.value), "run_cycles": cycle + 1}
    raise AssertionError(f"the self-test did not finish in {limit} cycles")


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def selftest(dut):
    p = design_params()        # the runner passes rows and cols (and seed, if not the default)
    cycles_model = expected_cycles(p["rows"], p["cols"], p.get("seed", VECTOR_SEED))
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    first = await _run_to_done(dut, 100_000)
    # The reset button: press it in the middle of a run; the run starts over.
    await RisingEdge(dut.clk)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await ClockCycles(dut.clk, first["run_cycles"] // 2)
    await ReadOnly()
    assert not int(dut.done.value), "done in the middle of a run"
    await RisingEdge(dut.clk)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    again = await _run_to_done(dut, 100_000)
    record(selftest={"first": first, "after_reset": again, "expected_cycles": cycles_model})
