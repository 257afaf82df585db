"""TFLM's int8 SOFTMAX, bit-exact, in NumPy.

Written from TFLM ``micro/kernels/softmax_common.cc`` (``CalculateSoftmaxParams``),
``kernels/internal/quantization_util.cc`` (``PreprocessSoftmaxScaling``,
``CalculateInputRadius``), ``kernels/internal/reference/softmax.h`` and
``kernels/internal/common.h`` (``GetReciprocal``), and gemmlowp
``fixedpoint/fixedpoint.h`` (``exp_on_negative_values``,
``one_over_one_plus_x_for_x_in_0_1``, ``Rescale``, ``RoundingHalfSum``).

gemmlowp's ``FixedPoint<int32, I>`` is kept as its raw int32 value; a product of
two fixed-point numbers is ``SaturatingRoundingDoublingHighMul`` of the raws (the
integer bits add), ``Rescale`` a saturating shift, as in gemmlowp.
"""

import math

import numpy as np

from ..fixedpoint import INT32_MAX, INT32_MIN, quantize_multiplier, rounding_divide_by_pot, wrap32
from ..fixedpoint import saturating_rounding_doubling_high_mul as _srdhm

__all__ = ["softmax_int8", "softmax_params", "check_softmax"]

SCALED_DIFF_INTEGER_BITS = 5  # the exp() input: Q5.26
ACCUMULATION_INTEGER_BITS = 12  # the sum of exps: Q12.19


def _i64(x):
    return np.asarray(x, dtype=np.int64)


def _mul_pot(raw, exponent):
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<exponent>`` on int32 raws."""
    raw = _i64(raw)
    if exponent == 0:
        return raw
    if exponent < 0:
        return rounding_divide_by_pot(raw, np.full_like(raw, -exponent))
    threshold = (1 << (31 - exponent)) - 1
    return np.where(raw > threshold, INT32_MAX, np.where(raw < -threshold, INT32_MIN, raw << exponent))


def _rescale(raw, src_bits, dst_bits):
    """gemmlowp ``Rescale<dst_bits>`` of a ``FixedPoint<int32, src_bits>``."""
    return _mul_pot(raw, src_bits - dst_bits)


def _mul(a, b):
    return _i64(_srdhm(_i64(a), _i64(b)))


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    """exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor series around -1/8."""
    constant_term = 1895147668  # exp(-1/8)
    constant_1_over_3 = 715827883
    x = wrap32(a + (1 << 28))  # a + 1/8
    x2 = _mul(x, x)
    x3 = _mul(x2, x)
    x4 = _mul(x2, x2)
    x4_over_4 = _mul_pot(x4, -2)
    poly = _mul_pot(wrap32(_mul(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), -1)
    return wrap32(constant_term + _mul(constant_term, wrap32(x + poly)))


def exp_on_negative_values(a, integer_bits=SCALED_DIFF_INTEGER_BITS):
    """gemmlowp ``exp_on_negative_values``: a ``FixedPoint<int32, integer_bits>`` <= 0 to Q0.31."""
    a = _i64(a)
    frac = 31 - integer_bits
    one_quarter = 1 << (frac - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = wrap32((a & mask) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0)
    )
    remainder = wrap32(a_mod_quarter_minus_one_quarter - a)
    barrel = [(-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401), (4, 242)]
    for exponent, multiplier in barrel:
        if integer_bits > exponent:
            bit = 1 << (frac + exponent)
            result = np.where(remainder & bit, _mul(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _rounding_half_sum(a, b):
    s = _i64(a) + _i64(b)
    s = s + np.where(s >= 0, 1, -1)
    return np.where(s >= 0, s // 2, -((-s) // 2))  # C's division truncates


def one_over_one_plus_x_for_x_in_0_1(a):
    """gemmlowp's Newton-Raphson ``1 / (1 + a)`` for a in [0, 1), Q0.31 in and out."""
    half_denominator = _rounding_half_sum(a, INT32_MAX)  # Q0.31
    constant_48_over_17 = 1515870810  # Q2.29
    constant_neg_32_over_17 = -1010580540  # Q2.29
    x = wrap32(constant_48_over_17 + _mul(half_denominator, constant_neg_32_over_17))  # Q2.29
    one_f2 = 1 << 29
    for _ in range(3):
        half_denominator_times_x = _mul(half_denominator, x)  # Q2.29
        one_minus = wrap32(one_f2 - half_denominator_times_x)
        x = wrap32(x + _rescale(_mul(x, one_minus), 4, 2))  # Q4.27 -> Q2.29
    return _rescale(x, 1, 0)  # ExactMulByPot<-1>: the same raw as Q1.30, then to Q0.31


