"""BasicLSTMCell and LSTMCell: against the NumPy reference (reference_lstm.py),
finite differences, the reference itself, weights, threads and bad input."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference as ref
import reference_lstm as rl
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

PEEPHOLES = ("w_i_diag", "w_f_diag", "w_o_diag")
PROJECTION = "projection/kernel"


# --------------------------------------------------------------------------
# A random LSTM problem
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """LSTMCell's options (the defaults are BasicLSTMCell's)."""

    use_peepholes: bool = False
    cell_clip: Optional[float] = None
    num_proj: Optional[int] = None
    proj_clip: Optional[float] = None
    forget_bias: float = 1.0
    activation: str = "tanh"

    def cell(self, H, dtype, seed=None):
        return rnnrs.LSTMCell(
            H,
            use_peepholes=self.use_peepholes,
            cell_clip=self.cell_clip,
            num_proj=self.num_proj,
            proj_clip=self.proj_clip,
            forget_bias=self.forget_bias,
            activation=self.activation,
            dtype=dtype,
            seed=seed,
        )


#: BasicLSTMCell's options, make_problem's default (one shared immutable instance).
DEFAULT_OPTIONS = Options()


@dataclass(frozen=True)
class LSTMProblem:
    """Float64 master arrays; ``cast(dtype)`` rounds them to what the library sees."""

    x: np.ndarray  # [B, T, I]; padded positions hold garbage
    c0: Optional[np.ndarray]  # [B, H] or None (zero state)
    h0: Optional[np.ndarray]  # [B, P] or None
    lengths: Optional[np.ndarray]  # [B] or None
    weights: dict  # TF names -> arrays
    options: Options
    d_outputs: np.ndarray  # [B, T, P]
    d_c: np.ndarray  # [B, H]
    d_h: np.ndarray  # [B, P]
    H: int = field(default=0)

    @property
    def shape(self):
        B, T, I = self.x.shape
        return B, T, I, self.H, self.d_h.shape[1]

    def cast(self, dtype):
        def c(a):
            return None if a is None else np.asarray(a, dtype=dtype).astype(np.float64)

        return replace(
            self,
            x=c(self.x),
            c0=c(self.c0),
            h0=c(self.h0),
            weights={k: c(v) for k, v in self.weights.items()},
            d_outputs=c(self.d_outputs),
            d_c=c(self.d_c),
            d_h=c(self.d_h),
        )

    def grads_for(self, mode):
        """(d_outputs, d_state) for a GRAD_MODES entry; None stands for zeros."""
        return {
            "outputs": (self.d_outputs, None),
            "state": (None, (self.d_c, self.d_h)),
            "both": (self.d_outputs, (self.d_c, self.d_h)),
            "neither": (None, None),
        }[mode]

    def forward(self):
        o = self.options
        return rl.lstm_forward(
            self.x,
            self.c0,
            self.h0,
            self.weights,
            self.lengths,
            forget_bias=o.forget_bias,
            activation=o.activation,
            cell_clip=o.cell_clip,
            proj_clip=o.proj_clip,
        )

    def reference(self, mode="both"):
        """outputs, (c, h), (d_x, d_c0, d_h0, d_weights)."""
        outputs, state, cache = self.forward()
        d_outputs, d_state = self.grads_for(mode)
        d_c, d_h = (None, None) if d_state is None else d_state
        return outputs, state, rl.lstm_backward(cache, d_outputs, d_c, d_h)


def make_problem(seed, B, T, I, H, options=DEFAULT_OPTIONS, *, with_state=True, lengths=None, weight_scale=1.0):
    rng = np.random.default_rng(seed)
    P = options.num_proj or H
    bound = weight_scale * glorot_bound(I + P, 4 * H)
    weights = {
        "kernel": rng.uniform(-bound, bound, size=(I + P, 4 * H)),
        "bias": rng.normal(scale=0.5, size=4 * H),
    }
    if options.use_peepholes:
        for name in PEEPHOLES:
            weights[name] = rng.uniform(-1.0, 1.0, size=H)
    if options.num_proj is not None:
        b = weight_scale * glorot_bound(H, P)
        weights[PROJECTION] = rng.uniform(-b, b, size=(H, P))
    return LSTMProblem(
        x=rng.normal(size=(B, T, I)),
        c0=rng.uniform(-1.5, 1.5, size=(B, H)) if with_state else None,
        h0=rng.uniform(-0.9, 0.9, size=(B, P)) if with_state else None,
        lengths=None if lengths is None else np.asarray(lengths, dtype=np.int64),
        weights=weights,
        options=options,
        d_outputs=rng.normal(size=(B, T, P)),
        d_c=rng.normal(size=(B, H)),
        d_h=rng.normal(size=(B, P)),
        H=H,
    )


@st.composite
def options_strategy(draw, max_proj=5):
    return Options(
        use_peepholes=draw(st.booleans(), label="use_peepholes"),
        cell_clip=draw(st.none() | st.sampled_from([0.2, 0.7, 2.0]), label="cell_clip"),
        num_proj=draw(st.none() | st.integers(1, max_proj), label="num_proj"),
        proj_clip=draw(st.none() | st.sampled_from([0.05, 0.3]), label="proj_clip"),
        forget_bias=draw(st.sampled_from([1.0, 0.0, 2.5, -0.5]), label="forget_bias"),
        activation=draw(st.sampled_from(ACTIVATIONS), label="activation"),
    )


@st.composite
def lstm_problems(draw, max_batch=5, max_time=6, max_input=5, max_units=6):
    B = draw(st.integers(1, max_batch), label="B")
    T = draw(st.integers(1, max_time), label="T")
    I = draw(st.integers(1, max_input), label="I")
    H = draw(st.integers(1, max_units), label="H")
    options = draw(options_strategy(), label="options")
    with_state = draw(st.booleans(), label="with_state")
    lengths = draw(st.none() | ragged_lengths(B, T), label="lengths")
    weight_scale = draw(st.sampled_from([0.5, 1.0, 2.0]), label="weight_scale")
    seed = draw(seeds, label="seed")
    return make_problem(seed, B, T, I, H, options, with_state=with_state, lengths=lengths, weight_scale=weight_scale)


def cast(a, dtype):
    return None if a is None else np.asarray(a, dtype=dtype)


def to_time_major(a):
    return None if a is None else np.ascontiguousarray(np.swapaxes(a, 0, 1))


def make_cell(p, dtype):
    cell = p.options.cell(p.H, dtype)
    cell.set_weights(p.weights)
    return cell


def initial_state(p, dtype):
    if p.c0 is None:
        return None
    return rnnrs.LSTMStateTuple(cast(p.c0, dtype), cast(p.h0, dtype))


def run_dynamic(p, dtype, *, time_major=False, container="int64", mode="both", cell=None):
    """dynamic_rnn + backprop; results batch-major."""
    cell = make_cell(p, dtype) if cell is None else cell
    x = cast(p.x, dtype)
    if time_major:
        x = to_time_major(x)
    outputs, state, backprop = rnnrs.dynamic_rnn(
        cell,
        x,
        sequence_length=as_length_container(p.lengths, container),
        initial_state=initial_state(p, dtype),
        time_major=time_major,
        return_backprop=True,
    )
    d_outputs, d_state = p.grads_for(mode)
    d_outputs = cast(d_outputs, dtype)
    if time_major:
        d_outputs = to_time_major(d_outputs)
    if d_state is not None:
        d_state = rnnrs.LSTMStateTuple(cast(d_state[0], dtype), cast(d_state[1], dtype))
    grads = backprop() if mode == "neither" else backprop(d_outputs=d_outputs, d_state=d_state)
    d_x = grads.inputs
    if time_major:
        outputs, d_x = np.swapaxes(outputs, 0, 1), np.swapaxes(d_x, 0, 1)
    return cell, outputs, state, grads, d_x


def check_against_reference(p, dtype, outputs, state, grads, d_x, cell, mode):
    B, T, I, H, P = p.shape
    want_out, (want_c, want_h), (w_dx, w_dc0, w_dh0, w_dw) = p.reference(mode)
    assert_close(outputs, want_out, dtype, "outputs")
    assert isinstance(state, rnnrs.LSTMStateTuple)
    assert_close(state.c, want_c, dtype, "state.c")
    assert_close(state.h, want_h, dtype, "state.h")
    assert_close(d_x, w_dx, dtype, "grads.inputs")
    assert isinstance(grads.initial_state, rnnrs.LSTMStateTuple)
    assert_close(grads.initial_state.c, w_dc0, dtype, "grads.initial_state.c")
    assert_close(grads.initial_state.h, w_dh0, dtype, "grads.initial_state.h")
    assert set(grads.weights) == set(cell.get_weights()) == set(w_dw)
    for name, want in w_dw.items():
        assert_close(grads.weights[name], want, dtype, f"grads.weights[{name!r}]")
    pad = padding_mask(p.lengths, B, T)
    assert np.all(np.asarray(outputs)[pad] == 0), "outputs past the length must be exactly 0"
    assert np.all(np.asarray(d_x)[pad] == 0), "grads.inputs past the length must be exactly 0"
    if mode == "neither":
        flat = [d_x, *grads.initial_state, *grads.weights.values()]
        assert all(np.all(np.asarray(g) == 0) for g in flat)


# --------------------------------------------------------------------------
# dynamic_rnn vs the reference
# --------------------------------------------------------------------------


@given(p=lstm_problems(), time_major=st.booleans(), mode=grad_modes, container=length_containers)
def test_dynamic_rnn_matches_reference(dtype, p, time_major, mode, container):
    p = p.cast(dtype)
    cell, outputs, state, grads, d_x = run_dynamic(p, dtype, time_major=time_major, container=container, mode=mode)
    check_against_reference(p, dtype, outputs, state, grads, d_x, cell, mode)


@settings(max_examples=max(4, settings.default.max_examples // 4))
@given(p=lstm_problems(max_batch=70, max_time=10, max_input=24, max_units=40), time_major=st.booleans())
def test_larger_problems_match_reference(dtype, p, time_major):
    """Sizes large enough for the core's row groups and parallel GEMMs."""
    p = p.cast(dtype)
    cell, outputs, state, grads, d_x = run_dynamic(p, dtype, time_major=time_major)
    check_against_reference(p, dtype, outputs, state, grads, d_x, cell, "both")


