"""Streaming metrics (Keras 3's ``keras.metrics``).

Each metric keeps running state across batches: ``update_state(y_true,
y_pred, sample_weight=None)`` adds a batch, ``result()`` is the metric over
every batch added since the last ``reset_state()``, so the result over
several updates equals the result over the concatenated data.

Predictions are what Keras expects: probabilities (or scores) for the
accuracies, thresholds for ``BinaryAccuracy`` / ``Precision`` / ``Recall``,
probabilities in ``[0, 1]`` for ``AUC``. A :class:`rnnrs.Sequential` compiled
with a cross-entropy on logits applies the sigmoid (binary) or softmax
(categorical) to its outputs before updating a metric (see ``compile``).

``sample_weight`` (broadcastable from the left to the per-entry values)
weighs each entry: the mean metrics give ``sum(w v) / sum(w)``; the
confusion-matrix metrics add ``w`` instead of 1 to their counts.
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np

from ._validate import numeric_array, positive_int
from .losses import class_ids

_EPSILON = 1e-7


def _float(name: str, value: Any) -> np.ndarray:
    return numeric_array(name, value).astype(np.float64)


def _weights(sample_weight: Any, shape: tuple[int, ...]) -> np.ndarray:
    """float64 weights broadcast to ``shape`` (aligned on the left); ones when None."""
    if sample_weight is None:
        return np.ones(shape)
    w = _float("sample_weight", sample_weight)
    if w.ndim < len(shape) and shape[: w.ndim] == w.shape:
        w = w.reshape(w.shape + (1,) * (len(shape) - w.ndim))
    try:
        return np.broadcast_to(w, shape)
    except ValueError:
        raise ValueError(
            f"sample_weight: expected a shape broadcastable to {shape} (from the left), got {w.shape}"
        ) from None


def _same_shape(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    p = _float("y_pred", y_pred)
    y = _float("y_true", y_true)
    if y.shape != p.shape:
        raise ValueError(f"y_true: expected the shape of y_pred {p.shape}, got {y.shape}")
    return y, p


def _binary_labels(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    y, p = _same_shape(y_true, y_pred)
    bad = (y != 0) & (y != 1)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"y_true: expected 0/1 labels, got {y[at]!r} at {at}")
    return y, p


def _scores(y_pred: Any) -> np.ndarray:
    p = _float("y_pred", y_pred)
    if p.ndim < 1 or p.shape[-1] < 1:
        raise ValueError(f"y_pred: expected an array [..., num_classes], got shape {p.shape}")
    return p


class Metric:
    """Base class: ``update_state``, ``result``, ``reset_state`` (Keras names)."""

    name = "metric"

    def __init__(self) -> None:
        self.reset_state()

    def reset_state(self) -> None:
        """Forgets every batch added so far (``result()`` is then 0)."""
        raise NotImplementedError

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Adds one batch: labels, predictions and optional per-entry weights
        (broadcastable from the left to the per-entry values). Bad inputs raise
        ``ValueError`` / ``TypeError`` naming ``y_true``, ``y_pred`` or
        ``sample_weight``, and leave the state unchanged."""
        raise NotImplementedError

    def result(self) -> Any:
        """The metric over every batch added since the last reset: a float
        (an array for ``Precision`` / ``Recall`` with a list of thresholds);
        0 before any data."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _Ratio(Metric):
    """A metric that is ``total / count`` of sums over the batches; ``_sums``
    gives one batch's ``(total, count)`` (a model adds them across batches)."""

    def reset_state(self) -> None:
        self.total = 0.0
        self.count = 0.0

    def _sums(self, y_true: Any, y_pred: Any, sample_weight: Any) -> tuple[float, float]:
        raise NotImplementedError

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        total, count = self._sums(y_true, y_pred, sample_weight)
        self.total += total
        self.count += count

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


class _Mean(_Ratio):
    """Weighted mean of per-entry values (Keras' ``MeanMetricWrapper``)."""

    def _values(self, y_true: Any, y_pred: Any) -> np.ndarray:
        raise NotImplementedError

    def _sums(self, y_true: Any, y_pred: Any, sample_weight: Any) -> tuple[float, float]:
        v = self._values(y_true, y_pred)
        w = _weights(sample_weight, v.shape)
        return float((w * v).sum()), float(w.sum())


