"""The layer protocol: weights, eager calls, and calls on symbolic tensors.

A layer holds its weights as NumPy arrays (``get_weights`` / ``set_weights``,
copies in and out, like the cells) and is called like a function::

    y = dense(x)                                   # forward only
    y, backprop = dense(x, return_backprop=True)   # forward, then
    grads = backprop(d_y)                          # LayerGradients(inputs, weights)

Called on a :class:`SymbolicTensor` (what :func:`rnnrs.Input` returns) a layer
runs nothing: it checks that the shapes connect, builds its weights and
returns symbolic outputs, from which :class:`rnnrs.Model` records the graph.

The graph protocol every layer implements (one or more inputs, one or more
outputs):

- :meth:`Layer.compute_output_spec` ``(input specs) -> output specs``: checks
  the inputs' shapes and dtypes (``ValueError`` / ``TypeError`` saying what
  does not connect) and builds the weights;
- :meth:`Layer.weight_shapes` ``(input specs) -> {name: shape}``: the shapes
  the weights would have, without allocating them (the model loader checks a
  file against them before reading any array);
- :meth:`Layer._apply` ``(inputs, lengths, training, state) -> Applied``: the
  forward pass on validated arrays, with each input's per-row sequence
  lengths (or None), returning the outputs, each output's lengths, the final
  recurrent state (None for stateless layers) and the backward closure
  ``backward(d_outputs, need) -> (d_inputs, d_weights)``: ``d_outputs[i]``
  is None when no gradient reaches output ``i`` (read it as zeros),
  ``need[j]`` says whether input ``j``'s gradient is wanted (the closure may
  return None for it otherwise; it returns None for integer inputs);
  ``d_weights`` has exactly the keys of ``get_weights()``. The closure may be
  called more than once and must not modify its arguments.

Sequence lengths travel with the tensors: a model's ``sequence_length`` (or
an ``Embedding(mask_zero=True)``) gives a sequence its lengths, layers that
keep the time axis pass them on, and losses and metrics on per-step outputs
count only the steps ``t < length``.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, ClassVar, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np

from .._validate import as_dtype, check_shape, flag, float_array, lengths_array
from ..cells import check_mapping

#: ``backward(d_outputs, need_d_inputs) -> (d_inputs or None, d_weights)`` of a one-input, one-output layer
LayerBackward = Callable[[np.ndarray, bool], "tuple[Optional[np.ndarray], dict[str, np.ndarray]]"]

#: ``backward(d_outputs, need) -> (d_inputs, d_weights)`` of any layer (see the module doc)
ApplyBackward = Callable[
    [list[Optional[np.ndarray]], list[bool]], "tuple[list[Optional[np.ndarray]], dict[str, np.ndarray]]"
]

#: Integer inputs (ids) are int64 once validated.
IDS = np.dtype(np.int64)


class Spec(NamedTuple):
    """What is known of a tensor before it is computed.

    Attributes:
        shape: axis 0 (the batch) is None; other axes are ints, or None when
            they vary between calls (e.g. the time axis).
        dtype: a float dtype, or int64 for integer ids.
    """

    shape: tuple[Optional[int], ...]
    dtype: np.dtype[Any]

    def describe(self) -> str:
        dims = ", ".join("None" if d is None else str(d) for d in self.shape)
        return f"({dims}{',' if len(self.shape) == 1 else ''}) {self.dtype.name}"


def generator_state(rng: np.random.Generator) -> np.ndarray:
    """A PCG64 generator's position as 6 uint64 words (state and increment,
    128 bits each, then the buffered 32-bit half and whether it is used)."""
    st = rng.bit_generator.state
    words = []
    for key in ("state", "inc"):
        value = int(st["state"][key])
        words += [value >> 64, value & ((1 << 64) - 1)]
    words += [int(st["has_uint32"]), int(st["uinteger"])]
    return np.array(words, dtype=np.uint64)


def restore_generator(name: str, rng: np.random.Generator, words: Any) -> None:
    """Puts ``rng`` at the position :func:`generator_state` wrote (``ValueError`` naming ``name`` otherwise)."""
    arr = np.asarray(words)
    if arr.shape != (6,) or arr.dtype != np.uint64:
        raise ValueError(f"{name}: expected 6 uint64 words (a generator's position), got {arr.dtype} {arr.shape}")
    w = [int(v) for v in arr]
    if w[4] > 1 or w[5] >= 1 << 32 or w[3] % 2 == 0:
        raise ValueError(f"{name}: expected a PCG64 position (odd increment, a 32-bit buffer), got {w}")
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
        "has_uint32": w[4],
        "uinteger": w[5],
    }


class LayerGradients(NamedTuple):
    """What a layer's :class:`LayerBackprop` returns.

    Attributes:
        inputs: ``dLoss/d inputs``, shaped like the inputs (None for
            ``Embedding``, whose inputs are integer ids); a list, one per
            input, for a layer called on several inputs.
        weights: ``dLoss/d weight`` for exactly the keys of ``get_weights()``.
    """

    inputs: Any
    weights: dict[str, np.ndarray]


class LayerOutput(NamedTuple):
    """One forward pass of a one-input, one-output layer: outputs, final
    recurrent state (None for stateless layers) and the backward closure."""

    outputs: np.ndarray
    state: Any
    backward: LayerBackward
    #: Whether ``backward`` reads ``outputs`` (an activation's derivative):
    #: an eager call with ``return_backprop`` then hands out a copy.
    keeps_outputs: bool = True


class Applied(NamedTuple):
    """One forward pass of any layer (see the module doc)."""

    outputs: list[np.ndarray]
    lengths: list[Optional[np.ndarray]]
    state: Any
    backward: ApplyBackward
    #: As :attr:`LayerOutput.keeps_outputs`, for every output.
    keeps_outputs: bool = True


def checked_d_outputs(
    d_outputs: Any, shapes: Sequence[tuple[int, ...]], dtypes: Sequence[np.dtype[Any]]
) -> list[Optional[np.ndarray]]:
    """A backprop's ``d_outputs`` validated against the outputs' shapes and
    dtypes: one array, or for several outputs a list with one array (or
    None, no gradient) per output."""
    many = len(shapes) > 1
    if many:
        if not isinstance(d_outputs, (list, tuple)) or len(d_outputs) != len(shapes):
            raise ValueError(
                f"d_outputs: expected a list of {len(shapes)} arrays (one per output, None for none), "
                f"got {type(d_outputs).__name__}"
            )
        given = list(d_outputs)
    else:
        given = [d_outputs]
    ds: list[Optional[np.ndarray]] = []
    for i, (d, shape, dtype) in enumerate(zip(given, shapes, dtypes)):
        name = f"d_outputs[{i}]" if many else "d_outputs"
        if d is None and many:
            ds.append(None)
            continue
        arr = float_array(name, d, dtype, len(shape), "shaped like the outputs")
        check_shape(name, arr, shape)
        ds.append(arr)
    return ds


class LayerBackprop:
    """Backpropagation through one finished eager forward pass of a layer.
    Call it with ``d_outputs`` shaped like the outputs (a list, one per
    output, for a layer with several; None for an output without gradient);
    it may be called again."""

    def __init__(self, backward: ApplyBackward, outputs: Sequence[np.ndarray], n_inputs: int) -> None:
        self._backward = backward
        self._shapes = [o.shape for o in outputs]
        self._dtypes = [o.dtype for o in outputs]
        self._n_inputs = n_inputs

    def __call__(self, d_outputs: Any) -> LayerGradients:
        ds = checked_d_outputs(d_outputs, self._shapes, self._dtypes)
        d_x, d_w = self._backward(ds, [True] * self._n_inputs)
        return LayerGradients(d_x if self._n_inputs > 1 else d_x[0], d_w)


class Layer:
    """Base class: a name, a dtype, weights, config and the call protocol.

    A one-input, one-output layer implements :meth:`build`,
    :meth:`get_weights`, :meth:`set_weights`, :meth:`get_config`,
    :meth:`output_size`, :meth:`_prepare`, :meth:`_forward`,
    :meth:`_output_spec` and :meth:`weight_shapes`; the base class derives
    the graph protocol from them. Other layers override
    :meth:`compute_output_spec`, :meth:`_apply` and :meth:`_prepare_inputs`.
    """

    #: the name of a layer created without one
    default_name: ClassVar[str] = "layer"
    #: whether a model holds the layer (its name is then fixed: the model's weights are named after it)
    _in_model: bool = False

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

    def get_state(self) -> dict[str, np.ndarray]:
        """What the layer keeps besides its weights and changes as it runs
        (a random generator's position), as named integer arrays, saved with
        a model so that training continues identically after loading. Most
        layers keep nothing."""
        return {}

    def set_state(self, mapping: Mapping[str, Any]) -> None:
        """Restores what :meth:`get_state` returned (validated)."""
        if mapping:
            raise ValueError(f"mapping: expected no state (layer {self.name!r} keeps none), got {sorted(mapping)}")

    # -- the graph protocol -----------------------------------------------------
    def compute_output_spec(self, inputs: Sequence[Spec]) -> list[Spec]:
        """The outputs' specs for inputs of ``inputs``' specs, building the
        weights; ``ValueError`` / ``TypeError`` when the inputs do not fit."""
        if len(inputs) != 1:
            raise ValueError(f"inputs: expected one input, got {len(inputs)}")
        return [self._output_spec(inputs[0])]

    def _output_spec(self, spec: Spec) -> Spec:
        """``compute_output_spec`` of a one-input, one-output layer."""
        raise NotImplementedError

    def weight_shapes(self, inputs: Sequence[Spec]) -> dict[str, tuple[int, ...]]:
        """The weights' shapes for inputs of ``inputs``' specs, computed
        without allocating anything (the layer need not be built)."""
        raise NotImplementedError

    def _apply(
        self,
        inputs: Sequence[np.ndarray],
        lengths: Sequence[Optional[np.ndarray]],
        training: bool,
        state: Any = None,
    ) -> Applied:
        """Forward on validated inputs (see the module doc). The default
        serves one-input, one-output layers through :meth:`_forward`; the
        input's lengths pass on to outputs that keep a time axis."""
        out = self._forward(inputs[0], lengths[0], training, state)
        y = out.outputs
        carried = lengths[0] if (lengths[0] is not None and y.ndim >= 3) else None
        single = out.backward

        def backward(
            d_outputs: list[Optional[np.ndarray]], need: list[bool]
        ) -> tuple[list[Optional[np.ndarray]], dict[str, np.ndarray]]:
            d = d_outputs[0]
            if d is None:
                d = np.zeros(y.shape, dtype=y.dtype)
            d_x, d_w = single(d, need[0])
            return [d_x], d_w

        return Applied([y], [carried], out.state, backward, out.keeps_outputs)

    def _forward(self, x: np.ndarray, lengths: Optional[np.ndarray], training: bool, state: Any = None) -> LayerOutput:
        """Forward of a one-input, one-output layer on validated input (float
        arrays of the layer's dtype, int64 ids for ``Embedding``; ``lengths``
        int64 ``[B]`` or None)."""
        raise NotImplementedError

    def _prepare(self, inputs: Any) -> np.ndarray:
        """Validates and casts one eager input; builds the layer."""
        raise NotImplementedError

    def _prepare_inputs(self, inputs: Any) -> list[np.ndarray]:
        """Validates and casts the eager inputs (a list for a layer taking several)."""
        return [self._prepare(inputs)]

    # -- calls --------------------------------------------------------------------
    def __call__(
        self, inputs: Any, sequence_length: Any = None, training: bool = False, return_backprop: bool = False
    ) -> Any:
        """The forward pass: returns the outputs (a list for a layer with
        several), or ``(outputs, backprop)`` when ``return_backprop`` (a
        :class:`LayerBackprop`). On symbolic tensors (:func:`rnnrs.Input`),
        returns symbolic outputs (``sequence_length``, ``training`` and
        ``return_backprop`` are then given to the model instead: passing
        them here is a ``ValueError`` naming them)."""
        symbolic = symbolic_inputs(inputs)
        if symbolic is not None:
            if sequence_length is not None:
                raise ValueError(
                    "sequence_length: expected None when calling a layer on symbolic tensors (pass lengths to the "
                    f"model's fit / predict / __call__), got {type(sequence_length).__name__}"
                )
            if return_backprop is not False:
                raise ValueError(
                    "return_backprop: expected False when calling a layer on symbolic tensors (call the model "
                    f"with return_backprop=True), got {return_backprop!r}"
                )
            if training is not False:
                raise ValueError(
                    f"training: expected False when calling a layer on symbolic tensors (the model's fit trains, "
                    f"its predict and __call__ infer; a layer cannot be fixed in training mode), got {training!r}"
                )
            return self._call_symbolic(symbolic)
        return self._call_eager(self._prepare_inputs(inputs), sequence_length, training, return_backprop)

    def _call_eager(
        self,
        xs: list[np.ndarray],
        sequence_length: Any,
        training: Any,
        return_backprop: Any,
        state: Any = None,
    ) -> Any:
        lengths: list[Optional[np.ndarray]] = [None] * len(xs)
        if sequence_length is not None:
            x = xs[0]
            if x.ndim < 2:
                raise ValueError(f"sequence_length: expected inputs [batch, time, ...], got shape {x.shape}")
            lengths[0] = lengths_array(sequence_length, x.shape[0], x.shape[1])
        out = self._apply(xs, lengths, flag("training", training), state)
        backprop = flag("return_backprop", return_backprop)
        outputs: Any = out.outputs[0] if len(out.outputs) == 1 else list(out.outputs)
        if not backprop:
            return outputs
        # Copies when the backward pass reads the outputs it computed
        # (activation derivatives), so the caller may modify what it receives.
        copies = [o.copy() for o in out.outputs] if out.keeps_outputs else list(out.outputs)
        result: Any = copies[0] if len(copies) == 1 else copies
        return result, LayerBackprop(out.backward, out.outputs, len(xs))

    def _call_symbolic(self, inputs: list["SymbolicTensor"]) -> Any:
        specs = [t.spec for t in inputs]
        try:
            outs = self.compute_output_spec(specs)
        except (ValueError, TypeError) as e:
            got = ", ".join(s.describe() for s in specs)
            raise type(e)(f"layer {type(self).__name__} {self.name!r} cannot take inputs {got}: {e}") from None
        node = Node(self, inputs)
        node.outputs = [SymbolicTensor(s, node, i) for i, s in enumerate(outs)]
        return node.outputs[0] if len(node.outputs) == 1 else list(node.outputs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k not in ("cell", "layer"))
        return f"{type(self).__name__}({args})"


# -- symbolic tensors and the graph ------------------------------------------------


#: Numbers the nodes in creation order (a topological order of any graph).
_SERIAL = itertools.count()


class Node:
    """One call of a layer in a graph: the layer, the symbolic tensors it
    read and those it returned (``serial`` numbers nodes in creation order)."""

    def __init__(self, layer: "Layer", inputs: Sequence["SymbolicTensor"]) -> None:
        self.serial = next(_SERIAL)
        self.layer = layer
        self.inputs = list(inputs)
        self.outputs: list[SymbolicTensor] = []


class SymbolicTensor:
    """A tensor of a graph under construction: its :class:`Spec` and the
    layer call that produces it. It holds no values; layers called on it
    return more of them and :class:`rnnrs.Model` turns them into a model."""

    def __init__(self, spec: Spec, node: Node, index: int) -> None:
        self.spec = spec
        self.node = node
        self.index = index

    @property
    def shape(self) -> tuple[Optional[int], ...]:
        """The shape, None for the batch axis and other axes that vary."""
        return self.spec.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.spec.dtype

    @property
    def ndim(self) -> int:
        return len(self.spec.shape)

    def __repr__(self) -> str:
        return (
            f"<SymbolicTensor shape={self.spec.shape} dtype={self.spec.dtype.name} "
            f"from {type(self.node.layer).__name__} {self.node.layer.name!r}>"
        )

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            "inputs: a SymbolicTensor has no values (it describes a model's graph); call the model on arrays instead"
        )


