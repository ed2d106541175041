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
from rnnrs._state import LSTMStateTuple, map_state
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
            got = map_state(lambda _c, a: a[b, k], final.cell_state)
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
