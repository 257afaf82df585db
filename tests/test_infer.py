"""``python -m sim infer``: .tflite models written here with TFLite's schema, run on the
NumPy reference and the RTL engines, every op's output compared with TFLite Micro's
interpreter (the ``tflite-micro`` wheel) element by element."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from reference.digits import load_split
from reference.float_mlp import digits_mlp
from reference.tflite_model import ModelBuilder, ModelError, load_model
from reference.tflite_model.examples import fc_model, small_cnn
from reference.tflite_model.export import mlp_to_tflite
from reference.tflite_model.kernels import KERNELS, UnsupportedOp, check_graph
from reference.tflite_model.run import group_inputs, run_reference, ungroup

tflm = pytest.importorskip("tflite_micro", reason="tflite-micro is not installed")

from sim.infer.tflm import tflm_tensors  # noqa: E402


def _sim(*args):
    return subprocess.run([sys.executable, "-m", "sim", *args], capture_output=True, text=True, env=os.environ)


def _check_reference(data, rows):
    """Run ``rows`` through the reference and TFLM; every op's every output must be equal. Returns the graph."""
    graph = load_model(data)
    check_graph(graph)
    groups = group_inputs(graph, rows)
    values, _ = run_reference(graph, groups)
    produced = [i for op in graph.operators for i in op.outputs]
    expected = tflm_tensors(data, graph, groups, produced, isolated=False)
    for op in graph.operators:
        for i in op.outputs:
            t = graph.tensor(i)
            got = np.asarray(values[i]).reshape(len(groups), *t.shape)
            want = np.asarray(expected[i]).reshape(len(groups), *t.shape)
            bad = np.argwhere(got != want)
            assert not len(bad), (
                f"operator {op.index} {op.op} output {t.name}: at {bad[0].tolist()} TFLM {want[tuple(bad[0])]}, "
                f"reference {got[tuple(bad[0])]} ({len(bad)} differ)"
            )
    return graph


def _rows(graph, n, rng, around=None):
    t = graph.tensor(graph.inputs[0])
    if around is None:
        return rng.integers(-128, 128, (n, *t.shape[1:])).astype(np.int8)
    return np.clip(around + rng.integers(-2, 3, (n, *t.shape[1:])), -128, 127).astype(np.int8)


def _layer_shifts(graph, rows):
    """The shift of every channel of the model's first (FULLY_CONNECTED) layer, as the reference lowers it."""
    kernel = KERNELS["FULLY_CONNECTED"]
    groups = group_inputs(graph, rows)
    op = graph.operators[0]
    return kernel.lower(graph, op, groups).shift


# -- the reference against TFLM ----------------------------------------------------------------------------------

SHIFTS = list(range(-31, 13))


@pytest.mark.parametrize("shift", SHIFTS)
def test_fc_output_shifts_from_minus_31_to_plus_12_match_tflm(shift):
    """Right shifts down to -31 and left shifts (real multiplier > 1) up to +12; per channel on odd shifts."""
    rng = np.random.default_rng(100 + shift)
    per_channel = shift % 2 == 1
    in_zp = int(rng.integers(-128, 128))
    # Left shifts saturate random data: inputs near the zero point and small weights keep outputs inside int8.
    left = shift > 0
    data = fc_model(
        int(rng.integers(1, 40)),
        int(rng.integers(1, 12)),
        seed=shift + 50,
        per_channel=per_channel,
        bias=not left,
        activation="NONE",
        input_zero_point=in_zp,
        output_zero_point=int(rng.integers(-128, 128)),
        shift=shift,
        weight_range=1 if left else 127,
    )
    graph = load_model(data)
    rows = _rows(graph, 16, rng, around=in_zp if left else None)
    _check_reference(data, rows)
    assert set(_layer_shifts(graph, rows).tolist()) == {shift}
    if left:  # the left-shift path is exercised, not only its saturation
        out = run_reference(graph, group_inputs(graph, rows))[0][graph.outputs[0]]
        assert np.any((out > -128) & (out < 127))


