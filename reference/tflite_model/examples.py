"""Small int8 models written with :class:`.builder.ModelBuilder`, random but seeded:
the tests' models and the docs' examples. No TensorFlow: the quantization
parameters are chosen here, as a converter would store them."""

import numpy as np

from .builder import ModelBuilder

__all__ = ["fc_model", "small_cnn", "effective_scale_for_shift", "spread_scale"]


def effective_scale_for_shift(shift, rng):
    """A real multiplier whose TFLM ``QuantizeMultiplier`` shift is ``shift``: ``u·2^(shift-1)``, u in [1.3, 1.9]."""
    return float(rng.uniform(1.3, 1.9)) * 2.0 ** (shift - 1)


def spread_scale(s_in, s_w, k, spread=40.0):
    """An output scale putting a typical accumulator (random int8 operands, depth ``k``) about ``spread``
    int8 steps from the zero point."""
    return float(s_in) * float(np.mean(s_w)) * np.sqrt(k) * 74.0 * 73.0 / spread


def _bias_scales(s_in, s_w):
    return float(np.float32(s_in)) * np.asarray(s_w, dtype=np.float32).astype(np.float64)


def fc_model(
    k,
    n,
    *,
    seed=0,
    per_channel=False,
    bias=True,
    activation="NONE",
    input_zero_point=0,
    output_zero_point=0,
    shift=None,
    batch=1,
    weight_range=127,
):
    """One FULLY_CONNECTED layer, input [batch, k] -> output [batch, n], as .tflite bytes.

    ``shift``: the layer's output shift as TFLM computes it (``-31`` .. ``+30``; positive is a left
    shift, a real multiplier above 1); every channel's, when per channel. Otherwise the output scale
    spreads typical outputs over the int8 range."""
    rng = np.random.default_rng(seed)
    s_in = float(np.exp(rng.uniform(-6, -1)))
    s_w = np.exp(rng.uniform(-7, -3, n if per_channel else 1)).astype(np.float32)
    if shift is None:
        s_out = spread_scale(s_in, s_w, k)
    else:
        # One output scale for every channel: s_in·s_w[c]/s_out must give the same shift, so the
        # channels' filter scales stay within a factor 1.15 of each other.
        s_w = (s_w[0] * rng.uniform(1.0, 1.15, len(s_w))).astype(np.float32)
        s_out = s_in * float(s_w.max()) / effective_scale_for_shift(shift, rng)
    b = ModelBuilder(f"fc {k}->{n}")
    x = b.input([batch, k], scale=s_in, zero_point=input_zero_point, name="x")
    w = b.tensor(
        [n, k],
        data=rng.integers(-weight_range, weight_range + 1, (n, k)),
        scale=s_w,
        zero_point=[0] * len(s_w),
        name="weights",
    )
    bias_t = -1
    if bias:
        bias_t = b.tensor(
            [n],
            "INT32",
            data=rng.integers(-20000, 20001, n),
            scale=_bias_scales(s_in, s_w),
            zero_point=[0] * len(s_w),
            name="bias",
        )
    y = b.tensor([batch, n], scale=s_out, zero_point=output_zero_point, name="y")
    b.operator("FULLY_CONNECTED", [x, w, bias_t], [y], fused_activation_function=activation)
    b.outputs.append(y)
    return b.build()


def _conv(b, rng, x, s_in, zp_in, shape_in, cout, kernel, stride, padding, activation, per_channel, name):
    n, h, w, cin = shape_in
    kh, kw = kernel
    s_w = np.exp(rng.uniform(-6, -3, cout if per_channel else 1)).astype(np.float32)
    out_h = (h + stride - 1) // stride if padding == "SAME" else (h - kh + stride) // stride
    out_w = (w + stride - 1) // stride if padding == "SAME" else (w - kw + stride) // stride
    s_out = spread_scale(s_in, s_w, kh * kw * cin)
    zp_out = -128 if activation in ("RELU", "RELU6") else int(rng.integers(-20, 21))
    weights = b.tensor(
        [cout, kh, kw, cin],
        data=rng.integers(-127, 128, (cout, kh, kw, cin)),
        scale=s_w,
        zero_point=[0] * len(s_w),
        name=f"{name}/weights",
    )
    bias = b.tensor(
        [cout],
        "INT32",
        data=rng.integers(-3000, 3001, cout),
        scale=_bias_scales(s_in, s_w),
        zero_point=[0] * len(s_w),
        name=f"{name}/bias",
    )
    y = b.tensor([n, out_h, out_w, cout], scale=s_out, zero_point=zp_out, name=name)
    b.operator(
        "CONV_2D",
        [x, weights, bias],
        [y],
        padding=padding,
        stride_h=stride,
        stride_w=stride,
        fused_activation_function=activation,
    )
    return y, s_out, zp_out, (n, out_h, out_w, cout)


def small_cnn(seed=0, height=12, width=12, channels=3, classes=10, softmax=True):
    """Two CONV_2D and a FULLY_CONNECTED, as .tflite bytes:

    input int8 [1, H, W, C] -> CONV_2D 8 filters 3x3, SAME, stride 1, RELU, per channel
    -> CONV_2D 12 filters 3x3, VALID, stride 2, RELU6, per tensor -> RESHAPE [1, -1]
    -> FULLY_CONNECTED ``classes``, per channel -> SOFTMAX (int8, scale 1/256, zero point -128)."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder(f"small CNN {height}x{width}x{channels} -> {classes}")
    s_in, zp_in = 1.0 / 255.0, -128
    x = b.input([1, height, width, channels], scale=s_in, zero_point=zp_in, name="image")
    shape = (1, height, width, channels)
    y, s, zp, shape = _conv(b, rng, x, s_in, zp_in, shape, 8, (3, 3), 1, "SAME", "RELU", True, "conv1")
    y, s, zp, shape = _conv(b, rng, y, s, zp, shape, 12, (3, 3), 2, "VALID", "RELU6", False, "conv2")
    flat = int(np.prod(shape[1:]))
    new_shape = b.tensor([2], "INT32", data=[1, flat], name="flatten/shape")
    r = b.tensor([1, flat], scale=s, zero_point=zp, name="flatten")
    b.operator("RESHAPE", [y, new_shape], [r], new_shape=[1, flat])
    s_w = np.exp(rng.uniform(-6, -3, classes)).astype(np.float32)
    s_out = spread_scale(s, s_w, flat, spread=20.0)
    w = b.tensor(
        [classes, flat],
        data=rng.integers(-127, 128, (classes, flat)),
        scale=s_w,
        zero_point=[0] * classes,
        name="fc/weights",
    )
    bias = b.tensor(
        [classes],
        "INT32",
        data=rng.integers(-3000, 3001, classes),
        scale=_bias_scales(s, s_w),
        zero_point=[0] * classes,
        name="fc/bias",
    )
    logits = b.tensor([1, classes], scale=s_out, zero_point=0, name="logits")
    b.operator("FULLY_CONNECTED", [r, w, bias], [logits])
    out = logits
    if softmax:
        out = b.tensor([1, classes], scale=1.0 / 256, zero_point=-128, name="probabilities")
        b.operator("SOFTMAX", [logits], [out], beta=1.0)
    b.outputs.append(out)
    return b.build()
