"""Beam search (``rnnrs.seq2seq.beam_search``): ``gather_tree`` on TF 1.15's
own kernel test cases, one beam search step on TF's hand-computed cases,
the whole decode against an independent per-hypothesis reference written
here (scalar Python, one cell call per hypothesis) and against brute-force
enumeration, beam width 1 against greedy decoding, and the argument checks.

Every decode test runs both the automatic path (the Rust loop when it
applies) and the NumPy loop (``path="python"``)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnrs
from rnnrs import seq2seq
from rnnrs._state import map_state
from rnnrs.cells import RNNCell
from rnnrs.seq2seq.beam_search import (
    BeamSearchDecoder,
    BeamSearchDecoderOutput,
    BeamSearchDecoderState,
    FinalBeamSearchDecoderOutput,
    _beam_search_step,
    gather_tree,
)

# -- helpers -------------------------------------------------------------------


def _tm(x: Any) -> np.ndarray:
    """TF's tests write [batch, time, beam] and transpose to time-major."""
    return np.transpose(np.asarray(x), [1, 0, 2]).astype(np.int32)


def decode(decoder: BeamSearchDecoder, path: str, monkeypatch: Any = None, **kw: Any) -> Any:
    """``decoder._decode`` with dynamic_decode's defaults; ``path="python"``
    forces the NumPy loop."""
    args = dict(maximum_iterations=None, output_time_major=False, impute_finished=False, training=False)
    args.update(kw)
    if path == "python":
        decoder._fast = lambda max_iter: None  # type: ignore[method-assign]
    return decoder._decode(
        args["maximum_iterations"], args["output_time_major"], args["impute_finished"], args["training"], False
    )


def make_cell(kind: str, units: int, dtype: Any, seed: int) -> RNNCell:
    if kind == "lstm":
        return rnnrs.LSTMCell(units, dtype=dtype, seed=seed)
    if kind == "gru":
        return rnnrs.GRUCell(units, dtype=dtype, seed=seed)
    if kind == "multi":
        return rnnrs.MultiRNNCell(
            [rnnrs.LSTMCell(units, dtype=dtype, seed=seed), rnnrs.GRUCell(units + 1, dtype=dtype, seed=seed + 1)]
        )
    return rnnrs.BasicRNNCell(units, dtype=dtype, seed=seed)


def rows_of(state: Any, rows: Any) -> Any:
    return map_state(lambda _c, a: a[rows], state)


def log_softmax_scalar(logits: np.ndarray) -> list[Any]:
    """log-softmax of one vector, element by element."""
    m = max(logits)
    total = logits.dtype.type(0)
    for v in logits:
        total = total + np.exp(v - m)
    return [(v - m) - np.log(total) for v in logits]


def reference_beam(cell, emb, dense, start, end, state, beam, max_iter, lpw, impute=False):
    """Beam search written per hypothesis from TF 1.15's ``_beam_search_step``:
    scalar arithmetic in the cell's dtype, one cell call per hypothesis per
    step, candidates sorted by (-score, flat index). ``state`` has B rows.
    Returns step ids/parents/scores ``[B, T, beam]``, the final hypotheses
    (dicts with tokens, logp, finished, length, state) and T."""
    dt = cell.dtype.type
    batch = len(start)
    hyps = []
    for b in range(batch):
        row = rows_of(state, [b])
        hyps.append(
            [
                dict(
                    tokens=[],
                    logp=dt(0) if k == 0 else dt(-np.inf),
                    finished=k > 0,
                    length=0,
                    state=row,
                    inp=int(start[b]),
                )
                for k in range(beam)
            ]
        )
    ids, parents, scores = [], [], []
    t = 0
    while t < max_iter and not all(h["finished"] for row in hyps for h in row):
        step_ids = np.zeros((batch, beam), np.int32)
        step_parents = np.zeros((batch, beam), np.int32)
        step_scores = np.zeros((batch, beam), cell.dtype)
        for b in range(batch):
            cands = []
            for j, h in enumerate(hyps[b]):
                out, new_state = cell(emb[[h["inp"]]], h["state"])
                if impute and h["finished"]:
                    new_state = h["state"]
                logits = out[0] if dense is None else out[0] @ dense._weights["kernel"] + dense._weights["bias"]
                lsm = log_softmax_scalar(logits)
                vocab = len(lsm)
                for v in range(vocab):
                    if h["finished"]:
                        lp = dt(0) if v == end else np.finfo(cell.dtype).min
                    else:
                        lp = lsm[v]
                    with np.errstate(over="ignore"):
                        total = h["logp"] + lp
                    length = h["length"] + (0 if h["finished"] or v == end else 1)
                    pen = dt(1) if lpw == 0 else ((dt(5) + dt(length)) / dt(6)) ** dt(lpw)
                    cands.append((total / pen, j * vocab + v, j, v, total, new_state))
            cands.sort(key=lambda c: (-c[0], c[1]))
            new_row = []
            for k, (score, _flat, j, v, total, new_state) in enumerate(cands[:beam]):
                parent = hyps[b][j]
                new_row.append(
                    dict(
                        tokens=parent["tokens"] + [v],
                        logp=total,
                        finished=parent["finished"] or v == end,
                        length=parent["length"] + (0 if parent["finished"] else 1),
                        state=new_state,
                        inp=v,
                    )
                )
                step_ids[b, k], step_parents[b, k], step_scores[b, k] = v, j, score
            hyps[b] = new_row
        ids.append(step_ids)
        parents.append(step_parents)
        scores.append(step_scores)
        t += 1

    def stack(xs, dtype):
        return np.stack(xs, axis=1) if xs else np.zeros((batch, 0, beam), dtype)

    return stack(ids, np.int32), stack(parents, np.int32), stack(scores, cell.dtype), hyps, t


