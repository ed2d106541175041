"""Layers: Dense, Embedding and RNN forward/backward against NumPy formulas and
finite differences (float64), dtypes, weights and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
import rnnrs
from helpers import assert_close, ragged_lengths, raises_naming, seeds

DENSE_ACTIVATIONS = [None, "tanh", "relu", "sigmoid"]


def np_activation(name, z):
    return {
        None: lambda a: a,
        "tanh": np.tanh,
        "relu": lambda a: np.maximum(a, 0),
        "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
    }[name](z)


def finite_difference(f, x, eps=1e-6):
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return g


# -- Dense -------------------------------------------------------------------


@given(
    seed=seeds,
    lead=st.sampled_from([(4,), (3, 5), (2, 1, 3)]),
    units=st.integers(1, 4),
    activation=st.sampled_from(DENSE_ACTIVATIONS),
    use_bias=st.booleans(),
)
def test_dense_forward_backward_vs_numpy(dtype, seed, lead, units, activation, use_bias):
    rng = np.random.default_rng(seed)
    I = 3
    x = rng.normal(size=lead + (I,))
    kernel, bias = rng.normal(size=(I, units)), rng.normal(size=units)
    layer = rnnrs.Dense(units, activation=activation, use_bias=use_bias, dtype=dtype)
    layer.set_weights({"kernel": kernel, "bias": bias} if use_bias else {"kernel": kernel})
    xc = x.astype(dtype).astype(np.float64)
    kc = kernel.astype(dtype).astype(np.float64)
    bc = bias.astype(dtype).astype(np.float64) if use_bias else 0.0
    z = xc @ kc + bc
    want = np_activation(activation, z)
    y, backprop = layer(x.astype(dtype), return_backprop=True)
    assert_close(y, want, dtype, "outputs")
    dy = rng.normal(size=want.shape)
    g = backprop(dy.astype(dtype))
    # The textbook backward.
    d_act = {
        None: np.ones_like(z),
        "tanh": 1 - np.tanh(z) ** 2,
        "relu": (z > 0).astype(np.float64),
        "sigmoid": want * (1 - want),
    }[activation]
    dz = (dy.astype(dtype).astype(np.float64) * d_act).reshape(-1, units)
    assert_close(g.inputs, (dz @ kc.T).reshape(x.shape), dtype, "d_inputs")
    assert_close(g.weights["kernel"], xc.reshape(-1, I).T @ dz, dtype, "d_kernel")
    if use_bias:
        assert_close(g.weights["bias"], dz.sum(0), dtype, "d_bias")
    assert sorted(g.weights) == sorted(layer.get_weights())


@pytest.mark.parametrize("activation", DENSE_ACTIVATIONS)
def test_dense_finite_differences(activation):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 3, 4))
    layer = rnnrs.Dense(3, activation=activation, dtype=np.float64, seed=1)
    layer.set_weights({"kernel": rng.normal(size=(4, 3)), "bias": rng.normal(size=3) + 0.3})
    r = rng.normal(size=(2, 3, 3))

    def loss():
        return float((layer(x) * r).sum())

    _, backprop = layer(x, return_backprop=True)
    g = backprop(r)
    np.testing.assert_allclose(g.inputs, finite_difference(loss, x), rtol=1e-6, atol=1e-7)
    weights = layer.get_weights()
    for name in ("kernel", "bias"):
        w = weights[name]

        def loss_w(name=name, w=w):
            layer.set_weights({name: w})
            return loss()

        fd = finite_difference(loss_w, w)
        layer.set_weights({name: w})  # the last evaluation left w[-1] perturbed in the layer
        np.testing.assert_allclose(g.weights[name], fd, rtol=1e-6, atol=1e-7, err_msg=name)


def test_dense_on_sequences_is_the_reshape_trick():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 4)).astype(np.float32)
    layer = rnnrs.Dense(2, seed=3)
    y = layer(x)
    assert y.shape == (3, 5, 2) and y.dtype == np.float32
    for t in range(5):
        np.testing.assert_allclose(y[:, t], layer(x[:, t]), rtol=1e-6, atol=1e-6)


def test_dense_build_seed_weights_and_dtype():
    a, b = rnnrs.Dense(3, seed=5), rnnrs.Dense(3, seed=5)
    a.build(4)
    b.build(4)
    wa = a.get_weights()
    assert wa["kernel"].shape == (4, 3) and wa["bias"].shape == (3,) and not wa["bias"].any()
    np.testing.assert_array_equal(wa["kernel"], b.get_weights()["kernel"])
    limit = np.sqrt(6 / 7)
    assert np.abs(wa["kernel"]).max() <= limit
    wa["kernel"][:] = 0  # get_weights copies
    assert a.get_weights()["kernel"].any()
    # Without a dtype the layer adopts its first float inputs' (float32 for integers).
    assert rnnrs.Dense(2)(np.ones((1, 3), np.float64)).dtype == np.float64
    assert rnnrs.Dense(2)(np.ones((1, 3), np.int64)).dtype == np.float32
    assert rnnrs.Dense(2, dtype=np.float32)(np.ones((1, 3), np.float64)).dtype == np.float32


def test_dense_bad_input():
    layer = rnnrs.Dense(2)
    layer.build(3)
    with raises_naming(ValueError, "inputs"):
        layer(np.ones((2, 4)))
    with raises_naming(ValueError, "mapping"):
        layer.set_weights({"kernal": np.ones((3, 2))})
    with raises_naming(ValueError, r"weights\['kernel'\]"):
        layer.set_weights({"kernel": np.ones((2, 3))})
    with raises_naming(ValueError, "activation"):
        rnnrs.Dense(2, activation="softmax")
    with raises_naming(ValueError, "units"):
        rnnrs.Dense(0)
    _, backprop = layer(np.ones((2, 3)), return_backprop=True)
    with raises_naming(ValueError, "d_outputs"):
        backprop(np.ones((2, 3)))


# -- Embedding ---------------------------------------------------------------


def test_embedding_forward_backward(dtype):
    rng = np.random.default_rng(1)
    layer = rnnrs.Embedding(6, 3, dtype=dtype, seed=0)
    ids = np.array([[0, 5, 5], [2, 0, 5]])
    y, backprop = layer(ids, return_backprop=True)
    table = layer.get_weights()["embeddings"]
    assert table.shape == (6, 3) and table.dtype == dtype and np.abs(table).max() <= 0.05
    np.testing.assert_array_equal(y, table[ids])
    dy = rng.normal(size=(2, 3, 3)).astype(dtype)
    g = backprop(dy)
    assert g.inputs is None
    want = np.zeros((6, 3))
    for b in range(2):
        for t in range(3):
            want[ids[b, t]] += dy[b, t]  # repeated ids accumulate
    assert_close(g.weights["embeddings"], want, dtype, "d_embeddings")
    assert not g.weights["embeddings"][[1, 3, 4]].any()


def test_embedding_bad_ids():
    layer = rnnrs.Embedding(4, 2)
    with raises_naming(ValueError, "inputs") as info:
        layer(np.array([[0, 4]]))
    assert "[0, 4)" in str(info.value)
    with raises_naming(ValueError, "inputs"):
        layer(np.array([-1]))
    # a float dtype is accepted (whole floats are ids), so a fractional id is a
    # bad value, not a bad type: ValueError naming the id and its position
    with raises_naming(ValueError, "inputs") as info:
        layer(np.array([0.5]))
    assert "non-integer id 0.5 at 0" in str(info.value)
    with raises_naming(TypeError, "inputs"):
        layer(np.array(["1"]))
    assert layer(np.array([1.0, 2.0])).shape == (2, 2)  # whole floats are ids


# -- RNN layer ---------------------------------------------------------------


@given(seed=seeds, B=st.integers(1, 4), T=st.integers(1, 5), data=st.data())
def test_rnn_layer_reads_the_last_valid_output(dtype, seed, B, T, data):
    lengths = data.draw(st.none() | ragged_lengths(B, T), label="lengths")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, 3)).astype(dtype)
    cell = rnnrs.BasicRNNCell(4, dtype=dtype, seed=seed % 1000)
    layer = rnnrs.RNN(cell)
    y = layer(x, sequence_length=lengths)
    outputs, state = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths)
    assert y.shape == (B, 4)
    L = np.full(B, T) if lengths is None else np.asarray(lengths)
    for b in range(B):
        want = outputs[b, L[b] - 1] if L[b] > 0 else np.zeros(4)
        np.testing.assert_array_equal(y[b], want)
    # For a BasicRNNCell the last valid output is the final state (zero state at length 0).
    np.testing.assert_array_equal(y, state)
    seq = rnnrs.RNN(cell, return_sequences=True)(x, sequence_length=lengths)
    np.testing.assert_array_equal(seq, outputs)


@given(seed=seeds, B=st.integers(1, 4), T=st.integers(1, 5), data=st.data())
def test_rnn_layer_backward_matches_d_state(seed, B, T, data):
    """Read-out gradient through d_outputs at the last valid step == the same
    gradient given as d_state (a BasicRNNCell's final state is that output)."""
    lengths = data.draw(st.none() | ragged_lengths(B, T), label="lengths")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, 2))
    cell = rnnrs.BasicRNNCell(3, dtype=np.float64, seed=1)
    _, backprop = rnnrs.RNN(cell)(x, sequence_length=lengths, return_backprop=True)
    dy = rng.normal(size=(B, 3))
    g = backprop(dy)
    _, _, bp = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths, return_backprop=True)
    L = np.full(B, T) if lengths is None else np.asarray(lengths)
    d_state = np.where((L > 0)[:, None], dy, 0.0)  # a length-0 row's read-out is a constant zero
    want = bp(d_state=d_state)
    np.testing.assert_allclose(g.inputs, want.inputs, rtol=1e-12, atol=1e-14)
    for k in want.weights:
        np.testing.assert_allclose(g.weights[k], want.weights[k], rtol=1e-12, atol=1e-14)


