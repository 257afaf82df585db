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
from reference.training import Numerics, init_state, quantize_input, train_step, predict, lr_to_fixed

__all__ = ["TrainError", "train", "dump_step", "FixedRun", "schedule", "total_steps"]


class TrainError(ValueError):
    """A training configuration the hardware cannot run."""


def _check_layers(layers):
    if len(layers) < 2 or layers[0] != 64 or layers[-1] != 10 or min(layers) < 1:
        raise TrainError(f"--layers must start with 64 (8x8 pixels) and end with 10 (classes), not "
                         f"{','.join(map(str, layers))}")


def _epoch_order(seed, epoch, n):
    return np.random.default_rng((seed, epoch)).permutation(n)


def _scales(state, loss):
    """real = int · scale, for every tensor of a step (for --dump)."""
    n = state.numerics
    out = {}
    for l in range(len(state.w_master)):
        x = 2.0 ** -state.x_frac(l)
        e = 2.0 ** -n.e_frac(loss, len(state.w_master) - 1 - l)
        e_below = 2.0 ** -n.e_frac(loss, len(state.w_master) - l)
        out.update({f"x{l}": x, f"w{l}": 2.0 ** -n.w_frac, f"b{l}": x * 2.0 ** -n.w_frac,
                    f"y{l}": 2.0 ** -n.a_frac, f"dy{l}": e, f"dx{l}": e_below, f"dw{l}": x * e, f"db{l}": e,
                    f"w{l}_master": 2.0 ** -n.master_frac, f"b{l}_master": x * 2.0 ** -n.master_frac,
                    f"w{l}_new": 2.0 ** -n.master_frac, f"b{l}_new": x * 2.0 ** -n.master_frac})
    return out


def dump_step(path, step, state, loss, lr_applied):
    """``step0.npz``: a step's tensors as integers, each with ``KEY_scale`` (real = int · scale)."""
    arrays = {}
    for key, scale in _scales(state, loss).items():
        name, _, suffix = key.partition("_")          # "w0_master" -> "w0", "master"
        tensor, l = name.rstrip("0123456789"), int(name.lstrip("abcdefghijklmnopqrstuvwxyz"))
        value = step[f"{tensor}_{suffix}" if suffix else tensor][l]
        arrays[key] = np.asarray(value, dtype=np.int64)
        arrays[f"{key}_scale"] = np.float64(scale)
    arrays["labels"] = step["labels"]
    arrays["lr"] = np.float64(lr_applied)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def _config(layers, epochs, batch, lr, momentum, loss, seed, activation):
    """Check a run's arguments; return the dict both backends read (``$TRAIN_CONFIG`` for the RTL)."""
    _check_layers(layers)
    if loss not in ("ce", "mse"):
        raise TrainError(f"unknown loss {loss!r}; choose ce or mse")
    n = Numerics()
    if momentum not in (0.0, 0):
        if abs(momentum - (1 - 2.0 ** -n.momentum_shift)) > 1e-9:
            raise TrainError(f"--momentum must be 0 or {1 - 2.0 ** -n.momentum_shift} "
                             f"(s = 1 - 2^-{n.momentum_shift}, a shift in hardware)")
    n_train = len(load_split()[0])
    if not 1 <= batch <= n_train:
        raise TrainError(f"--batch must be between 1 and {n_train}")
    lr_q = lr_to_fixed(lr, batch, n)
    if lr_q == 0:
        raise TrainError(f"learning rate {lr} with batch {batch} rounds to 0 in the 16-bit format")
    return {"layers": list(layers), "epochs": epochs, "batch": batch, "lr_q": lr_q, "momentum": bool(momentum),
            "loss": loss, "seed": seed, "activation": activation,
            "lr_applied": lr_q * batch / 2.0 ** n.lr_frac}


