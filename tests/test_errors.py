"""Bad input raises ValueError / TypeError naming the argument; NaN/inf propagate; edge sizes.

Every error message must name the offending argument and say
"expected ..., got ..." (checked by ``helpers.raises_naming``).
"""

from __future__ import annotations

import numpy as np
import pytest

import reference as ref
import rnnrs
from helpers import make_problem, raises_naming

B, T, I, H = 3, 4, 2, 5


@pytest.fixture
def cell(dtype):
    """A BasicRNNCell built for input size I."""
    c = rnnrs.BasicRNNCell(H, dtype=dtype, seed=0)
    c.build(I)
    return c


@pytest.fixture
def x(dtype):
    return np.random.default_rng(0).normal(size=(B, T, I)).astype(dtype)


def run_with_backprop(cell, x, **kwargs):
    _, _, backprop = rnnrs.dynamic_rnn(cell, x, return_backprop=True, **kwargs)
    return backprop


# --------------------------------------------------------------------------
# Cell construction and weights
# --------------------------------------------------------------------------


def test_bad_activation():
    with raises_naming(ValueError, "activation"):
        rnnrs.BasicRNNCell(4, activation="softmax")


def test_bad_dtype():
    for bad in (np.float16, np.int32):
        with pytest.raises((ValueError, TypeError), match="dtype"):
            rnnrs.BasicRNNCell(4, dtype=bad)


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_num_units(bad):
    with raises_naming(ValueError, "num_units"):
        rnnrs.BasicRNNCell(bad)


def test_build_then_different_input_size_raises(dtype):
    c = rnnrs.BasicRNNCell(H, dtype=dtype, seed=1)
    rnnrs.dynamic_rnn(c, np.zeros((2, 3, 3), dtype))  # builds the cell for I = 3
    assert c.input_size == 3
    with raises_naming(ValueError, "inputs"):
        rnnrs.dynamic_rnn(c, np.zeros((2, 3, 4), dtype))
    with raises_naming(ValueError, "inputs"):
        rnnrs.static_rnn(c, [np.zeros((2, 4), dtype)] * 3)
    with raises_naming(ValueError, "inputs"):
        c(np.zeros((2, 4), dtype), c.zero_state(2))
    assert c.input_size == 3  # the failed calls left the cell alone


def test_set_weights_unknown_name(cell):
    w = cell.get_weights()
    w["bogus"] = np.zeros(3)
    with raises_naming(ValueError, "bogus"):
        cell.set_weights(w)
    with raises_naming(ValueError, "kernl"):
        cell.set_weights({"kernl": w["kernel"], "bias": w["bias"]})


@pytest.mark.parametrize(
    "name,shape",
    [("kernel", (I + H, H + 1)), ("kernel", (I + H,)), ("bias", (H + 1,)), ("bias", (1, H))],
)
def test_set_weights_wrong_shape(cell, name, shape):
    w = cell.get_weights()
    before = {k: v.copy() for k, v in w.items()}
    w[name] = np.zeros(shape)
    with raises_naming(ValueError, name):
        cell.set_weights(w)
    for k, v in cell.get_weights().items():  # unchanged after the failed call
        np.testing.assert_array_equal(v, before[k])


def test_set_weights_kernel_for_other_input_size(cell):
    """The cell is built for I = 2; a kernel for I = 3 is the wrong shape."""
    w = cell.get_weights()
    w["kernel"] = np.zeros((3 + H, H))
    with raises_naming(ValueError, "kernel"):
        cell.set_weights(w)


def test_set_weights_on_unbuilt_cell_validates(dtype):
    c = rnnrs.BasicRNNCell(H, dtype=dtype)
    with raises_naming(ValueError, "kernel"):
        c.set_weights({"kernel": np.zeros((H + 2, H + 1)), "bias": np.zeros(H)})
    with raises_naming(ValueError, "bias"):
        c.set_weights({"kernel": np.zeros((H + 2, H)), "bias": np.zeros(H + 1)})


def test_set_weights_non_numeric(cell):
    w = cell.get_weights()
    w["bias"] = np.array(["a"] * H)
    with raises_naming(TypeError, "bias"):
        cell.set_weights(w)


# --------------------------------------------------------------------------
# dynamic_rnn / static_rnn arguments
# --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(B, I), (B, T, I, 1), (I,)])
def test_inputs_wrong_rank(cell, dtype, shape):
    with raises_naming(ValueError, "inputs"):
        rnnrs.dynamic_rnn(cell, np.zeros(shape, dtype))


