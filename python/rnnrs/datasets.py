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

from ._validate import as_dtype, finite_number, positive_int, seed_value

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
    the same proportion). Both index arrays are sorted. ``seed``: None or an
    integer >= 0; ``test_size``: a number in (0, 1)."""
    n = positive_int("n", n)
    fraction = finite_number("test_size", test_size)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"test_size: expected a fraction in (0, 1), got {test_size}")
    rng = np.random.default_rng(seed_value(seed))
    if stratify is None:
        order = rng.permutation(n)
        n_test = int(round(n * fraction))
        return np.sort(order[n_test:]), np.sort(order[:n_test])
    labels = np.asarray(stratify)
    if labels.shape != (n,):
        raise ValueError(f"stratify: expected shape ({n},) (one label per row), got {labels.shape}")
    test: list[np.ndarray] = []
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        test.append(rows[: int(round(len(rows) * fraction))])
    test_idx = np.sort(np.concatenate(test))
    mask = np.ones(n, dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask), test_idx


def time_series(t: Any) -> np.ndarray:
    """The chapter's series: ``t * sin(t) / 3 + 2 * sin(5 t)`` (``t``: numbers, any shape)."""
    raw = np.asarray(t)
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"t: expected real numbers, got dtype {raw.dtype}")
    t = raw.astype(np.float64)
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
    ``seed`` is None or an integer >= 0; ``dtype`` float32 or float64; the
    window must fit: ``t_max > t_min + n_steps * resolution``.
    """
    count = positive_int("count", count)
    n_steps = positive_int("n_steps", n_steps)
    rng = np.random.default_rng(seed_value(seed))
    t_min, t_max = finite_number("t_min", t_min), finite_number("t_max", t_max)
    resolution = finite_number("resolution", resolution)
    if resolution <= 0:
        raise ValueError(f"resolution: expected a number > 0, got {resolution}")
    span = t_max - t_min - n_steps * resolution
    if not span > 0:
        raise ValueError(
            f"t_max: expected more than t_min + n_steps * resolution = {t_min + n_steps * resolution}, got {t_max}"
        )
    out_dtype = as_dtype(dtype)
    t0 = t_min + rng.random((count, 1)) * span
    ts = t0 + np.arange(n_steps + 1) * resolution
    ys = time_series(ts).astype(out_dtype)
    return ys[:, :-1, None].copy(), ys[:, 1:, None].copy()
