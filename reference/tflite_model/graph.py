"""A .tflite model as a plain graph: tensors and operators, read with TFLite's
own flatbuffer schema (:mod:`.schema`), never by hand.

Only the first subgraph is read (control flow is not supported). Constant
tensors carry their data as NumPy arrays; quantization is kept per tensor or
per channel as the file states it.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .schema import FILE_IDENTIFIER, enum_names, schema

__all__ = ["ModelError", "Tensor", "Operator", "Graph", "load_model", "NUMPY_TYPES"]

#: TFLite tensor types with a NumPy equivalent (stored little-endian).
NUMPY_TYPES = {
    "FLOAT32": np.float32,
    "FLOAT16": np.float16,
    "FLOAT64": np.float64,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT16": np.int16,
    "UINT16": np.uint16,
    "INT32": np.int32,
    "UINT32": np.uint32,
    "INT64": np.int64,
    "UINT64": np.uint64,
    "BOOL": np.bool_,
}


class ModelError(ValueError):
    """The file is not a model this tool can read; the message is one line."""


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple  # as stored (batch first for activations)
    dtype: str  # TFLite's type name: INT8, INT32, FLOAT32, ...
    scale: np.ndarray | None = None  # float32 scales: one, or one per channel
    zero_point: np.ndarray | None = None  # int64, same length as scale
    quantized_dimension: int = 0
    data: np.ndarray | None = None  # constant tensors only (weights, biases, shapes)

    @property
    def is_constant(self):
        return self.data is not None

    @property
    def quantized(self):
        return self.scale is not None and len(self.scale) > 0

    @property
    def per_channel(self):
        return self.quantized and len(self.scale) > 1

    def describe(self):
        return f"tensor {self.index} '{self.name}' {self.dtype}{list(self.shape)}"


@dataclass
class Operator:
    index: int
    op: str  # BuiltinOperator name: FULLY_CONNECTED, CONV_2D, ... (CUSTOM:<code> for custom ops)
    inputs: list  # tensor indices; -1 marks an omitted optional input
    outputs: list
    options: dict = field(default_factory=dict)  # builtin options, snake_case; enums as names

    def describe(self):
        return f"operator {self.index} ({self.op})"


@dataclass
class Graph:
    tensors: list
    operators: list
    inputs: list
    outputs: list
    description: str = ""

    def tensor(self, index):
        return None if index < 0 else self.tensors[index]


def _snake(name):
    return re.sub(r"(?<=[a-zA-Z0-9])([A-Z])", r"_\1", name).lower()


#: Option fields holding an enum, and the schema enum that names their values.
_ENUM_FIELDS = {
    "fusedActivationFunction": "ActivationFunctionType",
    "padding": "Padding",
    "weightsFormat": "FullyConnectedOptionsWeightsFormat",
}


def _options(opts):
    if opts is None:
        return {}
    out = {}
    for key, value in vars(opts).items():
        if key in _ENUM_FIELDS:
            value = enum_names(_ENUM_FIELDS[key]).get(value, value)
        elif isinstance(value, np.ndarray):
            value = [v.item() for v in value]
        out[_snake(key)] = value
    return out


def _decode(name):
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else (name or "")


def _constant(t, shape, buffers, dtype, where):
    if t.buffer is None or t.buffer <= 0 or t.buffer >= len(buffers):
        return None
    buf = buffers[t.buffer]
    data = buf.data if buf is not None else None
    if data is None or len(data) == 0:
        if buf is not None and buf.size:
            raise ModelError(f"{where}: data stored outside the flatbuffer (offset/size) is not supported")
        return None
    if dtype not in NUMPY_TYPES:
        raise ModelError(f"{where}: constant of type {dtype} is not supported")
    raw = np.asarray(data, dtype=np.uint8).tobytes()
    np_type = np.dtype(NUMPY_TYPES[dtype]).newbyteorder("<")
    count = int(np.prod(shape))
    if len(raw) != count * np_type.itemsize:
        raise ModelError(f"{where}: its buffer holds {len(raw)} bytes, the shape needs {count * np_type.itemsize}")
    return np.frombuffer(raw, dtype=np_type).astype(NUMPY_TYPES[dtype]).reshape(shape)


def load_model(source):
    """Read a .tflite file (a path, or its bytes) into a :class:`Graph`.

    Raises :class:`ModelError` (one line) for a file that is not a TFLite
    flatbuffer or uses what this reader does not handle.
    """
    s = schema()
    if isinstance(source, (str, Path)):
        try:
            data = Path(source).read_bytes()
        except OSError as e:
            raise ModelError(f"cannot read {source}: {e.strerror or e}") from None
    else:
        data = bytes(source)
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise ModelError("not a TFLite model (no TFL3 file identifier)")
    try:
        model = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as e:  # a corrupt flatbuffer fails anywhere inside the generated code
        raise ModelError(f"corrupt TFLite flatbuffer ({type(e).__name__}: {e})") from None
    if not model.subgraphs:
        raise ModelError("the model has no subgraph")
    if len(model.subgraphs) > 1:
        raise ModelError(f"the model has {len(model.subgraphs)} subgraphs; control flow is not supported")
    sg = model.subgraphs[0]
    buffers = model.buffers or []
    types = enum_names("TensorType")
    ops = enum_names("BuiltinOperator")
    tensors = []
    for i, t in enumerate(sg.tensors or []):
        dtype = types.get(t.type, f"type{t.type}")
        name = _decode(t.name)
        where = f"tensor {i} '{name}'"
        if t.sparsity is not None:
            raise ModelError(f"{where}: sparse tensors are not supported")
        q = t.quantization
        scale = zero_point = None
        qdim = 0
        if q is not None and q.scale is not None and len(q.scale):
            scale = np.asarray(q.scale, dtype=np.float32)
            zp = np.asarray(q.zeroPoint if q.zeroPoint is not None else [], dtype=np.int64)
            if len(zp) == 0:
                zp = np.zeros(len(scale), dtype=np.int64)
            if len(zp) != len(scale):
                raise ModelError(f"{where}: {len(scale)} scales but {len(zp)} zero points")
            zero_point, qdim = zp, int(q.quantizedDimension)
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        tensor = Tensor(i, name, shape, dtype, scale, zero_point, qdim)
        tensor.data = _constant(t, shape, buffers, dtype, where)
        tensors.append(tensor)
    operators = []
    codes = model.operatorCodes or []
    for i, o in enumerate(sg.operators or []):
        if o.opcodeIndex >= len(codes):
            raise ModelError(f"operator {i}: operator code {o.opcodeIndex} does not exist")
        code = codes[o.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = ops.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM:{_decode(code.customCode)}"
        inputs = [int(v) for v in (o.inputs if o.inputs is not None else [])]
        outputs = [int(v) for v in (o.outputs if o.outputs is not None else [])]
        for v in inputs + outputs:
            if v >= len(tensors) or v < -1:
                raise ModelError(f"operator {i} ({name}): tensor {v} does not exist")
        operators.append(Operator(i, name, inputs, outputs, _options(o.builtinOptions)))
    graph_inputs = [int(v) for v in (sg.inputs if sg.inputs is not None else [])]
    graph_outputs = [int(v) for v in (sg.outputs if sg.outputs is not None else [])]
    for v in graph_inputs + graph_outputs:
        if not 0 <= v < len(tensors):
            raise ModelError(f"the subgraph names tensor {v}, which does not exist")
    return Graph(tensors, operators, graph_inputs, graph_outputs, _decode(model.description))
