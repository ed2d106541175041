"""Plain-NumPy reference of TensorFlow 1.x's LSTM cells, forward and BPTT.

Written to be *read*, like ``reference.py``: one Python loop over time steps,
float64 throughout, shapes in comments. ``BasicLSTMCell`` is ``LSTMCell``
with no options, so one pair of functions covers both. ``test_lstm.py``
checks rnnrs against these functions and these functions against central
finite differences.

Notation (batch-major, like ``dynamic_rnn(..., time_major=False)``):

    B  batch size        T  time steps        I  input size
    H  num_units         P  num_proj (or H without a projection)

    x                   [B, T, I]
    c0, h0              [B, H], [B, P]      the initial LSTMStateTuple(c, h)
    kernel              [I + P, 4H]         rows for x first, then h;
                                            column blocks i, j, f, o
    bias                [4H]
    w_i_diag, w_f_diag, w_o_diag   [H]      peepholes (optional)
    projection/kernel   [H, P]              projection (optional)

One step (TensorFlow 1.x ``LSTMCell.call``)::

    z = [x, h] @ kernel + bias;   i, j, f, o = split(z, 4)
    peepholes:  i += w_i_diag * c,  f += w_f_diag * c
    c' = sigmoid(f + forget_bias) * c + sigmoid(i) * act(j)
    cell_clip:  c' = clip(c', -cell_clip, cell_clip)
    peepholes:  o += w_o_diag * c'          (the new c)
    m = sigmoid(o) * act(c')
    projection: m = m @ projection/kernel;  proj_clip: m = clip(m, -proj_clip, proj_clip)
    new state (c', m), output m

Masking is TensorFlow's, as in ``reference.py``: finished rows output zeros
and keep their state. A clip's gradient passes where the unclipped value lies
in [-limit, limit] (inclusive, like ``tf.clip_by_value``) and is zero outside.
"""

from __future__ import annotations

import numpy as np

from reference import ACTIVATIONS, active_rows, as_lengths

PEEPHOLES = ("w_i_diag", "w_f_diag", "w_o_diag")
PROJECTION = "projection/kernel"


def sigmoid(z):
    with np.errstate(over="ignore"):  # exp overflow -> 1 / inf == 0 is right
        return 1.0 / (1.0 + np.exp(-z))


def clip(v, limit):
    """``clip(v, -limit, limit)``, or ``v`` itself when ``limit`` is None."""
    return v if limit is None else np.clip(v, -limit, limit)


def clip_passes(v, limit):
    """Where the gradient of ``clip(v, -limit, limit)`` is 1 (else 0)."""
    if limit is None:
        return np.ones_like(v, dtype=bool)
    return (v >= -limit) & (v <= limit)