def test_inputs_wrong_trailing_size(cell, dtype):
    with raises_naming(ValueError, "inputs"):
        rnnrs.dynamic_rnn(cell, np.zeros((B, T, I + 1), dtype))
    with raises_naming(ValueError, "inputs"):
        rnnrs.dynamic_rnn(cell, np.zeros((T, B, I + 1), dtype), time_major=True)


@pytest.mark.parametrize(
    "bad",
    [
        np.full((B, T, I), "a"),
        np.array([[[object()] * I] * T] * B, dtype=object),
        None,
    ],
    ids=["strings", "objects", "None"],
)
def test_inputs_non_numeric(cell, bad):
    with raises_naming(TypeError, "inputs"):
        rnnrs.dynamic_rnn(cell, bad)


def test_ragged_nested_list_inputs(cell):
    with pytest.raises((ValueError, TypeError), match="inputs"):
        rnnrs.dynamic_rnn(cell, [[[1.0, 2.0]], [[1.0]]])


@pytest.mark.parametrize(
    "lengths",
    [[1, -1, 2], [1, T + 1, 2], [1, 2], [1, 2, 3, 4], [1.5, 2, 3], [[1, 2, 3]]],
    ids=["negative", "too-long", "too-few", "too-many", "fractional", "2-d"],
)
def test_sequence_length_bad_values(cell, x, lengths):
    with raises_naming(ValueError, "sequence_length"):
        rnnrs.dynamic_rnn(cell, x, sequence_length=lengths)
    with raises_naming(ValueError, "sequence_length"):
        rnnrs.static_rnn(cell, list(np.swapaxes(x, 0, 1)), sequence_length=lengths)


def test_sequence_length_counts_the_batch_in_time_major(cell, dtype):
    """Time-major [T=4, B=3, I]: lengths must have B = 3 entries, each <= T = 4."""
    x_tm = np.zeros((T, B, I), dtype)
    rnnrs.dynamic_rnn(cell, x_tm, sequence_length=[4, 0, 2], time_major=True)  # fine
    with raises_naming(ValueError, "sequence_length"):
        rnnrs.dynamic_rnn(cell, x_tm, sequence_length=[1, 1, 1, 1], time_major=True)
    with raises_naming(ValueError, "sequence_length"):
        rnnrs.dynamic_rnn(cell, x_tm, sequence_length=[5, 1, 1], time_major=True)


def test_sequence_length_non_numeric(cell, x):
    with raises_naming(TypeError, "sequence_length"):
        rnnrs.dynamic_rnn(cell, x, sequence_length=["a", "b", "c"])


@pytest.mark.parametrize("shape", [(B, H + 1), (B + 1, H), (H,), (B, H, 1)])
def test_initial_state_wrong_shape(cell, x, dtype, shape):
    with raises_naming(ValueError, "initial_state"):
        rnnrs.dynamic_rnn(cell, x, initial_state=np.zeros(shape, dtype))
    with raises_naming(ValueError, "initial_state"):
        rnnrs.static_rnn(cell, list(np.swapaxes(x, 0, 1)), initial_state=np.zeros(shape, dtype))


def test_initial_state_non_numeric(cell, x):
    with raises_naming(TypeError, "initial_state"):
        rnnrs.dynamic_rnn(cell, x, initial_state=np.full((B, H), "s"))


@pytest.mark.parametrize("not_a_cell", [None, 5, "BasicRNNCell", np.zeros((3, 3))])
def test_cell_argument_type(x, not_a_cell):
    with raises_naming(TypeError, "cell"):
        rnnrs.dynamic_rnn(not_a_cell, x)
    with raises_naming(TypeError, "cell"):
        rnnrs.static_rnn(not_a_cell, list(np.swapaxes(x, 0, 1)))


def test_static_rnn_inconsistent_steps(cell, dtype):
    steps = [np.zeros((B, I), dtype), np.zeros((B + 1, I), dtype)]
    with raises_naming(ValueError, "input_list|inputs"):
        rnnrs.static_rnn(cell, steps)
    with raises_naming(ValueError, "input_list|inputs"):
        rnnrs.static_rnn(cell, [np.zeros((B, I, 1), dtype)])


def test_cell_call_bad_state(cell, dtype):
    with raises_naming(ValueError, "state"):
        cell(np.zeros((B, I), dtype), np.zeros((B, H + 1), dtype))
    with raises_naming(ValueError, "state"):
        cell(np.zeros((B, I), dtype), np.zeros((B + 1, H), dtype))


