"""BasicRNNCell, dynamic_rnn, static_rnn and backprop against the NumPy reference."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference as ref
import rnnrs
from helpers import (
    ACTIVATIONS,
    GRAD_MODES,
    as_length_container,
    assert_close,
    glorot_bound,
    grad_modes,
    length_containers,
    make_problem,
    padding_mask,
    rnn_problems,
    seeds,
)


def make_cell(p, activation, dtype):
    """A cell holding the problem's weights (set_weights casts them to ``dtype``)."""
    B, T, I, H = p.shape
    cell = rnnrs.BasicRNNCell(H, activation=activation, dtype=dtype)
    cell.set_weights({"kernel": p.kernel, "bias": p.bias})
    return cell


def to_time_major(a):
    return None if a is None else np.ascontiguousarray(np.swapaxes(a, 0, 1))


def cast(a, dtype):
    return None if a is None else np.asarray(a, dtype=dtype)


def run_dynamic(p, activation, dtype, *, time_major=False, container="int64", mode="both"):
    """dynamic_rnn + backprop for problem ``p``; results returned batch-major."""
    cell = make_cell(p, activation, dtype)
    x = cast(p.x, dtype)
    if time_major:
        x = to_time_major(x)
    outputs, state, backprop = rnnrs.dynamic_rnn(
        cell,
        x,
        sequence_length=as_length_container(p.lengths, container),
        initial_state=cast(p.h0, dtype),
        time_major=time_major,
        return_backprop=True,
    )
    d_outputs, d_state = p.grads_for(mode)
    d_outputs = cast(d_outputs, dtype)
    if time_major:
        d_outputs = to_time_major(d_outputs)
    if mode == "neither":
        grads = backprop()
    else:
        grads = backprop(d_outputs=d_outputs, d_state=cast(d_state, dtype))
    d_x = grads.inputs
    B, T, I, H = p.shape
    if time_major:
        assert outputs.shape == (T, B, H)
        assert d_x.shape == (T, B, I)
        outputs, d_x = np.swapaxes(outputs, 0, 1), np.swapaxes(d_x, 0, 1)
    return cell, outputs, state, grads, d_x


def check_against_reference(p, activation, dtype, outputs, state, grads, d_x, cell, mode):
    B, T, I, H = p.shape
    want_out, want_state, (w_dx, w_dh0, w_dk, w_db) = p.reference(activation, mode)
    assert_close(outputs, want_out, dtype, "outputs")
    assert_close(state, want_state, dtype, "state")
    assert_close(d_x, w_dx, dtype, "grads.inputs")
    assert_close(grads.initial_state, w_dh0, dtype, "grads.initial_state")
    assert set(grads.weights) == set(cell.get_weights()) == {"kernel", "bias"}
    assert_close(grads.weights["kernel"], w_dk, dtype, "grads.weights['kernel']")
    assert_close(grads.weights["bias"], w_db, dtype, "grads.weights['bias']")
    # Exact zeros where the semantics say "zero", not merely "close to zero".
    pad = padding_mask(p.lengths, B, T)
    assert np.all(np.asarray(outputs)[pad] == 0), "outputs past the length must be exactly 0"
    assert np.all(np.asarray(d_x)[pad] == 0), "grads.inputs past the length must be exactly 0"
    if mode == "neither":
        for g in (d_x, grads.initial_state, grads.weights["kernel"], grads.weights["bias"]):
            assert np.all(np.asarray(g) == 0)


# --------------------------------------------------------------------------
# dynamic_rnn vs reference
# --------------------------------------------------------------------------


@given(p=rnn_problems(), time_major=st.booleans(), mode=grad_modes, container=length_containers)
def test_dynamic_rnn_matches_reference(dtype, activation, p, time_major, mode, container):
    p = p.cast(dtype)
    cell, outputs, state, grads, d_x = run_dynamic(
        p, activation, dtype, time_major=time_major, container=container, mode=mode
    )
    check_against_reference(p, activation, dtype, outputs, state, grads, d_x, cell, mode)


