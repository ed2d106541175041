"""rnnrs — TensorFlow 1.x's recurrent toolbox on NumPy arrays, with a Rust core.

Cells (``BasicRNNCell``, ``BasicLSTMCell``, ``LSTMCell``, ``GRUCell``), wrappers (``MultiRNNCell``, ``DropoutWrapper``,
``OutputProjectionWrapper``, ``ResidualWrapper``), run functions
(``dynamic_rnn``, ``static_rnn``, ``bidirectional_dynamic_rnn``,
``static_bidirectional_rnn``) with ``sequence_length`` masking, and
backpropagation through time (``return_backprop=True``). See ``DESIGN.md``
for the contract.
"""

from __future__ import annotations

from ._rnnrs import get_num_threads as _get_num_threads
from ._rnnrs import set_num_threads as _set_num_threads
from ._validate import positive_int
from ._state import LSTMStateTuple
from . import convert
from .cells import BasicRNNCell, RNNCell
from .gru import GRUCell
from .lstm import BasicLSTMCell, LSTMCell
from .rnn import (
    Backprop,
    Gradients,
    bidirectional_dynamic_rnn,
    dynamic_rnn,
    static_bidirectional_rnn,
    static_rnn,
)
from .wrappers import DropoutWrapper, MultiRNNCell, OutputProjectionWrapper, ResidualWrapper

__version__ = "0.1.0"

__all__ = [
    "BasicLSTMCell",
    "BasicRNNCell",
    "Backprop",
    "DropoutWrapper",
    "GRUCell",
    "Gradients",
    "LSTMCell",
    "LSTMStateTuple",
    "MultiRNNCell",
    "OutputProjectionWrapper",
    "RNNCell",
    "ResidualWrapper",
    "bidirectional_dynamic_rnn",
    "convert",
    "dynamic_rnn",
    "get_num_threads",
    "set_num_threads",
    "static_bidirectional_rnn",
    "static_rnn",
]


def set_num_threads(n: int) -> None:
    """Sizes rnnrs's thread pool (default: ``RNNRS_NUM_THREADS`` or the number
    of cores). Results are bitwise identical whatever the size."""
    _set_num_threads(positive_int("num_threads", n))


def get_num_threads() -> int:
    """The thread pool's size."""
    return int(_get_num_threads())
