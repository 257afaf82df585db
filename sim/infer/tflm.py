"""TFLite Micro's own interpreter (the ``tflite-micro`` wheel) as the checker.

The interpreter runs TFLM's reference kernels on the host. Built with
``kPreserveAllTensors`` it keeps every intermediate tensor, so each layer of
an engine's run is compared with TFLM's, not only the model's output.
"""

import importlib.util

import numpy as np

__all__ = ["TflmError", "tflm_available", "tflm_tensors"]


class TflmError(RuntimeError):
    """TFLM refused the model or failed to run it (one line)."""


def tflm_available():
    return importlib.util.find_spec("tflite_micro") is not None


def _arena_size(graph, model_bytes):
    """Bytes of arena for every tensor kept at once, plus TFLM's own structures."""
    activations = 0
    for t in graph.tensors:
        if not t.is_constant:
            activations += 8 * max(1, int(np.prod(t.shape)))  # at most 8 bytes an element
    return 256 * 1024 + 2 * activations + 2 * len(model_bytes) + 2048 * len(graph.operators)


def tflm_tensors(model_bytes, graph, x, indices):
    """Run TFLM on each group of ``x`` (groups, *input shape) and return ``{index: (groups, *shape)}``
    for every tensor index in ``indices``."""
    from tflite_micro.python.tflite_micro import runtime

    try:
        interpreter = runtime.Interpreter.from_bytes(
            bytes(model_bytes),
            arena_size=_arena_size(graph, model_bytes),
            intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors,  # sic: the package's spelling
        )
    except (RuntimeError, ValueError) as e:
        raise TflmError(f"TFLM cannot run this model: {e}") from None
    in_dtype = interpreter.get_input_details(0)["dtype"]
    out = {i: [] for i in indices}
    for group in np.asarray(x):
        interpreter.set_input(np.ascontiguousarray(group.astype(in_dtype)), 0)
        try:
            interpreter.invoke()
        except RuntimeError as e:
            raise TflmError(f"TFLM failed to run the model: {e}") from None
        for i in indices:
            out[i].append(np.array(interpreter.GetTensor(i, 0)["tensor_data"]))
    return {i: np.stack(v) for i, v in out.items()}
