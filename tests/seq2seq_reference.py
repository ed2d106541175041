"""Plain-NumPy reference of TensorFlow 1.15's ``tf.contrib.seq2seq``: helpers,
``BasicDecoder`` + ``dynamic_decode``, beam search, ``gather_tree``,
``sequence_loss`` and ``tile_batch``.

Written to be *read*, like ``reference.py``: slow Python loops over time steps
(and over rows where that is clearer), transcribed from TF 1.15's source
(``contrib/seq2seq/python/ops/{helper,basic_decoder,decoder,
beam_search_decoder,loss}.py`` and ``kernels/beam_search_ops.cc``; the
comments name the TF function each block comes from). Nothing here imports
rnnrs: the cell is a ``step(x [B, I], state) -> (output [B, H], new_state)``
function (tests pass ``cell.__call__``), the state any nesting of tuples,
named tuples and lists of arrays. ``test_seq2seq_reference.py`` pins these
functions against real TensorFlow outputs (``tests/fixtures/seq2seq/``) and
hand-worked cases.

Notation (batch-major unless said otherwise):

    B  batch      T  steps run      V  vocabulary (output width)
    E  embedding width (the cell's input size)      K  beam width

    output_layer   None or (kernel [H, V], bias [V] or None): logits = out @ kernel + bias
    embedding      [V, E] matrix (rows looked up) or a callable ids [N] -> [N, E]

Where rnnrs pins what TF leaves to its RNG (``SampleEmbeddingHelper``,
``ScheduledEmbeddingTrainingHelper``), these functions take the uniforms as
an argument: ``u = np.random.default_rng(seed).random((maximum_iterations, B))``
(:func:`sample_ids_reference` turns one into an id).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import numpy as np

Step = Callable[[np.ndarray, Any], tuple[np.ndarray, Any]]

HELPERS = ("training", "greedy", "sample", "scheduled")


# -- nested states -------------------------------------------------------------
def map_state(fn: Callable[..., np.ndarray], *states: Any) -> Any:
    """``fn`` applied leaf by leaf to equally nested states (TF's ``nest.map_structure``)."""
    first = states[0]
    if isinstance(first, (tuple, list)):
        parts = [map_state(fn, *[s[i] for s in states]) for i in range(len(first))]
        if hasattr(first, "_fields"):  # a named tuple (LSTMStateTuple, ...)
            return type(first)(*parts)
        return type(first)(parts)
    return fn(*states)


def state_leaves(state: Any) -> list[np.ndarray]:
    """The arrays of a nested state, depth first (TF's ``nest.flatten``)."""
    if isinstance(state, (tuple, list)):
        return [leaf for part in state for leaf in state_leaves(part)]
    return [np.asarray(state)]


def tile_batch_reference(t: Any, multiplier: int) -> Any:
    """TF's ``tile_batch``: rows ``t0, t0, ..., t1, t1, ...`` (each row repeated
    ``multiplier`` times in place), leaf by leaf for a nested structure."""

    def tile(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        rows = [a[b] for b in range(a.shape[0]) for _ in range(multiplier)]
        return np.stack(rows) if rows else np.zeros((0,) + a.shape[1:], a.dtype)

    return map_state(tile, t)


# -- small pieces ----------------------------------------------------------------
def project(output_layer: Optional[tuple[np.ndarray, Optional[np.ndarray]]], out: np.ndarray) -> np.ndarray:
    """The output layer (a ``Dense`` without activation) or the identity."""
    if output_layer is None:
        return out
    kernel, bias = output_layer
    logits = out @ kernel
    return logits if bias is None else logits + bias


def embed(embedding: Any, ids: np.ndarray) -> np.ndarray:
    """``embedding_lookup(embedding, ids)`` or ``embedding(ids)`` for a callable."""
    ids = np.asarray(ids)
    if callable(embedding):
        return np.asarray(embedding(ids))
    return np.asarray(embedding)[ids]


def argmax_ids(logits: np.ndarray) -> np.ndarray:
    """``math_ops.argmax(logits, -1, output_type=int32)``: the first maximum of each row."""
    ids = np.zeros(logits.shape[0], np.int32)
    for b in range(logits.shape[0]):
        best = 0
        for k in range(1, logits.shape[1]):
            if logits[b, k] > logits[b, best]:
                best = k
        ids[b] = best
    return ids


def sample_ids_reference(logits: np.ndarray, u: np.ndarray, temperature: Optional[float] = None) -> np.ndarray:
    """rnnrs's categorical draw (not TF's RNG), one uniform ``u[b]`` in
    ``[0, 1)`` per row: in float64, ``e = exp((logits - max logits) /
    temperature)``, ``cdf`` = the running sum of ``e`` (left to right), and
    the id is the number of ``cdf`` entries ``<= u * cdf[-1]``, at most ``V - 1``."""
    z = np.asarray(logits, np.float64)
    t = 1.0 if temperature is None else float(temperature)
    V = z.shape[1]
    ids = np.zeros(z.shape[0], np.int32)
    for b in range(z.shape[0]):
        e = np.exp((z[b] - z[b].max()) / t)
        cdf = np.zeros(V)
        running = 0.0
        for k in range(V):
            running += e[k]
            cdf[k] = running
        threshold = float(u[b]) * cdf[-1]
        count = sum(1 for k in range(V) if cdf[k] <= threshold)
        ids[b] = min(count, V - 1)
    return ids


# -- BasicDecoder + dynamic_decode ----------------------------------------------------
class DecodeResult(NamedTuple):
    rnn_output: np.ndarray  # [B, T, V]
    sample_id: np.ndarray  # [B, T] int32
    final_state: Any
    lengths: np.ndarray  # [B] int32


def dynamic_decode_reference(
    step: Step,
    helper: str,
    initial_state: Any,
    *,
    inputs: Optional[np.ndarray] = None,
    sequence_length: Optional[np.ndarray] = None,
    embedding: Any = None,
    start_tokens: Optional[np.ndarray] = None,
    end_token: Optional[int] = None,
    output_layer: Optional[tuple[np.ndarray, Optional[np.ndarray]]] = None,
    uniforms: Optional[np.ndarray] = None,
    softmax_temperature: Optional[float] = None,
    sampling_probability: float = 0.0,
    impute_finished: bool = False,
    maximum_iterations: Optional[int] = None,
    output_size: Optional[int] = None,
) -> DecodeResult:
    """``dynamic_decode(BasicDecoder(cell, helper, initial_state, output_layer),
    impute_finished, maximum_iterations)`` for ``helper`` one of:

    - ``"training"``: ``TrainingHelper(inputs [B, T_in, E], sequence_length [B])``;
    - ``"greedy"``: ``GreedyEmbeddingHelper(embedding, start_tokens [B], end_token)``;
    - ``"sample"``: ``SampleEmbeddingHelper(..., softmax_temperature)``, row ``b`` at
      step ``t`` drawing with ``uniforms[t, b]`` (``uniforms`` ``[>= steps, B]``);
    - ``"scheduled"``: ``ScheduledEmbeddingTrainingHelper(inputs, sequence_length,
      embedding, sampling_probability)``, step ``t`` using ``uniforms[t, 0]`` to
      select rows (``< sampling_probability``) and ``uniforms[t, 1]`` to sample
      them (``uniforms`` ``[>= steps, 2, B]``: ``rng.random((steps, 2, B))`` equals
      one ``rng.random((2, B))`` per step).

    The loop is TF's ``dynamic_decode`` body::

        finished = helper.initialize().finished | (0 >= maximum_iterations)
        while not all(finished) and t < maximum_iterations:
            out, new_state = step(inputs, state); logits = output_layer(out)
            sample_id = helper.sample(logits); next_inputs, helper_finished = helper.next_inputs(...)
            lengths = where(finished, lengths, t + 1)          # the *old* finished
            impute_finished: logits, sample_id = 0 where finished; new_state = state where finished
            finished |= helper_finished

    ``maximum_iterations=None`` means no cap (only allowed for the training
    helpers, which end by themselves). ``output_size`` gives the output width
    when no step runs and there is no output layer. Returns batch-major
    :class:`DecodeResult`.
    """
    if helper not in HELPERS:
        raise ValueError(f"helper: expected one of {HELPERS}, got {helper!r}")
    training = helper in ("training", "scheduled")
    if maximum_iterations is None and not training:
        raise ValueError("maximum_iterations: expected an int for an embedding helper, got None")
    leaves = state_leaves(initial_state)
    B = leaves[0].shape[0]

    # -- helper.initialize()
    if training:
        assert inputs is not None and sequence_length is not None
        x = np.asarray(inputs)
        lens = np.asarray(sequence_length)
        finished = np.array([0 >= lens[b] for b in range(B)], bool)
        # TrainingHelper: read(0), or zeros when every row is finished at once.
        cell_inputs = np.zeros_like(x[:, 0]) if finished.all() else x[:, 0]
    else:
        assert embedding is not None and start_tokens is not None and end_token is not None
        finished = np.zeros(B, bool)
        cell_inputs = embed(embedding, np.asarray(start_tokens))
    if maximum_iterations is not None:
        finished = finished | (0 >= maximum_iterations)

    state = initial_state
    lengths = np.zeros(B, np.int32)
    emitted: list[np.ndarray] = []
    ids_emitted: list[np.ndarray] = []
    t = 0
    while not finished.all() and (maximum_iterations is None or t < maximum_iterations):
        # -- BasicDecoder.step
        cell_output, new_state = step(cell_inputs, state)
        logits = project(output_layer, np.asarray(cell_output))
        # -- helper.sample and helper.next_inputs
        if helper in ("training", "greedy"):
            sample_id = argmax_ids(logits)
        elif helper == "sample":
            assert uniforms is not None
            sample_id = sample_ids_reference(logits, uniforms[t], softmax_temperature)
        else:
            assert uniforms is not None
            select = np.array([uniforms[t, 0, b] < sampling_probability for b in range(B)])
            drawn = sample_ids_reference(logits, uniforms[t, 1])
            sample_id = np.where(select, drawn, -1).astype(np.int32)
        if training:
            helper_finished = np.array([t + 1 >= lens[b] for b in range(B)], bool)
            all_done = helper_finished.all()
            base_next = np.zeros_like(x[:, 0]) if all_done else x[:, t + 1]
            if helper == "scheduled" and not all_done:
                next_inputs = base_next.copy()
                for b in range(B):
                    if sample_id[b] > -1:
                        next_inputs[b] = embed(embedding, sample_id[b : b + 1])[0]
            else:
                next_inputs = base_next
        else:
            helper_finished = sample_id == end_token
            if helper_finished.all():
                next_inputs = embed(embedding, np.asarray(start_tokens))
            else:
                next_inputs = embed(embedding, sample_id)
        # -- dynamic_decode's body
        for b in range(B):
            if not finished[b]:
                lengths[b] = t + 1
        if impute_finished:
            logits = logits.copy()
            sample_id = sample_id.copy()
            for b in range(B):
                if finished[b]:
                    logits[b] = 0
                    sample_id[b] = 0
            new_state = map_state(lambda old, new, keep=finished: np.where(keep[:, None], old, new), state, new_state)
        emitted.append(logits)
        ids_emitted.append(sample_id)
        finished = finished | helper_finished
        if maximum_iterations is not None:
            finished = finished | (t + 1 >= maximum_iterations)
        state = new_state
        cell_inputs = next_inputs
        t += 1

    if emitted:
        rnn_output = np.stack(emitted, axis=1)
        sample_ids = np.stack(ids_emitted, axis=1).astype(np.int32)
    else:
        width = output_layer[0].shape[1] if output_layer is not None else output_size
        if width is None:
            raise ValueError("output_size: expected the output width when no step runs, got None")
        rnn_output = np.zeros((B, 0, width), leaves[0].dtype)
        sample_ids = np.zeros((B, 0), np.int32)
    return DecodeResult(rnn_output, sample_ids, state, lengths)


# -- beam search ---------------------------------------------------------------------
class BeamStepResult(NamedTuple):
    scores: np.ndarray  # [B, K] the chosen candidates' (length-penalised) scores
    word_ids: np.ndarray  # [B, K] int32
    parent_ids: np.ndarray  # [B, K] int32
    log_probs: np.ndarray  # [B, K]
    finished: np.ndarray  # [B, K] bool
    lengths: np.ndarray  # [B, K] int64 (TF's dtype)
    parents_flat: np.ndarray  # [B*K] int: the row b*K + parent each new beam continues


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """``nn_ops.log_softmax`` on the last axis, in the logits' dtype."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def mask_probs(log_probs: np.ndarray, end_token: int, finished: np.ndarray) -> np.ndarray:
    """TF's ``_mask_probs``: a finished beam's row becomes 0 at ``end_token``
    and the dtype's lowest finite value (``dtype.min``) elsewhere."""
    out = log_probs.copy()
    lowest = np.finfo(log_probs.dtype).min
    B, K, V = log_probs.shape
    for b in range(B):
        for k in range(K):
            if finished[b, k]:
                for v in range(V):
                    out[b, k, v] = 0.0 if v == end_token else lowest
    return out


def length_penalty(lengths: np.ndarray, weight: float, dtype: Any) -> Any:
    """TF's ``_length_penalty``: ``(5 + L) ** w / 6 ** w`` (GNMT), or 1 when ``w == 0``."""
    if weight == 0:
        return np.asarray(1.0, dtype)
    L = np.asarray(lengths).astype(dtype)
    w = np.asarray(weight, dtype)
    return (np.asarray(5.0, dtype) + L) ** w / np.asarray(6.0, dtype) ** w


def top_k_stable(row: np.ndarray, k: int) -> np.ndarray:
    """``nn_ops.top_k`` indices: the ``k`` largest, equal values lower index first."""
    order = sorted(range(row.shape[0]), key=lambda i: (-float(row[i]), i))
    return np.array(order[:k], np.int64)


def beam_search_step_reference(
    logits: np.ndarray,
    log_probs: np.ndarray,
    finished: np.ndarray,
    lengths: np.ndarray,
    end_token: int,
    length_penalty_weight: float = 0.0,
) -> BeamStepResult:
    """TF 1.15's ``_beam_search_step`` for ``logits [B, K, V]`` and the beam
    state's ``log_probs [B, K]``, ``finished [B, K]``, ``lengths [B, K]``."""
    B, K, V = logits.shape
    dtype = logits.dtype
    # total_probs = log_probs + _mask_probs(log_softmax(logits), end_token, finished)
    step_log_probs = mask_probs(log_softmax(logits), end_token, finished)
    with np.errstate(over="ignore"):  # a filler beam's lowest + lowest is -inf, as in TF
        total_probs = log_probs.astype(dtype)[:, :, None] + step_log_probs
    # new_prediction_lengths: + 1 for every candidate but EOS, of beams not finished
    new_lengths = np.zeros((B, K, V), np.int64)
    for b in range(B):
        for k in range(K):
            for v in range(V):
                add = 1 if (v != end_token and not finished[b, k]) else 0
                new_lengths[b, k, v] = lengths[b, k] + add
    scores = total_probs / length_penalty(new_lengths, length_penalty_weight, dtype)
    # top_k over the flattened [K * V] candidates of each batch row
    out_scores = np.zeros((B, K), dtype)
    word_ids = np.zeros((B, K), np.int32)
    parent_ids = np.zeros((B, K), np.int32)
    next_log_probs = np.zeros((B, K), dtype)
    next_finished = np.zeros((B, K), bool)
    next_lengths = np.zeros((B, K), np.int64)
    parents_flat = np.zeros(B * K, np.int64)
    for b in range(B):
        flat = scores[b].reshape(K * V)
        for j, index in enumerate(top_k_stable(flat, K)):
            word, parent = int(index % V), int(index // V)
            out_scores[b, j] = flat[index]
            word_ids[b, j] = word
            parent_ids[b, j] = parent
            next_log_probs[b, j] = total_probs[b, parent, word]
            was_finished = bool(finished[b, parent])
            next_finished[b, j] = was_finished or word == end_token
            next_lengths[b, j] = lengths[b, parent] + (0 if was_finished else 1)
            parents_flat[b * K + j] = b * K + parent
    return BeamStepResult(out_scores, word_ids, parent_ids, next_log_probs, next_finished, next_lengths, parents_flat)


class BeamResult(NamedTuple):
    predicted_ids: np.ndarray  # [B, T, K] gather_tree of the step ids, best beam first
    step_ids: np.ndarray  # [B, T, K] int32 (BeamSearchDecoderOutput.predicted_ids)
    parent_ids: np.ndarray  # [B, T, K] int32
    scores: np.ndarray  # [B, T, K]
    cell_state: Any  # the cell's state, B*K rows (row b*K + k)
    log_probs: np.ndarray  # [B, K]
    finished: np.ndarray  # [B, K] bool
    lengths: np.ndarray  # [B, K] int32 (final_state.lengths; also dynamic_decode's third value)


def beam_search_reference(
    step: Step,
    embedding: Any,
    start_tokens: np.ndarray,
    end_token: int,
    initial_state: Any,
    beam_width: int,
    *,
    output_layer: Optional[tuple[np.ndarray, Optional[np.ndarray]]] = None,
    length_penalty_weight: float = 0.0,
    maximum_iterations: int,
) -> BeamResult:
    """``dynamic_decode(BeamSearchDecoder(cell, embedding, start_tokens,
    end_token, tile_batch(initial_state, beam_width), beam_width,
    output_layer, length_penalty_weight), maximum_iterations=...)`` with TF
    1.15's semantics: ``initial_state`` has ``B`` rows and is tiled here.

    ``BeamSearchDecoder.initialize``: only beam 0 is live (``finished`` is
    True and ``log_probs`` is ``-inf`` for beams 1..K-1), lengths 0. Each step
    runs the cell on all ``B*K`` rows, then :func:`beam_search_step_reference`,
    gathers the new state's rows from the chosen parents and feeds
    ``embedding(word_ids)`` (the start tokens' embedding once every beam has
    finished). The decoder tracks its own ``finished``; the loop stops when all
    beams have finished or after ``maximum_iterations`` steps.
    ``BeamSearchDecoder.finalize``: :func:`gather_tree_reference` with each
    batch row's longest beam length.
    """
    start_tokens = np.asarray(start_tokens)
    B, K = start_tokens.shape[0], beam_width
    state = tile_batch_reference(initial_state, K)
    dtype = state_leaves(state)[0].dtype
    tokens = np.repeat(start_tokens, K)  # [B*K], row b*K + k
    start_inputs = embed(embedding, tokens)
    log_probs = np.full((B, K), -np.inf, dtype)
    log_probs[:, 0] = 0.0
    finished = np.ones((B, K), bool)
    finished[:, 0] = False
    lengths = np.zeros((B, K), np.int64)
    # dynamic_decode: "0 >= maximum_iterations" goes into the loop's own
    # finished flags, not the decoder state (which keeps initialize()'s).
    loop_finished = finished | (0 >= maximum_iterations)
    cell_inputs = start_inputs
    scores_t, words_t, parents_t = [], [], []
    t = 0
    while not loop_finished.all() and t < maximum_iterations:
        cell_output, new_state = step(cell_inputs, state)
        logits = project(output_layer, np.asarray(cell_output))
        V = logits.shape[1]
        r = beam_search_step_reference(
            logits.reshape(B, K, V), log_probs, finished, lengths, end_token, length_penalty_weight
        )
        state = map_state(lambda a, rows=r.parents_flat: np.asarray(a)[rows], new_state)
        log_probs, finished, lengths = r.log_probs, r.finished, r.lengths
        scores_t.append(r.scores)
        words_t.append(r.word_ids)
        parents_t.append(r.parent_ids)
        loop_finished = finished.copy()
        cell_inputs = start_inputs if finished.all() else embed(embedding, r.word_ids.reshape(B * K))
        t += 1

    if t:
        step_ids = np.stack(words_t)  # time-major [T, B, K]
        parent_ids = np.stack(parents_t)
        scores = np.stack(scores_t)
    else:
        step_ids = np.zeros((0, B, K), np.int32)
        parent_ids = np.zeros((0, B, K), np.int32)
        scores = np.zeros((0, B, K), dtype)
    max_lengths = lengths.max(axis=1).astype(np.int32) if K else np.zeros(B, np.int32)
    predicted = gather_tree_reference(step_ids, parent_ids, max_lengths, end_token)
    return BeamResult(
        predicted_ids=predicted.transpose(1, 0, 2),
        step_ids=step_ids.transpose(1, 0, 2),
        parent_ids=parent_ids.transpose(1, 0, 2),
        scores=scores.transpose(1, 0, 2),
        cell_state=state,
        log_probs=log_probs,
        finished=finished,
        lengths=lengths.astype(np.int32),
    )


def gather_tree_reference(
    step_ids: np.ndarray, parent_ids: np.ndarray, max_sequence_lengths: np.ndarray, end_token: int
) -> np.ndarray:
    """TF 1.15's ``GatherTree`` CPU kernel on time-major ``[T, B, K]`` arrays.

    For each batch row ``b`` and beam ``k``, with ``L = min(T, max_sequence_lengths[b])``:
    the output is ``end_token`` everywhere, then (if ``L > 0``) the beam is
    followed backwards from step ``L - 1``: ``out[L-1] = step_ids[L-1, k]``,
    ``parent = parent_ids[L-1, k]``, and for ``level = L-2 .. 0``:
    ``out[level] = step_ids[level, parent]``, ``parent = parent_ids[level, parent]``.
    Finally every entry after the first ``end_token`` (within ``[0, L)``)
    becomes ``end_token``. A parent that is followed and lies outside
    ``[0, K)`` raises ``ValueError`` (TF: ``InvalidArgument``).
    """
    step_ids = np.asarray(step_ids)
    parent_ids = np.asarray(parent_ids)
    T, B, K = step_ids.shape
    beams = np.full((T, B, K), end_token, np.int32)
    for b in range(B):
        L = min(T, int(max_sequence_lengths[b]))
        if L <= 0:
            continue
        for k in range(K):
            beams[L - 1, b, k] = step_ids[L - 1, b, k]
            parent = int(parent_ids[L - 1, b, k])
            for level in range(L - 2, -1, -1):
                if parent < 0 or parent >= K:
                    raise ValueError(
                        f"parent_ids: saw invalid parent id {parent} at (batch, time, beam) {(b, level, k)}"
                    )
                beams[level, b, k] = step_ids[level, b, parent]
                parent = int(parent_ids[level, b, parent])
            done = False
            for time in range(L):
                if done:
                    beams[time, b, k] = end_token
                elif beams[time, b, k] == end_token:
                    done = True
    return beams


# -- sequence_loss ------------------------------------------------------------------------
def sequence_loss_reference(
    logits: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray,
    average_across_timesteps: bool = True,
    average_across_batch: bool = True,
    sum_over_timesteps: bool = False,
    sum_over_batch: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """TF 1.15's ``sequence_loss`` for ``logits [B, T, V]``, ``targets [B, T]``
    and ``weights [B, T]``, and ``d_logits``: the gradient of ``value.sum()``.

    ``ce[b, t] = weights[b, t] * (logsumexp(logits[b, t]) - logits[b, t, targets[b, t]])``, then

    - both averages: ``sum(ce) / sum(weights)`` (scalar);
    - both sums: ``sum(ce) / count_nonzero(weights)`` (scalar);
    - one average: ``ce`` summed over that axis / ``weights`` summed over it;
    - one sum: ``ce`` summed over that axis / the nonzero ``weights`` counted on it;
    - no flag: ``ce`` itself ``[B, T]``.

    Every division is ``div_no_nan`` (0 where the denominator is 0, also in the
    gradient). Averaging and summing the same axis, or averaging one axis and
    summing the other, is a ``ValueError`` (the latter is tf-addons' rule and
    rnnrs's; TF 1.15 silently ignored the sum flag then).
    """
    if average_across_timesteps and sum_over_timesteps:
        raise ValueError("average_across_timesteps and sum_over_timesteps cannot both be True")
    if average_across_batch and sum_over_batch:
        raise ValueError("average_across_batch and sum_over_batch cannot both be True")
    if (average_across_batch and sum_over_timesteps) or (sum_over_batch and average_across_timesteps):
        raise ValueError("averaging one axis and summing the other is ambiguous")
    logits = np.asarray(logits)
    weights = np.asarray(weights, logits.dtype)
    B, T, V = logits.shape
    ce = np.zeros((B, T), logits.dtype)
    d_ce = np.zeros((B, T, V), logits.dtype)  # d(ce[b, t]) / d(logits[b, t]) before the weight
    for b in range(B):
        for t in range(T):
            row = logits[b, t]
            shifted = row - row.max()
            lse = np.log(np.exp(shifted).sum())
            ce[b, t] = weights[b, t] * (lse - shifted[targets[b, t]])
            softmax = np.exp(shifted - lse)
            onehot = np.zeros(V, logits.dtype)
            onehot[targets[b, t]] = 1
            d_ce[b, t] = weights[b, t] * (softmax - onehot)

    def div_no_nan(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, logits.dtype)
        safe = np.where(y == 0, 1, y)
        return np.where(y == 0, 0, x / safe).astype(logits.dtype)

    coeff = np.zeros((B, T), logits.dtype)  # d value.sum() / d ce[b, t]
    if average_across_timesteps and average_across_batch:
        value = div_no_nan(ce.sum(), weights.sum())
        coeff[:] = div_no_nan(np.asarray(1.0), weights.sum())
    elif sum_over_timesteps and sum_over_batch:
        count = np.count_nonzero(weights)
        value = div_no_nan(ce.sum(), count)
        coeff[:] = div_no_nan(np.asarray(1.0), count)
    elif average_across_timesteps or average_across_batch:
        axis = 0 if average_across_batch else 1
        denominator = weights.sum(axis=axis)
        value = div_no_nan(ce.sum(axis=axis), denominator)
        per = div_no_nan(np.ones_like(denominator), denominator)
        coeff[:] = per[None, :] if axis == 0 else per[:, None]
    elif sum_over_timesteps or sum_over_batch:
        axis = 0 if sum_over_batch else 1
        count = np.count_nonzero(weights, axis=axis)
        value = div_no_nan(ce.sum(axis=axis), count)
        per = div_no_nan(np.ones(count.shape), count)
        coeff[:] = per[None, :] if axis == 0 else per[:, None]
    else:
        value = ce
        coeff[:] = 1
    return np.asarray(value, logits.dtype), (d_ce * coeff[:, :, None]).astype(logits.dtype)
