"""Layers with forward and backward passes: ``Dense``, ``Embedding`` and ``RNN``.

A layer holds its weights as NumPy arrays (``get_weights`` / ``set_weights``,
copies in and out, like the cells) and is called like a function::

    y = dense(x)                                   # forward only
    y, backprop = dense(x, return_backprop=True)   # forward, then
    grads = backprop(d_y)                          # LayerGradients(inputs, weights)

``Dense`` applies to the last axis of any array: ``[B, I]`` or, the chapter's
"reshape trick", every step of a ``[B, T, I]`` sequence at once (one GEMM on
the ``[B*T, I]`` view). ``Embedding`` maps integer ids to vectors. ``RNN``
turns any :class:`rnnrs.RNNCell` into a layer: the whole sequence (``[B, T, H]``,
``return_sequences=True``) or the output at each row's last valid step
(``[B, H]``; for a plain cell that is its final state, for an
``LSTMStateTuple`` its ``h``, for a ``MultiRNNCell`` the last layer's).

Shape letters: ``B`` batch, ``T`` time, ``I`` input size, ``U`` units,
``V`` vocabulary size, ``D`` embedding size, ``H`` the cell's output size.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Mapping, NamedTuple, Optional

import numpy as np

from ._validate import (
    as_dtype,
    check_shape,
    flag,
    float_array,
    integer_ids,
    lengths_array,
    numeric_array,
    positive_int,
    seed_value,
)
from .cells import RNNCell, build_for_inputs, check_mapping, glorot_uniform
from .rnn import Backprop, dynamic_rnn

#: ``backward(d_outputs, need_d_inputs) -> (d_inputs or None, d_weights)``
LayerBackward = Callable[[np.ndarray, bool], "tuple[Optional[np.ndarray], dict[str, np.ndarray]]"]

DENSE_ACTIVATIONS = (None, "identity", "tanh", "relu", "sigmoid")


class LayerGradients(NamedTuple):
    """What a layer's :class:`LayerBackprop` returns.

    Attributes:
        inputs: ``dLoss/d inputs``, shaped like the inputs (None for
            ``Embedding``, whose inputs are integer ids).
        weights: ``dLoss/d weight`` for exactly the keys of ``get_weights()``.
    """

    inputs: Optional[np.ndarray]
    weights: dict[str, np.ndarray]


class LayerBackprop:
    """Backpropagation through one finished forward pass of a layer. Call it
    with ``d_outputs`` (shaped like the outputs); it may be called again."""

    def __init__(self, backward: LayerBackward, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self._backward = backward
        self._shape = shape
        self._dtype = dtype

    def __call__(self, d_outputs: Any) -> LayerGradients:
        dy = float_array("d_outputs", d_outputs, self._dtype, len(self._shape), "shaped like the outputs")
        check_shape("d_outputs", dy, self._shape)
        d_x, d_w = self._backward(dy, True)
        return LayerGradients(d_x, d_w)


class LayerOutput(NamedTuple):
    """One layer's forward pass inside a model: outputs, final recurrent state
    (None for stateless layers) and the backward closure."""

    outputs: np.ndarray
    state: Any
    backward: LayerBackward


class Layer:
    """Base class: a name, a dtype, weights, config and the call protocol.

    Subclasses implement :meth:`build`, :meth:`get_weights`,
    :meth:`set_weights`, :meth:`get_config`, :meth:`output_size` and
    :meth:`_forward`.
    """

    #: the name of a layer created without one
    default_name: ClassVar[str] = "layer"

    def __init__(self, name: Optional[str] = None) -> None:
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(f"name: expected a non-empty string without '/', got {name!r}")
        self.name = name or self.default_name

    @property
    def dtype(self) -> Optional[np.dtype[Any]]:
        """The layer's float dtype (None until known)."""
        raise NotImplementedError

    @property
    def built(self) -> bool:
        """Whether the weights exist."""
        raise NotImplementedError

    def build(self, input_size: int, dtype: Any = None) -> None:
        """Creates the weights for inputs whose last axis has ``input_size``
        entries; ``dtype`` is adopted by layers created without one."""
        raise NotImplementedError

    def output_size(self) -> int:
        """Size of the last axis of the outputs."""
        raise NotImplementedError

    def get_weights(self) -> dict[str, np.ndarray]:
        """A copy of every weight, by name."""
        raise NotImplementedError

    def set_weights(self, mapping: Mapping[str, Any]) -> None:
        """Replaces weights by name (copies; names and shapes validated)."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, JSON-serialisable."""
        raise NotImplementedError

    def _forward(self, x: np.ndarray, lengths: Optional[np.ndarray], training: bool, state: Any = None) -> LayerOutput:
        """Forward on validated input (float arrays of the layer's dtype,
        int64 ids for ``Embedding``; ``lengths`` int64 ``[B]`` or None)."""
        raise NotImplementedError

    def _prepare(self, inputs: Any) -> np.ndarray:
        """Validates and casts ``inputs``; builds the layer."""
        raise NotImplementedError

    def __call__(
        self, inputs: Any, sequence_length: Any = None, training: bool = False, return_backprop: bool = False
    ) -> Any:
        """The forward pass: returns the outputs, or ``(outputs, backprop)``
        when ``return_backprop`` (a :class:`LayerBackprop`)."""
        x = self._prepare(inputs)
        lengths = None
        if sequence_length is not None:
            if x.ndim < 2:
                raise ValueError(f"sequence_length: expected inputs [batch, time, ...], got shape {x.shape}")
            lengths = lengths_array(sequence_length, x.shape[0], x.shape[1])
        out = self._forward(x, lengths, flag("training", training))
        if not flag("return_backprop", return_backprop):
            return out.outputs
        dtype = self.dtype
        assert dtype is not None
        # A copy: the backward pass keeps the outputs it computed (activation
        # derivatives), so the caller may modify what it receives.
        return out.outputs.copy(), LayerBackprop(out.backward, out.outputs.shape, dtype)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "cell")
        return f"{type(self).__name__}({args})"


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
        z = x2 @ kernel
        if bias is not None:
            z += bias
        y = _activate(self.activation, z)
        activation = self.activation

        def backward(d_outputs: np.ndarray, need_d_inputs: bool) -> tuple[Optional[np.ndarray], dict[str, np.ndarray]]:
            dz = _d_activation(activation, y, d_outputs.reshape(-1, kernel.shape[1]))
            grads = {"kernel": x2.T @ dz}
            if bias is not None:
                grads["bias"] = dz.sum(axis=0)
            d_x = (dz @ kernel.T).reshape(x.shape) if need_d_inputs else None
            return d_x, grads

        return LayerOutput(y.reshape(lead + (kernel.shape[1],)), None, backward)


