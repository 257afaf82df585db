"""The training core against the golden model, on both simulators.

Every step's weights and biases, and with ``check="full"`` every tensor the
core keeps (x, y, dy, dx, dW, db and the int8 weights), must equal
:func:`reference.training.train_step`'s bit for bit. The cycle counters are
deterministic: each phase's GEMM cycles must equal the engine's cycle model.
"""

import json

import pytest

from hdl.training.program import CoreGeometry, fit_geometry, plan_step
from sim.runner import run_cocotb
from sim.train import train
from sim.training.session import run_config, timing_differs

SMALL = dict(layers=(64, 16, 10), batch=8, epochs=1, plot=None, progress=False)


def _check_timing(r, layers, batch, geometry=CoreGeometry(), **kw):
    """The run's counters against docs/training.md's models (:func:`sim.training.session.timing_differs`):
    each phase's GEMM cycles the engine's cycle model, its active rows M per tile, and every step's cycles
    the op-by-op timing (:func:`hdl.training.program.step_cycles`)."""
    differs = timing_differs(r, plan_step(layers, batch, geometry, **kw))
    assert differs is None, differs


def _ops_not_driven(activation="relu", loss="ce", momentum=False):
    """The op bins (sim/training/tb_train.py) a run cannot reach: it has one activation, loss and update."""
    act = {"relu": "LEAKY", "leaky": "RELU"}[activation]
    other_loss = "MSE" if loss == "ce" else "CE"
    return [f"op:FWD {act}", f"op:DX {act}", f"op:LOSS {other_loss}", f"op:UPDATE {'SGD' if momentum else 'momentum'}"]


#: The robustness bins each robustness test drives.
ROBUSTNESS = {
    "bad_ops": [
        "error: unknown kind",
        "error: LOSS over classes",
        "error: LOSS of 0 rows",
        "error: LOSS words != classes",
        "empty ops end at once",
        "start while busy ignored",
        "host writes while busy ignored",
    ],
    "reset_mid_step": ["reset mid-step"],
}


@pytest.mark.parametrize("variant", ["default", "momentum-mse-leaky"])
def test_train_bit_exact(simulator, variant, report, functional_coverage):
    kw = {} if variant == "default" else dict(momentum=0.875, loss="mse", activation="leaky", lr=0.05)
    steps = 3 if simulator == "icarus" else 12
    r = train(**SMALL, **kw, backend=simulator, check="full", max_steps=steps)
    assert r["bit_exact"] is True and r["steps"] == steps
    plan_kw = {k: v for k, v in kw.items() if k in ("loss", "activation")}
    _check_timing(r, SMALL["layers"], SMALL["batch"], momentum=bool(kw.get("momentum")), **plan_kw)
    not_driven = _ops_not_driven(**plan_kw, momentum=bool(kw.get("momentum"))) + ["robustness:*"]
    functional_coverage(r, f"train ({variant}) on {simulator}", not_driven)
    report(
        f"training core on {simulator} ({variant}): {steps} steps of 64-16-10 batch 8, every kept tensor "
        f"bit-exact, {r['cycles_per_step']} cycles a step = timing model, GEMM cycles = engine model"
    )


def test_train_default_network(simulator, report, functional_coverage):
    """The default 64-32-10, batch 32: weights checked every step."""
    steps = 2 if simulator == "icarus" else 8
    r = train(
        layers=(64, 32, 10),
        batch=32,
        epochs=1,
        plot=None,
        progress=False,
        backend=simulator,
        check="weights",
        max_steps=steps,
    )
    assert r["bit_exact"] is True and r["steps"] == steps
    _check_timing(r, (64, 32, 10), 32)
    functional_coverage(r, f"train (64-32-10) on {simulator}", _ops_not_driven() + ["robustness:*"])
    report(
        f"training core on {simulator}: 64-32-10 batch 32, {steps} steps bit-exact, "
        f"{r['cycles_per_step']} cycles a step, utilization {100 * r['utilization']:.1f}%"
    )


@pytest.mark.parametrize(
    "layers, batch, array, pairs",
    [((64, 32, 10), 32, 4, False), ((64, 32, 10), 32, 16, True), ((64, 48, 32, 10), 32, 8, False)],
    ids=["4x4", "16x16-dsp-pairs", "64-48-32-10"],
)
def test_train_other_geometries(simulator, layers, batch, array, pairs, report):
    """``sim train --array R`` and a network the default core cannot hold (its result buffer needs
    1,356 words of 1,024): the memories sized by ``fit_geometry``, every kept tensor bit-exact, and
    the counters equal to the timing model on that array. The 16x16 core is the board's: its PEs share
    multipliers two by two (``--dsp-pairs``)."""
    steps = 1 if simulator == "icarus" else 4
    r = train(
        layers=layers,
        batch=batch,
        epochs=1,
        plot=None,
        progress=False,
        backend=simulator,
        check="full",
        max_steps=steps,
        array=array,
        dsp_pairs=pairs,
    )
    g = fit_geometry(layers, batch, array, base=CoreGeometry(dsp_pairs=pairs))
    assert r["bit_exact"] is True and r["steps"] == steps
    assert r["array"] == f"{array}x{array}" and r["geometry"] == g.params
    _check_timing(r, layers, batch, g)
    report(
        f"training core on {simulator}, {'-'.join(map(str, layers))} batch {batch} on {array}x{array}: {steps} "
        f"steps, every kept tensor bit-exact, {r['cycles_per_step']} cycles a step = timing model, "
        f"utilization {100 * r['utilization']:.1f}%"
    )


