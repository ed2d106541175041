"""``BasicDecoder`` (TensorFlow 1.x ``tf.contrib.seq2seq.BasicDecoder``): a
cell, a helper, an initial state and an optional output layer, decoded by
:func:`rnnrs.seq2seq.dynamic_decode`.

How it runs:

- ``TrainingHelper``: one fused teacher-forced pass of the cell over
  ``inputs[:, :T]`` (what ``dynamic_rnn`` runs: the input GEMM hoisted out
  of the time loop), then the output layer on every step at once. With
  ``impute_finished=True`` the rows are masked at their lengths (zero
  outputs, frozen state); without, every row runs all ``T`` steps, as in
  TensorFlow.
- ``GreedyEmbeddingHelper`` / ``SampleEmbeddingHelper``: the whole loop in
  the Rust core when the cell, embedding and output layer allow it (core
  cells or a ``MultiRNNCell`` of them, an embedding matrix, a linear
  ``Dense``), else a Python loop stepping the cell (in Rust) once per step.
  With ``impute_finished=True`` finished rows leave the step.
- ``ScheduledEmbeddingTrainingHelper``: the Python loop.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from .. import _rnnrs
from .._state import map_state
from .._validate import check_shape, float_array
from ..cells import RNNCell, build_for_inputs
from ..layers.core import Dense
from ..rnn import _check_cell, take_memory_gradients
from . import _fast
from ._common import (
    DEFAULT_MAXIMUM_ITERATIONS,
    UNIFORMS_UP_FRONT,
    EmbeddingFn,
    Uniforms,
    check_end_token,
    check_output_layer,
    check_start_tokens,
    project,
    sample_ids,
    warn_capped,
)
from .helpers import (
    GreedyEmbeddingHelper,
    Helper,
    SampleEmbeddingHelper,
    ScheduledEmbeddingTrainingHelper,
    TrainingHelper,
)
from .types import BasicDecoderOutput, DecoderBackprop, DecoderGradients

__all__ = ["BasicDecoder"]

#: ``step(x [B, I], state, rows) -> (output [B, H], state)`` (``rows``: which of the batch's rows step, or None)
Step = Callable[[np.ndarray, Any, Optional[np.ndarray]], "tuple[np.ndarray, Any]"]

#: ``backward(d_logits, d_state) -> (d_inputs, d_initial_state, d_cell_weights, d_output_layer)``
ForcedBackward = Callable[[Optional[np.ndarray], Any], "tuple[np.ndarray, Any, Any, Any, Any]"]


class BasicDecoder:
    """A decoder stepping ``cell`` as ``helper`` says (TensorFlow 1.x
    ``tf.contrib.seq2seq.BasicDecoder``).

    TensorFlow 1.x's signature and positional order (``BasicDecoder(cell,
    helper, initial_state, output_layer=None)``).

    Args:
        cell: an rnnrs cell (any cell or wrapper; ``LSTMStateTuple`` and
            ``MultiRNNCell`` states included), built on first use for the
            helper's input width.
        helper: a :class:`TrainingHelper`, :class:`GreedyEmbeddingHelper`,
            :class:`SampleEmbeddingHelper` or
            :class:`ScheduledEmbeddingTrainingHelper`.
        initial_state: the cell's state structure for the helper's ``B``
            rows (None: zeros).
        output_layer: None or an ``rnnrs.Dense`` (built on first use for
            the cell's output size), applied to the cell's output at every
            step; the helpers read its result (the logits). Anything else
            raises ``TypeError`` naming ``output_layer``.

    Decode it with :func:`rnnrs.seq2seq.dynamic_decode`.
    """

    def __init__(self, cell: RNNCell, helper: Helper, initial_state: Any, output_layer: Optional[Dense] = None):
        self.cell = _check_cell(cell)
        if not isinstance(helper, Helper):
            raise TypeError(
                f"helper: expected an rnnrs.seq2seq helper (e.g. TrainingHelper), got {type(helper).__name__}"
            )
        self.helper = helper
        self.output_layer = check_output_layer(output_layer, self.cell)
        batch = helper.batch_size
        if initial_state is None:
            self.initial_state = self.cell.zero_state(batch)
        else:
            self.initial_state = self.cell._check_state("initial_state", initial_state, batch)

    @property
    def batch_size(self) -> int:
        """The number of rows ``B``."""
        return self.helper.batch_size

    @property
    def output_size(self) -> int:
        """The width ``V`` of ``rnn_output`` (the output layer's units, else the cell's output size)."""
        return self.cell.output_size if self.output_layer is None else self.output_layer.units

    # -- decoding ------------------------------------------------------------
    def _decode(
        self,
        maximum_iterations: Optional[int],
        output_time_major: bool,
        impute_finished: bool,
        training: bool,
        return_backprop: bool,
    ) -> tuple[Any, ...]:
        """Runs the decode on validated arguments (``maximum_iterations`` an
        int >= 0 or None); returns what :func:`dynamic_decode` returns."""
        if type(self.helper) is TrainingHelper:
            result = self._decode_training(maximum_iterations, impute_finished, training, return_backprop)
        else:
            result = self._decode_loop(maximum_iterations, impute_finished, training, return_backprop)
        logits, sample_id, final_state, lengths, time_major, backward = result
        if time_major != output_time_major:
            logits = logits.transpose(1, 0, 2)
            sample_id = sample_id.T
        out: list[Any] = [BasicDecoderOutput(logits, sample_id), final_state, lengths]
        if return_backprop:
            assert backward is not None
            out.append(
                DecoderBackprop(
                    _checked(self.cell, backward, logits.shape, time_major != output_time_major, self.batch_size)
                )
            )
        return tuple(out)

    def _forced(
        self, x: np.ndarray, lengths: Optional[np.ndarray], time_major: bool, training: bool, need_backward: bool
    ) -> tuple[np.ndarray, Any, Optional[ForcedBackward]]:
        """The teacher-forced pass over ``x`` (``[B, T, I]``, ``[T, B, I]``
        when ``time_major``): the cell masked at ``lengths`` (None: every row
        runs every step), the output layer, and zero logits past each
        row's length. Returns ``(logits, final_state, backward)``."""
        cell = self.cell
        outputs, final_state, cell_backward = cell._run(
            x, self.initial_state, lengths, time_major, training, cell._locked_snapshot()
        )
        dense_backward = None
        if self.output_layer is None:
            logits = outputs
        elif need_backward:
            applied = self.output_layer._forward(outputs, None, False)
            logits, dense_backward = applied.outputs, applied.backward
        else:
            logits = project(self.output_layer, outputs)
        active = None if lengths is None else _active(lengths, x.shape[0] if time_major else x.shape[1], time_major)
        if active is not None:
            logits = np.where(active[..., None], logits, logits.dtype.type(0))
        if not need_backward:
            return logits, final_state, None

        def backward(d_logits: Optional[np.ndarray], d_state: Any) -> tuple[np.ndarray, Any, Any, Any, Any]:
            if d_logits is not None and active is not None:  # the imputed zeros have no gradient
                d_logits = np.where(active[..., None], d_logits, d_logits.dtype.type(0))
            d_outputs, d_layer = d_logits, None
            if dense_backward is not None:
                d_outputs, d_layer = dense_backward(np.zeros_like(logits) if d_logits is None else d_logits, True)
            d_x, d_initial, d_weights = cell_backward(d_outputs, d_state)
            d_memory = take_memory_gradients(cell, d_weights)
            return d_x, d_initial, d_weights, d_layer, d_memory

        return logits, final_state, backward

    def _decode_training(
        self, maximum_iterations: Optional[int], impute_finished: bool, training: bool, return_backprop: bool
    ) -> tuple[np.ndarray, np.ndarray, Any, np.ndarray, bool, Optional[Callable[..., DecoderGradients]]]:
        """``TrainingHelper``: one fused pass over ``inputs[:, :T]``."""
        helper = self.helper
        assert isinstance(helper, TrainingHelper)
        time_major = helper.time_major
        given = helper.inputs  # as given: [B, T, E] or [T, B, E]
        x_all = float_array("inputs", given, self.cell.dtype, 3, "[batch, time, input_size]")
        build_for_inputs(self.cell, x_all.shape[2])
        lengths = helper.sequence_length
        if maximum_iterations is not None:
            lengths = np.minimum(lengths, maximum_iterations)
        time = int(lengths.max()) if lengths.size else 0
        x = x_all[:time] if time_major else x_all[:, :time]
        run_lengths = lengths if impute_finished else None
        logits, final_state, forced_backward = self._forced(x, run_lengths, time_major, training, return_backprop)
        sample_id = _argmax(logits)
        backward = None
        if forced_backward is not None:
            full_shape = x_all.shape

            def backward(d_logits: Optional[np.ndarray], d_state: Any) -> DecoderGradients:
                assert forced_backward is not None
                d_x, d_initial, d_weights, d_layer, d_memory = forced_backward(d_logits, d_state)
                d_inputs = np.zeros(full_shape, dtype=d_x.dtype)
                if time_major:
                    d_inputs[:time] = d_x
                else:
                    d_inputs[:, :time] = d_x
                return DecoderGradients(d_initial, d_inputs, d_weights, d_layer, None, d_memory)

        return logits, sample_id, final_state, lengths.astype(np.int32), time_major, backward

    def _embedding_setup(self) -> tuple[EmbeddingFn, np.ndarray, int]:
        """The helper's embedding in the cell's dtype, the cell built for its
        width, and the start and end tokens checked against the output width
        when the embedding is a callable (whose vocabulary is unknown)."""
        helper = self.helper
        cell = self.cell
        if isinstance(helper, ScheduledEmbeddingTrainingHelper):
            build_for_inputs(cell, helper._inputs.shape[2])
        emb = helper._embedding(cell.dtype, cell.input_size)
        width = self.output_size
        if isinstance(helper, (GreedyEmbeddingHelper, SampleEmbeddingHelper)):
            start, end = helper.start_tokens, helper.end_token
            if emb.vocab is None:
                what = "the decoder's output width"
                start = check_start_tokens("start_tokens", start, None, width, what)
                end = check_end_token("end_token", end, width, what)
        else:
            start, end = np.zeros(0, dtype=np.int32), -1
        if emb.vocab is not None and width > emb.vocab:
            name = "cell" if self.output_layer is None else "output_layer"
            raise ValueError(
                f"{name}: expected an output width of at most {emb.vocab} (the embedding's vocabulary size: the "
                f"ids chosen from the outputs are looked up in it), got {width}"
            )
        if emb.width is not None and not cell.built:
            cell.build(emb.width)
        return emb, start, end

    def _decode_loop(
        self, maximum_iterations: Optional[int], impute_finished: bool, training: bool, return_backprop: bool
    ) -> tuple[np.ndarray, np.ndarray, Any, np.ndarray, bool, Optional[Callable[..., DecoderGradients]]]:
        """The embedding helpers: the Rust loop when it applies, else the Python one."""
        helper = self.helper
        emb, start, end = self._embedding_setup()
        scheduled = isinstance(helper, ScheduledEmbeddingTrainingHelper)
        limit = maximum_iterations
        if limit is None:
            if isinstance(helper, ScheduledEmbeddingTrainingHelper):
                limit = int(helper.sequence_length.max(initial=0))
            else:
                limit = DEFAULT_MAXIMUM_ITERATIONS
        batch = helper.batch_size
        uniforms = None
        temperature = 1.0
        if isinstance(helper, SampleEmbeddingHelper):
            uniforms = Uniforms(helper.seed, batch)
            temperature = helper.softmax_temperature
        result = None
        # The Rust loop takes every step's uniforms up front: when they would
        # be large (a huge maximum_iterations), the Python loop draws them
        # step by step from the same stream instead.
        if not scheduled and (uniforms is None or limit * batch <= UNIFORMS_UP_FRONT):
            result = _fast.greedy(
                cell=self.cell,
                embedding=emb,
                output_layer=self.output_layer,
                start_tokens=start,
                end_token=end,
                maximum_iterations=limit,
                impute_finished=impute_finished,
                uniforms=None if uniforms is None else uniforms.first(limit),
                temperature=temperature,
                initial_state=self.initial_state,
            )
        fed: Optional[_Fed] = None
        if result is None:
            loop = _Loop(self, emb, limit, impute_finished, training, uniforms, temperature)
            result = loop.run(start, end)
            fed = loop.fed
        logits, sample_id, lengths, final_state = result
        if maximum_iterations is None and not scheduled and limit > 0 and sample_id.shape[1] == limit:
            unfinished = int(np.count_nonzero((lengths == limit) & (sample_id[:, limit - 1] != end)))
            if unfinished:
                warn_capped(unfinished, limit)
        backward = None
        if return_backprop:
            if fed is None:  # the fast loop: the ids fed are the start tokens, then each step's sample
                fed = _Fed.from_ids(start, sample_id, emb)
            mask_lengths = lengths.astype(np.int64) if impute_finished else None
            logits, final_state, forced_backward = self._forced(fed.inputs, mask_lengths, False, training, True)
            assert forced_backward is not None
            backward = _fed_backward(forced_backward, fed, emb, helper)
        return logits, sample_id, final_state, lengths, False, backward


def _active(lengths: np.ndarray, time: int, time_major: bool) -> np.ndarray:
    """Boolean ``[B, T]`` (``[T, B]``): True where ``t < lengths[b]``."""
    mask = np.arange(time)[None, :] < lengths[:, None]
    return mask.T if time_major else mask


def _argmax(logits: np.ndarray) -> np.ndarray:
    """The first maximum of the last axis, int32."""
    ids: np.ndarray = np.argmax(logits, axis=-1).astype(np.int32)
    return ids


class _Fed:
    """What the steps of a decode read: ``inputs`` ``[B, T, E]`` and, per
    step, whether the input was an embedding (``embedded`` ``[B, T]``) of
    which id (``ids``)."""

    def __init__(self, inputs: np.ndarray, embedded: np.ndarray, ids: np.ndarray) -> None:
        self.inputs = inputs
        self.embedded = embedded
        self.ids = ids

    @classmethod
    def from_ids(cls, start: np.ndarray, sample_id: np.ndarray, emb: EmbeddingFn) -> "_Fed":
        batch, time = sample_id.shape
        ids = np.empty((batch, time), dtype=np.int32)
        if time:
            ids[:, 0] = start
            ids[:, 1:] = sample_id[:, :-1]
        inputs = _embed_all(emb, ids)
        return cls(inputs, np.ones((batch, time), dtype=bool), ids)


def _embed_all(emb: EmbeddingFn, ids: np.ndarray) -> np.ndarray:
    """``emb`` on ids ``[B, T]``: ``[B, T, E]``."""
    if emb.matrix is not None:
        out: np.ndarray = emb.matrix[ids]
        return out
    batch, time = ids.shape
    columns = [emb(ids[:, t]) for t in range(time)]
    width = emb.width or 0
    return np.stack(columns, axis=1) if columns else np.zeros((batch, 0, width), dtype=emb.dtype)


def _fed_backward(
    forced_backward: ForcedBackward, fed: _Fed, emb: EmbeddingFn, helper: Helper
) -> Callable[[Optional[np.ndarray], Any], DecoderGradients]:
    """Gradients of a decode re-run teacher-forced on what it fed: the input
    gradients of embedded steps scatter-added into the embedding matrix,
    the others (scheduled sampling's given inputs) returned as ``inputs``."""
    scheduled = isinstance(helper, ScheduledEmbeddingTrainingHelper)

    def backward(d_logits: Optional[np.ndarray], d_state: Any) -> DecoderGradients:
        d_x, d_initial, d_weights, d_layer, d_memory = forced_backward(d_logits, d_state)
        d_matrix = None
        if emb.matrix is not None:
            rows = fed.embedded
            num, dim = emb.matrix.shape
            d_rows = np.asarray(d_x[rows], dtype=emb.matrix.dtype).reshape(-1, dim)
            d_matrix = _rnnrs.scatter_add_rows(np.asarray(fed.ids[rows], dtype=np.int64).reshape(-1), d_rows, num)
        d_inputs = None
        if scheduled:
            assert isinstance(helper, ScheduledEmbeddingTrainingHelper)
            given = helper._inputs  # batch-major view
            d_given = np.zeros(given.shape, dtype=d_x.dtype)
            time = d_x.shape[1]
            d_given[:, :time] = np.where(fed.embedded[..., None], d_x.dtype.type(0), d_x)
            d_inputs = d_given.transpose(1, 0, 2) if helper.time_major else d_given
        return DecoderGradients(d_initial, d_inputs, d_weights, d_layer, d_matrix, d_memory)

    return backward


def _checked(
    cell: RNNCell,
    backward: Callable[[Optional[np.ndarray], Any], DecoderGradients],
    returned: tuple[int, ...],
    transposed: bool,
    batch: int,
) -> Callable[[Any, Any], DecoderGradients]:
    """``backward`` with the caller's gradients validated: ``d_rnn_output``
    shaped like the returned ``rnn_output`` (``returned``; ``transposed``
    when the decode ran in the other layout), ``d_state`` like the state."""

    def run(d_rnn_output: Any, d_state: Any) -> DecoderGradients:
        dy = None
        if d_rnn_output is not None:
            dy = float_array("d_rnn_output", d_rnn_output, cell.dtype, 3, "shaped like outputs.rnn_output")
            check_shape("d_rnn_output", dy, returned)
            if transposed:
                dy = dy.transpose(1, 0, 2)
        ds = None if d_state is None else cell._check_state("d_state", d_state, batch)
        return backward(dy, ds)

    return run


class _Loop:
    """The step-by-step decode in Python (each cell step in Rust): the
    embedding helpers when the Rust loop does not apply, and scheduled
    sampling. Follows TensorFlow 1.15's ``dynamic_decode``: a row's length
    counts the step that finished it; with ``impute_finished`` finished rows
    leave the step (zero outputs, ``sample_id`` 0, state frozen)."""

    def __init__(
        self,
        decoder: BasicDecoder,
        emb: EmbeddingFn,
        limit: int,
        impute_finished: bool,
        training: bool,
        uniforms: Optional[Uniforms],
        temperature: float,
    ) -> None:
        self.decoder = decoder
        self.emb = emb
        self.limit = limit
        self.impute = impute_finished
        self.training = training
        self.uniforms = uniforms
        self.temperature = temperature
        self.fed: Optional[_Fed] = None

    def _step_fn(self) -> Step:
        cell = self.decoder.cell
        weights = cell._locked_snapshot()
        training = self.training
        if cell._kind is not None:
            core = cell._core(weights)

            def core_step(x: np.ndarray, state: Any, rows: Optional[np.ndarray] = None) -> tuple[np.ndarray, Any]:
                output, parts = core.step(x, cell._state_parts(state))
                return output, cell._state_from_parts(parts)

            return core_step

        mechanism = getattr(cell, "attention_mechanism", None)
        if mechanism is not None:
            batch = self.decoder.helper.batch_size
            count = mechanism.batch_size
            if count == 0 or batch % count:
                raise ValueError(
                    f"initial_state: expected a batch equal to the memory's {count} rows or a multiple of it "
                    f"(beams), got {batch}"
                )
            per_row = batch // count  # decoder rows per memory row

            def attention_step(x: np.ndarray, state: Any, rows: Optional[np.ndarray] = None) -> tuple[np.ndarray, Any]:
                run: Any = cell._run  # AttentionWrapper._run: it takes the memory rows of the rows stepping
                memory_rows = None if rows is None else rows // per_row
                outputs, new_state, _ = run(x[:, None, :], state, None, False, training, weights, memory_rows)
                return outputs[:, 0, :], new_state

            return attention_step

        def wrapper_step(x: np.ndarray, state: Any, rows: Optional[np.ndarray] = None) -> tuple[np.ndarray, Any]:
            outputs, new_state, _ = cell._run(x[:, None, :], state, None, False, training, weights)
            return outputs[:, 0, :], new_state

        return wrapper_step

    def run(self, start: np.ndarray, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
        """``(rnn_output [B, T, V], sample_id [B, T], lengths [B], final_state)``."""
        decoder = self.decoder
        helper = decoder.helper
        cell = decoder.cell
        emb = self.emb
        batch = helper.batch_size
        width = decoder.output_size
        dtype = cell.dtype
        scheduled = isinstance(helper, ScheduledEmbeddingTrainingHelper)
        finished = np.zeros(batch, dtype=bool) | (self.limit <= 0)
        if scheduled:
            assert isinstance(helper, ScheduledEmbeddingTrainingHelper)
            given = float_array("inputs", helper._inputs, dtype, 3, "[batch, time, input_size]")
            seq_lengths = helper.sequence_length
            finished |= seq_lengths <= 0
            rng = np.random.default_rng(helper.seed)
            probability = helper.sampling_probability
            x = np.ascontiguousarray(given[:, 0]) if given.shape[1] else np.zeros((batch, given.shape[2]), dtype)
        else:
            x = emb(start)
            if not cell.built:
                cell.build(x.shape[1])
            emb.check_width(cell.input_size)
        step = self._step_fn()  # the cell is built now
        state = decoder.initial_state
        if self.impute:
            state = map_state(lambda _c, a: np.array(a, copy=True), state)
            x = np.array(x, copy=True)
        lengths = np.zeros(batch, dtype=np.int32)
        buffers = _Buffers(batch, width, x.shape[1] if scheduled else None, dtype)
        t = 0
        while not finished.all():
            rows = np.flatnonzero(~finished) if self.impute else None
            xs = x if rows is None else x[rows]
            ss = state if rows is None else _take_rows(state, rows)
            out, new_state = step(xs, ss, rows)
            logits = project(decoder.output_layer, out)
            if scheduled:
                draws = rng.random((2, batch))
                select = draws[0] < probability
                sampled = sample_ids(logits, draws[1] if rows is None else draws[1][rows], 1.0)
                chosen = select if rows is None else select[rows]
                ids = np.where(chosen, sampled, -1).astype(np.int32)
                done = t + 1 >= (seq_lengths if rows is None else seq_lengths[rows])
            else:
                if self.uniforms is not None:
                    u = self.uniforms.step(t) if rows is None else self.uniforms.step(t)[rows]
                    ids = sample_ids(logits, u, self.temperature)
                else:
                    ids = _argmax(logits)
                done = ids == end
            buffers.record(rows, logits, ids, xs)
            if rows is None:
                lengths[~finished] = t + 1
                finished = finished | done
                state = new_state
            else:
                lengths[rows] = t + 1
                finished[rows] |= done
                state = _put_rows(state, rows, new_state)
            if t + 1 >= self.limit:
                finished[:] = True
            t += 1
            if finished.all():
                break
            # The next step's inputs (for every row still stepping).
            if scheduled:
                base = given[:, t] if t < given.shape[1] else np.zeros_like(given[:, 0])
                picked = ids >= 0
                if rows is None:
                    x = np.array(base, copy=True)
                    if picked.any():
                        x[picked] = emb(ids[picked])
                    buffers.mark_embedded(picked, ids)
                else:
                    x[rows] = base[rows]
                    if picked.any():
                        x[rows[picked]] = emb(ids[picked])
                    mark = np.zeros(batch, dtype=bool)
                    mark[rows[picked]] = True
                    full_ids = np.zeros(batch, dtype=np.int32)
                    full_ids[rows[picked]] = ids[picked]
                    buffers.mark_embedded(mark, full_ids)
            elif rows is None:
                x = emb(ids)
            else:
                x[rows] = emb(ids)
        logits_all, ids_all, fed = buffers.result()
        if fed is not None:
            self.fed = _Fed(*fed)
        return logits_all, ids_all, lengths, state


def _take_rows(state: Any, rows: np.ndarray) -> Any:
    """The rows ``rows`` of every array of a state structure."""
    return map_state(lambda _c, a: a[rows], state)


def _put_rows(state: Any, rows: np.ndarray, part: Any) -> Any:
    """``state`` with ``part`` (a state of ``len(rows)`` rows) in its rows
    ``rows`` (in place where the shapes allow: the arrays are this decode's
    own copies)."""

    def put(_c: bool, full: np.ndarray, new: np.ndarray) -> np.ndarray:
        full[rows] = new
        return full

    return map_state(put, state, part)


class _Buffers:
    """Per-step records of a Python decode: each step's arrays are appended
    (a step's own outputs, no copy when every row stepped) and stacked
    batch-major once at the end."""

    def __init__(self, batch: int, width: int, input_width: Optional[int], dtype: np.dtype[Any]) -> None:
        """``input_width``: record what each step read (scheduled sampling),
        None not to."""
        self.batch = batch
        self.width = width
        self.input_width = input_width
        self.dtype = dtype
        self.logits: list[np.ndarray] = []
        self.ids: list[np.ndarray] = []
        self.inputs: list[np.ndarray] = []
        # Step 0 reads the given inputs, never an embedding.
        self.embedded: list[np.ndarray] = [np.zeros(batch, dtype=bool)]
        self.fed_ids: list[np.ndarray] = [np.zeros(batch, dtype=np.int32)]

    def _full(self, rows: Optional[np.ndarray], part: np.ndarray) -> np.ndarray:
        """``part`` (the stepping rows' values) as all ``B`` rows, zero elsewhere."""
        if rows is None:
            return part
        full = np.zeros((self.batch,) + part.shape[1:], dtype=part.dtype)
        full[rows] = part
        return full

    def record(self, rows: Optional[np.ndarray], logits: np.ndarray, ids: np.ndarray, inputs: np.ndarray) -> None:
        """One step's outputs, ids and inputs on the rows ``rows`` (None: all)."""
        self.logits.append(self._full(rows, logits))
        self.ids.append(self._full(rows, ids))
        if self.input_width is not None:
            self.inputs.append(self._full(rows, inputs))

    def mark_embedded(self, mask: np.ndarray, ids: np.ndarray) -> None:
        """The next step's input is the embedding of ``ids`` on the rows of ``mask``."""
        self.embedded.append(mask)
        self.fed_ids.append(np.where(mask, ids, 0).astype(np.int32))

    def result(self) -> tuple[np.ndarray, np.ndarray, Optional[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """Batch-major ``(logits [B, T, V], ids [B, T], fed)``, ``fed`` =
        ``(inputs, embedded, fed_ids)`` when recorded."""

        def stack(steps: list[np.ndarray], tail: tuple[int, ...], dtype: Any) -> np.ndarray:
            if not steps:
                return np.zeros((self.batch, 0) + tail, dtype=dtype)
            return np.stack(steps, axis=1)

        logits = stack(self.logits, (self.width,), self.dtype)
        ids = stack(self.ids, (), np.int32)
        if self.input_width is None:
            return logits, ids, None
        time = len(self.logits)
        fed = (
            stack(self.inputs, (self.input_width,), self.dtype),
            stack(self.embedded[:time], (), bool),
            stack(self.fed_ids[:time], (), np.int32),
        )
        return logits, ids, fed
