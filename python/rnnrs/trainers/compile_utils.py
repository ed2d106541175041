"""What ``compile`` chooses from: loss names and kinds, metric names, and the
glue between a model's outputs and the losses and metrics of
:mod:`rnnrs.losses` and :mod:`rnnrs.metrics`."""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from .. import losses as _losses
from .. import metrics as _metrics
from .._validate import numeric_array
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


# -- sample and class weights ---------------------------------------------------

#: Loss kinds whose targets name classes (what ``class_weight`` keys are).
CLASS_KINDS = ("sparse", "categorical", "binary")


def _weight_parts(name: str, value: Any, output_names: Sequence[str]) -> list[tuple[str, Any]]:
    """``sample_weight`` split per output: one array for a model with one
    output; for several a list (one entry, or None, per output), a dict by
    output name (missing outputs weigh 1), or one NumPy array for all."""
    n = len(output_names)
    if n == 1:
        return [(name, value)]
    if isinstance(value, Mapping):
        unknown = sorted(str(k) for k in value if k not in output_names)
        if unknown:
            raise ValueError(f"{name}: expected keys among the outputs {list(output_names)}, got {unknown}")
        return [(f"{name}[{k!r}]", value.get(k)) for k in output_names]
    if isinstance(value, np.ndarray):
        return [(name, value)] * n
    if not isinstance(value, (list, tuple)) or len(value) != n:
        got = f"{len(value)} items" if isinstance(value, (list, tuple)) else type(value).__name__
        raise ValueError(
            f"{name}: expected a list of {n} weight arrays or None (one per output), a dict by output name or "
            f"one array for every output, got {got}"
        )
    return [(f"{name}[{i}]", v) for i, v in enumerate(value)]


def _finite_nonnegative(name: str, w: np.ndarray) -> None:
    bad = ~(np.isfinite(w) & (w >= 0))
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: expected finite weights >= 0, got {w[at]!r} at {at}")


def sample_weights(
    name: str, value: Any, output_names: Sequence[str], shapes: Sequence[tuple[int, ...]], losses: Sequence[Any]
) -> list[Optional[np.ndarray]]:
    """Per output: None or float64 weights, ``[B]`` (one per row) or, for a
    per-step output ``[B, T, ...]``, ``[B, T]`` (one per step); finite and
    >= 0. A callable loss cannot weigh rows (``ValueError``)."""
    if value is None:
        return [None] * len(output_names)
    checked: list[Optional[np.ndarray]] = []
    for (part, raw), shape, loss in zip(_weight_parts(name, value, output_names), shapes, losses):
        if raw is None:
            checked.append(None)
            continue
        arr = numeric_array(part, raw, "an array of weights")
        if arr.dtype.kind == "b":
            raise TypeError(f"{part}: expected an array of numbers, got dtype bool")
        allowed = [shape[:1]] + ([shape[:2]] if len(shape) == 3 else [])
        if arr.shape not in allowed:
            what = " or ".join(str(s) for s in allowed)
            raise ValueError(
                f"{part}: expected weights of shape {what} (one per row{', or per step' if len(allowed) > 1 else ''}"
                f"), got shape {arr.shape}"
            )
        w = arr.astype(np.float64)
        _finite_nonnegative(part, w)
        if loss_kind(loss) == "custom":
            raise ValueError(
                f"{part}: expected None for an output whose loss is {loss_name(loss)} (a callable returns one value "
                "per batch and cannot weigh rows; use a rnnrs.losses object), got weights"
            )
        checked.append(w)
    return checked


def class_weights(
    value: Any, ys: Sequence[np.ndarray], shapes: Sequence[tuple[int, ...]], losses: Sequence[Any]
) -> Optional[np.ndarray]:
    """``class_weight`` turned into float64 weights for the one output:
    ``[B]`` (or ``[B, T]`` for per-step targets), each row's (step's)
    ``class_weight.get(class, 1)``. The class is the id (sparse), the
    ``argmax`` of the one-hot row (categorical, as Keras) or the 0/1 target
    (binary, one unit per row or step)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"class_weight: expected None or a dict {{class id: weight}}, got {type(value).__name__}")
    if len(losses) != 1:
        raise ValueError(
            f"class_weight: expected None for a model with several outputs ({len(losses)}; as Keras 3, give "
            "sample_weight per output instead), got a dict"
        )
    loss, y, shape = losses[0], ys[0], shapes[0]
    kind = loss_kind(loss)
    if kind not in CLASS_KINDS:
        raise ValueError(
            "class_weight: expected a loss whose targets are classes (sparse, categorical or binary "
            f"cross-entropy), got {loss_name(loss)}"
        )
    classes = 2 if kind == "binary" else int(shape[-1])
    table = np.ones(classes, dtype=np.float64)
    for key, weight in value.items():
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, numbers.Integral):
            raise TypeError(f"class_weight: expected integer class ids as keys, got {type(key).__name__} {key!r}")
        if not 0 <= int(key) < classes:
            raise ValueError(f"class_weight: expected class ids in [0, {classes}) as keys, got {int(key)}")
        if isinstance(weight, (bool, np.bool_)) or not isinstance(weight, numbers.Real):
            raise TypeError(
                f"class_weight: expected a number >= 0 for class {int(key)}, got {type(weight).__name__} {weight!r}"
            )
        if not (math.isfinite(float(weight)) and float(weight) >= 0):
            raise ValueError(f"class_weight: expected a finite number >= 0 for class {int(key)}, got {weight!r}")
        table[int(key)] = float(weight)
    if kind == "sparse":
        ids = y
    elif kind == "categorical":
        ids = np.asarray(y).argmax(axis=-1)
    else:
        if shape[-1] != 1:
            raise ValueError(
                "class_weight: expected binary targets with one unit per row or step ([..., 1]) to weigh by class, "
                f"got outputs of shape {shape}"
            )
        flat = np.asarray(y)[..., 0]
        off = (flat != 0) & (flat != 1)
        if off.any():
            at = tuple(int(i) for i in np.argwhere(off)[0])
            raise ValueError(f"class_weight: expected 0/1 targets to weigh by class, got {flat[at]!r} at {at}")
        ids = flat.astype(np.int64)
    out: np.ndarray = table[ids]
    return out


def combined(a: Optional[np.ndarray], b: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """The product of two weight arrays (``[B]`` and ``[B]`` or ``[B, T]``), None standing for ones."""
    if a is None or b is None:
        return b if a is None else a
    if a.ndim < b.ndim:
        a = a[:, None]
    elif b.ndim < a.ndim:
        b = b[:, None]
    out: np.ndarray = a * b
    return out