@pytest.mark.parametrize(
    "in_zp, out_zp", [(-128, -128), (-128, 127), (127, -128), (127, 127), (0, 0), (-83, 5), (100, -100)]
)
@pytest.mark.parametrize("activation", ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"])
def test_fc_zero_points_and_fused_activations_match_tflm(in_zp, out_zp, activation):
    rng = np.random.default_rng((in_zp + 128) * 256 + out_zp + 128)
    for per_channel, bias, (k, n) in [(False, True, (13, 7)), (True, False, (1, 1)), (True, True, (33, 5))]:
        data = fc_model(
            k,
            n,
            seed=int(rng.integers(1 << 30)),
            per_channel=per_channel,
            bias=bias,
            activation=activation,
            input_zero_point=in_zp,
            output_zero_point=out_zp,
        )
        graph = load_model(data)
        _check_reference(data, _rows(graph, 12, rng))


def test_fc_batch_and_rank_3_input_match_tflm():
    """A model built for batch 3 takes groups of 3 rows; an FC reads a rank-3 input as rows of its depth."""
    rng = np.random.default_rng(5)
    data = fc_model(11, 6, seed=9, per_channel=True, batch=3, input_zero_point=-7, output_zero_point=9)
    graph = load_model(data)
    _check_reference(data, _rows(graph, 9, rng))
    b = ModelBuilder()
    x = b.input([2, 3, 5], scale=0.03, zero_point=4)
    w = b.tensor([4, 5], data=rng.integers(-127, 128, (4, 5)), scale=0.01)
    y = b.tensor([6, 4], scale=0.2, zero_point=-3)
    b.operator("FULLY_CONNECTED", [x, w, -1], [y], fused_activation_function="RELU")
    b.outputs.append(y)
    _check_reference(b.build(), rng.integers(-128, 128, (4, 3, 5)).astype(np.int8))


def _conv_model(rng, h, w, c, cout, kernel, stride, dilation, padding, per_channel, activation, batch):
    def out_size(n, f, s, d):
        eff = (f - 1) * d + 1
        return (n + s - 1) // s if padding == "SAME" else (n - eff + s) // s

    oh, ow = out_size(h, kernel[0], stride[0], dilation[0]), out_size(w, kernel[1], stride[1], dilation[1])
    b = ModelBuilder()
    s_in = float(np.exp(rng.uniform(-6, 0)))
    x = b.input([batch, h, w, c], scale=s_in, zero_point=int(rng.integers(-128, 128)))
    s_w = np.exp(rng.uniform(-8, -2, cout if per_channel else 1)).astype(np.float32)
    wt = b.tensor([cout, *kernel, c], data=rng.integers(-127, 128, (cout, *kernel, c)), scale=s_w)
    bias = b.tensor([cout], "INT32", data=rng.integers(-5000, 5000, cout), scale=np.float32(s_in) * s_w.astype(float))
    y = b.tensor(
        [batch, oh, ow, cout], scale=float(np.exp(rng.uniform(-6, 2))), zero_point=int(rng.integers(-128, 128))
    )
    b.operator(
        "CONV_2D",
        [x, wt, bias],
        [y],
        padding=padding,
        stride_h=stride[0],
        stride_w=stride[1],
        dilation_h_factor=dilation[0],
        dilation_w_factor=dilation[1],
        fused_activation_function=activation,
    )
    b.outputs.append(y)
    return b.build()


@pytest.mark.parametrize("seed", range(12))
def test_conv2d_padding_stride_per_channel_match_tflm(seed):
    rng = np.random.default_rng(seed)
    padding = ["SAME", "VALID"][seed % 2]
    kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    h, w = int(rng.integers(kernel[0], 9)), int(rng.integers(kernel[1], 9))
    dilation = (2, 1) if seed == 5 else (1, 1)  # dilation > 1 too, beyond what the issue asks
    if padding == "VALID":
        h = max(h, (kernel[0] - 1) * dilation[0] + 1)
    data = _conv_model(
        rng,
        h,
        w,
        int(rng.integers(1, 6)),
        int(rng.integers(1, 7)),
        kernel,
        (int(rng.integers(1, 3)), int(rng.integers(1, 3))),
        dilation,
        padding,
        seed % 3 != 0,
        ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"][seed % 4],
        1 + seed % 2,
    )
    graph = load_model(data)
    _check_reference(data, _rows(graph, 4, rng))


def test_small_cnn_and_its_numpy_ops_match_tflm():
    """Two CONV_2D, RESHAPE, FC and SOFTMAX; then pooling, QUANTIZE (float and int8) and DEQUANTIZE."""
    rng = np.random.default_rng(3)
    data = small_cnn(seed=1)
    graph = load_model(data)
    assert [op.op for op in graph.operators] == ["CONV_2D", "CONV_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    _check_reference(data, _rows(graph, 6, rng))
    b = ModelBuilder()
    x = b.input([1, 6, 5, 3], "FLOAT32")
    q = b.tensor([1, 6, 5, 3], scale=0.05, zero_point=10)
    b.operator("QUANTIZE", [x], [q])
    p1 = b.tensor([1, 3, 3, 3], scale=0.05, zero_point=10)
    b.operator("MAX_POOL_2D", [q], [p1], padding="SAME", stride_h=2, stride_w=2, filter_height=2, filter_width=3)
    p2 = b.tensor([1, 2, 2, 3], scale=0.05, zero_point=10)
    b.operator(
        "AVERAGE_POOL_2D",
        [p1],
        [p2],
        padding="VALID",
        stride_h=1,
        stride_w=1,
        filter_height=2,
        filter_width=2,
        fused_activation_function="RELU",
    )
    r = b.tensor([1, 12], scale=0.05, zero_point=10)
    b.operator("RESHAPE", [p2, b.tensor([2], "INT32", data=[1, 12])], [r], new_shape=[1, 12])
    q2 = b.tensor([1, 12], scale=0.13, zero_point=-60)
    b.operator("QUANTIZE", [r], [q2])
    s = b.tensor([1, 12], scale=1 / 256, zero_point=-128)
    b.operator("SOFTMAX", [q2], [s], beta=0.7)
    d = b.tensor([1, 12], "FLOAT32")
    b.operator("DEQUANTIZE", [s], [d])
    b.outputs.append(d)
    _check_reference(b.build(), rng.normal(0, 4, (5, 6, 5, 3)).astype(np.float32))


def _depthwise_pad_add_model(rng, bias=True):
    """DEPTHWISE_CONV_2D -> PAD -> ADD (a broadcast constant) -> ADD (a residual: the PAD's output)."""
    h, w, c, dm = int(rng.integers(2, 8)), int(rng.integers(2, 8)), int(rng.integers(1, 5)), int(rng.integers(1, 3))
    kh, kw, stride = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
    oh, ow, cout = (h + stride - 1) // stride, (w + stride - 1) // stride, c * dm
    b = ModelBuilder()
    s_in = float(np.exp(rng.uniform(-5, 0)))
    x = b.input([1, h, w, c], scale=s_in, zero_point=int(rng.integers(-128, 128)))
    s_w = np.exp(rng.uniform(-7, -2, cout)).astype(np.float32)
    wt = b.tensor([1, kh, kw, cout], data=rng.integers(-127, 128, (1, kh, kw, cout)), scale=s_w, quantized_dimension=3)
    bias_t = -1
    if bias:
        bias_t = b.tensor(
            [cout], "INT32", data=rng.integers(-3000, 3000, cout), scale=np.float32(s_in) * s_w.astype(float)
        )
    s_y, zp_y = float(np.exp(rng.uniform(-5, 1))), int(rng.integers(-128, 128))
    y = b.tensor([1, oh, ow, cout], scale=s_y, zero_point=zp_y)
    b.operator(
        "DEPTHWISE_CONV_2D",
        [x, wt, bias_t],
        [y],
        padding="SAME",
        stride_h=stride,
        stride_w=stride,
        depth_multiplier=dm,
        fused_activation_function="RELU6",
    )
    pads = rng.integers(0, 3, (4, 2))
    pads[0] = 0
    shape = [1, oh + int(pads[1].sum()), ow + int(pads[2].sum()), cout + int(pads[3].sum())]
    p = b.tensor(shape, scale=s_y, zero_point=zp_y)
    b.operator("PAD", [y, b.tensor([4, 2], "INT32", data=pads)], [p])
    const = b.tensor([shape[3]], data=rng.integers(-128, 128, shape[3]), scale=0.05, zero_point=3)
    a1 = b.tensor(shape, scale=float(np.exp(rng.uniform(-5, 1))), zero_point=int(rng.integers(-128, 128)))
    b.operator("ADD", [p, const], [a1], fused_activation_function="RELU")
    a2 = b.tensor(shape, scale=float(np.exp(rng.uniform(-5, 1))), zero_point=int(rng.integers(-128, 128)))
    b.operator("ADD", [a1, p], [a2])
    b.outputs.append(a2)
    return b.build()


@pytest.mark.parametrize("seed", range(8))
def test_depthwise_conv_pad_and_add_match_tflm(seed):
    rng = np.random.default_rng(seed)
    data = _depthwise_pad_add_model(rng)
    graph = load_model(data)
    assert [op.op for op in graph.operators] == ["DEPTHWISE_CONV_2D", "PAD", "ADD", "ADD"]
    _check_reference(data, _rows(graph, 3, rng))


def test_a_tflm_crash_is_one_line(tmp_path):
    """TFLM's DEPTHWISE_CONV_2D without a bias crashes the interpreter: the check runs in a child process."""
    path = tmp_path / "dw.tflite"
    path.write_bytes(_depthwise_pad_add_model(np.random.default_rng(0), bias=False))
    r = _sim("infer", str(path), "--engine", "reference")
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith("sim: error: TFLite Micro's interpreter crashed (signal 11) on this model; --check none")
    r = _sim("infer", str(path), "--engine", "reference", "--check", "none", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["bit_exact"] is None


# -- the digits MLP, exported ----------------------------------------------------------------------------------


def test_exported_digits_mlp_is_the_projects_mlp_bit_for_bit():
    """TFLM on build/digits_mlp.tflite = reference.tflm's MLP (which make sim-cfu runs) = the graph reference."""
    mlp, _ = digits_mlp()
    data = mlp_to_tflite(mlp)
    graph = _check_reference(data, mlp.quantize_input(load_split()[2]).astype(np.int8))
    x = mlp.quantize_input(load_split()[2])
    groups = group_inputs(graph, x.astype(np.int8))
    expected = tflm_tensors(data, graph, groups, graph.outputs, isolated=False)[graph.outputs[0]]
    np.testing.assert_array_equal(ungroup(expected), mlp.forward(x)[-1])


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory):
    from reference.tflite_model.export import write_digits_model

    model, images = write_digits_model(tmp_path_factory.mktemp("digits"))
    return model, images


# -- bad models: one line naming the op, its index and the type ---------------------------------------------


def _unsupported_models():
    b = ModelBuilder()
    x = b.input([1, 4], scale=0.1)
    y = b.tensor([1, 4], scale=0.1)
    b.operator("RELU", [x], [y])  # not (yet) in the reference
    b.outputs.append(y)
    yield b.build(), r"operator 0 \(RELU\) is not supported; supported: .*FULLY_CONNECTED"
    b = ModelBuilder()
    x = b.input([1, 4], "FLOAT32")
    w = b.tensor([2, 4], "FLOAT32", data=np.ones((2, 4)))
    y = b.tensor([1, 2], "FLOAT32")
    b.operator("FULLY_CONNECTED", [x, w, -1], [y])
    b.outputs.append(y)
    yield b.build(), r"operator 0 \(FULLY_CONNECTED\): input tensor 0 't0' FLOAT32\[1, 4\] has type FLOAT32; INT8 only"
    b = ModelBuilder()
    x = b.input([1, 4], scale=0.1)
    w = b.tensor([2, 4], data=np.ones((2, 4)), scale=0.1, zero_point=3)
    y = b.tensor([1, 2], scale=0.1)
    b.operator("FULLY_CONNECTED", [x, w, -1], [y], fused_activation_function="TANH")
    b.outputs.append(y)
    yield b.build(), r"operator 0 \(FULLY_CONNECTED\): filter .* zero point other than 0"
    b = ModelBuilder()
    x = b.input([1, 4], scale=0.1)
    w = b.tensor([2, 4], data=np.ones((2, 4)), scale=0.1)
    y = b.tensor([1, 2], scale=0.1)
    b.operator("FULLY_CONNECTED", [x, w, -1], [y], fused_activation_function="TANH")
    b.outputs.append(y)
    yield b.build(), r"operator 0 \(FULLY_CONNECTED\): fused activation TANH is not supported"


@pytest.mark.parametrize("case", range(4))
def test_unsupported_ops_and_types_are_named_before_anything_runs(case, tmp_path):
    data, message = list(_unsupported_models())[case]
    with pytest.raises(UnsupportedOp, match=message):
        check_graph(load_model(data))
    path = tmp_path / "bad.tflite"
    path.write_bytes(data)
    r = _sim("infer", str(path), "--engine", "cfu")  # refused before any build or simulation
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("sim: error: "), r.stderr


def test_bad_files_and_inputs_get_one_line(tmp_path):
    with pytest.raises(ModelError, match="no TFL3 file identifier"):
        load_model(b"not a model at all")
    model = tmp_path / "fc.tflite"
    model.write_bytes(fc_model(5, 3, seed=1))
    big = tmp_path / "big.tflite"  # 270 KB of weights: more than the SoC's RAM may hold, said before any build
    big.write_bytes(fc_model(900, 300, seed=1))
    np.save(tmp_path / "wide.npy", np.zeros((2, 6), np.int8))
    np.save(tmp_path / "float.npy", np.zeros((2, 5), np.float32))
    np.save(tmp_path / "big.npy", np.full((2, 5), 300))
    np.save(tmp_path / "flat.npy", np.zeros(5, np.int8))
    cases = [
        ([str(tmp_path / "missing.tflite")], "cannot read"),
        ([str(model), "--inputs", str(tmp_path / "wide.npy")], r"takes \(rows, 5\)"),
        ([str(model), "--inputs", str(tmp_path / "float.npy")], "add --quantize"),
        ([str(model), "--inputs", str(tmp_path / "big.npy")], r"int8 values \(-128..127\) expected"),
        ([str(model), "--inputs", str(tmp_path / "flat.npy")], "has no batch axis"),
        ([str(model), "--inputs", str(tmp_path / "nope.npy")], "cannot read"),
        ([str(model), "--samples", "2", "--inputs", str(tmp_path / "wide.npy")], "give one"),
        ([str(model), "--quantize"], "--quantize applies to --inputs"),
        ([str(model), "--outputs", str(tmp_path / "y.csv")], "use one of .npy, .npz"),
        ([str(big), "--engine", "soc"], r"operator 0 FULLY_CONNECTED \(GEMM 1x900x300\), takes 2.*--engine gemm"),
        ([str(model), "--engine", "tpu"], "--engine: invalid choice"),
        ([str(model), "--engine", "reference", "--waves"], "--waves applies to the RTL engines"),
    ]
    for args, cause in cases:
        r = _sim("infer", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.splitlines()) == 1 and re.search(cause, r.stderr), (args, r.stderr)


def test_a_mismatch_names_layer_index_expected_and_got(monkeypatch, capsys, digits_files):
    """A faulty engine (here, the reference with one output changed) is caught against TFLM."""
    from reference.tflite_model.kernels import GemmLayer
    from sim.cli import main

    original = GemmLayer.reference

    def faulty(self):
        y = original(self)
        if self.op.index == 1:
            y = y.copy()
            y[2, 4] = y[2, 4] + 1 if y[2, 4] < 127 else 126
        return y

    monkeypatch.setattr(GemmLayer, "reference", faulty)
    rc = main(["infer", str(digits_files[0]), "--engine", "reference", "--samples", "5", "--json"])
    out, err = capsys.readouterr()
    assert rc == 1
    report = json.loads(out)
    assert report["bit_exact"] is False and report["totals"]["mismatches"] == 1
    assert [layer["mismatches"] for layer in report["layers"]] == [0, 1]
    assert err.startswith("sim: error: mismatch in reference (operator 1 FULLY_CONNECTED): tensor logits, index [2, 4]")
    assert "expected" in err and "got" in err


# -- the RTL engines ---------------------------------------------------------------------------------------------


def _infer(model, *args):
    r = _sim("infer", str(model), "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("engine", ["gemm", "cfu", pytest.param("soc", marks=pytest.mark.regress)])
def test_digits_mlp_on_the_rtl_is_bit_exact_and_predicts_as_sim_cfu(engine, digits_files, tmp_path):
    """TFLM, the reference and the engine agree on every tensor of the 360 test images; the
    predictions are the int8 MLP's, which `make sim-cfu` checks its RTL run against."""
    model, images = digits_files
    out = tmp_path / "logits.npy"
    report = _infer(model, "--engine", engine, "--inputs", str(images), "--quantize", "--outputs", str(out))
    assert report["bit_exact"] is True and report["totals"]["mismatches"] == 0
    assert [layer["engine"] for layer in report["layers"]] == [engine, engine]
    assert all(layer["cycles"] > 0 and 0 < layer["utilization"] <= 1 for layer in report["layers"])
    mlp, _ = digits_mlp()
    x = mlp.quantize_input(load_split()[2])
    logits = np.load(out)
    assert logits.dtype == np.int8 and logits.shape == (360, 10)
    np.testing.assert_array_equal(logits, mlp.forward(x)[-1])
    np.testing.assert_array_equal(np.argmax(logits, axis=1), mlp.predict(x))
    if engine == "gemm":
        assert all(layer["cycles"] == layer["model_cycles"] for layer in report["layers"])


@pytest.mark.parametrize("engine", ["gemm", "cfu"])
def test_small_cnn_and_odd_per_channel_fc_on_the_rtl_match_tflm(engine, tmp_path):
    """Two CONV_2D (im2col, SAME and VALID, strides 1 and 2) and per-channel FCs with odd widths
    and a left shift, on the RTL, every tensor against TFLM."""
    cnn = tmp_path / "cnn.tflite"
    cnn.write_bytes(small_cnn(seed=2, height=7, width=6, channels=3))
    report = _infer(cnn, "--engine", engine, "--samples", "2", "--seed", "4")
    assert report["bit_exact"] is True
    assert [layer["engine"] for layer in report["layers"]] == [engine, engine, "reference", engine, "reference"]
    fc = tmp_path / "fc.tflite"
    fc.write_bytes(
        fc_model(13, 7, seed=3, per_channel=True, shift=2, weight_range=2, input_zero_point=-128, bias=False)
    )
    rows = tmp_path / "rows.npy"  # near the zero point: the left-shifted outputs stay inside int8
    np.save(rows, (-128 + np.random.default_rng(1).integers(0, 3, (3, 13))).astype(np.int8))
    out = tmp_path / "y.npy"
    report = _infer(fc, "--engine", engine, "--inputs", str(rows), "--outputs", str(out))
    assert report["bit_exact"] is True and report["layers"][0]["per_channel"] is True
    y = np.load(out)
    assert np.any((y > -128) & (y < 127))


def test_small_cnn_and_per_channel_fc_on_the_soc_match_tflm(tmp_path):
    """``--engine soc``: two CONV_2D (im2col on the host) and a per-channel FC as one firmware image on
    VexRiscv through the GEMM CFU, one simulation; then an FC with a left shift, input zero point -128,
    no bias and an odd width, on the same SoC build (the testbench loads each image). Every tensor
    against TFLM."""
    cnn = tmp_path / "cnn.tflite"
    cnn.write_bytes(small_cnn(seed=2, height=7, width=6, channels=3))
    report = _infer(cnn, "--engine", "soc", "--samples", "2", "--seed", "4")
    assert report["bit_exact"] is True and report["simulator"] == "verilator"
    assert [layer["engine"] for layer in report["layers"]] == ["soc", "soc", "reference", "soc", "reference"]
    soc = [layer for layer in report["layers"] if layer["engine"] == "soc"]
    assert all(layer["soc_inputs"] for layer in soc)
    assert all(0 < layer["gemm_busy_cycles"] < layer["cycles"] and 0 < layer["utilization"] < 1 for layer in soc)
    fc = tmp_path / "fc.tflite"
    fc.write_bytes(
        fc_model(13, 7, seed=3, per_channel=True, shift=2, weight_range=2, input_zero_point=-128, bias=False)
    )
    rows = tmp_path / "rows.npy"  # near the zero point: the left-shifted outputs stay inside int8
    np.save(rows, (-128 + np.random.default_rng(1).integers(0, 3, (3, 13))).astype(np.int8))
    out = tmp_path / "y.npy"
    report = _infer(fc, "--engine", "soc", "--inputs", str(rows), "--outputs", str(out))
    assert report["bit_exact"] is True and report["layers"][0]["per_channel"] is True
    y = np.load(out)
    assert y.shape == (3, 7) and np.any((y > -128) & (y < 127))


@pytest.mark.regress
def test_soc_engine_on_both_simulators(simulator, tmp_path):
    """``--engine soc`` on Icarus and Verilator: a per-tensor FC (the kit's fast weight load) with a batch
    and zero points, and a conv model whose im2col rows make several GEMM chunks."""
    models = [
        fc_model(64, 20, seed=5, input_zero_point=3, output_zero_point=-7, activation="RELU"),
        small_cnn(seed=1, height=9, width=8, channels=2),
    ]
    for i, data in enumerate(models):
        path = tmp_path / f"m{i}.tflite"
        path.write_bytes(data)
        report = _infer(path, "--engine", "soc", "--simulator", simulator, "--samples", "5", "--seed", str(i))
        assert report["bit_exact"] is True, path
        assert all(layer["engine"] in ("soc", "reference") for layer in report["layers"])


def test_gemm_tiles_cover_every_block_once():
    from types import SimpleNamespace

    from sim.infer.rtl import gemm_tiles

    g = SimpleNamespace(rows=4, cols=4, operand_depth=16, result_depth=8)
    for M, K, N in [(1, 1, 1), (50, 70, 9), (3, 200, 40), (33, 64, 33)]:
        cover = np.zeros((M, K, N), dtype=int)
        for (m0, m1), (k0, k1), (n0, n1) in gemm_tiles(M, K, N, g):
            kw = -(-(k1 - k0) // g.rows)
            assert (m1 - m0) * kw <= g.operand_depth and (n1 - n0) * kw <= g.operand_depth
            assert -(-(n1 - n0) // g.cols) * (m1 - m0) <= g.result_depth
            cover[m0:m1, k0:k1, n0:n1] += 1
        assert np.all(cover == 1)


# -- longer sweeps -----------------------------------------------------------------------------------------------


@pytest.mark.regress
@pytest.mark.parametrize("engine", ["gemm", "cfu"])
def test_rtl_engines_sweep_on_both_simulators(engine, simulator, tmp_path):
    """Random FC and conv models, tiles split along M, N and K, on Icarus and Verilator."""
    rng = np.random.default_rng(11)
    models = [small_cnn(seed=s, height=9, width=8, channels=2) for s in range(2)]
    models += [
        fc_model(
            int(rng.integers(1, 300)),
            int(rng.integers(1, 40)),
            seed=s,
            per_channel=bool(s % 2),
            input_zero_point=int(rng.integers(-128, 128)),
            output_zero_point=int(rng.integers(-128, 128)),
            activation=["NONE", "RELU", "RELU6", "RELU_N1_TO_1"][s % 4],
        )
        for s in range(4)
    ]
    if engine == "gemm":  # N split (N > 1024 // ceil(K/8)) and K split (K > 8192)
        models += [fc_model(1100, 150, seed=7, per_channel=True), fc_model(8200, 3, seed=8)]
    for i, data in enumerate(models):
        path = tmp_path / f"m{i}.tflite"
        path.write_bytes(data)
        report = _infer(path, "--engine", engine, "--simulator", simulator, "--samples", "3", "--seed", str(i))
        assert report["bit_exact"] is True, path
