"""GRUCell (both forms) against the NumPy reference in ``reference_gru.py``;
the reference itself against finite differences; initialisation, threads
and bad input."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference as ref
import reference_gru as rg
import rnnrs
from helpers import (
    ACTIVATIONS,
    GRAD_MODES,
    as_length_container,
    assert_close,
    glorot_bound,
    grad_modes,
    length_containers,
    padding_mask,
    ragged_lengths,
    raises_naming,
    seeds,
)

FORMS = pytest.mark.parametrize("reset_after", [False, True], ids=["reset_before", "reset_after"])


# --------------------------------------------------------------------------
# A random GRU problem
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class GRUProblem:
    """Float64 'master' arrays; ``cast(dtype)`` rounds them to what the library sees."""

    x: np.ndarray  # [B, T, I]; padded positions hold garbage
    h0: np.ndarray | None  # [B, H] or None (zeros)
    lengths: np.ndarray | None  # [B] or None (all T)
    weights: dict  # name -> array, the form's names
    reset_after: bool
    d_outputs: np.ndarray  # [B, T, H]
    d_state: np.ndarray  # [B, H]

    @property
    def shape(self):
        B, T, I = self.x.shape
        return B, T, I, self.d_state.shape[1]

    def cast(self, dtype):
        def c(a):
            return None if a is None else np.asarray(a, dtype=dtype).astype(np.float64)

        return replace(
            self,
            x=c(self.x),
            h0=c(self.h0),
            weights={k: c(v) for k, v in self.weights.items()},
            d_outputs=c(self.d_outputs),
            d_state=c(self.d_state),
        )

    def grads_for(self, mode):
        return {
            "outputs": (self.d_outputs, None),
            "state": (None, self.d_state),
            "both": (self.d_outputs, self.d_state),
            "neither": (None, None),
        }[mode]

    def reference(self, activation, mode="both"):
        """Float64 reference: outputs, state, and (d_x, d_h0, d_weights)."""
        outputs, state, cache = rg.gru_forward(
            self.x, self.h0, self.weights, activation, self.reset_after, self.lengths
        )
        return outputs, state, rg.gru_backward(cache, *self.grads_for(mode))


def make_problem(seed, B, T, I, H, reset_after, *, with_h0=True, lengths=None, weight_scale=1.0):
    """Deterministic random problem; every kernel uniform within its own (scaled) Glorot bound."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in rg.weight_shapes(I, H, reset_after).items():
        if len(shape) == 2:
            bound = weight_scale * glorot_bound(*shape)
            weights[name] = rng.uniform(-bound, bound, size=shape)
        else:
            weights[name] = rng.normal(scale=0.5, size=shape) + (1.0 if name == "gates/bias" else 0.0)
    return GRUProblem(
        x=rng.normal(size=(B, T, I)),
        h0=rng.uniform(-0.9, 0.9, size=(B, H)) if with_h0 else None,
        lengths=None if lengths is None else np.asarray(lengths, dtype=np.int64),
        weights=weights,
        reset_after=reset_after,
        d_outputs=rng.normal(size=(B, T, H)),
        d_state=rng.normal(size=(B, H)),
    )


@st.composite
def problem_specs(draw, max_batch=5, max_time=6, max_input=5, max_units=6, min_time=1):
    """Keyword arguments of ``make_problem`` except the form."""
    B = draw(st.integers(1, max_batch), label="B")
    T = draw(st.integers(min_time, max_time), label="T")
    return dict(
        B=B,
        T=T,
        I=draw(st.integers(1, max_input), label="I"),
        H=draw(st.integers(1, max_units), label="H"),
        with_h0=draw(st.booleans(), label="with_h0"),
        lengths=draw(st.none() | ragged_lengths(B, T), label="lengths"),
        weight_scale=draw(st.sampled_from([0.5, 1.0, 1.5]), label="weight_scale"),
        seed=draw(seeds, label="seed"),
    )


def make_cell(p, activation, dtype):
    B, T, I, H = p.shape
    cell = rnnrs.GRUCell(H, activation=activation, reset_after=p.reset_after, dtype=dtype)
    cell.set_weights(p.weights)
    return cell


def cast(a, dtype):
    return None if a is None else np.asarray(a, dtype=dtype)


def to_time_major(a):
    return None if a is None else np.ascontiguousarray(np.swapaxes(a, 0, 1))


