"""TensorFlow 1.x call forms: TF 1.15's positional orders and extra keywords
for the run functions and the cell constructors, and TF's fully scoped
variable names through ``get_weights(scope=...)`` / ``set_weights(..., scope=...)``.

The TensorFlow 1.15 signatures these tests pin (tensorflow/python/ops/rnn.py,
rnn_cell_impl.py, contrib/rnn/python/ops/core_rnn_cell.py)::

    dynamic_rnn(cell, inputs, sequence_length=None, initial_state=None, dtype=None,
                parallel_iterations=None, swap_memory=False, time_major=False, scope=None)
    static_rnn(cell, inputs, initial_state=None, dtype=None, sequence_length=None, scope=None)
    bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs, sequence_length=None, initial_state_fw=None,
                              initial_state_bw=None, dtype=None, parallel_iterations=None,
                              swap_memory=False, time_major=False, scope=None)
    static_bidirectional_rnn(cell_fw, cell_bw, inputs, initial_state_fw=None, initial_state_bw=None,
                             dtype=None, sequence_length=None, scope=None)
    BasicRNNCell(num_units, activation=None, reuse=None, name=None, dtype=None)
    BasicLSTMCell(num_units, forget_bias=1.0, state_is_tuple=True, activation=None, reuse=None,
                  name=None, dtype=None)
    LSTMCell(num_units, use_peepholes=False, cell_clip=None, initializer=None, num_proj=None,
             proj_clip=None, num_unit_shards=None, num_proj_shards=None, forget_bias=1.0,
             state_is_tuple=True, activation=None, reuse=None, name=None, dtype=None)
    GRUCell(num_units, activation=None, reuse=None, kernel_initializer=None, bias_initializer=None,
            name=None, dtype=None)
    MultiRNNCell(cells, state_is_tuple=True)
    DropoutWrapper(cell, input_keep_prob=1.0, output_keep_prob=1.0, state_keep_prob=1.0,
                   variational_recurrent=False, input_size=None, dtype=None, seed=None,
                   dropout_state_filter_visitor=None)
    OutputProjectionWrapper(cell, output_size, activation=None, reuse=None)
    ResidualWrapper(cell, residual_fn=None)

Before this change every positional form below either raised TypeError or
meant something else (``static_rnn(cell, xs, state)`` read ``state`` as
``sequence_length``; ``dynamic_rnn``'s 5th positional was ``time_major``).
"""

from __future__ import annotations

import numpy as np
import pytest

import rnnrs
from helpers import raises_naming
from rnnrs.tfnames import tf_scoped_names

B, T, I = 3, 4, 2


class FakeTFDType:
    """What ``tf.float32`` looks like to rnnrs: an object with ``as_numpy_dtype``."""

    def __init__(self, np_type):
        self.as_numpy_dtype = np_type
        self.name = np.dtype(np_type).name


def data(dtype=np.float32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, I)).astype(dtype)
    lengths = np.array([4, 0, 2])
    return x, lengths


def same(a, b):
    if isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            same(u, v)
    else:
        np.testing.assert_array_equal(a, b)


# -- run functions: positional order == keyword form --------------------------


def test_dynamic_rnn_tf_positional_order():
    cell = rnnrs.BasicLSTMCell(3, seed=1)
    x, lengths = data()
    state = cell.zero_state(B)._replace(h=np.ones((B, 3), np.float32))
    keyword = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=state, dtype=np.float32)
    positional = rnnrs.dynamic_rnn(cell, x, lengths, state, np.float32, 32, True, False, "rnn")
    same(positional, keyword)
    tm = rnnrs.dynamic_rnn(cell, x.transpose(1, 0, 2), lengths, state, None, None, False, True)
    np.testing.assert_allclose(tm[0].transpose(1, 0, 2), keyword[0], atol=1e-6)
    # the chapter's form
    out, _ = rnnrs.dynamic_rnn(cell, x, dtype=np.float32, sequence_length=lengths)
    np.testing.assert_array_equal(out, rnnrs.dynamic_rnn(cell, x, lengths)[0])


def test_static_rnn_third_positional_is_initial_state():
    cell = rnnrs.GRUCell(3, seed=2)
    x, lengths = data()
    steps = list(x.transpose(1, 0, 2))
    state = np.full((B, 3), 0.5, np.float32)
    keyword = rnnrs.static_rnn(cell, steps, initial_state=state, dtype=np.float32, sequence_length=lengths)
    positional = rnnrs.static_rnn(cell, steps, state, np.float32, lengths, "rnn")
    same(positional, keyword)
    # the state really is the initial state (row 1 has length 0: its final state is the initial one)
    np.testing.assert_array_equal(positional[1][1], state[1])


