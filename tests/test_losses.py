"""Losses: values and gradients against NumPy formulas and finite differences;
stability with huge logits; weights and masks; bad labels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnnrs
from helpers import assert_close, raises_naming, seeds


def ref_cross_entropy(labels, logits, weights=None):
    """Float64, the textbook way (fine for moderate logits)."""
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    ce = -np.log(np.take_along_axis(p, np.asarray(labels)[..., None], axis=-1)[..., 0])
    w = np.ones_like(ce) if weights is None else np.broadcast_to(np.asarray(weights, dtype=np.float64), ce.shape)
    return float((w * ce).sum() / w.sum())


def ref_mse(labels, predictions, weights=None):
    e2 = (np.asarray(predictions, np.float64) - np.asarray(labels, np.float64)) ** 2
    w = np.ones_like(e2) if weights is None else np.asarray(weights, np.float64)
    while w.ndim < e2.ndim:
        w = w[..., None]
    w = np.broadcast_to(w, e2.shape)
    return float((w * e2).sum() / w.sum())


def finite_difference(f, x, eps=1e-6):
    """Central differences of the scalar ``f`` at every entry of float64 ``x``."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f(x)
        flat[i] = old - eps
        down = f(x)
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return g


@st.composite
def classification_problems(draw):
    seed = draw(seeds)
    rng = np.random.default_rng(seed)
    shape = draw(st.sampled_from([(1,), (5,), (3, 4)]))
    classes = draw(st.integers(1, 6))
    scale = draw(st.sampled_from([0.1, 1.0, 5.0]))
    logits = rng.normal(scale=scale, size=shape + (classes,))
    labels = rng.integers(0, classes, size=shape)
    weights = draw(st.sampled_from([None, "mask", "positive"]))
    if weights == "mask":
        w = (rng.random(shape) < 0.7).astype(np.float64)
        w.reshape(-1)[0] = 1.0  # at least one counted entry
    elif weights == "positive":
        w = rng.uniform(0.1, 2.0, size=shape)
    else:
        w = None
    return labels, logits, w


@given(problem=classification_problems())
def test_sparse_softmax_cross_entropy_value_and_gradient(problem, dtype):
    labels, logits, w = problem
    value, grad = rnnrs.sparse_softmax_cross_entropy(labels, logits.astype(dtype), w)
    want = ref_cross_entropy(labels, logits.astype(dtype).astype(np.float64), w)
    assert isinstance(value, float)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert value == pytest.approx(want, rel=tol, abs=tol)
    # Analytic gradient: w * (softmax - onehot) / sum(w).
    z = logits.astype(dtype).astype(np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    onehot = np.eye(z.shape[-1])[labels]
    ww = np.ones(labels.shape) if w is None else w
    assert_close(grad, (p - onehot) * ww[..., None] / ww.sum(), dtype, "d_logits")


@given(classification_problems())
def test_sparse_softmax_cross_entropy_finite_differences(problem):
    labels, logits, w = problem
    _, grad = rnnrs.sparse_softmax_cross_entropy(labels, logits, w)
    fd = finite_difference(lambda z: rnnrs.sparse_softmax_cross_entropy(labels, z, w)[0], logits.copy())
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("big", [1e4, 1e30, 3e38])
def test_cross_entropy_is_stable_for_huge_logits(dtype, big):
    logits = np.array([[big, 0.0, -big], [0.0, big, big], [-big, -big, -big]], dtype=dtype)
    labels = np.array([0, 2, 1])
    value, grad = rnnrs.sparse_softmax_cross_entropy(labels, logits)
    # Row 0: correct with a huge margin -> 0; row 1: two tied maxima -> log 2;
    # row 2: all equal -> log 3.
    assert value == pytest.approx((0.0 + np.log(2) + np.log(3)) / 3, rel=1e-6)
    assert np.all(np.isfinite(grad))
    want = np.array([[0, 0, 0], [0, 0.5, -0.5], [1 / 3, -2 / 3, 1 / 3]]) / 3
    np.testing.assert_allclose(grad, want, atol=1e-7)
    # A wrong answer by a huge margin: the loss is the margin, not inf/nan.
    value, grad = rnnrs.sparse_softmax_cross_entropy([1], np.array([[big, 0.0]], dtype=dtype))
    assert value == pytest.approx(float(np.asarray(big, dtype)), rel=1e-6)
    np.testing.assert_allclose(grad, [[1.0, -1.0]])


def test_cross_entropy_gradient_keeps_dtype_and_shape(dtype):
    logits = np.zeros((2, 3, 4), dtype=dtype)
    value, grad = rnnrs.sparse_softmax_cross_entropy(np.zeros((2, 3), dtype=np.int32), logits)
    assert grad.dtype == dtype and grad.shape == (2, 3, 4)
    assert value == pytest.approx(np.log(4))


def test_zero_weights_give_zero_loss_and_gradient():
    value, grad = rnnrs.sparse_softmax_cross_entropy([0, 1], np.ones((2, 3)), weights=[0, 0])
    assert value == 0.0 and not grad.any()
    value, grad = rnnrs.mean_squared_error(np.zeros((2, 3)), np.ones((2, 3)), weights=[0, 0])
    assert value == 0.0 and not grad.any()


def test_sequence_loss_is_masked_mean():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(3, 5, 4))
    targets = rng.integers(0, 4, size=(3, 5))
    lengths = np.array([5, 2, 0])
    mask = rnnrs.sequence_mask(lengths, 5, dtype=np.float64)
    assert mask.tolist() == [[1] * 5, [1, 1, 0, 0, 0], [0] * 5]
    value, grad = rnnrs.sequence_loss(logits, targets, mask)
    kept = [(b, t) for b in range(3) for t in range(lengths[b])]
    want = np.mean([ref_cross_entropy(targets[b, t], logits[b, t]) for b, t in kept])
    assert value == pytest.approx(want, rel=1e-12)
    assert not grad[1, 2:].any() and not grad[2].any()
    fd = finite_difference(lambda z: rnnrs.sequence_loss(z, targets, mask)[0], logits.copy())
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
    # Padded targets may hold anything in range: they do not count.
    targets2 = targets.copy()
    targets2[1, 2:] = 0
    assert rnnrs.sequence_loss(logits, targets2, mask)[0] == pytest.approx(value, rel=1e-12)


