"""rnnrs.convert.to_onnx: every cell, wrapper, bidirectional pair and whole
model exported to ONNX gives rnnrs's results on ONNX Runtime (ragged
batches with lengths 0 and T) and on ``onnx.reference`` (full-length
batches: its released RNN kernels ignore ``sequence_lens`` and
``activations``); every graph passes ``onnx.checker`` (full check); what
cannot be exported is refused with a clear error.

Skipped where ``onnx`` is not installed (the optional extra ``rnnrs[onnx]``);
the ONNX Runtime tests also where ``onnxruntime`` is not.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnnrs
from helpers import ragged_lengths, raises_naming, seeds
from rnnrs.convert import to_onnx
from rnnrs.layers import RNN, Bidirectional, Dense, Dropout, Embedding, TimeDistributed, flatten_state

onnx = pytest.importorskip("onnx", reason='to_onnx needs the optional extra: pip install "rnnrs[onnx]"')

TOL = 1e-5


def _ort():
    return pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed")


def run_ort(model, feeds):
    """The graph's outputs on ONNX Runtime's CPU provider, by output name."""
    ort = _ort()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in model.graph.output]
    return dict(zip(names, session.run(None, feeds)))


def state_names(prefix, cell):
    """The contract's names of a cell's state leaves, in flatten order."""

    def paths(c):
        if isinstance(c, rnnrs.MultiRNNCell):
            return [f"cell_{i}" + ("/" + p if p else "") for i, layer in enumerate(c.cells) for p in paths(layer)]
        template = c.zero_state(1)
        if isinstance(template, rnnrs.LSTMStateTuple):
            return ["c", "h"]
        return [""]

    return [prefix + ("/" + p if p else "") for p in paths(cell)]


def assert_close(got, want, what):
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL, err_msg=what)


# Every cell kind and option (the identity activation is ONNX's Affine).
CELLS = {
    **{f"basic_rnn_{a}": (lambda a=a: rnnrs.BasicRNNCell(4, activation=a, seed=1)) for a in rnnrs.cells.ACTIVATIONS},
    **{
        f"basic_lstm_{a}": (lambda a=a: rnnrs.BasicLSTMCell(4, forget_bias=0.7, activation=a, seed=2))
        for a in rnnrs.cells.ACTIVATIONS
    },
    **{f"gru_{a}": (lambda a=a: rnnrs.GRUCell(4, activation=a, seed=3)) for a in rnnrs.cells.ACTIVATIONS},
    **{
        f"gru_reset_after_{a}": (lambda a=a: rnnrs.GRUCell(4, activation=a, reset_after=True, seed=4))
        for a in rnnrs.cells.ACTIVATIONS
    },
    "lstm_plain": lambda: rnnrs.LSTMCell(4, seed=5),
    "lstm_peepholes": lambda: rnnrs.LSTMCell(4, use_peepholes=True, forget_bias=0.0, seed=6),
    "lstm_peepholes_relu": lambda: rnnrs.LSTMCell(4, use_peepholes=True, activation="relu", seed=6),
    "lstm_proj_clip_ignored": lambda: rnnrs.LSTMCell(4, proj_clip=0.1, seed=6),  # ignored without num_proj
    # Scan: projection and clipping have no ONNX operator.
    "lstm_proj": lambda: rnnrs.LSTMCell(4, num_proj=2, seed=7),
    "lstm_proj_clip": lambda: rnnrs.LSTMCell(4, num_proj=3, proj_clip=0.2, seed=7),
    "lstm_cell_clip": lambda: rnnrs.LSTMCell(4, cell_clip=0.3, seed=8),
    "lstm_everything": lambda: rnnrs.LSTMCell(
        5, use_peepholes=True, cell_clip=0.4, num_proj=3, proj_clip=0.25, activation="identity", seed=9
    ),
    # Wrappers.
    "multi": lambda: rnnrs.MultiRNNCell(
        [rnnrs.BasicLSTMCell(4, seed=1), rnnrs.GRUCell(3, seed=2), rnnrs.LSTMCell(3, num_proj=2, seed=3)]
    ),
    "multi_nested": lambda: rnnrs.MultiRNNCell(
        [rnnrs.MultiRNNCell([rnnrs.BasicRNNCell(3, seed=1)]), rnnrs.ResidualWrapper(rnnrs.BasicRNNCell(3, seed=2))]
    ),
    "output_projection": lambda: rnnrs.OutputProjectionWrapper(rnnrs.BasicLSTMCell(4, seed=1), 2, seed=2),
    "residual": lambda: rnnrs.ResidualWrapper(rnnrs.GRUCell(3, seed=1)),
    "dropout": lambda: rnnrs.DropoutWrapper(
        rnnrs.GRUCell(4, seed=1), input_keep_prob=0.5, output_keep_prob=0.5, state_keep_prob=0.5, seed=3
    ),
    "all_wrappers": lambda: rnnrs.MultiRNNCell(
        [
            rnnrs.DropoutWrapper(rnnrs.LSTMCell(3, use_peepholes=True, seed=1), output_keep_prob=0.7),
            rnnrs.ResidualWrapper(rnnrs.OutputProjectionWrapper(rnnrs.GRUCell(4, reset_after=True, seed=2), 3)),
        ]
    ),
}


def ragged(rng, batch=6, time=5, size=3, dtype=np.float32):
    """Inputs with padding that holds garbage, and lengths with 0 and T."""
    x = rng.normal(size=(batch, time, size)).astype(dtype)
    lengths = np.array([0, time, 2, 1, time, 3][:batch], dtype=np.int64)
    return x, lengths


def input_size_for(cell):
    # A ResidualWrapper at the bottom needs input size == output size.
    return cell.output_size if isinstance(cell, rnnrs.ResidualWrapper) else 3


def check_cell(cell, x, lengths, dtype=np.float32):
    """Exported ``cell`` on ONNX Runtime equals ``rnnrs.dynamic_rnn``."""
    model = to_onnx(cell)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["inputs", "sequence_length"]
    names = ["outputs", *state_names("state", cell)]
    assert [o.name for o in model.graph.output] == names
    got = run_ort(model, {"inputs": x, "sequence_length": lengths})
    outputs, state = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths)
    wants = [outputs, *flatten_state(state)]
    for name, want in zip(names, wants):
        assert got[name].dtype == np.dtype(dtype), name
        assert_close(got[name], want, name)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_cell_on_onnxruntime_equals_dynamic_rnn(kind):
    """Outputs and every state leaf on a ragged batch (lengths 0 and T):
    zeros past each row's length, the initial (zero) state for length 0."""
    _ort()
    cell = CELLS[kind]()
    size = input_size_for(cell)
    cell.build(size)
    x, lengths = ragged(np.random.default_rng(0), size=size)
    check_cell(cell, x, lengths)