def check_against_reference(decoder, cell, emb, dense, start, end, state, beam, max_iter, lpw, path, impute=False):
    out, final, lengths = decode(decoder, path, maximum_iterations=max_iter, impute_finished=impute)
    ids, parents, scores, hyps, steps = reference_beam(cell, emb, dense, start, end, state, beam, max_iter, lpw, impute)
    tol = dict(rtol=1e-4, atol=1e-5) if cell.dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    raw = out.beam_search_decoder_output
    assert raw.predicted_ids.shape == (len(start), steps, beam)
    np.testing.assert_array_equal(raw.predicted_ids, ids)
    np.testing.assert_array_equal(raw.parent_ids, parents)
    np.testing.assert_allclose(raw.scores, scores, **tol)
    ref_lengths = np.array([[h["length"] for h in row] for row in hyps], dtype=np.int32).reshape(len(start), beam)
    np.testing.assert_array_equal(final.lengths, ref_lengths)
    np.testing.assert_array_equal(lengths, ref_lengths)
    np.testing.assert_array_equal(final.finished, [[h["finished"] for h in row] for row in hyps])
    np.testing.assert_allclose(final.log_probs, [[h["logp"] for h in row] for row in hyps], **tol)
    for b, row in enumerate(hyps):
        for k, h in enumerate(row):
            got = rows_of(final.cell_state, (b, k))
            want = map_state(lambda _c, a: a[0], h["state"])
            map_state(lambda _c, g, w: np.testing.assert_allclose(g, w, **tol), got, want)
            if np.isfinite(h["logp"]):  # real hypotheses (not the -inf fillers)
                seq = list(out.predicted_ids[b, :, k])
                tokens = h["tokens"]
                if end in tokens:
                    first = tokens.index(end)
                    tokens = tokens[: first + 1] + [end] * (len(tokens) - first - 1)
                assert seq == tokens
    return out, final, lengths


def lstm_setup(dtype=np.float32, batch=3, vocab=6, emb_size=4, units=5, beam=3, seed=0, cell_kind="lstm"):
    rng = np.random.default_rng(seed)
    cell = make_cell(cell_kind, units, dtype, seed)
    emb = rng.normal(size=(vocab, emb_size)).astype(dtype)
    dense = rnnrs.layers.Dense(vocab, seed=seed + 7)
    start = rng.integers(0, vocab, size=batch)
    cell.build(emb_size)
    state = map_state(lambda _c, a: rng.normal(size=a.shape).astype(dtype), cell.zero_state(batch))
    return cell, emb, dense, start, state


PATHS = ["auto", "python"]


def best_first(scores: np.ndarray) -> bool:
    """Scores ``[B, T, beam]`` non-increasing along the beams (-inf allowed)."""
    return bool((scores[..., :-1] >= scores[..., 1:]).all())


# -- gather_tree: TF 1.15's kernel tests ------------------------------------------


def test_gather_tree_one_tf_case():
    """TF's testGatherTreeOne: backtrack from max_len - 1, end_token after."""
    step_ids = _tm([[[1, 2, 3], [4, 5, 6], [7, 8, 9], [-1, -1, -1]]])
    parent_ids = _tm([[[0, 0, 0], [0, 1, 1], [2, 1, 2], [-1, -1, -1]]])
    expected = _tm([[[2, 2, 2], [6, 5, 6], [7, 8, 9], [10, 10, 10]]])
    got = gather_tree(step_ids, parent_ids, [3], 10)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)


