"""Plain-NumPy references for the cell wrappers and the bidirectional run
functions, built on ``reference.py``. Written to be read, not to be fast.

Every reference cell is a *layer*: an object that runs whole batch-major
sequences with TF 1.x ``sequence_length`` masking and backpropagates through
them. They all share one interface, so they nest like the library's wrappers:

    layer.input_size, layer.output_size
    layer.weights()                        -> {TF 1.x name: array}, the names rnnrs uses
    layer.zero_state(B)                    -> the state structure, zeros
    layer.forward(x [B, T, I], state, lengths=None) -> (outputs [B, T, O], final_state, cache)
    layer.backward(cache, d_outputs, d_state)       -> (d_x [B, T, I], d_initial_state, d_weights)

(``d_outputs`` / ``d_state`` may be None, meaning zeros; ``d_weights`` has
the keys of ``weights()``.)

State structures: an array ``[B, H]``, an ``LSTMState(c, h)`` or a tuple of
states (a stack of layers). ``map_state`` walks them leaf by leaf.

The cells: :class:`BasicRNN` (reference.py), :class:`LSTM` (BasicLSTMCell and
LSTMCell with every option, reference_lstm.py) and :class:`GRU` (both forms,
reference_gru.py). Each is a thin layer around that cell's ``*_forward`` /
``*_backward`` pair; every wrapper and the bidirectional reference below work
with any of them unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import reference as ref
import reference_gru as rg
import reference_lstm as rl

# --------------------------------------------------------------------------
# State structures
# --------------------------------------------------------------------------


class LSTMState(NamedTuple):
    """An LSTM state: ``c`` (cell state, never dropped by DropoutWrapper) and ``h``."""

    c: np.ndarray
    h: np.ndarray


def map_state(fn, *states, _is_c=False):
    """``fn(is_c, *leaves)`` leaf by leaf over states of one structure (taken
    from the first); ``is_c`` is True for the ``c`` of an ``LSTMState``."""
    first = states[0]
    if isinstance(first, LSTMState):
        return LSTMState(
            map_state(fn, *(s[0] for s in states), _is_c=True),
            map_state(fn, *(s[1] for s in states)),
        )
    if isinstance(first, tuple):
        return tuple(map_state(fn, *parts) for parts in zip(*states))
    return fn(_is_c, *states)


def state_leaves(state):
    """The arrays of a state structure, in order."""
    out = []
    map_state(lambda _c, a: out.append(a), state)
    return out


def zeros_like_state(state):
    return map_state(lambda _c, a: np.zeros_like(a, dtype=np.float64), state)


def select_rows(active, new, old):
    """Per row: ``new`` where ``active`` ([B, 1]) else ``old``, for every leaf."""
    return map_state(lambda _c, a, b: np.where(active, a, b), new, old)


def add_weight_grads(total, more):
    """``total + more`` for dicts of weight gradients (``total`` may be empty)."""
    return {k: total[k] + v if k in total else v.copy() for k, v in more.items()}


def active_mask(lengths, batch, time):
    """Boolean [B, T, 1]: True where row b still runs at step t."""
    lengths = ref.as_lengths(lengths, batch, time)
    return (np.arange(time)[None, :] < lengths[:, None])[..., None]


# --------------------------------------------------------------------------
# BasicRNNCell
# --------------------------------------------------------------------------


class BasicRNN:
    """BasicRNNCell: ``h' = act([x, h] @ kernel + bias)``; output = state = ``h'``
    (reference.rnn_forward / rnn_backward)."""

    def __init__(self, kernel, bias, activation="tanh"):
        self.kernel = np.asarray(kernel, dtype=np.float64)  # [I + H, H]
        self.bias = np.asarray(bias, dtype=np.float64)  # [H]
        self.activation = activation
        self.num_units = self.kernel.shape[1]
        self.input_size = self.kernel.shape[0] - self.num_units
        self.output_size = self.num_units

    def weights(self):
        return {"kernel": self.kernel, "bias": self.bias}

    def with_weights(self, mapping):
        """A copy with some weights replaced."""
        w = {**self.weights(), **mapping}
        return BasicRNN(w["kernel"], w["bias"], self.activation)

    def zero_state(self, batch):
        return np.zeros((batch, self.num_units))

    def forward(self, x, state, lengths=None):
        return ref.rnn_forward(x, state, self.kernel, self.bias, self.activation, lengths)

    def backward(self, cache, d_outputs, d_state):
        d_x, d_h0, d_kernel, d_bias = ref.rnn_backward(cache, d_outputs, d_state)
        return d_x, d_h0, {"kernel": d_kernel, "bias": d_bias}


# --------------------------------------------------------------------------
# BasicLSTMCell / LSTMCell: state LSTMState(c [B, H], h [B, P]); output h
# --------------------------------------------------------------------------


class LSTM:
    """BasicLSTMCell (``basic=True``: no peepholes, clips or projection) or
    LSTMCell; the options are on when their weights are present (peepholes,
    ``projection/kernel``) or their limits given (reference_lstm.lstm_forward /
    lstm_backward). ``weights()`` returns the very arrays the forward pass reads.

    Every forward pass records, for the tests, how close a clip's argument
    came to its kink (``kink_margin``) and whether each clip both clipped and
    passed something (``clip_seen``)."""

    def __init__(self, weights, *, forget_bias=1.0, activation="tanh", cell_clip=None, proj_clip=None, basic=False):
        self.w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        self.forget_bias = float(forget_bias)
        self.activation = activation
        self.cell_clip = cell_clip
        self.proj_clip = proj_clip if rl.PROJECTION in self.w else None
        self.basic = basic
        self.peepholes = all(name in self.w for name in rl.PEEPHOLES)
        self.num_units = self.w["bias"].shape[0] // 4  # H
        self.num_proj = self.w[rl.PROJECTION].shape[1] if rl.PROJECTION in self.w else None
        self.output_size = self.num_proj or self.num_units  # P
        self.input_size = self.w["kernel"].shape[0] - self.output_size
        if basic:
            assert set(self.w) == {"kernel", "bias"} and cell_clip is None and proj_clip is None
        self.kink_margin = np.inf
        self.clip_seen = {"cell_clip": [False, False], "proj_clip": [False, False]}  # [clipped, passed]

    def weights(self):
        return self.w

    def with_weights(self, mapping):
        """A copy with some weights replaced."""
        return LSTM(
            {**self.w, **mapping},
            forget_bias=self.forget_bias,
            activation=self.activation,
            cell_clip=self.cell_clip,
            proj_clip=self.proj_clip,
            basic=self.basic,
        )

    def zero_state(self, batch):
        return LSTMState(np.zeros((batch, self.num_units)), np.zeros((batch, self.output_size)))

    def forward(self, x, state, lengths=None):
        outputs, (c, h), cache = rl.lstm_forward(
            x,
            state.c,
            state.h,
            self.w,
            lengths,
            forget_bias=self.forget_bias,
            activation=self.activation,
            cell_clip=self.cell_clip,
            proj_clip=self.proj_clip,
        )
        self.kink_margin = min(self.kink_margin, rl.kink_margin(cache))
        for s in cache["steps"]:
            rows = s["active"][:, 0]
            for name, values in (("cell_clip", s["c_unclipped"]), ("proj_clip", s["m_unclipped"])):
                limit = getattr(self, name)
                if limit is not None:
                    self.clip_seen[name][0] |= bool(np.any(np.abs(values[rows]) > limit))
                    self.clip_seen[name][1] |= bool(np.any(np.abs(values[rows]) < limit))
        return outputs, LSTMState(c, h), cache

    def backward(self, cache, d_outputs, d_state):
        d_c, d_h = (None, None) if d_state is None else d_state
        d_x, d_c0, d_h0, d_weights = rl.lstm_backward(cache, d_outputs, d_c, d_h)
        return d_x, LSTMState(d_c0, d_h0), d_weights


# --------------------------------------------------------------------------
# GRUCell (both forms): output = state = h'
# --------------------------------------------------------------------------


class GRU:
    """GRUCell, ``reset_after`` False (TF 1.x) or True (cuDNN form)
    (reference_gru.gru_forward / gru_backward)."""

    def __init__(self, weights, activation="tanh", reset_after=False):
        self.reset_after = bool(reset_after)
        names = rg.weight_names(self.reset_after)
        assert set(weights) == set(names), (sorted(weights), names)
        self.w = {k: np.asarray(weights[k], dtype=np.float64) for k in names}
        self.activation = activation
        self.num_units = self.w["gates/bias"].shape[0] // 2
        self.input_size = self.w["gates/kernel"].shape[0] - self.num_units
        self.output_size = self.num_units

    def weights(self):
        return self.w

    def with_weights(self, mapping):
        """A copy with some weights replaced."""
        return GRU({**self.w, **mapping}, self.activation, self.reset_after)

    def zero_state(self, batch):
        return np.zeros((batch, self.num_units))

    def forward(self, x, state, lengths=None):
        return rg.gru_forward(x, state, self.w, self.activation, self.reset_after, lengths)

    def backward(self, cache, d_outputs, d_state):
        return rg.gru_backward(cache, d_outputs, d_state)


def cell_layers(layer):
    """Every cell layer (BasicRNN, LSTM, GRU) of a layer tree, bottom first."""
    if isinstance(layer, Multi):
        return [c for inner in layer.layers for c in cell_layers(inner)]
    if isinstance(layer, Wrapper):
        return cell_layers(layer.cell)
    return [layer]


def min_kink_margin(layer):
    """The smallest distance of any LSTM clip's argument to its limit over the
    forward passes run so far (inf without clips): finite differences with
    step eps are valid when it exceeds eps."""
    return min([c.kink_margin for c in cell_layers(layer) if isinstance(c, LSTM)], default=np.inf)


# --------------------------------------------------------------------------
# MultiRNNCell: layer i reads layer i-1's outputs; state = tuple of states
# --------------------------------------------------------------------------


class Multi:
    def __init__(self, layers):
        self.layers = list(layers)
        self.input_size = self.layers[0].input_size
        self.output_size = self.layers[-1].output_size

    def weights(self):
        return {f"cell_{i}/{k}": v for i, layer in enumerate(self.layers) for k, v in layer.weights().items()}

    def zero_state(self, batch):
        return tuple(layer.zero_state(batch) for layer in self.layers)

    def forward(self, x, state, lengths=None):
        outputs, finals, caches = x, [], []
        for layer, layer_state in zip(self.layers, state):
            outputs, final, cache = layer.forward(outputs, layer_state, lengths)
            finals.append(final)
            caches.append(cache)
        return outputs, tuple(finals), caches

    def backward(self, caches, d_outputs, d_state):
        n = len(self.layers)
        d = d_outputs  # flows down the stack: d(layer i's inputs) = d(layer i-1's outputs)
        d_initial, d_weights = [None] * n, {}
        for i in reversed(range(n)):
            d_state_i = None if d_state is None else d_state[i]
            d, d_initial[i], d_w = self.layers[i].backward(caches[i], d, d_state_i)
            d_weights.update({f"cell_{i}/{k}": v for k, v in d_w.items()})
        return d, tuple(d_initial), d_weights


# --------------------------------------------------------------------------
# Wrappers around one cell: its input size, state and weights by default
# --------------------------------------------------------------------------


class Wrapper:
    def __init__(self, cell):
        self.cell = cell
        self.input_size = cell.input_size
        self.output_size = cell.output_size

    def weights(self):
        return self.cell.weights()

    def zero_state(self, batch):
        return self.cell.zero_state(batch)


# --------------------------------------------------------------------------
# OutputProjectionWrapper: output = cell_output @ kernel + bias (zero past lengths)
# --------------------------------------------------------------------------


class Projection(Wrapper):
    def __init__(self, cell, kernel, bias):
        super().__init__(cell)
        self.kernel = np.asarray(kernel, dtype=np.float64)  # [cell.output_size, P]
        self.bias = np.asarray(bias, dtype=np.float64)  # [P]
        self.output_size = self.kernel.shape[1]

    def weights(self):
        own = {"output_projection/kernel": self.kernel, "output_projection/bias": self.bias}
        return {**self.cell.weights(), **own}

    def forward(self, x, state, lengths=None):
        B, T, _ = x.shape
        active = active_mask(lengths, B, T)  # [B, T, 1]
        cell_out, final, cache = self.cell.forward(x, state, lengths)  # [B, T, H]
        outputs = np.where(active, cell_out @ self.kernel + self.bias, 0.0)  # [B, T, P]
        return outputs, final, (cache, cell_out, active)

    def backward(self, cache, d_outputs, d_state):
        inner_cache, cell_out, active = cache
        if d_outputs is None:
            d_outputs = np.zeros(cell_out.shape[:2] + (self.output_size,))
        d = np.where(active, d_outputs, 0.0)  # [B, T, P]; padded outputs are constants
        d_kernel = np.einsum("bth,btp->hp", cell_out, d)  # [H, P]
        d_bias = d.sum(axis=(0, 1))  # [P]
        d_x, d_initial, d_weights = self.cell.backward(inner_cache, d @ self.kernel.T, d_state)
        own = {"output_projection/kernel": d_kernel, "output_projection/bias": d_bias}
        return d_x, d_initial, {**d_weights, **own}


# --------------------------------------------------------------------------
# ResidualWrapper: output = cell_output + input (zero past lengths)
# --------------------------------------------------------------------------


class Residual(Wrapper):
    def __init__(self, cell):
        assert cell.input_size == cell.output_size, (cell.input_size, cell.output_size)
        super().__init__(cell)

    def forward(self, x, state, lengths=None):
        B, T, _ = x.shape
        active = active_mask(lengths, B, T)
        cell_out, final, cache = self.cell.forward(x, state, lengths)
        return np.where(active, cell_out + x, 0.0), final, (cache, active)

    def backward(self, cache, d_outputs, d_state):
        inner_cache, active = cache
        d_x, d_initial, d_weights = self.cell.backward(inner_cache, d_outputs, d_state)
        if d_outputs is not None:
            d_x = d_x + np.where(active, d_outputs, 0.0)  # the identity path
        return d_x, d_initial, d_weights


# --------------------------------------------------------------------------
# DropoutWrapper with given masks (TF 1.x semantics), one step at a time
# --------------------------------------------------------------------------


class Dropout(Wrapper):
    """TF 1.x ``DropoutWrapper`` around ``cell`` with explicit masks.

    ``in_mask`` [B, T, I] and ``out_mask`` [B, T, O] multiply the step inputs
    and outputs; ``state_masks`` is a list of T state structures multiplying
    the new state after each step (leaf None: not dropped, e.g. an LSTM's c).
    None means "no dropout" for each of the three.

    Each step runs the wrapped cell once; the dropped state is what the next
    step reads and what the row returns as its final state. Finished rows
    (t >= len) output zero and keep their state, as in dynamic_rnn; the
    output mask applies to the (already zeroed) outputs.
    """

    def __init__(self, cell, in_mask=None, state_masks=None, out_mask=None):
        super().__init__(cell)
        self.in_mask, self.state_masks, self.out_mask = in_mask, state_masks, out_mask

    def forward(self, x, state, lengths=None):
        B, T, _ = x.shape
        lengths = ref.as_lengths(lengths, B, T)
        x_in = x if self.in_mask is None else x * self.in_mask  # [B, T, I]
        outputs = np.zeros((B, T, self.output_size))
        s, steps = state, []
        for t in range(T):
            active = ref.active_rows(lengths, t)  # [B, 1]
            out, new, cache = self.cell.forward(x_in[:, t : t + 1, :], s, None)  # one step
            if self.state_masks is not None:
                new = map_state(lambda _c, a, m: a if m is None else a * m, new, self.state_masks[t])
            s = select_rows(active, new, s)
            outputs[:, t, :] = np.where(active, out[:, 0, :], 0.0)
            steps.append((cache, active))
        if self.out_mask is not None:
            outputs = outputs * self.out_mask
        return outputs, s, (steps, x.shape, s)

    def backward(self, cache, d_outputs, d_state):
        steps, (B, T, I), final = cache
        ds = zeros_like_state(final) if d_state is None else d_state
        if d_outputs is not None and self.out_mask is not None:
            d_outputs = d_outputs * self.out_mask
        d_x = np.zeros((B, T, I))
        d_weights = {}
        for t in reversed(range(T)):
            step_cache, active = steps[t]
            d_out = None if d_outputs is None else np.where(active, d_outputs[:, t, :], 0.0)[:, None, :]
            # dLoss/d(new state before dropout): through the mask, only for running rows.
            d_new = map_state(lambda _c, d, active=active: np.where(active, d, 0.0), ds)
            if self.state_masks is not None:
                d_new = map_state(lambda _c, d, m: d if m is None else d * m, d_new, self.state_masks[t])
            d_x_t, d_prev, d_w = self.cell.backward(step_cache, d_out, d_new)
            d_x[:, t, :] = d_x_t[:, 0, :]
            ds = select_rows(active, d_prev, ds)  # finished rows: the state passed through
            d_weights = add_weight_grads(d_weights, d_w)
        if not d_weights:  # T == 0
            d_weights = {k: np.zeros_like(v) for k, v in self.cell.weights().items()}
        if self.in_mask is not None:
            d_x = d_x * self.in_mask
        return d_x, ds, d_weights


def dropout_mask(rng, keep, shape, dtype):
    """One inverted-dropout mask in ``dtype``: ``1/keep`` with probability ``keep``, else 0."""
    dtype = np.dtype(dtype)
    mask = (rng.random(shape) < keep).astype(dtype) / dtype.type(keep)
    return mask.astype(np.float64)


def draw_dropout_masks(
    rng,
    *,
    batch,
    time,
    input_size,
    output_size,
    state,
    input_keep_prob=1.0,
    state_keep_prob=1.0,
    output_keep_prob=1.0,
    variational_recurrent=False,
    time_major=False,
    dtype=np.float32,
):
    """The masks rnnrs's DropoutWrapper draws for one training-mode run,
    returned batch-major for :class:`Dropout`: ``(in_mask, state_masks, out_mask)``.

    ``rng`` is ``np.random.default_rng(seed)`` (or a generator that has
    already served earlier runs); ``state`` is a state structure giving the
    leaves' shapes. Draw order (every draw is ``rng.random(shape) < keep``;
    a keep probability of 1 draws nothing):

    1. the input mask: one ``[B, I]`` when variational, else the whole
       sequence's ``[B, T, I]`` (``[T, B, I]`` when time-major);
    2. the state masks, leaf by leaf (skipping LSTM ``c``): variational, one
       set before the loop; otherwise one set per time step, all T steps;
    3. the output mask, like the input mask with O for I.
    """

    def sequence_mask(keep, size):
        if keep == 1.0:
            return None
        if variational_recurrent:
            mask = dropout_mask(rng, keep, (batch, size), dtype)
            return np.repeat(mask[:, None, :], time, axis=1)  # the same at every step
        if time_major:
            return dropout_mask(rng, keep, (time, batch, size), dtype).transpose(1, 0, 2)
        return dropout_mask(rng, keep, (batch, time, size), dtype)

    def state_mask():  # one set of masks for the state's leaves; an LSTM's c gets None
        return map_state(lambda is_c, a: None if is_c else dropout_mask(rng, state_keep_prob, a.shape, dtype), state)

    in_mask = sequence_mask(input_keep_prob, input_size)
    state_masks = None
    if state_keep_prob != 1.0:
        if variational_recurrent:
            state_masks = [state_mask()] * time
        else:
            state_masks = [state_mask() for _ in range(time)]
    out_mask = sequence_mask(output_keep_prob, output_size)
    return in_mask, state_masks, out_mask


# --------------------------------------------------------------------------
# bidirectional_dynamic_rnn, one row at a time
# --------------------------------------------------------------------------


def _row(state, b):
    return map_state(lambda _c, a: a[b : b + 1], state)


def _stack_rows(rows):
    return map_state(lambda _c, *parts: np.concatenate(parts, axis=0), *rows)


def bidirectional_forward(fw, bw, x, lengths=None, state_fw=None, state_bw=None):
    """TF 1.x ``bidirectional_dynamic_rnn`` computed row by row, with no
    masking machinery: row b's real steps are ``x[b, :len]``; ``fw`` reads
    them in order, ``bw`` reads them reversed (``reverse_sequence``) and its
    outputs are flipped back into input order. Padding outputs are zero.

    Returns ``((out_fw, out_bw), (final_fw, final_bw), cache)``.
    """
    B, T, _ = x.shape
    lengths = ref.as_lengths(lengths, B, T)
    state_fw = fw.zero_state(B) if state_fw is None else state_fw
    state_bw = bw.zero_state(B) if state_bw is None else state_bw
    out_fw = np.zeros((B, T, fw.output_size))
    out_bw = np.zeros((B, T, bw.output_size))
    finals_fw, finals_bw, caches = [], [], []
    for b in range(B):
        n = lengths[b]
        steps = x[b : b + 1, :n, :]  # [1, n, I]: this row's real steps
        y_fw, f_fw, c_fw = fw.forward(steps, _row(state_fw, b))
        y_bw_reversed, f_bw, c_bw = bw.forward(steps[:, ::-1, :], _row(state_bw, b))
        out_fw[b, :n] = y_fw[0]
        out_bw[b, :n] = y_bw_reversed[0, ::-1]
        finals_fw.append(f_fw)
        finals_bw.append(f_bw)
        caches.append((n, c_fw, c_bw))
    cache = {"caches": caches, "x_shape": x.shape, "out_sizes": (fw.output_size, bw.output_size)}
    return (out_fw, out_bw), (_stack_rows(finals_fw), _stack_rows(finals_bw)), cache


def bidirectional_backward(fw, bw, cache, d_outputs=(None, None), d_state=(None, None)):
    """Gradients of :func:`bidirectional_forward`: ``d_outputs`` and
    ``d_state`` are ``(forward, backward)`` pairs (elements may be None).
    Returns ``(d_x, (d_init_fw, d_init_bw), (d_weights_fw, d_weights_bw))``."""
    B, T, I = cache["x_shape"]
    d_out_fw, d_out_bw = d_outputs
    d_state_fw, d_state_bw = d_state
    d_x = np.zeros((B, T, I))
    d_init_fw, d_init_bw = [], []
    w_fw, w_bw = {}, {}
    for b, (n, c_fw, c_bw) in enumerate(cache["caches"]):
        dy_fw = None if d_out_fw is None else d_out_fw[b : b + 1, :n, :]
        dy_bw = None if d_out_bw is None else d_out_bw[b : b + 1, :n, :][:, ::-1, :]  # the bw cell's order
        ds_fw = None if d_state_fw is None else _row(d_state_fw, b)
        ds_bw = None if d_state_bw is None else _row(d_state_bw, b)
        dx_fw, di_fw, dw_fw = fw.backward(c_fw, dy_fw, ds_fw)
        dx_bw, di_bw, dw_bw = bw.backward(c_bw, dy_bw, ds_bw)
        d_x[b, :n] = dx_fw[0] + dx_bw[0, ::-1]
        d_init_fw.append(di_fw)
        d_init_bw.append(di_bw)
        w_fw = add_weight_grads(w_fw, dw_fw)
        w_bw = add_weight_grads(w_bw, dw_bw)
    return d_x, (_stack_rows(d_init_fw), _stack_rows(d_init_bw)), (w_fw, w_bw)


# --------------------------------------------------------------------------
# Losses for finite differences
# --------------------------------------------------------------------------


def state_dot(d_state, state):
    """sum(d_state * state) over every leaf (0 when ``d_state`` is None)."""
    if d_state is None:
        return 0.0
    return float(
        sum(
            np.sum(np.asarray(d, np.float64) * np.asarray(s, np.float64))
            for d, s in zip(state_leaves(d_state), state_leaves(state))
        )
    )


def linear_loss(outputs, state, d_outputs=None, d_state=None):
    """The scalar loss whose gradients backprop(d_outputs, d_state) computes:
    ``sum(d_outputs * outputs) + sum(d_state * state)``."""
    loss = 0.0 if d_outputs is None else float(np.sum(np.asarray(d_outputs, np.float64) * outputs))
    return loss + state_dot(d_state, state)
