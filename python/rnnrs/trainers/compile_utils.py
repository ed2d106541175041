"""What ``compile`` chooses from: loss names and kinds, metric names, and the
glue between a model's outputs and the losses and metrics of
:mod:`rnnrs.losses` and :mod:`rnnrs.metrics`."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import losses as _losses
from .. import metrics as _metrics
from ..losses import softmax
from ..saving.serialize import short

CLASSIFICATION = "sparse_softmax_cross_entropy"
REGRESSION = "mean_squared_error"
# Loss names -> canonical names. The cross-entropies take logits (the model's
# last Dense has no softmax/sigmoid), as sparse_softmax_cross_entropy does.
LOSSES = {
    "sparse_softmax_cross_entropy": CLASSIFICATION,
    "sparse_categorical_crossentropy": CLASSIFICATION,
    "mean_squared_error": REGRESSION,
    "mse": REGRESSION,
    "binary_crossentropy": "binary_crossentropy",
    "categorical_crossentropy": "categorical_crossentropy",
    "huber": "huber",
    "mean_absolute_error": "mean_absolute_error",
    "mae": "mean_absolute_error",
}
# Canonical names (beyond the two TF 1.x functions) -> the loss object they mean.
NAMED_LOSSES: dict[str, _losses.Loss] = {
    "binary_crossentropy": _losses.BinaryCrossentropy(from_logits=True),
    "categorical_crossentropy": _losses.CategoricalCrossentropy(from_logits=True),
    "huber": _losses.Huber(),
    "mean_absolute_error": _losses.MeanAbsoluteError(),
}
# What a loss's targets are: "sparse" class ids, "categorical" one-hot rows,
# "binary" 0/1 entries, "regression" floats, "custom" (a callable's) anything numeric.
LOSS_KINDS: dict[type, str] = {
    _losses.SparseCategoricalCrossentropy: "sparse",
    _losses.CategoricalCrossentropy: "categorical",
    _losses.BinaryCrossentropy: "binary",
    _losses.MeanSquaredError: "regression",
    _losses.MeanAbsoluteError: "regression",
    _losses.Huber: "regression",
}
# Metric names -> (log key, {loss kind: metric class}).
METRICS: dict[str, tuple[str, dict[str, Callable[[], _metrics.Metric]]]] = {}
for _names, _key, _by_kind in (
    (
        ("accuracy", "acc"),
        "accuracy",
        {
            "sparse": _metrics.SparseCategoricalAccuracy,
            "categorical": _metrics.CategoricalAccuracy,
            "binary": _metrics.BinaryAccuracy,
        },
    ),
    (("sparse_categorical_accuracy",), "sparse_categorical_accuracy", {"sparse": _metrics.SparseCategoricalAccuracy}),
    (("categorical_accuracy",), "categorical_accuracy", {"categorical": _metrics.CategoricalAccuracy}),
    (("binary_accuracy",), "binary_accuracy", {"binary": _metrics.BinaryAccuracy}),
    (("precision",), "precision", {"binary": _metrics.Precision}),
    (("recall",), "recall", {"binary": _metrics.Recall}),
    (("auc",), "auc", {"binary": _metrics.AUC}),
    (
        ("sparse_top_k_categorical_accuracy",),
        "sparse_top_k_categorical_accuracy",
        {"sparse": _metrics.SparseTopKCategoricalAccuracy},
    ),
    (("top_k_categorical_accuracy",), "top_k_categorical_accuracy", {"categorical": _metrics.TopKCategoricalAccuracy}),
    (("mae", "mean_absolute_error"), "mae", {"regression": _metrics.MeanAbsoluteError}),
):
    for _name in _names:
        METRICS[_name] = (_key, dict(_by_kind))
# Metrics that rank the outputs (softmax keeps the order): they get the logits themselves.
RANKING_METRICS = (
    _metrics.SparseCategoricalAccuracy,
    _metrics.CategoricalAccuracy,
    _metrics.SparseTopKCategoricalAccuracy,
)


KIND_NAMES = {
    "sparse": "sparse_softmax_cross_entropy",
    "categorical": "categorical_crossentropy",
    "binary": "binary_crossentropy",
    "regression": "mean_squared_error/mean_absolute_error/huber",
    "custom": "a callable",
}


def loss_kind(loss: Any) -> str:
    """What a compiled loss's targets are (see ``LOSS_KINDS``)."""
    if isinstance(loss, str):
        if loss == CLASSIFICATION:
            return "sparse"
        if loss == REGRESSION:
            return "regression"
        loss = NAMED_LOSSES[loss]
    return LOSS_KINDS.get(type(loss), "custom")