def test_padding_never_reaches_the_results():
    """NaN in the padding (past each row's length) changes nothing, through
    every path (operators, Scan, wrappers)."""
    _ort()
    for kind in ("basic_lstm_tanh", "lstm_everything", "all_wrappers", "output_projection"):
        cell = CELLS[kind]()
        cell.build(3)
        x, lengths = ragged(np.random.default_rng(1))
        clean = run_ort(to_onnx(cell), {"inputs": x, "sequence_length": lengths})
        x[np.arange(x.shape[1])[None, :] >= lengths[:, None]] = np.nan
        dirty = run_ort(to_onnx(cell), {"inputs": x, "sequence_length": lengths})
        for name in clean:
            np.testing.assert_array_equal(dirty[name], clean[name], err_msg=f"{kind}: {name}")


@st.composite
def shapes(draw):
    batch = draw(st.integers(1, 4), label="B")
    time = draw(st.integers(1, 5), label="T")
    return (
        batch,
        time,
        draw(st.integers(1, 3), label="I"),
        draw(st.integers(1, 4), label="H"),
        draw(ragged_lengths(batch, time), label="lengths"),
        draw(st.sampled_from(["rnn", "lstm", "peephole_lstm", "proj_lstm", "gru", "gru_after"]), label="kind"),
        draw(seeds, label="seed"),
    )


