"""Models: a stack of layers with a loss, an optimizer and a training loop.

Keras' vocabulary on TensorFlow 1.x's pieces::

    model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(150), num_classes=10)   # RNN → Dense → softmax
    history = model.fit(X, y, batch_size=150, epochs=30, validation_data=(X_val, y_val), seed=0)
    model.evaluate(X_test, y_test)        # {'loss': ..., 'accuracy': ...}
    model.predict(X_test)                 # class probabilities [B, C]
    model.save("digits.npz"); rnnrs.load_model("digits.npz")

:class:`Sequential` composes :mod:`rnnrs.layers` (``Embedding``, ``RNN``,
``Dense``); :class:`SequenceClassifier` (final output → dense → softmax,
cross-entropy, accuracy) and :class:`SequenceRegressor` (every step's output →
optional projection, mean squared error) are ready-made stacks. Every model
trains with ``fit`` (seeded shuffling, mini-batches, validation, a
:class:`History` of metrics, a progress bar on a terminal), and regressors
whose outputs have the inputs' size can ``generate`` sequences by feeding
each prediction back (the chapter's "creative RNN").

Files: ``save`` writes ONE ``.npz`` (readable by ``numpy.load``, no pickle)
holding the configuration as JSON text (entry ``__rnnrs_model__``), the
weights (``weights/<layer>/<weight>``) and the optimizer state
(``optimizer/<slot>/<layer>/<weight>``, ``optimizer/iterations``).

Variable-length batches: pass ``sequence_length`` (``[B]``) to ``fit``,
``evaluate`` and ``predict`` (and ``validation_data=(x, y, lengths)``);
per-step losses and metrics then count only the steps ``t < len[b]``.

Shape letters: ``B`` batch, ``T`` time, ``F`` input features, ``C`` classes,
``O`` outputs.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import sys
import tempfile
import time
from typing import Any, Callable, Mapping, Optional, Sequence, TextIO, Union

import numpy as np

from . import losses as _losses
from . import metrics as _metrics
from ._serialize import (
    MAX_DEPTH,
    Archive,
    cell_from_config,
    construct,
    constructor_kwargs,
    registered_from_config,
    short,
)
from ._validate import (
    bounded_int,
    check_shape,
    flag,
    float_array,
    lengths_array,
    numeric_array,
    positive_int,
    seed_value,
)
from .callbacks import Callback, check_callbacks
from .cells import RNNCell
from .layers import RNN, Dense, Embedding, Layer, LayerBackward
from .losses import class_ids, mean_squared_error, sequence_mask, softmax, sparse_softmax_cross_entropy
from .optimizers import OPTIMIZERS, Adam, Optimizer
from .optimizers import get as get_optimizer
from .progress import ProgressBar, format_metrics, progress_mode
from .schedules import schedule_from_config

FORMAT = "rnnrs.model"
FORMAT_VERSION = 1
CONFIG_KEY = "__rnnrs_model__"

_CLASSIFICATION = "sparse_softmax_cross_entropy"
_REGRESSION = "mean_squared_error"
# Loss names -> canonical names. The cross-entropies take logits (the model's
# last Dense has no softmax/sigmoid), as sparse_softmax_cross_entropy does.
LOSSES = {
    "sparse_softmax_cross_entropy": _CLASSIFICATION,
    "sparse_categorical_crossentropy": _CLASSIFICATION,
    "mean_squared_error": _REGRESSION,
    "mse": _REGRESSION,
    "binary_crossentropy": "binary_crossentropy",
    "categorical_crossentropy": "categorical_crossentropy",
    "huber": "huber",
    "mean_absolute_error": "mean_absolute_error",
    "mae": "mean_absolute_error",
}
# Canonical names (beyond the two TF 1.x functions) -> the loss object they mean.
_NAMED_LOSSES: dict[str, _losses.Loss] = {
    "binary_crossentropy": _losses.BinaryCrossentropy(from_logits=True),
    "categorical_crossentropy": _losses.CategoricalCrossentropy(from_logits=True),
    "huber": _losses.Huber(),
    "mean_absolute_error": _losses.MeanAbsoluteError(),
}
# What a loss's targets are: "sparse" class ids, "categorical" one-hot rows,
# "binary" 0/1 entries, "regression" floats, "custom" (a callable's) anything numeric.
_LOSS_KINDS: dict[type, str] = {
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
_RANKING_METRICS = (
    _metrics.SparseCategoricalAccuracy,
    _metrics.CategoricalAccuracy,
    _metrics.SparseTopKCategoricalAccuracy,
)


class History:
    """What ``fit`` returns: the record of every epoch the model has trained
    (Keras' ``History``, accumulated).

    A model keeps ONE history, ``model.history`` (None before its first
    ``fit``): each ``fit`` call appends its epochs to it and returns it, so
    after ``fit(epochs=3)`` then ``fit(epochs=2)`` it holds five epochs,
    numbered ``0 ... 4``, and both calls returned the same object. (Keras 3
    returns a fresh ``History`` per call; here training in several calls
    keeps one curve.) To start a new record, set ``model.history = None``
    before ``fit``. A metric that only some calls computed (``val_loss``
    when only the last call had ``validation_data``) has values only for
    those epochs: use ``len(history.epoch)`` for the epoch count.

    Attributes:
        history: metric name (``"loss"``, ``"accuracy"``, ``"val_loss"``, ...)
            → one value per epoch, oldest first.
        epoch: the epoch indices, 0-based and counting on across ``fit``
            calls; a ``fit`` given ``initial_epoch=k > 0`` numbers its
            epochs ``k, k + 1, ...`` instead (as Keras).
        seconds: wall-clock seconds of each epoch (validation included).
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.seconds: list[float] = []

    def _append(self, logs: Mapping[str, float], seconds: float, epoch: Optional[int] = None) -> None:
        """Records one more epoch, numbered ``epoch`` (default: after the last one recorded)."""
        self.epoch.append(epoch if epoch is not None else self.epoch[-1] + 1 if self.epoch else 0)
        self.seconds.append(seconds)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, metrics={sorted(self.history)})"


class _Forward:
    """A model's forward pass kept for backpropagation."""

    def __init__(self, outputs: np.ndarray, states: list[Any], backwards: list[LayerBackward]) -> None:
        self.outputs = outputs
        self.states = states
        self.backwards = backwards


