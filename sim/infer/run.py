"""``python -m sim infer``: load a .tflite model, run it on an engine, check every
layer against TFLite Micro, report.

The steps, each failing with one line before the next starts:

1. read the model (:func:`reference.tflite_model.load_model`) and check that
   every op and type is supported (:func:`~reference.tflite_model.kernels.check_graph`);
2. the inputs: an .npy (int8, or float with ``quantize``) or random int8 rows;
3. the engine runs the model: the NumPy reference in this process, or an RTL
   engine in one cocotb simulation (:mod:`sim.infer.tb_infer`);
4. TFLM runs the same rows with every intermediate tensor kept, and each op's
   outputs are compared element by element with the engine's.
"""

import asyncio
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from reference.tflite_model import ModelError, load_model
from reference.tflite_model.kernels import ACCELERATED, affine_quantize, check_graph
from reference.tflite_model.run import group_inputs, run_model, ungroup

from ..runner import Mismatch
from .engines import engine_spec

__all__ = ["InferError", "load_checked", "prepare_inputs", "infer", "write_outputs"]


class InferError(ValueError):
    """A bad model, input or option: one line."""


def load_checked(path):
    """``(graph, model_bytes)`` of a supported model, or :class:`InferError`."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InferError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        graph = load_model(data)
        check_graph(graph)
    except ModelError as e:
        raise InferError(f"{path}: {e}") from None
    return graph, data


def prepare_inputs(graph, inputs=None, quantize=False, samples=None, seed=0):
    """The input rows: ``(rows, *input shape without its batch axis)`` in the model input's type."""
    t = graph.tensor(graph.inputs[0])
    inner = tuple(t.shape[1:])
    if inputs is None:
        rng = np.random.default_rng(seed)
        n = samples or 1
        if t.dtype == "INT8":
            return rng.integers(-128, 128, (n, *inner)).astype(np.int8)
        return rng.standard_normal((n, *inner)).astype(np.float32)
    try:
        x = np.load(inputs, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InferError(f"--inputs: cannot read {inputs} as a .npy array: {e}") from None
    if not isinstance(x, np.ndarray):
        raise InferError(f"--inputs: {inputs} holds several arrays; give one .npy array")
    if x.ndim == len(inner) and tuple(x.shape) == inner:
        raise InferError(
            f"--inputs: shape {list(x.shape)} has no batch axis; the model takes (rows, {', '.join(map(str, inner))})"
        )
    if tuple(x.shape[1:]) != inner:
        raise InferError(
            f"--inputs: shape {list(x.shape)}; the model's input {t.describe()} takes (rows, "
            f"{', '.join(map(str, inner))})"
        )
    if len(x) == 0:
        raise InferError(f"--inputs: {inputs} has no rows")
    if t.dtype == "FLOAT32":
        if quantize:
            raise InferError("--quantize: the model's input is FLOAT32 already (it quantizes its input itself)")
        if not np.issubdtype(x.dtype, np.number):
            raise InferError(f"--inputs: {x.dtype} values; the model takes float32")
        return x.astype(np.float32)
    if np.issubdtype(x.dtype, np.floating):
        if not quantize:
            raise InferError(
                f"--inputs: {x.dtype} values for an INT8 input; add --quantize to quantize them with the input's "
                f"scale {float(t.scale[0]):g} and zero point {int(t.zero_point[0])}"
            )
        if not np.all(np.isfinite(x)):
            raise InferError("--inputs: the values are not all finite")
        return affine_quantize(x, t.scale[0], t.zero_point[0]).astype(np.int8)
    if quantize:
        raise InferError(f"--quantize: the inputs are {x.dtype} already; it applies to float inputs")
    if not np.issubdtype(x.dtype, np.integer) or x.min() < -128 or x.max() > 127:
        raise InferError(f"--inputs: {x.dtype} values in [{x.min()}, {x.max()}]; int8 values (-128..127) expected")
    return x.astype(np.int8)


def _run_rtl(spec, model_path, groups, simulator, waves):
    from ..runner import run_cocotb

    with tempfile.TemporaryDirectory(prefix="sim-infer-") as tmp:
        tmp = Path(tmp)
        np.save(tmp / "inputs.npy", groups)
        job = {
            "model": str(Path(model_path).resolve()),
            "inputs": str(tmp / "inputs.npy"),
            "engine": spec.name,
            "values": str(tmp / "values.npz"),
        }
        (tmp / "job.json").write_text(json.dumps(job))
        results = run_cocotb(
            spec.design,
            "sim.infer.tb_infer",
            simulator=simulator,
            params=spec.params,
            testcase="infer_model",
            waves=waves,
            quiet=True,
            env={"INFER_JOB": str(tmp / "job.json")},
        )
        with np.load(tmp / "values.npz") as z:
            values = {int(k[1:]): z[k] for k in z.files}
    return values, results["infer"]["records"], results.get("waves")


def _run_soc(graph, groups, simulator, waves):
    """The ``soc`` engine (:mod:`sim.infer.soc`): one firmware image with every accelerated layer, one
    simulation of the SoC, then the model finished on the host with the firmware's outputs."""
    import fcntl

    from ..runner import locked, repo_root, run_cocotb
    from .soc import SocTooBig, build_infer_firmware, reference_layers, soc_gemm

    layers = reference_layers(graph, groups)
    out = repo_root() / "build" / "soc" / "infer"
    out.mkdir(parents=True, exist_ok=True)
    # One model run at a time builds this firmware and runs on it.
    with locked(out, fcntl.LOCK_EX):
        try:
            binary, symbols, ram_words = build_infer_firmware(out, layers)
        except SocTooBig as e:
            raise InferError(str(e)) from None
        job = {
            "image": str(binary),
            "values": str(out / "values.npz"),
            "symbols": {k: v for k, v in symbols.items() if k == "stats" or k.startswith("out")},
            "shapes": [[layer.shape[0], layer.shape[2]] for layer in layers],
        }
        (out / "job.json").write_text(json.dumps(job))
        results = run_cocotb(
            "soc",
            "sim.infer.tb_infer",
            simulator=simulator,
            # No firmware in the build: the testbench loads the image, so runs share the build.
            params={"firmware": [], "ram_words": ram_words, "loader": True},
            testcase="infer_soc",
            tag=f"soc-infer-{ram_words}",
            waves=waves,
            quiet=True,
            env={"INFER_JOB": str(out / "job.json")},
        )
        with np.load(out / "values.npz") as z:
            outputs = [z[f"out{i}"] for i in range(len(layers))]
            stats = z["stats"]
    values, records = asyncio.run(run_model(graph, groups, soc_gemm(layers, outputs, stats)))
    return values, records, results.get("waves")


def _first_difference(got, expected):
    """``(count, index, expected, got)`` of two arrays (rows first), or ``(0, None, None, None)``."""
    bad = got != expected
    count = int(np.count_nonzero(bad))
    if not count:
        return 0, None, None, None
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    e, g = expected[where], got[where]
    cast = float if np.issubdtype(np.asarray(e).dtype, np.floating) else int
    return count, list(where), cast(e), cast(g)


def _scalar(v):
    return v.item() if hasattr(v, "item") else v


def infer(
    graph,
    model_bytes,
    model_path,
    rows,
    engine="gemm",
    simulator="verilator",
    check=True,
    waves=False,
):
    """Run ``rows`` through the model on ``engine`` and (with ``check``) compare with TFLM.

    Returns ``(report, outputs)``: the report (what ``--json`` prints) and the
    model's outputs as rows. A difference from TFLM raises
    :class:`sim.runner.Mismatch`, whose ``summary`` is the whole report."""
    spec = engine_spec(engine)
    groups = group_inputs(graph, rows)
    t0 = time.perf_counter()
    waves_path = None
    if spec.design is None:
        values, records = asyncio.run(run_model(graph, groups))
    elif spec.name == "soc":
        values, records, waves_path = _run_soc(graph, groups, simulator, waves)
    else:
        values, records, waves_path = _run_rtl(spec, model_path, groups, simulator, waves)
    run_seconds = time.perf_counter() - t0

    produced = [i for op in graph.operators for i in op.outputs]
    expected = None
    if check:
        from .tflm import tflm_tensors

        expected = tflm_tensors(model_bytes, graph, groups, produced)
    first = None
    for op, rec in zip(graph.operators, records):
        rec["mismatches"] = None
        if expected is None:
            continue
        rec["mismatches"] = 0
        for i in op.outputs:
            t = graph.tensor(i)
            got = ungroup(np.asarray(values[i]).reshape(len(groups), *t.shape))
            want = ungroup(np.asarray(expected[i]).reshape(len(groups), *t.shape))
            count, index, e, g = _first_difference(got, want)
            rec["mismatches"] += count
            if count and first is None:
                first = {
                    "design": spec.name,
                    "where": f"operator {op.index} {op.op}",
                    "tensor": t.name,
                    "index": index,
                    "expected": e,
                    "got": g,
                    "detail": f"{count} of {got.size} elements differ (index: row, then the tensor's axes; "
                    "expected: TFLite Micro's)",
                }
    accelerated = [r for r in records if r["op"] in ACCELERATED]
    macs = sum(r["macs"] for r in accelerated)
    cycles = sum(r["cycles"] for r in accelerated if r.get("cycles")) or None
    mismatches = sum(r["mismatches"] for r in records) if check else None
    outputs = {}
    out_records = []
    for i in graph.outputs:
        t = graph.tensor(i)
        outputs[t.name] = ungroup(np.asarray(values[i]).reshape(len(groups), *t.shape))
        mism = None
        if check:
            want = ungroup(np.asarray(expected[i]).reshape(len(groups), *t.shape))
            mism = _first_difference(outputs[t.name], want)[0]
        out_records.append({"tensor": t.name, "index": i, "shape": list(t.shape), "mismatches": mism})
    report = {
        "model": str(model_path),
        "engine": spec.name,
        "engine_description": spec.what,
        "simulator": simulator if spec.design else None,
        "rows": int(len(rows)),
        "groups": int(len(groups)),
        "check": "tflm" if check else None,
        "layers": records,
        "outputs": out_records,
        "totals": {
            "ops": len(records),
            "accelerated_ops": len(accelerated),
            "macs": int(macs),
            "cycles": cycles,
            "utilization": macs / (spec.macs_per_cycle * cycles) if cycles and spec.macs_per_cycle else None,
            "mismatches": mismatches,
        },
        "bit_exact": (mismatches == 0) if check else None,
        "run_seconds": run_seconds,
        "waves": waves_path,
    }
    report = json.loads(json.dumps(report, default=_scalar))
    if first is not None:
        e = Mismatch(first, {"infer": report, "waves": waves_path})
        e.summary = report
        raise e
    return report, outputs


def write_outputs(path, outputs):
    """The outputs, rows first: one array to a .npy, several (by tensor name) to a .npz."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        np.savez(path, **outputs)
    else:
        (value,) = outputs.values()
        np.save(path, value)
