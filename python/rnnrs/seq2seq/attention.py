"""Attention: ``BahdanauAttention``, ``LuongAttention`` and ``AttentionWrapper``
(TensorFlow 1.15's ``tf.contrib.seq2seq`` names, arguments and semantics).

A mechanism holds the memory (the encoder's outputs, ``[B, Tm, Dm]``, with
their lengths) and its weights; ``AttentionWrapper`` wraps a cell and a
mechanism into a cell that attends to the memory at every step, usable
wherever a cell is: ``dynamic_rnn`` (teacher forcing, with backpropagation
to the memory: ``Gradients.memory``), ``BasicDecoder`` with every helper and
``BeamSearchDecoder`` (which needs no ``tile_batch`` of the memory: the
wrapper repeats each memory row when its batch is a multiple of the
memory's).

Each step, in TF 1.15's order: cell input ``= [x, previous attention]``;
run the cell; ``query = cell output``; scores over the memory positions
``< memory_sequence_length`` (the others get weight exactly 0); ``alignments
= softmax(scores)``; ``context = alignments @ values``; ``attention =
[cell_output, context] @ attention_layer/kernel`` (no bias) with an
``attention_layer_size``, else the context; output = the attention
(``output_attention=True``) or the cell output.

Scores: Luong ``q . keys`` (``× attention_g`` with ``scale``); Bahdanau
``attention_v . tanh(keys + q @ query_layer/kernel)`` (with ``normalize``:
``attention_g · attention_v / ‖attention_v‖ . tanh(keys + q @ query_layer/kernel + attention_b)``),
where ``values`` are the memory with positions past each row's length
zeroed and ``keys = values @ memory_layer/kernel`` (no bias), computed once
per call. Weight names are those, unscoped, beside the wrapped cell's own.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Mapping, NamedTuple, Optional

import numpy as np

from .. import _rnnrs
from .._state import map_state
from .._validate import check_shape, float_array, positive_int, seed_value
from ..cells import Backward, Lengths, RNNCell, cell_dtype, check_mapping, glorot_uniform, refuse_unless_none
from ..losses import softmax
from ..wrappers import _check_cell

#: The key of the memory's gradient in a wrapper's weight gradients (taken out
#: into ``Gradients.memory`` by the run functions).
MEMORY_GRAD = "memory"

MEMORY_KERNEL = "memory_layer/kernel"
QUERY_KERNEL = "query_layer/kernel"
ATTENTION_V = "attention_v"
ATTENTION_G = "attention_g"
ATTENTION_B = "attention_b"
ATTENTION_KERNEL = "attention_layer/kernel"


class AttentionWrapperState(NamedTuple):
    """The state of an :class:`AttentionWrapper` (TF 1.15's fields).

    Attributes:
        cell_state: the wrapped cell's state.
        attention: ``[B, A]``, the last attention (the next step's extra input).
        time: the steps run since ``zero_state`` (an int).
        alignments: ``[B, Tm]``, the last step's alignments.
        alignment_history: ``[steps, B, Tm]`` with ``alignment_history=True``
            (entries of rows past their length are unspecified), else ``()``.
        attention_state: ``[B, Tm]``: Bahdanau's and Luong's is their alignments.
    """

    cell_state: Any
    attention: Any
    time: Any
    alignments: Any
    alignment_history: Any
    attention_state: Any

    def clone(self, **kwargs: Any) -> "AttentionWrapperState":
        """A copy with some fields replaced (TF's ``clone``), e.g.
        ``cell.zero_state(B).clone(cell_state=encoder_state)``."""
        return self._replace(**kwargs)

    def _map_rows(self, map_state: Callable[..., Any], fn: Callable[..., Any], *states: Any) -> Any:
        """``map_state`` over states of this structure: ``fn`` on each
        ``[batch, ...]`` field, the largest ``time``, and the alignment
        histories ``[steps, batch, Tm]`` seen as ``[batch, steps * Tm]``
        (shorter ones padded with zeros at the end: a decoder's finished rows
        do not step). ``fn`` returning None (an in-place update) gives None."""
        cell = map_state(fn, *(s.cell_state for s in states))
        fields = {
            name: fn(False, *(getattr(s, name) for s in states))
            for name in ("attention", "alignments", "attention_state")
        }
        history: Any = ()
        if all(isinstance(s.alignment_history, np.ndarray) for s in states):
            hs = [s.alignment_history for s in states]
            steps = max(h.shape[0] for h in hs)
            tm = hs[0].shape[2]
            flats = [
                np.pad(h, ((0, steps - h.shape[0]), (0, 0), (0, 0))).transpose(1, 0, 2).reshape(h.shape[1], steps * tm)
                for h in hs
            ]
            out = fn(False, *flats)
            if out is not None:
                out = np.asarray(out)
                history = np.moveaxis(out.reshape(*out.shape[:-1], steps, tm), -2, 0)
        if cell is None and all(v is None for v in fields.values()):
            return None
        return AttentionWrapperState(
            cell_state=cell,
            attention=fields["attention"],
            time=max(int(s.time) for s in states),
            alignments=fields["alignments"],
            alignment_history=history,
            attention_state=fields["attention_state"],
        )


def _lengths(name: str, value: Any, batch: int, time: int) -> np.ndarray:
    """``memory_sequence_length``: integers in ``[1, time]`` per row (a length
    of 0 is a ``ValueError``, as in TF: a row must attend to something)."""
    raw = np.asarray(value)
    if (
        raw.dtype == object
        or raw.dtype.kind not in "iu"
        and not (raw.dtype.kind == "f" and raw.size and np.all(np.isfinite(raw)) and np.all(raw == np.round(raw)))
    ):
        raise TypeError(f"{name}: expected integers [batch], got {raw.dtype} {raw.shape}")
    if raw.shape != (batch,):
        raise ValueError(f"{name}: expected shape [{batch}] (one length per memory row), got {raw.shape}")
    lengths = raw.astype(np.int64)
    if batch and (lengths.min() < 1 or lengths.max() > time):
        bad = int(lengths[(lengths < 1) | (lengths > time)][0])
        raise ValueError(
            f"{name}: expected lengths in [1, {time}] (a row of length 0 has nothing to attend to), got {bad}"
        )
    return np.ascontiguousarray(lengths)


class _Mechanism:
    """What Bahdanau and Luong share: the memory, its lengths, the weights."""

    _kind = ""

    def __init__(
        self,
        num_units: int,
        memory: Any = None,
        memory_sequence_length: Any = None,
        probability_fn: Any = None,
        score_mask_value: Any = None,
        dtype: Any = None,
        name: Optional[str] = None,
        seed: Optional[int] = None,
    ) -> None:
        refuse_unless_none("probability_fn", probability_fn, "the alignments are a softmax")
        refuse_unless_none("score_mask_value", score_mask_value, "masked positions get weight 0")
        self.num_units = positive_int("num_units", num_units)
        self._dtype: Optional[np.dtype[Any]] = None if dtype is None else cell_dtype(dtype)
        self._dtype_given = dtype is not None
        self._generation = 0  # counts setup_memory calls: what the wrappers' caches of keys are keyed on
        self.name = name
        self.seed = seed_value(seed)
        self._weights: dict[str, np.ndarray] = {}
        self._memory: Optional[np.ndarray] = None
        self._lengths: Optional[np.ndarray] = None
        self._depth: Optional[int] = None  # Dm declared before a memory (a graph layer builds from specs)
        if memory is not None:
            self.setup_memory(memory, memory_sequence_length)
        elif memory_sequence_length is not None:
            raise ValueError("memory_sequence_length: expected None without a memory, got lengths")

    # -- the memory --------------------------------------------------------------------
    def setup_memory(self, memory: Any, memory_sequence_length: Any = None) -> None:
        """Binds (or rebinds) the memory ``[B, Tm, Dm]`` and its lengths
        (``[B]`` integers in ``[1, Tm]``; None: every row ``Tm`` long). The
        weights stay: one mechanism serves every batch of a training run.
        The mechanism keeps a reference to ``memory`` (no copy): after
        changing the array in place, call ``setup_memory`` again."""
        dtype = self._dtype
        if dtype is None:
            raw = np.asarray(memory)
            dtype = raw.dtype if raw.dtype in (np.float32, np.float64) else np.dtype(np.float32)
        m = float_array("memory", memory, dtype, 3, "[batch, memory_time, depth]")
        batch, time, depth = m.shape
        if time == 0 or depth == 0:
            raise ValueError(f"memory: expected at least one position and one feature, got shape {m.shape}")
        if self._depth is not None and depth != self._depth:
            raise ValueError(f"memory: expected depth {self._depth}, got {depth}")
        if MEMORY_KERNEL in self._weights and self._weights[MEMORY_KERNEL].shape[0] != depth:
            raise ValueError(
                f"memory: expected depth {self._weights[MEMORY_KERNEL].shape[0]} (the memory_layer/kernel's), "
                f"got {depth}"
            )
        lengths = None
        if memory_sequence_length is not None:
            lengths = _lengths("memory_sequence_length", memory_sequence_length, batch, time)
        self._dtype = np.dtype(dtype)
        self._memory = np.ascontiguousarray(m)
        self._lengths = lengths
        self._generation += 1

    @property
    def memory(self) -> np.ndarray:
        """The memory ``[B, Tm, Dm]`` (``ValueError`` before ``setup_memory``)."""
        if self._memory is None:
            raise ValueError("memory: expected a memory (give it to the constructor or to setup_memory), got none")
        return self._memory

    @property
    def memory_sequence_length(self) -> Optional[np.ndarray]:
        return self._lengths

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype if self._dtype is not None else np.dtype(np.float32)

    @property
    def batch_size(self) -> int:
        return int(self.memory.shape[0])

    @property
    def alignments_size(self) -> int:
        """``Tm``, the memory's time steps."""
        return int(self.memory.shape[1])

    @property
    def memory_depth(self) -> int:
        """``Dm``: the memory's depth (or the one declared before any memory, by a layer building from specs)."""
        if self._memory is None and self._depth is not None:
            return self._depth
        return int(self.memory.shape[2])

    def initial_alignments(self, batch_size: int) -> np.ndarray:
        return np.zeros((batch_size, self.alignments_size), dtype=self.dtype)

    # -- weights -----------------------------------------------------------------------
    def _shapes(self, query_depth: int) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def _init(self, rng: np.random.Generator, query_depth: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @property
    def built(self) -> bool:
        return bool(self._weights)

    def _build(self, query_depth: int) -> None:
        if not self._weights:
            self._weights = self._init(np.random.default_rng(self.seed), query_depth)

    def _prepare(self, arrays: Mapping[str, np.ndarray], query_depth: int, prefix: str) -> dict[str, np.ndarray]:
        shapes = self._shapes(query_depth)
        out = {}
        for key, value in arrays.items():
            where = f"mapping[{prefix + key!r}]"
            arr = float_array(where, value, self.dtype, len(shapes[key]), "")
            check_shape(where, arr, shapes[key])
            out[key] = np.array(arr, dtype=self.dtype, order="C", copy=True)
        return out

    def _check_query(self, query_depth: int) -> None:
        pass

    # -- maths, on the weights of one call ----------------------------------------------
    def _score(self, w: Mapping[str, np.ndarray], query: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def _score_backward(
        self, w: Mapping[str, np.ndarray], cache: Any, d_score: np.ndarray, grads: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Adds the score's weight gradients into ``grads``; returns ``(d_query, d_keys)``."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        config = {"num_units": self.num_units, **self._options(), "seed": self.seed}
        if self._dtype is not None:
            config["dtype"] = self._dtype.name
        if self.name is not None:
            config["name"] = self.name
        return config

    def _options(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v}" for k, v in self._options().items())
        return f"{type(self).__name__}(num_units={self.num_units}{opts})"


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__} {value!r}")
    return bool(value)


class BahdanauAttention(_Mechanism):
    """Additive attention (Bahdanau et al., 2015), TF 1.15's ``BahdanauAttention``:
    ``score = attention_v . tanh(keys + query @ query_layer/kernel)``.

    ``BahdanauAttention(num_units, memory=None, memory_sequence_length=None,
    normalize=False, probability_fn=None, score_mask_value=None, dtype=None,
    name="BahdanauAttention")``, then rnnrs's keyword-only ``seed``.

    Args:
        num_units: the attention depth ``U``.
        memory: ``[B, Tm, Dm]``, usually the encoder's outputs; or None and
            :meth:`setup_memory` later (the weights survive new memories).
        memory_sequence_length: ``[B]`` integers in ``[1, Tm]`` (positions at
            or past them get weight 0; a length of 0 is a ``ValueError``), or
            None.
        normalize: weight normalisation (Salimans & Kingma): ``attention_v``
            is used as ``attention_g · attention_v / ‖attention_v‖`` and
            ``attention_b`` is added inside the tanh.
        probability_fn, score_mask_value: must be None (softmax and ``-inf``).
        dtype: None (the memory's) or float32 / float64.
        seed: seeds the initial weights.

    Weights (built with the wrapper, when the query's depth ``Q`` is known):
    ``memory_layer/kernel [Dm, U]``, ``query_layer/kernel [Q, U]`` (Glorot
    uniform), ``attention_v [U]`` (uniform ``±sqrt(3/U)``); with
    ``normalize`` also ``attention_g`` (a scalar, ``sqrt(1/U)``) and
    ``attention_b [U]`` (zeros).
    """

    _kind = "bahdanau"

    def __init__(
        self,
        num_units: int,
        memory: Any = None,
        memory_sequence_length: Any = None,
        normalize: bool = False,
        probability_fn: Any = None,
        score_mask_value: Any = None,
        dtype: Any = None,
        name: Optional[str] = None,
        *,
        seed: Optional[int] = None,
    ) -> None:
        self.normalize = _flag("normalize", normalize)
        super().__init__(num_units, memory, memory_sequence_length, probability_fn, score_mask_value, dtype, name, seed)

    def _options(self) -> dict[str, Any]:
        return {"normalize": self.normalize}

    def _shapes(self, query_depth: int) -> dict[str, tuple[int, ...]]:
        U = self.num_units
        shapes: dict[str, tuple[int, ...]] = {
            MEMORY_KERNEL: (self.memory_depth, U),
            QUERY_KERNEL: (query_depth, U),
            ATTENTION_V: (U,),
        }
        if self.normalize:
            shapes[ATTENTION_G] = ()
            shapes[ATTENTION_B] = (U,)
        return shapes

    def _init(self, rng: np.random.Generator, query_depth: int) -> dict[str, np.ndarray]:
        U, dt = self.num_units, self.dtype
        w = {
            MEMORY_KERNEL: glorot_uniform(rng, (self.memory_depth, U), dt),
            QUERY_KERNEL: glorot_uniform(rng, (query_depth, U), dt),
            ATTENTION_V: rng.uniform(-np.sqrt(3.0 / U), np.sqrt(3.0 / U), size=U).astype(dt),
        }
        if self.normalize:
            w[ATTENTION_G] = np.array(np.sqrt(1.0 / U), dtype=dt)
            w[ATTENTION_B] = np.zeros(U, dtype=dt)
        return w

    def _score(self, w: Mapping[str, np.ndarray], query: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, Any]:
        pre = keys + (query @ w[QUERY_KERNEL])[:, None, :]  # [B, Tm, U]
        if self.normalize:
            pre = pre + w[ATTENTION_B]
            v = w[ATTENTION_G] * w[ATTENTION_V] / np.sqrt(np.sum(w[ATTENTION_V] ** 2))
        else:
            v = w[ATTENTION_V]
        th = np.tanh(pre)
        return th @ v, (query, th, v)

    def _score_backward(
        self, w: Mapping[str, np.ndarray], cache: Any, d_score: np.ndarray, grads: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        query, th, v = cache
        d_v = np.einsum("btu,bt->u", th, d_score)
        d_pre = d_score[:, :, None] * v * (1 - th * th)  # [B, Tm, U]
        d_processed = d_pre.sum(axis=1)  # [B, U]
        grads[QUERY_KERNEL] += query.T @ d_processed
        if self.normalize:
            a, g = w[ATTENTION_V], w[ATTENTION_G]
            norm = np.sqrt(np.sum(a * a))
            grads[ATTENTION_G] += np.dot(d_v, a) / norm
            grads[ATTENTION_V] += g * (d_v / norm - a * np.dot(a, d_v) / norm**3)
            grads[ATTENTION_B] += d_pre.sum(axis=(0, 1))
        else:
            grads[ATTENTION_V] += d_v
        return d_processed @ w[QUERY_KERNEL].T, d_pre


class LuongAttention(_Mechanism):
    """Multiplicative attention (Luong et al., 2015), TF 1.15's ``LuongAttention``:
    ``score = query . keys`` (``× attention_g`` with ``scale``). The query
    (the wrapped cell's output) must be ``num_units`` wide.

    ``LuongAttention(num_units, memory=None, memory_sequence_length=None,
    scale=False, probability_fn=None, score_mask_value=None, dtype=None,
    name="LuongAttention")``, then rnnrs's keyword-only ``seed``. Arguments
    as :class:`BahdanauAttention`'s; ``scale`` adds the scalar
    ``attention_g`` (starting at 1).

    Weights: ``memory_layer/kernel [Dm, U]`` (Glorot uniform), and with
    ``scale`` ``attention_g`` (a scalar).
    """

    _kind = "luong"

    def __init__(
        self,
        num_units: int,
        memory: Any = None,
        memory_sequence_length: Any = None,
        scale: bool = False,
        probability_fn: Any = None,
        score_mask_value: Any = None,
        dtype: Any = None,
        name: Optional[str] = None,
        *,
        seed: Optional[int] = None,
    ) -> None:
        self.scale = _flag("scale", scale)
        super().__init__(num_units, memory, memory_sequence_length, probability_fn, score_mask_value, dtype, name, seed)

    def _options(self) -> dict[str, Any]:
        return {"scale": self.scale}

    def _check_query(self, query_depth: int) -> None:
        if query_depth != self.num_units:
            raise ValueError(
                f"cell: expected an output size equal to LuongAttention's num_units {self.num_units} (the query "
                f"is dotted with the keys), got {query_depth}"
            )

    def _shapes(self, query_depth: int) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {MEMORY_KERNEL: (self.memory_depth, self.num_units)}
        if self.scale:
            shapes[ATTENTION_G] = ()
        return shapes

    def _init(self, rng: np.random.Generator, query_depth: int) -> dict[str, np.ndarray]:
        w = {MEMORY_KERNEL: glorot_uniform(rng, (self.memory_depth, self.num_units), self.dtype)}
        if self.scale:
            w[ATTENTION_G] = np.array(1.0, dtype=self.dtype)
        return w

    def _score(self, w: Mapping[str, np.ndarray], query: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, Any]:
        dot = np.einsum("bu,btu->bt", query, keys)
        return (w[ATTENTION_G] * dot if self.scale else dot), (query, keys, dot)

    def _score_backward(
        self, w: Mapping[str, np.ndarray], cache: Any, d_score: np.ndarray, grads: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        query, keys, dot = cache
        if self.scale:
            grads[ATTENTION_G] += np.sum(d_score * dot)
            d_score = w[ATTENTION_G] * d_score
        return np.einsum("bt,btu->bu", d_score, keys), np.einsum("bt,bu->btu", d_score, query)


def _check_mechanism(value: Any) -> _Mechanism:
    if isinstance(value, (list, tuple)):
        raise ValueError(
            f"attention_mechanism: expected one mechanism (several at once are not supported), got {len(value)}"
        )
    if not isinstance(value, _Mechanism):
        raise TypeError(
            f"attention_mechanism: expected a BahdanauAttention or LuongAttention, got {type(value).__name__}"
        )
    return value


class _Memory(NamedTuple):
    """One call's view of the memory, its rows repeated ``multiple`` times."""

    values: np.ndarray  # [B, Tm, Dm], zero past each row's length
    keys: np.ndarray  # [B, Tm, U]
    mask: np.ndarray  # [B, Tm] bool: the positions that can be attended to
    multiple: int


class AttentionWrapper(RNNCell):
    """A cell that attends to a memory at every step (TF 1.15's ``AttentionWrapper``).

    ``AttentionWrapper(cell, attention_mechanism, attention_layer_size=None,
    alignment_history=False, cell_input_fn=None, output_attention=True,
    initial_cell_state=None, name=None)``, then rnnrs's keyword-only
    ``seed``.

    Args:
        cell: the wrapped cell; it reads ``[inputs, previous attention]``.
        attention_mechanism: a :class:`BahdanauAttention` or
            :class:`LuongAttention` (one; lists are refused), holding the
            memory.
        attention_layer_size: None (the attention is the context, ``Dm``
            wide) or an integer ``A``: ``attention = [cell_output, context] @
            attention_layer/kernel`` (``[Q + Dm, A]``, no bias).
        alignment_history: keep every step's alignments in the state
            (``[steps, B, Tm]``; no gradient flows from them).
        cell_input_fn: must be None (the input is ``[inputs, attention]``).
        output_attention: output the attention (True, Luong-style) or the
            cell's output (False, Bahdanau-style).
        initial_cell_state: the wrapped cell's state that ``zero_state`` puts
            in ``cell_state`` (and that a run with ``initial_state=None``
            starts from), or None (zeros).
        seed: seeds ``attention_layer/kernel`` (Glorot uniform).

    The memory's batch must be the state's, or divide it: a beam search over
    ``k`` beams runs ``k`` rows per memory row, and the wrapper repeats each
    memory row ``k`` times (``tile_batch``'s order), so no tiling of the
    memory or its lengths is needed; the memory's gradient is summed back.

    Weights: the wrapped cell's, the mechanism's (``memory_layer/kernel``,
    ``query_layer/kernel``, ``attention_v``, ``attention_g``,
    ``attention_b``) and ``attention_layer/kernel``. State:
    :class:`AttentionWrapperState`. With ``return_backprop=True`` the run
    functions' gradients carry ``memory`` (shaped like the memory): the
    encoder trains through the attention.
    """

    _CONFIG = (
        "cell",
        "attention_mechanism",
        "attention_layer_size",
        "alignment_history",
        "output_attention",
        "seed",
    )

    def __init__(
        self,
        cell: RNNCell,
        attention_mechanism: Any,
        attention_layer_size: Optional[int] = None,
        alignment_history: bool = False,
        cell_input_fn: Any = None,
        output_attention: bool = True,
        initial_cell_state: Any = None,
        name: Optional[str] = None,
        *,
        seed: Optional[int] = None,
    ) -> None:
        self.cell = _check_cell("cell", cell)
        self.attention_mechanism = _check_mechanism(attention_mechanism)
        if attention_mechanism._dtype_given and attention_mechanism.dtype != cell.dtype:
            raise ValueError(
                f"attention_mechanism: expected the cell's dtype {cell.dtype.name}, got "
                f"{attention_mechanism.dtype.name}"
            )
        attention_mechanism._dtype = cell.dtype
        if attention_mechanism._memory is not None and attention_mechanism._memory.dtype != cell.dtype:
            attention_mechanism.setup_memory(attention_mechanism._memory, attention_mechanism._lengths)
        self.attention_layer_size = (
            None if attention_layer_size is None else positive_int("attention_layer_size", attention_layer_size)
        )
        self.alignment_history = _flag("alignment_history", alignment_history)
        refuse_unless_none("cell_input_fn", cell_input_fn, "the cell reads [inputs, attention]")
        self.output_attention = _flag("output_attention", output_attention)
        self.initial_cell_state = initial_cell_state
        self.name = name
        self.seed = seed_value(seed)
        self._own: dict[str, np.ndarray] = {}
        self._input_size: Optional[int] = None

    # -- sizes --------------------------------------------------------------------------
    @property
    def num_units(self) -> int:
        return self.cell.num_units

    @property
    def attention_size(self) -> int:
        """``A``: ``attention_layer_size``, or the memory's depth."""
        if self.attention_layer_size is not None:
            return self.attention_layer_size
        return self.attention_mechanism.memory_depth

    @property
    def output_size(self) -> int:
        return self.attention_size if self.output_attention else self.cell.output_size

    @property
    def state_size(self) -> Any:
        Tm = self.attention_mechanism.alignments_size
        return AttentionWrapperState(
            cell_state=self.cell.state_size,
            attention=self.attention_size,
            time=(),
            alignments=Tm,
            alignment_history=Tm if self.alignment_history else (),
            attention_state=Tm,
        )

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.cell.dtype

    @property
    def input_size(self) -> Optional[int]:
        return self._input_size

    @property
    def built(self) -> bool:
        return self._input_size is not None and self.cell.built and self.attention_mechanism.built

    def _own_shapes(self) -> dict[str, tuple[int, ...]]:
        if self.attention_layer_size is None:
            return {}
        return {ATTENTION_KERNEL: (self.cell.output_size + self.attention_mechanism.memory_depth, self.attention_size)}

    def build(self, input_size: int) -> None:
        input_size = int(input_size)
        if self._input_size is not None and input_size != self._input_size:
            raise ValueError(f"inputs: expected input size {self._input_size} (the cell is built), got {input_size}")
        mech = self.attention_mechanism
        self.cell.build(input_size + self.attention_size)
        query = self.cell.output_size
        mech._check_query(query)
        mech._build(query)
        if self.attention_layer_size is not None and not self._own:
            rng = np.random.default_rng(self.seed)
            shape = self._own_shapes()[ATTENTION_KERNEL]
            self._own = {ATTENTION_KERNEL: glorot_uniform(rng, shape, self.dtype)}  # type: ignore[arg-type]
        self._input_size = input_size

    # -- weights --------------------------------------------------------------------------
    def _snapshot(self) -> Any:
        return (self.cell._snapshot(), self.attention_mechanism._weights, self._own)

    def _named(self, snapshot: Any) -> dict[str, np.ndarray]:
        inner, mech, own = snapshot
        return {**self.cell._named(inner), **mech, **own}

    def _prepare_weights(self, mapping: Mapping[str, Any], prefix: str) -> Callable[[], None]:
        """Validates ``mapping`` (any subset of the weights once built; all of
        them build an unbuilt wrapper, its input size and, without a memory
        yet, the memory's depth read off ``memory_layer/kernel``)."""
        check_mapping(mapping)
        mech = self.attention_mechanism
        built = self.built
        depth = mech._depth
        if not built and mech._memory is None and mech._depth is None:
            kernel = mapping.get(MEMORY_KERNEL)
            if kernel is None or np.ndim(kernel) != 2:
                raise ValueError(
                    f"mapping: expected every weight of the unbuilt AttentionWrapper ({prefix + MEMORY_KERNEL!r} "
                    "among them: it gives the memory's depth), or a built one"
                )
            depth = int(np.shape(kernel)[0])
        kept = mech._depth
        mech._depth = depth
        try:
            query = self.cell.output_size
            mech_shapes, own_shapes = mech._shapes(query), self._own_shapes()
            if not built:
                missing = sorted(prefix + k for k in (*mech_shapes, *own_shapes) if k not in mapping)
                if missing:
                    raise ValueError(f"mapping: expected every weight to build the AttentionWrapper, missing {missing}")
            mech_part = mech._prepare({k: v for k, v in mapping.items() if k in mech_shapes}, query, prefix)
        finally:
            mech._depth = kept
        own_part = {}
        for key in (k for k in mapping if k in own_shapes):
            where = f"mapping[{prefix + key!r}]"
            arr = float_array(where, mapping[key], self.dtype, 2, "")
            check_shape(where, arr, own_shapes[key])
            own_part[key] = np.array(arr, dtype=self.dtype, order="C", copy=True)
        rest = {k: v for k, v in mapping.items() if k not in mech_shapes and k not in own_shapes}
        inner_commit = self.cell._prepare_weights(rest, prefix) if rest or not built else None

        def commit() -> None:
            if inner_commit is not None:
                inner_commit()
            mech._depth = depth
            mech._weights = {**mech._weights, **mech_part}
            self._own = {**self._own, **own_part}
            if not built:
                input_size = self.cell.input_size
                assert input_size is not None
                self._input_size = int(input_size) - self.attention_size

        return commit

    # -- state ------------------------------------------------------------------------------
    def zero_state(self, batch_size: int, dtype: Any = None) -> AttentionWrapperState:
        """The initial state for ``batch_size`` rows: ``initial_cell_state``
        (or the cell's zeros), zero attention and alignments, time 0 and an
        empty history."""
        self._require_memory()
        B = int(batch_size)
        Tm = self.attention_mechanism.alignments_size
        if self.initial_cell_state is not None:
            cell_state = self.cell._check_state("initial_cell_state", self.initial_cell_state, B)
        else:
            cell_state = self.cell.zero_state(B)
        zeros = np.zeros((B, Tm), dtype=self.dtype)
        return AttentionWrapperState(
            cell_state=cell_state,
            attention=np.zeros((B, self.attention_size), dtype=self.dtype),
            time=0,
            alignments=zeros,
            alignment_history=np.zeros((0, B, Tm), dtype=self.dtype) if self.alignment_history else (),
            attention_state=zeros.copy(),
        )

    def _require_memory(self) -> None:
        self.attention_mechanism.memory  # noqa: B018 (raises a clear ValueError without one)

    def _check_state(self, name: str, state: Any, batch: int) -> AttentionWrapperState:
        if not isinstance(state, tuple) or len(state) != 6:
            raise TypeError(
                f"{name}: expected an AttentionWrapperState (cell_state, attention, time, alignments, "
                f"alignment_history, attention_state), got {type(state).__name__}"
            )
        st = AttentionWrapperState(*state)
        Tm = self.attention_mechanism.alignments_size

        gradient = name.startswith("d_")  # a state's gradient: None fields are zeros

        def matrix(field: str, value: Any, width: int) -> np.ndarray:
            if value is None and gradient:
                return np.zeros((batch, width), dtype=self.dtype)
            arr = float_array(f"{name}.{field}", value, self.dtype, 2, f"[batch, {width}]")
            check_shape(f"{name}.{field}", arr, (batch, width))
            return arr

        time = st.time
        if time is not None and not isinstance(time, (numbers.Integral, np.ndarray)):
            raise TypeError(f"{name}.time: expected an integer, got {type(time).__name__}")
        history = st.alignment_history
        if self.alignment_history and (history is None or (isinstance(history, tuple) and not history)):
            history = np.zeros((0, batch, Tm), dtype=self.dtype)  # a state built without a history: none yet
        elif self.alignment_history:
            history = float_array(f"{name}.alignment_history", history, self.dtype, 3, f"[steps, batch, {Tm}]")
            if history.shape[1:] != (batch, Tm):
                raise ValueError(f"{name}.alignment_history: expected [steps, {batch}, {Tm}], got {history.shape}")
        return AttentionWrapperState(
            cell_state=None
            if st.cell_state is None and gradient
            else self.cell._check_state(f"{name}.cell_state", st.cell_state, batch),
            attention=matrix("attention", st.attention, self.attention_size),
            time=0 if time is None else int(time),
            alignments=matrix("alignments", st.alignments, Tm),
            alignment_history=history,
            attention_state=matrix("attention_state", st.attention_state, Tm),
        )

    # -- running ------------------------------------------------------------------------------
    def _memory(self, batch: int, weights: Mapping[str, np.ndarray], rows: Optional[np.ndarray] = None) -> _Memory:
        """The call's memory for ``batch`` rows: the memory's own rows, each
        repeated ``batch / memory rows`` times (beams), or the memory rows
        ``rows`` (a decoder stepping only its unfinished rows). Values, keys
        and mask are computed once per memory and ``memory_layer/kernel``
        (kept until either is replaced)."""
        mech = self.attention_mechanism
        memory, lengths, kernel = mech.memory, mech.memory_sequence_length, weights[MEMORY_KERNEL]
        cached = self.__dict__.get("_memory_cache")
        key = (mech._generation, memory, lengths, kernel)
        if cached is None or cached[0] != key[0] or any(a is not b for a, b in zip(cached[1:4], key[1:])):
            Tm = memory.shape[1]
            mask = np.ones((memory.shape[0], Tm), dtype=bool) if lengths is None else np.arange(Tm) < lengths[:, None]
            values = np.where(mask[:, :, None], memory, 0).astype(self.dtype, copy=False)
            cached = (*key, _Memory(values, values @ kernel, mask, 1))
            self.__dict__["_memory_cache"] = cached
        base: _Memory = cached[4]
        if rows is not None:
            return _Memory(base.values[rows], base.keys[rows], base.mask[rows], 1)
        count = memory.shape[0]
        if count == 0 or batch % count:
            raise ValueError(
                f"inputs: expected a batch equal to the memory's {count} rows or a multiple of it (beams), got {batch}"
            )
        multiple = batch // count
        if multiple == 1:
            return base
        values, keys, mask = (np.repeat(a, multiple, axis=0) for a in (base.values, base.keys, base.mask))
        return _Memory(values, keys, mask, multiple)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_memory_cache", None)
        return state

    def _attend(
        self, w: Mapping[str, np.ndarray], own: Mapping[str, np.ndarray], mem: _Memory, query: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, Any]:
        """One step's attention and alignments for every row, and what backward needs."""
        score, score_cache = self.attention_mechanism._score(w, query, mem.keys)
        alignments = softmax(np.where(mem.mask, score, -np.inf)).astype(self.dtype, copy=False)
        context = np.einsum("bt,btd->bd", alignments, mem.values)
        if ATTENTION_KERNEL in own:
            attention = np.concatenate([query, context], axis=1) @ own[ATTENTION_KERNEL]
        else:
            attention = context
        return attention.astype(self.dtype, copy=False), alignments, (query, context, alignments, score_cache)

    def _attend_backward(
        self,
        w: Mapping[str, np.ndarray],
        own: Mapping[str, np.ndarray],
        mem: _Memory,
        cache: Any,
        d_attention: np.ndarray,
        d_alignments: np.ndarray,
        grads: dict[str, np.ndarray],
        d_values: np.ndarray,
        d_keys: np.ndarray,
    ) -> np.ndarray:
        """Backward of :meth:`_attend`: accumulates into ``grads``,
        ``d_values`` and ``d_keys``; returns the query's gradient."""
        query, context, alignments, score_cache = cache
        Q = query.shape[1]
        if ATTENTION_KERNEL in own:
            joined = np.concatenate([query, context], axis=1)
            grads[ATTENTION_KERNEL] += joined.T @ d_attention
            d_joined = d_attention @ own[ATTENTION_KERNEL].T
            d_query, d_context = d_joined[:, :Q], d_joined[:, Q:]
        else:
            d_query, d_context = np.zeros_like(query), d_attention
        d_alignments = d_alignments + np.einsum("bd,btd->bt", d_context, mem.values)
        d_values += np.einsum("bt,bd->btd", alignments, d_context)
        d_score = alignments * (d_alignments - np.sum(alignments * d_alignments, axis=1, keepdims=True))
        d_q, d_k = self.attention_mechanism._score_backward(w, score_cache, d_score, grads)
        d_keys += d_k
        result: np.ndarray = d_query + d_q
        return result

    def _run(
        self,
        inputs: np.ndarray,
        state: Any,
        lengths: Lengths,
        time_major: bool,
        training: bool,
        weights: Any,
        memory_rows: Optional[np.ndarray] = None,
    ) -> tuple[np.ndarray, Any, Backward]:
        """:meth:`RNNCell._run`; ``memory_rows`` (a decoder stepping a subset
        of its rows) picks the memory rows of the batch's rows."""
        inner_w, mech_w, own = weights
        x = np.swapaxes(inputs, 0, 1) if time_major else inputs  # [B, T, I]
        B, T, I = x.shape  # noqa: E741 (the shape letters of the docs)
        memory = self.attention_mechanism.memory
        if self.cell._kind is not None and memory_rows is None and T > 1 and B == memory.shape[0]:
            return self._run_core(x, state, lengths, time_major, weights)
        mem = self._memory(B, mech_w, memory_rows)
        steps = 0 if T == 0 else (T if lengths is None else min(T, max(1, int(lengths.max()) if B else 1)))
        outputs = np.zeros((B, T, self.output_size), dtype=self.dtype)
        s = state
        history = [s.alignment_history] if self.alignment_history and len(s.alignment_history) else []
        tape = []
        for t in range(steps):
            active = None if lengths is None else (t < lengths)
            step_lengths = None if active is None else active.astype(np.int64)
            cell_in = np.concatenate([x[:, t, :], s.attention], axis=1)[:, None, :]
            cell_out, cell_state, cell_backward = self.cell._run(
                cell_in, s.cell_state, step_lengths, False, training, inner_w
            )
            query = cell_out[:, 0, :]
            attention, alignments, cache = self._attend(mech_w, own, mem, query)
            out = attention if self.output_attention else query
            if active is not None:
                keep = active[:, None]
                out = np.where(keep, out, 0).astype(self.dtype, copy=False)
                attention = np.where(keep, attention, s.attention)
                alignments_kept = np.where(keep, alignments, s.alignments)
                attention_state = np.where(keep, alignments, s.attention_state)
            else:
                alignments_kept = attention_state = alignments
            outputs[:, t, :] = out
            if self.alignment_history:
                history.append(alignments[None])
            tape.append((cache, cell_backward, active))
            s = AttentionWrapperState(cell_state, attention, s.time + 1, alignments_kept, (), attention_state)
        Tm = mem.mask.shape[1]
        if self.alignment_history:
            hist = np.concatenate(history) if history else np.zeros((0, B, Tm), dtype=self.dtype)
            s = s._replace(alignment_history=hist)
        final = s
        outputs_view = np.swapaxes(outputs, 0, 1) if time_major else outputs
        cell = self.cell
        dtype = self.dtype

        def backward(d_outputs: Optional[np.ndarray], d_state: Any) -> tuple[np.ndarray, Any, dict[str, np.ndarray]]:
            dy = None if d_outputs is None else (np.swapaxes(d_outputs, 0, 1) if time_major else d_outputs)
            grads = {k: np.zeros_like(v) for k, v in {**mech_w, **own}.items()}
            d_values = np.zeros_like(mem.values)
            d_keys = np.zeros_like(mem.keys)
            d_x = np.zeros((B, T, I), dtype=dtype)
            zeros_tm = np.zeros((B, Tm), dtype=dtype)
            if d_state is None:
                d_cell: Any = None
                d_att = np.zeros((B, self.attention_size), dtype=dtype)
                d_al, d_as = zeros_tm, zeros_tm
            else:
                d_cell, d_att, d_al, d_as = (
                    d_state.cell_state,
                    d_state.attention,
                    d_state.alignments,
                    d_state.attention_state,
                )
            inner_grads: Optional[dict[str, np.ndarray]] = None
            for t in reversed(range(steps)):
                cache, cell_backward, active = tape[t]
                d_out = np.zeros((B, self.output_size), dtype=dtype) if dy is None else dy[:, t, :]
                if active is None:
                    d_step_att, d_step_al = d_att, d_al + d_as
                    pass_att: Any = 0.0
                    pass_al, pass_as = zeros_tm, zeros_tm
                else:
                    keep = active[:, None]
                    d_out = np.where(keep, d_out, 0)
                    d_step_att = np.where(keep, d_att, 0)
                    d_step_al = np.where(keep, d_al + d_as, 0)
                    pass_att = np.where(keep, 0, d_att)
                    pass_al, pass_as = np.where(keep, 0, d_al), np.where(keep, 0, d_as)
                if self.output_attention:
                    d_step_att = d_step_att + d_out
                d_query = self._attend_backward(mech_w, own, mem, cache, d_step_att, d_step_al, grads, d_values, d_keys)
                if not self.output_attention:
                    d_query = d_query + d_out
                d_in, d_cell, d_w = cell_backward(d_query[:, None, :].astype(dtype, copy=False), d_cell)
                inner_grads = d_w if inner_grads is None else {k: inner_grads[k] + d_w[k] for k in inner_grads}
                d_x[:, t, :] = d_in[:, 0, :I]
                d_att = d_in[:, 0, I:] + pass_att
                d_al, d_as = pass_al, pass_as
            grads[MEMORY_KERNEL] += np.einsum("btd,btu->du", mem.values, d_keys)
            d_memory = np.where(mem.mask[:, :, None], d_values + d_keys @ mech_w[MEMORY_KERNEL].T, 0)
            if mem.multiple > 1:
                d_memory = d_memory.reshape(-1, mem.multiple, *d_memory.shape[1:]).sum(axis=1)
            if inner_grads is None:
                inner_grads = {k: np.zeros_like(v) for k, v in cell._named(inner_w).items()}
            if d_cell is None:
                d_cell = map_state(lambda _c, a: np.zeros_like(a), state.cell_state)
            d_initial = AttentionWrapperState(
                cell_state=d_cell,
                attention=np.asarray(d_att, dtype=dtype),
                time=0,
                alignments=np.asarray(d_al, dtype=dtype),
                alignment_history=(),
                attention_state=np.asarray(d_as, dtype=dtype),
            )
            all_grads = {**inner_grads, **{k: v.astype(dtype, copy=False) for k, v in grads.items()}}
            all_grads[MEMORY_GRAD] = d_memory.astype(dtype, copy=False)
            d_inputs = np.swapaxes(d_x, 0, 1) if time_major else d_x
            return d_inputs, d_initial, all_grads

        return outputs_view, final, backward

    def _run_core(
        self, x: np.ndarray, state: AttentionWrapperState, lengths: Lengths, time_major: bool, weights: Any
    ) -> tuple[np.ndarray, Any, Backward]:
        """:meth:`_run` of a whole sequence (``x`` batch-major) in the Rust
        core: the wrapped core cell's steps, the attention and its backward
        in one time loop (``rust/attention/``), the keys computed once."""
        inner_w, mech_w, own = weights
        cell, mech = self.cell, self.attention_mechanism
        B, T, _ = x.shape
        steps = T if lengths is None else min(T, max(1, int(lengths.max()) if B else 1))
        core = cell._core(inner_w)
        outputs, parts, attention, alignments, history, tape = _rnnrs.attention_forward(
            core,
            np.ascontiguousarray(x),
            lengths,
            cell._state_parts(state.cell_state),
            state.attention,
            mech.memory,
            mech.memory_sequence_length,
            {**mech_w, **own},
            mech._kind,
            bool(getattr(mech, "normalize", False)),
            bool(getattr(mech, "scale", False)),
            self.output_attention,
            self.alignment_history,
        )
        # Rows of length 0 never step: they keep the alignments and attention state they came with.
        idle = None if lengths is None else (lengths == 0)[:, None]
        attention_state = alignments
        if idle is not None and idle.any():
            alignments = np.where(idle, state.alignments, alignments)
            attention_state = np.where(idle, state.attention_state, attention_state)
        hist: Any = ()
        if self.alignment_history:
            assert history is not None
            hist = np.concatenate([state.alignment_history, history[:steps]]) if steps else state.alignment_history
        final = AttentionWrapperState(
            cell._state_from_parts(parts), attention, state.time + steps, alignments, hist, attention_state
        )
        dtype = self.dtype

        def backward(d_outputs: Optional[np.ndarray], d_state: Any) -> tuple[np.ndarray, Any, dict[str, np.ndarray]]:
            if d_outputs is not None and time_major:
                d_outputs = np.ascontiguousarray(np.swapaxes(d_outputs, 0, 1))
            d_parts = d_att = d_al = None
            d_initial_al = d_initial_as = np.zeros_like(state.alignments)
            if d_state is not None:
                d_parts = None if d_state.cell_state is None else cell._state_parts(d_state.cell_state)
                d_att = d_state.attention
                d_al = d_state.alignments + d_state.attention_state
                if idle is not None:
                    d_initial_al = np.where(idle, d_state.alignments, 0).astype(dtype, copy=False)
                    d_initial_as = np.where(idle, d_state.attention_state, 0).astype(dtype, copy=False)
                    d_al = np.where(idle, 0, d_al).astype(dtype, copy=False)
            d_x, d_initial_parts, d_initial_att, d_memory, d_weights = _rnnrs.attention_backward(
                tape, d_outputs, d_parts, d_att, d_al
            )
            d_initial = AttentionWrapperState(
                cell._state_from_parts(d_initial_parts), d_initial_att, 0, d_initial_al, (), d_initial_as
            )
            d_weights[MEMORY_GRAD] = d_memory
            return (np.swapaxes(d_x, 0, 1) if time_major else d_x), d_initial, d_weights

        return (np.swapaxes(outputs, 0, 1) if time_major else outputs), final, backward

    def __repr__(self) -> str:
        return f"AttentionWrapper({self.cell!r}, {self.attention_mechanism!r})"
