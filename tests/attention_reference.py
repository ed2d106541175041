"""Plain-NumPy reference of TensorFlow 1.15's attention (``tf.contrib.seq2seq``'s
``BahdanauAttention``, ``LuongAttention`` and ``AttentionWrapper``), run by
``dynamic_rnn``. Written to be read, not to be fast: float64, one time step at
a time, every product spelled out.

The wrapper is a reference *layer* with the interface of
``reference_wrappers.py`` (read its docstring), so any of its cell layers
(``BasicRNN``, ``LSTM``, ``GRU``, ``Multi``, the wrappers) can be the inner
cell::

    layer.input_size, layer.output_size
    layer.weights()                        -> {name: array}: the inner cell's keys, the
                                              attention weights and "memory"
    layer.zero_state(B)                    -> AttentionWrapperState, zeros
    layer.forward(x [B, T, I], state, lengths=None) -> (outputs [B, T, O], final_state, cache)
    layer.backward(cache, d_outputs, d_state)       -> (d_x [B, T, I], d_initial_state, d_weights)

Shape letters: ``B`` batch, ``T`` decoder steps, ``I`` the wrapper's input
width, ``Tm`` memory time, ``Dm`` memory depth, ``U`` the mechanism's
``num_units``, ``Hout`` the inner cell's output width (the query width ``Q``),
``A`` the attention width (``attention_layer_size``, or ``Dm`` without an
attention layer).

Transcribed from TF 1.15 ``contrib/seq2seq/python/ops/attention_wrapper.py``
(``_prepare_memory``, ``_maybe_mask_score``, ``_bahdanau_score``,
``_luong_score``, ``_compute_attention``, ``AttentionWrapper.call``) and
``ops/rnn.py`` (``_dynamic_rnn_loop``, ``_rnn_step``); the comments name the
function each block comes from. ``test_attention_reference.py`` pins it
against float64 finite differences and against real TensorFlow results
(``fixtures/attention/``, written by ``scripts/attention_fixtures.py`` with
``tfa.seq2seq``, TF 1.15's port).

Memory, per mechanism (``_BaseAttentionMechanism.__init__``):

- ``values = memory`` with rows ``b`` zeroed at positions ``>= memory_sequence_length[b]``
  (``_prepare_memory``; TF multiplies by the 0/1 mask, this reference selects
  with ``np.where``: the same for finite memory. Masked positions get
  alignment 0, so for these two mechanisms this masking cannot be seen in any
  result or gradient; it is kept to follow TF);
- ``keys = values @ memory_layer/kernel`` (a ``Dense`` without bias).

Each step of ``AttentionWrapper.call`` (for every row, running or not):

1. cell input ``= concat([x_t, previous attention])``; run the inner cell one step;
2. ``query = cell output``; ``score [B, Tm]`` by the mechanism; positions
   ``>= memory_sequence_length`` get ``-inf``; ``alignments = softmax(score)``
   (exactly 0 at masked positions);
3. ``context = alignments @ values`` ``[B, Dm]``;
4. ``attention = concat([cell_output, context]) @ attention_layer/kernel``
   (no bias) with an attention layer, else ``context``;
5. ``output = attention`` (``output_attention=True``) or the cell output;
   next state ``(cell_state', attention, time + 1, alignments, history +
   [alignments], alignments)``: Bahdanau's and Luong's ``attention_state`` is
   their alignments.

``dynamic_rnn`` around it (``_dynamic_rnn_loop``, ``_rnn_step`` with
``skip_conditionals=True``):

- it runs ``min(T, max(1, max(sequence_length)))`` steps (``loop_bound``;
  ``T`` without ``sequence_length``); outputs after them are zeros. So the
  final ``time`` and the length of ``alignment_history`` count those steps,
  not ``T``;
- rows with ``t >= sequence_length[b]`` output zeros and keep every array
  field of the state (``cell_state``, ``attention``, ``alignments``,
  ``attention_state``: ``_copy_one_through``); the scalar ``time`` and the
  ``alignment_history`` TensorArray are passed through from the cell, so
  ``time`` counts every step and the history gets, for a finished row, what
  the step computed from that row's frozen state and its (padding) input.
  rnnrs's contract leaves those history entries unspecified: compare them only
  where ``t < sequence_length[b]``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

import reference as ref
import reference_wrappers as wr


class AttentionWrapperState(NamedTuple):
    """TF's ``AttentionWrapperState``; ``time`` is an int, ``alignment_history``
    an array ``[steps, B, Tm]`` when kept, else ``()``."""

    cell_state: Any
    attention: np.ndarray  # [B, A]
    time: Any
    alignments: np.ndarray  # [B, Tm]
    alignment_history: Any  # [steps, B, Tm] or ()
    attention_state: np.ndarray  # [B, Tm]


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _add_grads(total, more):
    """``total + more`` for dicts of gradients, keeping the keys of both."""
    out = dict(total)
    for k, v in more.items():
        out[k] = out[k] + v if k in out else np.array(v, dtype=np.float64)
    return out


def _softmax(score):
    """Softmax over the last axis; ``-inf`` entries get exactly 0."""
    shifted = score - score.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


# --------------------------------------------------------------------------
# Attention mechanisms
# --------------------------------------------------------------------------


class _Mechanism:
    """What Bahdanau and Luong share: the memory, its mask, values and keys.

    The memory (and the kernels) are read at every ``forward``, never copied,
    so finite differences may perturb ``weights()``'s arrays in place."""

    def __init__(self, memory_layer_kernel, memory, memory_sequence_length):
        self.memory = _f64(memory)  # [B, Tm, Dm]
        self.memory_layer_kernel = _f64(memory_layer_kernel)  # [Dm, U]
        if self.memory.ndim != 3:
            raise ValueError(f"memory: expected a [batch, memory_time, depth] array, got shape {self.memory.shape}")
        B, Tm, Dm = self.memory.shape
        if self.memory_layer_kernel.ndim != 2 or self.memory_layer_kernel.shape[0] != Dm:
            raise ValueError(
                f"memory_layer_kernel: expected shape [{Dm}, num_units], got {self.memory_layer_kernel.shape}"
            )
        self.num_units = self.memory_layer_kernel.shape[1]  # U
        if memory_sequence_length is None:
            self.memory_sequence_length = None
            self.mask = np.ones((B, Tm), dtype=bool)
        else:
            lengths = np.asarray(memory_sequence_length).reshape(-1)
            if lengths.shape != (B,):
                raise ValueError(f"memory_sequence_length: expected shape [{B}], got {lengths.shape}")
            if np.any(lengths < 1):
                raise ValueError(
                    "memory_sequence_length: expected every length >= 1 (a row with no memory has no "
                    f"alignments to normalise), got {lengths.tolist()}"
                )
            self.memory_sequence_length = lengths.astype(np.int64)
            # sequence_mask(memory_sequence_length, maxlen=Tm): lengths > Tm mean "all of it"
            self.mask = np.arange(Tm)[None, :] < self.memory_sequence_length[:, None]  # [B, Tm]
        self.batch, self.memory_time, self.memory_depth = B, Tm, Dm

    def prepare(self):
        """``_prepare_memory`` and the memory layer: ``(values, keys)`` from the current arrays."""
        values = np.where(self.mask[:, :, None], self.memory, 0.0)  # [B, Tm, Dm]
        keys = values @ self.memory_layer_kernel  # [B, Tm, U]
        return values, keys

    def alignments(self, query, keys):
        """``_maybe_mask_score`` then softmax: ``(alignments [B, Tm], score cache)``."""
        score, cache = self.score(query, keys)  # [B, Tm]
        masked = np.where(self.mask, score, -np.inf)
        return _softmax(masked), cache

    def prepare_backward(self, d_values, d_keys):
        """Gradients of memory and memory_layer/kernel from those of values and keys."""
        values, _ = self.prepare()
        d_kernel = np.einsum("btd,btu->du", values, d_keys)  # [Dm, U]
        d_values = d_values + d_keys @ self.memory_layer_kernel.T  # [B, Tm, Dm]
        d_memory = np.where(self.mask[:, :, None], d_values, 0.0)  # masked memory is a constant 0
        return d_memory, d_kernel


