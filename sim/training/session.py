"""A training run's golden side, shared by the command line (:mod:`sim.train`)
and the RTL testbench (:mod:`sim.training.tb_train`): the run's checked
configuration, its minibatch schedule, and the fixed-point model stepping
through it (:class:`FixedRun`).

Nothing here parses arguments or prints; a configuration the hardware cannot
run raises :class:`TrainError` with the limit it hit.
"""

import math
from pathlib import Path

import numpy as np

from reference.digits import load_split
from reference.training import Numerics, init_state, lr_to_fixed, predict, quantize_input, train_step

__all__ = ["TrainError", "run_config", "total_steps", "schedule", "FixedRun", "dump_step", "fixed_loss"]


class TrainError(ValueError):
    """A training configuration the hardware cannot run."""


def _check_layers(layers):
    if len(layers) < 2 or layers[0] != 64 or layers[-1] != 10 or min(layers) < 1:
        raise TrainError(
            f"--layers must start with 64 (8x8 pixels) and end with 10 (classes), not {','.join(map(str, layers))}"
        )


def run_config(layers, epochs, batch, lr, momentum, loss, seed, activation, max_steps=None):
    """Check a run's arguments; return the dict both backends read (``$TRAIN_CONFIG`` for the RTL)."""
    _check_layers(layers)
    if loss not in ("ce", "mse"):
        raise TrainError(f"unknown loss {loss!r}; choose ce or mse")
    if not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise TrainError(f"--seed must be a whole number >= 0 (it seeds NumPy's generator), not {seed}")
    n = Numerics()
    if momentum not in (0.0, 0):
        if abs(momentum - (1 - 2.0**-n.momentum_shift)) > 1e-9:
            raise TrainError(
                f"--momentum must be 0 or {1 - 2.0**-n.momentum_shift} "
                f"(s = 1 - 2^-{n.momentum_shift}, a shift in hardware)"
            )
    n_train = len(load_split()[0])
    if not 1 <= batch <= n_train:
        raise TrainError(f"--batch must be between 1 and {n_train}")
    if not (math.isfinite(lr) and lr > 0):
        raise TrainError(f"--lr must be a finite number above 0, not {lr}")
    # The core applies lr/batch as a 16-bit unsigned fraction of 2^-lr_frac.
    # lr_to_fixed rounds lr/batch · 2^lr_frac to nearest: it fits below 2^16 - 1/2.
    lr_max = ((1 << 16) - 0.5) * batch / 2.0**n.lr_frac
    if lr >= lr_max:
        raise TrainError(
            f"--lr {lr} with batch {batch} does not fit the 16-bit fixed-point learning rate "
            f"(lr/batch below {2.0 ** (16 - n.lr_frac):g}): use an lr below {lr_max:.6g}"
        )
    lr_q = lr_to_fixed(lr, batch, n)
    if lr_q == 0:
        raise TrainError(f"learning rate {lr} with batch {batch} rounds to 0 in the 16-bit format")
    return {
        "layers": list(layers),
        "epochs": epochs,
        "batch": batch,
        "lr_q": lr_q,
        "momentum": bool(momentum),
        "loss": loss,
        "seed": seed,
        "activation": activation,
        "max_steps": max_steps,
        "lr_applied": lr_q * batch / 2.0**n.lr_frac,
    }


