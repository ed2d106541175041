"""Recurrent cells: weight holders with TensorFlow 1.x names and layouts.

A cell is built for one input size (lazily on first use, or by
:meth:`RNNCell.build`) and holds its weights as NumPy arrays. The run
functions in :mod:`rnnrs.rnn` unroll it over time in the Rust core.

Shape letters: ``B`` batch, ``T`` time, ``I`` input size, ``H`` units.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Mapping, Optional

import numpy as np

from . import _rnnrs
from ._validate import as_dtype, bounded_int, check_shape, float_array, numeric_array, positive_int, seed_value
from .saving.registry import register

ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")

#: A validated ``sequence_length``: contiguous int64 ``[B]`` within ``[0, T]``, or None.
Lengths = Optional[np.ndarray]

#: ``backward(d_outputs, d_state) -> (d_inputs, d_initial_state, d_weights)``
Backward = Callable[[Optional[np.ndarray], Any], "tuple[np.ndarray, Any, dict[str, np.ndarray]]"]


#: Held while a ``set_weights`` swaps in new weights and while a wrapper
#: takes the snapshot of the weights a call uses (:meth:`RNNCell._snapshot`),
#: so that a call sees every part of a wrapper's weights from before an
#: update or every part from after it, never a mix.
WEIGHTS_LOCK = threading.Lock()


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, int], dtype: np.dtype[Any]) -> np.ndarray:
    """Glorot (Xavier) uniform: ``U(-l, l)`` with ``l = sqrt(6 / (fan_in + fan_out))``."""
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def build_for_inputs(cell: "RNNCell", input_size: int) -> None:
    """``cell.build(input_size)`` for ``inputs`` whose last axis is
    ``input_size``: a size the cell refuses is reported as ``inputs``' (the
    argument the caller gave), not ``build``'s ``input_size``."""
    try:
        cell.build(input_size)
    except ValueError as e:
        message = str(e)
        if message.startswith("input_size:"):
            raise ValueError("inputs:" + message[len("input_size:") :]) from None
        raise