def run_dynamic(p, activation, dtype, *, time_major=False, container="int64", mode="both"):
    """dynamic_rnn + backprop; results returned batch-major."""
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
    grads = backprop() if mode == "neither" else backprop(d_outputs=d_outputs, d_state=cast(d_state, dtype))
    d_x = grads.inputs
    if time_major:
        B, T, I, H = p.shape
        assert outputs.shape == (T, B, H) and d_x.shape == (T, B, I)
        outputs, d_x = np.swapaxes(outputs, 0, 1), np.swapaxes(d_x, 0, 1)
    return cell, outputs, state, grads, d_x


def check_against_reference(p, activation, dtype, outputs, state, grads, d_x, cell, mode):
    B, T, I, H = p.shape
    want_out, want_state, (w_dx, w_dh0, w_dw) = p.reference(activation, mode)
    assert_close(outputs, want_out, dtype, "outputs")
    assert_close(state, want_state, dtype, "state")
    assert_close(d_x, w_dx, dtype, "grads.inputs")
    assert_close(grads.initial_state, w_dh0, dtype, "grads.initial_state")
    assert set(grads.weights) == set(cell.get_weights()) == set(rg.weight_names(p.reset_after))
    for name in rg.weight_names(p.reset_after):
        assert_close(grads.weights[name], w_dw[name], dtype, f"grads.weights[{name!r}]")
    pad = padding_mask(p.lengths, B, T)
    assert np.all(np.asarray(outputs)[pad] == 0), "outputs past the length must be exactly 0"
    assert np.all(np.asarray(d_x)[pad] == 0), "grads.inputs past the length must be exactly 0"
    if mode == "neither":
        for g in [d_x, grads.initial_state, *grads.weights.values()]:
            assert np.all(np.asarray(g) == 0)


# --------------------------------------------------------------------------
# The reference itself: a hand-computed step, and finite differences
# --------------------------------------------------------------------------


def test_reference_by_hand():
    """I = H = 1, identity activation: every number written out."""
    s = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    x, h = 0.5, -0.4
    gk, gb = np.array([[0.2, -0.3], [0.7, 0.1]]), np.array([1.0, 0.5])
    r, u = s(0.2 * x + 0.7 * h + 1.0), s(-0.3 * x + 0.1 * h + 0.5)
    before = {
        "gates/kernel": gk,
        "gates/bias": gb,
        "candidate/kernel": np.array([[0.9], [-0.6]]),
        "candidate/bias": np.array([0.05]),
    }
    c = 0.9 * x - 0.6 * r * h + 0.05
    after = {
        "gates/kernel": gk,
        "gates/bias": gb,
        "candidate/input_kernel": np.array([[0.9]]),
        "candidate/hidden_kernel": np.array([[-0.6]]),
        "candidate/input_bias": np.array([0.05]),
        "candidate/hidden_bias": np.array([0.3]),
    }
    c_after = 0.9 * x + 0.05 + r * (-0.6 * h + 0.3)
    for weights, reset_after, cand in [(before, False, c), (after, True, c_after)]:
        outputs, state, _ = rg.gru_forward(np.array([[[x]]]), np.array([[h]]), weights, "identity", reset_after)
        np.testing.assert_allclose(state, [[u * h + (1 - u) * cand]], rtol=0, atol=1e-15)
        np.testing.assert_array_equal(outputs[:, 0], state)


@FORMS
def test_reference_masking(reset_after):
    lengths = [0, 4, 2, 1, 4]
    p = make_problem(7, 5, 4, 3, 6, reset_after, lengths=lengths)
    outputs, state, _ = p.reference("tanh")
    full, _, _ = replace(p, lengths=None).reference("tanh")
    pad = padding_mask(lengths, 5, 4)
    assert np.all(outputs[pad] == 0.0)
    np.testing.assert_array_equal(outputs[~pad], full[~pad])
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(state[b], p.h0[b] if n == 0 else outputs[b, n - 1])


FD_CASES = {
    "full": dict(lengths=None, with_h0=True),
    "ragged": dict(lengths=[3, 0, 1, 3], with_h0=True),
    "ragged_zero_h0": dict(lengths=[2, 3, 0, 1], with_h0=False),
}


def assert_away_from_relu_kink(p, activation):
    """Finite differences are invalid at relu's kink; the data is fixed, so check it stays away."""
    if activation == "relu":
        _, _, cache = rg.gru_forward(p.x, p.h0, p.weights, "relu", p.reset_after, p.lengths)
        assert min(np.min(np.abs(s["zc"])) for s in cache["steps"]) > 1e-4