class BahdanauAttention(_Mechanism):
    """``score[b, t] = attention_v . tanh(keys[b, t] + query[b] @ query_layer/kernel)``;
    with ``normalize`` (``attention_g`` and ``attention_b`` given):
    ``(attention_g * attention_v / ||attention_v||) . tanh(keys + processed_query + attention_b)``
    (``_bahdanau_score``). TF's initial values: ``attention_g = sqrt(1 / U)``,
    ``attention_b = 0``."""

    def __init__(
        self,
        memory_layer_kernel,
        query_layer_kernel,
        attention_v,
        memory,
        memory_sequence_length=None,
        normalize=False,
        attention_g=None,
        attention_b=None,
    ):
        super().__init__(memory_layer_kernel, memory, memory_sequence_length)
        U = self.num_units
        self.query_layer_kernel = _f64(query_layer_kernel)  # [Q, U]
        self.attention_v = _f64(attention_v)  # [U]
        if self.query_layer_kernel.ndim != 2 or self.query_layer_kernel.shape[1] != U:
            raise ValueError(
                f"query_layer_kernel: expected shape [query_depth, {U}], got {self.query_layer_kernel.shape}"
            )
        if self.attention_v.shape != (U,):
            raise ValueError(f"attention_v: expected shape [{U}], got {self.attention_v.shape}")
        self.normalize = bool(normalize)
        if self.normalize:
            if attention_g is None or attention_b is None:
                raise ValueError("attention_g, attention_b: expected arrays with normalize=True, got None")
            self.attention_g = _f64(attention_g)  # ()
            self.attention_b = _f64(attention_b)  # [U]
            if self.attention_g.shape != ():
                raise ValueError(f"attention_g: expected a scalar (shape ()), got shape {self.attention_g.shape}")
            if self.attention_b.shape != (U,):
                raise ValueError(f"attention_b: expected shape [{U}], got {self.attention_b.shape}")
        elif attention_g is not None or attention_b is not None:
            raise ValueError("attention_g, attention_b: expected None with normalize=False")
        self.query_depth = self.query_layer_kernel.shape[0]

    def weights(self):
        w = {
            "memory_layer/kernel": self.memory_layer_kernel,
            "query_layer/kernel": self.query_layer_kernel,
            "attention_v": self.attention_v,
        }
        if self.normalize:
            w["attention_g"] = self.attention_g
            w["attention_b"] = self.attention_b
        return w

    def score(self, query, keys):
        processed_query = query @ self.query_layer_kernel  # [B, U]
        pre = keys + processed_query[:, None, :]  # [B, Tm, U]
        if self.normalize:
            pre = pre + self.attention_b
            norm = np.sqrt(np.sum(self.attention_v**2))
            v = self.attention_g * self.attention_v / norm  # normed_v [U]
        else:
            v = self.attention_v
        th = np.tanh(pre)  # [B, Tm, U]
        score = th @ v  # [B, Tm]
        return score, {"query": query, "th": th, "v": v}

    def score_backward(self, cache, d_score):
        """``(d_query [B, Q], d_keys [B, Tm, U], d_weights)`` from ``d_score [B, Tm]``."""
        th, v, query = cache["th"], cache["v"], cache["query"]
        d_v_used = np.einsum("btu,bt->u", th, d_score)  # gradient of the v actually used
        d_pre = d_score[:, :, None] * v * (1.0 - th**2)  # [B, Tm, U]
        d_processed = d_pre.sum(axis=1)  # [B, U]
        d = {
            "query_layer/kernel": query.T @ d_processed,  # [Q, U]
        }
        if self.normalize:
            a = self.attention_v
            norm = np.sqrt(np.sum(a**2))
            g = self.attention_g
            # v = g * a / |a|:  dv/dg = a / |a|;  dv/da = g (I / |a| - a a^T / |a|^3)
            d["attention_g"] = np.asarray(np.dot(d_v_used, a) / norm)
            d["attention_v"] = g * (d_v_used / norm - a * np.dot(a, d_v_used) / norm**3)
            d["attention_b"] = d_pre.sum(axis=(0, 1))
        else:
            d["attention_v"] = d_v_used
        d_query = d_processed @ self.query_layer_kernel.T  # [B, Q]
        return d_query, d_pre, d


