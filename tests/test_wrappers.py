"""MultiRNNCell, DropoutWrapper, OutputProjectionWrapper and ResidualWrapper
against the NumPy reference (reference_wrappers.py), central finite
differences of rnnrs itself, and the contract in DESIGN.md.

The wrapped cells come from ``CELL_KINDS`` (BasicRNNCell, BasicLSTMCell,
LSTMCell with every option, GRUCell in both forms), alone, stacked in mixed
MultiRNNCells and nested; the helpers at the top (random reference layers, the
matching rnnrs cells, problems, comparisons) are also used by
test_bidirectional.py.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
import reference_gru as rg
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

# The cells the wrapper tests run with. To add one: a reference layer class in
# reference_wrappers.py, then a branch in `random_cell` and `rnnrs_cell`
# below, and its name here. "LSTMCell" has every option on (peepholes,
# cell_clip, num_proj != num_units, proj_clip); "GRUCell_reset_after" is
# GRUCell(reset_after=True).
CELL_KINDS = ("BasicRNNCell", "BasicLSTMCell", "LSTMCell", "GRUCell", "GRUCell_reset_after")

# Stacks of several kinds (bottom first), for MultiRNNCell and DropoutWrapper.
MIXED_STACKS = {
    "lstm_over_gru_over_rnn": ("BasicRNNCell", "GRUCell", "LSTMCell"),
    "gru_over_lstm_over_lstm": ("LSTMCell", "BasicLSTMCell", "GRUCell_reset_after"),
}

# Clip limits exactly representable in float32, so that float32 and the
# float64 reference clip at the same value.
CELL_CLIPS = (0.375, 0.5, 0.75)
PROJ_CLIPS = (0.125, 0.25, 0.375)
FORGET_BIASES = (1.0, 0.5, -0.5, 2.0)

# --------------------------------------------------------------------------
# Reference layers and the rnnrs cells that mirror them
# --------------------------------------------------------------------------


def rounded(a, dtype):
    """``a`` rounded to ``dtype`` and back to float64: what the library sees, for the reference."""
    return np.asarray(a, dtype=dtype).astype(np.float64)


def random_cell(kind, rng, input_size, units, dtype, activation="tanh"):
    """A reference layer for one cell of ``kind`` with random weights (rounded to ``dtype``).

    Biases are random too (not the zeros of a fresh cell) so that they matter.
    ``units`` is the cell's *output* size: for "LSTMCell" that is ``num_proj``,
    and ``num_units`` is drawn different from it. LSTM kinds draw their
    ``forget_bias`` (and LSTMCell its clip limits) too."""
    I = input_size

    def uniform(shape, bound):
        return rounded(rng.uniform(-bound, bound, size=shape), dtype)

    def normal(shape, mean=0.0):
        return rounded(mean + rng.normal(scale=0.5, size=shape), dtype)

    if kind == "BasicRNNCell":
        return wr.BasicRNN(uniform((I + units, units), glorot_bound(I + units, units)), normal(units), activation)
    if kind == "BasicLSTMCell":
        H = units
        weights = {"kernel": uniform((I + H, 4 * H), glorot_bound(I + H, 4 * H)), "bias": normal(4 * H)}
        return wr.LSTM(weights, forget_bias=float(rng.choice(FORGET_BIASES)), activation=activation, basic=True)
    if kind == "LSTMCell":
        P = units
        H = int(rng.choice([h for h in (P - 1, P + 1, P + 2) if h >= 1]))
        weights = {
            "kernel": uniform((I + P, 4 * H), glorot_bound(I + P, 4 * H)),
            "bias": normal(4 * H),
            **{name: uniform(H, 1.0) for name in ("w_i_diag", "w_f_diag", "w_o_diag")},
            "projection/kernel": uniform((H, P), glorot_bound(H, P)),
        }
        return wr.LSTM(
            weights,
            forget_bias=float(rng.choice(FORGET_BIASES)),
            activation=activation,
            cell_clip=float(rng.choice(CELL_CLIPS)),
            proj_clip=float(rng.choice(PROJ_CLIPS)),
        )
    if kind in ("GRUCell", "GRUCell_reset_after"):
        reset_after = kind == "GRUCell_reset_after"
        weights = {
            name: uniform(shape, glorot_bound(*shape))
            if len(shape) == 2
            else normal(shape, 1.0 if name == "gates/bias" else 0.0)
            for name, shape in rg.weight_shapes(I, units, reset_after).items()
        }
        return wr.GRU(weights, activation, reset_after)
    raise ValueError(f"unknown cell kind {kind!r}")


def random_stack(kinds, rng, input_size, units, dtype, activations=None):
    """A reference MultiRNNCell of the given kinds (bottom first) and output sizes."""
    sizes = [input_size, *units]
    activations = activations or ["tanh"] * len(kinds)
    return wr.Multi([random_cell(k, rng, sizes[i], sizes[i + 1], dtype, activations[i]) for i, k in enumerate(kinds)])


def random_projection(rng, cell, size, dtype):
    """A reference OutputProjectionWrapper around ``cell`` with random weights."""
    bound = glorot_bound(cell.output_size, size)
    kernel = rng.uniform(-bound, bound, size=(cell.output_size, size))
    return wr.Projection(cell, rounded(kernel, dtype), rounded(rng.normal(scale=0.5, size=size), dtype))


def rnnrs_cell(layer, dtype):
    """The (unbuilt) rnnrs cell tree mirroring a reference layer tree."""
    if isinstance(layer, wr.BasicRNN):
        return rnnrs.BasicRNNCell(layer.num_units, activation=layer.activation, dtype=dtype)
    if isinstance(layer, wr.LSTM):
        if layer.basic:
            return rnnrs.BasicLSTMCell(
                layer.num_units, forget_bias=layer.forget_bias, activation=layer.activation, dtype=dtype
            )
        return rnnrs.LSTMCell(
            layer.num_units,
            use_peepholes=layer.peepholes,
            cell_clip=layer.cell_clip,
            num_proj=layer.num_proj,
            proj_clip=layer.proj_clip,
            forget_bias=layer.forget_bias,
            activation=layer.activation,
            dtype=dtype,
        )
    if isinstance(layer, wr.GRU):
        return rnnrs.GRUCell(layer.num_units, activation=layer.activation, reset_after=layer.reset_after, dtype=dtype)
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
            if with_state
            else None
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


def assert_away_from_kinks(layer, p):
    """Finite differences are invalid across a clip's kink: the reference's
    forward pass on ``p`` keeps every LSTM clip argument well away from its limit."""
    run_reference(layer, p)
    margin = wr.min_kink_margin(layer)
    assert margin > 1e-4, f"a clip argument is {margin:.2g} from its limit: pick another seed"


def assert_clips_exercised(*layers):
    """When the ``layers`` hold an LSTMCell (with its clips), the reference runs
    so far had some LSTMCell both clip and pass values, for either clip: the
    data reach both sides of each kink, so the comparison tests the clips."""
    lstms = [c for layer in layers for c in wr.cell_layers(layer) if isinstance(c, wr.LSTM) and not c.basic]
    if lstms:
        for name in ("cell_clip", "proj_clip"):
            assert any(all(c.clip_seen[name]) for c in lstms), (name, [c.clip_seen for c in lstms])


def check_finite_differences(make_cell, weights, p, *, training=False, reference=None):
    """Float64 central finite differences of rnnrs itself vs its backprop, for
    the inputs, every initial-state leaf and every weight. ``make_cell()``
    gives a fresh unbuilt cell (for dropout: the same seed, so the same masks).
    ``reference``: the matching reference layer, to check that no clip kink
    lies near the data (needed with LSTMCell)."""
    if reference is not None:
        assert_away_from_kinks(reference, p)
    x = p.x.copy()
    state = wr.map_state(lambda _c, a: a.copy(), p.initial_state)
    weights = {k: np.array(v, dtype=np.float64) for k, v in weights.items()}

    def run(**kwargs):
        cell = make_cell()
        cell.set_weights(weights)
        return rnnrs.dynamic_rnn(
            cell, x, sequence_length=p.lengths, initial_state=lib_state(state, np.float64), training=training, **kwargs
        )

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


# kind "mixed": the cells of a structure take these kinds in turn.
MIXED_ORDER = ("LSTMCell", "GRUCell", "BasicLSTMCell", "GRUCell_reset_after", "BasicRNNCell")


def nested_structure(name, kind, dtype, seed=0):
    """A wrapper structure whose cells are all of ``kind``, or of every kind in
    turn (``kind="mixed"``)."""
    rng = np.random.default_rng(seed)
    kinds = itertools.cycle(MIXED_ORDER) if kind == "mixed" else itertools.repeat(kind)

    def cell(i, h):
        return random_cell(next(kinds), rng, i, h, dtype)

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


@pytest.mark.parametrize("kind", ["BasicRNNCell", "mixed"])
@pytest.mark.parametrize("name", NESTED + ("dropout_of_multi",))
def test_reference_backward_matches_its_finite_differences(name, kind):
    """If this fails, the oracle is wrong, not rnnrs. ``mixed``: LSTM (with
    every option), GRU (both forms) and BasicRNN layers in one structure."""
    if name == "dropout_of_multi":
        inner = nested_structure("multi", kind, np.float64)
        p = fd_problem(inner)
        layer = reference_dropout(
            inner, np.float64, p, seed=5, input_keep_prob=0.7, state_keep_prob=0.6, output_keep_prob=0.8
        )
    else:
        layer = nested_structure(name, kind, np.float64)
        p = fd_problem(layer)
    assert_away_from_kinks(layer, p)
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
    """A reference MultiRNNCell spec: (kinds, input size, units per layer, activations, weight seed);
    each layer of its own kind."""
    n = draw(st.integers(1, max_layers), label="layers")
    return (
        draw(st.lists(st.sampled_from(CELL_KINDS), min_size=n, max_size=n), label="kinds"),
        draw(st.integers(1, 4), label="I"),
        draw(st.lists(st.integers(1, 5), min_size=n, max_size=n), label="units"),
        draw(st.lists(st.sampled_from(ACTIVATIONS), min_size=n, max_size=n), label="activations"),
        draw(seeds, label="weight seed"),
    )


def build_stack(spec, dtype):
    kinds, input_size, units, activations, seed = spec
    return random_stack(kinds, np.random.default_rng(seed), input_size, units, dtype, activations)


def stack_weight_names(layer):
    return sorted(f"cell_{i}/{k}" for i, inner in enumerate(layer.layers) for k in inner.weights())


def assert_rows_keep_initial_state(state, initial, rows, dtype):
    """Rows of length 0 return their initial state, bit for bit, in every leaf."""
    got, want = wr.state_leaves(state), wr.state_leaves(initial)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        for row in rows:
            np.testing.assert_array_equal(g[row], w[row].astype(dtype))


@given(spec=stacks(), shape=problem_shapes(), time_major=st.booleans(), mode=grad_modes)
def test_multi_rnn_matches_reference(dtype, spec, shape, time_major, mode):
    layer = build_stack(spec, dtype)
    p = make_problem(layer, dtype, **shape)
    cell = matching_cell(layer, dtype)
    _, state, grads = check_against_reference(layer, cell, p, dtype, mode=mode, time_major=time_major)
    n = len(layer.layers)
    assert isinstance(state, tuple) and len(state) == n
    assert sorted(grads.weights) == stack_weight_names(layer)
    if mode == "neither":
        for g in [grads.inputs, *wr.state_leaves(grads.initial_state), *grads.weights.values()]:
            assert np.all(g == 0)


# Stacks for the explicit cases: three layers of one kind, or mixed kinds.
STACKS = {**{kind: (kind,) * 3 for kind in CELL_KINDS}, **MIXED_STACKS}


@pytest.mark.parametrize("stack", list(STACKS))
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
@pytest.mark.parametrize("mode", GRAD_MODES)
def test_multi_rnn_explicit_cases(dtype, stack, time_major, mode):
    """Three layers of different widths; lengths with 0 and T; every gradient input combination."""
    layer = random_stack(STACKS[stack], np.random.default_rng(3), 3, (4, 2, 5), dtype, ["tanh", "tanh", "sigmoid"])
    p = make_problem(layer, dtype, 5, 6, seed=4, lengths=[6, 0, 3, 1, 6])
    cell = matching_cell(layer, dtype)
    _, state, grads = check_against_reference(layer, cell, p, dtype, mode=mode, time_major=time_major)
    assert_clips_exercised(layer)
    assert_rows_keep_initial_state(state, p.initial_state, [1], dtype)
    if mode in ("outputs", "neither"):  # row 1 never ran and no d_state: no gradient reaches its initial state
        assert all(np.all(g[1] == 0) for g in wr.state_leaves(grads.initial_state))
    if mode in ("state", "both"):  # ... else it receives d_state itself
        assert_rows_keep_initial_state(grads.initial_state, p.d_state, [1], dtype)


@pytest.mark.parametrize("kind", CELL_KINDS + ("mixed",))
def test_multi_rnn_finite_differences(kind):
    layer = nested_structure("multi", kind, np.float64)
    check_finite_differences(lambda: rnnrs_cell(layer, np.float64), layer.weights(), fd_problem(layer), reference=layer)


def test_multi_rnn_mixed_finite_differences():
    """LSTMCell (every option) over GRUCell over BasicRNNCell."""
    layer = random_stack(MIXED_STACKS["lstm_over_gru_over_rnn"], np.random.default_rng(5), 2, (3, 2, 2), np.float64)
    check_finite_differences(lambda: rnnrs_cell(layer, np.float64), layer.weights(), fd_problem(layer), reference=layer)


def expected_state_size(layer):
    if isinstance(layer, wr.Multi):
        return tuple(expected_state_size(inner) for inner in layer.layers)
    if isinstance(layer, wr.LSTM):
        return rnnrs.LSTMStateTuple(layer.num_units, layer.output_size)
    return layer.num_units


@pytest.mark.parametrize("stack", list(STACKS))
def test_multi_rnn_properties(dtype, stack):
    layer = random_stack(STACKS[stack], np.random.default_rng(0), 3, (4, 2, 3), dtype)
    cells = [rnnrs_cell(inner, dtype) for inner in layer.layers]
    multi = rnnrs.MultiRNNCell(cells)
    assert multi.cells == cells and all(a is b for a, b in zip(multi.cells, cells))
    assert multi.state_size == tuple(c.state_size for c in cells) == expected_state_size(layer)
    for size, inner in zip(multi.state_size, layer.layers):
        assert isinstance(size, rnnrs.LSTMStateTuple) == isinstance(inner, wr.LSTM)
    assert multi.output_size == 3
    assert multi.dtype == np.dtype(dtype)
    assert not multi.built and multi.input_size is None
    zero = multi.zero_state(3)
    assert_state_close(zero, layer.zero_state(3), dtype, "zero_state")  # structure, shapes, zeros
    multi.build(3)  # each layer is built for the previous layer's output size
    assert multi.built and multi.input_size == 3
    assert [c.input_size for c in cells] == [3, 4, 2]
    assert {k: v.shape for k, v in multi.get_weights().items()} == {k: v.shape for k, v in layer.weights().items()}


@pytest.mark.parametrize("stack", list(STACKS))
def test_multi_rnn_get_and_set_weights(dtype, stack):
    rng = np.random.default_rng(1)
    layers = random_stack(STACKS[stack][:2], rng, 3, (4, 2), dtype).layers
    cells = [matching_cell(layer, dtype) for layer in layers]
    multi = rnnrs.MultiRNNCell(cells)
    weights = multi.get_weights()
    assert list(weights) == [f"cell_{i}/{k}" for i, c in enumerate(cells) for k in c.get_weights()]
    assert sorted(weights) == stack_weight_names(wr.Multi(layers))
    for i, c in enumerate(cells):
        for k, v in c.get_weights().items():
            np.testing.assert_array_equal(weights[f"cell_{i}/{k}"], v)
    first = next(iter(layers[0].weights()))
    weights[f"cell_0/{first}"][...] = 7  # a copy: the cell is untouched
    np.testing.assert_array_equal(cells[0].get_weights()[first], layers[0].weights()[first].astype(dtype))

    # A partial mapping reaches exactly the named weights of the named layer.
    bias = "gates/bias" if isinstance(layers[1], wr.GRU) else "bias"
    new_bias = rng.normal(size=layers[1].weights()[bias].shape)
    multi.set_weights({f"cell_1/{bias}": new_bias})
    for i, layer in enumerate(layers):
        for k, v in layer.weights().items():
            want = new_bias if (i, k) == (1, bias) else v
            np.testing.assert_array_equal(cells[i].get_weights()[k], want.astype(dtype), err_msg=f"cell_{i}/{k}")
    # ... and the run uses it.
    moved = wr.Multi([layers[0], layers[1].with_weights({bias: rounded(new_bias, dtype)})])
    p = make_problem(moved, dtype, 2, 3, seed=2)
    check_against_reference(moved, multi, p, dtype)

    # A complete mapping builds an unbuilt stack (input size from cell_0's kernel).
    fresh = rnnrs.MultiRNNCell([rnnrs_cell(layer, dtype) for layer in layers])
    fresh.set_weights(mapping=multi.get_weights())
    assert fresh.built and fresh.input_size == 3
    for k, v in multi.get_weights().items():
        np.testing.assert_array_equal(fresh.get_weights()[k], v)


@pytest.mark.parametrize(
    "name",
    [
        "kernel",
        "cell_2/kernel",
        "cell_0/",
        "cell_x/kernel",
        "layer_0/kernel",
        "cell_0/bogus",
        "cell_1/output_projection/kernel",
    ],
)
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


@pytest.mark.parametrize(
    "name,value",
    [("cell_1/kernel", np.zeros((9, 2))), ("cell_1/bogus", np.zeros(2))],
    ids=["wrong_shape", "unknown_name"],
)
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


def test_multi_rnn_refuses_one_cell_in_two_layers():
    """Pins: a cell object used by two layers is refused. Before, ``MultiRNNCell([cell] * 3)``
    ran with ONE set of weights shared by the three layers while ``get_weights()`` listed
    three copies (TensorFlow 1.x refused it too)."""
    cell = rnnrs.BasicRNNCell(3, seed=0)
    with raises_naming(ValueError, "cells") as info:
        rnnrs.MultiRNNCell([cell] * 3)
    assert "layers 0 and 1" in str(info.value) and "distinct" in str(info.value)
    same_inside = [
        [cell, rnnrs.DropoutWrapper(cell)],  # the same cell, wrapped in the second layer
        [rnnrs.ResidualWrapper(rnnrs.DropoutWrapper(cell)), rnnrs.BasicRNNCell(3), cell],
        [rnnrs.MultiRNNCell([rnnrs.BasicRNNCell(3), cell]), rnnrs.OutputProjectionWrapper(cell, 3)],
    ]
    for cells in same_inside:
        with raises_naming(ValueError, "cells"):
            rnnrs.MultiRNNCell(cells)
    # distinct cells (even equal-looking ones) and a wrapper of a fresh cell are fine
    multi = rnnrs.MultiRNNCell(
        [rnnrs.BasicRNNCell(3) for _ in range(3)] + [rnnrs.DropoutWrapper(rnnrs.BasicRNNCell(3))]
    )
    multi.build(2)
    assert len(multi.get_weights()) == 8


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


def test_multi_rnn_mixed_state_structure(dtype):
    """LSTMCell over GRUCell over BasicRNNCell: the state is (array, array,
    LSTMStateTuple(c [B, H], h [B, P])), for the final state, for d_state and
    for grads.initial_state; a (c, h) pair is accepted for the LSTM part;
    wrong structures are refused naming the layer."""
    rng = np.random.default_rng(6)
    layer = random_stack(MIXED_STACKS["lstm_over_gru_over_rnn"], rng, 2, (4, 3, 2), dtype)
    lstm = layer.layers[2]
    assert (lstm.num_units, lstm.output_size) != (2, 2)
    multi = matching_cell(layer, dtype)
    assert multi.state_size == (4, 3, rnnrs.LSTMStateTuple(lstm.num_units, 2))
    p = make_problem(layer, dtype, 3, 4, seed=7, lengths=[4, 0, 2])
    x = p.x.astype(dtype)
    as_pairs = tuple(
        tuple(lib_state(s, dtype)) if isinstance(s, wr.LSTMState) else lib_state(s, dtype) for s in p.initial_state
    )
    assert type(as_pairs[2]) is tuple
    outputs, state, backprop = rnnrs.dynamic_rnn(
        multi, x, sequence_length=p.lengths, initial_state=as_pairs, return_backprop=True
    )
    assert [type(s) for s in state] == [np.ndarray, np.ndarray, rnnrs.LSTMStateTuple]
    d_state = lib_state(p.d_state, dtype)
    grads = backprop(d_outputs=p.d_outputs.astype(dtype), d_state=d_state)
    assert [type(s) for s in grads.initial_state] == [np.ndarray, np.ndarray, rnnrs.LSTMStateTuple]
    want_out, want_state, (want_dx, want_dinit, want_dw) = run_reference(layer, p)
    assert_close(outputs, want_out, dtype, "outputs")
    assert_state_close(state, want_state, dtype, "state")
    assert_state_close(grads.initial_state, want_dinit, dtype, "grads.initial_state")
    assert_weights_close(grads.weights, want_dw, dtype, "grads.weights")
    # d_state with a plain (c, h) pair for the LSTM layer: the same gradients.
    again = backprop(d_outputs=p.d_outputs.astype(dtype), d_state=(d_state[0], d_state[1], tuple(d_state[2])))
    for a, b in zip(wr.state_leaves(again.initial_state), wr.state_leaves(grads.initial_state)):
        np.testing.assert_array_equal(a, b)
    # d_state of the LSTM layer alone: the gradient reaches the lower layers through the LSTM's inputs.
    only_c = backprop(
        d_state=(
            np.zeros_like(d_state[0]),
            np.zeros_like(d_state[1]),
            rnnrs.LSTMStateTuple(d_state[2].c, np.zeros_like(d_state[2].h)),
        )
    )
    _, _, (_, want_dinit, want_dw) = run_reference(
        layer,
        replace(p, d_state=(0 * p.d_state[0], 0 * p.d_state[1], wr.LSTMState(p.d_state[2].c, 0 * p.d_state[2].h))),
        "state",
    )
    assert_state_close(only_c.initial_state, want_dinit, dtype, "grads.initial_state (d c only)")
    assert_weights_close(only_c.weights, want_dw, dtype, "grads.weights (d c only)")
    assert np.any(only_c.initial_state[0] != 0) and np.any(only_c.weights["cell_0/kernel"] != 0)

    z = multi.zero_state(3)
    c, h = z[2]
    bad_states = [
        (TypeError, re.escape("initial_state[2]"), (z[0], z[1], h)),  # an array, not (c, h)
        (ValueError, re.escape("initial_state[2]"), (z[0], z[1], (c,))),
        (ValueError, re.escape("initial_state[2].c"), (z[0], z[1], rnnrs.LSTMStateTuple(h, c))),  # c and h swapped
        ((TypeError, ValueError), re.escape("initial_state[1]"), (z[0], z[2], z[1])),  # layers swapped
    ]
    for exc, name, bad in bad_states:
        with raises_naming(exc, name):
            rnnrs.dynamic_rnn(multi, x, initial_state=bad)
    with raises_naming(TypeError, re.escape("d_state[2]")):
        backprop(d_state=(d_state[0], d_state[1], d_state[2].h))
    with raises_naming(ValueError, re.escape("d_state[2].h")):
        backprop(d_state=(d_state[0], d_state[1], rnnrs.LSTMStateTuple(d_state[2].c, d_state[2].c)))
    with raises_naming((TypeError, ValueError), re.escape("d_state[0]")):
        backprop(d_state=(d_state[2], d_state[1], d_state[0]))


# --------------------------------------------------------------------------
# Nesting (wrappers in MultiRNNCell, MultiRNNCell in wrappers)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CELL_KINDS + ("mixed",))
@pytest.mark.parametrize("name", NESTED)
def test_nested_wrappers_match_reference(dtype, kind, name):
    layer = nested_structure(name, kind, dtype)
    cell = matching_cell(layer, dtype)
    assert cell.get_weights().keys() == layer.weights().keys()
    for mode, time_major in [("both", False), ("outputs", True), ("state", False)]:
        p = make_problem(layer, dtype, 4, 5, seed=7, lengths=[5, 0, 2, 4])
        check_against_reference(layer, cell, p, dtype, mode=mode, time_major=time_major)
    assert_clips_exercised(layer)


@pytest.mark.parametrize("kind", ["BasicRNNCell", "mixed"])
@pytest.mark.parametrize("name", NESTED)
def test_nested_wrappers_finite_differences(name, kind):
    layer = nested_structure(name, kind, np.float64)
    check_finite_differences(lambda: rnnrs_cell(layer, np.float64), layer.weights(), fd_problem(layer), reference=layer)


def test_nested_weight_names_and_routing(dtype):
    """Names compose: cell_<i>/ for layers, then the wrapper's own names."""
    layer = nested_structure("multi_of_residual_and_projection", "BasicRNNCell", dtype)
    cell = matching_cell(layer, dtype)
    assert sorted(cell.get_weights()) == [
        "cell_0/bias",
        "cell_0/kernel",
        "cell_1/bias",
        "cell_1/kernel",
        "cell_1/output_projection/bias",
        "cell_1/output_projection/kernel",
    ]
    cell.set_weights({"cell_1/output_projection/bias": np.full(2, 0.25)})
    np.testing.assert_array_equal(cell.cells[1].get_weights()["output_projection/bias"], np.full(2, 0.25, dtype))

    outer = nested_structure("projection_of_multi", "BasicRNNCell", dtype)
    cell = matching_cell(outer, dtype)
    assert sorted(cell.get_weights()) == [
        "cell_0/bias",
        "cell_0/kernel",
        "cell_1/bias",
        "cell_1/kernel",
        "output_projection/bias",
        "output_projection/kernel",
    ]
    cell.set_weights({"cell_0/bias": np.ones(4)})
    np.testing.assert_array_equal(cell.cell.cells[0].get_weights()["bias"], np.ones(4, dtype))
    with raises_naming(ValueError, "mapping"):
        cell.set_weights({"kernel": np.zeros((7, 4))})