@given(shapes())
def test_shapes_property(problem):
    """Any small shape and any lengths in [0, T]: ONNX Runtime equals rnnrs."""
    _ort()
    batch, time, size, units, lengths, kind, seed = problem
    cell = {
        "rnn": lambda: rnnrs.BasicRNNCell(units, seed=seed),
        "lstm": lambda: rnnrs.BasicLSTMCell(units, seed=seed),
        "peephole_lstm": lambda: rnnrs.LSTMCell(units, use_peepholes=True, seed=seed),
        "proj_lstm": lambda: rnnrs.LSTMCell(units, num_proj=max(1, units - 1), cell_clip=0.5, seed=seed),
        "gru": lambda: rnnrs.GRUCell(units, seed=seed),
        "gru_after": lambda: rnnrs.GRUCell(units, reset_after=True, seed=seed),
    }[kind]()
    cell.build(size)
    x = np.random.default_rng(seed).normal(size=(batch, time, size)).astype(np.float32)
    check_cell(cell, x, np.array(lengths, dtype=np.int64))


PAIRS = {
    "same_lstm": lambda: (rnnrs.BasicLSTMCell(4, seed=1), rnnrs.BasicLSTMCell(4, seed=2)),
    "gru_rnn": lambda: (rnnrs.GRUCell(3, reset_after=True, seed=1), rnnrs.BasicRNNCell(2, activation="relu", seed=2)),
    "scan_multi": lambda: (
        rnnrs.LSTMCell(3, num_proj=2, seed=1),
        rnnrs.MultiRNNCell([rnnrs.GRUCell(3, seed=2), rnnrs.OutputProjectionWrapper(rnnrs.BasicRNNCell(3), 2)]),
    ),
}


@pytest.mark.parametrize("kind", sorted(PAIRS))
def test_pair_on_onnxruntime_equals_bidirectional_dynamic_rnn(kind):
    """The backward cell reads each row reversed within its length; its
    outputs come back aligned with the inputs; names as in the contract."""
    _ort()
    fw, bw = PAIRS[kind]()
    fw.build(3)
    bw.build(3)
    x, lengths = ragged(np.random.default_rng(2))
    model = to_onnx((fw, bw))
    onnx.checker.check_model(model, full_check=True)
    names = ["outputs_fw", "outputs_bw", *state_names("state_fw", fw), *state_names("state_bw", bw)]
    assert [o.name for o in model.graph.output] == names
    got = run_ort(model, {"inputs": x, "sequence_length": lengths})
    (out_fw, out_bw), (st_fw, st_bw) = rnnrs.bidirectional_dynamic_rnn(fw, bw, x, sequence_length=lengths)
    for name, want in zip(names, [out_fw, out_bw, *flatten_state(st_fw), *flatten_state(st_bw)]):
        assert_close(got[name], want, name)


def _classifier():
    model = rnnrs.SequenceClassifier(rnnrs.GRUCell(5, seed=1), 4, seed=2)
    model.build(3)
    return model


def _regressor():
    model = rnnrs.SequenceRegressor(rnnrs.LSTMCell(5, num_proj=3, seed=1), 2, seed=2)
    model.build(3)
    return model


def _deep():
    model = rnnrs.Sequential(
        [
            RNN(rnnrs.BasicLSTMCell(4, seed=1), return_sequences=True, go_backwards=True),
            Dropout(0.5),
            TimeDistributed(Dense(3, activation="relu", seed=2)),
            RNN(rnnrs.MultiRNNCell([rnnrs.GRUCell(4, seed=3), rnnrs.BasicRNNCell(3, seed=4)])),
            Dense(3, activation="tanh", seed=5),
            Dense(2, use_bias=False, seed=6),
        ]
    )
    model.compile("adam", "binary_crossentropy")
    model.build(3)
    return model


def _sequence_softmax():
    model = rnnrs.Sequential([RNN(rnnrs.BasicRNNCell(4, seed=1), return_sequences=True), Dense(3, seed=2)])
    model.compile("adam", "categorical_crossentropy")
    model.build(3)
    return model


