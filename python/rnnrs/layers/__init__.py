"""Layers with forward and backward passes, callable on arrays and on the
symbolic tensors of :func:`rnnrs.Input` (see :mod:`rnnrs.layers.base`)."""

from .base import (
    IDS,
    Applied,
    ApplyBackward,
    Input,
    InputLayer,
    Layer,
    LayerBackprop,
    LayerBackward,
    LayerGradients,
    LayerOutput,
    Node,
    Spec,
    SymbolicTensor,
)
from .core import DENSE_ACTIVATIONS, Dense, Dropout, Embedding, TimeDistributed, mask_zero_lengths
from .merging import Add, Concatenate
from .recurrent import MERGE_MODES, RNN, Bidirectional, cell_shapes, flatten_state, unflatten_state

__all__ = [
    "DENSE_ACTIVATIONS",
    "IDS",
    "MERGE_MODES",
    "RNN",
    "Add",
    "Applied",
    "ApplyBackward",
    "Bidirectional",
    "Concatenate",
    "Dense",
    "Dropout",
    "Embedding",
    "Input",
    "InputLayer",
    "Layer",
    "LayerBackprop",
    "LayerBackward",
    "LayerGradients",
    "LayerOutput",
    "Node",
    "Spec",
    "SymbolicTensor",
    "TimeDistributed",
    "cell_shapes",
    "flatten_state",
    "mask_zero_lengths",
    "unflatten_state",
]
