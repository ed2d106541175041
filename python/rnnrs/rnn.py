"""Run functions: unroll a cell over time (TensorFlow 1.x ``static_rnn`` /
``dynamic_rnn``), with ``sequence_length`` masking and backpropagation
through time.

Masking (TF1)::

    (output, state)(b, t) = t >= len[b] ? (0, state(b, len[b]-1)) : cell(x(b, t), state(b, t-1))
"""

from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Sequence, Union

import numpy as np

from ._validate import check_shape, float_array, lengths_array
from .cells import Backward, RNNCell


class LSTMStateTuple(NamedTuple):
    """State of an LSTM cell: ``c`` (the cell state) and ``h`` (the output)."""

    c: np.ndarray
    h: np.ndarray


class Gradients(NamedTuple):
    """What :class:`Backprop` returns.

    Attributes:
        inputs: ``dLoss/d inputs``, shaped like the inputs (a list for
            ``static_rnn``), zero past each row's length.
        initial_state: ``dLoss/d initial_state``, the state's structure.
        weights: ``dLoss/d weight`` for exactly the keys of ``cell.get_weights()``.
    """

    inputs: Any
    initial_state: Any
    weights: dict[str, np.ndarray]


class Backprop:
    """Backpropagation through a finished forward pass.

    Call it with the gradient of the loss with respect to the outputs and/or
    the final state (either may be None, meaning zeros). It may be called
    any number of times; it keeps what the forward pass cached until it is
    dropped. Gradients arriving at padded steps (``t >= len``) are ignored.
    """

    def __init__(
        self,
        cell: RNNCell,
        backward: Backward,
        outputs_shape: tuple[int, ...],
        batch: int,
        is_list: bool,
    ) -> None:
        self._cell = cell
        self._backward = backward
        self._outputs_shape = outputs_shape
        self._batch = batch
        self._is_list = is_list

    def __call__(self, d_outputs: Any = None, d_state: Any = None) -> Gradients:
        """Returns :class:`Gradients` for ``d_outputs`` (shaped like the
        outputs) and ``d_state`` (shaped like the final state)."""
        dtype = self._cell.dtype
        dy: Optional[np.ndarray] = None
        if d_outputs is not None:
            if self._is_list:
                dy = _stack_steps("d_outputs", d_outputs, dtype, self._outputs_shape)
            else:
                dy = float_array("d_outputs", d_outputs, dtype, 3, "shaped like the outputs")
                check_shape("d_outputs", dy, self._outputs_shape)
        ds = None
        if d_state is not None:
            ds = self._cell._check_state("d_state", d_state, self._batch)
        d_x, d_h0, d_w = self._backward(dy, ds)
        return Gradients(list(d_x) if self._is_list else d_x, d_h0, d_w)


def _check_cell(cell: Any) -> RNNCell:
    if not isinstance(cell, RNNCell):
        raise TypeError(f"cell: expected an rnnrs cell (e.g. BasicRNNCell), got {type(cell).__name__}")
    return cell


def _stack_steps(name: str, steps: Any, dtype: np.dtype[Any], shape: Optional[tuple[int, ...]]) -> np.ndarray:
    """A list of ``[B, C]`` arrays → one ``[T, B, C]`` array."""
    if isinstance(steps, np.ndarray) or not isinstance(steps, Sequence):
        raise TypeError(f"{name}: expected a list of 2-d arrays (one per time step), got {type(steps).__name__}")
    if shape is not None and len(steps) != shape[0]:
        raise ValueError(f"{name}: expected a list of {shape[0]} arrays, got {len(steps)}")
    arrays = [float_array(f"{name}[{t}]", a, dtype, 2, "[batch, size]") for t, a in enumerate(steps)]
    if not arrays:
        raise ValueError(f"{name}: expected a non-empty list of 2-d arrays, got an empty list")
    first = arrays[0].shape if shape is None else shape[1:]
    for t, a in enumerate(arrays):
        check_shape(f"{name}[{t}]", a, tuple(first))
    return np.stack(arrays)


def _run(
    cell: RNNCell,
    x: np.ndarray,
    sequence_length: Any,
    initial_state: Any,
    time_major: bool,
    training: bool,
    return_backprop: bool,
    is_list: bool,
) -> tuple[Any, ...]:
    time, batch = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
    cell.build(x.shape[2])
    lengths = lengths_array(sequence_length, batch, time)
    if initial_state is None:
        state = cell.zero_state(batch)
    else:
        state = cell._check_state("initial_state", initial_state, batch)
    outputs, final_state, backward = cell._run(x, state, lengths, time_major, bool(training))
    result: list[Any] = [list(outputs) if is_list else outputs, final_state]
    if return_backprop:
        result.append(Backprop(cell, backward, outputs.shape, batch, is_list))
    return tuple(result)


def dynamic_rnn(
    cell: RNNCell,
    inputs: Any,
    sequence_length: Any = None,
    initial_state: Any = None,
    time_major: bool = False,
    training: bool = False,
    return_backprop: bool = False,
) -> tuple[Any, ...]:
    """Runs ``cell`` over a batch of sequences (TensorFlow 1.x ``tf.nn.dynamic_rnn``).

    Args:
        cell: an rnnrs cell; built on first use for ``inputs``' last axis.
        inputs: ``[B, T, I]`` array-like (``[T, B, I]`` when ``time_major``);
            integer or other numeric dtypes are cast to ``cell.dtype``.
        sequence_length: optional integers ``[B]``, ``0 <= len <= T``.
            Outputs at ``t >= len[b]`` are zero; row ``b``'s returned state is
            its state after step ``len[b] - 1`` (the initial state when 0).
        initial_state: the state structure of ``cell.zero_state(B)``; zeros
            when omitted.
        time_major: read ``[T, B, I]`` and return ``[T, B, H]``.
        training: enables dropout in wrappers that have it (none yet).
        return_backprop: also return a :class:`Backprop`.

    Returns:
        ``(outputs [B, T, H], state)``, or ``(outputs, state, backprop)``.
    """
    cell = _check_cell(cell)
    x = float_array("inputs", inputs, cell.dtype, 3, "[time, batch, input]" if time_major else "[batch, time, input]")
    return _run(cell, x, sequence_length, initial_state, bool(time_major), training, return_backprop, False)


def static_rnn(
    cell: RNNCell,
    input_list: Optional[Sequence[Any]] = None,
    sequence_length: Any = None,
    initial_state: Any = None,
    training: bool = False,
    return_backprop: bool = False,
    *,
    inputs: Optional[Sequence[Any]] = None,
) -> tuple[Any, ...]:
    """Runs ``cell`` over a list of per-step inputs (TensorFlow 1.x
    ``tf.nn.static_rnn``): ``input_list`` (also accepted as ``inputs=``, its
    TensorFlow name) is a list of ``T`` arrays ``[B, I]``;
    returns ``(list of T outputs [B, H], state)`` (and a :class:`Backprop`
    when ``return_backprop``; its ``d_outputs`` and ``Gradients.inputs``
    are lists too). Masking as in :func:`dynamic_rnn`."""
    cell = _check_cell(cell)
    if (input_list is None) == (inputs is None):
        raise TypeError("input_list: expected exactly one of input_list= or inputs=, got "
                        + ("both" if inputs is not None else "neither"))
    x = _stack_steps("inputs", input_list if inputs is None else inputs, cell.dtype, None)
    return _run(cell, x, sequence_length, initial_state, True, training, return_backprop, True)


Outputs = Union[np.ndarray, List[np.ndarray]]