class LuongAttention(_Mechanism):
    """``score[b, t] = query[b] . keys[b, t]``, times the scalar ``attention_g``
    with ``scale`` (``_luong_score``; TF's initial ``attention_g`` is 1). The
    query (the inner cell's output) must be ``U`` wide."""

    def __init__(self, memory_layer_kernel, memory, memory_sequence_length=None, scale=False, attention_g=None):
        super().__init__(memory_layer_kernel, memory, memory_sequence_length)
        self.scale = bool(scale)
        if self.scale:
            if attention_g is None:
                raise ValueError("attention_g: expected a scalar with scale=True, got None")
            self.attention_g = _f64(attention_g)
            if self.attention_g.shape != ():
                raise ValueError(f"attention_g: expected a scalar (shape ()), got shape {self.attention_g.shape}")
        elif attention_g is not None:
            raise ValueError("attention_g: expected None with scale=False")
        self.query_depth = self.num_units

    def weights(self):
        w = {"memory_layer/kernel": self.memory_layer_kernel}
        if self.scale:
            w["attention_g"] = self.attention_g
        return w

    def score(self, query, keys):
        dot = np.einsum("bu,btu->bt", query, keys)  # [B, Tm]
        score = self.attention_g * dot if self.scale else dot
        return score, {"query": query, "keys": keys, "dot": dot}

    def score_backward(self, cache, d_score):
        query, keys = cache["query"], cache["keys"]
        d = {}
        if self.scale:
            d["attention_g"] = np.asarray(np.sum(d_score * cache["dot"]))
            d_dot = self.attention_g * d_score
        else:
            d_dot = d_score
        d_query = np.einsum("bt,btu->bu", d_dot, keys)  # [B, U]
        d_keys = np.einsum("bt,bu->btu", d_dot, query)  # [B, Tm, U]
        return d_query, d_keys, d


