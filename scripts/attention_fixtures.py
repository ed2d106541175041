"""Writes ``tests/fixtures/attention/*.npz``: real TensorFlow attention results
that pin ``tests/attention_reference.py`` (checked by
``tests/test_attention_reference.py``).

TensorFlow 2.x dropped ``tf.contrib.seq2seq``; TensorFlow Addons'
``tfa.seq2seq`` is its port (``BahdanauAttention``, ``LuongAttention``,
``AttentionWrapper``, ``_prepare_memory``, ``_bahdanau_score``,
``_luong_score``, ``_compute_attention``). The wrapper runs under
``tf.compat.v1.nn.dynamic_rnn`` itself (TF 1.x's loop, with its
``sequence_length`` copy-through) inside a ``tf.function`` (dynamic_rnn's
graph branch is TF 1.x's; its eager branch runs all ``T`` steps) and a
``GradientTape``. Run with a Python 3.11 that has ``tensorflow`` 2.15 and
``tensorflow-addons`` 0.23::

    python3.11 -m venv /work/venv-tfa
    /work/venv-tfa/bin/pip install "tensorflow==2.15.1" "tensorflow-addons==0.23.*" "numpy<2"
    /work/venv-tfa/bin/python scripts/attention_fixtures.py [NAME ...]

(with names, e.g. ``beam_coverage``, only those files are written). Never
imported by the tests. Every case is float32, ``B = 3`` rows, ``T = 4`` steps
of ``I = 2`` inputs, a memory ``[3, 5, 3]`` (its padding holds random
values, not zeros, so that the masking shows), an inner Keras cell of 4 units
(``LSTMCell``, ``GRUCell(reset_after=False)``, ``SimpleRNNCell`` or a
``StackedRNNCells`` of an LSTM and a GRU), random weights and a random initial
state (every field but the empty alignment history). Each file stores:

- ``x``, ``sequence_length``, ``memory``, ``memory_sequence_length`` (absent:
  no masking), the case's flags (``mechanism``, ``normalize``, ``scale``,
  ``attention_layer_size`` (0: none), ``output_attention``,
  ``alignment_history``, ``cell``);
- ``weight/<name>`` under the rnnrs names: the inner cell's (LSTM in rnnrs's
  ``LSTMCell`` layout as in ``seq2seq_fixtures.py``, ``forget_bias`` 1.0 taken
  out of the bias and stored as ``forget_bias``; GRU as TF 1.x's ``GRUCell``:
  ``gates/kernel`` ``[I + H, 2H]`` blocks ``r, u`` (Keras: ``z, r, h``),
  ``candidate/kernel``; a stack's under ``cell_0/``, ``cell_1/``) and
  ``memory_layer/kernel``, ``query_layer/kernel``, ``attention_v``,
  ``attention_g``, ``attention_b``, ``attention_layer/kernel``;
- ``init/<field>`` the initial state (``init/cell_state/<leaf>`` with leaves
  ``c``, ``h`` for an LSTM, ``h`` otherwise, ``cell_0/...`` in a stack);
- ``out/outputs`` and ``out/<field>`` the final state (``out/alignment_history``
  stacked ``[steps, B, Tm]``);
- ``d/<...>``: the loss's coefficients: ``loss = sum(d/outputs * outputs) +
  sum over the final state's fields (and leaves) of d * field``;
- ``grad/<name>``: the loss's gradients w.r.t. every weight (rnnrs names and
  layouts), ``grad/x``, ``grad/memory`` and ``grad/init/<field>``.

``beam_luong.npz``: ``BeamSearchDecoder`` over an ``AttentionWrapper``
(Luong, scaled, attention layer) on ``tile_batch``'d memory: ids, parents,
scores and final state (see the README); ``beam_coverage.npz``: the same
with a length penalty, a coverage penalty that changes the decode, initial
alignments and the final accumulated attention probabilities. The
mechanism's keys are computed when the memory is set up, so it is set up
again after the weights are assigned.

What TensorFlow does that DESIGN.md does not spell out (also in
``tests/fixtures/attention/README.md``):

- ``memory_layer`` (and Bahdanau's ``query_layer``, and the attention layer)
  are ``Dense`` layers without bias.
- ``_prepare_memory`` multiplies the memory by the 0/1 sequence mask (NaN
  padding would stay NaN in TF); the keys are computed from the masked values.
  For Bahdanau and Luong that is not observable with finite memory: masked
  positions get alignment 0, so neither their keys nor values reach the result.
- tfa masks scores with ``score.dtype.min`` (TF 1.15: ``-inf``); both give
  exactly 0 after the softmax since every row has a real position. A memory
  length of 0 gives NaN alignments in TF 1.15 (tfa asserts positive lengths).
- ``normalize=True``: ``attention_g`` is a scalar initialised to
  ``sqrt(1 / num_units)`` and ``attention_b`` ``[num_units]`` zeros; Luong's
  ``scale`` ``attention_g`` is a scalar initialised to 1.
- The attention layer reads ``concat([cell_output, context])``, cell output first.
- tfa's ``AttentionWrapperState`` has no ``time`` field (TF 1.15's has one);
  its alignment history is written at ``size()``, TF 1.15's at ``time``.
- ``dynamic_rnn`` runs ``min(T, max(1, max(sequence_length)))`` steps, so the
  alignment history has that many entries (case ``*_short``); finished rows
  keep every array field of the state, but the history gets what the step
  computed for them from their frozen state and padding input.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_addons as tfa  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "attention"
F32 = np.float32
FORGET_BIAS = 1.0
B, T, IN, TM, DM, H = 3, 4, 2, 5, 3, 4
BAHDANAU_UNITS = 5  # Luong's num_units must equal the query depth H
ATTENTION_LAYER_SIZE = 3
FIELDS = ("attention", "alignments", "attention_state")
ONLY = set(sys.argv[1:])  # the names of the files to write (none given: all)


# -- the inner cells: Keras weights <-> rnnrs names and layouts ---------------------------------
def lstm_layout(k: np.ndarray, r: np.ndarray, b: np.ndarray, shift: bool) -> dict[str, np.ndarray]:
    """Keras LSTM arrays (or their gradients) in rnnrs's LSTMCell layout: kernels
    stacked, blocks ``i, f, c, o`` -> ``i, j(=c), f, o``; with ``shift`` the
    forget bias is taken out of the ``f`` block (rnnrs adds it at run time)."""
    n = b.shape[0] // 4
    i, f, c, o = (slice(j * n, (j + 1) * n) for j in range(4))

    def reorder(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a[..., i], a[..., c], a[..., f], a[..., o]], axis=-1)

    bias = reorder(b).copy()
    if shift:
        bias[2 * n : 3 * n] -= F32(FORGET_BIAS)
    return {"kernel": reorder(np.concatenate([k, r], axis=0)), "bias": bias}


def gru_layout(k: np.ndarray, r: np.ndarray, b: np.ndarray, shift: bool) -> dict[str, np.ndarray]:
    """Keras ``GRUCell(reset_after=False)`` (blocks ``z, r, h``; ``h~ = tanh(x Wh +
    (r*h) Uh + bh)``) as TF 1.x's GRUCell (``gates`` blocks ``r, u``, ``u = z``)."""
    n = b.shape[0] // 3
    z, rr, hh = (slice(j * n, (j + 1) * n) for j in range(3))
    stacked = np.concatenate([k, r], axis=0)
    return {
        "gates/kernel": np.concatenate([stacked[:, rr], stacked[:, z]], axis=1),
        "gates/bias": np.concatenate([b[rr], b[z]]),
        "candidate/kernel": stacked[:, hh],
        "candidate/bias": b[hh],
    }