OPTION_MATRIX = [
    Options(use_peepholes=peep, cell_clip=cc, num_proj=np_, proj_clip=pc)
    for peep, cc, np_, pc in itertools.product([False, True], [None, 0.4], [None, 3], [None, 0.1])
]


def _option_id(o):
    parts = [
        name
        for name, on in (
            ("peep", o.use_peepholes),
            ("cclip", o.cell_clip),
            ("proj", o.num_proj),
            ("pclip", o.proj_clip),
        )
        if on
    ]
    return "-".join(parts) or "plain"


@pytest.mark.parametrize("options", OPTION_MATRIX, ids=[_option_id(o) for o in OPTION_MATRIX])
@pytest.mark.parametrize("time_major", [False, True], ids=["bm", "tm"])
def test_option_matrix(dtype, options, time_major):
    """Every combination of peepholes x cell_clip x num_proj x proj_clip, with
    ragged lengths (0 and T included) and both gradient inputs."""
    lengths = [0, 5, 2, 1, 5, 3]
    p = make_problem(1234, 6, 5, 3, 4, options, lengths=lengths, weight_scale=2.0).cast(dtype)
    cell, outputs, state, grads, d_x = run_dynamic(p, dtype, time_major=time_major)
    check_against_reference(p, dtype, outputs, state, grads, d_x, cell, "both")
    # The clips really clip in this problem (else the test proves little).
    _, _, cache = p.forward()
    if options.cell_clip is not None:
        assert any(np.any(np.abs(s["c_unclipped"]) > options.cell_clip) for s in cache["steps"])
    if options.proj_clip is not None and options.num_proj is not None:
        assert any(np.any(np.abs(s["m_unclipped"]) > options.proj_clip) for s in cache["steps"])
    # Row 0 has length 0: its state is the initial state, bit for bit.
    np.testing.assert_array_equal(state.c[0], p.c0[0].astype(dtype))
    np.testing.assert_array_equal(state.h[0], p.h0[0].astype(dtype))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("forget_bias", [1.0, 0.0, -2.0])
