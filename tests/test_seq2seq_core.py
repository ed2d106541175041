"""rnnrs.seq2seq's helpers, BasicDecoder and dynamic_decode (TF 1.15 semantics).

The reference below is a slow, direct transcription of TF 1.15's
``dynamic_decode`` loop and helpers (no row compaction, no fused pass):
every finished row still steps, and ``impute_finished`` is applied with
``where`` exactly as TF does. Each test names the behaviour it pins.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnnrs
from rnnrs import LSTMStateTuple, seq2seq
from rnnrs._state import map_state

# -- the reference -------------------------------------------------------------


def ref_project(layer, h):
    if layer is None:
        return h
    w = layer.get_weights()
    z = h @ w["kernel"] + w.get("bias", 0)
    return np.tanh(z) if layer.activation == "tanh" else z


def ref_sample(logits, u, temperature):
    """TF-free sampling as the spec pins it: float64 softmax, sequential cdf, searchsorted right."""
    out = []
    for row, ub in zip(logits.astype(np.float64), u):
        z = row / temperature
        z = z - z.max()
        cdf = np.cumsum(np.exp(z))
        out.append(min(int(np.searchsorted(cdf, ub * cdf[-1], side="right")), len(row) - 1))
    return np.array(out, dtype=np.int32)


def ref_decode(cell, layer, state, helper, maximum_iterations, impute):
    """TF 1.15 dynamic_decode + BasicDecoder + the helper, one cell call per step."""
    b = helper.batch_size
    kind = type(helper).__name__
    if kind in ("TrainingHelper", "ScheduledEmbeddingTrainingHelper"):
        x_all = np.asarray(helper.inputs, dtype=cell.dtype)
        if helper.time_major:
            x_all = x_all.transpose(1, 0, 2)
        seq = helper.sequence_length
        finished = 0 >= seq
        x = x_all[:, 0] if x_all.shape[1] else np.zeros((b, x_all.shape[2]), cell.dtype)
        rng = np.random.default_rng(getattr(helper, "seed", None))
    else:
        emb = np.asarray(helper._embedding_value, dtype=cell.dtype)
        finished = np.zeros(b, dtype=bool)
        x = emb[helper.start_tokens]
        if kind == "SampleEmbeddingHelper":
            u_all = np.random.default_rng(helper.seed).random((maximum_iterations, b))
    finished = finished | (0 >= maximum_iterations)
    lengths = np.zeros(b, dtype=np.int32)
    outs, ids_all = [], []
    t = 0
    while not finished.all():
        out, new_state = cell(x, state)
        logits = ref_project(layer, out)
        if kind == "TrainingHelper":
            ids = np.argmax(logits, -1).astype(np.int32)
            dec_fin = t + 1 >= seq
            nx = x_all[:, t + 1] if t + 1 < x_all.shape[1] else np.zeros_like(x)
        elif kind == "ScheduledEmbeddingTrainingHelper":
            draws = rng.random((2, b))
            select = draws[0] < helper.sampling_probability
            ids = np.where(select, ref_sample(logits, draws[1], 1.0), -1).astype(np.int32)
            dec_fin = t + 1 >= seq
            base = x_all[:, t + 1] if t + 1 < x_all.shape[1] else np.zeros_like(x)
            emb = np.asarray(helper._embedding_value, dtype=cell.dtype)
            nx = np.where(select[:, None], emb[np.maximum(ids, 0)], base)
        else:
            if kind == "SampleEmbeddingHelper":
                ids = ref_sample(logits, u_all[t], helper.softmax_temperature)
            else:
                ids = np.argmax(logits, -1).astype(np.int32)
            dec_fin = ids == helper.end_token
            nx = emb[ids]
        next_finished = finished | dec_fin | (t + 1 >= maximum_iterations)
        lengths = np.where(~finished, t + 1, lengths).astype(np.int32)
        if impute:
            logits = np.where(finished[:, None], 0, logits)
            ids = np.where(finished, 0, ids).astype(np.int32)
            done = finished[:, None]
            new_state = map_state(lambda _c, n, o, done=done: np.where(done, o, n), new_state, state)
        outs.append(logits)
        ids_all.append(ids)
        state, finished, x = new_state, next_finished, nx
        t += 1
    width = layer.units if layer is not None else cell.output_size
    rnn_output = np.stack(outs, 1) if outs else np.zeros((b, 0, width), cell.dtype)
    sample_id = np.stack(ids_all, 1) if ids_all else np.zeros((b, 0), np.int32)
    return rnn_output, sample_id, state, lengths


# -- cells -------------------------------------------------------------------------

CELLS = ["lstm", "gru", "basic_rnn", "multi_lstm", "dropout_lstm"]


def make_cell(kind, units, dtype, seed):
    if kind == "lstm":
        return rnnrs.LSTMCell(units, dtype=dtype, seed=seed)
    if kind == "gru":
        return rnnrs.GRUCell(units, dtype=dtype, seed=seed)
    if kind == "basic_rnn":
        return rnnrs.BasicRNNCell(units, dtype=dtype, seed=seed)
    if kind == "multi_lstm":
        return rnnrs.MultiRNNCell([rnnrs.LSTMCell(units, dtype=dtype, seed=seed + i) for i in range(2)])
    inner = rnnrs.LSTMCell(units, dtype=dtype, seed=seed)
    return rnnrs.DropoutWrapper(inner, output_keep_prob=0.5, state_keep_prob=0.7, seed=seed)


def random_state(cell, batch, rng):
    return map_state(lambda _c, a: rng.standard_normal(a.shape).astype(a.dtype), cell.zero_state(batch))


def tol(dtype):
    return dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)


def assert_states_close(a, b, dtype):
    map_state(lambda _c, x, y: np.testing.assert_allclose(x, y, **tol(dtype)), a, b)


def make_layer(units, dtype, seed, with_layer):
    if not with_layer:
        return None
    layer = rnnrs.Dense(units, seed=seed, dtype=dtype)
    return layer


def decode(decoder, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the cap warning, pinned in its own test
        return seq2seq.dynamic_decode(decoder, **kw)


# -- property tests against the reference -------------------------------------------

settings_args = dict(
    kind=st.sampled_from(CELLS),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
    batch=st.integers(1, 4),
    with_layer=st.booleans(),
    impute=st.booleans(),
)


@given(vocab=st.integers(2, 5), maximum_iterations=st.integers(0, 7), sample=st.booleans(), **settings_args)
def test_embedding_helpers_match_reference(
    kind, dtype, seed, batch, with_layer, impute, vocab, maximum_iterations, sample
):
    """Greedy and sampled decodes equal TF 1.15's loop: lengths count the EOS step, a row that never
    ends gets maximum_iterations, T = max(lengths), impute_finished zeros outputs/ids and freezes state."""
    rng = np.random.default_rng(seed)
    units = 3
    cell = make_cell(kind, units if with_layer else vocab, dtype, seed)
    layer = make_layer(vocab, dtype, seed + 1, with_layer)
    emb = rng.standard_normal((vocab, 2)).astype(dtype)
    start = rng.integers(0, vocab, batch)
    end = int(rng.integers(0, vocab))
    if sample:
        helper = seq2seq.SampleEmbeddingHelper(emb, start, end, softmax_temperature=0.7, seed=seed)
    else:
        helper = seq2seq.GreedyEmbeddingHelper(emb, start, end)
    cell.build(2)
    state = random_state(cell, batch, rng)
    out, final, lengths = decode(
        seq2seq.BasicDecoder(cell, helper, state, layer),
        maximum_iterations=maximum_iterations,
        impute_finished=impute,
    )
    r_out, r_ids, r_state, r_len = ref_decode(cell, layer, state, helper, maximum_iterations, impute)
    np.testing.assert_array_equal(lengths, r_len)
    np.testing.assert_array_equal(out.sample_id, r_ids)
    assert out.sample_id.dtype == np.int32 and lengths.dtype == np.int32
    assert out.rnn_output.dtype == dtype and out.rnn_output.shape == r_out.shape
    np.testing.assert_allclose(out.rnn_output, r_out, **tol(dtype))
    assert_states_close(final, r_state, dtype)
    assert out.sample_id.shape[1] == (int(lengths.max()) if batch else 0)


@given(
    time=st.integers(0, 5), max_iter=st.one_of(st.none(), st.integers(0, 6)), time_major=st.booleans(), **settings_args
)
def test_training_helper_matches_reference(kind, dtype, seed, batch, with_layer, impute, time, max_iter, time_major):
    """TrainingHelper through the fused pass equals TF 1.15's loop (length-0 rows finished at once,
    maximum_iterations cuts lengths, finished rows keep computing unless impute_finished)."""
    rng = np.random.default_rng(seed)
    cell = make_cell(kind, 3, dtype, seed)
    layer = make_layer(4, dtype, seed + 1, with_layer)
    x = rng.standard_normal((batch, time, 2))
    lengths_in = rng.integers(0, time + 1, batch)
    helper = seq2seq.TrainingHelper(x.transpose(1, 0, 2) if time_major else x, lengths_in, time_major=time_major)
    cell.build(2)
    state = random_state(cell, batch, rng)
    out, final, lengths = seq2seq.dynamic_decode(
        seq2seq.BasicDecoder(cell, helper, state, layer), impute_finished=impute, maximum_iterations=max_iter
    )
    limit = int(lengths_in.max(initial=0)) if max_iter is None else max_iter
    r_out, r_ids, r_state, r_len = ref_decode(cell, layer, state, helper, limit, impute)
    np.testing.assert_array_equal(lengths, r_len)
    np.testing.assert_allclose(out.rnn_output, r_out, **tol(dtype))
    np.testing.assert_array_equal(out.sample_id, np.argmax(out.rnn_output, -1) * (out.rnn_output != 0).any(-1))
    assert_states_close(final, r_state, dtype)


@given(prob=st.sampled_from([0.0, 0.5, 1.0]), **settings_args)
def test_scheduled_helper_matches_reference(kind, dtype, seed, batch, with_layer, impute, prob):
    """Scheduled sampling: per step rng.random((2, B)) (selection, then sample); sample_id -1 where
    the given input was read; lengths as TrainingHelper's."""
    rng = np.random.default_rng(seed)
    vocab = 4
    cell = make_cell(kind, 3 if with_layer else vocab, dtype, seed)
    layer = make_layer(vocab, dtype, seed + 1, with_layer)
    x = rng.standard_normal((batch, 4, 2))
    lengths_in = rng.integers(0, 5, batch)
    emb = rng.standard_normal((vocab, 2))
    helper = seq2seq.ScheduledEmbeddingTrainingHelper(x, lengths_in, emb, prob, seed=seed)
    cell.build(2)
    state = random_state(cell, batch, rng)
    out, final, lengths = seq2seq.dynamic_decode(
        seq2seq.BasicDecoder(cell, helper, state, layer), impute_finished=impute
    )
    r_out, r_ids, r_state, r_len = ref_decode(cell, layer, state, helper, int(lengths_in.max()), impute)
    np.testing.assert_array_equal(lengths, r_len)
    np.testing.assert_array_equal(out.sample_id, r_ids)
    np.testing.assert_allclose(out.rnn_output, r_out, **tol(dtype))
    assert_states_close(final, r_state, dtype)


