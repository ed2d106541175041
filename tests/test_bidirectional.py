"""bidirectional_dynamic_rnn and static_bidirectional_rnn against a
row-by-row NumPy reference (reference_wrappers.bidirectional_forward /
_backward, which has no masking machinery: each row's real steps are run
forward and reversed), central finite differences of rnnrs itself, and the
contract: TF 1.x ``reverse_sequence`` semantics, outputs in input order.
Each direction may be of its own cell kind (``CELL_KINDS`` of
test_wrappers.py), e.g. an LSTMCell forward and a GRUCell backward with
different output sizes.
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
from helpers import ACTIVATIONS, assert_close, raises_naming, seeds
from test_wrappers import (
    CELL_KINDS,
    assert_clips_exercised,
    assert_rows_keep_initial_state,
    assert_state_close,
    assert_weights_close,
    lib_state,
    matching_cell,
    problem_shapes,
    random_cell,
    random_projection,
    rnnrs_cell,
    rounded,
    swap_bt,
)

# --------------------------------------------------------------------------
# Problems and runners
# --------------------------------------------------------------------------


def random_structure(name, kind, rng, input_size, units, dtype, activation="tanh"):
    """A reference layer: one cell, a two-layer stack, a projected cell or a residual cell."""
    if name == "cell":
        return random_cell(kind, rng, input_size, units, dtype, activation)
    if name == "multi":
        return wr.Multi(
            [random_cell(kind, rng, input_size, units, dtype, activation), random_cell(kind, rng, units, 2, dtype)]
        )
    if name == "projection":
        return random_projection(rng, random_cell(kind, rng, input_size, units, dtype, activation), 3, dtype)
    if name == "residual":
        return wr.Residual(random_cell(kind, rng, input_size, input_size, dtype, activation))
    raise ValueError(name)


STRUCTURES = ("cell", "multi", "projection", "residual")

# (fw kind, bw kind) pairs for the explicit cases: one kind in both
# directions, and different kinds with different output sizes (LSTMCell
# with every option: P != H).
KIND_PAIRS = [(kind, kind) for kind in CELL_KINDS] + [
    ("LSTMCell", "GRUCell"),
    ("BasicLSTMCell", "GRUCell_reset_after"),
    ("GRUCell", "LSTMCell"),
    ("BasicRNNCell", "BasicLSTMCell"),
]


def pair_id(pair):
    return "-".join(pair)


@dataclass(frozen=True)
class BiProblem:
    """float64 data, rounded to the dtype under test; padding holds garbage."""

    x: np.ndarray  # [B, T, I]
    lengths: np.ndarray | None
    state_fw: object  # reference state structures, or None (zeros)
    state_bw: object
    d_outputs: tuple  # (fw [B, T, O_fw], bw [B, T, O_bw]) in input order
    d_state: tuple  # (fw, bw) state structures


def make_bi_problem(fw, bw, dtype, B, T, seed, lengths=None, with_state=True):
    rng = np.random.default_rng(seed)

    def random_state(layer, low, high):
        return wr.map_state(lambda _c, a: rounded(rng.uniform(low, high, a.shape), dtype), layer.zero_state(B))

    return BiProblem(
        x=rounded(rng.normal(size=(B, T, fw.input_size)), dtype),
        lengths=None if lengths is None else np.asarray(lengths, dtype=np.int64),
        state_fw=random_state(fw, -0.9, 0.9) if with_state else None,
        state_bw=random_state(bw, -0.9, 0.9) if with_state else None,
        d_outputs=tuple(rounded(rng.normal(size=(B, T, layer.output_size)), dtype) for layer in (fw, bw)),
        d_state=(random_state(fw, -2, 2), random_state(bw, -2, 2)),
    )


def given_grads(p, present):
    """(d_outputs, d_state) pairs with the pieces ``present`` selects
    (d_out_fw, d_out_bw, d_state_fw, d_state_bw); a pair of two Nones is
    passed as None."""
    d_out = tuple(d if keep else None for d, keep in zip(p.d_outputs, present[:2]))
    d_state = tuple(d if keep else None for d, keep in zip(p.d_state, present[2:]))

    def pair(p):
        return None if p[0] is None and p[1] is None else p

    return pair(d_out), pair(d_state)


def pair_or_nones(pair):
    return (None, None) if pair is None else pair


def run_bi_rnnrs(cell_fw, cell_bw, p, dtype, *, present=(True,) * 4, time_major=False, training=False):
    """bidirectional_dynamic_rnn + backprop; outputs and grads.inputs returned batch-major."""
    x = p.x.astype(dtype)
    (out_fw, out_bw), (state_fw, state_bw), backprop = rnnrs.bidirectional_dynamic_rnn(
        cell_fw,
        cell_bw,
        swap_bt(x) if time_major else x,
        sequence_length=p.lengths,
        initial_state_fw=lib_state(p.state_fw, dtype),
        initial_state_bw=lib_state(p.state_bw, dtype),
        time_major=time_major,
        training=training,
        return_backprop=True,
    )
    d_out, d_state = given_grads(p, present)
    if d_out is not None:
        d_out = tuple(None if d is None else d.astype(dtype) for d in d_out)
        d_out = tuple(map(swap_bt, d_out)) if time_major else d_out
    if d_state is not None:
        d_state = tuple(lib_state(s, dtype) for s in d_state)
    grads = backprop(d_outputs=d_out, d_state=d_state)
    d_x = grads.inputs
    if time_major:
        out_fw, out_bw, d_x = swap_bt(out_fw), swap_bt(out_bw), swap_bt(d_x)
    return (out_fw, out_bw), (state_fw, state_bw), grads._replace(inputs=d_x)


def run_bi_reference(fw, bw, p, present=(True,) * 4):
    outputs, states, cache = wr.bidirectional_forward(fw, bw, p.x, p.lengths, p.state_fw, p.state_bw)
    d_out, d_state = given_grads(p, present)
    return outputs, states, wr.bidirectional_backward(fw, bw, cache, pair_or_nones(d_out), pair_or_nones(d_state))


def check_bi_against_reference(fw, bw, cell_fw, cell_bw, p, dtype, *, present=(True,) * 4, time_major=False):
    (got_fw, got_bw), (got_sfw, got_sbw), grads = run_bi_rnnrs(
        cell_fw, cell_bw, p, dtype, present=present, time_major=time_major
    )
    (want_fw, want_bw), (want_sfw, want_sbw), (w_dx, (w_ifw, w_ibw), (w_wfw, w_wbw)) = run_bi_reference(
        fw, bw, p, present
    )
    assert_close(got_fw, want_fw, dtype, "outputs_fw")
    assert_close(got_bw, want_bw, dtype, "outputs_bw")
    assert_state_close(got_sfw, want_sfw, dtype, "state_fw")
    assert_state_close(got_sbw, want_sbw, dtype, "state_bw")
    assert_close(grads.inputs, w_dx, dtype, "grads.inputs")
    assert isinstance(grads.initial_state, tuple) and len(grads.initial_state) == 2
    assert_state_close(grads.initial_state[0], w_ifw, dtype, "grads.initial_state[0]")
    assert_state_close(grads.initial_state[1], w_ibw, dtype, "grads.initial_state[1]")
    assert isinstance(grads.weights, tuple) and len(grads.weights) == 2
    assert set(grads.weights[0]) == set(cell_fw.get_weights())
    assert set(grads.weights[1]) == set(cell_bw.get_weights())
    assert_weights_close(grads.weights[0], w_wfw, dtype, "grads.weights[0]")
    assert_weights_close(grads.weights[1], w_wbw, dtype, "grads.weights[1]")
    pad = ~wr.active_mask(p.lengths, *p.x.shape[:2])[..., 0]
    for name, a in [("outputs_fw", got_fw), ("outputs_bw", got_bw), ("grads.inputs", grads.inputs)]:
        assert np.all(a[pad] == 0), f"{name} past the length must be exactly 0"
    return (got_fw, got_bw), (got_sfw, got_sbw), grads


# --------------------------------------------------------------------------
# The reference itself
# --------------------------------------------------------------------------


def test_reference_is_reverse_sequence_by_hand():
    """With h' = h + x (identity, I = H = 1) fw outputs prefix sums and bw
    outputs suffix sums within each row's length, in input order."""
    cumsum = wr.BasicRNN([[1.0], [1.0]], [0.0], "identity")
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1).repeat(3, axis=0)
    (out_fw, out_bw), (s_fw, s_bw), _ = wr.bidirectional_forward(cumsum, cumsum, x, lengths=[3, 4, 0])
    np.testing.assert_array_equal(out_fw[..., 0], [[1, 3, 6, 0], [1, 3, 6, 10], [0, 0, 0, 0]])
    np.testing.assert_array_equal(out_bw[..., 0], [[6, 5, 3, 0], [10, 9, 7, 4], [0, 0, 0, 0]])
    np.testing.assert_array_equal(s_fw[:, 0], [6, 10, 0])
    np.testing.assert_array_equal(s_bw[:, 0], [6, 10, 0])


