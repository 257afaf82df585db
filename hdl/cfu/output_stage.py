"""TFLM's output stage in gates, shared by :class:`hdl.cfu.core.CfuCore` (SRDHM,
RDBPOT, POST) and :class:`hdl.cfu.gemm_cfu.GemmCfuCore` (READ8's four lanes).

``clamp(RDBPOT(SRDHM((x << left), M), right) + offset, lo, hi)``, the default
(double-rounding) path of TFLM's ``MultiplyByQuantizedMultiplier``
(:func:`reference.fixedpoint.multiply_by_quantized_multiplier`), cut where the
callers put their pipeline registers: the shift split and the left shift
before the multiply, the 32×32 product in a stage of its own, then the
rounding, offset and clamp. Each helper adds combinational logic to ``m``
and returns its result; nothing here is registered.
"""

from amaranth.hdl import Const, Mux, Signal, signed

__all__ = ["INT32_MIN", "INT32_MAX", "shift_amounts", "srdhm_high", "rounding_divide", "offset_clamp"]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def shift_amounts(shift):
    """``(left, right)`` of a signed 6-bit TFLM shift: ``max(shift, 0)`` and
    ``min(max(-shift, 0), 31)`` (31 is RoundingDivideByPOT's largest exponent)."""
    left = Mux(shift > 0, shift[:5], 0)
    right = Mux(shift < 0, Mux(shift == -32, 31, (-shift)[:5]), 0)
    return left, right


def srdhm_high(m, prod, overflow, name="srdhm"):
    """SRDHM from the exact 64-bit product ``a·b``: ``(a·b + 2^30) >> 31`` (floor, which is
    gemmlowp's truncating division with its sign-dependent nudge), ``INT32_MAX`` on ``overflow``
    (``a == b == INT32_MIN``)."""
    high = Signal(signed(32), name=name)
    m.d.comb += high.eq(Mux(overflow, INT32_MAX, (prod + (1 << 30)) >> 31))
    return high


def rounding_divide(m, dividend, exp, prefix=""):
    """gemmlowp's RoundingDivideByPOT: ``(x >> e) + ((x & mask) > (mask >> 1) + (x < 0))``."""
    mask = Signal(32, name=f"{prefix}mask")
    m.d.comb += mask.eq((Const(1, 33) << exp) - 1)
    rounded = Signal(signed(32), name=f"{prefix}rounded")
    m.d.comb += rounded.eq((dividend >> exp) + ((dividend.as_unsigned() & mask) > ((mask >> 1) + dividend[31])))
    return rounded


def offset_clamp(m, x, offset, lo, hi, prefix=""):
    """``min(max(wrap32(x + offset), lo), hi)``, TFLM's order; the 32-bit pattern."""
    offset_added = Signal(signed(32), name=f"{prefix}offset_added")
    m.d.comb += offset_added.eq(x + offset)
    lower = Signal(signed(32), name=f"{prefix}lower")
    m.d.comb += lower.eq(Mux(offset_added < lo, lo, offset_added))
    result = Signal(32, name=f"{prefix}clamped")
    m.d.comb += result.eq(Mux(lower > hi, hi, lower))
    return result
