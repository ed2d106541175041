"""The Rust core's Python edge (private; use the ``rnnrs`` package).

Every cell crosses it the same way: a :class:`Cell` is built once from a
kind, a dtype, a dict of options and a dict of weights keyed by their
TensorFlow 1.x names; :func:`forward` / :func:`backward` run whole
sequences, :meth:`Cell.step` one step. States are lists of their parts
(``[h]``, or ``[c, h]`` for an LSTM).
"""

from typing import Any, Optional, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_THREADS",
    "STEP_DETACH_WORK",
    "AttentionTape",
    "Cell",
    "Stepper",
    "ForwardCache",
    "_num_threads_env",
    "_set_parallel_work",
    "affine",
    "attention_backward",
    "attention_forward",
    "backward",
    "cell_kinds",
    "crc32c",
    "decode_beam",
    "decode_beam_attention",
    "decode_greedy",
    "decode_greedy_attention",
    "forward",
    "get_num_threads",
    "scatter_add_rows",
    "set_num_threads",
    "softmax_cross_entropy",
]

@final
class Cell:
    """A cell built from named weights, kept ready for calls."""

    def __new__(
        cls, kind: str, dtype: str, options: dict[str, Any], weights: dict[str, npt.NDArray[np.floating]]
    ) -> Cell: ...
    @property
    def kind(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def input_size(self) -> int: ...
    @property
    def state_parts(self) -> list[tuple[str, int]]: ...
    @property
    def output_size(self) -> int: ...
    def step(
        self, inputs: npt.NDArray[np.floating], state: list[npt.NDArray[np.floating]]
    ) -> tuple[npt.NDArray[np.floating], list[npt.NDArray[np.floating]]]: ...

STEP_DETACH_WORK: int
"""Multiply-adds of a :class:`Stepper` step from which it runs with the GIL released."""

@final
class Stepper:
    """Single steps of a stack of cells (bottom first, one dtype), with the
    state and every buffer of a step kept between calls."""

    def __new__(cls, cells: list[Cell], initial_state: list[list[npt.NDArray[np.floating]]]) -> Stepper: ...
    def step(
        self, inputs: npt.NDArray[np.floating], out: Optional[npt.NDArray[np.floating]] = None
    ) -> npt.NDArray[np.floating]:
        """One step on ``inputs`` ``[B, I]`` (an aligned array of the cells'
        dtype; ``TypeError`` otherwise, before anything changes); returns the
        top cell's output ``[B, O]`` (a new array, or ``out`` written)."""
    def state(self) -> list[list[npt.NDArray[np.floating]]]: ...
    def set_state(self, state: list[list[npt.NDArray[np.floating]]]) -> None: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def input_size(self) -> int: ...
    @property
    def output_size(self) -> int: ...
    @property
    def dtype(self) -> str: ...
    @property
    def releases_gil(self) -> bool: ...

@final
class ForwardCache:
    """What a forward pass cached for backpropagation (opaque)."""

@final
class AttentionTape:
    """What :func:`attention_forward` kept for :func:`attention_backward` (opaque)."""

def attention_forward(
    core: Cell,
    x: npt.NDArray[np.floating],
    lengths: Optional[npt.NDArray[np.int64]],
    state_parts: list[npt.NDArray[np.floating]],
    initial_attention: npt.NDArray[np.floating],
    memory: npt.NDArray[np.floating],
    memory_lengths: Optional[npt.NDArray[np.int64]],
    weights: dict[str, npt.NDArray[np.floating]],
    kind: str,
    normalize: bool,
    scale: bool,
    output_attention: bool,
    alignment_history: bool,
) -> tuple[
    npt.NDArray[np.floating],
    list[npt.NDArray[np.floating]],
    npt.NDArray[np.floating],
    npt.NDArray[np.floating],
    Optional[npt.NDArray[np.floating]],
    AttentionTape,
]:
    """Runs TF 1.15's ``AttentionWrapper`` around ``core`` (input size ``I + A``) over
    ``x [B, T, I]`` (batch-major) under ``dynamic_rnn``'s masking.

    ``kind`` is ``'bahdanau'`` or ``'luong'``; ``weights`` holds
    ``memory_layer/kernel [Dm, U]``, for Bahdanau ``query_layer/kernel [Q, U]`` and
    ``attention_v [U]``, ``attention_g`` (0-d; ``normalize`` or ``scale``),
    ``attention_b [U]`` (``normalize``) and optionally ``attention_layer/kernel
    [Q + Dm, A]``. ``memory_lengths`` are in ``[1, Tm]``. Returns ``(outputs [B, T, A or
    Q], final state parts, final attention [B, A], final alignments [B, Tm] (zeros for
    rows of length 0), alignment history [T, B, Tm] or None, tape)``. Errors name the
    public arguments (``inputs``, ``sequence_length``, ``initial_state``,
    ``initial_attention``, ``memory``, ``memory_sequence_length``, the weights by
    name): ``ValueError`` for values and shapes, ``TypeError`` for types;
    ``MemoryError`` and Ctrl-C as for :func:`forward`.
    """

def attention_backward(
    tape: AttentionTape,
    d_outputs: Optional[npt.NDArray[np.floating]],
    d_state_parts: Optional[list[npt.NDArray[np.floating]]],
    d_attention: Optional[npt.NDArray[np.floating]],
    d_alignments: Optional[npt.NDArray[np.floating]],
) -> tuple[
    npt.NDArray[np.floating],
    list[npt.NDArray[np.floating]],
    npt.NDArray[np.floating],
    npt.NDArray[np.floating],
    dict[str, npt.NDArray[np.floating]],
]:
    """Backpropagates through the :func:`attention_forward` call that made ``tape``;
    any gradient may be None (zeros). Returns ``(d_x [B, T, I], d initial state parts,
    d_initial_attention [B, A], d_memory [B, Tm, Dm], d_weights)``; ``d_weights``
    holds the cell's weights' gradients under its own names and the mechanism's
    under theirs.
    """

def forward(
    cell: Cell,
    inputs: npt.NDArray[np.floating],
    initial_state: list[npt.NDArray[np.floating]],
    sequence_length: Optional[npt.NDArray[np.int64]],
    time_major: bool,
    checkpoint_every: Optional[int | str] = None,
) -> tuple[npt.NDArray[np.floating], list[npt.NDArray[np.floating]], ForwardCache]:
    """Runs ``cell`` over ``inputs``.

    With ``checkpoint_every`` (an int >= 1 or ``"auto"``) the cache keeps only the
    state every that many steps (rounded up to whole chunks of the backward pass's
    products), and :func:`backward` recomputes the steps in between; outputs, state
    and gradients are bitwise the same. ``TypeError`` / ``ValueError`` naming
    ``checkpoint_every`` for anything else.

    Raises ``MemoryError`` naming ``inputs`` before allocating anything when the call's
    buffers would not fit in memory (or the allocator refuses them), and the exception
    of a signal handler (``KeyboardInterrupt`` for Ctrl-C) within a fraction of a second
    of the signal.
    """

def backward(
    cache: ForwardCache,
    d_outputs: Optional[npt.NDArray[np.floating]],
    d_state: Optional[list[npt.NDArray[np.floating]]],
) -> tuple[npt.NDArray[np.floating], list[npt.NDArray[np.floating]], dict[str, npt.NDArray[np.floating]]]:
    """Backpropagates through the forward pass that made ``cache``.

    ``MemoryError`` and Ctrl-C as for :func:`forward`.
    """

def cell_kinds() -> list[str]: ...
def decode_greedy(
    cells: list[Cell],
    initial_state: list[list[npt.NDArray[np.floating]]],
    embedding: npt.NDArray[np.floating],
    kernel: Optional[npt.NDArray[np.floating]],
    bias: Optional[npt.NDArray[np.floating]],
    start_tokens: npt.NDArray[np.int64],
    end_token: int,
    maximum_iterations: int,
    impute_finished: bool,
    uniforms: Optional[npt.NDArray[np.float64]],
    temperature: float,
) -> tuple[
    npt.NDArray[np.floating], npt.NDArray[np.int32], npt.NDArray[np.int32], list[list[npt.NDArray[np.floating]]]
]:
    """Greedy (argmax) or sampled (``uniforms`` ``[maximum_iterations, B]``) decoding
    with the stack ``cells`` (bottom first); states are lists (one per layer) of
    lists of parts. Returns ``(rnn_output [B, T, V], sample_id [B, T], lengths [B],
    final_state)``. ``ValueError`` naming the argument on bad input, ``MemoryError``
    and Ctrl-C as for :func:`forward`.
    """

def decode_beam(
    cells: list[Cell],
    initial_state: list[list[npt.NDArray[np.floating]]],
    embedding: npt.NDArray[np.floating],
    kernel: Optional[npt.NDArray[np.floating]],
    bias: Optional[npt.NDArray[np.floating]],
    start_tokens: npt.NDArray[np.int64],
    end_token: int,
    maximum_iterations: int,
    beam_width: int,
    length_penalty_weight: float,
) -> tuple[
    npt.NDArray[np.int32],
    npt.NDArray[np.int32],
    npt.NDArray[np.floating],
    list[list[npt.NDArray[np.floating]]],
    npt.NDArray[np.floating],
    npt.NDArray[np.bool_],
    npt.NDArray[np.int32],
]:
    """Beam search (TensorFlow 1.15 semantics) from ``initial_state`` for ``B`` rows
    (tiled to ``B * beam_width`` here, row ``b * beam_width + k``). Returns
    ``(step_ids [B, T, K], parent_ids [B, T, K], scores [B, T, K], final_state
    (B * K rows), log_probs [B, K], finished [B, K], lengths [B, K])``.
    """

def decode_greedy_attention(
    cells: list[Cell],
    initial_state: list[list[npt.NDArray[np.floating]]],
    embedding: npt.NDArray[np.floating],
    kernel: Optional[npt.NDArray[np.floating]],
    bias: Optional[npt.NDArray[np.floating]],
    start_tokens: npt.NDArray[np.int64],
    end_token: int,
    maximum_iterations: int,
    impute_finished: bool,
    uniforms: Optional[npt.NDArray[np.float64]],
    temperature: float,
    initial_attention: npt.NDArray[np.floating],
    initial_alignments: npt.NDArray[np.floating],
    memory: npt.NDArray[np.floating],
    memory_sequence_length: Optional[npt.NDArray[np.int64]],
    weights: dict[str, npt.NDArray[np.floating]],
    kind: str,
    normalize: bool,
    scale: bool,
    output_attention: bool,
) -> tuple[
    npt.NDArray[np.floating],
    npt.NDArray[np.int32],
    npt.NDArray[np.int32],
    list[list[npt.NDArray[np.floating]]],
    npt.NDArray[np.floating],
    npt.NDArray[np.floating],
]:
    """:func:`decode_greedy` with an attention wrapper (TF 1.15's ``AttentionWrapper``
    with one ``kind`` ``"bahdanau"`` or ``"luong"`` mechanism) around ``cells``:
    ``memory`` ``[M, Tm, Dm]`` (``M`` dividing ``B``; row ``b`` attends to memory row
    ``b // (B // M)``), its lengths or None, the initial attention ``[B, A]`` and
    alignments ``[B, Tm]``, the mechanism's and attention layer's weights by their TF
    names. Returns :func:`decode_greedy`'s tuple and the final ``attention`` and
    ``alignments``.
    """

def decode_beam_attention(
    cells: list[Cell],
    initial_state: list[list[npt.NDArray[np.floating]]],
    embedding: npt.NDArray[np.floating],
    kernel: Optional[npt.NDArray[np.floating]],
    bias: Optional[npt.NDArray[np.floating]],
    start_tokens: npt.NDArray[np.int64],
    end_token: int,
    maximum_iterations: int,
    beam_width: int,
    length_penalty_weight: float,
    initial_attention: npt.NDArray[np.floating],
    initial_alignments: npt.NDArray[np.floating],
    memory: npt.NDArray[np.floating],
    memory_sequence_length: Optional[npt.NDArray[np.int64]],
    weights: dict[str, npt.NDArray[np.floating]],
    kind: str,
    normalize: bool,
    scale: bool,
    output_attention: bool,
) -> tuple[
    npt.NDArray[np.int32],
    npt.NDArray[np.int32],
    npt.NDArray[np.floating],
    list[list[npt.NDArray[np.floating]]],
    npt.NDArray[np.floating],
    npt.NDArray[np.bool_],
    npt.NDArray[np.int32],
    npt.NDArray[np.floating],
    npt.NDArray[np.floating],
]:
    """:func:`decode_beam` with an attention wrapper (see :func:`decode_greedy_attention`):
    the initial state, attention and alignments for ``B`` rows (tiled to ``B * K``);
    hypothesis row ``r`` attends to memory row ``r // (B * K // M)`` (no copy of the
    memory per beam). Returns :func:`decode_beam`'s tuple and the final ``attention``
    and ``alignments`` (``B * K`` rows).
    """

def softmax_cross_entropy(
    logits: npt.NDArray[np.floating],
    ids: npt.NDArray[np.int64],
    scale: Optional[npt.NDArray[np.float64]] = None,
    name: str = "labels",
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.floating]]:
    """Per row of the float32/float64 ``logits [N, C]`` and its int64 class id
    ``ids [N]``: ``(loss [N] float64, grad [N, C])`` with ``loss = -log
    softmax(z)[id]`` and ``grad = scale * (softmax(z) - onehot(id))`` in the
    logits' dtype (``scale`` float64 ``[N]``, 1 when None). One fused pass
    per row, rows on the thread pool (bitwise identical for any thread
    count), the GIL released. ``ValueError`` naming ``name`` for ids out of
    range, ``TypeError`` naming ``logits`` for other dtypes.
    """

