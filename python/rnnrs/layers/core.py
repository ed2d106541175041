"""Feed-forward layers: ``Dense`` (the last axis of any array), ``Embedding``,
``Dropout`` and ``TimeDistributed``.

``Dense`` applies to the last axis of any array: ``[B, I]`` or, the chapter's
"reshape trick", every step of a ``[B, T, I]`` sequence at once (one GEMM on
the ``[B*T, I]`` view). ``Embedding`` maps integer ids to vectors.

Shape letters: ``B`` batch, ``T`` time, ``I`` input size, ``U`` units,
``V`` vocabulary size, ``D`` embedding size.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .. import _rnnrs
from .._validate import (
    as_dtype,
    check_shape,
    flag,
    float_array,
    integer_ids,
    numeric_array,
    positive_int,
    seed_value,
)
from ..cells import check_mapping, glorot_uniform
from ..saving.registry import register
from .base import Applied, Layer, LayerOutput, Spec, Weightless, float_spec, generator_state, restore_generator

DENSE_ACTIVATIONS = (None, "identity", "tanh", "relu", "sigmoid")


# -- activations (forward, and the derivative from the output) --------------


def _activate(name: Optional[str], z: np.ndarray) -> np.ndarray:
    """Applied in place on ``z`` (which is returned)."""
    if name == "tanh":
        np.tanh(z, out=z)
    elif name == "relu":
        np.maximum(z, 0, out=z)
    elif name == "sigmoid":  # stable for large |z|
        np.divide(1, 1 + np.exp(-np.clip(z, -80, 80)), out=z)
    return z


def _d_activation(name: Optional[str], y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """``dLoss/dz`` from ``dLoss/dy`` and the activation's output ``y``."""
    d: np.ndarray
    if name is None or name == "identity":
        d = dy
    elif name == "tanh":
        d = dy * (1 - y * y)
    elif name == "relu":
        d = dy * (y > 0)
    else:
        d = dy * (y * (1 - y))
    return d


