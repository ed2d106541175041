"""Argument checks and small pieces shared by the decoders of :mod:`rnnrs.seq2seq`.

Every message names the argument and says "expected ..., got ..." (the
style of :mod:`rnnrs._validate`).
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Callable, Optional

import numpy as np

from .. import _rnnrs
from .._validate import bounded_int, float_array, integer_ids, numeric_array
from ..cells import RNNCell
from ..layers.core import Dense, Embedding, _activate


class EmbeddingFn:
    """An embedding as the decoders use it: ids ``[B]`` → vectors ``[B, E]``
    in the cell's dtype.

    Attributes:
        matrix: the ``[V, E]`` matrix (cast to the cell's dtype) when the
            embedding is one (an array or an ``rnnrs.Embedding`` layer);
            None for a callable.
        vocab: ``V`` (None for a callable).
        width: ``E`` (None for a callable until its first call).
        layer: the ``rnnrs.Embedding`` layer it was read from, or None.
    """

    def __init__(
        self,
        name: str,
        dtype: np.dtype[Any],
        matrix: Optional[np.ndarray] = None,
        fn: Optional[Callable[[np.ndarray], Any]] = None,
        layer: Optional[Embedding] = None,
    ) -> None:
        self.name = name
        self.dtype = dtype
        self.matrix = matrix
        self.vocab: Optional[int] = None if matrix is None else int(matrix.shape[0])
        self.width: Optional[int] = None if matrix is None else int(matrix.shape[1])
        self.layer = layer
        self._fn = fn

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        """The vectors of ``ids`` (int ``[B]``): ``[B, E]`` of the cell's dtype."""
        if self.matrix is not None:
            out: np.ndarray = self.matrix[ids]
            return out
        assert self._fn is not None
        raw = self._fn(np.asarray(ids, dtype=np.int32))
        vectors = float_array(self.name, raw, self.dtype, 2, "[batch, embedding_size] from the callable")
        if vectors.shape[0] != len(ids):
            raise ValueError(
                f"{self.name}: expected the callable to return {len(ids)} vectors (one per id), "
                f"got shape {vectors.shape}"
            )
        if self.width is None:
            self.width = int(vectors.shape[1])
        elif vectors.shape[1] != self.width:
            raise ValueError(
                f"{self.name}: expected the callable to return vectors of width {self.width} "
                f"(as on its first call), got shape {vectors.shape}"
            )
        return vectors

    def check_width(self, input_size: Optional[int]) -> None:
        """Raises ``ValueError`` naming the embedding when its width is known
        and is not ``input_size`` (the cell's input size, when built)."""
        if input_size is not None and self.width is not None and self.width != input_size:
            raise ValueError(
                f"{self.name}: expected vectors of width {input_size} (the cell's input size), got width {self.width}"
            )


def as_embedding(name: str, value: Any, dtype: np.dtype[Any], input_size: Optional[int]) -> EmbeddingFn:
    """``value`` as an :class:`EmbeddingFn`: a ``[V, E]`` float array (cast to
    ``dtype``), an ``rnnrs.Embedding`` layer (its ``embeddings`` matrix) or a
    callable ``ids [B] int32 -> [B, E]``. ``input_size`` (None when the cell
    is not built yet) must equal ``E`` when both are known: ``ValueError``
    naming ``name`` otherwise; ``TypeError`` for anything else."""
    if isinstance(value, Embedding):
        value.build()
        table = value._weights["embeddings"]
        matrix = table if table.dtype == dtype else table.astype(dtype)
        emb = EmbeddingFn(name, dtype, matrix=matrix, layer=value)
    elif isinstance(value, (np.ndarray, list, tuple)) or hasattr(value, "__array__"):
        matrix = float_array(name, value, dtype, 2, "[vocab_size, embedding_size]")
        if matrix.shape[0] < 1 or matrix.shape[1] < 1:
            raise ValueError(
                f"{name}: expected a [vocab_size, embedding_size] matrix with both sizes >= 1, got shape {matrix.shape}"
            )
        emb = EmbeddingFn(name, dtype, matrix=np.ascontiguousarray(matrix))
    elif callable(value):
        emb = EmbeddingFn(name, dtype, fn=value)
    else:
        raise TypeError(
            f"{name}: expected a [vocab_size, embedding_size] array, an rnnrs.Embedding or a callable "
            f"from ids to vectors, got {type(value).__name__}"
        )
    emb.check_width(input_size)
    return emb


def check_start_tokens(
    name: str, value: Any, batch: Optional[int], vocab: Optional[int], what: str = "the vocabulary size"
) -> np.ndarray:
    """``value`` as int32 ``[B]`` token ids in ``[0, vocab)`` (``>= 0`` when
    ``vocab`` is None; ``what`` names the bound in messages). A scalar is
    broadcast to ``batch`` rows when ``batch`` is known, else ``ValueError``;
    a 1-d value must have ``batch`` entries when ``batch`` is given."""
    raw = numeric_array(name, value, "a 1-d array of token ids")
    if raw.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected integer token ids, got dtype {raw.dtype}")
    if raw.ndim == 0:
        if batch is None:
            raise ValueError(
                f"{name}: expected a 1-d array of token ids [batch] (a scalar needs a known batch size), got a scalar"
            )
        raw = np.full(batch, raw)
    if raw.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array of token ids [batch], got shape {raw.shape}")
    if batch is not None and raw.shape[0] != batch:
        raise ValueError(f"{name}: expected {batch} token ids (one per batch row), got {raw.shape[0]}")
    high = np.iinfo(np.int32).max if vocab is None else vocab
    try:
        ids = integer_ids(name, raw, high, "token ids")
    except ValueError as e:
        if vocab is None or "in [0" not in str(e):
            raise
        raise ValueError(f"{e} ({what} is {vocab})") from None
    return ids.astype(np.int32)


def check_end_token(name: str, value: Any, vocab: Optional[int], what: str = "the vocabulary size") -> int:
    """``value`` as an int token id in ``[0, vocab)`` (``>= 0`` when ``vocab``
    is None): ``TypeError`` for a non-integer (bools included), ``ValueError``
    outside the range."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer token id, got {type(value).__name__} {value!r}")
    token = int(value)
    if token < 0 or (vocab is not None and token >= vocab):
        bound = "an id >= 0" if vocab is None else f"an id in [0, {vocab}) ({what} is {vocab})"
        raise ValueError(f"{name}: expected {bound}, got {token}")
    return token


def check_output_layer(value: Any, cell: RNNCell) -> Optional[Dense]:
    """``output_layer``: None, or an ``rnnrs.Dense`` built (on first use) for
    the cell's output size and dtype. Anything else is a ``TypeError``; a
    Dense built for another input size or dtype a ``ValueError``."""
    if value is None:
        return None
    if not isinstance(value, Dense):
        raise TypeError(f"output_layer: expected None or an rnnrs.Dense layer, got {type(value).__name__}")
    if value.dtype is not None and value.dtype != cell.dtype:
        raise ValueError(
            f"output_layer: expected a Dense layer of the cell's dtype {cell.dtype.name}, got {value.dtype.name}"
        )
    size = cell.output_size
    if value.built and value.input_size != size:
        raise ValueError(
            f"output_layer: expected a Dense layer reading the cell's output size {size}, "
            f"got one built for input size {value.input_size}"
        )
    value.build(size, cell.dtype)
    return value


#: Larger ``maximum_iterations`` are taken as this many steps (no decode
#: gets there: the memory of its outputs runs out long before).
MAXIMUM_ITERATIONS_CEILING = 2**62


def maximum_iterations_arg(value: Any, default: int) -> int:
    """``maximum_iterations``: ``default`` for None, else an integer >= 0
    (``TypeError`` for bools, floats and strings, ``ValueError`` below 0);
    values above ``2**62`` count as ``2**62``."""
    if value is None:
        return default
    return min(bounded_int("maximum_iterations", value, 0), MAXIMUM_ITERATIONS_CEILING)


#: The most uniforms (steps x rows) a sampled decode draws before its first
#: step, for the Rust loop (64 MiB of float64); beyond, they are drawn step
#: by step.
UNIFORMS_UP_FRONT = 2**23


class Uniforms:
    """The uniforms of a sampled decode: row ``b`` at step ``t`` uses
    ``default_rng(seed).random((steps, B))[t, b]``, drawn in blocks as the
    steps need them (the same numbers: the generator fills in C order)."""

    def __init__(self, seed: Optional[int], batch: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._batch = batch
        self._drawn = np.zeros((0, batch))

    def _draw_to(self, steps: int) -> None:
        have = self._drawn.shape[0]
        if steps > have:
            more = max(steps - have, min(have, 4096), 16)
            self._drawn = np.concatenate([self._drawn, self._rng.random((more, self._batch))])

    def first(self, steps: int) -> np.ndarray:
        """The uniforms of steps ``0 .. steps - 1``, ``[steps, B]`` float64."""
        self._draw_to(steps)
        return np.ascontiguousarray(self._drawn[:steps])

    def step(self, t: int) -> np.ndarray:
        """The uniforms of step ``t``, ``[B]``."""
        self._draw_to(t + 1)
        row: np.ndarray = self._drawn[t]
        return row


def sample_ids(logits: np.ndarray, u: np.ndarray, temperature: float) -> np.ndarray:
    """Ids drawn from ``softmax(logits / temperature)`` (``temperature`` > 0)
    with uniforms ``u`` (``[B]``): in float64, ``cdf`` the sequential
    cumulative sum of ``exp((z - max z) / temperature)``, the id is ``#{k :
    cdf[k] <= u * cdf[-1]}`` clipped to ``V - 1``. Dividing after the
    subtraction keeps a tiny temperature exact (the draw becomes the first
    maximum) instead of overflowing."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    z /= temperature
    cdf = np.cumsum(np.exp(z), axis=1)
    threshold = u * cdf[:, -1]
    ids = np.count_nonzero(cdf <= threshold[:, None], axis=1)
    clipped: np.ndarray = np.minimum(ids, logits.shape[1] - 1).astype(np.int32)
    return clipped


