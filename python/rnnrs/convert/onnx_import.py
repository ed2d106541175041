"""Reading the layers of an ONNX model (as written by ``torch.onnx.export``)
into rnnrs objects (see :func:`from_onnx`). Needs the optional ``onnx``
package (``pip install "rnnrs[onnx]"``), imported only when called."""

from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np

from .._validate import as_dtype
from ..cells import BasicRNNCell, RNNCell
from ..gru import GRUCell
from ..layers import Dense, Embedding
from ..lstm import BasicLSTMCell
from .torch_keras import from_torch

__all__ = ["from_onnx"]

# ONNX gate blocks → PyTorch's (whose layouts from_torch reads): LSTM i,o,f,c → i,f,g(=c),o; GRU z,r,h → r,z,n.
_TO_TORCH_ORDER = {"RNN": (0,), "LSTM": (0, 2, 3, 1), "GRU": (1, 0, 2)}
_DEFAULT_ACTIVATIONS = {"RNN": ["Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}
_RNN_ACTIVATIONS = {"Tanh": "tanh", "Relu": "relu", "Sigmoid": "sigmoid"}
_DENSE_ACTIVATIONS = {"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid"}
# Shape and layout glue through which an initial state is traced back to a graph input or a zero
# constant (the data is the first input; every input of a Concat).
_GLUE = ("Identity", "Slice", "Reshape", "Expand", "Squeeze", "Unsqueeze", "Transpose", "Cast", "Gather", "Concat")


def _array(onnx: Any, tensor: Any, where: str) -> np.ndarray:
    """A TensorProto's data; unreadable data (truncated, or external data not
    loaded) is the caller's ValueError."""
    try:
        return np.asarray(onnx.numpy_helper.to_array(tensor))
    except Exception as e:  # numpy's ValueError, onnx's ValidationError on missing external data
        raise ValueError(
            f"path_or_model: expected tensor data onnx can read (external data is read only when loading "
            f"from a path), got unreadable {where} {tensor.name!r} ({e})"
        ) from None


class _Graph:
    """Constants (initializers and ``Constant`` nodes), producers and consumers of a graph."""

    def __init__(self, onnx: Any, graph: Any) -> None:
        self.consts: dict[str, np.ndarray] = {t.name: _array(onnx, t, "initializer") for t in graph.initializer}
        self.producer: dict[str, Any] = {}
        self.consumers: dict[str, list[Any]] = {}
        for node in graph.node:
            for out in node.output:
                self.producer[out] = node
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
            if node.op_type == "Constant" and node.output:
                for a in node.attribute:
                    if a.name == "value":
                        self.consts[node.output[0]] = _array(onnx, a.t, "Constant value")
                    elif a.name in ("value_float", "value_floats", "value_int", "value_ints"):
                        self.consts[node.output[0]] = np.asarray(onnx.helper.get_attribute_value(a))
            elif node.op_type == "Identity" and node.input and node.output and node.input[0] in self.consts:
                self.consts[node.output[0]] = self.consts[node.input[0]]
        self.graph_outputs = {o.name for o in graph.output}
        self.graph_inputs = {i.name for i in graph.input} - set(self.consts)
        self.onnx = onnx

    def const(self, name: str) -> Optional[np.ndarray]:
        return self.consts.get(name) if name else None

    def only_consumer(self, name: str) -> Optional[Any]:
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self.graph_outputs else None

    def not_runtime_or_zero(self, name: str, depth: int = 0) -> Optional[str]:
        """None when ``name`` comes (through shape glue) from graph inputs or
        zero constants only: what the caller passes as ``initial_state``, or
        rnnrs's zero state. Otherwise what it is (a non-zero constant, a
        value computed by another node)."""
        value = self.consts.get(name)
        if value is not None:
            return "a non-zero constant" if np.any(value != 0) else None
        if name in self.graph_inputs:
            return None
        node = self.producer.get(name)
        if node is None:
            return f"{name!r}, neither a graph input nor a node's output"
        if node.op_type == "ConstantOfShape":
            fill = [a for a in node.attribute if a.name == "value"]
            return "a non-zero ConstantOfShape" if fill and np.any(_array(self.onnx, fill[0].t, "fill") != 0) else None
        if node.op_type not in _GLUE or depth >= 32:
            return f"a value computed by node {node.name or name!r} ({node.op_type})"
        for data in node.input if node.op_type == "Concat" else node.input[:1]:
            why = self.not_runtime_or_zero(data, depth + 1)
            if why is not None:
                return why
        return None


def _attrs(onnx: Any, node: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in node.attribute:
        value = onnx.helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list):
            value = [v.decode() if isinstance(v, bytes) else v for v in value]
        out[a.name] = value
    return out


def _label(node: Any, index: int) -> str:
    return f"node {node.name or f'#{index}'!r} ({node.op_type})"


def _refuse(node: Any, index: int, expected: str, got: str) -> ValueError:
    return ValueError(f"path_or_model: {_label(node, index)}: expected {expected}, got {got}")


def _numeric(node: Any, index: int, *weights: Optional[np.ndarray]) -> None:
    for weight in weights:
        if weight is not None and weight.dtype.kind not in "biuf":
            raise _refuse(node, index, "numeric weights", f"a weight of dtype {weight.dtype}")


def _weight_dtype(arr: np.ndarray, dtype: Optional[np.dtype[Any]], node: Any, index: int) -> np.dtype[Any]:
    if dtype is not None:
        return dtype
    if arr.dtype not in (np.float32, np.float64):
        raise _refuse(node, index, "float32 or float64 weights (or pass dtype=)", f"{arr.dtype}")
    return np.dtype(arr.dtype)


def _recurrent(onnx: Any, g: _Graph, node: Any, index: int, dtype: Optional[np.dtype[Any]]) -> Any:
    op = node.op_type
    attrs = _attrs(onnx, node)
    inputs = list(node.input) + [""] * 8
    w, r = g.const(inputs[1]), g.const(inputs[2])
    if w is None or r is None:
        raise _refuse(node, index, "constant weights W and R (initializers)", f"computed inputs {inputs[1:3]}")
    if w.ndim != 3 or r.ndim != 3:
        raise _refuse(node, index, "W and R of rank 3", f"W {w.shape}, R {r.shape}")
    hidden = int(attrs["hidden_size"]) if "hidden_size" in attrs else int(r.shape[-1])
    if hidden < 1 or w.shape[-1] < 1:
        raise _refuse(node, index, "hidden_size >= 1 and input size >= 1", f"W {w.shape}, R {r.shape}")
    gates = len(_TO_TORCH_ORDER[op])
    directions = {"forward": 1, "bidirectional": 2}.get(attrs.get("direction", "forward"))
    if directions is None:
        raise _refuse(
            node, index, "direction 'forward' or 'bidirectional'", f"{attrs.get('direction')!r} (no rnnrs equivalent)"
        )
    want_w = (directions, gates * hidden, w.shape[-1])
    if w.shape != want_w or r.shape != (directions, gates * hidden, hidden):
        raise _refuse(
            node,
            index,
            f"W {want_w} and R {(directions, gates * hidden, hidden)} for hidden_size {hidden}",
            f"W {w.shape}, R {r.shape}",
        )
    b = g.const(inputs[3])
    if inputs[3] and b is None:
        raise _refuse(node, index, "a constant bias B", f"the computed input {inputs[3]!r}")
    if b is None:
        b = np.zeros((directions, 2 * gates * hidden), w.dtype)
    if b.shape != (directions, 2 * gates * hidden):
        raise _refuse(node, index, f"B of shape {(directions, 2 * gates * hidden)}", f"{b.shape}")
    if "clip" in attrs:
        raise _refuse(node, index, "no clip (rnnrs cells do not clip their gates)", f"clip={attrs['clip']}")
    if attrs.get("input_forget", 0):
        raise _refuse(node, index, "input_forget=0 (coupled gates have no rnnrs equivalent)", "input_forget=1")
    if op == "LSTM":
        p = g.const(inputs[7])
        if inputs[7] and (p is None or np.any(p != 0)):
            raise _refuse(node, index, "no peephole input P (or zeros)", f"P from {inputs[7]!r}")
    for k, what in ((5, "initial_h"), (6, "initial_c")):
        why = g.not_runtime_or_zero(inputs[k]) if inputs[k] else None
        if why is not None:
            raise _refuse(
                node,
                index,
                f"a zero or run-time {what} (a graph input: pass it as initial_state to the run function)",
                why,
            )
    defaults = _DEFAULT_ACTIVATIONS[op]
    acts = attrs.get("activations", defaults * directions)
    if len(acts) != len(defaults) * directions:
        raise _refuse(node, index, f"{len(defaults) * directions} activations", f"{acts}")
    _numeric(node, index, w, r, b)
    if len({w.dtype, r.dtype, b.dtype}) > 1:  # ONNX's type constraint T: one type for W, R and B
        raise _refuse(node, index, "W, R and B of one type (ONNX's T)", f"W {w.dtype}, R {r.dtype}, B {b.dtype}")
    dt = _weight_dtype(w, dtype, node, index)
    cells = []
    for d in range(directions):
        mine = acts[d * len(defaults) : (d + 1) * len(defaults)]
        if op == "RNN" and mine[0] in _RNN_ACTIVATIONS:
            cell: RNNCell = BasicRNNCell(hidden, activation=_RNN_ACTIVATIONS[mine[0]], dtype=dt)
        elif op != "RNN" and [a.lower() for a in mine] == [a.lower() for a in defaults]:
            if op == "LSTM":
                cell = BasicLSTMCell(hidden, forget_bias=0.0, dtype=dt)
            else:
                cell = GRUCell(hidden, reset_after=bool(attrs.get("linear_before_reset", 0)), dtype=dt)
        else:
            want = " or ".join(_RNN_ACTIVATIONS) if op == "RNN" else str(defaults)
            raise _refuse(node, index, f"activations {want}", f"{mine}")
        cells.append(_set_direction(cell, op, w[d], r[d], b[d], gates, hidden))
    return cells[0] if directions == 1 else (cells[0], cells[1])


def _set_direction(
    cell: RNNCell, op: str, w: np.ndarray, r: np.ndarray, b: np.ndarray, gates: int, hidden: int
) -> RNNCell:
    """One direction's ONNX W [G, I], R [G, H], B [2G] into ``cell``."""
    order = _TO_TORCH_ORDER[op]

    def torch_blocks(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a[k * hidden : (k + 1) * hidden] for k in order], axis=0)

    wb, rb = b[: gates * hidden], b[gates * hidden :]
    if isinstance(cell, GRUCell) and not cell.reset_after:
        # linear_before_reset=0 is TF 1.x's GRU: candidate = tanh(W x + R (r * h) + Wb + Rb).
        h = hidden
        z, rr, c = (slice(k * h, (k + 1) * h) for k in range(3))
        cell.set_weights(
            {
                "gates/kernel": np.vstack([np.hstack([w[rr].T, w[z].T]), np.hstack([r[rr].T, r[z].T])]),
                "gates/bias": np.concatenate([wb[rr] + rb[rr], wb[z] + rb[z]]),
                "candidate/kernel": np.vstack([w[c].T, r[c].T]),
                "candidate/bias": wb[c] + rb[c],
            }
        )
        return cell
    from_torch(
        cell,
        {
            "weight_ih_l0": torch_blocks(w),
            "weight_hh_l0": torch_blocks(r),
            "bias_ih_l0": torch_blocks(wb),
            "bias_hh_l0": torch_blocks(rb),
        },
    )
    return cell


def _activation_after(g: _Graph, name: str) -> tuple[Optional[str], Optional[Any]]:
    user = g.only_consumer(name)
    if user is not None and user.op_type in _DENSE_ACTIVATIONS:
        return _DENSE_ACTIVATIONS[user.op_type], user
    return None, None


def _dense(
    onnx: Any, g: _Graph, node: Any, index: int, dtype: Optional[np.dtype[Any]], used: set[int]
) -> Optional[Dense]:
    """A Gemm, or a MatMul (plus an Add of a constant bias), with a constant
    weight as a Dense layer; None when the weight is not a constant (the
    product of two activations is not a layer)."""
    kernel = g.const(node.input[1])
    _numeric(node, index, kernel)
    if kernel is not None and kernel.ndim != 2:
        raise _refuse(node, index, "a weight [in, out]", f"weight {kernel.shape}")
    if kernel is None:
        if g.const(node.input[0]) is not None and node.op_type == "MatMul":
            raise _refuse(node, index, "the constant weight as MatMul's second input", "it as the first")
        return None
    bias: Optional[np.ndarray] = None
    out = node.output[0]
    if node.op_type == "Gemm":
        attrs = _attrs(onnx, node)
        if attrs.get("transA", 0):
            raise _refuse(node, index, "transA=0", "transA=1")
        kernel = kernel.T if attrs.get("transB", 0) else kernel
        kernel = kernel * attrs.get("alpha", 1.0)
        if len(node.input) > 2 and node.input[2]:
            c = g.const(node.input[2])
            if c is None:
                raise _refuse(node, index, "a constant C (bias)", f"the computed input {node.input[2]!r}")
            _numeric(node, index, c)
            bias = np.reshape(c, -1) * attrs.get("beta", 1.0)
    else:
        add = g.only_consumer(out)
        if add is not None and add.op_type == "Add" and len(add.input) == 2:
            other = add.input[1] if add.input[0] == out else add.input[0]
            c = g.const(other)
            if c is not None and c.size == kernel.shape[-1] and c.dtype.kind in "biuf":
                bias, out = np.reshape(c, -1), add.output[0]
                used.add(id(add))
    if kernel.ndim != 2 or (bias is not None and bias.shape != (kernel.shape[1],)):
        raise _refuse(
            node,
            index,
            "a weight [in, out] and a bias [out]",
            f"weight {kernel.shape}" + ("" if bias is None else f", bias {bias.shape}"),
        )
    activation, act_node = _activation_after(g, out)
    if act_node is not None:
        used.add(id(act_node))
    dt = _weight_dtype(kernel, dtype, node, index)
    layer = Dense(int(kernel.shape[1]), activation=activation, use_bias=bias is not None, dtype=dt)
    layer.build(int(kernel.shape[0]), dt)
    layer.set_weights({"kernel": kernel, **({} if bias is None else {"bias": bias})})
    return layer


def _embedding(onnx: Any, g: _Graph, node: Any, index: int, dtype: Optional[np.dtype[Any]]) -> Optional[Embedding]:
    table = g.const(node.input[0])
    if table is None or g.const(node.input[1]) is not None:
        return None  # a Gather on shapes or other computed values: glue
    if table.ndim != 2 or not np.issubdtype(table.dtype, np.floating):
        return None
    if _attrs(onnx, node).get("axis", 0) != 0:
        raise _refuse(node, index, "a lookup on axis 0 of the table", f"axis={_attrs(onnx, node)['axis']}")
    dt = _weight_dtype(table, dtype, node, index)
    layer = Embedding(int(table.shape[0]), int(table.shape[1]), dtype=dt)
    layer.set_weights({"embeddings": table})
    return layer


def _check_arity(onnx: Any, model: Any) -> None:
    """Every node of a known operator has at least the inputs and outputs its
    schema (at the model's opset) requires."""
    versions = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
    for index, node in enumerate(model.graph.node):
        domain = node.domain or "ai.onnx"
        try:
            schema = onnx.defs.get_schema(node.op_type, versions.get(domain, 1), node.domain)
        except Exception:  # an operator onnx does not know (a custom domain): nothing to check
            continue
        for what, have, need in (
            ("inputs", len(node.input), schema.min_input),
            ("outputs", len(node.output), schema.min_output),
        ):
            if have < need:
                raise _refuse(node, index, f"at least {need} {what} (the operator's schema)", f"{have}")


def _subgraph_weight(onnx: Any, g: _Graph, node: Any) -> Optional[tuple[str, tuple[int, ...]]]:
    """The first float constant of more than one value (a weight) that a
    subgraph of ``node`` (a ``Scan``, ``Loop`` or ``If`` body, at any depth)
    uses, from the outer graph or its own; None when there is none."""
    for a in node.attribute:
        bodies = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
        for body in bodies:
            inner = _Graph(onnx, body)
            for name, value in inner.consts.items():
                if value.size > 1 and np.issubdtype(value.dtype, np.floating):
                    return name, value.shape
            for child in body.node:
                for name in child.input:
                    outer = g.const(name) if name not in inner.consts else None
                    if outer is not None and outer.size > 1 and np.issubdtype(outer.dtype, np.floating):
                        return name, outer.shape
                found = _subgraph_weight(onnx, g, child)
                if found is not None:
                    return found
    return None


def from_onnx(path_or_model: Any, dtype: Any = None) -> list[Any]:
    """The layers of an ONNX model as rnnrs objects, in graph order.

    Reads what ``torch.onnx.export`` writes for PyTorch's recurrent modules
    and the layers around them:

    - ``RNN`` → :class:`~rnnrs.BasicRNNCell` (activation ``Tanh``, ``Relu``
      or ``Sigmoid``), ``LSTM`` → :class:`~rnnrs.BasicLSTMCell` with
      ``forget_bias=0`` (ONNX's bias holds it), ``GRU`` →
      :class:`~rnnrs.GRUCell` with ``reset_after=True`` for
      ``linear_before_reset=1`` (PyTorch's form) or ``False`` (TF 1.x's
      form) for ``0``. ``direction="bidirectional"`` gives a ``(cell_fw,
      cell_bw)`` pair. Each node is one layer: PyTorch's ``num_layers=n``
      gives ``n`` entries (run unidirectional ones with a
      :class:`~rnnrs.MultiRNNCell`, bidirectional pairs with
      :func:`rnnrs.stack_bidirectional_dynamic_rnn` on the lists of their
      forward and backward cells).
    - ``Gemm``, or ``MatMul`` (plus an ``Add`` of a constant bias), with a
      constant weight → :class:`~rnnrs.Dense` (a ``Relu``/``Tanh``/``Sigmoid``
      node reading only its output becomes its activation).
    - ``Gather`` on a constant 2-D float table → :class:`~rnnrs.Embedding`.

    Other nodes (transposes, reshapes, shapes, softmax, ...) are layout glue
    and are not returned. Run-time inputs of a recurrent node are not
    weights: ``sequence_lens`` is the run function's ``sequence_length``
    (rnnrs's masking; note ONNX Runtime returns zeros as the final state of a
    length-0 row where rnnrs returns the initial state) and ``initial_h`` /
    ``initial_c`` its ``initial_state``.

    Refused with a ``ValueError`` naming the node: ``direction="reverse"``,
    ``clip``, ``input_forget=1``, non-zero peepholes ``P``, non-default
    activations, an initial state that is neither zero nor from graph
    inputs (through shape glue only), weights that are not constants, not
    numeric, have no units or inconsistent shapes, a node holding a float
    weight matrix that is none of the above (e.g. ``Conv``, or an ``Add`` of
    a table that is no Dense bias), a ``Scan`` / ``Loop`` / ``If`` whose
    body uses a float weight (e.g. rnnrs's own export of an ``LSTMCell``
    with ``num_proj`` or ``cell_clip``), and a node with fewer inputs or
    outputs than its operator requires. Also a ``ValueError``: initializer
    data onnx cannot read (external data is read only when loading from a
    path), and a model with no layer at all.

    Args:
        path_or_model: a path to an ``.onnx`` file, its bytes, or an
            ``onnx.ModelProto``.
        dtype: None (each layer takes its weights' dtype, float32 or
            float64) or ``numpy.float32`` / ``numpy.float64`` to cast to.

    Returns:
        A list of cells, ``(cell_fw, cell_bw)`` pairs, ``Dense`` and
        ``Embedding`` layers, built and holding the model's weights.

    Raises:
        ImportError: ``onnx`` is not installed (``pip install "rnnrs[onnx]"``).
    """
    try:
        import onnx
    except ImportError:
        raise ImportError('from_onnx needs the onnx package: pip install "rnnrs[onnx]"') from None
    dt = None if dtype is None else as_dtype(dtype)
    if isinstance(path_or_model, onnx.ModelProto):
        model = path_or_model
    elif isinstance(path_or_model, (str, os.PathLike)):
        if not os.path.isfile(path_or_model):
            raise ValueError(f"path_or_model: expected an existing .onnx file, got {os.fspath(path_or_model)!r}")
        try:
            model = onnx.load(os.fspath(path_or_model))
        except Exception as e:  # protobuf's DecodeError and friends
            raise ValueError(f"path_or_model: expected an ONNX model file, got one onnx cannot read ({e})") from None
    elif isinstance(path_or_model, (bytes, bytearray)):
        try:
            model = onnx.load_from_string(bytes(path_or_model))
        except Exception as e:
            raise ValueError(
                f"path_or_model: expected the bytes of an ONNX model, got unreadable bytes ({e})"
            ) from None
    else:
        raise TypeError(
            f"path_or_model: expected a path, bytes or an onnx.ModelProto, got {type(path_or_model).__name__}"
        )
    _check_arity(onnx, model)
    g = _Graph(onnx, model.graph)
    layers: list[Any] = []
    used: set[int] = set()
    for index, node in enumerate(model.graph.node):
        op = node.op_type
        inner = _subgraph_weight(onnx, g, node)
        if inner is not None:
            raise _refuse(
                node,
                index,
                "only layers rnnrs can map (RNN, LSTM, GRU, Gemm, MatMul, Gather), no weights inside a subgraph",
                f"a {op} whose subgraph uses the weight {inner[0]!r} {inner[1]}",
            )
        if op in _TO_TORCH_ORDER:
            layers.append(_recurrent(onnx, g, node, index, dt))
        elif op in ("Gemm", "MatMul"):
            dense = _dense(onnx, g, node, index, dt, used)
            if dense is not None:
                layers.append(dense)
        elif op == "Gather":
            emb = _embedding(onnx, g, node, index, dt)
            if emb is not None:
                layers.append(emb)
        elif op not in ("Constant", "Identity") and id(node) not in used:
            for name in node.input:
                value = g.const(name)
                if value is not None and value.ndim >= 2 and np.issubdtype(value.dtype, np.floating):
                    raise _refuse(
                        node,
                        index,
                        "only layers rnnrs can map (RNN, LSTM, GRU, Gemm, MatMul, Gather)",
                        f"a {op} holding the weight {name!r} {value.shape}",
                    )
    if not layers:
        ops = sorted({n.op_type for n in model.graph.node})
        raise ValueError(
            f"path_or_model: expected a model with RNN, LSTM, GRU, Gemm, MatMul or Gather layers, got ops {ops}"
        )
    return layers
