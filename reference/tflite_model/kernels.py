"""TFLite Micro's int8 kernels in NumPy, written from TFLM's definitions.

Sources (TFLM ``tensorflow/lite/kernels/internal/reference/``, ``kernels/kernel_util.cc``
and ``micro/kernels/*_common.cc``):

* FULLY_CONNECTED and CONV_2D: ``acc = sum (x + input_offset)·w + bias`` in
  int32, then ``MultiplyByQuantizedMultiplier`` (per channel for CONV_2D and
  per-channel FC), ``+ output_offset``, clamp to the fused activation's range.
  The multiplier of channel c is ``QuantizeMultiplier(s_in·s_w[c] / s_out)``,
  computed in double from the float32 scales the file stores.
  CONV_2D skips taps outside the image; here they are im2col taps holding the
  input zero point, whose ``x + input_offset`` is 0: the same sum.
* QUANTIZE (float to int8: ``round(x / scale)`` in float32, half away from zero;
  int8 to int8: ``MBQM(x - zp_in, M, shift) + zp_out`` with ``M`` from
  ``s_in / s_out``), DEQUANTIZE (``float(scale · (x - zp))`` in double),
  RESHAPE/SQUEEZE/EXPAND_DIMS (data unchanged), MAX_POOL_2D, AVERAGE_POOL_2D,
  SOFTMAX (:mod:`.softmax`), DEPTHWISE_CONV_2D (per channel), ADD (with
  broadcasting, TFLM's ``left_shift = 20`` rescaling) and PAD (with the
  output zero point).

Values carry a leading *group* axis: a model built for batch B runs on G
groups of B rows at once; the kernels fold G into the batch.

An op or tensor type outside these raises :class:`UnsupportedOp` from
:func:`check_graph`, naming the operator, its index and the type, before
anything runs.
"""

from dataclasses import dataclass

import numpy as np

from ..fixedpoint import (
    clamp,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap32,
)
from ..tflm import quantize_activation, tflite_round
from .graph import ModelError

__all__ = [
    "UnsupportedOp",
    "GemmLayer",
    "KERNELS",
    "ACCELERATED",
    "check_graph",
    "activation_range",
    "conv_multipliers",
    "affine_quantize",
    "im2col",
    "conv_output_size",
]

INT8_MIN, INT8_MAX = -128, 127


class UnsupportedOp(ModelError):
    """An operator, option or tensor type that no engine here runs."""


def _unsupported(op, what):
    return UnsupportedOp(f"operator {op.index} ({op.op}): {what}")


# -- quantization helpers (TFLM kernel_util.cc, quantization_util.cc) ----------------------------------


def _quantize_multiplier(real):
    """TFLM ``QuantizeMultiplier`` of a double, with its 0 case."""
    if real == 0.0:
        return 0, 0
    return quantize_multiplier(real)


def conv_multipliers(input_scale, filter_scales, output_scale, channels):
    """Per-channel ``(multiplier, shift)`` arrays as TFLM's ``PopulateConvolutionQuantizationParams``:
    ``double(s_in) · double(s_w[c]) / double(s_out)`` from the float32 scales; one filter scale serves all."""
    s_in, s_out = float(np.float32(input_scale)), float(np.float32(output_scale))
    scales = np.asarray(filter_scales, dtype=np.float32).astype(np.float64)
    if len(scales) == 1:
        scales = np.repeat(scales, channels)
    pairs = [_quantize_multiplier(s_in * float(s) / s_out) for s in scales]
    return np.array([m for m, _ in pairs], dtype=np.int64), np.array([s for _, s in pairs], dtype=np.int64)


def affine_quantize(x, scale, zero_point):
    """TFLite's ``AffineQuantize`` to int8 (:func:`reference.tflm.quantize_activation`); also what
    ``--quantize`` does to float inputs."""
    return quantize_activation(x, scale, zero_point)