@settings(max_examples=max(5, settings.default.max_examples // 3))
@given(
    p=rnn_problems(max_batch=90, max_time=12, max_input=40, max_units=48),
    time_major=st.booleans(),
)
def test_larger_problems_match_reference(dtype, activation, p, time_major):
    """Sizes large enough for the core's row grouping and parallel GEMM paths."""
    p = p.cast(dtype)
    cell, outputs, state, grads, d_x = run_dynamic(p, activation, dtype, time_major=time_major)
    check_against_reference(p, activation, dtype, outputs, state, grads, d_x, cell, "both")


@pytest.mark.parametrize("B,T,I,H", [(1, 400, 3, 4), (70, 40, 33, 65)])
def test_long_and_wide_problems_match_reference(dtype, B, T, I, H):
    rng = np.random.default_rng(B * T)
    lengths = rng.integers(0, T + 1, size=B)
    lengths[: min(B, 2)] = [T, 0][: min(B, 2)]
    p = make_problem(B + T, B, T, I, H, lengths=lengths).cast(dtype)
    cell, outputs, state, grads, d_x = run_dynamic(p, "tanh", dtype)
    check_against_reference(p, "tanh", dtype, outputs, state, grads, d_x, cell, "both")


MATRIX = list(itertools.product([False, True], [False, True], [False, True], GRAD_MODES))


@pytest.mark.parametrize(
    "time_major,with_h0,with_lengths,mode",
    MATRIX,
    ids=[f"{'tm' if tm else 'bm'}-{'h0' if h else 'noh0'}-{'len' if ln else 'nolen'}-{m}" for tm, h, ln, m in MATRIX],
)
def test_option_matrix(dtype, time_major, with_h0, with_lengths, mode):
    """Every combination of layout / initial state / lengths / gradient inputs, explicitly."""
    lengths = [0, 5, 2, 1, 5, 3] if with_lengths else None  # includes 0 and T, unsorted
    p = make_problem(1234, 6, 5, 3, 4, with_h0=with_h0, lengths=lengths).cast(dtype)
    cell, outputs, state, grads, d_x = run_dynamic(p, "tanh", dtype, time_major=time_major, mode=mode)
    check_against_reference(p, "tanh", dtype, outputs, state, grads, d_x, cell, mode)
    if with_lengths:
        # Row 0 has length 0: its state is the initial state, bit for bit.
        h0 = np.zeros(4, dtype) if p.h0 is None else p.h0[0].astype(dtype)
        np.testing.assert_array_equal(state[0], h0)


def test_without_backprop_returns_two_values(dtype, activation):
    p = make_problem(5, 3, 4, 2, 3, lengths=[4, 1, 0]).cast(dtype)
    cell = make_cell(p, activation, dtype)
    x = p.x.astype(dtype)
    result = rnnrs.dynamic_rnn(cell, x, sequence_length=p.lengths, initial_state=p.h0.astype(dtype))
    assert isinstance(result, tuple) and len(result) == 2
    outputs, state = result
    want_out, want_state, _ = p.reference(activation)
    assert_close(outputs, want_out, dtype, "outputs")
    assert_close(state, want_state, dtype, "state")
    # The same numbers with return_backprop=True and with training=True
    # (BasicRNNCell has no dropout, so training changes nothing).
    for kwargs in (dict(return_backprop=True), dict(training=True)):
        again = rnnrs.dynamic_rnn(cell, x, sequence_length=p.lengths, initial_state=p.h0.astype(dtype), **kwargs)
        np.testing.assert_array_equal(again[0], outputs)
        np.testing.assert_array_equal(again[1], state)


def test_backprop_can_be_called_repeatedly(dtype):
    p = make_problem(21, 4, 6, 3, 5, lengths=[6, 0, 3, 1]).cast(dtype)
    cell = make_cell(p, "tanh", dtype)
    _, _, backprop = rnnrs.dynamic_rnn(
        cell,
        p.x.astype(dtype),
        sequence_length=p.lengths,
        initial_state=p.h0.astype(dtype),
        return_backprop=True,
    )
    d_out, d_state = p.d_outputs.astype(dtype), p.d_state.astype(dtype)

    def flat(g):
        return [g.inputs, g.initial_state, g.weights["kernel"], g.weights["bias"]]

    first = flat(backprop(d_outputs=d_out, d_state=d_state))
    # Other calls in between must not disturb the cached forward pass.
    only_out = flat(backprop(d_outputs=d_out))
    only_state = flat(backprop(d_state=d_state))
    zeros = flat(backprop())
    second = flat(backprop(d_outputs=d_out, d_state=d_state))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    # Gradients are linear in (d_outputs, d_state).
    for a, b, c, z in zip(first, only_out, only_state, zeros):
        assert_close(a, b.astype(np.float64) + c.astype(np.float64), dtype, "linearity")
        assert np.all(z == 0)
    # The caller's arrays are not modified.
    np.testing.assert_array_equal(d_out, p.d_outputs.astype(dtype))
    np.testing.assert_array_equal(d_state, p.d_state.astype(dtype))


def test_backprop_uses_the_weights_of_its_forward_pass(dtype):
    """set_weights after the forward pass does not change what backprop computes."""
    p = make_problem(23, 3, 4, 2, 3, lengths=[4, 2, 0]).cast(dtype)
    cell = make_cell(p, "tanh", dtype)
    _, _, backprop = rnnrs.dynamic_rnn(cell, p.x.astype(dtype), sequence_length=p.lengths, return_backprop=True)
    cell.set_weights({"kernel": 3 * p.kernel, "bias": p.bias + 1})
    grads = backprop(d_outputs=p.d_outputs.astype(dtype), d_state=p.d_state.astype(dtype))
    p0 = replace(p, h0=None)
    _, _, (d_x, d_h0, d_kernel, d_bias) = p0.reference("tanh")
    assert_close(grads.inputs, d_x, dtype, "grads.inputs")
    assert_close(grads.weights["kernel"], d_kernel, dtype, "grads.weights['kernel']")
    assert_close(grads.weights["bias"], d_bias, dtype, "grads.weights['bias']")


def test_dynamic_rnn_does_not_modify_its_arguments(dtype):
    p = make_problem(22, 3, 4, 2, 3, lengths=[4, 2, 0]).cast(dtype)
    cell = make_cell(p, "tanh", dtype)
    x, h0, lengths = p.x.astype(dtype), p.h0.astype(dtype), p.lengths.copy()
    x_copy, h0_copy = x.copy(), h0.copy()
    weights = cell.get_weights()
    _, _, backprop = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=h0, return_backprop=True)
    backprop(d_outputs=p.d_outputs.astype(dtype), d_state=p.d_state.astype(dtype))
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(h0, h0_copy)
    np.testing.assert_array_equal(lengths, p.lengths)
    for name, w in cell.get_weights().items():
        np.testing.assert_array_equal(w, weights[name])  # backprop does not update weights


# --------------------------------------------------------------------------
# static_rnn
# --------------------------------------------------------------------------


@given(p=rnn_problems(), mode=grad_modes)
def test_static_rnn_matches_reference_and_dynamic_rnn(dtype, activation, p, mode):
    p = p.cast(dtype)
    B, T, I, H = p.shape
    cell = make_cell(p, activation, dtype)
    x = p.x.astype(dtype)
    input_list = [x[:, t, :] for t in range(T)]
    output_list, state, backprop = rnnrs.static_rnn(
        cell,
        input_list,
        sequence_length=p.lengths,
        initial_state=cast(p.h0, dtype),
        return_backprop=True,
    )
    assert isinstance(output_list, list) and len(output_list) == T
    assert all(o.shape == (B, H) for o in output_list)
    d_outputs, d_state = p.grads_for(mode)
    grads = backprop(
        d_outputs=None if d_outputs is None else [d_outputs[:, t].astype(dtype) for t in range(T)],
        d_state=cast(d_state, dtype),
    )
    assert isinstance(grads.inputs, list) and len(grads.inputs) == T
    assert all(g.shape == (B, I) for g in grads.inputs)
    outputs, d_x = np.stack(output_list, axis=1), np.stack(grads.inputs, axis=1)
    check_against_reference(p, activation, dtype, outputs, state, grads, d_x, cell, mode)

    # ... and the same as dynamic_rnn on the stacked inputs.
    _, dyn_out, dyn_state, dyn_grads, dyn_dx = run_dynamic(p, activation, dtype, mode=mode)
    assert_close(outputs, dyn_out.astype(np.float64), dtype, "static vs dynamic outputs")
    assert_close(state, dyn_state.astype(np.float64), dtype, "static vs dynamic state")
    assert_close(d_x, dyn_dx.astype(np.float64), dtype, "static vs dynamic grads.inputs")
    for name in ("kernel", "bias"):
        assert_close(grads.weights[name], dyn_grads.weights[name].astype(np.float64), dtype, name)


# --------------------------------------------------------------------------
# One step: cell(x, h)
# --------------------------------------------------------------------------


@given(p=rnn_problems(max_time=1))
def test_cell_call_is_one_step(dtype, activation, p):
    p = p.cast(dtype)
    B, T, I, H = p.shape
    cell = make_cell(p, activation, dtype)
    x = p.x[:, 0, :]
    h = np.zeros((B, H)) if p.h0 is None else p.h0
    output, new_state = cell(x.astype(dtype), h.astype(dtype))
    # h' = act([x, h] @ kernel + bias)
    expected = ref.activate(activation, np.concatenate([x, h], axis=1) @ p.kernel + p.bias)
    assert_close(output, expected, dtype, "output")
    assert_close(new_state, expected, dtype, "new_state")
    np.testing.assert_array_equal(output, new_state)


def test_chained_cell_calls_equal_dynamic_rnn(dtype, activation):
    p = make_problem(31, 3, 5, 4, 6).cast(dtype)
    cell = make_cell(p, activation, dtype)
    x = p.x.astype(dtype)
    h = p.h0.astype(dtype)
    steps = []
    for t in range(5):
        y, h = cell(x[:, t, :], h)
        steps.append(y)
    outputs, state = rnnrs.dynamic_rnn(cell, x, initial_state=p.h0.astype(dtype))
    assert_close(np.stack(steps, axis=1), outputs.astype(np.float64), dtype, "outputs")
    assert_close(h, state.astype(np.float64), dtype, "state")


# --------------------------------------------------------------------------
# Central finite differences directly against rnnrs (float64, small sizes)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("lengths", [None, [4, 0, 2]], ids=["full", "ragged"])
@pytest.mark.parametrize("activation_name", ACTIVATIONS)
def test_gradients_match_finite_differences(activation_name, lengths):
    p = make_problem(77, 3, 4, 2, 3, lengths=lengths)
    cell = rnnrs.BasicRNNCell(3, activation=activation_name, dtype=np.float64)
    x, h0, kernel, bias = p.x.copy(), p.h0.copy(), p.kernel.copy(), p.bias.copy()

    def loss():
        cell.set_weights({"kernel": kernel, "bias": bias})
        outputs, state = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=h0)
        return ref.rnn_loss(outputs, state, p.d_outputs, p.d_state)

    if activation_name == "relu":  # keep finite differences away from the kink
        _, _, cache = ref.rnn_forward(x, h0, kernel, bias, "relu", lengths)
        assert min(np.min(np.abs(s["z"])) for s in cache["steps"]) > 1e-4

    cell.set_weights({"kernel": kernel, "bias": bias})
    _, _, backprop = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=h0, return_backprop=True)
    grads = backprop(d_outputs=p.d_outputs, d_state=p.d_state)
    analytic = [grads.inputs, grads.initial_state, grads.weights["kernel"], grads.weights["bias"]]
    for name, got, a in zip(["inputs", "initial_state", "kernel", "bias"], analytic, [x, h0, kernel, bias]):
        numeric = ref.numerical_gradient(loss, a)
        np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-7, err_msg=name)


