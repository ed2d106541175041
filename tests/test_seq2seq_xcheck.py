"""``rnnrs.seq2seq`` pinned to the independent references.

1. Against real TensorFlow (``fixtures/seq2seq/``, written with ``tfa.seq2seq``,
   TF 1.15's port; see its README): the library itself (not the reference)
   rebuilds each case from the stored weights (``rnnrs.LSTMCell`` with
   ``forget_bias``, ``rnnrs.Dense`` output layer, the embedding matrix) and
   must reproduce TensorFlow's ids and lengths exactly and its floats to
   float32 rounding (``F32``: ``rtol = atol = 2e-6``, a few float32 ulps of
   values of order 1).
2. Hypothesis properties of the library against ``seq2seq_reference.py``
   (plain NumPy loops transcribed from TF 1.15, the cell as a step function):
   every helper, ``impute_finished`` on and off, ``maximum_iterations``
   None / 0 / k, output layer on and off, BasicRNN / GRU / LSTM / a
   two-cell ``MultiRNNCell``, float32 and float64, rows ending at varied
   steps (an EOS logit biased by a drawn amount), and beam search.

Every decode runs twice: on the path ``dynamic_decode`` takes by default
(the Rust loops of ``seq2seq._fast`` when present and applicable) and on the
Python loop, forced through the public API by a callable embedding (which
the package documents as always taking the Python loop; it wraps the same
matrix, so both paths must agree with the reference and with each other).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import rnnrs
import seq2seq_reference as ref
from rnnrs import seq2seq
from rnnrs._state import LSTMStateTuple

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "seq2seq"

#: float32 rounding: TensorFlow and rnnrs compute the same float32 ops in different orders.
F32 = dict(rtol=2e-6, atol=2e-6)

#: ``"default"``: what dynamic_decode picks (Rust when it applies); ``"python"``: forced Python loop.
PATHS = ("default", "python")


def load(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{name}.npz") as data:
        return {key: data[key] for key in data.files}


class Lookup:
    """A callable embedding over a matrix: the same vectors, but the decoders
    must take their Python loop (a callable is never handed to Rust)."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = np.asarray(matrix)
        self.calls = 0

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.matrix[np.asarray(ids)]


def embedding_for(matrix: np.ndarray, path: str) -> Any:
    return matrix if path == "default" else Lookup(matrix)


def lstm_from(f: dict[str, np.ndarray]) -> rnnrs.LSTMCell:
    H = f["bias"].shape[0] // 4
    cell = rnnrs.LSTMCell(H, forget_bias=float(f["forget_bias"]), dtype="float32")
    cell.set_weights({"kernel": f["kernel"], "bias": f["bias"]})
    return cell


def dense_from(f: dict[str, np.ndarray]) -> rnnrs.Dense:
    kernel = f["dense_kernel"]
    layer = rnnrs.Dense(kernel.shape[1], dtype="float32")
    layer.build(kernel.shape[0])
    layer.set_weights({"kernel": kernel, "bias": f["dense_bias"]})
    return layer


# -- 1. the library against TensorFlow ------------------------------------------------
@pytest.mark.parametrize("name", ["training", "training_impute"])
def test_training_decode_matches_tensorflow(name: str) -> None:
    """TrainingHelper with lengths [3, 0, 6, 1, 4] (a 0 and the full T),
    impute_finished off / on: rnn_output, sample_id, lengths, final LSTM state."""
    f = load(name)
    helper = seq2seq.TrainingHelper(f["inputs"], f["sequence_length"])
    decoder = seq2seq.BasicDecoder(lstm_from(f), helper, LSTMStateTuple(f["c0"], f["h0"]), dense_from(f))
    out, state, lengths = seq2seq.dynamic_decode(decoder, impute_finished=bool(f["impute_finished"]))
    assert lengths.dtype == np.int32 and out.sample_id.dtype == np.int32
    np.testing.assert_array_equal(lengths, f["lengths"])
    np.testing.assert_array_equal(out.sample_id, f["sample_id"])
    assert out.rnn_output.dtype == np.float32 and out.rnn_output.shape == f["rnn_output"].shape
    np.testing.assert_allclose(out.rnn_output, f["rnn_output"], **F32)
    assert isinstance(state, LSTMStateTuple)
    np.testing.assert_allclose(state.c, f["final_c"], **F32)
    np.testing.assert_allclose(state.h, f["final_h"], **F32)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["greedy", "greedy_impute"])
