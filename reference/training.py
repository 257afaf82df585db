"""Bit-exact fixed-point MLP training: the golden model of the training datapath.

Written from the backprop equations (``docs/numerics.md``, "Training"):

* forward  ``Y = X·W + b`` per layer, ReLU (or leaky ReLU, slope 2^-k) on
  hidden layers, a linear output layer;
* loss error ``dL/dY``: softmax cross-entropy ``p - t`` or MSE ``y - t``,
  with ``L = Σ ½(t - y)²``;
* backward ``dX = dY·Wᵀ``, ``dW = Xᵀ·dY``, ``db = Σ_batch dY``, with the
  activation's derivative mask on ``dX``;
* update ``W' = W - η·g`` with ``g = dW`` or, with momentum s,
  ``g_t = s·g_{t-1} + (1-s)·dW``.

Every tensor is an integer with a power-of-two scale (real = int · 2^-frac).
GEMM operands are int8 and accumulate in int32; master weights and biases
keep 8 more fractional bits (int16 and int32) and are updated with
stochastic rounding from a 16-bit LFSR, so small updates do not vanish.
Every rounding and saturation is below, once.
"""

from dataclasses import dataclass, field

import numpy as np

from .training_numerics import LFSR_SEED, LFSR_TAPS, Numerics, exp_rom

__all__ = [
    "Numerics",
    "MlpState",
    "Lfsr16",
    "init_state",
    "forward",
    "train_step",
    "exp_table",
    "quantize_input",
    "round_half_up_shift",
    "lr_to_fixed",
    "predict",
    "update_draws",
    "stochastic_round_with",
]


def sat(x, bits):
    """Saturate to a signed ``bits``-bit integer."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(np.asarray(x, dtype=np.int64), lo, hi)


def round_half_up_shift(x, s):
    """``x / 2^s`` rounded to nearest, ties toward +inf: ``(x + 2^(s-1)) >> s``; ``x << -s`` for s < 0."""
    x = np.asarray(x, dtype=np.int64)
    if s <= 0:
        return x << -s
    return (x + (1 << (s - 1))) >> s


class Lfsr16:
    """16-bit Galois LFSR, x^16 + x^14 + x^13 + x^11 + 1 (period 65,535), stepped once per value."""

    TAPS = LFSR_TAPS

    def __init__(self, seed=LFSR_SEED):
        if not 0 < seed < 1 << 16:
            raise ValueError("the LFSR seed must be a nonzero 16-bit value")
        self.state = seed

    def next(self):
        lsb = self.state & 1
        self.state >>= 1
        if lsb:
            self.state ^= self.TAPS
        return self.state

    def draws(self, n):
        return np.array([self.next() for _ in range(n)], dtype=np.int64)


def stochastic_round_shift(x, s, lfsr):
    """``x / 2^s`` rounded stochastically: ``floor`` plus 1 when the dropped
    bits exceed the low ``s`` bits of a fresh LFSR value (one per element, in
    row-major order). Past 16 bits, the lowest ``s - 16`` are first dropped
    by flooring and the top 16 rounded so. ``x << -s`` for s <= 0."""
    x = np.asarray(x, dtype=np.int64)
    r = lfsr.draws(x.size).reshape(x.shape) if s > 0 else 0
    return stochastic_round_with(x, s, r)


def update_draws(rows, cols, s_w, s_b, lfsr, lanes):
    """The LFSR values the update of one layer rounds with: ``(r_w, r_b)``,
    shaped as its ``rows`` x ``cols`` weights and ``cols`` biases.

    The update walks ``[W; b]`` (the weights' rows, then the biases' row) a
    word column at a time: the first ``lanes`` output units down every row,
    then the next ``lanes``. Each element of a row whose shift is positive
    takes one fresh value, lanes in order; a row with ``s <= 0`` takes none
    (its step is an exact shift) and its entries here are 0.
    """
    r_w = np.zeros((rows, cols), dtype=np.int64)
    r_b = np.zeros(cols, dtype=np.int64)
    for c0 in range(0, cols, lanes):
        width = min(lanes, cols - c0)
        if s_w > 0:
            for i in range(rows):
                r_w[i, c0 : c0 + width] = lfsr.draws(width)
        if s_b > 0:
            r_b[c0 : c0 + width] = lfsr.draws(width)
    return r_w, r_b


def stochastic_round_with(x, s, r):
    """``x / 2^s`` rounded stochastically with the LFSR values ``r`` (one per
    element of ``x``): ``floor``, plus 1 when the dropped bits exceed the low
    ``s`` bits of the element's value. Past 16 bits, the lowest ``s - 16`` are
    first dropped by flooring and the top 16 rounded so. ``x << -s`` for s <= 0."""
    x = np.asarray(x, dtype=np.int64)
    if s <= 0:
        return x << -s
    if s > 16:
        x, s = x >> (s - 16), 16
    r = np.asarray(r, dtype=np.int64) & ((1 << s) - 1)
    return (x >> s) + ((x & ((1 << s) - 1)) > r)


def exp_table(numerics):
    """The softmax's exponent ROM (:func:`reference.training_numerics.exp_rom`, its one definition) as an array."""
    return np.array(exp_rom(numerics), dtype=np.int64)


