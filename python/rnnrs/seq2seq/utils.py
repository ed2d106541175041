"""``tile_batch`` (TensorFlow 1.x ``tf.contrib.seq2seq.tile_batch``)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .._validate import numeric_array, positive_int
from ..cells import check_name

__all__ = ["tile_batch"]


def tile_batch(t: Any, multiplier: int, name: Optional[str] = None) -> Any:
    """Repeats every batch row ``multiplier`` times in place (TensorFlow 1.x
    ``tf.contrib.seq2seq.tile_batch``): rows ``t0, t1`` become ``t0, t0,
    t1, t1`` for ``multiplier=2``, the layout a beam search decoder uses
    (row ``b * multiplier + k``).

    Args:
        t: an array ``[B, ...]`` (rank >= 1) or a nested structure of them:
            ``LSTMStateTuple`` and other named tuples, tuples, lists and dicts
            keep their type; None entries pass through. An
            ``AttentionWrapperState`` is tiled field by field (its ``time``
            kept, its ``alignment_history`` ``[steps, B, Tm]`` along the
            batch), where TensorFlow 1.15 fails on its scalar ``time``.
        multiplier: an integer >= 1.
        name: None or a scope name; no effect.

    Returns:
        The same structure with each array ``[B * multiplier, ...]`` (its
        dtype kept).
    """
    multiplier = positive_int("multiplier", multiplier)
    check_name(name)
    return _tile(t, multiplier, "t")


def _tile(t: Any, multiplier: int, where: str) -> Any:
    if t is None:
        return None
    if callable(getattr(t, "_map_rows", None)):  # AttentionWrapperState: its time is not [batch, ...]
        from .._state import map_state

        return t._map_rows(map_state, lambda _c, a: _tile(a, multiplier, where), t)
    if isinstance(t, tuple) and hasattr(t, "_fields"):  # a named tuple: LSTMStateTuple, ...
        return type(t)(*(_tile(v, multiplier, f"{where}.{f}") for f, v in zip(t._fields, t)))
    if isinstance(t, (tuple, list)):
        return type(t)(_tile(v, multiplier, f"{where}[{i}]") for i, v in enumerate(t))
    if isinstance(t, dict):
        return {k: _tile(v, multiplier, f"{where}[{k!r}]") for k, v in t.items()}
    arr = numeric_array(where, t, "an array [batch, ...] or a structure of them")
    if arr.ndim < 1:
        raise ValueError(f"{where}: expected an array of rank >= 1 ([batch, ...]), got a scalar")
    return np.repeat(arr, multiplier, axis=0)
