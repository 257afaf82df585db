"""The board's self-test logic, without the board's I/O, on both simulators:
it passes on the real array with the cycle count the model predicts, runs
again after a reset, and fails when a PE's weights are stuck at zero."""

from sim.runner import run_cocotb


def _run(simulator, **params):
    return run_cocotb(
        "selftest", "sim.selftest.tb_selftest", simulator=simulator, params={"rows": 4, "cols": 4, **params}
    )["selftest"]


def _check_passes(r):
    for run in (r["first"], r["after_reset"]):
        assert run["passed"] == 1 and run["failed"] == 0 and run["errors"] == 0
        assert run["cycles"] == r["expected_cycles"]
    assert r["after_reset"] == r["first"]


def test_selftest_passes(simulator, report):
    r = _run(simulator)
    _check_passes(r)
    report(
        f"self-test 4x4 on {simulator}: passed, {r['first']['cycles']} GEMM cycles "
        f"(model {r['expected_cycles']}), {r['first']['run_cycles']} cycles in all"
    )


def test_board_selftest_8x8(report):
    """The board's configuration; README quotes the count the display shows."""
    r = _run("verilator", rows=8, cols=8)
    _check_passes(r)
    assert r["first"]["cycles"] == 0x151
    report(f"self-test 8x8 (the board's) on verilator: passed, {r['first']['cycles']} GEMM cycles")


def test_selftest_fails_on_a_stuck_pe(simulator):
    # A corner PE on one simulator, an inner bottom-row one on the other.
    stuck_pe = [0, 0] if simulator == "icarus" else [3, 1]
    r = _run(simulator, stuck_pe=stuck_pe)
    assert r["first"]["failed"] == 1 and r["first"]["passed"] == 0
    assert r["first"]["errors"] > 0
