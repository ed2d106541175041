"""Recurrent cells: weight holders with TensorFlow 1.x names and layouts.

A cell is built for one input size (lazily on first use, or by
:meth:`RNNCell.build`) and holds its weights as NumPy arrays. The run
functions in :mod:`rnnrs.rnn` unroll it over time in the Rust core.

Shape letters: ``B`` batch, ``T`` time, ``I`` input size, ``H`` units.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import re
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional

import numpy as np

from . import _rnnrs
from ._validate import (
    as_dtype,
    bounded_int,
    check_shape,
    flag,
    float_array,
    numeric_array,
    positive_int,
    seed_value,
)
from .saving.registry import register

if TYPE_CHECKING:
    from .stepper import Stepper

ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")

#: A validated ``sequence_length``: contiguous int64 ``[B]`` within ``[0, T]``, or None.
Lengths = Optional[np.ndarray]

#: ``backward(d_outputs, d_state) -> (d_inputs, d_initial_state, d_weights)``
Backward = Callable[[Optional[np.ndarray], Any], "tuple[np.ndarray, Any, dict[str, np.ndarray]]"]

#: The ``checkpoint_every`` of the run function in progress (validated: None,
#: ``"auto"`` or an int >= 1). A run function sets it for the duration of its
#: forward pass, so that every core cell it reaches, also inside wrappers and
#: ``MultiRNNCell`` layers, keeps only checkpoints; see :func:`checkpointing`.
CHECKPOINT_EVERY: contextvars.ContextVar[Optional[int | str]] = contextvars.ContextVar(
    "rnnrs_checkpoint_every", default=None
)


@contextlib.contextmanager
def checkpointing(every: Optional[int | str]) -> Iterator[None]:
    """Within the block, core cells' whole-sequence forward passes keep only
    checkpoints every ``every`` steps (``"auto"``: about ``sqrt(T)``; None:
    everything) for their backward pass, which recomputes the rest. Results
    and gradients are bitwise the same either way."""
    token = CHECKPOINT_EVERY.set(every)
    try:
        yield
    finally:
        CHECKPOINT_EVERY.reset(token)


#: Held while a ``set_weights`` swaps in new weights and while a wrapper
#: takes the snapshot of the weights a call uses (:meth:`RNNCell._snapshot`),
#: so that a call sees every part of a wrapper's weights from before an
#: update or every part from after it, never a mix.
WEIGHTS_LOCK = threading.Lock()


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, int], dtype: np.dtype[Any]) -> np.ndarray:
    """Glorot (Xavier) uniform: ``U(-l, l)`` with ``l = sqrt(6 / (fan_in + fan_out))``."""
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


#: What TensorFlow 1.x accepts as a variable scope's name.
_SCOPE_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-/>]*")


def numpy_dtype(dtype: Any) -> Any:
    """``dtype`` with a TensorFlow-like dtype object (one with an
    ``as_numpy_dtype`` attribute, such as ``tf.float32``) replaced by its NumPy
    type; anything else as it is."""
    np_type = getattr(dtype, "as_numpy_dtype", None)
    return dtype if np_type is None else np_type


def cell_dtype(dtype: Any) -> np.dtype[Any]:
    """A cell constructor's ``dtype``: None is float32 (TensorFlow 1.x's
    default); ``numpy.float32``/``float64``, their names, their ``numpy.dtype``
    or a TensorFlow-like dtype object (``.as_numpy_dtype``) otherwise."""
    if dtype is None:
        return np.dtype(np.float32)
    return as_dtype(numpy_dtype(dtype))


def activation_or_default(value: Any) -> str:
    """A cell's ``activation`` where None means TensorFlow 1.x's default, tanh."""
    return "tanh" if value is None else check_activation(value)


def check_reuse(value: Any) -> Optional[bool]:
    """TensorFlow 1.x's ``reuse``: None, True or False. It has no effect here
    (a cell object is its own set of weights; run it again to reuse them)."""
    if value is None:
        return None
    return flag("reuse", value)


def check_name(value: Any, what: str = "name") -> Optional[str]:
    """A TensorFlow 1.x variable-scope name (or None): letters, digits and
    ``_ . - / >``, not starting with ``_ - /``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{what}: expected a string or None, got {type(value).__name__} {value!r}")
    if not _SCOPE_NAME.fullmatch(value):
        raise ValueError(
            f"{what}: expected a TensorFlow scope name (letters, digits and '_.-/', not starting with "
            f"'_', '-' or '/'), got {value!r}"
        )
    return value