# tb_train's own tests that run on the default core (sim/coverage.py runs them too).
ROBUSTNESS_CASES = ["bad_ops", "reset_mid_step"]
DIRECTED_CASES = [
    "loss_divider",
    "wide_gemm",
    "post_shifts",
    "post_behind",
    "gemm_behind",
    "loss_behind",
    "forward_chain",
    "backward_chain",
    "post_readers",
    "post_padding",
]


def _run_testcase(simulator, testcase):
    """One of tb_train's own tests on the default core, with the small network's configuration."""
    cfg = run_config(SMALL["layers"], 1, SMALL["batch"], 0.2, 0.0, "ce", 0, "relu")
    return run_cocotb(
        "train",
        "sim.training.tb_train",
        simulator=simulator,
        params=CoreGeometry().params,
        testcase=testcase,
        env={"TRAIN_CONFIG": json.dumps(cfg)},
        quiet=True,
        tag="train",
    )


@pytest.mark.parametrize("testcase", ROBUSTNESS_CASES)
def test_train_core_robustness(simulator, testcase, report, functional_coverage):
    r = _run_testcase(simulator, testcase)
    other = [f"robustness:{b}" for t, bins in ROBUSTNESS.items() if t != testcase for b in bins]
    functional_coverage(r, f"train ({testcase}) on {simulator}", _ops_not_driven() + other)
    report(f"training core on {simulator}, {testcase}: {r[testcase]}")


@pytest.mark.parametrize("testcase", DIRECTED_CASES)
def test_train_core_directed(simulator, testcase, report):
    """Directed programs against the golden model: cross-entropy rows at each of the loss divider's
    quotient-bit thresholds; GEMMs of 600 columns in each mode, of K = 400, a tn GEMM whose B wraps the operand
    space, and with odd active-row counts, with their counters against the timing model; FWD and DX at
    requantizing shifts the plan never uses; post-ops running behind a GEMM that ends first and one that
    ends last, and behind the op that reads what they write (a GEMM, the loss unit), with the cycles
    against the schedule; a GEMM behind, with a post-op that follows it (reading its words as they
    are finished) and one that waits for it; the plan's GEMM behind its LOSS, at its delay and one
    cycle short of it; the plan's forward GEMM chained behind the one whose FWD follows it, and its dW GEMM
    chained behind the dX GEMM whose DX follows it, each at its delay and one cycle short of it."""
    r = _run_testcase(simulator, testcase)
    report(f"training core on {simulator}, {testcase}: {r[testcase]}")


def test_harness_catches_a_flipped_bit(simulator, report):
    """``make sim``'s check (the harness's signature of the masters, hdl/training/harness.py): equal to
    the golden step's, and after one master bit is flipped, different, with the read-back naming the
    flipped weight. (test_train_default_network runs the same check over whole steps, on both simulators.)"""
    cfg = run_config((64, 32, 10), 1, 32, 0.2, 0.0, "ce", 0, "relu")
    r = run_cocotb(
        "train_harness",
        "sim.training.tb_train",
        simulator=simulator,
        params=CoreGeometry().params,
        testcase="harness_catches",
        env={"TRAIN_CONFIG": json.dumps(cfg)},
        quiet=True,
        tag="train_harness",
    )
    report(f"training harness on {simulator}: {r['harness_catches']}")


@pytest.mark.regress
def test_train_accuracy_targets(report, functional_coverage):
    """The issue's targets on the RTL: 20 epochs, fixed point >= 94% and within 2 points of float."""
    r = train(epochs=20, plot=None, progress=False, backend="verilator")
    assert r["bit_exact"] is True
    assert r["test_accuracy"] >= 0.94
    assert r["test_accuracy"] >= r["float_test_accuracy"] - 0.02
    functional_coverage(r, "train (20 epochs) on verilator", _ops_not_driven() + ["robustness:*"])
    report(
        f"training core, 20 epochs on verilator: fixed {100 * r['test_accuracy']:.1f}%, "
        f"float {100 * r['float_test_accuracy']:.1f}%, {r['sim_cycles_per_second']:,.0f} cycles/s"
    )


@pytest.mark.regress
@pytest.mark.parametrize(
    "layers, batch", [((64, 48, 32, 10), 32), ((64, 128, 64, 10), 64)], ids=["64-48-32-10", "64-128-64-10"]
)
def test_deeper_networks_accuracy_targets(layers, batch, report):
    """Issue 14's deeper networks, 20 epochs on Verilator at lr 0.1 on the memories ``fit_geometry``
    sizes: bit-exact every step, fixed point >= 94% and within 2 points of float."""
    r = train(layers=layers, batch=batch, lr=0.1, epochs=20, plot=None, progress=False, backend="verilator")
    assert r["bit_exact"] is True and r["geometry"] == fit_geometry(layers, batch).params
    assert r["test_accuracy"] >= 0.94
    assert r["test_accuracy"] >= r["float_test_accuracy"] - 0.02
    report(
        f"training core, {'-'.join(map(str, layers))} batch {batch}, 20 epochs on verilator: fixed "
        f"{100 * r['test_accuracy']:.1f}%, float {100 * r['float_test_accuracy']:.1f}%, "
        f"utilization {100 * r['utilization']:.1f}%"
    )
