"""Layers that merge several inputs: ``Concatenate`` and ``Add``
(``keras.layers.Concatenate`` / ``keras.layers.Add``), for graphs with
several branches: ``Concatenate()([a, b])``.

Sequence lengths: the inputs that carry lengths must carry equal ones
(``ValueError`` otherwise, at run time) and the output carries them when it
keeps a time axis (rank >= 3).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from .._validate import float_array, numeric_array
from ..saving.registry import register
from .base import Applied, Spec, Weightless


def _describe(shape: Sequence[Optional[int]]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def joined_shape(shapes: Sequence[Sequence[Optional[int]]], axis: Optional[int], but: str) -> tuple[Optional[int], ...]:
    """The shape of inputs of ``shapes`` (ranks already equal; None: unknown)
    joined along ``axis`` (summed there), or of one shape when ``axis`` is
    None; ``ValueError`` naming both shapes when another axis differs."""
    out: list[Optional[int]] = list(shapes[0])
    for i, shape in enumerate(shapes[1:], 1):
        for k, (a, b) in enumerate(zip(out, shape)):
            if k == axis:
                out[k] = None if a is None or b is None else a + b
            elif a is not None and b is not None and a != b:
                raise ValueError(
                    f"inputs[{i}]: expected shape {_describe(shapes[0])}{but} (that of inputs[0]), "
                    f"got {_describe(shape)}"
                )
            elif a is None:
                out[k] = b
    return tuple(out)


class _Merge(Weightless):
    """Shared parts: no weights, two or more float inputs of one dtype; the
    lengths check and the output's lengths."""

    def _check_specs(self, inputs: Sequence[Spec]) -> np.dtype[Any]:
        if len(inputs) < 2:
            raise ValueError(f"inputs: expected a list of at least 2 tensors, got {len(inputs)}")
        for i, spec in enumerate(inputs):
            if spec.dtype.kind != "f":
                raise TypeError(f"inputs[{i}]: expected float tensors, got {spec.dtype.name}")
            if spec.dtype != inputs[0].dtype:
                raise ValueError(
                    f"inputs[{i}]: expected dtype {inputs[0].dtype.name} (that of inputs[0]), got {spec.dtype.name}"
                )
            if len(spec.shape) != len(inputs[0].shape):
                raise ValueError(
                    f"inputs[{i}]: expected rank {len(inputs[0].shape)} like inputs[0] {_describe(inputs[0].shape)}, "
                    f"got shape {_describe(spec.shape)}"
                )
        return inputs[0].dtype

    def _prepare_inputs(self, inputs: Any) -> list[np.ndarray]:
        if isinstance(inputs, np.ndarray) or not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            got = f"{len(inputs)} items" if isinstance(inputs, (list, tuple)) else type(inputs).__name__
            raise TypeError(f"inputs: expected a list of at least 2 arrays, got {got}")
        raws = [numeric_array(f"inputs[{i}]", v, "an array") for i, v in enumerate(inputs)]
        floats = [r.dtype for r in raws if r.dtype in (np.float32, np.float64)]
        dtype = floats[0] if floats else np.dtype(np.float32)
        xs = [float_array(f"inputs[{i}]", r, dtype, r.ndim, "") for i, r in enumerate(raws)]
        self._check_specs([Spec(x.shape, x.dtype) for x in xs])
        self._check_shapes([x.shape for x in xs])
        return xs

    def _check_shapes(self, shapes: Sequence[Sequence[Optional[int]]]) -> tuple[Optional[int], ...]:
        """The output shape for inputs of these shapes (None: unknown)."""
        raise NotImplementedError

    def compute_output_spec(self, inputs: Sequence[Spec]) -> list[Spec]:
        dtype = self._check_specs(inputs)
        shape = self._check_shapes([s.shape for s in inputs])
        last = shape[-1]
        self._size = None if last is None else int(last)
        return [Spec((None,) + tuple(shape[1:]), dtype)]

    def _lengths(self, lengths: Sequence[Optional[np.ndarray]], ndim: int) -> Optional[np.ndarray]:
        """The inputs' common lengths (``ValueError`` when two differ), for outputs of rank >= 3."""
        known = [(i, n) for i, n in enumerate(lengths) if n is not None]
        for i, n in known[1:]:
            if not np.array_equal(n, known[0][1]):
                raise ValueError(
                    f"sequence_length: expected equal lengths for the inputs of {type(self).__name__} "
                    f"{self.name!r}, got {known[0][1].tolist()} for inputs[{known[0][0]}] and "
                    f"{n.tolist()} for inputs[{i}]"
                )
        return known[0][1] if known and ndim >= 3 else None

    def _merge(
        self, inputs: Sequence[np.ndarray], lengths: Sequence[Optional[np.ndarray]]
    ) -> tuple[np.ndarray, Callable[[np.ndarray], list[np.ndarray]]]:
        """The merged output and the function giving each input's part of its gradient."""
        raise NotImplementedError

    def _apply(
        self,
        inputs: Sequence[np.ndarray],
        lengths: Sequence[Optional[np.ndarray]],
        training: bool,
        state: Any = None,
    ) -> Applied:
        self._check_shapes([x.shape for x in inputs])
        carried = self._lengths(lengths, inputs[0].ndim)
        y, parts = self._merge(inputs, lengths)

        def backward(
            d_outputs: list[Optional[np.ndarray]], need: list[bool]
        ) -> tuple[list[Optional[np.ndarray]], dict[str, np.ndarray]]:
            d = d_outputs[0]
            if d is None:
                d = np.zeros(y.shape, dtype=y.dtype)
            return [p.copy() if wanted else None for p, wanted in zip(parts(d), need)], {}

        return Applied([y], [carried], None, backward)