def test_nested_weight_names_and_routing_mixed(dtype):
    """Names with slashes of their own (LSTMCell's projection/kernel, GRUCell's
    gates/..., candidate/...) compose with cell_<i>/ and output_projection/."""
    layer = nested_structure("multi_of_residual_and_projection", "mixed", dtype)
    # Multi([Residual(LSTMCell), Projection(GRUCell)])
    assert isinstance(layer.layers[0].cell, wr.LSTM) and isinstance(layer.layers[1].cell, wr.GRU)
    cell = matching_cell(layer, dtype)
    assert sorted(cell.get_weights()) == [
        "cell_0/bias",
        "cell_0/kernel",
        "cell_0/projection/kernel",
        "cell_0/w_f_diag",
        "cell_0/w_i_diag",
        "cell_0/w_o_diag",
        "cell_1/candidate/bias",
        "cell_1/candidate/kernel",
        "cell_1/gates/bias",
        "cell_1/gates/kernel",
        "cell_1/output_projection/bias",
        "cell_1/output_projection/kernel",
    ]
    H, P = layer.layers[0].cell.num_units, layer.layers[0].cell.output_size
    new_proj = np.full((H, P), 0.125)
    cell.set_weights({"cell_0/projection/kernel": new_proj, "cell_1/gates/bias": np.full(8, 0.5)})
    np.testing.assert_array_equal(cell.cells[0].cell.get_weights()["projection/kernel"], new_proj.astype(dtype))
    np.testing.assert_array_equal(cell.cells[1].cell.get_weights()["gates/bias"], np.full(8, 0.5, dtype))
    moved = wr.Multi(
        [
            wr.Residual(layer.layers[0].cell.with_weights({"projection/kernel": new_proj})),
            wr.Projection(
                layer.layers[1].cell.with_weights({"gates/bias": np.full(8, 0.5)}),
                layer.layers[1].kernel,
                layer.layers[1].bias,
            ),
        ]
    )
    check_against_reference(moved, cell, make_problem(moved, dtype, 3, 4, seed=9, lengths=[4, 0, 3]), dtype)
    # A GRU's names of the other form, or an LSTM name on the GRU layer, are refused.
    for bad in (
        {"cell_1/candidate/input_kernel": np.zeros((4, 4))},
        {"cell_1/projection/kernel": np.zeros((4, 4))},
        {"cell_0/output_projection/kernel": np.zeros((P, P))},
    ):
        with raises_naming(ValueError, "mapping"):
            cell.set_weights(bad)

    # OutputProjectionWrapper over an LSTMCell with its own projection: two projections, two names.
    outer = random_projection(
        np.random.default_rng(10), random_cell("LSTMCell", np.random.default_rng(11), 3, 2, dtype), 5, dtype
    )
    cell = matching_cell(outer, dtype)
    assert sorted(cell.get_weights()) == [
        "bias",
        "kernel",
        "output_projection/bias",
        "output_projection/kernel",
        "projection/kernel",
        "w_f_diag",
        "w_i_diag",
        "w_o_diag",
    ]
    assert cell.get_weights()["projection/kernel"].shape == (outer.cell.num_units, 2)
    assert cell.get_weights()["output_projection/kernel"].shape == (2, 5)