def _uncompiled():
    model = rnnrs.Sequential([RNN(rnnrs.GRUCell(4, seed=1)), Dense(2, activation="sigmoid", seed=2)])
    model.build(3)
    return model


def _bidirectional(merge_mode, return_sequences, forward_backwards=False):
    def make():
        layer = RNN(rnnrs.LSTMCell(4, num_proj=3, seed=1), return_sequences=return_sequences)
        backward = RNN(rnnrs.GRUCell(3, seed=2), return_sequences=return_sequences, go_backwards=not forward_backwards)
        layer.go_backwards = forward_backwards
        model = rnnrs.Sequential(
            [Bidirectional(layer, merge_mode=merge_mode, backward_layer=backward), Dense(3, seed=3)]
        )
        model.compile("adam", "sparse_softmax_cross_entropy")
        model.build(3)
        return model

    return make


MODELS = {
    "bidirectional_concat_last": _bidirectional("concat", False),
    "bidirectional_sum_sequences": _bidirectional("sum", True),
    "bidirectional_ave_sequences_reversed": _bidirectional("ave", True, forward_backwards=True),
    "bidirectional_mul_last": _bidirectional("mul", False),
    "classifier": _classifier,
    "regressor": _regressor,
    "deep": _deep,
    "sequence_softmax": _sequence_softmax,
    "uncompiled": _uncompiled,
}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_model_predictions_on_onnxruntime_equal_predict(kind):
    """``predictions`` is what ``predict`` returns (softmax / sigmoid by the
    loss, the last valid step, zeros past each row's length and for length 0)."""
    _ort()
    model = MODELS[kind]()
    x, lengths = ragged(np.random.default_rng(3))
    exported = to_onnx(model)
    onnx.checker.check_model(exported, full_check=True)
    assert [o.name for o in exported.graph.output] == ["predictions"]
    got = run_ort(exported, {"inputs": x, "sequence_length": lengths})["predictions"]
    want = model.predict(x, sequence_length=lengths)
    assert got.shape == want.shape
    assert np.abs(want).max() > 0.01  # a real comparison, not of zeros
    assert_close(got, want, kind)


@pytest.mark.parametrize("mask_zero", [False, True])
def test_embedding_model(mask_zero):
    """An Embedding first: int64 ids ``[B, T]`` in; with ``mask_zero`` the
    lengths are derived in the graph (the smaller of derived and given)."""
    _ort()
    model = rnnrs.Sequential(
        [Embedding(12, 3, mask_zero=mask_zero, seed=1), RNN(rnnrs.BasicLSTMCell(4, seed=2)), Dense(3, seed=3)]
    )
    model.compile("adam", "sparse_softmax_cross_entropy")
    model.build()
    rng = np.random.default_rng(4)
    ids = rng.integers(1, 12, size=(5, 6)).astype(np.int64)
    ids[0] = 0
    ids[2, 3:] = 0
    given = np.array([6, 6, 6, 2, 0], dtype=np.int64)
    exported = to_onnx(model)
    onnx.checker.check_model(exported, full_check=True)
    assert exported.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    got = run_ort(exported, {"inputs": ids, "sequence_length": given})["predictions"]
    assert_close(got, model.predict(ids, sequence_length=given), "predictions")


def test_float64_graphs():
    """float64: valid ONNX of float64 tensors; ONNX Runtime runs the Scan
    graphs; the doc string of a graph with RNN / LSTM / GRU nodes says that
    ONNX Runtime has no float64 kernels for them (the reference evaluator
    test below runs them)."""
    _ort()
    cell = rnnrs.LSTMCell(3, num_proj=2, cell_clip=0.5, dtype=np.float64, seed=1)
    cell.build(3)
    x, lengths = ragged(np.random.default_rng(5), dtype=np.float64)
    check_cell(cell, x, lengths, dtype=np.float64)
    assert to_onnx(cell).doc_string == ""
    for cell, ops in (
        (rnnrs.BasicRNNCell(3, dtype=np.float64), "RNN"),
        (rnnrs.GRUCell(3, dtype=np.float64), "GRU"),
        (
            rnnrs.MultiRNNCell([rnnrs.BasicLSTMCell(3, dtype=np.float64), rnnrs.GRUCell(3, dtype=np.float64)]),
            "GRU/LSTM",
        ),
    ):
        cell.build(2)
        model = to_onnx(cell)
        onnx.checker.check_model(model, full_check=True)
        assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
        assert f"float64 graph with ONNX {ops} operators" in model.doc_string
        assert "ONNX Runtime has no float64 kernels" in model.doc_string


