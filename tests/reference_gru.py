"""Plain-NumPy reference of GRUCell (both forms): forward and backpropagation
through time, written to be *read*.

One Python loop over time steps, float64 throughout, shapes in comments, no
vectorised tricks beyond one step's matrix products. ``test_gru.py`` checks
rnnrs against these functions and checks these functions against central
finite differences. Masking follows TensorFlow 1.x exactly as in
``reference.py`` (whose activations and helpers are reused).

Notation (batch-major): B batch, T time, I input size, H num_units.

Weights, by their TensorFlow 1.x names (rows for ``x`` first, then ``h``)::

    gates/kernel             [I + H, 2H]    both forms
    gates/bias               [2H]           both forms
    candidate/kernel         [I + H, H]     reset_after=False
    candidate/bias           [H]            reset_after=False
    candidate/input_kernel   [I, H]         reset_after=True
    candidate/hidden_kernel  [H, H]         reset_after=True
    candidate/input_bias     [H]            reset_after=True
    candidate/hidden_bias    [H]            reset_after=True

One step::

    r, u = split(sigmoid([x, h] @ gates/kernel + gates/bias), 2)
    reset_after=False:  c = act([x, r*h] @ candidate/kernel + candidate/bias)
    reset_after=True:   c = act(x @ input_kernel + input_bias + r*(h @ hidden_kernel + hidden_bias))
    h' = u*h + (1-u)*c            output = state = h'
"""

from __future__ import annotations

import numpy as np

import reference as ref

GATE_NAMES = ("gates/kernel", "gates/bias")
RESET_BEFORE_NAMES = GATE_NAMES + ("candidate/kernel", "candidate/bias")
RESET_AFTER_NAMES = GATE_NAMES + (
    "candidate/input_kernel",
    "candidate/hidden_kernel",
    "candidate/input_bias",
    "candidate/hidden_bias",
)


def weight_names(reset_after):
    """The weight names of one form, in a fixed order."""
    return RESET_AFTER_NAMES if reset_after else RESET_BEFORE_NAMES


def weight_shapes(I, H, reset_after):
    """name -> shape for one form."""
    shapes = {"gates/kernel": (I + H, 2 * H), "gates/bias": (2 * H,)}
    if reset_after:
        shapes["candidate/input_kernel"] = (I, H)
        shapes["candidate/hidden_kernel"] = (H, H)
        shapes["candidate/input_bias"] = (H,)
        shapes["candidate/hidden_bias"] = (H,)
    else:
        shapes["candidate/kernel"] = (I + H, H)
        shapes["candidate/bias"] = (H,)
    return shapes


def sigmoid(z):
    return ref.activate("sigmoid", z)


# --------------------------------------------------------------------------
# One step, no masking
# --------------------------------------------------------------------------


def gru_step(x, h, weights, activation, reset_after):
    """One GRU step. x [B, I], h [B, H] -> dict of every intermediate; "h_new" is h'."""
    H = h.shape[1]
    xh = np.concatenate([x, h], axis=1)  # [B, I + H]
    gates = sigmoid(xh @ weights["gates/kernel"] + weights["gates/bias"])  # [B, 2H]
    r, u = gates[:, :H], gates[:, H:]  # [B, H] each
    step = {"x": x, "h": h, "xh": xh, "r": r, "u": u}
    if reset_after:
        hc = h @ weights["candidate/hidden_kernel"] + weights["candidate/hidden_bias"]  # [B, H]
        zc = x @ weights["candidate/input_kernel"] + weights["candidate/input_bias"] + r * hc
        step["hc"] = hc
    else:
        x_rh = np.concatenate([x, r * h], axis=1)  # [B, I + H]
        zc = x_rh @ weights["candidate/kernel"] + weights["candidate/bias"]
        step["x_rh"] = x_rh
    c = ref.activate(activation, zc)  # [B, H] candidate
    step["zc"], step["c"] = zc, c
    step["h_new"] = u * h + (1.0 - u) * c  # [B, H]
    return step


# --------------------------------------------------------------------------
# Whole sequences with TF 1.x masking
# --------------------------------------------------------------------------