@pytest.mark.parametrize("kind", CELL_KINDS + ("mixed",))
@pytest.mark.parametrize("name", NESTED)
def test_one_step_call_matches_reference(dtype, name, kind):
    """cell(x, state) is one time step; chained calls equal dynamic_rnn."""
    layer = nested_structure(name, kind, dtype)
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
        batch=B,
        time=T,
        input_size=inner_layer.input_size,
        output_size=inner_layer.output_size,
        state=inner_layer.zero_state(B),
        time_major=time_major,
        dtype=dtype,
        **keeps,
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
    stacked=st.none() | st.sampled_from(CELL_KINDS),
    keeps=st.tuples(KEEPS, KEEPS, KEEPS),
    variational=st.booleans(),
    shape=problem_shapes(),
    time_major=st.booleans(),
    mode=grad_modes,
    mask_seed=seeds,
)
def test_dropout_matches_reference(dtype, kind, stacked, keeps, variational, shape, time_major, mode, mask_seed):
    """Forward and every gradient with the masks reproduced from the seed; the
    wrapped cell is one cell or a two-layer MultiRNNCell (a tuple state) with
    a second layer of kind ``stacked``."""
    rng = np.random.default_rng(shape["seed"])
    inner = random_cell(kind, rng, 3, 4, dtype)
    if stacked is not None:
        inner = wr.Multi([inner, random_cell(stacked, rng, 4, 2, dtype, "sigmoid")])
    p = make_problem(inner, dtype, **shape)
    probs = dict(zip(("input_keep_prob", "state_keep_prob", "output_keep_prob"), keeps))
    cell = dropout_cell(inner, dtype, **probs, variational_recurrent=variational, seed=mask_seed)
    layer = reference_dropout(
        inner, dtype, p, seed=mask_seed, time_major=time_major, variational_recurrent=variational, **probs
    )
    check_against_reference(layer, cell, p, dtype, mode=mode, time_major=time_major, training=True)