def lr_to_fixed(lr, batch, numerics):
    """The learning rate the hardware applies: ``round(lr / batch · 2^lr_frac)``, 16-bit unsigned."""
    q = int(np.floor(lr / batch * (1 << numerics.lr_frac) + 0.5))
    if not 0 <= q < 1 << 16:
        raise ValueError(f"learning rate {lr} with batch {batch} does not fit the 16-bit format")
    return q


@dataclass
class MlpState:
    """On-chip state across steps: masters, momenta, the LFSR."""

    layers: tuple  # widths, e.g. (64, 32, 10)
    w_master: list  # int16, (in, out), scale 2^-master_frac
    b_master: list  # int32, (out,), scale 2^-(x_frac_l + w_frac + master_extra)
    w_momentum: list = field(default_factory=list)  # int32 at dW's accumulator scale
    b_momentum: list = field(default_factory=list)
    lfsr: Lfsr16 = field(default_factory=Lfsr16)
    numerics: Numerics = field(default_factory=Numerics)
    #: The update's word: output units updated side by side (the core's R);
    #: the LFSR's draws follow its walk (:func:`update_draws`).
    lanes: int = 8

    def x_frac(self, l):
        """Fractional bits of layer l's input: pixels for l = 0, activations after."""
        return self.numerics.x_frac if l == 0 else self.numerics.a_frac

    def weights8(self, l):
        """The int8 weights the GEMMs use: the master's top byte, rounded half up and saturated."""
        return sat(round_half_up_shift(self.w_master[l], self.numerics.master_extra), 8)

    def bias(self, l):
        """The int32 bias at layer l's accumulator scale."""
        return sat(round_half_up_shift(self.b_master[l], self.numerics.master_extra), 32)


def init_state(layers, seed=0, numerics=Numerics(), lanes=8):
    """Kaiming initialization, N(0, 2/n_in), quantized to the int16 masters; biases 0.
    ``lanes``: the update's word width (:class:`MlpState`)."""
    rng = np.random.default_rng(seed)
    w = [
        sat(np.floor(rng.normal(0, np.sqrt(2 / n_in), (n_in, n_out)) * (1 << numerics.master_frac) + 0.5), 16)
        for n_in, n_out in zip(layers, layers[1:])
    ]
    b = [np.zeros(n_out, dtype=np.int64) for n_out in layers[1:]]
    return MlpState(
        tuple(layers),
        w,
        b,
        [np.zeros_like(x) for x in w],
        [np.zeros_like(x) for x in b],
        numerics=numerics,
        lanes=lanes,
    )


def quantize_input(x, numerics=Numerics()):
    """Pixels in [0, 1] to int8: ``sat8(round_half_up(x · 2^x_frac))``."""
    return sat(np.floor(np.asarray(x) * (1 << numerics.x_frac) + 0.5), 8)


def _activate(y8, activation, numerics):
    if activation == "relu":
        return np.maximum(y8, 0)
    return np.where(y8 > 0, y8, y8 >> numerics.leaky_shift)  # leaky: floor(y · 2^-k)


def forward(state, x8, activation="relu"):
    """Per layer: the input, the int32 accumulator and the int8 pre-activation output.

    ``acc = X·W8 + b``; ``y = sat8(round_half_up(acc / 2^(x_frac + w_frac - a_frac)))``;
    hidden layers pass ``act(y)`` on.
    """
    n = state.numerics
    xs, ys = [], []
    x = np.asarray(x8, dtype=np.int64)
    for l in range(len(state.w_master)):
        xs.append(x)
        acc = x @ state.weights8(l) + state.bias(l)
        y = sat(round_half_up_shift(acc, state.x_frac(l) + n.w_frac - n.a_frac), 8)
        ys.append(y)
        if l < len(state.w_master) - 1:
            x = _activate(y, activation, n)
    return xs, ys


