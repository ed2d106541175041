"""``dynamic_decode`` (TensorFlow 1.x ``tf.contrib.seq2seq.dynamic_decode``)."""

from __future__ import annotations

from typing import Any, Optional

from .._validate import flag
from ..rnn import _check_tf_options
from ._common import DEFAULT_MAXIMUM_ITERATIONS, maximum_iterations_arg

__all__ = ["dynamic_decode", "DEFAULT_MAXIMUM_ITERATIONS"]


def dynamic_decode(
    decoder: Any,
    output_time_major: bool = False,
    impute_finished: bool = False,
    maximum_iterations: Optional[int] = None,
    parallel_iterations: int = 32,
    swap_memory: bool = False,
    scope: Optional[str] = None,
    *,
    training: bool = False,
    return_backprop: bool = False,
) -> tuple[Any, ...]:
    """Runs ``decoder`` until every row has finished or ``maximum_iterations``
    steps have run (TensorFlow 1.x ``tf.contrib.seq2seq.dynamic_decode``).

    TensorFlow 1.x's signature and positional order (``dynamic_decode(decoder,
    output_time_major=False, impute_finished=False, maximum_iterations=None,
    parallel_iterations=32, swap_memory=False, scope=None)``), then rnnrs's
    keyword-only ``training`` and ``return_backprop``.

    Args:
        decoder: a :class:`BasicDecoder` (or a ``BeamSearchDecoder``).
        output_time_major: return ``[T, B, ...]`` outputs instead of ``[B, T, ...]``.
        impute_finished: rows finished before a step output zeros there
            (``sample_id`` 0) and keep their state, and leave the step's
            computation. With False (TensorFlow's default) finished rows
            keep computing: outputs after their end and an evolving final
            state, as in TensorFlow.
        maximum_iterations: None or an integer >= 0 (``TypeError`` for
            bools, floats and strings, ``ValueError`` below 0): at most that
            many steps; a row still running then gets that length. 0 runs no
            step (``T = 0``). None: a ``TrainingHelper`` (and scheduled
            sampling) runs its longest ``sequence_length``; a decode feeding
            back its own outputs (greedy, sampled, beam) stops after
            :data:`DEFAULT_MAXIMUM_ITERATIONS` (1000) steps, with a
            ``RuntimeWarning`` naming ``maximum_iterations`` if rows were
            still running.
        parallel_iterations: an integer >= 1; no effect.
        swap_memory: a bool; no effect.
        scope: None or a scope name; no effect.
        training: enables dropout in the wrappers that have it (``DropoutWrapper``).
        return_backprop: also return a backprop function (see below).

    Returns:
        ``(outputs, final_state, lengths)``: ``outputs`` a
        ``BasicDecoderOutput(rnn_output [B, T, V], sample_id [B, T] int32)``,
        ``final_state`` the cell's state structure, ``lengths`` int32 ``[B]``:
        the 1-based step at which each row finished, the step emitting the
        end token included (a row that never finishes gets
        ``maximum_iterations``); ``T = max(lengths)`` (0 when no step ran).

        With ``return_backprop`` a fourth value ``backprop(d_rnn_output=None,
        d_state=None)`` returns ``DecoderGradients(initial_state, inputs,
        weights, output_layer, embedding)``. A decode feeding back its own
        ids is then re-run teacher-forced on the ids it fed (held constant),
        and the returned ``rnn_output`` and ``final_state`` come from that
        run (they equal the decode's up to rounding, without dropout).
    """
    decode = getattr(decoder, "_decode", None)
    if decode is None or not hasattr(decoder, "cell"):
        raise TypeError(f"decoder: expected an rnnrs.seq2seq decoder (e.g. BasicDecoder), got {type(decoder).__name__}")
    output_time_major = flag("output_time_major", output_time_major)
    impute_finished = flag("impute_finished", impute_finished)
    if maximum_iterations is not None:
        maximum_iterations = maximum_iterations_arg(maximum_iterations, 0)
    _check_tf_options(decoder.cell, None, parallel_iterations, swap_memory, scope)
    training = flag("training", training)
    return_backprop = flag("return_backprop", return_backprop)
    result: tuple[Any, ...] = decode(maximum_iterations, output_time_major, impute_finished, training, return_backprop)
    return result