@pytest.mark.parametrize("mode", GRAD_MODES)
@pytest.mark.parametrize("case", sorted(FD_CASES))
@pytest.mark.parametrize("activation", ACTIVATIONS)
@FORMS
def test_reference_matches_finite_differences(reset_after, activation, case, mode):
    p = make_problem(11, 4, 3, 2, 3, reset_after, **FD_CASES[case])
    assert_away_from_relu_kink(p, activation)
    B, T, I, H = p.shape
    x = p.x.copy()
    h0 = np.zeros((B, H)) if p.h0 is None else p.h0.copy()
    weights = {k: v.copy() for k, v in p.weights.items()}
    d_outputs, d_state = p.grads_for(mode)

    def loss():
        outputs, state, _ = rg.gru_forward(x, h0, weights, activation, reset_after, p.lengths)
        return ref.rnn_loss(outputs, state, d_outputs, d_state)

    _, _, cache = rg.gru_forward(x, h0, weights, activation, reset_after, p.lengths)
    d_x, d_h0, d_w = rg.gru_backward(cache, d_outputs, d_state)
    analytic = {"x": d_x, "h0": d_h0, **d_w}
    arrays = {"x": x, "h0": h0, **weights}
    for name, a in arrays.items():
        np.testing.assert_allclose(analytic[name], ref.numerical_gradient(loss, a), rtol=1e-6, atol=1e-7, err_msg=name)
    nonzero = any(np.any(g != 0.0) for g in analytic.values())
    assert nonzero == (mode != "neither")


# --------------------------------------------------------------------------
# rnnrs vs the reference
# --------------------------------------------------------------------------


@FORMS
@given(spec=problem_specs(), time_major=st.booleans(), mode=grad_modes, container=length_containers)
def test_dynamic_rnn_matches_reference(dtype, activation, reset_after, spec, time_major, mode, container):
    p = make_problem(reset_after=reset_after, **spec).cast(dtype)
    cell, outputs, state, grads, d_x = run_dynamic(
        p, activation, dtype, time_major=time_major, container=container, mode=mode
    )
    check_against_reference(p, activation, dtype, outputs, state, grads, d_x, cell, mode)


