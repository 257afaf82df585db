"""Golden model of the CFU: every op of ``docs/cfu_isa.md``, one op at a time.

The arithmetic comes from :mod:`reference.fixedpoint` (gemmlowp / TFLM); the
encodings from :mod:`reference.cfu_isa`, the single written form of the ISA.
"""

import numpy as np

from .cfu_isa import MAC4_ACCUMULATE, MAC4_FIRST, REG_RESET, REG_WIDTH, Funct3, Reg, split_function_id
from .fixedpoint import (
    clamp,
    multiply_by_quantized_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    sx,
    to_u32,
    wrap32,
)

__all__ = ["CfuModel", "mac4_sum", "post"]


def _lanes(word):
    """The four int8 lanes of a 32-bit word, lane i = bits [8i+7:8i]."""
    return [sx(int(word) >> (8 * i), 8) for i in range(4)]


def mac4_sum(in0, in1, input_offset):
    """``sum_i (sx8(in0 lane i) + input_offset) * sx8(in1 lane i)``, exact."""
    return sum((a + input_offset) * b for a, b in zip(_lanes(in0), _lanes(in1)))


def post(acc_plus_bias, multiplier, shift, output_offset, act_min, act_max):
    """TFLM's output stage: ``clamp(MBQM(x, M, shift) + output_offset, act_min, act_max)``."""
    y = wrap32(multiply_by_quantized_multiplier(acc_plus_bias, multiplier, shift) + output_offset)
    return clamp(y, act_min, act_max)


class CfuModel:
    """Architectural state of the CFU and the result of each command.

    ``step(function_id, in0, in1)`` executes one command exactly as the RTL
    must and returns the 32-bit response as an unsigned int (the bus value).
    """

    def __init__(self):
        self.reset()

    def reset(self):
        self.regs = dict(REG_RESET)

    def _set(self, reg, value):
        self.regs[reg] = sx(value, REG_WIDTH[reg])

    def step(self, fid, in0, in1):
        funct3, funct7 = split_function_id(fid)
        in0, in1 = wrap32(in0), wrap32(in1)
        r = self.regs
        if funct3 == Funct3.MAC4 and funct7 in (MAC4_ACCUMULATE, MAC4_FIRST):
            base = 0 if funct7 == MAC4_FIRST else r[Reg.ACC]
            self._set(Reg.ACC, base + mac4_sum(in0, in1, r[Reg.INPUT_OFFSET]))
            result = r[Reg.ACC]
        elif funct3 == Funct3.SET and funct7 in Reg._value2member_map_:
            self._set(Reg(funct7), in0)
            result = r[Reg(funct7)]
        elif funct3 == Funct3.GET and funct7 in Reg._value2member_map_:
            result = r[Reg(funct7)]
        elif funct3 == Funct3.SRDHM and funct7 == 0:
            result = saturating_rounding_doubling_high_mul(in0, in1)
        elif funct3 == Funct3.RDBPOT and funct7 == 0:
            result = rounding_divide_by_pot(in0, in1 & 31)
        elif funct3 == Funct3.POST and funct7 == 0:
            result = post(
                wrap32(r[Reg.ACC] + in0),
                r[Reg.OUTPUT_MULTIPLIER],
                r[Reg.OUTPUT_SHIFT],
                r[Reg.OUTPUT_OFFSET],
                r[Reg.ACT_MIN],
                r[Reg.ACT_MAX],
            )
        else:
            result = 0  # undefined function_id: no state change
        return to_u32(result)

    def run(self, commands):
        """Responses of a sequence of ``(function_id, in0, in1)`` commands."""
        return np.array([self.step(*c) for c in commands], dtype=np.uint64)