@register("layer")
class Dense(Layer):
    """A fully connected layer on the last axis: ``y = act(x @ kernel + bias)``
    (``tf.layers.dense``).

    Args:
        units: output size ``U``.
        activation: None (linear, default), ``"identity"``, ``"tanh"``,
            ``"relu"`` or ``"sigmoid"``.
        use_bias: whether to add ``bias``.
        dtype: ``numpy.float32`` or ``numpy.float64``; None (default) adopts
            the dtype of the first inputs (or the model's).
        seed: seeds the Glorot-uniform kernel.
        name: the layer's name (weights are ``<name>/kernel``, ``<name>/bias`` in a model).

    Weights: ``kernel`` ``[I, U]``, ``bias`` ``[U]`` (zeros).
    Inputs ``[..., I]`` (e.g. ``[B, I]`` or ``[B, T, I]``), outputs ``[..., U]``.
    """

    default_name = "dense"

    def __init__(
        self,
        units: int,
        activation: Optional[str] = None,
        use_bias: bool = True,
        dtype: Any = None,
        seed: Optional[int] = None,
        name: Optional[str] = None,
    ) -> None:
        super().__init__(name)
        self.units = positive_int("units", units)
        if activation is not None and not isinstance(activation, str):
            raise TypeError(f"activation: expected one of {DENSE_ACTIVATIONS}, got {type(activation).__name__}")
        if activation not in DENSE_ACTIVATIONS:
            raise ValueError(f"activation: expected one of {DENSE_ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        if not isinstance(use_bias, (bool, np.bool_)):
            raise TypeError(f"use_bias: expected a bool, got {type(use_bias).__name__}")
        self.use_bias = flag("use_bias", use_bias)
        self._dtype: Optional[np.dtype[Any]] = None if dtype is None else as_dtype(dtype)
        self.seed = seed_value(seed)
        self._weights: dict[str, np.ndarray] = {}
        self.input_size: Optional[int] = None

    @property
    def dtype(self) -> Optional[np.dtype[Any]]:
        return self._dtype

    @property
    def built(self) -> bool:
        return self.input_size is not None

    def output_size(self) -> int:
        return self.units

    def _shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {"kernel": (input_size, self.units)}
        if self.use_bias:
            shapes["bias"] = (self.units,)
        return shapes

    def build(self, input_size: int, dtype: Any = None) -> None:
        input_size = positive_int("input_size", input_size)
        if self._dtype is None:
            self._dtype = as_dtype(np.float32 if dtype is None else dtype)
        if self.input_size is not None:
            if input_size != self.input_size:
                raise ValueError(
                    f"inputs: expected last axis {self.input_size} (the layer is built for it), got {input_size}"
                )
            return
        rng = np.random.default_rng(self.seed)
        weights = {"kernel": glorot_uniform(rng, (input_size, self.units), self._dtype)}
        if self.use_bias:
            weights["bias"] = np.zeros(self.units, dtype=self._dtype)
        self._weights = weights
        self.input_size = input_size

    def get_weights(self) -> dict[str, np.ndarray]:
        if not self.built:
            raise ValueError(
                "get_weights: expected a built layer (call build(input_size) or run it once), "
                f"got {self.name!r} unbuilt"
            )
        return {k: v.copy() for k, v in self._weights.items()}

    def set_weights(self, mapping: Mapping[str, Any]) -> None:
        check_mapping(mapping)
        dtype = self._dtype or np.dtype(np.float32)
        arrays = {}
        for k, v in mapping.items():
            raw = numeric_array(f"weights[{k!r}]", v, "a weight array")
            arrays[k] = float_array(f"weights[{k!r}]", raw, dtype, raw.ndim, "")
        input_size = self.input_size
        if input_size is None:
            kernel = arrays.get("kernel")
            if kernel is None or kernel.ndim != 2 or kernel.shape[1] != self.units:
                got = None if kernel is None else kernel.shape
                raise ValueError(
                    f"weights['kernel']: expected shape (input_size, {self.units}) to build the layer, got {got}"
                )
            input_size = int(kernel.shape[0])
        shapes = self._shapes(input_size)
        unknown = sorted(set(arrays) - set(shapes))
        if unknown:
            raise ValueError(f"mapping: expected names among {sorted(shapes)}, got unknown {unknown}")
        if self.input_size is None and set(arrays) != set(shapes):
            raise ValueError(f"mapping: expected all of {sorted(shapes)} to build the layer, got {sorted(arrays)}")
        for k, a in arrays.items():
            check_shape(f"weights[{k!r}]", a, shapes[k])
        self._dtype = dtype
        new = dict(self._weights)
        new.update({k: np.array(a, dtype=dtype, order="C", copy=True) for k, a in arrays.items()})
        self._weights = new  # new arrays: a pending backprop keeps the old ones
        self.input_size = input_size

    def get_config(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "dtype": None if self._dtype is None else self._dtype.name,
            "seed": self.seed,
            "name": self.name,
        }

    def weight_shapes(self, inputs: Sequence[Spec]) -> dict[str, tuple[int, ...]]:
        size = inputs[0].shape[-1]
        assert size is not None
        return self._shapes(int(size))

    def _output_spec(self, spec: Spec) -> Spec:
        dtype = float_spec(self, spec, tuple(range(2, 17)), "[batch, ..., input_size]")
        size = spec.shape[-1]
        assert size is not None
        self.build(int(size), dtype)
        return Spec(spec.shape[:-1] + (self.units,), dtype)

    def _prepare(self, inputs: Any) -> np.ndarray:
        raw = (
            inputs if isinstance(inputs, np.ndarray) else numeric_array("inputs", inputs, "an array [..., input_size]")
        )
        dtype = self._dtype
        if dtype is None:
            dtype = raw.dtype if raw.dtype in (np.float32, np.float64) else np.dtype(np.float32)
        x = float_array("inputs", raw, dtype, max(raw.ndim, 1), "[..., input_size]")
        if x.ndim < 1 or x.shape[-1] < 1:
            raise ValueError(f"inputs: expected an array [..., input_size] with input_size >= 1, got shape {x.shape}")
        self.build(x.shape[-1], dtype)
        return x

    def _forward(self, x: np.ndarray, lengths: Optional[np.ndarray], training: bool, state: Any = None) -> LayerOutput:
        kernel = self._weights["kernel"]
        bias = self._weights.get("bias")
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])  # [N, I], the reshape trick
        # The products run in the extension (its AVX-512 GEMM, the GIL released):
        # for a large vocabulary's projection they are most of a training step.
        z = _rnnrs.affine(x2, kernel, bias)
        y = _activate(self.activation, z)
        activation = self.activation

        def backward(d_outputs: np.ndarray, need_d_inputs: bool) -> tuple[Optional[np.ndarray], dict[str, np.ndarray]]:
            dz = _d_activation(activation, y, d_outputs.reshape(-1, kernel.shape[1]))
            if dz.dtype != kernel.dtype:
                dz = dz.astype(kernel.dtype)
            grads = {"kernel": _rnnrs.affine(x2.T, dz)}
            if bias is not None:
                grads["bias"] = dz.sum(axis=0)
            d_x = _rnnrs.affine(dz, kernel.T).reshape(x.shape) if need_d_inputs else None
            return d_x, grads

        keeps = activation not in (None, "identity")  # the derivatives of the others read y
        return LayerOutput(y.reshape(lead + (kernel.shape[1],)), None, backward, keeps)


