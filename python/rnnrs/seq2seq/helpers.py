"""Decoder helpers (TensorFlow 1.x ``tf.contrib.seq2seq`` ``TrainingHelper``,
``GreedyEmbeddingHelper``, ``SampleEmbeddingHelper``,
``ScheduledEmbeddingTrainingHelper``): what a :class:`BasicDecoder` feeds the
cell at each step, what it emits as ``sample_id`` and when a row finishes.

A helper holds its validated arguments; :func:`dynamic_decode` runs the
loop (in Rust where it can). Semantics (TensorFlow 1.15's):

- ``TrainingHelper``: step ``t`` reads ``inputs[:, t]``; a row finishes
  after its ``sequence_length`` steps (length 0: finished before the first
  step); ``sample_id`` is the argmax of the output (the first maximum).
- ``GreedyEmbeddingHelper``: step 0 reads ``embedding(start_tokens)``, step
  ``t + 1`` ``embedding(sample_id[t])`` with ``sample_id`` the argmax; a row
  finishes at the step that emits ``end_token`` (that step counts in its
  length).
- ``SampleEmbeddingHelper``: as greedy, with ``sample_id`` drawn from
  ``softmax(output / softmax_temperature)``.
- ``ScheduledEmbeddingTrainingHelper``: as ``TrainingHelper``, but each row
  at each step, with probability ``sampling_probability``, is fed the
  embedding of an id sampled from its output instead of its next input
  (``sample_id`` is then that id, else -1).

Random draws (rnnrs's own, not TensorFlow's generator) are reproducible
with ``seed``: ``SampleEmbeddingHelper`` draws ``u =
numpy.random.default_rng(seed).random((maximum_iterations, B))`` up front
(row ``b`` at step ``t`` uses ``u[t, b]``) and picks the first id whose
cumulative probability (float64) exceeds ``u`` (clipped to the last id);
``ScheduledEmbeddingTrainingHelper`` draws ``rng.random((2, B))`` per step
(the selection uniforms, then the sampling ones) from one generator seeded
by ``seed``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .._validate import finite_number, flag, lengths_array, numeric_array, seed_value
from ..cells import check_name, refuse_unless_none
from ..layers.core import Embedding
from ._common import EmbeddingFn, as_embedding, check_end_token, check_start_tokens

__all__ = [
    "Helper",
    "TrainingHelper",
    "GreedyEmbeddingHelper",
    "SampleEmbeddingHelper",
    "ScheduledEmbeddingTrainingHelper",
]


class Helper:
    """Base class of the helpers a :class:`~rnnrs.seq2seq.BasicDecoder` takes."""

    _embedding_value: Any = None

    @property
    def batch_size(self) -> int:
        """The number of rows ``B`` the helper decodes."""
        raise NotImplementedError

    def _embedding(self, dtype: np.dtype[Any], input_size: Optional[int]) -> EmbeddingFn:
        """The embedding (of the helpers that have one) in the cell's
        ``dtype`` (an ``Embedding`` layer's current matrix), its width
        checked against ``input_size``."""
        return as_embedding("embedding", self._embedding_value, dtype, input_size)


def _sequence_inputs(inputs: Any, sequence_length: Any, time_major: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """``inputs`` as a batch-major ``[B, T, E]`` numeric array (a view when
    time-major), ``sequence_length`` as int64 ``[B]`` within ``[0, T]``."""
    time_major = flag("time_major", time_major)
    layout = "[time, batch, input_size]" if time_major else "[batch, time, input_size]"
    raw = numeric_array("inputs", inputs, f"a 3-d array {layout}")
    if raw.dtype.kind not in "iuf":
        raise TypeError(f"inputs: expected a numeric array {layout}, got dtype {raw.dtype}")
    if raw.ndim != 3:
        raise ValueError(f"inputs: expected a 3-d array {layout}, got shape {raw.shape}")
    x = raw.transpose(1, 0, 2) if time_major else raw
    if sequence_length is None:
        raise TypeError("sequence_length: expected one length per batch row, got None")
    lengths = lengths_array(sequence_length, x.shape[0], x.shape[1])
    assert lengths is not None
    return x, lengths, time_major


class TrainingHelper(Helper):
    """Teacher forcing: step ``t`` reads ``inputs[:, t]`` (TensorFlow 1.x
    ``tf.contrib.seq2seq.TrainingHelper``).

    TensorFlow 1.x's signature and positional order (``TrainingHelper(inputs,
    sequence_length, time_major=False, name=None)``).

    Args:
        inputs: ``[B, T, E]`` (``[T, B, E]`` when ``time_major``), numeric;
            cast to the cell's dtype when decoding. ``E`` must be the cell's
            input size.
        sequence_length: integers ``[B]`` in ``[0, T]`` (``ValueError``
            naming ``sequence_length`` otherwise): row ``b`` finishes after
            ``sequence_length[b]`` steps (0: finished at once, its outputs
            are all after its end).
        time_major: read ``inputs`` as ``[T, B, E]``.
        name: None or a scope name; no effect.

    Decoding it runs the cell over ``inputs[:, :T]`` in one fused pass
    (``dynamic_rnn``), ``T = max(min(sequence_length, maximum_iterations))``.
    """

    def __init__(self, inputs: Any, sequence_length: Any, time_major: bool = False, name: Optional[str] = None):
        self._inputs, self._lengths, self._time_major = _sequence_inputs(inputs, sequence_length, time_major)
        self.name = check_name(name)

    @property
    def batch_size(self) -> int:
        return int(self._inputs.shape[0])

    @property
    def inputs(self) -> np.ndarray:
        """The inputs as given (``[B, T, E]``, or ``[T, B, E]`` when time-major)."""
        return self._inputs.transpose(1, 0, 2) if self._time_major else self._inputs

    @property
    def sequence_length(self) -> np.ndarray:
        """The validated lengths, int64 ``[B]``."""
        return self._lengths

    @property
    def time_major(self) -> bool:
        return self._time_major


class _EmbeddingHelper(Helper):
    """What the greedy and sampling helpers share: the embedding, the start
    tokens and the end token, validated against each other."""

    def __init__(self, embedding: Any, start_tokens: Any, end_token: Any) -> None:
        self._embedding_value = embedding
        probe = _probe_embedding(embedding)
        vocab = probe.vocab
        self._start_tokens = check_start_tokens("start_tokens", start_tokens, None, vocab)
        self._end_token = check_end_token("end_token", end_token, vocab)

    @property
    def batch_size(self) -> int:
        return int(self._start_tokens.shape[0])

    @property
    def start_tokens(self) -> np.ndarray:
        """The start tokens, int32 ``[B]``."""
        return self._start_tokens

    @property
    def end_token(self) -> int:
        return self._end_token


def _probe_embedding(value: Any) -> EmbeddingFn:
    """``value`` validated as an embedding (its dtype kept when it is a float
    array) to read its vocabulary size at construction."""
    dtype = np.dtype(np.float32)
    if isinstance(value, Embedding):
        dtype = value.dtype
    elif isinstance(value, np.ndarray) and value.dtype == np.float64:
        dtype = value.dtype
    return as_embedding("embedding", value, dtype, None)


class GreedyEmbeddingHelper(_EmbeddingHelper):
    """Greedy decoding: feeds back the embedding of the argmax (TensorFlow 1.x
    ``tf.contrib.seq2seq.GreedyEmbeddingHelper``).

    TensorFlow 1.x's signature and positional order
    (``GreedyEmbeddingHelper(embedding, start_tokens, end_token)``).

    Args:
        embedding: a ``[V, E]`` float array (cast to the cell's dtype), an
            ``rnnrs.Embedding`` layer (its current ``embeddings`` matrix is
            read when decoding) or a callable from int32 ids ``[B]`` to
            vectors ``[B, E]`` (then the loop runs in Python). ``E`` must be
            the cell's input size.
        start_tokens: int ids ``[B]`` in ``[0, V)``, one per row (a scalar
            is refused: the batch size comes from here).
        end_token: an int id in ``[0, V)``.

    For a callable embedding ``V`` is unknown: the tokens are checked
    against the decoder's output width when decoding. ``sample_id`` is the
    first maximum of each output; a row finishes at the step emitting
    ``end_token`` (counted in its length).
    """

    def __init__(self, embedding: Any, start_tokens: Any, end_token: Any) -> None:
        super().__init__(embedding, start_tokens, end_token)


class SampleEmbeddingHelper(_EmbeddingHelper):
    """Sampled decoding: feeds back the embedding of an id drawn from
    ``softmax(output / softmax_temperature)`` (TensorFlow 1.x
    ``tf.contrib.seq2seq.SampleEmbeddingHelper``).

    TensorFlow 1.x's signature and positional order
    (``SampleEmbeddingHelper(embedding, start_tokens, end_token,
    softmax_temperature=None, seed=None)``).

    Args:
        embedding, start_tokens, end_token: as for
            :class:`GreedyEmbeddingHelper`.
        softmax_temperature: None (1.0) or a finite number > 0; larger
            values flatten the distribution.
        seed: None or an integer >= 0. A decode draws its uniforms as
            ``numpy.random.default_rng(seed).random((maximum_iterations,
            B))``, so the same seed gives the same samples on every decode
            (and in the Rust and the Python loop alike); this is not
            TensorFlow's random generator.
    """

    def __init__(
        self, embedding: Any, start_tokens: Any, end_token: Any, softmax_temperature: Any = None, seed: Any = None
    ) -> None:
        super().__init__(embedding, start_tokens, end_token)
        self.softmax_temperature = _temperature(softmax_temperature)
        self.seed = seed_value(seed)


def _temperature(value: Any) -> float:
    if value is None:
        return 1.0
    temperature = finite_number("softmax_temperature", value)
    if temperature <= 0:
        raise ValueError(f"softmax_temperature: expected a number > 0, got {value!r}")
    return temperature


class ScheduledEmbeddingTrainingHelper(TrainingHelper):
    """Scheduled sampling (TensorFlow 1.x
    ``tf.contrib.seq2seq.ScheduledEmbeddingTrainingHelper``): teacher forcing
    in which each row, at each step, is fed with probability
    ``sampling_probability`` the embedding of an id sampled from its output
    (temperature 1) instead of its next input.

    TensorFlow 1.x's signature and positional order
    (``ScheduledEmbeddingTrainingHelper(inputs, sequence_length, embedding,
    sampling_probability, time_major=False, seed=None, scheduling_seed=None,
    name=None)``).

    Args:
        inputs, sequence_length, time_major, name: as for :class:`TrainingHelper`.
        embedding: as for :class:`GreedyEmbeddingHelper`.
        sampling_probability: a number in ``[0, 1]``, or one per row ``[B]``.
        seed: None or an integer >= 0: seeds the one generator both draws
            of every step come from (``rng.random((2, B))``: selection, then
            sampling).
        scheduling_seed: must be None (``ValueError`` otherwise): rnnrs
            draws the selection from the generator ``seed`` seeds.

    ``sample_id`` is the sampled id on the rows fed their sample, -1 on the
    others. The loop runs in Python (each cell step in Rust).
    """

    def __init__(
        self,
        inputs: Any,
        sequence_length: Any,
        embedding: Any,
        sampling_probability: Any,
        time_major: bool = False,
        seed: Any = None,
        scheduling_seed: Any = None,
        name: Optional[str] = None,
    ) -> None:
        super().__init__(inputs, sequence_length, time_major, name)
        self._embedding_value = embedding
        _probe_embedding(embedding)
        self.sampling_probability = _probability(sampling_probability, self.batch_size)
        self.seed = seed_value(seed)
        refuse_unless_none(
            "scheduling_seed", scheduling_seed, "one generator seeded by seed draws both the selection and the sample"
        )


def _probability(value: Any, batch: int) -> np.ndarray:
    """``sampling_probability`` as float64 ``[B]`` in ``[0, 1]``."""
    raw = numeric_array("sampling_probability", value, "a number in [0, 1] or one per batch row")
    if raw.dtype.kind == "b":
        raise TypeError(f"sampling_probability: expected a number in [0, 1], got dtype {raw.dtype}")
    if raw.ndim > 1 or (raw.ndim == 1 and raw.shape[0] != batch):
        raise ValueError(
            f"sampling_probability: expected a number or shape ({batch},) (one per batch row), got shape {raw.shape}"
        )
    p = np.broadcast_to(raw.astype(np.float64), (batch,))
    bad = ~((p >= 0) & (p <= 1))
    if bad.any():
        raise ValueError(f"sampling_probability: expected values in [0, 1], got {p[np.flatnonzero(bad)[0]]}")
    return p
