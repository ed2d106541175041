"""Beam search decoding (TF 1.15's ``tf.contrib.seq2seq.BeamSearchDecoder``).

``BeamSearchDecoder`` keeps ``beam_width`` hypotheses per batch row and is
run by :func:`rnnrs.seq2seq.dynamic_decode`; ``gather_tree`` follows the
parent pointers back from the last step (TF's ``GatherTree`` kernel). The
whole loop runs in the Rust core when the cell, embedding and output layer
allow it (``seq2seq._fast.beam``: core cells, ``MultiRNNCell`` stacks of
them, and an ``AttentionWrapper`` of a core cell without alignment history);
otherwise (other Python cells, a callable embedding,
``impute_finished=True``, a coverage penalty) it runs here, step by step,
on NumPy arrays, with the same results.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple, Optional

import numpy as np

from .._state import map_state
from .._validate import bounded_int, finite_number, flag, numeric_array
from ..cells import RNNCell, build_for_inputs
from . import _fast
from ._common import (
    DEFAULT_MAXIMUM_ITERATIONS,
    as_embedding,
    check_end_token,
    check_output_layer,
    check_start_tokens,
    maximum_iterations_arg,
    project,
    warn_capped,
)
from .attention import AttentionWrapper

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
    step included; ``accumulated_attention_probs``: with a coverage penalty,
    ``[B, beam_width, Tm]``, each hypothesis' sum of the attention
    alignments (from the initial state's) over the steps it was live; ``()``
    without one."""

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
    number = int(value)
    if not _INT32.min <= number <= _INT32.max:
        raise ValueError(f"{name}: expected an integer within int32's range, got {number}")
    return number


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
    shifted: np.ndarray = logits - logits.max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        out: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out


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
    neg = -scores
    rows, n = neg.shape
    if k >= n or rows == 0:
        full: np.ndarray = np.argsort(neg, axis=1, kind="stable")
        return full[:, :k]
    # The k-th best value of each row (argpartition: linear time), then every entry at least as good, in
    # index order: exactly k of them unless there are ties at the k-th value (or NaNs), which such rows
    # settle with a full stable sort.
    part = np.argpartition(neg, k - 1, axis=1)[:, :k]
    threshold = np.take_along_axis(neg, part, axis=1).max(axis=1, keepdims=True)
    chosen = neg <= threshold
    counts = chosen.sum(axis=1)
    simple = counts == k
    out = np.empty((rows, k), dtype=np.intp)
    if simple.any():
        cols = np.nonzero(chosen[simple])[1].reshape(-1, k)  # each row's k indices, increasing
        order = np.argsort(np.take_along_axis(neg[simple], cols, axis=1), axis=1, kind="stable")
        out[simple] = np.take_along_axis(cols, order, axis=1)
    if not simple.all():
        out[~simple] = np.argsort(neg[~simple], axis=1, kind="stable")[:, :k]
    return out


def _coverage_penalty(accumulated: np.ndarray, finished: np.ndarray, weight: float) -> np.ndarray:
    """TF 1.15's weighted coverage penalty ``[B, beam, 1]`` of ``[B, beam,
    Tm]`` accumulated attention probabilities: ``weight * sum_j log(min(a_j,
    1))`` with entries equal to 0 (positions never attended, such as those
    past a memory length) read as 1, and 0 for beams not ``finished``."""
    dtype = accumulated.dtype
    one = dtype.type(1.0)
    probs = np.where(accumulated == 0, one, accumulated)
    penalty: np.ndarray = np.log(np.minimum(probs, one)).sum(axis=2)
    penalty = penalty * finished.astype(dtype) * dtype.type(weight)
    return penalty[:, :, None]


class _Step(NamedTuple):
    """One beam search step's outputs and next beam state (without the cell state)."""

    scores: np.ndarray  # [B, beam]
    word_ids: np.ndarray  # [B, beam] int32
    parent_ids: np.ndarray  # [B, beam] int32
    log_probs: np.ndarray  # [B, beam]
    finished: np.ndarray  # [B, beam] bool
    lengths: np.ndarray  # [B, beam] int32
    accumulated: Any = ()  # [B, beam, Tm] with a coverage penalty, else ()


