"""The seq2seq references (``seq2seq_reference.py``) are trustworthy: they
reproduce real TensorFlow's results (``fixtures/seq2seq/``, written by
``scripts/seq2seq_fixtures.py`` with ``tfa.seq2seq``, TF 1.15's port) and
hand-worked cases, several ported with their expected values from TF 1.15's
own kernel tests (``beam_search_ops_test.py``, ``beam_search_decoder_test.py``).

NumPy and rnnrs cells only (the cell is the reference's step function); no
TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rnnrs
import seq2seq_reference as ref
from rnnrs import LSTMCell
from rnnrs._state import LSTMStateTuple

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "seq2seq"


def load(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{name}.npz") as data:
        return {key: data[key] for key in data.files}


def lstm_from(f: dict[str, np.ndarray]) -> LSTMCell:
    H = f["bias"].shape[0] // 4
    cell = LSTMCell(H, forget_bias=float(f["forget_bias"]), dtype="float32")
    cell.set_weights({"kernel": f["kernel"], "bias": f["bias"]})
    return cell


def dense_from(f: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return f["dense_kernel"], f["dense_bias"]


ALL_FIXTURES = (
    "gather_tree",
    "sequence_loss",
    "training",
    "training_impute",
    "greedy",
    "greedy_impute",
    "beam",
    "beam_penalty",
    "beam_wide",
)


# -- the fixtures themselves ---------------------------------------------------------
@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_fixture_files_are_small(name: str) -> None:
    """The fixtures stay a few KB each."""
    assert (FIXTURES / f"{name}.npz").stat().st_size < 12_000


@pytest.mark.parametrize("name", ["training", "greedy", "beam", "beam_wide"])
def test_fixture_lstm_layout_matches_from_keras(name: str) -> None:
    """The fixture script's Keras -> rnnrs LSTM translation (stacked kernels,
    ``i, f, c, o`` -> ``i, j, f, o``, forget_bias out of the bias) is the one
    ``rnnrs.convert.from_keras`` makes."""
    f = load(name)
    cell = LSTMCell(f["bias"].shape[0] // 4, forget_bias=float(f["forget_bias"]), dtype="float32")
    cell.build(f["keras_kernel"].shape[0])
    rnnrs.convert.from_keras(cell, [f["keras_kernel"], f["keras_recurrent_kernel"], f["keras_bias"]])
    w = cell.get_weights()
    np.testing.assert_array_equal(w["kernel"], f["kernel"])
    np.testing.assert_allclose(w["bias"], f["bias"], rtol=0, atol=1e-6)


# -- gather_tree ----------------------------------------------------------------------
def test_gather_tree_matches_tensorflow() -> None:
    """Short, zero, full and over-long lengths, EOS inside beams (tfa.seq2seq.gather_tree)."""
    f = load("gather_tree")
    got = ref.gather_tree_reference(f["step_ids"], f["parent_ids"], f["max_sequence_lengths"], int(f["end_token"]))
    np.testing.assert_array_equal(got, f["beams"])


def _tm(x: Any) -> np.ndarray:  # beam_search_ops_test's _transpose_batch_time
    return np.transpose(np.asarray(x), [1, 0, 2]).astype(np.int32)


def test_gather_tree_tf_kernel_test_one() -> None:
    """TF 1.15 ``testGatherTreeOne``: expected values copied from the test."""
    step_ids = _tm([[[1, 2, 3], [4, 5, 6], [7, 8, 9], [-1, -1, -1]]])
    parent_ids = _tm([[[0, 0, 0], [0, 1, 1], [2, 1, 2], [-1, -1, -1]]])
    expected = _tm([[[2, 2, 2], [6, 5, 6], [7, 8, 9], [10, 10, 10]]])
    np.testing.assert_array_equal(ref.gather_tree_reference(step_ids, parent_ids, [3], 10), expected)


def test_gather_tree_tf_kernel_test_bad_parent() -> None:
    """TF 1.15 ``testBadParentValuesOnCPU``: parent -1 followed at (batch 0, time 0, beam 1)."""
    step_ids = _tm([[[1, 2, 3], [4, 5, 6], [7, 8, 9], [-1, -1, -1]]])
    parent_ids = _tm([[[0, 0, 0], [0, -1, 1], [2, 1, 2], [-1, -1, -1]]])
    with pytest.raises(ValueError, match=r"parent id -1 at \(batch, time, beam\) \(0, 0, 1\)"):
        ref.gather_tree_reference(step_ids, parent_ids, [3], 10)


def test_gather_tree_tf_kernel_test_batch() -> None:
    """TF 1.15 ``testGatherTreeBatch``'s properties: end tokens past each
    batch row's length, and after a beam's first end token."""
    B, K, T, end = 10, 15, 8, 5
    max_lens = [0, 1, 2, 4, 7, 8, 9, 10, 11, 0]
    rng = np.random.default_rng(0)
    step_ids = rng.integers(0, end + 1, (T, B, K)).astype(np.int32)
    parent_ids = rng.integers(0, K - 1, (T, B, K)).astype(np.int32)
    beams = ref.gather_tree_reference(step_ids, parent_ids, max_lens, end)
    assert beams.shape == (T, B, K)
    for b in range(B):
        assert (beams[max_lens[b] :, b] == end).all()
        for k in range(K):
            v = beams[:, b, k]
            if end in v:
                first = int(np.flatnonzero(v == end)[0])
                assert (v[first:] == end).all()
                assert (v[:first] >= 0).all()


def test_gather_tree_follows_parents_by_hand() -> None:
    """One batch row, two beams, worked by hand: beam 0 ends as 7 <- 5 <- 1
    (parents 1, 0), beam 1 as 8 <- 4 <- 2 (parents 0, 1); end token 3 at step 1
    of a path makes the rest end tokens."""
    step_ids = _tm([[[1, 2], [4, 5], [7, 8]]])
    parent_ids = _tm([[[0, 0], [1, 0], [1, 0]]])
    got = ref.gather_tree_reference(step_ids, parent_ids, [3], 3)
    np.testing.assert_array_equal(got[:, 0, 0], [1, 5, 7])
    np.testing.assert_array_equal(got[:, 0, 1], [2, 4, 8])
    step_ids[1, 0, 1] = 3  # beam 0's path now reads 1, 3, 7 -> 1, 3, 3
    got = ref.gather_tree_reference(step_ids, parent_ids, [3], 3)
    np.testing.assert_array_equal(got[:, 0, 0], [1, 3, 3])


# -- sequence_loss ----------------------------------------------------------------------
def test_sequence_loss_matches_tensorflow_for_every_flag_combination() -> None:
    """All valid combinations of the four flags, value and gradient of its sum
    (tfa.seq2seq.sequence_loss + GradientTape), with a padded row and an
    all-zero-weight step (div_no_nan)."""
    f = load("sequence_loss")
    flags = [str(k) for k in f["flags"]]
    assert len(flags) == 7  # none, one average, one sum, both averages, both sums
    for key in flags:
        kwargs = dict(zip(ref_flag_names(), [c == "1" for c in key]))
        value, d_logits = ref.sequence_loss_reference(f["logits"], f["targets"], f["weights"], **kwargs)
        np.testing.assert_allclose(value, f[f"value_{key}"], rtol=2e-6, atol=1e-7, err_msg=key)
        np.testing.assert_allclose(d_logits, f[f"d_logits_{key}"], rtol=2e-5, atol=1e-7, err_msg=key)
        assert value.shape == f[f"value_{key}"].shape


def ref_flag_names() -> tuple[str, ...]:
    return ("average_across_timesteps", "average_across_batch", "sum_over_timesteps", "sum_over_batch")


@pytest.mark.parametrize("key", ["1010", "0101", "1001", "0110", "1111", "1110"])
def test_sequence_loss_refuses_conflicting_flags(key: str) -> None:
    """Average and sum on one axis, or averaging one axis and summing the other: ValueError."""
    kwargs = dict(zip(ref_flag_names(), [c == "1" for c in key]))
    with pytest.raises(ValueError):
        ref.sequence_loss_reference(np.zeros((1, 1, 2)), np.zeros((1, 1), int), np.ones((1, 1)), **kwargs)


def test_sequence_loss_by_hand() -> None:
    """Uniform logits: every cross-entropy is log V; the averages are log V, the
    weighted sums divide by the nonzero count; d_logits = w (1/V - onehot) / denominator."""
    V = 4
    logits = np.zeros((2, 3, V))
    targets = np.array([[0, 1, 2], [3, 0, 1]])
    weights = np.array([[1.0, 2.0, 0.0], [1.0, 0.0, 0.0]])
    value, d = ref.sequence_loss_reference(logits, targets, weights)
    assert value == pytest.approx(np.log(V))
    expected = weights[:, :, None] * (np.full(V, 1 / V) - np.eye(V)[targets]) / weights.sum()
    np.testing.assert_allclose(d, expected)
    value, _ = ref.sequence_loss_reference(logits, targets, weights, False, False, True, True)
    assert value == pytest.approx(4 * np.log(V) / 3)  # sum of w * log V over 3 nonzero weights
    value, _ = ref.sequence_loss_reference(logits, targets, weights, True, False)
    np.testing.assert_allclose(value, [np.log(V), np.log(V)])
    value, _ = ref.sequence_loss_reference(logits, targets, weights, False, True)
    np.testing.assert_allclose(value, [np.log(V), np.log(V), 0.0])  # step 2: no weight -> 0
    value, d = ref.sequence_loss_reference(logits, targets, weights, False, False)
    np.testing.assert_allclose(value, weights * np.log(V))


# -- tile_batch -------------------------------------------------------------------------
def test_tile_batch_repeats_rows_in_place_and_nests() -> None:
    """``t0, t0, t0, t1, t1, t1`` (not ``t0, t1, t0, ...``), for every leaf of a state."""
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(ref.tile_batch_reference(a, 3), [[1, 2]] * 3 + [[3, 4]] * 3)
    state = (LSTMStateTuple(a, a + 10), a[:, :1])
    tiled = ref.tile_batch_reference(state, 2)
    assert isinstance(tiled[0], LSTMStateTuple)
    np.testing.assert_array_equal(tiled[0].h, [[11, 12], [11, 12], [13, 14], [13, 14]])
    np.testing.assert_array_equal(tiled[1], [[1], [1], [3], [3]])
    assert ref.tile_batch_reference(np.zeros((0, 3)), 4).shape == (0, 3)


# -- dynamic_decode with an LSTM, against TensorFlow -------------------------------------
@pytest.mark.parametrize("name", ["training", "training_impute", "greedy", "greedy_impute"])
def test_basic_decoder_matches_tensorflow(name: str) -> None:
    """TrainingHelper with ragged lengths (a 0 and the full T) and
    GreedyEmbeddingHelper with rows ending at different steps (EOS counted in
    the length) and rows cut by maximum_iterations; impute_finished both ways."""
    f = load(name)
    if name.startswith("training"):
        helper: dict[str, Any] = {"inputs": f["inputs"], "sequence_length": f["sequence_length"]}
    else:
        helper = {
            "embedding": f["embedding"],
            "start_tokens": f["start_tokens"],
            "end_token": int(f["end_token"]),
            "maximum_iterations": int(f["maximum_iterations"]),
        }
    got = ref.dynamic_decode_reference(
        lstm_from(f).__call__,
        name.split("_")[0],
        LSTMStateTuple(f["c0"], f["h0"]),
        output_layer=dense_from(f),
        impute_finished=bool(f["impute_finished"]),
        **helper,
    )
    np.testing.assert_array_equal(got.lengths, f["lengths"])
    np.testing.assert_array_equal(got.sample_id, f["sample_id"])
    np.testing.assert_allclose(got.rnn_output, f["rnn_output"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.final_state.c, f["final_c"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.final_state.h, f["final_h"], rtol=1e-5, atol=1e-5)
    assert got.rnn_output.shape[1] == f["lengths"].max()


def test_greedy_fixture_shows_what_it_pins() -> None:
    """Ragged EOS: three or more distinct lengths, some rows cut by the cap; a
    row's length is its EOS step (1-based) or the cap."""
    f = load("greedy")
    lengths = f["lengths"]
    assert lengths.max() == f["maximum_iterations"] and len(set(lengths.tolist())) >= 3
    for b, n in enumerate(lengths):
        ids = f["sample_id"][b, :n]
        assert (ids[-1] == f["end_token"]) or n == f["maximum_iterations"]
        assert (ids[:-1] != f["end_token"]).all()


