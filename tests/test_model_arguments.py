"""Arguments of compile, fit, evaluate, predict, generate, the datasets and the
progress bar: a wrong type raises TypeError and a wrong value ValueError, each
naming the argument. Before: ``compile(metrics="accuracy")`` iterated the
string ("got 'a'"), ``fit(seed="x")`` raised NumPy's TypeError naming nothing,
``epochs=True`` / ``steps=2.0`` were ValueErrors, ``verbose=1.0`` and
``shuffle="no"`` were accepted, ``verbose=np.array([1, 2])`` raised "truth
value of an array is ambiguous", ``validation_data`` of four items was a
TypeError and ``train_test_split(test_size="0.2")`` raised a bare conversion
error."""

from __future__ import annotations

import io

import numpy as np
import pytest

import rnnrs
from helpers import raises_naming


def data(n=12, T=4, F=3):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, T, F)).astype(np.float32), np.arange(n) % 2


def classifier():
    return rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(4, seed=0), 2, seed=0)


def test_compile_accepts_one_metric_name_as_a_string():
    model = classifier()
    model.compile("adam", "sparse_softmax_cross_entropy", "accuracy")
    assert model.metrics == ["accuracy"]
    model.compile("adam", "mse", "mae")
    assert model.metrics == ["mae"]
    model.compile("adam", "mse", ("mae",))
    assert model.metrics == ["mae"]


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"metrics": 5}, TypeError),
        ({"metrics": [5]}, TypeError),
        ({"metrics": {"accuracy"}}, TypeError),
        ({"metrics": "a"}, ValueError),
        ({"metrics": "mae"}, ValueError),  # a regression metric for cross-entropy
    ],
)
def test_compile_metrics_errors_name_metrics(kwargs, error):
    with raises_naming(error, "metrics"):
        classifier().compile("adam", "sparse_softmax_cross_entropy", **kwargs)


def test_compile_loss_of_the_wrong_type():
    with raises_naming(TypeError, "loss"):
        classifier().compile("adam", 5)
    with raises_naming(TypeError, "optimizer"):
        classifier().compile(3.0)


@pytest.mark.parametrize(
    "name, value, error",
    [
        ("seed", "x", TypeError),
        ("seed", 1.5, TypeError),
        ("seed", True, TypeError),
        ("seed", -1, ValueError),
        ("epochs", True, TypeError),
        ("epochs", 2.0, TypeError),
        ("epochs", "3", TypeError),
        ("epochs", -1, ValueError),
        ("batch_size", 2.0, TypeError),
        ("batch_size", True, TypeError),
        ("batch_size", 0, ValueError),
        ("shuffle", "no", TypeError),
        ("shuffle", 1, TypeError),
        ("verbose", True, TypeError),
        ("verbose", 1.0, TypeError),
        ("verbose", [1], TypeError),
        ("verbose", np.array([1, 2]), TypeError),
        ("verbose", 3, ValueError),
        ("verbose", "loud", ValueError),
        ("stream", 5, TypeError),
        ("validation_data", "xy", TypeError),
        ("validation_data", {"x": 1}, TypeError),
        ("validation_data", (1,), ValueError),
        ("validation_data", (1, 2, 3, 4), ValueError),
    ],
)
def test_fit_arguments_are_named(name, value, error):
    x, y = data()
    model = classifier()
    before = model.get_weights() if model.built else None
    with raises_naming(error, name):
        model.fit(x, y, **{name: value})
    assert before is None and not model.history  # nothing trained


def test_fit_accepts_numpy_integers_and_bools():
    x, y = data()
    model = classifier()
    history = model.fit(
        x,
        y,
        batch_size=np.int64(4),
        epochs=np.int32(1),
        seed=np.uint8(3),
        shuffle=np.bool_(True),
        verbose=np.int64(2),
        stream=io.StringIO(),
    )
    assert len(history.epoch) == 1


def test_evaluate_and_predict_batch_size_is_named():
    x, y = data()
    model = classifier()
    model.fit(x, y, verbose=0)
    for call in (
        lambda b: model.evaluate(x, y, batch_size=b),
        lambda b: model.predict(x, batch_size=b),
        lambda b: model.predict_classes(x, batch_size=b),
    ):
        for bad, error in ((1.5, TypeError), (True, TypeError), (0, ValueError), ("8", TypeError)):
            with raises_naming(error, "batch_size"):
                call(bad)


def test_generate_arguments_are_named():
    x, _ = data(F=1)
    model = rnnrs.SequenceRegressor(rnnrs.OutputProjectionWrapper(rnnrs.BasicRNNCell(3, seed=0), 1))
    model.fit(x, np.roll(x, -1, axis=1), verbose=0)
    for bad, error in ((True, TypeError), (2.0, TypeError), ("3", TypeError), (-1, ValueError), (10**19, ValueError)):
        with raises_naming(error, "steps"):
            model.generate(x[0], bad)
    for bad, error in ((0, ValueError), (1.5, TypeError), (True, TypeError)):
        with raises_naming(error, "window"):
            model.generate(x[0], 2, window=bad)
    assert model.generate(x[0], np.int64(2)).shape == (2, 1)


def test_dataset_arguments_are_named():
    with raises_naming(TypeError, "seed"):
        rnnrs.datasets.train_test_split(10, seed="x")
    with raises_naming(ValueError, "seed"):
        rnnrs.datasets.train_test_split(10, seed=-1)
    with raises_naming(TypeError, "test_size"):
        rnnrs.datasets.train_test_split(10, test_size="0.2")
    with raises_naming(ValueError, "test_size"):
        rnnrs.datasets.train_test_split(10, test_size=float("nan"))
    with raises_naming(TypeError, "seed"):
        rnnrs.datasets.time_series_windows(3, seed=2.5)
    with raises_naming(TypeError, "dtype"):
        rnnrs.datasets.time_series_windows(3, dtype=np.int32)
    with raises_naming(ValueError, "t_max"):
        rnnrs.datasets.time_series_windows(3, n_steps=400)  # 400 steps of 0.1 do not fit in [0, 30]
    with raises_naming(ValueError, "resolution"):
        rnnrs.datasets.time_series_windows(3, resolution=0)
    with raises_naming(TypeError, "t_min"):
        rnnrs.datasets.time_series_windows(3, t_min="0")
    with raises_naming(TypeError, "\\bt\\b"):
        rnnrs.datasets.time_series(["a"])
    x, y = rnnrs.datasets.time_series_windows(3, seed=np.int64(1), dtype=np.float64)
    assert x.dtype == np.float64 and x.shape == (3, 20, 1)


def test_progress_bar_arguments_are_named():
    for kwargs, error, name in [
        ({"total": 1.5}, TypeError, "total"),
        ({"total": -1}, ValueError, "total"),
        ({"total": 3, "width": 0}, ValueError, "width"),
        ({"total": 3, "width": True}, TypeError, "width"),
        ({"total": 3, "interval": float("inf")}, ValueError, "interval"),
        ({"total": 3, "stream": 5}, TypeError, "stream"),
        ({"total": 3, "prefix": 5}, TypeError, "prefix"),
    ]:
        with raises_naming(error, name):
            rnnrs.ProgressBar(**kwargs)
