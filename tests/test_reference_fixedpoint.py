"""gemmlowp / TFLM primitives on hand-worked values, scalar and vectorised."""

import numpy as np
import pytest

from reference.fixedpoint import INT32_MAX, INT32_MIN, clamp, quantize_multiplier, sx, wrap32
from reference.fixedpoint import multiply_by_quantized_multiplier as mbqm
from reference.fixedpoint import rounding_divide_by_pot as rdbpot
from reference.fixedpoint import saturating_rounding_doubling_high_mul as srdhm

# SRDHM(a, b) = round(a * b / 2**31), ties toward +infinity; saturates MIN*MIN.
SRDHM_CASES = [
    (INT32_MIN, INT32_MIN, INT32_MAX),  # the one overflow: 1.0 is not representable
    (INT32_MIN, INT32_MIN + 1, INT32_MAX),  # 2**62 - 2**31 + 2**30 over 2**31 = 2**31 - 0.5 -> trunc
    (INT32_MAX, INT32_MAX, INT32_MAX - 1),  # (2**31-1)**2 / 2**31 = 2**31 - 2 + (2**30+1)/2**31 -> 2**31-2
    (INT32_MIN, INT32_MAX, -INT32_MAX),  # -2**31 * (2**31-1) / 2**31 = -(2**31 - 1)
    (1 << 30, 1 << 30, 1 << 29),  # 0.5 * 0.5 = 0.25
    (1 << 15, 1 << 15, 1),  # 2**30 / 2**31 = 0.5 -> 1 (tie up)
    (-(1 << 15), 1 << 15, 0),  # -0.5 -> 0 (tie toward +inf)
    (3 << 15, -(1 << 15), -1),  # -1.5 -> -1 (tie toward +inf)
    (3 << 15, 1 << 15, 2),  # 1.5 -> 2
    (1, 1, 0),
    (0, INT32_MIN, 0),
]

# RDBPOT(x, e) = round(x / 2**e), ties away from zero.
RDBPOT_CASES = [
    (5, 1, 3),
    (-5, 1, -3),  # +-2.5
    (6, 2, 2),
    (-6, 2, -2),  # +-1.5
    (7, 2, 2),
    (-7, 2, -2),  # +-1.75
    (5, 2, 1),
    (-5, 2, -1),  # +-1.25
    (4, 2, 1),
    (-4, 2, -1),
    (123, 0, 123),
    (INT32_MIN, 0, INT32_MIN),
    (INT32_MIN, 31, -1),
    (INT32_MAX, 31, 1),
    (1 << 30, 31, 1),
    (-(1 << 30), 31, -1),  # +-0.5 -> +-1
    ((1 << 30) - 1, 31, 0),
    (-(1 << 30) + 1, 31, 0),
]


@pytest.mark.parametrize("a,b,expected", SRDHM_CASES)
def test_srdhm(a, b, expected):
    assert srdhm(a, b) == expected
    assert srdhm(b, a) == expected


@pytest.mark.parametrize("x,e,expected", RDBPOT_CASES)
def test_rdbpot(x, e, expected):
    assert rdbpot(x, e) == expected


def test_vectorised_matches_scalar():
    rng = np.random.default_rng(1)
    a = rng.integers(INT32_MIN, INT32_MAX + 1, 5000)
    b = rng.integers(INT32_MIN, INT32_MAX + 1, 5000)
    e = rng.integers(0, 32, 5000)
    shift = rng.integers(-32, 32, 5000)
    a[:3], b[:3] = INT32_MIN, INT32_MIN
    assert list(srdhm(a, b)) == [srdhm(int(x), int(y)) for x, y in zip(a, b)]
    assert list(rdbpot(a, e)) == [rdbpot(int(x), int(y)) for x, y in zip(a, e)]
    assert list(mbqm(a, b, shift)) == [mbqm(int(x), int(y), int(s)) for x, y, s in zip(a, b, shift)]


def test_srdhm_against_exact_rational():
    """Against floor(a*b / 2**31 + 1/2), round half up, in Python's exact big ints."""
    rng = np.random.default_rng(2)
    for a, b in rng.integers(INT32_MIN, INT32_MAX + 1, (3000, 2)):
        a, b = int(a), int(b)
        assert srdhm(a, b) == (2 * a * b + (1 << 31)) // (1 << 32)


def test_mbqm():
    half = 1 << 30  # M = 2**30 is 0.5
    assert mbqm(100, half, 0) == 50
    assert mbqm(100, half, -1) == 25
    assert mbqm(100, half, 1) == 100
    assert mbqm(-100, half, -3) == -6  # -6.25 -> -6
    assert mbqm(-101, half, -1) == -25  # SRDHM(-101, 0.5) = -50 (-50.5 tie up), /2 = -25
    assert mbqm(1 << 30, half, 2) == 0  # 2**32 wraps to 0 before the multiply
    assert mbqm(INT32_MAX, half, -32) == mbqm(INT32_MAX, half, -31)  # right shift caps at 31


def test_quantize_multiplier():
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(0.25) == (1 << 30, -1)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    m, s = quantize_multiplier(0.0123)
    assert abs(m * 2.0 ** (s - 31) - 0.0123) < 1e-9
    with pytest.raises(ValueError):
        quantize_multiplier(0)


def test_helpers():
    assert wrap32(1 << 31) == INT32_MIN and wrap32(-(1 << 31) - 1) == INT32_MAX
    assert sx(0x1FF, 9) == -1 and sx(0xFF, 9) == 255 and sx(0x20, 6) == -32
    assert clamp(200, -128, 127) == 127 and clamp(5, 10, 0) == 0  # max first, then min