class RNNCell:
    """Base class of every cell: weights, building, state and the one-step call.

    Subclasses define :meth:`_weight_shapes`, :meth:`_init_weights` and
    :meth:`_input_size_from`. A cell computed by the Rust core names its kind
    in ``_kind`` and its options in :meth:`_core_options`; the core cell is
    built from the weights once and kept until they change, and the run
    functions and the one-step call go through it. Wrappers instead override
    :meth:`_run` (the whole-sequence forward, returning a backward closure).

    Weights are never changed in place: ``set_weights`` swaps in new arrays
    (under :data:`WEIGHTS_LOCK`), and a call runs on one snapshot of them
    (:meth:`_snapshot`), so calls running in other threads while the weights
    are replaced each see the old weights or the new ones, never a mix.
    """

    #: The Rust core's name for this kind of cell (``_rnnrs.cell_kinds()``);
    #: None for cells written in Python (the wrappers).
    _kind: Optional[str] = None

    def __init__(self, num_units: int, dtype: Any = np.float32, seed: Optional[int] = None) -> None:
        self._num_units = positive_int("num_units", num_units)
        self._dtype = as_dtype(dtype)
        self.seed = seed_value(seed)
        self._input_size: Optional[int] = None
        self._weights: dict[str, np.ndarray] = {}
        # (the weights dict it was built from, the core cell): rebuilt when
        # set_weights replaces the dict (it never changes one in place).
        self._core_cell: Optional[tuple[dict[str, np.ndarray], _rnnrs.Cell]] = None

    # -- properties --------------------------------------------------------
    @property
    def num_units(self) -> int:
        """Number of units ``H``."""
        return self._num_units

    @property
    def state_size(self) -> Any:
        """Size of the state (an int, or a structure of ints)."""
        return self._num_units

    @property
    def output_size(self) -> int:
        """Size of each step's output."""
        return self._num_units

    @property
    def dtype(self) -> np.dtype[Any]:
        """``numpy.float32`` (default) or ``numpy.float64``."""
        return self._dtype

    @property
    def input_size(self) -> Optional[int]:
        """The input size ``I`` the cell is built for, or None before it is built."""
        return self._input_size

    @property
    def built(self) -> bool:
        """Whether the weights exist."""
        return self._input_size is not None

    # -- weights -----------------------------------------------------------
    def _weight_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def _init_weights(self, rng: np.random.Generator, input_size: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _input_size_from(self, weights: Mapping[str, np.ndarray]) -> int:
        raise NotImplementedError

    def build(self, input_size: int) -> None:
        """Creates the weights for inputs of size ``input_size`` (Glorot-uniform
        kernels seeded by ``seed``, zero biases). A built cell must be rebuilt
        with the same size. ``input_size`` must be an integer >= 0
        (``TypeError`` for a bool, a float or a string)."""
        input_size = checked_size("input_size", input_size)
        if self._input_size is not None:
            if input_size != self._input_size:
                raise ValueError(
                    f"input_size: expected input size {self._input_size} (the cell is built for it), got {input_size}"
                )
            return
        rng = np.random.default_rng(self.seed)
        self._weights = self._init_weights(rng, input_size)
        self._input_size = input_size

    def get_weights(self) -> dict[str, np.ndarray]:
        """A copy of every weight, by TensorFlow 1.x name (all from one
        snapshot: never a mix of weights from before and after a concurrent
        ``set_weights``)."""
        self._require_built("get_weights")
        return {name: w.copy() for name, w in self._named(self._locked_snapshot()).items()}

    def set_weights(self, mapping: Mapping[str, Any]) -> None:
        """Replaces weights by name (any subset of :meth:`get_weights`'s keys
        once built; all of them to build an unbuilt cell). Values are copied
        and cast to the cell's dtype (complex numbers and strings raise
        ``TypeError``); names and shapes are validated, and nothing changes
        unless all of them are valid. The new weights replace the old ones in
        one step: a call running at the same time in another thread uses
        either all of the old weights or all of the new ones."""
        commit = self._prepare_weights(mapping, "")
        with WEIGHTS_LOCK:
            commit()

    # -- snapshots of the weights (what one call runs on) -------------------
    def _snapshot(self) -> Any:
        """The weights a call uses, as one value that later ``set_weights``
        calls do not change (the weights dict here; a wrapper's combines its
        parts' snapshots). Call it under :data:`WEIGHTS_LOCK` when it reads
        more than one attribute (see :meth:`_locked_snapshot`)."""
        return self._weights

    def _locked_snapshot(self) -> Any:
        """:meth:`_snapshot`, taken under :data:`WEIGHTS_LOCK` (a core cell's
        is one attribute read, which needs no lock)."""
        if self._kind is not None:
            return self._weights
        with WEIGHTS_LOCK:
            return self._snapshot()

    def _named(self, snapshot: Any) -> dict[str, np.ndarray]:
        """The weights of a snapshot by name (the arrays themselves, not copies)."""
        named: dict[str, np.ndarray] = snapshot
        return named

    def _prepare_weights(self, mapping: Mapping[str, Any], prefix: str) -> Callable[[], None]:
        """Validates ``mapping`` (its names shown with ``prefix`` in errors)
        and returns the function that applies it. Wrappers prepare all their
        parts before applying any, so a failed ``set_weights`` changes nothing."""
        check_mapping(mapping)
        arrays = {}
        for name, value in mapping.items():
            where = f"mapping[{prefix + name!r}]"
            raw = numeric_array(where, value, "a weight array")
            arrays[name] = float_array(where, raw, self._dtype, raw.ndim, "")
        input_size = self._input_size
        if input_size is None:
            input_size = self._input_size_from(arrays)
        shapes = self._weight_shapes(input_size)
        unknown = sorted(prefix + n for n in set(arrays) - set(shapes))
        if unknown:
            known = sorted(prefix + n for n in shapes)
            raise ValueError(f"mapping: expected names among {known}, got unknown {unknown}")
        if self._input_size is None and set(arrays) != set(shapes):
            raise ValueError(
                f"mapping: expected all of {sorted(prefix + n for n in shapes)} to build the cell, "
                f"got {sorted(prefix + n for n in arrays)}"
            )
        for name, arr in arrays.items():
            check_shape(f"mapping[{prefix + name!r}]", arr, shapes[name])
        new = dict(self._weights)
        new.update({name: np.array(arr, dtype=self._dtype, order="C", copy=True) for name, arr in arrays.items()})

        def commit() -> None:
            # New arrays, never written in place: a pending backprop keeps the old ones.
            self._weights = new
            self._input_size = input_size

        return commit

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(
                f"{what}: expected a built cell (call build(input_size) or run it once), got an unbuilt one"
            )

    # -- state -------------------------------------------------------------
    def zero_state(self, batch_size: int) -> Any:
        """The state structure for ``batch_size`` rows (an integer >= 0),
        filled with zeros."""
        batch_size = checked_size("batch_size", batch_size)
        return state_zeros(batch_size, self._num_units, self._dtype)

    def _check_state(self, name: str, state: Any, batch: int) -> Any:
        """``state`` validated and cast to the structure of :meth:`zero_state`."""
        arr = float_array(name, state, self._dtype, 2, "[batch, num_units]")
        check_shape(name, arr, (batch, self._num_units))
        return arr

    # -- running -----------------------------------------------------------
    def _core_options(self) -> dict[str, Any]:
        """The options of the core cell (``_kind``), by name."""
        raise NotImplementedError

    def _state_parts(self, state: Any) -> list[np.ndarray]:
        """A validated state as the core's list of parts (one array here)."""
        return [state]

    def _state_from_parts(self, parts: list[np.ndarray]) -> Any:
        """The core's list of state parts as this cell's state structure."""
        return parts[0]

    def __getstate__(self) -> dict[str, Any]:
        """Pickling and ``copy.deepcopy`` leave the core cell out (it is
        rebuilt from the weights on first use)."""
        state = self.__dict__.copy()
        if "_core_cell" in state:
            state["_core_cell"] = None
        return state

    def _core(self, weights: Optional[dict[str, np.ndarray]] = None) -> _rnnrs.Cell:
        """The core cell for ``weights`` (a snapshot; the current weights when
        None; the cell is built): made once per set of weights, so later calls
        neither copy nor repack them."""
        if weights is None:
            weights = self._weights
        cached = self._core_cell
        if cached is not None and cached[0] is weights:
            return cached[1]
        assert self._kind is not None, "a cell without a core kind must override _run"
        core = _rnnrs.Cell(self._kind, self._dtype.name, self._core_options(), weights)
        self._core_cell = (weights, core)
        return core

    def _run(
        self, inputs: np.ndarray, state: Any, lengths: Lengths, time_major: bool, training: bool, weights: Any
    ) -> tuple[np.ndarray, Any, Backward]:
        """The whole-sequence forward pass, on validated arguments.

        ``inputs``: ``[B, T, I]`` (``[T, B, I]`` when ``time_major``) of
        ``self.dtype``, last axis equal to ``input_size`` (the cell is built);
        ``state``: as returned by :meth:`_check_state`; ``lengths``:
        contiguous int64 ``[B]`` within ``[0, T]``, or None.

        Returns ``(outputs, final_state, backward)`` with outputs in the
        inputs' layout, and ``backward(d_outputs, d_state) -> (d_inputs,
        d_initial_state, d_weights)``, where ``d_outputs`` (validated, or
        None) is shaped like ``outputs`` and ``d_state`` (validated by
        :meth:`_check_state`, or None) like the state, and ``d_weights``
        has exactly the keys of :meth:`get_weights`. ``weights`` is the
        snapshot of the weights to run on (:meth:`_locked_snapshot`, taken
        once per call and handed down to the wrapped cells).

        This one runs the core cell; wrappers override it.
        """
        core = self._core(weights)
        outputs, final_parts, cache = _rnnrs.forward(core, inputs, self._state_parts(state), lengths, time_major)

        def backward(d_outputs: Optional[np.ndarray], d_state: Any) -> tuple[np.ndarray, Any, dict[str, np.ndarray]]:
            d_parts = None if d_state is None else self._state_parts(d_state)
            d_x, d_initial, d_weights = _rnnrs.backward(cache, d_outputs, d_parts)
            return d_x, self._state_from_parts(d_initial), d_weights

        return outputs, self._state_from_parts(final_parts), backward

    def __call__(self, inputs: Any, state: Any) -> tuple[np.ndarray, Any]:
        """One time step: ``inputs`` ``[B, I]``, ``state`` as :meth:`zero_state`;
        returns ``(output [B, output_size], new_state)``."""
        x = float_array("inputs", inputs, self.dtype, 2, "[batch, input]")
        build_for_inputs(self, x.shape[1])
        state = self._check_state("state", state, x.shape[0])
        if self._kind is not None:
            output, parts = self._core().step(x, self._state_parts(state))
            return output, self._state_from_parts(parts)
        outputs, new_state, _ = self._run(x[:, None, :], state, None, False, False, self._locked_snapshot())
        return outputs[:, 0, :], new_state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_units={self._num_units}, dtype={self._dtype.name})"