def loss_error(logits8, labels, loss, numerics):
    """``dL/dY`` at the output, int8.

    Cross-entropy: ``p_i = E[max - y_i] / Σ E`` with the exponent table,
    ``p_q = min(127, round_half_up(p · 2^7))`` and ``dY = p_q - 128·t``
    (scale 2^-7). MSE: ``dY = sat8(y - 2^a_frac · t)`` (the logits' scale).
    """
    y = np.asarray(logits8, dtype=np.int64)
    onehot = np.eye(y.shape[1], dtype=np.int64)[labels]
    if loss == "ce":
        e = exp_table(numerics)[y.max(axis=1, keepdims=True) - y]
        s = e.sum(axis=1, keepdims=True)
        p = np.minimum((e * 2 * (1 << numerics.e_frac_ce) + s) // (2 * s), 127)
        return p - (1 << numerics.e_frac_ce) * onehot
    if loss == "mse":
        return sat(y - (1 << numerics.a_frac) * onehot, 8)
    raise ValueError(f"unknown loss {loss!r}; choose ce or mse")


def train_step(state, x8, labels, lr_q, *, loss="ce", activation="relu", momentum=False):
    """One minibatch: forward, loss error, backward, update. Returns every tensor (integers).

    Backward from the last layer: ``dW = Xᵀ·dY`` and ``db = Σ dY`` (int32);
    ``dX = sat8(round_half_up(dY·W8ᵀ / 2^(w_frac - dx_extra)))``, dx_extra
    bits finer than dY (errors shrink as they go down),
    then masked by the previous layer's activation derivative (0 where
    ``y <= 0`` for ReLU; ``floor(dX · 2^-k)`` there for leaky ReLU). The
    update of layer l happens after its dX is computed, with the weights of
    the forward pass; then ``master -= stochastic_round(g · lr_q / 2^s)``,
    saturated (int16 weights, int32 biases), with s bringing g's scale to the
    master's. LFSR draws: layers from last to first; in each, ``[W; b]`` a
    word column (``state.lanes`` output units) at a time, down the weights'
    rows and then the biases' (:func:`update_draws`).
    """
    n = state.numerics
    depth_of = lambda l: len(state.w_master) - 1 - l
    xs, ys = forward(state, x8, activation)
    dy = loss_error(ys[-1], labels, loss, n)
    out = {
        "x": xs,
        "y": ys,
        "dy": [None] * len(xs),
        "dx": [None] * len(xs),
        "dw": [None] * len(xs),
        "db": [None] * len(xs),
        "w": [state.weights8(l) for l in range(len(xs))],
        "b": [state.bias(l) for l in range(len(xs))],
        "w_master": [m.copy() for m in state.w_master],
        "b_master": [m.copy() for m in state.b_master],
    }
    for l in reversed(range(len(xs))):
        e_frac = n.e_frac(loss, depth_of(l))
        out["dy"][l] = dy
        dw = xs[l].T @ dy
        db = dy.sum(axis=0)
        out["dw"][l], out["db"][l] = dw, db
        dx = sat(round_half_up_shift(dy @ out["w"][l].T, n.w_frac - n.dx_extra), 8)
        out["dx"][l] = dx
        if momentum:
            state.w_momentum[l] = state.w_momentum[l] + ((dw - state.w_momentum[l]) >> n.momentum_shift)
            state.b_momentum[l] = state.b_momentum[l] + ((db - state.b_momentum[l]) >> n.momentum_shift)
            gw, gb = state.w_momentum[l], state.b_momentum[l]
        else:
            gw, gb = dw, db
        # g's scale is 2^-(x_frac + e_frac) (weights) or 2^-e_frac (biases); lr_q's is 2^-lr_frac.
        s_w = n.lr_frac + state.x_frac(l) + e_frac - n.master_frac
        s_b = n.lr_frac + e_frac - (state.x_frac(l) + n.w_frac + n.master_extra)
        r_w, r_b = update_draws(*gw.shape, s_w, s_b, state.lfsr, state.lanes)
        state.w_master[l] = sat(state.w_master[l] - stochastic_round_with(gw * lr_q, s_w, r_w), 16)
        state.b_master[l] = sat(state.b_master[l] - stochastic_round_with(gb * lr_q, s_b, r_b), 32)
        if l:
            y_prev = ys[l - 1]
            if activation == "relu":
                dy = np.where(y_prev > 0, dx, 0)
            else:
                dy = np.where(y_prev > 0, dx, dx >> n.leaky_shift)
    out["w_new"] = [m.copy() for m in state.w_master]
    out["b_new"] = [m.copy() for m in state.b_master]
    out["labels"] = np.asarray(labels)
    return out


def predict(state, x8, activation="relu"):
    """Class indices: the argmax of the int8 logits (the first of equal ones)."""
    return np.argmax(forward(state, x8, activation)[1][-1], axis=1)
