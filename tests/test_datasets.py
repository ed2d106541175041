"""The bundled digits, the split helper and the chapter's time series."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

import rnnrs
from helpers import raises_naming


def test_digits_are_scikit_learns():
    digits = rnnrs.datasets.load_digits()
    images, labels = digits
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (1797,) and labels.dtype == np.uint8
    assert images.min() == 0 and images.max() == 16
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # Digests of sklearn.datasets.load_digits() (scikit-learn 1.9.1) images
    # and target cast to uint8, recorded when the file was written.
    assert hashlib.sha256(images.tobytes()).hexdigest() == (
        "8f26b2bd9d135c256808f68f14fdabddde6d9c7f869ae419704b051f0f14b3b3"
    )
    assert hashlib.sha256(labels.tobytes()).hexdigest() == (
        "8ba4f891220f5e4c9c819638d1602d74b83618f167043c6da52a2a247841ddf0"
    )


def test_digits_ship_with_their_attribution():
    folder = rnnrs.datasets.DATA_DIR
    assert os.path.getsize(os.path.join(folder, "digits.npz")) < 100_000
    with open(os.path.join(folder, "DIGITS_LICENSE.txt"), encoding="utf-8") as f:
        note = f.read()
    for words in ("CC BY 4.0", "Alpaydin", "Kaynak", "UCI"):
        assert words in note


def test_train_test_split():
    labels = np.repeat(np.arange(3), [10, 20, 30])
    train, test = rnnrs.datasets.train_test_split(60, 0.2, seed=1, stratify=labels)
    assert len(test) == 12 and len(train) == 48
    assert np.bincount(labels[test]).tolist() == [2, 4, 6]  # each class split 80/20
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(60))
    again = rnnrs.datasets.train_test_split(60, 0.2, seed=1, stratify=labels)
    np.testing.assert_array_equal(again[1], test)
    train, test = rnnrs.datasets.train_test_split(10, 0.3, seed=0)
    assert len(test) == 3 and not set(train) & set(test)
    with raises_naming(ValueError, "test_size"):
        rnnrs.datasets.train_test_split(10, 1.5)
    with raises_naming(ValueError, "stratify"):
        rnnrs.datasets.train_test_split(10, 0.5, stratify=np.zeros(9))


def test_time_series_and_windows():
    t = np.array([0.0, 1.0, np.pi])
    np.testing.assert_allclose(rnnrs.datasets.time_series(t), t * np.sin(t) / 3 + 2 * np.sin(5 * t))
    x, y = rnnrs.datasets.time_series_windows(50, n_steps=20, seed=0)
    assert x.shape == y.shape == (50, 20, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # y is x one step ahead
    # The same windows, by the chapter's formula from the same random draws.
    t0 = np.random.default_rng(0).random((50, 1)) * (30 - 20 * 0.1)
    ts = t0 + np.arange(21) * 0.1
    np.testing.assert_allclose(x[:, :, 0], rnnrs.datasets.time_series(ts[:, :-1]), rtol=1e-6, atol=1e-6)
    x2, _ = rnnrs.datasets.time_series_windows(50, n_steps=20, seed=0)
    np.testing.assert_array_equal(x, x2)


@pytest.mark.parametrize("count", [0, -1])
def test_time_series_windows_bad_count(count):
    with raises_naming(ValueError, "count"):
        rnnrs.datasets.time_series_windows(count)