def activation_range(activation, scale, zero_point, op):
    """TFLM ``CalculateActivationRangeQuantized`` for an int8 output."""

    def q(f):
        return int(zero_point) + int(tflite_round(np.float32(f) / np.float32(scale)))

    if activation in (None, "NONE"):
        return INT8_MIN, INT8_MAX
    if activation == "RELU":
        return max(INT8_MIN, q(0.0)), INT8_MAX
    if activation == "RELU6":
        return max(INT8_MIN, q(0.0)), min(INT8_MAX, q(6.0))
    if activation == "RELU_N1_TO_1":
        return max(INT8_MIN, q(-1.0)), min(INT8_MAX, q(1.0))
    raise _unsupported(op, f"fused activation {activation} is not supported (NONE, RELU, RELU6, RELU_N1_TO_1)")


# -- the GEMM layers: FULLY_CONNECTED and CONV_2D ----------------------------------------------------


@dataclass
class GemmLayer:
    """An accelerated layer as one int8 GEMM with TFLM's output stage:
    ``y[m, n] = clamp(MBQM(sum_k (a[m,k] + input_offset)·filter[n,k] + bias[n], mult[n], shift[n])
    + output_offset, act_min, act_max)``, then ``y`` reshaped to ``out_shape``."""

    op: object  # the Operator
    a: np.ndarray  # (M, K) int8 values: the input rows (im2col patches for CONV_2D)
    filter: np.ndarray  # (N, K) int8: TFLM's layout (a GEMM in mode nt)
    bias: np.ndarray  # (N,) int32 (zeros when the op has none)
    input_offset: int
    multiplier: np.ndarray  # (N,)
    shift: np.ndarray  # (N,)
    output_offset: int
    act_min: int
    act_max: int
    out_shape: tuple  # the output value's shape, group axis first
    per_channel: bool

    @property
    def shape(self):
        """``(M, K, N)``."""
        return self.a.shape[0], self.a.shape[1], self.filter.shape[0]

    @property
    def macs(self):
        M, K, N = self.shape
        return M * K * N

    def output_stage(self, acc):
        """int8 outputs (M, N) from TFLM's int32 accumulators (bias included)."""
        y = wrap32(multiply_by_quantized_multiplier(acc, self.multiplier[None, :], self.shift[None, :]))
        return clamp(wrap32(y + self.output_offset), self.act_min, self.act_max)

    def accumulators(self, raw=None):
        """TFLM's accumulators ``sum (a + input_offset)·w + bias`` (int32). From ``raw = a·filterᵀ``
        if given (what an array computes): the same sum, ``raw + input_offset·rowsum(w) + bias``."""
        w = self.filter.astype(np.int64)
        if raw is None:
            return wrap32((self.a.astype(np.int64) + self.input_offset) @ w.T + self.bias[None, :])
        return wrap32(np.asarray(raw, dtype=np.int64) + self.input_offset * w.sum(axis=1)[None, :] + self.bias[None, :])

    def reference(self):
        """The layer's int8 outputs (M, N), NumPy only."""
        return self.output_stage(self.accumulators())

    def finish(self, y):
        """The op's output value from the GEMM's int8 outputs (M, N)."""
        return np.asarray(y, dtype=np.int64).reshape(self.out_shape)


def _tensors(graph, op, n_in, n_out=1, optional=()):
    if len(op.outputs) != n_out or not (n_in - len(optional) <= len(op.inputs) <= n_in):
        raise _unsupported(op, f"{len(op.inputs)} inputs and {len(op.outputs)} outputs")
    ins = [graph.tensor(i) for i in op.inputs] + [None] * (n_in - len(op.inputs))
    for k, t in enumerate(ins):
        if t is None and k not in optional:
            raise _unsupported(op, f"input {k} is missing")
    return ins, [graph.tensor(i) for i in op.outputs]


def _need_type(op, t, role, types=("INT8",)):
    if t.dtype not in types:
        raise _unsupported(op, f"{role} {t.describe()} has type {t.dtype}; {' or '.join(types)} only")


def _need_per_tensor(op, t, role):
    if not t.quantized:
        raise _unsupported(op, f"{role} {t.describe()} has no quantization parameters")
    if t.per_channel:
        raise _unsupported(op, f"{role} {t.describe()} is quantized per channel; per tensor only")