def symbolic_inputs(inputs: Any) -> Optional[list[SymbolicTensor]]:
    """``inputs`` as a list of symbolic tensors when it is one or a list of
    them; None when none is symbolic; ``TypeError`` for a mix."""
    if isinstance(inputs, SymbolicTensor):
        return [inputs]
    if isinstance(inputs, (list, tuple)) and any(isinstance(t, SymbolicTensor) for t in inputs):
        if not all(isinstance(t, SymbolicTensor) for t in inputs):
            kinds = sorted({type(t).__name__ for t in inputs})
            raise TypeError(f"inputs: expected only symbolic tensors (from rnnrs.Input) or only arrays, got {kinds}")
        return list(inputs)
    return None


class Weightless(Layer):
    """Base of the layers without weights (``Dropout``, the merge layers, a model's inputs):
    always built, no weights, the output size of the last inputs seen."""

    def __init__(self, name: Optional[str] = None) -> None:
        super().__init__(name)
        self._size: Optional[int] = None

    @property
    def dtype(self) -> Optional[np.dtype[Any]]:
        return None

    @property
    def built(self) -> bool:
        return True

    def build(self, input_size: int, dtype: Any = None) -> None:
        pass

    def output_size(self) -> int:
        if self._size is None:
            raise ValueError(f"output_size: expected a layer that has seen its inputs, got {self.name!r} unused")
        return self._size

    def get_weights(self) -> dict[str, np.ndarray]:
        return {}

    def set_weights(self, mapping: Mapping[str, Any]) -> None:
        check_mapping(mapping)
        if mapping:
            raise ValueError(f"mapping: expected no weights ({type(self).__name__} has none), got {sorted(mapping)}")

    def weight_shapes(self, inputs: Sequence[Spec]) -> dict[str, tuple[int, ...]]:
        return {}


