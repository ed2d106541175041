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

from . import _rnnrs
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
    A row with a NaN, or whose maximum is ``inf`` or ``-inf``, has a NaN loss
    and gradient row.

    Computed in one fused pass per row by the Rust core
    (``_rnnrs.softmax_cross_entropy``): the exponentials in the logits'
    dtype summed in float64, rows on the thread pool (results do not depend
    on the thread count), the GIL released.
    """
    z = _float_input("logits", logits)
    if z.ndim < 1 or z.shape[-1] < 1:
        raise ValueError(f"logits: expected an array [..., num_classes] with num_classes >= 1, got shape {z.shape}")
    ids = class_ids("labels", labels, z.shape[-1], z.shape[:-1])
    w = _weights(weights, ids.shape, z.dtype)
    if w is None:
        n = max(ids.size, 1)
        ce, d = _softmax_cross_entropy_rows(z, ids, np.full(ids.shape, 1.0 / n), "labels")
        return float(ce.sum(dtype=np.float64) / n), d
    norm = float(w.sum(dtype=np.float64))
    if norm == 0.0:
        return 0.0, np.zeros_like(z)
    w64 = w.astype(np.float64)
    ce, d = _softmax_cross_entropy_rows(z, ids, w64 / norm, "labels")
    return float((w64 * ce).sum() / norm), d


def _softmax_cross_entropy_rows(
    z: np.ndarray, ids: np.ndarray, scale: Optional[np.ndarray] = None, name: str = "labels"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-entry ``-log softmax(z)[id]`` (float64, ``ids``' shape) and the
    gradient ``scale[..., None] * (softmax(z) - onehot(id))`` (``z``'s dtype
    and shape), for float32/float64 logits ``z [..., C]`` and validated int
    ``ids [...]`` (``scale`` broadcastable to ``ids``' shape; None: 1).

    One fused pass per row in Rust (``_rnnrs.softmax_cross_entropy``): the
    row's maximum, ``exp(z - max)`` in ``z``'s dtype summed in float64, the
    loss ``log(sum) + (max - z_id)`` in float64 and the gradient written once.
    Ids out of range raise ``ValueError`` naming ``name``.
    """
    classes = z.shape[-1]
    flat_ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    row_scale = None
    if scale is not None:
        row_scale = np.ascontiguousarray(np.broadcast_to(scale, ids.shape), dtype=np.float64).reshape(-1)
    ce, d = _rnnrs.softmax_cross_entropy(z.reshape(-1, classes), flat_ids, row_scale, name)
    return ce.reshape(ids.shape), d.reshape(z.shape)


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


# -- Keras-style losses -------------------------------------------------------
#
# These follow Keras 3 (``keras.losses``): the value is the mean of the
# per-entry losses, and weights reduce as Keras' "sum_over_batch_size":
# ``sum(w * loss) / number of entries`` (NOT ``/ sum(w)`` as the TF 1.x
# functions above do), so a weight of 2 doubles an entry's share and zero
# weights still count in the denominator.

_EPSILON = 1e-7  # Keras' backend.epsilon(): probabilities are clipped to [eps, 1 - eps]


