"""PyTorch and Keras 3 weight layouts (see :mod:`rnnrs.convert` for the rules)."""

from __future__ import annotations

import copy
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .._validate import numeric_array
from ..cells import BasicRNNCell, RNNCell
from ..gru import GRUCell
from ..lstm import BasicLSTMCell, LSTMCell
from ..wrappers import DropoutWrapper, MultiRNNCell, _cell_objects

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


Target = Any  # a cell, a (cell_fw, cell_bw) pair, or a (cells_fw, cells_bw) pair of lists


def _direction_name(target: Any, side: str, i: int) -> str:
    """How messages name layer ``i``'s ``side`` ("fw"/"bw") cell of a
    bidirectional target: ``cell_fw`` of a pair, ``cells_fw[i]`` of lists."""
    return f"cells_{side}[{i}]" if isinstance(target[0], (list, tuple)) else f"cell_{side}"


def _pairs(target: Any) -> Optional[list[tuple[RNNCell, RNNCell]]]:
    """The layers of a bidirectional target as ``[(fw, bw), ...]``, or None
    when ``target`` is a single cell. A pair ``(cell_fw, cell_bw)`` is one
    layer; a pair of equally long lists ``(cells_fw, cells_bw)`` is a stack
    (:func:`rnnrs.stack_bidirectional_dynamic_rnn`'s arguments)."""
    if isinstance(target, RNNCell):
        return None
    if not isinstance(target, (tuple, list)) or len(target) != 2:
        raise TypeError(
            "cell: expected an rnnrs cell, a (cell_fw, cell_bw) pair or a (cells_fw, cells_bw) pair of lists, got "
            + (
                f"a {type(target).__name__} of {len(target)}"
                if isinstance(target, (tuple, list))
                else type(target).__name__
            )
        )
    fw, bw = target
    if isinstance(fw, RNNCell) and isinstance(bw, RNNCell):
        fws, bws = [fw], [bw]
    elif isinstance(fw, (list, tuple)) and isinstance(bw, (list, tuple)):
        fws, bws = list(fw), list(bw)
        if not fws or len(fws) != len(bws):
            raise ValueError(
                f"cell: expected two equally long, non-empty lists (cells_fw, cells_bw), got {len(fws)} and {len(bws)}"
            )
    else:
        raise TypeError(
            "cell: expected a (cell_fw, cell_bw) pair of cells or a (cells_fw, cells_bw) pair of lists, got "
            f"({type(fw).__name__}, {type(bw).__name__})"
        )
    out = []
    seen: dict[int, str] = {}
    for i, (f, b) in enumerate(zip(fws, bws)):
        pair = []
        for side, c in (("fw", f), ("bw", b)):
            name = _direction_name(target, side, i)
            if not isinstance(c, RNNCell):
                raise TypeError(f"{name}: expected an rnnrs cell, got {type(c).__name__}")
            for part in _cell_objects(c):  # the cell and every cell inside its wrappers
                first = seen.setdefault(id(part), name)
                if first != name:
                    raise ValueError(
                        f"cell: expected a distinct cell object for each direction and layer, got the same "
                        f"{type(part).__name__} object as {first} and {name} (the two would share one set of "
                        "weights: both directions' or both layers' weights would go to, or come from, one cell)"
                    )
            inner = _unwrap(c)
            if isinstance(inner, MultiRNNCell):
                raise _refuse(
                    "one PyTorch bidirectional layer",
                    f"a MultiRNNCell as {name} (stack layers as (cells_fw, cells_bw) lists instead)",
                )
            pair.append(inner)
        out.append((pair[0], pair[1]))
    return out


def _check_twins(fw: RNNCell, bw: RNNCell, i: int) -> None:
    """PyTorch's two directions share one class, size and configuration."""

    def config(c: RNNCell) -> tuple[Any, ...]:
        return (
            type(c).__name__,
            c.num_units,
            c.output_size,
            getattr(c, "activation", "tanh"),
            getattr(c, "reset_after", None),
        )

    if config(fw) != config(bw):
        raise ValueError(
            f"cells_bw[{i}]: expected the forward cell's twin (PyTorch's directions share class, hidden size, "
            f"projection and activation) {config(fw)}, got {config(bw)}"
        )