def loss_name(loss: Any) -> str:
    return (
        repr(loss)
        if isinstance(loss, (str, _losses.Loss))
        else f"callable {getattr(loss, '__name__', type(loss).__name__)}"
    )


# The loss and metric classes a saved model may name (never looked up by an arbitrary name).
LOSS_CLASSES: dict[str, type[_losses.Loss]] = {
    c.__name__: c
    for c in (
        _losses.BinaryCrossentropy,
        _losses.CategoricalCrossentropy,
        _losses.SparseCategoricalCrossentropy,
        _losses.MeanSquaredError,
        _losses.MeanAbsoluteError,
        _losses.Huber,
    )
}
METRIC_CLASSES: dict[str, type[_metrics.Metric]] = {
    name: getattr(_metrics, name) for name in _metrics.__all__ if name != "Metric"
}


def object_config(obj: Any) -> dict[str, Any]:
    """``{"class_name", "config"}`` of a loss or metric object."""
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


def loss_config(loss: Any) -> Any:
    """The saved form of a compiled loss: its name, or its object's config.
    A callable cannot be saved: ``TypeError`` naming ``loss``."""
    if isinstance(loss, str):
        return loss
    if type(loss).__name__ in LOSS_CLASSES and isinstance(loss, _losses.Loss):
        return object_config(loss)
    raise TypeError(
        "loss: expected a loss name or a rnnrs.losses object to save the model with, got "
        f"{loss_name(loss)} (compile with one of those, or save the weights with get_weights)"
    )


def probabilities(loss: Any, out: np.ndarray) -> np.ndarray:
    """The outputs as Keras' metrics expect them: softmax / sigmoid of the
    logits for a cross-entropy on logits, the outputs otherwise."""
    kind = loss_kind(loss)
    logits = isinstance(loss, str) or bool(getattr(loss, "from_logits", False))
    if not logits or kind not in ("sparse", "categorical", "binary"):
        return out
    if kind == "binary":
        return _losses._sigmoid(out.astype(np.float64))
    return softmax(out.astype(np.float64))


def call_loss(fn: Callable[..., Any], y: np.ndarray, out: np.ndarray) -> tuple[float, np.ndarray]:
    """A user loss's ``(value, d_pred)``, checked."""
    got = fn(y, out.copy())
    if not isinstance(got, tuple) or len(got) != 2:
        raise TypeError(f"loss: expected the callable to return a tuple (value, d_pred), got {short(got)}")
    value, d = got
    v = np.asarray(value) if isinstance(value, (np.ndarray, np.generic)) else value
    if isinstance(v, np.ndarray):
        if v.size != 1 or v.dtype.kind not in "iuf":
            raise TypeError(
                f"loss: expected the callable's value to be a real number, got an array of shape {v.shape} "
                f"dtype {v.dtype}"
            )
        v = v.reshape(()).item()
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"loss: expected the callable's value to be a real number, got {type(value).__name__}")
    if not isinstance(d, np.ndarray) or d.dtype.kind not in "iuf":
        what = f"an array of dtype {d.dtype}" if isinstance(d, np.ndarray) else type(d).__name__
        raise TypeError(f"loss: expected the callable's d_pred to be a float array, got {what}")
    if d.shape != out.shape:
        raise ValueError(f"loss: expected the callable's d_pred of the outputs' shape {out.shape}, got {d.shape}")
    return float(v), d.astype(out.dtype)


def means(totals: Mapping[str, Sequence[float]]) -> dict[str, float]:
    return {k: (s / c if c else 0.0) for k, (s, c) in totals.items()}