def total_steps(cfg, n_train):
    """Steps in the run: whole minibatches per epoch, times the epochs, cut by ``max_steps``."""
    total = cfg["epochs"] * (n_train // cfg["batch"])
    return min(total, cfg["max_steps"]) if cfg.get("max_steps") else total


def _epoch_order(seed, epoch, n):
    return np.random.default_rng((seed, epoch)).permutation(n)


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
        yield epoch, order[i * batch : (i + 1) * batch], i == per_epoch - 1 or step == total - 1


def _scales(state, loss):
    """real = int · scale, for every tensor of a step (for --dump)."""
    n = state.numerics
    out = {}
    for l in range(len(state.w_master)):
        x = 2.0 ** -state.x_frac(l)
        e = 2.0 ** -n.e_frac(loss, len(state.w_master) - 1 - l)
        e_below = 2.0 ** -n.e_frac(loss, len(state.w_master) - l)
        out.update(
            {
                f"x{l}": x,
                f"w{l}": 2.0**-n.w_frac,
                f"b{l}": x * 2.0**-n.w_frac,
                f"y{l}": 2.0**-n.a_frac,
                f"dy{l}": e,
                f"dx{l}": e_below,
                f"dw{l}": x * e,
                f"db{l}": e,
                f"w{l}_master": 2.0**-n.master_frac,
                f"b{l}_master": x * 2.0**-n.master_frac,
                f"w{l}_new": 2.0**-n.master_frac,
                f"b{l}_new": x * 2.0**-n.master_frac,
            }
        )
    return out


def dump_step(path, step, state, loss, lr_applied):
    """``step0.npz``: a step's tensors as integers, each with ``KEY_scale`` (real = int · scale)."""
    arrays = {}
    for key, scale in _scales(state, loss).items():
        name, _, suffix = key.partition("_")  # "w0_master" -> "w0", "master"
        tensor, l = name.rstrip("0123456789"), int(name.lstrip("abcdefghijklmnopqrstuvwxyz"))
        value = step[f"{tensor}_{suffix}" if suffix else tensor][l]
        arrays[key] = np.asarray(value, dtype=np.int64)
        arrays[f"{key}_scale"] = np.float64(scale)
    arrays["labels"] = step["labels"]
    arrays["lr"] = np.float64(lr_applied)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def fixed_loss(logits8, labels, loss, n):
    """The loss of the int8 logits, evaluated in float (for the curves only)."""
    y = np.asarray(logits8) / 2.0**n.a_frac
    if loss == "ce":
        z = y - y.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(labels)), labels]))
    t = np.eye(y.shape[1])[labels]
    return float(0.5 * ((t - y) ** 2).sum() / len(labels))


class FixedRun:
    """The golden model's side of a run: its state, one step at a time, and its curves.

    Both backends drive it: ``reference`` alone, the RTL ones beside the
    hardware, which must match each step it returns."""

    def __init__(self, cfg, lanes):
        """``lanes``: the core's R, the update's word (the LFSR's draws follow its walk)."""
        self.cfg = cfg
        self.x_train, self.y_train, self.x_test, self.y_test = load_split()
        self.state = init_state(cfg["layers"], seed=cfg["seed"], lanes=lanes)
        self.n = self.state.numerics
        self.x8_train = quantize_input(self.x_train, self.n)
        self.x8_test = quantize_input(self.x_test, self.n)
        self.curves = {"epoch": [], "fixed_loss": [], "fixed_accuracy": []}
        self._losses, self.steps = [], 0

    def batches(self):
        return schedule(self.cfg, len(self.x_train))

    def step(self, idx):
        cfg = self.cfg
        out = train_step(
            self.state,
            self.x8_train[idx],
            self.y_train[idx],
            cfg["lr_q"],
            loss=cfg["loss"],
            activation=cfg["activation"],
            momentum=cfg["momentum"],
        )
        self._losses.append(fixed_loss(out["y"][-1], self.y_train[idx], cfg["loss"], self.n))
        self.steps += 1
        # What else the hardware keeps after the step: its int8 weights and [W; b]'s momenta.
        out["w_new8"] = [self.state.weights8(l) for l in range(len(self.state.w_master))]
        out["momentum_new"] = [np.vstack([w, b[None, :]]) for w, b in zip(self.state.w_momentum, self.state.b_momentum)]
        return out

    def end_epoch(self, epoch):
        self.curves["epoch"].append(epoch + 1)
        self.curves["fixed_loss"].append(float(np.mean(self._losses)))
        self.curves["fixed_accuracy"].append(
            float(np.mean(predict(self.state, self.x8_test, self.cfg["activation"]) == self.y_test))
        )
        self._losses = []

    def dump(self, path, out):
        dump_step(path, out, self.state, self.cfg["loss"], self.cfg["lr_applied"])


def timing_differs(results, plan):
    """What of a run's cycle counters differs from ``plan``'s models, or None.

    Each phase's GEMM cycles and active rows must equal
    :func:`hdl.training.program.phase_counts` times the steps run, and every
    step's cycles :func:`hdl.training.program.step_cycles` (docs/training.md).
    """
    from hdl.training.program import phase_counts, step_cycles

    (gemm, active), step, steps = phase_counts(plan), step_cycles(plan), results.get("steps", 0)
    if results.get("gemm_cycles_by_phase") != {k: v * steps for k, v in gemm.items()}:
        return f"GEMM cycles by phase {results.get('gemm_cycles_by_phase')}, engine model {gemm} a step"
    if results.get("active_rows_by_phase") != {k: v * steps for k, v in active.items()}:
        return f"active rows by phase {results.get('active_rows_by_phase')}, M per tile {active} a step"
    if results.get("step_cycles") != [step]:
        return f"step cycles {results.get('step_cycles')}, timing model {step}"
    return None
