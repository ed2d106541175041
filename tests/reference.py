"""Plain-NumPy reference implementations used by the test suite.

Everything here is written to be *read*, not to be fast: one Python loop over
time steps, float64 throughout, comments with shapes, no vectorised tricks.
The tests check rnnrs against these functions, and ``test_reference.py``
checks these functions against central finite differences, so a test failure
points at the library rather than at the oracle.

Notation (batch-major, like ``dynamic_rnn(..., time_major=False)``):

    B  batch size          T  number of time steps
    I  input size          H  num_units (state size)

    x        [B, T, I]     step inputs
    h0       [B, H]        initial state
    kernel   [I + H, H]    TF 1.x layout: rows 0..I-1 act on x, rows I.. on h
    bias     [H]
    lengths  [B] ints      0 <= lengths[b] <= T; None means "all T steps"

Masking semantics (TensorFlow 1.x ``sequence_length``):

    * outputs[b, t] == 0 for t >= lengths[b]
    * the final state of row b is the state after step lengths[b] - 1
      (the initial state itself when lengths[b] == 0)
    * gradients: d_outputs at padded positions are ignored, d_state of row b
      flows into the state after step lengths[b] - 1.

Later cells (LSTM, GRU) get their own ``*_forward`` / ``*_backward`` pairs
next to the BasicRNN ones; they can reuse ``ACTIVATIONS``, ``as_lengths``,
``active_rows`` and ``numerical_gradient``.
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------
# Activations: name -> (function, derivative expressed through (z, y))
# where z is the pre-activation and y = f(z) the activation value.
# ReLU'(0) is taken as 0, like TensorFlow's ReluGrad (gradient where z > 0).
# --------------------------------------------------------------------------


def _tanh(z):
    return np.tanh(z)


def _tanh_grad(z, y):
    return 1.0 - y * y


def _sigmoid(z):
    # exp(-z) overflows to inf for very negative z; 1 / (1 + inf) == 0 is the
    # right answer, so silence the overflow warning instead of branching.
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def _sigmoid_grad(z, y):
    return y * (1.0 - y)


def _relu(z):
    return np.maximum(z, 0.0)


def _relu_grad(z, y):
    return (z > 0.0).astype(z.dtype)


def _identity(z):
    return z.copy()


def _identity_grad(z, y):
    return np.ones_like(z)


ACTIVATIONS = {
    "tanh": (_tanh, _tanh_grad),
    "relu": (_relu, _relu_grad),
    "sigmoid": (_sigmoid, _sigmoid_grad),
    "identity": (_identity, _identity_grad),
}


def activate(name, z):
    """Apply the activation called ``name`` to ``z``."""
    return ACTIVATIONS[name][0](z)


# --------------------------------------------------------------------------
# Sequence-length helpers shared by every cell
# --------------------------------------------------------------------------


def as_lengths(lengths, batch, time):
    """Return ``lengths`` as an int array [B]; None means every row runs all T steps."""
    if lengths is None:
        return np.full(batch, time, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(batch)
    assert np.all(lengths >= 0) and np.all(lengths <= time), lengths
    return lengths


def active_rows(lengths, t):
    """Boolean column [B, 1]: True for the rows that still run at step t."""
    return (t < lengths)[:, None]


# --------------------------------------------------------------------------
# BasicRNNCell:  h' = act([x, h] @ kernel + bias);  output = state = h'
# --------------------------------------------------------------------------


def rnn_step(x, h, kernel, bias, activation):
    """One step of BasicRNNCell without masking. x [B, I], h [B, H] -> h' [B, H]."""
    xh = np.concatenate([x, h], axis=1)  # [B, I + H]
    z = xh @ kernel + bias  # [B, H]
    return activate(activation, z)


def rnn_forward(x_btI, h0, kernel, bias, activation, lengths=None):
    """Run BasicRNNCell over a batch-major sequence with TF 1.x masking.

    Returns ``(outputs [B, T, H], final_state [B, H], cache)``; ``cache`` holds
    everything ``rnn_backward`` needs.
    """
    x = np.asarray(x_btI, dtype=np.float64)  # [B, T, I]
    kernel = np.asarray(kernel, dtype=np.float64)  # [I + H, H]
    bias = np.asarray(bias, dtype=np.float64)  # [H]
    B, T, I = x.shape
    H = kernel.shape[1]
    assert kernel.shape == (I + H, H), (kernel.shape, I, H)
    assert bias.shape == (H,), bias.shape

    if h0 is None:
        h0 = np.zeros((B, H))
    h = np.array(h0, dtype=np.float64).reshape(B, H)  # [B, H] running state
    lengths = as_lengths(lengths, B, T)  # [B]

    outputs = np.zeros((B, T, H))
    steps = []  # per step: what the backward pass needs
    for t in range(T):
        active = active_rows(lengths, t)  # [B, 1]
        xh = np.concatenate([x[:, t, :], h], axis=1)  # [B, I + H]
        z = xh @ kernel + bias  # [B, H] pre-activation
        y = activate(activation, z)  # [B, H] candidate new state
        # Finished rows: output zero, state carried over unchanged.
        # np.where (not multiplication by the mask) so that NaN in padding
        # cannot leak, exactly like TF's select.
        outputs[:, t, :] = np.where(active, y, 0.0)
        h = np.where(active, y, h)
        steps.append({"xh": xh, "z": z, "y": y, "active": active})

    cache = {
        "activation": activation,
        "kernel": kernel,
        "input_size": I,
        "shape": (B, T, I, H),
        "lengths": lengths,
        "steps": steps,
    }
    return outputs, h, cache