@register("layer")
class Embedding(Layer):
    """Integer ids → vectors (``tf.nn.embedding_lookup`` on an ``embeddings`` matrix).

    Args:
        input_dim: vocabulary size ``V``; ids are in ``[0, V)``.
        output_dim: vector size ``D``.
        dtype: ``numpy.float32`` (default) or ``numpy.float64``.
        seed: seeds the initial vectors, uniform in ``[-0.05, 0.05]`` (Keras' default).
        mask_zero: id 0 is padding: inputs must be ``[B, T]`` and each row's
            sequence length is the position of its last non-zero id plus one
            (0 for a row of zeros), so later layers never read the padding as
            data. Padding must come at the end of each row: a 0 before a
            later non-zero id is a ``ValueError`` naming its position (pad
            with ``pad_sequences(..., padding="post")``). When lengths also
            arrive with the ids (``sequence_length``), each row takes the
            smaller of the two (and only zeros before that length are refused).
            ``input_dim`` counts the padding id (vocabulary size + 1).
        name: the layer's name.

    Weights: ``embeddings`` ``[V, D]``. Inputs: integer ids ``[...]`` (e.g.
    ``[B, T]``); outputs ``[..., D]``, carrying the lengths (given or, with
    ``mask_zero``, derived). The gradient of a row is the sum of the output
    gradients of every position holding its id.
    """

    default_name = "embedding"

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        name: Optional[str] = None,
        mask_zero: bool = False,
    ) -> None:
        super().__init__(name)
        self.input_dim = positive_int("input_dim", input_dim)
        self.output_dim = positive_int("output_dim", output_dim)
        self._dtype = as_dtype(dtype)
        self.seed = seed_value(seed)
        if not isinstance(mask_zero, (bool, np.bool_)):
            raise TypeError(f"mask_zero: expected a bool, got {type(mask_zero).__name__} {mask_zero!r}")
        self.mask_zero = flag("mask_zero", mask_zero)
        self._weights: dict[str, np.ndarray] = {}

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype

    @property
    def built(self) -> bool:
        return bool(self._weights)

    def output_size(self) -> int:
        return self.output_dim

    def build(self, input_size: int = 0, dtype: Any = None) -> None:
        """Creates ``embeddings`` (``input_size`` is ignored: ids have no feature axis)."""
        if not self._weights:
            rng = np.random.default_rng(self.seed)
            table = rng.uniform(-0.05, 0.05, size=(self.input_dim, self.output_dim)).astype(self._dtype)
            self._weights = {"embeddings": table}

    def get_weights(self) -> dict[str, np.ndarray]:
        if not self.built:
            raise ValueError(
                f"get_weights: expected a built layer (call build() or run it once), got {self.name!r} unbuilt"
            )
        return {k: v.copy() for k, v in self._weights.items()}

    def set_weights(self, mapping: Mapping[str, Any]) -> None:
        check_mapping(mapping)
        unknown = sorted(set(mapping) - {"embeddings"})
        if unknown:
            raise ValueError(f"mapping: expected names among ['embeddings'], got unknown {unknown}")
        if "embeddings" in mapping:
            table = float_array(
                "weights['embeddings']", mapping["embeddings"], self._dtype, 2, "[input_dim, output_dim]"
            )
            check_shape("weights['embeddings']", table, (self.input_dim, self.output_dim))
            self._weights = {"embeddings": np.array(table, dtype=self._dtype, order="C", copy=True)}
        elif not self.built:
            raise ValueError("mapping: expected 'embeddings' to build the layer, got an empty mapping")

    def get_config(self) -> dict[str, Any]:
        return {
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "dtype": self._dtype.name,
            "seed": self.seed,
            "name": self.name,
            "mask_zero": self.mask_zero,
        }

    def ids(self, name: str, value: Any) -> np.ndarray:
        """``value`` validated as int64 ids in ``[0, input_dim)``: integers,
        or whole-valued floats; a float that is not a whole number raises
        ``ValueError`` ("non-integer id 1.5 at (0, 0)"), bools, complex
        numbers and strings ``TypeError``."""
        return integer_ids(name, value, self.input_dim, "ids")

    def weight_shapes(self, inputs: Sequence[Spec]) -> dict[str, tuple[int, ...]]:
        return {"embeddings": (self.input_dim, self.output_dim)}

    def _output_spec(self, spec: Spec) -> Spec:
        if spec.dtype.kind not in "iu":
            raise TypeError(f"inputs: expected integer ids (an Input with dtype='int64'), got {spec.dtype.name}")
        if self.mask_zero and len(spec.shape) != 2:
            raise ValueError(
                f"inputs: expected ids [batch, time] (mask_zero=True derives each row's length), got shape {spec.shape}"
            )
        self.build()
        return Spec(spec.shape + (self.output_dim,), self._dtype)

    def _prepare(self, inputs: Any) -> np.ndarray:
        self.build()
        x = self.ids("inputs", inputs)
        if self.mask_zero and x.ndim != 2:
            raise ValueError(
                f"inputs: expected ids [batch, time] (mask_zero=True derives each row's length), got shape {x.shape}"
            )
        return x

    def _apply(
        self,
        inputs: Sequence[np.ndarray],
        lengths: Sequence[Optional[np.ndarray]],
        training: bool,
        state: Any = None,
    ) -> Applied:
        """With ``mask_zero``, the output carries the lengths derived from
        the ids (the element-wise minimum with given lengths)."""
        if not self.mask_zero:
            return super()._apply(inputs, lengths, training, state)
        return super()._apply(inputs, [mask_zero_lengths(inputs[0], lengths[0])], training, state)

    def _forward(self, x: np.ndarray, lengths: Optional[np.ndarray], training: bool, state: Any = None) -> LayerOutput:
        table = self._weights["embeddings"]
        flat = x.reshape(-1)
        y = table[flat].reshape(x.shape + (self.output_dim,))
        num, dim = table.shape

        def backward(d_outputs: np.ndarray, need_d_inputs: bool) -> tuple[Optional[np.ndarray], dict[str, np.ndarray]]:
            d_rows = np.asarray(d_outputs, dtype=table.dtype).reshape(-1, dim)
            d_table = _rnnrs.scatter_add_rows(np.asarray(flat, dtype=np.int64), d_rows, num)
            return None, {"embeddings": d_table}

        return LayerOutput(y, None, backward, keeps_outputs=False)


