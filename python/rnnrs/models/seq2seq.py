"""``EncoderDecoder``: an RNN encoder–decoder over token ids, ended by an EOS
token (translation), as a functional :class:`rnnrs.Model`.

::

    model = rnnrs.EncoderDecoder(rnnrs.GRUCell(128), rnnrs.GRUCell(128), source_vocab=40, target_vocab=14,
                                 embedding_size=32, start_token=1, end_token=2)
    model.fit(sources, targets, epochs=10, validation_data=(val_sources, val_targets))
    model.evaluate(test_sources, test_targets)    # {'loss', 'accuracy' (per token), 'exact_match'}
    model.translate(test_sources, beam_width=5)   # [[id, id, ...], ...] without the EOS
    model.save("dates.npz"); rnnrs.load_model("dates.npz")

The graph (its layers' names in brackets)::

    sources ─ Embedding [source_embedding] ─ RNN(encoder_cell, return_state=True) [encoder] ─┐ final state
    targets ─ TeacherForcing [teacher_forcing] ─ Embedding [target_embedding] ─ RNN(decoder_cell, initial_state=·)
            [decoder] ─ Dense(target_vocab) [output] → logits [B, T + 1, target_vocab]

Training is teacher-forced: the decoder reads ``[start_token, y_0, ...,
y_{L-1}]`` and learns to output ``[y_0, ..., y_{L-1}, end_token]``; the loss
(sparse softmax cross-entropy) and the token accuracy count the ``L + 1``
steps of each row, the EOS step included, and no padding. Decoding
(:meth:`EncoderDecoder.translate`) runs the same weights in
:mod:`rnnrs.seq2seq`: ``BasicDecoder`` with a ``GreedyEmbeddingHelper`` and
``dynamic_decode(..., impute_finished=True)``, or a ``BeamSearchDecoder``.
"""

from __future__ import annotations

import copy
import numbers
from typing import Any, Mapping, Optional, Sequence, TextIO, TypeVar, Union

import numpy as np

from .._validate import bounded_int, finite_number, flag, integer_ids, lengths_array, positive_int, seed_value
from ..callbacks import Callback
from ..cells import RNNCell
from ..layers import IDS, RNN, Dense, Embedding, Input, Layer, Spec, SymbolicTensor
from ..layers.base import Applied, Weightless
from ..layers.recurrent import (
    _state_template,
    cell_generator_state,
    flatten_state,
    restore_cell_generators,
    unflatten_state,
)
from ..optimizers import Adam, Optimizer
from ..rnn import dynamic_rnn
from ..saving.registry import register
from ..trainers.compile_utils import CLASSIFICATION
from ..trainers.trainer import Arrays, History, Lengths
from .model import Model

#: Ids of a sequence fed to a layer that reads them without an Embedding (any int64).
_ANY_ID = np.iinfo(np.int64).max


