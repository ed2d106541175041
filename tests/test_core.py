"""The edge to the Rust core (private ``rnnrs._rnnrs``) and the Python cells'
use of it: one protocol for every cell (named options and weights in, named
gradients out), core cells built once per set of weights, and single steps."""

from __future__ import annotations

import copy
import pickle
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnnrs
from rnnrs import _rnnrs


def every_cell(dtype=np.float64, units=4, seed=0):
    """One cell of every kind the core has (and the LSTM with every option)."""
    return [
        rnnrs.BasicRNNCell(units, activation="relu", dtype=dtype, seed=seed),
        rnnrs.BasicLSTMCell(units, forget_bias=0.5, dtype=dtype, seed=seed),
        rnnrs.LSTMCell(units, use_peepholes=True, cell_clip=0.8, num_proj=3, proj_clip=0.5, dtype=dtype, seed=seed),
        rnnrs.GRUCell(units, dtype=dtype, seed=seed),
        rnnrs.GRUCell(units, reset_after=True, dtype=dtype, seed=seed),
    ]


CELL_IDS = ["basic_rnn", "basic_lstm", "lstm_all_options", "gru", "gru_reset_after"]


def test_the_registry_lists_every_kind():
    assert _rnnrs.cell_kinds() == ["basic_rnn", "lstm", "gru"]
    with pytest.raises(ValueError, match="kind: expected one of"):
        _rnnrs.Cell("minimal", "float64", {}, {})


@pytest.mark.parametrize("index", range(5), ids=CELL_IDS)
def test_gradients_come_back_under_the_weights_names(index):
    cell = every_cell()[index]
    x = np.random.default_rng(0).standard_normal((3, 4, 2))
    _, _, backprop = rnnrs.dynamic_rnn(cell, x, sequence_length=[4, 0, 2], return_backprop=True)
    grads = backprop(d_state=cell.zero_state(3))
    assert list(grads.weights) == list(cell.get_weights())
    for name, w in cell.get_weights().items():
        assert grads.weights[name].shape == w.shape, name


@pytest.mark.parametrize("index", range(5), ids=CELL_IDS)
def test_the_core_checks_options_and_weights_by_name(index):
    cell = every_cell()[index]
    cell.build(2)
    weights = cell.get_weights()
    options = cell._core_options()
    kind = cell._kind
    assert kind is not None
    core = _rnnrs.Cell(kind, "float64", options, weights)
    assert core.kind == kind and core.dtype == "float64" and core.input_size == 2
    assert [name for name, _ in core.state_parts] == (["c", "h"] if "lstm" in kind else [""])
    assert core.output_size == cell.output_size
    with pytest.raises(ValueError, match=r'options: expected only the options of this .*, got unknown \["units"\]'):
        _rnnrs.Cell(kind, "float64", {**options, "units": 3}, weights)
    with pytest.raises(ValueError, match=r'weights: expected only the weights of this .*, got unknown \["extra"\]'):
        _rnnrs.Cell(kind, "float64", options, {**weights, "extra": np.zeros(3)})
    first = next(iter(weights))
    with pytest.raises(ValueError, match="weights: expected an entry"):
        _rnnrs.Cell(kind, "float64", options, {k: v for k, v in weights.items() if k != first})
    with pytest.raises(TypeError, match=f"{first}: expected a numpy.float32 array, got a float64 array"):
        _rnnrs.Cell(kind, "float32", options, weights)
    with pytest.raises(TypeError, match="dtype: expected 'float32' or 'float64'"):
        _rnnrs.Cell(kind, "float16", options, weights)
    with pytest.raises(ValueError, match="activation: expected one of"):
        _rnnrs.Cell(kind, "float64", {**options, "activation": "gelu"}, weights)
    with pytest.raises(TypeError, match="activation: expected None, a bool, a number or a str"):
        _rnnrs.Cell(kind, "float64", {**options, "activation": [1]}, weights)


