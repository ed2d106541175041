"""MultiRNNCell, DropoutWrapper, OutputProjectionWrapper and ResidualWrapper
against the NumPy reference (reference_wrappers.py), central finite
differences of rnnrs itself, and the contract in DESIGN.md.

The wrapped cells come from ``CELL_KINDS``; the helpers at the top (random
reference layers, the matching rnnrs cells, problems, comparisons) are also
used by test_bidirectional.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
import reference_wrappers as wr
import rnnrs
from helpers import (
    ACTIVATIONS,
    GRAD_MODES,
    RNNProblem,
    assert_close,
    glorot_bound,
    grad_modes,
    ragged_lengths,
    raises_naming,
    seeds,
)

# The cells the wrapper tests run with. To add one (LSTM, GRU): a reference
# layer class in reference_wrappers.py, then a branch in `random_cell` and
# `rnnrs_cell` below, and its name here.
CELL_KINDS = ("BasicRNNCell",)

# --------------------------------------------------------------------------
# Reference layers and the rnnrs cells that mirror them
# --------------------------------------------------------------------------


def rounded(a, dtype):
    """``a`` rounded to ``dtype`` and back to float64: what the library sees, for the reference."""
    return np.asarray(a, dtype=dtype).astype(np.float64)


def random_cell(kind, rng, input_size, units, dtype, activation="tanh"):
    """A reference layer for one cell of ``kind`` with random weights (rounded to ``dtype``).

    Biases are random too (not the zeros of a fresh cell) so that they matter."""
    if kind == "BasicRNNCell":
        bound = glorot_bound(input_size + units, units)
        kernel = rng.uniform(-bound, bound, size=(input_size + units, units))
        bias = rng.normal(scale=0.5, size=units)
        return wr.BasicRNN(rounded(kernel, dtype), rounded(bias, dtype), activation)
    raise ValueError(f"unknown cell kind {kind!r}")


def random_projection(rng, cell, size, dtype):
    """A reference OutputProjectionWrapper around ``cell`` with random weights."""
    bound = glorot_bound(cell.output_size, size)
    kernel = rng.uniform(-bound, bound, size=(cell.output_size, size))
    return wr.Projection(cell, rounded(kernel, dtype), rounded(rng.normal(scale=0.5, size=size), dtype))


def rnnrs_cell(layer, dtype):
    """The (unbuilt) rnnrs cell tree mirroring a reference layer tree."""
    if isinstance(layer, wr.BasicRNN):
        return rnnrs.BasicRNNCell(layer.num_units, activation=layer.activation, dtype=dtype)
    if isinstance(layer, wr.Multi):
        return rnnrs.MultiRNNCell([rnnrs_cell(inner, dtype) for inner in layer.layers])
    if isinstance(layer, wr.Projection):
        return rnnrs.OutputProjectionWrapper(rnnrs_cell(layer.cell, dtype), layer.output_size)
    if isinstance(layer, wr.Residual):
        return rnnrs.ResidualWrapper(rnnrs_cell(layer.cell, dtype))
    raise TypeError(f"no rnnrs cell for {type(layer).__name__}")


def matching_cell(layer, dtype):
    """An rnnrs cell with the reference layer's weights. ``set_weights`` with
    every name builds the whole (unbuilt) tree, so this also exercises the
    wrappers' weight routing."""
    cell = rnnrs_cell(layer, dtype)
    cell.set_weights(layer.weights())
    return cell


def lib_state(state, dtype):
    """A reference state structure as rnnrs takes it (LSTMState -> LSTMStateTuple)."""
    if state is None:
        return None
    if isinstance(state, wr.LSTMState):
        return rnnrs.LSTMStateTuple(lib_state(state.c, dtype), lib_state(state.h, dtype))
    if isinstance(state, tuple):
        return tuple(lib_state(s, dtype) for s in state)
    return np.asarray(state, dtype=dtype)


def swap_bt(a):
    """[B, T, ...] <-> [T, B, ...]."""
    return None if a is None else np.ascontiguousarray(np.swapaxes(a, 0, 1))


# --------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Data for one run; float64, already rounded to the dtype under test."""

    x: np.ndarray  # [B, T, I]; padded positions hold garbage
    lengths: np.ndarray | None  # [B] or None
    initial_state: object  # a reference state structure, or None (zeros)
    d_outputs: np.ndarray  # [B, T, O]; garbage in the padding, which must be ignored
    d_state: object  # like the state

    @property
    def batch(self):
        return self.x.shape[0]

    # (d_outputs, d_state) for a GRAD_MODES entry; None stands for zeros.
    grads_for = RNNProblem.grads_for


def make_problem(layer, dtype, B, T, seed, lengths=None, with_state=True):
    rng = np.random.default_rng(seed)
    template = layer.zero_state(B)
    return Problem(
        x=rounded(rng.normal(size=(B, T, layer.input_size)), dtype),
        lengths=None if lengths is None else np.asarray(lengths, dtype=np.int64),
        initial_state=(
            wr.map_state(lambda _c, a: rounded(rng.uniform(-0.9, 0.9, a.shape), dtype), template)
            if with_state else None
        ),
        d_outputs=rounded(rng.normal(size=(B, T, layer.output_size)), dtype),
        d_state=wr.map_state(lambda _c, a: rounded(rng.normal(size=a.shape), dtype), template),
    )


@st.composite
def problem_shapes(draw, max_batch=4, max_time=5):
    """Keyword arguments of make_problem: sizes, ragged lengths (0 and T often), a seed."""
    B = draw(st.integers(1, max_batch), label="B")
    T = draw(st.integers(1, max_time), label="T")
    return dict(
        B=B,
        T=T,
        lengths=draw(st.none() | ragged_lengths(B, T), label="lengths"),
        with_state=draw(st.booleans(), label="with_state"),
        seed=draw(seeds, label="data seed"),
    )


def padding(p):
    """Boolean [B, T]: True at padded positions."""
    return ~wr.active_mask(p.lengths, p.batch, p.x.shape[1])[..., 0]


# --------------------------------------------------------------------------
# Running both sides and comparing
# --------------------------------------------------------------------------


def run_rnnrs(cell, p, dtype, *, mode="both", time_major=False, training=False):
    """dynamic_rnn + backprop on problem ``p``; outputs and grads.inputs returned batch-major."""
    x = p.x.astype(dtype)
    outputs, state, backprop = rnnrs.dynamic_rnn(
        cell,
        swap_bt(x) if time_major else x,
        sequence_length=p.lengths,
        initial_state=lib_state(p.initial_state, dtype),
        time_major=time_major,
        training=training,
        return_backprop=True,
    )
    d_outputs, d_state = p.grads_for(mode)
    if d_outputs is not None:
        d_outputs = d_outputs.astype(dtype)
        d_outputs = swap_bt(d_outputs) if time_major else d_outputs
    grads = backprop(d_outputs=d_outputs, d_state=lib_state(d_state, dtype))
    if time_major:
        outputs, grads = swap_bt(outputs), grads._replace(inputs=swap_bt(grads.inputs))
    return outputs, state, grads


def run_reference(layer, p, mode="both"):
    state = layer.zero_state(p.batch) if p.initial_state is None else p.initial_state
    outputs, final, cache = layer.forward(p.x, state, p.lengths)
    return outputs, final, layer.backward(cache, *p.grads_for(mode))