def test_bidirectional_dynamic_rnn_tf_positional_order():
    fw, bw = rnnrs.BasicRNNCell(3, seed=1), rnnrs.GRUCell(2, seed=2)
    x, lengths = data()
    s_fw, s_bw = np.ones((B, 3), np.float32), np.ones((B, 2), np.float32)
    keyword = rnnrs.bidirectional_dynamic_rnn(
        fw, bw, x, sequence_length=lengths, initial_state_fw=s_fw, initial_state_bw=s_bw, dtype=np.float32
    )
    positional = rnnrs.bidirectional_dynamic_rnn(fw, bw, x, lengths, s_fw, s_bw, np.float32, 8, False, False, "b")
    same(positional, keyword)
    tm = rnnrs.bidirectional_dynamic_rnn(fw, bw, x.transpose(1, 0, 2), lengths, s_fw, s_bw, None, None, False, True)
    np.testing.assert_allclose(tm[0][1].transpose(1, 0, 2), keyword[0][1], atol=1e-6)


def test_static_bidirectional_rnn_tf_positional_order():
    fw, bw = rnnrs.BasicRNNCell(3, seed=1), rnnrs.BasicLSTMCell(2, seed=2)
    x, lengths = data()
    steps = list(x.transpose(1, 0, 2))
    s_fw, s_bw = np.ones((B, 3), np.float32), bw.zero_state(B)
    keyword = rnnrs.static_bidirectional_rnn(
        fw, bw, steps, initial_state_fw=s_fw, initial_state_bw=s_bw, dtype=np.float32, sequence_length=lengths
    )
    positional = rnnrs.static_bidirectional_rnn(fw, bw, steps, s_fw, s_bw, np.float32, lengths, "bidirectional_rnn")
    same(positional, keyword)


def test_rnnrs_keywords_still_work_and_are_keyword_only():
    cell = rnnrs.BasicRNNCell(3, seed=1)
    x, lengths = data()
    out, state, backprop = rnnrs.dynamic_rnn(cell, x, lengths, training=True, return_backprop=True)
    assert backprop(np.ones_like(out)).inputs.shape == x.shape
    with pytest.raises(TypeError):
        rnnrs.dynamic_rnn(cell, x, lengths, None, None, None, False, False, None, False)


@pytest.mark.parametrize(
    "dtype", [np.float32, "float32", np.dtype(np.float32), FakeTFDType(np.float32)], ids=["np", "str", "dtype", "tf"]
)
def test_dtype_forms_accepted(dtype):
    cell = rnnrs.BasicRNNCell(3, seed=1)
    x, _ = data()
    np.testing.assert_array_equal(rnnrs.dynamic_rnn(cell, x, dtype=dtype)[0], rnnrs.dynamic_rnn(cell, x)[0])


@pytest.mark.parametrize(
    "call",
    [
        lambda c, x: rnnrs.dynamic_rnn(c, x, dtype=np.float64),
        lambda c, x: rnnrs.dynamic_rnn(c, x, None, None, FakeTFDType(np.float64)),
        lambda c, x: rnnrs.static_rnn(c, list(x.transpose(1, 0, 2)), None, "float64"),
        lambda c, x: rnnrs.bidirectional_dynamic_rnn(c, rnnrs.GRUCell(2), x, dtype=np.float64),
        lambda c, x: rnnrs.static_bidirectional_rnn(
            c, rnnrs.GRUCell(2), list(x.transpose(1, 0, 2)), None, None, np.float64
        ),
        lambda c, x: rnnrs.dynamic_rnn(c, x, initial_state=np.zeros((B, 3)), dtype=np.float16),
    ],
)
def test_dtype_mismatch_is_a_value_error_naming_dtype(call):
    x, _ = data()
    with pytest.raises(ValueError, match=r"^dtype: expected float32.*got float(64|16)"):
        call(rnnrs.BasicRNNCell(3), x)


