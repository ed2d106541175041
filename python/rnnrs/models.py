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
import os
import re
import sys
import tempfile
import time
from typing import Any, Mapping, Optional, Sequence, TextIO, Union

import numpy as np

from ._validate import check_shape, float_array, lengths_array, positive_int
from .cells import RNNCell
from .layers import RNN, Dense, Embedding, Layer, LayerBackward
from .losses import class_ids, mean_squared_error, sequence_mask, softmax, sparse_softmax_cross_entropy
from .optimizers import Adam, Optimizer, optimizer_from_config
from .optimizers import get as get_optimizer
from .progress import ProgressBar, format_metrics, progress_mode

FORMAT = "rnnrs.model"
FORMAT_VERSION = 1
CONFIG_KEY = "__rnnrs_model__"

_CLASSIFICATION = "sparse_softmax_cross_entropy"
_REGRESSION = "mean_squared_error"
LOSSES = {
    "sparse_softmax_cross_entropy": _CLASSIFICATION,
    "sparse_categorical_crossentropy": _CLASSIFICATION,
    "mean_squared_error": _REGRESSION,
    "mse": _REGRESSION,
}
METRICS = {"accuracy": "accuracy", "acc": "accuracy", "mae": "mae", "mean_absolute_error": "mae"}
_METRIC_LOSS = {"accuracy": _CLASSIFICATION, "mae": _REGRESSION}