def assert_state_close(got, want, dtype, what):
    """``got`` has the structure of the reference state ``want`` and close values."""
    if isinstance(want, wr.LSTMState):
        assert isinstance(got, rnnrs.LSTMStateTuple), f"{what}: {type(got).__name__}, expected LSTMStateTuple"
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and not isinstance(got, np.ndarray), f"{what}: {type(got).__name__}"
        assert len(got) == len(want), f"{what}: {len(got)} parts, expected {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_state_close(g, w, dtype, f"{what}[{i}]")
    else:
        assert_close(got, want, dtype, what)


def assert_weights_close(got, want, dtype, what):
    assert set(got) == set(want), f"{what}: keys {sorted(got)} != expected {sorted(want)}"
    for name in want:
        assert_close(got[name], want[name], dtype, f"{what}[{name!r}]")


def check_against_reference(layer, cell, p, dtype, *, mode="both", time_major=False, training=False):
    """rnnrs ``cell`` and reference ``layer`` agree on outputs, state and every gradient."""
    got_out, got_state, grads = run_rnnrs(cell, p, dtype, mode=mode, time_major=time_major, training=training)
    want_out, want_state, (want_dx, want_dinit, want_dw) = run_reference(layer, p, mode)
    assert_close(got_out, want_out, dtype, "outputs")
    assert_state_close(got_state, want_state, dtype, "state")
    assert_close(grads.inputs, want_dx, dtype, "grads.inputs")
    assert_state_close(grads.initial_state, want_dinit, dtype, "grads.initial_state")
    assert set(grads.weights) == set(cell.get_weights()), "grads.weights keys != cell.get_weights() keys"
    assert_weights_close(grads.weights, want_dw, dtype, "grads.weights")
    pad = padding(p)
    assert np.all(got_out[pad] == 0), "outputs past the length must be exactly 0"
    assert np.all(grads.inputs[pad] == 0), "grads.inputs past the length must be exactly 0"
    return got_out, got_state, grads


def check_finite_differences(make_cell, weights, p, *, training=False):
    """Float64 central finite differences of rnnrs itself vs its backprop, for
    the inputs, every initial-state leaf and every weight. ``make_cell()``
    gives a fresh unbuilt cell (for dropout: the same seed, so the same masks)."""
    x = p.x.copy()
    state = wr.map_state(lambda _c, a: a.copy(), p.initial_state)
    weights = {k: np.array(v, dtype=np.float64) for k, v in weights.items()}

    def run(**kwargs):
        cell = make_cell()
        cell.set_weights(weights)
        return rnnrs.dynamic_rnn(cell, x, sequence_length=p.lengths, initial_state=lib_state(state, np.float64),
                                 training=training, **kwargs)

    def loss():
        outputs, final = run()
        return wr.linear_loss(outputs, final, p.d_outputs, p.d_state)

    _, _, backprop = run(return_backprop=True)
    grads = backprop(d_outputs=p.d_outputs, d_state=lib_state(p.d_state, np.float64))
    params = {"inputs": (x, grads.inputs)}
    for i, (a, g) in enumerate(zip(wr.state_leaves(state), wr.state_leaves(grads.initial_state))):
        params[f"initial_state leaf {i}"] = (a, g)
    assert set(grads.weights) == set(weights)
    for name, w in weights.items():
        params[f"weights[{name!r}]"] = (w, grads.weights[name])
    for name, (array, analytic) in params.items():
        numeric = ref.numerical_gradient(loss, array)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7, err_msg=name)


def fd_problem(layer, lengths=(4, 0, 2)):
    """A small float64 problem for finite differences: ragged, with 0 and T."""
    return make_problem(layer, np.float64, len(lengths), max(lengths), seed=99, lengths=lengths)


# --------------------------------------------------------------------------
# Nested structures used by several tests (built per dtype)
# --------------------------------------------------------------------------


def nested_structure(name, kind, dtype, seed=0):
    rng = np.random.default_rng(seed)

    def cell(i, h):
        return random_cell(kind, rng, i, h, dtype)

    if name == "multi":
        return wr.Multi([cell(3, 4), cell(4, 2)])
    if name == "multi_of_residual_and_projection":
        return wr.Multi([wr.Residual(cell(3, 3)), random_projection(rng, cell(3, 4), 2, dtype)])
    if name == "projection_of_multi":
        return random_projection(rng, wr.Multi([cell(3, 4), cell(4, 2)]), 5, dtype)
    if name == "residual_of_multi":
        return wr.Residual(wr.Multi([cell(3, 4), cell(4, 3)]))
    if name == "multi_of_multi":
        return wr.Multi([wr.Multi([cell(3, 2), cell(2, 4)]), cell(4, 3)])
    if name == "residual_of_projection":
        return wr.Residual(random_projection(rng, cell(3, 5), 3, dtype))
    raise ValueError(name)


NESTED = (
    "multi",
    "multi_of_residual_and_projection",
    "projection_of_multi",
    "residual_of_multi",
    "multi_of_multi",
    "residual_of_projection",
)


# --------------------------------------------------------------------------
# The reference itself: its backward pass matches finite differences of its forward pass
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", NESTED + ("dropout_of_multi",))
def test_reference_backward_matches_its_finite_differences(name):
    """If this fails, the oracle is wrong, not rnnrs."""
    if name == "dropout_of_multi":
        inner = nested_structure("multi", "BasicRNNCell", np.float64)
        p = fd_problem(inner)
        layer = reference_dropout(inner, np.float64, p, seed=5,
                                  input_keep_prob=0.7, state_keep_prob=0.6, output_keep_prob=0.8)
    else:
        layer = nested_structure(name, "BasicRNNCell", np.float64)
        p = fd_problem(layer)
    weights = layer.weights()
    state = p.initial_state

    def loss():
        outputs, final, _ = layer.forward(p.x, state, p.lengths)
        return wr.linear_loss(outputs, final, p.d_outputs, p.d_state)

    _, _, (d_x, d_init, d_w) = run_reference(layer, p)
    pairs = [(p.x, d_x)] + list(zip(wr.state_leaves(state), wr.state_leaves(d_init)))
    pairs += [(weights[k], d_w[k]) for k in weights]  # the layer reads these very arrays
    for array, analytic in pairs:
        np.testing.assert_allclose(analytic, ref.numerical_gradient(loss, array), rtol=1e-6, atol=1e-8)
    assert np.all(d_x[padding(p)] == 0)


def test_reference_dropout_semantics_by_hand():
    """The reference Dropout, on a cell with h' = h + 1, against a hand-written loop."""
    counter = wr.BasicRNN(np.vstack([np.zeros((1, 2)), np.eye(2)]), np.ones(2), "identity")  # h' = h + 1
    state_masks = [np.array([[2.0, 0.0], [0.0, 2.0]]), np.array([[0.0, 2.0], [2.0, 2.0]])]
    layer = wr.Dropout(counter, state_masks=state_masks)
    h0 = np.array([[1.0, 1.0], [3.0, 3.0]])
    outputs, final, _ = layer.forward(np.zeros((2, 2, 1)), h0, lengths=[2, 1])
    # row 0: out1 = 2, s1 = 2*[2, 0] = [4, 0]; out2 = [5, 1], s2 = [5, 1]*[0, 2] = [0, 2]
    # row 1: out1 = 4, s1 = 4*[0, 2] = [0, 8]; then finished: output 0, state kept
    np.testing.assert_array_equal(outputs, [[[2, 2], [5, 1]], [[4, 4], [0, 0]]])
    np.testing.assert_array_equal(final, [[0, 2], [0, 8]])


# --------------------------------------------------------------------------
# MultiRNNCell
# --------------------------------------------------------------------------


