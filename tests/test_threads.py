"""Results are bitwise identical whatever the thread count."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import helpers
import rnnrs
from helpers import make_problem

THREAD_COUNTS = (1, 2, 3)
# Medium-sized, ragged problem: big enough that a parallel implementation
# actually splits the work.
B, T, I, H = 64, 30, 32, 64


def run_everything(p, dtype):
    """Forward + backprop of dynamic_rnn and static_rnn; every result array in a list."""
    cell = rnnrs.BasicRNNCell(H, dtype=dtype)
    cell.set_weights({"kernel": p.kernel, "bias": p.bias})
    x = p.x.astype(dtype)
    h0 = p.h0.astype(dtype)
    d_out, d_state = p.d_outputs.astype(dtype), p.d_state.astype(dtype)

    outputs, state, backprop = rnnrs.dynamic_rnn(
        cell, x, sequence_length=p.lengths, initial_state=h0, return_backprop=True
    )
    g = backprop(d_outputs=d_out, d_state=d_state)
    results = [outputs, state, g.inputs, g.initial_state, g.weights["kernel"], g.weights["bias"]]

    out_tm, state_tm, backprop_tm = rnnrs.dynamic_rnn(
        cell,
        np.swapaxes(x, 0, 1),
        sequence_length=p.lengths,
        initial_state=h0,
        time_major=True,
        return_backprop=True,
    )
    g = backprop_tm(d_outputs=np.swapaxes(d_out, 0, 1))
    results += [out_tm, state_tm, g.inputs, g.initial_state, g.weights["kernel"]]

    out_list, state_s, backprop_s = rnnrs.static_rnn(
        cell, [x[:, t] for t in range(T)], sequence_length=p.lengths, return_backprop=True
    )
    g = backprop_s(d_outputs=[d_out[:, t] for t in range(T)], d_state=d_state)
    results += [np.stack(out_list), state_s, np.stack(g.inputs), g.weights["kernel"]]

    y, h = cell(x[:, 0], h0)
    results += [y, h]
    return results


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(99)
    lengths = rng.integers(0, T + 1, size=B)
    lengths[:3] = [0, T, 1]
    return make_problem(99, B, T, I, H, lengths=lengths)


def test_bitwise_identical_across_thread_counts(dtype, problem, parallel_everything):
    per_count = {}
    for n in THREAD_COUNTS:
        rnnrs.set_num_threads(n)
        assert rnnrs.get_num_threads() == n
        per_count[n] = run_everything(problem, dtype)
    baseline = per_count[THREAD_COUNTS[0]]
    assert all(np.all(np.isfinite(a)) for a in baseline)
    for n in THREAD_COUNTS[1:]:
        for i, (a, b) in enumerate(zip(baseline, per_count[n])):
            assert a.dtype == b.dtype == np.dtype(dtype)
            assert np.array_equal(a, b), f"result #{i} differs between 1 and {n} threads"
    # Running again with the same count is of course identical too.
    rnnrs.set_num_threads(2)
    for a, b in zip(per_count[2], run_everything(problem, dtype)):
        assert np.array_equal(a, b)


def test_set_and_get_num_threads(restore_threads):
    rnnrs.set_num_threads(3)
    assert rnnrs.get_num_threads() == 3
    rnnrs.set_num_threads(1)
    assert rnnrs.get_num_threads() == 1


@pytest.mark.parametrize("bad", [0, -1])
def test_set_num_threads_rejects_non_positive(bad, restore_threads):
    with pytest.raises(ValueError, match=r"(?i)thread|\bn\b"):
        rnnrs.set_num_threads(bad)
    assert rnnrs.get_num_threads() == restore_threads


@pytest.mark.parametrize("bad", ["2", 1.5, None])
def test_set_num_threads_rejects_non_integers(bad, restore_threads):
    with pytest.raises(TypeError):
        rnnrs.set_num_threads(bad)
    assert rnnrs.get_num_threads() == restore_threads


def test_default_thread_count_is_positive():
    assert isinstance(rnnrs.get_num_threads(), int)
    assert rnnrs.get_num_threads() >= 1


def test_environment_variable_sizes_the_pool(tmp_path):
    env = dict(os.environ, RNNRS_NUM_THREADS="3")
    out = subprocess.run(
        [sys.executable, "-c", "import rnnrs; print(rnnrs.get_num_threads())"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "3"


def test_concurrent_python_threads(dtype, problem):
    """The GIL is released during the heavy work; concurrent calls stay correct."""
    expected = run_everything(problem, dtype)
    for got in helpers.in_threads(lambda: run_everything(problem, dtype)):
        for a, b in zip(expected, got):
            assert np.array_equal(a, b)


# A batch of one group of rows (fewer than 32) runs its steps split by hidden
# units over the pool, the threads meeting once per step (twice for the
# reset-before GRU); so do single steps `cell(x, state)` of fewer than 32 rows. The
# sizes make every cell take that path at 2 and 3 threads (`parallel_everything`
# lowers the thresholds): H = 128 is a whole number of the packed kernels'
# panels for float32 and float64.
SMALL_B, SMALL_T, SMALL_I, SMALL_H = 5, 40, 16, 128


def run_small_batch(dtype):
    """Forward and backprop of every cell on a small ragged batch (lengths 0..T)."""
    cells = [
        rnnrs.LSTMCell(SMALL_H, use_peepholes=True, cell_clip=0.8, dtype=dtype, seed=1),
        rnnrs.BasicLSTMCell(SMALL_H, dtype=dtype, seed=2),
        rnnrs.GRUCell(SMALL_H, dtype=dtype, seed=3),
        rnnrs.GRUCell(SMALL_H, reset_after=True, dtype=dtype, seed=4),
        rnnrs.BasicRNNCell(SMALL_H, dtype=dtype, seed=5),
    ]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((SMALL_B, SMALL_T, SMALL_I)).astype(dtype)
    lengths = np.array([0, SMALL_T, 1, 17, SMALL_T])
    results = []
    for cell in cells:
        outputs, state, backprop = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths, return_backprop=True)
        g = backprop(d_outputs=np.cos(outputs))
        parts = list(state) if isinstance(state, tuple) else [state]
        results += [outputs, *parts, g.inputs, *g.weights.values()]
        # single steps, also split by units (one row and all of them)
        for rows in (1, SMALL_B):
            step_state = cell.zero_state(rows)
            for t in range(3):
                y, step_state = cell(x[:rows, t], step_state)
            parts = list(step_state) if isinstance(step_state, tuple) else [step_state]
            results += [y, *parts]
            # the same steps through a stepper kept between calls
            stepper = cell.stepper(rows)
            for t in range(3):
                y = stepper.step(np.ascontiguousarray(x[:rows, t]))
            state = stepper.state
            results += [y, *(list(state) if isinstance(state, tuple) else [state])]
    return results


def test_small_batches_split_by_units_bitwise_identical(dtype, parallel_everything):
    per_count = {}
    for n in THREAD_COUNTS:
        rnnrs.set_num_threads(n)
        per_count[n] = run_small_batch(dtype)
    baseline = per_count[1]
    assert all(np.all(np.isfinite(a)) for a in baseline)
    # padded steps stay zero: row 0 has length 0, row 2 length 1
    assert not baseline[0][0].any() and not baseline[0][2, 1:].any()
    for n in THREAD_COUNTS[1:]:
        for i, (a, b) in enumerate(zip(baseline, per_count[n])):
            assert np.array_equal(a, b), f"result #{i} differs between 1 and {n} threads"


def test_small_batches_from_concurrent_python_threads(parallel_everything):
    """Split steps never wait for a helper thread that the busy pool does not
    start: calls from several Python threads at once finish, bitwise right."""
    rnnrs.set_num_threads(2)
    expected = run_small_batch(np.float32)
    for got in helpers.in_threads(lambda: run_small_batch(np.float32)):
        for a, b in zip(expected, got):
            assert np.array_equal(a, b)