# --------------------------------------------------------------------------
# backprop arguments
# --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(B, T, H + 1), (B, T - 1, H), (T, B, H), (B, T)])
def test_d_outputs_wrong_shape(cell, x, dtype, shape):
    backprop = run_with_backprop(cell, x)
    with raises_naming(ValueError, "d_outputs"):
        backprop(d_outputs=np.zeros(shape, dtype))
    backprop(d_outputs=np.zeros((B, T, H), dtype))  # still usable afterwards


def test_d_outputs_wrong_shape_static(cell, x, dtype):
    _, _, backprop = rnnrs.static_rnn(cell, list(np.swapaxes(x, 0, 1)), return_backprop=True)
    with raises_naming(ValueError, "d_outputs"):
        backprop(d_outputs=[np.zeros((B, H), dtype)] * (T - 1))  # one step short
    with raises_naming(ValueError, "d_outputs"):
        backprop(d_outputs=[np.zeros((B, H + 1), dtype)] * T)


@pytest.mark.parametrize("shape", [(B, H + 1), (B + 1, H), (H,)])
def test_d_state_wrong_shape(cell, x, dtype, shape):
    backprop = run_with_backprop(cell, x)
    with raises_naming(ValueError, "d_state"):
        backprop(d_state=np.zeros(shape, dtype))


def test_d_outputs_non_numeric(cell, x):
    backprop = run_with_backprop(cell, x)
    with raises_naming(TypeError, "d_outputs"):
        backprop(d_outputs=np.full((B, T, H), "z"))


# --------------------------------------------------------------------------
# NaN / inf propagate, never crash
# --------------------------------------------------------------------------


def test_nan_input_propagates_within_its_row(dtype):
    p = make_problem(3, B, T, I, H)
    c = rnnrs.BasicRNNCell(H, dtype=dtype)
    c.set_weights({"kernel": p.kernel, "bias": p.bias})
    xx = p.x.astype(dtype)
    xx[0, 1, 0] = np.nan
    outputs, state, backprop = rnnrs.dynamic_rnn(c, xx, return_backprop=True)
    assert np.all(np.isfinite(outputs[0, 0]))
    assert np.all(np.isnan(outputs[0, 1:]))
    assert np.all(np.isnan(state[0]))
    assert np.all(np.isfinite(outputs[1:])) and np.all(np.isfinite(state[1:]))
    grads = backprop(d_outputs=np.ones((B, T, H), dtype))
    assert np.any(np.isnan(grads.inputs[0])) and np.all(np.isnan(grads.weights["kernel"]))
    assert np.all(np.isfinite(grads.inputs[1:]))


def test_inf_input_propagates(dtype):
    p = make_problem(4, B, T, I, H)
    c = rnnrs.BasicRNNCell(H, activation="identity", dtype=dtype)
    c.set_weights({"kernel": p.kernel, "bias": p.bias})
    xx = p.x.astype(dtype)
    xx[2, 0, 1] = np.inf
    outputs, state, backprop = rnnrs.dynamic_rnn(c, xx, return_backprop=True)
    grads = backprop(d_state=np.ones((B, H), dtype))
    assert not np.any(np.isfinite(outputs[2, 0]))
    assert not np.all(np.isfinite(state[2]))
    assert np.all(np.isfinite(outputs[:2])) and np.all(np.isfinite(state[:2]))
    assert not np.all(np.isfinite(grads.weights["kernel"]))
    # tanh saturates at +-inf: no crash, and the other rows are untouched.
    c2 = rnnrs.BasicRNNCell(H, activation="tanh", dtype=dtype)
    c2.set_weights({"kernel": p.kernel, "bias": p.bias})
    outputs2, state2 = rnnrs.dynamic_rnn(c2, xx)
    want, _, _ = ref.rnn_forward(
        np.delete(xx, 2, axis=0).astype(np.float64), None, p.kernel.astype(dtype), p.bias.astype(dtype), "tanh"
    )
    np.testing.assert_allclose(np.delete(outputs2, 2, axis=0), want, rtol=1e-4, atol=1e-4)


def test_nan_initial_state_and_weights(dtype):
    p = make_problem(5, B, T, I, H)
    c = rnnrs.BasicRNNCell(H, dtype=dtype)
    c.set_weights({"kernel": p.kernel, "bias": p.bias})
    h0 = p.h0.astype(dtype)
    h0[1, 2] = np.nan
    outputs, state = rnnrs.dynamic_rnn(c, p.x.astype(dtype), initial_state=h0)
    assert np.all(np.isnan(outputs[1])) and np.all(np.isfinite(outputs[[0, 2]]))
    kernel = p.kernel.copy()
    kernel[0, 0] = np.nan
    c.set_weights({"kernel": kernel, "bias": p.bias})
    outputs, state, backprop = rnnrs.dynamic_rnn(c, p.x.astype(dtype), return_backprop=True)
    assert np.all(np.isnan(outputs[:, 1:]))
    grads = backprop(d_outputs=np.ones((B, T, H), dtype))
    assert np.any(np.isnan(grads.weights["kernel"]))


