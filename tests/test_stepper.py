"""rnnrs.Stepper (``cell.stepper()``): streaming steps with the state kept
between calls, against ``cell(x, state)`` (bit for bit) and the NumPy
references; ``out=``, conversions, resets, changed weights, errors and threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import helpers
import reference
import reference_gru
import reference_lstm
import rnnrs
from rnnrs import _rnnrs


def core_cells(dtype, units=6):
    return {
        "basic_rnn": rnnrs.BasicRNNCell(units, activation="relu", dtype=dtype, seed=1),
        "lstm": rnnrs.LSTMCell(units, use_peepholes=True, num_proj=4, cell_clip=0.7, dtype=dtype, seed=2),
        "basic_lstm": rnnrs.BasicLSTMCell(units, dtype=dtype, seed=3),
        "gru": rnnrs.GRUCell(units, dtype=dtype, seed=4),
        "gru_reset_after": rnnrs.GRUCell(units, reset_after=True, dtype=dtype, seed=5),
        "stack": rnnrs.MultiRNNCell(
            [rnnrs.GRUCell(units, dtype=dtype, seed=6), rnnrs.LSTMCell(3, dtype=dtype, seed=7)]
        ),
    }


def wrapped_cells(dtype, units=6):
    return {
        "residual": rnnrs.ResidualWrapper(rnnrs.GRUCell(5, dtype=dtype, seed=8)),
        "dropout": rnnrs.DropoutWrapper(rnnrs.BasicLSTMCell(units, dtype=dtype, seed=9), output_keep_prob=1.0),
        "projection": rnnrs.OutputProjectionWrapper(rnnrs.GRUCell(units, dtype=dtype, seed=10), 3),
        "stack_of_wrapped": rnnrs.MultiRNNCell(
            [rnnrs.ResidualWrapper(rnnrs.GRUCell(5, dtype=dtype, seed=11)), rnnrs.GRUCell(4, dtype=dtype, seed=12)]
        ),
    }


def parts(state):
    """A state's arrays, flattened (tuples of layers, LSTMStateTuple)."""
    if isinstance(state, tuple):
        return [a for s in state for a in parts(s)]
    return [state]


def assert_states_equal(a, b):
    pa, pb = parts(a), parts(b)
    assert len(pa) == len(pb)
    for x, y in zip(pa, pb):
        assert x.dtype == y.dtype and np.array_equal(x, y)


def calls(cell, xs, state):
    """``cell(x, state)`` over ``xs`` [T, B, I]: the outputs and final state."""
    outputs = []
    for x in xs:
        y, state = cell(x, state)
        outputs.append(y)
    return outputs, state


@pytest.mark.parametrize("batch", [0, 1, 3])
@pytest.mark.parametrize("name", list(core_cells(np.float32)) + list(wrapped_cells(np.float32)))
def test_steps_equal_cell_calls_bit_for_bit(name, batch, dtype):
    cell = {**core_cells(dtype), **wrapped_cells(dtype)}[name]
    xs = np.random.default_rng(0).standard_normal((5, batch, 5)).astype(dtype)
    stepper = cell.stepper(batch)
    got = [stepper.step(x) for x in xs]
    want, state = calls(cell, xs, cell.zero_state(batch))
    for g, w in zip(got, want):
        assert g.dtype == dtype and g.shape == (batch, cell.output_size)
        assert np.array_equal(g, w)
    assert_states_equal(stepper.state, state)
    # the core steps core cells and stacks of them; wrappers step through cell(x, state)
    assert (stepper._core is not None) == (name in core_cells(dtype))


def test_a_stepper_starts_from_the_initial_state_given(dtype):
    cell = rnnrs.LSTMCell(6, dtype=dtype, seed=1)
    rng = np.random.default_rng(1)
    start = rnnrs.LSTMStateTuple(rng.standard_normal((2, 6)), rng.standard_normal((2, 6)))
    xs = rng.standard_normal((3, 2, 4)).astype(dtype)
    stepper = cell.stepper(2, start)
    got = [stepper.step(x) for x in xs]
    want, state = calls(cell, xs, start)
    assert all(np.array_equal(g, w) for g, w in zip(got, want))
    assert_states_equal(stepper.state, state)
    assert stepper.batch_size == 2 and stepper.output_size == 6 and stepper.dtype == dtype
    assert stepper.cell is cell and "batch_size=2" in repr(stepper)


