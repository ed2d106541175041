"""Keras-style losses (binary / categorical cross-entropy, Huber, MAE and the
loss objects) against NumPy references and finite differences; streaming
metrics against hand-computed values (Keras' documented examples) and
against one update over the concatenated data; compile / fit / evaluate with
every loss name, loss objects, callables and metric names; bad inputs named."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnrs
from helpers import raises_naming, seeds
from rnnrs import losses, metrics
from test_losses import finite_difference

DTYPES = [np.float32, np.float64]


def keras_mean(per, weights=None):
    """Keras' "sum_over_batch_size": sum(w * loss) / number of losses (w aligned left)."""
    per = np.asarray(per, np.float64)
    if weights is None:
        return float(per.mean())
    w = np.asarray(weights, np.float64)
    while w.ndim < per.ndim:
        w = w[..., None]
    return float((np.broadcast_to(w, per.shape) * per).sum() / per.size)


def ref_bce(y, p, from_logits, weights=None, smoothing=0.0):
    y = np.asarray(y, np.float64) * (1 - smoothing) + smoothing / 2
    p = np.asarray(p, np.float64)
    if from_logits:
        p = 1 / (1 + np.exp(-p))
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return keras_mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)), weights)


def ref_cce(y, p, from_logits, smoothing=0.0, weights=None):
    y = np.asarray(y, np.float64)
    y = y * (1 - smoothing) + smoothing / y.shape[-1]
    p = np.asarray(p, np.float64)
    if from_logits:
        p = np.exp(p) / np.exp(p).sum(axis=-1, keepdims=True)
    else:
        p = np.clip(p / p.sum(axis=-1, keepdims=True), 1e-7, 1 - 1e-7)
    return keras_mean(-(y * np.log(p)).sum(axis=-1), weights)


def ref_huber(y, p, delta, weights=None):
    e = np.abs(np.asarray(p, np.float64) - np.asarray(y, np.float64))
    return keras_mean(np.where(e <= delta, 0.5 * e**2, delta * (e - 0.5 * delta)), weights)


def ref_mae(y, p, weights=None):
    return keras_mean(np.abs(np.asarray(p, np.float64) - np.asarray(y, np.float64)), weights)


