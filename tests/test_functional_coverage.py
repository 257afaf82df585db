"""The functional coverage layer and the bins' definitions, without a simulator."""

import itertools

import pytest

from reference.fixedpoint import rounding_divide_by_pot
from sim.cfu.coverage import _rdbpot_bin
from sim.common.coverage import LENGTH_BINS, Coverage, length_bin, shape_bin, shape_bins


def test_coverage_counts_and_reports_missed_bins():
    cov = Coverage("selftest_cov")
    cov.point("op", ["a", "b", "c"])
    cov.point("cross", [("a", 1), ("b", 2)])
    for label in ("a", "a", "c"):
        cov.sample("op", label)
    cov.sample("cross", ("b", 2))
    s = cov.summary()
    assert (s["bins"], s["hit"], s["missed"]) == (5, 3, ["op:b", "cross:a/1"])
    assert s["hits"]["op"] == {"a": 2, "b": 0, "c": 1}
    with pytest.raises(ValueError, match="not one of its bins"):
        cov.sample("op", "d")


def test_length_bins():
    assert [length_bin(n) for n in (0, 1, 2, 3, 4, 7, 8, 100)] == ["0", "1", "2-3", "2-3", "4-7", "4-7", "8+", "8+"]
    assert {length_bin(n) for n in range(20)} == set(LENGTH_BINS)


def test_shape_bins_partition_the_dimensions():
    for size in (1, 2, 3, 4, 8, 16):
        bins = shape_bins(size)
        assert {shape_bin(d, size) for d in range(1, 5 * size + 2)} == set(bins)
    assert shape_bins(1) == ["=", ">k"] and shape_bins(2) == ["1", "=", ">k", ">odd"]
    assert [shape_bin(d, 8) for d in (1, 3, 8, 16, 9)] == ["1", "<", "=", ">k", ">odd"]


def test_rdbpot_bins_follow_the_definition():
    """A tie is where RoundingDivideByPOT's answer is exactly x / 2**e rounded half away from zero."""
    for x, e in itertools.product(range(-70, 71), range(1, 7)):
        label = _rdbpot_bin(x, e)
        got = rounding_divide_by_pot(x, e)
        if label in ("tie > 0", "tie < 0"):
            half = 1 << (e - 1)
            assert x % half == 0 and (x // half) % 2 == 1, (x, e)  # x = (2k + 1) * 2**(e-1)
            assert got * (1 << e) - x == (half if x > 0 else -half)  # rounded away from zero
            assert label == ("tie > 0" if x > 0 else "tie < 0")
        else:
            sign = (got * (1 << e) > x) - (got * (1 << e) < x)
            assert label == {-1: "rounds down", 0: "exact", 1: "rounds up"}[sign], (x, e, label)
