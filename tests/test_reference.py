"""Checks of the NumPy oracle itself (tests/reference.py), float64 only.

If these fail, every comparison against the reference is meaningless, so the
reference is pinned down three ways: a hand-computed example, the masking
rules, and central finite differences of its forward pass.
"""

from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from helpers import ACTIVATIONS, GRAD_MODES, make_problem, padding_mask

# --------------------------------------------------------------------------
# Hand-computed example: I = H = 1, identity activation
# --------------------------------------------------------------------------

KERNEL_1 = np.array([[2.0], [0.5]])  # w_x = 2, w_h = 0.5
BIAS_1 = np.array([0.1])
X_1 = np.array([[[1.0], [2.0], [3.0]]])  # [B=1, T=3, I=1]


def test_hand_computed_forward():
    outputs, state, _ = ref.rnn_forward(X_1, None, KERNEL_1, BIAS_1, "identity")
    # h1 = 2*1 + 0.5*0 + 0.1; h2 = 2*2 + 0.5*h1 + 0.1; h3 = 2*3 + 0.5*h2 + 0.1
    np.testing.assert_allclose(outputs[0, :, 0], [2.1, 5.15, 8.675], rtol=0, atol=1e-12)
    np.testing.assert_allclose(state, [[8.675]], rtol=0, atol=1e-12)


