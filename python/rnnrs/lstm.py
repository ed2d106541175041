"""LSTM cells (TensorFlow 1.x ``BasicLSTMCell`` and ``LSTMCell``).

Shape letters: ``B`` batch, ``T`` time, ``I`` input size, ``H`` units,
``P`` output size (``num_proj``, or ``H`` without a projection).

One step (gate order ``i, j, f, o``: column blocks of width ``H`` of ``kernel``)::

    i, j, f, o = split([x, h] @ kernel + bias, 4)
    peepholes:  i += w_i_diag * c,  f += w_f_diag * c
    c' = sigmoid(f + forget_bias) * c + sigmoid(i) * act(j)
    cell_clip:  c' = clip(c', -cell_clip, cell_clip)
    peepholes:  o += w_o_diag * c'
    h' = sigmoid(o) * act(c')
    num_proj:   h' = h' @ projection/kernel;  proj_clip: h' = clip(h', -proj_clip, proj_clip)

The state is ``LSTMStateTuple(c', h')`` and the output ``h'`` (TensorFlow's
``m``). ``forget_bias`` is added at run time and never stored in ``bias``.
A clip passes the gradient where the unclipped value lies in
``[-clip, clip]`` and stops it outside (TensorFlow's ``clip_by_value``).
"""

from __future__ import annotations

import numbers
from typing import Any, Mapping, Optional

import numpy as np

from ._state import LSTMStateTuple
from ._validate import check_shape, finite_number, flag, float_array, positive_int
from .cells import (
    RNNCell,
    activation_or_default,
    check_reuse,
    check_state_is_tuple,
    checked_size,
    glorot_uniform,
    refuse_unless_none,
    state_zeros,
)
from .saving.registry import register

#: The names of the optional weights, in TensorFlow 1.x spelling.
PEEPHOLES = ("w_i_diag", "w_f_diag", "w_o_diag")
PROJECTION = "projection/kernel"