def test_relu_gradient_at_exactly_zero_is_zero(dtype):
    """Like TensorFlow's ReluGrad: no gradient where the pre-activation is exactly 0."""
    cell = rnnrs.BasicRNNCell(3, activation="relu", dtype=dtype)
    cell.set_weights({"kernel": np.zeros((5, 3)), "bias": np.zeros(3)})
    outputs, _, backprop = rnnrs.dynamic_rnn(cell, np.ones((2, 4, 2), dtype), return_backprop=True)
    assert np.all(outputs == 0)
    grads = backprop(d_outputs=np.ones((2, 4, 3), dtype), d_state=np.ones((2, 3), dtype))
    assert np.all(grads.weights["bias"] == 0)
    assert np.all(grads.weights["kernel"] == 0)
    assert np.all(grads.inputs == 0) and np.all(grads.initial_state == 0)


# --------------------------------------------------------------------------
# Padding
# --------------------------------------------------------------------------


def test_padding_never_influences_anything(dtype):
    """Garbage (even NaN) in padded inputs or padded d_outputs changes nothing."""
    lengths = [5, 0, 3, 1]
    p = make_problem(41, 4, 5, 3, 4, lengths=lengths).cast(dtype)
    pad = padding_mask(lengths, 4, 5)
    cell = make_cell(p, "tanh", dtype)

    def run(x, d_outputs):
        out, state, bp = rnnrs.dynamic_rnn(
            cell,
            x.astype(dtype),
            sequence_length=lengths,
            initial_state=p.h0.astype(dtype),
            return_backprop=True,
        )
        g = bp(d_outputs=d_outputs.astype(dtype), d_state=p.d_state.astype(dtype))
        return [out, state, g.inputs, g.initial_state, g.weights["kernel"], g.weights["bias"]]

    clean_x = p.x.copy()
    clean_x[pad] = 0.0  # the chapter's "padded with zero vectors"
    clean_d = p.d_outputs.copy()
    clean_d[pad] = 0.0
    baseline = run(clean_x, clean_d)
    assert np.all(baseline[2][pad] == 0)

    garbage_x = p.x.copy()
    garbage_x[pad] = 1e3
    garbage_d = p.d_outputs.copy()
    garbage_d[pad] = -1e3
    for got, want in zip(run(garbage_x, garbage_d), baseline):
        np.testing.assert_array_equal(got, want)

    nan_x = p.x.copy()
    nan_x[pad] = np.nan
    nan_d = p.d_outputs.copy()
    nan_d[pad] = np.nan
    got = run(nan_x, nan_d)
    names = ["outputs", "state", "grads.inputs", "grads.initial_state", "kernel", "bias"]
    for name, g, want in zip(names, got, baseline):
        np.testing.assert_array_equal(g, want, err_msg=f"NaN in padding leaked into {name}")


