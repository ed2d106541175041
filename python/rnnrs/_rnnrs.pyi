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
    "Cell",
    "ForwardCache",
    "_set_parallel_work",
    "backward",
    "cell_kinds",
    "forward",
    "get_num_threads",
    "set_num_threads",
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

@final
class ForwardCache:
    """What a forward pass cached for backpropagation (opaque)."""

def forward(
    cell: Cell,
    inputs: npt.NDArray[np.floating],
    initial_state: list[npt.NDArray[np.floating]],
    sequence_length: Optional[npt.NDArray[np.int64]],
    time_major: bool,
) -> tuple[npt.NDArray[np.floating], list[npt.NDArray[np.floating]], ForwardCache]: ...
def backward(
    cache: ForwardCache,
    d_outputs: Optional[npt.NDArray[np.floating]],
    d_state: Optional[list[npt.NDArray[np.floating]]],
) -> tuple[npt.NDArray[np.floating], list[npt.NDArray[np.floating]], dict[str, npt.NDArray[np.floating]]]: ...
def cell_kinds() -> list[str]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def _set_parallel_work(work: Optional[int] = None) -> None: ...