@pytest.mark.parametrize("kinds", [("BasicRNNCell", "BasicRNNCell"), ("LSTMCell", "GRUCell_reset_after")], ids=pair_id)
def test_reference_backward_matches_its_finite_differences(kinds):
    rng = np.random.default_rng(0)
    fw = random_structure("multi", kinds[0], rng, 2, 3, np.float64)
    bw = random_structure("projection", kinds[1], rng, 2, 3, np.float64)
    p = make_bi_problem(fw, bw, np.float64, 3, 4, seed=1, lengths=[4, 0, 2])
    wr.bidirectional_forward(fw, bw, p.x, p.lengths, p.state_fw, p.state_bw)
    assert min(wr.min_kink_margin(fw), wr.min_kink_margin(bw)) > 1e-4

    def loss():
        (o_fw, o_bw), (s_fw, s_bw), _ = wr.bidirectional_forward(fw, bw, p.x, p.lengths, p.state_fw, p.state_bw)
        return wr.linear_loss(o_fw, s_fw, p.d_outputs[0], p.d_state[0]) + wr.linear_loss(
            o_bw, s_bw, p.d_outputs[1], p.d_state[1]
        )

    _, _, (d_x, (d_ifw, d_ibw), (d_wfw, d_wbw)) = run_bi_reference(fw, bw, p)
    pairs = [(p.x, d_x)]
    pairs += list(zip(wr.state_leaves(p.state_fw), wr.state_leaves(d_ifw)))
    pairs += list(zip(wr.state_leaves(p.state_bw), wr.state_leaves(d_ibw)))
    pairs += [(fw.weights()[k], d_wfw[k]) for k in d_wfw] + [(bw.weights()[k], d_wbw[k]) for k in d_wbw]
    for array, analytic in pairs:
        np.testing.assert_allclose(analytic, ref.numerical_gradient(loss, array), rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------
# bidirectional_dynamic_rnn vs the reference
# --------------------------------------------------------------------------


@given(
    kinds=st.tuples(st.sampled_from(CELL_KINDS), st.sampled_from(CELL_KINDS)),
    structures=st.tuples(st.sampled_from(STRUCTURES), st.sampled_from(STRUCTURES)),
    sizes=st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5)),
    activations=st.tuples(st.sampled_from(ACTIVATIONS), st.sampled_from(ACTIVATIONS)),
    shape=problem_shapes(),
    time_major=st.booleans(),
    present=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    weight_seed=seeds,
)
def test_bidirectional_matches_reference(
    dtype, kinds, structures, sizes, activations, shape, time_major, present, weight_seed
):
    """Each direction of its own kind and structure."""
    rng = np.random.default_rng(weight_seed)
    I, H_fw, H_bw = sizes
    fw = random_structure(structures[0], kinds[0], rng, I, H_fw, dtype, activations[0])
    bw = random_structure(structures[1], kinds[1], rng, I, H_bw, dtype, activations[1])
    p = make_bi_problem(fw, bw, dtype, **shape)
    check_bi_against_reference(
        fw, bw, matching_cell(fw, dtype), matching_cell(bw, dtype), p, dtype, present=present, time_major=time_major
    )