def rnn_layout(k: np.ndarray, r: np.ndarray, b: np.ndarray, shift: bool) -> dict[str, np.ndarray]:
    """Keras ``SimpleRNNCell`` as BasicRNNCell: ``kernel = [W; U]``."""
    return {"kernel": np.concatenate([k, r], axis=0), "bias": b}


LAYOUTS = {"lstm": lstm_layout, "gru": gru_layout, "rnn": rnn_layout}


def keras_cell(kind: str) -> Any:
    if kind == "lstm":
        return tf.keras.layers.LSTMCell(H)
    if kind == "gru":
        return tf.keras.layers.GRUCell(H, reset_after=False)
    if kind == "rnn":
        return tf.keras.layers.SimpleRNNCell(H)
    if kind == "stack":
        return tf.keras.layers.StackedRNNCells(
            [tf.keras.layers.LSTMCell(H), tf.keras.layers.GRUCell(H, reset_after=False)]
        )
    raise ValueError(kind)


def inner_parts(kind: str, cell: Any) -> list[tuple[str, str, Any]]:
    """``(prefix, kind, keras cell)`` for each cell of ``cell``, bottom first."""
    if kind == "stack":
        return [("cell_0/", "lstm", cell.cells[0]), ("cell_1/", "gru", cell.cells[1])]
    return [("", kind, cell)]