def _pair(labels: Any, predictions: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Float ``predictions`` and ``labels`` of the same shape and dtype."""
    p = _float_input("predictions", predictions)
    y = _float_input("labels", labels)
    if y.shape != p.shape:
        raise ValueError(f"labels: expected {what} of the predictions' shape {p.shape}, got shape {y.shape}")
    return y.astype(p.dtype, copy=False), p


def _keras_weights(weights: Any, shape: tuple[int, ...]) -> Optional[np.ndarray]:
    """float64 weights broadcast to ``shape``, aligned on the left (a ``[B]``
    or ``[B, T]`` weight weighs ``[B, T, O]`` entries); None when not given."""
    if weights is None:
        return None
    w = _float_input("weights", weights).astype(np.float64)
    if w.ndim < len(shape) and shape[: w.ndim] == w.shape:
        w = w.reshape(w.shape + (1,) * (len(shape) - w.ndim))
    try:
        return np.broadcast_to(w, shape)
    except ValueError:
        raise ValueError(f"weights: expected a shape broadcastable to {shape} (from the left), got {w.shape}") from None


def _reduce(per: np.ndarray, grad: np.ndarray, weights: Any, dtype: np.dtype[Any]) -> tuple[float, np.ndarray]:
    """``(sum(w * per) / per.size, w * grad / per.size)`` for float64 per-entry
    losses ``per`` and their gradients ``grad`` (``grad`` has ``per``'s shape,
    or one more trailing axis)."""
    n = float(max(per.size, 1))
    w = _keras_weights(weights, per.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        if w is not None:
            per = w * per
            grad = grad * (w if grad.ndim == per.ndim else w[..., None])
        value = float(per.sum(dtype=np.float64) / n)
        d = (grad / n).astype(dtype, copy=False)
    return value, d


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))`` without overflow for any z."""
    e = np.exp(-np.abs(z))
    out: np.ndarray = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out


def binary_crossentropy(
    labels: Any, predictions: Any, from_logits: bool = True, weights: Any = None, label_smoothing: float = 0.0
) -> tuple[float, np.ndarray]:
    """Mean binary cross-entropy (``keras.losses.binary_crossentropy``).

    Args:
        labels: 0/1 targets (or probabilities in ``[0, 1]``), the predictions' shape.
        predictions: logits when ``from_logits`` (default), else probabilities.
        from_logits: a bool. On logits the loss is the log-sigmoid form
            ``max(z, 0) - z y + log1p(exp(-|z|))``, finite for every finite
            logit; on probabilities they are clipped to ``[1e-7, 1 - 1e-7]``
            as Keras does (the gradient is zero where clipping acted).
        weights: optional, broadcastable from the left to the predictions'
            shape: ``sum(w * loss) / number of entries`` (Keras' reduction).
        label_smoothing: in ``[0, 1]``: labels become ``y (1 - s) + s / 2``.

    Returns:
        ``(loss, d_predictions)``; on logits ``d = w (sigmoid(z) - y) / n``.
    """
    y, p = _pair(labels, predictions, "targets")
    logits = _flag("from_logits", from_logits)
    y64 = _smooth(y.astype(np.float64), label_smoothing, 2)
    p64 = p.astype(np.float64)
    if logits:
        per = np.maximum(p64, 0.0) - p64 * y64 + np.log1p(np.exp(-np.abs(p64)))
        grad = _sigmoid(p64) - y64
    else:
        q = np.clip(p64, _EPSILON, 1.0 - _EPSILON)
        per = -(y64 * np.log(q) + (1.0 - y64) * np.log1p(-q))
        grad = np.where(q == p64, -y64 / q + (1.0 - y64) / (1.0 - q), 0.0)
    return _reduce(per, grad, weights, p.dtype)


def categorical_crossentropy(
    one_hot_labels: Any, predictions: Any, from_logits: bool = True, label_smoothing: float = 0.0, weights: Any = None
) -> tuple[float, np.ndarray]:
    """Mean categorical cross-entropy over one-hot (or probability) labels
    (``keras.losses.categorical_crossentropy``).

    Args:
        one_hot_labels: ``[..., C]`` one-hot rows (or probability rows).
        predictions: ``[..., C]`` logits when ``from_logits`` (default), else
            probabilities (each row is divided by its sum, then clipped to
            ``[1e-7, 1 - 1e-7]``, as Keras does).
        from_logits: a bool. On logits ``ce = -sum(y * log_softmax(z))``,
            with the log-sum-exp taken after subtracting the row maximum.
        label_smoothing: in ``[0, 1]``: labels become ``y (1 - s) + s / C``.
        weights: optional, broadcastable from the left to ``[...]`` (one
            weight per row): ``sum(w * ce) / number of rows``.

    Returns:
        ``(loss, d_predictions)``; on logits ``d = w (softmax(z) sum(y) - y) / n``.
    """
    y, p = _pair(one_hot_labels, predictions, "one-hot rows")
    if p.ndim < 1 or p.shape[-1] < 1:
        raise ValueError(f"predictions: expected an array [..., num_classes], got shape {p.shape}")
    logits = _flag("from_logits", from_logits)
    y64 = _smooth(y.astype(np.float64), label_smoothing, p.shape[-1])
    p64 = p.astype(np.float64)
    mass = y64.sum(axis=-1, keepdims=True)
    if logits:
        with np.errstate(over="ignore"):
            shifted = p64 - p64.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=-1, keepdims=True)
        # -sum(y * (shifted - log(total))) with 0 * -inf taken as 0 (a label of 0 on a far-off class)
        log_sm = shifted - np.log(total)
        per = -np.where(y64 != 0, y64 * log_sm, 0.0).sum(axis=-1)
        grad = e / total * mass - y64
    else:
        s = p64.sum(axis=-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            q_raw = p64 / s
        q = np.clip(q_raw, _EPSILON, 1.0 - _EPSILON)
        live = np.where(q == q_raw, y64, 0.0)  # clipped entries pass no gradient
        per = -(y64 * np.log(q)).sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            grad = (live.sum(axis=-1, keepdims=True) - live / q) / s
    return _reduce(per, grad, weights, p.dtype)


def huber(labels: Any, predictions: Any, delta: float = 1.0, weights: Any = None) -> tuple[float, np.ndarray]:
    """Mean Huber loss (``keras.losses.huber``): for ``e = predictions - labels``,
    ``0.5 e**2`` where ``|e| <= delta`` and ``delta (|e| - 0.5 delta)`` beyond.

    Args:
        labels: float targets, the predictions' shape.
        predictions: float array.
        delta: a number > 0.
        weights: optional, broadcastable from the left to the predictions'
            shape: ``sum(w * loss) / number of entries``.

    Returns:
        ``(loss, d_predictions)`` with ``d = w clip(e, -delta, delta) / n``.
        Computed in float64.
    """
    d = _positive_number("delta", delta)
    y, p = _pair(labels, predictions, "targets")
    with np.errstate(over="ignore", invalid="ignore"):
        e = p.astype(np.float64) - y.astype(np.float64)
        a = np.abs(e)
        per = np.where(a <= d, 0.5 * e * e, d * (a - 0.5 * d))
    return _reduce(per, np.clip(e, -d, d), weights, p.dtype)


def mean_absolute_error(labels: Any, predictions: Any, weights: Any = None) -> tuple[float, np.ndarray]:
    """Mean of ``|predictions - labels|`` (``keras.losses.mean_absolute_error``).

    Args:
        labels: float targets, the predictions' shape.
        predictions: float array.
        weights: optional, broadcastable from the left to the predictions'
            shape: ``sum(w * |e|) / number of entries``.

    Returns:
        ``(loss, d_predictions)`` with ``d = w sign(e) / n`` (0 where ``e == 0``,
        as TensorFlow's gradient of ``abs``). Computed in float64.
    """
    y, p = _pair(labels, predictions, "targets")
    with np.errstate(over="ignore", invalid="ignore"):
        e = p.astype(np.float64) - y.astype(np.float64)
    return _reduce(np.abs(e), np.sign(e), weights, p.dtype)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__}")
    return bool(value)


