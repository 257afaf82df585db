"""The project's quantized digits MLP as a .tflite file (what ``make verilog`` writes as
``build/digits_mlp.tflite``).

Each :class:`reference.tflm.FcParams` becomes a FULLY_CONNECTED op with its
float32 scales and zero points; TFLM derives the same multipliers from them
(see :mod:`reference.tflm`), so TFLM, the reference and the RTL agree bit for bit.
Hidden layers carry a fused RELU: with output zero point -128 its clamp is
the layer's own [-128, 127].
"""

import numpy as np

from .builder import ModelBuilder

__all__ = ["mlp_to_tflite", "write_digits_model"]


def mlp_to_tflite(mlp, description="mlhw-sim digits MLP, int8"):
    """The bytes of a .tflite file computing ``mlp`` (:class:`reference.tflm.QuantizedMlp`) on int8
    inputs of shape [1, n_in]; its output is the last layer's int8 logits [1, n_out]."""
    b = ModelBuilder(description)
    n_in = mlp.layers[0].filter.shape[1]
    x = b.input([1, n_in], scale=mlp.input_scale, zero_point=mlp.input_zero_point, name="pixels")
    zp = mlp.input_zero_point
    for l, p in enumerate(mlp.layers):
        if p.filter_scale is None:
            raise ValueError(f"layer {l} has no filter scale: quantize it with reference.tflm.quantize_mlp")
        n_out, n_in = p.filter.shape
        last = l == len(mlp.layers) - 1
        w = b.tensor([n_out, n_in], data=p.filter, scale=p.filter_scale, zero_point=0, name=f"fc{l}/weights")
        bias = b.tensor(
            [n_out], "INT32", data=p.bias, scale=float(np.float32(p.input_scale)) * p.filter_scale, name=f"fc{l}/bias"
        )
        y = b.tensor([1, n_out], scale=p.output_scale, zero_point=p.output_offset, name="logits" if last else f"fc{l}")
        if -p.input_offset != zp:
            raise ValueError(f"layer {l}: input zero point {-p.input_offset}, previous output zero point {zp}")
        relu = not last and p.output_offset == -128 and (p.act_min, p.act_max) == (-128, 127)
        if (p.act_min, p.act_max) != (-128, 127):
            raise ValueError(f"layer {l}: clamp [{p.act_min}, {p.act_max}] is no fused activation's")
        b.operator("FULLY_CONNECTED", [x, w, bias], [y], fused_activation_function="RELU" if relu else "NONE")
        x, zp = y, p.output_offset
    b.outputs.append(x)
    return b.build()


def write_digits_model(out_dir):
    """Write ``digits_mlp.tflite`` (the project's int8 digits MLP, :func:`reference.float_mlp.digits_mlp`)
    and ``digits_test.npy`` (its 360 test images as float32 rows of 64 pixels in [0, 1], for
    ``python -m sim infer ... --inputs digits_test.npy --quantize``) into ``out_dir``; return their paths."""
    from pathlib import Path

    from ..digits import load_split
    from ..float_mlp import digits_mlp

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mlp, _ = digits_mlp()
    model, images = out / "digits_mlp.tflite", out / "digits_test.npy"
    model.write_bytes(mlp_to_tflite(mlp))
    np.save(images, load_split()[2].astype(np.float32))
    return [model, images]