def _beam_search_step(
    logits: np.ndarray,
    log_probs: np.ndarray,
    finished: np.ndarray,
    lengths: np.ndarray,
    end_token: int,
    length_penalty_weight: float,
    coverage_penalty_weight: float = 0.0,
    accumulated: Any = (),
    alignments: Any = None,
) -> _Step:
    """TF 1.15's ``_beam_search_step`` on ``[B, beam, V]`` logits and the
    ``[B, beam]`` state: log-softmax; a finished beam's only continuation is
    ``end_token`` at no cost (its other tokens get the dtype's lowest value);
    candidate scores are the total log probabilities divided by the length
    penalty of ``L`` = the beam's length + 1 for a non-EOS token of a live
    beam, + 0 otherwise; the best ``beam`` candidates of each row are kept
    (ties: lower beam, then lower token first); a kept hypothesis is finished
    when its parent was or it appended ``end_token``, and its length grows by
    one unless its parent was finished (so it counts the EOS).

    With a nonzero ``coverage_penalty_weight`` (TF's ``_get_scores``):
    ``alignments`` ``[B, beam, Tm]``, the step's new alignments, zeroed for
    the finished beams, are added to ``accumulated`` ``[B, beam, Tm]``; each
    finished beam's candidates get :func:`_coverage_penalty` of the sum added
    to their scores; the sums are gathered by parent into the next state."""
    batch, beam, vocab = logits.shape
    dtype = logits.dtype
    step_log_probs = _log_softmax(logits)
    masked_row = np.full(vocab, np.finfo(dtype).min, dtype=dtype)
    masked_row[end_token] = 0
    step_log_probs = np.where(finished[:, :, None], masked_row, step_log_probs)
    not_eos = np.ones(vocab, dtype=np.int64)
    not_eos[end_token] = 0
    candidate_lengths = lengths[:, :, None] + (~finished)[:, :, None] * not_eos
    # A filler beam's log probability (the dtype's lowest value, or -inf) plus
    # the lowest value again overflows to -inf, as in TF.
    with np.errstate(over="ignore"):
        total = log_probs[:, :, None] + step_log_probs  # [B, beam, V]
        scores = total / _length_penalty(candidate_lengths, length_penalty_weight, dtype)
    if coverage_penalty_weight != 0.0:
        accumulated = accumulated + alignments * (~finished).astype(dtype)[:, :, None]
        with np.errstate(over="ignore"):
            scores = scores + _coverage_penalty(accumulated, finished, coverage_penalty_weight)

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
        accumulated=accumulated[rows, parent_ids] if coverage_penalty_weight != 0.0 else (),
    )


# -- the decoder ---------------------------------------------------------------


def _tile(state: Any, multiplier: int) -> Any:
    """Each row of every array of ``state`` repeated ``multiplier`` times in
    place (``t0, t0, t1, t1``: ``tile_batch``'s layout)."""
    return map_state(lambda _is_c, a: np.repeat(a, multiplier, axis=0), state)


def _keep_rows(keep: np.ndarray, old: Any, new: Any) -> Any:
    """``new`` with the rows where ``keep`` (``[N, 1]``) is True taken from ``old``."""
    return map_state(lambda _is_c, a, b: np.where(keep, a, b), old, new)


def _take_rows(state: Any, rows: np.ndarray) -> Any:
    """Rows ``rows`` of every array of ``state``."""
    return map_state(lambda _is_c, a: a[rows], state)