DROPOUT_CONFIGS = {
    "input_output": dict(input_keep_prob=0.7, output_keep_prob=0.6),
    "state": dict(state_keep_prob=0.6),
    "all": dict(input_keep_prob=0.7, state_keep_prob=0.5, output_keep_prob=0.8),
    "all_variational": dict(input_keep_prob=0.7, state_keep_prob=0.5, output_keep_prob=0.8, variational_recurrent=True),
}


# Two-layer stacks wrapped by the explicit dropout cases (bottom first).
DROPOUT_STACKS = {
    "rnn": ("BasicRNNCell", "BasicRNNCell"),
    "lstm_gru": ("LSTMCell", "GRUCell"),
    "gru_basic_lstm": ("GRUCell_reset_after", "BasicLSTMCell"),
}


@pytest.mark.parametrize("stack", list(DROPOUT_STACKS))
@pytest.mark.parametrize("config", list(DROPOUT_CONFIGS))
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
def test_dropout_explicit_cases(dtype, stack, config, time_major):
    inner = random_stack(DROPOUT_STACKS[stack], np.random.default_rng(11), 3, (4, 3), dtype)
    p = make_problem(inner, dtype, 5, 6, seed=12, lengths=[6, 0, 3, 1, 6])
    kwargs = DROPOUT_CONFIGS[config]
    cell = dropout_cell(inner, dtype, **kwargs, seed=13)
    layer = reference_dropout(inner, dtype, p, seed=13, time_major=time_major, **kwargs)
    _, state, _ = check_against_reference(layer, cell, p, dtype, time_major=time_major, training=True)
    assert_clips_exercised(inner)
    assert_rows_keep_initial_state(state, p.initial_state, [1], dtype)  # the length-0 row