@pytest.mark.parametrize("index", range(5), ids=CELL_IDS)
def test_the_core_cell_is_built_once_per_set_of_weights(index):
    cell = every_cell()[index]
    x = np.ones((2, 3, 2))
    rnnrs.dynamic_rnn(cell, x)
    core = cell._core()
    rnnrs.dynamic_rnn(cell, x)
    cell(x[:, 0], cell.zero_state(2))
    assert cell._core() is core
    with pytest.raises(ValueError):
        cell.set_weights({"bias": np.zeros(1)})  # a failed set_weights changes nothing
    assert cell._core() is core
    cell.set_weights(cell.get_weights())
    assert cell._core() is not core


@pytest.mark.parametrize("index", range(5), ids=CELL_IDS)
def test_a_pending_backprop_keeps_the_weights_of_its_forward_pass(index):
    cell = every_cell()[index]
    x = np.random.default_rng(1).standard_normal((2, 3, 2))
    out, _, backprop = rnnrs.dynamic_rnn(cell, x, return_backprop=True)
    dy = np.ones_like(out)
    before = backprop(dy)
    cell.set_weights({k: 2 * v for k, v in cell.get_weights().items()})
    after = backprop(dy)
    np.testing.assert_array_equal(before.inputs, after.inputs)
    for name in before.weights:
        np.testing.assert_array_equal(before.weights[name], after.weights[name])


@given(
    index=st.integers(0, 4),
    batch=st.integers(0, 40),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_a_step_is_a_one_step_dynamic_rnn(index, batch, dtype, seed):
    """cell(x, state) runs the core's single step (its own input product):
    it agrees with dynamic_rnn over one step."""
    cell = every_cell(dtype, seed=seed)[index]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 2)).astype(dtype)
    cell.build(2)
    zero = cell.zero_state(batch)
    parts = [rng.standard_normal(p.shape).astype(dtype) for p in cell._state_parts(zero)]
    state = cell._state_from_parts(parts)
    out, new_state = cell(x, state)
    want_out, want_state = rnnrs.dynamic_rnn(cell, x[:, None, :], initial_state=state)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, want_out[:, 0], rtol=tol, atol=tol)
    for got, want in zip(cell._state_parts(new_state), cell._state_parts(want_state)):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_concurrent_calls_see_old_or_new_weights_never_a_mix():
    """Calls racing set_weights each run on one whole set of weights."""
    cell = rnnrs.GRUCell(8, seed=0)
    x = np.random.default_rng(2).standard_normal((4, 5, 3)).astype(np.float32)
    cell.build(3)
    old = cell.get_weights()
    new = {k: v * 0.5 for k, v in old.items()}
    want = []
    for w in (old, new):
        cell.set_weights(w)
        want.append(rnnrs.dynamic_rnn(cell, x)[0])
    seen: list[np.ndarray] = []
    stop = threading.Event()

    def run():
        while not stop.is_set():
            seen.append(rnnrs.dynamic_rnn(cell, x)[0])

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(200):
        cell.set_weights(old if i % 2 else new)
    stop.set()
    for t in threads:
        t.join()
    assert seen
    for out in seen:
        assert any(np.array_equal(out, w) for w in want)


@pytest.mark.parametrize("index", range(5), ids=CELL_IDS)
def test_cells_still_pickle_and_deepcopy_after_use(index):
    cell = every_cell()[index]
    x = np.random.default_rng(3).standard_normal((2, 3, 2))
    want = rnnrs.dynamic_rnn(cell, x)[0]
    for other in (pickle.loads(pickle.dumps(cell)), copy.deepcopy(cell)):
        np.testing.assert_array_equal(rnnrs.dynamic_rnn(other, x)[0], want)
        assert other._core() is not cell._core()
    wrapped = rnnrs.MultiRNNCell([cell, copy.deepcopy(cell)])
    assert pickle.loads(pickle.dumps(wrapped)).get_weights().keys() == wrapped.get_weights().keys()
