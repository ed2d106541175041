"""Data helpers: variable-length sequences to one padded array.

``pad_sequences`` is Keras' (``keras.utils.pad_sequences``), with the same
arguments, defaults and results; ``sequence_lengths`` gives the lengths to
pass as ``sequence_length``::

    ids = [[3, 1, 4], [1, 5], [9, 2, 6, 5, 3]]
    x = rnnrs.utils.pad_sequences(ids, maxlen=4, padding="post", truncating="post")
    lengths = rnnrs.utils.sequence_lengths(ids, maxlen=4)      # [3, 2, 4]
    model.fit(x, y, sequence_length=lengths)

rnnrs reads the steps ``t < sequence_length[b]`` of each row, so pad with
``padding="post"`` when passing lengths (Keras' default ``"pre"`` puts the
padding first, where those steps are).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._validate import bounded_int, numeric_array

__all__ = ["pad_sequences", "sequence_lengths"]

_SIDES = ("pre", "post")


def _side(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected 'pre' or 'post', got {type(value).__name__} {value!r}")
    if value not in _SIDES:
        raise ValueError(f"{name}: expected 'pre' or 'post', got {value!r}")
    return value


def _rows(sequences: Any) -> Any:
    """``sequences`` as something with ``len`` and indexing, each item sized."""
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        raise TypeError(f"sequences: expected a list of sequences, got {type(sequences).__name__}")
    if isinstance(sequences, np.ndarray) and sequences.ndim == 0:
        raise TypeError("sequences: expected a list of sequences, got a 0-d array")
    rows = sequences if isinstance(sequences, (list, tuple, np.ndarray)) else list(sequences)
    for i, s in enumerate(rows):
        if isinstance(s, (str, bytes)) or not hasattr(s, "__len__") or (isinstance(s, np.ndarray) and s.ndim == 0):
            raise TypeError(f"sequences[{i}]: expected a sequence (a list or an array), got {type(s).__name__} {s!r}")
    return rows


def _maxlen(maxlen: Any) -> Optional[int]:
    return None if maxlen is None else bounded_int("maxlen", maxlen, 0)


def sequence_lengths(sequences: Any, maxlen: Optional[int] = None) -> np.ndarray:
    """The length of each sequence, at most ``maxlen``: int64 ``[len(sequences)]``,
    ``min(len(s), maxlen)`` — the ``sequence_length`` that goes with
    ``pad_sequences(sequences, maxlen, padding="post")`` (either truncation).

    Raises:
        TypeError: ``sequences`` is not a list of sequences (or a string).
        ValueError / TypeError: ``maxlen`` is not None or an integer >= 0.
    """
    limit = _maxlen(maxlen)
    lengths = [len(s) for s in _rows(sequences)]
    out = np.array(lengths, dtype=np.int64)
    return out if limit is None else np.minimum(out, limit)


def pad_sequences(
    sequences: Any,
    maxlen: Optional[int] = None,
    dtype: Any = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: Any = 0.0,
) -> np.ndarray:
    """Pads (and truncates) sequences to one length (``keras.utils.pad_sequences``).

    Args:
        sequences: a list (or array) of sequences, each a list or array of
            numbers ``[len]`` or of vectors ``[len, F...]`` (every non-empty
            sequence with the same ``F...``).
        maxlen: the length of the result, None (default: the longest
            sequence's) or an integer >= 0.
        dtype: the result's NumPy dtype, an integer, bool or float type
            (default ``"int32"``, for token ids).
        padding: ``"pre"`` (default) puts the padding before each sequence,
            ``"post"`` after it. With rnnrs's ``sequence_length`` use
            ``"post"``: the valid steps are then ``t < length``.
        truncating: which steps a sequence longer than ``maxlen`` loses:
            ``"pre"`` (default) the first ones, ``"post"`` the last ones.
        value: the padding value (default 0).

    Returns:
        An array ``[len(sequences), maxlen, F...]`` of ``dtype``; an empty
        sequence becomes a row of ``value``. The lengths to pass as
        ``sequence_length`` are :func:`sequence_lengths` ``(sequences, maxlen)``.

    Raises:
        TypeError: ``sequences`` is not a list of sequences, a sequence holds
            strings or objects, ``dtype`` is not a numeric type, ``padding``
            / ``truncating`` are not strings.
        ValueError: ``maxlen`` < 0, ``padding`` / ``truncating`` other than
            ``"pre"`` / ``"post"``, sequences whose steps have different
            shapes, or a value (of a sequence, or ``value``) that ``dtype``
            cannot hold exactly, e.g. 1.5 or 300 for ``"int8"`` (Keras would
            truncate or wrap it silently).
    """
    rows = _rows(sequences)
    limit = _maxlen(maxlen)
    try:
        dt = np.dtype(dtype)
    except Exception:  # NumPy's parser raises TypeError, ValueError, even SyntaxError for odd strings
        raise TypeError(f"dtype: expected a NumPy integer, bool or float type, got {dtype!r}") from None
    if dt.kind not in "biuf":
        raise TypeError(f"dtype: expected a NumPy integer, bool or float type, got {dt}")
    padding = _side("padding", padding)
    truncating = _side("truncating", truncating)
    fill = numeric_array("value", value, "a number")
    if fill.ndim != 0:
        raise ValueError(f"value: expected a number, got an array of shape {fill.shape}")
    fill = _exact("value", fill, dt)

    arrays: list[Optional[np.ndarray]] = []
    step_shape: Optional[tuple[int, ...]] = None
    first = -1
    for i, s in enumerate(rows):
        if len(s) == 0:
            arrays.append(None)
            continue
        arr = numeric_array(f"sequences[{i}]", s, "a sequence of numbers or of equal-sized vectors")
        if step_shape is None:
            step_shape, first = arr.shape[1:], i
        elif arr.shape[1:] != step_shape:
            raise ValueError(
                f"sequences[{i}]: expected steps of shape {step_shape} (that of sequences[{first}]), "
                f"got {arr.shape[1:]}"
            )
        arrays.append(arr)
    width = max((len(s) for s in rows), default=0) if limit is None else limit
    out = np.full((len(rows), width, *(step_shape or ())), fill, dtype=dt)
    if width == 0:
        return out
    for i, given in enumerate(arrays):
        if given is None:
            continue
        kept = given[-width:] if truncating == "pre" else given[:width]
        kept = _exact(f"sequences[{i}]", kept, dt)
        if padding == "post":
            out[i, : len(kept)] = kept
        else:
            out[i, width - len(kept) :] = kept
    return out


def _exact(name: str, arr: np.ndarray, dt: np.dtype[Any]) -> np.ndarray:
    """``arr`` cast to ``dt``, refusing a value the cast would change (a
    fraction or an out-of-range number cast to an integer type, a number
    other than 0 and 1 cast to bool). Float-to-float casts round as usual."""
    cast = arr.astype(dt)
    if dt.kind in "biu" and arr.size:
        with np.errstate(invalid="ignore", over="ignore"):
            changed = cast.astype(arr.dtype) != arr
        if dt.kind == "b":
            changed = changed | ((arr != 0) & (arr != 1))
        if changed.any():
            bad = int(np.flatnonzero(changed)[0])
            got = arr.ravel()[bad].item()
            raise ValueError(f"{name}: expected values that {dt} holds exactly, got {got!r}")
    return cast