def _check_filter(op, w, bias, channels, axis):
    _need_type(op, w, "filter")
    if not w.is_constant:
        raise _unsupported(op, f"filter {w.describe()} is not a constant")
    if not w.quantized:
        raise _unsupported(op, f"filter {w.describe()} has no quantization parameters")
    if np.any(w.zero_point != 0):
        raise _unsupported(
            op, f"filter {w.describe()} has a zero point other than 0 (TFLM's int8 weights are symmetric)"
        )
    if w.per_channel and (len(w.scale) != channels or w.quantized_dimension != axis):
        raise _unsupported(
            op,
            f"filter {w.describe()}: {len(w.scale)} scales along axis {w.quantized_dimension}, "
            f"expected {channels} along axis {axis}",
        )
    if bias is not None:
        _need_type(op, bias, "bias", ("INT32",))
        if not bias.is_constant:
            raise _unsupported(op, f"bias {bias.describe()} is not a constant")
        if bias.data.size != channels:
            raise _unsupported(op, f"bias {bias.describe()} has {bias.data.size} values for {channels} channels")


class FullyConnected:
    accelerated = True

    @staticmethod
    def check(graph, op):
        (x, w, bias), (y,) = _tensors(graph, op, 3, optional=(2,))
        _need_type(op, x, "input")
        _need_type(op, y, "output")
        _need_per_tensor(op, x, "input")
        _need_per_tensor(op, y, "output")
        if len(w.shape) != 2:
            raise _unsupported(op, f"filter {w.describe()} is not 2-D")
        _check_filter(op, w, bias, w.shape[0], 0)
        if op.options.get("weights_format", "DEFAULT") != "DEFAULT":
            raise _unsupported(op, f"weights format {op.options['weights_format']} is not supported (DEFAULT only)")
        activation_range(op.options.get("fused_activation_function"), y.scale[0], y.zero_point[0], op)
        size = int(np.prod(x.shape))
        if size % w.shape[1]:
            raise _unsupported(op, f"input {x.describe()} does not split into rows of {w.shape[1]}")
        if int(np.prod(y.shape)) != size // w.shape[1] * w.shape[0]:
            raise _unsupported(op, f"output {y.describe()} does not hold {size // w.shape[1]} rows of {w.shape[0]}")

    @staticmethod
    def lower(graph, op, x):
        (xt, w, bias), (y,) = _tensors(graph, op, 3, optional=(2,))
        N, K = w.shape
        a = np.asarray(x, dtype=np.int64).reshape(-1, K)
        mult, shift = conv_multipliers(xt.scale[0], w.scale, y.scale[0], N)
        lo, hi = activation_range(op.options.get("fused_activation_function"), y.scale[0], y.zero_point[0], op)
        return GemmLayer(
            op=op,
            a=a,
            filter=w.data.astype(np.int64),
            bias=np.zeros(N, np.int64) if bias is None else bias.data.astype(np.int64).reshape(N),
            input_offset=-int(xt.zero_point[0]),
            multiplier=mult,
            shift=shift,
            output_offset=int(y.zero_point[0]),
            act_min=lo,
            act_max=hi,
            out_shape=(x.shape[0], *y.shape),
            per_channel=w.per_channel,
        )