def test_float64_cell_with_matching_dtype():
    cell = rnnrs.BasicLSTMCell(3, dtype=np.float64, seed=0)
    x, _ = data(np.float64)
    out, _ = rnnrs.dynamic_rnn(cell, x, dtype=FakeTFDType(np.float64))
    assert out.dtype == np.float64


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        (dict(dtype="no such dtype"), TypeError, "dtype"),
        (dict(dtype=object()), TypeError, "dtype"),
        (dict(parallel_iterations=0), ValueError, "parallel_iterations"),
        (dict(parallel_iterations=2.5), TypeError, "parallel_iterations"),
        (dict(parallel_iterations=True), TypeError, "parallel_iterations"),
        (dict(swap_memory=1), TypeError, "swap_memory"),
        (dict(swap_memory="yes"), TypeError, "swap_memory"),
        (dict(scope=3), TypeError, "scope"),
        (dict(scope="/bad"), ValueError, "scope"),
        (dict(scope="has space"), ValueError, "scope"),
    ],
)
def test_bad_tf_run_arguments_name_the_argument(kwargs, exc, name):
    x, _ = data()
    for run in (rnnrs.dynamic_rnn, lambda c, xx, **kw: rnnrs.bidirectional_dynamic_rnn(c, rnnrs.GRUCell(2), xx, **kw)):
        with pytest.raises(exc, match=rf"^{name}: expected"):
            run(rnnrs.BasicRNNCell(3), x, **kwargs)


def test_no_effect_keywords_are_accepted():
    cell = rnnrs.GRUCell(3, seed=4)
    x, lengths = data()
    base = rnnrs.dynamic_rnn(cell, x, lengths)
    same(rnnrs.dynamic_rnn(cell, x, lengths, parallel_iterations=1, swap_memory=True, scope="my_rnn/"), base)
    same(rnnrs.dynamic_rnn(cell, x, lengths, scope=""), base)


# -- cell constructors ----------------------------------------------------------


def test_cell_constructors_tf_positional_order():
    """Each positional TF form builds the same cell (same weights, same outputs) as the keyword form."""
    pairs = [
        (
            rnnrs.BasicRNNCell(3, "relu", None, "r", np.float64, seed=1),
            rnnrs.BasicRNNCell(3, activation="relu", name="r", dtype=np.float64, seed=1),
        ),
        (
            rnnrs.BasicLSTMCell(3, 0.5, True, "sigmoid", False, "l", "float64", seed=1),
            rnnrs.BasicLSTMCell(3, forget_bias=0.5, activation="sigmoid", name="l", dtype=np.float64, seed=1),
        ),
        (
            rnnrs.LSTMCell(3, True, 2.0, None, 2, 1.5, None, None, 0.5, True, "relu", None, "p", np.float64, seed=1),
            rnnrs.LSTMCell(
                3,
                use_peepholes=True,
                cell_clip=2.0,
                num_proj=2,
                proj_clip=1.5,
                forget_bias=0.5,
                activation="relu",
                name="p",
                dtype=np.float64,
                seed=1,
            ),
        ),
        (
            rnnrs.GRUCell(3, "relu", None, None, None, "g", np.float64, reset_after=True, seed=1),
            rnnrs.GRUCell(3, activation="relu", name="g", dtype=np.float64, reset_after=True, seed=1),
        ),
    ]
    x, lengths = data(np.float64)
    for a, b in pairs:
        assert type(a) is type(b) and a.dtype == b.dtype == np.float64 and a.name == b.name
        same(rnnrs.dynamic_rnn(a, x, lengths), rnnrs.dynamic_rnn(b, x, lengths))
        same(a.get_weights(), b.get_weights())