class Sequential:
    """A stack of layers, each reading the previous one's outputs.

    Args:
        layers: the layers, first to last (an ``Embedding`` may only come
            first). Layer names must be unique: a taken name gets a suffix
            (``dense``, ``dense_1``, ...).
        name: the model's name.

    Call :meth:`compile` before :meth:`fit` / :meth:`evaluate` (the
    ready-made models are compiled with Adam(0.001) and their loss).
    """

    def __init__(self, layers: Optional[Sequence[Layer]] = None, name: Optional[str] = None) -> None:
        self.name = name or _default_name(type(self).__name__)
        self.layers: list[Layer] = []
        self.optimizer: Optional[Optimizer] = None
        # A loss name (canonical), a rnnrs.losses.Loss, or a callable (y_true, y_pred) -> (value, d_pred).
        self.loss: Any = None
        self.metrics: list[str] = []  # the log keys of the metrics, in order
        self._metric_objects: list[_metrics.Metric] = []
        # What compile was given for each metric (a name, or the object itself): what save writes.
        self._metric_specs: list[Any] = []
        self.history: Optional[History] = None
        self.input_size: Optional[int] = None
        self._weight_keys: list[list[tuple[str, str]]] = []
        if layers is not None:
            if isinstance(layers, Layer) or not isinstance(layers, Sequence):
                raise TypeError(f"layers: expected a list of rnnrs layers, got {type(layers).__name__}")
            for layer in layers:
                self.add(layer)

    # -- structure ----------------------------------------------------------
    def add(self, layer: Layer) -> None:
        """Appends ``layer`` (renamed ``<name>_<i>`` if its name is taken)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"layer: expected an rnnrs layer (Dense, Embedding, RNN), got {type(layer).__name__}")
        if isinstance(layer, Embedding) and self.layers:
            raise ValueError(
                f"layer: expected Embedding only as the first layer, got it at position {len(self.layers)}"
            )
        if any(layer is other for other in self.layers):
            raise ValueError(f"layer: expected a layer not already in the model, got {layer.name!r} twice")
        taken = {other.name for other in self.layers}
        if layer.name in taken:
            base, i = layer.name, 1
            while f"{base}_{i}" in taken:
                i += 1
            layer.name = f"{base}_{i}"
        self.layers.append(layer)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The model's float dtype: that of its first layer that has one (float32 otherwise)."""
        for layer in self.layers:
            if layer.dtype is not None:
                return layer.dtype
        return np.dtype(np.float32)

    @property
    def built(self) -> bool:
        """Whether every layer has its weights (after ``build``, ``fit`` or a first call)."""
        return bool(self.layers) and all(layer.built for layer in self.layers)

    def _takes_ids(self) -> bool:
        return bool(self.layers) and isinstance(self.layers[0], Embedding)

    def build(self, input_size: Optional[int] = None) -> None:
        """Creates every layer's weights for inputs with ``input_size`` features
        (ignored, and may be None, when the first layer is an ``Embedding``)."""
        if not self.layers:
            raise ValueError("layers: expected at least one layer, got an empty model")
        dtype = self.dtype
        size = 0 if self._takes_ids() else positive_int("input_size", input_size)
        for layer in self.layers:
            layer.build(size, dtype)
            if layer.dtype != dtype:
                raise ValueError(
                    f"layers: expected one dtype ({dtype.name}) for every layer, got {layer.dtype} in {layer.name!r}"
                )
            size = layer.output_size()
        self.input_size = None if self._takes_ids() else int(input_size)  # type: ignore[arg-type]
        self._weight_keys = [[(f"{layer.name}/{k}", k) for k in layer.get_weights()] for layer in self.layers]

    def output_size(self) -> int:
        """The last layer's output size (classes for a classifier)."""
        if not self.layers:
            raise ValueError("layers: expected at least one layer, got an empty model")
        return self.layers[-1].output_size()

    def _output_ndim(self, input_ndim: int) -> int:
        return self._output_ndims(input_ndim)[-1] if self.layers else input_ndim

    def _output_ndims(self, input_ndim: int) -> list[int]:
        """The number of axes of each layer's outputs for inputs of ``input_ndim`` axes."""
        ndim = input_ndim
        ndims: list[int] = []
        for layer in self.layers:
            if isinstance(layer, Embedding):
                ndim += 1
            elif isinstance(layer, RNN):
                if ndim != 3:
                    raise ValueError(
                        f"layers: expected 3-d inputs [batch, time, features] for RNN layer {layer.name!r}, "
                        f"got {ndim}-d (an RNN without return_sequences=True before it?)"
                    )
                ndim = 3 if layer.return_sequences else 2
            ndims.append(ndim)
        return ndims

    def get_weights(self) -> dict[str, np.ndarray]:
        """Copies of every weight as ``"<layer name>/<weight name>"`` → array."""
        if not self.built:
            raise ValueError(
                "get_weights: expected a built model (call build(input_size) or fit it), got an unbuilt one"
            )
        return {f"{layer.name}/{k}": v for layer in self.layers for k, v in layer.get_weights().items()}

    def set_weights(self, mapping: Mapping[str, Any]) -> None:
        """Replaces weights by ``"<layer name>/<weight name>"`` (copies; validated)."""
        if not isinstance(mapping, Mapping):
            raise TypeError(f"mapping: expected a mapping of weight name to array, got {type(mapping).__name__}")
        by_layer: dict[str, dict[str, Any]] = {}
        names = {layer.name: layer for layer in self.layers}
        for key, value in mapping.items():
            prefix, _, rest = str(key).partition("/")
            if prefix not in names or not rest:
                raise ValueError(
                    f"mapping: expected names '<layer>/<weight>' with layer in {sorted(names)}, got unknown {key!r}"
                )
            by_layer.setdefault(prefix, {})[rest] = value
        for prefix, part in by_layer.items():
            names[prefix].set_weights(part)

    def count_params(self) -> int:
        """Number of scalar weights."""
        return int(sum(v.size for v in self.get_weights().values()))

    def summary(
        self,
        line_length: Optional[int] = None,
        print_fn: Optional[Callable[[str], Any]] = None,
        stream: Optional[TextIO] = None,
    ) -> str:
        """Prints and returns a table of the layers (Keras' ``Model.summary()``).

        One row per layer: ``name (class)`` (an ``RNN`` shows its cell's
        class, e.g. ``RNN(LSTMCell)``), the output shape with ``None`` for
        the batch and for the time axis (every rnnrs model takes any
        number of steps), and the number of weights; then the total and
        trainable parameter counts with their size in bytes (every rnnrs
        weight is trainable), and the loss, metrics and optimizer once
        compiled::

            Model: "sequential" (Sequential, float32)
            ____________________________________________________
             Layer (type)            Output Shape       Param #
            ====================================================
             rnn (RNN(LSTMCell))     (None, None, 8)        384
            ...

        Args:
            line_length: the table's width in characters, an integer >= 40
                (default: as wide as the widest row needs, at least 65).
            print_fn: called with each line (no newline), e.g. ``print``
                or ``lines.append``; None (default) writes to ``stream``.
            stream: a text stream to write the table to (default
                ``sys.stdout``); give ``print_fn`` or ``stream``, not both.

        Returns:
            The table as a ``str`` (its ``repr`` is one short line, so
            ``model.summary()`` at a prompt shows the table once).

        Raises:
            ValueError: the model is not built yet (``build(input_size)``,
                ``fit`` or a first call creates the weights), or its layers
                do not connect (an ``RNN`` after one without
                ``return_sequences=True``).
        """
        if line_length is not None:
            line_length = bounded_int("line_length", line_length, 40)
        if print_fn is not None and not callable(print_fn):
            raise TypeError(f"print_fn: expected a callable taking one line or None, got {type(print_fn).__name__}")
        if stream is not None and not callable(getattr(stream, "write", None)):
            raise TypeError(f"stream: expected a text stream with write() or None, got {type(stream).__name__}")
        if print_fn is not None and stream is not None:
            raise ValueError("print_fn: expected either print_fn or stream, got both")
        if not self.layers:
            raise ValueError("summary: expected a built model, got one without layers (add layers, then build it)")
        if not self.built:
            raise ValueError(
                f"summary: expected a built model, got model {self.name!r} without weights yet "
                "(call build(input_size), or fit / predict it on data first)"
            )
        ndims = self._output_ndims(2 if self._takes_ids() else 3)
        rows: list[tuple[str, str, str]] = []
        total = 0
        for layer, ndim in zip(self.layers, ndims):
            what = type(layer).__name__
            if isinstance(layer, RNN):
                what += f"({type(layer.cell).__name__})"
            shape = "(None, " + ("None, " if ndim == 3 else "") + f"{layer.output_size()})"
            n = int(sum(v.size for v in layer.get_weights().values()))
            total += n
            rows.append((f"{layer.name} ({what})", shape, f"{n:,}"))
        head = ("Layer (type)", "Output Shape", "Param #")
        w0 = max(len(r[0]) for r in [head, *rows]) + 2
        w1 = max(len(r[1]) for r in [head, *rows]) + 2
        w2 = max(len(r[2]) for r in [head, *rows])
        width = max(65, 1 + w0 + w1 + w2) if line_length is None else line_length
        w2 = max(w2, width - 1 - w0 - w1)  # the counts stay right-aligned at the table's edge

        def row(cells: tuple[str, str, str]) -> str:
            return f" {cells[0]:<{w0}}{cells[1]:<{w1}}{cells[2]:>{w2}}"

        itemsize = self.dtype.itemsize
        lines = [f'Model: "{self.name}" ({type(self).__name__}, {self.dtype.name})', "_" * width, row(head)]
        lines.append("=" * width)
        for i, r in enumerate(rows):
            lines.append(row(r))
            if i + 1 < len(rows):
                lines.append("_" * width)
        lines.append("=" * width)
        lines.append(f" Total params: {total:,} ({_bytes(total * itemsize)})")
        lines.append(f" Trainable params: {total:,} ({_bytes(total * itemsize)})")
        lines.append(f" Non-trainable params: 0 ({_bytes(0)})")
        if self.loss:
            lines.append(f" Loss: {self.loss}; metrics: {self.metrics}; optimizer: {self.optimizer!r}")
        lines.append("_" * width)
        text = _Summary("\n".join(lines), f"{type(self).__name__} {self.name!r}: {len(rows)} layers, {total:,} params")
        if print_fn is not None:
            for line in lines:
                print_fn(line)
        else:
            out = sys.stdout if stream is None else stream
            out.write(text + "\n")
            if callable(getattr(out, "flush", None)):
                out.flush()
        return text

    # -- compile --------------------------------------------------------------
    def compile(
        self,
        optimizer: Union[Optimizer, str] = "adam",
        loss: Any = _CLASSIFICATION,
        metrics: Union[None, str, _metrics.Metric, Sequence[Union[str, _metrics.Metric]]] = None,
    ) -> None:
        """Chooses the optimizer, the loss and the metrics.

        Args:
            optimizer: an instance, or ``"sgd"``, ``"momentum"``, ``"rmsprop"``,
                ``"adam"``, ... (see ``rnnrs.optimizers``).
            loss: a name, a loss object or a callable:

                - names: ``"sparse_softmax_cross_entropy"`` (alias
                  ``"sparse_categorical_crossentropy"``; integer class ids),
                  ``"categorical_crossentropy"`` (one-hot rows),
                  ``"binary_crossentropy"`` (0/1 targets) — the three
                  cross-entropies take the model's outputs as LOGITS (its last
                  ``Dense`` has no softmax/sigmoid); ``"mean_squared_error"``
                  (``"mse"``), ``"mean_absolute_error"`` (``"mae"``),
                  ``"huber"`` (delta 1) on float targets;
                - a :class:`rnnrs.losses.Loss` (``BinaryCrossentropy(from_logits=...)``,
                  ``CategoricalCrossentropy``, ``SparseCategoricalCrossentropy``,
                  ``MeanSquaredError``, ``MeanAbsoluteError``, ``Huber(delta)``);
                  with ``from_logits=False`` the outputs are probabilities
                  (e.g. a last ``Dense(activation="sigmoid")``);
                - a callable ``(y_true, y_pred) -> (value, d_pred)``: ``value``
                  a real number, ``d_pred`` its gradient, an array of
                  ``y_pred``'s shape (checked at every batch: ``TypeError`` /
                  ``ValueError`` naming ``loss``). Its targets are passed as
                  given (numeric, one row per input row); it cannot be used
                  with ``sequence_length`` on per-step outputs.

                With ``sequence_length`` on per-step outputs every loss is the
                mean over the unmasked steps (padded steps weigh 0).
            metrics: None, one metric, or a list of metric names and
                :class:`rnnrs.metrics.Metric` objects. Names, by loss:
                ``"accuracy"`` / ``"acc"`` (class ids, one-hot or binary
                targets), ``"sparse_categorical_accuracy"``,
                ``"categorical_accuracy"``, ``"binary_accuracy"``,
                ``"sparse_top_k_categorical_accuracy"`` (class ids) and
                ``"top_k_categorical_accuracy"`` (one-hot) with k = 5,
                ``"precision"``, ``"recall"``, ``"auc"`` (binary
                targets), ``"mae"`` / ``"mean_absolute_error"`` (regression).
                Logs use the name's key (``"acc"`` logs ``"accuracy"``, the mae
                names ``"mae"``) or the object's ``name``.

        Metrics see what Keras would give them: for a cross-entropy on logits,
        ``softmax(outputs)`` (categorical) or ``sigmoid(outputs)`` (binary);
        the accuracies and top-k accuracies rank the logits themselves (the
        softmax keeps their order); other losses pass the outputs unchanged.
        Padded steps (``sequence_length``) are not counted. ``evaluate`` and
        ``fit`` report every metric (``fit``'s over the epoch so far, reset
        at each epoch, as Keras does). A metric object must have one result (``Precision`` /
        ``Recall`` with several thresholds are refused: logs hold numbers).
        """
        opt = get_optimizer(optimizer)
        if isinstance(loss, str):
            if loss not in LOSSES:
                raise ValueError(f"loss: expected one of {sorted(LOSSES)}, a loss object or a callable, got {loss!r}")
            canonical: Any = LOSSES[loss]
        elif isinstance(loss, _losses.Loss):
            same = [name for name, obj in _NAMED_LOSSES.items() if obj == loss]
            canonical = same[0] if same else loss
        elif callable(loss):
            canonical = loss
        else:
            raise TypeError(
                "loss: expected a loss name, a rnnrs.losses.Loss or a callable (y_true, y_pred) -> (value, d_pred), "
                f"got {type(loss).__name__}"
            )
        kind = _loss_kind(canonical)
        if metrics is None:
            given: list[Any] = []
        elif isinstance(metrics, (str, _metrics.Metric)):
            given = [metrics]
        elif isinstance(metrics, (list, tuple)):
            given = list(metrics)
        else:
            raise TypeError(
                f"metrics: expected None, a metric name or object, or a list of them, got {type(metrics).__name__}"
            )
        names: list[str] = []
        objects: list[_metrics.Metric] = []
        specs: list[Any] = []
        for m in given:
            if isinstance(m, _metrics.Metric):
                key, metric = m.name, m
                if not getattr(m, "_scalar", True):
                    raise ValueError(
                        f"metrics: expected metrics with one result (logs hold numbers), got {m!r} "
                        "(give one threshold per metric object)"
                    )
                if key in names:
                    raise ValueError(f"metrics: expected distinct metric names, got {key!r} twice")
            elif isinstance(m, str):
                if m not in METRICS:
                    raise ValueError(f"metrics: expected names among {sorted(METRICS)} or metric objects, got {m!r}")
                key, by_kind = METRICS[m]
                if kind not in by_kind:
                    losses_for = sorted(_KIND_NAMES[k] for k in by_kind)
                    raise ValueError(
                        f"metrics: expected {m!r} with a loss among {losses_for}, got loss {_loss_name(canonical)}"
                    )
                if key in names:
                    continue
                metric = by_kind[kind]()
            else:
                raise TypeError(
                    f"metrics: expected metric names (str) or rnnrs.metrics objects, got {type(m).__name__} {m!r}"
                )
            names.append(key)
            objects.append(metric)
            specs.append(m)
        self.optimizer, self.loss, self.metrics, self._metric_objects = opt, canonical, names, objects
        self._metric_specs = specs

    def _require_compiled(self, what: str) -> tuple[Optimizer, Any]:
        if self.optimizer is None or self.loss is None:
            raise ValueError(f"{what}: expected a compiled model (call compile(optimizer, loss)), got none")
        return self.optimizer, self.loss

    # -- validation of data ---------------------------------------------------
    def _inputs(self, name: str, x: Any) -> np.ndarray:
        if not self.layers:
            raise ValueError("layers: expected at least one layer, got an empty model")
        if self._takes_ids():
            first = self.layers[0]
            assert isinstance(first, Embedding)
            ids = first.ids(name, x)
            if ids.ndim != 2:
                raise ValueError(f"{name}: expected a 2-d array of ids [batch, time], got shape {ids.shape}")
            return ids
        arr = float_array(name, x, self.dtype, 3, "[batch, time, features]")
        if arr.shape[2] < 1:
            raise ValueError(f"{name}: expected at least one feature, got shape {arr.shape}")
        if self.input_size is not None and arr.shape[2] != self.input_size:
            raise ValueError(
                f"{name}: expected {self.input_size} features (the model is built for it), got {arr.shape[2]}"
            )
        return arr

    def _prepare(
        self, name: str, x: Any, sequence_length: Any, length_name: str
    ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        arr = self._inputs(name, x)
        if not self._weight_keys:  # not built by the model yet (its layers may be)
            self.build(None if self._takes_ids() else arr.shape[2])
        try:
            lengths = lengths_array(sequence_length, arr.shape[0], arr.shape[1])
        except (ValueError, TypeError) as e:
            raise type(e)(str(e).replace("sequence_length", length_name, 1)) from None
        return arr, lengths

    def _output_shape(self, x: np.ndarray) -> tuple[int, ...]:
        ndim = self._output_ndim(x.ndim)
        size = self.output_size()
        return (x.shape[0], size) if ndim == 2 else (x.shape[0], x.shape[1], size)

    def _targets(self, name: str, y: Any, x: np.ndarray, loss: Any) -> np.ndarray:
        """``y`` checked for ``loss``: class ids for a sparse cross-entropy,
        one-hot (or probability) rows of the outputs' shape for a categorical
        one, 0/1 (or probabilities in [0, 1]) of the outputs' shape for a
        binary one, floats of the outputs' shape for regression, any numeric
        array with one row per input row for a callable."""
        raw = numeric_array(name, y, "an array of targets")
        if raw.ndim == 0 or raw.shape[0] != x.shape[0]:
            got = "a scalar" if raw.ndim == 0 else f"{raw.shape[0]}"
            raise ValueError(f"{name}: expected {x.shape[0]} rows (one per row of the inputs), got {got}")
        out_shape = self._output_shape(x)
        kind = _loss_kind(loss)
        if kind == "sparse":
            return class_ids(name, raw, out_shape[-1], out_shape[:-1])
        if kind == "custom":
            return raw
        arr = float_array(name, raw, self.dtype, len(out_shape), f"shaped like the outputs {out_shape}")
        check_shape(name, arr, out_shape)
        if kind in ("binary", "categorical"):
            what = "0/1 targets (or probabilities)" if kind == "binary" else "one-hot rows (or probability rows)"
            outside = ~((arr >= 0) & (arr <= 1))
            if outside.any():
                at = tuple(int(i) for i in np.argwhere(outside)[0])
                raise ValueError(f"{name}: expected {what} in [0, 1], got {arr[at]!r} at {at}")
            if kind == "categorical":
                off = np.abs(arr.sum(axis=-1, dtype=np.float64) - 1.0) > 1e-3
                if off.any():
                    at = tuple(int(i) for i in np.argwhere(off)[0])
                    total = float(arr[at].sum(dtype=np.float64))
                    raise ValueError(f"{name}: expected {what} summing to 1, got a row summing to {total} at {at}")
        return arr

    # -- forward / backward ---------------------------------------------------
    def _forward(
        self, x: np.ndarray, lengths: Optional[np.ndarray], training: bool, states: Optional[Sequence[Any]] = None
    ) -> _Forward:
        h = x
        finals: list[Any] = []
        backwards: list[LayerBackward] = []
        for i, layer in enumerate(self.layers):
            out = layer._forward(h, lengths, training, None if states is None else states[i])
            h = out.outputs
            finals.append(out.state)
            backwards.append(out.backward)
        return _Forward(h, finals, backwards)

    def _backward(self, fwd: _Forward, d_outputs: np.ndarray) -> dict[str, np.ndarray]:
        grads: dict[str, np.ndarray] = {}
        d: Optional[np.ndarray] = d_outputs
        for i in reversed(range(len(self.layers))):
            assert d is not None
            d, weights = fwd.backwards[i](d, i > 0)
            name = self.layers[i].name
            for k, v in weights.items():
                grads[f"{name}/{k}"] = v
        return grads

    def _push(self, params: Mapping[str, np.ndarray]) -> None:
        for layer, keys in zip(self.layers, self._weight_keys):
            layer.set_weights({short: params[full] for full, short in keys})

    def _loss(
        self,
        loss: Any,
        y: np.ndarray,
        out: np.ndarray,
        lengths: Optional[np.ndarray],
    ) -> tuple[float, np.ndarray, dict[str, tuple[float, float]]]:
        """``(value, d_outputs, {"loss": (value * count, count)})``; the
        metric objects' states are updated with this batch (callers reset
        them and read their results)."""
        mask = sequence_mask(lengths, out.shape[1], out.dtype) if (lengths is not None and out.ndim == 3) else None
        kind = _loss_kind(loss)
        steps = float(
            y.shape[0] * (out.shape[1] if out.ndim == 3 else 1) if mask is None else mask.sum(dtype=np.float64)
        )
        if loss == _CLASSIFICATION:
            value, d = sparse_softmax_cross_entropy(y, out, mask)
            count = steps
        elif loss == _REGRESSION:
            value, d = mean_squared_error(y, out, mask)
            count = steps * (out.shape[-1] if out.ndim == 3 else 1)
        elif kind == "custom":
            if mask is not None:
                raise ValueError(
                    "loss: expected a loss name or object with sequence_length on per-step outputs "
                    "(a callable cannot weigh the padded steps), got a callable"
                )
            value, d = _call_loss(loss, y, out)
            count = float(y.shape[0])
        else:
            obj = loss if isinstance(loss, _losses.Loss) else _NAMED_LOSSES[loss]
            value, d = obj(y, out, mask)
            count = steps * (out.shape[-1] if (out.ndim == 3 and kind != "categorical" and kind != "sparse") else 1)
            if mask is not None:  # Keras' masking: the mean over the unmasked entries
                scale = mask.size / steps if steps else 0.0
                value, d = value * scale, d * d.dtype.type(scale)
        sums: dict[str, tuple[float, float]] = {"loss": (value * count, count)}
        if self._metric_objects:
            raw, probs = out, _probabilities(loss, out)
            for metric in self._metric_objects:
                metric.update_state(y, raw if isinstance(metric, _RANKING_METRICS) else probs, mask)
        return value, d, sums

    def _logs(self, totals: Mapping[str, Sequence[float]]) -> dict[str, float]:
        """The loss's mean over the batches so far and every metric's result."""
        logs = _means(totals)
        for key, metric in zip(self.metrics, self._metric_objects):
            logs[key] = float(metric.result())
        return logs

    def __call__(self, x: Any, sequence_length: Any = None, training: bool = False) -> np.ndarray:
        """The raw outputs (logits for a classifier) of one forward pass."""
        arr, lengths = self._prepare("x", x, sequence_length, "sequence_length")
        return self._forward(arr, lengths, flag("training", training)).outputs

    # -- training -------------------------------------------------------------
    def fit(
        self,
        x: Any,
        y: Any,
        batch_size: int = 32,
        epochs: int = 1,
        validation_data: Optional[Sequence[Any]] = None,
        shuffle: bool = True,
        seed: Optional[int] = None,
        sequence_length: Any = None,
        verbose: Union[str, int] = "auto",
        stream: Optional[TextIO] = None,
        callbacks: Optional[Sequence[Callback]] = None,
        validation_split: float = 0.0,
        initial_epoch: int = 0,
    ) -> History:
        """Trains the model on mini-batches.

        Args:
            x: inputs ``[B, T, F]`` (integer ids ``[B, T]`` after an ``Embedding``).
            y: targets: class ids ``[B]`` (or ``[B, T]`` per step) for a
                classifier, values shaped like the outputs for a regressor.
            batch_size: rows per step, an integer >= 1 (the last batch may
                be smaller).
            epochs: the index at which training stops, an integer >= 0: the
                epochs run are ``initial_epoch, ..., epochs - 1`` (as Keras;
                none when ``epochs <= initial_epoch``).
            validation_data: ``(x_val, y_val)`` or ``(x_val, y_val,
                lengths_val)``, evaluated after every epoch (``val_*`` metrics).
            shuffle: reshuffle the rows every epoch (a bool).
            seed: seeds the shuffling, None or an integer >= 0 (the same
                seed, data and weights give the same training).
            sequence_length: optional ``[B]`` lengths of ``x``'s rows.
            verbose: ``"auto"`` (default) a progress bar when ``stream`` is a
                terminal and silence otherwise; ``0`` silent; ``1`` the bar;
                ``2`` one line per epoch.
            stream: where progress goes (default ``sys.stdout``).
            callbacks: None or a list of :class:`rnnrs.callbacks.Callback`
                instances, called at the points described in
                :mod:`rnnrs.callbacks` (with ``epoch`` counted from
                ``initial_epoch``). Setting ``model.stop_training = True``
                (e.g. :class:`~rnnrs.callbacks.EarlyStopping`) ends training
                after the current batch, once that epoch is closed. Weights a
                callback sets with ``set_weights`` are trained on from the
                next epoch.
            validation_split: a number in ``[0, 1)``: that fraction of the
                rows, taken from the END before any shuffling (rows
                ``floor(n * (1 - validation_split))`` on, with their
                lengths), is held out of training and evaluated after every
                epoch like ``validation_data`` (as Keras).
            initial_epoch: the epoch to start at, an integer >= 0 (to resume
                a run; the history numbers this call's epochs from it).

        Returns:
            ``model.history``, the model's :class:`History`: this call's
            epochs are appended to those of the earlier ``fit`` calls
            (the first call creates it; set ``model.history = None`` to
            start a new one). Entries a callback adds to the epoch's logs
            (``learning_rate``) are recorded too.

        Raises:
            ValueError / TypeError: bad inputs (mismatched rows, labels out of
                range, wrong shapes) or arguments of the wrong type or value
                (the message names the argument), before any training:
                ``callbacks`` not a list of ``Callback`` (``TypeError``) or a
                callback defining an ``on_*`` method that is not a Keras hook
                (``ValueError`` naming it); ``validation_split`` together with
                ``validation_data``, or leaving no training or no validation
                rows (``ValueError``).
            FloatingPointError: the loss or the gradients became NaN or
                infinite; training stops at that batch, before applying it.
                For a non-finite loss, the callbacks' ``on_train_batch_end``
                sees the batch's logs first: if one sets
                ``model.stop_training`` (:class:`~rnnrs.callbacks.TerminateOnNaN`),
                the batch is not applied and ``fit`` returns normally instead.
        """
        optimizer, loss = self._require_compiled("fit")
        batch_size = positive_int("batch_size", batch_size)
        epochs = bounded_int("epochs", epochs, 0)
        initial_epoch = bounded_int("initial_epoch", initial_epoch, 0)
        cbs = check_callbacks(callbacks)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle: expected a bool, got {type(shuffle).__name__}")
        if isinstance(validation_split, (bool, np.bool_)) or not isinstance(validation_split, numbers.Real):
            raise TypeError(f"validation_split: expected a number in [0, 1), got {type(validation_split).__name__}")
        if not 0 <= float(validation_split) < 1:
            raise ValueError(f"validation_split: expected a number in [0, 1), got {validation_split}")
        if validation_split and validation_data is not None:
            raise ValueError(
                "validation_split: expected 0 when validation_data is given (one validation set), "
                f"got {validation_split}"
            )
        rng = np.random.default_rng(seed_value(seed))
        if stream is not None and not callable(getattr(stream, "write", None)):
            raise TypeError(f"stream: expected a text stream with write() or None, got {type(stream).__name__}")
        out = sys.stdout if stream is None else stream
        mode = progress_mode(verbose, out)
        x_arr, lengths = self._prepare("x", x, sequence_length, "sequence_length")
        y_arr = self._targets("y", y, x_arr, loss)
        val = self._validation(validation_data, loss)
        if validation_split:
            split = int(math.floor(x_arr.shape[0] * (1.0 - float(validation_split))))
            if split == 0 or split == x_arr.shape[0]:
                raise ValueError(
                    f"validation_split: expected a fraction leaving rows for both training and validation, got "
                    f"{validation_split} of {x_arr.shape[0]} rows ({split} for training)"
                )
            val = (x_arr[split:], y_arr[split:], None if lengths is None else lengths[split:])
            x_arr, y_arr = x_arr[:split], y_arr[:split]
            lengths = None if lengths is None else lengths[:split]
        n = x_arr.shape[0]
        steps = math.ceil(n / batch_size)
        history = self.history if isinstance(self.history, History) else History()
        self.history = history
        self.stop_training = False
        for cb in cbs:
            cb.set_model(self)
            cb.set_params({"epochs": epochs, "steps": steps, "verbose": verbose})
        for cb in cbs:
            cb.on_train_begin(None)
        logs: dict[str, float] = {}
        for epoch in range(initial_epoch, epochs):
            for cb in cbs:
                cb.on_epoch_begin(epoch, None)
            params = self.get_weights()  # master copies, updated in place by the optimizer
            started = time.perf_counter()
            if shuffle and n:
                order = rng.permutation(n)
                xs, ys = x_arr[order], y_arr[order]
                ls = None if lengths is None else lengths[order]
            else:
                xs, ys, ls = x_arr, y_arr, lengths
            bar = ProgressBar(steps, f"epoch {epoch + 1:>{len(str(epochs))}}/{epochs}", out) if mode == 1 else None
            totals: dict[str, list[float]] = {}
            for metric in self._metric_objects:
                metric.reset_state()
            # Non-finite values are detected and reported below (loss, gradients,
            # weights), so NumPy's overflow warnings would only be noise.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                try:
                    for step in range(steps):
                        for cb in cbs:
                            cb.on_train_batch_begin(step, None)
                        sl = slice(step * batch_size, min(n, (step + 1) * batch_size))
                        lb = None if ls is None else ls[sl]
                        fwd = self._forward(xs[sl], lb, True)
                        value, d_out, sums = self._loss(loss, ys[sl], fwd.outputs, lb)
                        for k, (s, c) in sums.items():
                            acc = totals.setdefault(k, [0.0, 0.0])
                            acc[0] += s
                            acc[1] += c
                        if not math.isfinite(value):
                            for cb in cbs:
                                cb.on_train_batch_end(step, self._logs(totals))
                            if self.stop_training:
                                break
                            raise FloatingPointError(
                                f"loss: expected a finite value, got {value} at epoch {epoch + 1}, batch {step + 1} "
                                f"(check the inputs for NaN/inf, lower the learning rate or set the optimizer's "
                                f"clip_norm); training stopped before applying this batch"
                            )
                        grads = self._backward(fwd, d_out)
                        optimizer.apply_gradients(params, grads, check_finite=True)
                        broken = [k for k, v in params.items() if not np.isfinite(v).all()]
                        if broken:
                            raise FloatingPointError(
                                f"weights: expected finite values after the update of epoch {epoch + 1}, batch "
                                f"{step + 1}, got NaN or inf in {broken} (the step overflowed: lower the learning "
                                f"rate or set the optimizer's clip_norm); the model keeps its previous weights"
                            )
                        self._push(params)
                        if bar is not None or cbs:
                            batch_logs = self._logs(totals)
                            if bar is not None:
                                bar.update(step + 1, batch_logs)
                            for cb in cbs:
                                cb.on_train_batch_end(step, dict(batch_logs))
                        if self.stop_training:
                            break
                except BaseException:
                    if bar is not None:
                        bar.stream.write("\n")
                        bar.stream.flush()
                    raise
            logs = self._logs(totals)
            if val is not None:
                for cb in cbs:
                    cb.on_test_begin(None)
                val_logs = self._evaluate_arrays(*val, loss, 256)
                for cb in cbs:
                    cb.on_test_end(dict(val_logs))
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            seconds = time.perf_counter() - started
            history._append(logs, seconds, epoch if initial_epoch else None)
            if bar is not None:
                bar.close(logs)
            elif mode == 2:
                out.write(f"epoch {epoch + 1}/{epochs}  {seconds:.2f}s  {format_metrics(logs)}\n")
                out.flush()
            if self.stop_training:
                break
        for cb in cbs:
            cb.on_train_end(dict(logs))
        return history

    def _validation(
        self, data: Optional[Sequence[Any]], loss: str
    ) -> Optional[tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]]:
        if data is None:
            return None
        if isinstance(data, np.ndarray) or not isinstance(data, (tuple, list)):
            raise TypeError(
                "validation_data: expected a tuple (x_val, y_val) or (x_val, y_val, lengths_val), "
                f"got {type(data).__name__}"
            )
        if len(data) not in (2, 3):
            raise ValueError(
                "validation_data: expected a tuple (x_val, y_val) or (x_val, y_val, lengths_val), "
                f"got {len(data)} items"
            )
        vx, vl = self._prepare("validation_data[0]", data[0], data[2] if len(data) == 3 else None, "validation_data[2]")
        vy = self._targets("validation_data[1]", data[1], vx, loss)
        return vx, vy, vl

    def evaluate(self, x: Any, y: Any, sequence_length: Any = None, batch_size: int = 256) -> dict[str, float]:
        """The loss and metrics on ``(x, y)`` without dropout:
        ``{"loss": ..., "accuracy": ...}`` (the metrics' keys as ``compile``
        describes; streaming metrics are reset, then fed every batch)."""
        _, loss = self._require_compiled("evaluate")
        batch_size = positive_int("batch_size", batch_size)
        x_arr, lengths = self._prepare("x", x, sequence_length, "sequence_length")
        y_arr = self._targets("y", y, x_arr, loss)
        return self._evaluate_arrays(x_arr, y_arr, lengths, loss, batch_size)

    def _evaluate_arrays(
        self, x: np.ndarray, y: np.ndarray, lengths: Optional[np.ndarray], loss: Any, batch_size: int
    ) -> dict[str, float]:
        for metric in self._metric_objects:
            metric.reset_state()
        totals: dict[str, list[float]] = {}
        for start in range(0, x.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            lb = None if lengths is None else lengths[sl]
            out = self._forward(x[sl], lb, False).outputs
            _, _, sums = self._loss(loss, y[sl], out, lb)
            for k, (s, c) in sums.items():
                acc = totals.setdefault(k, [0.0, 0.0])
                acc[0] += s
                acc[1] += c
        return self._logs(totals)

    # -- inference ------------------------------------------------------------
    def predict(self, x: Any, sequence_length: Any = None, batch_size: int = 256) -> np.ndarray:
        """Outputs for ``x`` without dropout, in batches: probabilities for a
        model compiled with a cross-entropy on logits (the softmax of the
        logits for the sparse and categorical ones, ``[B, C]`` or ``[B, T,
        C]``; the sigmoid for the binary one), the raw outputs otherwise
        (also for a loss object with ``from_logits=False``, whose model
        outputs probabilities itself). Steps past a row's length are zero."""
        batch_size = positive_int("batch_size", batch_size)
        x_arr, lengths = self._prepare("x", x, sequence_length, "sequence_length")
        parts = []
        for start in range(0, x_arr.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            parts.append(self._forward(x_arr[sl], None if lengths is None else lengths[sl], False).outputs)
        if parts:
            out = np.concatenate(parts)
        else:
            out = np.zeros((0,) + self._output_shape(x_arr)[1:], dtype=self.dtype)
        if self.loss == _CLASSIFICATION:
            out = softmax(out).astype(self.dtype, copy=False)
        elif self.loss is not None:
            out = _probabilities(self.loss, out).astype(self.dtype, copy=False)
        if lengths is not None and out.ndim == 3:
            out *= sequence_mask(lengths, out.shape[1], out.dtype)[..., None]
        return out

    def predict_classes(self, x: Any, sequence_length: Any = None, batch_size: int = 256) -> np.ndarray:
        """The most likely class ids (int64): ``argmax`` of the outputs' last axis."""
        return np.asarray(self.predict(x, sequence_length, batch_size).argmax(axis=-1), dtype=np.int64)

    def generate(self, seed: Any, steps: int, window: Optional[int] = None) -> np.ndarray:
        """Runs the model forward from a seed sequence, feeding each prediction
        back as the next input (the chapter's "creative RNN").

        Needs a model whose outputs are sequences with as many features as
        its inputs (e.g. a :class:`SequenceRegressor` trained to predict the
        next step).

        Args:
            seed: ``[T0, F]`` or ``[B, T0, F]`` (``T0 >= 1``).
            steps: how many new steps to generate (an integer >= 0).
            window: None (default): stateful — the seed is read once and every
                new step continues from the recurrent state; an int: the
                chapter's loop — each step re-reads the last ``window`` values
                from a zero state (as the model saw during training).

        Returns:
            The ``steps`` generated values, ``[steps, F]`` or ``[B, steps, F]``
            (the seed is not repeated).
        """
        if self._takes_ids():
            raise ValueError("generate: expected a model reading float features, got one starting with an Embedding")
        raw = numeric_array("seed", seed, "[time, features] or [batch, time, features]")
        squeeze = raw.ndim == 2
        s = float_array(
            "seed", raw[None] if squeeze else raw, self.dtype, 3, "[time, features] or [batch, time, features]"
        )
        if s.shape[1] < 1:
            raise ValueError(f"seed: expected at least one step, got shape {raw.shape}")
        steps = bounded_int("steps", steps, 0)
        if window is not None:
            window = positive_int("window", window)
        s, _ = self._prepare("seed", s, None, "sequence_length")
        if self._output_ndim(3) != 3 or self.output_size() != s.shape[2]:
            raise ValueError(
                f"generate: expected a model whose outputs are sequences of {s.shape[2]} features (its inputs' size), "
                "got outputs of "
                f"{'size ' + str(self.output_size()) if self._output_ndim(3) == 3 else 'one vector per sequence'}"
            )
        batch, t0, feats = s.shape
        try:
            out = np.empty((batch, steps, feats), dtype=self.dtype)
        except ValueError:  # more elements than an array can hold
            raise ValueError(f"steps: expected a number of steps whose outputs fit in memory, got {steps}") from None
        if steps == 0:
            return out[0] if squeeze else out
        if window is None:
            fwd = self._forward(s, None, False)
            out[:, 0] = fwd.outputs[:, -1]
            states = fwd.states
            for k in range(1, int(steps)):
                fwd = self._forward(out[:, k - 1 : k], None, False, states)
                out[:, k] = fwd.outputs[:, -1]
                states = fwd.states
        else:
            buf = np.concatenate([s, out], axis=1)  # [B, T0 + steps, F]
            for k in range(int(steps)):
                end = t0 + k
                fwd = self._forward(buf[:, max(0, end - window) : end], None, False)
                buf[:, end] = fwd.outputs[:, -1]
            out = buf[:, t0:]
        return out[0] if squeeze else out

    # -- files ----------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Everything but the weights, JSON-serialisable."""
        compiled = None
        if self.optimizer is not None and self.loss is not None:
            compiled = {
                "loss": _loss_config(self.loss),
                "metrics": [m if isinstance(m, str) else _object_config(m) for m in self._metric_specs],
                "optimizer": self.optimizer.get_config(),
            }
        return {
            "class_name": type(self).__name__,
            "name": self.name,
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in self.layers],
            "input_size": self.input_size,
            "compile": compiled,
        }

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Writes the model to ONE ``.npz`` file at exactly ``path``: JSON
        configuration, weights and optimizer state (see the module doc).
        The file is written to a temporary name and renamed, so a crash never
        leaves half a model behind.

        Raises:
            ValueError: an unbuilt model; weights or optimizer state with NaN
                or inf (:func:`load_model` refuses them); cells nested more
                than 64 levels; ``path`` is a directory.
            FileNotFoundError: ``path``'s directory does not exist.
            TypeError: ``path`` is not a str or ``os.PathLike``; a cell whose
                configuration cannot be saved; an optimizer whose
                ``learning_rate`` is a plain callable (only numbers and the
                schedules of :mod:`rnnrs.schedules` can be saved; the
                message names ``learning_rate``).
        """
        target = _path(path)
        if os.path.isdir(target):
            raise ValueError(f"path: expected a file path to write the model to, got the directory {target!r}")
        folder = os.path.dirname(os.path.abspath(target))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"path: expected a file in an existing directory, got {target!r} (no {folder!r})")
        if not self.built:
            raise ValueError("save: expected a built model (call build(input_size) or fit it), got an unbuilt one")
        from . import __version__

        config = {"format": FORMAT, "format_version": FORMAT_VERSION, "rnnrs_version": __version__, **self.get_config()}
        arrays: dict[str, np.ndarray] = {CONFIG_KEY: np.array(json.dumps(config))}
        arrays.update({f"weights/{k}": v for k, v in self.get_weights().items()})
        if self.optimizer is not None:
            arrays.update({f"optimizer/{k}": v for k, v in self.optimizer.get_state().items()})
        broken = sorted(k for k, v in arrays.items() if v.dtype.kind == "f" and not np.isfinite(v).all())
        if broken:
            raise ValueError(f"save: expected finite weights and optimizer state, got NaN or inf in {broken}")
        fd, tmp = tempfile.mkstemp(prefix=".rnnrs-", suffix=".npz.tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(f, **arrays)  # type: ignore[arg-type]
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"]) -> "Sequential":
        """Reads a model written by :meth:`save` (same as :func:`load_model`)."""
        model = load_model(path)
        if not isinstance(model, cls):
            raise ValueError(f"path: expected a saved {cls.__name__}, got a {type(model).__name__}")
        return model

    @classmethod
    def _from_layers(cls, layers: list[Layer], name: str) -> "Sequential":
        model = cls.__new__(cls)
        Sequential.__init__(model, layers, name)
        return model

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, layers={[layer.name for layer in self.layers]})"


class SequenceClassifier(Sequential):
    """Reads a sequence and predicts one class: ``RNN(cell)`` (output at the
    last valid step) → ``Dense(num_classes)`` → softmax (the chapter's
    sequence classifier; compiled with Adam(0.001), sparse softmax
    cross-entropy and accuracy).

    Args:
        cell: any rnnrs cell (``BasicRNNCell(150)`` in the chapter).
        num_classes: number of classes ``C``.
        seed: seeds the dense layer's kernel (the cell has its own ``seed``).
        optimizer: replaces the default ``Adam(0.001)``.
        name: the model's name.

    ``x`` ``[B, T, F]``, ``y`` class ids ``[B]``; ``predict`` gives
    probabilities ``[B, C]``.
    """

    def __init__(
        self,
        cell: RNNCell,
        num_classes: int,
        seed: Optional[int] = None,
        optimizer: Optional[Optimizer] = None,
        name: Optional[str] = None,
    ) -> None:
        super().__init__([RNN(cell), Dense(positive_int("num_classes", num_classes), seed=seed)], name)
        self.compile(optimizer or Adam(0.001), _CLASSIFICATION, ["accuracy"])

    @property
    def cell(self) -> RNNCell:
        """The recurrent cell."""
        layer = self.layers[0]
        assert isinstance(layer, RNN)
        return layer.cell


class SequenceRegressor(Sequential):
    """Sequence to sequence: ``RNN(cell, return_sequences=True)`` and, with
    ``output_size``, a ``Dense(output_size)`` on every step (the chapter's
    "reshape trick"); without it the cell's outputs are the predictions (use
    an ``OutputProjectionWrapper``). Compiled with Adam(0.001) and mean
    squared error.

    Args:
        cell: any rnnrs cell.
        output_size: size ``O`` of the projection, or None.
        seed: seeds the projection's kernel.
        optimizer: replaces the default ``Adam(0.001)``.
        name: the model's name.

    ``x`` ``[B, T, F]``, ``y`` ``[B, T, O]``; :meth:`generate` when ``O == F``.
    """

    def __init__(
        self,
        cell: RNNCell,
        output_size: Optional[int] = None,
        seed: Optional[int] = None,
        optimizer: Optional[Optimizer] = None,
        name: Optional[str] = None,
    ) -> None:
        layers: list[Layer] = [RNN(cell, return_sequences=True)]
        if output_size is not None:
            layers.append(Dense(positive_int("output_size", output_size), seed=seed))
        super().__init__(layers, name)
        self.compile(optimizer or Adam(0.001), _REGRESSION)

    @property
    def cell(self) -> RNNCell:
        """The recurrent cell."""
        layer = self.layers[0]
        assert isinstance(layer, RNN)
        return layer.cell


MODELS: dict[str, type[Sequential]] = {
    "Sequential": Sequential,
    "SequenceClassifier": SequenceClassifier,
    "SequenceRegressor": SequenceRegressor,
}
LAYERS: dict[str, type[Layer]] = {"Dense": Dense, "Embedding": Embedding, "RNN": RNN}


def _default_name(class_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


class _Summary(str):
    """The table ``summary`` returns: a ``str`` whose ``repr`` is one line (the
    table itself was just printed), so a prompt does not show it twice."""

    _what: str

    def __new__(cls, text: str, what: str) -> "_Summary":
        self = super().__new__(cls, text)
        self._what = what
        return self

    def __repr__(self) -> str:
        return f"<summary of {self._what}; str() or print() for the table>"


def _bytes(n: int) -> str:
    """``n`` bytes as Keras writes sizes: ``"0 B"``, ``"1.50 KB"``, ``"2.00 MB"``."""
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.2f} {unit}"


_KIND_NAMES = {
    "sparse": "sparse_softmax_cross_entropy",
    "categorical": "categorical_crossentropy",
    "binary": "binary_crossentropy",
    "regression": "mean_squared_error/mean_absolute_error/huber",
    "custom": "a callable",
}


def _loss_kind(loss: Any) -> str:
    """What a compiled loss's targets are (see ``_LOSS_KINDS``)."""
    if isinstance(loss, str):
        if loss == _CLASSIFICATION:
            return "sparse"
        if loss == _REGRESSION:
            return "regression"
        loss = _NAMED_LOSSES[loss]
    return _LOSS_KINDS.get(type(loss), "custom")