def test_gather_tree_batch_of_two_tf_case():
    """beam_search_decoder_test.py's test_gather_tree (batch 2)."""
    predicted = np.array([[[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[2, 3, 4], [5, 6, 7], [8, 9, 10]]]).transpose(1, 0, 2)
    parents = np.array([[[0, 0, 0], [0, 1, 1], [2, 1, 2]], [[0, 0, 0], [1, 2, 0], [2, 1, 1]]]).transpose(1, 0, 2)
    expected = np.array([[[2, 2, 2], [6, 5, 6], [7, 8, 9]], [[2, 4, 4], [7, 6, 6], [8, 9, 10]]]).transpose(1, 0, 2)
    np.testing.assert_array_equal(gather_tree(predicted, parents, [3, 3], 11), expected)


def test_gather_tree_bad_parent_tf_case():
    """TF's testBadParentValuesOnCPU: the error names the position."""
    step_ids = _tm([[[1, 2, 3], [4, 5, 6], [7, 8, 9], [-1, -1, -1]]])
    parent_ids = _tm([[[0, 0, 0], [0, -1, 1], [2, 1, 2], [-1, -1, -1]]])
    with pytest.raises(ValueError, match=r"^parent_ids: .*got -1 at \(batch, time, beam\) == \(0, 0, 1\)"):
        gather_tree(step_ids, parent_ids, [3], 10)


def test_gather_tree_parent_equal_to_beam_width_is_refused():
    """TF's kernel only checks parent > beam_width (and reads out of bounds
    for == beam_width); rnnrs refuses it."""
    step_ids = _tm([[[1, 2], [3, 4]]])
    parent_ids = _tm([[[0, 0], [2, 0]]])
    with pytest.raises(ValueError, match=r"^parent_ids: expected parent ids in \[0, 2\).*got 2"):
        gather_tree(step_ids, parent_ids, [2], 9)


def test_gather_tree_batch_random_tf_case():
    """TF's testGatherTreeBatch: past a row's max length every id is
    end_token, and after a beam's first end_token too."""
    rng = np.random.default_rng(5)
    batch, beam, max_time, end = 10, 15, 8, 5
    lengths = [0, 1, 2, 4, 7, 8, 9, 10, 11, 0]
    step_ids = rng.integers(0, end + 1, size=(max_time, batch, beam))
    parent_ids = rng.integers(0, beam - 1, size=(max_time, batch, beam))
    got = gather_tree(step_ids, parent_ids, lengths, end)
    assert got.shape == (max_time, batch, beam)
    for b in range(batch):
        assert (got[lengths[b] :, b, :] == end).all()
    for b, k in itertools.product(range(batch), range(beam)):
        v = got[:, b, k]
        assert (v != -1).all()
        if end in v:
            first = int(np.flatnonzero(v == end)[0])
            assert (v[first:] == end).all()
            assert (v[:first] >= 0).all()


def test_gather_tree_complex_trajectory_tf_case():
    """beam_search_decoder_test.py's complex trajectory (batch 1, beam 5,
    T 7), through gather_tree on beam indices as gather_tree_from_array does."""
    values = np.array(
        [
            [25, 12, 114, 89, 97],
            [9, 91, 64, 11, 162],
            [34, 34, 34, 34, 34],
            [2, 4, 2, 2, 4],
            [2, 3, 6, 2, 2],
            [2, 2, 2, 3, 2],
            [2, 2, 2, 2, 2],
        ]
    )
    parents = np.array(
        [
            [0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0],
            [0, 1, 2, 3, 4],
            [0, 0, 1, 2, 1],
            [0, 1, 1, 2, 3],
            [0, 1, 3, 1, 2],
            [0, 1, 2, 3, 4],
        ]
    )
    expected = np.array(
        [
            [25, 25, 25, 25, 25],
            [9, 9, 91, 9, 9],
            [34, 34, 34, 34, 34],
            [2, 4, 2, 4, 4],
            [2, 3, 6, 3, 6],
            [2, 2, 2, 3, 2],
            [2, 2, 2, 2, 2],
        ]
    )
    lengths = np.array([4, 6, 4, 7, 6])
    beam_ids = np.tile(np.arange(5), (7, 1))
    order = gather_tree(beam_ids[:, None], parents[:, None], [lengths.max()], 5 + 1)[:, 0]
    in_bound = np.arange(7)[:, None] < lengths[None, :]
    order = np.where(in_bound, order, beam_ids)
    np.testing.assert_array_equal(np.take_along_axis(values, order, axis=1), expected)


def test_gather_tree_length_above_time_is_clamped_and_zero_length_is_all_end():
    """TF clamps a max length above T to T; a length 0 row is all end_token."""
    step_ids = _tm([[[1, 2], [3, 4]], [[5, 6], [7, 8]]])
    parent_ids = _tm([[[0, 0], [1, 0]], [[0, 0], [0, 0]]])
    got = gather_tree(step_ids, parent_ids, [5, 0], 9)
    np.testing.assert_array_equal(got[:, 0], [[2, 1], [3, 4]])
    np.testing.assert_array_equal(got[:, 1], [[9, 9], [9, 9]])


@pytest.mark.parametrize(
    "args, error, pattern",
    [
        ((np.zeros((2, 2), int), np.zeros((2, 2), int), [1], 0), ValueError, "^step_ids: expected a 3-d array"),
        ((np.zeros((2, 1, 2), int), np.zeros((2, 1, 3), int), [1], 0), ValueError, r"^parent_ids: expected shape"),
        ((np.zeros((2, 1, 2), int), np.zeros((2, 1, 2), int), [1, 2], 0), ValueError, "^max_sequence_lengths:"),
        (
            (np.zeros((2, 1, 2), int), np.zeros((2, 1, 2), int), [-1], 0),
            ValueError,
            "^max_sequence_lengths: expected values >= 0",
        ),
        ((np.zeros((2, 1, 2)), np.zeros((2, 1, 2), int), [1], 0), TypeError, "^step_ids: expected an integer"),
        ((np.zeros((2, 1, 2), int), np.zeros((2, 1, 2), int), [1.0], 0), TypeError, "^max_sequence_lengths:"),
        ((np.zeros((2, 1, 2), int), np.zeros((2, 1, 2), int), [1], True), TypeError, "^end_token:"),
        ((np.zeros((2, 1, 2), int), np.zeros((2, 1, 2), int), [1], 1.0), TypeError, "^end_token:"),
        ((np.full((2, 1, 2), 2**40), np.zeros((2, 1, 2), int), [1], 0), ValueError, "^step_ids: .*int32"),
    ],
)
def test_gather_tree_refuses_bad_arguments(args, error, pattern):
    with pytest.raises(error, match=pattern):
        gather_tree(*args)


# -- one step: TF 1.15's hand-computed cases --------------------------------------


def _tf_step_logits(big_for_beam_1_2: float = 2.7, beam_1_2: float = 10.0) -> np.ndarray:
    logits = np.full([2, 3, 5], 0.0001)
    logits[0, 0, 2] = 1.9
    logits[0, 0, 3] = 2.1
    logits[0, 1, 3] = 3.1
    logits[0, 1, 4] = 0.9
    logits[1, 0, 1] = 0.5
    logits[1, 1, 2] = big_for_beam_1_2
    logits[1, 2, 2] = beam_1_2
    logits[1, 2, 3] = 0.2
    return logits.astype(np.float32)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def test_step_tf_case():
    """TestBeamStep.test_step (length penalty 0.6, no finished beams)."""
    logits = _tf_step_logits()
    log_probs = _log_softmax(np.ones([2, 3], np.float32))
    step = _beam_search_step(logits, log_probs, np.zeros([2, 3], bool), np.full([2, 3], 2, np.int32), 0, 0.6)
    np.testing.assert_array_equal(step.word_ids, [[3, 3, 2], [2, 2, 1]])
    np.testing.assert_array_equal(step.parent_ids, [[1, 0, 0], [2, 1, 0]])
    np.testing.assert_array_equal(step.lengths, [[3, 3, 3], [3, 3, 3]])
    np.testing.assert_array_equal(step.finished, np.zeros([2, 3], bool))
    lsm = _log_softmax(logits)
    expected = np.stack([log_probs[0][[1, 0, 0]], log_probs[1][[2, 1, 0]]])
    expected[0] += [lsm[0, 1, 3], lsm[0, 0, 3], lsm[0, 0, 2]]
    expected[1] += [lsm[1, 2, 2], lsm[1, 1, 2], lsm[1, 0, 1]]
    np.testing.assert_allclose(step.log_probs, expected, rtol=1e-6)


def test_step_with_eos_tf_case():
    """TestBeamStep.test_step_with_eos: finished beams extend with EOS at
    no cost and keep their length."""
    logits = _tf_step_logits(big_for_beam_1_2=5.7, beam_1_2=1.0)
    log_probs = _log_softmax(np.ones([2, 3], np.float32))
    finished = np.array([[False, True, False], [False, False, True]])
    lengths = np.array([[2, 1, 2], [2, 2, 1]], np.int32)
    step = _beam_search_step(logits, log_probs, finished, lengths, 0, 0.6)
    np.testing.assert_array_equal(step.parent_ids, [[1, 0, 0], [1, 2, 0]])
    np.testing.assert_array_equal(step.word_ids, [[0, 3, 2], [2, 0, 1]])
    np.testing.assert_array_equal(step.lengths, [[1, 3, 3], [3, 1, 3]])
    np.testing.assert_array_equal(step.finished, [[True, False, False], [False, True, False]])
    lsm = _log_softmax(logits)
    expected = np.stack([log_probs[0][[1, 0, 0]], log_probs[1][[1, 2, 0]]])
    expected[0][1] += lsm[0, 0, 3]
    expected[0][2] += lsm[0, 0, 2]
    expected[1][0] += lsm[1, 1, 2]
    expected[1][2] += lsm[1, 0, 1]
    np.testing.assert_allclose(step.log_probs, expected, rtol=1e-6)


def test_large_beam_step_tf_case():
    """TestLargeBeamStep: beam 8 > vocab 5 with only beam 0 live; the three
    slots left over get -inf and length 0."""
    batch, beam, vocab = 2, 8, 5
    log_probs = np.full([batch, beam], -np.inf, np.float32)
    log_probs[:, 0] = 0
    finished = np.ones([batch, beam], bool)
    finished[:, 0] = False
    lengths = np.zeros([batch, beam], np.int32)
    lengths[:, 0] = 2
    logits = np.full([batch, beam, vocab], 0.0001)
    logits[:, :3] = _tf_step_logits()
    step = _beam_search_step(logits.astype(np.float32), log_probs, finished, lengths, 0, 0.6)
    assert step.word_ids[0, 0] == 3 and step.word_ids[0, 1] == 2 and step.word_ids[1, 0] == 1
    assert (step.log_probs[:, -3:] == -np.inf).all()
    assert (step.log_probs[:, :-3] > -np.inf).all()
    assert (step.lengths[:, :-3] > 0).all()
    np.testing.assert_array_equal(step.lengths[:, -3:], 0)


def test_step_ties_keep_lower_flat_index_first():
    """Equal scores: lower beam, then lower token first (TF's top_k)."""
    logits = np.zeros([1, 2, 3], np.float64)
    step = _beam_search_step(logits, np.zeros([1, 2]), np.zeros([1, 2], bool), np.zeros([1, 2], np.int32), 2, 0.0)
    np.testing.assert_array_equal(step.parent_ids, [[0, 0]])
    np.testing.assert_array_equal(step.word_ids, [[0, 1]])


# -- the whole decode ---------------------------------------------------------------


class ScriptCell(RNNCell):
    """A Python cell whose output (the logits) is scripted by batch row and
    step: state ``[N, 2]`` = (batch row, step); output ``script[row, step]``."""

    def __init__(self, script: np.ndarray) -> None:
        super().__init__(2, dtype=script.dtype)
        self.script = script
        self._input_size = script.shape[2]

    @property
    def output_size(self) -> int:
        return int(self.script.shape[2])

    def __call__(self, inputs: Any, state: Any) -> Any:
        state = np.asarray(state)
        row = state[:, 0].astype(int)
        step = np.minimum(state[:, 1].astype(int), self.script.shape[1] - 1)
        return self.script[row, step], state + np.array([0, 1], dtype=state.dtype)


def script_decoder(eos_steps, vocab=5, beam=3, end=4, dtype=np.float64, **kw):
    """Row b's best hypothesis ends at step eos_steps[b]: EOS is near
    impossible before that step and near certain from it on."""
    batch, steps = len(eos_steps), max(eos_steps) + 2
    rng = np.random.default_rng(1)
    script = rng.normal(size=(batch, steps, vocab)).astype(dtype)
    for b, e in enumerate(eos_steps):
        script[b, :, end] = -30.0
        script[b, e:, end] = 30.0
    cell = ScriptCell(script)
    state = np.stack([np.arange(batch), np.zeros(batch)], axis=1).astype(dtype)
    dec = BeamSearchDecoder(cell, np.eye(vocab, dtype=dtype), np.zeros(batch, int), end, state, beam, **kw)
    return dec, cell, state


def test_ragged_eos_lengths_include_the_eos_and_ids_after_are_end_token():
    """Rows whose hypotheses end at steps 0, 2 and 4: at step e_b every live
    beam takes EOS, so all have length e_b + 1 (the EOS counted), except in
    row 0 where only beam 0 was live at step 0 and the other two slots took
    another token there, then EOS: length 2. T = 5 (the steps run, until
    every beam is finished); ids from a hypothesis' EOS on are EOS; the
    third value equals final_state.lengths (tensorflow#13536)."""
    dec, cell, state = script_decoder([0, 2, 4])
    out, final, lengths = decode(dec, "python", maximum_iterations=10)
    assert isinstance(out, FinalBeamSearchDecoderOutput)
    assert isinstance(out.beam_search_decoder_output, BeamSearchDecoderOutput)
    assert isinstance(final, BeamSearchDecoderState)
    assert out.predicted_ids.shape == (3, 5, 3)
    np.testing.assert_array_equal(final.lengths, [[1, 2, 2], [3, 3, 3], [5, 5, 5]])
    np.testing.assert_array_equal(lengths, final.lengths)
    assert final.finished.all()
    for b, k in itertools.product(range(3), range(3)):
        n = final.lengths[b, k]
        assert (out.predicted_ids[b, n - 1 :, k] == 4).all()
        assert (out.predicted_ids[b, : n - 1, k] != 4).all()
    assert final.accumulated_attention_probs == ()
    assert lengths.dtype == np.int32 and out.predicted_ids.dtype == np.int32


def test_scores_non_increasing_and_beams_start_from_beam_0():
    """At step 0 every kept hypothesis extends beam 0 (only beam 0 is live);
    at every step the scores are best first."""
    dec, cell, state = script_decoder([1, 3], beam=3, length_penalty_weight=0.7)
    out, final, _ = decode(dec, "python", maximum_iterations=10)
    raw = out.beam_search_decoder_output
    np.testing.assert_array_equal(raw.parent_ids[:, 0, :], 0)
    assert best_first(raw.scores)


def test_time_major_and_maximum_iterations_zero():
    """output_time_major transposes to [T, B, beam]; maximum_iterations=0
    runs no step (T = 0) and the state is the initial one."""
    dec, cell, state = script_decoder([2, 3])
    out_b, _, _ = decode(dec, "python", maximum_iterations=10)
    out_t, _, _ = decode(dec, "python", maximum_iterations=10, output_time_major=True)
    np.testing.assert_array_equal(out_t.predicted_ids, out_b.predicted_ids.transpose(1, 0, 2))
    np.testing.assert_array_equal(
        out_t.beam_search_decoder_output.scores, out_b.beam_search_decoder_output.scores.transpose(1, 0, 2)
    )
    out0, final0, lengths0 = decode(dec, "python", maximum_iterations=0)
    assert out0.predicted_ids.shape == (2, 0, 3)
    assert out0.beam_search_decoder_output.scores.shape == (2, 0, 3)
    np.testing.assert_array_equal(lengths0, 0)
    np.testing.assert_array_equal(final0.finished, [[False, True, True]] * 2)
    np.testing.assert_array_equal(final0.cell_state, np.repeat(state, 3, axis=0).reshape(2, 3, 2))


def test_maximum_iterations_none_is_capped_with_a_warning():
    """A decode that never emits EOS stops at DEFAULT_MAXIMUM_ITERATIONS
    with a RuntimeWarning naming maximum_iterations (never hangs)."""
    from rnnrs.seq2seq.beam_search import DEFAULT_MAXIMUM_ITERATIONS

    script = np.zeros((1, 1, 3))
    script[0, 0, 2] = -1e4
    cell = ScriptCell(script)
    dec = BeamSearchDecoder(cell, np.eye(3), [0], 2, np.zeros((1, 2)), 2)
    with pytest.warns(RuntimeWarning, match="maximum_iterations"):
        out, final, lengths = decode(dec, "python")
    assert out.predicted_ids.shape == (1, DEFAULT_MAXIMUM_ITERATIONS, 2)
    np.testing.assert_array_equal(lengths, DEFAULT_MAXIMUM_ITERATIONS)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell_kind", ["lstm", "multi"])
def test_matches_the_reference(path, dtype, cell_kind):
    """LSTM and MultiRNNCell stacks, float32 and float64, with a length
    penalty: step ids, parents, scores, lengths, log probs and final cell
    states equal the per-hypothesis reference."""
    cell, emb, dense, start, state = lstm_setup(dtype=dtype, cell_kind=cell_kind, beam=3)
    dec = BeamSearchDecoder(cell, emb, start, 2, state, 3, output_layer=dense, length_penalty_weight=0.8)
    check_against_reference(dec, cell, emb, dense, start, 2, state, 3, 6, 0.8, path)


@pytest.mark.parametrize("path", PATHS)
def test_tiled_initial_state_gives_the_same_decode(path):
    """A state already tiled to B * beam rows (tile_batch's t0, t0, t1, t1)
    is used as is: the same decode as the B-row state."""
    cell, emb, dense, start, state = lstm_setup(dtype=np.float64)
    tiled = map_state(lambda _c, a: np.repeat(a, 3, axis=0), state)
    a = decode(BeamSearchDecoder(cell, emb, start, 1, state, 3, output_layer=dense), path, maximum_iterations=5)
    b = decode(BeamSearchDecoder(cell, emb, start, 1, tiled, 3, output_layer=dense), path, maximum_iterations=5)
    np.testing.assert_array_equal(a[0].predicted_ids, b[0].predicted_ids)
    np.testing.assert_array_equal(a[1].log_probs, b[1].log_probs)


@pytest.mark.parametrize("path", PATHS)
def test_callable_embedding_equals_the_matrix(path):
    """A callable embedding (always the NumPy loop) decodes like its matrix."""
    cell, emb, dense, start, state = lstm_setup(dtype=np.float64)
    a = decode(BeamSearchDecoder(cell, emb, start, 1, state, 3, output_layer=dense), path, maximum_iterations=5)
    b = decode(
        BeamSearchDecoder(cell, lambda ids: emb[ids], start, 1, state, 3, output_layer=dense),
        path,
        maximum_iterations=5,
    )
    np.testing.assert_array_equal(a[0].predicted_ids, b[0].predicted_ids)
    np.testing.assert_allclose(a[1].log_probs, b[1].log_probs, rtol=1e-12)


def greedy_reference(cell, emb, dense, start, end, state, max_iter):
    """Greedy decoding (argmax feedback) in NumPy: ids [B, T], lengths."""
    batch = len(start)
    ids, finished = [], np.zeros(batch, bool)
    lengths = np.zeros(batch, np.int32)
    inputs = emb[start]
    while len(ids) < max_iter and not finished.all():
        out, state = cell(inputs, state)
        logits = out @ dense._weights["kernel"] + dense._weights["bias"]
        sample = logits.argmax(axis=1)
        lengths = np.where(~finished, len(ids) + 1, lengths)
        finished = finished | (sample == end)
        ids.append(sample)
        inputs = emb[sample]
    return np.stack(ids, axis=1), lengths


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_width_1_is_greedy_decoding(path, seed):
    """beam_width=1 (no length penalty) decodes exactly as greedy argmax:
    same ids up to each row's EOS, same lengths, same T."""
    cell, emb, dense, start, state = lstm_setup(dtype=np.float64, batch=4, seed=seed)
    dense.build(cell.output_size, np.float64)
    dense._weights["bias"] = np.linspace(-1, 1.5, 6)  # makes EOS (id 5) likely at various steps
    greedy_ids, greedy_lengths = greedy_reference(cell, emb, dense, start, 5, state, 8)
    out, final, lengths = decode(
        BeamSearchDecoder(cell, emb, start, 5, state, 1, output_layer=dense), path, maximum_iterations=8
    )
    assert out.predicted_ids.shape[1] == greedy_ids.shape[1]
    np.testing.assert_array_equal(lengths[:, 0], greedy_lengths)
    for b in range(4):
        n = greedy_lengths[b]
        np.testing.assert_array_equal(out.predicted_ids[b, :n, 0], greedy_ids[b, :n])
        assert (out.predicted_ids[b, n:, 0] == 5).all()


@pytest.mark.parametrize("path", PATHS)
def test_impute_finished_keeps_ids_and_freezes_finished_states(path):
    """impute_finished=True (which TF 1.15 cannot run with beam search):
    the same ids, scores and lengths as False, and a finished hypothesis
    keeps its cell state from its EOS step (checked against the reference
    with frozen states)."""
    cell, emb, dense, start, state = lstm_setup(dtype=np.float64, batch=3, seed=3)
    dense.build(cell.output_size, np.float64)
    dense._weights["bias"] = np.linspace(-1, 1.5, 6)
    dec = BeamSearchDecoder(cell, emb, start, 5, state, 3, output_layer=dense)
    a = check_against_reference(dec, cell, emb, dense, start, 5, state, 3, 7, 0.0, path, impute=True)
    b = decode(dec, path, maximum_iterations=7)
    np.testing.assert_array_equal(a[0].predicted_ids, b[0].predicted_ids)
    np.testing.assert_array_equal(a[2], b[2])
    assert a[1].finished.any()


@settings(max_examples=max(5, settings.default.max_examples // 2))
@given(
    data=st.data(),
    cell_kind=st.sampled_from(["basic", "gru", "lstm", "multi"]),
    dtype=st.sampled_from([np.float32, np.float64]),
    batch=st.integers(1, 3),
    vocab=st.integers(2, 5),
    beam=st.integers(1, 4),
    max_iter=st.integers(0, 5),
    lpw=st.sampled_from([0.0, 0.6, 1.3]),
    path=st.sampled_from(PATHS),
)
def test_property_matches_the_reference(data, cell_kind, dtype, batch, vocab, beam, max_iter, lpw, path):
    """Random cells, vocabularies, beams, EOS biases and lengths: the decode
    equals the per-hypothesis reference; scores are best first at every step."""
    seed = data.draw(st.integers(0, 2**16))
    end = data.draw(st.integers(0, vocab - 1))
    cell, emb, dense, start, state = lstm_setup(
        dtype=dtype, batch=batch, vocab=vocab, beam=beam, seed=seed, cell_kind=cell_kind
    )
    dense.build(cell.output_size, dtype)
    bias = np.zeros(vocab, dtype)
    bias[end] = data.draw(st.sampled_from([-2.0, 0.0, 1.0, 3.0]))
    dense._weights["bias"] = bias
    dec = BeamSearchDecoder(cell, emb, start, end, state, beam, output_layer=dense, length_penalty_weight=lpw)
    out, final, lengths = check_against_reference(dec, cell, emb, dense, start, end, state, beam, max_iter, lpw, path)
    assert best_first(out.beam_search_decoder_output.scores)
    steps = out.predicted_ids.shape[1]
    real = np.isfinite(final.log_probs)
    assert ((lengths == steps) | final.finished)[real].all()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_wide_beam_finds_the_best_sequence_by_enumeration(path, seed):
    """With beam_width >= V ** T nothing is pruned: beam 0 is the most
    probable of all sequences (ended by EOS, or of length T), enumerated."""
    vocab, max_iter, end = 3, 3, 1
    cell, emb, dense, start, state = lstm_setup(dtype=np.float64, batch=1, vocab=vocab, seed=seed)
    dense.build(cell.output_size, np.float64)
    dense._weights["bias"] = np.array([0.0, 0.7, 0.0])
    dec = BeamSearchDecoder(cell, emb, start, end, state, vocab**max_iter, output_layer=dense)
    out, final, lengths = decode(dec, path, maximum_iterations=max_iter)
    best, best_seq = -np.inf, None
    for n in range(1, max_iter + 1):
        for seq in itertools.product(range(vocab), repeat=n):
            if end in seq[:-1] or (n < max_iter and seq[-1] != end):
                continue
            s, inp, total = state, int(start[0]), 0.0
            for tok in seq:
                o, s = cell(emb[[inp]], s)
                total += _log_softmax(o @ dense._weights["kernel"] + dense._weights["bias"])[0, tok]
                inp = tok
            if total > best:
                best, best_seq = total, seq
    assert math.isclose(final.log_probs[0, 0], best, rel_tol=1e-9)
    assert lengths[0, 0] == len(best_seq)
    assert tuple(out.predicted_ids[0, : len(best_seq), 0]) == best_seq


# -- argument checks ----------------------------------------------------------------


def _args(**over):
    cell, emb, dense, start, state = lstm_setup(dtype=np.float32, batch=2, vocab=6, emb_size=4)
    args = dict(
        cell=cell, embedding=emb, start_tokens=start, end_token=1, initial_state=state, beam_width=3, output_layer=dense
    )
    args.update(over)
    return args


@pytest.mark.parametrize(
    "over, error, pattern",
    [
        (dict(beam_width=0), ValueError, "^beam_width: expected an integer >= 1"),
        (dict(beam_width=2.0), TypeError, "^beam_width:"),
        (dict(beam_width=True), TypeError, "^beam_width:"),
        (dict(start_tokens=[0, 6]), ValueError, "^start_tokens:"),
        (dict(start_tokens=[0, -1]), ValueError, "^start_tokens:"),
        (dict(end_token=6), ValueError, "^end_token:"),
        (dict(end_token=1.0), TypeError, "^end_token:"),
        (dict(embedding=np.zeros((6, 5), np.float32)), ValueError, "^embedding: expected vectors of width 4"),
        (dict(output_layer=rnnrs.layers.Dense(7)), ValueError, "^output_layer: expected at most 6 outputs"),
        (dict(output_layer="dense"), TypeError, "^output_layer:"),
        (dict(cell="lstm"), TypeError, "^cell:"),
        (dict(coverage_penalty_weight=0.2), ValueError, "^coverage_penalty_weight: expected 0.0"),
        (dict(length_penalty_weight=float("nan")), ValueError, "^length_penalty_weight:"),
        (dict(reorder_tensor_arrays=1), TypeError, "^reorder_tensor_arrays:"),
        (dict(initial_state=np.zeros((5, 5), np.float32)), TypeError, "^initial_state"),
    ],
)
def test_refuses_bad_arguments(over, error, pattern):
    with pytest.raises(error, match=pattern):
        BeamSearchDecoder(**_args(**over))


def test_refuses_a_state_of_the_wrong_row_count():
    cell, *_ = lstm_setup()
    state = cell.zero_state(5)
    with pytest.raises(ValueError, match=r"^initial_state.*already tiled with tile_batch has 6"):
        BeamSearchDecoder(**_args(initial_state=state))


@pytest.mark.parametrize(
    "kw, error, pattern",
    [
        (dict(maximum_iterations=-1), ValueError, "^maximum_iterations: expected an integer >= 0"),
        (dict(maximum_iterations=2.5), TypeError, "^maximum_iterations:"),
        (dict(maximum_iterations=3, impute_finished=1), TypeError, "^impute_finished:"),
        (dict(maximum_iterations=3, output_time_major="no"), TypeError, "^output_time_major:"),
    ],
)
def test_decode_refuses_bad_arguments(kw, error, pattern):
    dec = BeamSearchDecoder(**_args())
    with pytest.raises(error, match=pattern):
        decode(dec, "auto", **kw)


def test_return_backprop_is_refused():
    """Beam search is for inference: return_backprop=True is a ValueError."""
    dec = BeamSearchDecoder(**_args())
    with pytest.raises(ValueError, match="^return_backprop: expected False"):
        dec._decode(3, False, False, False, True)


def test_the_rust_loop_runs_from_untiled_and_tile_batch_states(monkeypatch):
    """dynamic_decode takes the Rust beam loop (seq2seq._fast.beam, given the
    state for the B batch rows) whether the initial state comes for B rows or
    tiled by tile_batch; a tiled state whose beams differ runs the NumPy loop;
    all three give the result of the NumPy loop."""
    from rnnrs.seq2seq import _fast

    cell = rnnrs.LSTMCell(5, seed=0)
    emb = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    rows = rnnrs.LSTMStateTuple(*(np.random.default_rng(s).normal(size=(2, 5)).astype(np.float32) for s in (1, 2)))
    real, calls = _fast.beam, []

    def counting(*args, **kw):
        result = real(*args, **kw)
        if result is not None:  # the Rust loop ran
            calls.append(args[5])
        return result

    monkeypatch.setattr(_fast, "beam", counting)

    def run(state, embedding=emb):
        d = seq2seq.BeamSearchDecoder(cell, embedding, [0, 0], 1, state, 3, output_layer=rnnrs.Dense(6, seed=1))
        return seq2seq.dynamic_decode(d, maximum_iterations=5)

    untiled = run(rows)
    tiled = run(seq2seq.tile_batch(rows, 3))
    assert len(calls) == 2 and all(c.c.shape == (2, 5) for c in calls)
    python = run(rows, embedding=lambda ids: emb[ids])  # a callable embedding: the NumPy loop
    assert len(calls) == 2
    for other in (tiled, python):
        np.testing.assert_array_equal(other[0].predicted_ids, untiled[0].predicted_ids)
        np.testing.assert_allclose(other[1].log_probs, untiled[1].log_probs, rtol=1e-5, atol=1e-6)
    mixed = seq2seq.tile_batch(rows, 3)
    mixed = rnnrs.LSTMStateTuple(mixed.c.copy(), mixed.h)
    mixed.c[1] += 1.0  # beam 1 of row 0 differs
    run(mixed)
    assert len(calls) == 2


@given(
    st.integers(0, 5),
    st.integers(1, 40),
    st.integers(1, 45),
    st.integers(0, 2**32 - 1),
)
def test_top_k_is_a_stable_sort_of_the_best(rows, n, k, seed):
    """The beam step's top-k (argpartition, then a sort of the k best) equals a full stable sort: best
    first, ties in index order, -inf and NaN last, heavy ties included."""
    from rnnrs.seq2seq.beam_search import _top_k

    rng = np.random.default_rng(seed)
    scores = rng.integers(-3, 3, size=(rows, n)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.2] = -np.inf
    scores[rng.random(scores.shape) < 0.05] = np.nan
    want = np.argsort(-scores, axis=1, kind="stable")[:, : min(k, n)]
    np.testing.assert_array_equal(_top_k(scores, k), want)
