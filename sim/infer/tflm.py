"""TFLite Micro's own interpreter (the ``tflite-micro`` wheel) as the checker.

The interpreter runs TFLM's reference kernels on the host. Built with
``kPreserveAllTensors`` it keeps every intermediate tensor, so each layer of
an engine's run is compared with TFLM's, not only the model's output.

It runs in a child process (``python -m sim.infer.tflm DIR``): TFLM's C++
code can crash on a model it does not expect (its DEPTHWISE_CONV_2D
without a bias does), and a crash must end in one error line, not take the
command with it.
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["TflmError", "tflm_available", "tflm_tensors", "run_tflm"]


class TflmError(RuntimeError):
    """TFLM refused the model, failed or crashed running it (one line)."""


def tflm_available():
    return importlib.util.find_spec("tflite_micro") is not None


def _arena_size(graph, model_bytes):
    """Bytes of arena for every tensor kept at once, plus TFLM's own structures."""
    activations = 0
    for t in graph.tensors:
        if not t.is_constant:
            activations += 8 * max(1, int(np.prod(t.shape)))  # at most 8 bytes an element
    return 256 * 1024 + 2 * activations + 2 * len(model_bytes) + 2048 * len(graph.operators)


def tflm_tensors(model_bytes, graph, x, indices, isolated=True):
    """Run TFLM on each group of ``x`` (groups, *input shape) and return ``{index: (groups, *shape)}``
    for every tensor index in ``indices``. ``isolated``: in a child process (the command line's
    way); the tests call it in-process, where a crash would end the test run."""
    arena = _arena_size(graph, model_bytes)
    if not isolated:
        return run_tflm(bytes(model_bytes), np.asarray(x), indices, arena)
    with tempfile.TemporaryDirectory(prefix="sim-tflm-") as tmp:
        tmp = Path(tmp)
        (tmp / "model.tflite").write_bytes(bytes(model_bytes))
        np.save(tmp / "inputs.npy", np.asarray(x))
        (tmp / "job.json").write_text(json.dumps({"indices": [int(i) for i in indices], "arena": arena}))
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        r = subprocess.run(
            [sys.executable, "-m", "sim.infer.tflm", str(tmp)], capture_output=True, text=True, env=env, cwd=root
        )
        if r.returncode < 0:
            raise TflmError(
                f"TFLite Micro's interpreter crashed (signal {-r.returncode}) on this model; "
                "--check none runs it without the check"
            )
        if r.returncode:
            lines = [line for line in r.stderr.splitlines() if line.strip()]
            raise TflmError(lines[-1] if lines else f"TFLite Micro's check failed (exit {r.returncode})")
        with np.load(tmp / "tensors.npz") as z:
            return {int(k[1:]): z[k] for k in z.files}


def run_tflm(data, x, indices, arena):
    """TFLM in this process: ``{index: (groups, *shape)}`` of the tensors ``indices``."""
    from tflite_micro.python.tflite_micro import runtime

    for attempt in range(4):  # a larger arena if TFLM runs out of it
        try:
            interpreter = runtime.Interpreter.from_bytes(
                data,
                arena_size=arena,
                intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors,  # sic: the package's spelling
            )
            break
        except (RuntimeError, ValueError) as e:
            if "allocate" not in str(e) or attempt == 3:
                raise TflmError(f"TFLM cannot run this model: {e}") from None
            arena *= 4
    in_dtype = interpreter.get_input_details(0)["dtype"]
    out = {int(i): [] for i in indices}
    for group in x:
        interpreter.set_input(np.ascontiguousarray(group.astype(in_dtype)), 0)
        try:
            interpreter.invoke()
        except RuntimeError as e:
            raise TflmError(f"TFLM failed to run the model: {e}") from None
        for i in out:
            out[i].append(np.array(interpreter.GetTensor(i, 0)["tensor_data"]))
    return {i: np.stack(v) for i, v in out.items()}


def _child(directory):
    """``python -m sim.infer.tflm DIR``: the job in DIR, the tensors to ``DIR/tensors.npz``."""
    directory = Path(directory)
    job = json.loads((directory / "job.json").read_text())
    tensors = run_tflm(
        (directory / "model.tflite").read_bytes(), np.load(directory / "inputs.npy"), job["indices"], job["arena"]
    )
    np.savez(directory / "tensors.npz", **{f"t{i}": v for i, v in tensors.items()})


if __name__ == "__main__":
    try:
        _child(sys.argv[1])
    except TflmError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