@given(
    kind=st.sampled_from(["basic_rnn", "gru", "gru_reset_after", "lstm"]),
    batch=st.integers(0, 4),
    time=st.integers(1, 5),
    units=st.integers(1, 7),
    inputs=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_steps_match_the_numpy_references(kind, batch, time, units, inputs, seed, dtype):
    rng = np.random.default_rng(seed)
    if kind == "basic_rnn":
        cell = rnnrs.BasicRNNCell(units, dtype=dtype, seed=seed)
    elif kind == "lstm":
        cell = rnnrs.LSTMCell(units, use_peepholes=True, dtype=dtype, seed=seed)
    else:
        cell = rnnrs.GRUCell(units, reset_after=kind == "gru_reset_after", dtype=dtype, seed=seed)
    cell.build(inputs)
    x = rng.standard_normal((batch, time, inputs)).astype(dtype)
    stepper = cell.stepper(batch)
    got = np.stack([stepper.step(x[:, t]) for t in range(time)], axis=1)
    w = cell.get_weights()
    if kind == "basic_rnn":
        want, final, _ = reference.rnn_forward(x, np.zeros((batch, units)), w["kernel"], w["bias"], "tanh")
        finals = [final]
    elif kind == "lstm":
        want, (c, h), _ = reference_lstm.lstm_forward(x, None, None, w)
        finals = [c, h]
    else:
        want, final, _ = reference_gru.gru_forward(
            x, np.zeros((batch, units)), w, "tanh", reset_after=kind == "gru_reset_after"
        )
        finals = [final]
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    for g, f in zip(parts(stepper.state), finals):
        np.testing.assert_allclose(g, f, rtol=tol, atol=tol)


def test_out_is_written_and_returned(dtype):
    cell = rnnrs.GRUCell(6, dtype=dtype, seed=1)
    xs = np.random.default_rng(2).standard_normal((3, 2, 4)).astype(dtype)
    stepper = cell.stepper(2)
    out = np.full((2, 6), np.nan, dtype=dtype)
    want, _ = calls(cell, xs, cell.zero_state(2))
    for x, w in zip(xs, want):
        assert stepper.step(x, out=out) is out
        assert np.array_equal(out, w)
    # a Fortran-ordered or strided out is written as well
    big = np.zeros((2, 12), dtype=dtype)
    fresh = cell.stepper(2)
    assert fresh.step(xs[0], out=big[:, ::2]).base is big
    assert np.array_equal(big[:, ::2], want[0])
    # out may be the inputs' own array (the step reads them before writing)
    square = rnnrs.GRUCell(4, dtype=dtype, seed=3)
    x = xs[0].copy()
    want0, _ = square(x, square.zero_state(2))
    assert square.stepper(2).step(x, out=x) is x
    assert np.array_equal(x, want0)


@pytest.mark.parametrize("wrapped", [False, True])
def test_a_bad_out_is_named_and_leaves_the_state(wrapped):
    inner = rnnrs.GRUCell(6, seed=1)
    cell = rnnrs.ResidualWrapper(rnnrs.GRUCell(4, seed=2)) if wrapped else inner
    width = cell.output_size
    x = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
    stepper = cell.stepper(2)
    before = stepper.state
    readonly = np.zeros((2, width), np.float32)
    readonly.flags.writeable = False
    bad = [
        (np.zeros((2, width), np.float64), TypeError, "out: expected a 2-d numpy.float32 array"),
        (np.zeros((3, width), np.float32), ValueError, "out: expected shape"),
        (np.zeros(width, np.float32), TypeError, "out: expected a 2-d"),
        ([[0.0] * width] * 2, TypeError, "out: expected a 2-d"),
        (readonly, ValueError, "out: expected a writeable array"),
    ]
    for out, error, message in bad:
        with pytest.raises(error, match=message):
            stepper.step(x, out=out)
        assert_states_equal(stepper.state, before)
    y, _ = cell(x, before)
    assert np.array_equal(stepper.step(x), y)


def test_inputs_are_converted_like_cell_calls():
    cell = rnnrs.LSTMCell(6, seed=1)
    rng = np.random.default_rng(4)
    x64 = rng.standard_normal((3, 5))
    want, _ = cell(x64, cell.zero_state(3))
    raw = np.zeros(3 * 5 * 4 + 1, np.uint8)
    misaligned = raw[1:].view(np.float32).reshape(3, 5)
    misaligned[...] = x64
    forms = {
        "float64": x64,
        "list": x64.tolist(),
        "fortran": np.asfortranarray(x64.astype(np.float32)),
        "strided": np.repeat(x64.astype(np.float32), 2, axis=1)[:, ::2],
        "misaligned": misaligned,
    }
    for label, x in forms.items():
        assert np.array_equal(cell.stepper(3).step(x), want), label


def test_bad_inputs_are_named_and_leave_the_state():
    cell = rnnrs.MultiRNNCell([rnnrs.GRUCell(5, seed=1), rnnrs.GRUCell(3, seed=2)])
    stepper = cell.stepper(2)
    x = np.ones((2, 4), np.float32)
    stepper.step(x)
    before = stepper.state
    bad = [
        (np.ones((3, 4), np.float32), ValueError, r"inputs: expected shape \[2, 4\]"),
        (np.ones((2, 5), np.float32), ValueError, "inputs"),
        (np.ones(4, np.float32), ValueError, "inputs: expected a 2-d array"),
        ("abc", (TypeError, ValueError), "inputs"),
    ]
    for value, error, message in bad:
        with pytest.raises(error, match=message):
            stepper.step(value)
        assert_states_equal(stepper.state, before)
    want, _ = cell(x, before)
    assert np.array_equal(stepper.step(x), want)


def test_non_finite_inputs_give_what_cell_calls_give():
    cell = rnnrs.BasicRNNCell(4, seed=1)
    x = np.array([[np.nan, 1.0], [np.inf, 0.0]], np.float32)
    want, _ = cell(x, cell.zero_state(2))
    np.testing.assert_array_equal(cell.stepper(2).step(x), want)


def test_reset_sets_the_state_or_zeros(dtype):
    cell = rnnrs.MultiRNNCell([rnnrs.LSTMCell(5, dtype=dtype, seed=1), rnnrs.GRUCell(3, dtype=dtype, seed=2)])
    xs = np.random.default_rng(5).standard_normal((3, 2, 4)).astype(dtype)
    stepper = cell.stepper(2)
    first = stepper.step(xs[0])
    middle = stepper.state
    second = stepper.step(xs[1])
    stepper.reset()
    assert all(not a.any() for a in parts(stepper.state))
    assert np.array_equal(stepper.step(xs[0]), first)
    stepper.reset(middle)
    assert np.array_equal(stepper.step(xs[1]), second)
    before = stepper.state
    with pytest.raises(ValueError, match=r"state\[1\]"):
        stepper.reset((middle[0], np.zeros((3, 3))))
    with pytest.raises(TypeError, match="state"):
        stepper.reset(np.zeros((2, 8)))
    assert_states_equal(stepper.state, before)
    # the Python path (a wrapper) resets the same way
    wrapped = rnnrs.ResidualWrapper(rnnrs.GRUCell(4, dtype=dtype, seed=3))
    s = wrapped.stepper(2)
    y0 = s.step(xs[0])
    s.step(xs[1])
    s.reset()
    assert np.array_equal(s.step(xs[0]), y0)


def test_a_step_runs_on_the_current_weights_and_keeps_the_state():
    cell = rnnrs.MultiRNNCell([rnnrs.GRUCell(5, seed=1), rnnrs.LSTMCell(3, seed=2)])
    xs = np.random.default_rng(6).standard_normal((4, 2, 4)).astype(np.float32)
    stepper = cell.stepper(2)
    stepper.step(xs[0])
    stepper.step(xs[1])
    state = stepper.state
    weights = cell.get_weights()
    cell.set_weights({k: v * 0.5 for k, v in weights.items()})
    want, final = calls(cell, xs[2:], state)
    got = [stepper.step(x) for x in xs[2:]]
    assert all(np.array_equal(g, w) for g, w in zip(got, want))
    assert_states_equal(stepper.state, final)


def test_a_cell_not_yet_built_is_built_by_the_first_step():
    cell = rnnrs.LSTMCell(4, seed=1)
    stepper = cell.stepper(2)
    assert not cell.built and stepper._core is None
    x = np.ones((2, 3), np.float32)
    y = stepper.step(x)
    assert cell.built and cell.input_size == 3 and stepper._core is not None
    want, _ = cell(x, cell.zero_state(2))
    assert np.array_equal(y, want)


def test_bad_arguments_are_named():
    cell = rnnrs.GRUCell(4)
    with pytest.raises(TypeError, match="cell"):
        rnnrs.Stepper("gru")
    with pytest.raises(ValueError, match="batch_size"):
        cell.stepper(-1)
    with pytest.raises(TypeError, match="batch_size"):
        cell.stepper(1.5)
    with pytest.raises(ValueError, match="initial_state"):
        cell.stepper(2, np.zeros((3, 4), np.float32))


def test_the_gil_is_released_only_for_steps_worth_it():
    small = rnnrs.LSTMCell(16, seed=1).stepper(1)
    small.step(np.ones((1, 16), np.float32))
    assert not small._core.releases_gil
    large = rnnrs.LSTMCell(128, seed=1).stepper(1)
    large.step(np.ones((1, 128), np.float32))
    assert large._core.releases_gil
    # rows times multiply-adds per row: 4 * 128 * 256 >= the threshold > 4 * 16 * 32
    assert 4 * 16 * 32 < _rnnrs.STEP_DETACH_WORK <= 4 * 128 * 256


def test_steppers_in_threads_give_the_single_thread_results(restore_threads):
    rnnrs.set_num_threads(2)
    # 256 units: wide enough that each step is split by units over the pool
    cell = rnnrs.LSTMCell(256, seed=1)
    xs = np.random.default_rng(7).standard_normal((6, 1, 256)).astype(np.float32)
    first = cell.stepper(1)
    expected = [first.step(x) for x in xs]

    def work():
        stepper = cell.stepper(1)
        return [stepper.step(x) for x in xs]

    for got in helpers.in_threads(work):
        assert all(np.array_equal(g, w) for g, w in zip(got, expected))
    rnnrs.set_num_threads(1)
    one = cell.stepper(1)
    assert all(np.array_equal(one.step(x), w) for x, w in zip(xs, expected))


def test_one_stepper_stepped_from_two_threads_at_once_is_refused():
    """Two threads stepping one stepper (each step releases the GIL): the
    step that finds the other running is refused with RuntimeError, never
    run on a state in use."""
    cell = rnnrs.LSTMCell(512, seed=1)
    x = np.ones((1, 512), np.float32)
    stepper = cell.stepper(1)
    stepper.step(x)
    assert stepper._core.releases_gil
    refused: list[RuntimeError] = []

    def steps():
        for _ in range(200):
            try:
                stepper._core.step(x)
            except RuntimeError as e:
                refused.append(e)

    worker = threading.Thread(target=steps)
    worker.start()
    steps()
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert refused, "the steps never overlapped"
    assert all("another thread" in str(e) for e in refused)


@pytest.mark.parametrize("wrapped", [False, True])
def test_a_copy_or_a_pickle_steps_on_from_the_same_state(wrapped):
    import copy
    import pickle

    inner = rnnrs.MultiRNNCell([rnnrs.GRUCell(5, seed=1), rnnrs.LSTMCell(3, seed=2)])
    cell = rnnrs.ResidualWrapper(rnnrs.GRUCell(4, seed=3)) if wrapped else inner
    xs = np.random.default_rng(8).standard_normal((4, 2, 4)).astype(np.float32)
    stepper = cell.stepper(2)
    stepper.step(xs[0])
    for twin in (copy.copy(stepper), copy.deepcopy(stepper), pickle.loads(pickle.dumps(stepper))):
        assert_states_equal(twin.state, stepper.state)
        assert twin.batch_size == 2
        ys = [twin.step(x) for x in xs[1:]]
        want, _ = calls(twin.cell, xs[1:], stepper.state)
        assert all(np.array_equal(y, w) for y, w in zip(ys, want))
    # the original did not move
    want, _ = calls(cell, xs[1:2], stepper.state)
    assert np.array_equal(stepper.step(xs[1]), want[0])