@st.composite
def stacks(draw, max_layers=3):
    """A reference MultiRNNCell spec: (kind, input size, units per layer, activations, weight seed)."""
    n = draw(st.integers(1, max_layers), label="layers")
    return (
        draw(st.sampled_from(CELL_KINDS), label="kind"),
        draw(st.integers(1, 4), label="I"),
        draw(st.lists(st.integers(1, 5), min_size=n, max_size=n), label="units"),
        draw(st.lists(st.sampled_from(ACTIVATIONS), min_size=n, max_size=n), label="activations"),
        draw(seeds, label="weight seed"),
    )


def build_stack(spec, dtype):
    kind, input_size, units, activations, seed = spec
    rng = np.random.default_rng(seed)
    sizes = [input_size] + list(units)
    return wr.Multi([random_cell(kind, rng, sizes[i], units[i], dtype, activations[i]) for i in range(len(units))])


@given(spec=stacks(), shape=problem_shapes(), time_major=st.booleans(), mode=grad_modes)
def test_multi_rnn_matches_reference(dtype, spec, shape, time_major, mode):
    layer = build_stack(spec, dtype)
    p = make_problem(layer, dtype, **shape)
    cell = matching_cell(layer, dtype)
    _, state, grads = check_against_reference(layer, cell, p, dtype, mode=mode, time_major=time_major)
    n = len(layer.layers)
    assert isinstance(state, tuple) and len(state) == n
    assert sorted(grads.weights) == sorted(f"cell_{i}/{w}" for i in range(n) for w in ("kernel", "bias"))
    if mode == "neither":
        for g in [grads.inputs, *wr.state_leaves(grads.initial_state), *grads.weights.values()]:
            assert np.all(g == 0)


@pytest.mark.parametrize("kind", CELL_KINDS)
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
@pytest.mark.parametrize("mode", GRAD_MODES)
def test_multi_rnn_explicit_cases(dtype, kind, time_major, mode):
    """Three layers of different widths; lengths with 0 and T; every gradient input combination."""
    rng = np.random.default_rng(3)
    layer = wr.Multi([random_cell(kind, rng, 3, 4, dtype), random_cell(kind, rng, 4, 2, dtype),
                      random_cell(kind, rng, 2, 5, dtype, "sigmoid")])
    p = make_problem(layer, dtype, 5, 6, seed=4, lengths=[6, 0, 3, 1, 6])
    cell = matching_cell(layer, dtype)
    _, state, _ = check_against_reference(layer, cell, p, dtype, mode=mode, time_major=time_major)
    for i in range(3):  # the length-0 row keeps every layer's initial state, bit for bit
        np.testing.assert_array_equal(state[i][1], p.initial_state[i][1].astype(dtype))


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_multi_rnn_finite_differences(kind):
    layer = nested_structure("multi", kind, np.float64)
    check_finite_differences(lambda: rnnrs_cell(layer, np.float64), layer.weights(), fd_problem(layer))


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_multi_rnn_properties(dtype, kind):
    rng = np.random.default_rng(0)
    layers = [random_cell(kind, rng, 3, 4, dtype), random_cell(kind, rng, 4, 2, dtype)]
    cells = [rnnrs_cell(layer, dtype) for layer in layers]
    multi = rnnrs.MultiRNNCell(cells)
    assert multi.cells == cells and all(a is b for a, b in zip(multi.cells, cells))
    assert multi.state_size == (cells[0].state_size, cells[1].state_size) == (4, 2)
    assert multi.output_size == 2
    assert multi.dtype == np.dtype(dtype)
    assert not multi.built and multi.input_size is None
    zero = multi.zero_state(3)
    assert isinstance(zero, tuple) and len(zero) == 2
    for z, h in zip(zero, (4, 2)):
        assert z.shape == (3, h) and z.dtype == np.dtype(dtype) and np.all(z == 0)
    multi.build(3)  # each layer is built for the previous layer's output size
    assert multi.built and multi.input_size == 3
    assert [c.input_size for c in cells] == [3, 4]


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_multi_rnn_get_and_set_weights(dtype, kind):
    rng = np.random.default_rng(1)
    layers = [random_cell(kind, rng, 3, 4, dtype), random_cell(kind, rng, 4, 2, dtype)]
    cells = [matching_cell(layer, dtype) for layer in layers]
    multi = rnnrs.MultiRNNCell(cells)
    weights = multi.get_weights()
    assert list(weights) == [f"cell_{i}/{k}" for i, c in enumerate(cells) for k in c.get_weights()]
    for i, c in enumerate(cells):
        for k, v in c.get_weights().items():
            np.testing.assert_array_equal(weights[f"cell_{i}/{k}"], v)
    weights["cell_0/kernel"][...] = 7  # a copy: the cell is untouched
    np.testing.assert_array_equal(cells[0].get_weights()["kernel"], layers[0].kernel.astype(dtype))

    # A partial mapping reaches exactly the named weights of the named layer.
    new_bias = np.arange(2.0)
    multi.set_weights({"cell_1/bias": new_bias})
    np.testing.assert_array_equal(cells[1].get_weights()["bias"], new_bias.astype(dtype))
    np.testing.assert_array_equal(cells[1].get_weights()["kernel"], layers[1].kernel.astype(dtype))
    np.testing.assert_array_equal(cells[0].get_weights()["bias"], layers[0].bias.astype(dtype))
    # ... and the run uses it.
    moved = wr.Multi([layers[0], wr.BasicRNN(layers[1].kernel, new_bias, layers[1].activation)])
    p = make_problem(moved, dtype, 2, 3, seed=2)
    check_against_reference(moved, multi, p, dtype)

    # A complete mapping builds an unbuilt stack (input size from cell_0's kernel).
    fresh = rnnrs.MultiRNNCell([rnnrs_cell(layer, dtype) for layer in layers])
    fresh.set_weights(mapping=multi.get_weights())
    assert fresh.built and fresh.input_size == 3
    for k, v in multi.get_weights().items():
        np.testing.assert_array_equal(fresh.get_weights()[k], v)


@pytest.mark.parametrize("name", ["kernel", "cell_2/kernel", "cell_0/", "cell_x/kernel", "layer_0/kernel",
                                  "cell_0/bogus", "cell_1/output_projection/kernel"])
def test_multi_rnn_set_weights_bad_names(name):
    multi = rnnrs.MultiRNNCell([rnnrs.BasicRNNCell(4, seed=0), rnnrs.BasicRNNCell(2, seed=1)])
    multi.build(3)
    before = multi.get_weights()
    with raises_naming(ValueError, "mapping"):
        multi.set_weights({name: np.zeros((3, 3))})
    for k, v in multi.get_weights().items():
        np.testing.assert_array_equal(v, before[k])
    with raises_naming(TypeError, "mapping"):
        multi.set_weights([("cell_0/bias", np.zeros(4))])


@pytest.mark.parametrize("name,value", [("cell_1/kernel", np.zeros((9, 2))), ("cell_1/bogus", np.zeros(2))],
                         ids=["wrong_shape", "unknown_name"])
def test_multi_rnn_set_weights_error_names_the_full_weight_name(name, value):
    multi = rnnrs.MultiRNNCell([rnnrs.BasicRNNCell(4, seed=0), rnnrs.BasicRNNCell(2, seed=1)])
    multi.build(3)
    with raises_naming(ValueError, re.escape(name)):
        multi.set_weights({name: value})


def test_multi_rnn_failed_set_weights_changes_nothing():
    multi = rnnrs.MultiRNNCell([rnnrs.BasicRNNCell(4, seed=0), rnnrs.BasicRNNCell(2, seed=1)])
    multi.build(3)
    before = multi.get_weights()
    with pytest.raises(ValueError):
        multi.set_weights({"cell_0/bias": np.ones(4), "cell_1/kernel": np.zeros((9, 2))})
    np.testing.assert_array_equal(multi.get_weights()["cell_0/bias"], before["cell_0/bias"])