def _loss_name(loss: Any) -> str:
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


def _object_config(obj: Any) -> dict[str, Any]:
    """``{"class_name", "config"}`` of a loss or metric object."""
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


def _loss_config(loss: Any) -> Any:
    """The saved form of a compiled loss: its name, or its object's config.
    A callable cannot be saved: ``TypeError`` naming ``loss``."""
    if isinstance(loss, str):
        return loss
    if type(loss).__name__ in LOSS_CLASSES and isinstance(loss, _losses.Loss):
        return _object_config(loss)
    raise TypeError(
        "loss: expected a loss name or a rnnrs.losses object to save the model with, got "
        f"{_loss_name(loss)} (compile with one of those, or save the weights with get_weights)"
    )


def _probabilities(loss: Any, out: np.ndarray) -> np.ndarray:
    """The outputs as Keras' metrics expect them: softmax / sigmoid of the
    logits for a cross-entropy on logits, the outputs otherwise."""
    kind = _loss_kind(loss)
    logits = isinstance(loss, str) or bool(getattr(loss, "from_logits", False))
    if not logits or kind not in ("sparse", "categorical", "binary"):
        return out
    if kind == "binary":
        return _losses._sigmoid(out.astype(np.float64))
    return softmax(out.astype(np.float64))


def _call_loss(fn: Callable[..., Any], y: np.ndarray, out: np.ndarray) -> tuple[float, np.ndarray]:
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


