"""Gradient checkpointing (``checkpoint_every``): the checkpointed forward and
backward passes give bitwise the outputs, state and gradients of the plain ones,
for every cell kind and option, both dtypes, ragged lengths (0 included), any
segment length and any thread count; bad values raise errors naming the argument.

The core rounds ``checkpoint_every`` up to whole chunks of its weight-gradient
products (32 steps for batches of 32 to 255 rows, longer for smaller batches),
and a call whose rows run at most one chunk keeps everything: the strategies
below draw batches and sequences longer than a chunk often enough that most
examples do checkpoint.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnnrs
from rnnrs import _rnnrs

KINDS = ("basic_rnn", "lstm", "lstm_options", "gru", "gru_reset_after")
EVERY = (1, 2, 31, 32, 33, 64, 1000, "auto")


def make_cell(kind: str, units: int, dtype, seed: int):
    if kind == "basic_rnn":
        return rnnrs.BasicRNNCell(units, dtype=dtype, seed=seed)
    if kind == "lstm":
        return rnnrs.BasicLSTMCell(units, dtype=dtype, seed=seed)
    if kind == "lstm_options":
        return rnnrs.LSTMCell(
            units,
            use_peepholes=True,
            cell_clip=0.5,
            num_proj=max(1, units - 1),
            proj_clip=0.3,
            forget_bias=0.5,
            dtype=dtype,
            seed=seed,
        )
    return rnnrs.GRUCell(units, reset_after=kind == "gru_reset_after", dtype=dtype, seed=seed)


def randomise_weights(cell, rng) -> None:
    """Random biases and peepholes too (they start at zeros or ones)."""
    cell.set_weights({k: rng.uniform(-0.8, 0.8, v.shape) for k, v in cell.get_weights().items()})


def map_state(f, state):
    """``f`` applied to every array of a state structure, keeping the structure."""
    if isinstance(state, np.ndarray):
        return f(state)
    return (
        type(state)(*(map_state(f, part) for part in state))
        if hasattr(state, "_fields")
        else tuple(map_state(f, part) for part in state)
    )


def state_arrays(state):
    """A state structure as a flat list of arrays."""
    if isinstance(state, np.ndarray):
        return [state]
    return [a for part in state for a in state_arrays(part)]


def run(cell, x, lengths, h0, d_out, d_state, time_major, every):
    outputs, state, backprop = rnnrs.dynamic_rnn(
        cell,
        x,
        sequence_length=lengths,
        initial_state=h0,
        time_major=time_major,
        return_backprop=True,
        checkpoint_every=every,
    )
    g = backprop(d_outputs=d_out, d_state=d_state)
    # backprop may be called again: the checkpoints are still there
    again = backprop(d_outputs=d_out, d_state=d_state)
    assert np.array_equal(g.inputs, again.inputs)
    return [outputs, *state_arrays(state), g.inputs, *state_arrays(g.initial_state)], g.weights


def assert_same(plain, kept, what: str) -> None:
    (arrays_a, weights_a), (arrays_b, weights_b) = plain, kept
    for i, (a, b) in enumerate(zip(arrays_a, arrays_b)):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{what}: result #{i}"
        assert np.array_equal(a, b), f"{what}: result #{i} differs"
    assert list(weights_a) == list(weights_b), what
    for name in weights_a:
        assert np.array_equal(weights_a[name], weights_b[name]), f"{what}: d {name} differs"


@st.composite
def problems(draw):
    kind = draw(st.sampled_from(KINDS))
    dtype = draw(st.sampled_from((np.float32, np.float64)))
    batch = draw(st.sampled_from((1, 3, 16, 32, 40, 70)))
    # chunks: 2048 steps for 1 row, 1024 for 3, 128 for 16, 32 from 32 rows on;
    # half the draws run more than one chunk (so checkpoint, when not ragged)
    chunk = {1: 2048, 3: 1024, 16: 128}.get(batch, 32)
    longest = chunk + {1: 150, 3: 80}.get(batch, 3 * chunk)
    time = draw(st.integers(1, longest) | st.integers(chunk + 1, longest))
    inputs = draw(st.integers(0, 5))
    units = draw(st.integers(1, 6))
    ragged = draw(st.booleans())
    lengths = None
    if ragged:
        lengths = draw(
            st.lists(
                st.one_of(st.just(0), st.just(time), st.integers(0, time)),
                min_size=batch,
                max_size=batch,
            )
        )
    every = draw(st.sampled_from(EVERY))
    time_major = draw(st.booleans())
    grads = draw(st.sampled_from(("outputs", "state", "both")))
    seed = draw(st.integers(0, 2**16))
    return kind, dtype, batch, time, inputs, units, lengths, every, time_major, grads, seed


@given(problems())
def test_checkpointed_gradients_equal_the_plain_ones(problem):
    kind, dtype, batch, time, inputs, units, lengths, every, time_major, grads, seed = problem
    rng = np.random.default_rng(seed)
    cell = make_cell(kind, units, dtype, seed)
    cell.build(inputs)
    randomise_weights(cell, rng)
    shape = (time, batch, inputs) if time_major else (batch, time, inputs)
    x = rng.standard_normal(shape).astype(dtype)
    h0 = map_state(lambda a: rng.standard_normal(a.shape).astype(dtype), cell.zero_state(batch))
    out_shape = shape[:2] + (cell.output_size,)
    d_out = rng.standard_normal(out_shape).astype(dtype) if grads != "state" else None
    d_state = None
    if grads != "outputs":
        d_state = map_state(lambda a: rng.standard_normal(a.shape).astype(dtype), h0)
    lens = None if lengths is None else np.array(lengths)
    plain = run(cell, x, lens, h0, d_out, d_state, time_major, None)
    kept = run(cell, x, lens, h0, d_out, d_state, time_major, every)
    assert_same(plain, kept, f"{kind} {np.dtype(dtype).name} B{batch} T{time} every={every}")


def lstm_problem(dtype, batch=40, time=100):
    rng = np.random.default_rng(5)
    cell = rnnrs.LSTMCell(7, use_peepholes=True, num_proj=5, cell_clip=1.0, dtype=dtype, seed=3)
    cell.build(6)
    randomise_weights(cell, rng)
    x = rng.standard_normal((batch, time, 6)).astype(dtype)
    lengths = rng.integers(0, time + 1, size=batch)
    lengths[:3] = [0, time, 1]
    d_out = rng.standard_normal((batch, time, 5)).astype(dtype)
    return cell, x, lengths, d_out


@pytest.mark.parametrize("every", [32, "auto"])
def test_checkpointed_is_bitwise_identical_across_thread_counts(dtype, every, parallel_everything):
    cell, x, lengths, d_out = lstm_problem(dtype)
    rnnrs.set_num_threads(1)
    plain = run(cell, x, lengths, None, d_out, None, False, None)
    for n in (1, 2, 3):
        rnnrs.set_num_threads(n)
        assert_same(plain, run(cell, x, lengths, None, d_out, None, False, every), f"{n} threads")


def test_wrappers_and_stacks_checkpoint_their_layers(dtype):
    rng = np.random.default_rng(11)
    layers = [rnnrs.GRUCell(6, dtype=dtype, seed=1), rnnrs.ResidualWrapper(rnnrs.BasicLSTMCell(6, dtype=dtype, seed=2))]
    cell = rnnrs.OutputProjectionWrapper(rnnrs.MultiRNNCell(layers), 4)
    x = rng.standard_normal((32, 90, 6)).astype(dtype)
    lengths = rng.integers(0, 91, size=32)
    d_out = rng.standard_normal((32, 90, 4)).astype(dtype)
    plain = run(cell, x, lengths, None, d_out, None, False, None)
    assert_same(plain, run(cell, x, lengths, None, d_out, None, False, 40), "stack")


def test_static_and_bidirectional_runs_accept_it(dtype):
    cell, x, lengths, d_out = lstm_problem(dtype, batch=32, time=70)
    steps = [x[:, t] for t in range(x.shape[1])]
    d_steps = [d_out[:, t] for t in range(x.shape[1])]
    results = []
    for every in (None, 32):
        out, state, bp = rnnrs.static_rnn(
            cell, steps, sequence_length=lengths, return_backprop=True, checkpoint_every=every
        )
        g = bp(d_outputs=d_steps)
        results.append([np.stack(out), *state, np.stack(g.inputs), *g.weights.values()])
    for a, b in zip(*results):
        assert np.array_equal(a, b)

    cell_bw = rnnrs.GRUCell(5, dtype=dtype, seed=4)
    results = []
    for every in (None, "auto"):
        (out_fw, out_bw), _, bp = rnnrs.bidirectional_dynamic_rnn(
            cell, cell_bw, x, sequence_length=lengths, return_backprop=True, checkpoint_every=every
        )
        g = bp(d_outputs=(d_out, d_out))
        results.append([out_fw, out_bw, g.inputs, *g.weights[0].values(), *g.weights[1].values()])
    for a, b in zip(*results):
        assert np.array_equal(a, b)


def test_without_backprop_it_changes_nothing(dtype):
    cell, x, lengths, _ = lstm_problem(dtype)
    out_a, state_a = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths)
    out_b, state_b = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths, checkpoint_every="auto")
    assert np.array_equal(out_a, out_b)
    assert all(np.array_equal(a, b) for a, b in zip(state_a, state_b))


@pytest.mark.parametrize(
    "bad, error",
    [
        (0, ValueError),
        (-3, ValueError),
        (np.int64(0), ValueError),
        ("sqrt", ValueError),
        ("", ValueError),
        (1.5, TypeError),
        (32.0, TypeError),
        (True, TypeError),
        (np.bool_(True), TypeError),
        ([32], TypeError),
        (np.array(32), TypeError),
    ],
)
@pytest.mark.parametrize("return_backprop", [True, False])
def test_bad_values_name_the_argument(bad, error, return_backprop):
    cell = rnnrs.BasicRNNCell(3)
    x = np.zeros((2, 4, 2), np.float32)
    with pytest.raises(error, match=r"^checkpoint_every: expected a positive integer, \"auto\" or None, got "):
        rnnrs.dynamic_rnn(cell, x, return_backprop=return_backprop, checkpoint_every=bad)
    with pytest.raises(error, match="checkpoint_every"):
        rnnrs.static_rnn(cell, list(x.transpose(1, 0, 2)), return_backprop=return_backprop, checkpoint_every=bad)
    with pytest.raises(error, match="checkpoint_every"):
        rnnrs.bidirectional_dynamic_rnn(cell, cell, x, return_backprop=return_backprop, checkpoint_every=bad)


def test_numpy_integers_and_huge_values_are_accepted():
    cell = rnnrs.BasicRNNCell(3, seed=0)
    x = np.ones((32, 40, 2), np.float32)
    plain = run(cell, x, None, None, x[..., :1].repeat(3, -1), None, False, None)
    for every in (np.int32(5), np.uint64(7), 10**30):
        assert_same(plain, run(cell, x, None, None, x[..., :1].repeat(3, -1), None, False, every), str(every))


@pytest.mark.parametrize(
    "bad, error",
    [(0, ValueError), (-1, ValueError), ("never", ValueError), (2.0, TypeError), (True, TypeError), ([], TypeError)],
)
def test_the_binding_checks_it_too(bad, error):
    cell = rnnrs.BasicRNNCell(3, seed=0)
    cell.build(2)
    core = cell._core()
    x = np.zeros((2, 4, 2), np.float32)
    h0 = [np.zeros((2, 3), np.float32)]
    with pytest.raises(error, match=r"^checkpoint_every: expected a positive int, \"auto\" or None, got "):
        _rnnrs.forward(core, x, h0, None, False, bad)
    for good in (None, 1, "auto", 2**70):
        _rnnrs.forward(core, x, h0, None, False, good)