def test_rnn_layer_finite_differences_with_wrappers():
    """A cell-agnostic read-out through MultiRNNCell + OutputProjectionWrapper."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 4, 2))
    lengths = np.array([4, 2, 1])
    cell = rnnrs.MultiRNNCell(
        [
            rnnrs.BasicRNNCell(3, dtype=np.float64, seed=1),
            rnnrs.OutputProjectionWrapper(rnnrs.BasicRNNCell(3, dtype=np.float64, seed=2), 2, seed=3),
        ]
    )
    layer = rnnrs.RNN(cell)
    r = rng.normal(size=(3, 2))

    def loss():
        return float((layer(x, sequence_length=lengths) * r).sum())

    _, backprop = layer(x, sequence_length=lengths, return_backprop=True)
    g = backprop(r)
    np.testing.assert_allclose(g.inputs, finite_difference(loss, x), rtol=1e-6, atol=1e-8)
    weights = layer.get_weights()
    for name, w in weights.items():

        def loss_w(name=name, w=w):
            layer.set_weights({name: w})
            return loss()

        fd = finite_difference(loss_w, w)
        layer.set_weights({name: w})  # the last evaluation left w[-1] perturbed in the layer
        np.testing.assert_allclose(g.weights[name], fd, rtol=1e-6, atol=1e-8, err_msg=name)


def test_rnn_layer_against_reference_formula():
    """The read-out of the NumPy reference RNN, by hand."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 2))
    cell = rnnrs.BasicRNNCell(3, dtype=np.float64, seed=4)
    cell.build(2)
    w = cell.get_weights()
    outputs, state, _ = ref.rnn_forward(x, None, w["kernel"], w["bias"], "tanh", np.array([3, 1]))
    got = rnnrs.RNN(cell)(x, sequence_length=[3, 1])
    np.testing.assert_allclose(got, [outputs[0, 2], outputs[1, 0]], rtol=1e-12)


def test_rnn_layer_bad_input():
    layer = rnnrs.RNN(rnnrs.BasicRNNCell(2))
    with raises_naming(ValueError, "inputs"):
        layer(np.ones((2, 3)))
    with raises_naming(TypeError, "cell"):
        rnnrs.RNN("lstm")  # type: ignore[arg-type]
    with raises_naming(ValueError, "sequence_length"):
        layer(np.ones((2, 3, 1)), sequence_length=[1, 4])