def conv_output_size(size, filt, stride, dilation, padding):
    """TFLite's ``ComputeOutSize`` and ``ComputePaddingWithOffset``: ``(out, pad_before)``."""
    eff = (filt - 1) * dilation + 1
    if padding == "SAME":
        out = (size + stride - 1) // stride
    elif padding == "VALID":
        out = (size - eff + stride) // stride
    else:
        raise ValueError(f"padding {padding}")
    pad = max(((out - 1) * stride + eff - size) // 2, 0)
    return out, pad


def im2col(x, kh, kw, stride, dilation, padding, pad_value):
    """Patches of NHWC ``x`` as rows (M = N·OH·OW, K = KH·KW·C), in TFLM's filter order (ky, kx, c).
    Taps outside the image hold ``pad_value``."""
    n, h, w, c = x.shape
    (sh, sw), (dh, dw) = stride, dilation
    oh, ph = conv_output_size(h, kh, sh, dh, padding)
    ow, pw = conv_output_size(w, kw, sw, dw, padding)
    ys = np.arange(oh)[:, None] * sh - ph + np.arange(kh)[None, :] * dh  # (OH, KH)
    xs = np.arange(ow)[:, None] * sw - pw + np.arange(kw)[None, :] * dw  # (OW, KW)
    inside = ((ys >= 0) & (ys < h))[:, None, :, None] & ((xs >= 0) & (xs < w))[None, :, None, :]
    patches = x[:, np.clip(ys, 0, h - 1)[:, None, :, None], np.clip(xs, 0, w - 1)[None, :, None, :], :]
    patches = np.where(inside[None, :, :, :, :, None], patches, pad_value)  # (N, OH, OW, KH, KW, C)
    return patches.reshape(n * oh * ow, kh * kw * c), (oh, ow)


def _conv_geometry(op):
    o = op.options
    return (o.get("stride_h", 1), o.get("stride_w", 1)), (o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1))


class Conv2D:
    accelerated = True

    @staticmethod
    def check(graph, op):
        (x, w, bias), (y,) = _tensors(graph, op, 3, optional=(2,))
        _need_type(op, x, "input")
        _need_type(op, y, "output")
        _need_per_tensor(op, x, "input")
        _need_per_tensor(op, y, "output")
        if len(x.shape) != 4 or len(w.shape) != 4 or len(y.shape) != 4:
            raise _unsupported(op, "input, filter and output must be 4-D (NHWC, OHWI)")
        _check_filter(op, w, bias, w.shape[0], 0)
        if w.shape[3] != x.shape[3]:
            raise _unsupported(op, f"filter depth {w.shape[3]} differs from input depth {x.shape[3]} (grouped conv)")
        (sh, sw), (dh, dw) = _conv_geometry(op)
        if min(sh, sw, dh, dw) < 1:
            raise _unsupported(op, f"stride {sh}x{sw}, dilation {dh}x{dw}")
        padding = op.options.get("padding", "SAME")
        if padding not in ("SAME", "VALID"):
            raise _unsupported(op, f"padding {padding} is not supported")
        oh, _ = conv_output_size(x.shape[1], w.shape[1], sh, dh, padding)
        ow, _ = conv_output_size(x.shape[2], w.shape[2], sw, dw, padding)
        if tuple(y.shape) != (x.shape[0], oh, ow, w.shape[0]) or min(oh, ow) < 1:
            raise _unsupported(op, f"output {y.describe()}, expected {[x.shape[0], oh, ow, w.shape[0]]}")
        activation_range(op.options.get("fused_activation_function"), y.scale[0], y.zero_point[0], op)

    @staticmethod
    def lower(graph, op, x):
        (xt, w, bias), (y,) = _tensors(graph, op, 3, optional=(2,))
        cout, kh, kw, _ = w.shape
        stride, dilation = _conv_geometry(op)
        v = np.asarray(x, dtype=np.int64)
        a, _ = im2col(
            v.reshape(-1, *xt.shape[1:]),
            kh,
            kw,
            stride,
            dilation,
            op.options.get("padding", "SAME"),
            int(xt.zero_point[0]),
        )
        mult, shift = conv_multipliers(xt.scale[0], w.scale, y.scale[0], cout)
        lo, hi = activation_range(op.options.get("fused_activation_function"), y.scale[0], y.zero_point[0], op)
        return GemmLayer(
            op=op,
            a=a,
            filter=w.data.astype(np.int64).reshape(cout, -1),
            bias=np.zeros(cout, np.int64) if bias is None else bias.data.astype(np.int64).reshape(cout),
            input_offset=-int(xt.zero_point[0]),
            multiplier=mult,
            shift=shift,
            output_offset=int(y.zero_point[0]),
            act_min=lo,
            act_max=hi,
            out_shape=(v.shape[0], *y.shape),
            per_channel=w.per_channel,
        )


# -- NumPy-only ops ------------------------------------------------------------------------------------


