"""The Rust decoding loops over an ``AttentionWrapper``
(``_rnnrs.decode_greedy_attention`` / ``decode_beam_attention``, reached
through ``seq2seq._fast``) against the NumPy loop (``_fast`` forced to
decline): ids exactly, floats to rounding, final ``AttentionWrapperState``
included; greedy, sampled, greedy with ``impute_finished``, beam search with
and without a length penalty; Bahdanau (plain and normalised) and Luong
(plain and scaled), with and without an attention layer, either output;
LSTM, GRU and stacked (``MultiRNNCell``) inner cells; float32 and float64; ragged memory lengths; a
memory of fewer rows than the batch. Also: the Rust path is taken, thread
counts do not change a bit, and what it cannot run still declines."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import rnnrs
from rnnrs import _rnnrs, seq2seq
from rnnrs.seq2seq import _fast

V, E, B, TM, DM = 9, 3, 4, 6, 5
MEMORY_LENGTHS = np.array([6, 3, 1, 4])


def make(
    inner: str,
    mech: str,
    dtype: Any,
    layer: bool = True,
    output_attention: bool = True,
    seed: int = 0,
    memory_rows: int = B,
    history: bool = False,
    ragged: bool = True,
) -> tuple[Any, np.ndarray, Any, Any]:
    """An attention wrapper, an embedding, an output layer and an initial
    state (random cell state, attention and alignments) for ``B`` rows."""
    rng = np.random.default_rng(seed)
    units = 4
    cell: Any
    if inner == "lstm":
        cell = rnnrs.LSTMCell(units, dtype=dtype, seed=seed + 1)
    elif inner == "gru":
        cell = rnnrs.GRUCell(units, dtype=dtype, seed=seed + 1)
    else:  # a stack: the top layer's output is the query
        cell = rnnrs.MultiRNNCell(
            [rnnrs.LSTMCell(3, dtype=dtype, seed=seed + 1), rnnrs.GRUCell(units, dtype=dtype, seed=seed + 5)]
        )
    memory = rng.normal(size=(memory_rows, TM, DM)).astype(dtype)
    lengths = MEMORY_LENGTHS[:memory_rows] if ragged else None
    if mech == "bahdanau":
        m = seq2seq.BahdanauAttention(units, memory, lengths, seed=seed + 2)
    elif mech == "bahdanau_norm":
        m = seq2seq.BahdanauAttention(units, memory, lengths, normalize=True, seed=seed + 2)
    elif mech == "luong":
        m = seq2seq.LuongAttention(units, memory, lengths, seed=seed + 2)
    else:
        m = seq2seq.LuongAttention(units, memory, lengths, scale=True, seed=seed + 2)
    wrapper = seq2seq.AttentionWrapper(
        cell,
        m,
        attention_layer_size=5 if layer else None,
        output_attention=output_attention,
        alignment_history=history,
        seed=seed + 3,
    )
    wrapper.build(E)
    if mech == "bahdanau_norm":  # off their initial values, so that they matter
        wrapper.set_weights({"attention_g": np.array(0.7, dtype=dtype), "attention_b": rng.normal(size=units)})
    if mech == "luong_scale":
        wrapper.set_weights({"attention_g": np.array(1.3, dtype=dtype)})
    emb = rng.normal(size=(V, E)).astype(dtype)
    dense = rnnrs.Dense(V, dtype=dtype, seed=seed + 4)
    dense.build(wrapper.output_size, dtype)
    dense.set_weights({"kernel": rng.normal(scale=2.0, size=(wrapper.output_size, V)), "bias": rng.normal(size=V)})
    zero = wrapper.zero_state(B)
    rand = lambda a: rng.normal(scale=0.5, size=a.shape).astype(dtype)  # noqa: E731

    def randomized(st: Any) -> Any:
        if isinstance(st, np.ndarray):
            return rand(st)
        parts = [randomized(x) for x in st]
        return type(st)(*parts) if hasattr(st, "_fields") else tuple(parts)

    cell_state = randomized(zero.cell_state)
    state = zero.clone(cell_state=cell_state, attention=rand(zero.attention), alignments=rand(zero.alignments))
    return wrapper, emb, dense, state


def tol(dtype: Any) -> dict[str, float]:
    return {"rtol": 2e-4, "atol": 2e-5} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}


def leaves(state: Any) -> list[np.ndarray]:
    """The array leaves of a (nested) state, in order."""
    if isinstance(state, np.ndarray):
        return [state]
    if isinstance(state, tuple):
        return [x for s in state for x in leaves(s)]
    return []


def same_state(a: Any, b: Any, dtype: Any) -> None:
    assert a.time == b.time
    assert a.alignment_history == () and b.alignment_history == ()
    la, lb = leaves(a), leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_allclose(x, y, **tol(dtype))


class Spy:
    """Counts the calls of ``_rnnrs.decode_<loop>_attention``, and makes
    ``_fast.<loop>`` decline (the NumPy loop) while ``forced``."""

    def __init__(self, monkeypatch: Any, loop: str) -> None:
        self.calls = 0
        self.forced = False
        real = getattr(_rnnrs, f"decode_{loop}_attention")
        entry = getattr(_fast, loop)

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        def maybe(*args: Any, **kwargs: Any) -> Any:
            return None if self.forced else entry(*args, **kwargs)

        monkeypatch.setattr(_rnnrs, f"decode_{loop}_attention", counting)
        monkeypatch.setattr(_fast, loop, maybe)

    def numpy_loop(self) -> None:
        self.forced, self.calls = True, 0

    def rust_loop(self) -> None:
        self.forced, self.calls = False, 0


def greedy_decode(wrapper: Any, emb: Any, dense: Any, state: Any, helper: str, impute: bool, iters: int) -> Any:
    start = np.array([0, 1, 2, 3])
    if helper == "greedy":
        h: Any = seq2seq.GreedyEmbeddingHelper(emb, start, 2)
    else:
        h = seq2seq.SampleEmbeddingHelper(emb, start, 2, softmax_temperature=0.8, seed=7)
    dec = seq2seq.BasicDecoder(wrapper, h, state, output_layer=dense)
    return seq2seq.dynamic_decode(dec, impute_finished=impute, maximum_iterations=iters)


CASES = [
    ("lstm", "bahdanau", True, True),
    ("gru", "bahdanau_norm", False, True),
    ("lstm", "luong_scale", True, False),
    ("gru", "luong", False, False),
    ("stack", "bahdanau_norm", True, True),
    ("stack", "luong", False, False),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("inner, mech, layer, output_attention", CASES)
@pytest.mark.parametrize("helper, impute", [("greedy", False), ("greedy", True), ("sample", False), ("sample", True)])
def test_greedy_and_sampled_match_the_numpy_loop(
    monkeypatch, dtype, inner, mech, layer, output_attention, helper, impute
):
    wrapper, emb, dense, state = make(inner, mech, dtype, layer, output_attention, seed=len(inner) + len(mech))
    spy = Spy(monkeypatch, "greedy")
    for iters in (0, 1, 11):
        spy.numpy_loop()
        want_out, want_state, want_len = greedy_decode(wrapper, emb, dense, state, helper, impute, iters)
        assert spy.calls == 0
        spy.rust_loop()
        out, final, lengths = greedy_decode(wrapper, emb, dense, state, helper, impute, iters)
        assert spy.calls == 1
        np.testing.assert_array_equal(out.sample_id, want_out.sample_id)
        np.testing.assert_array_equal(lengths, want_len)
        assert out.rnn_output.dtype == want_out.rnn_output.dtype
        np.testing.assert_allclose(out.rnn_output, want_out.rnn_output, **tol(dtype))
        same_state(final, want_state, dtype)
        if iters == 11:  # the case decodes something worth comparing: rows of different lengths
            assert len(set(want_len.tolist())) > 1 or helper == "greedy"


def beam_decode(wrapper: Any, emb: Any, dense: Any, state: Any, k: int, w: float, iters: int, tiled: bool) -> Any:
    start = np.array([0, 1, 2, 3])
    if tiled:  # given already tiled (tile_batch's order): the Rust loop starts from one row per batch row
        rep = lambda a: np.repeat(a, k, axis=0)  # noqa: E731
        state = state._replace(
            cell_state=seq2seq.tile_batch(state.cell_state, k),
            attention=rep(state.attention),
            alignments=rep(state.alignments),
            attention_state=rep(state.attention_state),
        )
    dec = seq2seq.BeamSearchDecoder(wrapper, emb, start, 2, state, k, output_layer=dense, length_penalty_weight=w)
    return seq2seq.dynamic_decode(dec, maximum_iterations=iters)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("inner, mech, layer, output_attention", CASES)
@pytest.mark.parametrize("w", [0.0, 0.8])
def test_beam_search_matches_the_numpy_loop(monkeypatch, dtype, inner, mech, layer, output_attention, w):
    wrapper, emb, dense, state = make(inner, mech, dtype, layer, output_attention, seed=len(inner) * len(mech))
    spy = Spy(monkeypatch, "beam")
    for k, iters, tiled in ((1, 9, False), (3, 0, False), (3, 1, False), (3, 12, False), (4, 12, True)):
        spy.numpy_loop()
        want_out, want_state, want_len = beam_decode(wrapper, emb, dense, state, k, w, iters, tiled)
        spy.rust_loop()
        out, final, lengths = beam_decode(wrapper, emb, dense, state, k, w, iters, tiled)
        assert spy.calls == 1
        np.testing.assert_array_equal(out.predicted_ids, want_out.predicted_ids)
        steps, want_steps = out.beam_search_decoder_output, want_out.beam_search_decoder_output
        np.testing.assert_array_equal(steps.predicted_ids, want_steps.predicted_ids)
        np.testing.assert_array_equal(steps.parent_ids, want_steps.parent_ids)
        np.testing.assert_allclose(steps.scores, want_steps.scores, **tol(dtype))
        np.testing.assert_array_equal(lengths, want_len)
        np.testing.assert_array_equal(final.finished, want_state.finished)
        np.testing.assert_array_equal(final.lengths, want_state.lengths)
        np.testing.assert_allclose(final.log_probs, want_state.log_probs, **tol(dtype))
        same_state(final.cell_state, want_state.cell_state, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_memory_of_fewer_rows_is_shared(monkeypatch, dtype):
    """A memory of 2 rows for 4 decoder rows: row b attends to memory row
    b // 2, in both loops; beams over it: r // (4 * k // 2)."""
    wrapper, emb, dense, state = make("lstm", "bahdanau", dtype, memory_rows=2, seed=5)
    spy = Spy(monkeypatch, "greedy")
    spy.numpy_loop()
    want_out, want_state, _ = greedy_decode(wrapper, emb, dense, state, "greedy", True, 10)
    spy.rust_loop()
    out, final, _ = greedy_decode(wrapper, emb, dense, state, "greedy", True, 10)
    assert spy.calls == 1
    np.testing.assert_array_equal(out.sample_id, want_out.sample_id)
    np.testing.assert_allclose(out.rnn_output, want_out.rnn_output, **tol(dtype))
    same_state(final, want_state, dtype)
    spy = Spy(monkeypatch, "beam")
    spy.numpy_loop()
    want = beam_decode(wrapper, emb, dense, state, 3, 0.5, 10, False)
    spy.rust_loop()
    got = beam_decode(wrapper, emb, dense, state, 3, 0.5, 10, False)
    assert spy.calls == 1
    np.testing.assert_array_equal(got[0].predicted_ids, want[0].predicted_ids)
    same_state(got[1].cell_state, want[1].cell_state, dtype)


