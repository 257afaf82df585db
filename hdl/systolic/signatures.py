"""The GEMM engine's interface: its configuration, its ports' signatures and
its counters. Everything that drives an engine (the host, the training core,
the self-test) reads these, so no field is copied by hand.

The transpose modes' encodings come from the spec, :data:`reference.gemm.MODES`.
"""

from amaranth.hdl import signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from reference.gemm import MODES

__all__ = [
    "DIM_BITS",
    "ADDR_BITS",
    "COUNTER_BITS",
    "CounterPorts",
    "Mode",
    "GemmConfig",
    "GemmCounters",
    "OperandWrite",
    "ResultRead",
    "OperandRead",
    "start_signature",
]

#: Width of M, K, N and the strides.
DIM_BITS = 16
#: Width of a base address: either half of an operand buffer of up to 2^16 words.
ADDR_BITS = DIM_BITS + 1
COUNTER_BITS = 32


class Mode(enum.Enum, shape=2):
    """``C = A'·B'`` with the operands as stored: nn ``A·B``, nt ``A·Bᵀ``, tn ``Aᵀ·B``."""

    NN = MODES.index("nn")
    NT = MODES.index("nt")
    TN = MODES.index("tn")


class GemmConfig(data.Struct):
    """One GEMM, as ``start`` takes it (read in the cycle it is taken)."""

    m: DIM_BITS
    k: DIM_BITS
    n: DIM_BITS
    mode: Mode
    a_stride: DIM_BITS  #: words per stored row of A
    b_stride: DIM_BITS  #: words per stored row of B
    a_base: ADDR_BITS  #: first word of A, added to every A address in the selected half
    b_base: ADDR_BITS
    result_base: ADDR_BITS  #: first word of C in the selected result half
    operand_half: 1
    result_half: 1


class GemmCounters(data.Struct):
    """Performance counters; ``transfer`` counts host reads and writes since ``cnt_clear``."""

    total: COUNTER_BITS  #: cycles busy in the last GEMM
    active: COUNTER_BITS  #: cycles an activation row entered the array
    weight_stall: COUNTER_BITS  #: cycles the array waited for a tile's weights between rows
    transfer: COUNTER_BITS


class CounterPorts(wiring.Signature):
    """The engine's ``counters``: :class:`GemmCounters`' fields, one port member (one
    signal) each, so that a design that reads only some of them loses the others in
    synthesis (a struct port is one signal: reading one field keeps them all)."""

    def __init__(self):
        super().__init__({name: Out(field.shape) for name, field in data.Layout.cast(GemmCounters)})


def start_signature():
    """``start``: a stream of :class:`GemmConfig`; ``ready`` is high while the engine is idle."""
    return stream.Signature(GemmConfig)


class OperandWrite(wiring.Signature):
    """Host write of one operand word (R int8, lanes in bank order), taken the cycle ``en`` is high.

    ``sel`` 0 writes A, 1 writes B; ``both`` writes the word to both.
    """

    def __init__(self, rows, depth):
        super().__init__(
            {
                "en": Out(1),
                "sel": Out(1),
                "both": Out(1),
                "half": Out(1),
                "addr": Out(range(depth)),
                "data": Out(data.ArrayLayout(signed(8), rows)),
            }
        )


class ResultRead(wiring.Signature):
    """Host read of one result word (C int32): ``data`` is valid the cycle after ``en``."""

    def __init__(self, cols, depth):
        super().__init__(
            {
                "en": Out(1),
                "half": Out(1),
                "addr": Out(range(depth)),
                "data": In(data.ArrayLayout(signed(32), cols)),
            }
        )


class OperandRead(wiring.Signature):
    """Host read of one stored operand word (lanes in bank order; ``addr`` spans both
    halves), ``data`` valid the cycle after ``en``."""

    def __init__(self, rows, depth):
        super().__init__(
            {
                "en": Out(1),
                "sel": Out(1),
                "addr": Out(range(2 * depth)),
                "data": In(data.ArrayLayout(signed(8), rows)),
            }
        )
