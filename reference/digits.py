"""scikit-learn's bundled ``load_digits`` (no download) with the project's
fixed 80/20 split."""

from functools import lru_cache

import numpy as np

__all__ = ["load_split", "SPLIT_SEED"]

#: The split is fixed: the same 1,437 training and 360 test images everywhere.
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def load_split():
    """Return ``(x_train, y_train, x_test, y_test)``; pixels scaled to [0, 1].

    The split is stratified by class, with ``random_state=SPLIT_SEED``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float64) / 16.0
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=SPLIT_SEED, stratify=y)
    return x_train, y_train, x_test, y_test
