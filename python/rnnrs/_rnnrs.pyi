"""The Rust core's Python edge (private; use the ``rnnrs`` package)."""

from typing import Optional, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "ForwardCache",
    "_set_parallel_work",
    "basic_rnn_backward",
    "basic_rnn_forward",
    "get_num_threads",
    "set_num_threads",
]

@final
class ForwardCache:
    """What a forward pass cached for backpropagation (opaque)."""

def basic_rnn_forward(
    inputs: npt.NDArray[np.floating],
    initial_state: npt.NDArray[np.floating],
    kernel: npt.NDArray[np.floating],
    bias: npt.NDArray[np.floating],
    sequence_length: Optional[npt.NDArray[np.int64]],
    activation: str,
    time_major: bool,
) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.floating], ForwardCache]: ...
def basic_rnn_backward(
    cache: ForwardCache,
    kernel: npt.NDArray[np.floating],
    d_outputs: Optional[npt.NDArray[np.floating]],
    d_state: Optional[npt.NDArray[np.floating]],
) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.floating], npt.NDArray[np.floating], npt.NDArray[np.floating]]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def _set_parallel_work(work: Optional[int] = None) -> None: ...

# -- LSTM (BasicLSTMCell, LSTMCell) -------------------------------------------
__all__ += ["lstm_backward", "lstm_forward"]

def lstm_forward(
    inputs: npt.NDArray[np.floating],
    initial_c: npt.NDArray[np.floating],
    initial_h: npt.NDArray[np.floating],
    kernel: npt.NDArray[np.floating],
    bias: npt.NDArray[np.floating],
    w_i_diag: Optional[npt.NDArray[np.floating]],
    w_f_diag: Optional[npt.NDArray[np.floating]],
    w_o_diag: Optional[npt.NDArray[np.floating]],
    projection: Optional[npt.NDArray[np.floating]],
    sequence_length: Optional[npt.NDArray[np.int64]],
    forget_bias: float,
    cell_clip: Optional[float],
    proj_clip: Optional[float],
    activation: str,
    time_major: bool,
) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.floating], npt.NDArray[np.floating], ForwardCache]: ...
def lstm_backward(
    cache: ForwardCache,
    kernel: npt.NDArray[np.floating],
    bias: npt.NDArray[np.floating],
    w_i_diag: Optional[npt.NDArray[np.floating]],
    w_f_diag: Optional[npt.NDArray[np.floating]],
    w_o_diag: Optional[npt.NDArray[np.floating]],
    projection: Optional[npt.NDArray[np.floating]],
    d_outputs: Optional[npt.NDArray[np.floating]],
    d_c: Optional[npt.NDArray[np.floating]],
    d_h: Optional[npt.NDArray[np.floating]],
) -> tuple[
    npt.NDArray[np.floating],
    npt.NDArray[np.floating],
    npt.NDArray[np.floating],
    npt.NDArray[np.floating],
    npt.NDArray[np.floating],
    Optional[npt.NDArray[np.floating]],
    Optional[npt.NDArray[np.floating]],
    Optional[npt.NDArray[np.floating]],
    Optional[npt.NDArray[np.floating]],
]: ...
def gru_forward(
    inputs: npt.NDArray[np.floating],
    initial_state: npt.NDArray[np.floating],
    weights: dict[str, npt.NDArray[np.floating]],
    sequence_length: Optional[npt.NDArray[np.int64]],
    activation: str,
    reset_after: bool,
    time_major: bool,
) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.floating], ForwardCache]: ...
def gru_backward(
    cache: ForwardCache,
    weights: dict[str, npt.NDArray[np.floating]],
    d_outputs: Optional[npt.NDArray[np.floating]],
    d_state: Optional[npt.NDArray[np.floating]],
) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.floating], dict[str, npt.NDArray[np.floating]]]: ...

__all__ += ["gru_backward", "gru_forward"]
