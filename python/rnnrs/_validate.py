"""Argument checks shared by the public API.

Every message names the argument and says "expected ..., got ...". Shapes and
values raise ``ValueError``; wrong types raise ``TypeError``.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_dtype(dtype: Any) -> np.dtype[Any]:
    """The cell dtype for ``dtype`` (float32 or float64)."""
    try:
        dt: np.dtype[Any] = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected numpy.float32 or numpy.float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype: expected numpy.float32 or numpy.float64, got {dt}")
    return dt


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= 1, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value}")
    return int(value)


def float_array(name: str, value: Any, dtype: np.dtype[Any], ndim: int, what: str) -> np.ndarray:
    """``value`` as an ``ndim``-d array of ``dtype`` (no copy when it already is one)."""
    if isinstance(value, np.ndarray) and value.dtype == dtype:
        arr = value
    else:
        try:
            raw = np.asarray(value)
        except (ValueError, TypeError) as e:  # ragged nested lists and the like
            raise ValueError(f"{name}: expected a {ndim}-d array {what}, got {type(value).__name__} ({e})") from None
        if raw.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected a numeric array, got dtype {raw.dtype}")
        arr = raw.astype(dtype, copy=False)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array {what}, got shape {arr.shape}")
    return arr


def check_shape(name: str, arr: np.ndarray, expected: tuple[int, ...]) -> None:
    """Raises ``ValueError`` when ``arr.shape != expected``."""
    if arr.shape != expected:
        raise ValueError(f"{name}: expected shape {expected}, got {arr.shape}")


def lengths_array(value: Any, batch: int, time: int) -> Optional[np.ndarray]:
    """``sequence_length`` as int64 ``[batch]`` with ``0 <= len <= time``, or None."""
    if value is None:
        return None
    raw = np.asarray(value)
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"sequence_length: expected integers, got dtype {raw.dtype}")
    if raw.ndim != 1 or raw.shape[0] != batch:
        raise ValueError(f"sequence_length: expected shape ({batch},) (one length per batch row), got {raw.shape}")
    if raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
            raise ValueError(f"sequence_length: expected whole numbers, got {raw.tolist()}")
    lengths = np.ascontiguousarray(raw, dtype=np.int64)
    # Short batches (the common case, where this check is a visible part of a
    # call's few microseconds) are checked on a Python list: NumPy's
    # reductions cost about a microsecond each whatever the size.
    values = lengths.tolist() if batch <= 256 else None
    if values is not None:
        out_of_range = batch and (min(values) < 0 or max(values) > time)
    else:
        out_of_range = bool(lengths.min() < 0 or lengths.max() > time)
    if out_of_range:
        bad = int(np.flatnonzero((lengths < 0) | (lengths > time))[0])
        raise ValueError(f"sequence_length: expected values in [0, {time}], got {lengths[bad]} at index {bad}")
    return lengths
