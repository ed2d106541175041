"""rnnrs.convert.from_onnx: ONNX files written by ``torch.onnx.export``
(tests/fixtures/onnx, made by scripts/make_onnx_fixtures.py) read into rnnrs
cells, bidirectional pairs, Dense and Embedding layers, whose runs equal
PyTorch's stored outputs and states (full-length and packed ragged batches);
hand-built graphs for what torch does not export (TF 1.x GRU form, Gemm
options) checked on onnxruntime; and the refusals, each naming its node.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import rnnrs
from helpers import raises_naming
from rnnrs import convert

onnx = pytest.importorskip("onnx", reason="from_onnx needs the optional onnx package")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "onnx")
RECURRENT = ["rnn_tanh", "rnn_relu", "lstm", "gru", "bilstm", "bigru2"]
TOL = dict(rtol=1e-5, atol=1e-5)


def fixture(name):
    return os.path.join(FIXTURES, f"{name}.onnx"), dict(np.load(os.path.join(FIXTURES, f"{name}.npz")))


def run_layers(layers, x, lengths=None):
    """Runs imported recurrent layers as PyTorch's module does: one cell, a
    (fw, bw) pair, or a stack of pairs; returns (outputs, [h per layer and
    direction], [c ...] or None) in PyTorch's h_n order."""
    if all(isinstance(layer, tuple) for layer in layers):
        out, s_fw, s_bw = rnnrs.stack_bidirectional_dynamic_rnn(
            [p[0] for p in layers], [p[1] for p in layers], x, sequence_length=lengths
        )
        states = [s for pair in zip(s_fw, s_bw) for s in pair]
    else:
        (cell,) = layers
        out, state = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths)
        states = [state]
    if isinstance(states[0], rnnrs.LSTMStateTuple):
        return out, np.stack([s.h for s in states]), np.stack([s.c for s in states])
    return out, np.stack(states), None


@pytest.mark.parametrize("dtype", [None, np.float64])
@pytest.mark.parametrize("name", RECURRENT)
def test_torch_exported_recurrent_modules_import_and_run_identically(name, dtype):
    """Uni- and bidirectional RNN/LSTM/GRU (2 bidirectional GRU layers too):
    outputs, h_n and c_n equal PyTorch's, full length and packed ragged."""
    path, data = fixture(name)
    layers = convert.from_onnx(path, dtype=dtype)
    want_dtype = np.float32 if dtype is None else np.float64
    cells = [c for layer in layers for c in (layer if isinstance(layer, tuple) else (layer,))]
    assert all(c.dtype == want_dtype for c in cells)
    out, h, c = run_layers(layers, data["x"])
    np.testing.assert_allclose(out, data["outputs"], **TOL)
    np.testing.assert_allclose(h, data["h_n"], **TOL)
    if "c_n" in data:
        np.testing.assert_allclose(c, data["c_n"], **TOL)
    out, h, c = run_layers(layers, data["x"], data["lengths"])
    np.testing.assert_allclose(out, data["ragged_outputs"], **TOL)
    np.testing.assert_allclose(h, data["ragged_h_n"], **TOL)
    if "c_n" in data:
        np.testing.assert_allclose(c, data["ragged_c_n"], **TOL)


@pytest.mark.parametrize("name", ["lstm", "bigru2"])
def test_a_length_zero_row_keeps_the_initial_state_and_leaves_the_others_alone(name):
    """PyTorch cannot pack a length-0 row: adding one to the ragged batch must
    give zeros (outputs) and the zero initial state for it, and PyTorch's
    results for the other rows."""
    path, data = fixture(name)
    layers = convert.from_onnx(path)
    x = np.concatenate([data["x"], np.ones_like(data["x"][:1])])
    lengths = np.append(data["lengths"], 0)
    out, h, c = run_layers(layers, x, lengths)
    np.testing.assert_allclose(out[:-1], data["ragged_outputs"], **TOL)
    np.testing.assert_allclose(h[:, :-1], data["ragged_h_n"], **TOL)
    assert not out[-1].any() and not h[:, -1].any()
    if c is not None:
        np.testing.assert_allclose(c[:, :-1], data["ragged_c_n"], **TOL)


def test_embedding_lstm_linear_model_imports_in_graph_order():
    path, data = fixture("embed_lstm_linear")
    embedding, cell, dense = convert.from_onnx(path)
    assert isinstance(embedding, rnnrs.Embedding) and (embedding.input_dim, embedding.output_dim) == (10, 3)
    assert isinstance(cell, rnnrs.BasicLSTMCell) and cell.num_units == 4
    assert isinstance(dense, rnnrs.Dense) and dense.units == 2 and dense.activation is None
    outputs, _ = rnnrs.dynamic_rnn(cell, embedding(data["ids"]))
    np.testing.assert_allclose(dense(outputs), data["predictions"], **TOL)