@pytest.mark.parametrize("mech", ["bahdanau", "luong"])
def test_a_memory_without_lengths(monkeypatch, mech):
    wrapper, emb, dense, state = make("gru", mech, np.float64, ragged=False, seed=9)
    assert wrapper.attention_mechanism.memory_sequence_length is None
    for loop in ("greedy", "beam"):
        spy = Spy(monkeypatch, loop)
        spy.numpy_loop()
        run = (
            (lambda: greedy_decode(wrapper, emb, dense, state, "greedy", True, 8))
            if loop == "greedy"
            else (lambda: beam_decode(wrapper, emb, dense, state, 2, 0.3, 8, False))
        )
        want = run()
        spy.rust_loop()
        got = run()
        assert spy.calls == 1
        if loop == "greedy":
            np.testing.assert_array_equal(got[0].sample_id, want[0].sample_id)
            np.testing.assert_allclose(got[0].rnn_output, want[0].rnn_output, **tol(np.float64))
            same_state(got[1], want[1], np.float64)
        else:
            np.testing.assert_array_equal(got[0].predicted_ids, want[0].predicted_ids)
            same_state(got[1].cell_state, want[1].cell_state, np.float64)


def test_a_memory_that_does_not_divide_the_batch_keeps_the_numpy_message():
    wrapper, emb, dense, state = make("lstm", "luong", np.float64, memory_rows=3)
    start = np.array([0, 1, 2, 3])
    with pytest.raises(ValueError, match="memory's 3 rows or a multiple of it"):
        seq2seq.dynamic_decode(
            seq2seq.BasicDecoder(wrapper, seq2seq.GreedyEmbeddingHelper(emb, start, 2), state, output_layer=dense),
            maximum_iterations=4,
        )