def test_multi_rnn_constructor_errors():
    f32, f64 = rnnrs.BasicRNNCell(3), rnnrs.BasicRNNCell(3, dtype=np.float64)
    with raises_naming(ValueError, "cells"):
        rnnrs.MultiRNNCell([])
    with raises_naming(ValueError, "cells") as info:
        rnnrs.MultiRNNCell([f32, f64])
    assert "float32" in str(info.value) and "float64" in str(info.value)
    with raises_naming(ValueError, "state_is_tuple"):
        rnnrs.MultiRNNCell([f32, rnnrs.BasicRNNCell(2)], state_is_tuple=False)
    with raises_naming(TypeError, "cells"):
        rnnrs.MultiRNNCell(f32)  # a cell, not a list of cells
    with raises_naming(TypeError, re.escape("cells[1]")):
        rnnrs.MultiRNNCell([f32, "BasicRNNCell"])
    # tuples are fine, as in TensorFlow
    assert rnnrs.MultiRNNCell((f32, rnnrs.BasicRNNCell(2))).output_size == 2


def test_multi_rnn_wrong_state_structure(dtype):
    multi = rnnrs.MultiRNNCell([rnnrs.BasicRNNCell(4, dtype=dtype, seed=0), rnnrs.BasicRNNCell(2, dtype=dtype)])
    x = np.ones((3, 5, 2), dtype)
    good = multi.zero_state(3)
    bad_states = [
        (TypeError, "initial_state", np.zeros((3, 4), dtype)),  # an array, not a tuple
        (TypeError, "initial_state", rnnrs.LSTMStateTuple(*good)),
        (ValueError, "initial_state", good[:1]),  # one layer state missing
        (ValueError, "initial_state", good + (np.zeros((3, 2), dtype),)),
        (ValueError, re.escape("initial_state[1]"), (good[0], np.zeros((3, 4), dtype))),  # wrong width
        (ValueError, re.escape("initial_state[0]"), (np.zeros((2, 4), dtype), good[1])),  # wrong batch
    ]
    for exc, name, state in bad_states:
        with raises_naming(exc, name):
            rnnrs.dynamic_rnn(multi, x, initial_state=state)
    _, _, backprop = rnnrs.dynamic_rnn(multi, x, initial_state=list(good), return_backprop=True)  # a list works
    with raises_naming(TypeError, "d_state"):
        backprop(d_state=np.zeros((3, 2), dtype))
    with raises_naming(ValueError, re.escape("d_state[1]")):
        backprop(d_state=(good[0], good[0]))
    with raises_naming(TypeError, "state"):
        multi(x[:, 0], np.zeros((3, 4), dtype))


# --------------------------------------------------------------------------
# Nesting (wrappers in MultiRNNCell, MultiRNNCell in wrappers)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CELL_KINDS)
@pytest.mark.parametrize("name", NESTED)
def test_nested_wrappers_match_reference(dtype, kind, name):
    layer = nested_structure(name, kind, dtype)
    cell = matching_cell(layer, dtype)
    assert cell.get_weights().keys() == layer.weights().keys()
    for mode, time_major in [("both", False), ("outputs", True), ("state", False)]:
        p = make_problem(layer, dtype, 4, 5, seed=7, lengths=[5, 0, 2, 4])
        check_against_reference(layer, cell, p, dtype, mode=mode, time_major=time_major)


@pytest.mark.parametrize("name", NESTED)
def test_nested_wrappers_finite_differences(name):
    layer = nested_structure(name, "BasicRNNCell", np.float64)
    check_finite_differences(lambda: rnnrs_cell(layer, np.float64), layer.weights(), fd_problem(layer))


def test_nested_weight_names_and_routing(dtype):
    """Names compose: cell_<i>/ for layers, then the wrapper's own names."""
    layer = nested_structure("multi_of_residual_and_projection", "BasicRNNCell", dtype)
    cell = matching_cell(layer, dtype)
    assert sorted(cell.get_weights()) == [
        "cell_0/bias", "cell_0/kernel",
        "cell_1/bias", "cell_1/kernel", "cell_1/output_projection/bias", "cell_1/output_projection/kernel",
    ]
    cell.set_weights({"cell_1/output_projection/bias": np.full(2, 0.25)})
    np.testing.assert_array_equal(cell.cells[1].get_weights()["output_projection/bias"], np.full(2, 0.25, dtype))

    outer = nested_structure("projection_of_multi", "BasicRNNCell", dtype)
    cell = matching_cell(outer, dtype)
    assert sorted(cell.get_weights()) == [
        "cell_0/bias", "cell_0/kernel", "cell_1/bias", "cell_1/kernel",
        "output_projection/bias", "output_projection/kernel",
    ]
    cell.set_weights({"cell_0/bias": np.ones(4)})
    np.testing.assert_array_equal(cell.cell.cells[0].get_weights()["bias"], np.ones(4, dtype))
    with raises_naming(ValueError, "mapping"):
        cell.set_weights({"kernel": np.zeros((7, 4))})


@pytest.mark.parametrize("name", NESTED)
def test_one_step_call_matches_reference(dtype, name):
    """cell(x, state) is one time step; chained calls equal dynamic_rnn."""
    layer = nested_structure(name, "BasicRNNCell", dtype)
    cell = matching_cell(layer, dtype)
    p = make_problem(layer, dtype, 3, 4, seed=8)
    want_out, want_state, _ = layer.forward(p.x[:, :1], p.initial_state)
    out, state = cell(p.x[:, 0].astype(dtype), lib_state(p.initial_state, dtype))
    assert_close(out, want_out[:, 0], dtype, "output")
    assert_state_close(state, want_state, dtype, "new_state")

    state, steps = lib_state(p.initial_state, dtype), []
    for t in range(4):
        out, state = cell(p.x[:, t].astype(dtype), state)
        steps.append(out)
    outputs, final = rnnrs.dynamic_rnn(cell, p.x.astype(dtype), initial_state=lib_state(p.initial_state, dtype))
    assert_close(np.stack(steps, axis=1), outputs.astype(np.float64), dtype, "chained outputs")
    for a, b in zip(wr.state_leaves(state), wr.state_leaves(final)):
        assert_close(a, b.astype(np.float64), dtype, "chained state")


def test_wrappers_expose_the_wrapped_cell():
    inner = rnnrs.BasicRNNCell(3, seed=0)
    wrappers = (rnnrs.DropoutWrapper(inner), rnnrs.OutputProjectionWrapper(inner, 5), rnnrs.ResidualWrapper(inner))
    for wrapper in wrappers:
        assert wrapper.cell is inner
        assert wrapper.state_size == inner.state_size and wrapper.dtype == inner.dtype
        assert wrapper.zero_state(2).shape == (2, 3)
    assert rnnrs.DropoutWrapper(inner).output_size == 3
    assert rnnrs.ResidualWrapper(inner).output_size == 3
    assert rnnrs.OutputProjectionWrapper(inner, 5).output_size == 5
    with raises_naming(TypeError, "cell"):
        rnnrs.DropoutWrapper("not a cell")
    with raises_naming(TypeError, "cell"):
        rnnrs.OutputProjectionWrapper(np.zeros((3, 3)), 2)
    with raises_naming(TypeError, "cell"):
        rnnrs.ResidualWrapper(None)


# --------------------------------------------------------------------------
# DropoutWrapper
# --------------------------------------------------------------------------


def dropout_cell(inner_layer, dtype, **kwargs):
    return rnnrs.DropoutWrapper(matching_cell(inner_layer, dtype), **kwargs)


