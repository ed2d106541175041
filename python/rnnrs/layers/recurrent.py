"""Recurrent layers: ``RNN`` turns any :class:`rnnrs.RNNCell` into a layer,
``Bidirectional`` runs one forward and one backward copy of it.

The whole sequence (``[B, T, H]``, ``return_sequences=True``) or the output
at each row's last valid step (``[B, H]``; for a plain cell that is its final
state, for an ``LSTMStateTuple`` its ``h``, for a ``MultiRNNCell`` the last
layer's).

States as tensors. A layer with ``return_state=True`` returns the final
state after its output, *flattened* in the cell's state order: one array
``[B, H]`` for a plain cell; ``c`` then ``h`` for an ``LSTMStateTuple``;
layer by layer (each flattened the same way) for a ``MultiRNNCell``. An
``initial_state`` given as inputs uses the same flat order (or the cell's
state structure itself, flattened the same way).

Shape letters: ``B`` batch, ``T`` time, ``I`` input size, ``H`` the cell's
output size.
"""

from __future__ import annotations

import numbers
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .._state import LSTMStateTuple, map_state
from .._validate import flag, float_array
from ..cells import WEIGHTS_LOCK, RNNCell, build_for_inputs, check_mapping
from ..rnn import Backprop, dynamic_rnn, reverse_within_lengths
from ..saving.registry import register
from .base import (
    Applied,
    Layer,
    LayerOutput,
    Spec,
    SymbolicTensor,
    float_spec,
    generator_state,
    restore_generator,
    symbolic_inputs,
)

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def cell_shapes(cell: RNNCell, input_size: int) -> dict[str, tuple[int, ...]]:
    """The weight shapes of a cell (built or not) for inputs of ``input_size`` (no allocation)."""
    cells = getattr(cell, "cells", None)
    if isinstance(cells, list):  # MultiRNNCell: layer i reads layer i-1's outputs
        shapes: dict[str, tuple[int, ...]] = {}
        size = input_size
        for i, c in enumerate(cells):
            shapes.update({f"cell_{i}/{k}": s for k, s in cell_shapes(c, size).items()})
            size = int(c.output_size)
        return shapes
    inner = getattr(cell, "cell", None)
    if isinstance(inner, RNNCell):  # a wrapper: the inner cell's weights and its own
        own = getattr(cell, "_own_shapes", None)
        return {**cell_shapes(inner, input_size), **(own() if callable(own) else {})}
    return {k: tuple(int(n) for n in s) for k, s in cell._weight_shapes(input_size).items()}


# -- state structures <-> flat lists -------------------------------------------


def _numeric_leaf(value: Any) -> bool:
    """Whether a list or tuple is nested numbers (one array written as lists), not a list of arrays."""
    first: Any = value
    for _ in range(2):
        if not isinstance(first, (list, tuple)) or isinstance(first, LSTMStateTuple) or not first:
            return False
        first = first[0]
        if isinstance(first, (numbers.Number, np.generic)):
            return True
    return False


def cell_generator_state(cell: RNNCell) -> dict[str, np.ndarray]:
    r"""The positions of the mask generators of the ``DropoutWrapper``\ s in
    ``cell`` (``{"dropout_<i>/generator": 6 uint64}``, in the cell's order)."""
    from ..trainers.shard_rng import mask_sources

    return {f"dropout_{i}/generator": generator_state(src._rng) for i, src in enumerate(mask_sources(cell))}


def restore_cell_generators(cell: RNNCell, mapping: Mapping[str, Any]) -> None:
    """Puts the generators of :func:`cell_generator_state` back (``ValueError`` for unknown names)."""
    from ..trainers.shard_rng import mask_sources

    check_mapping(mapping)
    sources = mask_sources(cell)
    names = [f"dropout_{i}/generator" for i in range(len(sources))]
    unknown = sorted(set(mapping) - set(names))
    if unknown:
        raise ValueError(f"mapping: expected names among {names}, got unknown {unknown}")
    for name, src in zip(names, sources):
        if name in mapping:
            restore_generator(f"state[{name!r}]", src._rng, mapping[name])