def test_results_do_not_depend_on_the_thread_count():
    """Pins bitwise-identical decodes for 1 and 2 threads, every parallel
    path taken."""
    wrapper, emb, dense, state = make("lstm", "bahdanau_norm", np.float32, seed=11)
    start = np.array([0, 1, 2, 3])
    u = np.random.default_rng(0).random((9, B))
    before = rnnrs.get_num_threads()
    _rnnrs._set_parallel_work(0)
    try:
        runs = []
        for n in (1, 2):
            rnnrs.set_num_threads(n)
            g = _fast.greedy(wrapper, emb, dense, start, 3, 9, True, u, 0.8, initial_state=state)
            b = _fast.beam(wrapper, emb, dense, start, 3, state, 3, 9, 0.5)
            assert g is not None and b is not None
            runs.append(leaves(g[:3]) + leaves(g[3]) + leaves(b[:3]) + leaves(b[3]))
        for x, y in zip(*runs):
            np.testing.assert_array_equal(x, y)
    finally:
        _rnnrs._set_parallel_work(None)
        rnnrs.set_num_threads(before)


def test_what_the_rust_loops_cannot_run_declines():
    """Alignment history, a wrapped inner cell (here in a stack) and a
    subclass go to the NumPy loop (``_fast`` returns None)."""
    start = np.array([0, 1, 2, 3])
    wrapper, emb, dense, state = make("lstm", "luong", np.float64, history=True)
    assert _fast.greedy(wrapper, emb, dense, start, 2, 5, False, initial_state=state) is None
    assert _fast.beam(wrapper, emb, dense, start, 2, state, 2, 5, 0.0) is None
    memory = np.zeros((B, TM, DM))
    multi = rnnrs.MultiRNNCell(
        [rnnrs.GRUCell(4, dtype=np.float64), rnnrs.DropoutWrapper(rnnrs.GRUCell(4, dtype=np.float64))]
    )
    stacked = seq2seq.AttentionWrapper(multi, seq2seq.LuongAttention(4, memory))
    stacked.build(E)
    assert _fast.greedy(stacked, emb, None, start, 2, 5, False, initial_state=stacked.zero_state(B)) is None

    class Sub(seq2seq.AttentionWrapper):
        pass

    sub = Sub(rnnrs.GRUCell(4, dtype=np.float64), seq2seq.LuongAttention(4, memory))
    sub.build(E)
    assert _fast.greedy(sub, emb, None, start, 2, 5, False, initial_state=sub.zero_state(B)) is None