# -- hand-made decodes pinning the semantics -------------------------------------------


def chain_decoder(start, nxt, eos, impute=False, maximum_iterations=None, layer=False):
    """A decoder whose greedy ids follow ``nxt`` exactly: one-hot embeddings, an identity BasicRNN
    whose kernel maps token k to one-hot(nxt[k]) (no recurrence), no output layer."""
    v = len(nxt)
    cell = rnnrs.BasicRNNCell(v, activation="identity", dtype=np.float64)
    kernel = np.zeros((2 * v, v))
    kernel[np.arange(v), nxt] = 1.0
    cell.set_weights({"kernel": kernel, "bias": np.zeros(v)})
    helper = seq2seq.GreedyEmbeddingHelper(np.eye(v), start, eos)
    return seq2seq.BasicDecoder(cell, helper, cell.zero_state(len(start)))


def test_lengths_include_eos_and_t_is_max_length():
    """Chain 0→1→2→3(EOS)→0: start 0 ends at step 3, start 2 at step 1, start 3 at step 4."""
    dec = chain_decoder([0, 2, 3], [1, 2, 3, 0], eos=3)
    out, state, lengths = seq2seq.dynamic_decode(dec, maximum_iterations=10)
    np.testing.assert_array_equal(lengths, [3, 1, 4])
    assert out.sample_id.shape == (3, 4)
    np.testing.assert_array_equal(out.sample_id[0], [1, 2, 3, 0])  # keeps computing after EOS (TF default)
    np.testing.assert_array_equal(out.sample_id[1], [3, 0, 1, 2])
    np.testing.assert_array_equal(state, np.eye(4)[[0, 2, 3]])  # the evolving final state


