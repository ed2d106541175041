"""Callbacks: code that ``fit`` runs at fixed points of training (Keras' callbacks).

::

    stop = rnnrs.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    model.fit(x, y, epochs=100, validation_split=0.2, callbacks=[stop])

A callback subclasses :class:`Callback` and overrides some of its hooks; ``fit``
calls them, in this order::

    on_train_begin(logs)                         once, before the first epoch
      on_epoch_begin(epoch, logs)                every epoch
        on_train_batch_begin(batch, logs)        every batch (also calls on_batch_begin)
        on_train_batch_end(batch, logs)          (also calls on_batch_end)
        on_test_begin(logs) / on_test_end(logs)  around the validation, when there is some
      on_epoch_end(epoch, logs)
    on_train_end(logs)                           once, after the last epoch

``epoch`` counts from ``fit``'s ``initial_epoch``; ``batch`` from 0 in each
epoch. ``logs`` is a dict: None at the ``*_begin`` hooks, the running means of
the epoch's batches (``{"loss": ..., "accuracy": ...}``) at
``on_train_batch_end``, the epoch's metrics with the ``val_*`` ones at
``on_epoch_end`` (a callback may add entries there, e.g. ``learning_rate``:
the model's :class:`~rnnrs.History` records them), the validation metrics at
``on_test_end``, the last epoch's logs at ``on_train_end``. Setting
``self.model.stop_training = True`` ends training after the current batch
(the epoch is then closed: validation, ``on_epoch_end``, then
``on_train_end``). ``on_train_end`` is not called when ``fit`` raises.

The names ``on_test_batch_*`` and ``on_predict_*`` exist for Keras
compatibility but are not called: ``evaluate`` and ``predict`` take no
callbacks. A callback defining any other ``on_*`` name (a typo such as
``on_epoch_ends``) is refused by ``fit`` with a ``ValueError`` naming it.

Monitored metrics (``monitor=``) are names of the epoch logs: ``"loss"``,
``"val_loss"``, ``"accuracy"``, ``"val_accuracy"``, ``"mae"``, ...;
``mode="auto"`` minimises losses and errors and maximises accuracies,
precision, recall and AUC (any other name needs ``mode="min"`` or ``"max"``).
A monitored metric missing from the logs gives a ``RuntimeWarning`` naming it
and the available ones (as Keras), and the callback does nothing that epoch.
"""

from __future__ import annotations

import csv
import inspect
import math
import numbers
import os
import warnings
from typing import IO, Any, Callable, Optional, Union

import numpy as np

from ._validate import bounded_int, finite_number, flag

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
]

#: Keras' hook names; a callback's other ``on_*`` names are refused by ``fit``.
HOOKS = frozenset(
    f"on_{what}_{when}"
    for what in ("train", "test", "predict", "epoch", "batch", "train_batch", "test_batch", "predict_batch")
    for when in ("begin", "end")
)

_MINIMISED = ("loss", "error", "mae", "mse", "mape", "msle", "crossentropy", "hinge", "divergence")
_MAXIMISED = ("acc", "precision", "recall", "auc")


