"""Losses that return their value and their gradient.

Every function returns ``(value, gradient)``: ``value`` a Python float, the
(weighted) mean loss, and ``gradient`` the derivative of ``value`` with
respect to the logits / predictions, shaped and typed like them. Names and
argument orders follow TensorFlow 1.x (``tf.losses.*``,
``tf.contrib.seq2seq.sequence_loss``).

Weights (per example, or per time step for sequences) turn the mean into
``sum(w * loss) / sum(w)``: with a 0/1 mask that is the mean over the
unmasked entries (see :func:`sequence_mask`). When every weight is zero the
value is 0 and the gradient is zero.

Shape letters: ``B`` batch, ``T`` time, ``C`` classes, ``O`` outputs.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._validate import FLOAT_DTYPES, bounded_int, check_shape, integer_ids, numeric_array


def _float_input(name: str, value: Any) -> np.ndarray:
    """``value`` as a float32/float64 array (other numeric types → float64)."""
    arr = numeric_array(name, value)
    if arr.dtype not in FLOAT_DTYPES:
        arr = arr.astype(np.float64)
    return arr


def class_ids(name: str, value: Any, num_classes: int, shape: Optional[tuple[int, ...]] = None) -> np.ndarray:
    """``value`` as int64 class ids in ``[0, num_classes)``, optionally of a
    given shape. Whole-valued floats are accepted; other floats raise
    ``ValueError`` ("non-integer id 1.5 at (0, 0)"), bools, complex numbers
    and strings ``TypeError``."""
    if shape is not None:
        check_shape(name, numeric_array(name, value, f"an array of class ids of shape {shape}"), shape)
    return integer_ids(name, value, num_classes, "class ids")


def _weights(weights: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Optional[np.ndarray]:
    """Per-entry weights broadcast to ``shape`` (None when not given)."""
    if weights is None:
        return None
    w = _float_input("weights", weights).astype(dtype, copy=False)
    try:
        return np.broadcast_to(w, shape)
    except ValueError:
        raise ValueError(f"weights: expected a shape broadcastable to {shape}, got {w.shape}") from None


def sequence_mask(lengths: Any, maxlen: Optional[int] = None, dtype: Any = np.float32) -> np.ndarray:
    """``[B, maxlen]`` mask: 1 where ``t < lengths[b]``, else 0
    (``tf.sequence_mask``). ``maxlen`` defaults to ``max(lengths)``."""
    raw = numeric_array("lengths", lengths, "a 1-d array of integers")
    if raw.dtype.kind not in "iu" or raw.ndim != 1:
        raise ValueError(f"lengths: expected a 1-d array of integers, got dtype {raw.dtype} shape {raw.shape}")
    if raw.size and raw.min() < 0:
        raise ValueError(f"lengths: expected values >= 0, got {int(raw.min())}")
    if maxlen is None:
        time = int(raw.max()) if raw.size else 0
    else:
        time = bounded_int("maxlen", maxlen, 0)
    try:
        if time > np.iinfo(np.intp).max:  # np.arange would wrap it to a negative length
            raise ValueError("beyond the index range")
        steps = np.arange(time)
    except ValueError as e:  # a maxlen no array can have
        raise ValueError(f"maxlen: expected a length an array can have, got {time} ({e})") from None
    return (steps[None, :] < raw[:, None]).astype(dtype)


def softmax(logits: Any) -> np.ndarray:
    """Softmax over the last axis, computed stably (the max is subtracted)."""
    z = _float_input("logits", logits)
    e: np.ndarray = np.exp(z - z.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def sparse_softmax_cross_entropy(labels: Any, logits: Any, weights: Any = None) -> tuple[float, np.ndarray]:
    """Mean cross-entropy between integer ``labels`` and the softmax of ``logits``.

    Args:
        labels: integer class ids ``[...]`` in ``[0, C)`` (e.g. ``[B]`` or ``[B, T]``).
        logits: unnormalised scores ``[..., C]`` (e.g. ``[B, C]`` or ``[B, T, C]``).
        weights: optional, broadcastable to ``labels``' shape: the value is
            ``sum(w * ce) / sum(w)``.

    Returns:
        ``(loss, d_logits)``; ``d_logits = w * (softmax(logits) - onehot(labels)) / sum(w)``.

    Stable for any finite logits: the log-sum-exp is taken after
    subtracting each row's maximum, and ``ce = (max - z_label) + log(sum(exp(z - max)))``
    never subtracts two large numbers. ``max - z_label`` is taken in float64,
    so for float32 logits the value is finite for all finite logits (e.g.
    ``[[3e38, -3e38]]`` with label 1 gives 6e38); for float64 logits it is
    inf only when the loss itself exceeds the float64 range. A gap beyond
    the float range only underflows ``exp`` to 0, so the gradient stays exact.
    """
    z = _float_input("logits", logits)
    if z.ndim < 1 or z.shape[-1] < 1:
        raise ValueError(f"logits: expected an array [..., num_classes] with num_classes >= 1, got shape {z.shape}")
    ids = class_ids("labels", labels, z.shape[-1], z.shape[:-1])
    top = z.max(axis=-1, keepdims=True)
    with np.errstate(over="ignore"):  # a gap beyond the float range is -inf: exp gives its 0
        shifted = z - top  # <= 0
    e = np.exp(shifted)
    total = e.sum(axis=-1, keepdims=True)
    # max - z_label in float64: exact for float32 logits, where z - max may
    # have overflowed to -inf (a gap beyond the float32 range).
    z_label = np.take_along_axis(z, ids[..., None], axis=-1)[..., 0].astype(np.float64)
    with np.errstate(over="ignore"):  # float64: only a loss beyond the float64 range
        ce = np.log(total[..., 0]).astype(np.float64) + (top[..., 0].astype(np.float64) - z_label)  # [...]
    d = e / total  # softmax
    np.put_along_axis(d, ids[..., None], np.take_along_axis(d, ids[..., None], axis=-1) - 1, axis=-1)
    w = _weights(weights, ids.shape, z.dtype)
    if w is None:
        n = max(ids.size, 1)
        d /= z.dtype.type(n)
        return float(ce.sum(dtype=np.float64) / n), d
    norm = float(w.sum(dtype=np.float64))
    if norm == 0.0:
        return 0.0, np.zeros_like(z)
    d *= (w / z.dtype.type(norm))[..., None]
    return float((w.astype(np.float64) * ce).sum() / norm), d


def sequence_loss(logits: Any, targets: Any, weights: Any = None) -> tuple[float, np.ndarray]:
    """Weighted cross-entropy of a sequence of logits
    (``tf.contrib.seq2seq.sequence_loss`` averaged across time and batch).

    Args:
        logits: ``[B, T, C]``.
        targets: integer ids ``[B, T]``.
        weights: ``[B, T]`` per-step weights, e.g. ``sequence_mask(lengths, T)``;
            None weighs every step 1.

    Returns:
        ``(sum(w * ce) / sum(w), d_logits [B, T, C])``.
    """
    z = _float_input("logits", logits)
    if z.ndim != 3:
        raise ValueError(f"logits: expected a 3-d array [batch, time, num_classes], got shape {z.shape}")
    if weights is not None:
        w = _float_input("weights", weights)
        check_shape("weights", w, z.shape[:2])
    ids = class_ids("targets", targets, z.shape[2], z.shape[:2])
    return sparse_softmax_cross_entropy(ids, z, weights)


def mean_squared_error(labels: Any, predictions: Any, weights: Any = None) -> tuple[float, np.ndarray]:
    """Mean of ``(predictions - labels) ** 2`` over every entry.

    Args:
        labels: targets, the shape of ``predictions`` (e.g. ``[B, O]`` or ``[B, T, O]``).
        predictions: float array.
        weights: optional, broadcastable to ``predictions``' shape from the
            left (``[B]``, ``[B, T]`` or ``[B, T, 1]`` masks work): the value
            is ``sum(w * e**2) / sum(w broadcast to e's shape)``.

    Returns:
        ``(loss, d_predictions)`` with ``d_predictions = 2 w (predictions - labels) / sum(w)``.

    Computed in float64 (float32 inputs are widened, so ``predictions - labels``
    cannot overflow), and for float64 inputs whose difference overflows, on
    halved values: finite inputs give an inf value or gradient only when the
    value or that gradient itself exceeds the float range.
    """
    p = _float_input("predictions", predictions)
    y = _float_input("labels", labels)
    check_shape("labels", y, p.shape)
    w: Optional[np.ndarray] = None
    norm = float(max(p.size, 1))
    if weights is not None:
        w_raw = _float_input("weights", weights)
        # Left-aligned: a [B, T] mask weighs [B, T, O] predictions.
        if w_raw.ndim < p.ndim and p.shape[: w_raw.ndim] == w_raw.shape:
            w_raw = w_raw.reshape(w_raw.shape + (1,) * (p.ndim - w_raw.ndim))
        w = _weights(w_raw, p.shape, p.dtype)
        assert w is not None
        norm = float(w.sum(dtype=np.float64))
        if norm == 0.0:
            return 0.0, np.zeros_like(p)
    p64 = p.astype(np.float64, copy=False)
    y64 = y.astype(np.float64, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        value, grad = _squared_error(p64 - y64, w, norm, 1.0)
        if not np.isfinite(value):  # (p - y) may have overflowed: redo on halves, which cannot
            value, grad = _squared_error(p64 * 0.5 - y64 * 0.5, w, norm, 2.0)
    return value, grad.astype(p.dtype, copy=False)


def _squared_error(diff: np.ndarray, w: Optional[np.ndarray], norm: float, unit: float) -> tuple[float, np.ndarray]:
    """``(sum(w * e**2) / norm, 2 w e / norm)`` for ``e = unit * diff``
    (``unit`` a power of two, so the scaling is exact)."""
    wd = diff if w is None else w * diff
    value = float((wd * diff).sum(dtype=np.float64) / norm) * (unit * unit)
    return value, wd * (2.0 * unit / norm)