def test_impute_finished_zeros_outputs_and_freezes_state():
    dec = chain_decoder([0, 2, 3], [1, 2, 3, 0], eos=3)
    out, state, lengths = seq2seq.dynamic_decode(dec, impute_finished=True, maximum_iterations=10)
    np.testing.assert_array_equal(lengths, [3, 1, 4])
    np.testing.assert_array_equal(out.sample_id, [[1, 2, 3, 0], [3, 0, 0, 0], [0, 1, 2, 3]])
    assert not out.rnn_output[1, 1:].any() and not out.rnn_output[0, 3:].any()
    np.testing.assert_array_equal(state, np.eye(4)[[3, 3, 3]])  # the state at each row's EOS step


def test_never_ending_row_gets_maximum_iterations():
    dec = chain_decoder([0, 4], [1, 0, 0, 0, 4], eos=4)  # 0↔1 never reaches 4; 4→4 ends at once
    out, _, lengths = seq2seq.dynamic_decode(dec, maximum_iterations=5)
    np.testing.assert_array_equal(lengths, [5, 1])
    assert out.rnn_output.shape == (2, 5, 5)


def test_maximum_iterations_zero_runs_no_step():
    dec = chain_decoder([0, 1], [1, 2, 0], eos=2)
    out, state, lengths = seq2seq.dynamic_decode(dec, maximum_iterations=0)
    assert out.rnn_output.shape == (2, 0, 3) and out.sample_id.shape == (2, 0)
    np.testing.assert_array_equal(lengths, [0, 0])
    np.testing.assert_array_equal(state, np.zeros((2, 3)))