def reference_dropout(inner_layer, dtype, p, *, seed, time_major=False, rng=None, **keeps):
    """The reference Dropout with the masks rnnrs draws from ``seed`` (or from ``rng``)."""
    B, T, _ = p.x.shape
    masks = wr.draw_dropout_masks(
        np.random.default_rng(seed) if rng is None else rng,
        batch=B, time=T, input_size=inner_layer.input_size, output_size=inner_layer.output_size,
        state=inner_layer.zero_state(B), time_major=time_major, dtype=dtype, **keeps,
    )
    return wr.Dropout(inner_layer, *masks)


def copy_input_layer(units):
    """Identity activation, kernel [I; 0], bias 0: output = state = the step's (dropped) input."""
    return wr.BasicRNN(np.vstack([np.eye(units), np.zeros((units, units))]), np.zeros(units), "identity")


def counter_layer(units):
    """Identity activation, kernel [0; I], bias 1: h' = h + 1 (ignores its input)."""
    return wr.BasicRNN(np.vstack([np.zeros((units, units)), np.eye(units)]), np.ones(units), "identity")


KEEPS = st.sampled_from([1.0, 0.8, 0.5, 0.3])


@given(
    kind=st.sampled_from(CELL_KINDS),
    stacked=st.booleans(),
    keeps=st.tuples(KEEPS, KEEPS, KEEPS),
    variational=st.booleans(),
    shape=problem_shapes(),
    time_major=st.booleans(),
    mode=grad_modes,
    mask_seed=seeds,
)
def test_dropout_matches_reference(dtype, kind, stacked, keeps, variational, shape, time_major, mode, mask_seed):
    """Forward and every gradient with the masks reproduced from the seed; the
    wrapped cell is one cell or a two-layer MultiRNNCell (a tuple state)."""
    rng = np.random.default_rng(shape["seed"])
    inner = random_cell(kind, rng, 3, 4, dtype)
    if stacked:
        inner = wr.Multi([inner, random_cell(kind, rng, 4, 2, dtype, "sigmoid")])
    p = make_problem(inner, dtype, **shape)
    probs = dict(zip(("input_keep_prob", "state_keep_prob", "output_keep_prob"), keeps))
    cell = dropout_cell(inner, dtype, **probs, variational_recurrent=variational, seed=mask_seed)
    layer = reference_dropout(inner, dtype, p, seed=mask_seed, time_major=time_major,
                              variational_recurrent=variational, **probs)
    check_against_reference(layer, cell, p, dtype, mode=mode, time_major=time_major, training=True)


DROPOUT_CONFIGS = {
    "input_output": dict(input_keep_prob=0.7, output_keep_prob=0.6),
    "state": dict(state_keep_prob=0.6),
    "all": dict(input_keep_prob=0.7, state_keep_prob=0.5, output_keep_prob=0.8),
    "all_variational": dict(input_keep_prob=0.7, state_keep_prob=0.5, output_keep_prob=0.8,
                            variational_recurrent=True),
}


@pytest.mark.parametrize("config", list(DROPOUT_CONFIGS))
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
def test_dropout_explicit_cases(dtype, config, time_major):
    rng = np.random.default_rng(11)
    inner = wr.Multi([random_cell("BasicRNNCell", rng, 3, 4, dtype), random_cell("BasicRNNCell", rng, 4, 3, dtype)])
    p = make_problem(inner, dtype, 5, 6, seed=12, lengths=[6, 0, 3, 1, 6])
    kwargs = DROPOUT_CONFIGS[config]
    cell = dropout_cell(inner, dtype, **kwargs, seed=13)
    layer = reference_dropout(inner, dtype, p, seed=13, time_major=time_major, **kwargs)
    _, state, _ = check_against_reference(layer, cell, p, dtype, time_major=time_major, training=True)
    for i in range(2):  # the length-0 row returns its initial state, bit for bit
        np.testing.assert_array_equal(state[i][1], p.initial_state[i][1].astype(dtype))


@pytest.mark.parametrize("config", list(DROPOUT_CONFIGS))
@pytest.mark.parametrize("stacked", [False, True], ids=["cell", "multi"])
def test_dropout_finite_differences(config, stacked):
    rng = np.random.default_rng(21)
    inner = random_cell("BasicRNNCell", rng, 2, 3, np.float64)
    if stacked:
        inner = wr.Multi([inner, random_cell("BasicRNNCell", rng, 3, 2, np.float64)])
    kwargs = DROPOUT_CONFIGS[config]
    check_finite_differences(
        lambda: rnnrs.DropoutWrapper(rnnrs_cell(inner, np.float64), **kwargs, seed=22),
        inner.weights(), fd_problem(inner), training=True,
    )


def test_dropout_is_identity_when_not_training_or_keeping_everything(dtype):
    rng = np.random.default_rng(31)
    inner = random_cell("BasicRNNCell", rng, 3, 4, dtype)
    p = make_problem(inner, dtype, 4, 5, seed=32, lengths=[5, 0, 2, 4])
    bare = run_rnnrs(matching_cell(inner, dtype), p, dtype)
    low = dict(input_keep_prob=0.5, state_keep_prob=0.5, output_keep_prob=0.5)
    for kwargs, training in [(low, False), (dict(variational_recurrent=True, **low), False), ({}, True),
                             (dict(input_keep_prob=1, state_keep_prob=1.0, output_keep_prob=1.0), True)]:
        got = run_rnnrs(dropout_cell(inner, dtype, seed=1, **kwargs), p, dtype, training=training)
        for a, b in zip([got[0], got[1], got[2].inputs, got[2].initial_state, *got[2].weights.values()],
                        [bare[0], bare[1], bare[2].inputs, bare[2].initial_state, *bare[2].weights.values()]):
            np.testing.assert_array_equal(a, b)
    # One step (cell(x, state)) never drops anything.
    cell = dropout_cell(inner, dtype, seed=1, **low)
    out, state = cell(p.x[:, 0].astype(dtype), p.initial_state.astype(dtype))
    want, _ = matching_cell(inner, dtype)(p.x[:, 0].astype(dtype), p.initial_state.astype(dtype))
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(state, want)


@pytest.mark.parametrize("arg", ["input_keep_prob", "state_keep_prob", "output_keep_prob"])
def test_dropout_keep_prob_validation(arg):
    cell = rnnrs.BasicRNNCell(3)
    for bad in (0, 0.0, -0.1, 1.5, 1.0000001, float("nan"), float("inf"), -float("inf")):
        with raises_naming(ValueError, arg):
            rnnrs.DropoutWrapper(cell, **{arg: bad})
    for bad in ("0.5", None, [0.5], np.array([0.5]), 0.5j):
        with raises_naming(TypeError, arg):
            rnnrs.DropoutWrapper(cell, **{arg: bad})
    for good in (1, 1.0, 0.5, 1e-9, np.float32(0.25), np.float64(0.75)):
        assert getattr(rnnrs.DropoutWrapper(cell, **{arg: good}), arg) == pytest.approx(float(good))


def test_dropout_other_argument_errors():
    cell = rnnrs.BasicRNNCell(3)
    with raises_naming(TypeError, "variational_recurrent"):
        rnnrs.DropoutWrapper(cell, variational_recurrent="yes")
    with raises_naming(TypeError, "seed"):
        rnnrs.DropoutWrapper(cell, seed=1.5)
    with raises_naming(TypeError, "seed"):
        rnnrs.DropoutWrapper(cell, seed="7")