PRESENT = {
    "all": (True, True, True, True),
    "outputs_only": (True, True, False, False),
    "state_only": (False, False, True, True),
    "fw_only": (True, False, True, False),
    "bw_only": (False, True, False, True),
    "nothing": (False, False, False, False),
}


@pytest.mark.parametrize("kinds", KIND_PAIRS, ids=pair_id)
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
@pytest.mark.parametrize("present", list(PRESENT))
def test_bidirectional_explicit_cases(dtype, kinds, time_major, present):
    """Different fw / bw widths (and kinds); lengths with 0 and T, unsorted; every gradient combination."""
    rng = np.random.default_rng(2)
    fw = random_cell(kinds[0], rng, 3, 4, dtype)
    bw = random_cell(kinds[1], rng, 3, 2, dtype, "sigmoid")
    p = make_bi_problem(fw, bw, dtype, 5, 6, seed=3, lengths=[6, 0, 3, 1, 6])
    _, (s_fw, s_bw), grads = check_bi_against_reference(
        fw,
        bw,
        matching_cell(fw, dtype),
        matching_cell(bw, dtype),
        p,
        dtype,
        present=PRESENT[present],
        time_major=time_major,
    )
    assert_clips_exercised(fw, bw)
    assert_rows_keep_initial_state(s_fw, p.state_fw, [1], dtype)  # length 0: the initial states
    assert_rows_keep_initial_state(s_bw, p.state_bw, [1], dtype)
    if present == "nothing":
        leaves = [
            grads.inputs,
            *wr.state_leaves(grads.initial_state),
            *grads.weights[0].values(),
            *grads.weights[1].values(),
        ]
        assert all(np.all(g == 0) for g in leaves)