def total_steps(cfg, n_train):
    """Steps in the run: whole minibatches per epoch, times the epochs, cut by ``max_steps``."""
    total = cfg["epochs"] * (n_train // cfg["batch"])
    return min(total, cfg["max_steps"]) if cfg.get("max_steps") else total


def schedule(cfg, n_train):
    """The run's minibatches: ``(epoch, index array, closes)``, ``closes`` on an
    epoch's last step (or the run's, when ``max_steps`` cuts it short). The
    last partial batch of an epoch is dropped."""
    batch, per_epoch = cfg["batch"], n_train // cfg["batch"]
    total = total_steps(cfg, n_train)
    for step in range(total):
        epoch, i = divmod(step, per_epoch)
        if i == 0:
            order = _epoch_order(cfg["seed"], epoch, n_train)
        yield epoch, order[i * batch:(i + 1) * batch], i == per_epoch - 1 or step == total - 1


class FixedRun:
    """The golden model's side of a run: its state, one step at a time, and its curves.

    Both backends drive it: ``reference`` alone, the RTL ones beside the
    hardware, which must match each step it returns."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.x_train, self.y_train, self.x_test, self.y_test = load_split()
        self.state = init_state(cfg["layers"], seed=cfg["seed"])
        self.n = self.state.numerics
        self.x8_train = quantize_input(self.x_train, self.n)
        self.x8_test = quantize_input(self.x_test, self.n)
        self.curves = {"epoch": [], "fixed_loss": [], "fixed_accuracy": []}
        self._losses, self.steps = [], 0

    def batches(self):
        return schedule(self.cfg, len(self.x_train))

    def step(self, idx):
        cfg = self.cfg
        out = train_step(self.state, self.x8_train[idx], self.y_train[idx], cfg["lr_q"], loss=cfg["loss"],
                         activation=cfg["activation"], momentum=cfg["momentum"])
        self._losses.append(_fixed_loss(out["y"][-1], self.y_train[idx], cfg["loss"], self.n))
        self.steps += 1
        # What else the hardware keeps after the step: its int8 weights and [W; b]'s momenta.
        out["w_new8"] = [self.state.weights8(l) for l in range(len(self.state.w_master))]
        out["momentum_new"] = [np.vstack([w, b[None, :]]) for w, b in zip(self.state.w_momentum, self.state.b_momentum)]
        return out

    def end_epoch(self, epoch):
        self.curves["epoch"].append(epoch + 1)
        self.curves["fixed_loss"].append(float(np.mean(self._losses)))
        self.curves["fixed_accuracy"].append(
            float(np.mean(predict(self.state, self.x8_test, self.cfg["activation"]) == self.y_test)))
        self._losses = []

    def dump(self, path, out):
        dump_step(path, out, self.state, self.cfg["loss"], self.cfg["lr_applied"])


def _float_curves(cfg):
    """The float twin trained on the same batches from the same initial weights."""
    from reference.float_training import FloatMlp          # torch: only where the float model runs
    x_train, y_train, x_test, y_test = load_split()
    state = init_state(cfg["layers"], seed=cfg["seed"])
    n = state.numerics
    model = FloatMlp.from_state(state, cfg["activation"])
    x_train = quantize_input(x_train, n) / 2.0 ** n.x_frac
    x_test = quantize_input(x_test, n) / 2.0 ** n.x_frac
    curves = {"float_loss": [], "float_accuracy": []}
    losses = []
    momentum = (1 - 2.0 ** -n.momentum_shift) if cfg["momentum"] else 0.0
    for _, idx, closes in schedule(cfg, len(x_train)):
        losses.append(model.step(x_train[idx], y_train[idx], cfg["lr_applied"], loss=cfg["loss"], momentum=momentum))
        if closes:
            curves["float_loss"].append(float(np.mean(losses)))
            curves["float_accuracy"].append(float(np.mean(model.predict(x_test) == y_test)))
            losses = []
    return curves


def train(layers=(64, 32, 10), epochs=20, batch=32, lr=0.2, momentum=0.0, loss="ce", seed=0,
          activation="relu", dump=None, plot=None, progress=True, backend="reference", check="weights",
          waves=False, max_steps=None):
    """Train both models; return the summary (``python -m sim train --json``'s keys and curves).

    With an RTL backend the golden model runs beside the training core and
    every step's weights and biases (``check="full"``: every kept tensor)
    must match; the first mismatch raises :class:`sim.runner.SimulationError`.
    """
    cfg = _config(layers, epochs, batch, lr, momentum, loss, seed, activation)
    cfg.update(check=check, max_steps=max_steps, progress=progress, dump=str(dump) if dump else None)
    start = time.perf_counter()
    if backend == "reference":
        result = _run_reference(cfg)
    else:
        result = _run_rtl(cfg, backend, waves)
    curves = {**result.pop("curves"), **_float_curves(cfg)}
    if plot:
        _plot(curves, plot)
    # The reference backend measures none of the hardware's figures; the RTL
    # backends' results fill them (and their wall_seconds is the RTL loop's).
    summary = {"bit_exact": None, "cycles": None, "cycles_by_phase": {"forward": None, "backward": None,
                                                                    "update": None},
               "utilization": None, "sim_cycles_per_second": None, "wall_seconds": time.perf_counter() - start}
    summary.update(result)
    summary.update(test_accuracy=curves["fixed_accuracy"][-1], float_test_accuracy=curves["float_accuracy"][-1],
                   lr_applied=cfg["lr_applied"], curves=curves)
    return summary


def _run_reference(cfg):
    run = FixedRun(cfg)
    bar = None
    if cfg["progress"]:
        from tqdm import tqdm
        bar = tqdm(total=total_steps(cfg, len(run.x_train)), unit="step", desc="training",
                   leave=False, disable=None)          # None: no bar when stderr is not a terminal
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


def rtl_geometry():
    """The training core's parameters: one build serves every run; a run that
    does not fit it is refused with the limit it hit."""
    from hdl.training.program import CoreGeometry
    return CoreGeometry()


def _run_rtl(cfg, backend, waves):
    """Run the cocotb training test; its log goes to a file and its progress
    (a small JSON file it rewrites each step) to this process's bar."""
    import tempfile
    import threading
    from hdl.training.program import plan_step, PlanError
    from .runner import run_cocotb

    geometry = rtl_geometry()
    try:
        plan_step(cfg["layers"], cfg["batch"], geometry, loss=cfg["loss"], activation=cfg["activation"],
                  momentum=cfg["momentum"])
    except PlanError as e:
        raise TrainError(str(e)) from None
    with tempfile.TemporaryDirectory() as tmp:
        progress = Path(tmp) / "progress.json"
        outcome = {}

        def work():
            try:
                outcome["results"] = run_cocotb(
                    "train", "sim.training.tb_train", simulator=backend, params=geometry.params,
                    testcase="train_run", waves=waves, quiet=True, tag="train",
                    env={"TRAIN_CONFIG": json.dumps(cfg), "TRAIN_PROGRESS": str(progress)})
            except BaseException as e:       # re-raised below, in this thread
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
                except ValueError:           # caught mid-write
                    continue
                if bar is None:
                    from tqdm import tqdm
                    bar = tqdm(total=p["total"], unit="step", desc=f"training on {backend}", leave=False,
                               disable=None)
                bar.update(p["steps"] - bar.n)
                bar.set_postfix(epoch=p["epoch"], cycles_per_step=p["cycles"])
        if bar:
            bar.close()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["results"]


def _fixed_loss(logits8, labels, loss, n):
    """The loss of the int8 logits, evaluated in float (for the curves only)."""
    y = np.asarray(logits8) / 2.0 ** n.a_frac
    if loss == "ce":
        z = y - y.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(labels)), labels]))
    t = np.eye(y.shape[1])[labels]
    return float(0.5 * ((t - y) ** 2).sum() / len(labels))


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
