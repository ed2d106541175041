"""Run functions: unroll a cell over time (TensorFlow 1.x ``static_rnn`` /
``dynamic_rnn``), with ``sequence_length`` masking and backpropagation
through time.

Masking (TF1)::

    (output, state)(b, t) = t >= len[b] ? (0, state(b, len[b]-1)) : cell(x(b, t), state(b, t-1))

Every run function takes TensorFlow 1.x's arguments in TensorFlow 1.x's
positional order, then rnnrs's own keyword-only ``training`` and
``return_backprop`` (``dynamic_rnn`` and ``static_rnn`` also take
``checkpoint_every``: gradient checkpointing, for long sequences in bounded
memory). Of TensorFlow's graph-building arguments, ``dtype`` must
be the cell's dtype (a cell's dtype is fixed when it is constructed), and
``parallel_iterations``, ``swap_memory`` and ``scope`` are validated and have
no effect (``scope`` prefixes no names: ``cell.get_weights(scope=...)`` gives
TensorFlow's scoped names).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np

from ._state import LSTMStateTuple as LSTMStateTuple
from ._validate import bounded_int, check_shape, flag, float_array, lengths_array
from ._validate import checkpoint_every as check_checkpoint_every
from .cells import Backward, RNNCell, build_for_inputs, checkpointing, numpy_dtype
from .tfnames import check_scope


class Gradients(NamedTuple):
    """What :class:`Backprop` returns.

    Attributes:
        inputs: ``dLoss/d inputs``, shaped like the inputs (a list for
            ``static_rnn``), zero past each row's length.
        initial_state: ``dLoss/d initial_state``, the state's structure.
        weights: ``dLoss/d weight`` for exactly the keys of ``cell.get_weights()``
            (for the bidirectional functions, a ``(forward, backward)`` pair
            of such dicts).
        memory: for a ``seq2seq.AttentionWrapper`` (also inside wrappers or
            a ``MultiRNNCell``), ``dLoss/d memory``, shaped like its
            mechanism's memory (the encoder's outputs); a dict by weight
            prefix (``"cell_0/memory"``) for several wrappers; else None.
    """

    inputs: Any
    initial_state: Any
    weights: Any
    memory: Any = None


class Backprop:
    """Backpropagation through a finished forward pass.

    Call it with the gradient of the loss with respect to the outputs and/or
    the final state (either may be None, meaning zeros). It may be called
    any number of times; it keeps what the forward pass cached until it is
    dropped. Gradients arriving at padded steps (``t >= len``) are ignored.
    """

    def __init__(self, backward: Callable[[Any, Any], Gradients]) -> None:
        self._backward = backward

    def __call__(self, d_outputs: Any = None, d_state: Any = None) -> Gradients:
        """Returns :class:`Gradients` for ``d_outputs`` (shaped like the
        outputs) and ``d_state`` (shaped like the final state)."""
        return self._backward(d_outputs, d_state)


def _checked_backward(
    cell: RNNCell, backward: Backward, outputs_shape: tuple[int, ...], batch: int, is_list: bool, part: str = ""
) -> Callable[[Any, Any], Gradients]:
    """Wraps a cell's ``backward`` with validation of the caller's gradients
    (named ``d_outputs{part}`` and ``d_state{part}`` in messages, e.g.
    ``d_state[1]`` for the backward cell of a bidirectional pair)."""

    def run(d_outputs: Any, d_state: Any) -> Gradients:
        dy: Optional[np.ndarray] = None
        if d_outputs is not None:
            if is_list:
                dy = _stack_steps("d_outputs" + part, d_outputs, cell.dtype, outputs_shape)
            else:
                dy = float_array("d_outputs" + part, d_outputs, cell.dtype, 3, "shaped like the outputs")
                check_shape("d_outputs" + part, dy, outputs_shape)
        ds = None if d_state is None else cell._check_state("d_state" + part, d_state, batch)
        d_x, d_h0, d_w = backward(dy, ds)
        return Gradients(list(d_x) if is_list else d_x, d_h0, d_w, take_memory_gradients(cell, d_w))

    return run


def _attention_wrappers(cell: Any) -> int:
    r"""How many ``seq2seq.AttentionWrapper``\ s ``cell`` holds (itself, or
    inside wrappers and ``MultiRNNCell`` layers)."""
    count = 1 if getattr(cell, "attention_mechanism", None) is not None else 0
    inner = getattr(cell, "cell", None)
    if isinstance(inner, RNNCell):
        count += _attention_wrappers(inner)
    for part in getattr(cell, "cells", None) or ():
        count += _attention_wrappers(part)
    return count


def take_memory_gradients(cell: Any, d_weights: dict[str, Any]) -> Any:
    """Moves the memory's gradient out of a cell's weight gradients (an
    ``AttentionWrapper`` returns it as ``"memory"``, under its prefix when
    nested: ``"cell_0/memory"``): the one array, a dict by key for several
    wrappers, or None without attention."""
    if not _attention_wrappers(cell):
        return None
    keys = [k for k in d_weights if k == "memory" or k.endswith("/memory")]
    found = {k: d_weights.pop(k) for k in keys}
    return next(iter(found.values())) if len(found) == 1 else (found or None)


def _check_cell(cell: Any, name: str = "cell") -> RNNCell:
    if not isinstance(cell, RNNCell):
        raise TypeError(f"{name}: expected an rnnrs cell (e.g. BasicRNNCell), got {type(cell).__name__}")
    return cell


def _check_tf_options(
    cell: RNNCell, dtype: Any, parallel_iterations: Any, swap_memory: Any, scope: Any, cell_name: str = "cell"
) -> None:
    """Validates TensorFlow 1.x's graph-building arguments of a run function:
    ``dtype`` None or ``cell``'s dtype (a NumPy dtype, its name, or an object
    with ``as_numpy_dtype`` such as ``tf.float32``; native byte order:
    ``">f4"`` on a little-endian machine is refused, the message naming its
    byte order); ``parallel_iterations``
    None or an integer >= 1; ``swap_memory`` a bool; ``scope`` None or a
    scope name. Only ``dtype`` can change anything (by being refused)."""
    if dtype is not None:
        try:
            dt = np.dtype(numpy_dtype(dtype))
        except Exception:  # NumPy raises TypeError, ValueError, even SyntaxError for odd strings
            raise TypeError(f"dtype: expected a float dtype such as numpy.float32 (or None), got {dtype!r}") from None
        if dt != cell.dtype:
            # ">f4" is float32 in the other byte order: say so rather than "expected float32, got float32".
            got = dt.name if dt.isnative else f"{dt.name} in non-native byte order ({dt.str!r})"
            raise ValueError(
                f"dtype: expected {cell.dtype.name}, the dtype of {cell_name} (a cell's dtype is set when it is "
                f"constructed, e.g. BasicRNNCell(n, dtype=np.float64)), got {got}"
            )
    if parallel_iterations is not None:
        bounded_int("parallel_iterations", parallel_iterations, 1)
    flag("swap_memory", swap_memory)
    if scope is not None:
        check_scope(scope)


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


def _forward(
    cell: RNNCell,
    x: np.ndarray,
    sequence_length: Any,
    initial_state: Any,
    time_major: bool,
    training: bool,
    state_name: str = "initial_state",
) -> tuple[np.ndarray, Any, Backward, Optional[np.ndarray]]:
    """Validates the rest of a call and runs the cell: ``(outputs, state, backward, lengths)``."""
    time, batch = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
    build_for_inputs(cell, x.shape[2])
    lengths = lengths_array(sequence_length, batch, time)
    if initial_state is None:
        state = cell.zero_state(batch)
    else:
        state = cell._check_state(state_name, initial_state, batch)
    outputs, final_state, backward = cell._run(
        x, state, lengths, time_major, flag("training", training), cell._locked_snapshot()
    )
    return outputs, final_state, backward, lengths


def _run(
    cell: RNNCell,
    x: np.ndarray,
    sequence_length: Any,
    initial_state: Any,
    time_major: bool,
    training: bool,
    return_backprop: bool,
    is_list: bool,
    every: Optional[int | str] = None,
) -> tuple[Any, ...]:
    return_backprop = flag("return_backprop", return_backprop)
    with checkpointing(every):
        outputs, final_state, backward, _ = _forward(cell, x, sequence_length, initial_state, time_major, training)
    result: list[Any] = [list(outputs) if is_list else outputs, final_state]
    if return_backprop:
        batch = x.shape[1] if time_major else x.shape[0]
        result.append(Backprop(_checked_backward(cell, backward, outputs.shape, batch, is_list)))
    return tuple(result)


def dynamic_rnn(
    cell: RNNCell,
    inputs: Any,
    sequence_length: Any = None,
    initial_state: Any = None,
    dtype: Any = None,
    parallel_iterations: Optional[int] = None,
    swap_memory: bool = False,
    time_major: bool = False,
    scope: Optional[str] = None,
    *,
    training: bool = False,
    return_backprop: bool = False,
    checkpoint_every: Optional[int | str] = None,
) -> tuple[Any, ...]:
    """Runs ``cell`` over a batch of sequences (TensorFlow 1.x ``tf.nn.dynamic_rnn``).

    TensorFlow 1.x's signature and positional order (``dynamic_rnn(cell,
    inputs, sequence_length=None, initial_state=None, dtype=None,
    parallel_iterations=None, swap_memory=False, time_major=False,
    scope=None)``), then rnnrs's keyword-only ``training``, ``return_backprop``
    and ``checkpoint_every``.

    Args:
        cell: an rnnrs cell; built on first use for ``inputs``' last axis.
        inputs: ``[B, T, I]`` array-like (``[T, B, I]`` when ``time_major``);
            integer or other numeric dtypes are cast to ``cell.dtype``.
        sequence_length: optional integers ``[B]``, ``0 <= len <= T``
            (any integer dtype, byte order or alignment, or whole-valued
            floats; booleans raise ``TypeError``). Outputs at ``t >= len[b]``
            are zero; row ``b``'s returned state is its state after step
            ``len[b] - 1`` (the initial state when 0).
        initial_state: the state structure of ``cell.zero_state(B)``; zeros
            when omitted.
        dtype: None or the cell's dtype (``numpy.float32``, ``"float32"``,
            ``tf.float32``-like objects); another one raises ``ValueError``
            naming ``dtype`` (the cell's dtype is set by its constructor).
        parallel_iterations: None or an integer >= 1; no effect.
        swap_memory: a bool; no effect.
        time_major: read ``[T, B, I]`` and return ``[T, B, H]``.
        scope: None or a scope name; no effect (names are not prefixed: see
            ``cell.get_weights(scope=...)`` for TensorFlow's scoped names).
        training: enables dropout in the wrappers that have it (``DropoutWrapper``).
        return_backprop: also return a :class:`Backprop`.
        checkpoint_every: None (the default: the forward pass keeps every
            step's states and gates for ``backprop``), a positive integer
            ``k`` or ``"auto"`` (``k`` about ``sqrt(T)``): gradient
            checkpointing. The forward pass keeps the state only every ``k``
            steps, and ``backprop`` recomputes each segment's steps from its
            checkpoint before backpropagating through it, so memory grows
            like ``T / k + k`` per row instead of ``T``, for about one more
            forward pass of time. ``k`` is rounded up to whole chunks of the
            backward pass's weight-gradient products (32 steps for batches
            of 32 to 255 rows, 2048 for one row), and a call of at most one
            chunk keeps everything.
            Outputs, state and every gradient are bitwise the same as
            without it. It applies to the core cells (also inside wrappers
            and ``MultiRNNCell``; an ``AttentionWrapper``'s own loop keeps
            everything). Without ``return_backprop`` it only lowers the
            forward pass's memory. ``TypeError`` / ``ValueError`` naming
            ``checkpoint_every`` for anything else.

    Returns:
        ``(outputs [B, T, H], state)``, or ``(outputs, state, backprop)``.
    """
    cell = _check_cell(cell)
    _check_tf_options(cell, dtype, parallel_iterations, swap_memory, scope)
    every = check_checkpoint_every(checkpoint_every)
    time_major = flag("time_major", time_major)
    x = float_array("inputs", inputs, cell.dtype, 3, "[time, batch, input]" if time_major else "[batch, time, input]")
    return _run(cell, x, sequence_length, initial_state, time_major, training, return_backprop, False, every)


def static_rnn(
    cell: RNNCell,
    inputs: Optional[Sequence[Any]] = None,
    initial_state: Any = None,
    dtype: Any = None,
    sequence_length: Any = None,
    scope: Optional[str] = None,
    *,
    training: bool = False,
    return_backprop: bool = False,
    input_list: Optional[Sequence[Any]] = None,
    checkpoint_every: Optional[int | str] = None,
) -> tuple[Any, ...]:
    """Runs ``cell`` over a list of per-step inputs (TensorFlow 1.x
    ``tf.nn.static_rnn``): ``inputs`` (also accepted as ``input_list=``) is a
    list of ``T`` arrays ``[B, I]``; returns ``(list of T outputs [B, H],
    state)`` (and a :class:`Backprop` when ``return_backprop``; its
    ``d_outputs`` and ``Gradients.inputs`` are lists too). Masking as in
    :func:`dynamic_rnn`.

    TensorFlow 1.x's signature and positional order (``static_rnn(cell,
    inputs, initial_state=None, dtype=None, sequence_length=None,
    scope=None)``: the third positional argument is the initial state), then
    rnnrs's keyword-only ``training``, ``return_backprop``, ``input_list``
    and ``checkpoint_every``. ``dtype``, ``scope`` and ``checkpoint_every`` as
    in :func:`dynamic_rnn`."""
    cell = _check_cell(cell)
    if (input_list is None) == (inputs is None):
        raise TypeError(
            "inputs: expected exactly one of inputs= or input_list=, got "
            + ("both" if inputs is not None else "neither")
        )
    _check_tf_options(cell, dtype, None, False, scope)
    every = check_checkpoint_every(checkpoint_every)
    x = _stack_steps("inputs", input_list if inputs is None else inputs, cell.dtype, None)
    return _run(cell, x, sequence_length, initial_state, True, training, return_backprop, True, every)


def reverse_within_lengths(x: np.ndarray, lengths: Optional[np.ndarray], time_major: bool) -> np.ndarray:
    """Reverses each row's first ``len`` steps, leaving its padding in place
    (TensorFlow's ``reverse_sequence``); the whole time axis when ``lengths``
    is None. Applying it twice gives ``x`` back."""
    time_axis = 0 if time_major else 1
    if lengths is None:
        return np.flip(x, axis=time_axis)
    time = x.shape[time_axis]
    steps = np.arange(time)[None, :]
    source = np.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)  # [B, T]
    rows = np.arange(len(lengths))[:, None]
    return x[source.T, rows.T] if time_major else x[rows, source]


def _check_pair(name: str, value: Any) -> tuple[Any, Any]:
    if value is None:
        return None, None
    if isinstance(value, (np.ndarray, LSTMStateTuple)) or not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name}: expected a pair (forward, backward), got {type(value).__name__}")
    return value[0], value[1]


def bidirectional_dynamic_rnn(
    cell_fw: RNNCell,
    cell_bw: RNNCell,
    inputs: Any,
    sequence_length: Any = None,
    initial_state_fw: Any = None,
    initial_state_bw: Any = None,
    dtype: Any = None,
    parallel_iterations: Optional[int] = None,
    swap_memory: bool = False,
    time_major: bool = False,
    scope: Optional[str] = None,
    *,
    training: bool = False,
    return_backprop: bool = False,
    checkpoint_every: Optional[int | str] = None,
) -> tuple[Any, ...]:
    """Runs a forward and a backward cell over a batch of sequences
    (TensorFlow 1.x ``tf.nn.bidirectional_dynamic_rnn``).

    TensorFlow 1.x's signature and positional order
    (``bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs,
    sequence_length=None, initial_state_fw=None, initial_state_bw=None,
    dtype=None, parallel_iterations=None, swap_memory=False,
    time_major=False, scope=None)``), then rnnrs's keyword-only ``training``,
    ``return_backprop`` and ``checkpoint_every`` (for both cells, as in
    :func:`dynamic_rnn`). ``dtype`` must be both cells' dtype;
    ``parallel_iterations``, ``swap_memory`` and ``scope`` have no effect
    (TensorFlow's names: ``cell_fw.get_weights(scope="bidirectional_rnn/fw")``).

    ``cell_bw`` reads each row reversed within its own length (TensorFlow's
    ``reverse_sequence``); its outputs are returned re-reversed, in input
    order. Returns ``((outputs_fw, outputs_bw), (state_fw, state_bw))``, plus
    a :class:`Backprop` when ``return_backprop``: it takes ``d_outputs`` and
    ``d_state`` as ``(forward, backward)`` pairs (either pair, or either
    element, may be None) and returns ``Gradients(inputs, (d_initial_fw,
    d_initial_bw), (d_weights_fw, d_weights_bw))``. Other arguments as in
    :func:`dynamic_rnn`.
    """
    cell_fw = _check_cell(cell_fw, "cell_fw")
    cell_bw = _check_cell(cell_bw, "cell_bw")
    if cell_fw.dtype != cell_bw.dtype:
        raise ValueError(f"cell_bw: expected dtype {cell_fw.dtype} (cell_fw's), got {cell_bw.dtype}")
    _check_tf_options(cell_fw, dtype, parallel_iterations, swap_memory, scope, "cell_fw and cell_bw")
    time_major = flag("time_major", time_major)
    return_backprop = flag("return_backprop", return_backprop)
    every = check_checkpoint_every(checkpoint_every)
    x = float_array(
        "inputs", inputs, cell_fw.dtype, 3, "[time, batch, input]" if time_major else "[batch, time, input]"
    )
    with checkpointing(every):
        out_fw, state_fw, back_fw, lengths = _forward(
            cell_fw, x, sequence_length, initial_state_fw, time_major, training, "initial_state_fw"
        )
        x_rev = reverse_within_lengths(x, lengths, time_major)
        out_bw_rev, state_bw, back_bw, _ = _forward(
            cell_bw, x_rev, lengths, initial_state_bw, time_major, training, "initial_state_bw"
        )
    out_bw = reverse_within_lengths(out_bw_rev, lengths, time_major)
    result: list[Any] = [(out_fw, out_bw), (state_fw, state_bw)]
    if return_backprop:
        batch = x.shape[1] if time_major else x.shape[0]
        run_fw = _checked_backward(cell_fw, back_fw, out_fw.shape, batch, False, "[0]")
        run_bw = _checked_backward(cell_bw, back_bw, out_bw.shape, batch, False, "[1]")

        def backward(d_outputs: Any, d_state: Any) -> Gradients:
            dy_fw, dy_bw = _check_pair("d_outputs", d_outputs)
            ds_fw, ds_bw = _check_pair("d_state", d_state)
            if dy_bw is not None:
                dy_bw = float_array("d_outputs[1]", dy_bw, cell_bw.dtype, 3, "shaped like the outputs")
                check_shape("d_outputs[1]", dy_bw, out_bw.shape)
                dy_bw = reverse_within_lengths(dy_bw, lengths, time_major)
            g_fw = run_fw(dy_fw, ds_fw)
            g_bw = run_bw(dy_bw, ds_bw)
            d_inputs = g_fw.inputs + reverse_within_lengths(g_bw.inputs, lengths, time_major)
            return Gradients(d_inputs, (g_fw.initial_state, g_bw.initial_state), (g_fw.weights, g_bw.weights))

        result.append(Backprop(backward))
    return tuple(result)


def static_bidirectional_rnn(
    cell_fw: RNNCell,
    cell_bw: RNNCell,
    inputs: Sequence[Any],
    initial_state_fw: Any = None,
    initial_state_bw: Any = None,
    dtype: Any = None,
    sequence_length: Any = None,
    scope: Optional[str] = None,
    *,
    training: bool = False,
    return_backprop: bool = False,
) -> tuple[Any, ...]:
    """TensorFlow 1.x ``tf.nn.static_bidirectional_rnn``, in its signature and
    positional order (``static_bidirectional_rnn(cell_fw, cell_bw, inputs,
    initial_state_fw=None, initial_state_bw=None, dtype=None,
    sequence_length=None, scope=None)``; ``dtype`` and ``scope`` as in
    :func:`bidirectional_dynamic_rnn`), then rnnrs's keyword-only
    ``training`` and ``return_backprop``. ``inputs`` is a list
    of ``T`` arrays ``[B, I]``; returns ``(outputs, state_fw, state_bw)``
    where ``outputs`` is a list of ``T`` arrays ``[B, H_fw + H_bw]`` (the
    forward and backward outputs concatenated). Its :class:`Backprop` takes
    ``d_outputs`` as such a list and ``d_state`` as a ``(forward, backward)``
    pair, and returns ``Gradients(list of d_inputs, (d_initial_fw,
    d_initial_bw), (d_weights_fw, d_weights_bw))``."""
    cell_fw = _check_cell(cell_fw, "cell_fw")
    x = _stack_steps("inputs", inputs, cell_fw.dtype, None)  # [T, B, I]
    res = bidirectional_dynamic_rnn(
        cell_fw,
        cell_bw,
        x,
        sequence_length,
        initial_state_fw,
        initial_state_bw,
        dtype,
        time_major=True,
        scope=scope,
        training=training,
        return_backprop=return_backprop,
    )
    (out_fw, out_bw), (state_fw, state_bw) = res[0], res[1]
    width_fw = out_fw.shape[2]
    result: list[Any] = [list(np.concatenate([out_fw, out_bw], axis=2)), state_fw, state_bw]
    if return_backprop:
        inner: Backprop = res[2]
        shape = (out_fw.shape[0], out_fw.shape[1], width_fw + out_bw.shape[2])

        def backward(d_outputs: Any, d_state: Any) -> Gradients:
            pair = None
            if d_outputs is not None:
                dy = _stack_steps("d_outputs", d_outputs, cell_fw.dtype, shape)
                pair = (dy[..., :width_fw], dy[..., width_fw:])
            g = inner(pair, d_state)
            return Gradients(list(g.inputs), g.initial_state, g.weights)

        result.append(Backprop(backward))
    return tuple(result)


def _cell_list(name: str, value: Any) -> list[RNNCell]:
    if isinstance(value, RNNCell) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{name}: expected a list of rnnrs cells (one per layer), got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name}: expected a non-empty list of cells, got an empty list")
    return [_check_cell(c, f"{name}[{i}]") for i, c in enumerate(value)]


def _per_layer(name: str, value: Any, layers: int) -> list[Any]:
    if value is None:
        return [None] * layers
    if isinstance(value, (np.ndarray, LSTMStateTuple)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{name}: expected a list of {layers} states (one per layer), got {type(value).__name__}")
    if len(value) != layers:
        raise ValueError(f"{name}: expected a list of {layers} states (one per layer), got {len(value)}")
    return list(value)


def _layer_message(message: str, layer: int) -> str:
    """An error of :func:`bidirectional_dynamic_rnn` run as layer ``layer``
    of a stack, renamed after the stack's own arguments."""
    for one, many in (("initial_state_fw", "initial_states_fw"), ("initial_state_bw", "initial_states_bw")):
        if message.startswith(one):
            return f"{many}[{layer}]" + message[len(one) :]
    if layer > 0 and message.startswith("inputs"):
        return (
            f"cells_fw[{layer}]/cells_bw[{layer}]: layer {layer} reads layer {layer - 1}'s two directions"
            f" concatenated;{message[len('inputs') :].lstrip(':')}"
        )
    return message


def stack_bidirectional_dynamic_rnn(
    cells_fw: Sequence[RNNCell],
    cells_bw: Sequence[RNNCell],
    inputs: Any,
    initial_states_fw: Optional[Sequence[Any]] = None,
    initial_states_bw: Optional[Sequence[Any]] = None,
    dtype: Any = None,
    sequence_length: Any = None,
    parallel_iterations: Optional[int] = None,
    time_major: bool = False,
    scope: Any = None,
    swap_memory: bool = False,
    *,
    training: bool = False,
    return_backprop: bool = False,
) -> tuple[Any, ...]:
    """Stacked bidirectional layers (TensorFlow 1.x
    ``tf.contrib.rnn.stack_bidirectional_dynamic_rnn``): layer ``i`` runs
    ``cells_fw[i]`` and ``cells_bw[i]`` with :func:`bidirectional_dynamic_rnn`
    over the concatenation ``[outputs_fw, outputs_bw]`` (last axis) of layer
    ``i - 1`` (layer 0 reads ``inputs``). This is also what a PyTorch
    ``nn.LSTM/GRU/RNN(bidirectional=True, num_layers=n)`` computes; see
    :func:`rnnrs.convert.from_torch` for its weights.

    Args:
        cells_fw, cells_bw: lists of rnnrs cells, one per layer, of equal
            length and one dtype; each is built on first use for the width
            it reads.
        inputs: ``[B, T, I]`` (``[T, B, I]`` when ``time_major``).
        initial_states_fw, initial_states_bw: None (zeros) or a list of one
            state per layer (an element may be None: zeros).
        dtype: None or the cells' dtype (TensorFlow's dtype of the zero
            states), as in :func:`dynamic_rnn`: a NumPy dtype, its name, or
            an object with ``as_numpy_dtype`` such as ``tf.float32``; another
            dtype raises ``ValueError``, an unreadable one ``TypeError``.
        sequence_length: optional ``[B]`` lengths, ``0 <= len <= T``,
            masking every layer as in :func:`dynamic_rnn`.
        parallel_iterations, scope, swap_memory: accepted for TensorFlow
            compatibility and validated as in :func:`dynamic_rnn`
            (``parallel_iterations`` None or an integer >= 1,
            ``swap_memory`` a bool, ``scope`` None or a TensorFlow scope
            name); they have no effect.
        time_major, training: as in :func:`dynamic_rnn`.
        return_backprop: also return a :class:`Backprop`. It takes
            ``d_outputs`` shaped like the outputs and ``d_state`` as a pair
            ``(d_states_fw, d_states_bw)`` of per-layer lists (any of them,
            or their elements, may be None) and returns ``Gradients(inputs,
            (d_initial_states_fw, d_initial_states_bw), (d_weights_fw,
            d_weights_bw))`` with per-layer tuples of states and lists of
            weight dicts.

    Returns:
        ``(outputs [B, T, H_fw + H_bw], states_fw, states_bw)`` where the
        states are tuples of each layer's final state, plus the
        :class:`Backprop` when ``return_backprop``.
    """
    fws = _cell_list("cells_fw", cells_fw)
    bws = _cell_list("cells_bw", cells_bw)
    if len(fws) != len(bws):
        raise ValueError(f"cells_bw: expected {len(fws)} cells (as many as cells_fw), got {len(bws)}")
    n = len(fws)
    for name, cells in (("cells_fw", fws), ("cells_bw", bws)):
        for i, c in enumerate(cells):
            if c.dtype != fws[0].dtype:
                raise ValueError(f"{name}[{i}]: expected dtype {fws[0].dtype} (cells_fw[0]'s), got {c.dtype}")
    _check_tf_options(fws[0], dtype, parallel_iterations, swap_memory, scope, "cells_fw and cells_bw")
    states_fw = _per_layer("initial_states_fw", initial_states_fw, n)
    states_bw = _per_layer("initial_states_bw", initial_states_bw, n)
    time_major = flag("time_major", time_major)
    return_backprop = flag("return_backprop", return_backprop)
    x: Any = inputs
    finals_fw: list[Any] = []
    finals_bw: list[Any] = []
    backprops: list[Backprop] = []
    widths: list[int] = []
    for i in range(n):
        try:
            res = bidirectional_dynamic_rnn(
                cell_fw=fws[i],
                cell_bw=bws[i],
                inputs=x,
                sequence_length=sequence_length,
                initial_state_fw=states_fw[i],
                initial_state_bw=states_bw[i],
                time_major=time_major,
                training=training,
                return_backprop=return_backprop,
            )
        except (TypeError, ValueError) as e:
            raise type(e)(_layer_message(str(e), i)) from e
        (out_fw, out_bw), (state_fw, state_bw) = res[0], res[1]
        finals_fw.append(state_fw)
        finals_bw.append(state_bw)
        widths.append(out_fw.shape[2])
        if return_backprop:
            backprops.append(res[2])
        x = np.concatenate([out_fw, out_bw], axis=2)
    result: list[Any] = [x, tuple(finals_fw), tuple(finals_bw)]
    if return_backprop:
        out_shape = x.shape
        out_dtype = fws[0].dtype

        def backward(d_outputs: Any, d_state: Any) -> Gradients:
            d_states_fw, d_states_bw = _check_pair("d_state", d_state)
            ds_fw = _per_layer("d_state[0]", d_states_fw, n)
            ds_bw = _per_layer("d_state[1]", d_states_bw, n)
            dy: Optional[np.ndarray] = None
            if d_outputs is not None:
                dy = float_array("d_outputs", d_outputs, out_dtype, 3, "shaped like the outputs")
                check_shape("d_outputs", dy, out_shape)
            d_init_fw: list[Any] = [None] * n
            d_init_bw: list[Any] = [None] * n
            d_w_fw: list[Any] = [None] * n
            d_w_bw: list[Any] = [None] * n
            for i in reversed(range(n)):
                pair = None if dy is None else (dy[..., : widths[i]], dy[..., widths[i] :])
                g = backprops[i](pair, (ds_fw[i], ds_bw[i]))
                dy = g.inputs
                d_init_fw[i], d_init_bw[i] = g.initial_state
                d_w_fw[i], d_w_bw[i] = g.weights
            assert dy is not None
            return Gradients(dy, (tuple(d_init_fw), tuple(d_init_bw)), (d_w_fw, d_w_bw))

        result.append(Backprop(backward))
    return tuple(result)