def _number(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    return float(value)


def _positive_number(name: str, value: Any) -> float:
    v = _number(name, value)
    if not (v > 0 and np.isfinite(v)):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return v


def _smoothing(value: Any) -> float:
    s = _number("label_smoothing", value)
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"label_smoothing: expected a number in [0, 1], got {value!r}")
    return s


def _smooth(y: np.ndarray, label_smoothing: Any, classes: int) -> np.ndarray:
    s = _smoothing(label_smoothing)
    return y if s == 0.0 else y * (1.0 - s) + s / classes


# -- loss objects ---------------------------------------------------------------


class Loss:
    """A loss object (``keras.losses.Loss``): ``loss(y_true, y_pred,
    sample_weight=None)`` returns ``(value, d_y_pred)``. ``sample_weight``
    reduces as the function the object wraps does (see each class)."""

    name = "loss"

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[float, np.ndarray]:
        """``(value, d_y_pred)`` for one batch (see the class)."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments (two losses are equal when their class and config are)."""
        return {}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and isinstance(other, Loss) and other.get_config() == self.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class BinaryCrossentropy(Loss):
    """:func:`binary_crossentropy` as an object. ``from_logits`` defaults to
    False as in Keras (``compile(loss="binary_crossentropy")`` means logits)."""

    name = "binary_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0) -> None:
        self.from_logits = _flag("from_logits", from_logits)
        self.label_smoothing = _smoothing(label_smoothing)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[float, np.ndarray]:
        return binary_crossentropy(y_true, y_pred, self.from_logits, sample_weight, self.label_smoothing)

    def get_config(self) -> dict[str, Any]:
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(Loss):
    """:func:`categorical_crossentropy` as an object (``from_logits`` defaults
    to False as in Keras)."""

    name = "categorical_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0) -> None:
        self.from_logits = _flag("from_logits", from_logits)
        self.label_smoothing = _smoothing(label_smoothing)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[float, np.ndarray]:
        return categorical_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing, sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing}


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy of integer class ids (``from_logits`` defaults to False
    as in Keras). On logits it is :func:`sparse_softmax_cross_entropy`; on
    probabilities, ``-log(clip(p_label / sum(p), 1e-7, 1 - 1e-7))``.
    ``sample_weight`` reduces as Keras does: ``sum(w * ce) / number of ids``."""

    name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = _flag("from_logits", from_logits)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[float, np.ndarray]:
        p = _float_input("y_pred", y_pred)
        if p.ndim < 1 or p.shape[-1] < 1:
            raise ValueError(f"y_pred: expected an array [..., num_classes], got shape {p.shape}")
        ids = class_ids("y_true", y_true, p.shape[-1], p.shape[:-1])
        one_hot = np.zeros(p.shape, dtype=p.dtype)
        np.put_along_axis(one_hot, ids[..., None], 1, axis=-1)
        return categorical_crossentropy(one_hot, p, self.from_logits, 0.0, sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {"from_logits": self.from_logits}


class MeanSquaredError(Loss):
    """Mean of ``(y_pred - y_true) ** 2`` (:func:`mean_squared_error`);
    ``sample_weight`` reduces as Keras does: ``sum(w * e**2) / number of entries``."""

    name = "mean_squared_error"

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[float, np.ndarray]:
        p = _float_input("y_pred", y_pred)
        if sample_weight is None:
            return mean_squared_error(y_true, p)
        w = _keras_weights(sample_weight, p.shape)
        assert w is not None
        value, d = mean_squared_error(y_true, p, w)  # sum(w e**2) / sum(w)
        scale = float(w.sum()) / max(p.size, 1)
        return value * scale, (d * p.dtype.type(scale)).astype(p.dtype, copy=False)


class MeanAbsoluteError(Loss):
    """:func:`mean_absolute_error` as an object."""

    name = "mean_absolute_error"

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[float, np.ndarray]:
        return mean_absolute_error(y_true, y_pred, sample_weight)


class Huber(Loss):
    """:func:`huber` as an object."""

    name = "huber"

    def __init__(self, delta: float = 1.0) -> None:
        self.delta = _positive_number("delta", delta)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[float, np.ndarray]:
        return huber(y_true, y_pred, self.delta, sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {"delta": self.delta}
