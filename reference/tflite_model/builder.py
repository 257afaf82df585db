"""Write .tflite files with TFLite's schema (flatc's object API) and flatbuffers:
the tests' models and the exported digits MLP, without TensorFlow."""

import numpy as np

from .graph import NUMPY_TYPES
from .schema import FILE_IDENTIFIER, enum_names, schema

__all__ = ["ModelBuilder", "OPTIONS"]

#: Builtin operator -> its options table (``BuiltinOptions`` member, also the ``<name>T`` class).
OPTIONS = {
    "FULLY_CONNECTED": "FullyConnectedOptions",
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "MAX_POOL_2D": "Pool2DOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "RESHAPE": "ReshapeOptions",
    "SQUEEZE": "SqueezeOptions",
    "EXPAND_DIMS": "ExpandDimsOptions",
    "SOFTMAX": "SoftmaxOptions",
    "QUANTIZE": "QuantizeOptions",
    "DEQUANTIZE": "DequantizeOptions",
    "ADD": "AddOptions",
    "PAD": "PadOptions",
    "TANH": None,
    "LOGISTIC": None,
    "RELU": None,
}


def _camel(name):
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _enum_value(enum, name):
    values = {v: k for k, v in enum_names(enum).items()}
    if name not in values:
        raise ValueError(f"{name!r} is not a {enum}; choose one of {', '.join(values)}")
    return values[name]


_ENUM_FIELDS = {
    "fusedActivationFunction": "ActivationFunctionType",
    "padding": "Padding",
    "weightsFormat": "FullyConnectedOptionsWeightsFormat",
}


class ModelBuilder:
    """Tensors and operators of one subgraph, then :meth:`build` for the file's bytes.

    Quantization is given as it is stored: ``scale`` (one, or one per channel along
    ``quantized_dimension``) and ``zero_point``; scales are stored as float32.
    """

    def __init__(self, description="mlhw-sim"):
        self.s = schema()
        self.description = description
        self.buffers = [self.s.BufferT()]  # buffer 0: the empty sentinel every tensor without data uses
        self.tensors, self.operators, self.opcodes = [], [], {}
        self.inputs, self.outputs = [], []

    def tensor(self, shape, dtype="INT8", *, scale=None, zero_point=None, quantized_dimension=0, data=None, name=None):
        s = self.s
        t = s.TensorT()
        t.shape = [int(d) for d in shape]
        t.type = _enum_value("TensorType", dtype)
        t.name = name or f"t{len(self.tensors)}"
        t.buffer = 0
        if data is not None:
            arr = np.asarray(data).astype(np.dtype(NUMPY_TYPES[dtype]).newbyteorder("<"))
            if arr.size != int(np.prod(t.shape)):
                raise ValueError(f"{t.name}: {arr.size} values for shape {t.shape}")
            b = s.BufferT()
            b.data = np.frombuffer(arr.tobytes(), dtype=np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            q = s.QuantizationParametersT()
            q.scale = [float(np.float32(v)) for v in np.atleast_1d(scale)]
            zp = np.zeros(len(q.scale), dtype=np.int64) if zero_point is None else np.atleast_1d(zero_point)
            q.zeroPoint = [int(v) for v in zp]
            q.quantizedDimension = int(quantized_dimension)
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def input(self, shape, dtype="INT8", **quant):
        index = self.tensor(shape, dtype, **quant)
        self.inputs.append(index)
        return index

    def operator(self, op, inputs, outputs, **options):
        """Add ``op`` (a BuiltinOperator name); ``options`` in snake_case (enums by name)."""
        s = self.s
        _enum_value("BuiltinOperator", op)  # an unknown name fails here
        self.opcodes.setdefault(op, len(self.opcodes))
        o = s.OperatorT()
        o.opcodeIndex = self.opcodes[op]
        o.inputs = [int(v) for v in inputs]
        o.outputs = [int(v) for v in outputs]
        table = OPTIONS.get(op)
        if table:
            opts = getattr(s, table + "T")()
            for key, value in options.items():
                attr = _camel(key)
                if not hasattr(opts, attr):
                    raise ValueError(f"{op} has no option {key}")
                if attr in _ENUM_FIELDS:
                    value = _enum_value(_ENUM_FIELDS[attr], value)
                setattr(opts, attr, value)
            o.builtinOptionsType = getattr(s.BuiltinOptions, table)
            o.builtinOptions = opts
        elif options:
            raise ValueError(f"{op} takes no options")
        self.operators.append(o)
        return len(self.operators) - 1

    def build(self):
        """The model's bytes (a .tflite file)."""
        import flatbuffers

        s = self.s
        sg = s.SubGraphT()
        sg.tensors, sg.operators = self.tensors, self.operators
        sg.inputs, sg.outputs = list(self.inputs), list(self.outputs)
        sg.name = "main"
        m = s.ModelT()
        m.version = 3
        m.description = self.description
        m.buffers = self.buffers
        m.subgraphs = [sg]
        codes = [None] * len(self.opcodes)
        for op, i in self.opcodes.items():
            oc = s.OperatorCodeT()
            oc.builtinCode = _enum_value("BuiltinOperator", op)
            # The int8 field older readers use; 127 (PLACEHOLDER_FOR_GREATER_OP_CODES) for larger codes.
            oc.deprecatedBuiltinCode = min(oc.builtinCode, 127)
            oc.version = 1
            codes[i] = oc
        m.operatorCodes = codes
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=FILE_IDENTIFIER)
        return bytes(b.Output())