def to_torch(cell: Target) -> dict[str, np.ndarray]:
    """The cell's weights as a PyTorch ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``
    state dict (``weight_ih_l0``, ...; a ``MultiRNNCell`` gives one layer per
    cell, ``_l0``, ``_l1``, ...). Load it with
    ``module.load_state_dict({k: torch.from_numpy(v) for k, v in d.items()})``
    into a module built with ``batch_first`` as you like, the same hidden
    size, ``proj_size`` for a projected LSTMCell, and ``nonlinearity`` equal to
    a BasicRNNCell's activation.

    Bidirectional modules (``bidirectional=True``): pass ``(cell_fw,
    cell_bw)`` for one layer, or ``(cells_fw, cells_bw)`` (two lists, one
    cell per layer, as given to :func:`rnnrs.stack_bidirectional_dynamic_rnn`)
    for ``num_layers`` layers; the backward cells give the ``_reverse``
    entries (``weight_ih_l0_reverse``, ...). Both directions of a layer must
    be the same kind of cell with the same sizes and activation, and layer
    ``i > 0`` must read the two directions of layer ``i - 1`` (input size
    ``out_fw + out_bw``), as in PyTorch. Every direction and layer must be
    a distinct cell object (``to_torch((c, c))`` raises ``ValueError``
    naming ``cell``), and built (``ValueError`` naming ``cell``, or
    ``cell_fw`` / ``cells_fw[i]`` ..., otherwise)."""
    pairs = _pairs(cell)
    out: dict[str, np.ndarray] = {}
    if pairs is None:
        cell = _unwrap(cell)
        cell._require_built("cell")
        layers = cell.cells if isinstance(cell, MultiRNNCell) else [cell]
        for i, layer in enumerate(layers):
            out.update(_layer_to_torch(_unwrap(layer), f"_l{i}"))
        return out
    for i, (fw, bw) in enumerate(pairs):
        _check_twins(fw, bw, i)
        fw._require_built(_direction_name(cell, "fw", i))
        bw._require_built(_direction_name(cell, "bw", i))
        want = fw.input_size if i == 0 else pairs[i - 1][0].output_size + pairs[i - 1][1].output_size
        for side, c in (("fw", fw), ("bw", bw)):
            if c.input_size != want:
                raise ValueError(
                    f"cells_{side}[{i}]: expected a cell built for input size {want}"
                    + (" (layer 0's forward cell's)" if i == 0 else f" (layer {i - 1}'s two directions)")
                    + f", got {c.input_size}"
                )
        out.update(_layer_to_torch(fw, f"_l{i}"))
        out.update(_layer_to_torch(bw, f"_l{i}_reverse"))
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


def _gate_count(cell: RNNCell) -> int:
    return 4 if isinstance(cell, (BasicLSTMCell, LSTMCell)) else 3 if isinstance(cell, GRUCell) else 1


def _gate_width(cell: RNNCell) -> int:
    """The width of a cell's stacked gate blocks (``G``)."""
    return _gate_count(cell) * cell.num_units


_KINDS = {1: "an RNN", 3: "a GRU", 4: "an LSTM"}


def _shape_of(value: Any) -> Optional[tuple[int, ...]]:
    """``value``'s shape, or None when it has none (ragged lists, strings,
    hostile objects): the diagnostics below then leave the plain checks to
    name the problem."""
    try:
        shape = getattr(value, "shape", None)
        if shape is None:
            shape = np.shape(value)
        return tuple(int(n) for n in shape)
    except Exception:  # whatever a hostile object raises: the plain checks report it
        return None


def _gates_text(cell: RNNCell) -> str:
    """``G`` explained: ``4 gates x hidden size 6 = 24`` (``hidden size 6`` for one block)."""
    k, h = _gate_count(cell), cell.num_units
    return f"hidden size {h}" if k == 1 else f"{k} gates x hidden size {h} = {k * h}"


