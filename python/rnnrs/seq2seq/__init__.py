"""Sequence to sequence (TensorFlow 1.x ``tf.contrib.seq2seq``) on NumPy arrays.

Helpers (what a decoder feeds its cell), ``BasicDecoder``,
``dynamic_decode``, ``sequence_loss`` with TensorFlow 1.15's reductions and
``tile_batch``. See each one's docstring for its contract.
"""

from __future__ import annotations

from ._common import DEFAULT_MAXIMUM_ITERATIONS
from .basic_decoder import BasicDecoder
from .decoder import dynamic_decode
from .helpers import (
    GreedyEmbeddingHelper,
    Helper,
    SampleEmbeddingHelper,
    ScheduledEmbeddingTrainingHelper,
    TrainingHelper,
)
from .loss import sequence_loss
from .types import BasicDecoderOutput, DecoderBackprop, DecoderGradients
from .utils import tile_batch

# -- beam search: BeamSearchDecoder, gather_tree, BeamSearchDecoderOutput,
# -- BeamSearchDecoderState and FinalBeamSearchDecoderOutput are imported here
# -- from .beam_search (and added to __all__ below).

__all__ = [
    "DEFAULT_MAXIMUM_ITERATIONS",
    "BasicDecoder",
    "BasicDecoderOutput",
    "DecoderBackprop",
    "DecoderGradients",
    "GreedyEmbeddingHelper",
    "Helper",
    "SampleEmbeddingHelper",
    "ScheduledEmbeddingTrainingHelper",
    "TrainingHelper",
    "dynamic_decode",
    "sequence_loss",
    "tile_batch",
]
