"""The training loop shared by every model: ``compile``, ``fit``,
``evaluate`` and ``predict`` (Keras 3's ``Trainer``).

A model provides its data handling and its passes; the trainer needs:

- ``_data(name, x, sequence_length, length_name) -> (xs, lengths)``: the
  inputs validated (one array per model input) with their lengths (one
  int64 ``[B]`` array or None per input), building the model on first use;
- ``_output_shapes(xs, lengths) -> [shape per output]`` for validating
  targets (computed once per call: for a graph it runs one row forward);
- ``_forward(xs, lengths, training) -> Forward`` and
  ``_backward(forward, d_outputs) -> {weight name: gradient}``;
- ``get_weights()``, ``_push(params)`` (weights back into the layers),
  ``output_names`` and ``dtype``.

Everything here works on lists: one entry per model input, per output.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
import warnings
from typing import Any, Iterator, Mapping, NamedTuple, Optional, Sequence, TextIO, Union

import numpy as np

from .. import losses as _losses
from .. import metrics as _metrics
from .._validate import bounded_int, check_shape, float_array, numeric_array, positive_int, seed_value
from ..callbacks import Callback, check_callbacks
from ..losses import class_ids, mean_squared_error, sequence_mask, softmax, sparse_softmax_cross_entropy
from ..optimizers import Optimizer
from ..optimizers import get as get_optimizer
from ..progress import ProgressBar, format_metrics, progress_mode
from .compile_utils import (
    CLASSIFICATION,
    KIND_NAMES,
    LOSSES,
    METRICS,
    NAMED_LOSSES,
    RANKING_METRICS,
    REGRESSION,
    call_loss,
    class_weights,
    combined,
    loss_kind,
    loss_name,
    means,
    probabilities,
    sample_weights,
)
from .shard_rng import draw_keys, mask_sources, shard_generators

Arrays = list[np.ndarray]
Lengths = list[Optional[np.ndarray]]


class Forward(NamedTuple):
    """A model's forward pass on one batch: the outputs, each output's
    lengths (None when it has no time axis or no lengths), the final
    recurrent states (a model may use them, e.g. ``generate``) and whatever
    the backward pass needs."""

    outputs: Arrays
    lengths: Lengths
    states: Any
    tape: Any


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


def _canonical_loss(loss: Any, where: str) -> Any:
    """A loss as compiled: a canonical name, a loss object or a callable."""
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"{where}: expected one of {sorted(LOSSES)}, a loss object or a callable, got {loss!r}")
        return LOSSES[loss]
    if isinstance(loss, _losses.Loss):
        same = [name for name, obj in NAMED_LOSSES.items() if obj == loss]
        return same[0] if same else loss
    if callable(loss):
        return loss
    raise TypeError(
        f"{where}: expected a loss name, a rnnrs.losses.Loss or a callable (y_true, y_pred) -> (value, d_pred), "
        f"got {type(loss).__name__}"
    )


def _copy_metric(metric: _metrics.Metric) -> _metrics.Metric:
    """A fresh metric with ``metric``'s settings (for another output)."""
    fresh: _metrics.Metric = type(metric)(**metric.get_config())
    return fresh


def _rows(arrays: Sequence[Optional[np.ndarray]], index: Any) -> list[Any]:
    return [None if a is None else a[index] for a in arrays]


def _accumulate(totals: dict[str, list[float]], sums: Mapping[str, tuple[float, float]]) -> None:
    for k, (s, c) in sums.items():
        acc = totals.setdefault(k, [0.0, 0.0])
        acc[0] += s
        acc[1] += c


def _chunks(
    xs: Arrays, ys: Arrays, lengths: Lengths, weights: Sequence[Optional[np.ndarray]], steps: Optional[int]
) -> Iterator[tuple[Arrays, Arrays, Lengths, list[Optional[np.ndarray]]]]:
    """One batch cut into chunks of ``steps`` time steps (truncated BPTT),
    or the batch itself when ``steps`` is None. Lengths become ``clip(lengths
    - t0, 0, chunk length)``, per-step weights are cut with the targets, and
    chunks past every row's length (when every input has lengths) are left
    out (at least one chunk is kept)."""
    if steps is None:
        yield xs, ys, lengths, list(weights)
        return
    total = xs[0].shape[1]
    span = total
    if all(ls is not None for ls in lengths):
        span = max((int(ls.max()) for ls in lengths if ls is not None and ls.size), default=0)
    for c in range(max(1, math.ceil(span / steps))):
        t0, t1 = c * steps, min(total, (c + 1) * steps)
        cut = slice(t0, t1)
        yield (
            [np.ascontiguousarray(x[:, cut]) for x in xs],
            [np.ascontiguousarray(y[:, cut]) for y in ys],
            [None if ls is None else np.clip(ls - t0, 0, t1 - t0) for ls in lengths],
            [None if w is None else w if w.ndim == 1 else w[:, cut] for w in weights],  # a [B] weight: every chunk
        )


# -- fixed row shards (the one gradient reduction of every training step) ---------------------
#
# A global batch is cut into shards that depend on its shape alone (rows and time steps, never on
# the model or the number of workers); each shard runs forward, loss and backward on its own and the
# gradients are added in shard order. One process and any number of Ray workers
# (``rnnrs.distributed.RayStrategy``) therefore add the same numbers in the same order: float
# addition is not associative, so this is what makes their weights bitwise equal. A shard holds at
# least SHARD_TOKENS row-steps, so small batches stay one shard and cost nothing extra (each more
# shard costs one more pass through the Python layers: about 12% of the digits demo's training time
# at 3 shards of 50 rows x 8 steps, nothing measurable for 256 rows x 100 steps).

#: Row-steps (rows x time steps) a shard holds at least (see :func:`shard_bounds`).
SHARD_TOKENS = 4096


def batch_steps(xs: Sequence[np.ndarray]) -> int:
    """Time steps per row of a batch: the first input's ``T`` if it is a
    sequence (``[B, T, ...]``, or integer ids ``[B, T]``), else 1."""
    x = xs[0]
    return int(x.shape[1]) if x.ndim >= 3 or (x.dtype.kind != "f" and x.ndim == 2) else 1