@FORMS
@settings(max_examples=max(4, settings.default.max_examples // 5))
@given(spec=problem_specs(max_batch=90, max_time=10, max_input=40, max_units=48), time_major=st.booleans())
def test_larger_problems_match_reference(dtype, activation, reset_after, spec, time_major):
    """Sizes large enough for several row groups and the parallel GEMM paths."""
    p = make_problem(reset_after=reset_after, **spec).cast(dtype)
    cell, outputs, state, grads, d_x = run_dynamic(p, activation, dtype, time_major=time_major)
    check_against_reference(p, activation, dtype, outputs, state, grads, d_x, cell, "both")


@FORMS
@pytest.mark.parametrize("B,T,I,H", [(1, 300, 3, 4), (70, 30, 33, 65)])
def test_long_and_wide_problems_match_reference(dtype, reset_after, B, T, I, H):
    rng = np.random.default_rng(B * T)
    lengths = rng.integers(0, T + 1, size=B)
    lengths[: min(B, 2)] = [T, 0][: min(B, 2)]
    p = make_problem(B + T, B, T, I, H, reset_after, lengths=lengths).cast(dtype)
    cell, outputs, state, grads, d_x = run_dynamic(p, "tanh", dtype)
    check_against_reference(p, "tanh", dtype, outputs, state, grads, d_x, cell, "both")


MATRIX = list(itertools.product([False, True], [False, True], [False, True], GRAD_MODES))


@FORMS
@pytest.mark.parametrize(
    "time_major,with_h0,with_lengths,mode",
    MATRIX,
    ids=[f"{'tm' if tm else 'bm'}-{'h0' if h else 'noh0'}-{'len' if ln else 'nolen'}-{m}" for tm, h, ln, m in MATRIX],
)
def test_option_matrix(dtype, reset_after, time_major, with_h0, with_lengths, mode):
    """Every combination of layout / initial state / lengths / gradient inputs, explicitly."""
    lengths = [0, 5, 2, 1, 5, 3] if with_lengths else None  # includes 0 and T, unsorted
    p = make_problem(1234, 6, 5, 3, 4, reset_after, with_h0=with_h0, lengths=lengths).cast(dtype)
    cell, outputs, state, grads, d_x = run_dynamic(p, "tanh", dtype, time_major=time_major, mode=mode)
    check_against_reference(p, "tanh", dtype, outputs, state, grads, d_x, cell, mode)
    if with_lengths:  # row 0 has length 0: its state is the initial state, bit for bit
        h0 = np.zeros(4, dtype) if p.h0 is None else p.h0[0].astype(dtype)
        np.testing.assert_array_equal(state[0], h0)


@FORMS
@given(spec=problem_specs(), mode=grad_modes)
def test_static_rnn_matches_reference_and_dynamic_rnn(dtype, activation, reset_after, spec, mode):
    p = make_problem(reset_after=reset_after, **spec).cast(dtype)
    B, T, I, H = p.shape
    cell = make_cell(p, activation, dtype)
    x = p.x.astype(dtype)
    output_list, state, backprop = rnnrs.static_rnn(
        cell,
        [x[:, t, :] for t in range(T)],
        sequence_length=p.lengths,
        initial_state=cast(p.h0, dtype),
        return_backprop=True,
    )
    assert isinstance(output_list, list) and len(output_list) == T
    d_outputs, d_state = p.grads_for(mode)
    grads = backprop(
        d_outputs=None if d_outputs is None else [d_outputs[:, t].astype(dtype) for t in range(T)],
        d_state=cast(d_state, dtype),
    )
    assert isinstance(grads.inputs, list) and len(grads.inputs) == T
    outputs, d_x = np.stack(output_list, axis=1), np.stack(grads.inputs, axis=1)
    check_against_reference(p, activation, dtype, outputs, state, grads, d_x, cell, mode)
    # ... and bit for bit what dynamic_rnn gives on the stacked inputs.
    _, dyn_out, dyn_state, dyn_grads, dyn_dx = run_dynamic(p, activation, dtype, mode=mode)
    np.testing.assert_array_equal(outputs, dyn_out)
    np.testing.assert_array_equal(state, dyn_state)
    np.testing.assert_array_equal(d_x, dyn_dx)
    np.testing.assert_array_equal(grads.initial_state, dyn_grads.initial_state)
    for name in rg.weight_names(reset_after):
        np.testing.assert_array_equal(grads.weights[name], dyn_grads.weights[name])


@FORMS
@given(spec=problem_specs(max_time=1))
def test_cell_call_is_one_step(dtype, activation, reset_after, spec):
    p = make_problem(reset_after=reset_after, **spec).cast(dtype)
    B, T, I, H = p.shape
    cell = make_cell(p, activation, dtype)
    x = p.x[:, 0, :]
    h = np.zeros((B, H)) if p.h0 is None else p.h0
    output, new_state = cell(x.astype(dtype), h.astype(dtype))
    expected = rg.gru_step(x, h, p.weights, activation, reset_after)["h_new"]
    assert_close(output, expected, dtype, "output")
    np.testing.assert_array_equal(output, new_state)


@FORMS
def test_chained_cell_calls_equal_dynamic_rnn(dtype, activation, reset_after):
    p = make_problem(31, 3, 5, 4, 6, reset_after).cast(dtype)
    cell = make_cell(p, activation, dtype)
    x, h = p.x.astype(dtype), p.h0.astype(dtype)
    steps = []
    for t in range(5):
        y, h = cell(x[:, t, :], h)
        steps.append(y)
    outputs, state = rnnrs.dynamic_rnn(cell, x, initial_state=p.h0.astype(dtype))
    np.testing.assert_array_equal(np.stack(steps, axis=1), outputs)
    np.testing.assert_array_equal(h, state)


# --------------------------------------------------------------------------
# Central finite differences directly against rnnrs (float64)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("lengths", [None, [4, 0, 2]], ids=["full", "ragged"])
@pytest.mark.parametrize("activation_name", ACTIVATIONS)
@FORMS
def test_gradients_match_finite_differences(reset_after, activation_name, lengths):
    p = make_problem(77, 3, 4, 2, 3, reset_after, lengths=lengths)
    assert_away_from_relu_kink(p, activation_name)
    cell = rnnrs.GRUCell(3, activation=activation_name, reset_after=reset_after, dtype=np.float64)
    x, h0 = p.x.copy(), p.h0.copy()
    weights = {k: v.copy() for k, v in p.weights.items()}

    def loss():
        cell.set_weights(weights)
        outputs, state = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=h0)
        return ref.rnn_loss(outputs, state, p.d_outputs, p.d_state)

    cell.set_weights(weights)
    _, _, backprop = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=h0, return_backprop=True)
    grads = backprop(d_outputs=p.d_outputs, d_state=p.d_state)
    analytic = {"inputs": grads.inputs, "initial_state": grads.initial_state, **grads.weights}
    arrays = {"inputs": x, "initial_state": h0, **weights}
    assert set(analytic) == set(arrays)
    for name, a in arrays.items():
        numeric = ref.numerical_gradient(loss, a)
        assert np.any(numeric != 0) or name == "inputs" and lengths is not None
        np.testing.assert_allclose(analytic[name], numeric, rtol=1e-6, atol=1e-7, err_msg=name)