def lstm_forward(
    x_btI,
    c0,
    h0,
    weights,
    lengths=None,
    *,
    forget_bias=1.0,
    activation="tanh",
    cell_clip=None,
    proj_clip=None,
):
    """Run the LSTM over a batch-major sequence with TF 1.x masking.

    ``weights`` is a dict with the cell's TF 1.x names (``kernel``, ``bias``,
    and optionally the peepholes and ``projection/kernel``; their presence
    switches the option on). ``c0``/``h0`` may be None (zeros). ``proj_clip``
    is ignored without a projection, as in TensorFlow.

    Returns ``(outputs [B, T, P], (c [B, H], h [B, P]), cache)``.
    """
    x = np.asarray(x_btI, dtype=np.float64)  # [B, T, I]
    kernel = np.asarray(weights["kernel"], dtype=np.float64)  # [I + P, 4H]
    bias = np.asarray(weights["bias"], dtype=np.float64)  # [4H]
    peepholes = all(name in weights for name in PEEPHOLES)
    w_i, w_f, w_o = (np.asarray(weights[n], np.float64) if peepholes else None for n in PEEPHOLES)
    proj = np.asarray(weights[PROJECTION], np.float64) if PROJECTION in weights else None
    if proj is None:
        proj_clip = None
    act, _ = ACTIVATIONS[activation]

    B, T, I = x.shape
    H = bias.shape[0] // 4
    P = H if proj is None else proj.shape[1]
    assert kernel.shape == (I + P, 4 * H), (kernel.shape, I, P, H)
    c = np.zeros((B, H)) if c0 is None else np.array(c0, dtype=np.float64)  # [B, H]
    h = np.zeros((B, P)) if h0 is None else np.array(h0, dtype=np.float64)  # [B, P]
    lengths = as_lengths(lengths, B, T)

    outputs = np.zeros((B, T, P))
    steps = []
    for t in range(T):
        active = active_rows(lengths, t)  # [B, 1]
        xh = np.concatenate([x[:, t, :], h], axis=1)  # [B, I + P]
        z = xh @ kernel + bias  # [B, 4H]
        zi, zj, zf, zo = np.split(z, 4, axis=1)  # each [B, H]
        if peepholes:
            zi = zi + w_i * c
            zf = zf + w_f * c
        i = sigmoid(zi)
        j = act(zj)
        f = sigmoid(zf + forget_bias)
        c_unclipped = f * c + i * j  # [B, H]
        c_new = clip(c_unclipped, cell_clip)
        if peepholes:
            zo = zo + w_o * c_new
        o = sigmoid(zo)
        act_c = act(c_new)
        m = o * act_c  # [B, H]
        if proj is None:
            m_unclipped = m
            h_new = m
        else:
            m_unclipped = m @ proj  # [B, P]
            h_new = clip(m_unclipped, proj_clip)
        # Finished rows: zero output, state unchanged (np.where, so that NaN
        # in the padding cannot leak, like TF's select).
        outputs[:, t, :] = np.where(active, h_new, 0.0)
        steps.append(
            dict(
                active=active,
                xh=xh,
                c_prev=c,
                zj=zj,
                i=i,
                j=j,
                f=f,
                o=o,
                c_unclipped=c_unclipped,
                c=c_new,
                act_c=act_c,
                m=m,
                m_unclipped=m_unclipped,
            )
        )
        c = np.where(active, c_new, c)
        h = np.where(active, h_new, h)

    cache = dict(
        shape=(B, T, I, H, P),
        kernel=kernel,
        w=(w_i, w_f, w_o),
        proj=proj,
        peepholes=peepholes,
        activation=activation,
        cell_clip=cell_clip,
        proj_clip=proj_clip,
        steps=steps,
    )
    return outputs, (c, h), cache


