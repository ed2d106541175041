"""The named tuples the basic decoder returns (TensorFlow 1.x
``tf.contrib.seq2seq.BasicDecoderOutput``) and its gradients."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple


class BasicDecoderOutput(NamedTuple):
    """What :class:`~rnnrs.seq2seq.BasicDecoder` emits.

    Attributes:
        rnn_output: ``[B, T, V]`` (``[T, B, V]`` when ``output_time_major``):
            the output layer applied to the cell's output (the cell's output
            without an output layer).
        sample_id: ``[B, T]`` int32 (``[T, B]``): the helper's choice at each
            step (the argmax for the greedy and training helpers, the sampled
            id for the sampling helpers, -1 where the scheduled helper read
            the given input).
    """

    rnn_output: Any
    sample_id: Any


class DecoderGradients(NamedTuple):
    """What a decoder's backprop returns.

    Attributes:
        initial_state: ``dLoss/d initial_state``, the cell's state structure.
        inputs: ``dLoss/d inputs`` of a training helper, shaped like the
            ``inputs`` it was given (zero where a row did not read them);
            None for the embedding helpers.
        weights: ``dLoss/d weight`` for the keys of ``cell.get_weights()``.
        output_layer: ``dLoss/d weight`` for the keys of the output layer's
            ``get_weights()``; None without an output layer.
        embedding: ``dLoss/d`` of the ``[V, E]`` embedding matrix (the
            input gradients of every step scatter-added at the ids fed);
            None for a callable embedding and for ``TrainingHelper``.
        memory: for an ``AttentionWrapper`` cell (also inside wrappers or a
            ``MultiRNNCell``), ``dLoss/d`` its mechanism's memory (the
            encoder's outputs); a dict by weight prefix for several; else None.
    """

    initial_state: Any
    inputs: Any
    weights: Any
    output_layer: Any
    embedding: Any
    memory: Any = None


class DecoderBackprop:
    """Backpropagation through a finished decode (``dynamic_decode(...,
    return_backprop=True)``'s fourth value).

    Call it with ``d_rnn_output`` (shaped like ``outputs.rnn_output``) and/or
    ``d_state`` (shaped like the final state); either may be None (zeros).
    It may be called any number of times. Returns :class:`DecoderGradients`.
    """

    def __init__(self, backward: Callable[[Any, Any], DecoderGradients]) -> None:
        self._backward = backward

    def __call__(self, d_rnn_output: Any = None, d_state: Any = None) -> DecoderGradients:
        """:class:`DecoderGradients` for ``d_rnn_output`` and ``d_state``."""
        return self._backward(d_rnn_output, d_state)