# --------------------------------------------------------------------------
# Cell construction, weights and dtypes
# --------------------------------------------------------------------------


def test_cell_properties(dtype):
    cell = rnnrs.BasicRNNCell(7, dtype=dtype)
    assert cell.num_units == 7
    assert cell.state_size == 7
    assert cell.output_size == 7
    assert cell.dtype == np.dtype(dtype)
    assert isinstance(cell.dtype, np.dtype)
    assert cell.input_size is None
    cell.build(4)
    assert cell.input_size == 4
    z = cell.zero_state(3)
    assert z.shape == (3, 7) and z.dtype == np.dtype(dtype)
    assert np.all(z == 0)


def test_default_dtype_is_float32():
    cell = rnnrs.BasicRNNCell(3)
    assert cell.dtype == np.dtype(np.float32)
    cell.build(2)
    assert all(w.dtype == np.float32 for w in cell.get_weights().values())


def test_lazy_build_on_first_use(dtype):
    cell = rnnrs.BasicRNNCell(5, dtype=dtype, seed=3)
    outputs, state = rnnrs.dynamic_rnn(cell, np.ones((2, 3, 4), dtype))
    assert cell.input_size == 4
    assert outputs.shape == (2, 3, 5) and outputs.dtype == np.dtype(dtype)
    assert state.shape == (2, 5) and state.dtype == np.dtype(dtype)
    w = cell.get_weights()
    assert w["kernel"].shape == (9, 5) and w["bias"].shape == (5,)
    # Building lazily or explicitly with the same seed gives the same weights.
    other = rnnrs.BasicRNNCell(5, dtype=dtype, seed=3)
    other.build(4)
    for name in ("kernel", "bias"):
        np.testing.assert_array_equal(other.get_weights()[name], w[name])


