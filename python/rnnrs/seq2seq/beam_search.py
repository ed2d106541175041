"""Beam search decoding (TF 1.15's ``tf.contrib.seq2seq.BeamSearchDecoder``).

``BeamSearchDecoder`` keeps ``beam_width`` hypotheses per batch row and is
run by :func:`rnnrs.seq2seq.dynamic_decode`; ``gather_tree`` follows the
parent pointers back from the last step (TF's ``GatherTree`` kernel). The
whole loop runs in the Rust core when the cell, embedding and output layer
allow it (``seq2seq._fast.beam``); otherwise (Python cells, a callable
embedding, ``impute_finished=True``) it runs here, step by step, on NumPy
arrays, with the same results.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from .._state import map_state
from .._validate import bounded_int, finite_number, flag, numeric_array

__all__ = [
    "BeamSearchDecoder",
    "BeamSearchDecoderOutput",
    "BeamSearchDecoderState",
    "FinalBeamSearchDecoderOutput",
    "gather_tree",
]

_INT32 = np.iinfo(np.int32)


class BeamSearchDecoderOutput(NamedTuple):
    """What each beam search step emits, ``[B, T, beam_width]`` each
    (``[T, B, beam_width]`` when ``output_time_major``).

    ``scores``: the score each kept hypothesis was ranked by (its total log
    probability divided by the length penalty), in the cell's dtype;
    ``predicted_ids``: the token each kept hypothesis appended (int32);
    ``parent_ids``: the beam of the previous step it extends (int32)."""

    scores: np.ndarray
    predicted_ids: np.ndarray
    parent_ids: np.ndarray


class BeamSearchDecoderState(NamedTuple):
    """The beam search state after the last step.

    ``cell_state``: the cell's state structure with leaves
    ``[B, beam_width, ...]`` (TF's split layout); ``log_probs`` ``[B,
    beam_width]``: each hypothesis' total log probability; ``finished``
    ``[B, beam_width]`` bool; ``lengths`` ``[B, beam_width]`` int32, the EOS
    step included; ``accumulated_attention_probs``: ``()`` (it is used by the
    coverage penalty, which needs attention)."""

    cell_state: Any
    log_probs: np.ndarray
    finished: np.ndarray
    lengths: np.ndarray
    accumulated_attention_probs: Any


class FinalBeamSearchDecoderOutput(NamedTuple):
    """``predicted_ids`` ``[B, T, beam_width]`` int32 (``[T, B, beam_width]``
    when ``output_time_major``): the whole hypotheses, best first, ids past a
    hypothesis' end set to ``end_token`` (:func:`gather_tree` of the step
    outputs); ``beam_search_decoder_output``: the raw
    :class:`BeamSearchDecoderOutput` of every step."""

    predicted_ids: np.ndarray
    beam_search_decoder_output: BeamSearchDecoderOutput


# -- gather_tree ---------------------------------------------------------------


def _int_array(name: str, value: Any, what: str) -> np.ndarray:
    """``value`` as an int64 array of integers within int32's range (the
    dtype TF's kernel works in); bools and floats are refused."""
    raw = numeric_array(name, value, what)
    if raw.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer array, got dtype {raw.dtype}")
    if raw.size and (raw.min() < _INT32.min or raw.max() > _INT32.max):
        raise ValueError(f"{name}: expected values within int32's range, got {raw.min()}..{raw.max()}")
    return raw.astype(np.int64)