def test_activation_none_is_tanh_and_dtype_none_is_float32():
    for cell in (
        rnnrs.BasicRNNCell(2, None),
        rnnrs.BasicLSTMCell(2, 1.0, True, None),
        rnnrs.GRUCell(2, None),
        rnnrs.LSTMCell(2, activation=None),
    ):
        assert cell.activation == "tanh" and cell.dtype == np.float32
    assert rnnrs.GRUCell(2, dtype=FakeTFDType(np.float64)).dtype == np.float64


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: rnnrs.LSTMCell(3, initializer="glorot"), "initializer"),
        (lambda: rnnrs.LSTMCell(3, False, None, object()), "initializer"),
        (lambda: rnnrs.LSTMCell(3, num_unit_shards=2), "num_unit_shards"),
        (lambda: rnnrs.LSTMCell(3, num_proj=2, num_proj_shards=2), "num_proj_shards"),
        (lambda: rnnrs.LSTMCell(3, state_is_tuple=False), "state_is_tuple"),
        (lambda: rnnrs.BasicLSTMCell(3, 1.0, False), "state_is_tuple"),
        (lambda: rnnrs.GRUCell(3, kernel_initializer="ones"), "kernel_initializer"),
        (lambda: rnnrs.GRUCell(3, None, None, None, "zeros"), "bias_initializer"),
        (lambda: rnnrs.MultiRNNCell([rnnrs.GRUCell(2)], False), "state_is_tuple"),
        (lambda: rnnrs.OutputProjectionWrapper(rnnrs.GRUCell(2), 3, "tanh"), "activation"),
        (lambda: rnnrs.ResidualWrapper(rnnrs.GRUCell(2), lambda i, o: i + o), "residual_fn"),
        (
            lambda: rnnrs.DropoutWrapper(rnnrs.GRUCell(2), dropout_state_filter_visitor=lambda s: True),
            "dropout_state_filter_visitor",
        ),
        (lambda: rnnrs.DropoutWrapper(rnnrs.GRUCell(2), 1.0, 1.0, 1.0, False, None, np.float64), "dtype"),
        (lambda: rnnrs.DropoutWrapper(rnnrs.GRUCell(2), input_size=-1), "input_size"),
        (lambda: rnnrs.BasicRNNCell(3, name="/x"), "name"),
    ],
)
def test_unsupported_tf_arguments_are_refused(make, name):
    """Refused with a ValueError naming the argument, never silently ignored."""
    with pytest.raises(ValueError, match=rf"^{name}: expected"):
        make()


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: rnnrs.BasicRNNCell(3, None, "yes"), "reuse"),
        (lambda: rnnrs.GRUCell(3, reuse=1), "reuse"),
        (lambda: rnnrs.BasicLSTMCell(3, name=5), "name"),
        (lambda: rnnrs.LSTMCell(3, state_is_tuple="True"), "state_is_tuple"),
        (lambda: rnnrs.OutputProjectionWrapper(rnnrs.GRUCell(2), 3, None, "no"), "reuse"),
        (lambda: rnnrs.DropoutWrapper(rnnrs.GRUCell(2), input_size=2.5), "input_size"),
        (lambda: rnnrs.BasicRNNCell(3, dtype="int32"), "dtype"),
        (lambda: rnnrs.BasicRNNCell(3, 1.0, None, None, None, 0), TypeError),
    ],
)
def test_bad_tf_constructor_types_name_the_argument(make, name):
    if name is TypeError:  # seed is keyword-only: TF has no sixth argument
        with pytest.raises(TypeError):
            make()
        return
    with pytest.raises(TypeError, match=rf"^{name}: expected"):
        make()


def test_wrappers_tf_positional_order():
    inner = rnnrs.GRUCell(3, seed=1)
    d = rnnrs.DropoutWrapper(inner, 0.5, 0.6, 0.7, True, 2, np.float32, 9)
    assert (d.input_keep_prob, d.output_keep_prob, d.state_keep_prob, d.variational_recurrent, d.seed) == (
        0.5,
        0.6,
        0.7,
        True,
        9,
    )
    o = rnnrs.OutputProjectionWrapper(rnnrs.GRUCell(3), 4, None, True, seed=2)
    assert o.output_size == 4 and o.seed == 2
    assert rnnrs.ResidualWrapper(rnnrs.GRUCell(2), None).cell.num_units == 2


def test_saved_config_keeps_rnnrs_keys_and_loads(tmp_path):
    """get_config stores what saved files stored before (no TF-only keys), plus a given name."""
    cell = rnnrs.MultiRNNCell([rnnrs.LSTMCell(3, True, name="lstm"), rnnrs.DropoutWrapper(rnnrs.GRUCell(3), 0.9)])
    from rnnrs.saving.serialize import cell_from_config, cell_to_config

    config = cell_to_config(cell)
    lstm = config["config"]["cells"][0]["config"]
    assert set(lstm) == {
        "num_units",
        "use_peepholes",
        "cell_clip",
        "num_proj",
        "proj_clip",
        "forget_bias",
        "activation",
        "dtype",
        "seed",
        "name",
    }
    assert "name" not in config["config"]["cells"][1]["config"]["cell"]["config"]
    again = cell_from_config(config)
    assert cell_to_config(again) == config and again.cells[0].name == "lstm"


# -- scoped names ---------------------------------------------------------------


