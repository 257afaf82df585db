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

from amaranth.hdl import Cat, Const, Mux, Signal, Value, signed

__all__ = [
    "INT32_MIN",
    "INT32_MAX",
    "shift_amounts",
    "srdhm_high",
    "rounding_divide",
    "offset_clamp",
    "left_shift",
    "rounding_masks",
    "partial_products",
    "product_halves",
    "srdhm_sum",
    "rounding_split",
    "round_offset",
    "clamp",
]

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


# -- the same stage, cut for a 100 MHz clock -----------------------------------
# Each helper below is one pipeline stage's logic: it takes the previous
# stage's registers and returns the values (a dict of names, or one value) that
# the caller registers. In order: left_shift and rounding_masks; partial_products;
# product_halves; srdhm_sum; rounding_split; round_offset; clamp (into the
# response). No stage has more than one carry chain of 32 bits or more after a
# shifter, and none has two in a row.


def left_shift(x, left):
    """``x << left``, wrapping at 32 bits (POST's ``(acc + bias) << left``)."""
    return (Value.cast(x) << left)[:32].as_signed()


def rounding_masks(exp):
    """RoundingDivideByPOT's ``mask = 2^exp - 1`` and ``half = mask >> 1``, from the exponent alone."""
    mask = ((Const(1, 33) << exp) - 1)[:32]
    return {"mask": mask, "half": mask >> 1}


def partial_products(a, b):
    """The 32×32 product's four 16×16 parts (``a = aH·2^16 + aL``, ``aL`` unsigned), one
    MULT18X18D each, and SRDHM's overflow flag (``a == b == INT32_MIN``)."""
    a, b = Value.cast(a), Value.cast(b)
    al, ah, bl, bh = a[:16], a[16:].as_signed(), b[:16], b[16:].as_signed()
    return {
        "pll": al * bl,
        "plh": al * bh,
        "phl": ah * bl,
        "phh": ah * bh,
        "overflow": (a == INT32_MIN) & (b == INT32_MIN),
    }


def product_halves(parts):
    """``a·b + 2^30 = lohi + cross·2^16``: ``lohi`` the high and low parts side by side (no
    logic), ``cross`` the two middle parts' sum with SRDHM's rounding constant ``2^30 = 2^14·2^16``."""
    return {
        "lohi": Cat(parts["pll"][:32], parts["phh"]).as_signed(),
        "cross": parts["plh"] + parts["phl"] + (1 << 14),
    }


def srdhm_sum(lohi, cross, overflow):
    """SRDHM: ``(a·b + 2^30) >> 31`` (floor) from :func:`product_halves`, ``INT32_MAX`` on ``overflow``."""
    total = Value.cast(lohi) + (Value.cast(cross) << 16)
    return Mux(overflow, INT32_MAX, total[31:63].as_signed())


def rounding_split(x, exp, mask, half, half1):
    """RoundingDivideByPOT's two halves: ``x >> exp`` and whether to round it up,
    ``(x & mask) > half + (x < 0)`` (``half1`` is ``half + 1``)."""
    x = Value.cast(x)
    return {"shifted": x >> exp, "up": (x.as_unsigned() & mask) > Mux(x[31], half1, half)}


def round_offset(shifted, up, offset):
    """``wrap32(shifted + up + offset)`` in one adder: ``up`` is the carry in."""
    return (Cat(up, shifted) + Cat(Const(1, 1), offset))[1:33]


def clamp(m, v, lo, hi, inverted, prefix=""):
    """``min(max(v, lo), hi)`` with both compares side by side; ``inverted`` is ``lo > hi``
    (then the answer is ``hi``, as TFLM's order gives)."""
    v = Value.cast(v).as_signed()
    over, under = Signal(name=f"{prefix}over"), Signal(name=f"{prefix}under")
    m.d.comb += [over.eq(inverted | (v > hi)), under.eq(v < lo)]
    result = Signal(32, name=f"{prefix}clamped")
    m.d.comb += result.eq(Mux(over, hi, Mux(under, lo, v)))
    return result