def _means(totals: Mapping[str, Sequence[float]]) -> dict[str, float]:
    return {k: (s / c if c else 0.0) for k, (s, c) in totals.items()}


def _layer_from_config(config: Any, where: str) -> Layer:
    if not isinstance(config, Mapping) or config.get("class_name") not in LAYERS:
        raise ValueError(f"{where}: expected a layer among {sorted(LAYERS)}, got {short(config)}")
    raw = config.get("config", {})
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}.config: expected a mapping of constructor arguments, got {short(raw)}")
    name = config["class_name"]
    cell = None
    if name == "RNN":
        cell = cell_from_config(raw.get("cell"), f"{where}.config.cell")
    kwargs = constructor_kwargs({k: v for k, v in raw.items() if not (cell is not None and k == "cell")}, where)
    if cell is not None:
        kwargs["cell"] = cell
    layer: Layer = construct(LAYERS[name], kwargs, where)
    return layer


#: Most members (arrays) a model file may hold.
MAX_MEMBERS = 100_000
#: Largest configuration member (the JSON text as a NumPy unicode array), in bytes.
MAX_CONFIG_BYTES = 4 << 20
#: Deepest JSON nesting read: three levels per nested cell (a MultiRNNCell's
#: ``{"config": {"cells": [...]}}``) and the model's own few.
MAX_JSON_DEPTH = 3 * MAX_DEPTH + 16
#: The default budget of ``load_model``: the arrays of a file of ``n`` bytes
#: may declare at most ``BUDGET_BASE + BUDGET_PER_BYTE * n`` bytes uncompressed.
BUDGET_BASE = 16 << 20
BUDGET_PER_BYTE = 8