def mask_zero_lengths(ids: np.ndarray, given: Optional[np.ndarray]) -> np.ndarray:
    """Each row's length for ``Embedding(mask_zero=True)``: the position of its
    last non-zero id plus one, the smaller of that and ``given`` when given;
    ``ValueError`` for an id 0 before that length (padding in the middle)."""
    if ids.ndim != 2:
        raise ValueError(
            f"inputs: expected ids [batch, time] (mask_zero=True derives each row's length), got shape {ids.shape}"
        )
    batch, time = ids.shape
    nonzero = ids != 0
    any_nonzero = nonzero.any(axis=1)
    lengths = np.where(any_nonzero, time - np.argmax(nonzero[:, ::-1], axis=1), 0).astype(np.int64)
    if given is not None:
        lengths = np.minimum(lengths, given)
    inside = np.arange(time)[None, :] < lengths[:, None]
    misplaced = inside & ~nonzero
    if misplaced.any():
        row, step = (int(i) for i in np.argwhere(misplaced)[0])
        raise ValueError(
            f"inputs: expected padding (id 0) only at the end of each row with mask_zero=True, got id 0 at "
            f'(row {row}, step {step}) before a non-zero id; pad at the end (pad_sequences(..., padding="post"))'
        )
    return lengths


def _noise_shape(value: Any) -> Optional[tuple[Optional[int], ...]]:
    """``noise_shape``: None, or a tuple/list of ints >= 1 and None."""
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or not value:
        raise TypeError(f"noise_shape: expected None or a non-empty tuple of ints >= 1 and None, got {value!r}")
    dims: list[Optional[int]] = []
    for d in value:
        if d is None:
            dims.append(None)
        elif isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"noise_shape: expected ints >= 1 and None, got {type(d).__name__} {d!r} in {value!r}")
        elif d < 1:
            raise ValueError(f"noise_shape: expected ints >= 1 and None, got {d} in {tuple(value)!r}")
        else:
            dims.append(int(d))
    return tuple(dims)


