"""``Model``: a graph of layers from :func:`rnnrs.Input` tensors to outputs
(Keras' functional API), trained by :class:`rnnrs.trainers.Trainer`.

::

    tokens = rnnrs.Input((None,), dtype="int64", name="tokens")
    extra = rnnrs.Input((None, 4), name="extra")
    e = rnnrs.Embedding(1000, 16, mask_zero=True)(tokens)
    h = rnnrs.RNN(rnnrs.GRUCell(32))(rnnrs.Concatenate()([e, extra]))
    model = rnnrs.Model([tokens, extra], rnnrs.Dense(2)(h))

The model runs its layers' calls in the order they were made (a topological
order of the graph); backward runs them in reverse, adding up the gradients
of a tensor read by several layers and of a layer called several times
(shared weights). Sequence lengths travel with the tensors (see
:mod:`rnnrs.layers.base`).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence, TextIO, Union

import numpy as np

from .._validate import bounded_int, flag, float_array, integer_ids, lengths_array
from ..cells import RNNCell
from ..layers import Dense, Embedding, InputLayer, Layer, Node, SymbolicTensor
from ..layers.base import Spec, checked_d_outputs
from ..saving.model_io import default_name
from ..saving.registry import register
from ..trainers.trainer import Arrays, Forward, Lengths, Trainer

#: Ids read by no Embedding may take any int64 value.
_ANY_ID = np.iinfo(np.int64).max


class ModelGradients(NamedTuple):
    """What a model's backprop returns.

    Attributes:
        inputs: ``dLoss/d input`` for each float input (an array for a model
            with one input, a list for several; None for integer inputs).
        weights: ``dLoss/d weight``, keyed like ``get_weights()``.
    """

    inputs: Any
    weights: dict[str, np.ndarray]


class ModelBackprop:
    """Backpropagation through one finished forward pass of a model. Call it
    with ``d_outputs`` (an array, or a list with one per output; None for an
    output without gradient); it may be called again."""

    def __init__(self, model: "Model", fwd: Forward, n_inputs: int) -> None:
        self._model = model
        self._fwd = fwd
        self._n_inputs = n_inputs

    def __call__(self, d_outputs: Any) -> ModelGradients:
        outs = self._fwd.outputs
        ds = checked_d_outputs(d_outputs, [o.shape for o in outs], [o.dtype for o in outs])
        weights, inputs = self._model._backward_all(self._fwd, ds, True)
        return ModelGradients(inputs if self._n_inputs > 1 else inputs[0], weights)


def unique_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name_1``, ``name_2``, ... the first not in ``taken``."""
    if name not in taken:
        return name
    i = 1
    while f"{name}_{i}" in taken:
        i += 1
    return f"{name}_{i}"


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


def _shape_text(shape: Sequence[Optional[int]]) -> str:
    dims = ", ".join("None" if d is None else str(d) for d in shape)
    return f"({dims}{',' if len(shape) == 1 else ''})"


def _with_wrapped(layers: Sequence[Layer]) -> list[Layer]:
    """``layers`` and every layer a wrapper among them holds (``TimeDistributed``'s, ``Bidirectional``'s two)."""
    found: list[Layer] = []
    stack = list(layers)
    while stack:
        layer = stack.pop()
        found.append(layer)
        stack.extend(
            inner
            for inner in (getattr(layer, attr, None) for attr in ("layer", "forward_layer", "backward_layer"))
            if isinstance(inner, Layer)
        )
    return found


def _weight_owners(obj: Layer) -> list[Any]:
    """The objects holding ``obj``'s weights: the layer itself (Dense,
    Embedding), the cells of a recurrent layer (nested cells included), and
    those of the layers a wrapper layer holds."""
    found: list[Any] = []
    for layer in _with_wrapped([obj]):
        if isinstance(layer, (Dense, Embedding)):
            found.append(layer)
        cell = getattr(layer, "cell", None)
        stack = [cell] if isinstance(cell, RNNCell) else []
        while stack:  # the cell and the cells it wraps or stacks
            item = stack.pop()
            found.append(item)
            inner, cells = getattr(item, "cell", None), getattr(item, "cells", None)
            stack.extend([inner] if isinstance(inner, RNNCell) else [])
            stack.extend(cells if isinstance(cells, list) else [])
    return found


