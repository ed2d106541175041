"""Ready-made models: :class:`SequenceClassifier` (the chapter's sequence
classifier) and :class:`SequenceRegressor` (sequence to sequence)."""

from __future__ import annotations

from typing import Optional

from .._validate import positive_int
from ..cells import RNNCell
from ..layers import RNN, Dense, Layer
from ..optimizers import Adam, Optimizer
from ..saving.registry import register
from ..trainers.compile_utils import CLASSIFICATION, REGRESSION
from .sequential import Sequential


@register("model")
class SequenceClassifier(Sequential):
    """Reads a sequence and predicts one class: ``RNN(cell)`` (output at the
    last valid step) → ``Dense(num_classes)`` → softmax (the chapter's
    sequence classifier; compiled with Adam(0.001), sparse softmax
    cross-entropy and accuracy).

    Args:
        cell: any rnnrs cell (``BasicRNNCell(150)`` in the chapter).
        num_classes: number of classes ``C``.
        seed: seeds the dense layer's kernel (the cell has its own ``seed``).
        optimizer: replaces the default ``Adam(0.001)``.
        name: the model's name.

    ``x`` ``[B, T, F]``, ``y`` class ids ``[B]``; ``predict`` gives
    probabilities ``[B, C]``.
    """

    def __init__(
        self,
        cell: RNNCell,
        num_classes: int,
        seed: Optional[int] = None,
        optimizer: Optional[Optimizer] = None,
        name: Optional[str] = None,
    ) -> None:
        super().__init__([RNN(cell), Dense(positive_int("num_classes", num_classes), seed=seed)], name)
        self.compile(optimizer or Adam(0.001), CLASSIFICATION, ["accuracy"])

    @property
    def cell(self) -> RNNCell:
        """The recurrent cell."""
        layer = self.layers[0]
        assert isinstance(layer, RNN)
        return layer.cell


@register("model")
class SequenceRegressor(Sequential):
    """Sequence to sequence: ``RNN(cell, return_sequences=True)`` and, with
    ``output_size``, a ``Dense(output_size)`` on every step (the chapter's
    "reshape trick"); without it the cell's outputs are the predictions (use
    an ``OutputProjectionWrapper``). Compiled with Adam(0.001) and mean
    squared error.

    Args:
        cell: any rnnrs cell.
        output_size: size ``O`` of the projection, or None.
        seed: seeds the projection's kernel.
        optimizer: replaces the default ``Adam(0.001)``.
        name: the model's name.

    ``x`` ``[B, T, F]``, ``y`` ``[B, T, O]``; :meth:`generate` when ``O == F``.
    """

    def __init__(
        self,
        cell: RNNCell,
        output_size: Optional[int] = None,
        seed: Optional[int] = None,
        optimizer: Optional[Optimizer] = None,
        name: Optional[str] = None,
    ) -> None:
        layers: list[Layer] = [RNN(cell, return_sequences=True)]
        if output_size is not None:
            layers.append(Dense(positive_int("output_size", output_size), seed=seed))
        super().__init__(layers, name)
        self.compile(optimizer or Adam(0.001), REGRESSION)

    @property
    def cell(self) -> RNNCell:
        """The recurrent cell."""
        layer = self.layers[0]
        assert isinstance(layer, RNN)
        return layer.cell