def _check_gates(cell: RNNCell, name: str, value: Any, gate_axis: int, hidden: Optional[int], source: str) -> None:
    """Before the plain shape check: a ``ValueError`` saying what ``value``
    (a recurrent weight whose gate axis is ``gate_axis``, for a layer of
    hidden size ``hidden``) is when its gate count or hidden size is not the
    cell's ("this is an LSTM state dict ...", "hidden size 6, the cell has 7")."""
    shape = _shape_of(value)
    if shape is None or hidden is None or hidden <= 0 or len(shape) != 2 or shape[gate_axis] % hidden:
        return
    k, h, want = shape[gate_axis] // hidden, cell.num_units, _gate_count(cell)
    cls = type(cell).__name__
    if k != want and k in _KINDS:
        raise ValueError(
            f"{name}: this is {_KINDS[k]} {source} ({shape[gate_axis]} = {k} gates x hidden size {hidden}),"
            f" the cell is a {cls}: expected {_gates_text(cell)}, got {shape[gate_axis]}"
        )
    if k == want and hidden != h:
        raise ValueError(
            f"{name}: hidden size {hidden}, the cell has {h} units: expected {_gates_text(cell)}"
            f" on the gate axis, got {shape[gate_axis]} (shape {tuple(shape)})"
        )


def _take(
    state_dict: Mapping[str, Any], name: str, dtype: np.dtype[Any], shape: tuple[Optional[int], ...], what: str
) -> np.ndarray:
    if name not in state_dict:
        raise ValueError(f"state_dict: expected a {name!r} entry, got keys {sorted(state_dict)}")
    return _incoming(f"state_dict[{name!r}]", state_dict[name], dtype, shape, what)


def _copy_of(cell: RNNCell) -> RNNCell:
    """A throw-away copy for a dry run (the core cell is rebuilt on use)."""
    return copy.deepcopy(cell)


def _layer_from_torch(
    cell: RNNCell, sd: Mapping[str, Any], suffix: str, input_size: Optional[int] = None, name: str = "cell"
) -> None:
    """Sets one layer (named ``name`` in errors) from the ``{weight}{suffix}``
    entries; ``input_size`` (the width of the layer below) is checked when
    given, else the cell's once built."""
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
    if input_size is not None and cell.input_size is not None and cell.input_size != input_size:
        raise ValueError(
            f"{name}: expected a cell for input size {input_size} (the width of the layer below), "
            f"got one built for {cell.input_size}"
        )
    size = cell.input_size if input_size is None else input_size
    gates = _gates_text(cell)
    hh_name = f"weight_hh{suffix}"
    if hh_name in sd:
        # The state dict's hidden size: weight_hr's columns with a projection, else weight_hh's.
        hidden_of = _shape_of(sd[f"weight_hr{suffix}"] if has_proj else sd[hh_name])
        if hidden_of:
            _check_gates(cell, f"state_dict[{hh_name!r}]", sd[hh_name], 0, hidden_of[-1], "state dict")
    w_ih = _take(sd, f"weight_ih{suffix}", dt, (g, size), f"the input weights [{gates}, input_size]")
    w_hh = _take(
        sd,
        hh_name,
        dt,
        (g, p),
        f"the recurrent weights [{gates}, {'proj_size' if has_proj else 'hidden size'} {p}]",
    )
    b_ih = _take(sd, f"bias_ih{suffix}", dt, (g,), f"the input bias [{gates}]")
    b_hh = _take(sd, f"bias_hh{suffix}", dt, (g,), f"the recurrent bias [{gates}]")
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


def _check_layer_keys(state_dict: Mapping[str, Any], layers: int, bidirectional: bool) -> None:
    """The state dict holds exactly the target's layers (and directions)."""
    reverse = sorted(k for k in state_dict if str(k).endswith("_reverse"))
    if reverse and not bidirectional:
        raise ValueError(
            f"state_dict: expected a unidirectional state dict, got a bidirectional one ({reverse[0]!r}, ...): "
            "pass a (cell_fw, cell_bw) pair, or (cells_fw, cells_bw) lists for several layers"
        )
    if bidirectional and not reverse:
        raise ValueError(
            "state_dict: expected a bidirectional state dict (with _reverse entries) for a (forward, backward) "
            "target, got a unidirectional one: pass a single cell"
        )
    suffixes = [f"_l{i}" + r for i in range(layers) for r in (("", "_reverse") if bidirectional else ("",))]
    extra = sorted(str(k) for k in state_dict if not any(str(k).endswith(x) for x in suffixes))
    if extra:
        held = sorted({str(k).split("_l")[-1].split("_")[0] for k in state_dict if "_l" in str(k)})
        raise ValueError(
            f"state_dict: expected layers _l0.._l{layers - 1} only (the target has {layers}), got {extra}"
            + (f" (layers {', '.join(held)} in the state dict)" if held else "")
        )