@register("layer")
class Concatenate(_Merge):
    """Joins its inputs along ``axis`` (``keras.layers.Concatenate``).

    Args:
        axis: the axis to join on (default -1, the features); not the batch
            axis (0). Joining along the time axis (1) of sequences that carry
            lengths is refused at run time (their padding would sit inside
            the result).
        name: the layer's name (default ``"concatenate"``).

    Inputs: a list of two or more float arrays of one rank and dtype, equal
    in every axis but ``axis``. Weights: none. The gradient is split back
    into the inputs' parts.
    """

    default_name = "concatenate"

    def __init__(self, axis: int = -1, name: Optional[str] = None) -> None:
        super().__init__(name)
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"axis: expected an integer (not 0, the batch axis), got {type(axis).__name__} {axis!r}")
        if axis == 0:
            raise ValueError("axis: expected an integer other than 0 (the batch axis), got 0")
        self.axis = int(axis)

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis, "name": self.name}

    def _axis(self, ndim: int) -> int:
        axis = self.axis + ndim if self.axis < 0 else self.axis
        if not 1 <= axis < ndim:
            raise ValueError(f"axis: expected an axis of inputs of rank {ndim} other than the batch's, got {self.axis}")
        return axis

    def _check_shapes(self, shapes: Sequence[Sequence[Optional[int]]]) -> tuple[Optional[int], ...]:
        return joined_shape(shapes, self._axis(len(shapes[0])), f" but for axis {self.axis}")

    def _merge(
        self, inputs: Sequence[np.ndarray], lengths: Sequence[Optional[np.ndarray]]
    ) -> tuple[np.ndarray, Callable[[np.ndarray], list[np.ndarray]]]:
        axis = self._axis(inputs[0].ndim)
        if axis == 1 and any(n is not None for n in lengths):
            raise ValueError(
                "axis: expected an axis other than the time axis (1) for sequences with lengths "
                "(their padding would sit inside the result), got 1"
            )
        bounds = np.cumsum([x.shape[axis] for x in inputs])[:-1]
        return np.concatenate(list(inputs), axis=axis), lambda d: np.split(d, bounds, axis=axis)


@register("layer")
class Add(_Merge):
    """The element-wise sum of its inputs (``keras.layers.Add``).

    Args:
        name: the layer's name (default ``"add"``).

    Inputs: a list of two or more float arrays of one shape and dtype.
    Weights: none. Each input receives the output's gradient.
    """

    default_name = "add"

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    def _check_shapes(self, shapes: Sequence[Sequence[Optional[int]]]) -> tuple[Optional[int], ...]:
        return joined_shape(shapes, None, "")

    def _merge(
        self, inputs: Sequence[np.ndarray], lengths: Sequence[Optional[np.ndarray]]
    ) -> tuple[np.ndarray, Callable[[np.ndarray], list[np.ndarray]]]:
        y = inputs[0].copy()
        for x in inputs[1:]:
            y += x
        n = len(inputs)
        return y, lambda d: [d] * n