def test_dropout_seed_determinism(dtype):
    rng = np.random.default_rng(41)
    inner = random_cell("BasicRNNCell", rng, 3, 4, dtype)
    p = make_problem(inner, dtype, 6, 7, seed=42, lengths=[7, 3, 0, 7, 1, 5])
    kwargs = dict(input_keep_prob=0.6, state_keep_prob=0.7, output_keep_prob=0.5)

    def wrapper(seed):
        return dropout_cell(inner, dtype, seed=seed, **kwargs)

    def run(cell):
        out, state, grads = run_rnnrs(cell, p, dtype, training=True)
        return [out, state, grads.inputs, grads.initial_state, *grads.weights.values()]

    first, again = run(wrapper(5)), run(wrapper(5))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)  # same seed: bit for bit
    assert not np.array_equal(run(wrapper(6))[0], first[0])  # another seed: other masks
    assert not np.array_equal(run(wrapper(None))[0], run(wrapper(None))[0])  # unseeded: fresh masks each time

    # One wrapper keeps drawing from its generator: a second training run uses the next masks.
    same = wrapper(5)
    run(same)
    second = run(same)
    assert not np.array_equal(second[0], first[0])
    stream = np.random.default_rng(5)
    reference_dropout(inner, dtype, p, seed=None, rng=stream, **kwargs)  # the first run's draws
    layer = reference_dropout(inner, dtype, p, seed=None, rng=stream, **kwargs)  # the second run's
    want_out, want_state, _ = run_reference(layer, p)
    assert_close(second[0], want_out, dtype, "second run outputs")
    assert_close(second[1], want_state, dtype, "second run state")


@pytest.mark.parametrize("keep", [0.25, 0.6, 0.9])
def test_dropout_outputs_are_zero_or_scaled(dtype, keep):
    """Inverted dropout: every output is 0 or (wrapped cell's output) / keep; about `keep` of them survive."""
    rng = np.random.default_rng(51)
    inner = random_cell("BasicRNNCell", rng, 3, 8, dtype, "sigmoid")  # outputs in (0, 1): never 0
    x = rng.normal(size=(40, 10, 3)).astype(dtype)
    plain, _ = rnnrs.dynamic_rnn(matching_cell(inner, dtype), x)
    assert np.all(plain != 0)
    dropped, _ = rnnrs.dynamic_rnn(dropout_cell(inner, dtype, output_keep_prob=keep, seed=52), x, training=True)
    kept = dropped != 0
    scale = np.asarray(1, dtype) / np.asarray(keep, dtype)
    np.testing.assert_allclose(dropped[kept], plain[kept] * scale, rtol=2e-7 if dtype == np.float32 else 1e-15)
    fraction = kept.mean()  # 3200 draws: a few standard deviations is < 0.04
    assert abs(fraction - keep) < 0.04, fraction

    # Input dropout, seen through a cell whose output is its step input.
    copy = copy_input_layer(3)
    seen, _ = rnnrs.dynamic_rnn(dropout_cell(copy, dtype, input_keep_prob=keep, seed=53), x, training=True)
    kept = seen != 0
    np.testing.assert_allclose(seen[kept], x[kept] * scale, rtol=2e-7 if dtype == np.float32 else 1e-15)
    assert abs(kept.mean() - keep) < 0.06


@pytest.mark.parametrize("variational", [True, False], ids=["variational", "per_step"])
def test_dropout_variational_masks_are_constant_over_time(dtype, variational):
    rng = np.random.default_rng(61)
    B, T, H = 6, 8, 5
    x = rng.normal(size=(B, T, H)).astype(dtype)

    def constant_over_time(zeros):  # [B, T, H] booleans
        return bool(np.all(zeros == zeros[:, :1, :]))

    # Output dropout on a sigmoid cell (outputs never 0): where the zeros are.
    sig = random_cell("BasicRNNCell", rng, H, H, dtype, "sigmoid")
    out, _ = rnnrs.dynamic_rnn(dropout_cell(sig, dtype, output_keep_prob=0.5, variational_recurrent=variational,
                                            seed=62), x, training=True)
    assert constant_over_time(out == 0) == variational
    # Input dropout on a cell whose output is its input.
    out, _ = rnnrs.dynamic_rnn(dropout_cell(copy_input_layer(H), dtype, input_keep_prob=0.5,
                                            variational_recurrent=variational, seed=63), x, training=True)
    assert constant_over_time(out == 0) == variational
    # State dropout on h' = h + 1: after a dropped unit, the next output is exactly 1.
    out, _ = rnnrs.dynamic_rnn(dropout_cell(counter_layer(H), dtype, state_keep_prob=0.5,
                                            variational_recurrent=variational, seed=64), x, training=True)
    assert constant_over_time(out[:, 1:] == 1) == variational


@pytest.mark.parametrize("variational", [False, True], ids=["per_step", "variational"])
def test_dropout_state_semantics(dtype, variational):
    """TF 1.x: the dropped state feeds the next step and is the returned state;
    the output is not state-dropped; finished rows keep their state and output 0."""
    B, T, H = 4, 5, 3
    lengths = [5, 0, 2, 4]
    rng = np.random.default_rng(71)
    h0 = rng.uniform(-1, 1, size=(B, H)).astype(dtype)
    cell = dropout_cell(counter_layer(H), dtype, state_keep_prob=0.5, variational_recurrent=variational, seed=72)
    x = rng.normal(size=(B, T, H)).astype(dtype)
    outputs, state = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=h0, training=True)
    _, state_masks, _ = wr.draw_dropout_masks(
        np.random.default_rng(72), batch=B, time=T, input_size=H, output_size=H, state=h0,
        state_keep_prob=0.5, variational_recurrent=variational, dtype=dtype)
    s = h0.astype(np.float64)
    for t in range(T):
        active = (t < np.array(lengths))[:, None]
        out = s + 1  # h' = h + 1 from the (dropped) previous state
        assert_close(outputs[:, t], np.where(active, out, 0), dtype, f"outputs[:, {t}]")
        s = np.where(active, out * state_masks[t], s)
    assert_close(state, s, dtype, "state")
    np.testing.assert_array_equal(state[1], h0[1])  # length 0: the initial state itself
    assert np.all(outputs[1] == 0) and np.all(outputs[2, 2:] == 0) and np.all(outputs[3, 4:] == 0)


class CountingPairCell(rnnrs.RNNCell):
    """A stand-in for an LSTM cell (until LSTM cells exist): state
    ``LSTMStateTuple(c, h)`` with ``c' = c + 1``, ``h' = h + 1``; output ``h'``;
    no weights. Its gradients: ``d c = d c'``, ``d h = d h' + d output``.
    Replace it by an LSTM cell in test_dropout_never_drops_lstm_c when one exists."""

    def _weight_shapes(self, input_size):
        return {}

    def _init_weights(self, rng, input_size):
        return {}

    def zero_state(self, batch_size):
        z = np.zeros((batch_size, self.num_units), self.dtype)
        return rnnrs.LSTMStateTuple(z, z.copy())

    def _check_state(self, name, state, batch):
        c, h = (np.asarray(a, self.dtype) for a in state)
        assert c.shape == h.shape == (batch, self.num_units), name
        return rnnrs.LSTMStateTuple(c, h)

    def _run(self, inputs, state, lengths, time_major, training):
        x = inputs if time_major else inputs.transpose(1, 0, 2)  # [T, B, I]
        T, B = x.shape[:2]
        steps = np.full(B, T) if lengths is None else lengths
        c, h = state
        outputs = np.zeros((T, B, self.num_units), self.dtype)
        for t in range(T):
            active = (t < steps)[:, None]
            c, h = np.where(active, c + 1, c), np.where(active, h + 1, h)
            outputs[t] = np.where(active, h, 0)

        def backward(d_outputs, d_state):
            d_c, d_h = (np.zeros_like(c), np.zeros_like(h)) if d_state is None else d_state
            if d_outputs is not None:
                d_h = d_h + (d_outputs if time_major else d_outputs.transpose(1, 0, 2)).sum(axis=0)  # padding is 0
            return np.zeros_like(inputs), rnnrs.LSTMStateTuple(d_c, d_h), {}

        return (outputs if time_major else outputs.transpose(1, 0, 2)), rnnrs.LSTMStateTuple(c, h), backward