class BeamSearchDecoder:
    """Beam search decoding (TF 1.15's ``tf.contrib.seq2seq.BeamSearchDecoder``),
    run by :func:`rnnrs.seq2seq.dynamic_decode`.

    Args:
        cell: an ``rnnrs`` cell (core cells, wrappers, ``MultiRNNCell``).
        embedding: a ``[V, E]`` array, an ``rnnrs.Embedding`` layer, or a
            callable from ids ``[N]`` int32 to vectors ``[N, E]``; ``E`` must
            be the cell's input size.
        start_tokens: ``[B]`` integer ids (in the vocabulary; for a callable
            embedding, below the output size).
        end_token: the integer EOS id (in the vocabulary and below the
            output size).
        initial_state: the cell's state for the ``B`` batch rows; rnnrs
            repeats each row ``beam_width`` times itself. A state already
            tiled to ``B * beam_width`` rows (what TF code passes after
            ``tile_batch``, rows ``b * beam_width + k``) is recognised by its
            row count and used as is (the two coincide for
            ``beam_width == 1``). None: the cell's zero state.
        beam_width: an integer >= 1.
        output_layer: None or an ``rnnrs.Dense`` applied to the cell output
            to give the logits (its output size must not exceed the
            embedding's vocabulary, since predicted ids are fed back).
        length_penalty_weight: GNMT's length penalty weight (0: none).
        coverage_penalty_weight: GNMT's coverage penalty weight (0: none); a
            nonzero weight needs ``cell`` to be an ``AttentionWrapper``.
        reorder_tensor_arrays: True or False; no effect: an
            ``AttentionWrapperState``'s ``alignment_history`` (TF's one
            TensorArray in a beam state) is gathered by parent at every step
            like the rest of the state, so it always comes out reordered.

    Semantics (TF 1.15's, by step): only beam 0 is live at the first step
    (the others start finished with log probability ``-inf``); logits are
    log-softmaxed; a finished beam's only continuation is ``end_token`` at no
    cost; every candidate's total log probability is divided by ``((5 + L) /
    6) ** length_penalty_weight`` (``L`` = the beam's length + 1 for a
    non-EOS token of a live beam, + 0 for ``end_token`` or a finished beam)
    before the top ``beam_width`` are kept (equal scores: lower beam, then
    lower token first); the kept hypotheses' cell states are gathered from
    their parents; lengths count the EOS step. The decode stops when every
    beam is finished or after ``maximum_iterations`` steps (None: capped at
    ``DEFAULT_MAXIMUM_ITERATIONS`` = 1000 with a ``RuntimeWarning`` when
    hypotheses are still unfinished there).

    ``dynamic_decode`` returns ``(FinalBeamSearchDecoderOutput,
    BeamSearchDecoderState, lengths)``: ``predicted_ids`` ``[B, T,
    beam_width]`` best first (:func:`gather_tree` with each row's longest
    final length; ids past a hypothesis' end are ``end_token``), the raw
    step outputs, the final state (cell state leaves ``[B, beam_width,
    ...]``, as TF splits them) and ``lengths`` = ``final_state.lengths``
    ``[B, beam_width]`` int32 (TF's third value could be wrong for beams,
    tensorflow#13536). ``output_time_major=True`` gives ``[T, B,
    beam_width]`` outputs.

    Coverage penalty (TF 1.15's, with ``coverage_penalty_weight`` ``w !=
    0``): the accumulated attention probabilities start from the initial
    state's alignments (zeros in a zero state); each step adds the
    wrapper's new alignments of the beams not finished before it, and the
    candidates of every beam finished before the step get ``w * sum_j
    log(min(acc_j, 1))`` added to their scores (entries ``acc_j == 0``, such
    as memory positions past a row's length, count as 1); as in TF, live
    beams' scores are not penalised. The sums are gathered by parent like the
    cell state and returned in ``final_state.accumulated_attention_probs``.
    Such a decode runs in the NumPy loop.

    ``impute_finished``: TF 1.15 cannot run a BeamSearchDecoder with
    ``impute_finished=True`` (its ``dynamic_decode`` fails building the
    graph, tensorflow#11598; the decoder tracks its own finished beams).
    rnnrs accepts it and applies it per hypothesis: ids, scores, parents and
    lengths are the same as with False (outputs are never zeroed: that would
    break the parent pointers), and a finished hypothesis keeps the cell
    state it had at its EOS step instead of running the cell on further
    EOS inputs (with False, as in TF, the final cell state of a finished
    beam has kept evolving). ``training`` has no effect; ``return_backprop
    =True`` is a ``ValueError`` (beam search is for inference).
    """

    def __init__(
        self,
        cell: Any,
        embedding: Any,
        start_tokens: Any,
        end_token: Any,
        initial_state: Any,
        beam_width: Any,
        output_layer: Any = None,
        length_penalty_weight: Any = 0.0,
        coverage_penalty_weight: Any = 0.0,
        reorder_tensor_arrays: Any = True,
    ) -> None:
        if not isinstance(cell, RNNCell):
            raise TypeError(f"cell: expected an rnnrs cell, got {type(cell).__name__}")
        self._cell = cell
        self._beam_width = bounded_int("beam_width", beam_width, 1)
        self._output_layer = check_output_layer(output_layer, cell)
        out_size = cell.output_size if self._output_layer is None else self._output_layer.units
        self._embedding = as_embedding("embedding", embedding, cell.dtype, cell.input_size)
        vocab = self._embedding.vocab
        if vocab is not None and out_size > vocab:
            raise ValueError(
                f"output_layer: expected at most {vocab} outputs (the embedding's vocabulary size, as predicted "
                f"ids are fed back), got {out_size}"
                + (" (the cell's output size; add an output layer)" if self._output_layer is None else "")
            )
        if vocab is None:
            bound, what = out_size, "the output size"
        else:
            bound, what = vocab, "the vocabulary size"
        self._start_tokens = check_start_tokens("start_tokens", start_tokens, None, bound, what)
        self._end_token = check_end_token("end_token", end_token, bound, what)
        if self._end_token >= out_size:
            check_end_token("end_token", end_token, out_size, "the output size")
        self._length_penalty_weight = finite_number("length_penalty_weight", length_penalty_weight)
        coverage = finite_number("coverage_penalty_weight", coverage_penalty_weight)
        if coverage != 0.0 and not isinstance(cell, AttentionWrapper):
            raise ValueError(
                "coverage_penalty_weight: expected 0.0 unless the cell is an AttentionWrapper (the coverage penalty "
                f"accumulates its alignments), got {coverage} with a {type(cell).__name__}"
            )
        self._coverage_penalty_weight = coverage
        self._reorder_tensor_arrays = flag("reorder_tensor_arrays", reorder_tensor_arrays)
        self._initial_rows, self._initial_state = self._states(initial_state)

    # -- properties ---------------------------------------------------------
    @property
    def cell(self) -> RNNCell:
        """The decoder's cell."""
        return self._cell

    @property
    def batch_size(self) -> int:
        """``B``, the number of batch rows (``len(start_tokens)``)."""
        return int(self._start_tokens.shape[0])

    @property
    def beam_width(self) -> int:
        """The number of hypotheses kept per batch row."""
        return self._beam_width

    @property
    def tracks_own_finished(self) -> bool:
        """True: beams are reordered at every step, so the decoder (not
        ``dynamic_decode``) keeps track of which are finished."""
        return True

    def _states(self, initial_state: Any) -> tuple[Any, Any]:
        """The validated initial state for the ``B`` batch rows (None when it
        was given already tiled and its beams differ) and for the ``B *
        beam_width`` hypotheses."""
        batch, beam = self.batch_size, self._beam_width
        if initial_state is None:
            rows = self._cell.zero_state(batch)
            return rows, _tile(rows, beam)
        try:
            rows = self._cell._check_state("initial_state", initial_state, batch)
            return rows, _tile(rows, beam)
        except ValueError as e:
            if beam == 1:
                raise
            try:
                tiled = self._cell._check_state("initial_state", initial_state, batch * beam)
            except ValueError:
                raise ValueError(
                    f"{e} (a state for the {batch} batch rows; one already tiled with tile_batch has {batch * beam})"
                ) from None
        # Tiled by tile_batch, every beam of a row holds the same state: the
        # Rust loop then starts from one row per batch row.
        firsts = map_state(lambda _is_c, a: a[::beam], tiled)
        same: list[bool] = []
        map_state(lambda _is_c, f, w: same.append(np.array_equal(np.repeat(f, beam, axis=0), w)), firsts, tiled)
        return (firsts if all(same) else None), tiled

    # -- decoding -------------------------------------------------------------
    def _decode(
        self,
        maximum_iterations: Any,
        output_time_major: Any,
        impute_finished: Any,
        training: Any,
        return_backprop: Any,
    ) -> tuple[FinalBeamSearchDecoderOutput, BeamSearchDecoderState, np.ndarray]:
        """Runs the beam search (see the class docstring); what
        ``dynamic_decode(decoder, ...)`` returns."""
        capped = maximum_iterations is None
        max_iter = maximum_iterations_arg(maximum_iterations, DEFAULT_MAXIMUM_ITERATIONS)
        time_major = flag("output_time_major", output_time_major)
        impute = flag("impute_finished", impute_finished)
        flag("training", training)
        if flag("return_backprop", return_backprop):
            raise ValueError(
                "return_backprop: expected False for a BeamSearchDecoder (beam search is for inference; "
                "train with a TrainingHelper), got True"
            )
        if self._cell.input_size is None and self._embedding.width is not None:
            build_for_inputs(self._cell, self._embedding.width)
        # The Rust loop has no coverage penalty: a nonzero weight always runs the NumPy loop.
        result = None if impute or self._coverage_penalty_weight != 0.0 else self._fast(max_iter)
        if result is None:
            result = self._python_loop(max_iter, impute)
        step_ids, parent_ids, scores, cell_state, log_probs, finished, lengths, accumulated = result
        if capped and not finished.all():
            warn_capped(int((~finished).any(axis=1).sum()), max_iter, stacklevel=4)
        # step arrays are [B, T, beam] here.
        max_lengths = lengths.max(axis=1) if lengths.size else np.zeros(lengths.shape[0], dtype=np.int32)
        predicted = gather_tree(
            step_ids.transpose(1, 0, 2), parent_ids.transpose(1, 0, 2), max_lengths, self._end_token
        )
        if time_major:
            step_ids, parent_ids, scores = (a.transpose(1, 0, 2) for a in (step_ids, parent_ids, scores))
        else:
            predicted = predicted.transpose(1, 0, 2)
        batch, beam = self.batch_size, self._beam_width
        split = map_state(lambda _is_c, a: a.reshape((batch, beam) + a.shape[1:]), cell_state)
        outputs = FinalBeamSearchDecoderOutput(
            predicted_ids=np.ascontiguousarray(predicted),
            beam_search_decoder_output=BeamSearchDecoderOutput(
                scores=np.ascontiguousarray(scores),
                predicted_ids=np.ascontiguousarray(step_ids),
                parent_ids=np.ascontiguousarray(parent_ids),
            ),
        )
        state = BeamSearchDecoderState(
            cell_state=split,
            log_probs=log_probs,
            finished=finished,
            lengths=lengths,
            accumulated_attention_probs=accumulated,
        )
        return outputs, state, lengths.copy()

    def _fast(self, max_iter: int) -> Optional[tuple[Any, ...]]:
        """The Rust loop's result (``seq2seq._fast.beam``, with ``()`` for the
        accumulated attention probabilities), or None when it does not apply
        (then the NumPy loop runs)."""
        if self._initial_rows is None:
            return None
        result = _fast.beam(
            self._cell,
            self._embedding,
            self._output_layer,
            self._start_tokens,
            self._end_token,
            self._initial_rows,
            self._beam_width,
            max_iter,
            self._length_penalty_weight,
        )
        return None if result is None else (*result, ())

    def _python_loop(self, max_iter: int, impute_finished: bool) -> tuple[Any, ...]:
        """The beam search step by step in NumPy (cell steps through
        ``cell(x, state)``). Returns what :meth:`_fast` returns: batch-major
        ``[B, T, beam]`` step ids, parent ids and scores, the final cell state
        (``B * beam`` rows), log probs, finished and lengths ``[B, beam]``,
        and the accumulated attention probabilities ``[B, beam, Tm]`` (``()``
        without a coverage penalty)."""
        cell, beam, end = self._cell, self._beam_width, self._end_token
        batch = self.batch_size
        dtype = cell.dtype
        log_probs = np.full((batch, beam), -np.inf, dtype=dtype)
        log_probs[:, 0] = 0
        finished = np.ones((batch, beam), dtype=bool)
        finished[:, 0] = False
        lengths = np.zeros((batch, beam), dtype=np.int32)
        state = self._initial_state
        coverage = self._coverage_penalty_weight
        # TF starts the sums from the initial state's alignments (zeros in a zero state).
        accumulated: Any = state.alignments.reshape(batch, beam, -1).copy() if coverage != 0.0 else ()
        inputs = self._embedding(np.repeat(self._start_tokens, beam))
        self._embedding.check_width(cell.input_size)
        rows = np.arange(batch)[:, None] * beam
        outs: list[_Step] = []
        while len(outs) < max_iter and not finished.all():
            output, new_state = cell(inputs, state)
            logits = project(self._output_layer, output).reshape(batch, beam, -1)
            if impute_finished:
                new_state = _keep_rows(finished.reshape(-1, 1), state, new_state)
            alignments = new_state.alignments.reshape(batch, beam, -1) if coverage != 0.0 else None
            step = _beam_search_step(
                logits,
                log_probs,
                finished,
                lengths,
                end,
                self._length_penalty_weight,
                coverage,
                accumulated,
                alignments,
            )
            outs.append(step)
            picked = (rows + step.parent_ids).reshape(-1)
            state = _take_rows(new_state, picked)
            log_probs, finished, lengths, accumulated = step.log_probs, step.finished, step.lengths, step.accumulated
            if not finished.all():
                inputs = self._embedding(step.word_ids.reshape(-1))

        def stacked(field: str, dt: Any) -> np.ndarray:
            if not outs:
                return np.zeros((batch, 0, beam), dtype=dt)
            return np.stack([getattr(s, field) for s in outs], axis=1).astype(dt, copy=False)

        return (
            stacked("word_ids", np.int32),
            stacked("parent_ids", np.int32),
            stacked("scores", dtype),
            state,
            log_probs,
            finished,
            lengths,
            accumulated,
        )
