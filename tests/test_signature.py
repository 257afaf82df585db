"""reference.signature: the MISR the training harness folds the masters into, worked by hand."""

import numpy as np

from reference.signature import TAPS, misr, region_words


def test_misr_by_hand():
    # Width 12: s = 1; then (1 << 1) ^ 0x800 = 0x802; then its top bit shifts out: 0x004 ^ TAPS.
    assert TAPS == 0x425
    assert misr([1], 12) == 0x001
    assert misr([1, 0x800], 12) == 0x802
    assert misr([1, 0x800, 0], 12) == 0x004 ^ 0x425


def test_misr_sees_every_single_bit():
    """Linear and invertible at each step: one flipped bit anywhere changes the signature."""
    rng = np.random.default_rng(0)
    width = 64
    words = [int(w) for w in rng.integers(0, 1 << 62, 40)]
    base = misr(words, width)
    for i in range(len(words)):
        for b in (0, 1, 31, 63):
            flipped = list(words)
            flipped[i] ^= 1 << b
            assert misr(flipped, width) != base, (i, b)


def test_region_words_layout():
    """Row-major, rows padded to stride·R lanes and to the region's rows, lanes two's complement, lane 0 low."""
    mat = np.array([[1, -1, 2], [3, 4, -5]])
    words = region_words(mat, rows=3, stride=1, R=4)
    m = 0xFFFFFFFF
    assert words == [
        1 | m << 32 | 2 << 64,  # lanes 1, -1, 2, 0
        3 | 4 << 32 | (m - 4) << 64,  # lanes 3, 4, -5, 0
        0,
    ]
    assert region_words(np.array([7, -2]), rows=1, stride=2, R=1) == [7, 0xFFFFFFFE]
