"""PyTorch and Keras 3 weight layouts (see :mod:`rnnrs.convert` for the rules)."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .._validate import numeric_array
from ..cells import BasicRNNCell, RNNCell
from ..gru import GRUCell
from ..lstm import BasicLSTMCell, LSTMCell
from ..wrappers import DropoutWrapper, MultiRNNCell

__all__ = ["from_keras", "from_torch", "to_keras", "to_torch"]

# TF 1.x LSTM blocks are i, j, f, o; PyTorch's and Keras's are i, f, g(=j), o.
# The permutation is its own inverse.
_LSTM_ORDER = (0, 2, 1, 3)


def _blocks(a: np.ndarray, order: Sequence[int], width: int) -> np.ndarray:
    """Reorders the width-``width`` column blocks of ``a``."""
    return np.concatenate([a[..., k * width : (k + 1) * width] for k in order], axis=-1)


def _unwrap(cell: Any) -> RNNCell:
    """The cell whose weights convert: dropout is a training-time setting, not
    a weight, so a ``DropoutWrapper`` is looked through."""
    if not isinstance(cell, RNNCell):
        raise TypeError(f"cell: expected an rnnrs cell, got {type(cell).__name__}")
    inner: RNNCell = cell
    while isinstance(inner, DropoutWrapper):
        inner = inner.cell
    return inner


def _refuse(target: str, what: str) -> ValueError:
    return ValueError(f"cell: expected a cell {target} can represent, got {what}")


def _check_lstm(cell: RNNCell, target: str, projection_ok: bool) -> None:
    if isinstance(cell, LSTMCell):
        if cell.use_peepholes:
            raise _refuse(target, "an LSTMCell with peepholes")
        if cell.cell_clip is not None:
            raise _refuse(target, f"an LSTMCell with cell_clip={cell.cell_clip}")
        if cell.num_proj is not None and cell.proj_clip is not None:
            raise _refuse(target, f"an LSTMCell with proj_clip={cell.proj_clip}")
        if cell.num_proj is not None and not projection_ok:
            raise _refuse(target, f"an LSTMCell with num_proj={cell.num_proj}")


def _check_activation(cell: RNNCell, target: str, allowed: Sequence[str]) -> None:
    act = getattr(cell, "activation", "tanh")
    if act not in allowed:
        raise _refuse(target, f"activation {act!r} (it supports {', '.join(allowed)})")


def _layer_to_torch(cell: RNNCell, suffix: str) -> dict[str, np.ndarray]:
    w = cell.get_weights()
    size = cell.input_size
    assert size is not None
    if isinstance(cell, BasicRNNCell):
        _check_activation(cell, "PyTorch nn.RNN", ("tanh", "relu"))
        k, b = w["kernel"], w["bias"]
        return {
            f"weight_ih{suffix}": k[:size].T.copy(),
            f"weight_hh{suffix}": k[size:].T.copy(),
            f"bias_ih{suffix}": b.copy(),
            f"bias_hh{suffix}": np.zeros_like(b),
        }
    if isinstance(cell, (BasicLSTMCell, LSTMCell)):
        _check_lstm(cell, "PyTorch nn.LSTM", projection_ok=True)
        _check_activation(cell, "PyTorch nn.LSTM", ("tanh",))
        h = cell.num_units
        k = _blocks(w["kernel"], _LSTM_ORDER, h)
        b = _blocks(w["bias"], _LSTM_ORDER, h).copy()
        b[h : 2 * h] += b.dtype.type(cell.forget_bias)
        out = {
            f"weight_ih{suffix}": k[:size].T.copy(),
            f"weight_hh{suffix}": k[size:].T.copy(),
            f"bias_ih{suffix}": b,
            f"bias_hh{suffix}": np.zeros_like(b),
        }
        if "projection/kernel" in w:
            out[f"weight_hr{suffix}"] = w["projection/kernel"].T.copy()
        return out
    if isinstance(cell, GRUCell):
        if not cell.reset_after:
            raise _refuse("PyTorch nn.GRU", "a TF1-form GRUCell (PyTorch only has reset_after=True)")
        _check_activation(cell, "PyTorch nn.GRU", ("tanh",))
        gk, gb = w["gates/kernel"], w["gates/bias"]  # columns [r | u]; u is PyTorch's z
        return {
            f"weight_ih{suffix}": np.concatenate([gk[:size], w["candidate/input_kernel"]], axis=1).T.copy(),
            f"weight_hh{suffix}": np.concatenate([gk[size:], w["candidate/hidden_kernel"]], axis=1).T.copy(),
            f"bias_ih{suffix}": np.concatenate([gb, w["candidate/input_bias"]]),
            f"bias_hh{suffix}": np.concatenate([np.zeros_like(gb), w["candidate/hidden_bias"]]),
        }
    raise _refuse("PyTorch", f"a {type(cell).__name__}")


def to_torch(cell: RNNCell) -> dict[str, np.ndarray]:
    """The cell's weights as a PyTorch ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``
    state dict (``weight_ih_l0``, ...; a ``MultiRNNCell`` gives one layer per
    cell, ``_l0``, ``_l1``, ...). Load it with
    ``module.load_state_dict({k: torch.from_numpy(v) for k, v in d.items()})``
    into a module built with ``batch_first`` as you like, the same hidden
    size, ``proj_size`` for a projected LSTMCell, and ``nonlinearity`` equal to
    a BasicRNNCell's activation."""
    cell = _unwrap(cell)
    cell._require_built("to_torch")
    layers = cell.cells if isinstance(cell, MultiRNNCell) else [cell]
    out: dict[str, np.ndarray] = {}
    for i, layer in enumerate(layers):
        out.update(_layer_to_torch(_unwrap(layer), f"_l{i}"))
    return out