def test_activations_and_forget_bias(dtype, activation, forget_bias):
    options = Options(
        use_peepholes=True, cell_clip=1.0, num_proj=2, proj_clip=0.5, forget_bias=forget_bias, activation=activation
    )
    p = make_problem(99, 4, 4, 3, 3, options, lengths=[4, 0, 2, 3]).cast(dtype)
    cell, outputs, state, grads, d_x = run_dynamic(p, dtype)
    check_against_reference(p, dtype, outputs, state, grads, d_x, cell, "both")


# --------------------------------------------------------------------------
# static_rnn, one step
# --------------------------------------------------------------------------


@settings(max_examples=max(5, settings.default.max_examples // 2))
@given(p=lstm_problems(), mode=grad_modes)
def test_static_rnn_equals_dynamic_rnn(dtype, p, mode):
    p = p.cast(dtype)
    B, T, I, H, P = p.shape
    cell = make_cell(p, dtype)
    x = cast(p.x, dtype)
    output_list, state, backprop = rnnrs.static_rnn(
        cell,
        [x[:, t] for t in range(T)],
        sequence_length=p.lengths,
        initial_state=initial_state(p, dtype),
        return_backprop=True,
    )
    assert isinstance(output_list, list) and len(output_list) == T
    assert all(o.shape == (B, P) for o in output_list)
    d_outputs, d_state = p.grads_for(mode)
    grads = backprop(
        d_outputs=None if d_outputs is None else [cast(d_outputs[:, t], dtype) for t in range(T)],
        d_state=None if d_state is None else tuple(cast(d, dtype) for d in d_state),
    )
    assert isinstance(grads.inputs, list) and len(grads.inputs) == T
    _, dyn_out, dyn_state, dyn_grads, dyn_dx = run_dynamic(p, dtype, mode=mode)
    # The same arithmetic in the same order: bitwise equal.
    np.testing.assert_array_equal(np.stack(output_list, axis=1), dyn_out)
    np.testing.assert_array_equal(state.c, dyn_state.c)
    np.testing.assert_array_equal(state.h, dyn_state.h)
    np.testing.assert_array_equal(np.stack(grads.inputs, axis=1), dyn_dx)
    for a, b in zip(grads.initial_state, dyn_grads.initial_state):
        np.testing.assert_array_equal(a, b)
    assert set(grads.weights) == set(dyn_grads.weights)
    for name in grads.weights:
        np.testing.assert_array_equal(grads.weights[name], dyn_grads.weights[name])
    check_against_reference(p, dtype, dyn_out, dyn_state, dyn_grads, dyn_dx, cell, mode)


@given(p=lstm_problems(max_time=1))
def test_cell_call_is_one_step(dtype, p):
    p = p.cast(dtype)
    B, T, I, H, P = p.shape
    cell = make_cell(p, dtype)
    c = np.zeros((B, H)) if p.c0 is None else p.c0
    h = np.zeros((B, P)) if p.h0 is None else p.h0
    output, new_state = cell(cast(p.x[:, 0], dtype), rnnrs.LSTMStateTuple(cast(c, dtype), cast(h, dtype)))
    o = p.options
    want_out, (want_c, want_h), _ = rl.lstm_forward(
        p.x[:, :1],
        c,
        h,
        p.weights,
        forget_bias=o.forget_bias,
        activation=o.activation,
        cell_clip=o.cell_clip,
        proj_clip=o.proj_clip,
    )
    assert output.shape == (B, P) and output.dtype == np.dtype(dtype)
    assert isinstance(new_state, rnnrs.LSTMStateTuple)
    assert_close(output, want_out[:, 0], dtype, "output")
    assert_close(new_state.c, want_c, dtype, "new_state.c")
    np.testing.assert_array_equal(output, new_state.h)


def test_chained_cell_calls_equal_dynamic_rnn(dtype):
    options = Options(use_peepholes=True, cell_clip=0.5, num_proj=3, proj_clip=0.2)
    p = make_problem(31, 3, 5, 4, 6, options).cast(dtype)
    cell = make_cell(p, dtype)
    x = cast(p.x, dtype)
    state = (cast(p.c0, dtype), cast(p.h0, dtype))  # a plain (c, h) pair is accepted
    steps = []
    for t in range(5):
        y, state = cell(x[:, t], state)
        steps.append(y)
    outputs, final = rnnrs.dynamic_rnn(cell, x, initial_state=initial_state(p, dtype))
    np.testing.assert_array_equal(np.stack(steps, axis=1), outputs)
    np.testing.assert_array_equal(state.c, final.c)
    np.testing.assert_array_equal(state.h, final.h)


# --------------------------------------------------------------------------
# Finite differences: against rnnrs (f64), and of the reference itself
# --------------------------------------------------------------------------

FD_OPTIONS = OPTION_MATRIX + [
    Options(use_peepholes=True, cell_clip=0.4, num_proj=2, proj_clip=0.1, forget_bias=-0.5, activation=a)
    for a in ("sigmoid", "identity", "relu")
]


def _fd_problem(options, seed=7):
    """A small float64 problem whose kinks (clips, relu) are far from every value."""
    for s in range(seed, seed + 50):
        p = make_problem(s, 3, 4, 2, 3, options, lengths=[4, 0, 2], weight_scale=2.0)
        _, _, cache = p.forward()
        if rl.kink_margin(cache) > 1e-4:
            return p
    raise AssertionError("no problem with kinks away from the data")


def _numeric_grads(p, loss_of_weights):
    """Central differences of ``loss_of_weights(x, c0, h0, weights)`` w.r.t. everything."""
    x, c0, h0 = p.x.copy(), p.c0.copy(), p.h0.copy()
    weights = {k: v.copy() for k, v in p.weights.items()}

    def loss():
        return loss_of_weights(x, c0, h0, weights)

    out = {
        "inputs": ref.numerical_gradient(loss, x),
        "c0": ref.numerical_gradient(loss, c0),
        "h0": ref.numerical_gradient(loss, h0),
    }
    for name, w in weights.items():
        out[name] = ref.numerical_gradient(loss, w)
    return out


@pytest.mark.parametrize("options", FD_OPTIONS, ids=[_option_id(o) + f"-{o.activation}" for o in FD_OPTIONS])
def test_gradients_match_finite_differences(options):
    p = _fd_problem(options)
    cell = options.cell(p.H, np.float64)
    d_state = (p.d_c, p.d_h)

    def loss(x, c0, h0, weights):
        cell.set_weights(weights)
        outputs, state = rnnrs.dynamic_rnn(cell, x, sequence_length=p.lengths, initial_state=(c0, h0))
        return rl.lstm_loss(outputs, state, p.d_outputs, *d_state)

    numeric = _numeric_grads(p, loss)
    cell.set_weights(p.weights)
    _, _, backprop = rnnrs.dynamic_rnn(
        cell, p.x, sequence_length=p.lengths, initial_state=(p.c0, p.h0), return_backprop=True
    )
    g = backprop(d_outputs=p.d_outputs, d_state=d_state)
    got = {"inputs": g.inputs, "c0": g.initial_state.c, "h0": g.initial_state.h, **g.weights}
    assert set(got) == set(numeric)
    for name, want in numeric.items():
        np.testing.assert_allclose(got[name], want, rtol=1e-6, atol=1e-7, err_msg=name)


# Every option set with both gradient inputs; every gradient mode on the plain and the full cell.
REFERENCE_FD_CASES = [(o, "both") for o in FD_OPTIONS] + [
    (o, mode) for o in (OPTION_MATRIX[0], OPTION_MATRIX[-1]) for mode in GRAD_MODES if mode != "both"
]


@pytest.mark.parametrize(
    "options,mode", REFERENCE_FD_CASES, ids=[f"{_option_id(o)}-{o.activation}-{m}" for o, m in REFERENCE_FD_CASES]
)
def test_reference_matches_finite_differences(options, mode):
    p = _fd_problem(options, seed=11)
    d_outputs, d_state = p.grads_for(mode)
    d_c, d_h = (None, None) if d_state is None else d_state
    o = p.options

    def loss(x, c0, h0, weights):
        outputs, state, _ = rl.lstm_forward(
            x,
            c0,
            h0,
            weights,
            p.lengths,
            forget_bias=o.forget_bias,
            activation=o.activation,
            cell_clip=o.cell_clip,
            proj_clip=o.proj_clip,
        )
        return rl.lstm_loss(outputs, state, d_outputs, d_c, d_h)

    numeric = _numeric_grads(p, loss)
    _, _, cache = p.forward()
    d_x, d_c0, d_h0, d_w = rl.lstm_backward(cache, d_outputs, d_c, d_h)
    got = {"inputs": d_x, "c0": d_c0, "h0": d_h0, **d_w}
    assert set(got) == set(numeric)
    for name, want in numeric.items():
        np.testing.assert_allclose(got[name], want, rtol=1e-6, atol=1e-7, err_msg=name)
    nonzero = any(np.any(g != 0) for g in got.values())
    assert nonzero == (mode != "neither")


def test_reference_by_hand():
    """One unit, one step, identity activation, numbers worked out on paper."""
    weights = {"kernel": np.array([[1.0, 2.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0]]), "bias": np.zeros(4)}
    x = np.array([[[0.5]]])  # z = [0.5, 1.0, 0.0, -0.5]
    out, (c, h), _ = rl.lstm_forward(x, np.array([[2.0]]), np.array([[0.0]]), weights, activation="identity")
    s = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    want_c = s(0.0 + 1.0) * 2.0 + s(0.5) * 1.0
    np.testing.assert_allclose(c, [[want_c]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(h, [[s(-0.5) * want_c]], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(out[:, 0], h)


def test_clip_gradient_is_inclusive_at_the_bound(dtype):
    """At exactly ±clip the gradient passes (tf.clip_by_value); beyond, it stops.

    sigmoid(0) = 0.5 exactly, so with zero kernel, zero state and identity
    activation c' = 0.5 * bias_j and m = 0.5 * c' are exact in both dtypes.
    """
    for beyond in (False, True):
        cell = rnnrs.LSTMCell(
            1, cell_clip=0.25, num_proj=1, proj_clip=0.0625, forget_bias=0.0, activation="identity", dtype=dtype
        )
        j = 0.5 * (1.0 + beyond)  # c' = 0.25 (at the bound) or 0.5 (clipped to 0.25)
        proj = 0.5 * (1.0 + beyond)  # m_raw = 0.125: m = 0.0625 (at the bound) or 0.125 (clipped)
        cell.set_weights({"kernel": np.zeros((2, 4)), "bias": [0.0, j, 0.0, 0.0], PROJECTION: [[proj]]})
        x = np.zeros((1, 1, 1), dtype)
        outputs, state, backprop = rnnrs.dynamic_rnn(cell, x, return_backprop=True)
        assert state.c[0, 0] == 0.25 and outputs[0, 0, 0] == 0.0625
        g = backprop(d_state=(np.ones((1, 1), dtype), np.zeros((1, 1), dtype)))
        # dc'/d bias_j = sigmoid(i) = 0.5 where the cell clip passes
        assert g.weights["bias"][1] == (0.0 if beyond else 0.5)
        g = backprop(d_outputs=np.ones((1, 1, 1), dtype))
        # m = clip(m_raw @ proj): d m / d proj = m_raw = 0.125 where the projection clip passes
        assert g.weights[PROJECTION][0, 0] == (0.0 if beyond else 0.125)


# --------------------------------------------------------------------------
# BasicLSTMCell, weights, seeds, properties
# --------------------------------------------------------------------------


@pytest.mark.parametrize("forget_bias,activation", [(1.0, "tanh"), (0.25, "relu")])
def test_basic_lstm_equals_lstm_without_options(dtype, forget_bias, activation):
    basic = rnnrs.BasicLSTMCell(5, forget_bias=forget_bias, activation=activation, dtype=dtype, seed=3)
    full = rnnrs.LSTMCell(5, forget_bias=forget_bias, activation=activation, dtype=dtype, seed=3)
    basic.build(4)
    full.build(4)
    # The same seed gives the same weights; same weights, same everything.
    assert set(basic.get_weights()) == set(full.get_weights()) == {"kernel", "bias"}
    for name, w in basic.get_weights().items():
        np.testing.assert_array_equal(w, full.get_weights()[name])
    p = make_problem(5, 4, 6, 4, 5, Options(forget_bias=forget_bias, activation=activation), lengths=[6, 0, 3, 1])
    results = []
    for cell in (basic, full):
        cell.set_weights(p.weights)
        results.append(run_dynamic(p.cast(dtype), dtype, cell=cell)[1:])
    (o1, s1, g1, dx1), (o2, s2, g2, dx2) = results
    for a, b in [(o1, o2), (s1.c, s2.c), (s1.h, s2.h), (dx1, dx2), *zip(g1.initial_state, g2.initial_state)]:
        np.testing.assert_array_equal(a, b)
    for name in ("kernel", "bias"):
        np.testing.assert_array_equal(g1.weights[name], g2.weights[name])
    check_against_reference(p.cast(dtype), dtype, o1, s1, g1, dx1, basic, "both")


def test_properties_and_zero_state(dtype):
    basic = rnnrs.BasicLSTMCell(7, dtype=dtype)
    assert basic.num_units == 7 and basic.output_size == 7
    assert basic.state_size == rnnrs.LSTMStateTuple(7, 7)
    assert basic.dtype == np.dtype(dtype) and basic.forget_bias == 1.0 and basic.activation == "tanh"
    cell = rnnrs.LSTMCell(7, use_peepholes=True, cell_clip=3.0, num_proj=4, proj_clip=2.0, dtype=dtype)
    assert cell.state_size == rnnrs.LSTMStateTuple(c=7, h=4)
    assert cell.output_size == 4
    assert (cell.use_peepholes, cell.cell_clip, cell.num_proj, cell.proj_clip) == (True, 3.0, 4, 2.0)
    assert rnnrs.LSTMCell(2, use_peepholes=np.bool_(True)).use_peepholes is True
    with pytest.raises(TypeError, match="^use_peepholes: expected True or False, got int 0"):
        rnnrs.LSTMCell(2, use_peepholes=0)  # a yes/no argument is a bool, not read by its truth value
    z = cell.zero_state(3)
    assert isinstance(z, rnnrs.LSTMStateTuple)
    assert z.c.shape == (3, 7) and z.h.shape == (3, 4)
    assert z.c.dtype == z.h.dtype == np.dtype(dtype)
    assert np.all(z.c == 0) and np.all(z.h == 0)
    assert not isinstance(basic, rnnrs.LSTMCell) and not isinstance(cell, rnnrs.BasicLSTMCell)
    assert isinstance(basic, rnnrs.RNNCell) and isinstance(cell, rnnrs.RNNCell)
    assert "num_proj=4" in repr(cell) and repr(basic).startswith("BasicLSTMCell(")
    # outputs and state follow the sizes, and the cell builds lazily
    outputs, state = rnnrs.dynamic_rnn(cell, np.ones((2, 3, 5), dtype))
    assert cell.input_size == 5
    assert outputs.shape == (2, 3, 4) and state.c.shape == (2, 7) and state.h.shape == (2, 4)
    assert outputs.dtype == state.c.dtype == state.h.dtype == np.dtype(dtype)


@pytest.mark.parametrize("options", OPTION_MATRIX, ids=[_option_id(o) for o in OPTION_MATRIX])
def test_weight_names_and_shapes(options):
    cell = options.cell(5, np.float32, seed=1)
    cell.build(3)
    P = options.num_proj or 5
    want = {"kernel": (3 + P, 20), "bias": (20,)}
    if options.use_peepholes:
        want.update({name: (5,) for name in PEEPHOLES})
    if options.num_proj:
        want[PROJECTION] = (5, P)
    got = cell.get_weights()
    assert {k: v.shape for k, v in got.items()} == want


@given(seed=seeds, I=st.integers(1, 10), H=st.integers(1, 10), P=st.none() | st.integers(1, 6))
def test_seed_determinism_and_glorot_bounds(dtype, seed, I, H, P):
    def build(s):
        c = rnnrs.LSTMCell(H, use_peepholes=True, num_proj=P, dtype=dtype, seed=s)
        c.build(I)
        return c.get_weights()

    a, b, other = build(seed), build(seed), build((seed + 1) % 2**32)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
        assert a[name].dtype == np.dtype(dtype)
    assert not np.array_equal(a["kernel"], other["kernel"])
    Pw = P or H
    bounds = {"kernel": glorot_bound(I + Pw, 4 * H), **{n: np.sqrt(3.0 / H) for n in PEEPHOLES}}
    if P is not None:
        bounds[PROJECTION] = glorot_bound(H, P)
    for name, bound in bounds.items():
        assert np.all(np.abs(a[name].astype(np.float64)) <= bound * (1 + 1e-6)), name
    assert np.all(a["bias"] == 0) and a["bias"].shape == (4 * H,)  # forget_bias is not stored


def test_glorot_distribution_of_every_weight():
    cell = rnnrs.LSTMCell(64, use_peepholes=True, num_proj=48, dtype=np.float64, seed=2024)
    cell.build(80)
    w = cell.get_weights()
    H, P, I = 64, 48, 80
    peep = np.concatenate([w[n] for n in PEEPHOLES])
    for values, bound in [
        (w["kernel"], glorot_bound(I + P, 4 * H)),
        (w[PROJECTION], glorot_bound(H, P)),
        (peep, np.sqrt(3.0 / H)),
    ]:
        assert np.max(np.abs(values)) <= bound
        assert np.max(values) > 0.9 * bound and np.min(values) < -0.9 * bound
        np.testing.assert_allclose(np.std(values), bound / np.sqrt(3), rtol=0.1)


def test_backprop_uses_the_weights_of_its_forward_pass(dtype):
    options = Options(use_peepholes=True, num_proj=2)
    p = make_problem(23, 3, 4, 2, 3, options, lengths=[4, 2, 0]).cast(dtype)
    cell = make_cell(p, dtype)
    _, _, backprop = rnnrs.dynamic_rnn(
        cell,
        cast(p.x, dtype),
        sequence_length=p.lengths,
        initial_state=initial_state(p, dtype),
        return_backprop=True,
    )
    cell.set_weights({name: 2 * w + 1 for name, w in p.weights.items()})
    grads = backprop(d_outputs=cast(p.d_outputs, dtype), d_state=(cast(p.d_c, dtype), cast(p.d_h, dtype)))
    _, _, (d_x, d_c0, d_h0, d_w) = p.reference()
    assert_close(grads.inputs, d_x, dtype, "grads.inputs")
    for name, want in d_w.items():
        assert_close(grads.weights[name], want, dtype, name)


def test_forget_bias_is_added_at_run_time(dtype):
    """forget_bias = b equals forget_bias = 0 with b added to the f block of bias."""
    H = 4
    p = make_problem(3, 3, 5, 2, H, Options(use_peepholes=True), lengths=[5, 3, 0])
    a = Options(use_peepholes=True, forget_bias=1.75).cell(H, np.float64)
    b = Options(use_peepholes=True, forget_bias=0.0).cell(H, np.float64)
    a.set_weights(p.weights)
    shifted = dict(p.weights, bias=p.weights["bias"] + np.r_[np.zeros(2 * H), np.full(H, 1.75), np.zeros(H)])
    b.set_weights(shifted)
    out_a, st_a = rnnrs.dynamic_rnn(a, p.x, sequence_length=p.lengths)
    out_b, st_b = rnnrs.dynamic_rnn(b, p.x, sequence_length=p.lengths)
    np.testing.assert_allclose(out_a, out_b, rtol=0, atol=1e-14)
    np.testing.assert_allclose(st_a.c, st_b.c, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(a.get_weights()["bias"], p.weights["bias"])


def test_proj_clip_without_num_proj_is_ignored(dtype):
    """As in TensorFlow, proj_clip only acts on a projection."""
    p = make_problem(4, 2, 3, 2, 3, Options(), lengths=[3, 1]).cast(dtype)
    plain = make_cell(p, dtype)
    clipped = rnnrs.LSTMCell(3, proj_clip=1e-3, dtype=dtype)
    clipped.set_weights(p.weights)
    x = cast(p.x, dtype)
    for a, b in zip(
        rnnrs.dynamic_rnn(plain, x)[:1] + rnnrs.dynamic_rnn(plain, x)[1],
        rnnrs.dynamic_rnn(clipped, x)[:1] + rnnrs.dynamic_rnn(clipped, x)[1],
    ):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# Padding, edge sizes
# --------------------------------------------------------------------------


def test_padding_never_influences_anything(dtype):
    lengths = [5, 0, 3, 1]
    options = Options(use_peepholes=True, cell_clip=0.5, num_proj=3, proj_clip=0.3)
    p = make_problem(41, 4, 5, 3, 4, options, lengths=lengths).cast(dtype)
    pad = padding_mask(lengths, 4, 5)
    cell = make_cell(p, dtype)

    def run(x, d_outputs):
        out, state, bp = rnnrs.dynamic_rnn(
            cell,
            cast(x, dtype),
            sequence_length=lengths,
            initial_state=initial_state(p, dtype),
            return_backprop=True,
        )
        g = bp(d_outputs=cast(d_outputs, dtype), d_state=(cast(p.d_c, dtype), cast(p.d_h, dtype)))
        return [out, *state, g.inputs, *g.initial_state, *g.weights.values()]

    clean_x, clean_d = p.x.copy(), p.d_outputs.copy()
    clean_x[pad] = 0.0
    clean_d[pad] = 0.0
    baseline = run(clean_x, clean_d)
    nan_x, nan_d = p.x.copy(), p.d_outputs.copy()
    nan_x[pad] = np.nan
    nan_d[pad] = np.nan
    for got, want in zip(run(nan_x, nan_d), baseline):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("time_major", [False, True])
def test_zero_time_steps_and_zero_lengths(dtype, time_major):
    cell = rnnrs.LSTMCell(4, use_peepholes=True, num_proj=3, dtype=dtype, seed=2)
    B, I = 3, 2
    rng = np.random.default_rng(1)
    state0 = rnnrs.LSTMStateTuple(rng.normal(size=(B, 4)).astype(dtype), rng.normal(size=(B, 3)).astype(dtype))
    d_state = (rng.normal(size=(B, 4)).astype(dtype), rng.normal(size=(B, 3)).astype(dtype))
    for T, lengths in ((0, None), (4, [0, 0, 0])):
        xs = np.ones((T, B, I) if time_major else (B, T, I), dtype)
        outputs, state, backprop = rnnrs.dynamic_rnn(
            cell, xs, sequence_length=lengths, initial_state=state0, time_major=time_major, return_backprop=True
        )
        assert outputs.shape == ((T, B, 3) if time_major else (B, T, 3)) and np.all(outputs == 0)
        np.testing.assert_array_equal(state.c, state0.c)
        np.testing.assert_array_equal(state.h, state0.h)
        g = backprop(d_outputs=np.ones_like(outputs), d_state=d_state)
        assert g.inputs.shape == xs.shape and np.all(g.inputs == 0)
        np.testing.assert_array_equal(g.initial_state.c, d_state[0])
        np.testing.assert_array_equal(g.initial_state.h, d_state[1])
        assert all(np.all(w == 0) for w in g.weights.values())


def test_empty_batch(dtype):
    cell = rnnrs.BasicLSTMCell(3, dtype=dtype, seed=1)
    outputs, state, backprop = rnnrs.dynamic_rnn(cell, np.zeros((0, 4, 2), dtype), return_backprop=True)
    assert outputs.shape == (0, 4, 3) and state.c.shape == (0, 3) and state.h.shape == (0, 3)
    g = backprop(d_outputs=np.zeros((0, 4, 3), dtype))
    assert g.inputs.shape == (0, 4, 2) and all(np.all(w == 0) for w in g.weights.values())


# --------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------


def test_bitwise_identical_across_thread_counts(dtype, parallel_everything):
    options = Options(use_peepholes=True, cell_clip=0.8, num_proj=24, proj_clip=0.5)
    rng = np.random.default_rng(5)
    B, T, I, H = 64, 30, 32, 48
    lengths = rng.integers(0, T + 1, size=B)
    lengths[:3] = [0, T, 1]
    p = make_problem(5, B, T, I, H, options, lengths=lengths).cast(dtype)
    runs = []
    for n in (1, 2, 3):
        rnnrs.set_num_threads(n)
        _, outputs, state, g, d_x = run_dynamic(p, dtype)
        runs.append([outputs, *state, d_x, *g.initial_state, *g.weights.values()])
    assert all(np.all(np.isfinite(a)) for a in runs[0])
    for other in runs[1:]:
        for i, (a, b) in enumerate(zip(runs[0], other)):
            assert np.array_equal(a, b), f"result #{i} differs with the thread count"


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,exc,arg",
    [
        (dict(num_proj=0), ValueError, "num_proj"),
        (dict(num_proj=-2), ValueError, "num_proj"),
        (dict(num_proj=2.5), TypeError, "num_proj"),
        (dict(cell_clip=0.0), ValueError, "cell_clip"),
        (dict(cell_clip=-1.0), ValueError, "cell_clip"),
        (dict(cell_clip=float("nan")), ValueError, "cell_clip"),
        (dict(cell_clip="1"), TypeError, "cell_clip"),
        (dict(num_proj=2, proj_clip=0), ValueError, "proj_clip"),
        (dict(num_proj=2, proj_clip=-0.5), ValueError, "proj_clip"),
        (dict(forget_bias=float("nan")), ValueError, "forget_bias"),
        (dict(forget_bias=float("inf")), ValueError, "forget_bias"),
        (dict(forget_bias="1"), TypeError, "forget_bias"),
        (dict(activation="softmax"), ValueError, "activation"),
        (dict(activation=3), TypeError, "activation"),  # None is TensorFlow's default, tanh
        (dict(use_peepholes="yes"), TypeError, "use_peepholes"),
        (dict(use_peepholes=2), TypeError, "use_peepholes"),
        (dict(dtype=np.int32), TypeError, "dtype"),
    ],
)
def test_bad_options(kwargs, exc, arg):
    with raises_naming(exc, arg):
        rnnrs.LSTMCell(4, **kwargs)


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_num_units(bad):
    with raises_naming(ValueError, "num_units"):
        rnnrs.BasicLSTMCell(bad)
    with raises_naming(ValueError, "num_units"):
        rnnrs.LSTMCell(bad)


def test_basic_lstm_bad_options():
    with raises_naming(ValueError, "forget_bias"):
        rnnrs.BasicLSTMCell(3, forget_bias=float("nan"))
    with raises_naming(ValueError, "activation"):
        rnnrs.BasicLSTMCell(3, activation="gelu")


@pytest.fixture
def proj_cell(dtype):
    cell = rnnrs.LSTMCell(5, use_peepholes=True, num_proj=3, dtype=dtype, seed=0)
    cell.build(2)
    return cell


def test_wrong_state_structure(proj_cell, dtype):
    x = np.zeros((4, 3, 2), dtype)
    c, h = np.zeros((4, 5), dtype), np.zeros((4, 3), dtype)
    with raises_naming(TypeError, "initial_state"):
        rnnrs.dynamic_rnn(proj_cell, x, initial_state=c)  # an array, not a (c, h) pair
    with raises_naming(TypeError, "initial_state"):
        rnnrs.dynamic_rnn(proj_cell, x, initial_state={"c": c, "h": h})
    with raises_naming(ValueError, "initial_state"):
        rnnrs.dynamic_rnn(proj_cell, x, initial_state=(c, h, h))
    with raises_naming(ValueError, r"initial_state\.c") as info:
        rnnrs.dynamic_rnn(proj_cell, x, initial_state=(np.zeros((4, 3), dtype), h))
    assert "(4, 5)" in str(info.value) and "(4, 3)" in str(info.value)
    with raises_naming(ValueError, r"initial_state\.h") as info:
        rnnrs.dynamic_rnn(proj_cell, x, initial_state=rnnrs.LSTMStateTuple(c, np.zeros((4, 5), dtype)))
    assert "(4, 3)" in str(info.value)
    with raises_naming(ValueError, r"initial_state\.c"):
        rnnrs.dynamic_rnn(proj_cell, x, initial_state=(np.zeros((3, 5), dtype), h))
    with raises_naming(TypeError, r"initial_state\.h"):
        rnnrs.dynamic_rnn(proj_cell, x, initial_state=(c, np.full((4, 3), "s")))
    with raises_naming(ValueError, r"state\.h"):
        proj_cell(x[:, 0], (c, np.zeros((4, 5), dtype)))
    with raises_naming(TypeError, "state"):
        proj_cell(x[:, 0], c)
    # lists work like tuples
    out_list, _ = rnnrs.dynamic_rnn(proj_cell, x, initial_state=[c, h])
    out_tuple, _ = rnnrs.dynamic_rnn(proj_cell, x, initial_state=(c, h))
    np.testing.assert_array_equal(out_list, out_tuple)


def test_bad_backprop_arguments(proj_cell, dtype):
    x = np.zeros((4, 3, 2), dtype)
    _, _, backprop = rnnrs.dynamic_rnn(proj_cell, x, return_backprop=True)
    with raises_naming(ValueError, "d_outputs"):
        backprop(d_outputs=np.zeros((4, 3, 5), dtype))  # P = 3, not H = 5
    with raises_naming(TypeError, "d_state"):
        backprop(d_state=np.zeros((4, 5), dtype))
    with raises_naming(ValueError, r"d_state\.h"):
        backprop(d_state=(np.zeros((4, 5), dtype), np.zeros((4, 5), dtype)))
    with raises_naming(ValueError, r"d_state\.c"):
        backprop(d_state=(np.zeros((4, 3), dtype), np.zeros((4, 3), dtype)))
    g = backprop(d_state=(np.zeros((4, 5), dtype), np.ones((4, 3), dtype)))  # still usable
    assert g.inputs.shape == x.shape


def test_set_weights_names_and_shapes(proj_cell):
    w = proj_cell.get_weights()
    before = {k: v.copy() for k, v in w.items()}
    for name in PEEPHOLES + (PROJECTION, "kernel", "bias"):
        bad = dict(w)
        bad[name] = np.zeros(w[name].shape[:-1] + (w[name].shape[-1] + 1,))
        with raises_naming(ValueError, name):
            proj_cell.set_weights(bad)
    with raises_naming(ValueError, "bogus"):
        proj_cell.set_weights({**w, "bogus": np.zeros(3)})
    basic = rnnrs.BasicLSTMCell(5, seed=0)
    basic.build(2)
    with raises_naming(ValueError, "w_i_diag"):
        basic.set_weights({"w_i_diag": np.zeros(5)})  # no peepholes on this cell
    with raises_naming(ValueError, "projection"):
        basic.set_weights({PROJECTION: np.zeros((5, 5))})
    with raises_naming(ValueError, "kernel"):
        basic.set_weights({"kernel": np.zeros((2 + 5, 16))})
    for name, v in proj_cell.get_weights().items():  # failed calls change nothing
        np.testing.assert_array_equal(v, before[name])


def test_set_weights_builds_an_unbuilt_cell(dtype):
    cell = rnnrs.LSTMCell(3, num_proj=2, use_peepholes=True, dtype=dtype)
    full = {
        "kernel": np.zeros((4 + 2, 12)),
        "bias": np.zeros(12),
        PROJECTION: np.zeros((3, 2)),
        **{n: np.zeros(3) for n in PEEPHOLES},
    }
    with raises_naming(ValueError, "mapping"):
        cell.set_weights({k: v for k, v in full.items() if k != "w_o_diag"})
    with raises_naming(ValueError, "kernel"):
        cell.set_weights({**full, "kernel": np.zeros((6, 11))})
    cell.set_weights(full)
    assert cell.input_size == 4
