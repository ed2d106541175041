"""rnnrs — TensorFlow 1.x's recurrent toolbox on NumPy arrays, with a Rust core.

Cells (``BasicRNNCell``, ``BasicLSTMCell``, ``LSTMCell``, ``GRUCell``), wrappers
(``MultiRNNCell``, ``DropoutWrapper``, ``OutputProjectionWrapper``,
``ResidualWrapper``), run functions (``dynamic_rnn``, ``static_rnn``,
``bidirectional_dynamic_rnn``, ``static_bidirectional_rnn``) with
``sequence_length`` masking, backpropagation through time
(``return_backprop=True``), and the layers, losses, optimizers (with
learning-rate ``schedules``), ``metrics`` and models that train them
(``SequenceClassifier``, ``Sequential``, ``Adam``, ...).

Each function's docstring states its contract (``help(rnnrs.dynamic_rnn)``).
The documentation is in the ``docs/`` folder of the source repository, beside
the README: ``docs/api.md`` (the API reference, generated from these
docstrings), ``docs/semantics.md`` (masking, gradients, dropout, dtypes,
threads and errors), ``docs/tensorflow.md`` (TensorFlow 1.x names and weight
layouts, and the chapter's code translated), ``docs/roadmap.md`` (what is
coming) and ``docs/architecture.md`` (how the Rust core is built).
"""

from __future__ import annotations

import warnings

from . import callbacks, convert, datasets, distributed, losses, metrics, schedules, seq2seq, utils
from ._rnnrs import MAX_THREADS as _MAX_THREADS
from ._rnnrs import _num_threads_env
from ._rnnrs import get_num_threads as _get_num_threads
from ._rnnrs import set_num_threads as _set_num_threads
from ._state import LSTMStateTuple
from ._validate import positive_int
from ._version import __version__ as __version__
from .callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from .cells import BasicRNNCell, RNNCell
from .gru import GRUCell
from .layers import (
    RNN,
    Add,
    Bidirectional,
    Concatenate,
    Dense,
    Dropout,
    Embedding,
    Input,
    Layer,
    LayerBackprop,
    LayerGradients,
    TimeDistributed,
)
from .losses import mean_squared_error, sequence_loss, sequence_mask, sparse_softmax_cross_entropy
from .lstm import BasicLSTMCell, LSTMCell
from .models import EncoderDecoder, History, Model, SequenceClassifier, SequenceRegressor, Sequential, load_model
from .optimizers import SGD, Adagrad, Adam, AdamW, Momentum, Optimizer, RMSProp, clip_by_global_norm, global_norm
from .progress import ProgressBar
from .rnn import (
    Backprop,
    Gradients,
    bidirectional_dynamic_rnn,
    dynamic_rnn,
    stack_bidirectional_dynamic_rnn,
    static_bidirectional_rnn,
    static_rnn,
)
from .stepper import Stepper
from .wrappers import DropoutWrapper, MultiRNNCell, OutputProjectionWrapper, ResidualWrapper

__all__ = [
    "TimeDistributed",
    "Dropout",
    "Concatenate",
    "Bidirectional",
    "Add",
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
    "Stepper",
    "bidirectional_dynamic_rnn",
    "convert",
    "seq2seq",
    "distributed",
    "dynamic_rnn",
    "get_num_threads",
    "set_num_threads",
    "static_bidirectional_rnn",
    "static_rnn",
    "stack_bidirectional_dynamic_rnn",
    # Training: layers with backward passes, losses returning (value, gradient),
    # optimizers on dicts of named parameters, models with fit / evaluate /
    # predict / generate / save, and the examples' data sets.
    "Adagrad",
    "Adam",
    "AdamW",
    "CSVLogger",
    "Callback",
    "Dense",
    "EarlyStopping",
    "Embedding",
    "EncoderDecoder",
    "History",
    "Input",
    "Layer",
    "Model",
    "LayerBackprop",
    "LayerGradients",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "Momentum",
    "Optimizer",
    "ProgressBar",
    "RMSProp",
    "RNN",
    "ReduceLROnPlateau",
    "SGD",
    "SequenceClassifier",
    "SequenceRegressor",
    "Sequential",
    "TerminateOnNaN",
    "callbacks",
    "clip_by_global_norm",
    "datasets",
    "global_norm",
    "load_model",
    "losses",
    "mean_squared_error",
    "metrics",
    "schedules",
    "sequence_loss",
    "sequence_mask",
    "sparse_softmax_cross_entropy",
    "utils",
]


def set_num_threads(n: int) -> None:
    """Sizes rnnrs's thread pool to ``n`` threads, an integer in ``[1, 256]``
    (default: ``RNNRS_NUM_THREADS`` or the number of cores, at most 256).

    Results are bitwise identical whatever the size. A non-integer raises
    ``TypeError``; an integer outside ``[1, 256]`` (of any size) raises
    ``ValueError`` naming ``num_threads`` before any thread starts. If the
    operating system refuses to start the threads, ``RuntimeError`` naming
    ``num_threads`` is raised and the old pool stays.
    """
    n = positive_int("num_threads", n)
    if n > _MAX_THREADS:
        got = str(n) if n.bit_length() <= 64 else f"an integer of {n.bit_length()} bits"
        raise ValueError(f"num_threads: expected an integer in [1, {_MAX_THREADS}], got {got}")
    _set_num_threads(n)


def get_num_threads() -> int:
    """The thread pool's size."""
    return int(_get_num_threads())


def _check_num_threads_env() -> None:
    """Warns (``RuntimeWarning``) when ``RNNRS_NUM_THREADS`` is set but is not an
    integer in ``[1, 256]``: the pool then ignores it and uses the machine's cores.
    The core parses the variable; this only reports what it decided."""
    value, valid, threads = _num_threads_env()
    if value is not None and not valid:
        warnings.warn(
            f"RNNRS_NUM_THREADS: expected an integer in [1, {_MAX_THREADS}], got {value!r};"
            f" ignored, the thread pool uses {threads} threads (the machine's cores)",
            RuntimeWarning,
            stacklevel=2,
        )


_check_num_threads_env()