class InputLayer(Weightless):
    """The source of a graph's input (made by :func:`rnnrs.Input`)."""

    default_name = "input"

    def __init__(self, shape: Sequence[Optional[int]], dtype: Any = None, name: Optional[str] = None) -> None:
        super().__init__(name)
        if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
            shape = (int(shape),)
        if not isinstance(shape, (tuple, list)) or not shape:
            raise TypeError(
                f"shape: expected a non-empty tuple of ints or None (the batch axis left out), got {shape!r}"
            )
        dims: list[Optional[int]] = []
        for d in shape:
            if d is None:
                dims.append(None)
            elif isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or int(d) < 1:
                raise ValueError(f"shape: expected ints >= 1 or None (the batch axis left out), got {tuple(shape)!r}")
            else:
                dims.append(int(d))
        self.shape = tuple(dims)
        self._dtype = _input_dtype(dtype)
        if self._dtype.kind == "f" and self.shape[-1] is None:
            raise ValueError(f"shape: expected the last axis (features) known for float inputs, got {self.shape!r}")
        self.spec = Spec((None,) + self.shape, self._dtype)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype

    def output_size(self) -> int:
        last = self.shape[-1]
        return 0 if last is None else int(last)

    def compute_output_spec(self, inputs: Sequence[Spec]) -> list[Spec]:
        return [self.spec]

    def get_config(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self._dtype.name, "name": self.name}