# --------------------------------------------------------------------------
# Backprop object, padding, edge sizes
# --------------------------------------------------------------------------


@FORMS
def test_backprop_is_repeatable_linear_and_uses_the_forward_weights(dtype, reset_after):
    p = make_problem(21, 4, 6, 3, 5, reset_after, lengths=[6, 0, 3, 1]).cast(dtype)
    cell = make_cell(p, "tanh", dtype)
    _, _, backprop = rnnrs.dynamic_rnn(
        cell, p.x.astype(dtype), sequence_length=p.lengths, initial_state=p.h0.astype(dtype), return_backprop=True
    )
    # Changing the weights afterwards does not change what backprop computes.
    cell.set_weights({k: 2 * v for k, v in p.weights.items()})
    d_out, d_state = p.d_outputs.astype(dtype), p.d_state.astype(dtype)

    def flat(g):
        return [g.inputs, g.initial_state, *(g.weights[k] for k in rg.weight_names(reset_after))]

    first = flat(backprop(d_outputs=d_out, d_state=d_state))
    only_out, only_state = flat(backprop(d_outputs=d_out)), flat(backprop(d_state=d_state))
    zeros = flat(backprop())
    for a, b in zip(first, flat(backprop(d_outputs=d_out, d_state=d_state))):
        np.testing.assert_array_equal(a, b)
    for a, b, c, z in zip(first, only_out, only_state, zeros):
        assert_close(a, b.astype(np.float64) + c.astype(np.float64), dtype, "linearity")
        assert np.all(z == 0)
    _, _, (d_x, d_h0, d_w) = p.reference("tanh")
    for got, want in zip(first, [d_x, d_h0, *(d_w[k] for k in rg.weight_names(reset_after))]):
        assert_close(got, want, dtype, "forward weights")


@FORMS
def test_padding_never_influences_anything(dtype, reset_after):
    """Garbage (even NaN) in padded inputs or padded d_outputs changes nothing."""
    lengths = [5, 0, 3, 1]
    p = make_problem(41, 4, 5, 3, 4, reset_after, lengths=lengths).cast(dtype)
    pad = padding_mask(lengths, 4, 5)
    cell = make_cell(p, "tanh", dtype)

    def run(fill_x, fill_d):
        x, d = p.x.copy(), p.d_outputs.copy()
        x[pad], d[pad] = fill_x, fill_d
        out, state, bp = rnnrs.dynamic_rnn(
            cell, x.astype(dtype), sequence_length=lengths, initial_state=p.h0.astype(dtype), return_backprop=True
        )
        g = bp(d_outputs=d.astype(dtype), d_state=p.d_state.astype(dtype))
        return [out, state, g.inputs, g.initial_state, *g.weights.values()]

    baseline = run(0.0, 0.0)
    assert all(np.all(np.isfinite(a)) for a in baseline)
    for fill_x, fill_d in [(1e3, -1e3), (np.nan, np.nan)]:
        for got, want in zip(run(fill_x, fill_d), baseline):
            np.testing.assert_array_equal(got, want)


@FORMS
def test_nan_in_an_active_input_propagates_to_its_row_only(dtype, reset_after):
    cell = rnnrs.GRUCell(3, reset_after=reset_after, dtype=dtype, seed=0)
    x = np.random.default_rng(0).normal(size=(3, 4, 2)).astype(dtype)
    x[0, 1, 0] = np.nan
    outputs, state, backprop = rnnrs.dynamic_rnn(cell, x, return_backprop=True)
    assert np.all(np.isnan(outputs[0, 1:])) and np.all(np.isfinite(outputs[0, :1]))
    assert np.all(np.isfinite(outputs[1:])) and np.all(np.isfinite(state[1:]))
    grads = backprop(d_state=np.ones((3, 3), dtype))
    assert np.all(np.isfinite(grads.inputs[1:]))