class CountingPairLayer:
    """Reference layer for CountingPairCell (state wr.LSTMState)."""

    input_size, output_size = 2, 3

    def weights(self):
        return {}

    def zero_state(self, batch):
        return wr.LSTMState(np.zeros((batch, 3)), np.zeros((batch, 3)))

    def forward(self, x, state, lengths=None):
        B, T, _ = x.shape
        lengths = ref.as_lengths(lengths, B, T)
        c, h = state
        outputs = np.zeros((B, T, 3))
        for t in range(T):
            active = ref.active_rows(lengths, t)
            c, h = np.where(active, c + 1, c), np.where(active, h + 1, h)
            outputs[:, t] = np.where(active, h, 0)
        return outputs, wr.LSTMState(c, h), (x.shape, lengths)

    def backward(self, cache, d_outputs, d_state):
        (B, T, I), lengths = cache
        d_c, d_h = self.zero_state(B) if d_state is None else d_state
        if d_outputs is not None:
            d_h = d_h + np.where(wr.active_mask(lengths, B, T), d_outputs, 0).sum(axis=1)
        return np.zeros((B, T, I)), wr.LSTMState(d_c, d_h), {}


@pytest.mark.parametrize("variational", [False, True], ids=["per_step", "variational"])
def test_dropout_never_drops_lstm_c(dtype, variational):
    """State dropout leaves the ``c`` of an LSTMStateTuple alone (TF 1.x) and
    draws no mask for it; ``h`` is dropped. Gradients flow through c unscaled."""
    layer = CountingPairLayer()
    p = make_problem(layer, dtype, 4, 5, seed=81, lengths=[5, 0, 2, 3])
    cell = rnnrs.DropoutWrapper(CountingPairCell(3, dtype=dtype), state_keep_prob=0.5,
                                variational_recurrent=variational, seed=82)
    reference = reference_dropout(layer, dtype, p, seed=82, state_keep_prob=0.5, variational_recurrent=variational)
    assert all(m.c is None and m.h is not None for m in reference.state_masks)
    _, state, grads = check_against_reference(reference, cell, p, dtype, training=True)
    counted_c, counted_h = (a.astype(dtype) for a in p.initial_state)
    for t in range(5):  # what c and h would be without any dropout
        active = (t < p.lengths)[:, None]
        counted_c, counted_h = np.where(active, counted_c + 1, counted_c), np.where(active, counted_h + 1, counted_h)
    np.testing.assert_array_equal(state.c, counted_c)  # c: counted, never dropped
    np.testing.assert_array_equal(grads.initial_state.c, p.d_state.c.astype(dtype))  # d c0 = d c, unscaled
    assert np.any(state.h != counted_h)  # h was dropped somewhere


def test_dropout_layers_inside_multi_rnn_cell(dtype):
    """Each DropoutWrapper in a stack draws from its own seed, with its layer's sizes."""
    rng = np.random.default_rng(91)
    inner = [random_cell("BasicRNNCell", rng, 3, 4, dtype), random_cell("BasicRNNCell", rng, 4, 2, dtype)]
    configs = [dict(input_keep_prob=0.8, state_keep_prob=0.6, seed=92),
               dict(output_keep_prob=0.7, variational_recurrent=True, seed=93)]
    multi = rnnrs.MultiRNNCell([dropout_cell(layer, dtype, **cfg) for layer, cfg in zip(inner, configs)])
    p = make_problem(wr.Multi(inner), dtype, 4, 5, seed=94, lengths=[5, 0, 2, 4])
    layers = []
    for layer, cfg in zip(inner, configs):
        cfg = dict(cfg)
        layers.append(reference_dropout(layer, dtype, p, seed=cfg.pop("seed"), **cfg))
    check_against_reference(wr.Multi(layers), multi, p, dtype, training=True)
    assert sorted(multi.get_weights()) == ["cell_0/bias", "cell_0/kernel", "cell_1/bias", "cell_1/kernel"]


# --------------------------------------------------------------------------
# OutputProjectionWrapper
# --------------------------------------------------------------------------


@given(
    kind=st.sampled_from(CELL_KINDS),
    sizes=st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5)),
    activation=st.sampled_from(ACTIVATIONS),
    shape=problem_shapes(),
    time_major=st.booleans(),
    mode=grad_modes,
)
def test_output_projection_matches_reference(dtype, kind, sizes, activation, shape, time_major, mode):
    I, H, P = sizes
    rng = np.random.default_rng(shape["seed"])
    layer = random_projection(rng, random_cell(kind, rng, I, H, dtype, activation), P, dtype)
    p = make_problem(layer, dtype, **shape)
    _, _, grads = check_against_reference(layer, matching_cell(layer, dtype), p, dtype, mode=mode,
                                          time_major=time_major)
    assert grads.weights["output_projection/kernel"].shape == (H, P)


def test_output_projection_equation(dtype):
    """outputs = where(t < len, cell_outputs @ kernel + bias, 0), against the bare cell's outputs."""
    rng = np.random.default_rng(101)
    layer = random_projection(rng, random_cell("BasicRNNCell", rng, 3, 4, dtype), 6, dtype)
    wrapper = matching_cell(layer, dtype)
    x = rng.normal(size=(4, 5, 3)).astype(dtype)
    lengths = [5, 0, 3, 1]
    outputs, state = rnnrs.dynamic_rnn(wrapper, x, sequence_length=lengths)
    cell_out, cell_state = rnnrs.dynamic_rnn(wrapper.cell, x, sequence_length=lengths)
    active = wr.active_mask(lengths, 4, 5)
    want = np.where(active, cell_out.astype(np.float64) @ layer.kernel + layer.bias, 0)
    assert_close(outputs, want, dtype, "outputs")
    np.testing.assert_array_equal(state, cell_state)
    assert outputs.shape == (4, 5, 6) and np.all(outputs[~active[..., 0]] == 0)


@pytest.mark.parametrize("name", ["cell", "multi"])
def test_output_projection_finite_differences(name):
    rng = np.random.default_rng(111)
    inner = random_cell("BasicRNNCell", rng, 2, 3, np.float64)
    if name == "multi":
        inner = wr.Multi([inner, random_cell("BasicRNNCell", rng, 3, 2, np.float64)])
    layer = random_projection(rng, inner, 4, np.float64)
    check_finite_differences(lambda: rnnrs_cell(layer, np.float64), layer.weights(), fd_problem(layer))