# -- beam search against TensorFlow -----------------------------------------------------
@pytest.mark.parametrize("name", ["beam", "beam_penalty", "beam_wide"])
def test_beam_search_matches_tensorflow(name: str) -> None:
    """BeamSearchDecoder (width 3 without and with a length penalty that
    changes the result; width 5 over a vocabulary of 3, where the first top-k
    takes dead beams' -inf candidates): step ids, parents, scores, gathered
    ids, final log_probs, finished, lengths (= dynamic_decode's third value)
    and the cell state."""
    f = load(name)
    cell = lstm_from(f)
    got = ref.beam_search_reference(
        cell.__call__,
        f["embedding"],
        f["start_tokens"],
        int(f["end_token"]),
        LSTMStateTuple(f["c0"], f["h0"]),
        int(f["beam_width"]),
        output_layer=dense_from(f),
        length_penalty_weight=float(f["length_penalty_weight"]),
        maximum_iterations=int(f["maximum_iterations"]),
    )
    np.testing.assert_array_equal(got.step_ids, f["step_ids"])
    np.testing.assert_array_equal(got.parent_ids, f["parent_ids"])
    np.testing.assert_array_equal(got.predicted_ids, f["predicted_ids"])
    np.testing.assert_array_equal(got.finished, f["finished"])
    np.testing.assert_array_equal(got.lengths, f["lengths"])
    np.testing.assert_array_equal(f["decode_lengths"], f["lengths"])
    np.testing.assert_allclose(got.scores, f["scores"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.log_probs, f["log_probs"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.cell_state.c, f["final_c"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.cell_state.h, f["final_h"], rtol=1e-5, atol=1e-5)


def test_beam_fixtures_show_what_they_pin() -> None:
    """The beam fixtures have beams that ended early and beams cut by the cap,
    and the length penalty changed the decoded ids."""
    plain, lp = load("beam"), load("beam_penalty")
    assert plain["lengths"].min() < plain["maximum_iterations"] - 1
    assert not plain["finished"].all()
    assert not np.array_equal(plain["predicted_ids"], lp["predicted_ids"])
    wide = load("beam_wide")
    assert np.isneginf(wide["scores"][:, 0]).any()  # -inf candidates taken at t = 0


# -- _beam_search_step: TF 1.15's own tests, expected values copied -----------------------
def _tf_step_case(lengths: Any, finished: Any, big: dict[tuple[int, int, int], float]) -> tuple[Any, ...]:
    B, K, V = 2, 3, 5
    logits = np.full((B, K, V), 0.0001, np.float32)
    for index, value in big.items():
        logits[index] = value
    ones = np.ones((B, K), np.float32)
    log_probs = ref.log_softmax(ones)
    step = ref.beam_search_step_reference(
        logits, log_probs, np.asarray(finished), np.asarray(lengths, np.int64), end_token=0, length_penalty_weight=0.6
    )
    return step, log_probs, ref.log_softmax(logits)


def test_beam_step_tf_test_step() -> None:
    """TF 1.15 ``TestBeamStep.test_step``."""
    big = {(0, 0, 2): 1.9, (0, 0, 3): 2.1, (0, 1, 3): 3.1, (0, 1, 4): 0.9}
    big.update({(1, 0, 1): 0.5, (1, 1, 2): 2.7, (1, 2, 2): 10.0, (1, 2, 3): 0.2})
    step, lp, step_lp = _tf_step_case(np.full((2, 3), 2), np.zeros((2, 3), bool), big)
    np.testing.assert_array_equal(step.word_ids, [[3, 3, 2], [2, 2, 1]])
    np.testing.assert_array_equal(step.parent_ids, [[1, 0, 0], [2, 1, 0]])
    np.testing.assert_array_equal(step.lengths, [[3, 3, 3], [3, 3, 3]])
    np.testing.assert_array_equal(step.finished, np.zeros((2, 3), bool))
    expected = np.stack([lp[0][[1, 0, 0]], lp[1][[2, 1, 0]]])
    expected[0] += [step_lp[0, 1, 3], step_lp[0, 0, 3], step_lp[0, 0, 2]]
    expected[1] += [step_lp[1, 2, 2], step_lp[1, 1, 2], step_lp[1, 0, 1]]
    np.testing.assert_allclose(step.log_probs, expected, rtol=1e-6)


def test_beam_step_tf_test_step_with_eos() -> None:
    """TF 1.15 ``TestBeamStep.test_step_with_eos``: a finished beam extends
    with EOS at no cost and keeps its length."""
    big = {(0, 0, 2): 1.9, (0, 0, 3): 2.1, (0, 1, 3): 3.1, (0, 1, 4): 0.9}
    big.update({(1, 0, 1): 0.5, (1, 1, 2): 5.7, (1, 2, 2): 1.0, (1, 2, 3): 0.2})
    finished = [[False, True, False], [False, False, True]]
    step, lp, step_lp = _tf_step_case([[2, 1, 2], [2, 2, 1]], finished, big)
    np.testing.assert_array_equal(step.parent_ids, [[1, 0, 0], [1, 2, 0]])
    np.testing.assert_array_equal(step.word_ids, [[0, 3, 2], [2, 0, 1]])
    np.testing.assert_array_equal(step.lengths, [[1, 3, 3], [3, 1, 3]])
    np.testing.assert_array_equal(step.finished, [[True, False, False], [False, True, False]])
    expected = np.stack([lp[0][[1, 0, 0]], lp[1][[1, 2, 0]]])
    expected[0, 1:] += [step_lp[0, 0, 3], step_lp[0, 0, 2]]
    expected[1, [0, 2]] += [step_lp[1, 1, 2], step_lp[1, 0, 1]]
    np.testing.assert_allclose(step.log_probs, expected, rtol=1e-6)


def test_beam_step_tf_large_beam_step() -> None:
    """TF 1.15 ``TestLargeBeamStep.test_step``: beam width 8 over a vocabulary
    of 5, only beam 0 live (the others finished with log_prob -inf)."""
    B, K, V = 2, 8, 5
    log_probs = np.full((B, K), -np.inf, np.float32)
    log_probs[:, 0] = 0
    finished = np.ones((B, K), bool)
    finished[:, 0] = False
    lengths = np.zeros((B, K), np.int64)
    lengths[:, 0] = 2
    logits = np.full((B, K, V), 0.0001, np.float32)
    for index, value in {(0, 0, 2): 1.9, (0, 0, 3): 2.1, (0, 1, 3): 3.1, (0, 1, 4): 0.9}.items():
        logits[index] = value
    for index, value in {(1, 0, 1): 0.5, (1, 1, 2): 2.7, (1, 2, 2): 10.0, (1, 2, 3): 0.2}.items():
        logits[index] = value
    step = ref.beam_search_step_reference(logits, log_probs, finished, lengths, 0, 0.6)
    assert step.word_ids[0, 0] == 3 and step.word_ids[0, 1] == 2 and step.word_ids[1, 0] == 1
    np.testing.assert_array_equal(step.log_probs[:, -3:], np.full((2, 3), -np.inf))
    assert (step.log_probs[:, :-3] > -np.inf).all()
    assert (step.lengths[:, :-3] > 0).all()
    np.testing.assert_array_equal(step.lengths[:, -3:], np.zeros((2, 3)))


def test_mask_probs_tf_test() -> None:
    """TF 1.15 ``TestBeamSearchDecoderMaskProbs``-style: finished rows get 0 at
    EOS and float32's lowest finite value elsewhere; live rows are untouched."""
    probs = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(np.float32)
    finished = np.array([[False, True, False], [False, True, True]])
    masked = ref.mask_probs(probs, 0, finished)
    np.testing.assert_array_equal(masked[0, 0], probs[0, 0])
    np.testing.assert_array_equal(masked[1, 0], probs[1, 0])
    for b, k in [(0, 1), (1, 1), (1, 2)]:
        assert masked[b, k, 0] == 0
        assert (masked[b, k, 1:] == np.finfo(np.float32).min).all()


def test_length_penalty_by_hand() -> None:
    """GNMT: ((5 + L) / 6) ** w; 1 for w = 0."""
    assert ref.length_penalty(np.array([1]), 0.0, np.float64) == 1.0
    np.testing.assert_allclose(ref.length_penalty(np.array([1, 7]), 0.5, np.float64), [1.0, np.sqrt(2.0)])


def test_top_k_ties_lower_index_first() -> None:
    """``nn_ops.top_k``: equal values, lower index first (also for -inf)."""
    row = np.array([1.0, 3.0, 1.0, 3.0, -np.inf, -np.inf])
    np.testing.assert_array_equal(ref.top_k_stable(row, 6), [1, 3, 0, 2, 4, 5])


# -- toy cells, worked by hand -----------------------------------------------------------
class Scripted:
    """A cell whose output at step t is a one-hot logit row chosen per row by a
    script (``script[b][t]``, the last entry repeated); its state counts steps
    and sums the inputs' first column, so copied-through states are visible."""

    def __init__(self, script: list[list[int]], V: int) -> None:
        self.script, self.V, self.calls = script, V, 0

    def __call__(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        count, total = state
        out = np.zeros((x.shape[0], self.V))
        for b in range(x.shape[0]):
            row = self.script[b]
            out[b, row[min(int(count[b, 0]), len(row) - 1)]] = 5.0
        self.calls += 1
        return out, (count + 1, total + x[:, :1])


def _zero(B: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((B, 1)), np.zeros((B, 1))


EMB = np.arange(12.0).reshape(6, 2)  # V = 6, E = 2; row v = [2v, 2v + 1]


def test_greedy_lengths_count_the_eos_and_cap_by_hand() -> None:
    """Row 0 emits EOS (1) at step 3 -> length 3; row 1 at step 1 -> 1; row 2
    never -> maximum_iterations 5; T = 5. Without impute_finished, finished rows
    keep computing (their ids after EOS come from the script)."""
    cell = Scripted([[2, 3, 1, 4], [1, 5], [3]], V=6)
    got = ref.dynamic_decode_reference(
        cell, "greedy", _zero(3), embedding=EMB, start_tokens=np.array([0, 0, 0]), end_token=1, maximum_iterations=5
    )
    np.testing.assert_array_equal(got.lengths, [3, 1, 5])
    np.testing.assert_array_equal(got.sample_id, [[2, 3, 1, 4, 4], [1, 5, 5, 5, 5], [3, 3, 3, 3, 3]])
    assert got.rnn_output.shape == (3, 5, 6)
    np.testing.assert_array_equal(got.final_state[0][:, 0], [5, 5, 5])  # every row ran 5 steps
    # inputs fed: start 0 then the ids; row 0 fed 0, 2, 3, 1, 4 -> first column 0+4+6+2+8
    assert got.final_state[1][0, 0] == 20


def test_greedy_impute_finished_zeros_and_freezes_by_hand() -> None:
    """impute_finished: after its EOS step a row outputs zeros, sample_id 0,
    and keeps the state it had after the EOS step."""
    cell = Scripted([[2, 3, 1, 4], [1, 5], [3]], V=6)
    got = ref.dynamic_decode_reference(
        cell,
        "greedy",
        _zero(3),
        embedding=EMB,
        start_tokens=np.array([0, 0, 0]),
        end_token=1,
        maximum_iterations=5,
        impute_finished=True,
    )
    np.testing.assert_array_equal(got.lengths, [3, 1, 5])
    np.testing.assert_array_equal(got.sample_id, [[2, 3, 1, 0, 0], [1, 0, 0, 0, 0], [3, 3, 3, 3, 3]])
    assert (got.rnn_output[0, 3:] == 0).all() and (got.rnn_output[1, 1:] == 0).all()
    np.testing.assert_array_equal(got.final_state[0][:, 0], [3, 1, 5])


def test_decode_stops_when_all_finished_and_at_zero_iterations() -> None:
    """T = max(lengths) when every row ends before the cap; maximum_iterations=0
    runs no step (T = 0, the initial state back)."""
    cell = Scripted([[2, 1], [1]], V=6)
    got = ref.dynamic_decode_reference(
        cell, "greedy", _zero(2), embedding=EMB, start_tokens=np.array([0, 0]), end_token=1, maximum_iterations=9
    )
    np.testing.assert_array_equal(got.lengths, [2, 1])
    assert got.sample_id.shape == (2, 2) and cell.calls == 2
    cell = Scripted([[2]], V=6)
    got = ref.dynamic_decode_reference(
        cell,
        "greedy",
        _zero(1),
        embedding=EMB,
        start_tokens=np.array([0]),
        end_token=1,
        maximum_iterations=0,
        output_size=6,
    )
    assert got.rnn_output.shape == (1, 0, 6) and got.sample_id.shape == (1, 0) and cell.calls == 0
    np.testing.assert_array_equal(got.lengths, [0])


def test_training_helper_lengths_and_zero_length_rows_by_hand() -> None:
    """TrainingHelper: a row finishes after its given length; a length-0 row is
    finished before the first step (length 0, all outputs imputed); every row
    reads x[:, t] (the padded array past its length)."""
    x = np.arange(2 * 4 * 2, dtype=float).reshape(2, 4, 2)
    cell = Scripted([[0], [0]], V=3)
    got = ref.dynamic_decode_reference(
        cell, "training", _zero(2), inputs=x, sequence_length=np.array([3, 0]), impute_finished=True
    )
    np.testing.assert_array_equal(got.lengths, [3, 0])
    assert got.rnn_output.shape == (2, 3, 3) and (got.rnn_output[1] == 0).all()
    np.testing.assert_array_equal(got.final_state[0][:, 0], [3, 0])
    assert got.final_state[1][0, 0] == x[0, :3, 0].sum()
    got = ref.dynamic_decode_reference(cell, "training", _zero(2), inputs=x, sequence_length=np.array([3, 0]))
    assert got.final_state[1][1, 0] == x[1, :3, 0].sum()  # kept computing on the padding
    got = ref.dynamic_decode_reference(
        cell, "training", _zero(2), inputs=x, sequence_length=np.array([0, 0]), output_size=3
    )
    assert got.rnn_output.shape == (2, 0, 3)


def test_sample_ids_by_hand() -> None:
    """Uniform u picks the first id whose cumulative share exceeds u; u = 0 picks
    the first id with mass; temperature flattens or sharpens."""
    logits = np.log(np.array([[0.1, 0.2, 0.3, 0.4]]))
    for u, want in [(0.0, 0), (0.05, 0), (0.1001, 1), (0.25, 1), (0.35, 2), (0.6, 3), (0.999999, 3)]:
        assert ref.sample_ids_reference(logits, np.array([u]))[0] == want, u
    assert ref.sample_ids_reference(np.array([[0.0, -np.inf, 0.0]]), np.array([0.5]))[0] == 2
    # temperature 1e-3 makes the draw an argmax; a huge one makes it uniform
    assert ref.sample_ids_reference(logits, np.array([0.5]), 1e-3)[0] == 3
    assert ref.sample_ids_reference(logits, np.array([0.26]), 1e9)[0] == 1


def test_sample_helper_uses_the_given_uniforms() -> None:
    """SampleEmbeddingHelper: row b at step t draws with uniforms[t, b]; a row
    ends when it draws EOS."""
    cell = Scripted([[0], [0]], V=3)  # logits [5, 0, 0]: cdf [.9867, .9934, 1]
    u = np.array([[0.5, 0.99], [0.999, 0.1], [0.1, 0.1]])
    got = ref.dynamic_decode_reference(
        cell,
        "sample",
        _zero(2),
        embedding=EMB[:3],
        start_tokens=np.array([0, 0]),
        end_token=2,
        uniforms=u,
        maximum_iterations=3,
    )
    np.testing.assert_array_equal(got.sample_id, [[0, 2, 0], [1, 0, 0]])
    np.testing.assert_array_equal(got.lengths, [2, 3])


def test_scheduled_helper_by_hand() -> None:
    """ScheduledEmbeddingTrainingHelper: sampling_probability 0 is the
    TrainingHelper (ids -1); 1 feeds embedding(sampled id) instead of x[:, t+1]."""
    x = np.arange(1 * 3 * 2, dtype=float).reshape(1, 3, 2) + 100
    cell = Scripted([[2]], V=3)
    u = np.zeros((3, 2, 1))
    u[:, 1] = 0.5  # the sampling draw: logits [0, 0, 5] -> id 2
    never = ref.dynamic_decode_reference(
        cell, "scheduled", _zero(1), inputs=x, sequence_length=np.array([3]), embedding=EMB[:3], uniforms=u
    )
    np.testing.assert_array_equal(never.sample_id, [[-1, -1, -1]])
    assert never.final_state[1][0, 0] == x[0, :, 0].sum()
    always = ref.dynamic_decode_reference(
        cell,
        "scheduled",
        _zero(1),
        inputs=x,
        sequence_length=np.array([3]),
        embedding=EMB[:3],
        uniforms=u,
        sampling_probability=1.0,
    )
    np.testing.assert_array_equal(always.sample_id, [[2, 2, 2]])
    assert always.final_state[1][0, 0] == x[0, 0, 0] + 2 * EMB[2, 0]


def test_beam_search_by_hand_eos_at_no_cost_and_lengths() -> None:
    """One row, beam 2, V = 3 (EOS 0). The cell's logits do not depend on the
    input: log p = log([.5, .3, .2]) each step. Step 0 (only beam 0 live):
    EOS (-0.69) and 1 (-1.20). Step 1: the finished beam extends with EOS at no
    cost (-0.69) and beats 1,0 (-1.90) and 1,1 (-2.41). Lengths: EOS counted."""
    p = np.log(np.array([0.5, 0.3, 0.2]))

    def step(x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        return np.tile(p, (x.shape[0], 1)), state + 1

    got = ref.beam_search_reference(step, EMB[:3], np.array([1]), 0, np.zeros((1, 1)), 2, maximum_iterations=2)
    np.testing.assert_array_equal(got.step_ids[0], [[0, 1], [0, 0]])
    np.testing.assert_array_equal(got.parent_ids[0], [[0, 0], [0, 1]])
    np.testing.assert_allclose(got.log_probs[0], [p[0], p[1] + p[0]])
    np.testing.assert_array_equal(got.finished[0], [True, True])
    np.testing.assert_array_equal(got.lengths[0], [1, 2])
    np.testing.assert_array_equal(got.predicted_ids[0], [[0, 1], [0, 0]])  # ids past the end: EOS
    np.testing.assert_allclose(got.scores[0, 1], [p[0], p[1] + p[0]])
    # Length penalty 2: a non-EOS candidate of a live beam counts length + 1,
    # an EOS candidate + 0. Step 0: EOS has L = 0 -> (5/6)^2, token 1 has L = 1 -> 1.
    # Step 1: beam 1's EOS (L = 1, -1.90) now loses to its token 1 (L = 2:
    # -2.41 / (7/6)^2 = -1.77), so beam 1 stays live with length 2.
    lp = ref.beam_search_reference(
        step, EMB[:3], np.array([1]), 0, np.zeros((1, 1)), 2, maximum_iterations=2, length_penalty_weight=2.0
    )
    np.testing.assert_allclose(lp.scores[0, 0], [p[0] / (5 / 6) ** 2, p[1]], rtol=1e-12)
    np.testing.assert_array_equal(lp.step_ids[0], [[0, 1], [0, 1]])
    np.testing.assert_array_equal(lp.parent_ids[0, 1], [0, 1])
    np.testing.assert_allclose(lp.scores[0, 1], [p[0], 2 * p[1] / (7 / 6) ** 2], rtol=1e-12)
    np.testing.assert_array_equal(lp.finished[0], [True, False])
    np.testing.assert_array_equal(lp.lengths[0], [1, 2])