@given(seed=seeds, I=st.integers(1, 12), H=st.integers(1, 12))
def test_seed_determinism(dtype, seed, I, H):
    a = rnnrs.BasicRNNCell(H, dtype=dtype, seed=seed)
    b = rnnrs.BasicRNNCell(H, dtype=dtype, seed=seed)
    c = rnnrs.BasicRNNCell(H, dtype=dtype, seed=(seed + 1) % 2**32)
    for cell in (a, b, c):
        cell.build(I)
    wa, wb, wc = a.get_weights(), b.get_weights(), c.get_weights()
    assert set(wa) == {"kernel", "bias"}
    np.testing.assert_array_equal(wa["kernel"], wb["kernel"])
    np.testing.assert_array_equal(wa["bias"], wb["bias"])
    assert not np.array_equal(wa["kernel"], wc["kernel"])
    # Glorot-uniform: |w| <= sqrt(6 / (fan_in + fan_out)), fan_in = I + H, fan_out = H.
    kernel = wa["kernel"]
    assert kernel.shape == (I + H, H) and kernel.dtype == np.dtype(dtype)
    assert np.all(np.abs(kernel.astype(np.float64)) <= glorot_bound(I + H, H) * (1 + 1e-6))
    assert np.all(wa["bias"] == 0) and wa["bias"].shape == (H,)