def test_model_proto_and_bytes_are_accepted():
    path, _ = fixture("gru")
    model = onnx.load(path)
    for source in (model, model.SerializeToString()):
        (cell,) = convert.from_onnx(source)
        assert isinstance(cell, rnnrs.GRUCell) and cell.reset_after


# ---- hand-built graphs ---------------------------------------------------------


def recurrent_model(op, hidden=3, inputs=2, directions=1, seed=0, extra_inputs=(), **attrs):
    """A graph with one RNN/LSTM/GRU node (constant random W, R, B) reading
    ``inputs`` [T, B, I] and giving Y; ``extra_inputs`` are (name, array)
    constants appended after B (sequence_lens, initial_h, ...; None for absent)."""
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    rng = np.random.default_rng(seed)
    consts = {
        "W": rng.normal(scale=0.5, size=(directions, gates * hidden, inputs)).astype(np.float32),
        "R": rng.normal(scale=0.5, size=(directions, gates * hidden, hidden)).astype(np.float32),
        "B": rng.normal(scale=0.5, size=(directions, 2 * gates * hidden)).astype(np.float32),
    }
    names = ["inputs", "W", "R", "B"]
    for name, value in extra_inputs:
        names.append("" if value is None else name)
        if value is not None:
            consts[name] = value
    node = helper.make_node(op, names, ["Y"], name=f"my_{op.lower()}", hidden_size=hidden, **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("inputs", TensorProto.FLOAT, ["T", "B", inputs])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def ort_run(model, feed):
    ort = pytest.importorskip("onnxruntime", reason="checked against onnxruntime when it is installed")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


@pytest.mark.parametrize("linear_before_reset", [0, 1])
def test_gru_forms_map_to_the_matching_gru_cell(linear_before_reset):
    """linear_before_reset=0 is TF 1.x's GRU (reset_after=False), 1 PyTorch's;
    both run as onnxruntime runs the node, forwards and bidirectionally."""
    model = recurrent_model("GRU", directions=2, direction="bidirectional", linear_before_reset=linear_before_reset)
    ((fw, bw),) = convert.from_onnx(model)
    assert fw.reset_after == bool(linear_before_reset) == bw.reset_after
    x = np.random.default_rng(1).normal(size=(4, 3, 2)).astype(np.float32)  # [T, B, I]
    (y,) = ort_run(model, {"inputs": x})  # [T, 2, B, H]
    (out_fw, out_bw), _ = rnnrs.bidirectional_dynamic_rnn(fw, bw, x, time_major=True)
    np.testing.assert_allclose(out_fw, y[:, 0], **TOL)
    np.testing.assert_allclose(out_bw, y[:, 1], **TOL)


def test_sequence_lens_means_rnnrs_sequence_length():
    """A run-time sequence_lens is the run function's sequence_length (ragged,
    forward direction, lengths >= 1 where onnxruntime and rnnrs agree)."""
    model = recurrent_model("LSTM", extra_inputs=[("sequence_lens", None)])
    graph = model.graph
    graph.node[0].input[4] = "lens"
    graph.input.append(helper.make_tensor_value_info("lens", TensorProto.INT32, ["B"]))
    (cell,) = convert.from_onnx(model)
    x = np.random.default_rng(2).normal(size=(5, 3, 2)).astype(np.float32)
    lens = np.array([5, 1, 3], np.int32)
    (y,) = ort_run(model, {"inputs": x, "lens": lens})
    out, _ = rnnrs.dynamic_rnn(cell, x, sequence_length=lens, time_major=True)
    np.testing.assert_allclose(out, y[:, 0], **TOL)


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_with_options_and_a_following_relu_is_a_dense_layer(trans_b):
    rng = np.random.default_rng(3)
    w = rng.normal(size=(3, 4) if not trans_b else (4, 3)).astype(np.float32)
    c = rng.normal(size=(4,)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "w", "c"], ["z"], name="fc", transB=trans_b, alpha=0.5, beta=2.0),
        helper.make_node("Relu", ["z"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(c, "c")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (dense,) = convert.from_onnx(model)
    assert dense.activation == "relu"
    x = rng.normal(size=(5, 3)).astype(np.float32)
    (y,) = ort_run(model, {"x": x})
    np.testing.assert_allclose(dense(x), y, **TOL)


# ---- refusals ------------------------------------------------------------------

ZERO_H = np.zeros((1, 1, 3), np.float32)


@pytest.mark.parametrize(
    "model,match",
    [
        (lambda: recurrent_model("LSTM", direction="reverse"), "direction"),
        (lambda: recurrent_model("LSTM", clip=3.0), "clip"),
        (lambda: recurrent_model("LSTM", input_forget=1), "input_forget"),
        (lambda: recurrent_model("GRU", activations=["Sigmoid", "Relu"]), "activations"),
        (lambda: recurrent_model("RNN", activations=["Affine"]), "activations"),
        (
            lambda: recurrent_model("LSTM", extra_inputs=[("s", None), ("h0", ZERO_H + 1)]),
            "initial_h",
        ),
        (
            lambda: recurrent_model(
                "LSTM", extra_inputs=[("s", None), ("h0", None), ("c0", None), ("P", np.ones((1, 9), np.float32))]
            ),
            "peephole",
        ),
        (lambda: recurrent_model("LSTM", hidden=3, inputs=2, seed=1, extra_inputs=()), None),
    ],
)
def test_what_has_no_rnnrs_equivalent_is_refused_naming_the_node(model, match):
    m = model()
    if match is None:  # the control: the same graph without the option imports
        assert isinstance(convert.from_onnx(m)[0], rnnrs.BasicLSTMCell)
        return
    with raises_naming(ValueError, "path_or_model") as info:
        convert.from_onnx(m)
    assert "'my_" in str(info.value) and match in str(info.value), str(info.value)


def test_zero_constant_initial_state_is_accepted():
    (cell,) = convert.from_onnx(recurrent_model("LSTM", extra_inputs=[("s", None), ("h0", ZERO_H), ("c0", ZERO_H)]))
    assert isinstance(cell, rnnrs.BasicLSTMCell)


def test_weights_of_the_wrong_shape_or_not_constant_are_refused():
    model = recurrent_model("GRU", hidden=3)
    model.graph.node[0].attribute[0].i = 4  # hidden_size 4, weights for 3
    with raises_naming(ValueError, "my_gru"):
        convert.from_onnx(model)
    model = recurrent_model("GRU")
    model.graph.node[0].input[2] = "inputs"  # R computed at run time
    with raises_naming(ValueError, "my_gru"):
        convert.from_onnx(model)


def test_a_layer_that_cannot_be_mapped_is_refused_and_an_empty_model_too():
    w = np.zeros((2, 1, 3), np.float32)
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv1")
    graph = helper.make_graph(
        [conv],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")],
    )
    with raises_naming(ValueError, "conv1"):
        convert.from_onnx(helper.make_model(graph))
    relu = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    with raises_naming(ValueError, "path_or_model"):
        convert.from_onnx(helper.make_model(relu))


def test_bad_sources(tmp_path):
    with raises_naming(TypeError, "path_or_model"):
        convert.from_onnx(3)
    with raises_naming(ValueError, "path_or_model"):
        convert.from_onnx(str(tmp_path / "missing.onnx"))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\x00 not a model")
    with raises_naming(ValueError, "path_or_model"):
        convert.from_onnx(junk)
    with raises_naming(TypeError, "dtype"):
        convert.from_onnx(fixture("gru")[0], dtype=np.int32)


def test_without_onnx_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "rnnrs\[onnx\]"'):
        convert.from_onnx(fixture("gru")[0])


# ---- malformed and unsupported graphs ---------------------------------------------


def graph_model(nodes, consts=(), inputs=("x",), outputs=("y",)):
    """A model of ``nodes`` with float inputs / outputs of unknown shape and
    ``consts`` ((name, array) or TensorProto) as initializers."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [c if isinstance(c, TensorProto) else numpy_helper.from_array(c[1], c[0]) for c in consts],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def refused_naming(model, *words, exc=ValueError):
    """from_onnx refuses ``model``: ``exc`` starting with path_or_model, naming ``words``."""
    with raises_naming(exc, "path_or_model") as info:
        convert.from_onnx(model)
    message = str(info.value)
    assert message.startswith("path_or_model"), message
    for word in words:
        assert word in message, (word, message)


def test_weights_inside_a_subgraph_are_refused():
    """A Scan / Loop / If body's weights have no rnnrs layer: the node is
    refused naming the weight (they were silently dropped, and rnnrs's own
    export of an LSTMCell with num_proj, a Scan, imported as nothing or as
    its output projection alone)."""
    cell = rnnrs.LSTMCell(4, num_proj=2, seed=1)
    cell.build(3)
    refused_naming(convert.to_onnx(cell), "(Scan)", "subgraph", "Kx")
    wrapped = rnnrs.OutputProjectionWrapper(rnnrs.LSTMCell(4, num_proj=2, seed=1), 3, seed=2)
    wrapped.build(3)
    refused_naming(convert.to_onnx(wrapped), "(Scan)", "subgraph")
    # An If whose branches hold their own weight, and one whose branches read the outer graph's.
    own = helper.make_graph(
        [helper.make_node("MatMul", ["x", "k_in"], ["z"])],
        "then",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.ones((3, 2), np.float32), "k_in")],
    )
    outer = helper.make_graph(
        [helper.make_node("MatMul", ["x", "k_out"], ["z2"])],
        "else",
        [],
        [helper.make_tensor_value_info("z2", TensorProto.FLOAT, None)],
    )
    branch = helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=own, else_branch=own)
    model = graph_model([branch], [("k_out", np.ones((3, 2), np.float32))], inputs=("x", "cond"))
    refused_naming(model, "'branch' (If)", "k_in")
    outer_only = helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=outer, else_branch=outer)
    model = graph_model([outer_only], [("k_out", np.ones((3, 2), np.float32))], inputs=("x", "cond"))
    refused_naming(model, "'branch' (If)", "k_out")


@pytest.mark.parametrize(
    "nodes,consts",
    [
        ([helper.make_node("MatMul", ["x"], ["y"], name="bad")], []),
        ([helper.make_node("Gemm", ["x"], ["y"], name="bad")], []),
        ([helper.make_node("Gather", ["t"], ["y"], name="bad")], [("t", np.ones((3, 2), np.float32))]),
        ([helper.make_node("Identity", [], ["y"], name="bad")], []),
        (
            [helper.make_node("MatMul", ["x", "k"], ["m"], name="bad"), helper.make_node("Add", ["m", "b"], ["y"])],
            [("k", np.float32(2.0)), ("b", np.ones(2, np.float32))],
        ),
    ],
    ids=["matmul_one_input", "gemm_one_input", "gather_one_input", "identity_no_input", "matmul_0d_weight"],
)
def test_malformed_nodes_are_refused_naming_the_node(nodes, consts):
    """Too few inputs for the operator, or a 0-d MatMul weight: a ValueError
    naming the node (each raised IndexError)."""
    refused_naming(graph_model(nodes, consts), "'bad'")


def test_unreadable_initializers_are_refused():
    """Initializer data onnx cannot read (truncated raw data; external data
    that a ModelProto or bytes cannot carry): a ValueError naming it (numpy's
    unnamed ValueError, onnx's ValidationError before)."""
    short = TensorProto(name="k", data_type=TensorProto.FLOAT, dims=[3, 2], raw_data=b"\x00" * 5)
    refused_naming(graph_model([helper.make_node("MatMul", ["x", "k"], ["y"])], [short]), "'k'", "unreadable")
    ext = TensorProto(name="k", data_type=TensorProto.FLOAT, dims=[3, 2], data_location=TensorProto.EXTERNAL)
    entry = ext.external_data.add()
    entry.key, entry.value = "location", "nowhere.bin"
    model = graph_model([helper.make_node("MatMul", ["x", "k"], ["y"])], [ext])
    for source in (model, model.SerializeToString()):
        refused_naming(source, "'k'", "external data")


def test_weights_without_units_or_of_text_are_refused():
    """W [1, 0, 3] (no units) and object weights even with dtype=: refused
    naming the node (errors named num_units or an internal state_dict before)."""
    gru = helper.make_node("GRU", ["x", "W", "R"], ["y"], name="g0")
    zeros = [("W", np.zeros((1, 0, 3), np.float32)), ("R", np.zeros((1, 0, 0), np.float32))]
    refused_naming(graph_model([gru], zeros), "'g0'", "hidden_size >= 1")
    no_input = [("W", np.zeros((1, 6, 0), np.float32)), ("R", np.zeros((1, 6, 2), np.float32))]
    refused_naming(graph_model([gru], no_input), "'g0'", "input size >= 1")
    rnn = helper.make_node("RNN", ["x", "W", "R"], ["y"], name="r0")
    text = [("W", np.array([[["a"] * 3] * 2], dtype=object)), ("R", np.zeros((1, 2, 2), np.float32))]
    with raises_naming(ValueError, "path_or_model.*'r0'.*numeric"):
        convert.from_onnx(graph_model([rnn], text), dtype=np.float32)
    dense = helper.make_node("MatMul", ["x", "k"], ["y"], name="d0")
    with raises_naming(ValueError, "path_or_model.*'d0'.*numeric"):
        convert.from_onnx(graph_model([dense], [("k", np.array([["a", "b"]] * 3, dtype=object))]), dtype=np.float32)


def _rnn_with_initial_h(pre, consts, inputs=("x",)):
    rng = np.random.default_rng(5)
    node = helper.make_node("RNN", ["x", "W", "R", "", "", "h0"], ["y"], name="r0", hidden_size=2)
    weights = [
        ("W", rng.normal(size=(1, 2, 3)).astype(np.float32)),
        ("R", rng.normal(size=(1, 2, 2)).astype(np.float32)),
    ]
    return graph_model([*pre, node], weights + list(consts), inputs=inputs)


def test_an_initial_state_must_be_a_graph_input_or_zero():
    """initial_h computed from constants (a non-zero Add of scalars expanded,
    a Tile reshaped) is refused naming the node (both were accepted, and
    rnnrs would start from zeros instead); a graph input through shape glue,
    and zeros expanded to the shape, are accepted."""
    shape = ("shape", np.array([1, 4, 2], np.int64))
    one = np.ones((), np.float32)
    add = [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Expand", ["s", "shape"], ["h0"])]
    refused_naming(_rnn_with_initial_h(add, [("a", one), ("b", one), shape]), "'r0'", "initial_h", "Add")
    tile = [helper.make_node("Tile", ["v", "rep"], ["t"]), helper.make_node("Reshape", ["t", "shape"], ["h0"])]
    consts = [("v", np.full(2, 0.7, np.float32)), ("rep", np.array([4], np.int64)), shape]
    refused_naming(_rnn_with_initial_h(tile, consts), "'r0'", "initial_h", "Tile")
    zero = np.zeros((), np.float32)
    accepted = [
        _rnn_with_initial_h([helper.make_node("Expand", ["z", "shape"], ["h0"])], [("z", zero), shape]),
        _rnn_with_initial_h(
            [helper.make_node("Unsqueeze", ["h_in", "ax"], ["h0"])], [("ax", np.array([0]))], inputs=("x", "h_in")
        ),
        _rnn_with_initial_h(
            [helper.make_node("Concat", ["h_a", "h_b"], ["h0"], axis=1)], [], inputs=("x", "h_a", "h_b")
        ),
    ]
    for model in accepted:
        (cell,) = convert.from_onnx(model)
        assert isinstance(cell, rnnrs.BasicRNNCell)


def test_an_add_of_a_table_that_is_not_a_bias_is_refused():
    """MatMul then Add of a [5, 2] constant (say a position table) is no
    Dense bias: refused naming the Add (it gave Dense(use_bias=False) and
    dropped the table); a [2] or [1, 2] bias is the Dense layer's."""
    nodes = [
        helper.make_node("MatMul", ["x", "k"], ["m"]),
        helper.make_node("Add", ["m", "pos"], ["y"], name="pos_add"),
    ]
    k = ("k", np.ones((3, 2), np.float32))
    refused_naming(graph_model(nodes, [k, ("pos", np.full((5, 2), 3.0, np.float32))]), "'pos_add' (Add)", "'pos'")
    for bias in (np.arange(2, dtype=np.float32), np.arange(2, dtype=np.float32)[None]):
        (dense,) = convert.from_onnx(graph_model(nodes, [k, ("pos", bias)]))
        np.testing.assert_array_equal(dense.get_weights()["bias"], [0.0, 1.0])


def test_weights_of_mixed_types_are_refused():
    """ONNX's recurrent operators take W, R and B of one type T: a float64 R or an int64 B next to a
    float32 W is refused naming the node (they were cast silently)."""
    rnn = helper.make_node("RNN", ["x", "W", "R", "B"], ["y"], name="r0")
    w, r, b = np.zeros((1, 2, 3), np.float32), np.zeros((1, 2, 2), np.float32), np.zeros((1, 4), np.float32)
    assert len(convert.from_onnx(graph_model([rnn], [("W", w), ("R", r), ("B", b)]))) == 1
    refused_naming(graph_model([rnn], [("W", w), ("R", r.astype(np.float64)), ("B", b)]), "'r0'", "one type")
    refused_naming(graph_model([rnn], [("W", w), ("R", r), ("B", b.astype(np.int64))]), "'r0'", "one type")