@pytest.mark.parametrize("variational", [False, True], ids=["per_step", "variational"])
@pytest.mark.parametrize("name", NESTED)
def test_dropout_over_nested_mixed_structures(dtype, name, variational):
    """DropoutWrapper (input, state and output dropout) around every nested
    structure of mixed kinds: the state masks follow the nested state
    structure leaf by leaf, skipping each LSTM's c."""
    layer = nested_structure(name, "mixed", dtype)
    p = make_problem(layer, dtype, 4, 5, seed=15, lengths=[5, 0, 2, 4])
    kwargs = dict(input_keep_prob=0.7, state_keep_prob=0.6, output_keep_prob=0.8, variational_recurrent=variational)
    for time_major in (False, True):
        cell = dropout_cell(layer, dtype, seed=16, **kwargs)
        reference = reference_dropout(layer, dtype, p, seed=16, time_major=time_major, **kwargs)
        masks = reference.state_masks[0]
        assert any(m is None for m in wr.state_leaves(masks)) or not any(
            isinstance(c, wr.LSTM) for c in wr.cell_layers(layer)
        )
        _, state, _ = check_against_reference(reference, cell, p, dtype, time_major=time_major, training=True)
        assert_rows_keep_initial_state(state, p.initial_state, [1], dtype)


@pytest.mark.parametrize("config", list(DROPOUT_CONFIGS))
@pytest.mark.parametrize("inner", ["cell", "multi", "lstm", "lstm_gru"])
def test_dropout_finite_differences(config, inner):
    """``lstm``: LSTMCell with every option (state dropout on h, never c);
    ``lstm_gru``: LSTMCell over GRUCell(reset_after=True)."""
    rng = np.random.default_rng(21)
    kinds = {
        "cell": ("BasicRNNCell",),
        "multi": ("BasicRNNCell", "BasicRNNCell"),
        "lstm": ("LSTMCell",),
        "lstm_gru": ("GRUCell_reset_after", "LSTMCell"),
    }[inner]
    inner = random_stack(kinds, rng, 2, (3, 2), np.float64)
    if len(kinds) == 1:
        inner = inner.layers[0]
    kwargs = DROPOUT_CONFIGS[config]
    p = fd_problem(inner)
    check_finite_differences(
        lambda: rnnrs.DropoutWrapper(rnnrs_cell(inner, np.float64), **kwargs, seed=22),
        inner.weights(),
        p,
        training=True,
        reference=reference_dropout(inner, np.float64, p, seed=22, **kwargs),
    )


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_dropout_is_identity_when_not_training_or_keeping_everything(dtype, kind):
    rng = np.random.default_rng(31)
    inner = random_cell(kind, rng, 3, 4, dtype)
    p = make_problem(inner, dtype, 4, 5, seed=32, lengths=[5, 0, 2, 4])
    bare = run_rnnrs(matching_cell(inner, dtype), p, dtype)

    def flat(run):
        out, state, grads = run
        return [
            out,
            *wr.state_leaves(state),
            grads.inputs,
            *wr.state_leaves(grads.initial_state),
            *grads.weights.values(),
        ]

    low = dict(input_keep_prob=0.5, state_keep_prob=0.5, output_keep_prob=0.5)
    for kwargs, training in [
        (low, False),
        (dict(variational_recurrent=True, **low), False),
        ({}, True),
        (dict(input_keep_prob=1, state_keep_prob=1.0, output_keep_prob=1.0), True),
    ]:
        got = run_rnnrs(dropout_cell(inner, dtype, seed=1, **kwargs), p, dtype, training=training)
        assert len(flat(got)) == len(flat(bare))
        for a, b in zip(flat(got), flat(bare)):
            np.testing.assert_array_equal(a, b)
    # One step (cell(x, state)) never drops anything.
    cell = dropout_cell(inner, dtype, seed=1, **low)
    state0 = lib_state(p.initial_state, dtype)
    out, state = cell(p.x[:, 0].astype(dtype), state0)
    want, want_state = matching_cell(inner, dtype)(p.x[:, 0].astype(dtype), state0)
    np.testing.assert_array_equal(out, want)
    for a, b in zip(wr.state_leaves(state), wr.state_leaves(want_state)):
        np.testing.assert_array_equal(a, b)


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
    out, _ = rnnrs.dynamic_rnn(
        dropout_cell(sig, dtype, output_keep_prob=0.5, variational_recurrent=variational, seed=62), x, training=True
    )
    assert constant_over_time(out == 0) == variational
    # Input dropout on a cell whose output is its input.
    out, _ = rnnrs.dynamic_rnn(
        dropout_cell(copy_input_layer(H), dtype, input_keep_prob=0.5, variational_recurrent=variational, seed=63),
        x,
        training=True,
    )
    assert constant_over_time(out == 0) == variational
    # State dropout on h' = h + 1: after a dropped unit, the next output is exactly 1.
    out, _ = rnnrs.dynamic_rnn(
        dropout_cell(counter_layer(H), dtype, state_keep_prob=0.5, variational_recurrent=variational, seed=64),
        x,
        training=True,
    )
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
        np.random.default_rng(72),
        batch=B,
        time=T,
        input_size=H,
        output_size=H,
        state=h0,
        state_keep_prob=0.5,
        variational_recurrent=variational,
        dtype=dtype,
    )
    s = h0.astype(np.float64)
    for t in range(T):
        active = (t < np.array(lengths))[:, None]
        out = s + 1  # h' = h + 1 from the (dropped) previous state
        assert_close(outputs[:, t], np.where(active, out, 0), dtype, f"outputs[:, {t}]")
        s = np.where(active, out * state_masks[t], s)
    assert_close(state, s, dtype, "state")
    np.testing.assert_array_equal(state[1], h0[1])  # length 0: the initial state itself
    assert np.all(outputs[1] == 0) and np.all(outputs[2, 2:] == 0) and np.all(outputs[3, 4:] == 0)