def test_glorot_uniform_distribution(dtype):
    """A large kernel looks uniform on [-bound, bound]: mean ~0, std ~bound/sqrt(3)."""
    I, H = 96, 64
    cell = rnnrs.BasicRNNCell(H, dtype=dtype, seed=2024)
    cell.build(I)
    k = cell.get_weights()["kernel"].astype(np.float64)  # 10240 values
    bound = glorot_bound(I + H, H)
    assert np.max(np.abs(k)) <= bound * (1 + 1e-6)
    assert np.max(k) > 0.95 * bound and np.min(k) < -0.95 * bound
    assert abs(np.mean(k)) < 0.03 * bound
    np.testing.assert_allclose(np.std(k), bound / np.sqrt(3), rtol=0.03)
    assert len(np.unique(k)) > 0.99 * k.size


def test_unseeded_cells_differ():
    a, b = rnnrs.BasicRNNCell(8), rnnrs.BasicRNNCell(8)
    a.build(8)
    b.build(8)
    assert not np.array_equal(a.get_weights()["kernel"], b.get_weights()["kernel"])


def test_get_weights_returns_copies(dtype):
    cell = rnnrs.BasicRNNCell(4, dtype=dtype, seed=1)
    cell.build(3)
    before = {k: v.copy() for k, v in cell.get_weights().items()}
    x = np.ones((2, 3, 3), dtype)
    out_before, _ = rnnrs.dynamic_rnn(cell, x)
    w = cell.get_weights()
    w["kernel"][...] = 123.0
    w["bias"][...] = -5.0
    w["extra"] = np.zeros(1)
    for name, v in cell.get_weights().items():
        np.testing.assert_array_equal(v, before[name])
    assert set(cell.get_weights()) == {"kernel", "bias"}
    out_after, _ = rnnrs.dynamic_rnn(cell, x)
    np.testing.assert_array_equal(out_after, out_before)


