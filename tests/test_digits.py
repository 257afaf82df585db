"""reference.digits: the cached split is scikit-learn's split, bit for bit."""

import numpy as np

from reference import digits


def test_cached_split_is_sklearns(tmp_path, monkeypatch):
    cache = tmp_path / "split.npz"
    monkeypatch.setattr(digits, "_cache_path", lambda: cache)
    digits.load_split.cache_clear()
    try:
        made = digits.load_split()  # no cache yet: made by scikit-learn, and stored
        assert cache.exists()
        digits.load_split.cache_clear()
        loaded = digits.load_split()  # from the cache
    finally:
        digits.load_split.cache_clear()
    fresh = digits._make_split()
    assert [a.shape for a in fresh] == [(1437, 64), (1437,), (360, 64), (360,)]
    for a, b, c in zip(fresh, made, loaded):
        assert a.dtype == b.dtype == c.dtype
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