def flatten_state(state: Any) -> list[Any]:
    """A state structure (or an already flat list) as a flat list of its
    arrays: ``c`` then ``h`` for an ``LSTMStateTuple``, layer by layer for a
    ``MultiRNNCell``'s tuple. Leaves (arrays, symbolic tensors, nested
    lists of numbers) are kept as they are."""
    if isinstance(state, LSTMStateTuple):
        return flatten_state(state.c) + flatten_state(state.h)
    if isinstance(state, (tuple, list)) and not _numeric_leaf(state):
        return [leaf for part in state for leaf in flatten_state(part)]
    return [state]


def unflatten_state(template: Any, flat: Sequence[Any]) -> Any:
    """``flat`` (as many leaves as ``template`` has) in ``template``'s structure."""
    leaves = iter(flat)
    return map_state(lambda _is_c, _a: next(leaves), template)


def _state_template(cell: RNNCell) -> Any:
    """The cell's state structure with zero rows (its widths, no batch)."""
    return cell.zero_state(0)


def _bool_arg(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__} {value!r}")
    return flag(name, value)


def _state_spec_checks(layer: Layer, specs: Sequence[Spec], widths: Sequence[int], dtype: np.dtype[Any]) -> None:
    """Checks the specs of an ``initial_state`` given as inputs (``[batch, width]`` each)."""
    for i, (spec, width) in enumerate(zip(specs, widths)):
        want = Spec((None, width), dtype)
        if spec.dtype != dtype or len(spec.shape) != 2 or spec.shape[1] != width:
            raise ValueError(
                f"initial_state[{i}]: expected {want.describe()} (the cell's state, flattened), got {spec.describe()}"
            )


class StateInputs(Layer):
    """A layer whose call takes an ``initial_state`` (extra inputs after the sequence)."""

    def _eager_states(self, x: np.ndarray, flat: list[Any]) -> list[np.ndarray]:
        """The flat eager initial state validated for inputs ``x``."""
        raise NotImplementedError

    def __call__(
        self,
        inputs: Any,
        sequence_length: Any = None,
        training: bool = False,
        return_backprop: bool = False,
        initial_state: Any = None,
    ) -> Any:
        """The forward pass (see :meth:`Layer.__call__`), from ``initial_state``
        when given (see the class doc for its form: a state structure or the
        flat list of its arrays; symbolic tensors on symbolic inputs, which
        become the node's inputs after the sequence). With
        ``return_backprop`` and an ``initial_state``, the gradients'
        ``inputs`` are ``[d_x, *d_state]`` (flat)."""
        if initial_state is None:
            return super().__call__(inputs, sequence_length, training, return_backprop)
        flat = flatten_state(initial_state)
        if isinstance(inputs, SymbolicTensor) or any(isinstance(t, SymbolicTensor) for t in flat):
            if not isinstance(inputs, SymbolicTensor):
                symbolic_inputs([*flat, inputs])  # raises TypeError for the mix
                raise TypeError(
                    f"inputs: expected one symbolic tensor with a symbolic initial_state, got {type(inputs).__name__}"
                )
            return super().__call__([inputs, *flat], sequence_length, training, return_backprop)
        x = self._prepare(inputs)
        return self._call_eager([x, *self._eager_states(x, flat)], sequence_length, training, return_backprop)