@register("cell")
class BasicRNNCell(RNNCell):
    """The basic RNN cell: ``h' = act([x, h] @ kernel + bias)``; output = state = ``h'``.

    Args:
        num_units: number of units ``H``.
        activation: ``"tanh"`` (default), ``"relu"``, ``"sigmoid"`` or ``"identity"``.
        dtype: ``numpy.float32`` (default) or ``numpy.float64``.
        seed: seeds the Glorot-uniform kernel; the same seed gives the same weights.

    Weights: ``kernel`` ``[I + H, H]`` (rows for ``x`` first, then ``h``),
    ``bias`` ``[H]`` (zeros).
    """

    _kind = "basic_rnn"

    def __init__(
        self, num_units: int, activation: str = "tanh", dtype: Any = np.float32, seed: Optional[int] = None
    ) -> None:
        super().__init__(num_units, dtype, seed)
        self.activation = check_activation(activation)

    def _weight_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        h = self._num_units
        return {"kernel": (input_size + h, h), "bias": (h,)}

    def _input_size_from(self, weights: Mapping[str, np.ndarray]) -> int:
        kernel = weights.get("kernel")
        if kernel is None or kernel.ndim != 2 or kernel.shape[0] < self._num_units:
            got = None if kernel is None else kernel.shape
            raise ValueError(
                f"weights['kernel']: expected shape (input_size + {self._num_units}, {self._num_units}) "
                f"to build the cell, got {got}"
            )
        return int(kernel.shape[0]) - self._num_units

    def _init_weights(self, rng: np.random.Generator, input_size: int) -> dict[str, np.ndarray]:
        h = self._num_units
        return {
            "kernel": glorot_uniform(rng, (input_size + h, h), self._dtype),
            "bias": np.zeros(h, dtype=self._dtype),
        }

    def _core_options(self) -> dict[str, Any]:
        return {"activation": self.activation}


