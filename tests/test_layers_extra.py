"""Dropout, Embedding(mask_zero=True), TimeDistributed and the merge layers
(Concatenate, Add): forward against plain NumPy, float64 finite-difference
gradients, lengths carried through ``_apply``, the symbolic (spec) path and
bad arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
import rnnrs
from helpers import raises_naming, seeds
from rnnrs.layers import (
    RNN,
    Add,
    Bidirectional,
    Concatenate,
    Dense,
    Dropout,
    Embedding,
    Input,
    TimeDistributed,
)


def finite_difference(f, x):
    """Central differences (reference.numerical_gradient: x perturbed in place, restored)."""
    return ref.numerical_gradient(f, x)


# -- Dropout -----------------------------------------------------------------------


@given(seed=seeds, rate=st.sampled_from([0.0, 0.1, 0.5, 0.9]), shape=st.sampled_from([(3, 4), (2, 3, 5)]))
def test_dropout_scaling_identity_and_gradient(dtype, seed, rate, shape):
    """Not training: the identity. Training: each entry is 0 or x / (1 - rate);
    the gradient is the same mask times d_outputs; lengths pass through."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) + 3.0).astype(dtype)  # no zeros in x
    layer = Dropout(rate, seed=seed)
    np.testing.assert_array_equal(layer(x), x)
    y, bp = layer(x, training=True, return_backprop=True)
    assert y.dtype == np.dtype(dtype)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / dtype(1 - rate), rtol=1e-6)
    if rate == 0:
        assert kept.all()
    d = rng.normal(size=shape).astype(dtype)
    np.testing.assert_allclose(bp(d).inputs, np.where(kept, d / dtype(1 - rate), 0), rtol=1e-6)
    if len(shape) == 3:
        lengths = np.array([shape[1], 0])
        applied = layer._apply([x], [lengths], True)
        assert applied.lengths[0] is lengths


def test_dropout_rate_statistics_and_reproducibility():
    """About rate of the entries drop and the mean is kept (inverted
    scaling); two layers with one seed draw the same masks call after call;
    successive calls draw new masks."""
    x = np.ones((200, 500))
    a, b = Dropout(0.3, seed=11), Dropout(0.3, seed=11)
    y1, y2 = a(x, training=True), a(x, training=True)
    assert abs((y1 == 0).mean() - 0.3) < 0.01
    assert abs(y1.mean() - 1.0) < 0.02
    assert not np.array_equal(y1, y2)
    np.testing.assert_array_equal(b(x, training=True), y1)
    np.testing.assert_array_equal(b(x, training=True), y2)


def test_dropout_noise_shape_broadcasts():
    """noise_shape (None, 1, None) drops the same features at every step;
    None entries take the inputs' sizes; the spec path checks it."""
    x = np.ones((4, 6, 5), np.float32)
    y = Dropout(0.5, noise_shape=(None, 1, None), seed=0)(x, training=True)
    assert np.all(y == y[:, :1, :])
    assert 0 < (y == 0).mean() < 1
    z = Dropout(0.5, noise_shape=[1, 6, 5], seed=0)(x, training=True)
    assert np.all(z == z[:1])
    with raises_naming(ValueError, "noise_shape"):
        Dropout(0.5, noise_shape=(None, 1))(x, training=True)
    with raises_naming(ValueError, "noise_shape"):
        Dropout(0.5, noise_shape=(None, 3, None))(x, training=True)
    with raises_naming(ValueError, "noise_shape"):
        Dropout(0.5, noise_shape=(None, 1))(Input((None, 5)))
    assert Dropout(0.5, noise_shape=(None, 1, None))(Input((None, 5), dtype="float64")).shape == (None, None, 5)


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        ({"rate": 1.0}, ValueError, "rate"),
        ({"rate": -0.1}, ValueError, "rate"),
        ({"rate": float("nan")}, ValueError, "rate"),
        ({"rate": "0.5"}, TypeError, "rate"),
        ({"rate": True}, TypeError, "rate"),
        ({"rate": 0.5, "noise_shape": 3}, TypeError, "noise_shape"),
        ({"rate": 0.5, "noise_shape": (None, 0)}, ValueError, "noise_shape"),
        ({"rate": 0.5, "noise_shape": (None, 1.5)}, TypeError, "noise_shape"),
        ({"rate": 0.5, "seed": -1}, ValueError, "seed"),
    ],
)
def test_dropout_bad_arguments(kwargs, exc, name):
    with raises_naming(exc, name):
        Dropout(**kwargs)