def _incoming(name: str, value: Any, dtype: np.dtype[Any], shape: tuple[Optional[int], ...], what: str) -> np.ndarray:
    """An incoming weight (an array, a nested list or a torch tensor) as an
    array of ``dtype`` of ``shape`` (None: any size on that axis), or a
    ``TypeError`` (not numbers) / ``ValueError`` (shape) naming it."""
    arr = numeric_array(name, value)
    if arr.ndim != len(shape) or any(want is not None and got != want for got, want in zip(arr.shape, shape)):
        expected = (
            "(" + ", ".join("any" if n is None else str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"
        )
        raise ValueError(f"{name}: expected {what} of shape {expected}, got {arr.shape}")
    return arr.astype(dtype)


def _gate_width(cell: RNNCell) -> int:
    """The width of a cell's stacked gate blocks (``G``)."""
    blocks = 4 if isinstance(cell, (BasicLSTMCell, LSTMCell)) else 3 if isinstance(cell, GRUCell) else 1
    return blocks * cell.num_units


def _take(
    state_dict: Mapping[str, Any], name: str, dtype: np.dtype[Any], shape: tuple[Optional[int], ...], what: str
) -> np.ndarray:
    if name not in state_dict:
        raise ValueError(f"state_dict: expected a {name!r} entry, got keys {sorted(state_dict)}")
    return _incoming(f"state_dict[{name!r}]", state_dict[name], dtype, shape, what)


def _layer_from_torch(cell: RNNCell, sd: Mapping[str, Any], suffix: str) -> None:
    if not isinstance(cell, (BasicRNNCell, BasicLSTMCell, LSTMCell, GRUCell)):
        raise _refuse("PyTorch", f"a {type(cell).__name__}")
    if isinstance(cell, GRUCell) and not cell.reset_after:
        raise _refuse("PyTorch nn.GRU", "a TF1-form GRUCell (PyTorch only has reset_after=True)")
    has_proj = f"weight_hr{suffix}" in sd
    if isinstance(cell, (BasicLSTMCell, LSTMCell)):
        _check_lstm(cell, "PyTorch nn.LSTM", projection_ok=True)
        if has_proj != (isinstance(cell, LSTMCell) and cell.num_proj is not None):
            raise ValueError(
                f"state_dict: expected {'a' if not has_proj else 'no'} weight_hr{suffix} entry for this cell "
                f"(num_proj={getattr(cell, 'num_proj', None)}), got {'one' if has_proj else 'none'}"
            )
    dt = cell.dtype
    h, g, p = cell.num_units, _gate_width(cell), cell.output_size
    w_ih = _take(sd, f"weight_ih{suffix}", dt, (g, cell.input_size), "the input weights [gates, input_size]")
    w_hh = _take(sd, f"weight_hh{suffix}", dt, (g, p), "the recurrent weights [gates, hidden]")
    b_ih = _take(sd, f"bias_ih{suffix}", dt, (g,), "the input bias")
    b_hh = _take(sd, f"bias_hh{suffix}", dt, (g,), "the recurrent bias")
    b = b_ih + b_hh
    if isinstance(cell, BasicRNNCell):
        cell.set_weights({"kernel": np.vstack([w_ih.T, w_hh.T]), "bias": b})
    elif isinstance(cell, (BasicLSTMCell, LSTMCell)):
        bias = _blocks(b, _LSTM_ORDER, h)
        bias[2 * h : 3 * h] -= dt.type(cell.forget_bias)
        weights = {"kernel": _blocks(np.vstack([w_ih.T, w_hh.T]), _LSTM_ORDER, h), "bias": bias}
        if has_proj:
            weights["projection/kernel"] = _take(
                sd, f"weight_hr{suffix}", dt, (p, h), "the projection [proj, hidden]"
            ).T
        cell.set_weights(weights)
    elif isinstance(cell, GRUCell):
        cell.set_weights(
            {
                "gates/kernel": np.vstack([w_ih[: 2 * h].T, w_hh[: 2 * h].T]),
                "gates/bias": b_ih[: 2 * h] + b_hh[: 2 * h],
                "candidate/input_kernel": w_ih[2 * h :].T,
                "candidate/hidden_kernel": w_hh[2 * h :].T,
                "candidate/input_bias": b_ih[2 * h :],
                "candidate/hidden_bias": b_hh[2 * h :],
            }
        )


def from_torch(cell: RNNCell, state_dict: Mapping[str, Any]) -> None:
    """Sets the cell's weights from a PyTorch ``nn.RNN`` / ``nn.LSTM`` /
    ``nn.GRU`` state dict (NumPy arrays or tensors; one layer per cell of a
    ``MultiRNNCell``). The two PyTorch biases are summed; an LSTM's
    ``forget_bias`` is taken back out of the forget gate's bias. Every
    array's full shape is checked against the cell's units (and its input
    size once built) before anything is set; complex or string arrays raise
    ``TypeError``."""
    cell = _unwrap(cell)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict: expected a mapping of name to array, got {type(state_dict).__name__}")
    layers = cell.cells if isinstance(cell, MultiRNNCell) else [cell]
    extra = [k for k in state_dict if not any(k.endswith(f"_l{i}") for i in range(len(layers)))]
    if extra:
        raise ValueError(f"state_dict: expected layers _l0.._l{len(layers) - 1} only, got {sorted(extra)}")
    for i, layer in enumerate(layers):
        _layer_from_torch(_unwrap(layer), state_dict, f"_l{i}")


# Keras GRU blocks are z(=u), r, h; rnnrs's gates are r, u.
def _keras_gates(a: np.ndarray, h: int) -> np.ndarray:
    """rnnrs ``[r | u]`` columns → Keras ``[z | r]`` (and back: the swap is its own inverse)."""
    return np.concatenate([a[..., h : 2 * h], a[..., :h]], axis=-1)


def to_keras(cell: RNNCell) -> list[np.ndarray]:
    """The cell's weights as a Keras 3 ``SimpleRNN`` / ``LSTM`` / ``GRU``
    ``get_weights()`` list ``[kernel, recurrent_kernel, bias]`` (a GRU's
    bias is ``[2, 3H]`` when ``reset_after``). Configure the Keras layer with
    the same ``activation`` (and ``reset_after`` for a GRU)."""
    cell = _unwrap(cell)
    if isinstance(cell, MultiRNNCell):
        raise _refuse("one Keras layer", "a MultiRNNCell (convert each of its cells)")
    cell._require_built("to_keras")
    w = cell.get_weights()
    size = cell.input_size
    assert size is not None
    h = cell.num_units
    if isinstance(cell, BasicRNNCell):
        return [w["kernel"][:size].copy(), w["kernel"][size:].copy(), w["bias"].copy()]
    if isinstance(cell, (BasicLSTMCell, LSTMCell)):
        _check_lstm(cell, "Keras LSTM", projection_ok=False)
        k = _blocks(w["kernel"], _LSTM_ORDER, h)
        b = _blocks(w["bias"], _LSTM_ORDER, h).copy()
        b[h : 2 * h] += b.dtype.type(cell.forget_bias)
        return [k[:size].copy(), k[size:].copy(), b]
    if isinstance(cell, GRUCell):
        gk, gb = _keras_gates(w["gates/kernel"], h), _keras_gates(w["gates/bias"], h)
        if cell.reset_after:
            kernel = np.concatenate([gk[:size], w["candidate/input_kernel"]], axis=1)
            recurrent = np.concatenate([gk[size:], w["candidate/hidden_kernel"]], axis=1)
            bias = np.stack(
                [
                    np.concatenate([gb, w["candidate/input_bias"]]),
                    np.concatenate([np.zeros_like(gb), w["candidate/hidden_bias"]]),
                ]
            )
        else:
            ck = w["candidate/kernel"]
            kernel = np.concatenate([gk[:size], ck[:size]], axis=1)
            recurrent = np.concatenate([gk[size:], ck[size:]], axis=1)
            bias = np.concatenate([gb, w["candidate/bias"]])
        return [kernel, recurrent, bias]
    raise _refuse("Keras", f"a {type(cell).__name__}")


def from_keras(cell: RNNCell, weights: Sequence[Any]) -> None:
    """Sets the cell's weights from a Keras 3 ``SimpleRNN`` / ``LSTM`` /
    ``GRU`` ``get_weights()`` list. A reset-after GRU's two bias rows are
    split as rnnrs's ``candidate/input_bias`` / ``candidate/hidden_bias`` and
    summed for the gates; an LSTM's ``forget_bias`` is taken back out. Every
    array's full shape is checked against the cell's units (and its input
    size once built) before anything is set; complex or string arrays raise
    ``TypeError``."""
    cell = _unwrap(cell)
    if isinstance(cell, MultiRNNCell):
        raise _refuse("one Keras layer", "a MultiRNNCell (convert each of its cells)")
    if isinstance(weights, (np.ndarray, Mapping)) or not isinstance(weights, Sequence) or len(weights) != 3:
        raise ValueError(
            "weights: expected a list [kernel, recurrent_kernel, bias], got "
            + (f"{len(weights)} arrays" if isinstance(weights, Sequence) else type(weights).__name__)
        )
    if not isinstance(cell, (BasicRNNCell, BasicLSTMCell, LSTMCell, GRUCell)):
        raise _refuse("Keras", f"a {type(cell).__name__}")
    dt = cell.dtype
    h, g = cell.num_units, _gate_width(cell)
    if isinstance(cell, (BasicLSTMCell, LSTMCell)):
        _check_lstm(cell, "Keras LSTM", projection_ok=False)
    kernel = _incoming("weights[0]", weights[0], dt, (cell.input_size, g), "the kernel [input_size, gates]")
    recurrent = _incoming("weights[1]", weights[1], dt, (h, g), "the recurrent kernel [units, gates]")
    reset_after = isinstance(cell, GRUCell) and cell.reset_after
    bias = _incoming(
        "weights[2]",
        weights[2],
        dt,
        (2, g) if reset_after else (g,),
        "a reset_after GRU bias" if reset_after else "the bias",
    )
    if isinstance(cell, BasicRNNCell):
        cell.set_weights({"kernel": np.vstack([kernel, recurrent]), "bias": bias})
    elif isinstance(cell, (BasicLSTMCell, LSTMCell)):
        b = _blocks(bias, _LSTM_ORDER, h)
        b[2 * h : 3 * h] -= dt.type(cell.forget_bias)
        cell.set_weights({"kernel": _blocks(np.vstack([kernel, recurrent]), _LSTM_ORDER, h), "bias": b})
    elif isinstance(cell, GRUCell):
        gates = _keras_gates(np.vstack([kernel[:, : 2 * h], recurrent[:, : 2 * h]]), h)
        if cell.reset_after:
            cell.set_weights(
                {
                    "gates/kernel": gates,
                    "gates/bias": _keras_gates(bias[0, : 2 * h] + bias[1, : 2 * h], h),
                    "candidate/input_kernel": kernel[:, 2 * h :],
                    "candidate/hidden_kernel": recurrent[:, 2 * h :],
                    "candidate/input_bias": bias[0, 2 * h :],
                    "candidate/hidden_bias": bias[1, 2 * h :],
                }
            )
        else:
            cell.set_weights(
                {
                    "gates/kernel": gates,
                    "gates/bias": _keras_gates(bias[: 2 * h], h),
                    "candidate/kernel": np.vstack([kernel[:, 2 * h :], recurrent[:, 2 * h :]]),
                    "candidate/bias": bias[2 * h :],
                }
            )