def counting_lstm(units, input_size):
    """A real LSTMCell reference that counts: kernel 0, identity activation,
    gate biases so large that sigmoid(i) = sigmoid(f) = sigmoid(o) = 1 and
    j = 1: ``c' = c + 1`` and ``h' = c'`` (h and the inputs are ignored)."""
    bias = np.concatenate([np.full(units, 50.0), np.ones(units), np.full(units, 50.0), np.full(units, 50.0)])
    return wr.LSTM(
        {"kernel": np.zeros((input_size + units, 4 * units)), "bias": bias}, activation="identity", basic=True
    )


@pytest.mark.parametrize("variational", [False, True], ids=["per_step", "variational"])
def test_dropout_never_drops_lstm_c(dtype, variational):
    """State dropout on a real LSTM leaves ``c`` alone (TF 1.x) and draws no
    mask for it; ``h`` is dropped (the state that feeds the next step and the
    returned one; the outputs are not state-dropped). Gradients flow through
    c unscaled. By hand, on an LSTM with c' = c + 1 and h' = c'."""
    B, T, H = 4, 5, 3
    lengths = np.array([5, 0, 2, 3])
    layer = counting_lstm(H, 2)
    p = make_problem(layer, dtype, B, T, seed=81, lengths=lengths)
    cell = rnnrs.DropoutWrapper(
        matching_cell(layer, dtype), state_keep_prob=0.5, variational_recurrent=variational, seed=82
    )
    assert isinstance(cell.cell, rnnrs.BasicLSTMCell)
    reference = reference_dropout(layer, dtype, p, seed=82, state_keep_prob=0.5, variational_recurrent=variational)
    assert all(m.c is None and m.h is not None for m in reference.state_masks)
    outputs, state, grads = check_against_reference(reference, cell, p, dtype, training=True)

    c0, h0 = p.initial_state
    counted = c0 + lengths[:, None]  # c after each row's steps: never dropped
    assert_close(state.c, counted, dtype, "state.c")
    for t in range(T):
        active = (t < lengths)[:, None]
        assert_close(outputs[:, t], np.where(active, c0 + t + 1, 0), dtype, f"outputs[:, {t}] (not state-dropped)")
    # h: the last step's h' = c' times that step's mask (0 or 1/keep = 2); length 0 keeps h0.
    last = np.array([reference.state_masks[max(n - 1, 0)].h[b] for b, n in enumerate(lengths)])
    want_h = np.where(lengths[:, None] > 0, counted * last, h0)
    assert_close(state.h, want_h, dtype, "state.h")
    assert set(np.unique(last)) == {0.0, 2.0}  # h really was dropped somewhere, and kept elsewhere
    # dLoss/dc0 = d_c + sum of the running steps' d_outputs + d_h through the last mask; nothing is
    # lost to c's dropout. h0 only reaches the (zero) kernel: its gradient is d_h for length 0, else 0.
    d_c, d_h = p.d_state
    active = wr.active_mask(lengths, B, T)
    want_dc0 = d_c + np.where(active, p.d_outputs, 0).sum(axis=1) + np.where(lengths[:, None] > 0, d_h * last, 0)
    assert_close(grads.initial_state.c, want_dc0, dtype, "grads.initial_state.c")
    assert_close(grads.initial_state.h, np.where(lengths[:, None] > 0, 0, d_h), dtype, "grads.initial_state.h")
    np.testing.assert_array_equal(grads.inputs, 0)


@pytest.mark.parametrize("kind", ["BasicLSTMCell", "LSTMCell"])
@pytest.mark.parametrize("variational", [False, True], ids=["per_step", "variational"])
def test_dropout_state_of_a_real_lstm(dtype, kind, variational):
    """Random weights (LSTMCell: every option, H != P): the library matches the
    reference, whose state masks skip c, and not a reference that also drops c."""
    rng = np.random.default_rng(83)
    layer = random_cell(kind, rng, 3, 4, dtype)
    p = make_problem(layer, dtype, 4, 5, seed=84, lengths=[5, 0, 2, 3])
    cell = rnnrs.DropoutWrapper(
        matching_cell(layer, dtype), state_keep_prob=0.5, variational_recurrent=variational, seed=85
    )
    reference = reference_dropout(layer, dtype, p, seed=85, state_keep_prob=0.5, variational_recurrent=variational)
    _, state, grads = check_against_reference(reference, cell, p, dtype, training=True)
    # The same h masks, and c dropped too: a different c and a different gradient.
    c_masks = [wr.dropout_mask(rng, 0.5, m.h.shape[:1] + (layer.num_units,), dtype) for m in reference.state_masks]
    wrong = wr.Dropout(layer, state_masks=[wr.LSTMState(c, m.h) for c, m in zip(c_masks, reference.state_masks)])
    want_state, (_, want_dinit, _) = run_reference(wrong, p)[1:]
    assert np.max(np.abs(state.c - want_state.c)) > 1e-2
    assert np.max(np.abs(grads.initial_state.c - want_dinit.c)) > 1e-2