class History:
    """What ``fit`` returns (Keras' ``History``).

    Attributes:
        history: metric name (``"loss"``, ``"accuracy"``, ``"val_loss"``, ...)
            → one value per epoch.
        epoch: the epoch indices (0-based).
        seconds: wall-clock seconds of each epoch (validation included).
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.seconds: list[float] = []

    def _append(self, epoch: int, logs: Mapping[str, float], seconds: float) -> None:
        self.epoch.append(epoch)
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
        self.loss: Optional[str] = None
        self.metrics: list[str] = []
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
        ndim = input_ndim
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
        return ndim

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

    def summary(self) -> str:
        """One line per layer: name, class, output size, weights."""
        lines = [f"model {self.name!r} ({type(self).__name__}, {self.dtype.name})"]
        for layer in self.layers:
            n = sum(v.size for v in layer.get_weights().values()) if layer.built else 0
            what = type(layer).__name__
            if isinstance(layer, RNN):
                what += f"({layer.cell!r}, return_sequences={layer.return_sequences})"
            lines.append(f"  {layer.name:<14} {what:<60} out {layer.output_size():>5}  params {n}")
        if self.loss:
            lines.append(f"  loss {self.loss}, metrics {self.metrics}, optimizer {self.optimizer!r}")
        return "\n".join(lines)

    # -- compile --------------------------------------------------------------
    def compile(
        self,
        optimizer: Union[Optimizer, str] = "adam",
        loss: str = _CLASSIFICATION,
        metrics: Optional[Sequence[str]] = None,
    ) -> None:
        """Chooses the optimizer (an instance, or ``"sgd"``, ``"momentum"``,
        ``"rmsprop"``, ``"adam"``), the loss (``"sparse_softmax_cross_entropy"``
        (alias ``"sparse_categorical_crossentropy"``) on logits, or
        ``"mean_squared_error"`` (``"mse"``)) and metrics (``"accuracy"`` for
        classification, ``"mae"`` for regression)."""
        opt = get_optimizer(optimizer)
        if not isinstance(loss, str) or loss not in LOSSES:
            raise ValueError(f"loss: expected one of {sorted(LOSSES)}, got {loss!r}")
        canonical = LOSSES[loss]
        names: list[str] = []
        for m in metrics or []:
            if not isinstance(m, str) or m not in METRICS:
                raise ValueError(f"metrics: expected names among {sorted(METRICS)}, got {m!r}")
            metric = METRICS[m]
            if _METRIC_LOSS[metric] != canonical:
                raise ValueError(f"metrics: expected metrics for loss {canonical!r}, got {m!r}")
            if metric not in names:
                names.append(metric)
        self.optimizer, self.loss, self.metrics = opt, canonical, names

    def _require_compiled(self, what: str) -> tuple[Optimizer, str]:
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

    def _targets(self, name: str, y: Any, x: np.ndarray, loss: str) -> np.ndarray:
        raw = np.asarray(y)
        if raw.ndim == 0 or raw.shape[0] != x.shape[0]:
            got = "a scalar" if raw.ndim == 0 else f"{raw.shape[0]}"
            raise ValueError(f"{name}: expected {x.shape[0]} rows (one per row of the inputs), got {got}")
        out_shape = self._output_shape(x)
        if loss == _CLASSIFICATION:
            return class_ids(name, raw, out_shape[-1], out_shape[:-1])
        arr = float_array(name, raw, self.dtype, len(out_shape), f"shaped like the outputs {out_shape}")
        check_shape(name, arr, out_shape)
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
        self, loss: str, y: np.ndarray, out: np.ndarray, lengths: Optional[np.ndarray]
    ) -> tuple[float, np.ndarray, dict[str, tuple[float, float]]]:
        """``(value, d_outputs, {metric: (sum, count)})``; ``loss`` enters as ``(value * count, count)``."""
        mask = sequence_mask(lengths, out.shape[1], out.dtype) if (lengths is not None and out.ndim == 3) else None
        sums: dict[str, tuple[float, float]] = {}
        if loss == _CLASSIFICATION:
            value, d = sparse_softmax_cross_entropy(y, out, mask)
            count = float(y.size if mask is None else mask.sum(dtype=np.float64))
            if "accuracy" in self.metrics:
                hit = out.argmax(axis=-1) == y
                sums["accuracy"] = (float(hit.sum() if mask is None else (hit * mask).sum()), count)
        else:
            value, d = mean_squared_error(y, out, mask)
            per = out.shape[-1] if out.ndim == 3 else 1
            count = float(y.size if mask is None else mask.sum(dtype=np.float64) * per)
            if "mae" in self.metrics:
                err = np.abs(out - y)
                if mask is not None:
                    err = err * mask[..., None]
                sums["mae"] = (float(err.sum(dtype=np.float64)), count)
        sums = {"loss": (value * count, count), **sums}
        return value, d, sums

    def __call__(self, x: Any, sequence_length: Any = None, training: bool = False) -> np.ndarray:
        """The raw outputs (logits for a classifier) of one forward pass."""
        arr, lengths = self._prepare("x", x, sequence_length, "sequence_length")
        return self._forward(arr, lengths, bool(training)).outputs

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
    ) -> History:
        """Trains the model on mini-batches.

        Args:
            x: inputs ``[B, T, F]`` (integer ids ``[B, T]`` after an ``Embedding``).
            y: targets: class ids ``[B]`` (or ``[B, T]`` per step) for a
                classifier, values shaped like the outputs for a regressor.
            batch_size: rows per step (the last batch may be smaller).
            epochs: passes over the data.
            validation_data: ``(x_val, y_val)`` or ``(x_val, y_val,
                lengths_val)``, evaluated after every epoch (``val_*`` metrics).
            shuffle: reshuffle the rows every epoch.
            seed: seeds the shuffling (the same seed, data and weights give
                the same training).
            sequence_length: optional ``[B]`` lengths of ``x``'s rows.
            verbose: ``"auto"`` (default) a progress bar when ``stream`` is a
                terminal and silence otherwise; ``0`` silent; ``1`` the bar;
                ``2`` one line per epoch.
            stream: where progress goes (default ``sys.stdout``).

        Returns:
            A :class:`History` (also kept as ``model.history``).

        Raises:
            ValueError / TypeError: bad inputs (mismatched rows, labels out of
                range, wrong shapes) before any training.
            FloatingPointError: the loss or the gradients became NaN or
                infinite; training stops at that batch, before applying it.
        """
        optimizer, loss = self._require_compiled("fit")
        batch_size = positive_int("batch_size", batch_size)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs: expected an integer >= 0, got {epochs!r}")
        x_arr, lengths = self._prepare("x", x, sequence_length, "sequence_length")
        y_arr = self._targets("y", y, x_arr, loss)
        val = self._validation(validation_data, loss)
        out = sys.stdout if stream is None else stream
        mode = progress_mode(verbose, out)
        rng = np.random.default_rng(seed)
        n = x_arr.shape[0]
        steps = math.ceil(n / batch_size)
        params = self.get_weights()  # master copies, updated in place by the optimizer
        history = History()
        self.history = history
        for epoch in range(int(epochs)):
            started = time.perf_counter()
            if shuffle and n:
                order = rng.permutation(n)
                xs, ys = x_arr[order], y_arr[order]
                ls = None if lengths is None else lengths[order]
            else:
                xs, ys, ls = x_arr, y_arr, lengths
            bar = ProgressBar(steps, f"epoch {epoch + 1:>{len(str(epochs))}}/{epochs}", out) if mode == 1 else None
            totals: dict[str, list[float]] = {}
            # Non-finite values are detected and reported below (loss, gradients,
            # weights), so NumPy's overflow warnings would only be noise.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                try:
                    for step in range(steps):
                        sl = slice(step * batch_size, min(n, (step + 1) * batch_size))
                        lb = None if ls is None else ls[sl]
                        fwd = self._forward(xs[sl], lb, True)
                        value, d_out, sums = self._loss(loss, ys[sl], fwd.outputs, lb)
                        if not math.isfinite(value):
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
                        for k, (s, c) in sums.items():
                            acc = totals.setdefault(k, [0.0, 0.0])
                            acc[0] += s
                            acc[1] += c
                        if bar is not None:
                            bar.update(step + 1, _means(totals))
                except BaseException:
                    if bar is not None:
                        bar.stream.write("\n")
                        bar.stream.flush()
                    raise
            logs = _means(totals)
            if val is not None:
                logs.update({f"val_{k}": v for k, v in self._evaluate_arrays(*val, loss, 256).items()})
            seconds = time.perf_counter() - started
            history._append(epoch, logs, seconds)
            if bar is not None:
                bar.close(logs)
            elif mode == 2:
                out.write(f"epoch {epoch + 1}/{epochs}  {seconds:.2f}s  {format_metrics(logs)}\n")
                out.flush()
        return history

    def _validation(
        self, data: Optional[Sequence[Any]], loss: str
    ) -> Optional[tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]]:
        if data is None:
            return None
        if isinstance(data, np.ndarray) or not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise TypeError(
                "validation_data: expected a tuple (x_val, y_val) or (x_val, y_val, lengths_val), "
                f"got {type(data).__name__}"
            )
        vx, vl = self._prepare("validation_data[0]", data[0], data[2] if len(data) == 3 else None, "validation_data[2]")
        vy = self._targets("validation_data[1]", data[1], vx, loss)
        return vx, vy, vl

    def evaluate(self, x: Any, y: Any, sequence_length: Any = None, batch_size: int = 256) -> dict[str, float]:
        """The loss and metrics on ``(x, y)`` without dropout: ``{"loss": ..., "accuracy": ...}``."""
        _, loss = self._require_compiled("evaluate")
        batch_size = positive_int("batch_size", batch_size)
        x_arr, lengths = self._prepare("x", x, sequence_length, "sequence_length")
        y_arr = self._targets("y", y, x_arr, loss)
        return self._evaluate_arrays(x_arr, y_arr, lengths, loss, batch_size)

    def _evaluate_arrays(
        self, x: np.ndarray, y: np.ndarray, lengths: Optional[np.ndarray], loss: str, batch_size: int
    ) -> dict[str, float]:
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
        return _means(totals)

    # -- inference ------------------------------------------------------------
    def predict(self, x: Any, sequence_length: Any = None, batch_size: int = 256) -> np.ndarray:
        """Outputs for ``x`` without dropout, in batches: class probabilities
        (the softmax of the logits, ``[B, C]`` or ``[B, T, C]``) for a
        cross-entropy model, the raw outputs otherwise. Steps past a row's
        length are zero."""
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
            steps: how many new steps to generate.
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
        raw = np.asarray(seed)
        squeeze = raw.ndim == 2
        s = float_array(
            "seed", raw[None] if squeeze else raw, self.dtype, 3, "[time, features] or [batch, time, features]"
        )
        if s.shape[1] < 1:
            raise ValueError(f"seed: expected at least one step, got shape {raw.shape}")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"steps: expected an integer >= 0, got {steps!r}")
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
        out = np.empty((batch, int(steps), feats), dtype=self.dtype)
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
            compiled = {"loss": self.loss, "metrics": list(self.metrics), "optimizer": self.optimizer.get_config()}
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
        leaves half a model behind."""
        if not self.built:
            raise ValueError("save: expected a built model (call build(input_size) or fit it), got an unbuilt one")
        from . import __version__

        config = {"format": FORMAT, "format_version": FORMAT_VERSION, "rnnrs_version": __version__, **self.get_config()}
        arrays: dict[str, np.ndarray] = {CONFIG_KEY: np.array(json.dumps(config))}
        arrays.update({f"weights/{k}": v for k, v in self.get_weights().items()})
        if self.optimizer is not None:
            arrays.update({f"optimizer/{k}": v for k, v in self.optimizer.get_state().items()})
        target = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(target))
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