REFERENCE_CELLS = {
    "rnn": lambda dt: rnnrs.BasicRNNCell(4, dtype=dt, seed=1),
    "lstm": lambda dt: rnnrs.BasicLSTMCell(4, forget_bias=0.3, dtype=dt, seed=2),
    "peephole_lstm": lambda dt: rnnrs.LSTMCell(4, use_peepholes=True, dtype=dt, seed=2),
    "gru": lambda dt: rnnrs.GRUCell(4, dtype=dt, seed=3),
    "gru_after": lambda dt: rnnrs.GRUCell(4, reset_after=True, dtype=dt, seed=4),
    "scan_lstm": lambda dt: rnnrs.LSTMCell(
        4, use_peepholes=True, cell_clip=0.4, num_proj=3, proj_clip=0.3, activation="relu", dtype=dt, seed=5
    ),
    "wrappers": lambda dt: rnnrs.MultiRNNCell(
        [
            rnnrs.OutputProjectionWrapper(rnnrs.GRUCell(4, dtype=dt, seed=6), 3, seed=7),
            rnnrs.ResidualWrapper(rnnrs.DropoutWrapper(rnnrs.BasicLSTMCell(3, dtype=dt, seed=8))),
        ]
    ),
}


@pytest.mark.parametrize("kind", sorted(REFERENCE_CELLS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_onnx_reference_evaluator_full_length(kind, dtype):
    """The pure-Python ``onnx.reference`` runtime agrees on full-length
    batches (its RNN kernels ignore ``sequence_lens`` and ``activations``, so
    tanh cells and full rows there; the Scan path has neither limit)."""
    from onnx.reference import ReferenceEvaluator

    cell = REFERENCE_CELLS[kind](dtype)
    cell.build(3)
    x = np.random.default_rng(6).normal(size=(3, 4, 3)).astype(dtype)
    lengths = np.full(3, 4, dtype=np.int64)
    got = ReferenceEvaluator(to_onnx(cell)).run(None, {"inputs": x, "sequence_length": lengths})
    outputs, state = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths)
    wants = [outputs, *flatten_state(state)]
    assert len(got) == len(wants)
    for value, want in zip(got, wants):
        assert value.dtype == np.dtype(dtype)
        np.testing.assert_allclose(value, want, rtol=TOL if dtype == np.float32 else 1e-12, atol=TOL)


def _embedding_model(mask_zero):
    model = rnnrs.Sequential(
        [
            Embedding(10, 4, mask_zero=mask_zero, seed=1),
            Bidirectional(RNN(rnnrs.GRUCell(3, seed=2), return_sequences=True)),
            TimeDistributed(Dense(5, seed=3)),
            Dropout(0.3),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.build()
    return model


def _dropout_only():
    model = rnnrs.Sequential([Dropout(0.1)])
    model.build(3)
    return model


def _every_kind():
    """(label, object, feeds, the rnnrs results in graph-output order) for
    every kind of exported object."""
    x, lengths = ragged(np.random.default_rng(7))
    feeds = {"inputs": x, "sequence_length": lengths}
    for kind in sorted(CELLS):
        cell = CELLS[kind]()
        size = input_size_for(cell)
        cell.build(size)
        xs = x if size == 3 else ragged(np.random.default_rng(7), size=size)[0]
        outputs, state = rnnrs.dynamic_rnn(cell, xs, sequence_length=lengths)
        yield kind, cell, {"inputs": xs, "sequence_length": lengths}, [outputs, *flatten_state(state)]
    for kind in sorted(PAIRS):
        fw, bw = PAIRS[kind]()
        fw.build(3)
        bw.build(3)
        (out_fw, out_bw), (st_fw, st_bw) = rnnrs.bidirectional_dynamic_rnn(fw, bw, x, sequence_length=lengths)
        yield kind, (fw, bw), feeds, [out_fw, out_bw, *flatten_state(st_fw), *flatten_state(st_bw)]
    models = {**MODELS, "dropout_only": _dropout_only}
    for kind in sorted(models):
        model = models[kind]()
        yield kind, model, feeds, [model.predict(x, sequence_length=lengths)]
    ids = np.array([[1, 2, 3, 0, 0], [0, 0, 0, 0, 0], [4, 5, 6, 7, 8], [3, 0, 0, 0, 0]], dtype=np.int64)
    given = np.array([5, 5, 4, 5], dtype=np.int64)
    for mask_zero in (False, True):
        model = _embedding_model(mask_zero)
        want = model.predict(ids, sequence_length=given)
        yield f"embedding_mask_zero_{mask_zero}", model, {"inputs": ids, "sequence_length": given}, [want]


@pytest.mark.parametrize("opset", [15, 17, 18, "newest"])
def test_every_kind_at_old_and_new_opsets(opset):
    """Every exported kind passes onnx.checker (full check) at opsets 15, 17,
    18 and the installed onnx's newest, and gives rnnrs's results on ONNX
    Runtime where it supports that opset. Pins: from opset 18 on,
    ``ReduceMax`` (an ``Embedding(mask_zero=True)``'s lengths) takes its axes
    as an input (an ``axes`` attribute failed the checker); a model of only
    ``Dropout`` layers exports as the identity (it raised UnboundLocalError)."""
    opset = onnx.defs.onnx_opset_version() if opset == "newest" else opset
    cases = []
    for label, obj, feeds, wants in _every_kind():
        model = to_onnx(obj, opset=opset)
        assert model.opset_import[0].version == opset
        onnx.checker.check_model(model, full_check=True)
        cases.append((label, model, feeds, wants))
    ort = _ort()
    try:
        ort.InferenceSession(cases[0][1].SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as e:  # an ONNX Runtime older than the onnx package
        if "opset" not in str(e).lower():
            raise
        pytest.skip(f"onnxruntime {ort.__version__} does not run opset {opset}: {e}")
    for label, model, feeds, wants in cases:
        got = run_ort(model, feeds)
        names = [o.name for o in model.graph.output]
        assert len(names) == len(wants), label
        for name, want in zip(names, wants):
            assert got[name].shape == want.shape, f"{label}: {name}"
            assert_close(got[name], want, f"{label} at opset {opset}: {name}")


def test_a_dropout_only_model_exports_the_identity():
    """``predict`` of a model of Dropout layers returns its inputs (zero past
    each row's length); the export gives the same (it raised UnboundLocalError)."""
    _ort()
    model = _dropout_only()
    x, lengths = ragged(np.random.default_rng(8))
    exported = to_onnx(model)
    assert exported.graph.output[0].type.tensor_type.shape.dim[2].dim_value == 3
    got = run_ort(exported, {"inputs": x, "sequence_length": lengths})["predictions"]
    want = model.predict(x, sequence_length=lengths)
    assert np.abs(want).max() > 0.01
    assert_close(got, want, "predictions")


def test_path_and_opset(tmp_path):
    """``path`` (str or PathLike) gets the same model; ``opset`` defaults to 17
    and accepts the range of the installed onnx."""
    cell = rnnrs.GRUCell(3, seed=1)
    cell.build(2)
    model = to_onnx(cell)
    assert model.opset_import[0].version == 17
    target = tmp_path / "gru.onnx"
    written = to_onnx(cell, target)
    assert onnx.load(str(target)) == written == model
    to_onnx(cell, str(tmp_path / "gru2.onnx"), opset=15)
    assert onnx.load(str(tmp_path / "gru2.onnx")).opset_import[0].version == 15
    newest = onnx.defs.onnx_opset_version()
    assert to_onnx(cell, opset=newest).opset_import[0].version == newest
    onnx.checker.check_model(to_onnx(cell, opset=newest), full_check=True)


def test_bad_arguments(tmp_path):
    """Every bad argument: a clear error naming it (expected ..., got ...)."""
    cell = rnnrs.BasicRNNCell(3)
    cell.build(2)
    with raises_naming(ValueError, "opset"):
        to_onnx(cell, opset=14)
    with raises_naming(ValueError, "opset"):
        to_onnx(cell, opset=onnx.defs.onnx_opset_version() + 1)
    for bad in ("17", 17.0, True):
        with raises_naming(TypeError, "opset"):
            to_onnx(cell, opset=bad)
    with raises_naming(TypeError, "path"):
        to_onnx(cell, 3)
    with raises_naming(ValueError, "path"):
        to_onnx(cell, "")
    with raises_naming(ValueError, "path"):
        to_onnx(cell, tmp_path / "missing_dir" / "x.onnx")
    for bad in (3, "cell", [cell, cell], (cell,), (cell, cell, cell), None):
        with raises_naming(TypeError, "obj"):
            to_onnx(bad)


def test_refusals():
    """What cannot be exported is refused with a ValueError saying what."""
    with raises_naming(ValueError, "obj.*unbuilt BasicLSTMCell"):
        to_onnx(rnnrs.BasicLSTMCell(3))
    built = rnnrs.GRUCell(3)
    built.build(2)
    with raises_naming(ValueError, r"obj\[1\].*unbuilt"):
        to_onnx((built, rnnrs.GRUCell(3)))
    with raises_naming(TypeError, r"obj\[0\]"):
        to_onnx((3, built))
    other = rnnrs.GRUCell(3)
    other.build(4)
    with raises_naming(ValueError, "obj.*one input size"):
        to_onnx((built, other))

    class Custom(rnnrs.BasicRNNCell):
        pass

    custom = Custom(3)
    custom.build(2)
    with raises_naming(ValueError, "obj.*Custom"):
        to_onnx(custom)

    class MyResidual(rnnrs.ResidualWrapper):  # its _run may differ: not exported as a ResidualWrapper
        pass

    wrapped = rnnrs.MultiRNNCell([rnnrs.GRUCell(2), MyResidual(rnnrs.GRUCell(2))])
    wrapped.build(2)
    with raises_naming(ValueError, "obj.*MyResidual"):
        to_onnx(wrapped)
    with raises_naming(ValueError, "obj.*built model"):
        to_onnx(rnnrs.SequenceClassifier(rnnrs.GRUCell(3), 2))

    class Noise(Dropout):  # a layer of the user's own: its ops are unknown
        pass

    own = rnnrs.Sequential([RNN(rnnrs.GRUCell(3)), Noise(0.1, name="noise")])
    own.build(2)
    with raises_naming(ValueError, "obj.*'noise' of kind Noise"):
        to_onnx(own)
    x = rnnrs.Input((None, 2))
    functional = rnnrs.Model(x, Dense(2)(RNN(rnnrs.GRUCell(3))(x)))
    with raises_naming(TypeError, "obj.*Model"):
        to_onnx(functional)
    stateful = rnnrs.Sequential([RNN(rnnrs.GRUCell(3), stateful=True), Dense(2)])
    stateful.build(2)
    with raises_naming(ValueError, "obj.*stateful"):
        to_onnx(stateful)


def test_onnx_is_optional():
    """``import rnnrs`` never imports onnx; without onnx, to_onnx says how to get it."""
    code = (
        "import sys; sys.modules['onnx'] = None\n"
        "import rnnrs, rnnrs.convert\n"
        "assert 'onnxruntime' not in sys.modules\n"
        "cell = rnnrs.GRUCell(2); cell.build(2)\n"
        "try:\n"
        "    rnnrs.convert.to_onnx(cell)\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert 'pip install "rnnrs[onnx]"' in out
    code = "import sys, rnnrs, rnnrs.convert; print('onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "False"