#: TensorFlow's CudnnCompatibleGRUCell variables, inside the cell's scope.
CUDNN_GRU_NAMES = (
    "gates/kernel",
    "gates/bias",
    "candidate/input_projection/kernel",
    "candidate/input_projection/bias",
    "candidate/hidden_projection/kernel",
    "candidate/hidden_projection/bias",
)


def every_cell():
    return {
        "basic_rnn": (rnnrs.BasicRNNCell(3, seed=1), {"rnn/basic_rnn_cell/kernel", "rnn/basic_rnn_cell/bias"}),
        "basic_lstm": (rnnrs.BasicLSTMCell(3, seed=1), {"rnn/basic_lstm_cell/kernel", "rnn/basic_lstm_cell/bias"}),
        "lstm": (
            rnnrs.LSTMCell(3, True, num_proj=2, seed=1),
            {f"rnn/lstm_cell/{n}" for n in ("kernel", "bias", "w_i_diag", "w_f_diag", "w_o_diag", "projection/kernel")},
        ),
        "gru": (
            rnnrs.GRUCell(3, seed=1),
            {f"rnn/gru_cell/{n}/{w}" for n in ("gates", "candidate") for w in ("kernel", "bias")},
        ),
        "gru_reset_after": (
            rnnrs.GRUCell(3, reset_after=True, seed=1),
            {f"rnn/cudnn_compatible_gru_cell/{n}" for n in CUDNN_GRU_NAMES},
        ),
        "named": (rnnrs.BasicRNNCell(3, name="my_cell", seed=1), {"rnn/my_cell/kernel", "rnn/my_cell/bias"}),
        "multi": (
            rnnrs.MultiRNNCell([rnnrs.BasicRNNCell(3, seed=1), rnnrs.GRUCell(2, seed=2)]),
            {"rnn/multi_rnn_cell/cell_0/basic_rnn_cell/kernel", "rnn/multi_rnn_cell/cell_0/basic_rnn_cell/bias"}
            | {
                f"rnn/multi_rnn_cell/cell_1/gru_cell/{n}/{w}"
                for n in ("gates", "candidate")
                for w in ("kernel", "bias")
            },
        ),
        "dropout": (
            rnnrs.DropoutWrapper(rnnrs.BasicRNNCell(3, seed=1), 0.5),
            {"rnn/basic_rnn_cell/kernel", "rnn/basic_rnn_cell/bias"},
        ),
        "residual": (
            rnnrs.ResidualWrapper(rnnrs.BasicRNNCell(2, seed=1)),
            {"rnn/basic_rnn_cell/kernel", "rnn/basic_rnn_cell/bias"},
        ),
        "projection": (
            rnnrs.OutputProjectionWrapper(rnnrs.BasicLSTMCell(3, seed=1), 4, seed=2),
            {
                "rnn/output_projection_wrapper/basic_lstm_cell/kernel",
                "rnn/output_projection_wrapper/basic_lstm_cell/bias",
                "rnn/output_projection_wrapper/kernel",
                "rnn/output_projection_wrapper/bias",
            },
        ),
        "nested": (
            rnnrs.MultiRNNCell(
                [
                    rnnrs.DropoutWrapper(rnnrs.GRUCell(2, reset_after=True, seed=1)),
                    rnnrs.OutputProjectionWrapper(rnnrs.BasicRNNCell(2, seed=3), 2, seed=4),
                ]
            ),
            {f"rnn/multi_rnn_cell/cell_0/cudnn_compatible_gru_cell/{n}" for n in CUDNN_GRU_NAMES}
            | {
                f"rnn/multi_rnn_cell/cell_1/output_projection_wrapper/{n}"
                for n in ("kernel", "bias", "basic_rnn_cell/kernel", "basic_rnn_cell/bias")
            },
        ),
    }


@pytest.mark.parametrize("which", list(every_cell()))
def test_scoped_names_round_trip(which):
    cell, expected = every_cell()[which]
    cell.build(2)
    scoped = cell.get_weights(scope="rnn")
    assert set(scoped) == expected
    plain = cell.get_weights()
    names = tf_scoped_names(cell, "rnn")
    for key, value in plain.items():
        np.testing.assert_array_equal(scoped[names[key]], value)
    # set_weights by TF names, into a fresh cell of the same configuration: same weights
    fresh, _ = every_cell()[which]
    fresh.set_weights({k: v + 1 for k, v in scoped.items()}, scope="rnn")
    same(fresh.get_weights(), {k: v + 1 for k, v in plain.items()})
    # other scopes
    assert set(cell.get_weights(scope="")) == {n[len("rnn/") :] for n in expected}
    assert set(cell.get_weights(scope="bidirectional_rnn/fw/")) == {"bidirectional_rnn/fw/" + n[4:] for n in expected}