def test_dropout_layers_inside_multi_rnn_cell(dtype):
    """Each DropoutWrapper in a stack draws from its own seed, with its layer's
    sizes and state structure (an LSTMCell with H != P, then a GRUCell)."""
    rng = np.random.default_rng(91)
    inner = [random_cell("LSTMCell", rng, 3, 4, dtype), random_cell("GRUCell", rng, 4, 2, dtype)]
    configs = [
        dict(input_keep_prob=0.8, state_keep_prob=0.6, seed=92),
        dict(output_keep_prob=0.7, state_keep_prob=0.5, variational_recurrent=True, seed=93),
    ]
    multi = rnnrs.MultiRNNCell([dropout_cell(layer, dtype, **cfg) for layer, cfg in zip(inner, configs)])
    p = make_problem(wr.Multi(inner), dtype, 4, 5, seed=94, lengths=[5, 0, 2, 4])
    layers = []
    for layer, cfg in zip(inner, configs):
        cfg = dict(cfg)
        layers.append(reference_dropout(layer, dtype, p, seed=cfg.pop("seed"), **cfg))
    check_against_reference(wr.Multi(layers), multi, p, dtype, training=True)
    assert sorted(multi.get_weights()) == stack_weight_names(wr.Multi(inner))


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
    _, _, grads = check_against_reference(
        layer, matching_cell(layer, dtype), p, dtype, mode=mode, time_major=time_major
    )
    assert grads.weights["output_projection/kernel"].shape == (H, P)


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_output_projection_equation(dtype, kind):
    """outputs = where(t < len, cell_outputs @ kernel + bias, 0), against the bare cell's outputs;
    the state is the bare cell's (an LSTMStateTuple for the LSTMs)."""
    rng = np.random.default_rng(101)
    layer = random_projection(rng, random_cell(kind, rng, 3, 4, dtype), 6, dtype)
    wrapper = matching_cell(layer, dtype)
    x = rng.normal(size=(4, 5, 3)).astype(dtype)
    lengths = [5, 0, 3, 1]
    outputs, state = rnnrs.dynamic_rnn(wrapper, x, sequence_length=lengths)
    cell_out, cell_state = rnnrs.dynamic_rnn(wrapper.cell, x, sequence_length=lengths)
    active = wr.active_mask(lengths, 4, 5)
    want = np.where(active, cell_out.astype(np.float64) @ layer.kernel + layer.bias, 0)
    assert_close(outputs, want, dtype, "outputs")
    assert type(state) is type(cell_state)
    for a, b in zip(wr.state_leaves(state), wr.state_leaves(cell_state)):
        np.testing.assert_array_equal(a, b)
    assert outputs.shape == (4, 5, 6) and np.all(outputs[~active[..., 0]] == 0)


def test_output_projection_over_lstm_projection(dtype):
    """OutputProjectionWrapper over an LSTMCell that projects itself (H=5 -> P=2 -> 4):
    the wrapper reads the LSTM's P-wide (projected, clipped) output."""
    rng = np.random.default_rng(102)
    lstm = random_cell("LSTMCell", rng, 3, 2, dtype)
    layer = random_projection(rng, lstm, 4, dtype)
    cell = matching_cell(layer, dtype)
    assert cell.cell.num_units == lstm.num_units != 2 and cell.cell.output_size == 2 and cell.output_size == 4
    assert cell.state_size == rnnrs.LSTMStateTuple(lstm.num_units, 2)
    for time_major in (False, True):
        p = make_problem(layer, dtype, 5, 6, seed=103, lengths=[6, 0, 3, 1, 6])
        _, state, grads = check_against_reference(layer, cell, p, dtype, time_major=time_major)
        assert state.h.shape == (5, 2) and grads.weights["output_projection/kernel"].shape == (2, 4)
        assert grads.weights["projection/kernel"].shape == (lstm.num_units, 2)
    assert all(lstm.clip_seen[name] == [True, True] for name in ("cell_clip", "proj_clip")), lstm.clip_seen


@pytest.mark.parametrize("name", ["cell", "multi", "lstm_projection", "mixed_multi"])
def test_output_projection_finite_differences(name):
    rng = np.random.default_rng(111)
    if name in ("cell", "multi"):
        inner = random_cell("BasicRNNCell", rng, 2, 3, np.float64)
        if name == "multi":
            inner = wr.Multi([inner, random_cell("BasicRNNCell", rng, 3, 2, np.float64)])
    elif name == "lstm_projection":
        inner = random_cell("LSTMCell", rng, 2, 3, np.float64)
    else:
        inner = random_stack(("GRUCell", "LSTMCell"), rng, 2, (3, 2), np.float64)
    layer = random_projection(rng, inner, 4, np.float64)
    check_finite_differences(lambda: rnnrs_cell(layer, np.float64), layer.weights(), fd_problem(layer), reference=layer)


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
        fresh.set_weights(
            {"kernel": layer.cell.kernel, "bias": layer.cell.bias, "output_projection/kernel": layer.kernel}
        )
    assert not fresh.built


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_output_projection_backprop_uses_its_forward_weights(dtype, kind):
    """set_weights after the forward pass (the projection's and the wrapped cell's)
    does not change what backprop computes."""
    rng = np.random.default_rng(131)
    layer = random_projection(rng, random_cell(kind, rng, 3, 4, dtype), 2, dtype)
    cell = matching_cell(layer, dtype)
    p = make_problem(layer, dtype, 3, 4, seed=132, lengths=[4, 1, 0])
    _, _, backprop = rnnrs.dynamic_rnn(
        cell,
        p.x.astype(dtype),
        sequence_length=p.lengths,
        initial_state=lib_state(p.initial_state, dtype),
        return_backprop=True,
    )
    cell.set_weights({k: np.zeros_like(v) for k, v in layer.weights().items()})
    grads = backprop(d_outputs=p.d_outputs.astype(dtype), d_state=lib_state(p.d_state, dtype))
    _, _, (d_x, d_init, d_w) = run_reference(layer, p)
    assert_close(grads.inputs, d_x, dtype, "grads.inputs")
    assert_state_close(grads.initial_state, d_init, dtype, "grads.initial_state")
    assert_weights_close(grads.weights, d_w, dtype, "grads.weights")


@pytest.mark.parametrize("kind", CELL_KINDS)
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
def test_output_projection_explicit_cases(dtype, kind, time_major):
    """One cell of each kind under a projection; lengths with 0 and T; every gradient input combination."""
    rng = np.random.default_rng(104)
    layer = random_projection(rng, random_cell(kind, rng, 3, 4, dtype, "sigmoid"), 3, dtype)
    cell = matching_cell(layer, dtype)
    p = make_problem(layer, dtype, 5, 6, seed=105, lengths=[6, 0, 3, 1, 6])
    for mode in GRAD_MODES:
        _, state, _ = check_against_reference(layer, cell, p, dtype, mode=mode, time_major=time_major)
        assert_rows_keep_initial_state(state, p.initial_state, [1], dtype)
    assert_clips_exercised(layer)


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


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_residual_equation(dtype, kind):
    """outputs = where(t < len, cell_outputs + inputs, 0), even with garbage in the padding."""
    rng = np.random.default_rng(141)
    wrapper = rnnrs.ResidualWrapper(matching_cell(random_cell(kind, rng, 3, 3, dtype), dtype))
    x = rng.normal(size=(4, 5, 3)).astype(dtype)
    lengths = [5, 0, 3, 1]
    active = wr.active_mask(lengths, 4, 5)
    x[~active[..., 0]] = 1e3
    outputs, state = rnnrs.dynamic_rnn(wrapper, x, sequence_length=lengths)
    cell_out, cell_state = rnnrs.dynamic_rnn(wrapper.cell, x, sequence_length=lengths)
    np.testing.assert_array_equal(outputs, np.where(active, cell_out + x, 0))
    assert type(state) is type(cell_state)
    for a, b in zip(wr.state_leaves(state), wr.state_leaves(cell_state)):
        np.testing.assert_array_equal(a, b)
    assert wrapper.get_weights().keys() == wrapper.cell.get_weights().keys()


