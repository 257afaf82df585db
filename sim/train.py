"""``python -m sim train``: train the digits MLP in fixed point, beside its float twin.

Backend ``reference`` runs the bit-exact golden model (:mod:`reference.training`)
alone. The RTL backends need the training datapath (issue 4), which does not
exist yet: asking for them is an error, not a silent fallback.
"""
import time
from pathlib import Path

import numpy as np

from reference.digits import load_split
from reference.float_training import FloatMlp
from reference.training import Numerics, init_state, quantize_input, train_step, predict, lr_to_fixed

__all__ = ["TrainError", "train", "dump_step"]


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


def train(layers=(64, 32, 10), epochs=20, batch=32, lr=0.2, momentum=0.0, loss="ce", seed=0,
          activation="relu", dump=None, plot=None, progress=True):
    """Train both models; return the summary (``python -m sim train --json``'s keys and curves)."""
    _check_layers(layers)
    if loss not in ("ce", "mse"):
        raise TrainError(f"unknown loss {loss!r}; choose ce or mse")
    if momentum not in (0.0, 0):
        n = Numerics()
        if abs(momentum - (1 - 2.0 ** -n.momentum_shift)) > 1e-9:
            raise TrainError(f"--momentum must be 0 or {1 - 2.0 ** -n.momentum_shift} "
                             f"(s = 1 - 2^-{n.momentum_shift}, a shift in hardware)")
    x_train, y_train, x_test, y_test = load_split()
    if not 1 <= batch <= len(x_train):
        raise TrainError(f"--batch must be between 1 and {len(x_train)}")
    state = init_state(layers, seed=seed)
    n = state.numerics
    lr_q = lr_to_fixed(lr, batch, n)
    if lr_q == 0:
        raise TrainError(f"learning rate {lr} with batch {batch} rounds to 0 in the 16-bit format")
    lr_applied = lr_q * batch / 2.0 ** n.lr_frac
    float_model = FloatMlp.from_state(state, activation)
    x8_train, x8_test = quantize_input(x_train, n), quantize_input(x_test, n)
    steps_per_epoch = len(x_train) // batch          # the last partial batch is dropped
    curves = {"epoch": [], "fixed_loss": [], "float_loss": [], "fixed_accuracy": [], "float_accuracy": []}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=epochs * steps_per_epoch, unit="step", desc="training", leave=False)
    start = time.perf_counter()
    steps = 0
    for epoch in range(epochs):
        order = _epoch_order(seed, epoch, len(x_train))
        fixed_losses, float_losses = [], []
        for i in range(steps_per_epoch):
            idx = order[i * batch:(i + 1) * batch]
            step = train_step(state, x8_train[idx], y_train[idx], lr_q, loss=loss, activation=activation,
                              momentum=bool(momentum))
            if dump and steps == 0:
                dump_step(Path(dump) / "step0.npz", step, state, loss, lr_applied)
            fixed_losses.append(_fixed_loss(step["y"][-1], y_train[idx], loss, n))
            float_losses.append(float_model.step(x8_train[idx] / 2.0 ** n.x_frac, y_train[idx], lr_applied,
                                                 loss=loss, momentum=momentum))
            steps += 1
            if bar:
                bar.update()
        curves["epoch"].append(epoch + 1)
        curves["fixed_loss"].append(float(np.mean(fixed_losses)))
        curves["float_loss"].append(float(np.mean(float_losses)))
        curves["fixed_accuracy"].append(float(np.mean(predict(state, x8_test, activation) == y_test)))
        curves["float_accuracy"].append(float(np.mean(float_model.predict(x8_test / 2.0 ** n.x_frac) == y_test)))
        if bar:
            bar.set_postfix(fixed=f"{curves['fixed_accuracy'][-1]:.3f}", float=f"{curves['float_accuracy'][-1]:.3f}")
    if bar:
        bar.close()
    if plot:
        _plot(curves, plot)
    return {
        "bit_exact": None,            # nothing to compare with: no RTL ran
        "test_accuracy": curves["fixed_accuracy"][-1],
        "float_test_accuracy": curves["float_accuracy"][-1],
        "steps": steps,
        "cycles": None,
        "cycles_by_phase": {"forward": None, "backward": None, "update": None},
        "utilization": None,
        "sim_cycles_per_second": None,
        "lr_applied": lr_applied,
        "wall_seconds": time.perf_counter() - start,
        "curves": curves,
    }


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