def token(name: str, value: Any, vocab: int) -> int:
    """``value`` as a token id in ``[0, vocab)``: ``TypeError`` for a non-integer
    (bools included), ``ValueError`` outside the vocabulary, both naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer token id in [0, {vocab}), got {type(value).__name__} {value!r}")
    if not 0 <= int(value) < vocab:
        raise ValueError(f"{name}: expected a token id in [0, {vocab}) (the target vocabulary), got {int(value)}")
    return int(value)


def id_sequences(name: str, value: Any, vocab: int, length_name: str, lengths: Any) -> tuple[np.ndarray, np.ndarray]:
    """Rows of token ids as ``(ids [B, T] int64, lengths [B] int64)``, zero past each row's length.

    ``value`` is either a list (or tuple) of id sequences of any lengths
    (``lengths`` must then be None), or a 2-d integer array ``[B, T]`` with
    ``lengths`` ``[B]`` (None: every row is ``T`` long). Every id given (the
    padding of an array included) must be in ``[0, vocab)``."""
    if isinstance(value, (list, tuple)) and (not value or not np.isscalar(value[0])):
        if lengths is not None:
            raise ValueError(
                f"{length_name}: expected None for {name} given as a list of sequences (their lengths are known), "
                f"got {type(lengths).__name__}"
            )
        rows = [integer_ids(f"{name}[{i}]", row, vocab, "token ids") for i, row in enumerate(value)]
        for i, row in enumerate(rows):
            if row.ndim != 1:
                raise ValueError(f"{name}[{i}]: expected a 1-d sequence of token ids, got shape {row.shape}")
        sizes = np.array([row.shape[0] for row in rows], dtype=np.int64)
        ids = np.zeros((len(rows), int(sizes.max(initial=0))), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : row.shape[0]] = row
        return ids, sizes
    ids = integer_ids(name, value, vocab, "token ids")
    if ids.ndim != 2:
        raise ValueError(
            f"{name}: expected a list of id sequences or a 2-d array of token ids [batch, time], got shape {ids.shape}"
        )
    try:
        given = lengths_array(lengths, ids.shape[0], ids.shape[1])
    except (TypeError, ValueError) as e:
        raise type(e)(str(e).replace("sequence_length", length_name, 1)) from None
    sizes = np.full(ids.shape[0], ids.shape[1], dtype=np.int64) if given is None else given
    ids = np.where(np.arange(ids.shape[1])[None, :] < sizes[:, None], ids, 0)
    return ids, sizes


@register("layer")
class TeacherForcing(Weightless):
    """The decoder's inputs in teacher-forced training: each row of target ids
    shifted right by one step behind ``start_token`` (``[start, y_0, ...,
    y_{T-2}]``, lengths unchanged). It also holds the ``end_token`` the
    targets end with, so an :class:`EncoderDecoder`'s file keeps both.

    Args:
        start_token: the id the decoder starts from (an integer >= 0).
        end_token: the id ending each target row (an integer >= 0).
        name: the layer's name (default ``"teacher_forcing"``).
    """

    default_name = "teacher_forcing"

    def __init__(self, start_token: int, end_token: int, name: Optional[str] = None) -> None:
        super().__init__(name)
        self.start_token = token("start_token", start_token, _ANY_ID)
        self.end_token = token("end_token", end_token, _ANY_ID)

    def get_config(self) -> dict[str, Any]:
        return {"start_token": self.start_token, "end_token": self.end_token, "name": self.name}

    def compute_output_spec(self, inputs: Sequence[Spec]) -> list[Spec]:
        if len(inputs) != 1:
            raise ValueError(f"inputs: expected one input (the target ids), got {len(inputs)}")
        spec = inputs[0]
        if spec.dtype.kind not in "iu" or len(spec.shape) != 2:
            raise ValueError(f"inputs: expected target ids (None, T) int64, got {spec.describe()}")
        return [Spec(spec.shape, IDS)]

    def _prepare(self, inputs: Any) -> np.ndarray:
        ids = integer_ids("inputs", inputs, _ANY_ID, "target ids")
        if ids.ndim != 2:
            raise ValueError(f"inputs: expected target ids [batch, time], got shape {ids.shape}")
        return ids

    def _apply(
        self, inputs: Sequence[np.ndarray], lengths: Sequence[Optional[np.ndarray]], training: bool, state: Any = None
    ) -> Applied:
        ids = inputs[0]
        shifted = np.empty_like(ids)
        if ids.shape[1]:
            shifted[:, 0] = self.start_token
            shifted[:, 1:] = ids[:, :-1]

        def backward(
            d_outputs: list[Optional[np.ndarray]], need: list[bool]
        ) -> tuple[list[Optional[np.ndarray]], dict[str, np.ndarray]]:
            return [None], {}  # integer inputs have no gradient

        return Applied([shifted], [lengths[0]], None, backward)


#: The mechanisms ``EncoderDecoder(attention=...)`` takes.
ATTENTION_KINDS = ("bahdanau", "luong")


@register("layer")
class AttentionDecoder(Layer):
    """An :class:`EncoderDecoder`'s decoder with attention: its cell in a
    :class:`rnnrs.seq2seq.AttentionWrapper` over the encoder's outputs,
    teacher-forced (``rnnrs.dynamic_rnn``).

    Args:
        cell: the decoder's cell.
        attention: ``"bahdanau"`` (:class:`~rnnrs.seq2seq.BahdanauAttention`)
            or ``"luong"`` (:class:`~rnnrs.seq2seq.LuongAttention`), of
            ``cell.output_size`` units.
        seed: seeds the attention's weights.
        name: the layer's name (default ``"decoder"``).

    Inputs ``[embedded targets [B, T, E], encoder outputs [B, Tm, H] (their
    lengths: the sources'), *the encoder's final state (flat)]``; output
    ``[B, T, units]``: the attention, ``[cell output, context] @
    attention_layer/kernel`` with an attention layer as wide as the cell's
    output (TF's NMT recipe: ``attention_layer_size = num_units``,
    ``output_attention=True``). Gradients reach the encoder's outputs (the
    memory) and its final state. Weights: the cell's and the attention's
    (``memory_layer/kernel``, ``query_layer/kernel``, ``attention_v`` for
    Bahdanau, ``attention_layer/kernel``).
    """

    default_name = "decoder"

    def __init__(self, cell: RNNCell, attention: str, seed: Optional[int] = None, name: Optional[str] = None) -> None:
        from ..seq2seq import AttentionWrapper, BahdanauAttention, LuongAttention

        super().__init__(name)
        if not isinstance(cell, RNNCell):
            raise TypeError(f"cell: expected an rnnrs cell, got {type(cell).__name__}")
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention: expected one of {list(ATTENTION_KINDS)}, got {attention!r}")
        self.attention = attention
        self.seed = seed_value(seed)
        units = int(cell.output_size)
        kind = BahdanauAttention if attention == "bahdanau" else LuongAttention
        mech = kind(units, dtype=cell.dtype, seed=self.seed)
        self.wrapper = AttentionWrapper(
            cell, mech, attention_layer_size=units, seed=None if self.seed is None else self.seed + 1
        )

    @property
    def cell(self) -> RNNCell:
        """The decoder's own cell (inside the wrapper)."""
        return self.wrapper.cell

    @property
    def dtype(self) -> Optional[np.dtype[Any]]:
        return self.cell.dtype

    @property
    def built(self) -> bool:
        return self.wrapper.built

    def output_size(self) -> int:
        return int(self.wrapper.output_size)

    def get_weights(self) -> dict[str, np.ndarray]:
        return self.wrapper.get_weights()

    def set_weights(self, mapping: Mapping[str, Any]) -> None:
        self.wrapper.set_weights(mapping)

    def get_config(self) -> dict[str, Any]:
        from ..saving.serialize import cell_to_config

        return {"cell": cell_to_config(self.cell), "attention": self.attention, "seed": self.seed, "name": self.name}

    def get_state(self) -> dict[str, np.ndarray]:
        """The positions of the decoder cell's ``DropoutWrapper`` generators (as :meth:`rnnrs.RNN.get_state`)."""
        return cell_generator_state(self.cell)

    def set_state(self, mapping: Mapping[str, Any]) -> None:
        restore_cell_generators(self.cell, mapping)

    def _build_for(self, input_size: int, memory_depth: int) -> None:
        mech = self.wrapper.attention_mechanism
        if mech._depth is None:
            mech._depth = int(memory_depth)
        elif mech._depth != memory_depth:
            raise ValueError(f"inputs[1]: expected the encoder's outputs of width {mech._depth}, got {memory_depth}")
        if not self.wrapper.built:
            self.wrapper.build(int(input_size))

    def weight_shapes(self, inputs: Sequence[Spec]) -> dict[str, tuple[int, ...]]:
        self._build_for(int(inputs[0].shape[-1] or 0), int(inputs[1].shape[-1] or 0))
        return {k: v.shape for k, v in self.wrapper.get_weights().items()}

    def compute_output_spec(self, inputs: Sequence[Spec]) -> list[Spec]:
        n = len(flatten_state(_state_template(self.cell)))
        if len(inputs) != 2 + n:
            raise ValueError(
                f"inputs: expected the embedded targets, the encoder's outputs and the {n} arrays of the initial "
                f"state, got {len(inputs)} inputs"
            )
        x, memory = inputs[0], inputs[1]
        dtype = self.cell.dtype
        for i, spec in enumerate((x, memory)):
            if spec.dtype != dtype or len(spec.shape) != 3 or spec.shape[-1] is None:
                raise ValueError(f"inputs[{i}]: expected (None, T, width) {dtype.name}, got {spec.describe()}")
        self._build_for(int(x.shape[-1]), int(memory.shape[-1]))  # type: ignore[arg-type]
        return [Spec((None, x.shape[1], self.output_size()), dtype)]

    def _prepare_inputs(self, inputs: Any) -> list[np.ndarray]:
        raise TypeError(
            f"inputs: expected symbolic tensors (layer {self.name!r} runs inside an EncoderDecoder), "
            f"got {type(inputs).__name__}"
        )

    def _with_memory(self, memory: np.ndarray, lengths: Optional[np.ndarray]) -> Any:
        """A copy of the wrapper for one call, its mechanism's copy holding
        ``memory`` (the layer's own objects never change per call, so calls
        from several threads do not see each other's memories). The copies
        share the weights and the cell. Rows of length 0 have nothing to
        attend to (``ValueError`` naming ``sources``)."""
        if lengths is not None and memory.shape[0] and int(lengths.min()) < 1:
            raise ValueError(
                "sources: expected every source to hold at least one token (the attention reads the encoder's "
                "outputs over the source), got an empty one"
            )
        mechanism = copy.copy(self.wrapper.attention_mechanism)
        mechanism.setup_memory(memory, lengths)
        wrapper = copy.copy(self.wrapper)
        wrapper.attention_mechanism = mechanism
        wrapper.__dict__.pop("_memory_cache", None)
        return wrapper

    def _apply(
        self, inputs: Sequence[np.ndarray], lengths: Sequence[Optional[np.ndarray]], training: bool, state: Any = None
    ) -> Applied:
        x, memory, flat = inputs[0], inputs[1], list(inputs[2:])
        wrapper = self._with_memory(memory, lengths[1])
        template = _state_template(self.cell)
        cell_state = unflatten_state(template, flat)
        initial = wrapper.zero_state(x.shape[0]).clone(cell_state=cell_state)
        outputs, _, backprop = dynamic_rnn(
            wrapper, x, sequence_length=lengths[0], initial_state=initial, training=training, return_backprop=True
        )

        def backward(
            d_outputs: list[Optional[np.ndarray]], need: list[bool]
        ) -> tuple[list[Optional[np.ndarray]], dict[str, np.ndarray]]:
            g = backprop(d_outputs=d_outputs[0])
            d_flat = flatten_state(g.initial_state.cell_state)
            d_inputs = [g.inputs, g.memory, *d_flat]
            return [d if wanted else None for d, wanted in zip(d_inputs, need)], g.weights

        return Applied([outputs], [lengths[0]], None, backward)