def test_cap_warning_only_when_rows_are_cut():
    """maximum_iterations=None: capped at DEFAULT_MAXIMUM_ITERATIONS with a RuntimeWarning naming it."""
    assert seq2seq.DEFAULT_MAXIMUM_ITERATIONS == 1000
    with pytest.warns(RuntimeWarning, match="^maximum_iterations: None decodes at most 1000 steps") as record:
        _, _, lengths = seq2seq.dynamic_decode(chain_decoder([0], [1, 0, 2], eos=2))
    assert record[0].filename == __file__  # points at the caller
    np.testing.assert_array_equal(lengths, [1000])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, _, lengths = seq2seq.dynamic_decode(chain_decoder([0], [1, 2, 2], eos=2))
    np.testing.assert_array_equal(lengths, [2])


def test_training_helper_length_zero_rows():
    """Length-0 rows are finished before the first step: length 0, zero outputs (impute), initial state."""
    cell = rnnrs.GRUCell(3, seed=0)
    x = np.ones((3, 4, 2), dtype=np.float32)
    s0 = np.full((3, 3), 0.5, dtype=np.float32)
    dec = seq2seq.BasicDecoder(cell, seq2seq.TrainingHelper(x, [0, 2, 0]), s0)
    out, state, lengths = seq2seq.dynamic_decode(dec, impute_finished=True)
    np.testing.assert_array_equal(lengths, [0, 2, 0])
    assert out.rnn_output.shape == (3, 2, 3)
    assert not out.rnn_output[[0, 2]].any() and not out.sample_id[[0, 2]].any()
    np.testing.assert_array_equal(state[[0, 2]], s0[[0, 2]])
    out, _, lengths = seq2seq.dynamic_decode(
        seq2seq.BasicDecoder(cell, seq2seq.TrainingHelper(x, [0, 0, 0]), s0), impute_finished=True
    )
    assert out.rnn_output.shape == (3, 0, 3) and not lengths.any()