def test_dropout_config_weights_and_ids():
    layer = Dropout(0.25, noise_shape=(None, 1, None), seed=3, name="drop")
    assert json.loads(json.dumps(layer.get_config())) == {
        "rate": 0.25,
        "noise_shape": [None, 1, None],
        "seed": 3,
        "name": "drop",
    }
    assert layer.get_weights() == {} and layer.weight_shapes([Input((None, 2)).spec]) == {}
    with raises_naming(ValueError, "mapping"):
        layer.set_weights({"kernel": np.zeros(2)})
    with pytest.raises(TypeError, match="inputs: expected float inputs"):
        layer(Input((None,), dtype="int64"))


# -- Embedding(mask_zero=True) ------------------------------------------------------------


@given(
    seed=seeds,
    B=st.integers(1, 4),
    T=st.integers(1, 6),
    given_lengths=st.booleans(),
)
def test_mask_zero_lengths_from_ids(seed, B, T, given_lengths):
    """Each row's length is its last non-zero id's position + 1 (0 for an
    all-zero row), the element-wise minimum with lengths that arrive with
    the ids; the output carries those lengths and an RNN reading them
    matches one given the lengths explicitly."""
    rng = np.random.default_rng(seed)
    true_lengths = rng.integers(0, T + 1, size=B)
    ids = np.zeros((B, T), np.int64)
    for b, n in enumerate(true_lengths):
        ids[b, :n] = rng.integers(1, 9, size=n)
    emb = Embedding(9, 3, mask_zero=True, dtype=np.float64, seed=0)
    emb.build()
    given = rng.integers(0, T + 1, size=B) if given_lengths else None
    applied = emb._apply([ids], [given], False)
    want = true_lengths if given is None else np.minimum(true_lengths, given)
    np.testing.assert_array_equal(applied.lengths[0], want)
    assert applied.lengths[0].dtype == np.int64
    rnn = RNN(rnnrs.BasicRNNCell(2, dtype=np.float64, seed=1))
    via_mask = rnn._apply(applied.outputs, applied.lengths, False).outputs[0]
    np.testing.assert_array_equal(via_mask, rnn(emb(ids), sequence_length=want))


def test_mask_zero_refuses_a_zero_before_later_ids():
    """A 0 before a later non-zero id names its position and the fix; one
    past a shorter given length is fine (never read)."""
    emb = Embedding(5, 2, mask_zero=True)
    emb.build()
    with pytest.raises(
        ValueError, match=r"inputs: expected padding .* got id 0 at \(row 1, step 1\).*padding=\"post\""
    ):
        emb(np.array([[1, 2, 3], [4, 0, 3]]))
    assert emb._apply([np.array([[4, 0, 3]])], [np.array([1])], False).lengths[0].tolist() == [1]
    with raises_naming(ValueError, "inputs"):
        emb._apply([np.array([[4, 0, 3]])], [np.array([2])], False)
    with raises_naming(ValueError, "inputs"):
        emb(np.array([[[1, 2]]]))  # needs [batch, time]
    with raises_naming(ValueError, "inputs"):
        emb(Input((None, 2), dtype="int64"))
    with raises_naming(TypeError, "mask_zero"):
        Embedding(5, 2, mask_zero=1)


def test_mask_zero_config_and_gradient_unchanged():
    """get_config gains mask_zero (JSON); lengths do not change the lookup
    or its gradient (padding rows still get d_outputs at their ids: a later
    layer gives zeros there)."""
    emb = Embedding(6, 2, mask_zero=True, seed=1)
    assert json.loads(json.dumps(emb.get_config()))["mask_zero"] is True
    plain = Embedding(6, 2, seed=1)
    ids = np.array([[1, 2, 0], [3, 0, 0]])
    np.testing.assert_array_equal(emb(ids), plain(ids))
    assert plain.get_config()["mask_zero"] is False
    assert Embedding(6, 2, mask_zero=True)(Input((None,), dtype="int64")).shape == (None, None, 2)


