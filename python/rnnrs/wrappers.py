"""Cell wrappers (TensorFlow 1.x ``MultiRNNCell``, ``DropoutWrapper``,
``OutputProjectionWrapper``, ``ResidualWrapper``). They compose and nest; a
wrapper exposes the wrapped cell as ``.cell``, ``MultiRNNCell`` its layers
as ``.cells``. Each runs whole sequences layer-major: a wrapped cell runs
its whole sequence in one Rust call, and backpropagation chains through.

A wrapper's ``set_weights`` validates every part first and then swaps all of
them in at once: a call running in another thread at the same time uses one
snapshot of every weight it needs, all from before the update or all from
after it.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from ._state import LSTMStateTuple, map_state
from ._validate import bounded_int, check_shape, flag, float_array, positive_int, seed_value
from .cells import (
    Backward,
    Lengths,
    RNNCell,
    cell_dtype,
    check_mapping,
    check_reuse,
    checked_size,
    glorot_uniform,
    refuse_unless_none,
)
from .saving.registry import register


def _check_cell(name: str, cell: Any) -> RNNCell:
    if not isinstance(cell, RNNCell):
        raise TypeError(f"{name}: expected an rnnrs cell (e.g. BasicRNNCell), got {type(cell).__name__}")
    return cell


def active_mask(inputs: np.ndarray, lengths: Optional[np.ndarray], time_major: bool) -> Optional[np.ndarray]:
    """Boolean ``[B, T, 1]`` (``[T, B, 1]`` when time-major, like ``inputs``):
    True where a row is still running; None when every row runs every step."""
    if lengths is None:
        return None
    time = inputs.shape[0] if time_major else inputs.shape[1]
    mask = np.arange(time)[None, :] < lengths[:, None]  # [B, T]
    return (mask.T if time_major else mask)[..., None]


class _Wrapper(RNNCell):
    """A cell around one cell: its state and weights, plus its own."""

    def __init__(self, cell: RNNCell) -> None:  # noqa: D107 (no RNNCell.__init__: nothing of its own)
        self.cell = _check_cell("cell", cell)

    @property
    def num_units(self) -> int:
        return self.cell.num_units

    @property
    def state_size(self) -> Any:
        return self.cell.state_size

    @property
    def output_size(self) -> int:
        return self.cell.output_size

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.cell.dtype

    @property
    def input_size(self) -> Optional[int]:
        return self.cell.input_size

    @property
    def built(self) -> bool:
        return self.cell.built

    def build(self, input_size: int) -> None:
        self.cell.build(input_size)

    def _snapshot(self) -> Any:
        return self.cell._snapshot()

    def _named(self, snapshot: Any) -> dict[str, np.ndarray]:
        return self.cell._named(snapshot)

    def _prepare_weights(self, mapping: Mapping[str, Any], prefix: str) -> Callable[[], None]:
        return self.cell._prepare_weights(mapping, prefix)

    def zero_state(self, batch_size: int) -> Any:
        return self.cell.zero_state(batch_size)

    def _check_state(self, name: str, state: Any, batch: int) -> Any:
        return self.cell._check_state(name, state, batch)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.cell!r})"


def _cell_objects(cell: RNNCell) -> list[RNNCell]:
    """``cell`` and every cell inside it (through wrappers and stacks)."""
    found = [cell]
    if isinstance(cell, MultiRNNCell):
        for inner in cell.cells:
            found += _cell_objects(inner)
    elif isinstance(getattr(cell, "cell", None), RNNCell):
        found += _cell_objects(cell.cell)  # type: ignore[attr-defined]
    return found


def _check_distinct(cells: Sequence[RNNCell]) -> None:
    """Refuses a cell object that appears in two layers (or twice in one
    layer's wrappers): the layers would silently share its weights."""
    seen: dict[int, int] = {}
    for i, layer in enumerate(cells):
        for cell in _cell_objects(layer):
            first = seen.setdefault(id(cell), i)
            if first != i:
                raise ValueError(
                    f"cells: expected a distinct cell object for each layer, got the same {type(cell).__name__} "
                    f"object in layers {first} and {i} (the layers would share one set of weights); "
                    f"create one cell per layer, e.g. MultiRNNCell([{type(cell).__name__}(...) for _ in range(n)])"
                )


@register("cell")
class MultiRNNCell(RNNCell):
    """Stacked cells: layer ``i`` reads layer ``i-1``'s outputs.

    Args:
        cells: the layers, bottom first (all of one dtype), each a distinct
            cell object: ``MultiRNNCell([cell] * 3)``, or one cell in two
            places (``MultiRNNCell([a, DropoutWrapper(a)])``), raises
            ``ValueError`` since the layers would share one set of weights
            (TensorFlow 1.x refused it too); write
            ``MultiRNNCell([GRUCell(n) for _ in range(3)])``.
        state_is_tuple: must be True (TensorFlow 1.x's concatenated state is
            not supported).

    The state is a tuple of the layers' states; the weights are the layers'
    weights under ``cell_0/``, ``cell_1/``, ... (TensorFlow 1.x's
    ``multi_rnn_cell/cell_0/<cell scope>/...`` with ``get_weights(scope=...)``).
    Runs layer-major: each layer processes the whole sequence in one Rust call.
    """

    _CONFIG = ("cells", "state_is_tuple")
    TF_SCOPE = "multi_rnn_cell"
    #: Always True (the only value the constructor accepts).
    state_is_tuple = True

    def __init__(self, cells: Sequence[RNNCell], state_is_tuple: bool = True) -> None:
        if isinstance(cells, RNNCell) or not isinstance(cells, Sequence):
            raise TypeError(f"cells: expected a list of rnnrs cells, got {type(cells).__name__}")
        if not cells:
            raise ValueError("cells: expected at least one cell, got an empty list")
        self.cells = [_check_cell(f"cells[{i}]", c) for i, c in enumerate(cells)]
        _check_distinct(self.cells)
        dtypes = {c.dtype for c in self.cells}
        if len(dtypes) != 1:
            raise ValueError(f"cells: expected one dtype for every layer, got {sorted(d.name for d in dtypes)}")
        if state_is_tuple is not True:
            raise ValueError(f"state_is_tuple: expected True, got {state_is_tuple!r}")

    @property
    def num_units(self) -> int:
        return self.cells[-1].num_units

    @property
    def state_size(self) -> Any:
        return tuple(c.state_size for c in self.cells)

    @property
    def output_size(self) -> int:
        return self.cells[-1].output_size

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.cells[0].dtype

    @property
    def input_size(self) -> Optional[int]:
        return self.cells[0].input_size

    @property
    def built(self) -> bool:
        return all(c.built for c in self.cells)

    def build(self, input_size: int) -> None:
        size = input_size
        for cell in self.cells:
            cell.build(size)
            size = cell.output_size

    def _snapshot(self) -> Any:
        return tuple(c._snapshot() for c in self.cells)

    def _named(self, snapshot: Any) -> dict[str, np.ndarray]:
        return {
            f"cell_{i}/{k}": v
            for i, (c, snap) in enumerate(zip(self.cells, snapshot))
            for k, v in c._named(snap).items()
        }

    def _prepare_weights(self, mapping: Mapping[str, Any], prefix: str) -> Callable[[], None]:
        check_mapping(mapping)
        parts: list[dict[str, Any]] = [{} for _ in self.cells]
        for name, value in mapping.items():
            head, _, rest = name.partition("/")
            index = head[5:] if head.startswith("cell_") else ""
            if not (index.isdigit() and int(index) < len(self.cells) and rest):
                raise ValueError(
                    f"mapping: expected names '{prefix}cell_<i>/<weight>' with i < {len(self.cells)}, "
                    f"got unknown {prefix + name!r}"
                )
            parts[int(index)][rest] = value
        commits = [
            cell._prepare_weights(part, f"{prefix}cell_{i}/")
            for i, (cell, part) in enumerate(zip(self.cells, parts))
            if part
        ]

        def commit() -> None:
            for apply in commits:
                apply()

        return commit

    def zero_state(self, batch_size: int) -> Any:
        return tuple(c.zero_state(batch_size) for c in self.cells)

    def _check_state(self, name: str, state: Any, batch: int) -> Any:
        if isinstance(state, (np.ndarray, LSTMStateTuple)) or not isinstance(state, (tuple, list)):
            raise TypeError(f"{name}: expected a tuple of {len(self.cells)} layer states, got {type(state).__name__}")
        if len(state) != len(self.cells):
            raise ValueError(f"{name}: expected a tuple of {len(self.cells)} layer states, got {len(state)}")
        return tuple(c._check_state(f"{name}[{i}]", s, batch) for i, (c, s) in enumerate(zip(self.cells, state)))

    def _run(
        self, inputs: np.ndarray, state: Any, lengths: Lengths, time_major: bool, training: bool, weights: Any
    ) -> tuple[np.ndarray, Any, Backward]:
        backwards = []
        states = []
        outputs = inputs
        for cell, layer_state, layer_weights in zip(self.cells, state, weights):
            outputs, final, backward = cell._run(outputs, layer_state, lengths, time_major, training, layer_weights)
            states.append(final)
            backwards.append(backward)

        def backward_all(
            d_outputs: Optional[np.ndarray], d_state: Any
        ) -> tuple[np.ndarray, Any, dict[str, np.ndarray]]:
            d = d_outputs
            d_initial: list[Any] = [None] * len(self.cells)
            d_weights: list[dict[str, np.ndarray]] = [{} for _ in self.cells]
            for i in reversed(range(len(self.cells))):
                d, d_initial[i], d_weights[i] = backwards[i](d, None if d_state is None else d_state[i])
            assert d is not None
            merged = {f"cell_{i}/{k}": v for i, w in enumerate(d_weights) for k, v in w.items()}
            return d, tuple(d_initial), merged

        return outputs, tuple(states), backward_all

    def __repr__(self) -> str:
        return f"MultiRNNCell([{', '.join(repr(c) for c in self.cells)}])"


def _keep_prob(name: str, value: Any, dtype: np.dtype[Any]) -> float:
    """A keep probability in (0, 1] whose ``1/keep`` (the scale of the kept
    values, computed in ``dtype``) is finite."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number in (0, 1], got {type(value).__name__}")
    if not 0.0 < float(value) <= 1.0:
        raise ValueError(f"{name}: expected a number in (0, 1], got {value}")
    keep = float(value)
    with np.errstate(over="ignore", divide="ignore"):
        scale = dtype.type(1) / dtype.type(keep)  # exactly as DropoutWrapper._mask scales
    if not np.isfinite(scale):
        smallest = 1.0 / float(np.finfo(dtype).max)
        raise ValueError(
            f"{name}: expected a number in (0, 1] whose inverse is finite in {dtype.name} "
            f"(about {smallest:.3g} or more), got {value}"
        )
    return keep


def _select_rows(active: np.ndarray, new: Any, old: Any) -> Any:
    """Leaf by leaf over two states of one structure: ``new`` on the rows that ran
    the step (``active``, boolean ``[B, 1]``), ``old`` on the others."""
    return map_state(lambda _c, a, b: np.where(active, a, b), new, old)


def _dropped_state_grad(active: np.ndarray, d_state: Any, masks: Any) -> Any:
    """The gradient reaching a step's new state before dropout: through the masks
    (None where there is none), zero on the rows that did not run the step."""
    return map_state(lambda _c, d, m: np.where(active, d if m is None else d * m, 0), d_state, masks)


@register("cell")
class DropoutWrapper(_Wrapper):
    """Inverted dropout on a cell's inputs, outputs and state, active only when
    a run function is called with ``training=True``.

    Args:
        cell: the wrapped cell.
        input_keep_prob, output_keep_prob, state_keep_prob: keep
            probabilities in (0, 1]; kept values are scaled by ``1/keep``,
            which must be finite in the cell's dtype (``ValueError`` below
            about 2.9e-39 for float32, 5.6e-309 for float64).
        variational_recurrent: one mask per sequence (the same at every time
            step, Gal & Ghahramani) instead of a new mask per step.
        input_size: None or an integer >= 0; accepted for TensorFlow's
            signature and without effect (the input size is read from the
            inputs, also for variational input dropout).
        dtype: None or the cell's dtype (``ValueError`` for another one);
            without effect.
        seed: seeds the masks; the same seed gives the same sequence of masks.
        dropout_state_filter_visitor: must be None (``ValueError``
            otherwise); the built-in filter (no dropout on an LSTM's ``c``)
            always applies.

    TensorFlow 1.x's signature and positional order
    (``DropoutWrapper(cell, input_keep_prob=1.0, output_keep_prob=1.0,
    state_keep_prob=1.0, variational_recurrent=False, input_size=None,
    dtype=None, seed=None, dropout_state_filter_visitor=None)``). The wrapper
    adds no variable scope (TensorFlow 1.x's does not either).

    As in TensorFlow 1.x, state dropout applies to every part of the state
    except the ``c`` of an ``LSTMStateTuple``. Backpropagation uses the
    forward pass's masks. With ``state_keep_prob < 1`` the wrapped cell is
    stepped one time step per call (the dropped state feeds the next step),
    which is slower than the fused whole-sequence pass; padded steps (``t >=
    len``) are then run on zeros, so whatever they hold (NaN included) never
    reaches the outputs, the state or a gradient, as without dropout.
    """

    _DRAWS_MASKS = True  # its masks come from self._rng (see rnnrs.trainers.shard_rng)
    _CONFIG = ("cell", "input_keep_prob", "output_keep_prob", "state_keep_prob", "variational_recurrent", "seed")

    def __init__(
        self,
        cell: RNNCell,
        input_keep_prob: float = 1.0,
        output_keep_prob: float = 1.0,
        state_keep_prob: float = 1.0,
        variational_recurrent: bool = False,
        input_size: Optional[int] = None,
        dtype: Any = None,
        seed: Optional[int] = None,
        dropout_state_filter_visitor: Any = None,
    ) -> None:
        super().__init__(cell)
        if input_size is not None:
            bounded_int("input_size", input_size, 0)
        if dtype is not None and cell_dtype(dtype) != cell.dtype:
            raise ValueError(
                f"dtype: expected None or the cell's dtype {cell.dtype.name}, got {cell_dtype(dtype).name}"
            )
        refuse_unless_none(
            "dropout_state_filter_visitor", dropout_state_filter_visitor, "custom state filters are not supported"
        )
        self.input_keep_prob = _keep_prob("input_keep_prob", input_keep_prob, cell.dtype)
        self.output_keep_prob = _keep_prob("output_keep_prob", output_keep_prob, cell.dtype)
        self.state_keep_prob = _keep_prob("state_keep_prob", state_keep_prob, cell.dtype)
        if not isinstance(variational_recurrent, (bool, np.bool_)):
            raise TypeError(f"variational_recurrent: expected a bool, got {type(variational_recurrent).__name__}")
        self.variational_recurrent = flag("variational_recurrent", variational_recurrent)
        self.seed = seed_value(seed)
        self._rng = np.random.default_rng(seed)

    def _mask(self, keep: float, shape: tuple[int, ...]) -> np.ndarray:
        mask: np.ndarray = (self._rng.random(shape) < keep).astype(self.dtype) / self.dtype.type(keep)
        return mask

    def _sequence_mask(self, keep: float, data: np.ndarray, time_major: bool) -> Optional[np.ndarray]:
        """A mask for ``data`` ([B, T, C] or [T, B, C]); per sequence when variational."""
        if keep == 1.0:
            return None
        if not self.variational_recurrent:
            return self._mask(keep, data.shape)
        batch = data.shape[1] if time_major else data.shape[0]
        mask = self._mask(keep, (batch, data.shape[2]))
        return mask[None] if time_major else mask[:, None]

    def _run(
        self, inputs: np.ndarray, state: Any, lengths: Lengths, time_major: bool, training: bool, weights: Any
    ) -> tuple[np.ndarray, Any, Backward]:
        if not training:
            return self.cell._run(inputs, state, lengths, time_major, training, weights)
        in_mask = self._sequence_mask(self.input_keep_prob, inputs, time_major)
        x = inputs if in_mask is None else inputs * in_mask
        if self.state_keep_prob < 1.0:
            outputs, final, inner_backward = self._run_stepwise(x, state, lengths, time_major, training, weights)
        else:
            outputs, final, inner_backward = self.cell._run(x, state, lengths, time_major, training, weights)
        out_mask = self._sequence_mask(self.output_keep_prob, outputs, time_major)
        if out_mask is not None:
            outputs = outputs * out_mask

        def backward(d_outputs: Optional[np.ndarray], d_state: Any) -> tuple[np.ndarray, Any, dict[str, np.ndarray]]:
            if d_outputs is not None and out_mask is not None:
                d_outputs = d_outputs * out_mask
            d_x, d_initial, d_weights = inner_backward(d_outputs, d_state)
            return (d_x if in_mask is None else d_x * in_mask), d_initial, d_weights

        return outputs, final, backward

    def _run_stepwise(
        self, inputs: np.ndarray, state: Any, lengths: Lengths, time_major: bool, training: bool, weights: Any
    ) -> tuple[np.ndarray, Any, Backward]:
        """One wrapped-cell call per step (all on the snapshot ``weights``);
        the dropped state feeds the next step. A row past its length runs the
        step on zeros instead of its padding: its results are discarded, and
        its backward pass (all-zero gradients in, on finite values) adds exact
        zeros to the weight gradients."""
        x = inputs if time_major else inputs.transpose(1, 0, 2)  # [T, B, I] view
        time, batch = x.shape[0], x.shape[1]
        steps = np.full(batch, time) if lengths is None else lengths
        keep = self.state_keep_prob

        def draw() -> Any:
            return map_state(lambda is_c, a: None if is_c else self._mask(keep, a.shape), state)

        fixed = draw() if self.variational_recurrent else None
        outputs = np.zeros((time, batch, self.output_size), dtype=self.dtype)
        backwards: list[Backward] = []
        masks: list[Any] = []
        s = state
        zero = x.dtype.type(0)
        for t in range(time):
            active = (t < steps)[:, None]
            x_t = x[t] if lengths is None else np.where(active, x[t], zero)
            out, new, step_backward = self.cell._run(x_t[:, None, :], s, None, False, training, weights)
            mask = fixed if fixed is not None else draw()
            dropped = map_state(lambda _c, a, m: a if m is None else a * m, new, mask)
            s = _select_rows(active, dropped, s)
            outputs[t] = np.where(active, out[:, 0, :], 0)
            backwards.append(step_backward)
            masks.append(mask)
        final = s

        def backward(d_outputs: Optional[np.ndarray], d_state: Any) -> tuple[np.ndarray, Any, dict[str, np.ndarray]]:
            dy = None if d_outputs is None else (d_outputs if time_major else d_outputs.transpose(1, 0, 2))
            ds = map_state(lambda _c, a: np.zeros_like(a), final) if d_state is None else d_state
            d_x = np.zeros_like(x)
            d_weights: dict[str, np.ndarray] = {}
            for t in reversed(range(time)):
                active = (t < steps)[:, None]
                d_new = _dropped_state_grad(active, ds, masks[t])
                d_out = None if dy is None else np.where(active, dy[t], 0)[:, None, :]
                d_x_t, d_prev, d_w = backwards[t](d_out, d_new)
                d_x[t] = d_x_t[:, 0, :]
                ds = _select_rows(active, d_prev, ds)
                for k, v in d_w.items():
                    d_weights[k] = d_weights[k] + v if k in d_weights else v
            if not d_weights:
                d_weights = {k: np.zeros_like(v) for k, v in self.cell._named(weights).items()}
            return (d_x if time_major else d_x.transpose(1, 0, 2)), ds, d_weights

        return (outputs if time_major else outputs.transpose(1, 0, 2)), final, backward


def _refuse_nested_projection(cell: RNNCell) -> None:
    """Refuses an ``OutputProjectionWrapper`` directly inside another (or
    through ``DropoutWrapper`` / ``ResidualWrapper``): both would own the keys
    ``output_projection/kernel`` and ``.../bias``, so one pair would be lost
    from ``get_weights``, saving and checkpoints. Inside a ``MultiRNNCell``
    layer it is fine (its keys are under ``cell_<i>/``)."""
    inner = cell
    path = "cell"
    while isinstance(inner, _Wrapper):
        if isinstance(inner, OutputProjectionWrapper):
            raise ValueError(
                f"cell: expected a cell without an OutputProjectionWrapper directly inside it (through "
                f"DropoutWrapper and ResidualWrapper), got one at {path} (both projections would own the "
                f"weights {OutputProjectionWrapper.KERNEL!r} and {OutputProjectionWrapper.BIAS!r}); use one "
                "projection of the combined size, or put the inner one in a MultiRNNCell layer"
            )
        inner = inner.cell
        path += ".cell"


@register("cell")
class OutputProjectionWrapper(_Wrapper):
    """A linear projection of the wrapped cell's output:
    ``output = cell_output @ output_projection/kernel + output_projection/bias``.

    TensorFlow 1.x's signature and positional order
    (``OutputProjectionWrapper(cell, output_size, activation=None,
    reuse=None)``), then rnnrs's keyword-only ``seed``.

    Args:
        cell: the wrapped cell.
        output_size: the projected size.
        activation: must be None (``ValueError`` otherwise): the projection
            is linear; apply an activation to the outputs.
        reuse: None, True or False; accepted and without effect.
        seed: seeds the Glorot-uniform ``output_projection/kernel``
            ``[cell.output_size, output_size]``; the bias starts at zeros.

    ``cell`` may not hold another ``OutputProjectionWrapper`` directly or
    through ``DropoutWrapper`` / ``ResidualWrapper``
    (``OutputProjectionWrapper(DropoutWrapper(OutputProjectionWrapper(c, 4)), 5)``
    raises ``ValueError`` naming ``cell``): both would own the weights
    ``output_projection/kernel`` and ``.../bias``. One inside a
    ``MultiRNNCell`` layer is fine (its weights are under ``cell_<i>/``).

    Weights: the cell's, plus ``output_projection/kernel`` and
    ``output_projection/bias`` (TensorFlow 1.x's
    ``output_projection_wrapper/kernel`` and ``.../bias``, the cell's under
    ``output_projection_wrapper/``, with ``get_weights(scope=...)``).
    Outputs past a row's length are zero.
    """

    KERNEL = "output_projection/kernel"
    BIAS = "output_projection/bias"
    _CONFIG = ("cell", "output_size", "seed")
    TF_SCOPE = "output_projection_wrapper"

    def __init__(
        self,
        cell: RNNCell,
        output_size: int,
        activation: Any = None,
        reuse: Optional[bool] = None,
        *,
        seed: Optional[int] = None,
    ) -> None:
        refuse_unless_none("activation", activation, "the projection is linear; apply an activation to its outputs")
        check_reuse(reuse)
        super().__init__(cell)
        _refuse_nested_projection(self.cell)
        self._output_size = positive_int("output_size", output_size)
        self.seed = seed_value(seed)
        self._own: dict[str, np.ndarray] = {}

    @property
    def output_size(self) -> int:
        return self._output_size

    @property
    def built(self) -> bool:
        return self.cell.built and bool(self._own)

    def _own_shapes(self) -> dict[str, tuple[int, ...]]:
        return {self.KERNEL: (self.cell.output_size, self._output_size), self.BIAS: (self._output_size,)}

    def build(self, input_size: int) -> None:
        self.cell.build(input_size)
        if not self._own:
            rng = np.random.default_rng(self.seed)
            self._own = {
                self.KERNEL: glorot_uniform(rng, (self.cell.output_size, self._output_size), self.dtype),
                self.BIAS: np.zeros(self._output_size, dtype=self.dtype),
            }

    def _snapshot(self) -> Any:
        return (self.cell._snapshot(), self._own)

    def _named(self, snapshot: Any) -> dict[str, np.ndarray]:
        inner, own = snapshot
        return {**self.cell._named(inner), **own}

    def _prepare_weights(self, mapping: Mapping[str, Any], prefix: str) -> Callable[[], None]:
        check_mapping(mapping)
        shapes = self._own_shapes()
        own = {k: v for k, v in mapping.items() if k in shapes}
        inner = {k: v for k, v in mapping.items() if k not in shapes}
        arrays = {}
        for name, value in own.items():
            arr = float_array(f"mapping[{prefix + name!r}]", value, self.dtype, len(shapes[name]), "")
            check_shape(f"mapping[{prefix + name!r}]", arr, shapes[name])
            arrays[name] = np.array(arr, dtype=self.dtype, order="C", copy=True)
        if not self._own and set(arrays) != set(shapes):
            raise ValueError(
                f"mapping: expected all of {sorted(prefix + n for n in shapes)} to build the projection, "
                f"got {sorted(prefix + n for n in arrays)}"
            )
        inner_commit = self.cell._prepare_weights(inner, prefix) if inner else None

        def commit() -> None:
            if inner_commit is not None:
                inner_commit()
            self._own = {**self._own, **arrays}

        return commit

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(
                f"{what}: expected a built cell (call build(input_size) or run it once), got an unbuilt one"
            )

    def _run(
        self, inputs: np.ndarray, state: Any, lengths: Lengths, time_major: bool, training: bool, weights: Any
    ) -> tuple[np.ndarray, Any, Backward]:
        inner, own = weights
        kernel, bias = own[self.KERNEL], own[self.BIAS]
        cell_out, final, inner_backward = self.cell._run(inputs, state, lengths, time_major, training, inner)
        outputs = cell_out @ kernel + bias
        mask = active_mask(inputs, lengths, time_major)
        if mask is not None:
            outputs = np.where(mask, outputs, 0).astype(self.dtype, copy=False)

        def backward(d_outputs: Optional[np.ndarray], d_state: Any) -> tuple[np.ndarray, Any, dict[str, np.ndarray]]:
            if d_outputs is None:
                d_cell: Optional[np.ndarray] = None
                d_kernel, d_bias = np.zeros_like(kernel), np.zeros_like(bias)
            else:
                d = d_outputs if mask is None else np.where(mask, d_outputs, 0).astype(self.dtype, copy=False)
                d_cell = d @ kernel.T
                d_kernel = np.tensordot(cell_out, d, axes=([0, 1], [0, 1]))
                d_bias = d.sum(axis=(0, 1))
            d_x, d_initial, d_weights = inner_backward(d_cell, d_state)
            return d_x, d_initial, {**d_weights, self.KERNEL: d_kernel, self.BIAS: d_bias}

        return outputs, final, backward


@register("cell")
class ResidualWrapper(_Wrapper):
    """``output = cell_output + input`` (the cell's output size must equal its
    input size). Outputs past a row's length are zero.

    TensorFlow 1.x's signature (``ResidualWrapper(cell, residual_fn=None)``);
    ``residual_fn`` must be None (``ValueError`` otherwise: only the sum is
    supported). The wrapper adds no variable scope.
    """

    _CONFIG = ("cell",)

    def __init__(self, cell: RNNCell, residual_fn: Any = None) -> None:
        refuse_unless_none("residual_fn", residual_fn, "only output = cell_output + input is supported")
        super().__init__(cell)

    def build(self, input_size: int) -> None:
        input_size = checked_size("input_size", input_size)
        if input_size != self.cell.output_size:
            raise ValueError(
                f"input_size: expected input size equal to the cell's output size {self.cell.output_size} "
                f"(ResidualWrapper adds them), got {input_size}"
            )
        self.cell.build(input_size)

    def _run(
        self, inputs: np.ndarray, state: Any, lengths: Lengths, time_major: bool, training: bool, weights: Any
    ) -> tuple[np.ndarray, Any, Backward]:
        cell_out, final, inner_backward = self.cell._run(inputs, state, lengths, time_major, training, weights)
        mask = active_mask(inputs, lengths, time_major)
        outputs = cell_out + (inputs if mask is None else np.where(mask, inputs, 0).astype(self.dtype, copy=False))

        def backward(d_outputs: Optional[np.ndarray], d_state: Any) -> tuple[np.ndarray, Any, dict[str, np.ndarray]]:
            d_x, d_initial, d_weights = inner_backward(d_outputs, d_state)
            if d_outputs is not None:
                d_x = d_x + (d_outputs if mask is None else np.where(mask, d_outputs, 0))
            return d_x, d_initial, d_weights

        return outputs, final, backward


def core_layers(cell: Any) -> Optional[list[RNNCell]]:
    """The core cells of ``cell``, bottom first (the cells the Rust loops
    step: ``BasicRNNCell``, ``GRUCell``, ``LSTMCell``, ...), or None when it
    is not a core cell or a ``MultiRNNCell`` of core cells."""
    if isinstance(cell, MultiRNNCell) and type(cell) is MultiRNNCell:
        layers = list(cell.cells)
    elif isinstance(cell, RNNCell):
        layers = [cell]
    else:
        return None
    if any(c._kind is None for c in layers):
        return None
    return layers


def core_state_parts(cell: Any, layers: list[RNNCell], state: Any) -> list[list[np.ndarray]]:
    """A validated state of ``cell`` as one list of parts per core layer
    (``layers``, from :func:`core_layers`), as the Rust loops take it."""
    states = state if isinstance(cell, MultiRNNCell) else (state,)
    return [c._state_parts(s) for c, s in zip(layers, states)]


def core_state(cell: Any, layers: list[RNNCell], parts: list[list[np.ndarray]]) -> Any:
    """Each core layer's state parts back in ``cell``'s state structure (the
    inverse of :func:`core_state_parts`)."""
    states = tuple(c._state_from_parts(p) for c, p in zip(layers, parts))
    return states if isinstance(cell, MultiRNNCell) else states[0]