@FORMS
@pytest.mark.parametrize("time_major", [False, True])
def test_zero_time_steps_and_zero_lengths(dtype, reset_after, time_major):
    B, I, H = 3, 2, 4
    cell = rnnrs.GRUCell(H, reset_after=reset_after, dtype=dtype, seed=2)
    h0 = np.random.default_rng(1).normal(size=(B, H)).astype(dtype)
    d_state = np.random.default_rng(2).normal(size=(B, H)).astype(dtype)
    for x, lengths in [
        (np.zeros((0, B, I) if time_major else (B, 0, I), dtype), None),
        (np.ones((4, B, I) if time_major else (B, 4, I), dtype), [0] * B),
    ]:
        outputs, state, backprop = rnnrs.dynamic_rnn(
            cell, x, sequence_length=lengths, initial_state=h0, time_major=time_major, return_backprop=True
        )
        assert np.all(outputs == 0) and outputs.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(state, h0)
        grads = backprop(d_outputs=np.ones_like(outputs), d_state=d_state)
        assert grads.inputs.shape == x.shape and np.all(grads.inputs == 0)
        np.testing.assert_array_equal(grads.initial_state, d_state)
        assert all(np.all(g == 0) for g in grads.weights.values())
        assert set(grads.weights) == set(rg.weight_names(reset_after))


@FORMS
def test_empty_batch(dtype, reset_after):
    cell = rnnrs.GRUCell(4, reset_after=reset_after, dtype=dtype, seed=2)
    outputs, state, backprop = rnnrs.dynamic_rnn(cell, np.zeros((0, 3, 2), dtype), return_backprop=True)
    assert outputs.shape == (0, 3, 4) and state.shape == (0, 4)
    grads = backprop(d_outputs=np.zeros((0, 3, 4), dtype), d_state=np.zeros((0, 4), dtype))
    assert grads.inputs.shape == (0, 3, 2) and grads.initial_state.shape == (0, 4)
    assert all(np.all(g == 0) for g in grads.weights.values())


# --------------------------------------------------------------------------
# Construction and initialisation
# --------------------------------------------------------------------------


@FORMS
def test_cell_properties(dtype, reset_after):
    cell = rnnrs.GRUCell(7, reset_after=reset_after, dtype=dtype)
    assert (cell.num_units, cell.state_size, cell.output_size) == (7, 7, 7)
    assert cell.dtype == np.dtype(dtype) and cell.reset_after is reset_after
    assert cell.activation == "tanh" and cell.input_size is None
    assert f"reset_after={reset_after}" in repr(cell)
    z = cell.zero_state(3)
    assert z.shape == (3, 7) and z.dtype == np.dtype(dtype) and np.all(z == 0)
    cell.build(4)
    weights = cell.get_weights()
    assert list(weights) == list(rg.weight_names(reset_after))
    for name, shape in rg.weight_shapes(4, 7, reset_after).items():
        assert weights[name].shape == shape and weights[name].dtype == np.dtype(dtype), name
    assert isinstance(rnnrs.GRUCell(2), rnnrs.RNNCell) and "GRUCell" in rnnrs.__all__


def test_defaults():
    cell = rnnrs.GRUCell(3)
    assert cell.reset_after is False and cell.dtype == np.dtype(np.float32) and cell.activation == "tanh"
    cell.build(2)
    assert set(cell.get_weights()) == set(rg.RESET_BEFORE_NAMES)
    assert all(w.dtype == np.float32 for w in cell.get_weights().values())
    # TensorFlow 1.x's positional order: the third argument is `reuse` (no effect); reset_after is keyword-only.
    assert rnnrs.GRUCell(3, "relu", True).reset_after is False
    assert rnnrs.GRUCell(3, "relu", reset_after=True).reset_after is True


@FORMS
@given(seed=seeds, I=st.integers(0, 12), H=st.integers(1, 12))
def test_seed_determinism_glorot_bounds_and_biases(dtype, reset_after, seed, I, H):
    a, b = (rnnrs.GRUCell(H, reset_after=reset_after, dtype=dtype, seed=seed) for _ in range(2))
    c = rnnrs.GRUCell(H, reset_after=reset_after, dtype=dtype, seed=(seed + 1) % 2**32)
    for cell in (a, b, c):
        cell.build(I)
    wa, wb, wc = a.get_weights(), b.get_weights(), c.get_weights()
    for name in wa:
        np.testing.assert_array_equal(wa[name], wb[name])
    assert not np.array_equal(wa["gates/kernel"], wc["gates/kernel"])
    for name, shape in rg.weight_shapes(I, H, reset_after).items():
        w = wa[name].astype(np.float64)
        if name == "gates/bias":
            assert np.all(w == 1.0), "gates/bias starts at ones (TF 1.x default)"
        elif len(shape) == 1:
            assert np.all(w == 0.0), f"{name} starts at zeros"
        else:  # Glorot-uniform over the kernel's own shape
            assert np.all(np.abs(w) <= glorot_bound(*shape) * (1 + 1e-6)), name