def _clip(name: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number > 0 or None, got {type(value).__name__} {value!r}")
    v = float(value)
    if not v > 0.0:  # also rejects NaN
        raise ValueError(f"{name}: expected a number > 0 or None, got {value!r}")
    return v


class _LSTM(RNNCell):
    """What ``BasicLSTMCell`` and ``LSTMCell`` share: weights, state, the run."""

    _kind = "lstm"

    def __init__(
        self,
        num_units: int,
        *,
        use_peepholes: bool,
        cell_clip: Optional[float],
        num_proj: Optional[int],
        proj_clip: Optional[float],
        forget_bias: float,
        state_is_tuple: bool,
        activation: Optional[str],
        reuse: Optional[bool],
        name: Optional[str],
        dtype: Any,
        seed: Optional[int],
    ) -> None:
        super().__init__(num_units, dtype, seed, name)
        check_state_is_tuple(state_is_tuple)
        check_reuse(reuse)
        if not isinstance(use_peepholes, (bool, np.bool_, numbers.Integral)) or use_peepholes not in (0, 1):
            raise TypeError(f"use_peepholes: expected a bool, got {type(use_peepholes).__name__} {use_peepholes!r}")
        self._use_peepholes = flag("use_peepholes", use_peepholes)
        self._cell_clip = _clip("cell_clip", cell_clip)
        self._num_proj = None if num_proj is None else positive_int("num_proj", num_proj)
        self._proj_clip = _clip("proj_clip", proj_clip)
        self._forget_bias = finite_number("forget_bias", forget_bias)
        self.activation = activation_or_default(activation)

    # -- properties --------------------------------------------------------
    @property
    def use_peepholes(self) -> bool:
        """Whether the gates see the cell state (``w_i_diag, w_f_diag, w_o_diag``)."""
        return self._use_peepholes

    @property
    def cell_clip(self) -> Optional[float]:
        """``c`` is clipped to ``±cell_clip`` (None: no clip)."""
        return self._cell_clip

    @property
    def num_proj(self) -> Optional[int]:
        """Width ``P`` of the output projection (None: no projection)."""
        return self._num_proj

    @property
    def proj_clip(self) -> Optional[float]:
        """The projected output is clipped to ``±proj_clip`` (None: no clip;
        ignored without ``num_proj``, as in TensorFlow)."""
        return self._proj_clip

    @property
    def forget_bias(self) -> float:
        """Added to the forget gate's pre-activation at run time."""
        return self._forget_bias

    @property
    def _out(self) -> int:
        return self._num_units if self._num_proj is None else self._num_proj

    @property
    def state_size(self) -> LSTMStateTuple:
        """``LSTMStateTuple(c=H, h=P)``."""
        return LSTMStateTuple(self._num_units, self._out)  # type: ignore[arg-type]

    @property
    def output_size(self) -> int:
        """``P``: ``num_proj``, or ``num_units`` without a projection."""
        return self._out

    # -- weights -----------------------------------------------------------
    def _weight_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        h, p = self._num_units, self._out
        shapes: dict[str, tuple[int, ...]] = {"kernel": (input_size + p, 4 * h), "bias": (4 * h,)}
        if self._use_peepholes:
            shapes.update({name: (h,) for name in PEEPHOLES})
        if self._num_proj is not None:
            shapes[PROJECTION] = (h, p)
        return shapes

    def _input_size_from(self, weights: Mapping[str, np.ndarray]) -> int:
        h, p = self._num_units, self._out
        kernel = weights.get("kernel")
        if kernel is None or kernel.ndim != 2 or kernel.shape[0] < p or kernel.shape[1] != 4 * h:
            got = None if kernel is None else kernel.shape
            raise ValueError(
                f"weights['kernel']: expected shape (input_size + {p}, {4 * h}) to build the cell, got {got}"
            )
        return int(kernel.shape[0]) - p

    def _init_weights(self, rng: np.random.Generator, input_size: int) -> dict[str, np.ndarray]:
        h, p = self._num_units, self._out
        weights = {
            "kernel": glorot_uniform(rng, (input_size + p, 4 * h), self._dtype),
            "bias": np.zeros(4 * h, dtype=self._dtype),
        }
        if self._use_peepholes:
            # Glorot-uniform of a [H] vector: fan_in = fan_out = H.
            limit = np.sqrt(3.0 / h)
            for name in PEEPHOLES:
                weights[name] = rng.uniform(-limit, limit, size=h).astype(self._dtype)
        if self._num_proj is not None:
            weights[PROJECTION] = glorot_uniform(rng, (h, p), self._dtype)
        return weights

    # -- state -------------------------------------------------------------
    def zero_state(self, batch_size: int) -> LSTMStateTuple:
        """``LSTMStateTuple(c=zeros [B, H], h=zeros [B, P])`` for ``batch_size``
        rows (an integer >= 0)."""
        batch_size = checked_size("batch_size", batch_size)
        return LSTMStateTuple(
            state_zeros(batch_size, self._num_units, self._dtype),
            state_zeros(batch_size, self._out, self._dtype),
        )

    def _check_state(self, name: str, state: Any, batch: int) -> LSTMStateTuple:
        """``state`` (an ``LSTMStateTuple`` or any ``(c, h)`` pair of arrays) as a
        validated ``LSTMStateTuple`` of ``self.dtype`` arrays ``[B, H]``, ``[B, P]``."""
        if isinstance(state, np.ndarray) or not isinstance(state, (tuple, list)):
            raise TypeError(
                f"{name}: expected an LSTMStateTuple(c, h) (or a (c, h) pair of arrays), got {type(state).__name__}"
            )
        if len(state) != 2:
            raise ValueError(
                f"{name}: expected an LSTMStateTuple(c, h) (or a (c, h) pair of arrays), "
                f"got a {type(state).__name__} of {len(state)} items"
            )
        c = float_array(f"{name}.c", state[0], self._dtype, 2, "[batch, num_units]")
        check_shape(f"{name}.c", c, (batch, self._num_units))
        h = float_array(f"{name}.h", state[1], self._dtype, 2, "[batch, num_proj or num_units]")
        check_shape(f"{name}.h", h, (batch, self._out))
        return LSTMStateTuple(c, h)

    # -- running -----------------------------------------------------------
    def _core_options(self) -> dict[str, Any]:
        return {
            "forget_bias": self._forget_bias,
            "cell_clip": self._cell_clip,
            "proj_clip": self._proj_clip if self._num_proj is not None else None,
            "activation": self.activation,
        }

    def _state_parts(self, state: Any) -> list[np.ndarray]:
        return [state[0], state[1]]

    def _state_from_parts(self, parts: list[np.ndarray]) -> LSTMStateTuple:
        return LSTMStateTuple(parts[0], parts[1])


@register("cell")
class BasicLSTMCell(_LSTM):
    """The basic LSTM cell (TensorFlow 1.x ``BasicLSTMCell``, no peepholes,
    no clipping, no projection)::

        i, j, f, o = split([x, h] @ kernel + bias, 4)
        c' = sigmoid(f + forget_bias) * c + sigmoid(i) * act(j)
        h' = sigmoid(o) * act(c')

    State ``LSTMStateTuple(c', h')``, output ``h'``.

    TensorFlow 1.x's signature and positional order
    (``BasicLSTMCell(num_units, forget_bias=1.0, state_is_tuple=True,
    activation=None, reuse=None, name=None, dtype=None)``), then rnnrs's
    keyword-only ``seed``.

    Args:
        num_units: number of units ``H``.
        forget_bias: added to the forget gate at run time (default 1.0;
            not part of ``bias``).
        state_is_tuple: must be True (``ValueError`` for False: TensorFlow's
            concatenated ``[c, h]`` state is not supported).
        activation: ``"tanh"`` (the default, also for None), ``"relu"``,
            ``"sigmoid"`` or ``"identity"``; applied to ``j`` and to ``c'``.
        reuse: None, True or False; accepted and without effect.
        name: the TensorFlow variable scope (default ``basic_lstm_cell``),
            used only by ``get_weights(scope=...)``.
        dtype: ``numpy.float32`` (the default, also for None) or ``numpy.float64``.
        seed: seeds the Glorot-uniform kernel; the same seed gives the same weights.

    Weights: ``kernel`` ``[I + H, 4H]`` (rows for ``x`` first, then ``h``;
    column blocks ``i, j, f, o``), ``bias`` ``[4H]`` (zeros).

    Shapes: inputs ``[B, T, I]`` (``[T, B, I]`` time-major), outputs
    ``[B, T, H]``, state ``LSTMStateTuple(c [B, H], h [B, H])``.
    """

    _CONFIG = ("num_units", "forget_bias", "activation", "dtype", "seed", "name")
    TF_SCOPE = "basic_lstm_cell"

    def __init__(
        self,
        num_units: int,
        forget_bias: float = 1.0,
        state_is_tuple: bool = True,
        activation: Optional[str] = None,
        reuse: Optional[bool] = None,
        name: Optional[str] = None,
        dtype: Any = None,
        *,
        seed: Optional[int] = None,
    ) -> None:
        super().__init__(
            num_units,
            use_peepholes=False,
            cell_clip=None,
            num_proj=None,
            proj_clip=None,
            forget_bias=forget_bias,
            state_is_tuple=state_is_tuple,
            activation=activation,
            reuse=reuse,
            name=name,
            dtype=dtype,
            seed=seed,
        )


@register("cell")
class LSTMCell(_LSTM):
    """The LSTM cell with optional peepholes, cell clipping and output projection
    (TensorFlow 1.x ``LSTMCell``; Hochreiter & Schmidhuber 1997, peepholes after
    Gers & Schmidhuber 2000, projection after Sak et al. 2014)::

        i, j, f, o = split([x, h] @ kernel + bias, 4)
        peepholes:  i += w_i_diag * c,  f += w_f_diag * c
        c' = sigmoid(f + forget_bias) * c + sigmoid(i) * act(j)
        cell_clip:  c' = clip(c', -cell_clip, cell_clip)
        peepholes:  o += w_o_diag * c'
        h' = sigmoid(o) * act(c')
        num_proj:   h' = h' @ projection/kernel, then clipped to ±proj_clip

    State ``LSTMStateTuple(c', h')``, output ``h'``.

    TensorFlow 1.x's signature and positional order (``LSTMCell(num_units,
    use_peepholes=False, cell_clip=None, initializer=None, num_proj=None,
    proj_clip=None, num_unit_shards=None, num_proj_shards=None,
    forget_bias=1.0, state_is_tuple=True, activation=None, reuse=None,
    name=None, dtype=None)``), then rnnrs's keyword-only ``seed``.

    Args:
        num_units: number of units ``H``.
        use_peepholes: add the diagonal peephole weights (default False).
        cell_clip: clip ``c'`` to ``±cell_clip`` (a number > 0; None: off).
        initializer: must be None (``ValueError`` otherwise): the weights
            start as described below, or come from ``set_weights``.
        num_proj: project the output to ``P = num_proj`` units (an int >= 1;
            None: no projection, ``P = H``).
        proj_clip: clip the projected output to ``±proj_clip`` (a number > 0;
            None: off). Ignored without ``num_proj``, as in TensorFlow.
        num_unit_shards, num_proj_shards: must be None (``ValueError``
            otherwise; TensorFlow's deprecated variable partitioning).
        forget_bias: added to the forget gate at run time (default 1.0;
            not part of ``bias``).
        state_is_tuple: must be True (``ValueError`` for False).
        activation: ``"tanh"`` (the default, also for None), ``"relu"``,
            ``"sigmoid"`` or ``"identity"``; applied to ``j`` and to ``c'``.
        reuse: None, True or False; accepted and without effect.
        name: the TensorFlow variable scope (default ``lstm_cell``), used
            only by ``get_weights(scope=...)``.
        dtype: ``numpy.float32`` (the default, also for None) or ``numpy.float64``.
        seed: seeds the Glorot-uniform weights; the same seed gives the same weights.

    Weights: ``kernel`` ``[I + P, 4H]`` (rows for ``x`` first, then ``h``;
    column blocks ``i, j, f, o``), ``bias`` ``[4H]`` (zeros); with
    ``use_peepholes`` ``w_i_diag``, ``w_f_diag``, ``w_o_diag`` ``[H]``
    (uniform in ``±sqrt(3 / H)``); with ``num_proj`` ``projection/kernel``
    ``[H, P]`` (Glorot-uniform).

    Shapes: inputs ``[B, T, I]`` (``[T, B, I]`` time-major), outputs
    ``[B, T, P]``, state ``LSTMStateTuple(c [B, H], h [B, P])``.
    """

    _CONFIG = (
        "num_units",
        "use_peepholes",
        "cell_clip",
        "num_proj",
        "proj_clip",
        "forget_bias",
        "activation",
        "dtype",
        "seed",
        "name",
    )
    TF_SCOPE = "lstm_cell"

    def __init__(
        self,
        num_units: int,
        use_peepholes: bool = False,
        cell_clip: Optional[float] = None,
        initializer: Any = None,
        num_proj: Optional[int] = None,
        proj_clip: Optional[float] = None,
        num_unit_shards: Optional[int] = None,
        num_proj_shards: Optional[int] = None,
        forget_bias: float = 1.0,
        state_is_tuple: bool = True,
        activation: Optional[str] = None,
        reuse: Optional[bool] = None,
        name: Optional[str] = None,
        dtype: Any = None,
        *,
        seed: Optional[int] = None,
    ) -> None:
        refuse_unless_none("initializer", initializer, "rnnrs initializes with Glorot-uniform; use set_weights")
        for shards, value in (("num_unit_shards", num_unit_shards), ("num_proj_shards", num_proj_shards)):
            refuse_unless_none(shards, value, "rnnrs does not partition variables")
        super().__init__(
            num_units,
            use_peepholes=use_peepholes,
            cell_clip=cell_clip,
            num_proj=num_proj,
            proj_clip=proj_clip,
            forget_bias=forget_bias,
            state_is_tuple=state_is_tuple,
            activation=activation,
            reuse=reuse,
            name=name,
            dtype=dtype,
            seed=seed,
        )

    def __repr__(self) -> str:
        options = [f"num_units={self._num_units}"]
        if self._use_peepholes:
            options.append("use_peepholes=True")
        for name, value in (
            ("cell_clip", self._cell_clip),
            ("num_proj", self._num_proj),
            ("proj_clip", self._proj_clip),
        ):
            if value is not None:
                options.append(f"{name}={value}")
        if self._forget_bias != 1.0:
            options.append(f"forget_bias={self._forget_bias}")
        if self.activation != "tanh":
            options.append(f"activation={self.activation!r}")
        options.append(f"dtype={self._dtype.name}")
        return f"LSTMCell({', '.join(options)})"