def check(fn, ref, y, p, dtype, eps=1e-6, grad_tol=1e-6):
    """Value against ``ref`` (in ``dtype``), gradient's dtype/shape, and the
    float64 gradient against finite differences of ``fn``'s value."""
    value, d = fn(y, p.astype(dtype))
    assert isinstance(value, float)
    assert d.dtype == np.dtype(dtype) and d.shape == p.shape
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert value == pytest.approx(ref(y, p), rel=rtol, abs=rtol)
    p64 = p.astype(np.float64)
    _, d64 = fn(y, p64)
    fd = finite_difference(lambda q: fn(y, q)[0], p64.copy(), eps)
    np.testing.assert_allclose(d64, fd, rtol=1e-5, atol=grad_tol)
    np.testing.assert_allclose(d.astype(np.float64), d64, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("from_logits", [True, False])
@given(seed=seeds)
@settings(max_examples=15, deadline=None)
def test_binary_crossentropy(dtype, from_logits, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, (4, 3)).astype(np.float64)
    p = rng.normal(size=(4, 3)) * 3 if from_logits else rng.uniform(0.05, 0.95, (4, 3))
    check(
        lambda y_, p_: losses.binary_crossentropy(y_, p_, from_logits),
        lambda y_, p_: ref_bce(y_, p_, from_logits),
        y,
        p,
        dtype,
    )
    w = rng.uniform(0, 2, 4)  # per row: sum(w * loss) / number of entries
    check(
        lambda y_, p_: losses.binary_crossentropy(y_, p_, from_logits, w),
        lambda y_, p_: ref_bce(y_, p_, from_logits, w),
        y,
        p,
        dtype,
    )
    check(
        lambda y_, p_: losses.binary_crossentropy(y_, p_, from_logits, label_smoothing=0.2),
        lambda y_, p_: ref_bce(y_, p_, from_logits, smoothing=0.2),
        y,
        p,
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_crossentropy_is_stable_on_huge_logits(dtype):
    """The log-sigmoid form: no overflow, the exact loss, gradient sigmoid(z) - y."""
    z = np.array([[1e4, -1e4, 80.0, -80.0]], dtype=dtype)
    y = np.array([[0.0, 1.0, 1.0, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value, d = losses.binary_crossentropy(y, z)
    assert value == pytest.approx((1e4 + 1e4 + 2 * np.log1p(np.exp(-80.0))) / 4, rel=1e-6)
    np.testing.assert_allclose(d, [[0.25, -0.25, 0.0, 0.0]], atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@given(seed=seeds)
@settings(max_examples=10, deadline=None)
def test_categorical_crossentropy(dtype, from_logits, smoothing, seed):
    rng = np.random.default_rng(seed)
    y = np.eye(4)[rng.integers(0, 4, (2, 3))]  # [2, 3, 4] one-hot
    p = rng.normal(size=(2, 3, 4)) * 2 if from_logits else rng.uniform(0.1, 1.0, (2, 3, 4))
    w = rng.uniform(0, 2, (2, 3))
    for weights in (None, w):
        check(
            lambda y_, p_, weights=weights: losses.categorical_crossentropy(y_, p_, from_logits, smoothing, weights),
            lambda y_, p_, weights=weights: ref_cce(y_, p_, from_logits, smoothing, weights),
            y,
            p,
            dtype,
        )


def test_categorical_crossentropy_is_stable_and_takes_probability_labels():
    z = np.array([[1e4, -1e4, 0.0]])
    value, d = losses.categorical_crossentropy([[0.0, 1.0, 0.0]], z)
    assert value == pytest.approx(2e4)
    np.testing.assert_allclose(d, [[1.0, -1.0, 0.0]], atol=1e-12)
    y = np.array([[0.2, 0.8, 0.0]])
    z = np.array([[0.5, -1.0, 2.0]])
    check(
        lambda y_, p_: losses.categorical_crossentropy(y_, p_), lambda y_, p_: ref_cce(y_, p_, True), y, z, np.float64
    )


@pytest.mark.parametrize("dtype", DTYPES)
@given(seed=seeds, delta=st.sampled_from([0.5, 1.0, 2.0]))
@settings(max_examples=15, deadline=None)
def test_huber_and_mae(dtype, seed, delta):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(3, 2, 2))
    p = y + rng.choice([-1, 1], size=y.shape) * rng.uniform(0.1, 3.0, y.shape)
    p[np.abs(np.abs(p - y) - delta) < 1e-3] += 0.01  # away from the kink
    w = rng.uniform(0, 2, (3, 2))
    for weights in (None, w):
        check(
            lambda y_, p_, weights=weights: losses.huber(y_, p_, delta, weights),
            lambda y_, p_, weights=weights: ref_huber(y_, p_, delta, weights),
            y,
            p,
            dtype,
        )
        check(
            lambda y_, p_, weights=weights: losses.mean_absolute_error(y_, p_, weights),
            lambda y_, p_, weights=weights: ref_mae(y_, p_, weights),
            y,
            p,
            dtype,
        )


def test_loss_objects_match_the_functions():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 3, 5)
    z = rng.normal(size=(5, 3))
    probs = rnnrs.losses.softmax(z)
    w = rng.uniform(0, 2, 5)
    # Sparse: the TF 1.x function normalises by sum(w); the object by the number of ids (Keras).
    value, d = losses.SparseCategoricalCrossentropy(from_logits=True)(ids, z)
    ref, d_ref = rnnrs.sparse_softmax_cross_entropy(ids, z)
    assert value == pytest.approx(ref, rel=1e-12)
    np.testing.assert_allclose(d, d_ref, atol=1e-12)
    value, _ = losses.SparseCategoricalCrossentropy(from_logits=True)(ids, z, w)
    assert value == pytest.approx(rnnrs.sparse_softmax_cross_entropy(ids, z, w)[0] * w.sum() / 5, rel=1e-12)
    value, _ = losses.SparseCategoricalCrossentropy()(ids, probs)  # from_logits=False by default, as Keras
    assert value == pytest.approx(ref, rel=1e-9)
    one_hot = np.eye(3)[ids]
    assert losses.CategoricalCrossentropy()(one_hot, probs)[0] == pytest.approx(ref, rel=1e-9)
    assert losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(one_hot, z)[0] == pytest.approx(
        ref_cce(one_hot, z, True, 0.1)
    )
    yb = rng.integers(0, 2, (5, 1))
    assert losses.BinaryCrossentropy()(yb, probs[:, :1])[0] == pytest.approx(ref_bce(yb, probs[:, :1], False))
    assert losses.BinaryCrossentropy(from_logits=True)(yb, z[:, :1], w)[0] == pytest.approx(
        ref_bce(yb, z[:, :1], True, w)
    )
    y = rng.normal(size=(5, 2))
    p = rng.normal(size=(5, 2))
    v, d = losses.MeanSquaredError()(y, p)
    v_ref, d_ref = rnnrs.mean_squared_error(y, p)
    assert v == v_ref and np.array_equal(d, d_ref)  # unweighted: the function's result exactly
    v, d = losses.MeanSquaredError()(y, p, w)
    assert v == pytest.approx(keras_mean((p - y) ** 2, w), rel=1e-12)
    np.testing.assert_allclose(d, 2 * w[:, None] * (p - y) / p.size, rtol=1e-12)
    assert losses.MeanAbsoluteError()(y, p, w)[0] == pytest.approx(ref_mae(y, p, w))
    assert losses.Huber(0.5)(y, p)[0] == pytest.approx(ref_huber(y, p, 0.5))
    assert repr(losses.Huber(2)) == "Huber(delta=2.0)"


def test_zero_weights_count_in_the_denominator():
    """Keras' reduction: zero weights still count (unlike the TF 1.x functions' sum(w))."""
    value, d = losses.mean_absolute_error([[0.0], [0.0]], [[1.0], [3.0]], weights=[1.0, 0.0])
    assert value == 0.5
    np.testing.assert_array_equal(d, [[0.5], [0.0]])
    value, d = losses.huber([[0.0]], [[1.0]], weights=[0.0])
    assert value == 0.0 and not d.any()


def test_loss_bad_inputs_are_named():
    with raises_naming(ValueError, "labels"):
        losses.binary_crossentropy(np.zeros((2, 2)), np.zeros((2, 3)))
    with raises_naming(TypeError, "from_logits"):
        losses.binary_crossentropy(np.zeros(2), np.zeros(2), from_logits="yes")
    with raises_naming(ValueError, "label_smoothing"):
        losses.categorical_crossentropy(np.eye(2), np.eye(2), label_smoothing=1.5)
    with raises_naming(ValueError, "delta"):
        losses.huber(np.zeros(2), np.zeros(2), delta=0)
    with raises_naming(TypeError, "delta"):
        losses.Huber(delta="1")
    with raises_naming(ValueError, "weights"):
        losses.mean_absolute_error(np.zeros((2, 3)), np.zeros((2, 3)), weights=np.ones(3 + 1))
    with raises_naming(TypeError, "predictions"):
        losses.huber(np.zeros(2), np.array(["a", "b"]))
    with raises_naming(ValueError, "y_true"):
        losses.SparseCategoricalCrossentropy()(np.array([3]), np.ones((1, 3)) / 3)


# -- metrics ----------------------------------------------------------------------


KERAS_EXAMPLES = [  # metric, y_true, y_pred, sample_weight, result, weighted result (Keras' docstrings)
    (metrics.BinaryAccuracy, [[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]], [1, 0, 0, 1], 0.75, 0.5),
    (metrics.SparseCategoricalAccuracy, [2, 1], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]], [0.7, 0.3], 0.5, 0.3),
    (
        lambda: metrics.SparseTopKCategoricalAccuracy(k=1),
        [2, 1],
        [[0.1, 0.9, 0.8], [0.05, 0.95, 0]],
        [0.7, 0.3],
        0.5,
        0.3,
    ),
    (
        lambda: metrics.TopKCategoricalAccuracy(k=1),
        [[0, 0, 1], [0, 1, 0]],
        [[0.1, 0.9, 0.8], [0.05, 0.95, 0]],
        [0.7, 0.3],
        0.5,
        0.3,
    ),
    (metrics.Precision, [0, 1, 1, 1], [1, 0, 1, 1], [0, 0, 1, 0], 2 / 3, 1.0),
    (metrics.Recall, [0, 1, 1, 1], [1, 0, 1, 1], [0, 0, 1, 0], 2 / 3, 1.0),
    (lambda: metrics.AUC(num_thresholds=3), [0, 0, 1, 1], [0, 0.5, 0.3, 0.9], [1, 0, 0, 1], 0.75, 1.0),
    (metrics.MeanAbsoluteError, [[0, 1], [0, 0]], [[1, 1], [0, 0]], [1, 0], 0.25, 0.5),
]


@pytest.mark.parametrize("make, y, p, w, want, want_weighted", KERAS_EXAMPLES)
def test_metrics_against_keras_documented_values(make, y, p, w, want, want_weighted):
    m = make()
    m.update_state(y, p)
    assert m.result() == pytest.approx(want)
    m.reset_state()
    m.update_state(y, p, sample_weight=w)
    assert m.result() == pytest.approx(want_weighted)


def test_precision_with_several_thresholds_and_empty_state():
    m = metrics.Precision(thresholds=[0.2, 0.7])
    assert np.array_equal(m.result(), [0.0, 0.0])  # no data: 0, as Keras' divide_no_nan
    m.update_state([0, 1, 1], [0.3, 0.5, 0.9])
    np.testing.assert_allclose(m.result(), [2 / 3, 1.0])
    assert metrics.AUC().result() == 0.0


def test_auc_approaches_the_exact_roc_area():
    """200 thresholds: the trapezoid area is within a bucket of the rank statistic."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 400), 0, 1)
    pos, neg = p[y == 1], p[y == 0]
    exact = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    m = metrics.AUC()
    m.update_state(y, p)
    assert m.result() == pytest.approx(exact, abs=5e-3)


def _streaming_cases(rng, n):
    ids = rng.integers(0, 4, n)
    scores = rng.normal(size=(n, 4)).round(1)  # ties happen
    y01 = rng.integers(0, 2, (n, 2))
    probs = rng.uniform(0, 1, (n, 2)).round(2)
    reg = rng.normal(size=(n, 3))
    return [
        (metrics.SparseCategoricalAccuracy(), ids, scores),
        (metrics.CategoricalAccuracy(), np.eye(4)[ids], scores),
        (metrics.SparseTopKCategoricalAccuracy(k=2), ids, scores),
        (metrics.TopKCategoricalAccuracy(k=2), np.eye(4)[ids], scores),
        (metrics.BinaryAccuracy(threshold=0.3), y01, probs),
        (metrics.Precision(), y01, probs),
        (metrics.Recall(thresholds=[0.1, 0.5, 0.9]), y01, probs),
        (metrics.AUC(num_thresholds=50), y01, probs),
        (metrics.MeanAbsoluteError(), reg, reg * 0.5),
    ]


@given(seed=seeds, n=st.integers(1, 40), cuts=st.lists(st.integers(0, 40), max_size=4), weighted=st.booleans())
@settings(max_examples=40, deadline=None)
def test_streaming_equals_one_update_over_the_concatenation(seed, n, cuts, weighted):
    rng = np.random.default_rng(seed)
    bounds = [0] + sorted(min(c, n) for c in cuts) + [n]
    w = rng.uniform(0, 2, n) if weighted else None
    for (m, y, p), (whole, _, _) in zip(_streaming_cases(rng, n), _streaming_cases(np.random.default_rng(0), 1)):
        whole.reset_state()
        whole.update_state(y, p, w)
        for a, b in zip(bounds[:-1], bounds[1:]):
            m.update_state(y[a:b], p[a:b], None if w is None else w[a:b])
        np.testing.assert_allclose(m.result(), whole.result(), rtol=1e-12, atol=1e-12, err_msg=type(m).__name__)


def test_metric_bad_inputs_are_named():
    with raises_naming(ValueError, "y_true"):
        metrics.Precision().update_state([0, 2], [0.1, 0.9])
    with raises_naming(ValueError, "y_true"):
        metrics.BinaryAccuracy().update_state([0, 1, 1], [0.1, 0.9])
    with raises_naming(ValueError, "y_pred"):
        metrics.AUC().update_state([0, 1], [0.1, 1.5])
    with raises_naming(ValueError, "y_true"):
        metrics.SparseCategoricalAccuracy().update_state([0, 3], np.ones((2, 3)))
    with raises_naming(ValueError, "sample_weight"):
        metrics.MeanAbsoluteError().update_state(np.zeros((2, 2)), np.zeros((2, 2)), sample_weight=np.ones(3))
    with raises_naming(ValueError, "k"):
        metrics.SparseTopKCategoricalAccuracy(k=0)
    with raises_naming(ValueError, "thresholds"):
        metrics.Precision(thresholds=1.5)
    with raises_naming(TypeError, r"thresholds\[1\]"):
        metrics.Recall(thresholds=[0.5, "x"])
    with raises_naming(ValueError, "num_thresholds"):
        metrics.AUC(num_thresholds=1)
    with raises_naming(ValueError, "threshold"):
        metrics.BinaryAccuracy(threshold=-0.1)


# -- compile / fit / evaluate --------------------------------------------------------


def _data(n=24, time=5, features=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, time, features)).astype(np.float32)
    lengths = rng.integers(1, time + 1, n)
    return rng, x, lengths


def _model(units, per_step=False, activation=None):
    return rnnrs.Sequential(
        [
            rnnrs.RNN(rnnrs.BasicRNNCell(6, seed=1), return_sequences=per_step),
            rnnrs.Dense(units, activation=activation, seed=2),
        ]
    )


def test_compile_with_each_loss_name_trains_and_evaluates():
    rng, x, _ = _data()
    ids = rng.integers(0, 3, len(x))
    cases = [
        (
            "binary_crossentropy",
            rng.integers(0, 2, (len(x), 2)).astype(np.float32),
            ["accuracy", "precision", "recall", "auc"],
        ),
        ("categorical_crossentropy", np.eye(3, dtype=np.float32)[ids], ["accuracy", "top_k_categorical_accuracy"]),
        ("sparse_categorical_crossentropy", ids, ["acc", "sparse_top_k_categorical_accuracy"]),
        ("huber", rng.normal(size=(len(x), 2)).astype(np.float32), ["mae"]),
        ("mae", rng.normal(size=(len(x), 2)).astype(np.float32), ["mean_absolute_error"]),
        ("mse", rng.normal(size=(len(x), 2)).astype(np.float32), ["mae"]),
    ]
    for loss, y, names in cases:
        model = _model(y.shape[-1] if y.ndim == 2 else 3)
        model.compile(rnnrs.Adam(0.01), loss, names)
        before = model.evaluate(x, y)["loss"]
        history = model.fit(x, y, epochs=3, batch_size=8, verbose=0, validation_data=(x, y))
        after = model.evaluate(x, y)
        assert after["loss"] < before, loss
        assert after["loss"] == pytest.approx(history.history["val_loss"][-1], rel=1e-5)
        for key in model.metrics:
            assert f"val_{key}" in history.history, (loss, key)
            assert 0.0 <= after[key] <= (1.0 if key != "mae" else np.inf)


def test_evaluate_matches_the_functions_and_metric_objects_on_probabilities():
    """The names mean logits; metrics get sigmoid(logits) (binary) as Keras expects probabilities."""
    rng, x, _ = _data()
    y = rng.integers(0, 2, (len(x), 1)).astype(np.float32)
    model = _model(1)
    auc, prec = metrics.AUC(), metrics.Precision(thresholds=0.4)
    model.compile("adam", "binary_crossentropy", ["accuracy", auc, prec])
    assert model.metrics == ["accuracy", "auc", "precision"]
    got = model.evaluate(x, y, batch_size=7)  # several batches: streaming
    z = model(x).astype(np.float64)
    assert got["loss"] == pytest.approx(ref_bce(y, z, True), rel=1e-5)
    prob = 1 / (1 + np.exp(-z))
    assert got["accuracy"] == pytest.approx(((prob > 0.5) == y).mean())
    ref_auc, ref_prec = metrics.AUC(), metrics.Precision(thresholds=0.4)
    ref_auc.update_state(y, prob)
    ref_prec.update_state(y, prob)
    assert got["auc"] == pytest.approx(ref_auc.result(), abs=1e-12)
    assert got["precision"] == pytest.approx(ref_prec.result(), abs=1e-12)
    # fit's training logs hold the ratio metrics; AUC is reported for validation
    history = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y))
    assert {"loss", "accuracy", "precision", "val_auc", "val_precision"} <= set(history.history)


def test_loss_objects_and_from_logits_false():
    rng, x, _ = _data()
    y = rng.integers(0, 2, (len(x), 1)).astype(np.float32)
    model = _model(1, activation="sigmoid")
    model.compile("adam", losses.BinaryCrossentropy(), [metrics.BinaryAccuracy()])
    assert isinstance(model.loss, losses.BinaryCrossentropy)
    got = model.evaluate(x, y)
    p = model(x).astype(np.float64)
    assert got["loss"] == pytest.approx(ref_bce(y, p, False), rel=1e-5)
    assert got["binary_accuracy"] == pytest.approx(((p > 0.5) == y).mean())  # probabilities, not re-squashed
    model.fit(x, y, epochs=1, verbose=0)
    # an object equal to a name's meaning is stored as the name (so the model saves)
    model.compile("adam", losses.Huber())
    assert model.loss == "huber"
    model.compile("adam", losses.SparseCategoricalCrossentropy(from_logits=True))
    assert model.loss == losses.SparseCategoricalCrossentropy(from_logits=True)


def test_per_token_metrics_and_losses_with_lengths():
    """Padded steps are not counted: per-step accuracy and the categorical loss
    are the means over the steps t < len[b]."""
    rng, x, lengths = _data(n=10)
    ids = rng.integers(0, 3, (10, 5))
    model = _model(3, per_step=True)
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    one_hot = np.eye(3, dtype=np.float32)[ids]
    got = model.evaluate(x, one_hot, sequence_length=lengths, batch_size=4)
    z = model(x, sequence_length=lengths).astype(np.float64)
    mask = np.arange(5)[None, :] < lengths[:, None]
    ce = -(one_hot * (z - np.log(np.exp(z).sum(-1, keepdims=True)))).sum(-1)
    assert got["loss"] == pytest.approx(ce[mask].mean(), rel=1e-5)
    assert got["accuracy"] == pytest.approx((z.argmax(-1) == ids)[mask].mean())
    # garbage in the padded steps' targets changes nothing
    one_hot2 = one_hot.copy()
    one_hot2[~mask] = np.array([0, 0, 1], np.float32)
    assert model.evaluate(x, one_hot2, sequence_length=lengths) == pytest.approx(got)
    history = model.fit(x, one_hot, sequence_length=lengths, epochs=1, verbose=0)
    assert "accuracy" in history.history


def test_user_callable_loss():
    rng, x, _ = _data()
    y = rng.normal(size=(len(x), 2)).astype(np.float32)

    def l2(y_true, y_pred):
        e = y_pred - y_true
        return float((e**2).sum() / len(e)), 2 * e / len(e)

    model = _model(2)
    model.compile(rnnrs.Adam(0.01), l2, [metrics.MeanAbsoluteError()])
    before = model.evaluate(x, y)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    after = model.evaluate(x, y)
    assert after["loss"] < before["loss"]
    assert after["mean_absolute_error"] == pytest.approx(np.abs(model(x) - y).mean(), rel=1e-5)


@pytest.mark.parametrize(
    "bad, exc",
    [
        (lambda y, p: (1.0, np.zeros((p.shape[0], 7))), ValueError),  # wrong shape
        (lambda y, p: 1.0, TypeError),  # not a pair
        (lambda y, p: ("one", np.zeros_like(p)), TypeError),  # value not a number
        (lambda y, p: (np.ones(3), np.zeros_like(p)), TypeError),  # value an array
        (lambda y, p: (1.0, p.tolist()), TypeError),  # gradient not an array
    ],
)
def test_callable_loss_returning_the_wrong_things_is_named(bad, exc):
    rng, x, _ = _data()
    model = _model(2)
    model.compile("adam", bad)
    with raises_naming(exc, "^loss"):
        model.fit(x, rng.normal(size=(len(x), 2)), verbose=0)
    with raises_naming(exc, "^loss"):
        model.evaluate(x, rng.normal(size=(len(x), 2)))


def test_compile_and_targets_bad_inputs_are_named():
    rng, x, lengths = _data()
    model = _model(2)
    with raises_naming(TypeError, "^loss"):
        model.compile("adam", 3)
    with raises_naming(ValueError, "^loss"):
        model.compile("adam", "hinge")
    with raises_naming(ValueError, "^metrics"):
        model.compile("adam", "sparse_categorical_crossentropy", ["precision"])
    with raises_naming(ValueError, "^metrics"):
        model.compile("adam", "mse", ["accuracy"])
    with raises_naming(ValueError, "^metrics"):
        model.compile("adam", lambda y, p: (0.0, p), ["mae"])  # a callable takes metric objects only
    with raises_naming(ValueError, "^metrics"):
        model.compile("adam", "mse", [metrics.AUC(), metrics.AUC()])
    with raises_naming(TypeError, "^metrics"):
        model.compile("adam", "mse", [3])
    model.compile("adam", "binary_crossentropy")
    with raises_naming(ValueError, "^y"):
        model.evaluate(x, np.full((len(x), 2), 2.0))  # not 0/1
    with raises_naming(ValueError, "^y"):
        model.evaluate(x, np.zeros((len(x), 3)))  # not the outputs' shape
    model.compile("adam", "categorical_crossentropy")
    with raises_naming(ValueError, "^y"):
        model.evaluate(x, np.full((len(x), 2), 0.2))  # rows not summing to 1
    per_step = _model(2, per_step=True)
    per_step.compile("adam", lambda y, p: (0.0, np.zeros_like(p)))
    with raises_naming(ValueError, "^loss"):
        per_step.evaluate(x, np.zeros((len(x), 5, 2)), sequence_length=lengths)
    with raises_naming(ValueError, "^metrics"):  # logs hold numbers: one threshold per object
        model.compile("adam", "binary_crossentropy", [metrics.Precision(thresholds=[0.3, 0.6])])


def test_new_loss_and_metric_names_survive_save_and_load(tmp_path):
    rng, x, _ = _data()
    y = rng.integers(0, 2, (len(x), 1))
    model = _model(1)
    model.compile("adam", "binary_crossentropy", ["auc", "precision"])
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = rnnrs.load_model(tmp_path / "m.npz")
    assert loaded.loss == "binary_crossentropy" and loaded.metrics == ["auc", "precision"]
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_loss_and_metric_objects_survive_save_and_load_with_their_settings(tmp_path):
    """Objects are saved with their configuration (a Huber delta, a Precision threshold, AUC's
    thresholds), not by their log name: reloaded with defaults they would report other numbers."""
    rng, x, _ = _data()
    y = rng.integers(0, 2, (len(x), 1)).astype(np.float32)
    model = _model(1)
    objects = [metrics.Precision(thresholds=0.4), metrics.AUC(num_thresholds=50), metrics.BinaryAccuracy(0.3)]
    model.compile("adam", losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1), objects)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = rnnrs.load_model(tmp_path / "m.npz")
    assert loaded.loss == losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1)
    assert [m.get_config() for m in loaded._metric_objects] == [m.get_config() for m in objects]
    assert loaded.evaluate(x, y) == model.evaluate(x, y)

    regression = _model(2)
    regression.compile("adam", losses.Huber(2.0), ["mae"])
    regression.build(x.shape[2])
    regression.save(tmp_path / "r.npz")
    assert rnnrs.load_model(tmp_path / "r.npz").loss == losses.Huber(2.0)


def test_a_callable_loss_cannot_be_saved(tmp_path):
    model = _model(2)
    model.compile("adam", lambda y, p: (0.0, np.zeros_like(p)))
    model.build(3)
    with raises_naming(TypeError, "^loss"):
        model.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_predict_gives_probabilities_for_every_cross_entropy_on_logits():
    rng, x, _ = _data()
    model = _model(2)
    model.compile("adam", "binary_crossentropy")
    model.build(x.shape[2])
    logits = model(x).astype(np.float64)
    np.testing.assert_allclose(model.predict(x), 1 / (1 + np.exp(-logits)), rtol=1e-5)
    model.compile("adam", "categorical_crossentropy")
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(model.predict(x), e / e.sum(axis=-1, keepdims=True), rtol=1e-5)
    model.compile("adam", "huber")
    np.testing.assert_array_equal(model.predict(x), model(x))


def test_fit_logs_every_metric_over_the_epoch():
    """fit's training logs hold every metric, AUC included, over the whole epoch (reset at each epoch)."""
    rng, x, _ = _data()
    y = rng.integers(0, 2, (len(x), 1)).astype(np.float32)
    model = _model(1)
    model.compile(rnnrs.SGD(lambda step: 0.0), "binary_crossentropy", ["auc", "accuracy"])  # weights never change
    history = model.fit(x, y, epochs=2, batch_size=5, shuffle=False, verbose=0)
    whole = model.evaluate(x, y)
    for key in ("auc", "accuracy"):
        assert history.history[key] == pytest.approx([whole[key]] * 2, rel=1e-6), key
