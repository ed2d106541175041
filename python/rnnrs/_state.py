"""State structures: an array, an ``LSTMStateTuple(c, h)``, or a tuple of
those (``MultiRNNCell``), and a map over them."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np


class LSTMStateTuple(NamedTuple):
    """State of an LSTM cell: ``c`` (the cell state) and ``h`` (the output)."""

    c: np.ndarray
    h: np.ndarray


def map_state(fn: Callable[..., Any], *states: Any, _is_c: bool = False) -> Any:
    """Applies ``fn(is_lstm_c, *arrays)`` leaf by leaf over states of one
    structure; ``is_lstm_c`` is True for the ``c`` part of an
    ``LSTMStateTuple`` (which TensorFlow's ``DropoutWrapper`` leaves alone)."""
    first = states[0]
    rows = getattr(first, "_map_rows", None)  # a structure with fields that are not [batch, ...] arrays
    if rows is not None:
        return rows(map_state, fn, *states)
    if isinstance(first, LSTMStateTuple):
        return LSTMStateTuple(
            map_state(fn, *(s[0] for s in states), _is_c=True),
            map_state(fn, *(s[1] for s in states)),
        )
    if isinstance(first, (tuple, list)):
        return tuple(map_state(fn, *parts) for parts in zip(*states))
    return fn(_is_c, *states)
