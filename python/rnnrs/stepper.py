"""Streaming: a cell run one step at a time, its state kept between calls.

:class:`Stepper` (made by :meth:`RNNCell.stepper`) holds the state of a batch
of ``B`` streams and every buffer a step needs; each :meth:`Stepper.step`
takes the next inputs ``[B, I]`` and returns the outputs ``[B, O]``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _rnnrs
from ._validate import bounded_int, check_shape, float_array
from .cells import RNNCell, build_for_inputs
from .wrappers import core_layers, core_state, core_state_parts

__all__ = ["Stepper"]


class Stepper:
    """Runs ``cell`` one time step at a time over ``batch_size`` streams,
    keeping their state between calls (online prediction, generation,
    real-time signals). Make one with :meth:`RNNCell.stepper`.

    ``stepper.step(x)`` equals ``output, state = cell(x, state)`` with the
    state kept inside, bit for bit, and costs less: for a core cell
    (``BasicRNNCell``, ``GRUCell``, ``LSTMCell``, ``BasicLSTMCell``) or a
    ``MultiRNNCell`` of them, the state and every buffer of a step live in
    the Rust core between calls, so a step of fewer than 32 rows on one
    thread allocates nothing there but its output array (none with
    ``out=``; a larger or split step hands its work to the thread pool,
    a few small allocations), and it runs with the GIL released
    only when its work is worth it (about 65 000 multiply-adds and more: a
    smaller step holds the GIL for the few microseconds it takes). Other
    cells (wrappers such as ``DropoutWrapper``, ``ResidualWrapper``,
    ``AttentionWrapper``) step through ``cell(x, state)``.

    A step uses the cell's weights as they are at that step: after
    ``set_weights`` or training, the next step runs on the new weights and
    the state carries over.

    A stepper runs one step at a time: stepping one stepper from two
    threads at once raises ``RuntimeError`` (make one per thread; they can
    share the cell).

    Args:
        cell: an :class:`RNNCell`.
        batch_size: the number of streams ``B`` (fixed for the stepper's life).
        initial_state: the state to start from, structured as
            ``cell.zero_state(batch_size)`` (the default: zeros).
    """

    def __init__(self, cell: RNNCell, batch_size: int = 1, initial_state: Any = None) -> None:
        if not isinstance(cell, RNNCell):
            raise TypeError(f"cell: expected an rnnrs RNNCell, got {type(cell).__name__}")
        self._cell = cell
        self._batch = bounded_int("batch_size", batch_size, 0)
        self._layers = core_layers(cell)
        self._core: Optional[_rnnrs.Stepper] = None
        self._seen: tuple[Any, ...] = ()
        self._state = self._checked("initial_state", initial_state)
        if self._layers is not None and cell.built:
            self._start(self._state)

    # -- properties -----------------------------------------------------------
    @property
    def cell(self) -> RNNCell:
        """The cell it steps."""
        return self._cell

    @property
    def batch_size(self) -> int:
        """The number of streams ``B``."""
        return self._batch

    @property
    def output_size(self) -> int:
        """The width ``O`` of each step's output."""
        return int(self._cell.output_size)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The cell's dtype: inputs are cast to it, outputs have it."""
        return self._cell.dtype

    @property
    def state(self) -> Any:
        """The current state, structured as ``cell.zero_state(batch_size)``
        (new arrays: changing them does not change the stepper's)."""
        if self._core is None:
            return self._state
        assert self._layers is not None
        return core_state(self._cell, self._layers, self._core.state())

    # -- stepping -------------------------------------------------------------
    def step(self, inputs: Any, out: Optional[np.ndarray] = None) -> np.ndarray:
        """One time step: ``inputs`` ``[B, I]`` (cast to the cell's dtype);
        the state moves on. Returns the outputs ``[B, O]``: a new array, or
        ``out`` (a writeable ``[B, O]`` array of the cell's dtype) written in
        place. Shape errors name ``inputs`` or ``out`` and leave the state as
        it was."""
        core = self._core
        if core is not None and self._fresh():
            try:
                return core.step(inputs, out)
            except TypeError:
                pass  # inputs to convert (a list, another dtype, a misaligned view), or a bad ``out``
        return self._step_converted(inputs, out)

    def reset(self, state: Any = None) -> None:
        """Sets the state: ``state`` structured as ``cell.zero_state(batch_size)``,
        or zeros when None."""
        checked = self._checked("state", state)
        if self._core is not None:
            assert self._layers is not None
            self._core.set_state(self._parts(checked))
        else:
            self._state = checked

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickling and ``copy`` keep the cell, the batch size and the
        current state: a copy steps on from where this one is, on its own."""
        return (Stepper, (self._cell, self._batch, self.state))

    def __repr__(self) -> str:
        return f"Stepper({self._cell!r}, batch_size={self._batch})"

    # -- internals ------------------------------------------------------------
    def _checked(self, name: str, state: Any) -> Any:
        """``state`` (zeros when None) validated for this batch size."""
        if state is None:
            state = self._cell.zero_state(self._batch)
        return self._cell._check_state(name, state, self._batch)

    def _parts(self, state: Any) -> list[list[np.ndarray]]:
        """A validated state as one list of parts per core layer."""
        assert self._layers is not None
        return core_state_parts(self._cell, self._layers, state)

    def _fresh(self) -> bool:
        """Whether the core stepper runs the layers' current weights."""
        layers, seen = self._layers, self._seen
        assert layers is not None
        if len(layers) == 1:
            return layers[0]._weights is seen[0]
        return all(c._weights is w for c, w in zip(layers, seen))

    def _start(self, state: Any) -> None:
        """(Re)makes the core stepper on the layers' current weights, from ``state``."""
        assert self._layers is not None
        seen = tuple(c._weights for c in self._layers)
        cores = [c._core(w) for c, w in zip(self._layers, seen)]
        self._core = _rnnrs.Stepper(cores, self._parts(state))
        self._seen = seen

    def _step_converted(self, inputs: Any, out: Optional[np.ndarray]) -> np.ndarray:
        """:meth:`step` for inputs to cast, a cell to build first or weights
        that changed, and for cells the core does not step."""
        x = float_array("inputs", inputs, self.dtype, 2, "[batch, input]")
        check_shape("inputs", x, (self._batch, x.shape[1]))
        build_for_inputs(self._cell, x.shape[1])
        if self._layers is not None:
            if self._core is None or not self._fresh():
                self._start(self.state)
            assert self._core is not None
            return self._core.step(x, out)
        if out is not None:
            _check_out(out, (self._batch, self.output_size), self.dtype)
        output, self._state = self._cell(x, self._state)
        if out is None:
            return output
        out[...] = output
        return out


def _check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    """``out`` is a writeable array of ``shape`` and ``dtype`` (the core's checks)."""
    if not isinstance(out, np.ndarray) or out.ndim != 2 or out.dtype != dtype:
        got = f"a {out.ndim}-d {out.dtype} array" if isinstance(out, np.ndarray) else type(out).__name__
        raise TypeError(f"out: expected a 2-d numpy.{dtype.name} array, got {got}")
    if out.shape != shape:
        raise ValueError(f"out: expected shape {list(shape)}, got {list(out.shape)}")
    if not out.flags.writeable:
        raise ValueError("out: expected a writeable array")