def refuse_unless_none(name: str, value: Any, why: str) -> None:
    """Refuses a TensorFlow 1.x argument that rnnrs does not support unless it
    has its default None (``why`` says what to do instead)."""
    if value is not None:
        raise ValueError(f"{name}: expected None ({why}), got {type(value).__name__} {value!r}")


def check_state_is_tuple(value: Any) -> None:
    """``state_is_tuple``: only True (TensorFlow 1.x's concatenated LSTM and
    MultiRNNCell states are not supported)."""
    if value is True or (isinstance(value, np.bool_) and bool(value)):
        return
    if value is False or isinstance(value, np.bool_):
        raise ValueError(
            "state_is_tuple: expected True (rnnrs keeps states as tuples, e.g. LSTMStateTuple(c, h); "
            "TensorFlow 1.x's concatenated state is not supported), got False"
        )
    raise TypeError(f"state_is_tuple: expected True, got {type(value).__name__} {value!r}")


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

    #: The constructor arguments :meth:`get_config` saves (read from the
    #: attribute of that name or ``_<name>``), declared by the class that
    #: defines the constructor. TensorFlow-only arguments with no effect
    #: (``reuse``) or only their default allowed are not saved.
    _CONFIG: tuple[str, ...] = ()

    #: The variable scope TensorFlow 1.x gives this kind of cell when it has
    #: no ``name`` (``basic_lstm_cell``); None for wrappers that add no scope.
    TF_SCOPE: Optional[str] = None

    def __init__(
        self, num_units: int, dtype: Any = None, seed: Optional[int] = None, name: Optional[str] = None
    ) -> None:
        self._num_units = positive_int("num_units", num_units)
        self._dtype = cell_dtype(dtype)
        self.seed = seed_value(seed)
        self.name = check_name(name)
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

    def get_weights(self, scope: Optional[str] = None) -> dict[str, np.ndarray]:
        """A copy of every weight (all from one snapshot: never a mix of
        weights from before and after a concurrent ``set_weights``).

        Keys are TensorFlow 1.x's variable names without the scope
        (``kernel``, ``cell_0/gates/kernel``) when ``scope`` is None; with a
        ``scope`` string they are TensorFlow 1.x's fully scoped names, as a
        graph built with that scope names them (``get_weights(scope="rnn")``:
        ``rnn/basic_lstm_cell/kernel``; ``scope=""``: no outer scope). The
        rule is :func:`rnnrs.tfnames.tf_scoped_names`'s."""
        self._require_built("get_weights")
        named = self._named(self._locked_snapshot())
        if scope is None:
            return {name: w.copy() for name, w in named.items()}
        from .tfnames import tf_scoped_names

        names = tf_scoped_names(self, scope)
        return {names[name]: w.copy() for name, w in named.items()}

    def set_weights(self, mapping: Mapping[str, Any], scope: Optional[str] = None) -> None:
        """Replaces weights by name (any subset of :meth:`get_weights`'s keys
        once built; all of them to build an unbuilt cell). Values are copied
        and cast to the cell's dtype (complex numbers and strings raise
        ``TypeError``); names and shapes are validated, and nothing changes
        unless all of them are valid. The new weights replace the old ones in
        one step: a call running at the same time in another thread uses
        either all of the old weights or all of the new ones.

        With a ``scope`` string the names are TensorFlow 1.x's fully scoped
        names under that scope (what ``get_weights(scope=...)`` returns, e.g.
        ``rnn/multi_rnn_cell/cell_0/gru_cell/gates/kernel``); other names
        raise ``ValueError`` listing the expected ones."""
        if scope is None:
            commit = self._prepare_weights(mapping, "")
        else:
            from .tfnames import from_tf_names, tf_message

            try:
                commit = self._prepare_weights(from_tf_names(self, mapping, scope), "")
            except (TypeError, ValueError) as e:
                raise type(e)(tf_message(self, scope, str(e))) from None
        with WEIGHTS_LOCK:
            commit()

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, by keyword, that rebuild this cell
        (weights aside): what a saved model file stores. TensorFlow-only
        arguments without effect (``reuse``) are left out, and ``name`` is
        stored only when given. A subclass with its own constructor and no
        ``_CONFIG`` saves every argument of its signature, read from the
        attribute of that name (or ``_<name>``); ``TypeError`` naming the
        argument when there is none."""
        cls = type(self)
        owner = next(c for c in cls.__mro__ if "__init__" in c.__dict__)
        keys: Optional[tuple[str, ...]] = owner.__dict__.get("_CONFIG")
        if keys is None:
            skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            params = list(inspect.signature(owner.__dict__["__init__"]).parameters.values())[1:]
            keys = tuple(p.name for p in params if p.kind not in skip)
        config: dict[str, Any] = {}
        for key in keys:
            for attr in (key, "_" + key):
                if hasattr(self, attr):
                    config[key] = getattr(self, attr)
                    break
            else:
                raise TypeError(
                    f"cell: expected {cls.__name__} to expose its constructor argument {key!r} as an attribute "
                    f"(or a get_config() method) so that it can be saved, got neither"
                )
        if config.get("name", 0) is None:
            del config["name"]
        return config

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

        This one runs the core cell (keeping only checkpoints for backward
        inside :func:`checkpointing`); wrappers override it.
        """
        core = self._core(weights)
        outputs, final_parts, cache = _rnnrs.forward(
            core, inputs, self._state_parts(state), lengths, time_major, CHECKPOINT_EVERY.get()
        )

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

    def stepper(self, batch_size: int = 1, initial_state: Any = None) -> Stepper:
        """A :class:`~rnnrs.Stepper` running this cell one time step at a time
        over ``batch_size`` streams, from ``initial_state`` (structured as
        :meth:`zero_state`; zeros by default), keeping the state between calls:
        ``stepper.step(x)`` returns the output and the state moves on inside
        (for streaming: online prediction, generation, real-time signals)."""
        from .stepper import Stepper

        return Stepper(self, batch_size, initial_state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_units={self._num_units}, dtype={self._dtype.name})"