def _means(totals: Mapping[str, Sequence[float]]) -> dict[str, float]:
    return {k: (s / c if c else 0.0) for k, (s, c) in totals.items()}


def _layer_from_config(config: Any, where: str) -> Layer:
    from ._serialize import cell_from_config

    if not isinstance(config, Mapping) or config.get("class_name") not in LAYERS:
        raise ValueError(f"{where}: expected a layer among {sorted(LAYERS)}, got {config!r}")
    kwargs = dict(config.get("config", {}))
    if config["class_name"] == "RNN":
        kwargs["cell"] = cell_from_config(kwargs.get("cell"), f"{where}.cell")
    try:
        return LAYERS[config["class_name"]](**kwargs)
    except TypeError as e:
        raise ValueError(f"{where}: expected arguments of {config['class_name']}, got {sorted(kwargs)} ({e})") from None


def load_model(path: Union[str, "os.PathLike[str]"]) -> Sequential:
    """Reads a model written by ``save``: its class, layers, weights, loss,
    metrics and optimizer (with its state, so training can resume).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not an rnnrs model (not an ``.npz``, no rnnrs
            configuration, an unknown format version or class, missing weights).
    """
    target = os.fspath(path)
    what = "path: expected an rnnrs model file (an .npz written by Model.save)"
    try:
        archive = np.load(target, allow_pickle=False)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception:  # not a NumPy file (NumPy reads unknown bytes as a pickle, which it refuses)
        raise ValueError(f"{what}, got {target!r}, which is not a NumPy .npz archive") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{what}, got {target!r}, which holds a single NumPy array, not an .npz archive")
    with archive:
        if CONFIG_KEY not in archive.files:
            shown = sorted(archive.files)[:8]
            raise ValueError(
                f"{what}, got {target!r}, an .npz archive without an rnnrs model configuration (keys {shown})"
            )
        try:
            config = json.loads(str(archive[CONFIG_KEY]))
        except (ValueError, TypeError) as e:
            raise ValueError(f"{what}, got {target!r} whose configuration is not valid JSON ({e})") from None
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ValueError(
                f"{what}, got {target!r} with format {config.get('format') if isinstance(config, dict) else None!r}"
            )
        version = config.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(
                f"path: expected an rnnrs model file of format version <= {FORMAT_VERSION}, got version {version!r} "
                f"(written by rnnrs {config.get('rnnrs_version')}; upgrade rnnrs)"
            )
        cls = MODELS.get(str(config.get("class_name")))
        if cls is None:
            raise ValueError(f"path: expected a model class among {sorted(MODELS)}, got {config.get('class_name')!r}")
        layers = [_layer_from_config(c, f"layers[{i}]") for i, c in enumerate(config.get("layers", []))]
        model = cls._from_layers(layers, str(config.get("name") or _default_name(cls.__name__)))
        model.build(config.get("input_size"))
        weights = {k[len("weights/") :]: archive[k] for k in archive.files if k.startswith("weights/")}
        expected = set(model.get_weights())
        if set(weights) != expected:
            raise ValueError(f"path: expected weights {sorted(expected)}, got {sorted(weights)} in {target!r}")
        model.set_weights(weights)
        compiled = config.get("compile")
        if compiled:
            optimizer = optimizer_from_config(compiled["optimizer"])
            state = {k[len("optimizer/") :]: archive[k] for k in archive.files if k.startswith("optimizer/")}
            if state:
                optimizer.set_state(state)
            model.compile(optimizer, compiled["loss"], compiled.get("metrics") or [])
        else:
            model.optimizer, model.loss, model.metrics = None, None, []
    return model