def lstm_backward(cache, d_outputs=None, d_c=None, d_h=None):
    """Backpropagation through time for ``lstm_forward``.

    ``d_outputs [B, T, P]``, ``d_c [B, H]`` and ``d_h [B, P]`` are the loss's
    gradients w.r.t. the outputs and the final state (None = zeros). Returns
    ``(d_x [B, T, I], d_c0 [B, H], d_h0 [B, P], d_weights)`` where
    ``d_weights`` has the keys of the forward pass's ``weights``.
    """
    B, T, I, H, P = cache["shape"]
    kernel = cache["kernel"]
    w_i, w_f, w_o = cache["w"]
    proj = cache["proj"]
    peepholes = cache["peepholes"]
    _, act_grad = ACTIVATIONS[cache["activation"]]

    d_outputs = np.zeros((B, T, P)) if d_outputs is None else np.asarray(d_outputs, np.float64)
    # Running gradients w.r.t. the state after step t.
    dc = np.zeros((B, H)) if d_c is None else np.array(d_c, dtype=np.float64)  # [B, H]
    dh = np.zeros((B, P)) if d_h is None else np.array(d_h, dtype=np.float64)  # [B, P]

    d_x = np.zeros((B, T, I))
    d_kernel = np.zeros_like(kernel)
    d_bias = np.zeros(4 * H)
    d_w = [np.zeros(H) for _ in range(3)]  # w_i, w_f, w_o
    d_proj = None if proj is None else np.zeros_like(proj)
    for t in reversed(range(T)):
        s = cache["steps"][t]
        active = s["active"]  # [B, 1]
        i, j, f, o, c_prev, c_new = s["i"], s["j"], s["f"], s["o"], s["c_prev"], s["c"]

        def live(a, active=active):  # bound now: called for this step only
            # Finished rows contribute nothing (np.where, not a product, so
            # that NaN in padded inputs cannot leak).
            return np.where(active, a, 0.0)

        # The step's output is its new h: it receives the output gradient and
        # the running state gradient. Finished rows produced a constant zero.
        d_h_new = live(d_outputs[:, t, :] + dh)  # [B, P]
        d_c_new = live(dc)  # [B, H]
        if proj is None:
            dm = d_h_new  # [B, H]
        else:
            d_m_unclipped = d_h_new * clip_passes(s["m_unclipped"], cache["proj_clip"])  # [B, P]
            d_proj += live(s["m"]).T @ d_m_unclipped  # [H, P]
            dm = d_m_unclipped @ proj.T  # [B, H]
        # m = o * act(c)
        d_zo = live(dm * s["act_c"] * o * (1.0 - o))  # [B, H]
        d_c_total = d_c_new + dm * o * act_grad(c_new, s["act_c"])
        if peepholes:  # o += w_o * c  (the new, clipped c)
            d_c_total = d_c_total + d_zo * w_o
            d_w[2] += np.sum(live(d_zo * c_new), axis=0)
        # c = clip(f * c_prev + i * j)
        d_c_unclipped = live(d_c_total * clip_passes(s["c_unclipped"], cache["cell_clip"]))
        d_zi = live(d_c_unclipped * j * i * (1.0 - i))
        d_zj = live(d_c_unclipped * i * act_grad(s["zj"], j))
        d_zf = live(d_c_unclipped * c_prev * f * (1.0 - f))
        d_c_prev = d_c_unclipped * f
        if peepholes:  # i += w_i * c_prev,  f += w_f * c_prev
            d_c_prev = d_c_prev + d_zi * w_i + d_zf * w_f
            d_w[0] += np.sum(live(d_zi * c_prev), axis=0)
            d_w[1] += np.sum(live(d_zf * c_prev), axis=0)
        dz = np.concatenate([d_zi, d_zj, d_zf, d_zo], axis=1)  # [B, 4H]
        d_kernel += live(s["xh"]).T @ dz  # [I + P, 4H]
        d_bias += dz.sum(axis=0)
        d_xh = dz @ kernel.T  # [B, I + P]
        d_x[:, t, :] = d_xh[:, :I]  # zero for finished rows
        dh = np.where(active, d_xh[:, I:], dh)  # w.r.t. h after step t-1
        dc = np.where(active, d_c_prev, dc)  # w.r.t. c after step t-1

    d_weights = {"kernel": d_kernel, "bias": d_bias}
    if peepholes:
        d_weights.update(zip(PEEPHOLES, d_w))
    if proj is not None:
        d_weights[PROJECTION] = d_proj
    return d_x, dc, dh, d_weights


def lstm_loss(outputs, state, d_outputs=None, d_c=None, d_h=None):
    """The scalar loss whose gradient ``lstm_backward`` computes:
    ``sum(d_outputs * outputs) + sum(d_c * c) + sum(d_h * h)``."""
    c, h = state
    loss = 0.0
    for d, value in ((d_outputs, outputs), (d_c, c), (d_h, h)):
        if d is not None:
            loss += float(np.sum(np.asarray(d, np.float64) * value))
    return loss


def kink_margin(cache):
    """Smallest distance of any kink argument to its kink (the clips at
    ±limit; relu at 0): finite differences are valid when it exceeds eps."""
    margin = np.inf
    for s in cache["steps"]:
        rows = s["active"][:, 0]
        for values, limit in ((s["c_unclipped"], cache["cell_clip"]), (s["m_unclipped"], cache["proj_clip"])):
            if limit is not None and rows.any():
                margin = min(margin, float(np.min(np.abs(np.abs(values[rows]) - limit))))
        if cache["activation"] == "relu" and rows.any():
            margin = min(margin, float(np.min(np.abs(s["zj"][rows]))), float(np.min(np.abs(s["c"][rows]))))
    return margin