def test_a_nonzero_coverage_penalty_keeps_the_numpy_loop(monkeypatch):
    wrapper, emb, dense, state = make("gru", "luong", np.float32)
    state = state.clone(alignments=np.zeros_like(state.alignments))  # the sums start from them: no negatives
    spy = Spy(monkeypatch, "beam")
    dec = seq2seq.BeamSearchDecoder(
        wrapper, emb, np.array([0, 1, 2, 3]), 2, state, 3, output_layer=dense, coverage_penalty_weight=0.4
    )
    seq2seq.dynamic_decode(dec, maximum_iterations=6)
    assert spy.calls == 0


def test_bad_arguments_raise_value_errors_naming_them():
    wrapper, emb, dense, state = make("lstm", "bahdanau", np.float64)
    start = np.array([0, 1, 2, 3])
    prepared = _fast._prepare(wrapper, emb, dense, start, state)
    assert prepared is not None
    layers, cores, parts, matrix, kernel, bias, tokens, (extra, _) = prepared
    args = (cores, parts, matrix, kernel, bias, tokens, 2, 5, False, None, 1.0)
    ok = _rnnrs.decode_greedy_attention(*args, *extra)
    assert ok[0].shape[0] == B
    bad_memory = (*extra[:2], np.zeros((3, TM, DM)), None, *extra[4:])
    with pytest.raises(ValueError, match="^memory: expected shape"):
        _rnnrs.decode_greedy_attention(*args, *bad_memory)
    bad_lengths = (*extra[:3], np.array([0, 1, 2, 3]), *extra[4:])
    with pytest.raises(ValueError, match="^memory_sequence_length: expected values in"):
        _rnnrs.decode_greedy_attention(*args, *bad_lengths)
    bad_attention = (extra[0][:, :2], *extra[1:])
    with pytest.raises(ValueError, match="^initial_attention"):
        _rnnrs.decode_greedy_attention(*args, *bad_attention)
    weights = dict(extra[4])
    del weights["attention_v"]
    with pytest.raises(ValueError, match="attention_v"):
        _rnnrs.decode_greedy_attention(*args, *extra[:4], weights, *extra[5:])
    with pytest.raises(ValueError, match="^kind: expected"):
        _rnnrs.decode_greedy_attention(*args, *extra[:5], "dot", *extra[6:])
    beam_args = (cores, parts, matrix, kernel, bias, tokens, 2, 5, 2, 0.0)
    with pytest.raises(ValueError, match="^initial_alignments"):
        _rnnrs.decode_beam_attention(*beam_args, extra[0], extra[1][:2], *extra[2:])