@register("layer")
class Dropout(Weightless):
    """Inverted dropout (``keras.layers.Dropout``): when called with
    ``training=True`` each entry is zeroed with probability ``rate`` and the
    rest scaled by ``1 / (1 - rate)``; otherwise the identity.

    Args:
        rate: the probability of dropping an entry, in ``[0, 1)``.
        noise_shape: None (default; one draw per entry), or the shape of
            the keep/drop mask, broadcast over the inputs (Keras): one entry
            per input axis, batch included, each 1, the input's size, or None
            for the input's size; e.g. ``(None, 1, None)`` drops the same
            features at every step of a ``[B, T, F]`` sequence.
        seed: seeds the layer's ``numpy.random.Generator``, made once at
            construction; each training call draws its mask from it (so a
            seeded layer repeats the same sequence of masks).
        name: the layer's name.

    Weights: none. Inputs ``[B, ...]`` floats (the dtype of the first inputs
    is adopted); outputs of the same shape; lengths pass through.
    """

    default_name = "dropout"
    _DRAWS_MASKS = True  # its masks come from self._rng (see rnnrs.trainers.shard_rng)

    def __init__(
        self,
        rate: float,
        noise_shape: Optional[Sequence[Optional[int]]] = None,
        seed: Optional[int] = None,
        name: Optional[str] = None,
    ) -> None:
        super().__init__(name)
        if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, float, np.integer, np.floating)):
            raise TypeError(f"rate: expected a number in [0, 1), got {type(rate).__name__} {rate!r}")
        if not 0 <= float(rate) < 1:  # also refuses NaN
            raise ValueError(f"rate: expected a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.noise_shape = _noise_shape(noise_shape)
        self.seed = seed_value(seed)
        self._rng = np.random.default_rng(self.seed)
        self._dtype: Optional[np.dtype[Any]] = None

    @property
    def dtype(self) -> Optional[np.dtype[Any]]:
        return self._dtype

    def build(self, input_size: int, dtype: Any = None) -> None:
        if self._dtype is None and dtype is not None:
            self._dtype = as_dtype(dtype)
        self._size = int(input_size)

    def get_config(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "noise_shape": None if self.noise_shape is None else list(self.noise_shape),
            "seed": self.seed,
            "name": self.name,
        }

    def get_state(self) -> dict[str, np.ndarray]:
        """The position of the mask generator (``{"generator": 6 uint64}``)."""
        return {"generator": generator_state(self._rng)}

    def set_state(self, mapping: Mapping[str, Any]) -> None:
        check_mapping(mapping)
        unknown = sorted(set(mapping) - {"generator"})
        if unknown:
            raise ValueError(f"mapping: expected names among ['generator'], got unknown {unknown}")
        if "generator" in mapping:
            restore_generator("state['generator']", self._rng, mapping["generator"])

    def _check_noise_shape(self, shape: tuple[Optional[int], ...]) -> tuple[int, ...]:
        """The mask's shape for inputs of ``shape`` (None entries unknown)."""
        noise = self.noise_shape
        if noise is None:
            return tuple(d or 1 for d in shape)
        if len(noise) != len(shape):
            raise ValueError(
                f"noise_shape: expected {len(shape)} entries (one per input axis, batch included), got {noise!r}"
            )
        out = []
        for n, d in zip(noise, shape):
            if n is not None and n != 1 and d is not None and n != d:
                raise ValueError(f"noise_shape: expected entries 1, None or the input's size {shape}, got {noise!r}")
            out.append(d if n is None else n)
        return tuple(d or 1 for d in out)

    def _output_spec(self, spec: Spec) -> Spec:
        dtype = float_spec(self, spec, tuple(range(1, 17)), "[batch, ...]")
        self._check_noise_shape(spec.shape)
        self.build(int(spec.shape[-1] or 0), dtype)
        return spec

    def _prepare(self, inputs: Any) -> np.ndarray:
        raw = inputs if isinstance(inputs, np.ndarray) else numeric_array("inputs", inputs, "an array [batch, ...]")
        dtype = self._dtype
        if dtype is None:
            dtype = raw.dtype if raw.dtype in (np.float32, np.float64) else np.dtype(np.float32)
        x = float_array("inputs", raw, dtype, max(raw.ndim, 1), "[batch, ...]")
        self.build(x.shape[-1], dtype)
        return x

    def _forward(self, x: np.ndarray, lengths: Optional[np.ndarray], training: bool, state: Any = None) -> LayerOutput:
        if not training or self.rate == 0:
            return LayerOutput(x.copy(), None, lambda d, need: (d.copy() if need else None, {}))
        shape = self._check_noise_shape(x.shape)
        keep = 1.0 - self.rate
        mask = (self._rng.random(shape) >= self.rate).astype(x.dtype) / x.dtype.type(keep)
        y = x * mask

        def backward(d_outputs: np.ndarray, need_d_inputs: bool) -> tuple[Optional[np.ndarray], dict[str, np.ndarray]]:
            return (d_outputs * mask if need_d_inputs else None), {}

        return LayerOutput(y, None, backward)


#: The layers TimeDistributed applies (one input, one output, no recurrence).
_PER_STEP = ("Dense", "Dropout", "Embedding", "TimeDistributed")


@register("layer")
class TimeDistributed(Layer):
    """Applies a layer to every step of a sequence (``keras.layers.TimeDistributed``):
    ``[B, T, ...]`` is read as ``[B*T, ...]``, given to ``layer``, and the
    outputs reshaped to ``[B, T, ...]``.

    Args:
        layer: a one-input, one-output layer without recurrence:
            :class:`Dense`, :class:`Dropout`, :class:`Embedding` (ids
            ``[B, T, K]``) or another ``TimeDistributed``; ``TypeError`` for
            ``RNN``, ``Bidirectional`` and merge layers.
        name: the layer's name (default ``"time_distributed"``).

    Weights: ``layer``'s, by their own names (no prefix). Lengths pass
    through (``layer`` sees none: each step is a row of its own).
    """

    default_name = "time_distributed"

    def __init__(self, layer: Layer, name: Optional[str] = None) -> None:
        super().__init__(name)
        if not isinstance(layer, Layer) or type(layer).__name__ not in _PER_STEP:
            kind = type(layer).__name__
            why = " (a recurrent layer reads whole sequences itself)" if kind in ("RNN", "Bidirectional") else ""
            raise TypeError(
                f"layer: expected a one-input, one-output layer without recurrence ({', '.join(_PER_STEP)}), "
                f"got {kind}{why}"
            )
        self.layer = layer

    @property
    def dtype(self) -> Optional[np.dtype[Any]]:
        return self.layer.dtype

    @property
    def built(self) -> bool:
        return self.layer.built

    def build(self, input_size: int, dtype: Any = None) -> None:
        self.layer.build(input_size, dtype)

    def output_size(self) -> int:
        return self.layer.output_size()

    def get_weights(self) -> dict[str, np.ndarray]:
        return self.layer.get_weights()

    def set_weights(self, mapping: Mapping[str, Any]) -> None:
        self.layer.set_weights(mapping)

    def get_state(self) -> dict[str, np.ndarray]:
        return self.layer.get_state()

    def set_state(self, mapping: Mapping[str, Any]) -> None:
        self.layer.set_state(mapping)

    def get_config(self) -> dict[str, Any]:
        return {
            "layer": {"class_name": type(self.layer).__name__, "config": self.layer.get_config()},
            "name": self.name,
        }

    def __repr__(self) -> str:
        return f"TimeDistributed({self.layer!r}, name={self.name!r})"

    def weight_shapes(self, inputs: Sequence[Spec]) -> dict[str, tuple[int, ...]]:
        spec = inputs[0]
        return self.layer.weight_shapes([Spec((None,) + spec.shape[2:], spec.dtype)])

    def _output_spec(self, spec: Spec) -> Spec:
        if len(spec.shape) < 3 and not (spec.dtype.kind in "iu" and len(spec.shape) == 2):
            raise ValueError(f"inputs: expected a sequence [batch, time, ...], got shape {spec.shape}")
        inner = self.layer.compute_output_spec([Spec((None,) + spec.shape[2:], spec.dtype)])
        out = inner[0]
        return Spec((None, spec.shape[1]) + out.shape[1:], out.dtype)

    def _prepare(self, inputs: Any) -> np.ndarray:
        raw = inputs if isinstance(inputs, np.ndarray) else numeric_array("inputs", inputs, "[batch, time, ...]")
        if raw.ndim < 2:
            raise ValueError(f"inputs: expected a sequence [batch, time, ...], got shape {raw.shape}")
        batch, time = raw.shape[:2]
        flat = self.layer._prepare(raw.reshape((batch * time,) + raw.shape[2:]))
        return flat.reshape((batch, time) + flat.shape[1:])

    def _forward(self, x: np.ndarray, lengths: Optional[np.ndarray], training: bool, state: Any = None) -> LayerOutput:
        if x.ndim < 2:
            raise ValueError(f"inputs: expected a sequence [batch, time, ...], got shape {x.shape}")
        batch, time = x.shape[:2]
        out = self.layer._apply([x.reshape((batch * time,) + x.shape[2:])], [None], training)
        y = out.outputs[0]
        inner_backward = out.backward

        def backward(d_outputs: np.ndarray, need_d_inputs: bool) -> tuple[Optional[np.ndarray], dict[str, np.ndarray]]:
            d_x, d_w = inner_backward([d_outputs.reshape(y.shape)], [need_d_inputs])
            d = d_x[0]
            return (None if d is None else d.reshape(x.shape)), d_w

        return LayerOutput(y.reshape((batch, time) + y.shape[1:]), None, backward)