def project(output_layer: Optional[Dense], h: np.ndarray) -> np.ndarray:
    """The output layer applied to cell outputs ``h`` ``[..., H]`` (``h``
    itself without one): ``act(h @ kernel + bias)`` in ``h``'s dtype."""
    if output_layer is None:
        return h
    weights = output_layer._weights
    kernel, bias = weights["kernel"], weights.get("bias")
    if kernel.dtype != h.dtype:
        kernel = kernel.astype(h.dtype)
        bias = None if bias is None else bias.astype(h.dtype)
    z = _rnnrs.affine(h.reshape(-1, h.shape[-1]), kernel, bias).reshape(h.shape[:-1] + (kernel.shape[1],))
    return _activate(output_layer.activation, z)


#: The ``maximum_iterations`` a decode that feeds back its own outputs
#: (embedding helpers, beam search) runs with when given None.
DEFAULT_MAXIMUM_ITERATIONS = 1000


def warn_capped(unfinished: int, maximum_iterations: int, stacklevel: int = 5) -> None:
    """The ``RuntimeWarning`` of a decode that ran with ``maximum_iterations=None``
    and stopped at :data:`DEFAULT_MAXIMUM_ITERATIONS` with ``unfinished`` rows
    (> 0) that had not emitted the end token. ``stacklevel`` 5 points at the
    caller of ``dynamic_decode`` from a decoder's ``_decode`` → a method → here."""
    warnings.warn(
        f"maximum_iterations: None decodes at most {maximum_iterations} steps (DEFAULT_MAXIMUM_ITERATIONS); "
        f"{unfinished} row(s) had not emitted end_token by then and were cut there. Pass maximum_iterations "
        "to choose the limit.",
        RuntimeWarning,
        stacklevel=stacklevel,
    )
