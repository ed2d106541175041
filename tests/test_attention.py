"""rnnrs.seq2seq's attention (BahdanauAttention, LuongAttention, AttentionWrapper)
against the NumPy reference (``attention_reference.py``, itself pinned by
finite differences and real TensorFlow fixtures).

Pins: outputs, every final-state field and every gradient (each weight of the
wrapped cell and of the attention, the memory through ``Gradients.memory``,
the inputs, every field of the initial state) equal the reference for every
mechanism variant, attention layer on/off, ``output_attention`` on/off, each
cell kind (BasicRNN, LSTM with peepholes and projection, GRU, a 2-layer
MultiRNNCell), ragged lengths with a 0 and ragged memory lengths, float64
(to ~1e-10) and float32; a one-step call is a one-step run; a batch that is a
multiple of the memory's repeats each memory row (beams) and sums the
memory's gradient back; bad arguments raise errors naming them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import attention_reference as ar
import reference_wrappers as wr
import rnnrs
from rnnrs import seq2seq

ROOT = Path(__file__).resolve().parent.parent
B, T, I, TM, DM = 3, 4, 2, 5, 3
MECHANISMS = ("bahdanau", "bahdanau_normalize", "luong", "luong_scale")
CELLS = ("BasicRNN", "LSTM", "GRU", "Multi")
FLAGS = ((False, True), (True, True), (False, False), (True, False))  # (attention layer, output_attention)


def make_cell(kind, dtype, units=4):
    """An rnnrs cell whose output is ``units`` wide."""
    if kind == "BasicRNN":
        return rnnrs.BasicRNNCell(units, dtype=dtype, seed=1)
    if kind == "LSTM":
        return rnnrs.LSTMCell(units + 1, use_peepholes=True, num_proj=units, forget_bias=0.5, dtype=dtype, seed=1)
    if kind == "GRU":
        return rnnrs.GRUCell(units, dtype=dtype, seed=1)
    return rnnrs.MultiRNNCell([rnnrs.GRUCell(3, dtype=dtype, seed=1), rnnrs.LSTMCell(units, dtype=dtype, seed=2)])


def reference_cell(cell):
    """The reference layer with the weights of rnnrs ``cell``."""
    w = cell.get_weights()
    if isinstance(cell, rnnrs.MultiRNNCell):
        return wr.Multi([reference_cell(inner) for inner in cell.cells])
    if isinstance(cell, rnnrs.BasicRNNCell):
        return wr.BasicRNN(w["kernel"], w["bias"])
    if isinstance(cell, rnnrs.LSTMCell):
        return wr.LSTM(w, forget_bias=cell.forget_bias)
    return wr.GRU(w)


def make(mechanism, cell_kind, attention_layer, output_attention, dtype, rng, history=False, memory_lengths=(5, 1, 3)):
    memory = rng.normal(size=(B, TM, DM)).astype(dtype)
    units = 4
    if mechanism.startswith("bahdanau"):
        mech = seq2seq.BahdanauAttention(
            6, memory, np.array(memory_lengths), normalize=mechanism.endswith("normalize"), seed=2
        )
    else:
        mech = seq2seq.LuongAttention(
            units, memory, np.array(memory_lengths), scale=mechanism.endswith("scale"), seed=2
        )
    cell = seq2seq.AttentionWrapper(
        make_cell(cell_kind, dtype, units),
        mech,
        attention_layer_size=3 if attention_layer else None,
        alignment_history=history,
        output_attention=output_attention,
        seed=3,
    )
    cell.build(I)
    # Random, not initial, attention weights (attention_g != 1, attention_b != 0).
    cell.set_weights({k: rng.normal(scale=0.5, size=v.shape).astype(dtype) for k, v in cell.get_weights().items()})
    return cell


def reference_of(cell):
    mech = cell.attention_mechanism
    w = cell.get_weights()
    memory = mech.memory.astype(np.float64)
    lengths = mech.memory_sequence_length
    if isinstance(mech, seq2seq.BahdanauAttention):
        ref_mech = ar.BahdanauAttention(
            w["memory_layer/kernel"],
            w["query_layer/kernel"],
            w["attention_v"],
            memory,
            lengths,
            normalize=mech.normalize,
            attention_g=w.get("attention_g"),
            attention_b=w.get("attention_b"),
        )
    else:
        ref_mech = ar.LuongAttention(
            w["memory_layer/kernel"], memory, lengths, scale=mech.scale, attention_g=w.get("attention_g")
        )
    return ar.AttentionWrapper(
        reference_cell(cell.cell),
        ref_mech,
        w.get("attention_layer/kernel"),
        alignment_history=cell.alignment_history,
        output_attention=cell.output_attention,
    )


def leaves(state):
    return [np.asarray(a) for a in wr.state_leaves(state)]


def random_state(cell, rng, dtype):
    zero = cell.zero_state(B)
    return zero.clone(
        cell_state=_map(zero.cell_state, lambda a: rng.normal(scale=0.5, size=a.shape).astype(dtype)),
        attention=rng.normal(scale=0.5, size=zero.attention.shape).astype(dtype),
        alignments=rng.dirichlet(np.ones(TM), size=B).astype(dtype),
        attention_state=rng.dirichlet(np.ones(TM), size=B).astype(dtype),
    )


def _map(state, fn):
    if isinstance(state, rnnrs.LSTMStateTuple):
        return rnnrs.LSTMStateTuple(fn(state.c), fn(state.h))
    if isinstance(state, tuple):
        return tuple(_map(s, fn) for s in state)
    return fn(state)


def to_reference_state(state):
    def conv(s):
        if isinstance(s, rnnrs.LSTMStateTuple):
            return wr.LSTMState(np.asarray(s.c, np.float64), np.asarray(s.h, np.float64))
        if isinstance(s, tuple):
            return tuple(conv(p) for p in s)
        return np.asarray(s, np.float64)

    return ar.AttentionWrapperState(
        cell_state=conv(state.cell_state),
        attention=np.asarray(state.attention, np.float64),
        time=state.time,
        alignments=np.asarray(state.alignments, np.float64),
        alignment_history=np.zeros((0, B, TM))
        if len(state.alignment_history) == 0 and not isinstance(state.alignment_history, tuple)
        else state.alignment_history,
        attention_state=np.asarray(state.attention_state, np.float64),
    )


def close(got, want, dtype, what):
    tol = dict(rtol=1e-9, atol=1e-10) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, err_msg=what, **tol)


CASES = [(m, c, *f) for m in MECHANISMS for c in CELLS for f in FLAGS]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("mechanism", "cell_kind", "attention_layer", "output_attention"), CASES)
def test_matches_the_reference_forward_and_backward(mechanism, cell_kind, attention_layer, output_attention, dtype):
    seed = CASES.index((mechanism, cell_kind, attention_layer, output_attention))
    rng = np.random.default_rng(seed)
    history = seed % 2 == 0
    cell = make(mechanism, cell_kind, attention_layer, output_attention, dtype, rng, history)
    ref = reference_of(cell)
    x = rng.normal(size=(B, T, I)).astype(dtype)
    lengths = np.array([4, 0, 2])
    state = random_state(cell, rng, dtype)
    outputs, final, backprop = rnnrs.dynamic_rnn(cell, x, lengths, initial_state=state, return_backprop=True)
    ref_out, ref_final, cache = ref.forward(x.astype(np.float64), to_reference_state(state), lengths)
    assert outputs.dtype == dtype
    close(outputs, ref_out, dtype, "outputs")
    for got, want in zip(leaves(final.cell_state), leaves(ref_final.cell_state)):
        close(got, want, dtype, "final cell_state")
    for name in ("attention", "alignments", "attention_state"):
        close(getattr(final, name), getattr(ref_final, name), dtype, f"final {name}")
    assert final.time == ref_final.time == T
    if history:
        active = np.arange(T)[:, None] < lengths[None, :]  # entries of finished rows are unspecified
        close(final.alignment_history[active], ref_final.alignment_history[active], dtype, "alignment_history")

    d_out = rng.normal(size=outputs.shape).astype(dtype)
    d_state = final.clone(
        cell_state=_map(final.cell_state, lambda a: rng.normal(size=a.shape).astype(dtype)),
        attention=rng.normal(size=final.attention.shape).astype(dtype),
        alignments=rng.normal(size=final.alignments.shape).astype(dtype),
        attention_state=rng.normal(size=final.attention_state.shape).astype(dtype),
        alignment_history=(),
    )
    grads = backprop(d_out, d_state)
    ref_d_state = to_reference_state(d_state)._replace(alignment_history=None, time=None)
    ref_dx, ref_d0, ref_dw = ref.backward(cache, d_out.astype(np.float64), ref_d_state)
    close(grads.inputs, ref_dx, dtype, "d inputs")
    for got, want in zip(leaves(grads.initial_state.cell_state), leaves(ref_d0.cell_state)):
        close(got, want, dtype, "d initial cell_state")
    for name in ("attention", "alignments", "attention_state"):
        close(getattr(grads.initial_state, name), getattr(ref_d0, name), dtype, f"d initial {name}")
    assert set(grads.weights) == set(cell.get_weights())
    for name, value in grads.weights.items():
        assert value.dtype == dtype, name
        close(value, ref_dw[name], dtype, f"d {name}")
    assert grads.memory.shape == cell.attention_mechanism.memory.shape
    close(grads.memory, ref_dw["memory"], dtype, "d memory")


def test_one_step_call_is_a_one_step_run():
    rng = np.random.default_rng(7)
    cell = make("bahdanau", "LSTM", True, True, np.float64, rng)
    state = random_state(cell, rng, np.float64)
    x = rng.normal(size=(B, I))
    out, new_state = cell(x, state)
    outputs, final = rnnrs.dynamic_rnn(cell, x[:, None, :], initial_state=state)
    np.testing.assert_array_equal(out, outputs[:, 0])
    np.testing.assert_array_equal(new_state.attention, final.attention)
    assert new_state.time == state.time + 1


def test_a_batch_of_beams_repeats_each_memory_row():
    """B * k rows over a memory of B rows: as if the memory had been tile_batch'ed, gradient summed back."""
    rng = np.random.default_rng(8)
    k = 3
    cell = make("luong_scale", "GRU", True, False, np.float64, rng)
    mech = cell.attention_mechanism
    memory, lengths = mech.memory.copy(), mech.memory_sequence_length.copy()
    x = rng.normal(size=(B * k, T, I))
    outputs, final, backprop = rnnrs.dynamic_rnn(cell, x, return_backprop=True)
    d_out = rng.normal(size=outputs.shape)
    grads = backprop(d_out)
    mech.setup_memory(seq2seq.tile_batch(memory, k), seq2seq.tile_batch(lengths, k))
    tiled_out, tiled_final, tiled_backprop = rnnrs.dynamic_rnn(cell, x, return_backprop=True)
    tiled = tiled_backprop(d_out)
    np.testing.assert_allclose(outputs, tiled_out, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(grads.memory, tiled.memory.reshape(B, k, TM, DM).sum(axis=1), rtol=1e-10, atol=1e-12)
    for name in grads.weights:
        np.testing.assert_allclose(grads.weights[name], tiled.weights[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_zero_state_uses_initial_cell_state_and_a_run_without_state_starts_from_it():
    rng = np.random.default_rng(9)
    memory = rng.normal(size=(2, 4, 3))
    start = rng.normal(size=(2, 5))
    mech = seq2seq.LuongAttention(5, memory, dtype=np.float64)
    cell = seq2seq.AttentionWrapper(rnnrs.GRUCell(5, dtype=np.float64, seed=0), mech, initial_cell_state=start)
    np.testing.assert_array_equal(cell.zero_state(2).cell_state, start)
    x = rng.normal(size=(2, 3, 1))
    a = rnnrs.dynamic_rnn(cell, x)[0]
    b = rnnrs.dynamic_rnn(cell, x, initial_state=cell.zero_state(2))[0]
    np.testing.assert_array_equal(a, b)


def test_bad_arguments_name_what_is_wrong():
    memory = np.zeros((2, 4, 3), np.float32)
    with pytest.raises(ValueError, match=r"^memory_sequence_length: expected lengths in \[1, 4\].*got 0"):
        seq2seq.BahdanauAttention(5, memory, [4, 0])
    with pytest.raises(ValueError, match=r"^memory_sequence_length: expected shape \[2\]"):
        seq2seq.BahdanauAttention(5, memory, [4, 1, 1])
    with pytest.raises(ValueError, match="^memory: expected"):
        seq2seq.BahdanauAttention(5, np.zeros((2, 4)))
    mech = seq2seq.LuongAttention(6, memory)
    cell = seq2seq.AttentionWrapper(rnnrs.GRUCell(5), mech)
    with pytest.raises(ValueError, match="^cell: expected an output size equal to LuongAttention's num_units 6"):
        rnnrs.dynamic_rnn(cell, np.zeros((2, 3, 1), np.float32))
    with pytest.raises(ValueError, match="^attention_mechanism: expected one mechanism"):
        seq2seq.AttentionWrapper(rnnrs.GRUCell(5), [mech, mech])
    with pytest.raises(TypeError, match="^attention_mechanism: expected a BahdanauAttention or LuongAttention"):
        seq2seq.AttentionWrapper(rnnrs.GRUCell(5), "luong")
    with pytest.raises(ValueError, match="^cell_input_fn: expected None"):
        seq2seq.AttentionWrapper(rnnrs.GRUCell(5), mech, cell_input_fn=lambda a, b: a)
    good = seq2seq.AttentionWrapper(rnnrs.GRUCell(6), mech)
    with pytest.raises(ValueError, match="^inputs: expected a batch equal to the memory's 2 rows or a multiple"):
        rnnrs.dynamic_rnn(good, np.zeros((3, 2, 1), np.float32))
    with pytest.raises(ValueError, match="^memory: expected a memory"):
        seq2seq.AttentionWrapper(rnnrs.GRUCell(6), seq2seq.LuongAttention(6)).zero_state(2)


def _fixture(name):
    with np.load(ROOT / "tests" / "fixtures" / "attention" / f"{name}.npz") as data:
        return {key: data[key] for key in data.files}


def test_beam_search_over_attention_matches_tensorflow():
    """TF's BeamSearchDecoder over an AttentionWrapper (Luong, scaled, attention layer) on tile_batch'd memory
    and state; here the memory and the initial state are given for the batch rows and nothing is tiled by hand."""
    f = _fixture("beam_luong")
    K = int(f["beam_width"])
    w = {k[len("weight/") :]: v for k, v in f.items() if k.startswith("weight/")}
    lstm = rnnrs.LSTMCell(w["kernel"].shape[1] // 4, forget_bias=float(f["forget_bias"]))
    lstm.set_weights({"kernel": w["kernel"], "bias": w["bias"]})
    mech = seq2seq.LuongAttention(lstm.output_size, f["memory"], f["memory_sequence_length"], scale=True)
    cell = seq2seq.AttentionWrapper(lstm, mech, attention_layer_size=w["attention_layer/kernel"].shape[1])
    cell.build(f["embedding"].shape[1])
    cell.set_weights({k: w[k] for k in ("memory_layer/kernel", "attention_g", "attention_layer/kernel")})
    dense = rnnrs.Dense(f["dense_kernel"].shape[1])
    dense.build(f["dense_kernel"].shape[0])
    dense.set_weights({"kernel": f["dense_kernel"], "bias": f["dense_bias"]})
    state = cell.zero_state(B).clone(
        cell_state=rnnrs.LSTMStateTuple(f["init/cell_state/c"], f["init/cell_state/h"]), attention=f["init/attention"]
    )
    decoder = seq2seq.BeamSearchDecoder(
        cell, f["embedding"], f["start_tokens"], int(f["end_token"]), state, K, output_layer=dense
    )
    out, final, lengths = seq2seq.dynamic_decode(decoder, maximum_iterations=int(f["maximum_iterations"]))
    np.testing.assert_array_equal(out.beam_search_decoder_output.predicted_ids, f["step_ids"])
    np.testing.assert_array_equal(out.beam_search_decoder_output.parent_ids, f["parent_ids"])
    np.testing.assert_array_equal(out.predicted_ids, f["predicted_ids"])
    np.testing.assert_allclose(out.beam_search_decoder_output.scores, f["scores"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(final.lengths, f["lengths"])
    np.testing.assert_allclose(final.cell_state.attention.reshape(-1, 3), f["out/attention"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("helper_kind", ["training", "greedy"])
def test_decoders_return_the_memory_gradient(helper_kind):
    """dynamic_decode(return_backprop=True) over an AttentionWrapper: DecoderGradients.memory equals the
    teacher-forced run's (greedy decodes are re-run teacher-forced on the ids they fed)."""
    rng = np.random.default_rng(11)
    cell = make("bahdanau_normalize", "GRU", True, True, np.float64, rng)
    emb = rng.normal(size=(7, I))
    dense = rnnrs.Dense(7, dtype=np.float64, seed=0)
    start = cell.zero_state(B)
    if helper_kind == "training":
        x = rng.normal(size=(B, T, I))
        lengths = np.array([4, 1, 3])
        helper = seq2seq.TrainingHelper(x, lengths)
    else:
        helper = seq2seq.GreedyEmbeddingHelper(emb, np.zeros(B, np.int32), 1)
    decoder = seq2seq.BasicDecoder(cell, helper, start, output_layer=dense)
    out, _, _, backprop = seq2seq.dynamic_decode(decoder, maximum_iterations=T, return_backprop=True)
    d_logits = rng.normal(size=out.rnn_output.shape)
    grads = backprop(d_logits)
    assert grads.memory.shape == cell.attention_mechanism.memory.shape
    assert "memory" not in grads.weights and set(grads.weights) == set(cell.get_weights())
    fed = x if helper_kind == "training" else emb[np.concatenate([np.zeros((B, 1), int), out.sample_id[:, :-1]], 1)]
    # impute_finished=False: every row runs every step (TF), past its length too, and those logits count.
    outputs, _, forced = rnnrs.dynamic_rnn(
        cell, fed[:, : out.rnn_output.shape[1]], initial_state=start, return_backprop=True
    )
    d_cell = dense(outputs, return_backprop=True)[1](d_logits).inputs
    np.testing.assert_allclose(grads.memory, forced(d_cell).memory, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cell_kind", ["BasicRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("time_major", [False, True])
def test_the_rust_loop_equals_the_python_loop(cell_kind, time_major, monkeypatch):
    """Whole sequences over a core cell run in rust/attention/; one-step calls (and decoders stepping a
    subset of rows) in Python over the cached keys: both give the same outputs, states and gradients."""
    rng = np.random.default_rng(12)
    cell = make("bahdanau_normalize", cell_kind, True, False, np.float64, rng, history=True)
    x = rng.normal(size=(B, T, I))
    lengths = np.array([4, 0, 2])
    state = random_state(cell, rng, np.float64)
    calls = []
    forward = rnnrs._rnnrs.attention_forward
    monkeypatch.setattr(rnnrs._rnnrs, "attention_forward", lambda *a: calls.append(1) or forward(*a))
    xs = np.swapaxes(x, 0, 1).copy() if time_major else x
    weights = cell._locked_snapshot()
    rust = cell._run(xs, state, lengths, time_major, False, weights)
    python = cell._run(xs, state, lengths, time_major, False, weights, np.arange(B))  # memory rows: Python
    assert calls == [1]
    np.testing.assert_allclose(rust[0], python[0], rtol=1e-11, atol=1e-12)
    for name in ("attention", "alignments", "attention_state"):
        np.testing.assert_allclose(getattr(rust[1], name), getattr(python[1], name), rtol=1e-11, atol=1e-12)
    assert rust[1].time == python[1].time == T
    active = np.arange(T)[:, None] < lengths[None, :]
    np.testing.assert_allclose(rust[1].alignment_history[active], python[1].alignment_history[active], rtol=1e-11)
    d_out = rng.normal(size=rust[0].shape)
    d_state = rust[1].clone(
        cell_state=_map(rust[1].cell_state, lambda a: rng.normal(size=a.shape)),
        attention=rng.normal(size=rust[1].attention.shape),
        alignments=rng.normal(size=(B, TM)),
        attention_state=rng.normal(size=(B, TM)),
    )
    g_rust, g_python = rust[2](d_out, d_state), python[2](d_out, d_state)
    np.testing.assert_allclose(g_rust[0], g_python[0], rtol=1e-10, atol=1e-12)
    for a, b in zip(leaves(g_rust[1].cell_state), leaves(g_python[1].cell_state)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for name in ("attention", "alignments", "attention_state"):
        np.testing.assert_allclose(getattr(g_rust[1], name), getattr(g_python[1], name), rtol=1e-10, atol=1e-12)
    assert set(g_rust[2]) == set(g_python[2])
    for name in g_rust[2]:
        np.testing.assert_allclose(g_rust[2][name], g_python[2][name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_rebinding_the_same_buffer_after_changing_it_takes_the_new_values():
    rng = np.random.default_rng(13)
    buf = rng.normal(size=(2, 4, 3))
    mech = seq2seq.BahdanauAttention(5, buf, seed=1)
    w = seq2seq.AttentionWrapper(rnnrs.GRUCell(4, dtype=np.float64, seed=1), mech)
    x = np.ones((2, 1, 2))
    rnnrs.dynamic_rnn(w, x, initial_state=w.zero_state(2))  # caches the keys of buf
    buf *= -3
    mech.setup_memory(buf)
    again = rnnrs.dynamic_rnn(w, x, initial_state=w.zero_state(2))[0]
    mech.setup_memory(buf.copy())
    np.testing.assert_array_equal(again, rnnrs.dynamic_rnn(w, x, initial_state=w.zero_state(2))[0])


def test_impute_finished_over_beams_of_a_memory_and_zero_step_backprop():
    rng = np.random.default_rng(14)
    memory = rng.normal(size=(2, 4, 3))
    w = seq2seq.AttentionWrapper(rnnrs.GRUCell(4, dtype=np.float64, seed=1), seq2seq.BahdanauAttention(5, memory))
    w.build(3)
    dense = rnnrs.Dense(6, dtype=np.float64, seed=2)

    def decode(impute):
        helper = seq2seq.GreedyEmbeddingHelper(rng.normal(size=(6, 3)) * 0 + np.eye(6, 3), np.zeros(4, np.int32), 1)
        d = seq2seq.BasicDecoder(w, helper, w.zero_state(4), output_layer=dense)
        return seq2seq.dynamic_decode(d, maximum_iterations=5, impute_finished=impute)

    plain, imputed = decode(False), decode(True)
    lengths = plain[2]
    for b in range(4):
        np.testing.assert_array_equal(imputed[0].sample_id[b, : lengths[b]], plain[0].sample_id[b, : lengths[b]])
    # No step at all: the gradients are zeros, not an error.
    _, final, backprop = rnnrs.dynamic_rnn(w, np.zeros((2, 0, 3)), initial_state=w.zero_state(2), return_backprop=True)
    grads = backprop()
    assert grads.inputs.shape == (2, 0, 3) and not grads.memory.any()
    assert final.time == 0


def test_memory_gradients_of_nested_wrappers_leave_the_weights():
    rng = np.random.default_rng(15)
    memory = rng.normal(size=(2, 4, 3))
    w = seq2seq.AttentionWrapper(rnnrs.GRUCell(4, dtype=np.float64, seed=1), seq2seq.LuongAttention(4, memory))
    x = rng.normal(size=(2, 3, 2))
    for cell in (rnnrs.MultiRNNCell([w, rnnrs.GRUCell(4, dtype=np.float64, seed=2)]), rnnrs.DropoutWrapper(w)):
        outputs, _, backprop = rnnrs.dynamic_rnn(cell, x, return_backprop=True)
        grads = backprop(np.ones_like(outputs))
        assert set(grads.weights) == set(cell.get_weights())
        assert grads.memory.shape == memory.shape and grads.memory.any()


def test_memory_dtype_follows_the_cell_and_loose_initial_states_are_completed():
    memory = np.random.default_rng(16).normal(size=(2, 4, 3))  # float64
    w = seq2seq.AttentionWrapper(
        rnnrs.GRUCell(4, seed=1), seq2seq.LuongAttention(4, memory), alignment_history=True
    )  # a float32 cell
    assert w.attention_mechanism.memory.dtype == np.float32
    with pytest.raises(ValueError, match="^attention_mechanism: expected the cell's dtype float32, got float64"):
        seq2seq.AttentionWrapper(rnnrs.GRUCell(4), seq2seq.LuongAttention(4, memory, dtype=np.float64))
    start = w.zero_state(2).clone(alignment_history=())  # e.g. cloned from a state without history
    x = np.ones((2, 3, 2), np.float32)
    long_run = rnnrs.dynamic_rnn(w, x, initial_state=start)[1]
    assert long_run.alignment_history.shape == (3, 2, 4)
    assert w(x[:, 0], start)[1].alignment_history.shape == (1, 2, 4)


def test_tile_batch_tiles_an_attention_wrapper_state():
    memory = np.zeros((2, 4, 3), np.float32)
    w = seq2seq.AttentionWrapper(rnnrs.GRUCell(4), seq2seq.LuongAttention(4, memory), alignment_history=True)
    state = w.zero_state(2).clone(attention=np.arange(6, dtype=np.float32).reshape(2, 3))
    tiled = seq2seq.tile_batch(state, 3)
    assert isinstance(tiled, seq2seq.AttentionWrapperState) and tiled.time == 0
    np.testing.assert_array_equal(tiled.attention, np.repeat(state.attention, 3, axis=0))
    assert tiled.alignment_history.shape == (0, 6, 4) and tiled.cell_state.shape == (6, 4)


def test_beam_search_wired_the_tensorflow_way_equals_no_wiring():
    """TF 1.x users tile the memory, its lengths and the state by hand (zero_state(B * beam)); rnnrs
    needs none of it, and both give the same beams."""
    rng = np.random.default_rng(17)
    K = 3
    memory, lengths = rng.normal(size=(B, TM, DM)), np.array([5, 2, 3])
    cell = rnnrs.LSTMCell(4, dtype=np.float64, seed=1)
    emb = rng.normal(size=(6, I))
    dense = rnnrs.Dense(6, dtype=np.float64, seed=2)
    encoder_state = rnnrs.LSTMStateTuple(rng.normal(size=(B, 4)), rng.normal(size=(B, 4)))

    def decode(tiled):
        mech = seq2seq.BahdanauAttention(
            5,
            seq2seq.tile_batch(memory, K) if tiled else memory,
            seq2seq.tile_batch(lengths, K) if tiled else lengths,
            seed=3,
        )
        wrapper = seq2seq.AttentionWrapper(cell, mech, attention_layer_size=3, seed=4)
        rows = B * K if tiled else B
        state = wrapper.zero_state(rows).clone(
            cell_state=seq2seq.tile_batch(encoder_state, K) if tiled else encoder_state
        )
        decoder = seq2seq.BeamSearchDecoder(wrapper, emb, np.zeros(B, np.int32), 1, state, K, output_layer=dense)
        return seq2seq.dynamic_decode(decoder, maximum_iterations=6)

    (a, sa, la), (b, sb, lb) = decode(False), decode(True)
    np.testing.assert_array_equal(a.predicted_ids, b.predicted_ids)
    np.testing.assert_allclose(a.beam_search_decoder_output.scores, b.beam_search_decoder_output.scores, rtol=1e-12)
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(sa.lengths, sb.lengths)
    np.testing.assert_allclose(sa.log_probs, sb.log_probs, rtol=1e-12)


@given(
    mechanism=st.sampled_from(MECHANISMS),
    cell_kind=st.sampled_from(CELLS),
    attention_layer=st.booleans(),
    output_attention=st.booleans(),
    batch=st.integers(1, 4),
    time=st.integers(0, 5),
    input_size=st.integers(1, 3),
    memory_time=st.integers(1, 5),
    depth=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_shapes_match_the_reference(
    mechanism, cell_kind, attention_layer, output_attention, batch, time, input_size, memory_time, depth, seed
):
    """Property: for random shapes, lengths (0 included) and memory lengths, dynamic_rnn over the wrapper
    (the Rust loop for core cells when time > 1, the NumPy loop otherwise) equals the float64 reference:
    outputs, final attention and alignments, the inputs' and memory's gradients and every weight's."""
    rng = np.random.default_rng(seed)
    units = 3
    memory = rng.normal(size=(batch, memory_time, depth))
    memory_lengths = rng.integers(1, memory_time + 1, size=batch)
    if mechanism.startswith("bahdanau"):
        mech = seq2seq.BahdanauAttention(4, memory, memory_lengths, normalize=mechanism.endswith("normalize"))
    else:
        mech = seq2seq.LuongAttention(units, memory, memory_lengths, scale=mechanism.endswith("scale"))
    cell = seq2seq.AttentionWrapper(
        make_cell(cell_kind, np.float64, units),
        mech,
        attention_layer_size=2 if attention_layer else None,
        output_attention=output_attention,
    )
    cell.build(input_size)
    cell.set_weights({k: rng.normal(scale=0.5, size=v.shape) for k, v in cell.get_weights().items()})
    ref = reference_of(cell)
    x = rng.normal(size=(batch, time, input_size))
    lengths = rng.integers(0, time + 1, size=batch)
    outputs, final, backprop = rnnrs.dynamic_rnn(cell, x, lengths, return_backprop=True)
    zero = ref.zero_state(batch)
    ref_out, ref_final, cache = ref.forward(x, zero, lengths)
    np.testing.assert_allclose(outputs, ref_out, rtol=1e-9, atol=1e-10)
    if time:  # TF runs no step for T = 0; the reference's final state then equals its start
        np.testing.assert_allclose(final.attention, ref_final.attention, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(final.alignments, ref_final.alignments, rtol=1e-9, atol=1e-10)
    d_out = rng.normal(size=outputs.shape)
    grads = backprop(d_out)
    ref_dx, _, ref_dw = ref.backward(cache, d_out, None)
    np.testing.assert_allclose(grads.inputs, ref_dx, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(grads.memory, ref_dw["memory"], rtol=1e-9, atol=1e-10)
    for name, value in grads.weights.items():
        np.testing.assert_allclose(value, ref_dw[name], rtol=1e-9, atol=1e-10, err_msg=name)
