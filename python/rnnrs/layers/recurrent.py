"""Recurrent layers: ``RNN`` turns any :class:`rnnrs.RNNCell` into a layer.

The whole sequence (``[B, T, H]``, ``return_sequences=True``) or the output
at each row's last valid step (``[B, H]``; for a plain cell that is its final
state, for an ``LSTMStateTuple`` its ``h``, for a ``MultiRNNCell`` the last
layer's).

Shape letters: ``B`` batch, ``T`` time, ``I`` input size, ``H`` the cell's
output size.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .._validate import flag, float_array
from ..cells import RNNCell, build_for_inputs
from ..rnn import Backprop, dynamic_rnn
from ..saving.registry import register
from .base import Layer, LayerOutput, Spec, float_spec


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


@register("layer")
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
        from ..saving.serialize import cell_to_config

        return {"cell": cell_to_config(self.cell), "return_sequences": self.return_sequences, "name": self.name}

    def weight_shapes(self, inputs: Sequence[Spec]) -> dict[str, tuple[int, ...]]:
        size = inputs[0].shape[-1]
        assert size is not None
        return cell_shapes(self.cell, int(size))

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
