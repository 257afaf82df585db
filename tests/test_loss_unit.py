"""The training datapath's softmax/loss-error unit against the golden model, on both simulators."""

import pytest

from sim.runner import run_cocotb


@pytest.mark.parametrize("classes,lanes", [(10, 8), (16, 4)])
def test_loss_unit(simulator, classes, lanes, report, functional_coverage):
    results = run_cocotb(
        "loss_unit",
        "sim.training.tb_loss_unit",
        simulator=simulator,
        params={"classes": classes, "lanes": lanes},
        env={"LOSS_ROWS": "150"},
    )
    r = results["loss_unit"]
    functional_coverage(results, f"loss_unit {classes} classes, {lanes} lanes on {simulator}")
    assert r["rows"] == 150 and r["near_steps"] > 0
    report(
        f"loss unit ({classes} classes, {lanes} lanes) on {simulator}: 150 random rows of 2..{classes} logits "
        f"and {r['near_steps']} cross-entropy rows near a rounding step, every error bit-exact"
    )