class Reshape:
    """RESHAPE, SQUEEZE, EXPAND_DIMS: the data is unchanged, the output tensor's shape applies."""

    accelerated = False

    @staticmethod
    def check(graph, op):
        if not op.inputs or len(op.outputs) != 1 or op.inputs[0] < 0:
            raise _unsupported(op, f"{len(op.inputs)} inputs and {len(op.outputs)} outputs")
        x, y = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
        if x.dtype != y.dtype:
            raise _unsupported(op, f"input type {x.dtype} differs from output type {y.dtype}")
        if int(np.prod(x.shape)) != int(np.prod(y.shape)):
            raise _unsupported(op, f"{x.describe()} does not reshape to {y.describe()}")

    @staticmethod
    def run(graph, op, values):
        x = values[0]
        return [x.reshape(x.shape[0], *graph.tensor(op.outputs[0]).shape)]


class Quantize:
    accelerated = False

    @staticmethod
    def check(graph, op):
        (x,), (y,) = _tensors(graph, op, 1)
        _need_type(op, x, "input", ("FLOAT32", "INT8"))
        _need_type(op, y, "output")
        _need_per_tensor(op, y, "output")
        if x.dtype == "INT8":
            _need_per_tensor(op, x, "input")

    @staticmethod
    def run(graph, op, values):
        x, y = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
        if x.dtype == "FLOAT32":
            return [affine_quantize(values[0], y.scale[0], y.zero_point[0])]
        # int8 -> int8: TFLM's Requantize with QuantizeMultiplier(double(s_in) / double(s_out)).
        m, s = _quantize_multiplier(float(np.float32(x.scale[0])) / float(np.float32(y.scale[0])))
        v = multiply_by_quantized_multiplier(np.asarray(values[0], np.int64) - int(x.zero_point[0]), m, s)
        return [np.clip(wrap32(v + int(y.zero_point[0])), INT8_MIN, INT8_MAX)]


class Dequantize:
    accelerated = False

    @staticmethod
    def check(graph, op):
        (x,), (y,) = _tensors(graph, op, 1)
        _need_type(op, x, "input")
        _need_type(op, y, "output", ("FLOAT32",))
        _need_per_tensor(op, x, "input")

    @staticmethod
    def run(graph, op, values):
        x = graph.tensor(op.inputs[0])
        scale = float(np.float32(x.scale[0]))
        return [(scale * (np.asarray(values[0], np.float64) - int(x.zero_point[0]))).astype(np.float32)]


class DepthwiseConv2D:
    """DEPTHWISE_CONV_2D (int8, per channel): TFLM's ``DepthwiseConvPerChannel``, in NumPy.
    Output channel ``oc`` reads input channel ``oc // depth_multiplier``; filter [1, KH, KW, C_out]."""

    accelerated = False

    @staticmethod
    def check(graph, op):
        (x, w, bias), (y,) = _tensors(graph, op, 3, optional=(2,))
        _need_type(op, x, "input")
        _need_type(op, y, "output")
        _need_per_tensor(op, x, "input")
        _need_per_tensor(op, y, "output")
        if len(x.shape) != 4 or len(w.shape) != 4 or len(y.shape) != 4 or w.shape[0] != 1:
            raise _unsupported(op, "input and output must be NHWC and the filter [1, KH, KW, C_out]")
        cout, cin = w.shape[3], x.shape[3]
        dm = op.options.get("depth_multiplier", 1) or 1
        if cout != cin * dm:
            raise _unsupported(op, f"{cout} output channels for {cin} input channels and depth multiplier {dm}")
        _check_filter(op, w, bias, cout, 3)
        (sh, sw), (dh, dw) = _conv_geometry(op)
        padding = op.options.get("padding", "SAME")
        if min(sh, sw, dh, dw) < 1 or padding not in ("SAME", "VALID"):
            raise _unsupported(op, f"stride {sh}x{sw}, dilation {dh}x{dw}, padding {padding}")
        oh, _ = conv_output_size(x.shape[1], w.shape[1], sh, dh, padding)
        ow, _ = conv_output_size(x.shape[2], w.shape[2], sw, dw, padding)
        if tuple(y.shape) != (x.shape[0], oh, ow, cout) or min(oh, ow) < 1:
            raise _unsupported(op, f"output {y.describe()}, expected {[x.shape[0], oh, ow, cout]}")
        activation_range(op.options.get("fused_activation_function"), y.scale[0], y.zero_point[0], op)

    @staticmethod
    def run(graph, op, values):
        (xt, w, bias), (y,) = _tensors(graph, op, 3, optional=(2,))
        _, kh, kw, cout = w.shape
        cin = xt.shape[3]
        dm = cout // cin
        stride, dilation = _conv_geometry(op)
        v = np.asarray(values[0], dtype=np.int64)
        x = v.reshape(-1, *xt.shape[1:])
        patches, (oh, ow) = im2col(
            x, kh, kw, stride, dilation, op.options.get("padding", "SAME"), int(xt.zero_point[0])
        )
        patches = patches.reshape(-1, kh * kw, cin) - int(xt.zero_point[0])  # x + input_offset
        channel_in = np.arange(cout) // dm
        acc = np.einsum("mtc,tc->mc", patches[:, :, channel_in], w.data.astype(np.int64).reshape(kh * kw, cout))
        if bias is not None:
            acc = acc + bias.data.astype(np.int64)[None, :]
        mult, shift = conv_multipliers(xt.scale[0], w.scale, y.scale[0], cout)
        lo, hi = activation_range(op.options.get("fused_activation_function"), y.scale[0], y.zero_point[0], op)
        out = wrap32(multiply_by_quantized_multiplier(wrap32(acc), mult[None, :], shift[None, :]))
        out = clamp(wrap32(out + int(y.zero_point[0])), lo, hi)
        return [out.reshape(v.shape[0], *y.shape)]


