"""The CFU's instruction set: encodings, registers and their widths.

This module is the single place the ISA is written down in code, as plain
Python data (no HDL). The RTL (:mod:`hdl.cfu.core`) implements it; the golden
model (:mod:`reference.cfu`), the testbenches, the generated C header and the
docs read it, so an encoding or a latency is never typed twice.

``function_id = {funct7[6:0], funct3[2:0]}``, as CFU Playground encodes it.
"""

from enum import IntEnum

__all__ = [
    "Funct3",
    "Reg",
    "REG_WIDTH",
    "REG_RESET",
    "FUNCTION_ID_BITS",
    "function_id",
    "split_function_id",
    "MAC4_ACCUMULATE",
    "MAC4_FIRST",
    "FAST_LATENCY",
    "MAC_LATENCY",
    "SLOW_LATENCY",
    "latency",
]

FUNCTION_ID_BITS = 10


class Funct3(IntEnum):
    MAC4 = 0  #: acc (+)= sum_i (sx8(in0[i]) + input_offset) * sx8(in1[i])
    SET = 1  #: register[funct7] <- in0
    GET = 2  #: -> register[funct7]
    SRDHM = 3  #: gemmlowp SaturatingRoundingDoublingHighMul(in0, in1)
    RDBPOT = 4  #: gemmlowp RoundingDivideByPOT(in0, in1 & 31)
    POST = 5  #: TFLM output stage of (acc + in0)


#: MAC4's funct7: add to acc, or start from acc = 0.
MAC4_ACCUMULATE = 0
MAC4_FIRST = 1


class Reg(IntEnum):
    INPUT_OFFSET = 0
    ACC = 1
    OUTPUT_MULTIPLIER = 2
    OUTPUT_SHIFT = 3
    OUTPUT_OFFSET = 4
    ACT_MIN = 5
    ACT_MAX = 6


#: Width of each register in bits; every register is signed.
REG_WIDTH = {
    Reg.INPUT_OFFSET: 9,
    Reg.ACC: 32,
    Reg.OUTPUT_MULTIPLIER: 32,
    Reg.OUTPUT_SHIFT: 6,
    Reg.OUTPUT_OFFSET: 32,
    Reg.ACT_MIN: 32,
    Reg.ACT_MAX: 32,
}

#: Value of each register after reset.
REG_RESET = {reg: 0 for reg in Reg} | {Reg.ACT_MIN: -128, Reg.ACT_MAX: 127}


def function_id(funct3, funct7=0):
    """Pack ``{funct7, funct3}`` into CFU Playground's 10-bit function_id."""
    if not 0 <= funct3 < 8:
        raise ValueError(f"funct3 must be in 0..7, not {funct3}")
    if not 0 <= funct7 < 128:
        raise ValueError(f"funct7 must be in 0..127, not {funct7}")
    return (funct7 << 3) | funct3


def split_function_id(fid):
    """Return ``(funct3, funct7)`` of a 10-bit function_id."""
    return fid & 0x7, (fid >> 3) & 0x7F


#: Cycles from the accepting cycle to ``rsp_valid`` for SET, GET (but GET ACC)
#: and undefined ops, when nothing older is in flight.
FAST_LATENCY = 1
#: Cycles from the accepting cycle to ``rsp_valid`` for MAC4 and GET ACC: the
#: products are summed in the accepting cycle, acc is added (or read) in the next.
MAC_LATENCY = 2
#: Cycles from the accepting cycle to ``rsp_valid`` for SRDHM, RDBPOT and POST
#: (eight pipeline stages and the response register: docs/cfu_isa.md), when
#: nothing older is in flight.
SLOW_LATENCY = 9


def latency(funct3, funct7):
    """The documented latency of an op (``docs/cfu_isa.md``): FAST, MAC or SLOW_LATENCY."""
    if funct3 in (Funct3.SRDHM, Funct3.RDBPOT, Funct3.POST) and funct7 == 0:
        return SLOW_LATENCY
    if (funct3 == Funct3.MAC4 and funct7 <= MAC4_FIRST) or (funct3 == Funct3.GET and funct7 == Reg.ACC):
        return MAC_LATENCY
    return FAST_LATENCY