def test_set_weights_copies_and_casts(dtype):
    other = np.float64 if dtype == np.float32 else np.float32
    rng = np.random.default_rng(9)
    kernel = rng.normal(size=(5, 3)).astype(other)
    bias = rng.normal(size=3).astype(other)
    cell = rnnrs.BasicRNNCell(3, dtype=dtype)
    cell.set_weights({"kernel": kernel, "bias": bias})
    assert cell.input_size == 2  # built from the kernel shape [I + H, H]
    got = cell.get_weights()
    assert got["kernel"].dtype == np.dtype(dtype) and got["bias"].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got["kernel"], kernel.astype(dtype))
    np.testing.assert_array_equal(got["bias"], bias.astype(dtype))
    kernel[...] = 0.0  # mutate the caller's arrays afterwards
    bias[...] = 0.0
    np.testing.assert_array_equal(cell.get_weights()["kernel"], got["kernel"])
    np.testing.assert_array_equal(cell.get_weights()["bias"], got["bias"])
    assert np.any(cell.get_weights()["kernel"] != 0)

    # Same dtype (no cast needed): still a copy.
    same_kernel = rng.normal(size=(5, 3)).astype(dtype)
    same_bias = rng.normal(size=3).astype(dtype)
    cell.set_weights({"kernel": same_kernel, "bias": same_bias})
    expected_kernel = same_kernel.copy()
    x = np.ones((2, 4, 2), dtype)
    out_before, _ = rnnrs.dynamic_rnn(cell, x)
    same_kernel[...] = 0.0
    same_bias[...] = 0.0
    np.testing.assert_array_equal(cell.get_weights()["kernel"], expected_kernel)
    out_after, _ = rnnrs.dynamic_rnn(cell, x)
    np.testing.assert_array_equal(out_after, out_before)