def test_bidirectional_reverses_within_each_length(dtype):
    """h' = h + x: the bw outputs are suffix sums within each row's length, in input order;
    padding (here huge) never reaches either direction."""
    cumsum = rnnrs.BasicRNNCell(1, activation="identity", dtype=dtype)
    cumsum.set_weights({"kernel": [[1.0], [1.0]], "bias": [0.0]})
    x = np.array([[1, 2, 3, 1000], [1, 2, 3, 4], [1000, 1000, 1000, 1000]], dtype).reshape(3, 4, 1)
    (out_fw, out_bw), (s_fw, s_bw) = rnnrs.bidirectional_dynamic_rnn(cumsum, cumsum, x, sequence_length=[3, 4, 0])
    np.testing.assert_array_equal(out_fw[..., 0], [[1, 3, 6, 0], [1, 3, 6, 10], [0, 0, 0, 0]])
    np.testing.assert_array_equal(out_bw[..., 0], [[6, 5, 3, 0], [10, 9, 7, 4], [0, 0, 0, 0]])
    np.testing.assert_array_equal(s_fw[:, 0], [6, 10, 0])
    np.testing.assert_array_equal(s_bw[:, 0], [6, 10, 0])
    # Without lengths the whole time axis is reversed.
    (out_fw, out_bw), _ = rnnrs.bidirectional_dynamic_rnn(cumsum, cumsum, x[:2], time_major=False)
    np.testing.assert_array_equal(out_bw[..., 0], [[1006, 1005, 1003, 1000], [10, 9, 7, 4]])


@pytest.mark.parametrize(
    "kinds",
    [("BasicRNNCell", "BasicRNNCell"), ("LSTMCell", "GRUCell"), ("BasicLSTMCell", "GRUCell_reset_after")],
    ids=pair_id,
)
@pytest.mark.parametrize("structure", STRUCTURES)
def test_bidirectional_finite_differences(structure, kinds):
    rng = np.random.default_rng(4)
    fw = random_structure(structure, kinds[0], rng, 2, 3, np.float64)
    bw = random_structure("cell", kinds[1], rng, 2, 2, np.float64)
    check_bi_finite_differences(
        lambda: (rnnrs_cell(fw, np.float64), rnnrs_cell(bw, np.float64)),
        fw,
        bw,
        make_bi_problem(fw, bw, np.float64, 3, 4, seed=5, lengths=[4, 0, 2]),
    )