def _multiply_smaller_than_one(x, multiplier, shift):
    """TFLM ``MultiplyByQuantizedMultiplierSmallerThanOneExp``: ``RDBPOT(SRDHM(x, M), -shift)``, shift <= 0."""
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(np.asarray(x, np.int64), multiplier), -shift)


class Add:
    """ADD (int8, with broadcasting): TFLM's quantized add, inputs rescaled to a common scale with
    ``left_shift = 20``, summed and rescaled to the output (``micro/kernels/add_common.cc``)."""

    accelerated = False
    LEFT_SHIFT = 20

    @staticmethod
    def check(graph, op):
        (a, b), (y,) = _tensors(graph, op, 2)
        for role, t in (("input 0", a), ("input 1", b), ("output", y)):
            _need_type(op, t, role)
            _need_per_tensor(op, t, role)
        if a.is_constant and b.is_constant:
            raise _unsupported(op, "both inputs are constants")
        try:
            np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
        except ValueError:
            raise _unsupported(op, f"{a.describe()} and {b.describe()} do not broadcast") from None
        activation_range(op.options.get("fused_activation_function"), y.scale[0], y.zero_point[0], op)

    @staticmethod
    def params(a, b, y):
        """``(m1, s1, m2, s2, m_out, s_out)``, as TFLM's ``CalculateOpDataAdd`` computes them in double."""
        s_a, s_b, s_y = (float(np.float32(t.scale[0])) for t in (a, b, y))
        twice_max = 2.0 * max(s_a, s_b)
        m1, s1 = _quantize_multiplier(s_a / twice_max)
        m2, s2 = _quantize_multiplier(s_b / twice_max)
        mo, so = _quantize_multiplier(twice_max / ((1 << Add.LEFT_SHIFT) * s_y))
        return m1, s1, m2, s2, mo, so

    @staticmethod
    def run(graph, op, values):
        (a, b), (y,) = _tensors(graph, op, 2)
        groups = next(v.shape[0] for v in values if v is not None)
        rank = max(len(a.shape), len(b.shape))
        operands = []
        for t, v in ((a, values[0]), (b, values[1] if len(values) > 1 else None)):
            v = np.broadcast_to(t.data, (groups, *t.shape)) if v is None else np.asarray(v)
            operands.append(v.astype(np.int64).reshape(groups, *([1] * (rank - len(t.shape))), *t.shape))
        m1, s1, m2, s2, mo, so = Add.params(a, b, y)
        x1 = _multiply_smaller_than_one((operands[0] - int(a.zero_point[0])) << Add.LEFT_SHIFT, m1, s1)
        x2 = _multiply_smaller_than_one((operands[1] - int(b.zero_point[0])) << Add.LEFT_SHIFT, m2, s2)
        out = wrap32(_multiply_smaller_than_one(wrap32(x1 + x2), mo, so) + int(y.zero_point[0]))
        lo, hi = activation_range(op.options.get("fused_activation_function"), y.scale[0], y.zero_point[0], op)
        return [clamp(out, lo, hi).reshape(groups, *y.shape)]