#: The names of the layers of an EncoderDecoder's graph.
_LAYERS = ("source_embedding", "encoder", "teacher_forcing", "target_embedding", "decoder", "output")
_L = TypeVar("_L", bound=Layer)


@register("model")
class EncoderDecoder(Model):
    """An RNN encoder–decoder from source token ids to target token ids ended
    by ``end_token`` (the seq2seq translation model), trained with teacher
    forcing and decoded greedily or with a beam search.

    Args:
        encoder_cell: the encoder's cell (any rnnrs cell or wrapper).
        decoder_cell: the decoder's cell; its state must have the encoder's
            structure and widths (it starts from the encoder's final state),
            and the same dtype.
        source_vocab: number of source token ids ``[0, source_vocab)``.
        target_vocab: number of target token ids ``[0, target_vocab)``,
            ``start_token`` and ``end_token`` included (the output layer's width).
        embedding_size: width of both embeddings.
        start_token: the target id the decoder reads first (in
            ``[0, target_vocab)``).
        end_token: the target id that ends a sequence, EOS (in
            ``[0, target_vocab)``); it must not occur inside the targets.
        seed: None or an integer >= 0 seeding the embeddings and the output
            layer (the cells have their own ``seed``).
        optimizer: replaces the default ``Adam(0.001)``.
        name: the model's name.
        attention: None (the decoder reads only the encoder's final
            state), ``"bahdanau"`` or ``"luong"``: the decoder attends to
            the encoder's outputs at every step (:class:`AttentionDecoder`:
            an :class:`rnnrs.seq2seq.AttentionWrapper` of the decoder cell's
            width; Luong needs no extra weights but ``memory_layer/kernel``).
            Every source must then hold at least one token.

    The model is compiled with sparse softmax cross-entropy and ``accuracy``
    (per target token, the EOS step included); ``compile`` may change them.
    Its layers are named ``source_embedding``, ``encoder``,
    ``teacher_forcing``, ``target_embedding``, ``decoder`` and ``output``
    (weights ``"<layer>/<weight>"``). ``save`` and :func:`rnnrs.load_model`
    round-trip it (``load_model`` rebuilds it from its graph through the
    ``EncoderDecoder(inputs, outputs, name=...)`` form of the constructor).

    As a :class:`rnnrs.Model` its inputs are ``[sources, targets]`` (the
    targets ending with ``end_token``) and its output the teacher-forced
    logits ``[B, T, target_vocab]``: ``model([src, tgt])`` and the inherited
    ``predict`` work on those; :meth:`fit`, :meth:`evaluate` and
    :meth:`translate` take the sequences as they are.

    Raises:
        TypeError: a cell that is not an rnnrs cell; a token or size that is
            not an integer.
        ValueError: a size < 1; ``start_token`` or ``end_token`` outside
            ``[0, target_vocab)``; cells whose states or dtypes differ
            (naming ``decoder_cell``).
    """

    def __init__(
        self,
        encoder_cell: Any,
        decoder_cell: Any,
        source_vocab: Optional[int] = None,
        target_vocab: Optional[int] = None,
        embedding_size: Optional[int] = None,
        start_token: Optional[int] = None,
        end_token: Optional[int] = None,
        seed: Optional[int] = None,
        optimizer: Optional[Optimizer] = None,
        name: Optional[str] = None,
        attention: Optional[str] = None,
    ) -> None:
        if not isinstance(encoder_cell, RNNCell) and _symbolic(encoder_cell):
            # The form load_model uses: the graph of a saved EncoderDecoder.
            super().__init__(encoder_cell, decoder_cell, name=name)
            self._find_layers()
            return
        if not isinstance(encoder_cell, RNNCell):
            raise TypeError(f"encoder_cell: expected an rnnrs cell (e.g. GRUCell), got {type(encoder_cell).__name__}")
        if not isinstance(decoder_cell, RNNCell):
            raise TypeError(f"decoder_cell: expected an rnnrs cell (e.g. GRUCell), got {type(decoder_cell).__name__}")
        if decoder_cell is encoder_cell:
            raise ValueError(
                "decoder_cell: expected a cell other than encoder_cell (two cells, two sets of weights), got the same"
            )
        source_vocab = positive_int("source_vocab", source_vocab)
        target_vocab = positive_int("target_vocab", target_vocab)
        embedding_size = positive_int("embedding_size", embedding_size)
        start = token("start_token", start_token, target_vocab)
        end = token("end_token", end_token, target_vocab)
        seed = seed_value(seed)
        if decoder_cell.dtype != encoder_cell.dtype:
            raise ValueError(
                f"decoder_cell: expected the encoder's dtype {encoder_cell.dtype.name}, got {decoder_cell.dtype.name}"
            )
        if attention is not None and attention not in ATTENTION_KINDS:
            raise ValueError(f"attention: expected None or one of {list(ATTENTION_KINDS)}, got {attention!r}")
        dtype = encoder_cell.dtype
        encoder = RNN(encoder_cell, return_sequences=attention is not None, return_state=True, name="encoder")
        decoder = RNN(decoder_cell, return_sequences=True, name="decoder")
        if encoder.state_widths() != decoder.state_widths():
            raise ValueError(
                "decoder_cell: expected a state of the encoder's structure (it starts from the encoder's final "
                f"state), got state arrays of widths {decoder.state_widths()} for the encoder's "
                f"{encoder.state_widths()}"
            )

        def sub(k: int) -> Optional[int]:
            return None if seed is None else seed + k

        sources = Input((None,), dtype="int64", name="sources")
        targets = Input((None,), dtype="int64", name="targets")
        embedded = Embedding(source_vocab, embedding_size, dtype=dtype, seed=sub(0), name="source_embedding")(sources)
        encoded, *state = encoder(embedded)
        fed = TeacherForcing(start, end, name="teacher_forcing")(targets)
        read = Embedding(target_vocab, embedding_size, dtype=dtype, seed=sub(1), name="target_embedding")(fed)
        if attention is None:
            decoded = decoder(read, initial_state=state)
        else:
            decoded = AttentionDecoder(decoder_cell, attention, seed=sub(3), name="decoder")([read, encoded, *state])
        logits = Dense(target_vocab, dtype=dtype, seed=sub(2), name="output")(decoded)
        super().__init__([sources, targets], logits, name=name)
        self._find_layers()
        self.compile(optimizer or Adam(0.001), CLASSIFICATION, ["accuracy"])

    def _find_layers(self) -> None:
        """The named layers of the graph (``ValueError`` naming ``outputs`` for another graph)."""
        by_name = {layer.name: layer for layer in self.layers}

        def named(key: str, cls: type[_L]) -> _L:
            layer = by_name.get(key)
            if not isinstance(layer, cls) or len(self.inputs) != 2:
                raise ValueError(
                    f"outputs: expected the graph of an EncoderDecoder (two inputs; layers {sorted(_LAYERS)}), "
                    f"got inputs {self.input_names} and layers {sorted(by_name)}"
                )
            return layer

        self._source_embedding = named("source_embedding", Embedding)
        self._encoder = named("encoder", RNN)
        self._teacher = named("teacher_forcing", TeacherForcing)
        self._target_embedding = named("target_embedding", Embedding)
        self._decoder: Any = by_name.get("decoder")
        if not isinstance(self._decoder, AttentionDecoder):
            self._decoder = named("decoder", RNN)
        self._output = named("output", Dense)
        for which in ("start_token", "end_token"):
            token(which, getattr(self._teacher, which), self.target_vocab)

    # -- description ----------------------------------------------------------------
    @property
    def encoder_cell(self) -> RNNCell:
        """The encoder's cell."""
        return self._encoder.cell

    @property
    def decoder_cell(self) -> RNNCell:
        """The decoder's cell."""
        cell: RNNCell = self._decoder.cell
        return cell

    @property
    def attention(self) -> Optional[str]:
        """``"bahdanau"``, ``"luong"`` or None."""
        return self._decoder.attention if isinstance(self._decoder, AttentionDecoder) else None

    @property
    def source_vocab(self) -> int:
        return self._source_embedding.input_dim

    @property
    def target_vocab(self) -> int:
        return self._target_embedding.input_dim

    @property
    def embedding_size(self) -> int:
        return self._target_embedding.output_dim

    @property
    def start_token(self) -> int:
        return self._teacher.start_token

    @property
    def end_token(self) -> int:
        return self._teacher.end_token

    # -- data --------------------------------------------------------------------------
    def _data(self, name: str, x: Any, sequence_length: Any, length_name: str) -> tuple[Arrays, Lengths]:
        xs, lengths = super()._data(name, x, sequence_length, length_name)
        # The targets reach the target Embedding through TeacherForcing: their ids are checked here.
        integer_ids(f"{name}[1]", xs[1], self.target_vocab, "target ids")
        return xs, lengths

    def _sources(self, sources: Any, source_length: Any) -> tuple[np.ndarray, np.ndarray]:
        return id_sequences("sources", sources, self.source_vocab, "source_length", source_length)

    def _pairs(
        self, sources: Any, targets: Any, source_length: Any, target_length: Any, prefix: str = ""
    ) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
        """``([sources, targets + EOS], targets + EOS, [source lengths, target lengths + 1])``."""
        p = prefix
        src, src_len = id_sequences(f"{p}sources", sources, self.source_vocab, f"{p}source_length", source_length)
        tgt, tgt_len = id_sequences(f"{p}targets", targets, self.target_vocab, f"{p}target_length", target_length)
        if tgt.shape[0] != src.shape[0]:
            raise ValueError(f"{prefix}targets: expected {src.shape[0]} rows (one per source), got {tgt.shape[0]}")
        inside = (tgt == self.end_token) & (np.arange(tgt.shape[1])[None, :] < tgt_len[:, None])
        if inside.any():
            row, step = (int(i) for i in np.argwhere(inside)[0])
            raise ValueError(
                f"{prefix}targets: expected rows without end_token {self.end_token} (it is appended to each row), "
                f"got it at (row {row}, step {step})"
            )
        full = np.zeros((tgt.shape[0], tgt.shape[1] + 1), dtype=np.int64)
        full[:, :-1] = tgt
        full[np.arange(tgt.shape[0]), tgt_len] = self.end_token
        return [src, full], full, [src_len, tgt_len + 1]

    # -- training ------------------------------------------------------------------------
    def fit(  # type: ignore[override]
        self,
        sources: Any,
        targets: Any,
        source_length: Any = None,
        target_length: Any = None,
        batch_size: int = 32,
        epochs: int = 1,
        validation_data: Optional[Sequence[Any]] = None,
        shuffle: bool = True,
        seed: Optional[int] = None,
        verbose: Union[str, int] = "auto",
        stream: Optional[TextIO] = None,
        callbacks: Optional[Sequence[Callback]] = None,
        validation_split: float = 0.0,
        initial_epoch: int = 0,
        strategy: Any = None,
    ) -> History:
        """Trains the model with teacher forcing on ``(sources, targets)`` pairs.

        Args:
            sources: a list of source id sequences (any lengths), or a 2-d
                int array ``[B, T]`` with ``source_length`` (None: every row
                is ``T`` long). Ids in ``[0, source_vocab)``.
            targets: the target sequences, as ``sources``, WITHOUT start or
                end token: ``end_token`` is appended to every row (and must
                not occur inside one); ids in ``[0, target_vocab)``.
            source_length, target_length: ``[B]`` lengths for array inputs.
            validation_data: None, ``(sources, targets)`` or ``(sources,
                targets, source_length, target_length)``, evaluated after
                every epoch (``val_loss``, ``val_accuracy``; no decoding).
            batch_size, epochs, shuffle, seed, verbose, stream, callbacks,
            validation_split, initial_epoch, strategy: as
                :meth:`rnnrs.Model.fit` (``strategy``: e.g.
                :class:`rnnrs.distributed.RayStrategy`).

        The loss is the mean sparse softmax cross-entropy over every target
        step up to and including the EOS; ``accuracy`` is the fraction of
        those steps whose most likely id is the target's (teacher forced).

        Returns:
            The model's :class:`History`.

        Raises:
            ValueError / TypeError: ids outside their vocabulary, an
                ``end_token`` inside a target, mismatched rows or lengths
                (naming the argument), and anything :meth:`rnnrs.Model.fit`
                refuses.
        """
        xs, ys, lengths = self._pairs(sources, targets, source_length, target_length)
        val: Optional[tuple[Any, ...]] = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 4):
                raise ValueError(
                    "validation_data: expected (sources, targets) or (sources, targets, source_length, "
                    f"target_length), got {type(validation_data).__name__}"
                    + (f" of {len(validation_data)} items" if isinstance(validation_data, (tuple, list)) else "")
                )
            vs, vt = validation_data[0], validation_data[1]
            vsl, vtl = (validation_data[2], validation_data[3]) if len(validation_data) == 4 else (None, None)
            vx, vy, vl = self._pairs(vs, vt, vsl, vtl, prefix="validation_data: ")
            val = (vx, vy, vl)
        return super().fit(
            xs,
            ys,
            batch_size=batch_size,
            epochs=epochs,
            validation_data=val,
            shuffle=shuffle,
            seed=seed,
            sequence_length=lengths,
            verbose=verbose,
            stream=stream,
            callbacks=callbacks,
            validation_split=validation_split,
            initial_epoch=initial_epoch,
            strategy=strategy,
        )

    def evaluate(  # type: ignore[override]
        self,
        sources: Any,
        targets: Any,
        source_length: Any = None,
        target_length: Any = None,
        batch_size: int = 256,
        beam_width: int = 1,
        maximum_iterations: Optional[int] = None,
    ) -> dict[str, float]:
        """The teacher-forced ``loss`` and ``accuracy`` (per target token, the
        EOS step included, as in :meth:`fit`) and the ``exact_match``: the
        fraction of rows whose :meth:`translate` output (with ``beam_width``
        and ``maximum_iterations``) equals the target sequence exactly (0.0
        for no rows). Arguments as in :meth:`fit` and :meth:`translate`."""
        xs, ys, lengths = self._pairs(sources, targets, source_length, target_length)
        logs = super().evaluate(xs, ys, sequence_length=lengths, batch_size=batch_size)
        decoded = self._translate(xs[0], lengths[0], beam_width, maximum_iterations, batch_size, 0.0)
        wanted = [row[: int(n) - 1].tolist() for row, n in zip(ys, lengths[1])]
        hits = sum(1 for a, b in zip(decoded, wanted) if a == b)
        logs["exact_match"] = hits / len(wanted) if wanted else 0.0
        return logs

    # -- decoding ------------------------------------------------------------------------
    def translate(
        self,
        sources: Any,
        source_length: Any = None,
        beam_width: int = 1,
        maximum_iterations: Optional[int] = None,
        batch_size: int = 256,
        length_penalty_weight: float = 0.0,
        return_alignments: bool = False,
    ) -> Any:
        """Decodes each source into target ids.

        The encoder reads each source; the decoder starts from its final
        state and ``start_token`` and feeds back its own choices through
        ``rnnrs.seq2seq.dynamic_decode``: greedily (``beam_width=1``:
        ``BasicDecoder`` with a ``GreedyEmbeddingHelper``, the most likely id
        at every step, ``impute_finished=True`` so finished rows leave the
        computation) or with a ``BeamSearchDecoder`` of ``beam_width`` beams
        (the best beam is returned; its ids and lengths do not depend on
        ``impute_finished``, left at its default so the Rust loop runs).

        Args:
            sources: as in :meth:`fit`.
            source_length: ``[B]`` lengths for an array of sources.
            beam_width: an integer >= 1.
            maximum_iterations: the most decoding steps per row, an integer
                >= 0; None (default): ``2 * L + 1`` with ``L`` the longest
                source of the call (TensorFlow's NMT tutorial decodes twice
                the source length; the ``+ 1`` leaves an empty source room
                for its EOS).
            batch_size: rows decoded together (an integer >= 1).
            length_penalty_weight: the beam search's GNMT length penalty
                (``>= 0``; unused when ``beam_width == 1``).
            return_alignments: also return, for a model with attention and
                a greedy decode, each row's alignments: a float array
                ``[steps, source length]`` whose row ``t`` is the attention
                over the source's tokens when writing output ``t`` (the
                EOS step included). ``ValueError`` otherwise.

        Returns:
            One list of target ids per source: the decoded ids up to the
            first ``end_token``, which is NOT included; a row that never
            emits it has ``maximum_iterations`` ids. With
            ``return_alignments``, ``(ids, alignments)``.

        Raises:
            ValueError / TypeError: ids outside ``[0, source_vocab)``,
                ``beam_width`` < 1, ``maximum_iterations`` < 0, bad lengths
                (naming the argument).
        """
        ids, lengths = self._sources(sources, source_length)
        if flag("return_alignments", return_alignments):
            if self.attention is None or beam_width != 1:
                raise ValueError(
                    "return_alignments: expected False for a model without attention or a beam search "
                    f"(attention={self.attention!r}, beam_width={beam_width!r}), got True"
                )
            aligned: list[np.ndarray] = []
            decoded = self._translate(ids, lengths, 1, maximum_iterations, batch_size, 0.0, aligned)
            return decoded, aligned
        return self._translate(ids, lengths, beam_width, maximum_iterations, batch_size, length_penalty_weight)

    def _translate(
        self,
        ids: np.ndarray,
        lengths: np.ndarray,
        beam_width: Any,
        maximum_iterations: Any,
        batch_size: Any,
        length_penalty_weight: Any,
        alignments: Optional[list[np.ndarray]] = None,
    ) -> list[list[int]]:
        beam_width = positive_int("beam_width", beam_width)
        batch_size = positive_int("batch_size", batch_size)
        penalty = finite_number("length_penalty_weight", length_penalty_weight)
        if penalty < 0:
            raise ValueError(f"length_penalty_weight: expected a number >= 0, got {length_penalty_weight}")
        if maximum_iterations is None:
            limit = 2 * int(lengths.max(initial=0)) + 1
        else:
            limit = bounded_int("maximum_iterations", maximum_iterations, 0)
        decoded: list[list[int]] = []
        for start in range(0, ids.shape[0], batch_size):
            rows = slice(start, start + batch_size)
            decoded += self._decode_batch(ids[rows], lengths[rows], beam_width, limit, penalty, alignments)
        return decoded

    def _decode_batch(
        self,
        ids: np.ndarray,
        lengths: np.ndarray,
        beam_width: int,
        limit: int,
        penalty: float,
        alignments: Optional[list[np.ndarray]] = None,
    ) -> list[list[int]]:
        from .. import seq2seq
        from ..seq2seq.beam_search import BeamSearchDecoder

        embedded = self._source_embedding._apply([ids], [lengths], False).outputs[0]
        encoded = self._encoder._apply([embedded], [lengths], False)
        state = encoded.state
        batch = ids.shape[0]
        starts = np.full(batch, self.start_token, dtype=np.int32)
        cell: Any = self.decoder_cell
        if isinstance(self._decoder, AttentionDecoder):
            cell = self._decoder._with_memory(encoded.outputs[0], lengths)
            if alignments is not None:  # the same wrapper (weights, memory), keeping its alignments
                cell = copy.copy(cell)
                cell.alignment_history = True
            state = cell.zero_state(batch).clone(cell_state=state)
        decoder: Any
        if beam_width == 1:
            helper = seq2seq.GreedyEmbeddingHelper(self._target_embedding, starts, self.end_token)
            decoder = seq2seq.BasicDecoder(cell, helper, state, output_layer=self._output)
            outputs, final, out_lengths = seq2seq.dynamic_decode(
                decoder, impute_finished=True, maximum_iterations=limit
            )
            best, ends = np.asarray(outputs.sample_id), np.asarray(out_lengths)
            if alignments is not None:
                history = final.alignment_history  # [steps, B, Tm]
                alignments += [history[: int(ends[b]), b, : int(lengths[b])].copy() for b in range(batch)]
        else:
            decoder = BeamSearchDecoder(
                cell,
                self._target_embedding,
                starts,
                self.end_token,
                state,
                beam_width,
                output_layer=self._output,
                length_penalty_weight=penalty,
            )
            outputs, final_state, _ = seq2seq.dynamic_decode(decoder, maximum_iterations=limit)
            best, ends = np.asarray(outputs.predicted_ids)[:, :, 0], np.asarray(final_state.lengths)[:, 0]
        return [cut(best[b], int(ends[b]), self.end_token) for b in range(batch)]


def cut(ids: np.ndarray, length: int, end_token: int) -> list[int]:
    """A decoded row's ids up to its length, without the final EOS (a row
    that ended by reaching ``maximum_iterations`` keeps its last id)."""
    row = [int(i) for i in ids[:length]]
    if row and row[-1] == end_token:
        row.pop()
    return row


def _symbolic(value: Any) -> bool:
    items = value if isinstance(value, (list, tuple)) else [value]
    return bool(items) and all(isinstance(t, SymbolicTensor) for t in items)


__all__ = ["AttentionDecoder", "EncoderDecoder", "TeacherForcing", "cut", "id_sequences", "token"]
