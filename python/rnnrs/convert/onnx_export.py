"""ONNX export: :func:`to_onnx` (see :mod:`rnnrs.convert` for the rules).

The graph is built with ``onnx.helper``; ``onnx`` is imported only when
:func:`to_onnx` runs (the optional extra ``rnnrs[onnx]``).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ..cells import BasicRNNCell, RNNCell
from ..gru import GRUCell
from ..lstm import BasicLSTMCell, LSTMCell
from ..saving.model_io import checked_path
from ..wrappers import DropoutWrapper, MultiRNNCell, OutputProjectionWrapper, ResidualWrapper

__all__ = ["to_onnx"]

#: The opset written when ``opset`` is None, and the oldest one accepted
#: (``Shape`` with ``start``/``end`` needs 15).
DEFAULT_OPSET = 17
MIN_OPSET = 15

# ONNX activation names (identity is ``Affine`` with alpha 1, beta 0).
_ONNX_ACTIVATION = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid", "identity": "Affine"}

_FLOAT64_NOTE = (
    "float64 graph with ONNX {ops} operators: valid ONNX, but ONNX Runtime has no float64 kernels for them "
    "(RNN: NOT_IMPLEMENTED when loading; LSTM, GRU: 'does not support double' when run); export a float32 "
    "model to run it there."
)


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError('to_onnx needs the onnx package: pip install "rnnrs[onnx]"') from None
    return onnx


class _Graph:
    """Nodes and initializers of one graph (a Scan body is a child sharing the
    name counter, so that every name is unique across scopes)."""

    def __init__(
        self, onnx: Any, dtype: np.dtype[Any], parent: Optional["_Graph"] = None, opset: int = DEFAULT_OPSET
    ) -> None:
        self.onnx = onnx
        self.opset: int = parent.opset if parent is not None else opset
        self.helper = onnx.helper
        self.dtype = dtype
        self.elem = onnx.TensorProto.FLOAT if dtype == np.float32 else onnx.TensorProto.DOUBLE
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._root: _Graph = parent._root if parent is not None else self
        self._counter = 0
        self._consts: dict[Any, str] = {}

    def fresh(self, hint: str) -> str:
        self._root._counter += 1
        return f"{hint}_{self._root._counter}"

    def const(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        """An initializer of the root graph (visible in every Scan body)."""
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype if dtype is not None else self.dtype))
        root = self._root
        key = (arr.dtype.str, arr.shape, arr.tobytes()) if arr.size <= 8 else None
        if key is not None and key in root._consts:
            return root._consts[key]
        name = self.fresh(hint)
        root.initializers.append(self.onnx.numpy_helper.from_array(arr, name))
        if key is not None:
            root._consts[key] = name
        return name

    def ints(self, values: Sequence[int], hint: str = "ints") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint, np.int64)

    def op(
        self, op_type: str, inputs: Sequence[str], outputs: int = 1, name: Optional[str] = None, **attrs: Any
    ) -> Any:
        """Adds a node; returns its output name (a list when ``outputs > 1``)."""
        outs = [name] if name is not None and outputs == 1 else [self.fresh(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, name=self.fresh("n_" + op_type), **attrs))
        return outs[0] if outputs == 1 else outs

    def zero(self) -> str:
        return self.const(np.zeros((), dtype=self.dtype), "zero")

    def reduce(self, op_type: str, x: str, axes: Sequence[int], keepdims: int) -> str:
        """A ``Reduce*`` node over ``axes``: an attribute up to opset 17, an
        input from 18 on (``ReduceSum`` took it as an input from 13)."""
        if self.opset >= 18 or (op_type == "ReduceSum" and self.opset >= 13):
            return str(self.op(op_type, [x, self.ints(axes)], keepdims=keepdims))
        return str(self.op(op_type, [x], keepdims=keepdims, axes=list(axes)))


class _Seq:
    """The time-major inputs and the masks every recurrent layer uses."""

    def __init__(self, g: _Graph, x_tm: str, lens64: str) -> None:
        self.lens64 = lens64
        self.lens32 = g.op("Cast", [lens64], to=g.onnx.TensorProto.INT32)
        shape = g.op("Shape", [x_tm])
        self.batch = g.op("Slice", [shape, g.ints([1]), g.ints([2])])  # int64 [1]
        time = g.op("Squeeze", [g.op("Slice", [shape, g.ints([0]), g.ints([1])]), g.ints([0])])
        steps = g.op("Range", [g.const(0, "i0", np.int64), time, g.const(1, "i1", np.int64)])  # [T]
        valid = g.op("Less", [g.op("Unsqueeze", [steps, g.ints([1])]), g.op("Unsqueeze", [lens64, g.ints([0])])])
        self.mask_tm = g.op("Unsqueeze", [valid, g.ints([2])])  # bool [T, B, 1]
        self.nonempty = g.op("Unsqueeze", [g.op("Greater", [lens64, g.const(0, "i0", np.int64)]), g.ints([1])])


def _refuse(what: str) -> ValueError:
    return ValueError(f"obj: expected something rnnrs can export to ONNX, got {what}")


def _activation_attrs(acts: Sequence[str]) -> dict[str, Any]:
    """``activations`` (and the Affine parameters that make ``identity``).

    The spec's wording lets a runtime consume ``activation_alpha`` / ``beta``
    either one per listed function or only for the functions that take them
    (ONNX Runtime); one entry per function, all alpha 1 and beta 0, reads the
    same both ways (the other functions ignore them)."""
    names = [_ONNX_ACTIVATION[a] for a in acts]
    attrs: dict[str, Any] = {"activations": names}
    if "Affine" in names:
        attrs["activation_alpha"] = [1.0] * len(names)
        attrs["activation_beta"] = [0.0] * len(names)
    return attrs


def _recurrent_op(
    g: _Graph,
    op_type: str,
    seq: _Seq,
    x_tm: str,
    w: np.ndarray,
    r: np.ndarray,
    b: np.ndarray,
    hidden: int,
    **attrs: Any,
) -> tuple[str, list[str]]:
    """One forward ONNX RNN/LSTM/GRU (``layout=0``): outputs ``[T, B, H]``
    zero past each row's length, and the final state leaves ``[B, H]`` (zeros,
    the initial state, for a row of length 0)."""
    n_state = 2 if op_type == "LSTM" else 1
    inputs = [x_tm, g.const(w[None], "W"), g.const(r[None], "R"), g.const(b[None], "B"), seq.lens32]
    if "P" in attrs:
        inputs += ["", "", attrs.pop("P")]  # no initial_h, initial_c
    outs = g.op(op_type, inputs, outputs=1 + n_state, hidden_size=hidden, direction="forward", layout=0, **attrs)
    zero = g.zero()
    y = g.op("Where", [seq.mask_tm, g.op("Squeeze", [outs[0], g.ints([1])]), zero])
    leaves = [g.op("Where", [seq.nonempty, g.op("Squeeze", [s, g.ints([0])]), zero]) for s in outs[1:]]
    if op_type == "LSTM":
        leaves = [leaves[1], leaves[0]]  # ONNX gives Y_h, Y_c; rnnrs's order is c, h
    return y, leaves


def _lstm_needs_scan(cell: Any) -> bool:
    return isinstance(cell, LSTMCell) and (cell.num_proj is not None or cell.cell_clip is not None)


def _emit_lstm(g: _Graph, cell: Any, w: dict[str, np.ndarray], seq: _Seq, x_tm: str) -> tuple[str, list[str]]:
    size, h = cell.input_size, cell.num_units
    kernel, bias = w["kernel"], w["bias"].copy()
    bias[2 * h : 3 * h] += bias.dtype.type(cell.forget_bias)
    if _lstm_needs_scan(cell):
        return _lstm_scan(g, cell, w, bias, seq, x_tm)
    order = (0, 3, 2, 1)  # rnnrs i, j, f, o  ->  ONNX i, o, f, c(=j)

    def blocks(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a[..., k * h : (k + 1) * h] for k in order], axis=-1)

    attrs: dict[str, Any] = _activation_attrs(["sigmoid", cell.activation, cell.activation])
    if isinstance(cell, LSTMCell) and cell.use_peepholes:
        attrs["P"] = g.const(np.concatenate([w["w_i_diag"], w["w_o_diag"], w["w_f_diag"]])[None], "P")
    wb = blocks(bias)
    return _recurrent_op(
        g,
        "LSTM",
        seq,
        x_tm,
        blocks(kernel[:size]).T,
        blocks(kernel[size:]).T,
        np.concatenate([wb, np.zeros_like(wb)]),
        h,
        **attrs,
    )


def _act(g: _Graph, activation: str, x: str) -> str:
    if activation == "identity":
        return x
    return str(g.op(_ONNX_ACTIVATION[activation], [x]))


def _lstm_scan(
    g: _Graph, cell: Any, w: dict[str, np.ndarray], bias: np.ndarray, seq: _Seq, x_tm: str
) -> tuple[str, list[str]]:
    """An LSTMCell with a projection and/or clipping (no ONNX operator has
    them) as a ``Scan`` over time of the cell's equations (see
    :class:`rnnrs.LSTMCell`); a row past its length keeps its state."""
    onnx, helper = g.onnx, g.helper
    size, h, p = cell.input_size, cell.num_units, cell.output_size
    kx, kh, b = g.const(w["kernel"][:size], "Kx"), g.const(w["kernel"][size:], "Kh"), g.const(bias, "b")
    body = _Graph(onnx, g.dtype, parent=g)
    c_prev, h_prev, x_t, m_t = (body.fresh(n) for n in ("c_prev", "h_prev", "x_t", "m_t"))
    z = body.op("Add", [body.op("Add", [body.op("MatMul", [x_t, kx]), body.op("MatMul", [h_prev, kh])]), b])
    i, j, f, o = body.op("Split", [z, g.ints([h, h, h, h])], outputs=4, axis=1)
    if cell.use_peepholes:
        i = body.op("Add", [i, body.op("Mul", [c_prev, g.const(w["w_i_diag"], "w_i")])])
        f = body.op("Add", [f, body.op("Mul", [c_prev, g.const(w["w_f_diag"], "w_f")])])
    c = body.op(
        "Add",
        [
            body.op("Mul", [body.op("Sigmoid", [f]), c_prev]),
            body.op("Mul", [body.op("Sigmoid", [i]), _act(body, cell.activation, j)]),
        ],
    )
    if cell.cell_clip is not None:
        c = body.op("Clip", [c, g.const(-cell.cell_clip, "clip_lo"), g.const(cell.cell_clip, "clip_hi")])
    if cell.use_peepholes:
        o = body.op("Add", [o, body.op("Mul", [c, g.const(w["w_o_diag"], "w_o")])])
    out = body.op("Mul", [body.op("Sigmoid", [o]), _act(body, cell.activation, c)])
    if cell.num_proj is not None:
        out = body.op("MatMul", [out, g.const(w["projection/kernel"], "proj")])
        if cell.proj_clip is not None:
            out = body.op("Clip", [out, g.const(-cell.proj_clip, "clip_lo"), g.const(cell.proj_clip, "clip_hi")])
    c_new = body.op("Where", [m_t, c, c_prev])
    h_new = body.op("Where", [m_t, out, h_prev])
    y_t = body.op("Where", [m_t, out, g.zero()])
    elem = g.elem

    def info(name: str, dims: list[Any], kind: int = elem) -> Any:
        return helper.make_tensor_value_info(name, kind, dims)

    graph = helper.make_graph(
        body.nodes,
        g.fresh("lstm_body"),
        [
            info(c_prev, ["B", h]),
            info(h_prev, ["B", p]),
            info(x_t, ["B", size]),
            info(m_t, ["B", 1], onnx.TensorProto.BOOL),
        ],
        [info(c_new, ["B", h]), info(h_new, ["B", p]), info(y_t, ["B", p])],
    )
    zeros = [
        g.op("ConstantOfShape", [g.op("Concat", [seq.batch, g.ints([width])], axis=0)], value=_zero_tensor(g))
        for width in (h, p)
    ]
    c_fin, h_fin, y = g.op("Scan", [zeros[0], zeros[1], x_tm, seq.mask_tm], outputs=3, body=graph, num_scan_inputs=2)
    return y, [c_fin, h_fin]


def _zero_tensor(g: _Graph) -> Any:
    return g.onnx.numpy_helper.from_array(np.zeros(1, dtype=g.dtype), g.fresh("zero_value"))


def _emit_gru(g: _Graph, cell: GRUCell, w: dict[str, np.ndarray], seq: _Seq, x_tm: str) -> tuple[str, list[str]]:
    size, h = cell.input_size, cell.num_units
    gk, gb = w["gates/kernel"], w["gates/bias"]  # columns [r | u]; u is ONNX's z

    def zr(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a[..., h : 2 * h], a[..., :h]], axis=-1)

    zeros = np.zeros(2 * h, dtype=gb.dtype)
    if cell.reset_after:
        w_all = np.concatenate([zr(gk[:size]), w["candidate/input_kernel"]], axis=1)
        r_all = np.concatenate([zr(gk[size:]), w["candidate/hidden_kernel"]], axis=1)
        b_all = np.concatenate([zr(gb), w["candidate/input_bias"], zeros, w["candidate/hidden_bias"]])
    else:
        ck = w["candidate/kernel"]
        w_all = np.concatenate([zr(gk[:size]), ck[:size]], axis=1)
        r_all = np.concatenate([zr(gk[size:]), ck[size:]], axis=1)
        b_all = np.concatenate([zr(gb), w["candidate/bias"], zeros, np.zeros(h, dtype=gb.dtype)])
    attrs = _activation_attrs(["sigmoid", cell.activation])
    return _recurrent_op(
        g, "GRU", seq, x_tm, w_all.T, r_all.T, b_all, h, linear_before_reset=int(cell.reset_after), **attrs
    )


def _emit_cell(g: _Graph, cell: RNNCell, seq: _Seq, x_tm: str, weights: Any) -> tuple[str, list[tuple[str, str]]]:
    """``cell`` run over ``x_tm`` ``[T, B, I]`` with ``weights`` (its snapshot,
    taken once for the whole export, split as the cells' ``_run`` splits it):
    its outputs ``[T, B, O]`` (zero past each row's length) and its final
    state leaves as ``(path, name)`` in flatten order (path ``""`` for a
    plain cell's state)."""
    kind = type(cell)
    if kind is DropoutWrapper:  # inference: no dropout
        return _emit_cell(g, cell.cell, seq, x_tm, weights)  # type: ignore[attr-defined]
    if kind is OutputProjectionWrapper:
        assert isinstance(cell, OutputProjectionWrapper)
        inner, own = weights
        y, leaves = _emit_cell(g, cell.cell, seq, x_tm, inner)
        z = g.op("Add", [g.op("MatMul", [y, g.const(own[cell.KERNEL], "proj_kernel")]), g.const(own[cell.BIAS])])
        return g.op("Where", [seq.mask_tm, z, g.zero()]), leaves
    if kind is ResidualWrapper:
        y, leaves = _emit_cell(g, cell.cell, seq, x_tm, weights)  # type: ignore[attr-defined]
        return g.op("Add", [y, g.op("Where", [seq.mask_tm, x_tm, g.zero()])]), leaves
    if kind is MultiRNNCell:
        assert isinstance(cell, MultiRNNCell)
        out, leaves = x_tm, []
        for i, (layer, layer_weights) in enumerate(zip(cell.cells, weights)):
            out, layer_leaves = _emit_cell(g, layer, seq, out, layer_weights)
            leaves += [(f"cell_{i}" + ("/" + path if path else ""), name) for path, name in layer_leaves]
        return out, leaves
    if kind is BasicRNNCell:
        assert isinstance(cell, BasicRNNCell)
        w = weights
        size = cell.input_size
        b = np.concatenate([w["bias"], np.zeros_like(w["bias"])])
        kernel = w["kernel"]
        y, states = _recurrent_op(
            g,
            "RNN",
            seq,
            x_tm,
            kernel[:size].T,
            kernel[size:].T,
            b,
            cell.num_units,
            **_activation_attrs([cell.activation]),
        )
        return y, [("", states[0])]
    if kind in (BasicLSTMCell, LSTMCell):
        y, states = _emit_lstm(g, cell, weights, seq, x_tm)
        return y, [("c", states[0]), ("h", states[1])]
    if kind is GRUCell:
        assert isinstance(cell, GRUCell)
        y, states = _emit_gru(g, cell, weights, seq, x_tm)
        return y, [("", states[0])]
    raise _refuse(
        f"a {type(cell).__name__} (exportable cells: BasicRNNCell, BasicLSTMCell, LSTMCell, GRUCell and "
        "the wrappers MultiRNNCell, DropoutWrapper, OutputProjectionWrapper, ResidualWrapper)"
    )


def _check_cell(name: str, cell: Any) -> RNNCell:
    if not isinstance(cell, RNNCell):
        raise TypeError(
            f"{name}: expected an rnnrs cell, a (cell_fw, cell_bw) pair or a Sequential model, "
            f"got {type(cell).__name__}"
        )
    if not cell.built:
        raise ValueError(
            f"{name}: expected a built cell (call build(input_size) or run it once), got an unbuilt "
            f"{type(cell).__name__}"
        )
    return cell


def _state_name(prefix: str, path: str) -> str:
    return prefix + ("/" + path if path else "")


def _input_info(g: _Graph, name: str, elem: int, dims: list[Any]) -> Any:
    return g.helper.make_tensor_value_info(name, elem, dims)


def _export_cells(g: _Graph, obj: Any) -> tuple[list[Any], list[Any]]:
    """A cell or a ``(cell_fw, cell_bw)`` pair: graph inputs and outputs."""
    pair = isinstance(obj, tuple)
    cells = [_check_cell("obj[0]", obj[0]), _check_cell("obj[1]", obj[1])] if pair else [_check_cell("obj", obj)]
    size = cells[0].input_size
    if pair:
        if cells[1].input_size != size:
            raise ValueError(
                f"obj: expected cell_fw and cell_bw built for one input size, got {size} and {cells[1].input_size}"
            )
        if cells[1].dtype != cells[0].dtype:
            raise ValueError(
                f"obj: expected cell_fw and cell_bw of one dtype, got {cells[0].dtype.name} and {cells[1].dtype.name}"
            )
    seq_in, x_tm, seq = _sequence_inputs(g)
    inputs = [_input_info(g, "inputs", g.elem, ["B", "T", size]), seq_in]
    outputs, states = [], []
    runs = [("", x_tm, False)] if not pair else [("_fw", x_tm, False), ("_bw", x_tm, True)]
    for cell, (suffix, x, backward) in zip(cells, runs):
        if backward:
            x = g.op("ReverseSequence", [x, seq.lens64], batch_axis=1, time_axis=0)
        y, leaves = _emit_cell(g, cell, seq, x, cell._locked_snapshot())
        if backward:
            y = g.op("ReverseSequence", [y, seq.lens64], batch_axis=1, time_axis=0)
        outputs.append(
            _named_output(g, g.op("Transpose", [y], perm=[1, 0, 2]), "outputs" + suffix, ["B", "T", cell.output_size])
        )
        for path, leaf in leaves:
            states.append(_named_output(g, leaf, _state_name("state" + suffix, path), ["B", None]))
    return inputs, outputs + states


def _named_output(g: _Graph, value: str, name: str, dims: list[Any]) -> Any:
    g.op("Identity", [value], name=name)
    return _input_info(g, name, g.elem, dims)


def _sequence_inputs(g: _Graph, x_bm: str = "inputs") -> tuple[Any, str, _Seq]:
    seq_in = _input_info(g, "sequence_length", g.onnx.TensorProto.INT64, ["B"])
    x_tm = g.op("Transpose", [x_bm], perm=[1, 0, 2])
    return seq_in, x_tm, _Seq(g, x_tm, "sequence_length")


# -- whole models ---------------------------------------------------------------


def _export_model(g: _Graph, model: Any) -> tuple[list[Any], list[Any]]:
    from ..layers import RNN, Bidirectional, Dense, Dropout, Embedding, TimeDistributed
    from ..trainers.compile_utils import CLASSIFICATION, loss_kind

    if not model.built or not model.layers:
        raise ValueError(
            f"obj: expected a built model (call build(input_size), or fit / predict it first), got model "
            f"{model.name!r} without weights"
        )
    layers = list(model.layers)
    lengths: Optional[str] = "sequence_length"
    seq_in = _input_info(g, "sequence_length", g.onnx.TensorProto.INT64, ["B"])
    if type(layers[0]) is Embedding:
        emb = layers.pop(0)
        ids_in = _input_info(g, "inputs", g.onnx.TensorProto.INT64, ["B", "T"])
        x = g.op("Gather", [g.const(emb.get_weights()["embeddings"], "embeddings"), "inputs"], axis=0)
        if emb.mask_zero:
            lengths = _mask_zero_lengths(g, "inputs", "sequence_length")
        features = emb.output_dim
        inputs = [ids_in, seq_in]
    else:
        x = "inputs"
        features = model.input_size  # a model of Dropout layers only: the identity, as predict
        inputs = [_input_info(g, "inputs", g.elem, ["B", "T", model.input_size]), seq_in]
    ndim = 3
    for layer in layers:
        if isinstance(layer, TimeDistributed) and type(layer.layer) in (Dense, Dropout):
            layer = layer.layer  # per step: the same ops on [B, T, F]
        kind = type(layer).__name__
        if type(layer) in (RNN, Bidirectional):
            if ndim != 3 or lengths is None:
                raise _refuse(f"layer {layer.name!r} (a {kind}) reading no sequence")
            if isinstance(layer, RNN):
                x, features = _rnn_layer(g, layer, x, lengths)
            else:
                x, features = _bidirectional_layer(g, layer, x, lengths)
            if not layer.return_sequences:
                ndim, lengths = 2, None
        elif type(layer) is Dense:
            dense: Any = layer
            w = dense.get_weights()
            x = g.op("MatMul", [x, g.const(w["kernel"], "dense_kernel")])
            if "bias" in w:
                x = g.op("Add", [x, g.const(w["bias"], "dense_bias")])
            if dense.activation not in (None, "identity"):
                x = g.op(_ONNX_ACTIVATION[dense.activation], [x])
            features = dense.units
        elif type(layer) is Dropout:
            continue  # inference: the identity
        else:
            raise _refuse(
                f"layer {layer.name!r} of kind {kind} (exportable layers: Embedding first, RNN, Bidirectional, "
                "Dense, Dropout, TimeDistributed of Dense or Dropout)"
            )
    loss = model.loss
    if isinstance(loss, list):
        loss = loss[0]
    if loss is not None:
        kind = "sparse" if loss == CLASSIFICATION else loss_kind(loss)
        logits = isinstance(loss, str) or bool(getattr(loss, "from_logits", False))
        if logits and kind in ("sparse", "categorical"):
            x = g.op("Softmax", [x], axis=-1)
        elif logits and kind == "binary":
            x = g.op("Sigmoid", [x])
    if ndim == 3 and lengths is not None:
        x_tm = g.op("Transpose", [x], perm=[1, 0, 2])
        x = g.op("Transpose", [g.op("Where", [_Seq(g, x_tm, lengths).mask_tm, x_tm, g.zero()])], perm=[1, 0, 2])
    dims: list[Any] = ["B", "T", features] if ndim == 3 else ["B", features]
    return inputs, [_named_output(g, x, "predictions", dims)]


def _rnn_layer(g: _Graph, layer: Any, x: str, lengths: str) -> tuple[str, int]:
    """An ``RNN`` layer on ``x`` ``[B, T, I]``: its outputs in processing
    order ``[B, T, H]`` (as rnnrs returns them with ``go_backwards``), or
    the last valid step's ``[B, H]``; and ``H``."""
    if layer.return_state or layer.stateful:
        what = "return_state=True" if layer.return_state else "stateful=True (its kept state is not in the graph)"
        raise _refuse(f"layer {layer.name!r} with {what}")
    x_tm = g.op("Transpose", [x], perm=[1, 0, 2])
    seq = _Seq(g, x_tm, lengths)
    if layer.go_backwards:
        x_tm = g.op("ReverseSequence", [x_tm, lengths], batch_axis=1, time_axis=0)
    y, _ = _emit_cell(g, layer.cell, seq, x_tm, layer.cell._locked_snapshot())
    y = g.op("Transpose", [y], perm=[1, 0, 2])
    width = int(layer.cell.output_size)
    return (y if layer.return_sequences else _last_valid(g, y, lengths, width)), width


def _bidirectional_layer(g: _Graph, layer: Any, x: str, lengths: str) -> tuple[str, int]:
    """A ``Bidirectional`` layer: both directions (the backward one's
    sequence re-aligned to input order), merged as its ``merge_mode`` says."""
    y_fw, width = _rnn_layer(g, layer.forward_layer, x, lengths)
    y_bw, width_bw = _rnn_layer(g, layer.backward_layer, x, lengths)
    if layer.return_sequences:
        y_bw = g.op("ReverseSequence", [y_bw, lengths], batch_axis=0, time_axis=1)
    if layer.merge_mode == "concat":
        return str(g.op("Concat", [y_fw, y_bw], axis=-1)), width + width_bw
    if layer.merge_mode == "ave":
        return str(g.op("Div", [g.op("Add", [y_fw, y_bw]), g.const(2.0, "two")])), width
    return str(g.op({"sum": "Add", "mul": "Mul"}[layer.merge_mode], [y_fw, y_bw])), width


def _mask_zero_lengths(g: _Graph, ids: str, given: str) -> str:
    """``Embedding(mask_zero=True)``'s lengths: the last non-zero id's position
    plus one (0 for a row of zeros), at most ``given``."""
    shape = g.op("Shape", [ids])
    time = g.op("Squeeze", [g.op("Slice", [shape, g.ints([1]), g.ints([2])]), g.ints([0])])
    positions = g.op(
        "Range",
        [g.const(1, "i1", np.int64), g.op("Add", [time, g.const(1, "i1", np.int64)]), g.const(1, "i1", np.int64)],
    )
    nonzero = g.op(
        "Cast", [g.op("Not", [g.op("Equal", [ids, g.const(0, "i0", np.int64)])])], to=g.onnx.TensorProto.INT64
    )
    found = g.reduce("ReduceMax", g.op("Mul", [nonzero, g.op("Unsqueeze", [positions, g.ints([0])])]), [1], 0)
    return str(g.op("Min", [found, given]))


def _last_valid(g: _Graph, y_bm: str, lengths: str, width: int) -> str:
    """``y [B, T, H]`` at each row's step ``length - 1`` (zeros for length 0)."""
    last = g.op("Max", [g.op("Sub", [lengths, g.const(1, "i1", np.int64)]), g.const(0, "i0", np.int64)])
    index = g.op("Unsqueeze", [last, g.ints([1, 2])])  # [B, 1, 1]
    batch = g.op("Slice", [g.op("Shape", [y_bm]), g.ints([0]), g.ints([1])])
    index = g.op("Expand", [index, g.op("Concat", [batch, g.ints([1, width])], axis=0)])
    picked = g.op("Squeeze", [g.op("GatherElements", [y_bm, index], axis=1), g.ints([1])])
    nonempty = g.op("Unsqueeze", [g.op("Greater", [lengths, g.const(0, "i0", np.int64)]), g.ints([1])])
    return str(g.op("Where", [nonempty, picked, g.zero()]))


# -- the entry point ----------------------------------------------------------


def _check_opset(onnx: Any, opset: Any) -> int:
    if opset is None:
        return DEFAULT_OPSET
    newest = int(onnx.defs.onnx_opset_version())
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset: expected an int in [{MIN_OPSET}, {newest}] or None, got {type(opset).__name__}")
    if not MIN_OPSET <= int(opset) <= newest:
        raise ValueError(f"opset: expected an int in [{MIN_OPSET}, {newest}] or None, got {opset}")
    return int(opset)


def to_onnx(obj: Any, path: Any = None, opset: Optional[int] = None) -> Any:
    """Exports ``obj`` as an ONNX graph and returns the ``onnx.ModelProto``
    (also written to ``path``, a str or PathLike, when given).

    ``obj`` is a built cell (any cell or wrapper), a ``(cell_fw, cell_bw)``
    pair (run as :func:`rnnrs.bidirectional_dynamic_rnn`), or a built
    ``Sequential`` model (``SequenceClassifier``, ``SequenceRegressor``) made of
    an optional first ``Embedding``, ``RNN`` and ``Bidirectional`` (not
    ``stateful``, no ``return_state``),
    ``Dense``, ``Dropout`` and ``TimeDistributed`` of those two.
    Needs the ``onnx`` package (``pip install "rnnrs[onnx]"``).

    Graph inputs: ``inputs`` (``[B, T, I]`` of the cell's dtype; int64 ids
    ``[B, T]`` for a model starting with an ``Embedding``) and
    ``sequence_length`` (int64 ``[B]``, every row's length in ``[0, T]``;
    pass ``T`` for full rows). Graph outputs:

    * a cell: ``outputs`` ``[B, T, O]`` (zero past each row's length) and the
      final state's leaves in flatten order, ``state`` for a one-array state,
      ``state/c`` and ``state/h`` for an LSTM, ``state/cell_<i>/...`` for a
      ``MultiRNNCell``'s layers; a row of length 0 gives the initial state
      (zeros: the graph starts from the zero state);
    * a pair: ``outputs_fw``, ``outputs_bw`` (the backward cell reads each row
      reversed within its length; its outputs re-aligned with the inputs),
      ``state_fw/...``, ``state_bw/...``;
    * a model: ``predictions``, what ``predict`` returns (softmax of the
      logits for a sparse / categorical cross-entropy on logits, sigmoid for
      the binary one, the raw outputs otherwise; zero past each row's length
      for sequence outputs); a model of ``Dropout`` layers only gives its
      inputs (the identity, as ``predict``).

    How: ``BasicRNNCell`` → ONNX ``RNN``; ``BasicLSTMCell`` / ``LSTMCell``
    (peepholes allowed) → ``LSTM`` (gates reordered to ``iofc``, peepholes
    ``P`` in ``iof`` order, ``forget_bias`` folded into the input bias);
    an ``LSTMCell`` with ``num_proj`` or ``cell_clip`` (no ONNX operator has
    them) → a ``Scan`` over time of its equations; ``GRUCell`` → ``GRU``
    with ``linear_before_reset=0`` (TF1 form) or ``1`` (``reset_after``); all
    with ``layout=0`` between ``Transpose`` nodes (ONNX Runtime refuses
    ``layout=1``). The ``identity`` activation is ONNX's ``Affine`` with
    alpha 1, beta 0. Wrappers: ``MultiRNNCell`` chains its layers,
    ``OutputProjectionWrapper`` adds ``MatMul`` + ``Add``, ``ResidualWrapper``
    adds the inputs, ``DropoutWrapper`` is the identity (inference). An
    ``Embedding(mask_zero=True)``'s lengths are computed in the graph (the
    smaller of the derived and the given ones; padding in the middle of a row
    is not refused there, as ``predict`` refuses it). float64 objects give
    valid float64 graphs, but ONNX Runtime has no float64 kernels for ONNX
    ``RNN`` / ``LSTM`` / ``GRU`` (only the ``Scan`` graphs run there; the
    model's ``doc_string`` says so; ``onnx.reference`` runs them all). ONNX
    Runtime itself fails on two edge cases the graphs allow: an empty batch
    (``B = 0``) through an ``LSTM`` node, and ``T = 0`` through a ``Scan``.

    Args:
        obj: what to export (see above); other objects raise ``TypeError``,
            unbuilt ones and unsupported layers ``ValueError``.
        path: where to write the ``.onnx`` file, or None.
        opset: the ONNX opset (an int from 15 to the installed ``onnx``'s
            newest; None: 17). Each node is written in that opset's form
            (``ReduceMax`` takes its axes as an input from 18 on).
    """
    onnx = _import_onnx()
    opset = _check_opset(onnx, opset)
    target = None if path is None else checked_path(path)
    from ..models import Sequential

    if isinstance(obj, Sequential):
        g = _Graph(onnx, obj.dtype, opset=opset)
        inputs, outputs = _export_model(g, obj)
        name = obj.name
    elif isinstance(obj, tuple) and len(obj) == 2:
        g = _Graph(onnx, _check_cell("obj[0]", obj[0]).dtype, opset=opset)
        inputs, outputs = _export_cells(g, obj)
        name = "bidirectional_rnn"
    elif isinstance(obj, RNNCell):
        g = _Graph(onnx, obj.dtype, opset=opset)
        inputs, outputs = _export_cells(g, obj)
        name = "rnn"
    else:
        raise TypeError(
            "obj: expected an rnnrs cell, a (cell_fw, cell_bw) pair or a Sequential model, got "
            + (f"a tuple of {len(obj)} items" if isinstance(obj, tuple) else type(obj).__name__)
        )
    graph = onnx.helper.make_graph(g.nodes, name, inputs, outputs, g.initializers)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)], producer_name="rnnrs")
    recurrent = sorted({node.op_type for node in g.nodes} & {"RNN", "LSTM", "GRU"})
    if g.dtype == np.float64 and recurrent:
        model.doc_string = _FLOAT64_NOTE.format(ops="/".join(recurrent))
    onnx.checker.check_model(model, full_check=True)
    if target is not None:
        try:
            onnx.save_model(model, target)
        except OSError as e:
            raise ValueError(f"path: expected a writable file path, got {target!r} ({e.strerror or e})") from None
    return model