@FORMS
def test_each_kernel_has_its_own_glorot_bound(reset_after):
    """A large kernel fills its own bound (not a bound shared with another kernel)."""
    I, H = 8, 32
    cell = rnnrs.GRUCell(H, reset_after=reset_after, dtype=np.float64, seed=2024)
    cell.build(I)
    for name, w in cell.get_weights().items():
        if w.ndim == 2:
            bound = glorot_bound(*w.shape)
            assert bound * 0.9 < np.max(np.abs(w)) <= bound, name
            np.testing.assert_allclose(np.std(w), bound / np.sqrt(3), rtol=0.1, err_msg=name)


def test_lazy_build_equals_explicit_build(dtype):
    lazy = rnnrs.GRUCell(5, dtype=dtype, seed=3)
    rnnrs.dynamic_rnn(lazy, np.ones((2, 3, 4), dtype))
    explicit = rnnrs.GRUCell(5, dtype=dtype, seed=3)
    explicit.build(4)
    for name, w in explicit.get_weights().items():
        np.testing.assert_array_equal(lazy.get_weights()[name], w)


def test_unseeded_cells_differ():
    a, b = rnnrs.GRUCell(8), rnnrs.GRUCell(8)
    a.build(8)
    b.build(8)
    assert not np.array_equal(a.get_weights()["gates/kernel"], b.get_weights()["gates/kernel"])


# --------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------


def run_everything(p, dtype):
    B, T, I, H = p.shape
    cell = make_cell(p, "tanh", dtype)
    x, h0 = p.x.astype(dtype), p.h0.astype(dtype)
    d_out, d_state = p.d_outputs.astype(dtype), p.d_state.astype(dtype)
    outputs, state, bp = rnnrs.dynamic_rnn(cell, x, sequence_length=p.lengths, initial_state=h0, return_backprop=True)
    g = bp(d_outputs=d_out, d_state=d_state)
    results = [outputs, state, g.inputs, g.initial_state, *g.weights.values()]
    out_tm, _, bp_tm = rnnrs.dynamic_rnn(
        cell,
        np.swapaxes(x, 0, 1),
        sequence_length=p.lengths,
        initial_state=h0,
        time_major=True,
        return_backprop=True,
    )
    g = bp_tm(d_outputs=np.swapaxes(d_out, 0, 1))
    results += [out_tm, g.inputs, *g.weights.values()]
    results += list(cell(x[:, 0], h0))
    return results


@FORMS
def test_bitwise_identical_across_thread_counts(dtype, reset_after, parallel_everything):
    B, T, I, H = 64, 30, 32, 64
    lengths = np.random.default_rng(99).integers(0, T + 1, size=B)
    lengths[:3] = [0, T, 1]
    p = make_problem(99, B, T, I, H, reset_after, lengths=lengths)
    per_count = {}
    for n in (1, 2, 3):
        rnnrs.set_num_threads(n)
        per_count[n] = run_everything(p, dtype)
    assert all(np.all(np.isfinite(a)) for a in per_count[1])
    for n in (2, 3):
        for i, (a, b) in enumerate(zip(per_count[1], per_count[n])):
            assert a.dtype == b.dtype == np.dtype(dtype)
            assert np.array_equal(a, b), f"result #{i} differs between 1 and {n} threads"


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [1, 0, "True", None, 1.0, [True]])
def test_reset_after_must_be_a_bool(bad):
    with raises_naming(TypeError, "reset_after"):
        rnnrs.GRUCell(4, reset_after=bad)
    assert rnnrs.GRUCell(4, reset_after=np.bool_(True)).reset_after is True


def test_bad_activation_and_num_units():
    with raises_naming(ValueError, "activation"):
        rnnrs.GRUCell(4, activation="softmax")
    with raises_naming(TypeError, "activation"):
        rnnrs.GRUCell(4, activation=3)
    assert rnnrs.GRUCell(4, activation=None).activation == "tanh"  # TensorFlow 1.x's default
    with raises_naming(ValueError, "num_units"):
        rnnrs.GRUCell(0)


@FORMS
@pytest.mark.parametrize("built", [False, True], ids=["unbuilt", "built"])
def test_set_weights_with_the_other_forms_names(dtype, reset_after, built):
    cell = rnnrs.GRUCell(3, reset_after=reset_after, dtype=dtype, seed=1)
    other = make_problem(0, 1, 1, 2, 3, not reset_after).weights
    if built:
        cell.build(2)
    before = cell.get_weights() if built else None
    foreign = sorted(set(other) - set(rg.weight_names(reset_after)))
    with raises_naming(ValueError, "reset_after") as info:
        cell.set_weights(other)
    assert all(name in str(info.value) for name in foreign)
    # A single foreign name is enough to refuse the whole mapping.
    own = make_problem(0, 1, 1, 2, 3, reset_after).weights
    with raises_naming(ValueError, foreign[0]):
        cell.set_weights({**own, foreign[0]: other[foreign[0]]})
    assert cell.built == built
    if built:
        for name, w in cell.get_weights().items():
            np.testing.assert_array_equal(w, before[name])