def shard_bounds(rows: int, steps: int = 1) -> list[tuple[int, int]]:
    """The shards of a global batch of ``rows`` rows of ``steps`` time steps:
    ``k = max(1, min(rows, rows * steps // SHARD_TOKENS))`` contiguous ranges
    ``(start, stop)`` whose sizes differ by at most one row, in order (one
    shard, the whole batch, below ``2 * SHARD_TOKENS`` row-steps)."""
    k = max(1, min(rows, rows * max(steps, 1) // SHARD_TOKENS))
    base, extra = divmod(rows, k)
    bounds = []
    start = 0
    for i in range(k):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


class ShardLoss(NamedTuple):
    """A shard's forward pass and loss, kept for its backward pass: ``sums``
    is ``{log key: (value * count, count)}`` (one key per output, in output
    order), ``d_outputs`` the gradient of each output's mean over the
    shard's own entries (times its loss weight)."""

    forward: Forward
    d_outputs: list[np.ndarray]
    sums: dict[str, tuple[float, float]]


def global_counts(shard_sums: Sequence[Mapping[str, tuple[float, float]]]) -> dict[str, float]:
    """Each output's entry count over the whole batch, added in shard order."""
    counts: dict[str, float] = {}
    for sums in shard_sums:
        for k, (_, c) in sums.items():
            counts[k] = counts.get(k, 0.0) + c
    return counts


def add_in_order(total: Optional[dict[str, np.ndarray]], grads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``total + grads`` by weight name (``total`` is updated in place; None starts it)."""
    if total is None:
        return {k: np.array(v, copy=True) for k, v in grads.items()}
    for k, v in grads.items():
        if k in total:
            total[k] += v
        else:
            total[k] = np.array(v, copy=True)
    return total


def is_dataset(obj: Any) -> bool:
    """Whether ``obj`` is a ``ray.data.Dataset`` (``ray`` is not imported)."""
    return any(c.__name__ == "Dataset" and c.__module__.startswith("ray.data") for c in type(obj).__mro__)


def _dataset_columns(dataset: Any, where: str) -> dict[str, Optional[np.ndarray]]:
    from ..distributed.dataset import columns

    return columns(dataset, where)


def _dataset_arguments(x: Any, y: Any, sequence_length: Any, sample_weight: Any) -> tuple[Any, Any, Any, Any]:
    """``fit``'s ``x, y, sequence_length, sample_weight`` from a Dataset ``x``'s columns."""
    given = [
        name
        for name, v in (("y", y), ("sequence_length", sequence_length), ("sample_weight", sample_weight))
        if v is not None
    ]
    if given:
        raise ValueError(
            f"{given[0]}: expected None with a ray.data.Dataset x (give it as the Dataset's column "
            f"{given[0]!r}), got a value"
        )
    cols = _dataset_columns(x, "x")
    return cols["x"], cols["y"], cols["sequence_length"], cols["sample_weight"]


class LocalShards:
    """Runs a step's shards in this process, one after another (what ``fit``
    does without a strategy; ``RayStrategy`` runs the same two phases on its
    workers). Phase one (``forward``) runs every shard's forward pass and
    loss and returns their ``sums``; phase two (``backward``) scales each
    shard's output gradients by ``its count / the batch's count`` and
    returns the shards' weight gradients, in shard order. ``forward`` takes
    the weights (already in the model here), the batch's arrays, their
    row indices in the data given to ``fit`` (what workers read) and the
    step's dropout keys (:mod:`rnnrs.trainers.shard_rng`: shard ``i`` draws
    its masks from generators made of the keys and ``i``; None for a batch
    of one shard, which draws from the layers' own generators).

    The metric objects are updated with each shard, in shard order.
    ``sources`` are the model's dropout mask sources (found once per ``fit``;
    ``fit`` draws each step's keys from them)."""

    def __init__(self, model: "Trainer", losses: list[Any]) -> None:
        self.model = model
        self.losses = losses
        self.kept: list[ShardLoss] = []
        self.sources = mask_sources(model)

    def forward(
        self,
        params: Mapping[str, np.ndarray],
        batch: tuple[Arrays, Arrays, Lengths, list[Any]],
        rows: np.ndarray,
        keys: Optional[Sequence[int]],
    ) -> list[dict[str, tuple[float, float]]]:
        xs, ys, lengths, ws = batch
        self.kept = []
        for i, (a, b) in enumerate(shard_bounds(xs[0].shape[0], batch_steps(xs))):
            sl = slice(a, b)
            with shard_generators(self.sources, keys, i):
                part = self.model._shard_loss(
                    self.losses, _rows(xs, sl), _rows(ys, sl), _rows(lengths, sl), _rows(ws, sl)
                )
            self.kept.append(part)
        return [part.sums for part in self.kept]

    def backward(self, counts: Mapping[str, float]) -> Iterator[dict[str, np.ndarray]]:
        kept, self.kept = self.kept, []
        for part in kept:
            yield self.model._shard_backward(part, counts)

    def close(self) -> None:
        self.kept = []


class Trainer:
    """``compile`` / ``fit`` / ``evaluate`` / ``predict`` for a model (see the module doc)."""

    name: str
    output_names: list[str]
    history: Optional[History]
    stop_training: bool

    def _init_trainer(self) -> None:
        self.optimizer: Optional[Optimizer] = None
        # What compile was given, canonical: for one output a loss name, a
        # rnnrs.losses.Loss or a callable; for several, a list of those.
        self.loss: Any = None
        self.loss_weights: Optional[list[float]] = None
        self.metrics: list[str] = []  # the log keys of the metrics, in order
        self._metric_objects: list[_metrics.Metric] = []
        self._metric_outputs: list[int] = []  # the output each metric watches
        # What compile was given for each metric (a name, or the object itself): what save writes.
        self._metric_specs: list[Any] = []
        self.history = None
        self.stop_training = False

    # -- interface a model implements -------------------------------------------
    @property
    def dtype(self) -> np.dtype[Any]:
        raise NotImplementedError

    def get_weights(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _data(self, name: str, x: Any, sequence_length: Any, length_name: str) -> tuple[Arrays, Lengths]:
        raise NotImplementedError

    def _output_shapes(self, xs: Arrays, lengths: Lengths) -> list[tuple[int, ...]]:
        raise NotImplementedError

    def _forward(self, xs: Arrays, lengths: Lengths, training: bool, states: Any = None) -> Forward:
        raise NotImplementedError

    def _backward(self, fwd: Forward, d_outputs: Sequence[Optional[np.ndarray]]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _push(self, params: Mapping[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _kept_state_layers(self) -> list[Any]:
        """The layers (wrapped ones included) that keep a recurrent state between calls."""
        return []

    # -- compile ----------------------------------------------------------------------
    @property
    def _losses_per_output(self) -> list[Any]:
        n = len(self.output_names)
        return list(self.loss) if n > 1 else [self.loss]

    def compile(
        self,
        optimizer: Union[Optimizer, str] = "adam",
        loss: Any = CLASSIFICATION,
        metrics: Union[None, str, _metrics.Metric, Sequence[Union[str, _metrics.Metric]]] = None,
        loss_weights: Optional[Sequence[float]] = None,
    ) -> None:
        """Chooses the optimizer, the loss and the metrics.

        Args:
            optimizer: an instance, or ``"sgd"``, ``"momentum"``, ``"rmsprop"``,
                ``"adam"``, ... (see ``rnnrs.optimizers``).
            loss: a name, a loss object or a callable (for a model with
                several outputs: one for all of them, or a list with one per
                output):

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
                names ``"mae"``) or the object's ``name``. With several
                outputs every metric is computed for every output whose loss
                suits it, logged as ``"<output name>_<key>"``.
            loss_weights: None (every output weighs 1) or one number >= 0 per
                output: the loss minimised (and logged as ``"loss"``) is
                ``sum(loss_weights[i] * loss_i)``; with several outputs each
                ``loss_i`` is logged as ``"<output name>_loss"``.

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
        n = len(self.output_names)
        if isinstance(loss, (list, tuple)):
            if len(loss) != n:
                raise ValueError(f"loss: expected one loss or a list of {n} (one per output), got {len(loss)}")
            canonical_each = [_canonical_loss(v, f"loss[{i}]") for i, v in enumerate(loss)]
        else:
            canonical_each = [_canonical_loss(loss, "loss")] * n
        weights: Optional[list[float]] = None
        if loss_weights is not None:
            if not isinstance(loss_weights, (list, tuple)) or len(loss_weights) != n:
                raise ValueError(
                    f"loss_weights: expected None or a list of {n} numbers (one per output), got {loss_weights!r}"
                )
            weights = []
            for i, w in enumerate(loss_weights):
                if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Real):
                    raise TypeError(f"loss_weights[{i}]: expected a number >= 0, got {type(w).__name__}")
                if not (math.isfinite(float(w)) and float(w) >= 0):
                    raise ValueError(f"loss_weights[{i}]: expected a finite number >= 0, got {w}")
                weights.append(float(w))
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
        outputs: list[int] = []
        specs: list[Any] = []
        for m in given:
            if not isinstance(m, (str, _metrics.Metric)):
                raise TypeError(
                    f"metrics: expected metric names (str) or rnnrs.metrics objects, got {type(m).__name__} {m!r}"
                )
            if isinstance(m, str) and m not in METRICS:
                raise ValueError(f"metrics: expected names among {sorted(METRICS)} or metric objects, got {m!r}")
            if isinstance(m, _metrics.Metric) and not getattr(m, "_scalar", True):
                raise ValueError(
                    f"metrics: expected metrics with one result (logs hold numbers), got {m!r} "
                    "(give one threshold per metric object)"
                )
            added = False
            for i, canonical in enumerate(canonical_each):
                prefix = f"{self.output_names[i]}_" if n > 1 else ""
                kind = loss_kind(canonical)
                if isinstance(m, _metrics.Metric):
                    key = prefix + m.name
                    metric = m if not added else _copy_metric(m)
                    if key in names:
                        raise ValueError(f"metrics: expected distinct metric names, got {m.name!r} twice")
                else:
                    base, by_kind = METRICS[m]
                    if kind not in by_kind:
                        if n > 1:
                            continue
                        losses_for = sorted(KIND_NAMES[k] for k in by_kind)
                        raise ValueError(
                            f"metrics: expected {m!r} with a loss among {losses_for}, got loss {loss_name(canonical)}"
                        )
                    key = prefix + base
                    if key in names:
                        added = True
                        continue
                    metric = by_kind[kind]()
                names.append(key)
                objects.append(metric)
                outputs.append(i)
                added = True
            if not added:
                raise ValueError(f"metrics: expected {m!r} to suit the loss of at least one output, got none")
            specs.append(m)
        self.optimizer = opt
        self.loss = canonical_each[0] if n == 1 else canonical_each
        self.loss_weights = weights
        self.metrics, self._metric_objects, self._metric_outputs = names, objects, outputs
        self._metric_specs = specs

    def _require_compiled(self, what: str) -> tuple[Optimizer, list[Any]]:
        if self.optimizer is None or self.loss is None:
            raise ValueError(f"{what}: expected a compiled model (call compile(optimizer, loss)), got none")
        return self.optimizer, self._losses_per_output

    # -- targets ------------------------------------------------------------------------
    def _target_list(self, name: str, y: Any) -> list[tuple[str, Any]]:
        """``y`` split per output, with each part's name for messages."""
        n = len(self.output_names)
        if n == 1:
            return [(name, y)]
        if isinstance(y, Mapping):
            keys = set(y)
            if keys != set(self.output_names):
                raise ValueError(
                    f"{name}: expected targets for the outputs {self.output_names}, got keys {sorted(map(str, keys))}"
                )
            return [(f"{name}[{k!r}]", y[k]) for k in self.output_names]
        if not isinstance(y, (list, tuple)) or len(y) != n:
            got = f"{len(y)} items" if isinstance(y, (list, tuple)) else type(y).__name__
            raise ValueError(f"{name}: expected a list of {n} target arrays (one per output), got {got}")
        return [(f"{name}[{i}]", v) for i, v in enumerate(y)]

    def _targets(self, name: str, y: Any, xs: Arrays, shapes: list[tuple[int, ...]], losses: list[Any]) -> Arrays:
        """``y`` checked per output for its loss: class ids for a sparse
        cross-entropy, one-hot (or probability) rows of the outputs' shape
        for a categorical one, 0/1 (or probabilities in [0, 1]) of the
        outputs' shape for a binary one, floats of the outputs' shape for
        regression, any numeric array with one row per input row for a
        callable."""
        rows = xs[0].shape[0]
        checked = []
        for (part, value), out_shape, loss in zip(self._target_list(name, y), shapes, losses):
            raw = numeric_array(part, value, "an array of targets")
            if raw.ndim == 0 or raw.shape[0] != rows:
                got = "a scalar" if raw.ndim == 0 else f"{raw.shape[0]}"
                raise ValueError(f"{part}: expected {rows} rows (one per row of the inputs), got {got}")
            kind = loss_kind(loss)
            if kind == "sparse":
                checked.append(class_ids(part, raw, out_shape[-1], out_shape[:-1]))
                continue
            if kind == "custom":
                checked.append(raw)
                continue
            arr = float_array(part, raw, self.dtype, len(out_shape), f"shaped like the outputs {out_shape}")
            check_shape(part, arr, out_shape)
            if kind in ("binary", "categorical"):
                what = "0/1 targets (or probabilities)" if kind == "binary" else "one-hot rows (or probability rows)"
                outside = ~((arr >= 0) & (arr <= 1))
                if outside.any():
                    at = tuple(int(i) for i in np.argwhere(outside)[0])
                    raise ValueError(f"{part}: expected {what} in [0, 1], got {arr[at]!r} at {at}")
                if kind == "categorical":
                    off = np.abs(arr.sum(axis=-1, dtype=np.float64) - 1.0) > 1e-3
                    if off.any():
                        at = tuple(int(i) for i in np.argwhere(off)[0])
                        total = float(arr[at].sum(dtype=np.float64))
                        raise ValueError(f"{part}: expected {what} summing to 1, got a row summing to {total} at {at}")
            checked.append(arr)
        return checked

    # -- losses and metrics ---------------------------------------------------------------
    @staticmethod
    def _output_loss(
        loss: Any, y: np.ndarray, out: np.ndarray, lengths: Optional[np.ndarray], weight: Optional[np.ndarray] = None
    ) -> tuple[float, np.ndarray, float]:
        """``(value, d_outputs, count)`` of one output's loss (count: the
        number of entries the value averages, for averaging over batches).

        ``weight`` (float64 ``[B]`` or ``[B, T]``, see ``sample_weights``)
        reduces as Keras does: ``sum(weight * per-entry loss) / count``, the
        count of (unmasked) entries NOT the sum of the weights."""
        mask = sequence_mask(lengths, out.shape[1], out.dtype) if (lengths is not None and out.ndim == 3) else None
        kind = loss_kind(loss)
        steps = float(
            y.shape[0] * (out.shape[1] if out.ndim == 3 else 1) if mask is None else mask.sum(dtype=np.float64)
        )
        if weight is not None:
            return Trainer._weighted_loss(loss, y, out, mask, weight, steps)
        if loss == CLASSIFICATION:
            value, d = sparse_softmax_cross_entropy(y, out, mask)
            count = steps
        elif loss == REGRESSION:
            value, d = mean_squared_error(y, out, mask)
            count = steps * (out.shape[-1] if out.ndim == 3 else 1)
        elif kind == "custom":
            if mask is not None:
                raise ValueError(
                    "loss: expected a loss name or object with sequence_length on per-step outputs "
                    "(a callable cannot weigh the padded steps), got a callable"
                )
            value, d = call_loss(loss, y, out)
            count = float(y.shape[0])
        else:
            obj = loss if isinstance(loss, _losses.Loss) else NAMED_LOSSES[loss]
            value, d = obj(y, out, mask)
            count = steps * (out.shape[-1] if (out.ndim == 3 and kind != "categorical" and kind != "sparse") else 1)
            if mask is not None:  # Keras' masking: the mean over the unmasked entries
                scale = mask.size / steps if steps else 0.0
                value, d = value * scale, d * d.dtype.type(scale)
        return float(value), d, count

    @staticmethod
    def _weighted_loss(
        loss: Any, y: np.ndarray, out: np.ndarray, mask: Optional[np.ndarray], weight: np.ndarray, steps: float
    ) -> tuple[float, np.ndarray, float]:
        """``_output_loss`` with weights: the Keras loss objects' reduction
        ``sum(w * loss) / number of entries``, then rescaled (as for a mask
        without weights) to divide by the unmasked entries only."""
        kind = loss_kind(loss)
        w = weight
        if out.ndim == 3 and w.ndim == 1:
            w = np.broadcast_to(w[:, None], out.shape[:2])
        if mask is not None:
            w = w * mask
        if loss == CLASSIFICATION:
            obj: Any = _losses.SparseCategoricalCrossentropy(from_logits=True)
        elif loss == REGRESSION:
            obj = _losses.MeanSquaredError()
        else:
            obj = loss if isinstance(loss, _losses.Loss) else NAMED_LOSSES[loss]
        value, d = obj(y, out, w)
        per_entry = out.shape[-1] if (out.ndim == 3 and kind not in ("categorical", "sparse")) else 1
        if mask is not None:
            scale = mask.size / steps if steps else 0.0
            value, d = value * scale, d * d.dtype.type(scale)
        return float(value), d, steps * per_entry

    def _loss(
        self, losses: list[Any], ys: Arrays, fwd: Forward, weights: Optional[Sequence[Optional[np.ndarray]]] = None
    ) -> tuple[float, list[np.ndarray], dict[str, tuple[float, float]]]:
        """``(value, d_outputs, sums)``: the weighted total, its gradient per
        output, and ``{log key: (value * count, count)}``; the metric
        objects' states are updated with this batch (callers reset them and
        read their results). ``weights``: None or per output None or the
        rows' (steps') weights (``sample_weight`` times ``class_weight``);
        metrics are not weighted (Keras' ``metrics``)."""
        n = len(losses)
        total = 0.0
        ds: list[np.ndarray] = []
        sums: dict[str, tuple[float, float]] = {}
        ws = list(weights) if weights is not None else [None] * n
        for i, (loss, y, out, lengths, rows_w) in enumerate(zip(losses, ys, fwd.outputs, fwd.lengths, ws)):
            value, d, count = self._output_loss(loss, y, out, lengths, rows_w)
            if n == 1:
                sums["loss"] = (value * count, count)
                total = value
                ds.append(d)
                continue
            sums[f"{self.output_names[i]}_loss"] = (value * count, count)
            w = 1.0 if self.loss_weights is None else self.loss_weights[i]
            total += w * value
            ds.append(d if w == 1.0 else d * d.dtype.type(w))
        for metric, i in zip(self._metric_objects, self._metric_outputs):
            out, lengths = fwd.outputs[i], fwd.lengths[i]
            mask = sequence_mask(lengths, out.shape[1], out.dtype) if (lengths is not None and out.ndim == 3) else None
            value_in = out if isinstance(metric, RANKING_METRICS) else probabilities(losses[i], out)
            metric.update_state(ys[i], value_in, mask)
        return total, ds, sums

    def _logs(self, totals: Mapping[str, Sequence[float]]) -> dict[str, float]:
        """The losses' means over the batches so far and every metric's result."""
        logs = means(totals)
        names = self.output_names
        if len(names) > 1 and totals:
            # The weighted sum of the outputs' losses, each averaged over its own entries
            # (so it does not depend on how the rows were cut into batches).
            weights = self.loss_weights or [1.0] * len(names)
            total = sum(w * logs.get(f"{name}_loss", 0.0) for w, name in zip(weights, names))
            logs = {"loss": total, **logs}
        for key, metric in zip(self.metrics, self._metric_objects):
            logs[key] = float(metric.result())
        return logs

    # -- training -------------------------------------------------------------------------
    def _shard_loss(
        self, losses: list[Any], xs: Arrays, ys: Arrays, lengths: Lengths, ws: Sequence[Optional[np.ndarray]]
    ) -> ShardLoss:
        """Phase one of a shard: forward (training) and loss; the metrics are updated with the shard."""
        fwd = self._forward(xs, lengths, True)
        _, d_out, sums = self._loss(losses, ys, fwd, ws)
        return ShardLoss(fwd, d_out, sums)

    def _shard_backward(self, part: ShardLoss, counts: Mapping[str, float]) -> dict[str, np.ndarray]:
        """Phase two of a shard: its weight gradients as a share of the batch's
        loss: each output's gradient (of the mean over the shard's entries)
        times ``shard count / batch count`` (the batch's mean, not a mean of
        the shards' means: ragged shards hold different token counts)."""
        ds = []
        for d, (key, (_, count)) in zip(part.d_outputs, part.sums.items()):
            total = counts[key]
            ds.append(d * d.dtype.type(count / total if total else 0.0))
        return self._backward(part.forward, ds)

    def _batch_loss(
        self, counts: Mapping[str, float], shard_sums: Sequence[Mapping[str, tuple[float, float]]]
    ) -> float:
        """The batch's loss from its shards' sums: each output's mean over the
        batch's entries, weighted by ``loss_weights`` and added."""
        value = 0.0
        for i, key in enumerate(counts):
            s = 0.0
            for sums in shard_sums:
                s += sums[key][0]
            w = 1.0 if self.loss_weights is None or len(counts) == 1 else self.loss_weights[i]
            value += w * (s / counts[key] if counts[key] else 0.0)
        return value

    def _non_finite_loss(
        self, value: float, cbs: Sequence[Callback], totals: Mapping[str, Sequence[float]], epoch: int, step: int
    ) -> bool:
        """A batch's loss is not finite: the callbacks see the batch's logs;
        True when one of them stopped training (the batch is not applied),
        ``FloatingPointError`` otherwise."""
        for cb in cbs:
            cb.on_train_batch_end(step, self._logs(totals))
        if self.stop_training:
            return True
        raise FloatingPointError(
            f"loss: expected a finite value, got {value} at epoch {epoch + 1}, batch "
            f"{step + 1} (check the inputs for NaN/inf, lower the learning rate or set the "
            f"optimizer's clip_norm); training stopped before applying this batch"
        )

    def _apply(
        self,
        optimizer: Optimizer,
        params: dict[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        epoch: int,
        step: int,
    ) -> None:
        """One optimizer update of ``params`` (the master copies), checked, then pushed into the layers."""
        optimizer.apply_gradients(params, grads, check_finite=True)
        broken = [k for k, v in params.items() if not np.isfinite(v).all()]
        if broken:
            raise FloatingPointError(
                f"weights: expected finite values after the update of epoch {epoch + 1}, batch "
                f"{step + 1}, got NaN or inf in {broken} (the step overflowed: lower the "
                f"learning rate or set the optimizer's clip_norm); the model keeps its previous "
                f"weights"
            )
        self._push(params)

    def _check_strategy(self, strategy: Any, sharded: bool) -> None:
        """``fit``'s ``strategy``: a distributed strategy (it has ``_open``),
        for a model that trains in shards (no ``bptt_steps``, no stateful
        layers); the strategy checks the rest (``_check_model``)."""
        if not callable(getattr(strategy, "_open", None)):
            raise TypeError(
                f"strategy: expected None or a rnnrs.distributed strategy (RayStrategy), got {type(strategy).__name__}"
            )
        if not sharded:
            raise ValueError(
                "strategy: expected a model trained in whole batches (no bptt_steps, no stateful layers: their "
                "state runs from batch to batch in this process), got bptt_steps or a stateful layer"
            )

    def fit(
        self,
        x: Any,
        y: Any = None,
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
        sample_weight: Any = None,
        class_weight: Optional[Mapping[int, float]] = None,
        bptt_steps: Optional[int] = None,
        strategy: Any = None,
    ) -> History:
        """Trains the model on mini-batches.

        Args:
            x: inputs ``[B, T, F]`` (integer ids ``[B, T]`` after an
                ``Embedding``); for a model with several inputs a list (one
                array per input) or a dict by input name. Or a
                ``ray.data.Dataset`` (needs ``rnnrs[ray]``) with columns
                ``"x"``, ``"y"`` and optionally ``"sequence_length"`` and
                ``"sample_weight"``, one example per row: its rows are read
                once, in order, and train as those arrays would
                (:mod:`rnnrs.distributed.dataset`); ``y``,
                ``sequence_length`` and ``sample_weight`` are then None.
            y: targets: class ids ``[B]`` (or ``[B, T]`` per step) for a
                classifier, values shaped like the outputs for a regressor;
                for a model with several outputs a list (one per output) or
                a dict by output name. None only with a Dataset ``x``.
            batch_size: rows per step, an integer >= 1 (the last batch may
                be smaller).
            epochs: the index at which training stops, an integer >= 0: the
                epochs run are ``initial_epoch, ..., epochs - 1`` (as Keras;
                none when ``epochs <= initial_epoch``).
            validation_data: ``(x_val, y_val)`` or ``(x_val, y_val,
                lengths_val)``, or a ``ray.data.Dataset`` with columns ``"x"``,
                ``"y"`` (and ``"sequence_length"``), evaluated after every
                epoch (``val_*`` metrics; unweighted). When training uses ``sequence_length`` and
                ``validation_data`` gives no lengths for those inputs, a
                ``UserWarning`` says so (their padded steps would be read as
                data).
            shuffle: reshuffle the rows every epoch (a bool).
            seed: seeds the shuffling, None or an integer >= 0 (the same
                seed, data and weights give the same training).
            sequence_length: optional ``[B]`` lengths of ``x``'s rows (a
                list, one entry or None per input, for several inputs).
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
                a run; the history numbers this call's epochs from it). With
                ``shuffle`` the shuffling generator first skips the orders of
                the epochs before it, so a model saved after epoch ``k``
                (weights and optimizer state, e.g. by
                :class:`~rnnrs.callbacks.ModelCheckpoint`), loaded and fit
                again with the same ``seed`` and ``initial_epoch=k`` reaches
                the weights of the uninterrupted run.
            sample_weight: None, or the weight of each row ``[B]`` — or, for
                an output with a time axis ``[B, T, ...]``, of each step
                ``[B, T]`` (Keras' temporal weights) — finite numbers >= 0;
                for several outputs a list (one array or None per output), a
                dict by output name (missing outputs unweighted) or one NumPy
                array for every output. Each output's loss becomes Keras'
                ``sum(w * per-entry loss) / number of entries``: divided by
                the number of rows (steps, entries), NOT by the sum of the
                weights, so a weight of 2 counts a row twice and weights of 0
                still count in the denominator; with ``sequence_length`` padded
                steps weigh 0 and the denominator is the number of unmasked
                entries, as without weights. The gradient is that value's. The
                weights follow their rows through shuffling and
                ``validation_split`` (the held-out rows' weights are unused:
                validation is unweighted). Metrics are not weighted (Keras 3
                weighs only ``weighted_metrics``, which rnnrs does not have).
                A callable loss cannot be weighted (``ValueError``).
            class_weight: None or a dict ``{class id: weight}`` (integer keys
                among the output's classes — ``0``/``1`` for a binary loss —
                and finite weights >= 0) for a model with ONE output whose
                loss takes classes: each row's (or step's) weight is
                ``class_weight.get(class, 1)``, the class being the id
                (sparse cross-entropy), the ``argmax`` of the one-hot row
                (categorical, as Keras) or the 0/1 target (binary, outputs
                ``[..., 1]``). It multiplies ``sample_weight``; training only
                (not the validation loss). ``ValueError`` naming
                ``class_weight`` for several outputs (as Keras 3), a loss
                without classes, keys out of range or bad weights;
                ``TypeError`` for non-integer keys.
            bptt_steps: None, or an integer k >= 1 for truncated
                backpropagation through time: every batch is cut into chunks
                of k time steps; the model's stateful recurrent layers
                (``RNN(cell, stateful=True)``, a stateful ``Bidirectional``)
                are reset at the start of each batch, each chunk runs forward
                and backward and the optimizer applies its gradients (one
                optimizer step per chunk), and the recurrent state is carried
                into the next chunk without gradient (the stateful layers
                keep a detached copy). Inputs must be sequences with one T,
                outputs and targets per step ``[B, T, ...]`` (cut with them,
                as are per-step ``sample_weight``); lengths become
                ``clip(lengths - t0, 0, k)``, and when every input has lengths
                the chunks past a batch's longest row are skipped. The logged
                loss and metrics cover every chunk. With k >= T training is
                the ordinary one. Validation resets the stateful layers
                before each batch and runs whole sequences. ``ValueError``
                naming ``bptt_steps`` for a model without stateful layers or
                outputs that are not per step; ``TypeError`` / ``ValueError``
                for anything but an integer >= 1.
            strategy: None (this process), or a
                :class:`rnnrs.distributed.RayStrategy` to run each batch's
                forward and backward passes on Ray workers. Either way each
                global batch is cut into fixed row shards that depend only on
                its shape (:func:`shard_bounds`: ``rows * T // 4096`` shards,
                at least one, so a batch under 8192 row-steps is one shard and
                trains as before); every shard runs forward, loss and
                backward on its own, its output gradients scaled by its share
                of the batch's entry count (the batch's mean loss, not a mean
                of the shards' means), and the shards' gradients are added in
                shard order before clipping and
                the optimizer. Workers take contiguous runs of shards, so the
                weights after training are bitwise equal for ``strategy=None``
                and any number of workers (at most one worker per shard does
                useful work: use batches of at least ``4096 * num_workers``
                row-steps). Truncated BPTT (``bptt_steps``) and stateful layers
                train batch by batch, unsharded, and refuse a strategy
                (``ValueError``); so do metric objects that are not rnnrs's
                own. Dropout trains sharded too: for a batch of several
                shards, every dropout layer or wrapper draws one key from its
                generator and shard ``i`` draws its masks from a generator
                made of that key and ``i`` (:mod:`rnnrs.trainers.shard_rng`),
                so the masks do not depend on where, or after which shards,
                a shard runs; a batch of one shard draws from the layers'
                generators, as before.

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
        optimizer, losses = self._require_compiled("fit")
        if is_dataset(x):
            x, y, sequence_length, sample_weight = _dataset_arguments(x, y, sequence_length, sample_weight)
        elif y is None:
            raise TypeError("y: expected the targets (arrays), got None (only a ray.data.Dataset x carries its own)")
        if is_dataset(validation_data):
            cols = _dataset_columns(validation_data, "validation_data")
            if cols["sample_weight"] is not None:
                raise ValueError("validation_data: expected no 'sample_weight' column (validation is unweighted)")
            validation_data = (cols["x"], cols["y"], cols["sequence_length"])
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
        xs, lengths = self._data("x", x, sequence_length, "sequence_length")
        shapes = self._output_shapes(xs, lengths)  # once: for a graph it takes a forward pass of one row
        ys = self._targets("y", y, xs, shapes, losses)
        ws = self._weights(sample_weight, class_weight, ys, shapes, losses)
        bptt, stateful = self._bptt_check(bptt_steps, xs, ys, shapes)
        sharded = bptt is None and not self._stateful_layers()
        if strategy is not None:
            self._check_strategy(strategy, sharded)
        val = self._validation(validation_data, losses)
        if val is not None:
            self._warn_validation_lengths(lengths, val[2])
        if validation_split:
            rows = xs[0].shape[0]
            split = int(math.floor(rows * (1.0 - float(validation_split))))
            if split == 0 or split == rows:
                raise ValueError(
                    f"validation_split: expected a fraction leaving rows for both training and validation, got "
                    f"{validation_split} of {rows} rows ({split} for training)"
                )
            tail = slice(split, None)
            val = (_rows(xs, tail), _rows(ys, tail), _rows(lengths, tail))
            head = slice(0, split)
            xs, ys, lengths, ws = _rows(xs, head), _rows(ys, head), _rows(lengths, head), _rows(ws, head)
        n = xs[0].shape[0]
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
        if shuffle and n and initial_epoch < epochs:
            for _ in range(initial_epoch):  # the orders of the epochs before initial_epoch (a resumed run)
                rng.permutation(n)
        runner = LocalShards(self, losses) if strategy is None else strategy._open(self, losses, xs, ys, lengths, ws)
        sources = runner.sources  # the dropout layers and wrappers (found once), whose generators give the keys
        try:
            for epoch in range(initial_epoch, epochs):
                for cb in cbs:
                    cb.on_epoch_begin(epoch, None)
                params = self.get_weights()  # master copies, updated in place by the optimizer
                started = time.perf_counter()
                if shuffle and n:
                    order = rng.permutation(n)
                    ex, ey, el, ew = _rows(xs, order), _rows(ys, order), _rows(lengths, order), _rows(ws, order)
                else:
                    ex, ey, el, ew = xs, ys, lengths, ws
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
                            for layer in stateful:  # truncated BPTT: each batch starts from zero states
                                layer.reset_states()
                            nan_stop = False
                            if sharded:
                                rows = order[sl] if shuffle and n else np.arange(sl.start, sl.stop)
                                batch = (_rows(ex, sl), _rows(ey, sl), _rows(el, sl), _rows(ew, sl))
                                # this step's dropout streams: one per shard (None: one shard, the generators')
                                keys = draw_keys(sources, len(shard_bounds(len(rows), batch_steps(batch[0]))))
                                shard_sums = runner.forward(params, batch, rows, keys)
                                for sums in shard_sums:
                                    _accumulate(totals, sums)
                                counts = global_counts(shard_sums)
                                value = self._batch_loss(counts, shard_sums)
                                if not math.isfinite(value):
                                    nan_stop = self._non_finite_loss(value, cbs, totals, epoch, step)
                                else:
                                    grads: Optional[dict[str, np.ndarray]] = None
                                    for shard_grads in runner.backward(counts):
                                        grads = add_in_order(grads, shard_grads)
                                    self._apply(optimizer, params, grads or {}, epoch, step)
                            else:
                                for cx, cy, cl, cw in _chunks(
                                    _rows(ex, sl), _rows(ey, sl), _rows(el, sl), _rows(ew, sl), bptt
                                ):
                                    fwd = self._forward(cx, cl, True)
                                    value, d_out, sums = self._loss(losses, cy, fwd, cw)
                                    _accumulate(totals, sums)
                                    if not math.isfinite(value):
                                        nan_stop = self._non_finite_loss(value, cbs, totals, epoch, step)
                                        break
                                    self._apply(optimizer, params, self._backward(fwd, d_out), epoch, step)
                            if nan_stop:
                                break
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
                    # Validation runs its rows from zero states (stateful layers are reset before each of
                    # its batches), and training then continues from the states it had left.
                    kept = [(layer, layer._kept_state) for layer in self._kept_state_layers()]
                    try:
                        val_logs = self._evaluate_arrays(*val, losses, 256, stateful=[layer for layer, _ in kept])
                    finally:
                        for layer, state in kept:
                            layer._kept_state = state
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
        finally:
            runner.close()

    def _weights(
        self, sample_weight: Any, class_weight: Any, ys: Arrays, shapes: list[tuple[int, ...]], losses: list[Any]
    ) -> list[Optional[np.ndarray]]:
        """Per output: None or the rows' (steps') weights, ``sample_weight``
        times ``class_weight`` (see ``compile_utils.sample_weights``)."""
        if sample_weight is None and class_weight is None:
            return [None] * len(ys)
        ws = sample_weights("sample_weight", sample_weight, self.output_names, shapes, losses)
        by_class = class_weights(class_weight, ys, shapes, losses)
        if by_class is not None:
            ws[0] = combined(ws[0], by_class)
        return ws

    def _stateful_layers(self) -> list[Any]:
        """The stateful recurrent layers, wrapped ones included (a ``Bidirectional``'s two directions)."""
        return [layer for layer in self._kept_state_layers() if getattr(layer, "stateful", False) is True]

    def _bptt_check(
        self, bptt_steps: Any, xs: Arrays, ys: Arrays, shapes: list[tuple[int, ...]]
    ) -> tuple[Optional[int], list[Any]]:
        """``(k, stateful layers)`` for truncated BPTT (``(None, [])`` without):
        ``ValueError`` naming ``bptt_steps`` for a model without stateful
        layers, inputs that are not sequences of one length ``T``, outputs or
        targets that are not per step ``[B, T, ...]``."""
        if bptt_steps is None:
            return None, []
        k = positive_int("bptt_steps", bptt_steps)
        stateful = self._stateful_layers()
        if not stateful:
            raise ValueError(
                "bptt_steps: expected a model with a stateful recurrent layer (RNN(cell, stateful=True)) to carry "
                f"the state from chunk to chunk, got none (bptt_steps={k})"
            )
        total: Optional[int] = None
        for i, x in enumerate(xs):
            sequence = x.ndim >= 3 or (x.dtype.kind != "f" and x.ndim == 2)
            if not sequence or (total is not None and x.shape[1] != total):
                raise ValueError(
                    "bptt_steps: expected every input to be a sequence [B, T, ...] with one T, to be cut into "
                    f"chunks of time steps, got input {i} of shape {x.shape}"
                )
            total = x.shape[1]
        for name, shape, y in zip(self.output_names, shapes, ys):
            if len(shape) != 3 or shape[1] != total or y.ndim < 2 or y.shape[1] != total:
                raise ValueError(
                    f"bptt_steps: expected per-step outputs and targets [B, T, ...] (T = {total}, the inputs' steps; "
                    f"return_sequences=True) to cut with the inputs, got output {name!r} of shape {shape} with "
                    f"targets of shape {y.shape}"
                )
        return k, stateful

    @staticmethod
    def _warn_validation_lengths(train: Lengths, val: Lengths) -> None:
        """A ``UserWarning`` when inputs trained with ``sequence_length`` are
        validated without lengths (their padding would be read as data)."""
        missing = [i for i, (a, b) in enumerate(zip(train, val)) if a is not None and b is None]
        if missing:
            which = "" if len(train) == 1 else f" for input(s) {missing}"
            warnings.warn(
                f"validation_data: training uses sequence_length but validation_data has no lengths{which}; "
                "padded steps of the validation rows will be read as data (give (x_val, y_val, lengths_val))",
                UserWarning,
                stacklevel=3,
            )

    def _validation(self, data: Optional[Sequence[Any]], losses: list[Any]) -> Optional[tuple[Arrays, Arrays, Lengths]]:
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
        vx, vl = self._data("validation_data[0]", data[0], data[2] if len(data) == 3 else None, "validation_data[2]")
        vy = self._targets("validation_data[1]", data[1], vx, self._output_shapes(vx, vl), losses)
        return vx, vy, vl

    def evaluate(
        self, x: Any, y: Any, sequence_length: Any = None, batch_size: int = 256, sample_weight: Any = None
    ) -> dict[str, float]:
        """The loss and metrics on ``(x, y)`` without dropout:
        ``{"loss": ..., "accuracy": ...}`` (the metrics' keys as ``compile``
        describes; streaming metrics are reset, then fed every batch).

        ``sample_weight`` weighs the loss as in :meth:`fit` (one weight per
        row ``[B]``, or per step ``[B, T]`` for per-step outputs; a list or a
        dict by output name for several outputs): ``sum(w * loss) / number
        of (unmasked) entries``, so the result does not depend on
        ``batch_size``. Metrics are not weighted (Keras' ``metrics``)."""
        _, losses = self._require_compiled("evaluate")
        batch_size = positive_int("batch_size", batch_size)
        xs, lengths = self._data("x", x, sequence_length, "sequence_length")
        shapes = self._output_shapes(xs, lengths)
        ys = self._targets("y", y, xs, shapes, losses)
        ws = self._weights(sample_weight, None, ys, shapes, losses)
        return self._evaluate_arrays(xs, ys, lengths, losses, batch_size, ws)

    def _evaluate_arrays(
        self,
        xs: Arrays,
        ys: Arrays,
        lengths: Lengths,
        losses: list[Any],
        batch_size: int,
        weights: Optional[Sequence[Optional[np.ndarray]]] = None,
        stateful: Sequence[Any] = (),
    ) -> dict[str, float]:
        """The logs over every batch; ``stateful`` layers (truncated BPTT's)
        are reset before each batch, as in training."""
        for metric in self._metric_objects:
            metric.reset_state()
        # Every loss key is there even without rows (its value is then 0.0, as for all-padding batches).
        names = self.output_names
        totals: dict[str, list[float]] = (
            {"loss": [0.0, 0.0]} if len(names) == 1 else {f"{name}_loss": [0.0, 0.0] for name in names}
        )
        ws = list(weights) if weights is not None else [None] * len(ys)
        for start in range(0, xs[0].shape[0], batch_size):
            sl = slice(start, start + batch_size)
            for layer in stateful:
                layer.reset_states()
            fwd = self._forward(_rows(xs, sl), _rows(lengths, sl), False)
            _, _, sums = self._loss(losses, _rows(ys, sl), fwd, _rows(ws, sl))
            _accumulate(totals, sums)
        return self._logs(totals)

    # -- inference --------------------------------------------------------------------------
    def _predict_arrays(self, xs: Arrays, lengths: Lengths, batch_size: int) -> tuple[Arrays, Lengths]:
        """Every output (raw) and its lengths, batch by batch."""
        parts: list[Arrays] = []
        part_lengths: list[Lengths] = []
        for start in range(0, xs[0].shape[0], batch_size):
            sl = slice(start, start + batch_size)
            fwd = self._forward(_rows(xs, sl), _rows(lengths, sl), False)
            parts.append(fwd.outputs)
            part_lengths.append(fwd.lengths)
        if not parts:  # no rows: the shapes come from the model
            shapes = self._output_shapes(xs, lengths)
            return [np.zeros(shape, dtype=self.dtype) for shape in shapes], [None] * len(shapes)
        outs: Arrays = []
        out_lengths: Lengths = []
        for i in range(len(parts[0])):
            outs.append(np.concatenate([p[i] for p in parts]))
            ls = [p[i] for p in part_lengths]
            out_lengths.append(None if any(v is None for v in ls) else np.concatenate(ls))  # type: ignore[arg-type]
        return outs, out_lengths

    def predict(self, x: Any, sequence_length: Any = None, batch_size: int = 256) -> Any:
        """Outputs for ``x`` without dropout, in batches: probabilities for an
        output compiled with a cross-entropy on logits (the softmax of the
        logits for the sparse and categorical ones, ``[B, C]`` or ``[B, T,
        C]``; the sigmoid for the binary one), the raw outputs otherwise
        (also for a loss object with ``from_logits=False``, whose model
        outputs probabilities itself). Steps past a row's length are zero.
        A model with several outputs returns a list."""
        batch_size = positive_int("batch_size", batch_size)
        xs, lengths = self._data("x", x, sequence_length, "sequence_length")
        outs, out_lengths = self._predict_arrays(xs, lengths, batch_size)
        losses = self._losses_per_output if self.loss is not None else [None] * len(outs)
        result = []
        for out, ls, loss in zip(outs, out_lengths, losses):
            if loss == CLASSIFICATION:
                out = softmax(out).astype(self.dtype, copy=False)
            elif loss is not None:
                out = probabilities(loss, out).astype(self.dtype, copy=False)
            if ls is not None and out.ndim == 3:
                out = out * sequence_mask(ls, out.shape[1], out.dtype)[..., None]
            result.append(out)
        return result[0] if len(result) == 1 else result

    def predict_classes(self, x: Any, sequence_length: Any = None, batch_size: int = 256) -> Any:
        """The most likely class ids (int64): ``argmax`` of the outputs' last axis
        (a list for a model with several outputs)."""
        out = self.predict(x, sequence_length, batch_size)
        if isinstance(out, list):
            return [np.asarray(o.argmax(axis=-1), dtype=np.int64) for o in out]
        return np.asarray(out.argmax(axis=-1), dtype=np.int64)


__all__ = ["Forward", "History", "Trainer"]