def cell_state_leaves(kind: str, state: Any) -> dict[str, Any]:
    """Keras cell states (``[h, c]`` for an LSTM, ``[h]`` or ``h`` otherwise) by rnnrs leaf names."""
    if kind == "stack":
        out = {}
        for i, (sub, part) in enumerate(zip(("lstm", "gru"), state)):
            out.update({f"cell_{i}/{k}": v for k, v in cell_state_leaves(sub, part).items()})
        return out
    parts = tf.nest.flatten(state)
    if kind == "lstm":
        return {"c": parts[1], "h": parts[0]}
    return {"h": parts[0]}


def keras_cell_state(kind: str, leaves: dict[str, Any]) -> Any:
    """The inverse of :func:`cell_state_leaves`."""
    if kind == "stack":
        return (
            keras_cell_state("lstm", {k[7:]: v for k, v in leaves.items() if k.startswith("cell_0/")}),
            keras_cell_state("gru", {k[7:]: v for k, v in leaves.items() if k.startswith("cell_1/")}),
        )
    if kind == "lstm":
        return [leaves["h"], leaves["c"]]
    return [leaves["h"]]


# -- one case ------------------------------------------------------------------------------------
def make_case(
    name: str,
    seed: int,
    *,
    mechanism: str,
    normalize: bool = False,
    scale: bool = False,
    attention_layer: bool,
    output_attention: bool,
    alignment_history: bool,
    cell_kind: str = "lstm",
    memory_lengths: tuple[int, ...] | None = (5, 2, 3),
    lengths: tuple[int, ...] = (4, 0, 2),
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, IN)).astype(F32)
    memory = rng.standard_normal((B, TM, DM)).astype(F32)
    mem_len = None if memory_lengths is None else np.asarray(memory_lengths, np.int32)
    seq_len = np.asarray(lengths, np.int32)

    if mechanism == "bahdanau":
        U = BAHDANAU_UNITS
        mech = tfa.seq2seq.BahdanauAttention(U, memory=memory, memory_sequence_length=mem_len, normalize=normalize)
    else:
        U = H
        mech = tfa.seq2seq.LuongAttention(U, memory=memory, memory_sequence_length=mem_len, scale=scale)
    cell = keras_cell(cell_kind)
    wrapper = tfa.seq2seq.AttentionWrapper(
        cell,
        mech,
        attention_layer_size=ATTENTION_LAYER_SIZE if attention_layer else None,
        alignment_history=alignment_history,
        output_attention=output_attention,
    )
    # one step builds every layer (in eager mode it also writes into the state's
    # alignment history TensorArray, so the run below starts from a fresh state)
    wrapper(tf.constant(x[:, 0]), wrapper.get_initial_state(batch_size=B, dtype=tf.float32))
    zero = wrapper.get_initial_state(batch_size=B, dtype=tf.float32)

    # -- random weights, stored under rnnrs names
    data: dict[str, np.ndarray] = {}
    keras_vars: dict[str, list[Any]] = {}  # rnnrs prefix -> the Keras cell's variables
    for prefix, kind, part in inner_parts(cell_kind, cell):
        arrays = [
            (rng.standard_normal(v.shape) * (0.6 if v.shape.rank == 2 else 0.3)).astype(F32) for v in part.weights
        ]
        part.set_weights(arrays)
        keras_vars[prefix] = list(part.weights)
        for k, v in LAYOUTS[kind](*arrays, shift=True).items():
            data[f"weight/{prefix}{k}"] = v
    attention_vars: dict[str, Any] = {"memory_layer/kernel": mech.memory_layer.kernel}
    if mechanism == "bahdanau":
        attention_vars["query_layer/kernel"] = mech.query_layer.kernel
        attention_vars["attention_v"] = mech.attention_v
        if normalize:
            attention_vars["attention_g"] = mech.attention_g
            attention_vars["attention_b"] = mech.attention_b
    elif scale:
        attention_vars["attention_g"] = mech.scale_weight  # tfa's name for Luong's attention_g
    if attention_layer:
        attention_vars["attention_layer/kernel"] = wrapper._attention_layers[0].kernel
    for k, var in attention_vars.items():
        if k == "attention_g":
            value = np.asarray(rng.uniform(0.6, 1.6), F32)
        elif var.shape.rank == 1:
            value = (rng.standard_normal(var.shape) * 0.5).astype(F32)
        else:
            value = (rng.standard_normal(var.shape) * 0.6).astype(F32)
        var.assign(value)
        data[f"weight/{k}"] = value
    if cell_kind in ("lstm", "stack"):
        data["forget_bias"] = np.asarray(FORGET_BIAS, F32)

    # -- a random initial state (the alignment history starts empty)
    init: dict[str, np.ndarray] = {}
    for leaf, value in cell_state_leaves(cell_kind, zero.cell_state).items():
        init[f"cell_state/{leaf}"] = (rng.standard_normal(value.shape) * 0.5).astype(F32)
    init["attention"] = (rng.standard_normal(zero.attention.shape) * 0.5).astype(F32)
    for k in ("alignments", "attention_state"):
        init[k] = rng.dirichlet(np.ones(TM), size=B).astype(F32)

    # -- the loss's coefficients
    steps = min(T, max(1, int(seq_len.max())))
    out_size = ATTENTION_LAYER_SIZE if attention_layer else DM
    if not output_attention:
        out_size = H
    d: dict[str, np.ndarray] = {"outputs": rng.standard_normal((B, T, out_size)).astype(F32)}
    for k, v in init.items():
        d[k] = rng.standard_normal(v.shape).astype(F32)
    if alignment_history:
        d["alignment_history"] = rng.standard_normal((steps, B, TM)).astype(F32)

    variables = {**attention_vars}
    for prefix, _, _ in inner_parts(cell_kind, cell):
        variables.update({f"{prefix}keras_{j}": v for j, v in enumerate(keras_vars[prefix])})

    # A tf.function: dynamic_rnn's graph branch is TF 1.x's (its eager branch
    # runs all T steps instead of min(T, max(1, max(sequence_length)))).
    @tf.function
    def run(x_t: Any, memory_t: Any, init_t: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        with tf.GradientTape() as tape:
            tape.watch([x_t, memory_t, *init_t.values()])
            mech.setup_memory(memory_t, memory_sequence_length=mem_len)  # values and keys on the tape
            fresh = wrapper.get_initial_state(batch_size=B, dtype=tf.float32)
            state = tfa.seq2seq.AttentionWrapperState(
                cell_state=keras_cell_state(
                    cell_kind, {k[len("cell_state/") :]: v for k, v in init_t.items() if k.startswith("cell_state/")}
                ),
                attention=init_t["attention"],
                alignments=init_t["alignments"],
                alignment_history=fresh.alignment_history,
                attention_state=init_t["attention_state"],
            )
            outputs, final = tf.compat.v1.nn.dynamic_rnn(wrapper, x_t, sequence_length=seq_len, initial_state=state)
            got: dict[str, Any] = {"outputs": outputs}
            for leaf, value in cell_state_leaves(cell_kind, final.cell_state).items():
                got[f"cell_state/{leaf}"] = value
            for k in FIELDS:
                got[k] = getattr(final, k)
            if alignment_history:
                got["alignment_history"] = final.alignment_history.stack()
            loss = tf.add_n([tf.reduce_sum(tf.constant(d[k]) * got[k]) for k in d])
        sources = {"x": x_t, "memory": memory_t, **{f"init/{k}": v for k, v in init_t.items()}, **variables}
        grads = tape.gradient(loss, sources)
        return got, grads

    got, grads = run(tf.constant(x), tf.constant(memory), {k: tf.constant(v) for k, v in init.items()})
    for k, v in got.items():
        data[f"out/{k}"] = v.numpy()
    for k, v in d.items():
        data[f"d/{k}"] = v
    for k, v in init.items():
        data[f"init/{k}"] = v
    data["grad/x"] = grads["x"].numpy()
    data["grad/memory"] = grads["memory"].numpy()
    for k in init:
        g = grads[f"init/{k}"]
        data[f"grad/init/{k}"] = np.zeros_like(init[k]) if g is None else g.numpy()
    for k in attention_vars:
        data[f"grad/{k}"] = grads[k].numpy()
    for prefix, kind, _ in inner_parts(cell_kind, cell):
        parts = [grads[f"{prefix}keras_{j}"].numpy() for j in range(len(keras_vars[prefix]))]
        for k, v in LAYOUTS[kind](*parts, shift=False).items():
            data[f"grad/{prefix}{k}"] = v

    data.update(
        {
            "seed": np.asarray(seed),
            "x": x,
            "memory": memory,
            "sequence_length": seq_len,
            "mechanism": np.asarray(mechanism),
            "normalize": np.asarray(normalize),
            "scale": np.asarray(scale),
            "attention_layer_size": np.asarray(ATTENTION_LAYER_SIZE if attention_layer else 0, np.int32),
            "output_attention": np.asarray(output_attention),
            "alignment_history": np.asarray(alignment_history),
            "cell": np.asarray(cell_kind),
        }
    )
    if mem_len is not None:
        data["memory_sequence_length"] = mem_len
    assert np.all(np.isfinite(data["out/outputs"])), name
    return data


# -- beam search over an AttentionWrapper -----------------------------------------------------------
def beam_case(
    seed: int,
    K: int,
    V: int,
    max_iter: int,
    *,
    length_penalty: float = 0.0,
    coverage_penalty: float = 0.0,
    initial_alignments: bool = False,
) -> dict[str, np.ndarray]:
    """``BeamSearchDecoder(AttentionWrapper(LSTMCell, LuongAttention(scale=True)),
    beam_width=K)`` with ``tile_batch``'d memory, memory lengths and initial
    state (``B`` rows stored, as rnnrs takes them).

    With a ``coverage_penalty`` the final ``accumulated_attention_probs`` are
    stored too, and ``uncovered_step_ids``: the step ids of the same decode
    without the penalty (for the seed search; not saved). With
    ``initial_alignments`` the initial state's alignments are random
    distributions over each row's memory positions (TF starts the
    accumulated probabilities from them)."""
    rng = np.random.default_rng(seed)
    E = 3
    memory = rng.standard_normal((B, TM, DM)).astype(F32)
    mem_len = np.asarray([5, 2, 3], np.int32)
    mech = tfa.seq2seq.LuongAttention(
        H,
        memory=tfa.seq2seq.tile_batch(memory, K),
        memory_sequence_length=tfa.seq2seq.tile_batch(mem_len, K),
        scale=True,
    )
    cell = tf.keras.layers.LSTMCell(H)
    wrapper = tfa.seq2seq.AttentionWrapper(cell, mech, attention_layer_size=ATTENTION_LAYER_SIZE)
    wrapper(tf.zeros((B * K, E)), wrapper.get_initial_state(batch_size=B * K, dtype=tf.float32))  # build
    arrays = [(rng.standard_normal(v.shape) * (0.8 if v.shape.rank == 2 else 0.3)).astype(F32) for v in cell.weights]
    cell.set_weights(arrays)
    data = {f"weight/{k}": v for k, v in lstm_layout(*arrays, shift=True).items()}
    data["forget_bias"] = np.asarray(FORGET_BIAS, F32)
    for k, var in (
        ("memory_layer/kernel", mech.memory_layer.kernel),
        ("attention_g", mech.scale_weight),
        ("attention_layer/kernel", wrapper._attention_layers[0].kernel),
    ):
        value = (
            np.asarray(rng.uniform(0.8, 1.6), F32) if k == "attention_g" else rng.standard_normal(var.shape).astype(F32)
        )
        var.assign(value)
        data[f"weight/{k}"] = value
    # the keys were computed with the memory layer's initial kernel: again with the new one
    mech.setup_memory(tfa.seq2seq.tile_batch(memory, K), memory_sequence_length=tfa.seq2seq.tile_batch(mem_len, K))
    dense = tf.keras.layers.Dense(V)
    dense.build((None, ATTENTION_LAYER_SIZE))
    dense_kernel = (rng.standard_normal((ATTENTION_LAYER_SIZE, V)) * 1.5).astype(F32)
    dense_bias = (rng.standard_normal(V) * 0.3).astype(F32)
    end_token = 1
    dense_bias[end_token] += F32(0.7)  # EOS a little likelier: beams end at different steps
    dense.set_weights([dense_kernel, dense_bias])
    embedding = rng.standard_normal((V, E)).astype(F32)
    init = {
        "cell_state/c": (rng.standard_normal((B, H)) * 0.5).astype(F32),
        "cell_state/h": (rng.standard_normal((B, H)) * 0.5).astype(F32),
        "attention": (rng.standard_normal((B, ATTENTION_LAYER_SIZE)) * 0.5).astype(F32),
    }
    if initial_alignments:
        alignments = np.zeros((B, TM), F32)
        for b, n in enumerate(mem_len):
            alignments[b, :n] = rng.dirichlet(np.ones(n))
        init["alignments"] = alignments
    zero = wrapper.get_initial_state(batch_size=B * K, dtype=tf.float32)
    initial_state = zero.clone(
        cell_state=[tfa.seq2seq.tile_batch(init["cell_state/h"], K), tfa.seq2seq.tile_batch(init["cell_state/c"], K)],
        attention=tfa.seq2seq.tile_batch(init["attention"], K),
    )
    if initial_alignments:
        initial_state = initial_state.clone(alignments=tfa.seq2seq.tile_batch(init["alignments"], K))
    start = np.arange(B, dtype=np.int32) % V

    def decode(coverage: float) -> Any:
        decoder = tfa.seq2seq.BeamSearchDecoder(
            wrapper,
            K,
            output_layer=dense,
            maximum_iterations=max_iter,
            length_penalty_weight=length_penalty,
            coverage_penalty_weight=coverage,
        )
        return decoder(embedding, start_tokens=start, end_token=end_token, initial_state=initial_state)

    outputs, state, lengths = decode(coverage_penalty)
    bs = outputs.beam_search_decoder_output
    data.update({f"init/{k}": v for k, v in init.items()})
    data.update(
        {
            "seed": np.asarray(seed),
            "memory": memory,
            "memory_sequence_length": mem_len,
            "embedding": embedding,
            "dense_kernel": dense_kernel,
            "dense_bias": dense_bias,
            "start_tokens": start,
            "end_token": np.asarray(end_token, np.int32),
            "beam_width": np.asarray(K, np.int32),
            "maximum_iterations": np.asarray(max_iter, np.int32),
            "predicted_ids": outputs.predicted_ids.numpy(),
            "step_ids": bs.predicted_ids.numpy(),
            "parent_ids": bs.parent_ids.numpy(),
            "scores": bs.scores.numpy(),
            "log_probs": state.log_probs.numpy(),
            "finished": state.finished.numpy(),
            "lengths": state.lengths.numpy().astype(np.int32),
            "decode_lengths": lengths.numpy().astype(np.int32),
        }
    )
    final = state.cell_state  # [B, K, ...], stored as rows b*K + k

    def rows(a: Any) -> np.ndarray:
        a = np.asarray(a)
        return a.reshape((B * K,) + a.shape[2:])

    data["out/cell_state/h"], data["out/cell_state/c"] = (rows(a) for a in final.cell_state)
    data["out/attention"] = rows(final.attention)
    data["out/alignments"] = rows(final.alignments)
    if length_penalty or coverage_penalty:
        data["length_penalty_weight"] = np.asarray(length_penalty, F32)
        data["coverage_penalty_weight"] = np.asarray(coverage_penalty, F32)
    if coverage_penalty:
        data["accumulated_attention_probs"] = state.accumulated_attention_probs.numpy()
        data["uncovered_step_ids"] = decode(0.0)[0].beam_search_decoder_output.predicted_ids.numpy()
    return data


def make_beam() -> None:
    K, V, max_iter = 3, 6, 6
    for seed in range(500):
        data = beam_case(seed, K, V, max_iter)
        lens = data["lengths"]
        # some beam ended early, some hit the cap, and the lengths vary
        if lens.min() < max_iter - 1 and not data["finished"].all() and len(set(lens.ravel().tolist())) >= 3:
            save("beam_luong", data)
            return
    raise RuntimeError("no beam seed found")


def make_beam_coverage() -> None:
    """``beam_coverage``: as ``beam_luong`` with a length penalty, a coverage
    penalty that changes the decode and initial alignments."""
    K, V, max_iter = 3, 6, 6
    for seed in range(1000, 1500):
        data = beam_case(seed, K, V, max_iter, length_penalty=0.6, coverage_penalty=0.8, initial_alignments=True)
        lens = data["lengths"]
        acc = data["accumulated_attention_probs"]
        if (
            not np.array_equal(data.pop("uncovered_step_ids"), data["step_ids"])
            and lens.min() < max_iter - 1
            and not data["finished"].all()
            and len(set(lens.ravel().tolist())) >= 3
            and (acc > 1).any()  # min(acc, 1) matters
        ):
            save("beam_coverage", data)
            return
    raise RuntimeError("no beam coverage seed found")


def save(name: str, data: dict[str, np.ndarray]) -> None:
    if ONLY and name not in ONLY:
        return
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / f"{name}.npz", **data)
    print(f"{name}.npz: {(OUT / f'{name}.npz').stat().st_size} bytes")