_WHAT = "path: expected an rnnrs model file (an .npz written by Model.save)"


def _path(path: Any) -> str:
    """``path`` as a string path, ``TypeError`` naming it otherwise."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike file path, got {type(path).__name__}")
    target = os.fspath(path)
    if not isinstance(target, str):
        raise TypeError(f"path: expected a str or os.PathLike file path, got one giving {type(target).__name__}")
    if not target:
        raise ValueError("path: expected a file path, got an empty string")
    return target


def load_model(path: Union[str, "os.PathLike[str]"], *, max_bytes: Optional[int] = None) -> Sequential:
    """Reads a model written by ``save``: its class, layers, weights, loss,
    metrics and optimizer (with its state, so training can resume).

    The file is not trusted. What is read, in this order, each step before
    the next:

    1. The zip directory: only ``.npy`` members, uniquely named, stored or
       deflated (what NumPy writes), unencrypted; only the configuration
       (``__rnnrs_model__``), ``weights/...`` and ``optimizer/...``; the sum
       of the members' declared uncompressed sizes within the budget (below).
       Nothing is decompressed yet.
    2. The configuration: a JSON text of at most 4 MiB without NaN or
       infinities; the format and its version; classes only from the fixed
       lists of models, layers, optimizers, learning-rate schedules
       (``rnnrs.schedules.SCHEDULES``) and the package's public cell classes
       (never any other name of the package); cells nested at most 64
       levels; every constructor argument a number, string, bool, None or a
       flat list of them (an optimizer's ``learning_rate`` may instead be a
       schedule's ``{"class_name", "config"}`` of such arguments), checked by
       the constructor. No code from the file
       runs and nothing is unpickled.
    3. Each array's ``.npy`` header (its first kilobytes only): a float array
       of the model's float size (any byte order) whose shape is exactly the
       one the configuration implies (so a file declaring ``input_size=10**7``
       is refused before any weight exists), and whose member declares exactly
       the header plus that many bytes; optimizer slots shaped like their
       weights, the step counter an integer scalar.
    4. The arrays (without pickle): a damaged stream or checksum is refused;
       NaN or infinite weights or optimizer slots are refused (``save``
       refuses to write them).

    Memory: the model is built from the stored arrays (never randomly
    initialised first), so rejecting a file costs at most the budget plus
    what the zip directory takes; the budget is 16 MiB plus 8 times the
    file's size by default (a deflated ``.npz`` of trained float weights
    expands about 1.1 times), so a small file that would decompress to
    gigabytes is refused before anything is decompressed.

    Args:
        path: the file (any name; ``save`` writes exactly there).
        max_bytes: the budget in bytes for the arrays' total uncompressed
            size, for a file you trust that compresses unusually well (e.g.
            mostly zeros); None (default): 16 MiB + 8 × the file's size.

    Raises:
        FileNotFoundError / PermissionError: the file cannot be opened.
        ValueError: the file is not a valid rnnrs model (the message starts
            with ``path:`` and says which member or configuration entry is
            wrong and how), or it exceeds the budget.
        TypeError: ``path`` or ``max_bytes`` of the wrong type.
    """
    target = _path(path)
    if max_bytes is not None:
        max_bytes = positive_int("max_bytes", max_bytes)
    if os.path.isdir(target):
        raise ValueError(f"{_WHAT}, got {target!r}, which is a directory")
    with open(target, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        budget = BUDGET_BASE + BUDGET_PER_BYTE * size if max_bytes is None else max_bytes
        try:
            return _read_model(f, budget, max_bytes is None)
        except ValueError as e:
            raise ValueError(f"{_WHAT}, got {target!r}: {e}") from None
        except (MemoryError, RecursionError):
            raise
        except Exception as e:  # the file is untrusted: no other exception type escapes
            raise ValueError(f"{_WHAT}, got {target!r}, which cannot be read ({type(e).__name__}: {e})") from e


def _read_model(f: Any, budget: int, default_budget: bool) -> Sequential:

    archive = Archive(f, MAX_MEMBERS)
    try:
        members = archive.members
        if CONFIG_KEY not in members:
            raise ValueError(
                f"an .npz archive without an rnnrs model configuration ({CONFIG_KEY!r}), "
                f"got members {short(sorted(members)[:8])}"
            )
        stray = sorted(k for k in members if k != CONFIG_KEY and not k.startswith(("weights/", "optimizer/")))
        if stray:
            raise ValueError(f"members {CONFIG_KEY!r}, 'weights/...' and 'optimizer/...', got {short(stray)}")
        total = sum(archive.size(k) for k in members)
        if total > budget:
            how = (
                f"{BUDGET_BASE >> 20} MiB + {BUDGET_PER_BYTE} x the file's size; pass max_bytes= for a file you trust"
                if default_budget
                else "max_bytes"
            )
            raise ValueError(
                f"arrays of at most {budget} bytes uncompressed ({how}), got members declaring {total} bytes"
            )
        config = _read_config(archive)
        model, input_size, compiled = _model_from_config(config)
        optimizer = None if compiled is None else compiled[0]
        weights, state = _read_arrays(archive, model, input_size, optimizer)
        if state and optimizer is None:
            raise ValueError(f"optimizer state only for a compiled model, got {short(sorted(state))} without 'compile'")
        model.set_weights(weights)
        if not model.built:
            unbuilt = [layer.name for layer in model.layers if not layer.built]
            raise ValueError(f"weights for every layer, got none or too few for {unbuilt}")
        model.build(input_size)
        names = {full for keys in model._weight_keys for full, _ in keys}
        if names != set(weights):
            raise ValueError(f"weights {short(sorted(names))}, got {short(sorted(weights))}")
        if compiled is None:
            model.optimizer, model.loss, model.metrics = None, None, []
        else:
            optimizer, loss, metrics = compiled
            if state:
                optimizer.set_state(state)
            model.compile(optimizer, loss, metrics)
        return model
    finally:
        archive.close()


def _json_depth(text: str) -> int:
    """How deeply ``[`` and ``{`` nest in JSON text (outside strings), without recursion."""
    skeleton = re.sub(r'"(?:[^"\\]|\\.)*"', "", text).encode("utf-8", "replace")
    codes = np.frombuffer(skeleton, dtype=np.uint8)
    steps = np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def _no_constant(name: str) -> Any:
    raise ValueError(f"configuration: expected finite numbers, got {name}")


def _read_config(archive: Any) -> dict[str, Any]:
    head = archive.header(CONFIG_KEY)
    if head.dtype.kind != "U" or head.shape != ():
        raise ValueError(
            f"{CONFIG_KEY}: expected the configuration as JSON text (a 0-d unicode array), "
            f"got a {head.dtype} array of shape {head.shape}"
        )
    if head.nbytes > MAX_CONFIG_BYTES:
        raise ValueError(f"{CONFIG_KEY}: expected at most {MAX_CONFIG_BYTES} bytes of configuration, got {head.nbytes}")
    text = str(archive.read(CONFIG_KEY)[()])
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(
            f"configuration: expected JSON nested at most {MAX_JSON_DEPTH} levels (cells at most {MAX_DEPTH}), "
            f"got {depth} levels"
        )
    try:
        config = json.loads(text, parse_constant=_no_constant)
    except ValueError as e:
        raise ValueError(f"configuration: expected valid JSON, got {e}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        got = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"configuration: expected format {FORMAT!r}, got {short(got)}")
    version = config.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(
            f"format_version: expected an rnnrs model file of format version 1 to {FORMAT_VERSION}, got version "
            f"{version!r:.40} (written by rnnrs {str(config.get('rnnrs_version'))[:40]}; upgrade rnnrs)"
        )
    return config


def _model_from_config(
    config: Mapping[str, Any],
) -> tuple[Sequential, Optional[int], Optional[tuple[Optimizer, str, list[str]]]]:
    """The unbuilt model, its input size and ``(optimizer, loss, metrics)`` (None when not compiled)."""
    class_name = config.get("class_name")
    cls = MODELS.get(class_name) if isinstance(class_name, str) else None
    if cls is None:
        raise ValueError(
            f"class_name: expected a model class among {sorted(MODELS)}, got {short(config.get('class_name'))}"
        )
    name = config.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name: expected a string or None, got {short(name)}")
    raw_layers = config.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers or len(raw_layers) > MAX_MEMBERS:
        raise ValueError(f"layers: expected a non-empty list of layer configurations, got {short(raw_layers)}")
    layers = [_layer_from_config(c, f"layers[{i}]") for i, c in enumerate(raw_layers)]
    model = cls._from_layers(layers, name or _default_name(cls.__name__))
    input_size = config.get("input_size")
    if model._takes_ids():
        if input_size is not None:
            raise ValueError(f"input_size: expected None for a model reading ids (Embedding), got {short(input_size)}")
    elif isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
        raise ValueError(f"input_size: expected an integer >= 1, got {short(input_size)}")
    compiled = config.get("compile")
    if compiled is None:
        return model, input_size, None
    if not isinstance(compiled, Mapping):
        raise ValueError(f"compile: expected a mapping (loss, metrics, optimizer) or None, got {short(compiled)}")
    loss, metrics, opt = compiled.get("loss"), compiled.get("metrics"), compiled.get("optimizer")
    if isinstance(loss, Mapping):
        loss = registered_from_config(loss, LOSS_CLASSES, "compile.loss")
    elif not isinstance(loss, str):
        raise ValueError(f"compile.loss: expected a loss name or a loss object's config, got {short(loss)}")
    if metrics is None:
        metrics = []
    if not isinstance(metrics, list) or not all(isinstance(m, (str, Mapping)) for m in metrics):
        raise ValueError(f"compile.metrics: expected a list of metric names or configs, got {short(metrics)}")
    metrics = [
        m if isinstance(m, str) else registered_from_config(m, METRIC_CLASSES, f"compile.metrics[{i}]")
        for i, m in enumerate(metrics)
    ]
    if (
        not isinstance(opt, Mapping)
        or not isinstance(opt.get("class_name"), str)
        or opt["class_name"] not in OPTIMIZERS
    ):
        raise ValueError(f"compile.optimizer: expected a class among {sorted(OPTIMIZERS)}, got {short(opt)}")
    raw_opt = opt.get("config", {})
    schedule = None
    if isinstance(raw_opt, Mapping) and isinstance(raw_opt.get("learning_rate"), Mapping):
        schedule = schedule_from_config(raw_opt["learning_rate"], "compile.optimizer.config.learning_rate")
        raw_opt = {k: v for k, v in raw_opt.items() if k != "learning_rate"}
    kwargs = constructor_kwargs(raw_opt, "compile.optimizer.config")
    if schedule is not None:
        kwargs["learning_rate"] = schedule
    optimizer: Optimizer = construct(OPTIMIZERS[opt["class_name"]], kwargs, "compile.optimizer")
    try:
        model.compile(optimizer, loss, metrics)  # validates loss and metrics now; the state comes later
    except (TypeError, ValueError) as e:
        raise ValueError(f"compile: {e}") from None
    return model, input_size, (optimizer, loss, metrics)


def _cell_shapes(cell: RNNCell, input_size: int) -> dict[str, tuple[int, ...]]:
    """The weight shapes of an unbuilt cell for inputs of ``input_size`` (no allocation)."""
    cells = getattr(cell, "cells", None)
    if isinstance(cells, list):  # MultiRNNCell: layer i reads layer i-1's outputs
        shapes: dict[str, tuple[int, ...]] = {}
        size = input_size
        for i, c in enumerate(cells):
            shapes.update({f"cell_{i}/{k}": s for k, s in _cell_shapes(c, size).items()})
            size = int(c.output_size)
        return shapes
    inner = getattr(cell, "cell", None)
    if isinstance(inner, RNNCell):  # a wrapper: the inner cell's weights and its own
        own = getattr(cell, "_own_shapes", None)
        return {**_cell_shapes(inner, input_size), **(own() if callable(own) else {})}
    return dict(cell._weight_shapes(input_size))


def _weight_shapes(model: Sequential, input_size: Optional[int]) -> Optional[dict[str, tuple[int, ...]]]:
    """Every weight's shape implied by the configuration (None for a layer or
    cell whose shapes cannot be computed before building: checked after)."""
    shapes: dict[str, tuple[int, ...]] = {}
    size = input_size or 0
    try:
        for layer in model.layers:
            if isinstance(layer, Embedding):
                own: Mapping[str, tuple[int, ...]] = {"embeddings": (layer.input_dim, layer.output_dim)}
            elif isinstance(layer, Dense):
                own = layer._shapes(size)
            elif isinstance(layer, RNN):
                own = _cell_shapes(layer.cell, size)
            else:
                return None
            shapes.update({f"{layer.name}/{k}": tuple(int(n) for n in s) for k, s in own.items()})
            size = layer.output_size()
    except NotImplementedError:
        return None
    return shapes


def _read_arrays(
    archive: Any, model: Sequential, input_size: Optional[int], optimizer: Optional[Optimizer]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Checks every array's header against the configuration, then reads them."""

    dtype = model.dtype
    stored = {k[len("weights/") :]: k for k in archive.members if k.startswith("weights/")}
    expected = _weight_shapes(model, input_size)
    if expected is not None and set(stored) != set(expected):
        missing, extra = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
        raise ValueError(f"weights {short(sorted(expected))}, got {short(missing)} missing and {short(extra)} unknown")
    shapes: dict[str, tuple[int, ...]] = {}
    for name, key in stored.items():
        head = archive.header(key)
        if head.dtype.kind != "f" or head.dtype.itemsize != dtype.itemsize or head.dtype.fields is not None:
            raise ValueError(f"{key}: expected a {dtype.name} array (the model's dtype), got dtype {head.dtype}")
        if expected is not None and head.shape != expected[name]:
            raise ValueError(f"{key}: expected shape {expected[name]} (from the configuration), got {head.shape}")
        shapes[name] = head.shape
    slots = () if optimizer is None else optimizer.slot_names
    state_keys = {k[len("optimizer/") :]: k for k in archive.members if k.startswith("optimizer/")}
    for name, key in state_keys.items():
        head = archive.header(key)
        if name == "iterations":
            if head.dtype.kind not in "iu" or head.dtype.itemsize > 8 or head.shape != ():
                raise ValueError(f"{key}: expected an integer scalar, got a {head.dtype} array of shape {head.shape}")
            continue
        slot, _, weight = name.partition("/")
        if slot not in slots or weight not in shapes:
            raise ValueError(
                f"{key}: expected 'optimizer/<slot>/<weight>' with slot in {list(slots)} and a stored weight, "
                f"got an unknown entry"
            )
        if head.dtype.kind != "f" or head.dtype.itemsize != dtype.itemsize or head.dtype.fields is not None:
            raise ValueError(f"{key}: expected a {dtype.name} array (the model's dtype), got dtype {head.dtype}")
        if head.shape != shapes[weight]:
            raise ValueError(f"{key}: expected shape {shapes[weight]} (its weight's), got {head.shape}")
    if state_keys and "iterations" not in state_keys:
        raise ValueError("optimizer/iterations: expected the optimizer's step counter with its state, got none")
    weights = {name: _finite(key, archive.read(key)) for name, key in stored.items()}
    state = {name: _finite(key, archive.read(key)) for name, key in state_keys.items()}
    return weights, state


def _finite(key: str, arr: np.ndarray) -> np.ndarray:
    """``arr`` in native byte order; ``ValueError`` for NaN or inf."""
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{key}: expected finite values, got NaN or inf (models with such weights are refused)")
    return arr
