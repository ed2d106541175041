"""Sequence to sequence (TensorFlow 1.x ``tf.contrib.seq2seq``) on NumPy arrays.

Attention (``BahdanauAttention``, ``LuongAttention``, ``AttentionWrapper``),
helpers (what a decoder feeds its cell), ``BasicDecoder``,
``dynamic_decode``, ``BeamSearchDecoder`` and ``gather_tree``, ``sequence_loss`` with TensorFlow 1.15's reductions and
``tile_batch``. See each one's docstring for its contract.
"""

from __future__ import annotations

from ._common import DEFAULT_MAXIMUM_ITERATIONS
from .attention import AttentionWrapper, AttentionWrapperState, BahdanauAttention, LuongAttention
from .basic_decoder import BasicDecoder
from .beam_search import (
    BeamSearchDecoder,
    BeamSearchDecoderOutput,
    BeamSearchDecoderState,
    FinalBeamSearchDecoderOutput,
    gather_tree,
)
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

__all__ = [
    "DEFAULT_MAXIMUM_ITERATIONS",
    "AttentionWrapper",
    "AttentionWrapperState",
    "BahdanauAttention",
    "LuongAttention",
    "BasicDecoder",
    "BasicDecoderOutput",
    "BeamSearchDecoder",
    "BeamSearchDecoderOutput",
    "BeamSearchDecoderState",
    "FinalBeamSearchDecoderOutput",
    "DecoderBackprop",
    "DecoderGradients",
    "GreedyEmbeddingHelper",
    "Helper",
    "SampleEmbeddingHelper",
    "ScheduledEmbeddingTrainingHelper",
    "TrainingHelper",
    "dynamic_decode",
    "gather_tree",
    "sequence_loss",
    "tile_batch",
]