class Callback:
    """The base class of callbacks: every hook does nothing (see the module
    doc for when ``fit`` calls each). ``self.model`` is the model being
    trained (set by ``fit`` through :meth:`set_model`); ``self.params`` holds
    ``fit``'s ``epochs``, ``steps`` (batches per epoch) and ``verbose``."""

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: Optional[dict[str, Any]] = None) -> None:
        pass

    def on_train_end(self, logs: Optional[dict[str, Any]] = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        pass

    def on_batch_begin(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        pass

    def on_train_batch_begin(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        """Calls :meth:`on_batch_begin` (Keras' older name)."""
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        """Calls :meth:`on_batch_end` (Keras' older name)."""
        self.on_batch_end(batch, logs)

    def on_test_begin(self, logs: Optional[dict[str, Any]] = None) -> None:
        pass

    def on_test_end(self, logs: Optional[dict[str, Any]] = None) -> None:
        pass

    def on_test_batch_begin(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        pass

    def on_test_batch_end(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        pass

    def on_predict_begin(self, logs: Optional[dict[str, Any]] = None) -> None:
        pass

    def on_predict_end(self, logs: Optional[dict[str, Any]] = None) -> None:
        pass

    def on_predict_batch_begin(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        pass

    def on_predict_batch_end(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        pass


def check_callbacks(callbacks: Any) -> list[Callback]:
    """``fit``'s ``callbacks`` argument as a list: None or a list/tuple of
    :class:`Callback` instances (``TypeError`` otherwise), none defining an
    ``on_*`` name that is not a Keras hook (``ValueError`` naming it)."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks: expected a list of rnnrs.callbacks.Callback, got {type(callbacks).__name__}")
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(
                f"callbacks: expected rnnrs.callbacks.Callback instances, got {type(cb).__name__} at index {i}"
            )
        unknown = sorted(name for name in dir(cb) if name.startswith("on_") and name not in HOOKS)
        if unknown:
            raise ValueError(
                f"callbacks: expected hooks named among {sorted(HOOKS)}, got {unknown[0]!r} on "
                f"{type(cb).__name__} at index {i} (a misspelt hook would never be called)"
            )
    return list(callbacks)


def _mode(mode: Any) -> str:
    if not isinstance(mode, str) or mode not in ("auto", "min", "max"):
        raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
    return str(mode)


def _maximise(monitor: str, mode: str) -> bool:
    """True when larger values of ``monitor`` are better."""
    if mode != "auto":
        return mode == "max"
    name = monitor.lower().removeprefix("val_")
    if any(part in name for part in _MINIMISED):
        return False
    if any(part in name for part in _MAXIMISED):
        return True
    raise ValueError(
        f"mode: expected 'min' or 'max' for monitor={monitor!r} (mode='auto' cannot tell whether it should be "
        f"minimised or maximised), got 'auto'"
    )


def _monitor(monitor: Any) -> str:
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(f"monitor: expected a metric name (a non-empty str), got {type(monitor).__name__} {monitor!r}")
    return monitor


def _monitored(who: str, monitor: str, logs: Optional[dict[str, Any]]) -> Optional[float]:
    """The monitored value, or None with a warning naming it when the logs lack it."""
    value = (logs or {}).get(monitor)
    if value is None:
        warnings.warn(
            f"{who} is conditioned on metric {monitor!r}, which is not available; available metrics are: "
            f"{', '.join(sorted(logs or {}))}",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return float(value)


def _learning_rate(model: Any, who: str) -> float:
    """The optimizer's current learning rate as a number (a schedule's value
    at the optimizer's current step)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not hasattr(optimizer, "learning_rate"):
        raise ValueError(f"{who}: expected a compiled model with an optimizer, got {type(optimizer).__name__}")
    lr = optimizer.learning_rate
    return float(lr) if not callable(lr) else float(optimizer._current_learning_rate())


class EarlyStopping(Callback):
    """Stops training when ``monitor`` has stopped improving (Keras' ``EarlyStopping``).

    At each epoch end (from epoch ``start_from_epoch`` on) the monitored value
    counts as an improvement when it beats the best so far by more than
    ``min_delta``; after ``patience`` epochs in a row without one (and after
    epoch 0), ``model.stop_training`` is set. With a ``baseline``, the wait
    only resets on values that also beat the baseline.

    Args:
        monitor: the metric to watch (default ``"val_loss"``).
        min_delta: smallest change that counts as an improvement (its
            absolute value is used), a finite number.
        patience: epochs without improvement before stopping, an integer >= 0.
        mode: ``"auto"``, ``"min"`` or ``"max"`` (see the module doc).
        baseline: None or a value the metric must beat.
        restore_best_weights: at the end of training, put back the weights of
            the best epoch (bitwise), whether training stopped early or not.
        start_from_epoch: epochs to wait before watching, an integer >= 0.

    Attributes:
        stopped_epoch: the epoch at which training was stopped (0 if it was not).
        best: the best monitored value; best_epoch: its epoch.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        mode: str = "auto",
        baseline: Optional[float] = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__()
        self.monitor = _monitor(monitor)
        self.min_delta = abs(finite_number("min_delta", min_delta))
        self.patience = bounded_int("patience", patience, 0)
        self.mode = _mode(mode)
        self.baseline = None if baseline is None else finite_number("baseline", baseline)
        self.restore_best_weights = flag("restore_best_weights", restore_best_weights)
        self.start_from_epoch = bounded_int("start_from_epoch", start_from_epoch, 0)
        self._max = _maximise(self.monitor, self.mode)
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best: Optional[float] = None
        self.best_epoch = 0
        self.best_weights: Optional[dict[str, np.ndarray]] = None

    def _improves(self, value: float, reference: Optional[float]) -> bool:
        if reference is None:
            return True
        return value - self.min_delta > reference if self._max else value + self.min_delta < reference

    def on_train_begin(self, logs: Optional[dict[str, Any]] = None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        current = _monitored("Early stopping", self.monitor, logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._improves(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improves(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Optional[dict[str, Any]] = None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Saves the model (``model.save``: weights, configuration and optimizer
    state, loadable with :func:`rnnrs.load_model`) at the end of every epoch
    (Keras' ``ModelCheckpoint``).

    Args:
        filepath: str or ``os.PathLike``; it may hold ``str.format`` fields
            filled with ``epoch`` (1-based, as Keras) and the epoch's logs,
            e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``. A field the logs
            do not have raises ``ValueError`` naming ``filepath``.
        monitor: the metric compared with ``save_best_only``.
        save_best_only: save only when ``monitor`` improves on the best value
            so far (strictly); a missing metric gives a warning, no save.
        mode: ``"auto"``, ``"min"`` or ``"max"`` (see the module doc).
    """

    def __init__(
        self,
        filepath: Union[str, "os.PathLike[str]"],
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
    ) -> None:
        super().__init__()
        if not isinstance(filepath, (str, os.PathLike)):
            raise TypeError(f"filepath: expected a str or os.PathLike, got {type(filepath).__name__}")
        self.filepath = os.fspath(filepath)
        if not isinstance(self.filepath, str):
            raise TypeError(f"filepath: expected a text path, got {type(self.filepath).__name__}")
        self.monitor = _monitor(monitor)
        self.save_best_only = flag("save_best_only", save_best_only)
        self.mode = _mode(mode)
        self._max = _maximise(self.monitor, self.mode)
        self.best: Optional[float] = None

    def _path(self, epoch: int, logs: dict[str, Any]) -> str:
        try:
            return self.filepath.format(**{**logs, "epoch": epoch + 1})
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"filepath: expected format fields among {['epoch', *sorted(logs)]}, got {self.filepath!r} ({e!r})"
            ) from None

    def on_epoch_end(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        logs = logs or {}
        if self.save_best_only:
            current = _monitored("Saving the best model", self.monitor, logs)
            if current is None:
                return
            if self.best is not None and not (current > self.best if self._max else current < self.best):
                return
            self.best = current
        self.model.save(self._path(epoch, logs))


class LearningRateScheduler(Callback):
    """Sets the optimizer's learning rate at the start of every epoch (Keras'
    ``LearningRateScheduler``).

    ``schedule(epoch, lr)`` (or ``schedule(epoch)`` when it takes one
    argument) returns the new rate, a finite number > 0, assigned to
    ``model.optimizer.learning_rate``; ``lr`` is the current rate (a
    schedule's value at the optimizer's step, when the learning rate is a
    schedule: the number then replaces it). The rate is added to the epoch's
    logs as ``learning_rate``. A schedule returning anything else raises
    ``TypeError``/``ValueError`` naming ``schedule``.
    """

    def __init__(self, schedule: Callable[..., float]) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule: expected a callable (epoch, lr) -> lr, got {type(schedule).__name__}")
        self.schedule = schedule

    def on_epoch_begin(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        lr = _learning_rate(self.model, "LearningRateScheduler")
        try:
            inspect.signature(self.schedule).bind(epoch, lr)
            two = True
        except TypeError:
            two = False
        except ValueError:  # no signature (some builtins): try the Keras form
            two = True
        value = self.schedule(epoch, lr) if two else self.schedule(epoch)
        if isinstance(value, np.ndarray) and value.shape == ():
            value = value[()]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"schedule: expected a number at epoch {epoch}, got {type(value).__name__} {value!r:.80}")
        if not (math.isfinite(float(value)) and float(value) > 0):
            raise ValueError(f"schedule: expected a finite number > 0 at epoch {epoch}, got {float(value)}")
        self.model.optimizer.learning_rate = float(value)

    def on_epoch_end(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        if logs is not None:
            logs["learning_rate"] = _learning_rate(self.model, "LearningRateScheduler")


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by ``factor`` when ``monitor`` has not
    improved for ``patience`` epochs (Keras' ``ReduceLROnPlateau``).

    An improvement beats the best value by more than ``min_delta``. After a
    reduction, ``cooldown`` epochs pass before waiting starts again; the
    rate never goes below ``min_lr``. The current rate is added to the
    epoch's logs as ``learning_rate``. The optimizer's learning rate must be
    a number (``TypeError`` naming ``learning_rate`` at the start of training
    for a schedule, as Keras refuses to set a scheduled rate).

    Args:
        monitor: the metric to watch (default ``"val_loss"``).
        factor: a number in (0, 1).
        patience: an integer >= 0.
        mode: ``"auto"``, ``"min"`` or ``"max"``.
        min_delta: a finite number >= 0.
        cooldown: an integer >= 0.
        min_lr: a finite number >= 0.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__()
        self.monitor = _monitor(monitor)
        self.factor = finite_number("factor", factor)
        if not 0 < self.factor < 1:
            raise ValueError(f"factor: expected a number in (0, 1), got {factor}")
        self.patience = bounded_int("patience", patience, 0)
        self.mode = _mode(mode)
        self.min_delta = finite_number("min_delta", min_delta)
        if self.min_delta < 0:
            raise ValueError(f"min_delta: expected a number >= 0, got {min_delta}")
        self.cooldown = bounded_int("cooldown", cooldown, 0)
        self.min_lr = finite_number("min_lr", min_lr)
        if self.min_lr < 0:
            raise ValueError(f"min_lr: expected a number >= 0, got {min_lr}")
        self._max = _maximise(self.monitor, self.mode)
        self._reset()

    def _reset(self) -> None:
        self.best = -math.inf if self._max else math.inf
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs: Optional[dict[str, Any]] = None) -> None:
        self._reset()
        lr = getattr(getattr(self.model, "optimizer", None), "learning_rate", None)
        if callable(lr):
            raise TypeError(
                f"learning_rate: expected a number for ReduceLROnPlateau to reduce, got {type(lr).__name__} "
                f"(a schedule already sets the rate)"
            )

    def on_epoch_end(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        logs = logs if logs is not None else {}
        logs["learning_rate"] = _learning_rate(self.model, "ReduceLROnPlateau")
        current = _monitored("Learning rate reduction", self.monitor, logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if current > self.best + self.min_delta if self._max else current < self.best - self.min_delta:
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = _learning_rate(self.model, "ReduceLROnPlateau")
                if old > np.float32(self.min_lr):
                    self.model.optimizer.learning_rate = max(old * self.factor, self.min_lr)
                    self.cooldown_counter, self.wait = self.cooldown, 0


class CSVLogger(Callback):
    """Writes each epoch's logs to a CSV file (Keras' ``CSVLogger``).

    Columns: ``epoch`` (as ``fit`` numbers it, from ``initial_epoch``), then
    the first epoch's log names sorted; when that epoch had no ``val_*``
    metric, ``val_<name>`` columns are added too (as Keras), holding ``NA``
    while absent. Each row is flushed as written; the file is closed at the
    end of training.

    Args:
        filename: str or ``os.PathLike``.
        separator: the one-character field separator.
        append: add to an existing file (the header is written only if the
            file is empty) instead of overwriting it.
    """

    def __init__(self, filename: Union[str, "os.PathLike[str]"], separator: str = ",", append: bool = False) -> None:
        super().__init__()
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(f"filename: expected a str or os.PathLike, got {type(filename).__name__}")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator: expected one character, got {separator!r}")
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = flag("append", append)
        self.keys: Optional[list[str]] = None
        self._file: Optional[IO[str]] = None
        self._writer: Optional[csv.DictWriter[str]] = None
        self._header = True

    def on_train_begin(self, logs: Optional[dict[str, Any]] = None) -> None:
        self._header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename, encoding="utf-8") as f:
                self._header = not f.readline()
        self._file = open(self.filename, "a" if self.append else "w", newline="", encoding="utf-8")
        self.keys, self._writer = None, None

    def on_epoch_end(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        logs = logs or {}
        if self._file is None:
            return
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch", *self.keys], delimiter=self.sep)
            if self._header:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
        self._file.flush()

    def on_train_end(self, logs: Optional[dict[str, Any]] = None) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._writer = None, None


class TerminateOnNaN(Callback):
    """Stops training cleanly when a batch's loss is NaN or infinite (Keras'
    ``TerminateOnNaN``).

    Without it, ``fit`` raises ``FloatingPointError`` on such a loss. With
    it, ``fit`` hands the batch's logs (the loss NaN/inf) to
    ``on_train_batch_end``, this callback warns (``RuntimeWarning``) and sets
    ``model.stop_training``, and ``fit`` then does not apply that batch: the
    model keeps the weights of the last good batch, the epoch is closed
    (its ``loss`` is NaN/inf in the history) and ``fit`` returns normally.
    """

    def on_train_batch_end(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            warnings.warn(f"Batch {batch}: invalid loss {loss}, terminating training", RuntimeWarning, stacklevel=2)
            self.model.stop_training = True