def test_set_weights_accepts_lists_and_ints():
    cell = rnnrs.BasicRNNCell(1, activation="identity", dtype=np.float64)
    cell.set_weights({"kernel": [[2], [1]], "bias": [0]})
    outputs, state = rnnrs.dynamic_rnn(cell, [[[1], [1], [1]]])
    # h1 = 2, h2 = 2 + 2 = 4, h3 = 2 + 4 = 6
    np.testing.assert_array_equal(outputs[0, :, 0], [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(state, [[6.0]])


def test_set_weights_changes_results(dtype):
    p = make_problem(51, 2, 3, 2, 3).cast(dtype)
    cell = make_cell(p, "tanh", dtype)
    x = p.x.astype(dtype)
    out1, _ = rnnrs.dynamic_rnn(cell, x)
    cell.set_weights({"kernel": 2 * p.kernel, "bias": p.bias})
    out2, _ = rnnrs.dynamic_rnn(cell, x)
    want2, _, _ = ref.rnn_forward(p.x, None, 2 * p.kernel, p.bias, "tanh")
    assert_close(out2, want2, dtype, "outputs after set_weights")
    assert not np.allclose(out1, out2)


# --------------------------------------------------------------------------
# Input conversion
# --------------------------------------------------------------------------


@pytest.mark.parametrize("int_dtype", [np.int32, np.int64, np.uint8])
def test_integer_inputs_are_cast(dtype, int_dtype):
    rng = np.random.default_rng(61)
    xi = rng.integers(0, 2, size=(3, 4, 2)).astype(int_dtype)
    p = make_problem(61, 3, 4, 2, 5, lengths=[4, 2, 0]).cast(dtype)
    cell = make_cell(p, "tanh", dtype)
    out_i, state_i = rnnrs.dynamic_rnn(cell, xi, sequence_length=p.lengths)
    out_f, state_f = rnnrs.dynamic_rnn(cell, xi.astype(dtype), sequence_length=p.lengths)
    assert out_i.dtype == np.dtype(dtype) and state_i.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out_i, out_f)
    np.testing.assert_array_equal(state_i, state_f)
    want, _, _ = ref.rnn_forward(xi.astype(np.float64), None, p.kernel, p.bias, "tanh", p.lengths)
    assert_close(out_i, want, dtype, "outputs")


def test_other_float_dtype_and_nested_lists_are_cast(dtype):
    other = np.float64 if dtype == np.float32 else np.float32
    p = make_problem(62, 2, 3, 2, 3).cast(np.float32)  # exactly representable in both
    cell = make_cell(p, "tanh", dtype)
    expected_out, expected_state = rnnrs.dynamic_rnn(cell, p.x.astype(dtype))
    for x in (p.x.astype(other), p.x.astype(dtype).tolist()):
        out, state = rnnrs.dynamic_rnn(cell, x)
        assert out.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(out, expected_out)
        np.testing.assert_array_equal(state, expected_state)


def test_non_contiguous_inputs(dtype):
    """Strided / transposed / Fortran-ordered views give the same results as copies."""
    p = make_problem(63, 4, 6, 3, 5, lengths=[6, 2, 0, 4]).cast(dtype)
    cell = make_cell(p, "tanh", dtype)
    x = p.x.astype(dtype)
    h0 = p.h0.astype(dtype)
    want_out, want_state = rnnrs.dynamic_rnn(cell, x, sequence_length=p.lengths, initial_state=h0)

    big = np.zeros((4, 12, 6), dtype)
    big[:, ::2, ::2] = x
    strided = big[:, ::2, ::2]
    reversed_view = np.ascontiguousarray(x[::-1])[::-1]
    fortran = np.asfortranarray(x)
    h0_view = np.asfortranarray(h0)
    for view in (strided, reversed_view, fortran):
        assert not view.flags.c_contiguous
        out, state = rnnrs.dynamic_rnn(cell, view, sequence_length=p.lengths, initial_state=h0_view)
        np.testing.assert_array_equal(out, want_out)
        np.testing.assert_array_equal(state, want_state)
    # time-major input given as a transposed (non-contiguous) view
    out_tm, state_tm = rnnrs.dynamic_rnn(
        cell, np.swapaxes(x, 0, 1), sequence_length=p.lengths, initial_state=h0, time_major=True
    )
    np.testing.assert_array_equal(np.swapaxes(out_tm, 0, 1), want_out)
    np.testing.assert_array_equal(state_tm, want_state)


def test_results_are_fresh_arrays(dtype):
    """Outputs and gradients are independent, writable NumPy arrays."""
    p = make_problem(64, 2, 3, 2, 3).cast(dtype)
    cell = make_cell(p, "tanh", dtype)
    x = p.x.astype(dtype)
    outputs, state, backprop = rnnrs.dynamic_rnn(cell, x, return_backprop=True)
    g1 = backprop(d_outputs=p.d_outputs.astype(dtype))
    keep = g1.inputs.copy()
    outputs[...] = 0
    state[...] = 0
    g1.inputs[...] = 0
    g2 = backprop(d_outputs=p.d_outputs.astype(dtype))
    np.testing.assert_array_equal(g2.inputs, keep)
    out_again, _ = rnnrs.dynamic_rnn(cell, x)
    assert np.any(out_again != 0)


def test_lstm_state_tuple():
    c, h = np.zeros((2, 3)), np.ones((2, 3))
    st_ = rnnrs.LSTMStateTuple(c, h)
    assert st_.c is c and st_.h is h
    assert st_._fields == ("c", "h")
    cc, hh = st_
    assert cc is c and hh is h
    assert isinstance(st_, tuple)
    assert rnnrs.LSTMStateTuple(c=1, h=2) == (1, 2)
    assert st_._replace(h=5).h == 5


def test_static_rnn_keyword_names():
    """DESIGN.md names the list ``input_list``; TF 1.x calls it ``inputs``."""
    cell = rnnrs.BasicRNNCell(4, seed=3)
    steps = [np.ones((2, 3)), np.zeros((2, 3))]
    by_position, _ = rnnrs.static_rnn(cell, steps)
    by_design_name, _ = rnnrs.static_rnn(cell, input_list=steps)
    by_tf_name, _ = rnnrs.static_rnn(cell, inputs=steps)
    for a, b, c in zip(by_position, by_design_name, by_tf_name):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    with pytest.raises(TypeError, match="input_list"):  # the first positional argument is TF's `inputs`
        rnnrs.static_rnn(cell, steps, input_list=steps)
    with pytest.raises(TypeError, match="input_list"):
        rnnrs.static_rnn(cell)


def test_set_weights_takes_mapping_keyword():
    cell = rnnrs.BasicRNNCell(2, seed=0)
    cell.set_weights(mapping={"kernel": np.eye(3, 2), "bias": np.ones(2)})
    assert np.array_equal(cell.get_weights()["bias"], np.ones(2, np.float32))
