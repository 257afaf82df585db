"""gemmlowp's and TFLite Micro's fixed-point primitives, bit-exact.

Written from gemmlowp ``fixedpoint/fixedpoint.h`` and TFLite Micro
``kernels/internal/common.cc``. Every function takes Python ints or NumPy
integer arrays and returns the same kind; the arithmetic is done in int64,
never in float (products near 2**62 would lose bits).

Python's ``//`` and NumPy's ``>>`` floor, whereas C's ``/`` truncates toward
zero; where the C code divides, :func:`_trunc_div_pow2` reproduces C.
"""

import numpy as np

__all__ = [
    "INT32_MIN",
    "INT32_MAX",
    "wrap32",
    "to_u32",
    "sx",
    "saturating_rounding_doubling_high_mul",
    "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier",
    "quantize_multiplier",
    "clamp",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def _is_scalar(x):
    return isinstance(x, (int, np.integer))


def _i64(x):
    return np.asarray(x, dtype=np.int64)


def _out(x, like):
    return int(x) if _is_scalar(like) else x


def wrap32(x):
    """Two's-complement wrap of an integer to int32 (what C's int32 does)."""
    if _is_scalar(x):
        return ((int(x) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    return _i64(x).astype(np.uint64).astype(np.uint32).astype(np.int32).astype(np.int64)


def to_u32(x):
    """The 32-bit pattern of an int32 as an unsigned int (a bus value)."""
    if _is_scalar(x):
        return int(x) & 0xFFFFFFFF
    return _i64(x).astype(np.uint64) & np.uint64(0xFFFFFFFF)


def sx(x, bits):
    """Sign-extend the low ``bits`` bits of ``x``."""
    if _is_scalar(x):
        x = int(x) & ((1 << bits) - 1)
        return x - (1 << bits) if x >> (bits - 1) else x
    x = _i64(x) & ((1 << bits) - 1)
    return np.where(x >> (bits - 1) != 0, x - (1 << bits), x)


def _trunc_div_pow2(n, e):
    """C's ``n / (1 << e)`` for int64 ``n``: the quotient truncated toward 0."""
    return np.where(n >= 0, n >> e, -((-n) >> e))


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp ``SaturatingRoundingDoublingHighMul(int32 a, int32 b)``.

    ``overflow = a == b == INT32_MIN``; ``ab = (int64)a * b``;
    ``nudge = ab >= 0 ? 1 << 30 : 1 - (1 << 30)``;
    ``result = overflow ? INT32_MAX : (int32)((ab + nudge) / (1 << 31))``
    with C's truncating division.
    """
    a_, b_ = _i64(a), _i64(b)
    overflow = (a_ == INT32_MIN) & (b_ == INT32_MIN)
    ab = a_ * b_
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = _trunc_div_pow2(ab + nudge, 31)
    return _out(np.where(overflow, INT32_MAX, high), a if _is_scalar(b) else b)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp ``RoundingDivideByPOT(int32 x, int exponent)``, 0 <= exponent <= 31.

    ``mask = (1 << exponent) - 1``; ``remainder = x & mask``;
    ``threshold = (mask >> 1) + (x < 0)``;
    ``result = (x >> exponent) + (remainder > threshold)``: round half away
    from zero.
    """
    x_, e = _i64(x), _i64(exponent)
    if np.any((e < 0) | (e > 31)):
        raise ValueError("exponent must be in 0..31")
    mask = (np.int64(1) << e) - 1
    remainder = x_ & mask
    threshold = (mask >> 1) + (x_ < 0)
    result = (x_ >> e) + (remainder > threshold)
    return _out(result, x if _is_scalar(exponent) else exponent)


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLM ``MultiplyByQuantizedMultiplier(int32 x, int32 M, int shift)``.

    The default (double-rounding) path: ``left = max(shift, 0)``,
    ``right = max(-shift, 0)``, result
    ``RDBPOT(SRDHM(x * 2**left, M), right)``. ``x * 2**left`` wraps at 32
    bits, as the int32 multiply does in C. ``right`` is capped at 31, the
    largest exponent RoundingDivideByPOT takes.
    """
    shift_ = _i64(shift)
    left = np.maximum(shift_, 0)
    right = np.minimum(np.maximum(-shift_, 0), 31)
    scaled = wrap32(_i64(x) << left)
    high = saturating_rounding_doubling_high_mul(scaled, _i64(multiplier))
    result = rounding_divide_by_pot(high, right)
    scalar = _is_scalar(x) and _is_scalar(multiplier) and _is_scalar(shift)
    return int(result) if scalar else _i64(result)


def quantize_multiplier(real_multiplier):
    """TFLM ``QuantizeMultiplier``: ``real = M * 2**(shift - 31)``, M in [2**30, 2**31).

    Returns ``(M, shift)`` as Python ints. ``real_multiplier`` must be > 0.
    """
    if not real_multiplier > 0:
        raise ValueError("real_multiplier must be positive")
    mantissa, shift = np.frexp(float(real_multiplier))  # real = mantissa * 2**shift, 0.5 <= m < 1
    q = int(np.floor(mantissa * (1 << 31) + 0.5))  # TfLiteRound: half away from 0
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, int(shift)


def clamp(x, lo, hi):
    """TFLM's activation clamp: ``min(max(x, lo), hi)``, in that order."""
    if _is_scalar(x) and _is_scalar(lo) and _is_scalar(hi):
        return min(max(int(x), int(lo)), int(hi))
    return np.minimum(np.maximum(_i64(x), lo), hi)