def test_nan_in_upstream_gradient(cell, x, dtype):
    backprop = run_with_backprop(cell, x)
    d_state = np.zeros((B, H), dtype)
    d_state[0, 0] = np.nan
    grads = backprop(d_state=d_state)
    assert np.all(np.isnan(grads.initial_state[0]))
    assert np.all(np.isnan(grads.inputs[0, -1]))
    assert np.all(np.isfinite(grads.inputs[1:])) and np.all(np.isfinite(grads.initial_state[1:]))


# --------------------------------------------------------------------------
# Edge sizes: T = 0, B = 0, all lengths 0
# --------------------------------------------------------------------------


@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("with_h0", [False, True])
def test_zero_time_steps(dtype, time_major, with_h0):
    c = rnnrs.BasicRNNCell(H, dtype=dtype, seed=2)
    xs = np.zeros((0, B, I) if time_major else (B, 0, I), dtype)
    h0 = np.random.default_rng(1).normal(size=(B, H)).astype(dtype) if with_h0 else None
    outputs, state, backprop = rnnrs.dynamic_rnn(c, xs, initial_state=h0, time_major=time_major, return_backprop=True)
    assert c.input_size == I
    assert outputs.shape == ((0, B, H) if time_major else (B, 0, H))
    assert outputs.dtype == np.dtype(dtype) and state.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(state, h0 if with_h0 else np.zeros((B, H), dtype))
    d_state = np.random.default_rng(2).normal(size=(B, H)).astype(dtype)
    grads = backprop(d_state=d_state)
    assert grads.inputs.shape == xs.shape
    np.testing.assert_array_equal(grads.initial_state, d_state)  # state = h0, so dS/dh0 = I
    assert np.all(grads.weights["kernel"] == 0) and grads.weights["kernel"].shape == (I + H, H)
    assert np.all(grads.weights["bias"] == 0)
    # with explicit zero lengths too
    outputs, state = rnnrs.dynamic_rnn(
        c, xs, sequence_length=np.zeros(B, np.int64), initial_state=h0, time_major=time_major
    )
    np.testing.assert_array_equal(state, h0 if with_h0 else np.zeros((B, H), dtype))


def test_empty_batch(dtype):
    c = rnnrs.BasicRNNCell(H, dtype=dtype, seed=2)
    xs = np.zeros((0, T, I), dtype)
    outputs, state, backprop = rnnrs.dynamic_rnn(c, xs, sequence_length=np.zeros(0, np.int64), return_backprop=True)
    assert outputs.shape == (0, T, H) and state.shape == (0, H)
    assert outputs.dtype == np.dtype(dtype)
    grads = backprop(d_outputs=np.zeros((0, T, H), dtype), d_state=np.zeros((0, H), dtype))
    assert grads.inputs.shape == (0, T, I)
    assert grads.initial_state.shape == (0, H)
    assert np.all(grads.weights["kernel"] == 0) and np.all(grads.weights["bias"] == 0)
    outputs, state = rnnrs.dynamic_rnn(c, np.zeros((T, 0, I), dtype), time_major=True)
    assert outputs.shape == (T, 0, H) and state.shape == (0, H)
    out_list, state = rnnrs.static_rnn(c, [np.zeros((0, I), dtype)] * T)
    assert len(out_list) == T and all(o.shape == (0, H) for o in out_list)
    assert c.zero_state(0).shape == (0, H)


def test_all_lengths_zero(cell, x, dtype):
    h0 = np.random.default_rng(3).normal(size=(B, H)).astype(dtype)
    outputs, state, backprop = rnnrs.dynamic_rnn(
        cell, x, sequence_length=[0] * B, initial_state=h0, return_backprop=True
    )
    assert np.all(outputs == 0)
    np.testing.assert_array_equal(state, h0)
    d_state = np.ones((B, H), dtype)
    grads = backprop(d_outputs=np.ones((B, T, H), dtype), d_state=d_state)
    assert np.all(grads.inputs == 0)
    np.testing.assert_array_equal(grads.initial_state, d_state)
    assert np.all(grads.weights["kernel"] == 0) and np.all(grads.weights["bias"] == 0)