def _count_leading_zeros(x):
    """``CountLeadingZeros`` of each value as a uint32."""
    x = _i64(x) & 0xFFFFFFFF
    return np.vectorize(lambda v: 32 - int(v).bit_length(), otypes=[np.int64])(x)


def get_reciprocal(x, x_integer_digits):
    """TFLM ``GetReciprocal``: ``(1/x as Q0.31 scaled, num_bits_over_unit)``."""
    x = _i64(x)
    headroom_plus_one = _count_leading_zeros(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted = ((x & 0xFFFFFFFF) << headroom_plus_one) & 0xFFFFFFFF
    shifted_sum_minus_one = wrap32(shifted - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


def softmax_params(input_scale, beta):
    """``(input_multiplier, input_left_shift, diff_min)`` as TFLM's ``CalculateSoftmaxParams`` (int8)."""
    real = min(
        float(np.float32(beta)) * float(np.float32(input_scale)) * (1 << (31 - SCALED_DIFF_INTEGER_BITS)),
        (1 << 31) - 1.0,
    )
    multiplier, left_shift = quantize_multiplier(real)
    max_input_rescaled = (
        1.0 * ((1 << SCALED_DIFF_INTEGER_BITS) - 1) * (1 << (31 - SCALED_DIFF_INTEGER_BITS)) / (1 << left_shift)
    )
    diff_min = -int(math.floor(max_input_rescaled))
    return multiplier, left_shift, diff_min


def check_softmax(op, x, y, unsupported):
    if int(y.zero_point[0]) != -128 or np.float32(y.scale[0]) != np.float32(1.0 / 256):
        raise unsupported(op, f"output {y.describe()} must have scale 1/256 and zero point -128 (as TFLM requires)")
    real = float(np.float32(op.options.get("beta", 1.0))) * float(np.float32(x.scale[0])) * (1 << 26)
    if not real > 1.0:
        raise unsupported(op, f"beta * input scale ({real / (1 << 26):g}) is too small for TFLM's int8 softmax")


def softmax_int8(x, input_scale, input_zero_point, output_scale, output_zero_point, beta=1.0):
    """TFLM's int8 softmax over the last axis of ``x`` (int8 values); returns int8 values.

    The zero points cancel in ``x - max``; the output is fixed at scale 1/256, zero point -128."""
    del input_zero_point, output_scale, output_zero_point
    multiplier, left_shift, diff_min = softmax_params(input_scale, beta)
    x = _i64(x)
    diff = x - x.max(axis=-1, keepdims=True)
    use = diff >= diff_min
    # MultiplyByQuantizedMultiplierGreaterThanOne: SRDHM(diff * 2^left_shift, multiplier).
    rescaled = _mul(wrap32(diff << left_shift), multiplier)
    exp = exp_on_negative_values(rescaled)  # Q0.31
    terms = np.where(use, _rescale(exp, 0, ACCUMULATION_INTEGER_BITS), 0)
    sum_of_exps = wrap32(terms.sum(axis=-1, keepdims=True))
    shifted_scale, num_bits_over_unit = get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS)
    exponent = num_bits_over_unit + 31 - 8
    if np.any((exponent < 0) | (exponent > 31)):
        raise ValueError("softmax: exponent out of 0..31 (TFLM's TFLITE_CHECK)")
    unsat = rounding_divide_by_pot(_mul(shifted_scale, exp), np.broadcast_to(exponent, exp.shape))
    out = np.clip(unsat - 128, -128, 127)
    return np.where(use, out, -128)
