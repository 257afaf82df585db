"""scikit-learn's bundled ``load_digits`` (no download) with the project's
fixed 80/20 split."""

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["load_split", "SPLIT_SEED"]

#: The split is fixed: the same 1,437 training and 360 test images everywhere.
SPLIT_SEED = 0


def _cache_path():
    """``build/cache/digits-split-s<seed>-sklearn<version>.npz``: the split, so that a process needs no
    scikit-learn import (about a CPU-second) once one has made it."""
    from importlib.metadata import version

    root = Path(__file__).resolve().parents[1]
    return root / "build" / "cache" / f"digits-split-s{SPLIT_SEED}-sklearn{version('scikit-learn')}.npz"


def _make_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float64) / 16.0
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=SPLIT_SEED, stratify=y)
    return x_train, y_train, x_test, y_test


@lru_cache(maxsize=1)
def load_split():
    """Return ``(x_train, y_train, x_test, y_test)``; pixels scaled to [0, 1].

    The split is stratified by class, with ``random_state=SPLIT_SEED``. The first call on a machine
    stores it under ``build/cache/`` (written under a temporary name and renamed, so concurrent
    processes never read half a file); later calls load it from there.
    """
    path = _cache_path()
    try:
        with np.load(path) as f:
            return tuple(f[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, KeyError, ValueError):
        pass
    split = _make_split()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **dict(zip(("x_train", "y_train", "x_test", "y_test"), split)))
        os.replace(tmp, path)
    except OSError:  # a read-only checkout: no cache, the split is made every time
        pass
    return split