@given(seeds, st.sampled_from([(4,), (3, 2), (2, 5, 3)]), st.sampled_from([None, "rows", "steps"]))
def test_mean_squared_error_value_and_gradient(seed, shape, weights):
    rng = np.random.default_rng(seed)
    pred, labels = rng.normal(size=shape), rng.normal(size=shape)
    w = None
    if weights == "rows":
        w = rng.uniform(0.1, 2.0, size=shape[:1])
    elif weights == "steps" and len(shape) >= 2:
        w = (rng.random(shape[:2]) < 0.6).astype(np.float64)
        w.reshape(-1)[0] = 1
    value, grad = rnnrs.mean_squared_error(labels, pred, w)
    assert value == pytest.approx(ref_mse(labels, pred, w), rel=1e-12)
    fd = finite_difference(lambda p: rnnrs.mean_squared_error(labels, p, w)[0], pred.copy())
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_mean_squared_error_float32():
    pred = np.array([[1.0, 2.0], [3.0, 5.0]], dtype=np.float32)
    labels = np.array([[1.0, 1.0], [1.0, 1.0]])
    value, grad = rnnrs.mean_squared_error(labels, pred)
    assert value == pytest.approx((0 + 1 + 4 + 16) / 4)
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, 2 * (pred - labels) / 4)


def test_labels_out_of_range():
    with raises_naming(ValueError, "labels") as info:
        rnnrs.sparse_softmax_cross_entropy([0, 3], np.zeros((2, 3)))
    assert "[0, 3)" in str(info.value) and "3" in str(info.value)
    with raises_naming(ValueError, "labels"):
        rnnrs.sparse_softmax_cross_entropy([-1, 0], np.zeros((2, 3)))
    with raises_naming(ValueError, "labels"):
        rnnrs.sparse_softmax_cross_entropy([0.5, 1], np.zeros((2, 3)))
    with raises_naming(TypeError, "labels"):
        rnnrs.sparse_softmax_cross_entropy(["a", "b"], np.zeros((2, 3)))


def test_shape_mismatches():
    with raises_naming(ValueError, "labels"):
        rnnrs.sparse_softmax_cross_entropy([0, 1, 2], np.zeros((2, 3)))
    with raises_naming(ValueError, "labels"):
        rnnrs.mean_squared_error(np.zeros((2, 3)), np.zeros((3, 2)))
    with raises_naming(ValueError, "weights"):
        rnnrs.mean_squared_error(np.zeros((2, 3)), np.zeros((2, 3)), weights=np.ones(3 * 2 + 1))
    with raises_naming(ValueError, "weights"):
        rnnrs.sequence_loss(np.zeros((2, 3, 4)), np.zeros((2, 3), int), np.ones((3, 2)))
    with raises_naming(ValueError, "logits"):
        rnnrs.sequence_loss(np.zeros((2, 4)), np.zeros(2, int))


def test_nan_propagates():
    value, grad = rnnrs.sparse_softmax_cross_entropy([0], np.array([[np.nan, 1.0]]))
    assert np.isnan(value) and np.isnan(grad).all()
    value, _ = rnnrs.mean_squared_error([1.0], np.array([np.nan]))
    assert np.isnan(value)