def test_output_projection_weights(dtype):
    cell = rnnrs.OutputProjectionWrapper(rnnrs.BasicRNNCell(4, dtype=dtype, seed=1), 6, seed=2)
    with raises_naming(ValueError, "get_weights"):
        cell.get_weights()
    assert not cell.built
    cell.build(3)
    assert cell.built and cell.input_size == 3
    w = cell.get_weights()
    assert sorted(w) == ["bias", "kernel", "output_projection/bias", "output_projection/kernel"]
    assert w["output_projection/kernel"].shape == (4, 6) and w["output_projection/bias"].shape == (6,)
    assert all(v.dtype == np.dtype(dtype) for v in w.values())
    assert np.all(w["output_projection/bias"] == 0)
    kernel = w["output_projection/kernel"].astype(np.float64)
    assert np.all(np.abs(kernel) <= glorot_bound(4, 6) * (1 + 1e-6)) and np.any(kernel != 0)
    # The same seed gives the same projection; another seed another one.
    same = rnnrs.OutputProjectionWrapper(rnnrs.BasicRNNCell(4, dtype=dtype, seed=1), 6, seed=2)
    other = rnnrs.OutputProjectionWrapper(rnnrs.BasicRNNCell(4, dtype=dtype, seed=1), 6, seed=3)
    rnnrs.dynamic_rnn(same, np.zeros((1, 2, 3), dtype))  # built lazily
    other.build(3)
    np.testing.assert_array_equal(same.get_weights()["output_projection/kernel"], w["output_projection/kernel"])
    assert not np.array_equal(other.get_weights()["output_projection/kernel"], w["output_projection/kernel"])
    # get_weights returns copies.
    w["output_projection/kernel"][...] = 5
    assert not np.any(cell.get_weights()["output_projection/kernel"] == 5)


def test_output_projection_set_weights(dtype):
    rng = np.random.default_rng(121)
    layer = random_projection(rng, random_cell("BasicRNNCell", rng, 3, 4, dtype), 2, dtype)
    cell = matching_cell(layer, dtype)  # complete mapping on an unbuilt wrapper: builds it
    assert cell.built and cell.input_size == 3
    for k, v in layer.weights().items():
        np.testing.assert_array_equal(cell.get_weights()[k], v.astype(dtype))

    # Partial mappings: only the projection's bias; only the inner cell's kernel.
    new_bias = rng.normal(size=2)
    cell.set_weights({"output_projection/bias": new_bias})
    new_kernel = rng.normal(size=(7, 4)) * 0.3
    source = new_kernel.copy()
    cell.set_weights({"kernel": source})
    source[...] = 0  # copied, not kept
    moved_cell = wr.BasicRNN(rounded(new_kernel, dtype), layer.cell.bias)
    moved = wr.Projection(moved_cell, layer.kernel, rounded(new_bias, dtype))
    check_against_reference(moved, cell, make_problem(moved, dtype, 3, 4, seed=122, lengths=[4, 0, 2]), dtype)

    with raises_naming(ValueError, re.escape("mapping['output_projection/kernel']")):
        cell.set_weights({"output_projection/kernel": np.zeros((2, 4))})
    with raises_naming(ValueError, "mapping"):
        cell.set_weights({"output_projection/kernal": np.zeros((4, 2))})
    with raises_naming(TypeError, "mapping"):
        cell.set_weights(None)
    # An unbuilt projection needs both of its weights.
    fresh = rnnrs_cell(layer, dtype)
    with raises_naming(ValueError, "mapping"):
        fresh.set_weights({"kernel": layer.cell.kernel, "bias": layer.cell.bias,
                           "output_projection/kernel": layer.kernel})
    assert not fresh.built


def test_output_projection_backprop_uses_its_forward_weights(dtype):
    rng = np.random.default_rng(131)
    layer = random_projection(rng, random_cell("BasicRNNCell", rng, 3, 4, dtype), 2, dtype)
    cell = matching_cell(layer, dtype)
    p = make_problem(layer, dtype, 3, 4, seed=132, lengths=[4, 1, 0])
    _, _, backprop = rnnrs.dynamic_rnn(cell, p.x.astype(dtype), sequence_length=p.lengths,
                                       initial_state=p.initial_state.astype(dtype), return_backprop=True)
    cell.set_weights({"output_projection/kernel": np.zeros((4, 2))})
    grads = backprop(d_outputs=p.d_outputs.astype(dtype), d_state=p.d_state.astype(dtype))
    _, _, (d_x, _, d_w) = run_reference(layer, p)
    assert_close(grads.inputs, d_x, dtype, "grads.inputs")
    assert_weights_close(grads.weights, d_w, dtype, "grads.weights")


def test_output_projection_bad_output_size():
    cell = rnnrs.BasicRNNCell(3)
    for bad in (0, -2):
        with raises_naming(ValueError, "output_size"):
            rnnrs.OutputProjectionWrapper(cell, bad)
    for bad in (2.5, "3", None, True):
        with raises_naming(TypeError, "output_size"):
            rnnrs.OutputProjectionWrapper(cell, bad)
    with raises_naming(TypeError, "seed"):
        rnnrs.OutputProjectionWrapper(cell, 2, seed=0.5)
    assert rnnrs.OutputProjectionWrapper(cell, np.int64(2)).output_size == 2


# --------------------------------------------------------------------------
# ResidualWrapper
# --------------------------------------------------------------------------


@given(
    kind=st.sampled_from(CELL_KINDS),
    size=st.integers(1, 5),
    activation=st.sampled_from(ACTIVATIONS),
    shape=problem_shapes(),
    time_major=st.booleans(),
    mode=grad_modes,
)
def test_residual_matches_reference(dtype, kind, size, activation, shape, time_major, mode):
    rng = np.random.default_rng(shape["seed"])
    layer = wr.Residual(random_cell(kind, rng, size, size, dtype, activation))
    p = make_problem(layer, dtype, **shape)
    check_against_reference(layer, matching_cell(layer, dtype), p, dtype, mode=mode, time_major=time_major)


def test_residual_equation(dtype):
    """outputs = where(t < len, cell_outputs + inputs, 0), even with garbage in the padding."""
    rng = np.random.default_rng(141)
    wrapper = rnnrs.ResidualWrapper(rnnrs.BasicRNNCell(3, dtype=dtype, seed=142))
    x = rng.normal(size=(4, 5, 3)).astype(dtype)
    lengths = [5, 0, 3, 1]
    active = wr.active_mask(lengths, 4, 5)
    x[~active[..., 0]] = 1e3
    outputs, state = rnnrs.dynamic_rnn(wrapper, x, sequence_length=lengths)
    cell_out, cell_state = rnnrs.dynamic_rnn(wrapper.cell, x, sequence_length=lengths)
    np.testing.assert_array_equal(outputs, np.where(active, cell_out + x, 0))
    np.testing.assert_array_equal(state, cell_state)
    assert wrapper.get_weights().keys() == wrapper.cell.get_weights().keys()


def test_residual_finite_differences():
    layer = wr.Residual(random_cell("BasicRNNCell", np.random.default_rng(151), 3, 3, np.float64))
    check_finite_differences(lambda: rnnrs_cell(layer, np.float64), layer.weights(), fd_problem(layer))


def test_residual_input_size_must_equal_output_size(dtype):
    wrapper = rnnrs.ResidualWrapper(rnnrs.BasicRNNCell(4, dtype=dtype))
    with raises_naming(ValueError, "inputs"):
        rnnrs.dynamic_rnn(wrapper, np.zeros((2, 3, 5), dtype))
    with raises_naming(ValueError, "inputs"):
        wrapper(np.zeros((2, 3), dtype), wrapper.zero_state(2))
    with raises_naming(ValueError, "inputs"):
        wrapper.build(2)
    assert not wrapper.built
    # A cell already built for another input size cannot be made residual either.
    built = rnnrs.BasicRNNCell(4, dtype=dtype)
    built.build(2)
    with raises_naming(ValueError, "inputs"):
        rnnrs.dynamic_rnn(rnnrs.ResidualWrapper(built), np.zeros((2, 3, 2), dtype))
    outputs, _ = rnnrs.dynamic_rnn(wrapper, np.zeros((2, 3, 4), dtype))
    assert outputs.shape == (2, 3, 4)