@pytest.mark.parametrize("kind", CELL_KINDS)
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
def test_residual_explicit_cases(dtype, kind, time_major):
    """One cell of each kind made residual; lengths with 0 and T; every gradient input combination."""
    rng = np.random.default_rng(145)
    layer = wr.Residual(random_cell(kind, rng, 4, 4, dtype, "sigmoid"))
    cell = matching_cell(layer, dtype)
    p = make_problem(layer, dtype, 5, 6, seed=146, lengths=[6, 0, 3, 1, 6])
    for mode in GRAD_MODES:
        _, state, _ = check_against_reference(layer, cell, p, dtype, mode=mode, time_major=time_major)
        assert_rows_keep_initial_state(state, p.initial_state, [1], dtype)
    assert_clips_exercised(layer)


@pytest.mark.parametrize("reset_after", [False, True], ids=["reset_before", "reset_after"])
def test_residual_over_gru(dtype, reset_after):
    """ResidualWrapper over a GRUCell (both forms): every gradient; the identity path
    adds d_outputs to grads.inputs; padding (here huge) reaches nothing."""
    rng = np.random.default_rng(143)
    layer = wr.Residual(random_cell("GRUCell_reset_after" if reset_after else "GRUCell", rng, 4, 4, dtype))
    cell = matching_cell(layer, dtype)
    p = make_problem(layer, dtype, 5, 6, seed=144, lengths=[6, 0, 3, 1, 6])
    p = replace(p, x=np.where(padding(p)[..., None], 1e3, p.x))
    for mode, time_major in [("both", False), ("outputs", True), ("state", False)]:
        check_against_reference(layer, cell, p, dtype, mode=mode, time_major=time_major)
    # d_outputs only: grads.inputs = the bare GRU's grads.inputs + d_outputs (inside the lengths).
    bare = run_rnnrs(cell.cell, p, dtype, mode="outputs")[2]
    wrapped = run_rnnrs(cell, p, dtype, mode="outputs")[2]
    want = bare.inputs.astype(np.float64) + np.where(padding(p)[..., None], 0, p.d_outputs)
    assert_close(wrapped.inputs, want, dtype, "grads.inputs")
    for k in bare.weights:
        np.testing.assert_array_equal(wrapped.weights[k], bare.weights[k])


@pytest.mark.parametrize("kind", ["BasicRNNCell", "GRUCell", "GRUCell_reset_after", "LSTMCell"])
def test_residual_finite_differences(kind):
    layer = wr.Residual(random_cell(kind, np.random.default_rng(151), 3, 3, np.float64))
    check_finite_differences(lambda: rnnrs_cell(layer, np.float64), layer.weights(), fd_problem(layer), reference=layer)


def test_residual_input_size_must_equal_output_size(dtype):
    wrapper = rnnrs.ResidualWrapper(rnnrs.BasicRNNCell(4, dtype=dtype))
    with raises_naming(ValueError, "inputs"):
        rnnrs.dynamic_rnn(wrapper, np.zeros((2, 3, 5), dtype))
    with raises_naming(ValueError, "inputs"):
        wrapper(np.zeros((2, 3), dtype), wrapper.zero_state(2))
    with raises_naming(ValueError, "^input_size"):  # build's own argument
        wrapper.build(2)
    assert not wrapper.built
    # A cell already built for another input size cannot be made residual either.
    built = rnnrs.BasicRNNCell(4, dtype=dtype)
    built.build(2)
    with raises_naming(ValueError, "inputs"):
        rnnrs.dynamic_rnn(rnnrs.ResidualWrapper(built), np.zeros((2, 3, 2), dtype))
    outputs, _ = rnnrs.dynamic_rnn(wrapper, np.zeros((2, 3, 4), dtype))
    assert outputs.shape == (2, 3, 4)


def test_residual_over_projected_lstm_needs_input_size_equal_to_num_proj(dtype):
    """An LSTMCell with num_units=5, num_proj=3 outputs 3 values: the residual input size is 3, not 5."""
    wrapper = rnnrs.ResidualWrapper(rnnrs.LSTMCell(5, num_proj=3, use_peepholes=True, dtype=dtype, seed=0))
    assert wrapper.output_size == 3 and wrapper.state_size == rnnrs.LSTMStateTuple(5, 3)
    with raises_naming(ValueError, "inputs"):
        rnnrs.dynamic_rnn(wrapper, np.zeros((2, 3, 5), dtype))
    assert not wrapper.built
    x = np.random.default_rng(1).normal(size=(2, 3, 3)).astype(dtype)
    outputs, state = rnnrs.dynamic_rnn(wrapper, x)
    cell_out, cell_state = rnnrs.dynamic_rnn(wrapper.cell, x)
    np.testing.assert_array_equal(outputs, cell_out + x)
    assert isinstance(state, rnnrs.LSTMStateTuple) and state.c.shape == (2, 5) and state.h.shape == (2, 3)
    np.testing.assert_array_equal(state.c, cell_state.c)


# -- nested output projections -------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda c: rnnrs.OutputProjectionWrapper(rnnrs.OutputProjectionWrapper(c, 4), 5),
        lambda c: rnnrs.OutputProjectionWrapper(rnnrs.DropoutWrapper(rnnrs.OutputProjectionWrapper(c, 4)), 5),
        lambda c: rnnrs.OutputProjectionWrapper(rnnrs.ResidualWrapper(rnnrs.OutputProjectionWrapper(c, 3)), 5),
    ],
    ids=["direct", "through_dropout", "through_residual"],
)
def test_output_projection_inside_output_projection_is_refused(make):
    """Pins: an OutputProjectionWrapper holding another one (directly or
    through DropoutWrapper/ResidualWrapper) raises ValueError naming cell.
    Both owned the keys output_projection/kernel|bias, so get_weights,
    set_weights, saving and checkpoints silently lost the inner pair."""
    with raises_naming(ValueError, "^cell: .*output_projection/kernel"):
        make(rnnrs.BasicRNNCell(3))


def test_output_projection_inside_a_multi_rnn_cell_layer_is_kept():
    """An OutputProjectionWrapper in a MultiRNNCell layer has its own keys
    (cell_<i>/output_projection/...): the outer one is allowed and every
    weight round-trips through get_weights/set_weights."""
    make = lambda s: rnnrs.OutputProjectionWrapper(  # noqa: E731
        rnnrs.MultiRNNCell([rnnrs.OutputProjectionWrapper(rnnrs.BasicRNNCell(3, seed=s), 4, seed=s + 1)]),
        5,
        seed=s + 2,
    )
    a, b = make(1), make(10)
    x = np.random.default_rng(0).normal(size=(2, 3, 2)).astype(np.float32)
    y = rnnrs.dynamic_rnn(a, x)[0]
    assert {"cell_0/output_projection/kernel", "output_projection/kernel"} <= set(a.get_weights())
    b.build(2)
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(rnnrs.dynamic_rnn(b, x)[0], y)


def test_unbuilt_projection_error_lists_the_tensorflow_names_given():
    """Pins: set_weights(partial, scope="rnn") on an unbuilt
    OutputProjectionWrapper lists the TensorFlow names the caller used (it
    listed rnnrs names, 'output_projection/kernel')."""
    cell = rnnrs.OutputProjectionWrapper(rnnrs.GRUCell(3), 4)
    with raises_naming(ValueError, "mapping") as info:
        cell.set_weights({"rnn/output_projection_wrapper/gru_cell/gates/kernel": np.zeros((5, 6))}, scope="rnn")
    message = str(info.value)
    assert "'rnn/output_projection_wrapper/kernel'" in message
    assert "'output_projection/kernel'" not in message
    assert not cell.built
