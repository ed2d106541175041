"""Small data sets for the chapter's examples.

``load_digits()``: the 8×8 hand-written digits bundled with the wheel
(``rnnrs/data/digits.npz``, 45 kB), a copy of scikit-learn's ``load_digits``
data, which is the test set of the UCI ML "Optical Recognition of Handwritten
Digits" data set by E. Alpaydin and C. Kaynak (1998), licensed under
CC BY 4.0
(https://archive.ics.uci.edu/ml/datasets/Optical+Recognition+of+Handwritten+Digits;
see ``rnnrs/data/DIGITS_LICENSE.txt``). 1797 images of 8×8 pixels with
values 0..16 (each pixel counts the "on" pixels of a 4×4 block of a 32×32
bitmap), 10 classes of about 180 images each.

``time_series(t)`` and ``time_series_windows(...)``: the chapter's series
``t * sin(t) / 3 + 2 * sin(5 t)`` and training windows cut from it, each
target being the input shifted one step ahead.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple, Optional

import numpy as np

from ._validate import positive_int

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


class Digits(NamedTuple):
    """``images`` uint8 ``[1797, 8, 8]`` (0..16) and ``labels`` uint8 ``[1797]`` (0..9)."""

    images: np.ndarray
    labels: np.ndarray


def load_digits() -> Digits:
    """The bundled 8×8 digits (UCI ML hand-written digits, CC BY 4.0,
    Alpaydin & Kaynak): ``Digits(images [1797, 8, 8] uint8 0..16, labels [1797] uint8)``.

    As a sequence: each image is 8 time steps of 8 features (its rows),
    e.g. ``x = images.astype(np.float32) / 16``.
    """
    with np.load(os.path.join(DATA_DIR, "digits.npz"), allow_pickle=False) as data:
        return Digits(data["images"], data["labels"])


def train_test_split(
    n: int, test_size: float = 0.2, seed: Optional[int] = 0, stratify: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)`` for ``n`` rows: a seeded random split,
    stratified by the labels ``stratify`` when given (each class split in
    the same proportion). Both index arrays are sorted."""
    n = positive_int("n", n)
    if not 0.0 < float(test_size) < 1.0:
        raise ValueError(f"test_size: expected a fraction in (0, 1), got {test_size}")
    rng = np.random.default_rng(seed)
    if stratify is None:
        order = rng.permutation(n)
        n_test = int(round(n * float(test_size)))
        return np.sort(order[n_test:]), np.sort(order[:n_test])
    labels = np.asarray(stratify)
    if labels.shape != (n,):
        raise ValueError(f"stratify: expected shape ({n},) (one label per row), got {labels.shape}")
    test: list[np.ndarray] = []
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        test.append(rows[: int(round(len(rows) * float(test_size)))])
    test_idx = np.sort(np.concatenate(test))
    mask = np.ones(n, dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask), test_idx


def time_series(t: Any) -> np.ndarray:
    """The chapter's series: ``t * sin(t) / 3 + 2 * sin(5 t)``."""
    t = np.asarray(t, dtype=np.float64)
    return np.asarray(t * np.sin(t) / 3 + 2 * np.sin(t * 5))


def time_series_windows(
    count: int,
    n_steps: int = 20,
    seed: Optional[int] = None,
    t_min: float = 0.0,
    t_max: float = 30.0,
    resolution: float = 0.1,
    dtype: Any = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random windows of the series, as the chapter's ``next_batch``:
    each starts at a uniform ``t0`` in ``[t_min, t_max - n_steps * resolution)``
    and samples ``n_steps + 1`` points ``resolution`` apart.

    Returns ``(x, y)``, both ``[count, n_steps, 1]``: ``x`` the first
    ``n_steps`` values, ``y`` the same window shifted one step ahead.
    """
    count = positive_int("count", count)
    n_steps = positive_int("n_steps", n_steps)
    rng = np.random.default_rng(seed)
    t0 = t_min + rng.random((count, 1)) * (t_max - t_min - n_steps * resolution)
    ts = t0 + np.arange(n_steps + 1) * resolution
    ys = time_series(ts).astype(dtype)
    return ys[:, :-1, None].copy(), ys[:, 1:, None].copy()