@FORMS
def test_set_weights_wrong_shapes(dtype, reset_after):
    I, H = 2, 3
    cell = rnnrs.GRUCell(H, reset_after=reset_after, dtype=dtype, seed=1)
    cell.build(I)
    before = cell.get_weights()
    for name, shape in rg.weight_shapes(I, H, reset_after).items():
        for bad in [shape[:-1] + (shape[-1] + 1,), shape + (1,), (shape[0] + 1,) + shape[1:]]:
            with raises_naming(ValueError, name):
                cell.set_weights({name: np.zeros(bad)})
    for name, w in cell.get_weights().items():
        np.testing.assert_array_equal(w, before[name])
    # Unbuilt: all names are needed, and the gates kernel must fit num_units.
    fresh = rnnrs.GRUCell(H, reset_after=reset_after, dtype=dtype)
    with raises_naming(ValueError, "mapping"):
        fresh.set_weights({"gates/kernel": np.zeros((I + H, 2 * H))})
    with raises_naming(ValueError, "gates/kernel"):
        fresh.set_weights({"gates/bias": np.zeros(2 * H)})
    weights = make_problem(0, 1, 1, I, H, reset_after).weights
    weights["gates/kernel"] = np.zeros((I + H, 2 * H + 2))
    with raises_naming(ValueError, "gates/kernel"):
        fresh.set_weights(weights)
    assert not fresh.built


@FORMS
def test_bad_run_arguments(dtype, reset_after):
    B, T, I, H = 3, 4, 2, 5
    cell = rnnrs.GRUCell(H, reset_after=reset_after, dtype=dtype, seed=0)
    x = np.zeros((B, T, I), dtype)
    _, _, backprop = rnnrs.dynamic_rnn(cell, x, return_backprop=True)
    with raises_naming(ValueError, "inputs"):
        rnnrs.dynamic_rnn(cell, np.zeros((B, T, I + 1), dtype))
    with raises_naming(ValueError, "initial_state"):
        rnnrs.dynamic_rnn(cell, x, initial_state=np.zeros((B, H + 1), dtype))
    with raises_naming(ValueError, "sequence_length"):
        rnnrs.dynamic_rnn(cell, x, sequence_length=[1, T + 1, 0])
    with raises_naming(ValueError, "d_outputs"):
        backprop(d_outputs=np.zeros((B, T, H + 1), dtype))
    with raises_naming(ValueError, "d_state"):
        backprop(d_state=np.zeros((B + 1, H), dtype))
    with raises_naming(ValueError, "state"):
        cell(np.zeros((B, I), dtype), np.zeros((B, H - 1), dtype))


@FORMS
def test_the_core_rejects_inconsistent_weights(reset_after):
    """The binding re-checks what the Python cell already guarantees."""
    from rnnrs import _rnnrs

    p = make_problem(0, 2, 3, 2, 3, reset_after)
    weights = {k: v.copy() for k, v in p.weights.items()}
    x, h0 = p.x, p.h0
    options = {"activation": "tanh", "reset_after": reset_after}
    core = _rnnrs.Cell("gru", "float64", options, weights)
    _, _, cache = _rnnrs.forward(core, x, [h0], None, False)
    with pytest.raises(ValueError, match="gates/kernel: expected shape"):
        _rnnrs.Cell("gru", "float64", options, {**weights, "gates/kernel": np.zeros((5, 5))})
    with pytest.raises(ValueError, match="weights: expected an entry"):
        _rnnrs.Cell("gru", "float64", options, {"gates/kernel": weights["gates/kernel"]})
    with pytest.raises(TypeError, match="gates/bias: expected a numpy.float64 array, got list"):
        _rnnrs.Cell("gru", "float64", options, {**weights, "gates/bias": [1.0] * 6})
    other = make_problem(0, 2, 3, 2, 3, not reset_after).weights
    with pytest.raises(ValueError, match="weights: expected an entry"):
        _rnnrs.Cell("gru", "float64", options, other)
    with pytest.raises(TypeError, match="cache"):
        _rnnrs.backward(core, None, None)
    d_x, d_h0, d_w = _rnnrs.backward(cache, None, None)
    assert d_x.shape == x.shape and d_h0[0].shape == h0.shape and set(d_w) == set(weights)