def check_bi_finite_differences(make_cells, fw, bw, p, *, training=False, shared=False):
    """Float64 central finite differences of rnnrs vs its backprop: inputs,
    both initial states, both cells' weights. ``make_cells()`` gives fresh
    ``(cell_fw, cell_bw)``. ``shared``: one cell object serves both
    directions, so its gradient is the sum of the two. The reference forward
    pass (without dropout) checks that no LSTM clip kink lies near the data."""
    wr.bidirectional_forward(fw, bw, p.x, p.lengths, p.state_fw, p.state_bw)
    margin = min(wr.min_kink_margin(fw), wr.min_kink_margin(bw))
    assert margin > 1e-4, f"a clip argument is {margin:.2g} from its limit: pick another seed"
    x = p.x.copy()
    s_fw = wr.map_state(lambda _c, a: a.copy(), p.state_fw)
    s_bw = wr.map_state(lambda _c, a: a.copy(), p.state_bw)
    w_fw = {k: np.array(v) for k, v in fw.weights().items()}
    w_bw = w_fw if shared else {k: np.array(v) for k, v in bw.weights().items()}

    def run(**kwargs):
        cell_fw, cell_bw = make_cells()
        cell_fw.set_weights(w_fw)
        cell_bw.set_weights(w_bw)
        return rnnrs.bidirectional_dynamic_rnn(
            cell_fw,
            cell_bw,
            x,
            sequence_length=p.lengths,
            initial_state_fw=lib_state(s_fw, np.float64),
            initial_state_bw=lib_state(s_bw, np.float64),
            training=training,
            **kwargs,
        )

    def loss():
        (o_fw, o_bw), (f_fw, f_bw) = run()
        return wr.linear_loss(o_fw, f_fw, p.d_outputs[0], p.d_state[0]) + wr.linear_loss(
            o_bw, f_bw, p.d_outputs[1], p.d_state[1]
        )

    _, _, backprop = run(return_backprop=True)
    grads = backprop(d_outputs=p.d_outputs, d_state=tuple(lib_state(s, np.float64) for s in p.d_state))
    pairs = {"inputs": (x, grads.inputs)}
    for side, state, d_init in [("fw", s_fw, grads.initial_state[0]), ("bw", s_bw, grads.initial_state[1])]:
        for i, (a, g) in enumerate(zip(wr.state_leaves(state), wr.state_leaves(d_init))):
            pairs[f"initial_state_{side} leaf {i}"] = (a, g)
    if shared:
        for k in w_fw:
            pairs[f"shared weights[{k!r}]"] = (w_fw[k], grads.weights[0][k] + grads.weights[1][k])
    else:
        for side, weights, d_w in [("fw", w_fw, grads.weights[0]), ("bw", w_bw, grads.weights[1])]:
            assert set(d_w) == set(weights)
            for k in weights:
                pairs[f"weights_{side}[{k!r}]"] = (weights[k], d_w[k])
    for name, (array, analytic) in pairs.items():
        np.testing.assert_allclose(analytic, ref.numerical_gradient(loss, array), rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_same_cell_for_both_directions(dtype, kind):
    """One cell object as cell_fw and cell_bw: its weights serve both; each
    direction reports its own weight gradient."""
    rng = np.random.default_rng(6)
    layer = random_cell(kind, rng, 3, 4, dtype)
    cell = matching_cell(layer, dtype)
    p = make_bi_problem(layer, layer, dtype, 4, 5, seed=7, lengths=[5, 0, 2, 4])
    check_bi_against_reference(layer, layer, cell, cell, p, dtype)
    check_bi_against_reference(layer, layer, cell, cell, p, dtype, time_major=True)


@pytest.mark.parametrize("kind", ["BasicRNNCell", "LSTMCell"])
def test_same_cell_for_both_directions_finite_differences(kind):
    rng = np.random.default_rng(8)
    layer = random_structure("multi", kind, rng, 2, 3, np.float64)

    def make_cells():
        cell = rnnrs_cell(layer, np.float64)
        return cell, cell

    p = make_bi_problem(layer, layer, np.float64, 3, 4, seed=9, lengths=[4, 0, 2])
    check_bi_finite_differences(make_cells, layer, layer, p, shared=True)


@pytest.mark.parametrize("kinds", [("BasicRNNCell", "BasicRNNCell"), ("LSTMCell", "GRUCell")], ids=pair_id)
def test_bidirectional_with_dropout(dtype, kinds):
    """training=True: dropout in both directions; backprop uses the forward
    pass's masks (finite differences in float64); training=False: no dropout."""
    rng = np.random.default_rng(10)
    fw, bw = random_cell(kinds[0], rng, 2, 3, dtype), random_cell(kinds[1], rng, 2, 2, dtype)
    keeps = dict(input_keep_prob=0.7, state_keep_prob=0.6, output_keep_prob=0.8)

    def make_cells(dt=dtype):
        return (
            rnnrs.DropoutWrapper(rnnrs_cell(fw, dt), **keeps, seed=11),
            rnnrs.DropoutWrapper(rnnrs_cell(bw, dt), **keeps, variational_recurrent=True, seed=12),
        )

    p = make_bi_problem(fw, bw, dtype, 3, 4, seed=13, lengths=[4, 0, 2])
    cells = make_cells()
    for cell, layer in zip(cells, (fw, bw)):
        cell.set_weights(layer.weights())
    # Not training: exactly the reference without dropout.
    check_bi_against_reference(fw, bw, *cells, p, dtype)
    # Training: dropped (different from the plain run) and reproducible from the seeds.
    plain = run_bi_rnnrs(*cells, p, dtype)
    dropped = run_bi_rnnrs(*cells, p, dtype, training=True)
    assert not np.array_equal(plain[0][0], dropped[0][0]) and not np.array_equal(plain[0][1], dropped[0][1])
    again = make_cells()
    for cell, layer in zip(again, (fw, bw)):
        cell.set_weights(layer.weights())
    np.testing.assert_array_equal(run_bi_rnnrs(*again, p, dtype, training=True)[2].inputs, dropped[2].inputs)
    if dtype == np.float64:
        check_bi_finite_differences(make_cells, fw, bw, p, training=True)


# --------------------------------------------------------------------------
# static_bidirectional_rnn
# --------------------------------------------------------------------------


@pytest.mark.parametrize("lengths", [None, [5, 0, 2, 4]], ids=["full", "ragged"])
@pytest.mark.parametrize("structure", ["cell", "multi"])
@pytest.mark.parametrize(
    "kinds",
    [("BasicRNNCell", "BasicRNNCell"), ("LSTMCell", "GRUCell"), ("GRUCell_reset_after", "BasicLSTMCell")],
    ids=pair_id,
)
def test_static_bidirectional_equals_dynamic(dtype, lengths, structure, kinds):
    """TF 1.x: a list of T outputs [B, H_fw + H_bw] (fw then bw), and the two states;
    backprop takes such a list and a (fw, bw) d_state pair."""
    rng = np.random.default_rng(14)
    fw = random_structure(structure, kinds[0], rng, 3, 4, dtype)
    bw = random_structure("cell", kinds[1], rng, 3, 2, dtype)
    cell_fw, cell_bw = matching_cell(fw, dtype), matching_cell(bw, dtype)
    p = make_bi_problem(fw, bw, dtype, 4, 5, seed=15, lengths=lengths)
    (dyn_fw, dyn_bw), (dyn_sfw, dyn_sbw), dyn_grads = check_bi_against_reference(fw, bw, cell_fw, cell_bw, p, dtype)

    x = p.x.astype(dtype)
    outputs, state_fw, state_bw, backprop = rnnrs.static_bidirectional_rnn(
        cell_fw,
        cell_bw,
        [x[:, t] for t in range(5)],
        initial_state_fw=lib_state(p.state_fw, dtype),
        initial_state_bw=lib_state(p.state_bw, dtype),
        sequence_length=p.lengths,
        return_backprop=True,
    )
    assert isinstance(outputs, list) and len(outputs) == 5
    width_fw = fw.output_size
    for t, out in enumerate(outputs):
        assert out.shape == (4, width_fw + 2) and out.dtype == np.dtype(dtype)
        assert_close(out[:, :width_fw], dyn_fw[:, t].astype(np.float64), dtype, f"outputs[{t}] (fw part)")
        assert_close(out[:, width_fw:], dyn_bw[:, t].astype(np.float64), dtype, f"outputs[{t}] (bw part)")
    for got, want in [(state_fw, dyn_sfw), (state_bw, dyn_sbw)]:
        for g, w in zip(wr.state_leaves(got), wr.state_leaves(want)):
            assert_close(g, w.astype(np.float64), dtype, "state")

    d_out = np.concatenate(p.d_outputs, axis=2).astype(dtype)  # [B, T, O_fw + O_bw]
    grads = backprop(d_outputs=[d_out[:, t] for t in range(5)], d_state=tuple(lib_state(s, dtype) for s in p.d_state))
    assert isinstance(grads.inputs, list) and len(grads.inputs) == 5
    assert_close(np.stack(grads.inputs, axis=1), dyn_grads.inputs.astype(np.float64), dtype, "grads.inputs")
    for side in (0, 1):
        for g, w in zip(wr.state_leaves(grads.initial_state[side]), wr.state_leaves(dyn_grads.initial_state[side])):
            assert_close(g, w.astype(np.float64), dtype, f"grads.initial_state[{side}]")
        for k, v in dyn_grads.weights[side].items():
            assert_close(grads.weights[side][k], v.astype(np.float64), dtype, f"grads.weights[{side}][{k!r}]")
    # Without backprop: (outputs, state_fw, state_bw).
    assert len(rnnrs.static_bidirectional_rnn(cell_fw, cell_bw, [x[:, t] for t in range(5)])) == 3


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


@pytest.fixture
def bi_setup():
    fw = rnnrs.BasicRNNCell(4, seed=0)
    bw = rnnrs.BasicRNNCell(2, seed=1)
    x = np.random.default_rng(0).normal(size=(3, 5, 2)).astype(np.float32)
    return fw, bw, x


def test_bidirectional_argument_errors(bi_setup):
    fw, bw, x = bi_setup
    with raises_naming(ValueError, "cell_bw") as info:
        rnnrs.bidirectional_dynamic_rnn(fw, rnnrs.BasicRNNCell(2, dtype=np.float64), x)
    assert "float32" in str(info.value) and "float64" in str(info.value)
    with raises_naming(TypeError, "cell_fw"):
        rnnrs.bidirectional_dynamic_rnn("lstm", bw, x)
    with raises_naming(TypeError, "cell_bw"):
        rnnrs.bidirectional_dynamic_rnn(fw, None, x)
    with raises_naming(ValueError, "inputs"):
        rnnrs.bidirectional_dynamic_rnn(fw, bw, x[0])
    with raises_naming(ValueError, "sequence_length"):
        rnnrs.bidirectional_dynamic_rnn(fw, bw, x, sequence_length=[5, 6, 0])
    with raises_naming(ValueError, "sequence_length"):
        rnnrs.bidirectional_dynamic_rnn(fw, bw, x, sequence_length=[5, 1])
    with raises_naming(ValueError, "^initial_state_fw"):
        rnnrs.bidirectional_dynamic_rnn(fw, bw, x, initial_state_fw=np.zeros((3, 2)))
    with raises_naming(ValueError, "^initial_state_bw"):
        rnnrs.bidirectional_dynamic_rnn(fw, bw, x, initial_state_bw=np.zeros((3, 4)))


def test_bidirectional_backprop_errors(bi_setup):
    fw, bw, x = bi_setup
    (out_fw, out_bw), (s_fw, s_bw), backprop = rnnrs.bidirectional_dynamic_rnn(fw, bw, x, return_backprop=True)
    for bad in (out_fw, [out_fw], (out_fw, out_bw, out_bw), 1.0):
        with raises_naming(TypeError, "d_outputs"):
            backprop(d_outputs=bad)
    for bad in (s_fw, (s_fw,), rnnrs.LSTMStateTuple(s_fw, s_bw)):
        with raises_naming(TypeError, "d_state"):
            backprop(d_state=bad)
    with raises_naming(ValueError, r"^d_outputs\[0\]"):
        backprop(d_outputs=(out_bw, None))  # the bw width where fw's belongs
    with raises_naming(ValueError, r"^d_outputs\[1\]"):
        backprop(d_outputs=(None, out_fw))
    with raises_naming(ValueError, r"^d_state\[0\]"):
        backprop(d_state=(s_bw, None))
    with raises_naming(ValueError, r"^d_state\[1\]"):
        backprop(d_state=(None, s_fw))
    # The right shapes as lists, or with Nones, are fine.
    full = backprop(d_outputs=[out_fw, out_bw], d_state=[s_fw, s_bw])
    parts = [
        backprop(d_outputs=(out_fw, None)),
        backprop(d_outputs=(None, out_bw)),
        backprop(d_state=(s_fw, None)),
        backprop(d_state=(None, s_bw)),
    ]
    # Gradients are linear in the four pieces.
    assert_close(full.inputs, sum(g.inputs.astype(np.float64) for g in parts), np.float32, "linearity")


def test_static_bidirectional_errors(bi_setup):
    fw, bw, x = bi_setup
    steps = [x[:, t] for t in range(5)]
    with raises_naming(TypeError, "inputs"):
        rnnrs.static_bidirectional_rnn(fw, bw, x)  # an array, not a list of steps
    with raises_naming(ValueError, "cell_bw"):
        rnnrs.static_bidirectional_rnn(fw, rnnrs.BasicRNNCell(2, dtype=np.float64), steps)
    outputs, _, _, backprop = rnnrs.static_bidirectional_rnn(fw, bw, steps, return_backprop=True)
    with raises_naming(ValueError, "d_outputs"):
        backprop(d_outputs=outputs[:4])  # one step missing
    with raises_naming(ValueError, re.escape("d_outputs[0]")):
        backprop(d_outputs=[o[:, :4] for o in outputs])  # the fw part only
    with raises_naming(TypeError, "d_outputs"):
        backprop(d_outputs=np.stack(outputs))