def test_hand_computed_forward_with_length():
    outputs, state, _ = ref.rnn_forward(X_1, None, KERNEL_1, BIAS_1, "identity", lengths=[2])
    np.testing.assert_allclose(outputs[0, :, 0], [2.1, 5.15, 0.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(state, [[5.15]], rtol=0, atol=1e-12)


def test_hand_computed_backward_with_length():
    _, _, cache = ref.rnn_forward(X_1, None, KERNEL_1, BIAS_1, "identity", lengths=[2])
    d_x, d_h0, d_kernel, d_bias = ref.rnn_backward(cache, d_state=np.array([[1.0]]))
    # loss = h2 = 2*x2 + 0.5*h1 + 0.1 with h1 = 2*x1 + 0.5*h0 + 0.1
    np.testing.assert_allclose(d_x[0, :, 0], [1.0, 2.0, 0.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(d_h0, [[0.25]], rtol=0, atol=1e-12)
    # d/dw_x = x2 + 0.5*x1 = 2.5 ; d/dw_h = h1 + 0.5*h0 = 2.1 ; d/db = 1 + 0.5
    np.testing.assert_allclose(d_kernel, [[2.5], [2.1]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(d_bias, [1.5], rtol=0, atol=1e-12)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_step_formula(activation):
    rng = np.random.default_rng(3)
    x, h = rng.normal(size=(4, 3)), rng.normal(size=(4, 5))
    kernel, bias = rng.normal(size=(8, 5)), rng.normal(size=5)
    z = x @ kernel[:3] + h @ kernel[3:] + bias
    expected = {
        "tanh": np.tanh(z),
        "relu": np.where(z > 0, z, 0.0),
        "sigmoid": 1 / (1 + np.exp(-z)),
        "identity": z,
    }[activation]
    np.testing.assert_allclose(ref.rnn_step(x, h, kernel, bias, activation), expected, atol=1e-14)
    outputs, state, _ = ref.rnn_forward(x[:, None, :], h, kernel, bias, activation)
    np.testing.assert_allclose(outputs[:, 0], expected, atol=1e-14)
    np.testing.assert_allclose(state, expected, atol=1e-14)


def test_relu_gradient_at_zero_is_zero():
    z = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(ref.ACTIVATIONS["relu"][1](z, ref.activate("relu", z)), [0, 0, 1])


# --------------------------------------------------------------------------
# Masking rules
# --------------------------------------------------------------------------

LENGTHS = [0, 4, 2, 1, 4]  # includes 0 and T, unsorted


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_masking_semantics(activation):
    p = make_problem(7, 5, 4, 3, 6, lengths=LENGTHS)
    outputs, state, _ = ref.rnn_forward(p.x, p.h0, p.kernel, p.bias, activation, p.lengths)
    full_outputs, _, _ = ref.rnn_forward(p.x, p.h0, p.kernel, p.bias, activation)
    pad = padding_mask(LENGTHS, 5, 4)
    assert np.all(outputs[pad] == 0.0)
    np.testing.assert_array_equal(outputs[~pad], full_outputs[~pad])
    for b, n in enumerate(LENGTHS):
        expected = p.h0[b] if n == 0 else outputs[b, n - 1]
        np.testing.assert_array_equal(state[b], expected)


def test_padding_content_is_irrelevant():
    p = make_problem(8, 5, 4, 3, 6, lengths=LENGTHS)
    pad = padding_mask(LENGTHS, 5, 4)
    x2 = p.x.copy()
    x2[pad] = np.nan  # must not leak anywhere
    d_out2 = p.d_outputs.copy()
    d_out2[pad] = 1e6
    a = ref.rnn_forward(p.x, p.h0, p.kernel, p.bias, "tanh", p.lengths)
    b = ref.rnn_forward(x2, p.h0, p.kernel, p.bias, "tanh", p.lengths)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    ga = ref.rnn_backward(a[2], p.d_outputs, p.d_state)
    gb = ref.rnn_backward(b[2], d_out2, p.d_state)
    for u, v in zip(ga, gb):
        np.testing.assert_array_equal(u, v)
    assert np.all(ga[0][pad] == 0.0)


# --------------------------------------------------------------------------
# Finite differences of the forward pass vs the backward pass
# --------------------------------------------------------------------------

FD_CASES = {
    "full": dict(lengths=None, with_h0=True),
    "ragged": dict(lengths=[3, 0, 1, 3], with_h0=True),
    "ragged_zero_h0": dict(lengths=[2, 3, 0, 1], with_h0=False),
}


def _fd_check(p, activation, mode):
    B, T, I, H = p.shape
    h0 = np.zeros((B, H)) if p.h0 is None else p.h0.copy()
    x, kernel, bias = p.x.copy(), p.kernel.copy(), p.bias.copy()
    d_outputs, d_state = p.grads_for(mode)

    def loss():
        outputs, state, _ = ref.rnn_forward(x, h0, kernel, bias, activation, p.lengths)
        return ref.rnn_loss(outputs, state, d_outputs, d_state)

    _, _, cache = ref.rnn_forward(x, h0, kernel, bias, activation, p.lengths)
    if activation == "relu":
        # Finite differences are invalid right at the kink; the data is fixed,
        # so make sure it stays well away from it.
        z = np.stack([s["z"] for s in cache["steps"]])
        assert np.min(np.abs(z)) > 1e-4
    analytic = ref.rnn_backward(cache, d_outputs, d_state)
    numeric = [ref.numerical_gradient(loss, a) for a in (x, h0, kernel, bias)]
    for name, got, want in zip(["d_x", "d_h0", "d_kernel", "d_bias"], analytic, numeric):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=name)
    return analytic


@pytest.mark.parametrize("mode", GRAD_MODES)
@pytest.mark.parametrize("case", sorted(FD_CASES))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_backward_matches_finite_differences(activation, case, mode):
    p = make_problem(11, 4, 3, 2, 3, **FD_CASES[case])
    analytic = _fd_check(p, activation, mode)
    if mode == "neither":
        assert all(np.all(g == 0.0) for g in analytic)
    else:
        assert any(np.any(g != 0.0) for g in analytic)


def test_numerical_gradient_of_a_known_function():
    a = np.array([[1.0, -2.0], [0.5, 3.0]])
    grad = ref.numerical_gradient(lambda: float(np.sum(np.sin(a)) + np.sum(a**3)), a)
    np.testing.assert_allclose(grad, np.cos(a) + 3 * a**2, rtol=1e-8)
    np.testing.assert_array_equal(a, [[1.0, -2.0], [0.5, 3.0]])  # restored
