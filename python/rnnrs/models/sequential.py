"""``Sequential``: a stack of layers, each reading the previous one's outputs
(the special case of :class:`rnnrs.Model` whose graph is a chain, built
lazily from the first data it sees)."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from .._validate import (
    bounded_int,
    finite_number,
    float_array,
    lengths_array,
    numeric_array,
    positive_int,
    seed_value,
)
from ..layers import Embedding, Layer
from ..layers.base import IDS, Spec
from ..losses import Loss
from ..saving.registry import register
from ..seq2seq._common import Uniforms, sample_ids
from ..trainers.trainer import Arrays, Forward, Lengths
from .model import (
    Model,
    _layer_kind,
    _layer_params,
    _shape_text,
    check_distinct_weights,
    name_layers,
)


@register("model")
class Sequential(Model):
    """A stack of layers, each reading the previous one's outputs.

    Args:
        layers: the layers, first to last (an ``Embedding`` may only come
            first; every layer must have one input and one output). Layer
            names must be unique: a taken name gets a suffix (``dense``,
            ``dense_1``, ...).
        name: the model's name.

    Call :meth:`compile` before :meth:`fit` / :meth:`evaluate` (the
    ready-made models are compiled with Adam(0.001) and their loss).
    """

    def __init__(self, layers: Optional[Sequence[Layer]] = None, name: Optional[str] = None) -> None:
        self._init_model(name)
        self.layers: list[Layer] = []
        self.input_size: Optional[int] = None
        self._weight_keys: list[list[tuple[str, str]]] = []
        self._specs: list[Spec] = []
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
        check_distinct_weights([*self.layers, layer])
        name_layers([*self.layers, layer])
        self.layers.append(layer)
        self._specs = []

    @property
    def output_names(self) -> list[str]:  # type: ignore[override]
        return [self.layers[-1].name if self.layers else "output"]

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

    def _chain(self, input_size: Optional[int]) -> list[Spec]:
        """Each layer's output spec for inputs of ``input_size`` features
        (building the layers); ``ValueError`` naming ``layers`` when they do
        not connect."""
        spec = Spec((None, None), IDS) if self._takes_ids() else Spec((None, None, input_size), self.dtype)
        specs = []
        for layer in self.layers:
            try:
                outs = layer.compute_output_spec([spec])
            except (ValueError, TypeError) as e:
                hint = " (an RNN without return_sequences=True before it?)" if len(spec.shape) == 2 else ""
                raise type(e)(f"layers: layer {layer.name!r} cannot follow the layer before it{hint}: {e}") from None
            if len(outs) != 1:
                raise ValueError(
                    f"layers: expected layers with one output in a Sequential, got {len(outs)} from {layer.name!r} "
                    "(use rnnrs.Model for several)"
                )
            spec = outs[0]
            specs.append(spec)
        return specs

    def build(self, input_size: Optional[int] = None) -> None:
        """Creates every layer's weights for inputs with ``input_size`` features
        (ignored, and may be None, when the first layer is an ``Embedding``)."""
        if not self.layers:
            raise ValueError("layers: expected at least one layer, got an empty model")
        size = None if self._takes_ids() else positive_int("input_size", input_size)
        dtype = self.dtype
        self._specs = self._chain(size)
        for layer in self.layers:
            if layer.dtype is not None and layer.dtype != dtype:
                raise ValueError(
                    f"layers: expected one dtype ({dtype.name}) for every layer, got {layer.dtype} in {layer.name!r}"
                )
        self.input_size = size
        self._weight_keys = [[(f"{layer.name}/{k}", k) for k in layer.get_weights()] for layer in self.layers]

    def output_size(self) -> int:
        """The last layer's output size (classes for a classifier)."""
        if not self.layers:
            raise ValueError("layers: expected at least one layer, got an empty model")
        if self._specs:
            last = self._specs[-1].shape[-1]
            assert last is not None
            return int(last)
        return self.layers[-1].output_size()

    def _output_ndim(self, input_ndim: int) -> int:
        if not self.layers:
            return input_ndim
        if not self._specs:
            self._specs = self._chain(self.input_size)
        return len(self._specs[-1].shape)

    # -- data ---------------------------------------------------------------
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

    def _data(self, name: str, x: Any, sequence_length: Any, length_name: str) -> tuple[Arrays, Lengths]:
        arr = self._inputs(name, x)
        if not self._weight_keys:  # not built by the model yet (its layers may be)
            self.build(None if self._takes_ids() else arr.shape[2])
        try:
            lengths = lengths_array(sequence_length, arr.shape[0], arr.shape[1])
        except (ValueError, TypeError) as e:
            raise type(e)(str(e).replace("sequence_length", length_name, 1)) from None
        return [arr], [lengths]

    def _output_shapes(self, xs: Arrays, lengths: Lengths) -> list[tuple[int, ...]]:
        x = xs[0]
        ndim = self._output_ndim(x.ndim)
        size = self.output_size()
        return [(x.shape[0], size) if ndim == 2 else (x.shape[0], x.shape[1], size)]

    # -- passes ---------------------------------------------------------------
    def _forward(self, xs: Arrays, lengths: Lengths, training: bool, states: Any = None) -> Forward:
        h, ls = xs[0], lengths[0]
        finals: list[Any] = []
        tape = []
        for i, layer in enumerate(self.layers):
            applied = layer._apply([h], [ls], training, None if states is None else states[i])
            if len(applied.outputs) != 1:
                raise ValueError(
                    f"layers: expected layers with one output in a Sequential, got {len(applied.outputs)} from "
                    f"{layer.name!r} (use rnnrs.Model for several)"
                )
            h, ls = applied.outputs[0], applied.lengths[0]
            finals.append(applied.state)
            tape.append(applied)
        return Forward([h], [ls], finals, (xs, tape))

    def _backward_all(
        self, fwd: Forward, d_outputs: Sequence[Optional[np.ndarray]], want_inputs: bool
    ) -> tuple[dict[str, np.ndarray], list[Optional[np.ndarray]]]:
        grads: dict[str, np.ndarray] = {}
        d: Optional[np.ndarray] = d_outputs[0]
        xs, tape = fwd.tape
        for i in reversed(range(len(self.layers))):
            need = i > 0 or (want_inputs and xs[0].dtype.kind == "f")
            d_in, weights = tape[i].backward([d], [need])
            d = d_in[0]
            name = self.layers[i].name
            for k, v in weights.items():
                grads[f"{name}/{k}"] = v
        return grads, [d if want_inputs else None]

    # -- description ---------------------------------------------------------
    def _summary_rows(self) -> list[tuple[str, str, str]]:
        if not self.layers:
            raise ValueError("summary: expected a built model, got one without layers (add layers, then build it)")
        if not self.built:
            raise ValueError(
                f"summary: expected a built model, got model {self.name!r} without weights yet "
                "(call build(input_size), or fit / predict it on data first)"
            )
        if not self._specs:
            self._specs = self._chain(self.input_size)
        return [
            (f"{layer.name} ({_layer_kind(layer)})", _shape_text(spec.shape), f"{_layer_params(layer):,}")
            for layer, spec in zip(self.layers, self._specs)
        ]

    # -- generation -----------------------------------------------------------
    def generate(
        self,
        seed: Any,
        steps: int,
        window: Optional[int] = None,
        temperature: Optional[float] = None,
        sample_seed: Optional[int] = None,
    ) -> np.ndarray:
        """Runs the model forward from a seed sequence, feeding each prediction
        back as the next input (the chapter's "creative RNN").

        Two kinds of model:

        - reading float features: its outputs must be sequences with as many
          features as its inputs (e.g. a :class:`SequenceRegressor` trained to
          predict the next step); each output step is the next input.
        - starting with an ``Embedding`` (token ids in, e.g. a character-level
          language model): its outputs must be sequences of one score per id
          of the vocabulary (``[B, T, V]``, ``V`` the Embedding's
          ``input_dim``): logits, or probabilities when the model is compiled
          with a cross-entropy object with ``from_logits=False``. Each next id
          is SAMPLED from ``softmax(logits / temperature)``: with ``u`` the
          uniforms ``numpy.random.default_rng(sample_seed).random((steps,
          B))``, row ``b`` at step ``k`` takes the smallest id whose
          cumulative probability exceeds ``u[k, b]`` (computed in float64;
          the rule of ``rnnrs.seq2seq.SampleEmbeddingHelper``), so a
          ``sample_seed`` makes the text reproducible.

        Args:
            seed: float models: ``[T0, F]`` or ``[B, T0, F]``; id models:
                ``[T0]`` or ``[B, T0]`` ids in ``[0, V)`` (``T0 >= 1``).
            steps: how many new steps to generate (an integer >= 0).
            window: None (default): stateful — the seed is read once and every
                new step continues from the recurrent state; an int: the
                chapter's loop — each step re-reads the last ``window`` values
                from a zero state (as the model saw during training).
            temperature: id models only: a number >= 0 (default 1.0; 0 picks
                the most likely id, the first on ties; below 1 sharper, above
                1 flatter). Must be None for a float model.
            sample_seed: id models only: None or an integer >= 0 seeding the
                sampling (None: a fresh, unpredictable sequence).

        Returns:
            The ``steps`` generated values (the seed is not repeated): float
            models ``[steps, F]`` or ``[B, steps, F]``; id models int64
            ``[steps]`` or ``[B, steps]``.

        Raises:
            ValueError / TypeError: naming ``seed`` (shape, ids outside the
                vocabulary), ``steps``, ``window``, ``temperature`` (negative,
                not finite, or given to a float model), ``sample_seed``, or
                ``generate`` when the model's outputs cannot be fed back.
        """
        ids = self._takes_ids()
        steps = bounded_int("steps", steps, 0)
        if window is not None:
            window = positive_int("window", window)
        if ids:
            s, squeeze, pick = self._id_generation(seed, steps, temperature, sample_seed)
        else:
            if temperature is not None or sample_seed is not None:
                which = "temperature" if temperature is not None else "sample_seed"
                raise ValueError(
                    f"{which}: expected None for a model reading float features (its outputs are fed back as "
                    "they are; sampling is for models starting with an Embedding), got "
                    f"{temperature if temperature is not None else sample_seed!r}"
                )
            s, squeeze = self._float_seed(seed)

            def pick(last: np.ndarray, k: int) -> np.ndarray:
                return last

        batch, t0 = s.shape[:2]
        try:
            out = np.empty((batch, steps) + s.shape[2:], dtype=s.dtype)
        except (ValueError, MemoryError):  # more elements than an array can hold, or than memory
            raise ValueError(f"steps: expected a number of steps whose outputs fit in memory, got {steps}") from None
        if steps == 0:
            return out[0] if squeeze else out
        if window is None:
            fwd = self._forward([s], [None], False)
            out[:, 0] = pick(fwd.outputs[0][:, -1], 0)
            states = fwd.states
            for k in range(1, int(steps)):
                fwd = self._forward([out[:, k - 1 : k]], [None], False, states)
                out[:, k] = pick(fwd.outputs[0][:, -1], k)
                states = fwd.states
        else:
            buf = np.concatenate([s, out], axis=1)  # [B, T0 + steps, ...]
            for k in range(int(steps)):
                end = t0 + k
                fwd = self._forward([buf[:, max(0, end - window) : end]], [None], False)
                buf[:, end] = pick(fwd.outputs[0][:, -1], k)
            out = buf[:, t0:]
        return out[0] if squeeze else out

    def _float_seed(self, seed: Any) -> tuple[np.ndarray, bool]:
        """A float model's seed as ``[B, T0, F]`` and whether it was given without a batch axis."""
        raw = numeric_array("seed", seed, "[time, features] or [batch, time, features]")
        squeeze = raw.ndim == 2
        s = float_array(
            "seed", raw[None] if squeeze else raw, self.dtype, 3, "[time, features] or [batch, time, features]"
        )
        if s.shape[1] < 1:
            raise ValueError(f"seed: expected at least one step, got shape {raw.shape}")
        (s,), _ = self._data("seed", s, None, "sequence_length")
        if self._output_ndim(3) != 3 or self.output_size() != s.shape[2]:
            raise ValueError(
                f"generate: expected a model whose outputs are sequences of {s.shape[2]} features (its inputs' size), "
                "got outputs of "
                f"{'size ' + str(self.output_size()) if self._output_ndim(3) == 3 else 'one vector per sequence'}"
            )
        return s, squeeze

    def _id_generation(
        self, seed: Any, steps: int, temperature: Any, sample_seed: Any
    ) -> tuple[np.ndarray, bool, Callable[[np.ndarray, int], np.ndarray]]:
        """An id model's seed ``[B, T0]``, whether it had no batch axis, and
        the sampler ``pick(last step's outputs [B, V], step) -> ids [B]``."""
        first = self.layers[0]
        assert isinstance(first, Embedding)
        vocab = first.input_dim
        raw = first.ids("seed", seed)
        if raw.ndim not in (1, 2):
            raise ValueError(f"seed: expected ids [time] or [batch, time], got shape {raw.shape}")
        squeeze = raw.ndim == 1
        s = raw[None] if squeeze else raw
        if s.shape[1] < 1:
            raise ValueError(f"seed: expected at least one step, got shape {raw.shape}")
        temp = 1.0 if temperature is None else finite_number("temperature", temperature)
        if temp < 0:
            raise ValueError(f"temperature: expected a finite number >= 0, got {temperature}")
        sample_seed = seed_value(sample_seed, "sample_seed")
        (s,), _ = self._data("seed", s, None, "sequence_length")
        if self._output_ndim(2) != 3 or self.output_size() != vocab:
            got = f"size {self.output_size()}" if self._output_ndim(2) == 3 else "one vector per sequence"
            raise ValueError(
                f"generate: expected a model whose outputs are sequences of {vocab} scores (one per id of the "
                f"Embedding's vocabulary), got outputs of {got}"
            )
        uniforms = Uniforms(sample_seed, s.shape[0])
        probabilities_out = isinstance(self.loss, Loss) and not getattr(self.loss, "from_logits", True)

        def pick(last: np.ndarray, k: int) -> np.ndarray:
            scores = last.astype(np.float64)
            if probabilities_out:
                with np.errstate(divide="ignore"):
                    scores = np.log(np.clip(scores, 0.0, None))
            if temp == 0:
                picked: np.ndarray = np.argmax(scores, axis=-1).astype(np.int64)
                return picked
            chosen: np.ndarray = sample_ids(scores, uniforms.step(k), temp).astype(np.int64)
            return chosen

        return s, squeeze, pick

    # -- files ----------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Everything but the weights, JSON-serialisable."""
        return {
            "class_name": type(self).__name__,
            "name": self.name,
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in self.layers],
            "input_size": self.input_size,
            "compile": self._compiled_config(),
        }

    @classmethod
    def _from_layers(cls, layers: list[Layer], name: str) -> "Sequential":
        model = cls.__new__(cls)
        Sequential.__init__(model, layers, name)
        return model

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, layers={[layer.name for layer in self.layers]})"