class Embedding(Layer):
    """Integer ids → vectors (``tf.nn.embedding_lookup`` on an ``embeddings`` matrix).

    Args:
        input_dim: vocabulary size ``V``; ids are in ``[0, V)``.
        output_dim: vector size ``D``.
        dtype: ``numpy.float32`` (default) or ``numpy.float64``.
        seed: seeds the initial vectors, uniform in ``[-0.05, 0.05]`` (Keras' default).
        name: the layer's name.

    Weights: ``embeddings`` ``[V, D]``. Inputs: integer ids ``[...]`` (e.g.
    ``[B, T]``); outputs ``[..., D]``. The gradient of a row is the sum of the
    output gradients of every position holding its id.
    """

    default_name = "embedding"

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        name: Optional[str] = None,
    ) -> None:
        super().__init__(name)
        self.input_dim = positive_int("input_dim", input_dim)
        self.output_dim = positive_int("output_dim", output_dim)
        self._dtype = as_dtype(dtype)
        self.seed = seed_value(seed)
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
        }

    def ids(self, name: str, value: Any) -> np.ndarray:
        """``value`` validated as int64 ids in ``[0, input_dim)``: integers,
        or whole-valued floats; a float that is not a whole number raises
        ``ValueError`` ("non-integer id 1.5 at (0, 0)"), bools, complex
        numbers and strings ``TypeError``."""
        return integer_ids(name, value, self.input_dim, "ids")

    def _prepare(self, inputs: Any) -> np.ndarray:
        self.build()
        return self.ids("inputs", inputs)

    def _forward(self, x: np.ndarray, lengths: Optional[np.ndarray], training: bool, state: Any = None) -> LayerOutput:
        table = self._weights["embeddings"]
        flat = x.reshape(-1)
        y = table[flat].reshape(x.shape + (self.output_dim,))
        num, dim = table.shape

        def backward(d_outputs: np.ndarray, need_d_inputs: bool) -> tuple[Optional[np.ndarray], dict[str, np.ndarray]]:
            d_table = np.zeros((num, dim), dtype=table.dtype)
            np.add.at(d_table, flat, d_outputs.reshape(-1, dim))
            return None, {"embeddings": d_table}

        return LayerOutput(y, None, backward)