class SparseCategoricalAccuracy(_Mean):
    """Fraction of rows whose largest score is at the integer label
    (``y_true [...]`` ids, ``y_pred [..., C]`` scores; logits work as well)."""

    name = "sparse_categorical_accuracy"

    def _values(self, y_true: Any, y_pred: Any) -> np.ndarray:
        p = _scores(y_pred)
        ids = class_ids("y_true", y_true, p.shape[-1], p.shape[:-1])
        hit: np.ndarray = p.argmax(axis=-1) == ids
        return hit.astype(np.float64)


class CategoricalAccuracy(_Mean):
    """Fraction of rows whose largest score is where the one-hot label is."""

    name = "categorical_accuracy"

    def _values(self, y_true: Any, y_pred: Any) -> np.ndarray:
        y, p = _same_shape(y_true, _scores(y_pred))
        hit: np.ndarray = p.argmax(axis=-1) == y.argmax(axis=-1)
        return hit.astype(np.float64)


class BinaryAccuracy(_Mean):
    """Fraction of entries where ``(y_pred > threshold) == y_true``."""

    name = "binary_accuracy"

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = _threshold("threshold", threshold)
        super().__init__()

    def _values(self, y_true: Any, y_pred: Any) -> np.ndarray:
        y, p = _same_shape(y_true, y_pred)
        hit: np.ndarray = (p > self.threshold) == (y > 0.5)
        return hit.astype(np.float64)

    def get_config(self) -> dict[str, Any]:
        return {"threshold": self.threshold}


class SparseTopKCategoricalAccuracy(_Mean):
    """Fraction of rows whose label is among the ``k`` largest scores. A tie
    with the label's score counts for the label (``tf.math.in_top_k``):
    the label is in the top ``k`` when fewer than ``k`` scores exceed it."""

    name = "sparse_top_k_categorical_accuracy"

    def __init__(self, k: int = 5) -> None:
        self.k = positive_int("k", k)
        super().__init__()

    def _hits(self, ids: np.ndarray, p: np.ndarray) -> np.ndarray:
        target = np.take_along_axis(p, ids[..., None], axis=-1)
        hit: np.ndarray = (p > target).sum(axis=-1) < self.k
        return hit.astype(np.float64)

    def _values(self, y_true: Any, y_pred: Any) -> np.ndarray:
        p = _scores(y_pred)
        return self._hits(class_ids("y_true", y_true, p.shape[-1], p.shape[:-1]), p)

    def get_config(self) -> dict[str, Any]:
        return {"k": self.k}


class TopKCategoricalAccuracy(SparseTopKCategoricalAccuracy):
    """:class:`SparseTopKCategoricalAccuracy` with one-hot labels."""

    name = "top_k_categorical_accuracy"

    def _values(self, y_true: Any, y_pred: Any) -> np.ndarray:
        y, p = _same_shape(y_true, _scores(y_pred))
        return self._hits(y.argmax(axis=-1), p)


class MeanAbsoluteError(_Mean):
    """Weighted mean of ``|y_pred - y_true|`` over every entry."""

    name = "mean_absolute_error"

    def _values(self, y_true: Any, y_pred: Any) -> np.ndarray:
        y, p = _same_shape(y_true, y_pred)
        with np.errstate(over="ignore", invalid="ignore"):
            err: np.ndarray = np.abs(p - y)
        return err