def check_distinct_weights(layers: Sequence[Layer]) -> None:
    """``ValueError`` naming ``layers`` when two of a model's layers hold the
    same weights (a layer and a wrapper of it, or one cell in two ``RNN``
    layers): their gradients would be applied to two copies. To share
    weights, call the same layer twice."""
    owner_of: dict[int, int] = {}
    for i, layer in enumerate(layers):
        for item in {id(o): o for o in _weight_owners(layer)}.values():
            j = owner_of.setdefault(id(item), i)
            if j != i:
                what = f"cell {type(item).__name__}" if isinstance(item, RNNCell) else f"layer {item.name!r}"
                first, second = layers[j], layer
                raise ValueError(
                    f"layers: expected each weight in one layer of the model, got the {what} in both "
                    f"{type(first).__name__} {first.name!r} (layer {j}) and {type(second).__name__} {second.name!r} "
                    f"(layer {i}) (to share weights, call the same layer twice)"
                )


def name_layers(members: Sequence[Layer]) -> None:
    """Makes the names of a model's inputs and layers unique, in order: a
    layer already in another model keeps its name (that model's weights are
    named after it), the others get a suffix when theirs is taken."""
    kept: dict[str, Layer] = {}
    for layer in members:
        if layer._in_model:
            other = kept.setdefault(layer.name, layer)
            if other is not layer:
                raise ValueError(
                    f"layers: expected distinct names for layers already used by other models, got {layer.name!r} "
                    "twice (rename one: layer.name = ...)"
                )
    taken = set(kept)
    for layer in members:
        if not layer._in_model:
            layer.name = unique_name(layer.name, taken)
            taken.add(layer.name)
    for layer in members:
        layer._in_model = True


def _tensors(value: Any, name: str) -> list[SymbolicTensor]:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueError(f"{name}: expected at least one symbolic tensor, got none")
    for t in items:
        if not isinstance(t, SymbolicTensor):
            raise TypeError(
                f"{name}: expected symbolic tensors (from rnnrs.Input and layers called on them), "
                f"got {type(t).__name__}"
            )
    return items


