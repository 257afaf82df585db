"""The training datapath's softmax/loss-error unit against the golden model, on both simulators."""
from sim.runner import run_cocotb


def test_loss_unit(simulator, report):
    r = run_cocotb("loss_unit", "sim.training.tb_loss_unit", simulator=simulator, params={"classes": 10},
                   env={"LOSS_ROWS": "150"})["loss_unit"]
    assert r["rows"] == 150
    report(f"loss unit on {simulator}: {r['rows']} rows of 10 logits, every error bit-exact")