def test_greedy_decode_matches_tensorflow(name: str, path: str) -> None:
    """GreedyEmbeddingHelper, B = 5, EOS 1, cap 7: rows ending at different
    steps (EOS counted) and rows cut by the cap, impute_finished off / on."""
    f = load(name)
    emb = embedding_for(f["embedding"], path)
    helper = seq2seq.GreedyEmbeddingHelper(emb, f["start_tokens"], int(f["end_token"]))
    decoder = seq2seq.BasicDecoder(lstm_from(f), helper, LSTMStateTuple(f["c0"], f["h0"]), dense_from(f))
    out, state, lengths = seq2seq.dynamic_decode(
        decoder, impute_finished=bool(f["impute_finished"]), maximum_iterations=int(f["maximum_iterations"])
    )
    if path == "python":
        assert emb.calls > 0
    np.testing.assert_array_equal(lengths, f["lengths"])
    np.testing.assert_array_equal(out.sample_id, f["sample_id"])
    np.testing.assert_allclose(out.rnn_output, f["rnn_output"], **F32)
    np.testing.assert_allclose(state.c, f["final_c"], **F32)
    np.testing.assert_allclose(state.h, f["final_h"], **F32)


def tiny_beam_decode() -> None:
    """``dynamic_decode(BeamSearchDecoder(...))`` on a tiny case."""
    cell = rnnrs.GRUCell(3, seed=0)
    decoder = seq2seq.BeamSearchDecoder(cell, np.eye(3, dtype=np.float32), [0], 1, None, 2)
    out, state, lengths = seq2seq.dynamic_decode(decoder, maximum_iterations=2)
    assert out.predicted_ids.shape[:2] == (1, 2) and lengths.shape == (1, 2)
    np.testing.assert_array_equal(lengths, state.lengths)


def test_dynamic_decode_accepts_a_beam_search_decoder() -> None:
    """The documented entry point: ``dynamic_decode(BeamSearchDecoder(...))``."""
    tiny_beam_decode()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["beam", "beam_penalty", "beam_wide"])
def test_beam_search_matches_tensorflow(name: str, path: str) -> None:
    """BeamSearchDecoder (width 3, penalty 0 and 1.0; width 5 over V = 3 with
    penalty 0.5, where dead beams' -inf candidates are taken): gathered ids,
    step ids, parents, scores, final log_probs, finished, lengths,
    dynamic_decode's third value (= final_state.lengths) and the final cell
    state (TF's rows b*K + k are rnnrs's [B, K, ...] split layout)."""
    f = load(name)
    K = int(f["beam_width"])
    emb = embedding_for(f["embedding"], path)
    decoder = seq2seq.BeamSearchDecoder(
        lstm_from(f),
        emb,
        f["start_tokens"],
        int(f["end_token"]),
        LSTMStateTuple(f["c0"], f["h0"]),
        K,
        output_layer=dense_from(f),
        length_penalty_weight=float(f["length_penalty_weight"]),
    )
    out, state, lengths = seq2seq.dynamic_decode(decoder, maximum_iterations=int(f["maximum_iterations"]))
    if path == "python":
        assert emb.calls > 0
    steps = out.beam_search_decoder_output
    np.testing.assert_array_equal(out.predicted_ids, f["predicted_ids"])
    np.testing.assert_array_equal(steps.predicted_ids, f["step_ids"])
    np.testing.assert_array_equal(steps.parent_ids, f["parent_ids"])
    for got in (out.predicted_ids, steps.predicted_ids, steps.parent_ids, state.lengths, lengths):
        assert got.dtype == np.int32
    np.testing.assert_allclose(steps.scores, f["scores"], **F32)  # -inf where TF has -inf
    np.testing.assert_allclose(state.log_probs, f["log_probs"], **F32)
    np.testing.assert_array_equal(state.finished, f["finished"])
    np.testing.assert_array_equal(state.lengths, f["lengths"])
    np.testing.assert_array_equal(lengths, f["decode_lengths"])
    np.testing.assert_array_equal(lengths, state.lengths)
    B = f["start_tokens"].shape[0]
    H = f["c0"].shape[1]
    assert isinstance(state.cell_state, LSTMStateTuple)
    assert state.cell_state.c.shape == (B, K, H)
    np.testing.assert_allclose(state.cell_state.c.reshape(B * K, H), f["final_c"], **F32)
    np.testing.assert_allclose(state.cell_state.h.reshape(B * K, H), f["final_h"], **F32)