@register("layer")
class RNN(StateInputs):
    """Any rnnrs cell as a layer (``tf.nn.dynamic_rnn`` plus the read-out;
    ``keras.layers.RNN``).

    Args:
        cell: an :class:`rnnrs.RNNCell` (any cell or wrapper).
        return_sequences: True: outputs ``[B, T, H]`` (zero past each row's
            length); False (default): the output at each row's last valid
            step, ``[B, H]`` (zeros for a row of length 0) — the "final
            state" read-out of a sequence classifier, for any cell.
        return_state: also return the final state: the outputs become
            ``[y, *state]``, the state flattened in the cell's order (one
            ``[B, H]`` array for a plain cell, ``c`` then ``h`` for an LSTM,
            layer by layer for a ``MultiRNNCell``). Gradients flow into them.
            A row of length 0 returns its initial state (TensorFlow 1.x).
        go_backwards: read each row reversed *within its own length* (its
            padding stays at the end). Sequence outputs are returned in
            processing order (as Keras does): step ``t`` of a row is the
            output after reading its last ``t + 1`` valid inputs; with
            ``return_sequences=False`` the output is the last processed step's
            (after reading the whole row, first input last).
        stateful: the final state of each call (training or not) is the
            initial state of the next one (same batch size, else
            ``ValueError``); :meth:`reset_states` goes back to zeros. The
            state is kept as a copy: no gradient flows between calls. An
            ``initial_state`` given to a call (or the ``state`` a model's
            generation passes) is used instead of the kept state for that
            call; its final state is kept as usual.
        name: the layer's name (default ``"rnn"``); in a model the cell's
            weights are ``<name>/<cell weight name>``.

    Call: ``rnn(x, initial_state=None, sequence_length=None, training=False)``
    with ``x`` ``[B, T, I]``; ``initial_state`` the cell's state structure or
    the flat list of its arrays (see ``return_state``), also symbolic tensors
    in a functional model (``rnn(x, initial_state=[c, h])``: the node's
    inputs are ``[x, c, h]``; ``rnn([x, c, h])`` is the same node). Dropout
    wrappers are active when called with ``training=True``.

    Weights: the cell's, by its names. Outputs carry the inputs' sequence
    lengths when they keep the time axis; state outputs carry none.
    """

    default_name = "rnn"

    def __init__(
        self,
        cell: RNNCell,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        name: Optional[str] = None,
    ) -> None:
        super().__init__(name)
        if not isinstance(cell, RNNCell):
            raise TypeError(f"cell: expected an rnnrs cell (e.g. BasicRNNCell), got {type(cell).__name__}")
        self.cell = cell
        self.return_sequences = _bool_arg("return_sequences", return_sequences)
        self.return_state = _bool_arg("return_state", return_state)
        self.go_backwards = _bool_arg("go_backwards", go_backwards)
        self.stateful = _bool_arg("stateful", stateful)
        self._kept_state: Any = None

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

    def state_widths(self) -> list[int]:
        """The widths of the flat state arrays (``return_state`` outputs, ``initial_state`` inputs)."""
        return [int(a.shape[1]) for a in flatten_state(_state_template(self.cell))]

    def get_weights(self) -> dict[str, np.ndarray]:
        return self.cell.get_weights()

    def set_weights(self, mapping: Mapping[str, Any]) -> None:
        self.cell.set_weights(mapping)

    def get_state(self) -> dict[str, np.ndarray]:
        """The positions of the mask generators of the cell's
        ``DropoutWrapper`` cells (``{"dropout_<i>/generator": 6 uint64}``, in
        the cell's order), saved with a model so that training resumes with
        the same masks; ``{}`` for a cell without one."""
        return cell_generator_state(self.cell)

    def set_state(self, mapping: Mapping[str, Any]) -> None:
        restore_cell_generators(self.cell, mapping)

    def get_config(self) -> dict[str, Any]:
        from ..saving.serialize import cell_to_config

        return {
            "cell": cell_to_config(self.cell),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "name": self.name,
        }

    # -- stateful --------------------------------------------------------------
    @property
    def states(self) -> Any:
        """The state kept by a stateful layer for its next call (a copy, in
        the cell's structure), or None (zeros will be used)."""
        return None if self._kept_state is None else map_state(lambda _c, a: a.copy(), self._kept_state)

    def reset_states(self) -> None:
        """Forgets the kept state: the next call of a stateful layer starts from zeros."""
        self._kept_state = None

    # -- graph protocol ----------------------------------------------------------
    def weight_shapes(self, inputs: Sequence[Spec]) -> dict[str, tuple[int, ...]]:
        size = inputs[0].shape[-1]
        assert size is not None
        return cell_shapes(self.cell, int(size))

    def compute_output_spec(self, inputs: Sequence[Spec]) -> list[Spec]:
        widths = self.state_widths()
        if len(inputs) not in (1, 1 + len(widths)):
            raise ValueError(
                f"inputs: expected the sequence, or the sequence and the {len(widths)} arrays of the initial state, "
                f"got {len(inputs)} inputs"
            )
        y = self._output_spec(inputs[0])
        _state_spec_checks(self, inputs[1:], widths, self.cell.dtype)
        states = [Spec((None, w), self.cell.dtype) for w in widths] if self.return_state else []
        return [y, *states]

    def _output_spec(self, spec: Spec) -> Spec:
        float_spec(self, spec, 3, "[batch, time, input]")
        size = spec.shape[-1]
        assert size is not None
        build_for_inputs(self.cell, int(size))
        h = self.output_size()
        return Spec((None, spec.shape[1], h) if self.return_sequences else (None, h), self.cell.dtype)

    def _prepare(self, inputs: Any) -> np.ndarray:
        x = float_array("inputs", inputs, self.cell.dtype, 3, "[batch, time, input]")
        build_for_inputs(self.cell, x.shape[2])
        return x

    def _check_flat_state(self, flat: Sequence[Any], batch: int) -> list[np.ndarray]:
        """A flat initial state (eager values) validated against the cell, as a flat list of arrays."""
        template = _state_template(self.cell)
        n = len(flatten_state(template))
        if len(flat) != n:
            raise ValueError(
                f"initial_state: expected the cell's state or the flat list of its {n} arrays "
                f"(c then h for an LSTM, layer by layer for a MultiRNNCell), got {len(flat)} arrays"
            )
        return flatten_state(self.cell._check_state("initial_state", unflatten_state(template, flat), batch))

    def _eager_states(self, x: np.ndarray, flat: list[Any]) -> list[np.ndarray]:
        return self._check_flat_state(flat, x.shape[0])

    def _initial_state(self, inputs: Sequence[np.ndarray], batch: int, state: Any) -> Any:
        """The state a call starts from: initial-state inputs, else ``state``,
        else the kept state of a stateful layer, else None (zeros)."""
        if len(inputs) > 1:
            return self.cell._check_state(
                "initial_state", unflatten_state(_state_template(self.cell), inputs[1:]), batch
            )
        if state is not None:
            return state
        kept = self._kept_state
        if self.stateful and kept is not None:
            kept_batch = int(flatten_state(kept)[0].shape[0])
            if kept_batch != batch:
                raise ValueError(
                    f"inputs: expected batch size {kept_batch} (stateful layer {self.name!r} keeps the state of "
                    f"{kept_batch} rows; call reset_states() to start anew), got {batch}"
                )
            return kept
        return None

    def _apply(
        self,
        inputs: Sequence[np.ndarray],
        lengths: Sequence[Optional[np.ndarray]],
        training: bool,
        state: Any = None,
    ) -> Applied:
        """``inputs``: ``[x, *flat initial state]`` (the state optional);
        outputs ``[y]`` or ``[y, *flat final state]``. ``state`` (the cell's
        structure) is the initial state when no initial-state inputs are given."""
        x = inputs[0]
        if x.ndim != 3:
            raise ValueError(
                f"inputs: expected a 3-d array [batch, time, input] for layer {self.name!r}, got shape {x.shape}"
            )
        lens = lengths[0]
        n_given = len(inputs) - 1
        initial = self._initial_state(inputs, x.shape[0], state)
        seq = reverse_within_lengths(x, lens, False) if self.go_backwards else x
        outputs, final, backprop = dynamic_rnn(
            self.cell, seq, sequence_length=lens, initial_state=initial, training=training, return_backprop=True
        )
        assert isinstance(backprop, Backprop)
        if self.stateful:
            self._kept_state = map_state(lambda _c, a: a.copy(), final)
        flat_final = flatten_state(final)
        template = _state_template(self.cell)
        batch, time = outputs.shape[0], outputs.shape[1]
        rows: Any = slice(None)
        last: Any = time - 1
        if self.return_sequences:
            y = outputs
        elif lens is None:
            y = outputs[:, -1, :].copy() if time else np.zeros((batch, outputs.shape[2]), outputs.dtype)
        else:
            rows = np.flatnonzero(lens > 0)
            last = lens[rows] - 1
            y = np.zeros((batch, outputs.shape[2]), dtype=outputs.dtype)
            y[rows] = outputs[rows, last]
        return_sequences, go_backwards = self.return_sequences, self.go_backwards
        shape = outputs.shape

        def backward(
            d_outputs: list[Optional[np.ndarray]], need: list[bool]
        ) -> tuple[list[Optional[np.ndarray]], dict[str, np.ndarray]]:
            d_y = d_outputs[0]
            d_seq = d_y
            if d_y is not None and not return_sequences:
                d_seq = np.zeros(shape, dtype=d_y.dtype)
                if time:
                    d_seq[rows, last] = d_y[rows]
            d_state = None
            d_flat = d_outputs[1:]
            if any(d is not None for d in d_flat):
                d_state = unflatten_state(
                    template, [np.zeros_like(f) if d is None else d for d, f in zip(d_flat, flat_final)]
                )
            g = backprop(d_outputs=d_seq, d_state=d_state)
            d_x = g.inputs
            if go_backwards:
                d_x = reverse_within_lengths(d_x, lens, False)
            d_inputs: list[Optional[np.ndarray]] = [d_x if need[0] else None]
            if n_given:
                d_inputs += [d if wanted else None for d, wanted in zip(flatten_state(g.initial_state), need[1:])]
            return d_inputs, g.weights

        outs = [y, *flat_final] if self.return_state else [y]
        out_lengths = [lens if self.return_sequences else None] + [None] * (len(outs) - 1)
        return Applied(outs, out_lengths, final, backward)

    def _forward(self, x: np.ndarray, lengths: Optional[np.ndarray], training: bool, state: Any = None) -> LayerOutput:
        """The one-output forward (``return_state=False``) for callers of the
        one-input, one-output protocol."""
        if self.return_state:
            raise ValueError(
                f"return_state: expected False for layer {self.name!r} in a Sequential model "
                "(its state outputs need a functional Model), got True"
            )
        out = self._apply([x], [lengths], training, state)

        def backward(d: np.ndarray, need_d_inputs: bool) -> tuple[Optional[np.ndarray], dict[str, np.ndarray]]:
            d_x, d_w = out.backward([d], [need_d_inputs])
            return d_x[0], d_w

        return LayerOutput(out.outputs[0], out.state, backward)