def _int_scalar(name: str, value: Any) -> int:
    """An integer scalar within int32's range (a 0-d integer array accepted)."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iu":
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer scalar, got {type(value).__name__} {value!r}")
    if not _INT32.min <= value <= _INT32.max:
        raise ValueError(f"{name}: expected an integer within int32's range, got {value}")
    return int(value)


def gather_tree(step_ids: Any, parent_ids: Any, max_sequence_lengths: Any, end_token: Any) -> np.ndarray:
    """The full hypotheses from the per-step ids and parent pointers of a beam
    search (TF 1.15's ``GatherTree`` kernel, on time-major arrays).

    Args:
        step_ids: ``[T, B, beam_width]`` integers, the token each beam
            appended at each step.
        parent_ids: ``[T, B, beam_width]`` integers, the beam of the previous
            step each beam extended.
        max_sequence_lengths: ``[B]`` integers >= 0; a value above ``T`` is
            read as ``T`` (as TF does).
        end_token: integer scalar.

    Returns ``[T, B, beam_width]`` int32: for batch row ``b`` with
    ``L = min(T, max_sequence_lengths[b])``, every beam is followed back from
    step ``L - 1`` through ``parent_ids``; steps ``>= L`` hold ``end_token``,
    and so does every step after the first ``end_token`` of a beam.

    Raises ``ValueError`` naming the argument for a wrong shape, a negative
    length or a parent id outside ``[0, beam_width)`` met while following a
    beam back (reported, as TF does, with its ``(batch, time, beam)``
    position; TF's kernel only catches parents ``> beam_width``, reading
    past the array for ``== beam_width``); ``TypeError`` for non-integer
    arrays.
    """
    steps = _int_array("step_ids", step_ids, "a 3-d array [max_time, batch_size, beam_width]")
    if steps.ndim != 3:
        raise ValueError(f"step_ids: expected a 3-d array [max_time, batch_size, beam_width], got shape {steps.shape}")
    parents = _int_array("parent_ids", parent_ids, "a 3-d array shaped like step_ids")
    if parents.shape != steps.shape:
        raise ValueError(f"parent_ids: expected shape {steps.shape} (that of step_ids), got {parents.shape}")
    max_time, batch, beam = steps.shape
    lengths = _int_array("max_sequence_lengths", max_sequence_lengths, "one length per batch row")
    if lengths.shape != (batch,):
        raise ValueError(
            f"max_sequence_lengths: expected shape ({batch},) (one length per batch row), got {lengths.shape}"
        )
    if lengths.size and lengths.min() < 0:
        bad = int(np.flatnonzero(lengths < 0)[0])
        raise ValueError(f"max_sequence_lengths: expected values >= 0, got {lengths[bad]} at index {bad}")
    end = _int_scalar("end_token", end_token)
    out = np.full(steps.shape, end, dtype=np.int32)
    if steps.size == 0:
        return out
    last = np.minimum(lengths, max_time) - 1  # [B]: the step each row starts from
    rows = np.arange(batch)[:, None]
    parent = np.zeros((batch, beam), dtype=np.int64)
    # The step at which a beam met a bad parent (-1: none yet) and that parent.
    bad_level = np.full((batch, beam), -1, dtype=np.int64)
    bad_parent = np.zeros((batch, beam), dtype=np.int64)
    for level in range(max_time - 1, -1, -1):
        start = last == level
        if start.any():
            out[level, start] = steps[level, start]
            parent[start] = parents[level, start]
        going = (last > level)[:, None] & (bad_level < 0)  # [B, beam]
        if not going.any():
            continue
        invalid = going & ((parent < 0) | (parent >= beam))
        if invalid.any():
            bad_level[invalid] = level
            bad_parent[invalid] = parent[invalid]
            going &= ~invalid
        safe = np.where(going, parent, 0)
        out[level] = np.where(going, steps[level][rows, safe], out[level])
        parent = np.where(going, parents[level][rows, safe], parent)
    if (bad_level >= 0).any():
        b, k = (int(i) for i in np.argwhere(bad_level >= 0)[0])
        raise ValueError(
            f"parent_ids: expected parent ids in [0, {beam}) on the path followed back, got {bad_parent[b, k]} "
            f"at (batch, time, beam) == ({b}, {bad_level[b, k]}, {k})"
        )
    # Everything after a beam's first end_token becomes end_token.
    is_end = out == end
    out[(np.cumsum(is_end, axis=0) - is_end) > 0] = end
    return out


# -- one step ------------------------------------------------------------------


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """``log_softmax`` on the last axis, in ``logits``' dtype."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _length_penalty(lengths: np.ndarray, weight: float, dtype: np.dtype[Any]) -> Any:
    """GNMT's length penalty ``((5 + L) / 6) ** weight`` (1 when ``weight`` is 0)."""
    if weight == 0.0:
        return dtype.type(1.0)
    five, six = dtype.type(5.0), dtype.type(6.0)
    penalty: np.ndarray = ((five + lengths.astype(dtype)) / six) ** dtype.type(weight)
    return penalty


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """The flat indices of the ``k`` largest entries of each row of ``[B, N]``
    ``scores``, best first; equal scores in index order (TF's ``top_k``)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :k]


class _Step(NamedTuple):
    """One beam search step's outputs and next beam state (without the cell state)."""

    scores: np.ndarray  # [B, beam]
    word_ids: np.ndarray  # [B, beam] int32
    parent_ids: np.ndarray  # [B, beam] int32
    log_probs: np.ndarray  # [B, beam]
    finished: np.ndarray  # [B, beam] bool
    lengths: np.ndarray  # [B, beam] int32


def _beam_search_step(
    logits: np.ndarray,
    log_probs: np.ndarray,
    finished: np.ndarray,
    lengths: np.ndarray,
    end_token: int,
    length_penalty_weight: float,
) -> _Step:
    """TF 1.15's ``_beam_search_step`` on ``[B, beam, V]`` logits and the
    ``[B, beam]`` state: log-softmax; a finished beam's only continuation is
    ``end_token`` at no cost (its other tokens get the dtype's lowest value);
    candidate scores are the total log probabilities divided by the length
    penalty of ``L`` = the beam's length + 1 for a non-EOS token of a live
    beam, + 0 otherwise; the best ``beam`` candidates of each row are kept
    (ties: lower beam, then lower token first); a kept hypothesis is finished
    when its parent was or it appended ``end_token``, and its length grows by
    one unless its parent was finished (so it counts the EOS)."""
    batch, beam, vocab = logits.shape
    dtype = logits.dtype
    step_log_probs = _log_softmax(logits)
    masked_row = np.full(vocab, np.finfo(dtype).min, dtype=dtype)
    masked_row[end_token] = 0
    step_log_probs = np.where(finished[:, :, None], masked_row, step_log_probs)
    total = log_probs[:, :, None] + step_log_probs  # [B, beam, V]

    not_eos = np.ones(vocab, dtype=np.int64)
    not_eos[end_token] = 0
    candidate_lengths = lengths[:, :, None] + (~finished)[:, :, None] * not_eos
    scores = total / _length_penalty(candidate_lengths, length_penalty_weight, dtype)

    flat_scores = scores.reshape(batch, beam * vocab)
    picked = _top_k(flat_scores, beam)  # [B, beam]
    rows = np.arange(batch)[:, None]
    word_ids = (picked % vocab).astype(np.int32)
    parent_ids = (picked // vocab).astype(np.int32)
    parent_finished = finished[rows, parent_ids]
    return _Step(
        scores=flat_scores[rows, picked],
        word_ids=word_ids,
        parent_ids=parent_ids,
        log_probs=total.reshape(batch, beam * vocab)[rows, picked],
        finished=parent_finished | (word_ids == end_token),
        lengths=(lengths[rows, parent_ids] + ~parent_finished).astype(np.int32),
    )