def gru_forward(x_btI, h0, weights, activation, reset_after, lengths=None):
    """Run GRUCell over a batch-major sequence with TF 1.x masking.

    ``weights`` maps the form's names to arrays. Returns
    ``(outputs [B, T, H], final_state [B, H], cache)``.
    """
    x = np.asarray(x_btI, dtype=np.float64)  # [B, T, I]
    weights = {name: np.asarray(weights[name], dtype=np.float64) for name in weight_names(reset_after)}
    B, T, I = x.shape
    H = weights["gates/bias"].shape[0] // 2
    for name, shape in weight_shapes(I, H, reset_after).items():
        assert weights[name].shape == shape, (name, weights[name].shape, shape)

    h = np.zeros((B, H)) if h0 is None else np.array(h0, dtype=np.float64).reshape(B, H)
    lengths = ref.as_lengths(lengths, B, T)  # [B]
    outputs = np.zeros((B, T, H))
    steps = []
    for t in range(T):
        active = ref.active_rows(lengths, t)  # [B, 1]
        step = gru_step(x[:, t, :], h, weights, activation, reset_after)
        # Finished rows: output zero, state carried over (np.where so NaN cannot leak).
        outputs[:, t, :] = np.where(active, step["h_new"], 0.0)
        h = np.where(active, step["h_new"], h)
        step["active"] = active
        steps.append(step)
    cache = {
        "activation": activation,
        "reset_after": reset_after,
        "weights": weights,
        "shape": (B, T, I, H),
        "steps": steps,
    }
    return outputs, h, cache


def gru_backward(cache, d_outputs=None, d_state=None):
    """Backpropagation through time for ``gru_forward``.

    Returns ``(d_x [B, T, I], d_h0 [B, H], d_weights)``, ``d_weights`` keyed
    like the weights.
    """
    B, T, I, H = cache["shape"]
    w = cache["weights"]
    reset_after = cache["reset_after"]
    act_grad = ref.ACTIVATIONS[cache["activation"]][1]
    d_outputs = np.zeros((B, T, H)) if d_outputs is None else np.asarray(d_outputs, np.float64)
    # dh: gradient of the loss w.r.t. the running state after step t.
    dh = np.zeros((B, H)) if d_state is None else np.array(d_state, dtype=np.float64).reshape(B, H)

    d_x = np.zeros((B, T, I))
    d_w = {name: np.zeros_like(w[name]) for name in weight_names(reset_after)}
    for t in reversed(range(T)):
        s = cache["steps"][t]
        active = s["active"]  # [B, 1]

        def masked(a, active=active):  # bound now: called for this step only
            """Rows that did not run step t contribute nothing (NaN-safe)."""
            return np.where(active, a, 0.0)

        r, u, c, h = s["r"], s["u"], s["c"], s["h"]
        # h' received the output gradient and the running state gradient.
        d_new = masked(d_outputs[:, t, :] + dh)  # [B, H]
        # h' = u*h + (1-u)*c
        dc = d_new * (1.0 - u)
        du = d_new * (h - c)
        dh_prev = d_new * u  # direct path to h
        dzc = masked(dc * act_grad(s["zc"], c))  # [B, H] candidate pre-activation
        if reset_after:
            # zc = x @ Wi + bi + r * hc,  hc = h @ Wh + bh
            d_w["candidate/input_kernel"] += masked(s["x"]).T @ dzc
            d_w["candidate/input_bias"] += dzc.sum(axis=0)
            dx = dzc @ w["candidate/input_kernel"].T  # [B, I]
            dhc = masked(dzc * r)  # d(h @ Wh + bh)
            dr = masked(dzc * s["hc"])
            d_w["candidate/hidden_kernel"] += masked(h).T @ dhc
            d_w["candidate/hidden_bias"] += dhc.sum(axis=0)
            dh_prev = dh_prev + dhc @ w["candidate/hidden_kernel"].T
        else:
            # zc = [x, r*h] @ Wc + bc
            d_w["candidate/kernel"] += masked(s["x_rh"]).T @ dzc
            d_w["candidate/bias"] += dzc.sum(axis=0)
            d_x_rh = dzc @ w["candidate/kernel"].T  # [B, I + H]
            dx = d_x_rh[:, :I]
            d_rh = d_x_rh[:, I:]
            dr = masked(d_rh * h)
            dh_prev = dh_prev + d_rh * r
        # r, u = sigmoid(zg), zg = [x, h] @ Wg + bg
        dzg = masked(np.concatenate([dr * r * (1.0 - r), du * u * (1.0 - u)], axis=1))  # [B, 2H]
        d_w["gates/kernel"] += masked(s["xh"]).T @ dzg
        d_w["gates/bias"] += dzg.sum(axis=0)
        d_xh = dzg @ w["gates/kernel"].T  # [B, I + H]
        d_x[:, t, :] = masked(dx + d_xh[:, :I])
        dh_prev = dh_prev + d_xh[:, I:]
        dh = np.where(active, dh_prev, dh)  # finished rows pass dh through unchanged
    return d_x, dh, d_w