# -- Bidirectional ---------------------------------------------------------------


def _derived_seed(seed: int) -> int:
    """A seed for the backward copy, distinct from (and fixed by) the forward one."""
    return int(np.random.SeedSequence([seed, 0x62774277]).generate_state(1)[0])


def _reseeded(config: Any) -> Any:
    """A cell configuration with every ``seed`` replaced by :func:`_derived_seed` of it."""
    if isinstance(config, dict):
        return {
            k: (_derived_seed(v) if k == "seed" and isinstance(v, int) and not isinstance(v, bool) else _reseeded(v))
            for k, v in config.items()
        }
    if isinstance(config, list):
        return [_reseeded(v) for v in config]
    return config


def _merge_width(mode: Optional[str], fw: int, bw: int) -> int:
    return fw + bw if mode == "concat" else fw


@register("layer")
class Bidirectional(StateInputs):
    """Runs an :class:`RNN` forwards and a copy of it backwards over each row
    and merges the two (``keras.layers.Bidirectional``,
    ``tf.nn.bidirectional_dynamic_rnn``).

    Args:
        layer: an :class:`RNN`: the forward direction (this very layer, its
            weights kept).
        merge_mode: ``"concat"`` (default; last axis ``H_fw + H_bw``),
            ``"sum"``, ``"mul"``, ``"ave"`` (both directions of one width), or
            None: two outputs ``[fw, bw]``.
        backward_layer: an :class:`RNN` for the backward direction, whose
            ``go_backwards`` differs from ``layer``'s and whose
            ``return_sequences``, ``return_state`` and ``stateful`` equal it;
            None (default): built from ``layer``'s configuration with
            ``go_backwards`` flipped and a new cell (its own weights; every
            ``seed`` in the cell's configuration replaced by one derived from
            it, so the directions do not start equal). A cell that rnnrs
            cannot rebuild from its configuration (a class of your own)
            needs an explicit ``backward_layer``.
        name: the layer's name (default ``"bidirectional"``).

    The backward direction reads each row reversed within its own length;
    its sequence outputs are re-aligned to input order (step ``t`` of both
    belongs to input ``t``; when ``layer`` itself has ``go_backwards=True``
    the roles swap and both come out in reversed order, as in Keras). With ``return_sequences=False`` the outputs are
    the forward direction's at each row's last valid step and the backward
    direction's after reading the whole row.

    Outputs: the merged output (or ``fw, bw``), then with ``return_state``
    the forward final state flattened, then the backward one (see
    :class:`RNN`). ``initial_state`` (call argument, or extra inputs in a
    graph): the forward state's flat arrays, then the backward's. Sequence
    outputs carry the inputs' lengths.

    Weights: ``forward/<cell weight>`` and ``backward/<cell weight>``.
    """

    default_name = "bidirectional"

    def __init__(
        self,
        layer: RNN,
        merge_mode: Optional[str] = "concat",
        backward_layer: Optional[RNN] = None,
        name: Optional[str] = None,
    ) -> None:
        super().__init__(name)
        if not isinstance(layer, RNN):
            raise TypeError(f"layer: expected an rnnrs RNN layer, got {type(layer).__name__}")
        if merge_mode is not None and not isinstance(merge_mode, str):
            raise TypeError(f"merge_mode: expected one of {MERGE_MODES}, got {type(merge_mode).__name__}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode: expected one of {MERGE_MODES}, got {merge_mode!r}")
        self.merge_mode = merge_mode
        self._given_backward = backward_layer is not None
        if backward_layer is None:
            from ..saving.serialize import cell_from_config, cell_to_config

            cell = cell_from_config(_reseeded(cell_to_config(layer.cell)))
            backward_layer = RNN(
                cell,
                return_sequences=layer.return_sequences,
                return_state=layer.return_state,
                go_backwards=not layer.go_backwards,
                stateful=layer.stateful,
                name="backward_" + layer.name,
            )
        elif not isinstance(backward_layer, RNN):
            raise TypeError(f"backward_layer: expected an rnnrs RNN layer or None, got {type(backward_layer).__name__}")
        else:
            if backward_layer is layer or backward_layer.cell is layer.cell:
                raise ValueError("backward_layer: expected a layer with its own cell (not layer's), got layer's")
            if backward_layer.go_backwards == layer.go_backwards:
                raise ValueError(
                    f"backward_layer: expected go_backwards={not layer.go_backwards} (the opposite of layer's), "
                    f"got {backward_layer.go_backwards}"
                )
            for attr in ("return_sequences", "return_state", "stateful"):
                if getattr(backward_layer, attr) != getattr(layer, attr):
                    raise ValueError(
                        f"backward_layer: expected {attr}={getattr(layer, attr)} (layer's), "
                        f"got {getattr(backward_layer, attr)}"
                    )
            if backward_layer.dtype != layer.dtype:
                raise ValueError(
                    f"backward_layer: expected dtype {layer.dtype.name} (layer's), got {backward_layer.dtype.name}"
                )
        fw_size, bw_size = layer.output_size(), backward_layer.output_size()
        if merge_mode in ("sum", "mul", "ave") and fw_size != bw_size:
            raise ValueError(
                f"merge_mode: expected 'concat' or None for directions of different widths, "
                f"got {merge_mode!r} with widths {fw_size} and {bw_size}"
            )
        self.forward_layer = layer
        self.backward_layer = backward_layer

    @property
    def return_sequences(self) -> bool:
        return self.forward_layer.return_sequences

    @property
    def return_state(self) -> bool:
        return self.forward_layer.return_state

    @property
    def stateful(self) -> bool:
        return self.forward_layer.stateful

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.forward_layer.dtype

    @property
    def built(self) -> bool:
        return self.forward_layer.built and self.backward_layer.built

    def build(self, input_size: int, dtype: Any = None) -> None:
        self.forward_layer.build(input_size)
        self.backward_layer.build(input_size)

    def output_size(self) -> int:
        return _merge_width(self.merge_mode, self.forward_layer.output_size(), self.backward_layer.output_size())

    def reset_states(self) -> None:
        """Forgets both directions' kept states (stateful layers)."""
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    def get_weights(self) -> dict[str, np.ndarray]:
        return {
            **{f"forward/{k}": v for k, v in self.forward_layer.get_weights().items()},
            **{f"backward/{k}": v for k, v in self.backward_layer.get_weights().items()},
        }

    def set_weights(self, mapping: Mapping[str, Any]) -> None:
        """Replaces weights named ``forward/<w>`` and ``backward/<w>``; all
        are validated before any changes."""
        check_mapping(mapping)
        parts: dict[str, dict[str, Any]] = {"forward": {}, "backward": {}}
        for key, value in mapping.items():
            head, _, rest = key.partition("/")
            if head not in parts or not rest:
                raise ValueError(
                    f"mapping: expected names 'forward/<weight>' or 'backward/<weight>', got unknown {key!r}"
                )
            parts[head][rest] = value
        commits = [
            layer.cell._prepare_weights(parts[head], head + "/")
            for head, layer in (("forward", self.forward_layer), ("backward", self.backward_layer))
            if parts[head]
        ]
        with WEIGHTS_LOCK:
            for commit in commits:
                commit()

    def get_state(self) -> dict[str, np.ndarray]:
        """Both directions' :meth:`RNN.get_state`, named ``forward/...`` and ``backward/...``."""
        return {
            **{f"forward/{k}": v for k, v in self.forward_layer.get_state().items()},
            **{f"backward/{k}": v for k, v in self.backward_layer.get_state().items()},
        }

    def set_state(self, mapping: Mapping[str, Any]) -> None:
        check_mapping(mapping)
        parts: dict[str, dict[str, Any]] = {"forward": {}, "backward": {}}
        for key, value in mapping.items():
            head, _, rest = key.partition("/")
            if head not in parts or not rest:
                raise ValueError(f"mapping: expected names 'forward/<name>' or 'backward/<name>', got unknown {key!r}")
            parts[head][rest] = value
        self.forward_layer.set_state(parts["forward"])
        self.backward_layer.set_state(parts["backward"])

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "layer": {"class_name": type(self.forward_layer).__name__, "config": self.forward_layer.get_config()},
            "merge_mode": self.merge_mode,
        }
        if self._given_backward:
            config["backward_layer"] = {
                "class_name": type(self.backward_layer).__name__,
                "config": self.backward_layer.get_config(),
            }
        config["name"] = self.name
        return config

    def __repr__(self) -> str:
        return f"Bidirectional({self.forward_layer!r}, merge_mode={self.merge_mode!r}, name={self.name!r})"

    # -- graph protocol ----------------------------------------------------------
    def weight_shapes(self, inputs: Sequence[Spec]) -> dict[str, tuple[int, ...]]:
        return {
            **{f"forward/{k}": s for k, s in self.forward_layer.weight_shapes(inputs[:1]).items()},
            **{f"backward/{k}": s for k, s in self.backward_layer.weight_shapes(inputs[:1]).items()},
        }

    def _split_states(self, items: Sequence[Any]) -> tuple[list[Any], list[Any]]:
        """Initial-state inputs (after the sequence) as (forward's, backward's)."""
        n_fw, n_bw = len(self.forward_layer.state_widths()), len(self.backward_layer.state_widths())
        if len(items) not in (0, n_fw + n_bw):
            raise ValueError(
                f"initial_state: expected {n_fw + n_bw} arrays (the forward state's {n_fw}, then the backward "
                f"state's {n_bw}, flattened), got {len(items)}"
            )
        return list(items[:n_fw]), list(items[n_fw:])

    def compute_output_spec(self, inputs: Sequence[Spec]) -> list[Spec]:
        if not inputs:
            raise ValueError("inputs: expected the sequence (and optionally the initial states), got no inputs")
        fw_in, bw_in = self._split_states(inputs[1:])
        fw = self.forward_layer.compute_output_spec([inputs[0], *fw_in])
        bw = self.backward_layer.compute_output_spec([inputs[0], *bw_in])
        y_fw, y_bw = fw[0], bw[0]
        if self.merge_mode is None:
            merged = [y_fw, y_bw]
        else:
            width = _merge_width(self.merge_mode, int(y_fw.shape[-1] or 0), int(y_bw.shape[-1] or 0))
            merged = [Spec(y_fw.shape[:-1] + (width,), y_fw.dtype)]
        return merged + fw[1:] + bw[1:]

    def _prepare(self, inputs: Any) -> np.ndarray:
        x = self.forward_layer._prepare(inputs)
        self.backward_layer._prepare(x)
        return x

    def _eager_states(self, x: np.ndarray, flat: list[Any]) -> list[np.ndarray]:
        fw, bw = self._split_states(flat)
        return self.forward_layer._check_flat_state(fw, x.shape[0]) + self.backward_layer._check_flat_state(
            bw, x.shape[0]
        )

    def _apply(
        self,
        inputs: Sequence[np.ndarray],
        lengths: Sequence[Optional[np.ndarray]],
        training: bool,
        state: Any = None,
    ) -> Applied:
        """``inputs``: ``[x, *fw initial state, *bw initial state]`` (states
        optional); ``state``: a ``(forward, backward)`` pair of structures, or None."""
        x, lens = inputs[0], lengths[0]
        fw_in, bw_in = self._split_states(inputs[1:])
        state_fw, state_bw = (None, None) if state is None else state
        fw = self.forward_layer._apply([x, *fw_in], [lens] * (1 + len(fw_in)), training, state_fw)
        bw = self.backward_layer._apply([x, *bw_in], [lens] * (1 + len(bw_in)), training, state_bw)
        seq = self.return_sequences
        y_fw, y_bw = fw.outputs[0], bw.outputs[0]
        if seq:  # processing order -> input order
            y_bw = reverse_within_lengths(y_bw, lens, False)
        mode = self.merge_mode
        width_fw = y_fw.shape[-1]
        merged: list[np.ndarray]
        if mode is None:
            merged = [y_fw, y_bw]
        elif mode == "concat":
            merged = [np.concatenate([y_fw, y_bw], axis=-1)]
        elif mode == "sum":
            merged = [y_fw + y_bw]
        elif mode == "mul":
            merged = [y_fw * y_bw]
        else:
            merged = [(y_fw + y_bw) / 2]
        n_merged = len(merged)
        n_fw_states = len(fw.outputs) - 1
        outs = merged + fw.outputs[1:] + bw.outputs[1:]
        out_lengths = [lens if seq else None] * n_merged + [None] * (len(outs) - n_merged)

        def backward(
            d_outputs: list[Optional[np.ndarray]], need: list[bool]
        ) -> tuple[list[Optional[np.ndarray]], dict[str, np.ndarray]]:
            d_fw: Optional[np.ndarray]
            d_bw: Optional[np.ndarray]
            if mode is None:
                d_fw, d_bw = d_outputs[0], d_outputs[1]
            else:
                d = d_outputs[0]
                if d is None:
                    d_fw = d_bw = None
                elif mode == "concat":
                    d_fw, d_bw = d[..., :width_fw], d[..., width_fw:]
                elif mode == "sum":
                    d_fw = d_bw = d
                elif mode == "mul":
                    d_fw, d_bw = d * y_bw, d * y_fw
                else:
                    d_fw = d_bw = d / 2
            if seq and d_bw is not None:
                d_bw = reverse_within_lengths(d_bw, lens, False)
            d_states = d_outputs[n_merged:]
            need_fw = [need[0], *need[1 : 1 + len(fw_in)]]
            need_bw = [need[0], *need[1 + len(fw_in) :]]
            dx_fw, dw_fw = fw.backward([d_fw, *d_states[:n_fw_states]], need_fw)
            dx_bw, dw_bw = bw.backward([d_bw, *d_states[n_fw_states:]], need_bw)
            d_x: Optional[np.ndarray] = None
            if need[0]:
                assert dx_fw[0] is not None and dx_bw[0] is not None
                d_x = dx_fw[0] + dx_bw[0]
            weights = {
                **{f"forward/{k}": v for k, v in dw_fw.items()},
                **{f"backward/{k}": v for k, v in dw_bw.items()},
            }
            return [d_x, *dx_fw[1:], *dx_bw[1:]], weights

        return Applied(outs, out_lengths, (fw.state, bw.state), backward)