MECHANISMS = {
    "bahdanau": {"mechanism": "bahdanau"},
    "bahdanau_norm": {"mechanism": "bahdanau", "normalize": True},
    "luong": {"mechanism": "luong"},
    "luong_scale": {"mechanism": "luong", "scale": True},
}


def main() -> None:
    print("tensorflow", tf.__version__, "tensorflow-addons", tfa.__version__)
    seed = 0
    # Every mechanism with and without an attention layer, with output_attention
    # True and False (two of the four pairs each, all four pairs over the
    # mechanisms), on an LSTM. (Each stored array costs about 300 bytes of zip
    # and .npy headers: the cases are chosen, not crossed, to keep the files small.)
    pairs = {
        "bahdanau": ((False, True), (True, False)),
        "bahdanau_norm": ((False, False), (True, True)),
        "luong": ((False, False), (True, True)),
        "luong_scale": ((False, True), (True, False)),
    }
    for mech_name, mech in MECHANISMS.items():
        for layer, output_attention in pairs[mech_name]:
            seed += 1
            name = f"{mech_name}_{'layer' if layer else 'nolayer'}_{'att' if output_attention else 'cell'}"
            save(
                name,
                make_case(
                    name,
                    seed,
                    **mech,  # type: ignore[arg-type]
                    attention_layer=layer,
                    output_attention=output_attention,
                    alignment_history=(seed % 2 == 0),
                ),
            )
    # Other inner cells, no memory mask, and fewer steps than T (loop_bound < T).
    extra = {
        "bahdanau_norm_gru": dict(MECHANISMS["bahdanau_norm"], cell_kind="gru", attention_layer=True),
        "luong_scale_rnn": dict(MECHANISMS["luong_scale"], cell_kind="rnn", attention_layer=True),
        "bahdanau_stack": dict(MECHANISMS["bahdanau"], cell_kind="stack", attention_layer=True),
        "luong_nomask": dict(MECHANISMS["luong"], attention_layer=False, memory_lengths=None),
        "bahdanau_short": dict(
            MECHANISMS["bahdanau"], attention_layer=True, lengths=(2, 0, 3), memory_lengths=(1, 5, 4)
        ),
    }
    for name, kwargs in extra.items():
        seed += 1
        kwargs = {"output_attention": True, "alignment_history": True, **kwargs}
        save(name, make_case(name, seed, **kwargs))  # type: ignore[arg-type]
    make_beam()
    make_beam_coverage()


if __name__ == "__main__":
    main()