def _input_dtype(dtype: Any) -> np.dtype[Any]:
    """An input's dtype: float32 (None), float64, or int64 for any integer dtype (ids)."""
    if dtype is None:
        return np.dtype(np.float32)
    what = "float32, float64 or an integer dtype (ids)"
    if isinstance(dtype, (bool, np.bool_)):
        raise TypeError(f"dtype: expected {what}, got {dtype!r}")
    try:
        parsed: np.dtype[Any] = np.dtype(dtype)
    except Exception:  # NumPy's parser raises TypeError, ValueError, even SyntaxError for odd strings
        raise TypeError(f"dtype: expected {what}, got {dtype!r}") from None
    if parsed.kind in "iu":
        return IDS
    if parsed.kind != "f":
        raise TypeError(f"dtype: expected {what}, got {parsed}")
    return as_dtype(parsed)


def Input(shape: Sequence[Optional[int]], dtype: Any = None, name: Optional[str] = None) -> SymbolicTensor:
    """A model input, for building a :class:`rnnrs.Model` (``keras.Input``).

    Args:
        shape: the shape of one row, without the batch axis: ``(None, 8)``
            for sequences of any length with 8 features, ``(None,)`` for
            sequences of integer ids (with ``dtype="int64"``), ``(8,)`` for
            vectors. None marks an axis that may vary between calls.
        dtype: ``"float32"`` (default), ``"float64"``, or an integer dtype
            for ids (read by an ``Embedding``).
        name: the input's name (to pass inputs as a dict by name).

    Returns:
        A :class:`SymbolicTensor`: call layers on it.
    """
    layer = InputLayer(shape, dtype, name)
    node = Node(layer, [])
    tensor = SymbolicTensor(layer.spec, node, 0)
    node.outputs = [tensor]
    return tensor


def float_spec(layer: Layer, spec: Spec, rank: Union[int, tuple[int, ...]], what: str) -> np.dtype[Any]:
    """Checks a float input's spec for ``layer`` (rank, known last axis,
    the layer's dtype) and returns the dtype the layer adopts."""
    ranks = (rank,) if isinstance(rank, int) else rank
    if spec.dtype.kind != "f":
        raise TypeError(f"inputs: expected float inputs {what}, got {spec.dtype.name} (ids need an Embedding first)")
    if len(spec.shape) not in ranks:
        raise ValueError(f"inputs: expected {what}, got {len(spec.shape)}-d inputs of shape {spec.shape}")
    if spec.shape[-1] is None:
        raise ValueError(f"inputs: expected the last axis known {what}, got shape {spec.shape}")
    dtype = layer.dtype
    if dtype is not None and dtype != spec.dtype:
        raise ValueError(f"inputs: expected {dtype.name} inputs (the layer's dtype), got {spec.dtype.name}")
    return spec.dtype
