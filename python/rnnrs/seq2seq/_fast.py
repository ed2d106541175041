"""The decoding loops in Rust: greedy, sampled and beam-search decoding run
their whole loop in the core (``_rnnrs.decode_greedy`` / ``decode_beam``).

:func:`greedy` and :func:`beam` take the decoder's already validated
arguments and return the decode computed in Rust, or None when the cell, the
embedding or the output layer cannot take that path (the caller then runs its
Python loop). The Rust path applies when the cell is a core cell
(``cell._kind is not None``: ``BasicRNNCell``, ``GRUCell``, ``LSTMCell``, ...)
or a ``MultiRNNCell`` of core cells (no other wrappers), the embedding is a
matrix (an ``[V, E]`` array, or an object with a ``matrix`` attribute such as
``_common.EmbeddingFn``), and the output layer is None or a ``Dense`` with no
activation whose width is at most ``V``. Results equal the Python loop's:
ids exactly, floats to rounding.

An ``AttentionWrapper`` (exactly that class) runs in Rust too
(``_rnnrs.decode_greedy_attention`` / ``decode_beam_attention``) when its
inner cell is a core cell or a ``MultiRNNCell`` of core cells, its mechanism a
``BahdanauAttention`` or ``LuongAttention`` and ``alignment_history`` is
off: the keys are computed once per call and beams share the memory's rows
(hypothesis ``r`` attends to memory row ``r // (rows / memory rows)``). The
final state is an ``AttentionWrapperState`` (cell state, attention,
alignments, ``attention_state`` equal to the alignments once a step ran,
``time`` advanced by the steps run). Other wrappers decline.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import _rnnrs
from ..cells import RNNCell, build_for_inputs
from ..layers.core import Dense
from ..wrappers import MultiRNNCell, core_layers, core_state, core_state_parts
from .attention import AttentionWrapper, AttentionWrapperState, BahdanauAttention, LuongAttention

__all__ = ["greedy", "beam"]


def _attention(cell: Any) -> Optional[AttentionWrapper]:
    """``cell`` when it is an ``AttentionWrapper`` the Rust loops can run
    (a core inner cell, one Bahdanau or Luong mechanism, no alignment
    history), else None."""
    if type(cell) is not AttentionWrapper or cell.alignment_history:
        return None
    if type(cell.attention_mechanism) not in (BahdanauAttention, LuongAttention):
        return None
    if core_layers(cell.cell) is None:
        return None
    return cell


def _matrix(embedding: Any, dtype: np.dtype[Any]) -> Optional[np.ndarray]:
    """The ``[V, E]`` embedding matrix in ``dtype`` (one cast per call), or None."""
    matrix = embedding if isinstance(embedding, np.ndarray) else getattr(embedding, "matrix", None)
    if not isinstance(matrix, np.ndarray) or matrix.ndim != 2 or matrix.shape[0] == 0:
        return None
    return np.ascontiguousarray(matrix, dtype=dtype)


def _projection(
    output_layer: Any, cell: Any, dtype: np.dtype[Any]
) -> Optional[tuple[Optional[np.ndarray], Optional[np.ndarray], int]]:
    """``(kernel, bias, V)`` of the output layer in ``dtype`` (None, None and
    the cell's output size without one), or None when it is not a linear
    ``Dense``."""
    if output_layer is None:
        return None, None, int(cell.output_size)
    if type(output_layer) is not Dense or output_layer.activation not in (None, "identity"):
        return None
    if not output_layer.built:
        output_layer.build(cell.output_size, dtype)
    weights = output_layer._weights
    kernel = np.ascontiguousarray(weights["kernel"], dtype=dtype)
    bias = weights.get("bias")
    if bias is not None:
        bias = np.ascontiguousarray(bias, dtype=dtype)
    return kernel, bias, int(kernel.shape[1])


def _prepare(
    cell: Any, embedding: Any, output_layer: Any, start_tokens: Any, initial_state: Any
) -> Optional[tuple[Any, ...]]:
    """The core arguments shared by both loops, or None off the Rust path:
    ``(layers, cores, parts, matrix, kernel, bias, tokens, wrapper)``, the
    last the attention arguments (after the shared ones, in the order
    ``decode_*_attention`` takes them) or None for a plain cell."""
    wrapper = _attention(cell)
    if wrapper is None and isinstance(cell, AttentionWrapper):
        return None
    layers = core_layers(wrapper.cell if wrapper is not None else cell)
    if layers is None:
        return None
    dtype = cell.dtype
    matrix = _matrix(embedding, dtype)
    if matrix is None:
        return None
    build_for_inputs(cell, matrix.shape[1])
    projection = _projection(output_layer, cell, dtype)
    if projection is None or projection[2] > matrix.shape[0]:
        return None
    kernel, bias, _ = projection
    tokens = np.ascontiguousarray(start_tokens, dtype=np.int64).reshape(-1)
    state = cell._check_state("initial_state", initial_state, tokens.shape[0])
    extra = None
    if wrapper is not None:
        inner_w, mech_w, own = wrapper._locked_snapshot()
        mech = wrapper.attention_mechanism
        lengths = mech.memory_sequence_length
        extra = (
            np.ascontiguousarray(state.attention, dtype=dtype),
            np.ascontiguousarray(state.alignments, dtype=dtype),
            np.ascontiguousarray(mech.memory, dtype=dtype),
            None if lengths is None else np.ascontiguousarray(lengths, dtype=np.int64),
            {k: np.asarray(v, dtype=dtype) for k, v in {**mech_w, **own}.items()},
            mech._kind,
            bool(getattr(mech, "normalize", False)),
            bool(getattr(mech, "scale", False)),
            bool(wrapper.output_attention),
        )
        stacked = isinstance(wrapper.cell, MultiRNNCell)
        snapshots = inner_w if stacked else (inner_w,)
        parts = core_state_parts(wrapper.cell, layers, state.cell_state)
        cores = [c._core(w) for c, w in zip(layers, snapshots)]
        return layers, cores, parts, matrix, kernel, bias, tokens, (extra, state)
    parts = core_state_parts(cell, layers, state)
    cores = [c._core(c._locked_snapshot()) for c in layers]
    return layers, cores, parts, matrix, kernel, bias, tokens, None


def _wrapper_state(
    inner: RNNCell,
    layers: list[RNNCell],
    parts: list[list[np.ndarray]],
    attention: np.ndarray,
    alignments: np.ndarray,
    initial: AttentionWrapperState,
    steps: int,
) -> AttentionWrapperState:
    """The ``AttentionWrapperState`` after ``steps`` steps from ``initial``
    (whose ``attention_state`` stays when no step ran)."""
    return AttentionWrapperState(
        cell_state=core_state(inner, layers, parts),
        attention=attention,
        time=int(initial.time) + steps,
        alignments=alignments,
        alignment_history=(),
        attention_state=alignments if steps else initial.attention_state,
    )


def greedy(
    cell: Any,
    embedding: Any,
    output_layer: Any,
    start_tokens: Any,
    end_token: int,
    maximum_iterations: int,
    impute_finished: bool,
    uniforms: Optional[np.ndarray] = None,
    temperature: Optional[float] = 1.0,
    *,
    initial_state: Any,
) -> Optional[tuple[np.ndarray, np.ndarray, np.ndarray, Any]]:
    """Greedy (``uniforms`` None: argmax, first maximum) or sampled decoding
    in Rust, from ``initial_state`` (the cell's state structure for ``B``
    rows) and ``embedding[start_tokens]``.

    ``uniforms``: float64 ``[maximum_iterations, B]`` (row ``b`` at step
    ``t`` draws with ``uniforms[t, b]`` from ``softmax(logits /
    temperature)``, see ``s2s`` sampling rule); ``temperature`` None means
    1. Returns ``(rnn_output [B, T, V], sample_id [B, T] int32, lengths [B]
    int32, final_state)`` batch-major, ``final_state`` in the cell's
    structure; None when the Rust path does not apply.
    """
    prepared = _prepare(cell, embedding, output_layer, start_tokens, initial_state)
    if prepared is None:
        return None
    layers, cores, parts, matrix, kernel, bias, tokens, attention = prepared
    if uniforms is not None:
        uniforms = np.ascontiguousarray(uniforms, dtype=np.float64)
    args = (
        cores,
        parts,
        matrix,
        kernel,
        bias,
        tokens,
        int(end_token),
        int(maximum_iterations),
        bool(impute_finished),
        uniforms,
        1.0 if temperature is None else float(temperature),
    )
    if attention is not None:
        extra, initial = attention
        if tokens.shape[0] % extra[2].shape[0]:
            return None  # the NumPy loop says why (the memory's rows must divide the batch)
        rnn_output, sample_id, lengths, final, att, al = _rnnrs.decode_greedy_attention(*args, *extra)
        state = _wrapper_state(cell.cell, layers, final, att, al, initial, int(sample_id.shape[1]))
        return rnn_output, sample_id, lengths, state
    rnn_output, sample_id, lengths, final = _rnnrs.decode_greedy(*args)
    return rnn_output, sample_id, lengths, core_state(cell, layers, final)


def beam(
    cell: Any,
    embedding: Any,
    output_layer: Any,
    start_tokens: Any,
    end_token: int,
    initial_state: Any,
    beam_width: int,
    maximum_iterations: int,
    length_penalty_weight: float,
) -> Optional[tuple[np.ndarray, np.ndarray, np.ndarray, Any, np.ndarray, np.ndarray, np.ndarray]]:
    """Beam search in Rust with TensorFlow 1.15's semantics, from
    ``initial_state`` given for ``B`` rows (tiled to ``B * beam_width`` rows
    in Rust, row ``b * beam_width + k``).

    Returns ``(step_ids [B, T, beam] int32, parent_ids [B, T, beam] int32,
    scores [B, T, beam], cell_state (the cell's structure, B * beam rows),
    log_probs [B, beam], finished [B, beam] bool, lengths [B, beam] int32)``
    (lengths count the EOS); None when the Rust path does not apply.
    """
    prepared = _prepare(cell, embedding, output_layer, start_tokens, initial_state)
    if prepared is None:
        return None
    layers, cores, parts, matrix, kernel, bias, tokens, attention = prepared
    args = (
        cores,
        parts,
        matrix,
        kernel,
        bias,
        tokens,
        int(end_token),
        int(maximum_iterations),
        int(beam_width),
        float(length_penalty_weight),
    )
    if attention is not None:
        extra, initial = attention
        if tokens.shape[0] * int(beam_width) % extra[2].shape[0]:
            return None  # the NumPy loop says why (the memory's rows must divide the hypotheses)
        step_ids, parent_ids, scores, final, log_probs, finished, lengths, att, al = _rnnrs.decode_beam_attention(
            *args, *extra
        )
        tiled = initial.attention_state if step_ids.shape[1] else np.repeat(initial.attention_state, beam_width, 0)
        state = _wrapper_state(
            cell.cell, layers, final, att, al, initial._replace(attention_state=tiled), int(step_ids.shape[1])
        )
        return step_ids, parent_ids, scores, state, log_probs, finished, lengths
    step_ids, parent_ids, scores, final, log_probs, finished, lengths = _rnnrs.decode_beam(*args)
    return step_ids, parent_ids, scores, core_state(cell, layers, final), log_probs, finished, lengths