def test_scoped_set_weights_refuses_unknown_names_and_changes_nothing():
    cell = rnnrs.BasicLSTMCell(3, seed=1)
    cell.build(2)
    before = cell.get_weights()
    with pytest.raises(
        ValueError, match=r"^mapping: expected TensorFlow names under scope 'rnn'.*basic_lstm_cell/kernel"
    ):
        cell.set_weights({"rnn/basic_lstm_cell/kernel": before["kernel"], "rnn/lstm_cell/bias": before["bias"]}, "rnn")
    with pytest.raises(ValueError, match=r"^mapping: expected TensorFlow names"):
        cell.set_weights({"kernel": before["kernel"]}, scope="rnn")
    with pytest.raises(ValueError, match=r"^mapping\['basic_lstm_cell/kernel'\]: expected shape"):
        cell.set_weights({"basic_lstm_cell/kernel": np.zeros((2, 2))}, scope="")
    with pytest.raises(TypeError, match=r"^scope: expected"):
        cell.get_weights(scope=1)
    with pytest.raises(TypeError, match=r"^mapping: expected"):
        cell.set_weights([("rnn/basic_lstm_cell/kernel", 1)], scope="rnn")
    same(cell.get_weights(), before)


def test_reset_after_gru_takes_cudnn_names_as_aliases():
    cell = rnnrs.GRUCell(3, reset_after=True, seed=1)
    cell.build(2)
    w = cell.get_weights()
    assert "candidate/input_kernel" in w  # what get_weights (and saved files) keep using
    aliased = {
        "gates/kernel": w["gates/kernel"],
        "gates/bias": w["gates/bias"],
        "candidate/input_projection/kernel": w["candidate/input_kernel"] + 1,
        "candidate/hidden_projection/kernel": w["candidate/hidden_kernel"] + 2,
        "candidate/input_projection/bias": w["candidate/input_bias"] + 3,
        "candidate/hidden_projection/bias": w["candidate/hidden_bias"] + 4,
    }
    fresh = rnnrs.GRUCell(3, reset_after=True)
    fresh.set_weights(aliased)  # builds from TF names alone
    got = fresh.get_weights()
    np.testing.assert_array_equal(got["candidate/input_kernel"], w["candidate/input_kernel"] + 1)
    np.testing.assert_array_equal(got["candidate/hidden_bias"], w["candidate/hidden_bias"] + 4)
    # inside a MultiRNNCell too
    multi = rnnrs.MultiRNNCell([rnnrs.GRUCell(3, reset_after=True)])
    multi.set_weights({f"cell_0/{k}": v for k, v in aliased.items()})
    same(multi.cells[0].get_weights(), got)
    with pytest.raises(ValueError, match=r"^mapping: expected one of 'candidate/input_projection/kernel' and"):
        cell.set_weights(
            {
                "candidate/input_kernel": w["candidate/input_kernel"],
                "candidate/input_projection/kernel": w["candidate/input_kernel"],
            }
        )
    with pytest.raises(ValueError, match=r"^mapping: expected the weights of a GRUCell with reset_after=False"):
        rnnrs.GRUCell(3).set_weights({"candidate/input_projection/kernel": w["candidate/input_kernel"]})


def test_tf_scoped_names_works_unbuilt_and_refuses_non_cells():
    assert tf_scoped_names(rnnrs.GRUCell(2), "") == {
        "gates/kernel": "gru_cell/gates/kernel",
        "gates/bias": "gru_cell/gates/bias",
        "candidate/kernel": "gru_cell/candidate/kernel",
        "candidate/bias": "gru_cell/candidate/bias",
    }
    with pytest.raises(TypeError, match=r"^cell: expected an rnnrs cell"):
        tf_scoped_names("cell", "rnn")


# -- one scope rule, dtype and graph options of stack_bidirectional_dynamic_rnn -----------------


class _TFDtype:
    """Stands in for tf.float32: only ``as_numpy_dtype``."""

    as_numpy_dtype = np.float32