class RNN(Layer):
    """Any rnnrs cell as a layer (``tf.nn.dynamic_rnn`` plus the read-out).

    Args:
        cell: an :class:`rnnrs.RNNCell` (any cell or wrapper).
        return_sequences: True: outputs ``[B, T, H]`` (zero past each row's
            length); False (default): the output at each row's last valid
            step, ``[B, H]`` (zeros for a row of length 0) — the "final
            state" read-out of a sequence classifier, for any cell.
        name: the layer's name (default ``"rnn"``); in a model the cell's
            weights are ``<name>/<cell weight name>``.

    Inputs ``[B, T, I]``; dropout wrappers are active when called with
    ``training=True``.
    """

    default_name = "rnn"

    def __init__(self, cell: RNNCell, return_sequences: bool = False, name: Optional[str] = None) -> None:
        super().__init__(name)
        if not isinstance(cell, RNNCell):
            raise TypeError(f"cell: expected an rnnrs cell (e.g. BasicRNNCell), got {type(cell).__name__}")
        self.cell = cell
        if not isinstance(return_sequences, (bool, np.bool_)):
            raise TypeError(f"return_sequences: expected a bool, got {type(return_sequences).__name__}")
        self.return_sequences = flag("return_sequences", return_sequences)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.cell.dtype

    @property
    def built(self) -> bool:
        return self.cell.built

    def build(self, input_size: int, dtype: Any = None) -> None:
        self.cell.build(input_size)

    def output_size(self) -> int:
        return int(self.cell.output_size)

    def get_weights(self) -> dict[str, np.ndarray]:
        return self.cell.get_weights()

    def set_weights(self, mapping: Mapping[str, Any]) -> None:
        self.cell.set_weights(mapping)

    def get_config(self) -> dict[str, Any]:
        from ._serialize import cell_to_config

        return {"cell": cell_to_config(self.cell), "return_sequences": self.return_sequences, "name": self.name}

    def _prepare(self, inputs: Any) -> np.ndarray:
        x = float_array("inputs", inputs, self.cell.dtype, 3, "[batch, time, input]")
        build_for_inputs(self.cell, x.shape[2])
        return x

    def _forward(self, x: np.ndarray, lengths: Optional[np.ndarray], training: bool, state: Any = None) -> LayerOutput:
        if x.ndim != 3:
            raise ValueError(
                f"inputs: expected a 3-d array [batch, time, input] for layer {self.name!r}, got shape {x.shape}"
            )
        outputs, final, backprop = dynamic_rnn(
            self.cell, x, sequence_length=lengths, initial_state=state, training=training, return_backprop=True
        )
        assert isinstance(backprop, Backprop)
        if self.return_sequences:

            def backward_seq(
                d_outputs: np.ndarray, need_d_inputs: bool
            ) -> tuple[Optional[np.ndarray], dict[str, np.ndarray]]:
                g = backprop(d_outputs=d_outputs)
                return g.inputs, g.weights

            return LayerOutput(outputs, final, backward_seq)

        batch, time = outputs.shape[0], outputs.shape[1]
        if lengths is None:
            last: Any = time - 1
            y = outputs[:, -1, :].copy() if time else np.zeros((batch, outputs.shape[2]), outputs.dtype)
            rows: Any = slice(None)
        else:
            rows = np.flatnonzero(lengths > 0)
            last = lengths[rows] - 1
            y = np.zeros((batch, outputs.shape[2]), dtype=outputs.dtype)
            y[rows] = outputs[rows, last]
        shape = outputs.shape

        def backward_last(
            d_outputs: np.ndarray, need_d_inputs: bool
        ) -> tuple[Optional[np.ndarray], dict[str, np.ndarray]]:
            d_seq = np.zeros(shape, dtype=d_outputs.dtype)
            if time:
                d_seq[rows, last] = d_outputs[rows]
            g = backprop(d_outputs=d_seq)
            return g.inputs, g.weights

        return LayerOutput(y, final, backward_last)