class Pad:
    """PAD (int8): the paddings of a constant [rank, 2] tensor, filled with the output zero point."""

    accelerated = False

    @staticmethod
    def check(graph, op):
        (x, p), (y,) = _tensors(graph, op, 2)
        _need_type(op, x, "input")
        _need_type(op, y, "output")
        _need_per_tensor(op, y, "output")
        if not p.is_constant or p.data.shape != (len(x.shape), 2):
            raise _unsupported(op, f"paddings {p.describe()} must be a constant [{len(x.shape)}, 2]")
        if np.any(p.data < 0) or np.any(p.data[0] != 0):
            raise _unsupported(op, "negative paddings, or padding of the batch axis")
        if x.zero_point[0] != y.zero_point[0] or np.float32(x.scale[0]) != np.float32(y.scale[0]):
            raise _unsupported(op, "input and output quantization differ")
        if tuple(y.shape) != tuple(int(n + lo + hi) for n, (lo, hi) in zip(x.shape, p.data)):
            raise _unsupported(op, f"output {y.describe()} does not match the paddings")

    @staticmethod
    def run(graph, op, values):
        (x, p), (y,) = _tensors(graph, op, 2)
        pads = [(0, 0)] + [(int(lo), int(hi)) for lo, hi in p.data]
        return [np.pad(np.asarray(values[0], np.int64), pads, constant_values=int(y.zero_point[0]))]