@pytest.mark.parametrize("scope", ["a b", "_x", "a//", "//", "a//b"])
def test_every_scope_argument_refuses_the_same_scopes(scope, tmp_path):
    """Pins one scope rule (rnnrs.tfnames.check_scope) for every scope=: the
    TF 1.x checkpoint converter used to strip every '/' and accept any
    characters ('a b' gave names TensorFlow cannot make), and check_scope
    accepted 'a//' (an empty part)."""
    from rnnrs.convert import from_tf1_checkpoint, tf1_names, to_tf1_checkpoint

    cell = rnnrs.BasicRNNCell(3)
    cell.build(2)
    x = np.zeros((2, 3, 2), np.float32)
    prefix = to_tf1_checkpoint(cell, tmp_path / "ok")
    calls = [
        lambda: cell.get_weights(scope=scope),
        lambda: cell.set_weights({}, scope=scope),
        lambda: rnnrs.dynamic_rnn(cell, x, scope=scope),
        lambda: rnnrs.stack_bidirectional_dynamic_rnn([rnnrs.BasicRNNCell(2)], [rnnrs.BasicRNNCell(2)], x, scope=scope),
        lambda: tf1_names(cell, scope=scope),
        lambda: to_tf1_checkpoint(cell, tmp_path / "bad", scope=scope),
        lambda: from_tf1_checkpoint(prefix, rnnrs.BasicRNNCell(3), scope=scope),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"^scope: expected .*got"):
            call()
    assert not (tmp_path / "bad.index").exists()


def test_every_scope_argument_drops_one_trailing_slash(tmp_path):
    """'rnn/' is 'rnn' and '' (or '/') is no scope, in the converter as in get_weights."""
    from rnnrs.convert import from_tf1_checkpoint, tf1_names, to_tf1_checkpoint

    cell = rnnrs.BasicRNNCell(3, seed=1)
    cell.build(2)
    assert tf1_names(cell, scope="enc/") == {"kernel": "enc/basic_rnn_cell/kernel", "bias": "enc/basic_rnn_cell/bias"}
    assert set(tf1_names(cell, scope="/").values()) == set(cell.get_weights(scope="/"))
    assert set(tf1_names(cell, scope="").values()) == {"basic_rnn_cell/kernel", "basic_rnn_cell/bias"}
    to_tf1_checkpoint(cell, tmp_path / "m", scope="enc/")
    other = rnnrs.BasicRNNCell(3)
    from_tf1_checkpoint(tmp_path / "m", other, scope="enc")
    np.testing.assert_array_equal(other.get_weights()["kernel"], cell.get_weights()["kernel"])


def test_stack_bidirectional_takes_dtype_and_options_like_dynamic_rnn():
    """Pins: stack_bidirectional_dynamic_rnn reads dtype as dynamic_rnn does
    (tf.float32-like objects with as_numpy_dtype were refused; unreadable
    values raise TypeError) and validates parallel_iterations, swap_memory
    and scope (they used to be dropped unread)."""
    x = np.zeros((2, 3, 2), np.float32)

    def stack(**kw):
        return rnnrs.stack_bidirectional_dynamic_rnn([rnnrs.BasicRNNCell(2)], [rnnrs.BasicRNNCell(2)], x, **kw)

    assert stack(dtype=_TFDtype)[0].shape == (2, 3, 4)
    assert stack(dtype=_TFDtype(), parallel_iterations=8, swap_memory=True, scope="stack")[0].shape == (2, 3, 4)
    with raises_naming(ValueError, "^dtype"):
        stack(dtype=np.float64)
    with raises_naming(TypeError, "^dtype"):
        stack(dtype="no such dtype")
    with raises_naming(ValueError, "^parallel_iterations"):
        stack(parallel_iterations=0)
    with raises_naming(TypeError, "^swap_memory"):
        stack(swap_memory="yes")
    with raises_naming(TypeError, "^scope"):
        stack(scope=5)


def test_non_native_byte_order_dtype_message_names_the_byte_order():
    """Pins: dynamic_rnn(float32 cell, dtype='>f4' on a little-endian
    machine) said 'expected float32 ..., got float32'; it names the byte order.
    (Refused rather than accepted: cells refuse non-native dtypes too.)"""
    other = ">f4" if np.little_endian else "<f4"
    with raises_naming(ValueError, "^dtype") as info:
        rnnrs.dynamic_rnn(rnnrs.BasicRNNCell(3), np.zeros((1, 2, 2), np.float32), dtype=other)
    assert "byte order" in str(info.value) and repr(other) in str(info.value)