@register("cell")
class BasicRNNCell(RNNCell):
    """The basic RNN cell: ``h' = act([x, h] @ kernel + bias)``; output = state = ``h'``.

    TensorFlow 1.x's signature and positional order
    (``BasicRNNCell(num_units, activation=None, reuse=None, name=None,
    dtype=None)``), then rnnrs's keyword-only ``seed``.

    Args:
        num_units: number of units ``H``.
        activation: ``"tanh"`` (the default, also for None), ``"relu"``,
            ``"sigmoid"`` or ``"identity"``.
        reuse: None, True or False; accepted for TensorFlow's signature and
            without effect (a cell object is one set of weights).
        name: the cell's TensorFlow variable scope (default
            ``basic_rnn_cell``), used only by ``get_weights(scope=...)``.
        dtype: ``numpy.float32`` (the default, also for None) or
            ``numpy.float64`` (their names and ``tf.float32``-like objects too).
        seed: seeds the Glorot-uniform kernel; the same seed gives the same weights.

    Weights: ``kernel`` ``[I + H, H]`` (rows for ``x`` first, then ``h``),
    ``bias`` ``[H]`` (zeros).
    """

    _kind = "basic_rnn"
    _CONFIG = ("num_units", "activation", "dtype", "seed", "name")
    TF_SCOPE = "basic_rnn_cell"

    def __init__(
        self,
        num_units: int,
        activation: Optional[str] = None,
        reuse: Optional[bool] = None,
        name: Optional[str] = None,
        dtype: Any = None,
        *,
        seed: Optional[int] = None,
    ) -> None:
        super().__init__(num_units, dtype, seed, name)
        self.activation = activation_or_default(activation)
        check_reuse(reuse)

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