class Pool2D:
    """MAX_POOL_2D and AVERAGE_POOL_2D (int8): the window clipped to the image, as TFLM does."""

    accelerated = False

    @staticmethod
    def check(graph, op):
        (x,), (y,) = _tensors(graph, op, 1)
        _need_type(op, x, "input")
        _need_type(op, y, "output")
        _need_per_tensor(op, x, "input")
        _need_per_tensor(op, y, "output")
        if len(x.shape) != 4:
            raise _unsupported(op, f"input {x.describe()} is not NHWC")
        if float(np.float32(x.scale[0])) != float(np.float32(y.scale[0])) or x.zero_point[0] != y.zero_point[0]:
            raise _unsupported(op, "input and output quantization differ")
        o = op.options
        padding = o.get("padding", "SAME")
        if padding not in ("SAME", "VALID") or min(o.get("stride_h", 1), o.get("stride_w", 1)) < 1:
            raise _unsupported(op, f"padding {padding}, stride {o.get('stride_h')}x{o.get('stride_w')}")
        oh, _ = conv_output_size(x.shape[1], o["filter_height"], o["stride_h"], 1, padding)
        ow, _ = conv_output_size(x.shape[2], o["filter_width"], o["stride_w"], 1, padding)
        if tuple(y.shape) != (x.shape[0], oh, ow, x.shape[3]):
            raise _unsupported(op, f"output {y.describe()}, expected {[x.shape[0], oh, ow, x.shape[3]]}")
        activation_range(o.get("fused_activation_function"), y.scale[0], y.zero_point[0], op)

    @staticmethod
    def run(graph, op, values):
        xt, y = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
        o = op.options
        v = np.asarray(values[0], np.int64)
        x = v.reshape(-1, *xt.shape[1:])
        n, h, w, c = x.shape
        fh, fw, sh, sw = o["filter_height"], o["filter_width"], o["stride_h"], o["stride_w"]
        oh, ph = conv_output_size(h, fh, sh, 1, o.get("padding", "SAME"))
        ow, pw = conv_output_size(w, fw, sw, 1, o.get("padding", "SAME"))
        lo, hi = activation_range(o.get("fused_activation_function"), y.scale[0], y.zero_point[0], op)
        out = np.zeros((n, oh, ow, c), np.int64)
        for oy in range(oh):
            y0 = oy * sh - ph
            ys = slice(max(y0, 0), min(y0 + fh, h))
            for ox in range(ow):
                x0 = ox * sw - pw
                win = x[:, ys, max(x0, 0) : min(x0 + fw, w), :]
                if op.op == "MAX_POOL_2D":
                    r = win.max(axis=(1, 2))
                else:
                    count = win.shape[1] * win.shape[2]
                    total = win.sum(axis=(1, 2))
                    # C's division truncates toward zero; the sum is rounded half away from zero.
                    num = np.where(total > 0, total + count // 2, total - count // 2)
                    r = np.sign(num) * (np.abs(num) // count)
                out[:, oy, ox, :] = r
        return [np.clip(out, lo, hi).reshape(v.shape[0], *y.shape)]


class Softmax:
    accelerated = False

    @staticmethod
    def check(graph, op):
        from .softmax import check_softmax

        (x,), (y,) = _tensors(graph, op, 1)
        _need_type(op, x, "input")
        _need_type(op, y, "output")
        _need_per_tensor(op, x, "input")
        _need_per_tensor(op, y, "output")
        check_softmax(op, x, y, _unsupported)

    @staticmethod
    def run(graph, op, values):
        from .softmax import softmax_int8

        x, y = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
        return [
            softmax_int8(
                values[0], x.scale[0], x.zero_point[0], y.scale[0], y.zero_point[0], op.options.get("beta", 1.0)
            )
        ]


#: Operator name -> kernel. ``accelerated`` kernels lower to a :class:`GemmLayer` (``lower``);
#: the others run in NumPy (``run``).
KERNELS = {
    "FULLY_CONNECTED": FullyConnected,
    "CONV_2D": Conv2D,
    "RESHAPE": Reshape,
    "SQUEEZE": Reshape,
    "EXPAND_DIMS": Reshape,
    "QUANTIZE": Quantize,
    "DEQUANTIZE": Dequantize,
    "MAX_POOL_2D": Pool2D,
    "AVERAGE_POOL_2D": Pool2D,
    "SOFTMAX": Softmax,
    "DEPTHWISE_CONV_2D": DepthwiseConv2D,
    "ADD": Add,
    "PAD": Pad,
}

#: The ops an engine runs as GEMMs.
ACCELERATED = tuple(name for name, k in KERNELS.items() if k.accelerated)


def check_graph(graph):
    """Raise :class:`UnsupportedOp` (one line: operator index, op, what) for the first thing no kernel
    here supports; also checks the model's inputs and outputs have a batch axis."""
    if len(graph.inputs) != 1:
        raise UnsupportedOp(f"the model has {len(graph.inputs)} inputs; one is supported")
    for t in (graph.tensor(i) for i in graph.inputs + graph.outputs):
        if len(t.shape) < 1:
            raise UnsupportedOp(f"{t.describe()}: a model input or output needs a batch axis")
    x = graph.tensor(graph.inputs[0])
    if x.dtype not in ("INT8", "FLOAT32"):
        raise UnsupportedOp(f"model input {x.describe()} has type {x.dtype}; INT8 or FLOAT32 only")
    produced = set(graph.inputs) | {t.index for t in graph.tensors if t.is_constant}
    for op in graph.operators:
        kernel = KERNELS.get(op.op)
        if kernel is None:
            raise UnsupportedOp(
                f"operator {op.index} ({op.op}) is not supported; supported: {', '.join(sorted(KERNELS))}"
            )
        for i in op.inputs:
            if i >= 0 and i not in produced:
                raise UnsupportedOp(
                    f"operator {op.index} ({op.op}) reads {graph.tensor(i).describe()} before any op writes it"
                )
        kernel.check(graph, op)
        produced.update(op.outputs)
    for i in graph.outputs:
        if i not in produced:
            raise UnsupportedOp(f"model output {graph.tensor(i).describe()} is never written")
