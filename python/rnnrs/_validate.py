"""Argument checks shared by the public API.

Every message names the argument and says "expected ..., got ...". Shapes and
values raise ``ValueError``; wrong types raise ``TypeError``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_dtype(dtype: Any) -> np.dtype[Any]:
    """The cell dtype for ``dtype`` (float32 or float64). None is refused
    (NumPy would read it as float64)."""
    if dtype is None:
        raise TypeError("dtype: expected numpy.float32 or numpy.float64, got None")
    try:
        dt: np.dtype[Any] = np.dtype(dtype)
    except Exception:  # NumPy's dtype parser raises TypeError, ValueError, even SyntaxError for odd strings
        raise TypeError(f"dtype: expected numpy.float32 or numpy.float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype: expected numpy.float32 or numpy.float64, got {dt}")
    return dt


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1."""
    return bounded_int(name, value, 1)


def bounded_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum``: a ``TypeError`` for anything but an
    integer (bools, floats such as 2.9 and strings such as "3" included), a
    ``ValueError`` below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def checkpoint_every(value: Any, name: str = "checkpoint_every") -> Optional[int | str]:
    """A run function's ``checkpoint_every``: None, ``"auto"`` or an integer
    >= 1 (NumPy integers too). Bools, floats and other types are a
    ``TypeError``; other strings and integers below 1 a ``ValueError``."""
    if value is None:
        return None
    if isinstance(value, str):
        if value == "auto":
            return value
        raise ValueError(f'{name}: expected a positive integer, "auto" or None, got {value!r}')
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f'{name}: expected a positive integer, "auto" or None, got {type(value).__name__} {value!r}')
    if value < 1:
        raise ValueError(f'{name}: expected a positive integer, "auto" or None, got {value}')
    return int(value)


def flag(name: str, value: Any) -> bool:
    """A yes/no argument: ``True`` or ``False`` (or a NumPy bool); anything
    else, e.g. 0, 1, an array or a string, is a ``TypeError`` rather than
    read by its truth value."""
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {value!r}")


def seed_value(value: Any, name: str = "seed") -> Optional[int]:
    """A random generator's seed: None or an integer >= 0 (what
    ``numpy.random.default_rng`` takes; bools are refused)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= 0 or None, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name}: expected an integer >= 0 or None, got {value}")
    return int(value)


def finite_number(name: str, value: Any) -> float:
    """``value`` as a finite float (bools, strings and NaN/inf refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a finite number, got {type(value).__name__} {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def numeric_array(name: str, value: Any, expected: str = "an array") -> np.ndarray:
    """``value`` as an array of bools, integers or floats; complex numbers,
    strings and objects are refused with a ``TypeError`` (never converted),
    what is no array at all (ragged lists) with a ``ValueError`` saying
    ``expected``."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    try:
        raw = np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nested lists and the like
        raise ValueError(f"{name}: expected {expected}, got {type(value).__name__} ({e})") from None
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got dtype {raw.dtype}")
    return raw


def float_array(name: str, value: Any, dtype: np.dtype[Any], ndim: int, what: str) -> np.ndarray:
    """``value`` as an ``ndim``-d array of ``dtype`` (no copy when it already
    is one and its data is aligned; a misaligned array, e.g. a view into a
    byte buffer at an odd offset, is copied, and a non-native byte order
    converted)."""
    if isinstance(value, np.ndarray) and value.dtype == dtype:
        arr = value
    else:
        arr = numeric_array(name, value, f"a {ndim}-d array {what}").astype(dtype, copy=False)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array {what}, got shape {arr.shape}")
    return arr if arr.flags.aligned else arr.copy()


def check_shape(name: str, arr: np.ndarray, expected: tuple[int, ...]) -> None:
    """Raises ``ValueError`` when ``arr.shape != expected``."""
    if arr.shape != expected:
        raise ValueError(f"{name}: expected shape {expected}, got {arr.shape}")


def lengths_array(value: Any, batch: int, time: int) -> Optional[np.ndarray]:
    """``sequence_length`` as int64 ``[batch]`` with ``0 <= len <= time``, or None."""
    if value is None:
        return None
    raw = numeric_array("sequence_length", value, "one length per batch row")
    if raw.dtype.kind not in "iuf":  # booleans are not lengths
        raise TypeError(f"sequence_length: expected integers, got dtype {raw.dtype}")
    if raw.ndim != 1 or raw.shape[0] != batch:
        raise ValueError(f"sequence_length: expected shape ({batch},) (one length per batch row), got {raw.shape}")
    if raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
            raise ValueError(f"sequence_length: expected whole numbers, got {raw.tolist()}")
    lengths = np.ascontiguousarray(raw, dtype=np.int64)  # native byte order
    if not lengths.flags.aligned:  # a misaligned int64 view is kept as is by ascontiguousarray
        lengths = lengths.copy()
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


def index_in(flat: int, shape: tuple[int, ...]) -> Any:
    """The position of flat index ``flat`` in ``shape``: an int for 0-d and
    1-d arrays, else a tuple of plain ints such as ``(0, 2)``."""
    if len(shape) <= 1:
        return int(flat)
    return tuple(int(i) for i in np.unravel_index(flat, shape))


def integer_ids(name: str, value: Any, high: int, what: str) -> np.ndarray:
    """``value`` as int64 ids in ``[0, high)`` (``what`` names them in
    messages, e.g. "class ids"). Integer arrays and whole-valued floats are
    accepted; a float that is not a whole number is refused with a
    ``ValueError`` naming it and its position ("non-integer id 1.5 at (0, 0)");
    bools, complex numbers, strings and objects with a ``TypeError``."""
    raw = numeric_array(name, value, f"an array of {what}")
    kind = raw.dtype.kind
    if kind not in "iuf":
        raise TypeError(f"{name}: expected integer {what}, got dtype {raw.dtype}")
    if kind == "f":
        whole = np.isfinite(raw) & (raw == np.round(raw))
        if not whole.all():
            bad = int(np.flatnonzero(~whole)[0])
            raise ValueError(
                f"{name}: expected integer {what}, got non-integer id {raw.ravel()[bad]} at {index_in(bad, raw.shape)}"
            )
    if raw.size:
        # On the values as given (a uint64 beyond the int64 range would wrap when cast).
        out = (raw < 0) | (raw >= high)
        if out.any():
            bad = int(np.flatnonzero(out)[0])
            got = raw.ravel()[bad]
            got_text = int(got) if kind in "iu" or abs(got) < 2**63 else got
            raise ValueError(
                f"{name}: expected {what} in [0, {high}), got {got_text} at index {index_in(bad, raw.shape)}"
            )
    return raw.astype(np.int64, copy=False)
