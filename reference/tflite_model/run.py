"""Run a :class:`~.graph.Graph` operator by operator.

Accelerated ops (FULLY_CONNECTED, CONV_2D) are lowered to a
:class:`~.kernels.GemmLayer` and handed to an engine's ``gemm`` coroutine;
the NumPy reference computes them when no engine is given. Every other op runs
in NumPy here. The runner is a coroutine so that a cocotb testbench can await
the RTL inside ``gemm``; :func:`run_reference` runs it without one.

Values carry a leading group axis (see :mod:`.kernels`): :func:`group_inputs`
turns a batch of rows into groups of the model's own batch size.
"""

import asyncio

import numpy as np

from .graph import NUMPY_TYPES, ModelError
from .kernels import KERNELS

__all__ = ["group_inputs", "run_model", "run_reference", "reference_gemm", "ungroup"]


def group_inputs(graph, x):
    """``x`` (rows, *input shape without its batch axis) as (groups, *input shape).

    A model built for batch B takes B rows a group; ``rows`` must be a multiple of B."""
    t = graph.tensor(graph.inputs[0])
    x = np.asarray(x)
    inner = tuple(t.shape[1:])
    if x.ndim < 1 or tuple(x.shape[1:]) != inner:
        raise ModelError(
            f"inputs of shape {list(x.shape)}: the model's input {t.describe()} takes rows of shape {list(inner)}, "
            f"so the inputs must be (rows, {', '.join(map(str, inner))})"
        )
    batch = t.shape[0] if t.shape[0] > 0 else 1
    if len(x) % batch:
        raise ModelError(f"{len(x)} input rows do not make whole batches of {batch} (the model's batch size)")
    return x.reshape(len(x) // batch, batch, *inner)


def ungroup(value):
    """A value (groups, batch, ...) as rows (groups·batch, ...)."""
    return value.reshape(-1, *value.shape[2:]) if value.ndim >= 2 else value


async def reference_gemm(layer):
    return layer.reference(), {"engine": "reference"}


def _record(op, graph, layer=None, stats=None):
    out = graph.tensor(op.outputs[0]) if op.outputs else None
    rec = {
        "index": op.index,
        "op": op.op,
        "engine": "reference",
        "shape": list(out.shape) if out is not None else None,
        "gemm": None,
        "macs": 0,
        "cycles": None,
        "utilization": None,
    }
    if layer is not None:
        M, K, N = layer.shape
        rec.update(gemm=[M, K, N], macs=layer.macs, per_channel=bool(layer.per_channel))
        rec.update(stats or {})
    return rec


async def run_model(graph, x, gemm=reference_gemm, on_layer=None):
    """Run ``graph`` on grouped inputs ``x`` (:func:`group_inputs`).

    ``gemm(layer)`` is awaited for every accelerated op and returns the int8
    outputs (M, N) and a dict merged into that op's record (``engine``,
    ``cycles``, ``utilization``, ...). ``on_layer(record)`` is called after
    each op. Returns ``(values, records)``: every tensor the model computes,
    by index, with the group axis first, and one record per op.
    """
    values = {graph.inputs[0]: np.asarray(x)}
    records = []
    for op in graph.operators:
        kernel = KERNELS[op.op]
        ins = [values.get(i) if i >= 0 else None for i in op.inputs]
        if kernel.accelerated:
            layer = kernel.lower(graph, op, ins[0])
            y, stats = await gemm(layer)
            outs = [layer.finish(y)]
            rec = _record(op, graph, layer, stats)
        else:
            outs = kernel.run(graph, op, ins)
            rec = _record(op, graph)
        for i, v in zip(op.outputs, outs):
            t = graph.tensor(i)
            values[i] = np.asarray(v).astype(NUMPY_TYPES[t.dtype]) if t.dtype in NUMPY_TYPES else v
        records.append(rec)
        if on_layer:
            on_layer(rec)
    return values, records


def run_reference(graph, x):
    """:func:`run_model` with the NumPy reference computing every op."""
    return asyncio.run(run_model(graph, x))