def from_torch(cell: Target, state_dict: Mapping[str, Any]) -> None:
    """Sets the cell's weights from a PyTorch ``nn.RNN`` / ``nn.LSTM`` /
    ``nn.GRU`` state dict (NumPy arrays or tensors; one layer per cell of a
    ``MultiRNNCell``). The two PyTorch biases are summed; an LSTM's
    ``forget_bias`` is taken back out of the forget gate's bias. Every
    array's full shape is checked against the cell before anything is set:
    the gate count (a ``ValueError`` saying "this is an LSTM state dict ...,
    the cell is a GRUCell"), the hidden size (units), the input size (the
    cell's once built, and for layers above the first the width of the layer
    below); complex or string arrays raise ``TypeError``.

    Bidirectional modules: ``cell`` is ``(cell_fw, cell_bw)`` for one layer
    or ``(cells_fw, cells_bw)`` (two lists, one cell per layer) for
    ``num_layers`` layers; the ``_reverse`` entries go to the backward cells.
    Run the result with :func:`rnnrs.bidirectional_dynamic_rnn` (one layer)
    or :func:`rnnrs.stack_bidirectional_dynamic_rnn` (a stack). The same
    cell object twice anywhere in the target (``(c, c)``, ``([a, a], [b,
    d])``, or one cell inside two wrappers) raises ``ValueError`` naming
    ``cell`` before anything changes: the two places would share one set of
    weights. When any layer fails its checks, no cell of the target has
    been changed."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict: expected a mapping of name to array, got {type(state_dict).__name__}")
    pairs = _pairs(cell)
    jobs: list[tuple[RNNCell, str, Optional[int], str]] = []
    if pairs is None:
        cell = _unwrap(cell)
        layers = [_unwrap(c) for c in cell.cells] if isinstance(cell, MultiRNNCell) else [cell]
        _check_layer_keys(state_dict, len(layers), False)
        for i, layer in enumerate(layers):
            name = f"cell.cells[{i}]" if isinstance(cell, MultiRNNCell) else "cell"
            jobs.append((layer, f"_l{i}", None if i == 0 else layers[i - 1].output_size, name))
    else:
        _check_layer_keys(state_dict, len(pairs), True)
        for i, (fw, bw) in enumerate(pairs):
            _check_twins(fw, bw, i)
            if i == 0:  # both directions read the inputs: the forward cell's size, or weight_ih_l0's
                below = fw.input_size or bw.input_size
                ih0 = _shape_of(state_dict["weight_ih_l0"]) if "weight_ih_l0" in state_dict else None
                if below is None and ih0 is not None and len(ih0) == 2:
                    below = ih0[1]
            else:
                below = pairs[i - 1][0].output_size + pairs[i - 1][1].output_size
            jobs += [(fw, f"_l{i}", below, f"cells_fw[{i}]"), (bw, f"_l{i}_reverse", below, f"cells_bw[{i}]")]
    # Dry run on copies first, so that a bad layer leaves every cell unchanged.
    for layer, suffix, below, name in jobs:
        _layer_from_torch(_copy_of(layer), state_dict, suffix, below, name)
    for layer, suffix, below, name in jobs:
        _layer_from_torch(layer, state_dict, suffix, below, name)


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
    cell._require_built("cell")
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
    gates_text = _gates_text(cell)
    rk_shape = _shape_of(weights[1])
    if rk_shape is not None and len(rk_shape) == 2:
        _check_gates(cell, "weights[1]", weights[1], 1, rk_shape[0], "Keras layer's recurrent kernel")
    kernel = _incoming("weights[0]", weights[0], dt, (cell.input_size, g), f"the kernel [input_size, {gates_text}]")
    recurrent = _incoming("weights[1]", weights[1], dt, (h, g), f"the recurrent kernel [units {h}, {gates_text}]")
    reset_after = isinstance(cell, GRUCell) and cell.reset_after
    if isinstance(cell, GRUCell) and _shape_of(weights[2]) == ((g,) if reset_after else (2, g)):
        raise ValueError(
            f"weights[2]: expected the bias of a reset_after={reset_after} GRU, shape "
            f"{(2, g) if reset_after else (g,)}, got {_shape_of(weights[2])} (a reset_after={not reset_after} GRU's"
            f" bias): build the GRUCell with reset_after={not reset_after}"
        )
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