def test_output_time_major_and_lstm_state_structure():
    cell = rnnrs.MultiRNNCell([rnnrs.LSTMCell(3, seed=1), rnnrs.LSTMCell(3, seed=2)])
    x = np.random.default_rng(0).standard_normal((2, 3, 2))
    dec = seq2seq.BasicDecoder(cell, seq2seq.TrainingHelper(x, [3, 1]), None, rnnrs.Dense(5, seed=1))
    bm, state, _ = seq2seq.dynamic_decode(dec)
    tm, _, _ = seq2seq.dynamic_decode(dec, output_time_major=True)
    assert isinstance(bm, seq2seq.BasicDecoderOutput) and bm.rnn_output.shape == (2, 3, 5)
    np.testing.assert_array_equal(tm.rnn_output, bm.rnn_output.transpose(1, 0, 2))
    np.testing.assert_array_equal(tm.sample_id, bm.sample_id.T)
    assert isinstance(state, tuple) and all(isinstance(s, LSTMStateTuple) for s in state)


def test_training_flag_enables_dropout():
    """training=True makes a DropoutWrapper active; False leaves the wrapped cell's results."""
    inner = rnnrs.GRUCell(4, seed=3)
    wrapped = rnnrs.DropoutWrapper(inner, output_keep_prob=0.5, seed=1)
    x = np.random.default_rng(1).standard_normal((2, 3, 2))
    helper = seq2seq.TrainingHelper(x, [3, 3])
    plain, _, _ = seq2seq.dynamic_decode(seq2seq.BasicDecoder(inner, helper, None))
    off, _, _ = seq2seq.dynamic_decode(seq2seq.BasicDecoder(wrapped, helper, None))
    on, _, _ = seq2seq.dynamic_decode(seq2seq.BasicDecoder(wrapped, helper, None), training=True)
    np.testing.assert_array_equal(off.rnn_output, plain.rnn_output)
    assert (on.rnn_output == 0).any() and not np.array_equal(on.rnn_output, plain.rnn_output)
    emb = np.random.default_rng(2).standard_normal((4, 2)).astype(np.float32)
    greedy = seq2seq.GreedyEmbeddingHelper(emb, [0, 1], 3)
    on, _, _ = decode(seq2seq.BasicDecoder(wrapped, greedy, None), maximum_iterations=4, training=True)
    assert (on.rnn_output == 0).any()