def test_gather_tree_matches_tensorflow() -> None:
    """The GatherTree kernel's result (lengths 6, 4, 0 and 9 > T, EOS inside beams)."""
    f = load("gather_tree")
    got = seq2seq.gather_tree(f["step_ids"], f["parent_ids"], f["max_sequence_lengths"], int(f["end_token"]))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, f["beams"])


def test_sequence_loss_matches_tensorflow() -> None:
    """sequence_loss's value and the gradient of its sum for the 7 valid flag
    combinations (a padded row and an all-zero-weight step)."""
    f = load("sequence_loss")
    names = ("average_across_timesteps", "average_across_batch", "sum_over_timesteps", "sum_over_batch")
    for key in (str(k) for k in f["flags"]):
        kwargs = {n: c == "1" for n, c in zip(names, key)}
        value, d_logits = seq2seq.sequence_loss(f["logits"], f["targets"], f["weights"], **kwargs)
        want = f[f"value_{key}"]
        assert np.shape(value) == want.shape, key
        np.testing.assert_allclose(value, want, **F32, err_msg=key)
        np.testing.assert_allclose(d_logits, f[f"d_logits_{key}"], **F32, err_msg=key)


# -- 2. the library against seq2seq_reference.py (hypothesis) --------------------------
#: The cell kinds, by name: ``(units, dtype, seed) -> cell``; "multi" is a
#: MultiRNNCell of an LSTM and a GRU (a nested state of an LSTMStateTuple and an array).
CELL_MAKERS: dict[str, Any] = {
    "basic_rnn": lambda u, d, s: rnnrs.BasicRNNCell(u, dtype=d, seed=s),
    "gru": lambda u, d, s: rnnrs.GRUCell(u, dtype=d, seed=s),
    "lstm": lambda u, d, s: rnnrs.LSTMCell(u, dtype=d, seed=s),
    "multi": lambda u, d, s: rnnrs.MultiRNNCell(
        [rnnrs.LSTMCell(u, dtype=d, seed=s), rnnrs.GRUCell(u, dtype=d, seed=s + 1)]
    ),
}


def tol(dtype: Any) -> dict[str, float]:
    """float32: the fused teacher-forced pass and the Rust loops round
    differently from a per-step NumPy loop; float64: rounding only."""
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


def assert_states_close(got: Any, want: Any, dtype: Any) -> None:
    got_leaves, want_leaves = ref.state_leaves(got), ref.state_leaves(want)
    assert len(got_leaves) == len(want_leaves)
    for g, w in zip(got_leaves, want_leaves):
        assert g.dtype == dtype
        np.testing.assert_allclose(g.reshape(w.shape), w, **tol(dtype))


