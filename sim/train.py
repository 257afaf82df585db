"""``python -m sim train``: train the digits MLP in fixed point, beside its float twin.

Backend ``reference`` runs the bit-exact golden model (:mod:`reference.training`)
alone. The RTL backends (``icarus``, ``verilator``) train through the
training core (:class:`hdl.training.core.TrainCore`) in cocotb, with the
golden model beside it checking every step (:mod:`sim.training.tb_train`).
The float twin runs here, on the same batches, for both.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from reference.digits import load_split
from reference.training import init_state, quantize_input

from .training.session import FixedRun, TrainError, run_config, schedule, total_steps

__all__ = ["TrainError", "train"]


def _float_curves(cfg):
    """The float twin trained on the same batches from the same initial weights."""
    from reference.float_training import FloatMlp  # torch: only where the float model runs

    x_train, y_train, x_test, y_test = load_split()
    state = init_state(cfg["layers"], seed=cfg["seed"])
    n = state.numerics
    model = FloatMlp.from_state(state, cfg["activation"])
    x_train = quantize_input(x_train, n) / 2.0**n.x_frac
    x_test = quantize_input(x_test, n) / 2.0**n.x_frac
    curves = {"float_loss": [], "float_accuracy": []}
    losses = []
    momentum = (1 - 2.0**-n.momentum_shift) if cfg["momentum"] else 0.0
    for _, idx, closes in schedule(cfg, len(x_train)):
        losses.append(model.step(x_train[idx], y_train[idx], cfg["lr_applied"], loss=cfg["loss"], momentum=momentum))
        if closes:
            curves["float_loss"].append(float(np.mean(losses)))
            curves["float_accuracy"].append(float(np.mean(model.predict(x_test) == y_test)))
            losses = []
    return curves


def train(
    layers=(64, 32, 10),
    epochs=20,
    batch=32,
    lr=0.2,
    momentum=0.0,
    loss="ce",
    seed=0,
    activation="relu",
    dump=None,
    plot=None,
    progress=True,
    backend="reference",
    check="weights",
    waves=False,
    max_steps=None,
    array=8,
    dsp_pairs=False,
    ceiling=False,
):
    """Train both models; return the summary (``python -m sim train --json``'s keys and curves).

    With an RTL backend the golden model runs beside the training core and
    every step's weights and biases (``check="full"``: every kept tensor)
    must match; the first mismatch raises :class:`sim.runner.SimulationError`.
    With ``ceiling`` the RTL run goes on with ``clock_ceiling`` (:mod:`sim.training.tb_train`): the
    same core's steps with no host transfer between them, whose ``ceiling_cycles_per_second`` bounds
    ``sim_cycles_per_second``.
    """
    cfg = run_config(layers, epochs, batch, lr, momentum, loss, seed, activation, max_steps=max_steps)
    cfg.update(check=check, progress=progress, dump=str(dump) if dump else None)
    start = time.perf_counter()
    if backend == "reference":
        _check_array(array)
        result = _run_reference(cfg, array)
    else:
        result = _run_rtl(cfg, backend, waves, array, dsp_pairs, ceiling)
    curves = {**result.pop("curves"), **_float_curves(cfg)}
    if plot:
        _plot(curves, plot)
    # The reference backend measures none of the hardware's figures; the RTL
    # backends' results fill them (and their wall_seconds is the RTL loop's).
    summary = {
        "bit_exact": None,
        "array": None,
        "geometry": None,
        "cycles": None,
        "cycles_by_phase": {"forward": None, "backward": None, "update": None},
        "utilization": None,
        "sim_cycles_per_second": None,
        "ceiling_cycles_per_second": None,
        "wall_seconds": time.perf_counter() - start,
    }
    summary.update(result)
    summary.update(
        test_accuracy=curves["fixed_accuracy"][-1],
        float_test_accuracy=curves["float_accuracy"][-1],
        lr_applied=cfg["lr_applied"],
        curves=curves,
    )
    return summary


def _run_reference(cfg, array):
    run = FixedRun(cfg, lanes=array)  # the update's word is the array's R, as on the core
    bar = None
    if cfg["progress"]:
        from tqdm import tqdm

        bar = tqdm(
            total=total_steps(cfg, len(run.x_train)), unit="step", desc="training", leave=False, disable=None
        )  # None: no bar when stderr is not a terminal
    for epoch, idx, closes in run.batches():
        out = run.step(idx)
        if cfg["dump"] and run.steps == 1:
            run.dump(Path(cfg["dump"]) / "step0.npz", out)
        if closes:
            run.end_epoch(epoch)
        if bar:
            bar.update()
    if bar:
        bar.close()
    return {"steps": run.steps, "curves": run.curves}


#: The arrays ``sim train --array R`` builds: R × R, R a power of two (the engine's operand lanes).
ARRAYS = (2, 4, 8, 16, 32)


def _check_array(array):
    if array not in ARRAYS:
        raise TrainError(f"--array must be one of {', '.join(map(str, ARRAYS))} (an R x R array), not {array}")


def rtl_geometry(cfg, array=8, dsp_pairs=False):
    """The training core's parameters for this run: the default core's memories, each grown to
    hold this network at this batch (:func:`hdl.training.program.fit_geometry`). Runs that fit
    the default core share its build; a run no geometry can hold is refused with the memory it
    needs."""
    from hdl.training.program import CoreGeometry, PlanError, fit_geometry, plan_step

    _check_array(array)
    try:
        geometry = fit_geometry(cfg["layers"], cfg["batch"], rows=array, base=CoreGeometry(dsp_pairs=dsp_pairs))
        plan_step(
            cfg["layers"],
            cfg["batch"],
            geometry,
            loss=cfg["loss"],
            activation=cfg["activation"],
            momentum=cfg["momentum"],
        )
    except PlanError as e:
        raise TrainError(str(e)) from None
    return geometry


def _run_rtl(cfg, backend, waves, array, dsp_pairs, ceiling):
    """Run the cocotb training test; its log goes to a file and its progress
    (a small JSON file it rewrites each step) to this process's bar."""
    import tempfile
    import threading

    from hdl.training.program import CoreGeometry

    from .runner import run_cocotb

    geometry = rtl_geometry(cfg, array, dsp_pairs)
    from hdl.training.harness import MAX_RANGES

    params = dict(geometry.params)
    # The harness reads back each layer's master weights and biases: its default ranges unless it needs more.
    ranges = 2 * (len(cfg["layers"]) - 1)
    if ranges > MAX_RANGES:
        params["max_ranges"] = ranges
    with tempfile.TemporaryDirectory() as tmp:
        progress = Path(tmp) / "progress.json"
        outcome = {}

        def work():
            try:
                outcome["results"] = run_cocotb(
                    # The core inside a simulation host that moves each step's data in hardware.
                    "train_harness",
                    "sim.training.tb_train",
                    simulator=backend,
                    params=params,
                    # clock_ceiling after the run: the same core with no host transfer between steps.
                    testcase=["train_run", "clock_ceiling"] if ceiling else "train_run",
                    waves=waves,
                    quiet=True,
                    # The default core keeps its short name; any other geometry builds apart, named by it.
                    tag="train_harness" if params == CoreGeometry().params else None,
                    env={"TRAIN_CONFIG": json.dumps(cfg), "TRAIN_PROGRESS": str(progress)},
                )
            except BaseException as e:  # re-raised below, in this thread
                outcome["error"] = e

        thread = threading.Thread(target=work, daemon=True)
        if cfg["progress"]:
            print(f"building the training core for {backend} and starting it...", file=sys.stderr, flush=True)
        thread.start()
        bar = None
        while thread.is_alive():
            thread.join(0.25)
            if cfg["progress"] and progress.exists():
                try:
                    p = json.loads(progress.read_text())
                except ValueError:  # caught mid-write
                    continue
                if bar is None:
                    from tqdm import tqdm

                    bar = tqdm(total=p["total"], unit="step", desc=f"training on {backend}", leave=False, disable=None)
                bar.update(p["steps"] - bar.n)
                bar.set_postfix(epoch=p["epoch"], cycles_per_step=p["cycles"])
        if bar:
            bar.close()
    if "error" in outcome:
        raise outcome["error"]
    return {**outcome["results"], "geometry": geometry.params}


def _plot(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for kind, style, label in (("fixed", "-", "fixed point"), ("float", "--", "float")):
        ax_loss.plot(curves["epoch"], curves[f"{kind}_loss"], style, label=label)
        ax_acc.plot(curves["epoch"], [100 * a for a in curves[f"{kind}_accuracy"]], style, label=label)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="digits test split")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