def rnn_backward(cache, d_outputs=None, d_state=None):
    """Backpropagation through time for ``rnn_forward``.

    ``d_outputs`` [B, T, H] and ``d_state`` [B, H] are the gradients of the
    loss with respect to the returned outputs and final state (None = zeros).
    Returns ``(d_x [B, T, I], d_h0 [B, H], d_kernel [I + H, H], d_bias [H])``.
    """
    B, T, I, H = cache["shape"]
    kernel = cache["kernel"]  # [I + H, H]
    grad_fn = ACTIVATIONS[cache["activation"]][1]

    if d_outputs is None:
        d_outputs = np.zeros((B, T, H))
    if d_state is None:
        d_state = np.zeros((B, H))
    d_outputs = np.asarray(d_outputs, dtype=np.float64)
    # dh: gradient of the loss w.r.t. the running state h *after* step t.
    dh = np.array(d_state, dtype=np.float64).reshape(B, H)

    d_x = np.zeros((B, T, I))
    d_kernel = np.zeros_like(kernel)
    d_bias = np.zeros(H)
    for t in reversed(range(T)):
        step = cache["steps"][t]
        active = step["active"]  # [B, 1]
        # For an active row, output_t == h_t == y_t, so y_t receives both the
        # output gradient and the running state gradient. A finished row
        # produced a constant zero output (its d_outputs is ignored) and just
        # copied h, so y_t gets nothing and dh passes through unchanged.
        # (np.where rather than multiplying by the mask, so NaN/inf in the
        # padding of x or d_outputs cannot leak into the gradients.)
        dy = np.where(active, d_outputs[:, t, :] + dh, 0.0)  # [B, H]
        dz = np.where(active, dy * grad_fn(step["z"], step["y"]), 0.0)  # [B, H]
        xh = np.where(active, step["xh"], 0.0)  # [B, I + H]; finished rows contribute nothing
        d_kernel += xh.T @ dz  # [I + H, H]
        d_bias += dz.sum(axis=0)  # [H]
        d_xh = dz @ kernel.T  # [B, I + H]
        d_x[:, t, :] = d_xh[:, :I]  # zero for finished rows
        dh = np.where(active, d_xh[:, I:], dh)  # gradient w.r.t. h after step t-1
    return d_x, dh, d_kernel, d_bias


def rnn_loss(outputs, final_state, d_outputs=None, d_state=None):
    """The scalar loss whose gradient ``rnn_backward(cache, d_outputs, d_state)`` computes.

    loss = sum(d_outputs * outputs) + sum(d_state * final_state); padded
    outputs are zero, so their d_outputs entries cannot matter.
    """
    loss = 0.0
    if d_outputs is not None:
        loss += float(np.sum(np.asarray(d_outputs, np.float64) * outputs))
    if d_state is not None:
        loss += float(np.sum(np.asarray(d_state, np.float64) * final_state))
    return loss


# --------------------------------------------------------------------------
# Finite differences
# --------------------------------------------------------------------------


def numerical_gradient(f, x, eps=1e-6):
    """Central finite differences of the scalar function ``f()`` w.r.t. array ``x``.

    ``x`` (float64) is perturbed *in place*, one element at a time, and
    restored afterwards; ``f`` must read the current contents of ``x``.
    Returns an array shaped like ``x``.
    """
    assert x.dtype == np.float64 and x.flags.c_contiguous, (x.dtype, x.flags)
    grad = np.zeros_like(x)
    flat_x = x.reshape(-1)  # a view: writes go to x
    flat_g = grad.reshape(-1)
    for i in range(flat_x.size):
        saved = flat_x[i]
        flat_x[i] = saved + eps
        f_plus = f()
        flat_x[i] = saved - eps
        f_minus = f()
        flat_x[i] = saved
        flat_g[i] = (f_plus - f_minus) / (2.0 * eps)
    return grad