# -- TimeDistributed ---------------------------------------------------------------------


@given(seed=seeds, B=st.integers(1, 3), T=st.integers(1, 4), activation=st.sampled_from([None, "tanh"]))
def test_time_distributed_dense_forward_and_gradients(seed, B, T, activation):
    """Equal to the Dense on each step; float64 gradients (inputs and
    weights) equal finite differences; weights unprefixed; lengths pass."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, 3))
    inner = Dense(2, activation=activation, dtype=np.float64, seed=0)
    layer = TimeDistributed(inner)
    y, bp = layer(x, return_backprop=True)
    assert y.shape == (B, T, 2)
    for t in range(T):
        np.testing.assert_allclose(y[:, t], inner(x[:, t]), rtol=1e-12)
    r = rng.normal(size=y.shape)
    g = bp(r)

    def f():
        return float(np.sum(layer(x) * r))

    np.testing.assert_allclose(g.inputs, finite_difference(f, x), rtol=1e-6, atol=1e-8)
    assert sorted(g.weights) == sorted(layer.get_weights()) == ["bias", "kernel"]
    for k, w in layer.get_weights().items():

        def fw(k=k, w=w):
            layer.set_weights({k: w})
            return f()

        np.testing.assert_allclose(g.weights[k], finite_difference(fw, w), rtol=1e-6, atol=1e-8, err_msg=k)
        layer.set_weights({k: w})  # restored (the last difference left it at w - eps)
    lengths = np.array([T] * B)
    assert layer._apply([x], [lengths], False).lengths[0] is lengths


def test_time_distributed_embedding_dropout_nested_and_specs():
    emb = Embedding(7, 2, seed=0)
    ids = np.array([[[1, 2], [3, 0]], [[4, 5], [6, 6]]])  # [B, T, K]
    out = TimeDistributed(emb)(ids)
    np.testing.assert_array_equal(out, emb(ids))
    assert out.shape == (2, 2, 2, 2)
    x = np.ones((2, 3, 4, 5))
    nested = TimeDistributed(TimeDistributed(Dense(2, seed=0)))
    assert nested(x).shape == (2, 3, 4, 2)
    drop = TimeDistributed(Dropout(0.5, seed=0))
    assert drop(x).shape == x.shape
    sym = TimeDistributed(Dense(4))(Input((None, 3)))
    assert sym.shape == (None, None, 4)
    assert TimeDistributed(Embedding(7, 2))(Input((5, 3), dtype="int64")).shape == (None, 5, 3, 2)
    td = TimeDistributed(Dense(4))
    assert td.weight_shapes([Input((None, 3)).spec]) == {"kernel": (3, 4), "bias": (4,)}
    config = json.loads(json.dumps(td.get_config()))
    assert config["layer"]["class_name"] == "Dense"
    with raises_naming(ValueError, "inputs"):
        TimeDistributed(Dense(4))(Input((3,)))


@pytest.mark.parametrize(
    "inner",
    [
        lambda: RNN(rnnrs.BasicRNNCell(2)),
        lambda: Bidirectional(RNN(rnnrs.BasicRNNCell(2))),
        lambda: Concatenate(),
        lambda: Add(),
        lambda: rnnrs.BasicRNNCell(2),
    ],
)
def test_time_distributed_refuses_other_layers(inner):
    with raises_naming(TypeError, "layer"):
        TimeDistributed(inner())


# -- Concatenate / Add --------------------------------------------------------------------


@given(seed=seeds, axis=st.sampled_from([-1, 2, 1]), n=st.integers(2, 3))
def test_concatenate_forward_and_gradients(seed, axis, n):
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=(2, 3, 4)) if axis != 1 else rng.normal(size=(2, k + 1, 4)) for k in range(n)]
    if axis in (-1, 2):
        xs = [rng.normal(size=(2, 3, k + 1)) for k in range(n)]
    layer = Concatenate(axis=axis)
    y, bp = layer(xs, return_backprop=True)
    np.testing.assert_array_equal(y, np.concatenate(xs, axis=axis))
    r = rng.normal(size=y.shape)
    g = bp(r)
    for i, x in enumerate(xs):
        np.testing.assert_allclose(g.inputs[i], finite_difference(lambda: float(np.sum(layer(xs) * r)), x), atol=1e-8)
    assert g.weights == {}


@given(seed=seeds, n=st.integers(2, 3))
def test_add_forward_and_gradients(seed, n):
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=(2, 3)) for _ in range(n)]
    layer = Add()
    y, bp = layer(xs, return_backprop=True)
    np.testing.assert_allclose(y, sum(xs))
    r = rng.normal(size=y.shape)
    g = bp(r)
    for i, x in enumerate(xs):
        np.testing.assert_allclose(g.inputs[i], finite_difference(lambda: float(np.sum(layer(xs) * r)), x), atol=1e-8)
    # inputs are not modified and outputs are fresh arrays
    before = [x.copy() for x in xs]
    layer(xs)
    for a, b in zip(xs, before):
        np.testing.assert_array_equal(a, b)


def test_merge_specs_and_shape_mismatches():
    a, b = Input((None, 2)), Input((None, 3))
    assert Concatenate()([a, b]).shape == (None, None, 5)
    assert Concatenate(axis=1)([Input((4, 2)), Input((3, 2))]).shape == (None, 7, 2)
    assert Add()([a, Input((None, 2))]).shape == (None, None, 2)
    with pytest.raises(ValueError, match=r"inputs\[1\]: expected shape \(None, None, 2\) .* got \(None, None, 3\)"):
        Add()([a, b])
    with pytest.raises(
        ValueError, match=r"inputs\[1\]: expected shape \(None, 4, 2\) but for axis -1 .*got \(None, 3, 2\)"
    ):
        Concatenate()([Input((4, 2)), Input((3, 2))])
    with raises_naming(ValueError, r"inputs\[1\]"):
        Concatenate()([a, Input((2,))])
    with raises_naming(ValueError, r"inputs\[1\]"):
        Add()([a, Input((None, 2), dtype="float64")])
    with raises_naming(ValueError, "inputs"):
        Add()([a])
    with raises_naming(ValueError, r"inputs\[1\]"):
        Add()([np.zeros((2, 3)), np.zeros((2, 4))])
    with raises_naming(TypeError, "inputs"):
        Add()(np.zeros((2, 3)))
    with raises_naming(ValueError, "axis"):
        Concatenate(axis=0)
    with raises_naming(TypeError, "axis"):
        Concatenate(axis=1.0)
    with raises_naming(ValueError, "axis"):
        Concatenate(axis=3)([Input((2,)), Input((2,))])
    assert json.loads(json.dumps(Concatenate(axis=1).get_config())) == {"axis": 1, "name": "concatenate"}
    assert Add().get_weights() == {} and Add().weight_shapes([a.spec, a.spec]) == {}


def test_merge_lengths_agree_pass_on_or_are_refused():
    """Lengths present on several inputs must agree (ValueError naming both)
    and pass on for sequence outputs; joining along time with lengths is
    refused; 2-d outputs carry none."""
    x = np.ones((2, 3, 2))
    la, lb = np.array([3, 1]), np.array([2, 1])
    out = Add()._apply([x, x], [la, None], False)
    assert out.lengths[0] is la
    assert Concatenate()._apply([x, x], [la, la.copy()], False).lengths[0].tolist() == [3, 1]
    with pytest.raises(ValueError, match=r"sequence_length: expected equal lengths .* got \[3, 1\] .* \[2, 1\]"):
        Add()._apply([x, x], [la, lb], False)
    with raises_naming(ValueError, "axis"):
        Concatenate(axis=1)._apply([x, x], [la, None], False)
    assert Add()._apply([x[:, 0], x[:, 0]], [la, la], False).lengths[0] is None