@register("model")
class Model(Trainer):
    """A model from input tensors to output tensors (Keras' functional API).

    Args:
        inputs: one :func:`rnnrs.Input` tensor or a list of them.
        outputs: one symbolic tensor computed from them, or a list.
        name: the model's name.

    Layer names are made unique in graph order (``dense``, ``dense_1``, ...;
    the layers are renamed); a layer called more than once shares its
    weights, listed once in :attr:`layers` and :meth:`get_weights`
    (``"<layer>/<weight>"``).

    Call it on arrays (``model(x)``; several inputs as a list or a dict by
    input name), or ``compile`` and ``fit`` it like any rnnrs model.

    Raises:
        TypeError: ``inputs`` or ``outputs`` not symbolic tensors.
        ValueError: an input listed twice or not made by ``rnnrs.Input``, or
            an output that depends on an ``Input`` not among ``inputs``.
    """

    def __init__(self, inputs: Any, outputs: Any, name: Optional[str] = None) -> None:
        self._init_model(name)
        ins = _tensors(inputs, "inputs")
        outs = _tensors(outputs, "outputs")
        for i, t in enumerate(ins):
            if not isinstance(t.node.layer, InputLayer):
                raise ValueError(
                    f"inputs: expected tensors made by rnnrs.Input, got inputs[{i}] from layer {t.node.layer.name!r}"
                )
        if len({id(t) for t in ins}) != len(ins):
            raise ValueError("inputs: expected each Input once, got one listed twice")
        self._set_graph(ins, outs)

    def _init_model(self, name: Optional[str]) -> None:
        """The name (validated; the class's in snake case by default) and the trainer's state."""
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name: expected a string or None, got {type(name).__name__}")
        self.name = name or default_name(type(self).__name__)
        self._init_trainer()

    # -- the graph -------------------------------------------------------------------
    def _set_graph(self, ins: list[SymbolicTensor], outs: list[SymbolicTensor]) -> None:
        # Nodes reachable from the outputs, in creation order (a topological
        # order: a node is created after the nodes of its inputs).
        seen: dict[int, Node] = {}
        stack = [t.node for t in outs]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen[id(node)] = node
            stack.extend(t.node for t in node.inputs)
        input_nodes = {id(t.node) for t in ins}
        for node in seen.values():
            if isinstance(node.layer, InputLayer) and id(node) not in input_nodes:
                raise ValueError(
                    f"outputs: expected outputs computed from the model's inputs, got ones that depend on the Input "
                    f"{node.layer.name!r}, which is not among inputs"
                )
        order = sorted(seen.values(), key=_creation_order)
        self._nodes = [n for n in order if not isinstance(n.layer, InputLayer)]
        self.inputs = ins
        self.outputs = outs
        layers: list[Layer] = []
        for node in self._nodes:
            if not any(node.layer is other for other in layers):
                layers.append(node.layer)
        check_distinct_weights(layers)
        name_layers([t.node.layer for t in ins] + layers)
        self.layers = layers
        self.input_names = [t.node.layer.name for t in ins]
        names: list[str] = []
        every = {layer.name for layer in layers} | set(self.input_names)
        for t in outs:
            base = t.node.layer.name
            names.append(base if base not in names else unique_name(base, set(names) | every))
        self.output_names = names
        # The largest id each integer input may hold: the smallest vocabulary of the Embeddings reading it.
        self._id_limits = []
        for t in ins:
            limit = _ANY_ID
            for node in self._nodes:
                if any(i is t for i in node.inputs):
                    for inner in _with_wrapped([node.layer]):  # an Embedding, or one inside TimeDistributed
                        if isinstance(inner, Embedding):
                            limit = min(limit, inner.input_dim)
            self._id_limits.append(limit)
        dtypes = {layer.dtype for layer in layers if layer.dtype is not None}
        dtypes |= {t.dtype for t in ins if t.dtype.kind == "f"}
        if len(dtypes) > 1:
            raise ValueError(
                f"outputs: expected one float dtype in the whole model, got {sorted(d.name for d in dtypes)}"
            )
        self._dtype = dtypes.pop() if dtypes else np.dtype(np.float32)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The model's float dtype."""
        return self._dtype

    @property
    def built(self) -> bool:
        """Whether every layer has its weights (a functional model always has)."""
        return all(layer.built for layer in self.layers)

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

    def _push(self, params: Mapping[str, np.ndarray]) -> None:
        by_layer: dict[str, dict[str, np.ndarray]] = {}
        for key, value in params.items():
            prefix, _, rest = key.partition("/")
            by_layer.setdefault(prefix, {})[rest] = value
        for layer in self.layers:
            part = by_layer.get(layer.name)
            if part:
                layer.set_weights(part)

    def _layer_states(self) -> dict[str, np.ndarray]:
        """What the layers keep besides weights (a Dropout's generator), as
        ``"<layer>/<key>"`` → array: saved with the model."""
        return {f"{layer.name}/{k}": v for layer in self.layers for k, v in layer.get_state().items()}

    def _set_layer_states(self, mapping: Mapping[str, Any]) -> None:
        by_layer: dict[str, dict[str, Any]] = {}
        names = {layer.name: layer for layer in self.layers}
        for key, value in mapping.items():
            prefix, _, rest = str(key).partition("/")
            if prefix not in names or not rest:
                raise ValueError(f"state: expected names '<layer>/<key>' with layer in {sorted(names)}, got {key!r}")
            by_layer.setdefault(prefix, {})[rest] = value
        for prefix, part in by_layer.items():
            names[prefix].set_state(part)

    def _kept_state_layers(self) -> list[Any]:
        return _stateful_layers(self.layers)

    def count_params(self) -> int:
        """Number of scalar weights."""
        return int(sum(v.size for v in self.get_weights().values()))

    # -- data --------------------------------------------------------------------------
    def _by_input(self, name: str, value: Any, what: str) -> list[tuple[str, Any]]:
        """``value`` split per input (a list, or a dict by input name)."""
        n = len(self.inputs)
        if isinstance(value, Mapping):
            if set(value) != set(self.input_names):
                raise ValueError(
                    f"{name}: expected {what} for the inputs {self.input_names}, got keys {sorted(map(str, value))}"
                )
            return [(f"{name}[{k!r}]", value[k]) for k in self.input_names]
        if n == 1:
            return [(name, value)]
        if not isinstance(value, (list, tuple)) or len(value) != n:
            got = f"{len(value)} items" if isinstance(value, (list, tuple)) else type(value).__name__
            raise ValueError(f"{name}: expected a list of {n} {what} (one per input {self.input_names}), got {got}")
        return [(f"{name}[{i}]", v) for i, v in enumerate(value)]

    def _data(self, name: str, x: Any, sequence_length: Any, length_name: str) -> tuple[Arrays, Lengths]:
        xs: Arrays = []
        for (part, value), t, limit in zip(self._by_input(name, x, "arrays"), self.inputs, self._id_limits):
            spec = t.spec
            if spec.dtype.kind == "f":
                arr = float_array(part, value, spec.dtype, len(spec.shape), f"shaped {_shape_text(spec.shape)}")
            else:
                arr = integer_ids(part, value, limit, "ids")
                if arr.ndim != len(spec.shape):
                    raise ValueError(
                        f"{part}: expected a {len(spec.shape)}-d array of ids {_shape_text(spec.shape)}, got shape "
                        f"{arr.shape}"
                    )
            for axis, (want, got) in enumerate(zip(spec.shape, arr.shape)):
                if want is not None and want != got:
                    raise ValueError(f"{part}: expected shape {_shape_text(spec.shape)}, got {arr.shape} (axis {axis})")
            if xs and arr.shape[0] != xs[0].shape[0]:
                raise ValueError(f"{part}: expected {xs[0].shape[0]} rows (as the first input), got {arr.shape[0]}")
            xs.append(arr)
        lengths: Lengths = [None] * len(xs)
        if sequence_length is not None:
            if len(self.inputs) == 1 and not isinstance(sequence_length, Mapping):
                parts = [(length_name, sequence_length)]
            else:
                parts = self._by_input(length_name, sequence_length, "length arrays (or None)")
            for i, ((part, value), arr) in enumerate(zip(parts, xs)):
                if value is None:
                    continue
                if arr.ndim < 2 or (arr.dtype.kind == "f" and arr.ndim < 3):
                    raise ValueError(
                        f"{part}: expected lengths only for sequence inputs, got input of shape {arr.shape}"
                    )
                try:
                    lengths[i] = lengths_array(value, arr.shape[0], arr.shape[1])
                except (ValueError, TypeError) as e:
                    raise type(e)(str(e).replace("sequence_length", part, 1)) from None
        return xs, lengths

    def _output_shapes(self, xs: Arrays, lengths: Lengths) -> list[tuple[int, ...]]:
        """The outputs' shapes for these inputs, from a forward pass of one
        row (from zero states: the stateful layers' kept states are set aside
        and put back afterwards)."""
        rows = xs[0].shape[0]
        kept = [(layer, layer._kept_state) for layer in _stateful_layers(self.layers)]
        for layer, _ in kept:
            layer._kept_state = None  # the probe runs from zeros, on one row
        try:
            probe = self._forward([x[:1] for x in xs], [None if v is None else v[:1] for v in lengths], False)
        finally:
            for layer, state in kept:
                layer._kept_state = state
        return [(rows,) + out.shape[1:] for out in probe.outputs]

    # -- passes --------------------------------------------------------------------------
    def _forward(self, xs: Arrays, lengths: Lengths, training: bool, states: Any = None) -> Forward:
        values: dict[int, tuple[np.ndarray, Optional[np.ndarray]]] = {}
        for t, x, ls in zip(self.inputs, xs, lengths):
            values[id(t)] = (x, ls)
        tape = []
        for node in self._nodes:
            ins = [values[id(t)] for t in node.inputs]
            applied = node.layer._apply([v for v, _ in ins], [ls for _, ls in ins], training)
            for t, out, ls in zip(node.outputs, applied.outputs, applied.lengths):
                values[id(t)] = (out, ls)
            tape.append(applied)
        outs = [values[id(t)] for t in self.outputs]
        return Forward([o for o, _ in outs], [ls for _, ls in outs], None, (xs, tape))

    def _backward(self, fwd: Forward, d_outputs: Sequence[Optional[np.ndarray]]) -> dict[str, np.ndarray]:
        return self._backward_all(fwd, d_outputs, False)[0]

    def _backward_all(
        self, fwd: Forward, d_outputs: Sequence[Optional[np.ndarray]], want_inputs: bool
    ) -> tuple[dict[str, np.ndarray], list[Optional[np.ndarray]]]:
        """Weight gradients and (when ``want_inputs``) input gradients."""
        grads: dict[int, np.ndarray] = {}

        def add(t: SymbolicTensor, d: np.ndarray) -> None:
            key = id(t)
            grads[key] = d if key not in grads else grads[key] + d

        for t, d in zip(self.outputs, d_outputs):
            if d is not None:
                add(t, d)
        needed = self._needs_gradient(want_inputs)
        weights: dict[str, np.ndarray] = {}
        for node, applied in zip(reversed(self._nodes), reversed(fwd.tape[1])):
            ds = [grads.get(id(t)) for t in node.outputs]
            if all(d is None for d in ds):
                continue
            need = [id(t) in needed for t in node.inputs]
            d_in, d_w = applied.backward(ds, need)
            for k, v in d_w.items():
                full = f"{node.layer.name}/{k}"
                weights[full] = v if full not in weights else weights[full] + v
            for t, d, wanted in zip(node.inputs, d_in, need):
                if wanted and d is not None:
                    add(t, d)
        for layer in self.layers:  # layers no gradient reached
            for k, v in layer.get_weights().items():
                weights.setdefault(f"{layer.name}/{k}", np.zeros_like(v))
        order = [f"{layer.name}/{k}" for layer in self.layers for k in layer.get_weights()]
        xs = fwd.tape[0]
        inputs: list[Optional[np.ndarray]] = []
        for t, x in zip(self.inputs, xs):
            g = grads.get(id(t))
            if t.dtype.kind != "f":
                g = None
            elif g is None and want_inputs:
                g = np.zeros_like(x)
            inputs.append(g)
        return {k: weights[k] for k in order}, inputs

    def _needs_gradient(self, want_inputs: bool) -> set[int]:
        """Ids of the tensors whose gradient is needed: float tensors with a
        weighted layer (or, with ``want_inputs``, a float model input) upstream."""
        needed: set[int] = set()
        if want_inputs:
            needed.update(id(t) for t in self.inputs if t.dtype.kind == "f")
        for node in self._nodes:
            upstream = any(id(t) in needed for t in node.inputs)
            weighted = bool(node.layer.get_weights()) if node.layer.built else False
            if upstream or weighted:
                needed.update(id(t) for t in node.outputs if t.dtype.kind == "f")
        return needed

    def __call__(
        self, x: Any, sequence_length: Any = None, training: bool = False, return_backprop: bool = False
    ) -> Any:
        """The raw outputs (logits for a classifier) of one forward pass: an
        array, or a list for a model with several outputs. With
        ``return_backprop``, ``(outputs, backprop)`` where ``backprop(d_outputs)``
        returns :class:`ModelGradients`."""
        xs, lengths = self._data("x", x, sequence_length, "sequence_length")
        fwd = self._forward(xs, lengths, flag("training", training))
        given = {id(a) for a in xs}
        # An output that is an input (Model(x, x)) is returned as a copy, never the caller's own array.
        plain = [o.copy() if id(o) in given else o for o in fwd.outputs]
        outs: Any = plain[0] if len(plain) == 1 else plain
        if not flag("return_backprop", return_backprop):
            return outs
        copies = [o.copy() for o in fwd.outputs]
        return (copies[0] if len(copies) == 1 else copies), ModelBackprop(self, fwd, len(xs))

    # -- description -------------------------------------------------------------------
    def _summary_rows(self) -> list[tuple[str, str, str]]:
        rows = []
        for t in self.inputs:
            rows.append((f"{t.node.layer.name} (InputLayer)", _shape_text(t.shape), "0"))
        for layer in self.layers:
            node = next(n for n in self._nodes if n.layer is layer)
            shapes = " ".join(_shape_text(t.shape) for t in node.outputs)
            rows.append((f"{layer.name} ({_layer_kind(layer)})", shapes, f"{_layer_params(layer):,}"))
        return rows

    def summary(
        self,
        line_length: Optional[int] = None,
        print_fn: Optional[Callable[[str], Any]] = None,
        stream: Optional[TextIO] = None,
    ) -> str:
        """Prints and returns a table of the layers (Keras' ``Model.summary()``).

        One row per layer: ``name (class)`` (an ``RNN`` shows its cell's
        class, e.g. ``RNN(LSTMCell)``), the output shape with ``None`` for
        the batch and for axes that vary (the time axis), and the number of
        weights; then the total and trainable parameter counts with their
        size in bytes (every rnnrs weight is trainable), and the loss,
        metrics and optimizer once compiled::

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
        rows = self._summary_rows()
        total = sum(int(r[2].replace(",", "")) for r in rows)
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

    # -- files ---------------------------------------------------------------------------
    def _compiled_config(self) -> Optional[dict[str, Any]]:
        from ..trainers.compile_utils import loss_config, object_config

        if self.optimizer is None or self.loss is None:
            return None
        loss = [loss_config(v) for v in self.loss] if isinstance(self.loss, list) else loss_config(self.loss)
        compiled: dict[str, Any] = {
            "loss": loss,
            "metrics": [m if isinstance(m, str) else object_config(m) for m in self._metric_specs],
            "optimizer": self.optimizer.get_config(),
        }
        if self.loss_weights is not None:
            compiled["loss_weights"] = list(self.loss_weights)
        return compiled

    def get_config(self) -> dict[str, Any]:
        """Everything but the weights, JSON-serialisable: the layers, the
        graph (each call's layer and input tensors) and the compile settings."""
        index = {id(layer): i for i, layer in enumerate(self.layers)}
        node_index = {id(node): i for i, node in enumerate(self._nodes)}
        inputs_at = {id(t): i for i, t in enumerate(self.inputs)}

        def ref(t: SymbolicTensor) -> list[Any]:
            if id(t) in inputs_at:
                return ["input", inputs_at[id(t)], 0]
            return ["node", node_index[id(t.node)], t.index]

        return {
            "class_name": type(self).__name__,
            "name": self.name,
            "inputs": [t.node.layer.get_config() for t in self.inputs],
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in self.layers],
            "nodes": [{"layer": index[id(n.layer)], "inputs": [ref(t) for t in n.inputs]} for n in self._nodes],
            "outputs": [ref(t) for t in self.outputs],
            "compile": self._compiled_config(),
        }

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Writes the model to ONE ``.npz`` file at exactly ``path``: JSON
        configuration, weights and optimizer state (see
        :mod:`rnnrs.saving.model_io`). The file is written to a temporary
        name and renamed, so a crash never leaves half a model behind.

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
        from ..saving.model_io import save_model

        save_model(self, path)

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"]) -> "Model":
        """Reads a model written by :meth:`save` (same as :func:`load_model`)."""
        from ..saving.model_io import load_model

        model = load_model(path)
        if not isinstance(model, cls):
            raise ValueError(f"path: expected a saved {cls.__name__}, got a {type(model).__name__}")
        return model

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, inputs={self.input_names}, "
            f"layers={[layer.name for layer in self.layers]}, outputs={self.output_names})"
        )


def _stateful_layers(layers: Sequence[Layer]) -> list[Any]:
    """The layers (wrapped ones included) that keep a recurrent state between calls."""
    return [layer for layer in _with_wrapped(layers) if hasattr(layer, "_kept_state")]


def _creation_order(node: Node) -> int:
    return node.serial


def _layer_kind(layer: Layer) -> str:
    what = type(layer).__name__
    cell = getattr(layer, "cell", None)
    if cell is not None:
        what += f"({type(cell).__name__})"
    inner = getattr(layer, "layer", None)
    if isinstance(inner, Layer):
        what += f"({_layer_kind(inner)})"
    return what


def _layer_params(layer: Layer) -> int:
    return int(sum(v.size for v in layer.get_weights().values())) if layer.built else 0


__all__ = ["Model", "ModelBackprop", "ModelGradients", "Spec", "default_name", "unique_name"]