# --------------------------------------------------------------------------
# AttentionWrapper, run by dynamic_rnn
# --------------------------------------------------------------------------

ARRAY_FIELDS = ("attention", "alignments", "attention_state")  # copied through for finished rows


class AttentionWrapper:
    """TF 1.15's ``AttentionWrapper(cell, mechanism, attention_layer_size,
    alignment_history, output_attention)`` with one mechanism, as a layer run
    by ``dynamic_rnn`` (see the module docstring). ``attention_layer_kernel``
    is ``attention_layer/kernel`` ``[Hout + Dm, A]`` (rows: the cell output's,
    then the context's) or None."""

    def __init__(
        self, cell_layer, mechanism, attention_layer_kernel=None, alignment_history=False, output_attention=True
    ):
        self.cell = cell_layer
        self.mechanism = mechanism
        self.alignment_history = bool(alignment_history)
        self.output_attention = bool(output_attention)
        Hout, Dm = cell_layer.output_size, mechanism.memory_depth
        if mechanism.query_depth != Hout:
            raise ValueError(
                f"mechanism: expected a query depth equal to the cell's output size {Hout}, got {mechanism.query_depth}"
            )
        if attention_layer_kernel is None:
            self.attention_layer_kernel = None
            self.attention_size = Dm  # A
        else:
            self.attention_layer_kernel = _f64(attention_layer_kernel)  # [Hout + Dm, A]
            if self.attention_layer_kernel.ndim != 2 or self.attention_layer_kernel.shape[0] != Hout + Dm:
                raise ValueError(
                    f"attention_layer_kernel: expected shape [{Hout + Dm}, attention_layer_size], "
                    f"got {self.attention_layer_kernel.shape}"
                )
            self.attention_size = self.attention_layer_kernel.shape[1]
        self.input_size = cell_layer.input_size - self.attention_size  # I
        if self.input_size < 0:
            raise ValueError(
                f"cell_layer: expected an input size >= the attention width {self.attention_size}, "
                f"got {cell_layer.input_size}"
            )
        self.output_size = self.attention_size if self.output_attention else Hout

    def weights(self):
        w = {**self.cell.weights(), **self.mechanism.weights()}
        if self.attention_layer_kernel is not None:
            w["attention_layer/kernel"] = self.attention_layer_kernel
        w["memory"] = self.mechanism.memory  # not a variable, but differentiated like one
        return w

    def zero_state(self, batch):
        Tm = self.mechanism.memory_time
        return AttentionWrapperState(
            cell_state=self.cell.zero_state(batch),
            attention=np.zeros((batch, self.attention_size)),
            time=0,
            alignments=np.zeros((batch, Tm)),
            alignment_history=np.zeros((0, batch, Tm)) if self.alignment_history else (),
            attention_state=np.zeros((batch, Tm)),
        )

    # -- one step of AttentionWrapper.call, every row ----------------------------------
    def _step(self, x_t, state, values, keys):
        cell_inputs = np.concatenate([x_t, state.attention], axis=1)  # [B, I + A]
        cell_out, cell_state, cell_cache = self.cell.forward(cell_inputs[:, None, :], state.cell_state, None)
        query = cell_out[:, 0, :]  # [B, Hout]
        alignments, score_cache = self.mechanism.alignments(query, keys)  # [B, Tm]
        context = np.einsum("bt,btd->bd", alignments, values)  # [B, Dm]
        if self.attention_layer_kernel is not None:
            joined = np.concatenate([query, context], axis=1)  # [B, Hout + Dm]
            attention = joined @ self.attention_layer_kernel  # [B, A]
        else:
            attention = context
        output = attention if self.output_attention else query
        cache = {"cell": cell_cache, "score": score_cache, "query": query, "alignments": alignments, "context": context}
        return output, cell_state, attention, alignments, cache

    def forward(self, x, state=None, lengths=None):
        x = _f64(x)
        B, T, I = x.shape
        if I != self.input_size:
            raise ValueError(f"x: expected input width {self.input_size}, got {I}")
        if B != self.mechanism.batch:
            raise ValueError(f"x: expected the memory's batch size {self.mechanism.batch}, got {B}")
        state = self.zero_state(B) if state is None else state
        lengths = ref.as_lengths(lengths, B, T)
        # _dynamic_rnn_loop's loop_bound
        steps = min(T, max(1, int(lengths.max()))) if B else 0
        values, keys = self.mechanism.prepare()
        outputs = np.zeros((B, T, self.output_size))
        history = list(state.alignment_history) if self.alignment_history else None
        s = state
        caches = []
        for t in range(steps):
            active = ref.active_rows(lengths, t)  # [B, 1]
            out, cell_state, attention, alignments, cache = self._step(x[:, t, :], s, values, keys)
            if history is not None:
                history.append(alignments)  # the TensorArray write: every row
            outputs[:, t, :] = np.where(active, out, 0.0)
            # _rnn_step's _copy_one_through: finished rows keep every array field
            s = AttentionWrapperState(
                cell_state=wr.select_rows(active, cell_state, s.cell_state),
                attention=np.where(active, attention, s.attention),
                time=s.time + 1,
                alignments=np.where(active, alignments, s.alignments),
                alignment_history=(),
                attention_state=np.where(active, alignments, s.attention_state),
            )
            caches.append((cache, active))
        Tm = self.mechanism.memory_time
        final = s._replace(
            alignment_history=(np.stack(history) if history else np.zeros((0, B, Tm))) if history is not None else (),
        )
        initial_history_steps = len(state.alignment_history) if self.alignment_history else 0
        return (
            outputs,
            final,
            {"caches": caches, "x_shape": x.shape, "initial_state": state, "history_steps0": initial_history_steps},
        )

    def backward(self, cache, d_outputs=None, d_state=None):
        """Gradients of :meth:`forward`. ``d_state`` is an ``AttentionWrapperState``
        whose fields may be None (zeros); its ``time`` is ignored and its
        ``alignment_history`` (when kept) is ``[steps, B, Tm]`` like the final
        state's. Returns ``(d_x, d_initial_state, d_weights)``; ``d_weights``
        has the keys of :meth:`weights` (``"memory"`` included) and
        ``d_initial_state.time`` is None."""
        B, T, I = cache["x_shape"]
        init = cache["initial_state"]
        mech = self.mechanism
        values, keys = mech.prepare()
        Hout = self.cell.output_size

        def field(name, like):
            d = None if d_state is None else getattr(d_state, name)
            return np.zeros_like(like, dtype=np.float64) if d is None else _f64(d)

        ds = {
            "cell_state": wr.zeros_like_state(init.cell_state)
            if d_state is None or d_state.cell_state is None
            else d_state.cell_state,
            **{name: field(name, getattr(init, name)) for name in ARRAY_FIELDS},
        }
        d_history = None
        if self.alignment_history:
            h0 = cache["history_steps0"]
            shape = (h0 + len(cache["caches"]), B, mech.memory_time)
            given = None if d_state is None else d_state.alignment_history
            d_history = np.zeros(shape) if given is None or len(given) == 0 else _f64(given).reshape(shape)
        d_outputs = np.zeros((B, T, self.output_size)) if d_outputs is None else _f64(d_outputs)

        d_x = np.zeros((B, T, I))
        d_values = np.zeros_like(values)
        d_keys = np.zeros_like(keys)
        d_weights = {}
        d_attention_kernel = None if self.attention_layer_kernel is None else np.zeros_like(self.attention_layer_kernel)
        for t in reversed(range(len(cache["caches"]))):
            step, active = cache["caches"][t]
            # what the step's new values receive: masked by the copy-through
            d_out = np.where(active, d_outputs[:, t, :], 0.0)  # [B, O]
            d_cell_state = wr.map_state(lambda _c, d, a=active: np.where(a, d, 0.0), ds["cell_state"])
            d_attention = np.where(active, ds["attention"], 0.0)
            d_alignments = np.where(active, ds["alignments"] + ds["attention_state"], 0.0)
            if d_history is not None:
                d_alignments = d_alignments + d_history[cache["history_steps0"] + t]  # written for every row
            # ... and what passes to the previous state for finished rows
            passed = {name: np.where(active, 0.0, ds[name]) for name in ARRAY_FIELDS}
            passed_cell = wr.map_state(lambda _c, d, a=active: np.where(a, 0.0, d), ds["cell_state"])

            if self.output_attention:
                d_attention = d_attention + d_out
                d_query = np.zeros((B, Hout))
            else:
                d_query = d_out
            # attention layer (_compute_attention)
            query, context, alignments = step["query"], step["context"], step["alignments"]
            if self.attention_layer_kernel is not None:
                joined = np.concatenate([query, context], axis=1)
                d_attention_kernel += joined.T @ d_attention
                d_joined = d_attention @ self.attention_layer_kernel.T  # [B, Hout + Dm]
                d_query = d_query + d_joined[:, :Hout]
                d_context = d_joined[:, Hout:]
            else:
                d_context = d_attention
            # context = alignments @ values
            d_alignments = d_alignments + np.einsum("bd,btd->bt", d_context, values)
            d_values += np.einsum("bt,bd->btd", alignments, d_context)
            # softmax (masked positions have alignment 0, hence gradient 0)
            d_score = alignments * (d_alignments - np.sum(alignments * d_alignments, axis=1, keepdims=True))
            d_q, d_k, d_w_mech = mech.score_backward(step["score"], d_score)
            d_query = d_query + d_q
            d_keys += d_k
            d_weights = _add_grads(d_weights, d_w_mech)
            # the inner cell
            d_cell_in, d_cell_prev, d_w_cell = self.cell.backward(step["cell"], d_query[:, None, :], d_cell_state)
            d_weights = _add_grads(d_weights, d_w_cell)
            d_x[:, t, :] = d_cell_in[:, 0, :I]
            ds = {
                "cell_state": wr.map_state(lambda _c, a, b: a + b, d_cell_prev, passed_cell),
                "attention": d_cell_in[:, 0, I:] + passed["attention"],
                "alignments": passed["alignments"],  # the step does not read the previous alignments
                "attention_state": passed["attention_state"],  # nor Bahdanau / Luong their state
            }

        d_memory, d_memory_kernel = mech.prepare_backward(d_values, d_keys)
        zeros = {k: np.zeros_like(v) for k, v in self.weights().items()}
        d_weights = {**zeros, **d_weights}
        d_weights["memory_layer/kernel"] = d_weights["memory_layer/kernel"] + d_memory_kernel
        d_weights["memory"] = d_memory
        if d_attention_kernel is not None:
            d_weights["attention_layer/kernel"] = d_attention_kernel
        d_initial = AttentionWrapperState(
            cell_state=ds["cell_state"],
            attention=ds["attention"],
            time=None,
            alignments=ds["alignments"],
            alignment_history=d_history[: cache["history_steps0"]] if d_history is not None else (),
            attention_state=ds["attention_state"],
        )
        return d_x, d_initial, d_weights


# --------------------------------------------------------------------------
# The loss whose gradients backward computes (for finite differences)
# --------------------------------------------------------------------------


def linear_loss(outputs, state, d_outputs=None, d_state=None):
    """``sum(d_outputs * outputs) + sum(d_state * state)`` over the state's
    differentiable fields (every one but ``time``); None means zeros."""
    loss = 0.0 if d_outputs is None else float(np.sum(_f64(d_outputs) * outputs))
    if d_state is None:
        return loss
    if d_state.cell_state is not None:
        loss += wr.state_dot(d_state.cell_state, state.cell_state)
    for name in (*ARRAY_FIELDS, "alignment_history"):
        d = getattr(d_state, name)
        if d is not None and len(d):
            loss += float(np.sum(_f64(d) * _f64(getattr(state, name))))
    return loss