def state_zeros(batch_size: int, width: int, dtype: np.dtype[Any]) -> np.ndarray:
    """``zeros [batch_size, width]``; a batch too large for any array is a
    ``ValueError`` naming ``batch_size`` (NumPy's own message names nothing)."""
    try:
        return np.zeros((batch_size, width), dtype=dtype)
    except ValueError as e:
        raise ValueError(f"batch_size: expected a size an array can have, got {batch_size} ({e})") from None


def check_activation(value: Any) -> str:
    """A cell's ``activation``: one of :data:`ACTIVATIONS` (a ``TypeError``
    for anything but a string)."""
    if not isinstance(value, str):
        raise TypeError(f"activation: expected one of {ACTIVATIONS}, got {type(value).__name__}")
    if value not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {value!r}")
    return value


def checked_size(name: str, value: Any) -> int:
    """``value`` as an int >= 0 (a size: ``input_size``, ``batch_size``);
    Python ints take a fast path, as this runs on every call."""
    if type(value) is int and value >= 0:
        return value
    return bounded_int(name, value, 0)


def check_mapping(mapping: Any) -> None:
    """A weights mapping: a ``Mapping`` whose keys are weight names (str)."""
    if not isinstance(mapping, Mapping):
        raise TypeError(f"mapping: expected a mapping of weight name to array, got {type(mapping).__name__}")
    for name in mapping:
        if not isinstance(name, str):
            raise TypeError(f"mapping: expected weight names (str) as keys, got {type(name).__name__} {name!r}")