def _threshold(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number in [0, 1], got {type(value).__name__}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
    return float(value)


def _thresholds(value: Any) -> tuple[list[float], bool]:
    """The thresholds as a list and whether one number was given (None → 0.5)."""
    if value is None:
        return [0.5], True
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError("thresholds: expected None, a number or a non-empty list of numbers, got []")
        return [_threshold(f"thresholds[{i}]", v) for i, v in enumerate(value)], False
    return [_threshold("thresholds", value)], True


class _Confusion(_Ratio):
    """``tp / (tp + other)`` at each threshold (0 when the denominator is 0)."""

    _other = ""

    def __init__(self, thresholds: Union[None, float, list[float]] = None) -> None:
        self.thresholds, self._scalar = _thresholds(thresholds)
        super().__init__()

    def reset_state(self) -> None:
        n = len(self.thresholds)
        self.true_positives = np.zeros(n)
        self.other = np.zeros(n)

    def _counts(self, y_true: Any, y_pred: Any, sample_weight: Any) -> tuple[np.ndarray, np.ndarray]:
        y, p = _binary_labels(y_true, y_pred)
        w = _weights(sample_weight, p.shape).ravel()
        y, p = y.ravel(), p.ravel()
        predicted = p[None, :] > np.asarray(self.thresholds)[:, None]  # [thresholds, entries]
        tp = (predicted * (w * y)).sum(axis=1)
        if self._other == "fp":
            other = (predicted * (w * (1 - y))).sum(axis=1)
        else:
            other = (~predicted * (w * y)).sum(axis=1)
        return tp, other

    def _sums(self, y_true: Any, y_pred: Any, sample_weight: Any) -> tuple[float, float]:
        if not self._scalar:
            raise ValueError(f"thresholds: expected one threshold for a model's metric, got {self.thresholds}")
        tp, other = self._counts(y_true, y_pred, sample_weight)
        return float(tp[0]), float(tp[0] + other[0])

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        tp, other = self._counts(y_true, y_pred, sample_weight)
        self.true_positives += tp
        self.other += other

    def result(self) -> Any:
        den = self.true_positives + self.other
        r = np.where(den > 0, self.true_positives / np.where(den > 0, den, 1.0), 0.0)
        return float(r[0]) if self._scalar else r

    def get_config(self) -> dict[str, Any]:
        return {"thresholds": self.thresholds[0] if self._scalar else list(self.thresholds)}


class Precision(_Confusion):
    """``tp / (tp + fp)`` where an entry is predicted positive when
    ``y_pred > threshold``; labels are 0/1. ``thresholds``: None (0.5), a
    number (``result()`` a float) or a list (``result()`` an array, one
    precision per threshold)."""

    name = "precision"
    _other = "fp"


class Recall(_Confusion):
    """``tp / (tp + fn)`` (see :class:`Precision` for thresholds)."""

    name = "recall"
    _other = "fn"


#: The most thresholds an :class:`AUC` may have (each costs four counters;
#: Keras' default is 200, and the area changes little beyond a few thousand).
MAX_THRESHOLDS = 1_000_000


class AUC(Metric):
    """Area under the ROC curve of binary labels (Keras' ``AUC`` with
    ``curve="ROC"``, ``summation_method="interpolation"``): counts of true/false
    positives and negatives at ``num_thresholds`` thresholds ``-1e-7, 1/(n-1),
    ..., (n-2)/(n-1), 1 + 1e-7`` and the trapezoid rule over (FPR, TPR).
    ``y_pred`` are probabilities in ``[0, 1]``, labels 0/1. ``num_thresholds``
    is an integer in ``[2, MAX_THRESHOLDS]`` (one million)."""

    name = "auc"

    def __init__(self, num_thresholds: int = 200) -> None:
        n = positive_int("num_thresholds", num_thresholds)
        if not 2 <= n <= MAX_THRESHOLDS:
            raise ValueError(f"num_thresholds: expected an integer in [2, {MAX_THRESHOLDS}], got {n}")
        self.num_thresholds = n
        inner = np.arange(1, n - 1, dtype=np.float64) / (n - 1)
        self.thresholds = np.concatenate([[0.0 - _EPSILON], inner, [1.0 + _EPSILON]])
        super().__init__()

    def reset_state(self) -> None:
        n = self.num_thresholds
        self.true_positives, self.false_positives = np.zeros(n), np.zeros(n)
        self.true_negatives, self.false_negatives = np.zeros(n), np.zeros(n)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y, p = _binary_labels(y_true, y_pred)
        if p.size and not (p.min() >= 0.0 and p.max() <= 1.0):
            raise ValueError(f"y_pred: expected probabilities in [0, 1], got values in [{p.min()}, {p.max()}]")
        w = _weights(sample_weight, p.shape).ravel()
        y, p = y.ravel(), p.ravel()
        above = p[None, :] > self.thresholds[:, None]
        pos, neg = w * y, w * (1 - y)
        self.true_positives += (above * pos).sum(axis=1)
        self.false_positives += (above * neg).sum(axis=1)
        self.false_negatives += (~above * pos).sum(axis=1)
        self.true_negatives += (~above * neg).sum(axis=1)

    def result(self) -> float:
        tp, fp, tn, fn = self.true_positives, self.false_positives, self.true_negatives, self.false_negatives
        tpr = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
        fpr = np.divide(fp, fp + tn, out=np.zeros_like(fp), where=(fp + tn) > 0)
        return float(((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2.0).sum())

    def get_config(self) -> dict[str, Any]:
        return {"num_thresholds": self.num_thresholds}


__all__ = [
    "AUC",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "MeanAbsoluteError",
    "Metric",
    "Precision",
    "Recall",
    "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "TopKCategoricalAccuracy",
]