MAX_THREADS: int
"""The most threads the pool may have (256)."""

def set_num_threads(n: int) -> None:
    """Sizes the thread pool: ``n`` threads, an integer in ``[1, MAX_THREADS]`` (256).

    Other integers (of any size) raise ``ValueError`` naming ``num_threads`` before any
    thread starts; when the OS refuses the threads, ``RuntimeError`` naming
    ``num_threads``, and the old pool stays.
    """

def get_num_threads() -> int: ...
def crc32c(data: bytes) -> int:
    """The CRC-32C (Castagnoli) of ``data``, unmasked, in ``[0, 2**32)`` (the
    masked form LevelDB and TensorFlow store is computed from it in Python).
    Hardware CRC instructions are used where the CPU has them."""

def _num_threads_env() -> tuple[Optional[str], bool, int]: ...
def _set_parallel_work(work: Optional[int] = None) -> None: ...
def affine(
    x: npt.NDArray[np.floating],
    kernel: npt.NDArray[np.floating],
    bias: Optional[npt.NDArray[np.floating]] = None,
) -> npt.NDArray[np.floating]:
    """``x @ kernel (+ bias)`` as a new ``[N, U]`` array: ``x`` ``[N, I]`` and
    ``kernel`` ``[I, U]`` float32 or float64 arrays of one dtype with any
    strides (a transposed view is read in place), ``bias`` ``[U]`` of that
    dtype or None. The extension's GEMM on the thread pool with the GIL
    released; the result does not depend on the thread count. ``TypeError``
    / ``ValueError`` name the argument (``x``, ``kernel``, ``bias``).
    """

def scatter_add_rows(ids: npt.NDArray[np.int64], src: npt.NDArray[np.floating], rows: int) -> npt.NDArray[np.floating]:
    """A zeroed ``[rows, D]`` array with ``out[ids[i]] += src[i]`` for every
    ``i`` in order (``numpy.add.at``'s order, so the same bits): the gradient
    of a row lookup. ``ids`` int64 ``[N]`` in ``[0, rows)`` (``ValueError``
    naming ``ids`` otherwise), ``src`` float32 or float64 ``[N, D]``.
    """