def test_sample_seed_reproducible():
    emb = np.random.default_rng(0).standard_normal((6, 2))
    cell = rnnrs.GRUCell(6, dtype=np.float64, seed=1)

    def run(seed):
        helper = seq2seq.SampleEmbeddingHelper(emb, [0] * 8, 5, seed=seed)
        return decode(seq2seq.BasicDecoder(cell, helper, None), maximum_iterations=6)[0].sample_id

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_callable_and_layer_embeddings():
    """A callable embedding (Python loop) and an rnnrs.Embedding layer give the matrix's decode."""
    matrix = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    layer = rnnrs.Embedding(5, 3)
    layer.set_weights({"embeddings": matrix})
    cell = rnnrs.LSTMCell(4, seed=2)
    dense = rnnrs.Dense(5, seed=3)
    results = []
    for emb in (matrix, layer, lambda ids: matrix[ids]):
        helper = seq2seq.GreedyEmbeddingHelper(emb, [0, 1, 2], 4)
        results.append(decode(seq2seq.BasicDecoder(cell, helper, None, dense), maximum_iterations=5))
    for out, _, lengths in results[1:]:
        np.testing.assert_array_equal(out.sample_id, results[0][0].sample_id)
        np.testing.assert_allclose(out.rnn_output, results[0][0].rnn_output, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(lengths, results[0][2])


# -- backprop: float64 finite differences ----------------------------------------------


def _loss(out, state, r, s):
    total = float((out.rnn_output * r).sum())
    return total + sum(float((a * b).sum()) for a, b in zip(_leaves(state), _leaves(s)))


def _leaves(state):
    leaves = []
    map_state(lambda _c, a: leaves.append(a), state)
    return leaves


def _fd_check(run, analytic, getter, setter, rng, count=4, eps=1e-6):
    """Central differences of ``run()`` at ``count`` random entries of the array ``getter()``."""
    base = getter().copy()
    for _ in range(count):
        idx = tuple(int(rng.integers(0, n)) for n in base.shape)
        up, down = base.copy(), base.copy()
        up[idx] += eps
        down[idx] -= eps
        setter(up)
        f_up = run()
        setter(down)
        f_down = run()
        setter(base)
        np.testing.assert_allclose(analytic[idx], (f_up - f_down) / (2 * eps), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["lstm", "gru", "multi_lstm"])
@pytest.mark.parametrize("helper_kind", ["training", "greedy", "sample"])
@pytest.mark.parametrize("impute", [False, True])
def test_backprop_finite_differences(kind, helper_kind, impute):
    """Gradients of initial state, cell weights, output layer, inputs / embedding (ids held constant)."""
    rng = np.random.default_rng(7)
    batch, vocab = 3, 5
    cell = make_cell(kind, 3, np.float64, 11)
    layer = rnnrs.Dense(vocab, seed=5, dtype=np.float64)
    layer.build(3, np.float64)
    layer.set_weights({"bias": rng.standard_normal(vocab)})
    box = {
        "x": rng.standard_normal((batch, 4, 2)),
        "emb": rng.standard_normal((vocab, 2)),
        "state": random_state(cell, batch, rng),
    }

    def make():
        if helper_kind == "training":
            helper = seq2seq.TrainingHelper(box["x"], [4, 2, 0])
        elif helper_kind == "greedy":
            helper = seq2seq.GreedyEmbeddingHelper(box["emb"], [0, 1, 2], 4)
        else:
            helper = seq2seq.SampleEmbeddingHelper(box["emb"], [0, 1, 2], 4, seed=3)
        return seq2seq.BasicDecoder(cell, helper, box["state"], layer)

    out, state, lengths, backprop = seq2seq.dynamic_decode(
        make(), impute_finished=impute, maximum_iterations=4, return_backprop=True
    )
    r = rng.standard_normal(out.rnn_output.shape)
    s = map_state(lambda _c, a: rng.standard_normal(a.shape), state)
    grads = backprop(r, s)
    ids = out.sample_id.copy()

    def run():
        o, st_, _ = seq2seq.dynamic_decode(make(), impute_finished=impute, maximum_iterations=4)
        np.testing.assert_array_equal(o.sample_id, ids)  # held constant by the small step
        return _loss(o, st_, r, s)

    # initial state (first leaf)
    leaf0 = _leaves(box["state"])[0]
    _fd_check(run, _leaves(grads.initial_state)[0], lambda: leaf0, lambda v: leaf0.__setitem__(..., v), rng)
    # cell weights
    for owner, owner_grads in ((cell, grads.weights), (layer, grads.output_layer)):
        for key in owner.get_weights():
            _fd_check(
                run,
                owner_grads[key],
                lambda o=owner, k=key: o.get_weights()[k],
                lambda v, o=owner, k=key: o.set_weights({k: v}),
                rng,
            )
    if helper_kind == "training":
        assert grads.embedding is None
        _fd_check(run, grads.inputs, lambda: box["x"], lambda v: box.__setitem__("x", v), rng, count=6)
    else:
        assert grads.inputs is None
        _fd_check(run, grads.embedding, lambda: box["emb"], lambda v: box.__setitem__("emb", v), rng, count=6)


def test_backprop_scheduled_splits_inputs_and_embedding():
    """Scheduled sampling: gradients of the given inputs where they were read, of the embedding where
    a sample was fed; both by finite differences."""
    rng = np.random.default_rng(3)
    cell = rnnrs.GRUCell(4, dtype=np.float64, seed=1)
    box = {"x": rng.standard_normal((3, 4, 2)), "emb": rng.standard_normal((4, 2))}

    def make():
        helper = seq2seq.ScheduledEmbeddingTrainingHelper(box["x"], [4, 3, 2], box["emb"], 0.5, seed=2)
        return seq2seq.BasicDecoder(cell, helper, None)

    out, state, _, backprop = seq2seq.dynamic_decode(make(), return_backprop=True)
    r = rng.standard_normal(out.rnn_output.shape)
    grads = backprop(r)

    def run():
        return float((seq2seq.dynamic_decode(make())[0].rnn_output * r).sum())

    _fd_check(run, grads.inputs, lambda: box["x"], lambda v: box.__setitem__("x", v), rng, count=8)
    _fd_check(run, grads.embedding, lambda: box["emb"], lambda v: box.__setitem__("emb", v), rng, count=6)


def test_backprop_output_time_major_and_bad_gradients():
    cell = rnnrs.GRUCell(3, dtype=np.float64, seed=1)
    x = np.random.default_rng(0).standard_normal((2, 3, 2))
    dec = seq2seq.BasicDecoder(cell, seq2seq.TrainingHelper(x, [3, 2]), None)
    out, _, _, bp = seq2seq.dynamic_decode(dec, output_time_major=True, return_backprop=True)
    _, _, _, bp_bm = seq2seq.dynamic_decode(dec, return_backprop=True)
    r = np.random.default_rng(1).standard_normal(out.rnn_output.shape)
    np.testing.assert_allclose(bp(r).inputs, bp_bm(r.transpose(1, 0, 2)).inputs)
    with pytest.raises(ValueError, match=r"^d_rnn_output: expected shape \(3, 2, 3\)"):
        bp(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="^d_state: expected shape"):
        bp(None, np.zeros((3, 3)))
    g = bp()
    assert not g.inputs.any() and not g.weights["gates/kernel"].any()


# -- bad inputs -----------------------------------------------------------------------


def test_bad_helper_arguments():
    emb = np.zeros((5, 2))
    with pytest.raises(ValueError, match=r"^end_token: expected an id in \[0, 5\)"):
        seq2seq.GreedyEmbeddingHelper(emb, [0], 5)
    with pytest.raises(ValueError, match=r"^start_tokens: expected token ids in \[0, 5\), got -1"):
        seq2seq.GreedyEmbeddingHelper(emb, [-1], 1)
    with pytest.raises(ValueError, match="^start_tokens: expected a 1-d array"):
        seq2seq.SampleEmbeddingHelper(emb, 0, 1)
    with pytest.raises(TypeError, match="^embedding: expected"):
        seq2seq.GreedyEmbeddingHelper(object(), [0], 1)
    with pytest.raises(ValueError, match="^softmax_temperature: expected a number > 0"):
        seq2seq.SampleEmbeddingHelper(emb, [0], 1, softmax_temperature=0)
    with pytest.raises(ValueError, match=r"^sequence_length: expected values in \[0, 3\], got 4"):
        seq2seq.TrainingHelper(np.zeros((2, 3, 2)), [4, 1])
    with pytest.raises(ValueError, match=r"^sequence_length: expected values in \[0, 3\], got -1"):
        seq2seq.TrainingHelper(np.zeros((2, 3, 2)), [1, -1])
    with pytest.raises(ValueError, match="^inputs: expected a 3-d array"):
        seq2seq.TrainingHelper(np.zeros((2, 3)), [1, 1])
    with pytest.raises(ValueError, match=r"^sampling_probability: expected values in \[0, 1\]"):
        seq2seq.ScheduledEmbeddingTrainingHelper(np.zeros((2, 3, 2)), [1, 1], emb, 1.5)
    with pytest.raises(ValueError, match="^scheduling_seed: expected None"):
        seq2seq.ScheduledEmbeddingTrainingHelper(np.zeros((2, 3, 2)), [1, 1], emb, 0.5, scheduling_seed=1)


def test_bad_decoder_arguments():
    cell = rnnrs.GRUCell(3)
    helper = seq2seq.GreedyEmbeddingHelper(np.zeros((5, 2)), [0, 1], 4)
    with pytest.raises(TypeError, match="^output_layer: expected None or an rnnrs.Dense"):
        seq2seq.BasicDecoder(cell, helper, None, lambda h: h)
    with pytest.raises(TypeError, match="^helper: expected"):
        seq2seq.BasicDecoder(cell, "greedy", None)
    with pytest.raises(TypeError, match="^cell: expected"):
        seq2seq.BasicDecoder("cell", helper, None)
    with pytest.raises(ValueError, match="^initial_state: expected shape"):
        seq2seq.BasicDecoder(cell, helper, np.zeros((3, 3)))
    dec = seq2seq.BasicDecoder(cell, helper, None, rnnrs.Dense(5))
    with pytest.raises(ValueError, match="^maximum_iterations: expected an integer >= 0, got -1"):
        seq2seq.dynamic_decode(dec, maximum_iterations=-1)
    for bad in (2.5, True, "3"):
        with pytest.raises(TypeError, match="^maximum_iterations: expected an integer >= 0"):
            seq2seq.dynamic_decode(dec, maximum_iterations=bad)
    with pytest.raises(TypeError, match="^impute_finished: expected True or False"):
        seq2seq.dynamic_decode(dec, impute_finished=1)
    with pytest.raises(ValueError, match="^parallel_iterations: expected an integer >= 1"):
        seq2seq.dynamic_decode(dec, parallel_iterations=0)
    with pytest.raises(TypeError, match="^decoder: expected"):
        seq2seq.dynamic_decode(cell)
    built = rnnrs.GRUCell(3)
    built.build(4)
    with pytest.raises(ValueError, match=r"^embedding: expected vectors of width 4 \(the cell's input size\)"):
        seq2seq.dynamic_decode(seq2seq.BasicDecoder(built, helper, None), maximum_iterations=2)
    with pytest.raises(ValueError, match="^output_layer: expected an output width of at most 5"):
        seq2seq.dynamic_decode(seq2seq.BasicDecoder(cell, helper, None, rnnrs.Dense(6)), maximum_iterations=2)
    with pytest.raises(ValueError, match="^inputs: expected input size 4"):
        seq2seq.dynamic_decode(seq2seq.BasicDecoder(built, seq2seq.TrainingHelper(np.zeros((2, 3, 2)), [1, 1]), None))


def test_scheduled_embedding_width_must_match_inputs():
    helper = seq2seq.ScheduledEmbeddingTrainingHelper(np.zeros((2, 3, 2)), [3, 1], np.zeros((4, 5)), 0.5)
    with pytest.raises(
        ValueError, match=r"^embedding: expected vectors of width 2 \(the cell's input size\), got width 5"
    ):
        seq2seq.dynamic_decode(seq2seq.BasicDecoder(rnnrs.GRUCell(4), helper, None))


def test_callable_embedding_tokens_checked_against_output_width():
    cell = rnnrs.GRUCell(3)
    helper = seq2seq.GreedyEmbeddingHelper(lambda ids: np.zeros((len(ids), 2)), [0, 1], 4)
    with pytest.raises(ValueError, match=r"^end_token: expected an id in \[0, 3\) \(the decoder's output width"):
        seq2seq.dynamic_decode(seq2seq.BasicDecoder(cell, helper, None), maximum_iterations=2)
    out, _, _ = decode(seq2seq.BasicDecoder(cell, helper, None, rnnrs.Dense(5)), maximum_iterations=2)
    assert out.rnn_output.shape[2] == 5


def test_importable_as_subpackage():
    from rnnrs import seq2seq as s

    assert s.dynamic_decode is seq2seq.dynamic_decode and "BasicDecoder" in s.__all__


def test_fast_dispatch_contract(monkeypatch):
    """The greedy/sampled decode asks seq2seq._fast.greedy first (keyword arguments of the shared
    interface, plus initial_state) and runs the Python loop when it returns None."""
    import sys
    import types

    calls = []
    fake = types.ModuleType("rnnrs.seq2seq._fast")
    fake.greedy = lambda **kw: calls.append(kw)  # returns None: "cannot take the Rust path"
    monkeypatch.setitem(sys.modules, "rnnrs.seq2seq._fast", fake)
    dec = chain_decoder([0, 2, 3], [1, 2, 3, 0], eos=3)
    _, _, lengths = seq2seq.dynamic_decode(dec, maximum_iterations=10, impute_finished=True)
    np.testing.assert_array_equal(lengths, [3, 1, 4])
    (kw,) = calls
    assert set(kw) == {
        "cell",
        "embedding",
        "output_layer",
        "start_tokens",
        "end_token",
        "maximum_iterations",
        "impute_finished",
        "uniforms",
        "temperature",
        "initial_state",
    }
    assert kw["embedding"].matrix.shape == (4, 4) and kw["maximum_iterations"] == 10 and kw["impute_finished"]
    assert kw["start_tokens"].dtype == np.int32 and kw["uniforms"] is None and kw["end_token"] == 3
