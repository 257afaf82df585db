"""TFLite Micro's int8 quantization scheme and fully-connected kernel.

Written from TFLM ``kernels/internal/reference/integer_ops/fully_connected.h``:
``acc = sum_k filter[o,k] * (input[b,k] + input_offset) + bias[o]`` in int32,
then ``MultiplyByQuantizedMultiplier``, ``+ output_offset`` and the activation
clamp. Weights are symmetric per-tensor int8 (zero point 0), activations
asymmetric int8, biases int32 with scale ``s_input * s_filter``.

Scales are float32, as a .tflite file stores them, and each layer's
multiplier is TFLM's: ``QuantizeMultiplier(double(s_in) * double(s_w) /
double(s_out))`` (``kernels/kernel_util.cc``), so that the model exported to a
.tflite file (:func:`reference.tflite_model.export.mlp_to_tflite`) gives TFLM
the same multipliers.
"""

from dataclasses import dataclass

import numpy as np

from .fixedpoint import clamp, multiply_by_quantized_multiplier, quantize_multiplier, wrap32

__all__ = ["FcParams", "fully_connected", "quantize_activation", "quantize_mlp", "QuantizedMlp", "tflite_round"]


@dataclass
class FcParams:
    """One int8 fully-connected layer, TFLM's ``FullyConnectedParams`` plus tensors."""

    filter: np.ndarray  # int8 values, shape (out, in): TFLM's layout
    bias: np.ndarray  # int32, shape (out,)
    input_offset: int  # -input zero point
    output_multiplier: int
    output_shift: int
    output_offset: int  # output zero point
    act_min: int
    act_max: int
    input_scale: float
    output_scale: float
    filter_scale: float | None = None  # what a .tflite file stores; the multiplier derives from it


def fully_connected(x, p):
    """TFLM's int8 FC on a batch ``x`` (B, in) of int8 values; returns (B, out) int64."""
    x = np.asarray(x, dtype=np.int64)
    acc = wrap32((x + p.input_offset) @ p.filter.astype(np.int64).T + p.bias.astype(np.int64))
    y = wrap32(multiply_by_quantized_multiplier(acc, p.output_multiplier, p.output_shift) + p.output_offset)
    return clamp(y, p.act_min, p.act_max)


def tflite_round(x):
    """``TfLiteRound`` (C's ``round``): to the nearest integer, halves away from zero; exact
    (``floor(x + 0.5)`` is not: in float32, 0.49999997 + 0.5 rounds to 1)."""
    x = np.asarray(x)
    t = np.trunc(x)
    return t + np.where(np.abs(x - t) >= 0.5, np.sign(x), 0).astype(x.dtype)


def quantize_activation(x, scale, zero_point):
    """Real values to int8 as TFLite's ``AffineQuantize`` (``reference/quantize.h``) does:
    ``clamp(round(float32(x) / float32(scale)) + zero_point, -128, 127)``, the division in
    float32 and the rounding half away from zero (``TfLiteRound``)."""
    q = tflite_round(np.asarray(x, dtype=np.float32) / np.float32(scale))
    return np.clip(q.astype(np.int64) + int(zero_point), -128, 127)


def _f32(v):
    """``v`` rounded to float32, as a .tflite file stores a scale (returned as a Python float)."""
    return float(np.float32(v))


def _asymmetric(lo, hi):
    """Scale (float32) and int8 zero point covering [lo, hi] (which must contain 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = _f32((hi - lo) / 255.0 or 1.0)
    zero_point = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return scale, zero_point


@dataclass
class QuantizedMlp:
    layers: list  # FcParams, input to output
    input_scale: float
    input_zero_point: int

    def quantize_input(self, x):
        return quantize_activation(x, self.input_scale, self.input_zero_point)

    def forward(self, xq):
        """int8 outputs of every layer for an int8 input batch."""
        outs = []
        for p in self.layers:
            xq = fully_connected(xq, p)
            outs.append(xq)
        return outs

    def predict(self, xq):
        return np.argmax(self.forward(xq)[-1], axis=1)


def quantize_mlp(weights, biases, x_calibration, relu_hidden=True):
    """Post-training quantization of a float MLP, TFLM-style.

    ``weights[l]`` is (in, out) and ``biases[l]`` (out,), for ``y = x W + b``
    with ReLU after every layer but the last. Activation ranges come from
    ``x_calibration`` (real inputs in [0, 1]). ReLU is fused into the clamp:
    a hidden layer's range starts at 0, so its zero point is -128 and
    ``act_min = -128``.
    """
    in_scale, in_zp = _f32(1.0 / 255.0), -128
    x = np.asarray(x_calibration, dtype=np.float64)
    layers = []
    for l, (w, b) in enumerate(zip(weights, biases)):
        last = l == len(weights) - 1
        y = x @ w + b
        if not last and relu_hidden:
            y = np.maximum(y, 0)
        out_scale, out_zp = _asymmetric(float(y.min()), float(y.max()))
        w_scale = _f32(float(np.abs(w).max()) / 127.0 or 1.0)
        wq = np.clip(np.round(w / w_scale), -127, 127).astype(np.int64).T
        bq = np.round(b / (in_scale * w_scale)).astype(np.int64)
        multiplier, shift = quantize_multiplier(in_scale * w_scale / out_scale)  # double, from float32 scales
        layers.append(
            FcParams(
                filter=wq,
                bias=bq,
                input_offset=-in_zp,
                output_multiplier=multiplier,
                output_shift=shift,
                output_offset=out_zp,
                act_min=-128,
                act_max=127,
                input_scale=in_scale,
                output_scale=out_scale,
                filter_scale=w_scale,
            )
        )
        x, in_scale, in_zp = y, out_scale, out_zp
    return QuantizedMlp(layers=layers, input_scale=_f32(1.0 / 255.0), input_zero_point=-128)