class Setup:
    """A drawn decoder setting: the cell (built for the embedding width), a
    random initial state, an embedding matrix, the output layer (its EOS
    logit biased by ``eos_bias`` so rows end at varied steps) or none."""

    def __init__(self, data: Any, *, vocab_max: int = 6) -> None:
        draw = data.draw
        self.dtype = draw(st.sampled_from([np.float32, np.float64]), label="dtype")
        self.kind = draw(st.sampled_from(sorted(CELL_MAKERS)), label="cell")
        self.batch = draw(st.integers(1, 4), label="batch")
        self.with_layer = draw(st.booleans(), label="with_layer")
        seed = draw(st.integers(0, 2**16), label="seed")
        rng = np.random.default_rng(seed)
        if self.with_layer:
            units = draw(st.integers(2, 5), label="units")
            self.vocab = draw(st.integers(2, vocab_max), label="vocab")
        else:
            units = self.vocab = draw(st.integers(2, vocab_max), label="vocab")
        self.width = draw(st.integers(1, 4), label="embedding_width")
        self.end = draw(st.integers(0, self.vocab - 1), label="end_token")
        self.start = rng.integers(0, self.vocab, self.batch)
        self.cell = CELL_MAKERS[self.kind](units, self.dtype, seed)
        self.cell.build(self.width)
        self.state = ref.map_state(
            lambda a: (0.5 * rng.standard_normal(a.shape)).astype(a.dtype), self.cell.zero_state(self.batch)
        )
        self.matrix = rng.standard_normal((self.vocab, self.width)).astype(self.dtype)
        self.layer: Optional[rnnrs.Dense] = None
        self.ref_layer: Optional[tuple[np.ndarray, np.ndarray]] = None
        if self.with_layer:
            eos_bias = draw(st.floats(-1.0, 3.0), label="eos_bias")
            layer = rnnrs.Dense(self.vocab, dtype=self.dtype, seed=seed + 7)
            layer.build(units)
            bias = rng.standard_normal(self.vocab).astype(self.dtype)
            bias[self.end] += eos_bias
            kernel = 2 * layer.get_weights()["kernel"]
            layer.set_weights({"kernel": kernel, "bias": bias})
            self.layer = layer
            self.ref_layer = (kernel, bias)

    def step(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        return self.cell(x, state)  # type: ignore[no-any-return]


def max_iterations_strategy() -> Any:
    """Mostly a cap k in 1..8, sometimes None (the 1000-step default) or 0."""
    return st.one_of(st.integers(1, 8), st.sampled_from([None, 0]))


#: More examples than the profile's default (each is cheap): the space is wide.
WIDE = settings(max_examples=4 * settings.default.max_examples)


def decode_warned(decoder: Any, **kw: Any) -> tuple[tuple[Any, ...], bool]:
    """``dynamic_decode(decoder, **kw)`` and whether it warned about the cap."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = seq2seq.dynamic_decode(decoder, **kw)
    capped = [w for w in caught if issubclass(w.category, RuntimeWarning) and "maximum_iterations" in str(w.message)]
    return result, bool(capped)


@WIDE
@given(data=st.data())
def test_basic_decoder_matches_the_reference(data: Any) -> None:
    """Every helper x impute_finished x maximum_iterations None / 0 / k x
    output layer on / off x BasicRNN / GRU / LSTM / MultiRNNCell x float32 /
    float64, on the default path and on the forced Python loop: ids and
    lengths exactly, outputs and final states to rounding; with
    maximum_iterations=None an embedding helper is capped at 1000 steps and
    warns exactly when a row was cut."""
    s = Setup(data)
    helper_kind = data.draw(st.sampled_from(ref.HELPERS), label="helper")
    impute = data.draw(st.booleans(), label="impute_finished")
    max_iter = data.draw(max_iterations_strategy(), label="maximum_iterations")
    time_major = data.draw(st.booleans(), label="output_time_major")
    seed = data.draw(st.integers(0, 2**31), label="helper_seed")
    rng = np.random.default_rng(seed + 1)
    training = helper_kind in ("training", "scheduled")
    ref_kw: dict[str, Any] = {}
    if training:
        t_in = data.draw(st.integers(1, 6), label="input_time")
        x = rng.standard_normal((s.batch, t_in, s.width)).astype(s.dtype)
        lens = rng.integers(0, t_in + 1, s.batch)
        ref_kw.update(inputs=x, sequence_length=lens)
    cap = max_iter
    if not training and max_iter is None:
        cap = seq2seq.DEFAULT_MAXIMUM_ITERATIONS
    temperature = None
    probability = 0.0
    if helper_kind == "sample":
        temperature = data.draw(st.one_of(st.none(), st.floats(0.5, 2.0)), label="softmax_temperature")
        assert cap is not None
        ref_kw["uniforms"] = np.random.default_rng(seed).random((cap, s.batch))
        ref_kw["softmax_temperature"] = temperature
    if helper_kind == "scheduled":
        probability = data.draw(st.sampled_from([0.0, 0.5, 1.0]), label="sampling_probability")
        ref_kw["uniforms"] = np.random.default_rng(seed).random((x.shape[1], 2, s.batch))
        ref_kw["sampling_probability"] = probability
    if helper_kind != "training":
        ref_kw["embedding"] = s.matrix
    if not training:
        ref_kw.update(start_tokens=s.start, end_token=s.end)
    want = ref.dynamic_decode_reference(
        s.step,
        helper_kind,
        s.state,
        output_layer=s.ref_layer,
        impute_finished=impute,
        maximum_iterations=cap,
        output_size=s.vocab,
        **ref_kw,
    )
    for path in PATHS:
        emb = embedding_for(s.matrix, path)
        if helper_kind == "training":
            helper: seq2seq.Helper = seq2seq.TrainingHelper(x, lens)
        elif helper_kind == "greedy":
            helper = seq2seq.GreedyEmbeddingHelper(emb, s.start, s.end)
        elif helper_kind == "sample":
            helper = seq2seq.SampleEmbeddingHelper(emb, s.start, s.end, softmax_temperature=temperature, seed=seed)
        else:
            helper = seq2seq.ScheduledEmbeddingTrainingHelper(x, lens, emb, probability, seed=seed)
        decoder = seq2seq.BasicDecoder(s.cell, helper, s.state, s.layer)
        (out, state, lengths), warned = decode_warned(
            decoder, output_time_major=time_major, impute_finished=impute, maximum_iterations=max_iter
        )
        rnn_output, sample_id = out.rnn_output, out.sample_id
        if path == "default":
            event(f"helper {helper_kind}, {len(set(lengths.tolist()))} distinct lengths, T = {sample_id.shape[1]}")
        if time_major:
            rnn_output, sample_id = rnn_output.transpose(1, 0, 2), sample_id.T
        assert lengths.dtype == np.int32 and sample_id.dtype == np.int32 and rnn_output.dtype == s.dtype
        np.testing.assert_array_equal(lengths, want.lengths, err_msg=path)
        np.testing.assert_array_equal(sample_id, want.sample_id, err_msg=path)
        assert rnn_output.shape == want.rnn_output.shape, path
        np.testing.assert_allclose(rnn_output, want.rnn_output, **tol(s.dtype), err_msg=path)
        assert_states_close(state, want.final_state, s.dtype)
        if not training and max_iter is None:
            ran_to_cap = want.sample_id.shape[1] == cap
            cut = ran_to_cap & (want.lengths == cap) & (want.sample_id[:, -1] != s.end)
            assert warned == bool(cut.any()), path
        else:
            assert not warned, path


def test_sample_helper_draws_the_documented_uniforms() -> None:
    """The uniforms are default_rng(seed).random((maximum_iterations, B)):
    another seed's uniforms give the reference a different decode, the right
    ones the library's (so the property test above cannot pass by accident)."""
    cell = rnnrs.GRUCell(6, dtype=np.float64, seed=3)
    cell.build(2)
    matrix = np.random.default_rng(0).standard_normal((6, 2))
    start, cap = np.arange(4) % 6, 8
    helper = seq2seq.SampleEmbeddingHelper(matrix, start, 5, softmax_temperature=0.3, seed=11)
    out, _, lengths = seq2seq.dynamic_decode(seq2seq.BasicDecoder(cell, helper, None), maximum_iterations=cap)
    state = cell.zero_state(4)

    def run(seed: int) -> Any:
        u = np.random.default_rng(seed).random((cap, 4))
        return ref.dynamic_decode_reference(
            cell,
            "sample",
            state,
            embedding=matrix,
            start_tokens=start,
            end_token=5,
            uniforms=u,
            softmax_temperature=0.3,
            maximum_iterations=cap,
        )

    np.testing.assert_array_equal(out.sample_id, run(11).sample_id)
    np.testing.assert_array_equal(lengths, run(11).lengths)
    assert not np.array_equal(out.sample_id, run(12).sample_id)


def test_beam_search_matches_the_reference() -> None:
    """The property below (its entry point is checked first, so that it fails
    at once, not after Hypothesis has shrunk the same error)."""
    tiny_beam_decode()
    beam_search_matches_the_reference()


@settings(max_examples=2 * settings.default.max_examples)
@given(data=st.data())
def beam_search_matches_the_reference(data: Any) -> None:
    """Beam widths 1..4 over vocabularies 2..6 (so also beam > vocab), length
    penalty 0 / 0.6 / 1.0, maximum_iterations None / 0 / k, every cell kind,
    both dtypes, output layer on / off, default path and forced Python loop:
    gathered ids, step ids, parents exactly; scores and log_probs to rounding
    (-inf where the reference has it); finished, lengths, the third value
    (= final_state.lengths) and the final cell state (rows b*K + k as [B, K, ...])."""
    s = Setup(data)
    beam = data.draw(st.integers(1, 4), label="beam_width")
    lpw = data.draw(st.sampled_from([0.0, 0.6, 1.0]), label="length_penalty_weight")
    max_iter = data.draw(max_iterations_strategy(), label="maximum_iterations")
    time_major = data.draw(st.booleans(), label="output_time_major")
    cap = seq2seq.DEFAULT_MAXIMUM_ITERATIONS if max_iter is None else max_iter
    want = ref.beam_search_reference(
        s.step,
        s.matrix,
        s.start,
        s.end,
        s.state,
        beam,
        output_layer=s.ref_layer,
        length_penalty_weight=lpw,
        maximum_iterations=cap,
    )
    for path in PATHS:
        decoder = seq2seq.BeamSearchDecoder(
            s.cell,
            embedding_for(s.matrix, path),
            s.start,
            s.end,
            s.state,
            beam,
            output_layer=s.layer,
            length_penalty_weight=lpw,
        )
        (out, state, lengths), warned = decode_warned(
            decoder, output_time_major=time_major, maximum_iterations=max_iter
        )
        steps = out.beam_search_decoder_output
        if path == "default":
            event(
                f"beam {'>' if beam > s.vocab else '<='} vocab, {len(set(lengths.ravel().tolist()))} distinct lengths"
            )
        arrays = [out.predicted_ids, steps.predicted_ids, steps.parent_ids, steps.scores]
        if time_major:
            arrays = [a.transpose(1, 0, 2) for a in arrays]
        predicted, step_ids, parent_ids, scores = arrays
        np.testing.assert_array_equal(predicted, want.predicted_ids, err_msg=path)
        np.testing.assert_array_equal(step_ids, want.step_ids, err_msg=path)
        np.testing.assert_array_equal(parent_ids, want.parent_ids, err_msg=path)
        assert scores.dtype == s.dtype and scores.shape == want.scores.shape
        np.testing.assert_allclose(scores, want.scores, **tol(s.dtype), err_msg=path)
        np.testing.assert_allclose(state.log_probs, want.log_probs, **tol(s.dtype), err_msg=path)
        np.testing.assert_array_equal(state.finished, want.finished, err_msg=path)
        np.testing.assert_array_equal(state.lengths, want.lengths, err_msg=path)
        np.testing.assert_array_equal(lengths, state.lengths, err_msg=path)
        assert lengths.dtype == np.int32
        assert_states_close(state.cell_state, want.cell_state, s.dtype)
        for leaf in ref.state_leaves(state.cell_state):
            assert leaf.shape[:2] == (s.batch, beam)
        assert warned == (max_iter is None and not want.finished.all()), path
