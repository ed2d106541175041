"""RNN (return_state, initial_state inputs, go_backwards, stateful) and
Bidirectional layers: forward against plain NumPy references run row by row
(tests/reference_wrappers.py cells, no masking machinery), gradients against
float64 central finite differences (every weight, the inputs, the initial
state inputs, through the state outputs), the symbolic (spec) path, and bad
arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
import reference_wrappers as rw
import rnnrs
from helpers import assert_close, raises_naming, seeds
from rnnrs.layers import RNN, Bidirectional, Input, Spec

KINDS = ("basic", "lstm", "multi")


# -- cells and their NumPy references -----------------------------------------


def make_cell(kind, H, dtype, seed=None):
    if kind == "basic":
        return rnnrs.BasicRNNCell(H, dtype=dtype, seed=seed)
    if kind == "lstm":
        return rnnrs.BasicLSTMCell(H, dtype=dtype, seed=seed)
    return rnnrs.MultiRNNCell(
        [rnnrs.BasicRNNCell(H, dtype=dtype, seed=seed), rnnrs.BasicLSTMCell(H + 1, dtype=dtype, seed=seed)]
    )


def n_state(kind):
    return {"basic": 1, "lstm": 2, "multi": 3}[kind]


def state_widths(kind, H):
    return {"basic": [H], "lstm": [H, H], "multi": [H, H + 1, H + 1]}[kind]


def ref_cell(kind, w):
    if kind == "basic":
        return rw.BasicRNN(w["kernel"], w["bias"])
    if kind == "lstm":
        return rw.LSTM(w, basic=True)
    return rw.Multi(
        [
            rw.BasicRNN(w["cell_0/kernel"], w["cell_0/bias"]),
            rw.LSTM({"kernel": w["cell_1/kernel"], "bias": w["cell_1/bias"]}, basic=True),
        ]
    )


def ref_state(kind, flat):
    """A flat list (c then h, layer by layer) as the reference's structure."""
    if kind == "basic":
        return flat[0]
    if kind == "lstm":
        return rw.LSTMState(flat[0], flat[1])
    return (flat[0], rw.LSTMState(flat[1], flat[2]))


def random_weights(layer, rng, scale=0.6):
    """Random float64 weights (biases too) set on ``layer``; returns them."""
    w = {k: rng.normal(scale=scale, size=v.shape) for k, v in layer.get_weights().items()}
    layer.set_weights(w)
    return {k: v.astype(layer.dtype).astype(np.float64) for k, v in w.items()}


def ref_rnn(cell, x, lengths, flat0, go_backwards):
    """Row by row: each row's valid steps (reversed for go_backwards) through
    the reference cell. Returns (outputs [B, T, H] in processing order, zero
    past each length; last valid output [B, H]; flat final state)."""
    B, T, _ = x.shape
    lengths = [T] * B if lengths is None else list(lengths)
    out = np.zeros((B, T, cell.output_size))
    last = np.zeros((B, cell.output_size))
    finals = []
    for b in range(B):
        n = lengths[b]
        row0 = rw.map_state(lambda _c, a, b=b: a[b : b + 1], flat0)
        if n == 0:
            finals.append(rw.state_leaves(row0))
            continue
        steps = x[b : b + 1, :n]
        if go_backwards:
            steps = steps[:, ::-1]
        y, final, _ = cell.forward(steps, row0)
        out[b, :n] = y[0]
        last[b] = y[0, n - 1]
        finals.append(rw.state_leaves(final))
    flat_final = [np.concatenate([f[i] for f in finals]) for i in range(len(finals[0]))]
    return out, last, flat_final


def projections(outputs, rng):
    return [rng.normal(size=o.shape) for o in outputs]


def linear_loss(outputs, rs):
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return sum(float(np.sum(np.asarray(o, np.float64) * r)) for o, r in zip(outputs, rs))


def finite_difference(f, x):
    """Central differences (reference.numerical_gradient: x perturbed in place, restored)."""
    return ref.numerical_gradient(f, x)


def weight_fd(layer, f, eps=1e-6):
    """Central differences of ``f()`` for every weight of ``layer`` (float64)."""
    grads = {}
    base = layer.get_weights()
    for name, w in base.items():
        g = np.zeros_like(w)
        for i in range(w.size):
            for sign in (1, -1):
                bumped = w.copy()
                bumped.reshape(-1)[i] += sign * eps
                layer.set_weights({name: bumped})
                g.reshape(-1)[i] += sign * f() / (2 * eps)
        layer.set_weights({name: w})
        grads[name] = g
    return grads


def check_gradients(layer, rng, x, lengths, flat0):
    """The layer's gradients of a random linear loss on all its outputs
    against central differences: inputs, each initial-state input, each weight."""

    def run():
        return layer(x, sequence_length=lengths, initial_state=flat0)

    outs, backprop = layer(x, sequence_length=lengths, initial_state=flat0, return_backprop=True)
    many = isinstance(outs, list)
    rs = projections(outs if many else [outs], rng)
    g = backprop(rs if many else rs[0])

    def f():
        return linear_loss(run(), rs)

    d_inputs = g.inputs if flat0 is not None else [g.inputs]
    np.testing.assert_allclose(d_inputs[0], finite_difference(f, x), rtol=1e-6, atol=1e-7)
    if flat0 is not None:
        assert len(d_inputs) == 1 + len(flat0)
        for i, s in enumerate(flat0):
            np.testing.assert_allclose(d_inputs[1 + i], finite_difference(f, s), rtol=1e-6, atol=1e-7)
    fd = weight_fd(layer, f)
    assert set(g.weights) == set(fd) == set(layer.get_weights())
    for k in fd:
        np.testing.assert_allclose(g.weights[k], fd[k], rtol=1e-6, atol=1e-7, err_msg=k)


problems = st.fixed_dictionaries(
    {
        "seed": seeds,
        "kind": st.sampled_from(KINDS),
        "B": st.integers(1, 3),
        "T": st.integers(1, 4),
        "return_sequences": st.booleans(),
        "return_state": st.booleans(),
        "go_backwards": st.booleans(),
        "with_state": st.booleans(),
        "ragged": st.booleans(),
    }
)


def build_problem(p, dtype, I=2, H=2):
    rng = np.random.default_rng(p["seed"])
    B, T = p["B"], p["T"]
    layer = RNN(
        make_cell(p["kind"], H, dtype, seed=1),
        return_sequences=p["return_sequences"],
        return_state=p["return_state"],
        go_backwards=p["go_backwards"],
    )
    x = rng.normal(size=(B, T, I))
    layer(x)  # builds
    w = random_weights(layer, rng)
    lengths = None
    if p["ragged"]:
        lengths = rng.integers(0, T + 1, size=B)
        lengths[0] = 0  # a row of length 0 always
    flat0 = [rng.normal(size=(B, n)) for n in state_widths(p["kind"], H)] if p["with_state"] else None
    return rng, layer, w, x, lengths, flat0


# -- RNN forward -----------------------------------------------------------------


@given(p=problems)
def test_rnn_forward_matches_row_by_row_reference(dtype, p):
    """Outputs, last-step read-out and the flattened final state (c then h,
    layer by layer) match the reference, for every flag, ragged lengths with
    a row of length 0 (whose state is the initial state) and given initial
    states; go_backwards reads each row reversed within its length and
    returns outputs in processing order."""
    _, layer, w, x, lengths, flat0 = build_problem(p, dtype)
    flat_cast = None if flat0 is None else [s.astype(dtype).astype(np.float64) for s in flat0]
    got = layer(x, sequence_length=lengths, initial_state=flat0)
    got = got if isinstance(got, list) else [got]
    cell = ref_cell(p["kind"], w)
    B = x.shape[0]
    start = ref_state(p["kind"], flat_cast) if flat_cast else cell.zero_state(B)
    out, last, flat_final = ref_rnn(cell, x.astype(dtype).astype(np.float64), lengths, start, p["go_backwards"])
    assert_close(got[0], out if p["return_sequences"] else last, dtype, "outputs")
    if p["return_state"]:
        assert len(got) == 1 + n_state(p["kind"])
        for i, (g, want) in enumerate(zip(got[1:], flat_final)):
            assert_close(g, want, dtype, f"state[{i}]")
    else:
        assert len(got) == 1


@given(p=problems)
def test_rnn_gradients_match_finite_differences(p):
    """float64: d inputs, d initial-state inputs and d every weight of a
    linear loss on all outputs (state outputs included) equal central finite
    differences."""
    rng, layer, _, x, lengths, flat0 = build_problem(p, np.float64)
    check_gradients(layer, rng, x, lengths, flat0)


def test_rnn_state_gradient_alone_and_partial():
    """A gradient reaching only one state output (the others None) flows
    back: the LSTM's h alone matches finite differences of <h, r>."""
    rng = np.random.default_rng(3)
    layer = RNN(rnnrs.BasicLSTMCell(3, dtype=np.float64, seed=0), return_state=True)
    x = rng.normal(size=(2, 3, 2))
    outs, backprop = layer(x, sequence_length=[3, 1], return_backprop=True)
    r = rng.normal(size=outs[2].shape)
    g = backprop([None, None, r])
    np.testing.assert_allclose(
        g.inputs, finite_difference(lambda: float(np.sum(layer(x, [3, 1])[2] * r)), x), 1e-6, 1e-7
    )
    assert np.all(g.inputs[1, 1:] == 0)  # padding steps get nothing


def test_rnn_lstm_state_outputs_are_c_then_h():
    """return_state flattens an LSTMStateTuple as c then h (the cell's own final state)."""
    rng = np.random.default_rng(0)
    cell = rnnrs.BasicLSTMCell(3, seed=0)
    x = rng.normal(size=(2, 4, 2)).astype(np.float32)
    y, c, h = RNN(cell, return_state=True)(x)
    _, state = rnnrs.dynamic_rnn(cell, x)
    np.testing.assert_array_equal(c, state.c)
    np.testing.assert_array_equal(h, state.h)
    np.testing.assert_array_equal(y, state.h)


def test_rnn_initial_state_as_structure_or_flat_list():
    """initial_state may be the cell's structure or its flat list: same result;
    a MultiRNNCell's tuple of (array, LSTMStateTuple) flattens layer by layer."""
    rng = np.random.default_rng(1)
    layer = RNN(make_cell("multi", 2, np.float64, seed=0), return_state=True)
    x = rng.normal(size=(2, 3, 2))
    flat = [rng.normal(size=(2, n)) for n in (2, 3, 3)]
    structured = (flat[0], rnnrs.LSTMStateTuple(flat[1], flat[2]))
    a = layer(x, initial_state=flat)
    b = layer(x, initial_state=structured)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    # the `state` argument of _apply (a structure) gives the same as state inputs
    applied = layer._apply([x], [None], False, structured)
    for u, v in zip(a, applied.outputs):
        np.testing.assert_array_equal(u, v)
    # zero lengths: the final state is the initial state
    z = layer(x, sequence_length=[0, 0], initial_state=flat)
    for got, want in zip(z[1:], flat):
        np.testing.assert_array_equal(got, want)


def test_rnn_state_inputs_win_over_state_argument():
    """When both are given to _apply, the initial-state inputs are used."""
    rng = np.random.default_rng(2)
    layer = RNN(rnnrs.BasicRNNCell(2, dtype=np.float64, seed=0), return_state=True)
    x = rng.normal(size=(1, 2, 2))
    s_in, s_arg = rng.normal(size=(1, 2)), rng.normal(size=(1, 2))
    both = layer._apply([x, s_in], [None, None], False, s_arg)
    only = layer(x, initial_state=s_in)
    np.testing.assert_array_equal(both.outputs[1], only[1])


# -- stateful -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_stateful_two_calls_equal_one_call_on_concatenation(dtype, kind, go_backwards):
    """A stateful layer called on x[:, :3] then x[:, 3:] returns, in its
    second call, what one call on the whole sequence returns for those steps
    (forward; go_backwards reverses each chunk on its own, so the reference
    there is the same layer run on the chunks in turn with explicit states)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 5, 2)).astype(dtype)
    one = RNN(make_cell(kind, 2, dtype, seed=4), return_sequences=True, return_state=True, go_backwards=go_backwards)
    two = RNN(make_cell(kind, 2, dtype, seed=4), return_sequences=True, stateful=True, go_backwards=go_backwards)
    if not go_backwards:
        whole = one(x)
        first = two(x[:, :3])
        second = two(x[:, 3:])
        np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole[0], rtol=1e-5, atol=1e-6)
        for kept, want in zip(rnnrs.layers.flatten_state(two.states), whole[1:]):
            np.testing.assert_allclose(kept, want, rtol=1e-5, atol=1e-6)
    else:
        y1, *s1 = one(x[:, :3])
        y2, *_ = one(x[:, 3:], initial_state=s1)
        np.testing.assert_allclose(two(x[:, :3]), y1, rtol=1e-6)
        np.testing.assert_allclose(two(x[:, 3:]), y2, rtol=1e-6)


def test_stateful_reset_batch_check_explicit_state_and_copies():
    """reset_states() returns to zeros; a different batch size is a ValueError
    naming both sizes; an explicit initial_state is used for that call (and
    its final state kept); the kept state is a copy (changing the returned
    state arrays changes nothing)."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 3, 2))
    fresh = RNN(rnnrs.BasicRNNCell(2, dtype=np.float64, seed=0), return_state=True)
    layer = RNN(rnnrs.BasicRNNCell(2, dtype=np.float64, seed=0), return_state=True, stateful=True)
    y1, s1 = layer(x)
    s1[...] = 99.0  # not the kept state
    y2, s2 = layer(x)
    np.testing.assert_allclose(y2, fresh(x, initial_state=fresh(x)[1])[0])
    assert not np.allclose(y1, y2)
    with pytest.raises(ValueError, match=r"inputs: expected batch size 2 .* got 3"):
        layer(rng.normal(size=(3, 3, 2)))
    layer.reset_states()
    assert layer.states is None
    np.testing.assert_array_equal(layer(x)[0], y1)
    explicit = rng.normal(size=(2, 2))
    y3, s3 = layer(x, initial_state=explicit)
    np.testing.assert_array_equal(y3, fresh(x, initial_state=explicit)[0])
    np.testing.assert_array_equal(layer.states, s3)
    layer.reset_states()
    assert layer(rng.normal(size=(3, 3, 2)))[0].shape == (3, 2)  # after a reset any batch size


def test_stateful_cuts_gradients_between_calls():
    """The second call's gradient w.r.t. its inputs ignores where the kept
    state came from: it equals a fresh layer's run from that state given as
    a constant."""
    rng = np.random.default_rng(7)
    x1, x2 = rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 3, 2))
    layer = RNN(rnnrs.BasicRNNCell(2, dtype=np.float64, seed=0), stateful=True)
    layer(x1)
    kept = layer.states
    y, bp = layer(x2, return_backprop=True)
    d = rng.normal(size=y.shape)
    g = bp(d)
    ref = RNN(rnnrs.BasicRNNCell(2, dtype=np.float64, seed=0))
    _, bp_ref = ref(x2, initial_state=kept, return_backprop=True)
    g_ref = bp_ref(d)
    np.testing.assert_allclose(g.inputs, g_ref.inputs[0])
    for k in g.weights:
        np.testing.assert_allclose(g.weights[k], g_ref.weights[k])


# -- symbolic path ---------------------------------------------------------------


def test_rnn_symbolic_specs():
    """Specs: [y, *state] with return_state (c then h widths for an LSTM with
    a projection); initial_state as symbolic inputs makes a node of 1 + n
    inputs; the list form rnn([x, c, h]) is the same; wrong widths, dtypes
    and counts are refused naming the argument."""
    x = Input((None, 3), dtype="float64")
    c, h = Input((4,), dtype="float64"), Input((2,), dtype="float64")
    layer = RNN(rnnrs.LSTMCell(4, num_proj=2, dtype=np.float64), return_sequences=True, return_state=True)
    outs = layer(x, initial_state=[c, h])
    assert [o.shape for o in outs] == [(None, None, 2), (None, 4), (None, 2)]
    assert outs[0].node.inputs == [x, c, h]
    again = layer([x, c, h])
    assert [o.shape for o in again] == [o.shape for o in outs]
    assert layer.weight_shapes([x.spec]) == {k: v.shape for k, v in layer.get_weights().items()}
    back = RNN(rnnrs.BasicRNNCell(3), go_backwards=True)(Input((7, 2)))
    assert back.shape == (None, 3)
    with pytest.raises(ValueError, match=r"initial_state\[1\]: expected \(None, 2\) float64"):
        layer(x, initial_state=[c, Input((3,), dtype="float64")])
    with pytest.raises(ValueError, match="inputs: expected the sequence, or the sequence and the 2 arrays"):
        layer(x, initial_state=[c])
    with pytest.raises(TypeError, match="inputs: expected only symbolic tensors"):
        layer(np.zeros((1, 2, 3)), initial_state=[c, h])
    spec_out = layer.compute_output_spec([Spec((None, 5, 3), np.dtype(np.float64))])
    assert spec_out[0].shape == (None, 5, 2)


# -- config and bad arguments -------------------------------------------------------


def test_rnn_config_round_trip_and_weight_names():
    """get_config gains the flags, is JSON-serialisable and rebuilds an
    equal layer; weight names are the cell's (unchanged)."""
    from rnnrs.saving.serialize import cell_from_config

    layer = RNN(rnnrs.GRUCell(3, seed=2), return_sequences=True, return_state=True, go_backwards=True, stateful=True)
    config = json.loads(json.dumps(layer.get_config()))
    assert {k: config[k] for k in ("return_sequences", "return_state", "go_backwards", "stateful")} == dict.fromkeys(
        ("return_sequences", "return_state", "go_backwards", "stateful"), True
    )
    copy = RNN(cell_from_config(config.pop("cell")), **config)
    x = np.random.default_rng(0).normal(size=(2, 3, 2)).astype(np.float32)
    for u, v in zip(layer(x), copy(x)):
        np.testing.assert_array_equal(u, v)
    assert sorted(layer.get_weights()) == sorted(layer.cell.get_weights())


@pytest.mark.parametrize("arg", ["return_sequences", "return_state", "go_backwards", "stateful"])
def test_rnn_flags_refuse_non_bools(arg):
    with raises_naming(TypeError, arg):
        RNN(rnnrs.BasicRNNCell(2), **{arg: 1})


def test_rnn_bad_initial_state_and_sequential_use():
    """Eager initial_state of the wrong count, shape or batch is a clear
    error; return_state through the one-output protocol (_forward, what a
    Sequential calls) is refused."""
    layer = RNN(rnnrs.BasicLSTMCell(2, dtype=np.float64))
    x = np.zeros((2, 3, 1))
    with raises_naming(ValueError, "initial_state"):
        layer(x, initial_state=[np.zeros((2, 2))])
    with raises_naming(ValueError, "initial_state"):
        layer(x, initial_state=[np.zeros((2, 2)), np.zeros((3, 2))])
    with raises_naming(ValueError, "initial_state"):
        layer(x, initial_state=[np.zeros((2, 2)), np.zeros((2, 5))])
    with raises_naming(ValueError, "return_state"):
        RNN(rnnrs.BasicRNNCell(2), return_state=True)._forward(np.zeros((1, 2, 1), np.float32), None, False)
    with raises_naming(TypeError, "cell"):
        RNN("lstm")


# -- Bidirectional -------------------------------------------------------------------

bi_problems = st.fixed_dictionaries(
    {
        "seed": seeds,
        "kind": st.sampled_from(KINDS),
        "B": st.integers(1, 3),
        "T": st.integers(1, 4),
        "merge_mode": st.sampled_from(["concat", "sum", "mul", "ave", None]),
        "return_sequences": st.booleans(),
        "return_state": st.booleans(),
        "with_state": st.booleans(),
        "ragged": st.booleans(),
    }
)


def build_bi(p, dtype, I=2, H=2):
    rng = np.random.default_rng(p["seed"])
    B, T = p["B"], p["T"]
    inner = RNN(
        make_cell(p["kind"], H, dtype, seed=3), return_sequences=p["return_sequences"], return_state=p["return_state"]
    )
    layer = Bidirectional(inner, merge_mode=p["merge_mode"])
    x = rng.normal(size=(B, T, I))
    layer(x)
    w = random_weights(layer, rng)
    lengths = None
    if p["ragged"]:
        lengths = rng.integers(0, T + 1, size=B)
        lengths[-1] = 0
    widths = state_widths(p["kind"], H)
    flat0 = [rng.normal(size=(B, n)) for n in widths + widths] if p["with_state"] else None
    return rng, layer, w, x, lengths, flat0


def merge(mode, a, b):
    return {
        "concat": lambda: [np.concatenate([a, b], axis=-1)],
        "sum": lambda: [a + b],
        "mul": lambda: [a * b],
        "ave": lambda: [(a + b) / 2],
        None: lambda: [a, b],
    }[mode]()


@given(p=bi_problems)
def test_bidirectional_forward_matches_reference(dtype, p):
    """Forward direction as RNN; backward direction reads each row reversed
    within its length, its sequence re-aligned to input order (its
    return_sequences=False output: after reading the whole row); merged by
    merge_mode; states fw then bw, flat."""
    _, layer, w, x, lengths, flat0 = build_bi(p, dtype)
    got = layer(x, sequence_length=lengths, initial_state=flat0)
    got = got if isinstance(got, list) else [got]
    xc = x.astype(dtype).astype(np.float64)
    kind, n = p["kind"], n_state(p["kind"])
    fw = ref_cell(kind, {k[8:]: v for k, v in w.items() if k.startswith("forward/")})
    bw = ref_cell(kind, {k[9:]: v for k, v in w.items() if k.startswith("backward/")})
    B, T = x.shape[:2]
    if flat0 is not None:
        cast = [s.astype(dtype).astype(np.float64) for s in flat0]
        s_fw, s_bw = ref_state(kind, cast[:n]), ref_state(kind, cast[n:])
    else:
        s_fw, s_bw = fw.zero_state(B), bw.zero_state(B)
    out_fw, last_fw, fin_fw = ref_rnn(fw, xc, lengths, s_fw, False)
    out_bw, last_bw, fin_bw = ref_rnn(bw, xc, lengths, s_bw, True)
    lens = [T] * B if lengths is None else list(lengths)
    aligned = np.zeros_like(out_bw)
    for b in range(B):
        aligned[b, : lens[b]] = out_bw[b, : lens[b]][::-1]
    if p["return_sequences"]:
        want = merge(p["merge_mode"], out_fw, aligned)
    else:
        want = merge(p["merge_mode"], last_fw, last_bw)
    if p["return_state"]:
        want += fin_fw + fin_bw
    assert len(got) == len(want)
    for i, (g, v) in enumerate(zip(got, want)):
        assert_close(g, v, dtype, f"outputs[{i}]")


def test_bidirectional_matches_bidirectional_dynamic_rnn():
    """Concatenated sequences equal rnnrs.bidirectional_dynamic_rnn's pair with the same cells."""
    rng = np.random.default_rng(8)
    layer = Bidirectional(RNN(rnnrs.GRUCell(3, seed=1), return_sequences=True, return_state=True))
    x = rng.normal(size=(3, 4, 2)).astype(np.float32)
    y, s_fw, s_bw = layer(x, sequence_length=[4, 0, 2])
    (o_fw, o_bw), (f_fw, f_bw) = rnnrs.bidirectional_dynamic_rnn(
        layer.forward_layer.cell, layer.backward_layer.cell, x, sequence_length=[4, 0, 2]
    )
    np.testing.assert_array_equal(y, np.concatenate([o_fw, o_bw], axis=-1))
    np.testing.assert_array_equal(s_fw, f_fw)
    np.testing.assert_array_equal(s_bw, f_bw)


@given(p=bi_problems)
def test_bidirectional_gradients_match_finite_differences(p):
    """As for RNN, through every merge mode."""
    rng, layer, _, x, lengths, flat0 = build_bi(p, np.float64)
    check_gradients(layer, rng, x, lengths, flat0)


def test_bidirectional_weights_seeds_and_config():
    """Weights are forward/<w> and backward/<w>; a seeded cell's backward copy
    gets a derived seed (different initial weights, the same for every
    Bidirectional of that layer configuration); the config is JSON and names
    the inner layer as {class_name, config}; set_weights validates everything
    before changing anything."""
    layer = Bidirectional(RNN(rnnrs.BasicLSTMCell(3, seed=7)))
    layer.build(2)
    w = layer.get_weights()
    assert sorted(w) == ["backward/bias", "backward/kernel", "forward/bias", "forward/kernel"]
    assert not np.allclose(w["forward/kernel"], w["backward/kernel"])
    other = Bidirectional(RNN(rnnrs.BasicLSTMCell(3, seed=7)))
    other.build(2)
    np.testing.assert_array_equal(other.get_weights()["backward/kernel"], w["backward/kernel"])
    assert layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards
    config = json.loads(json.dumps(layer.get_config()))
    assert config["layer"]["class_name"] == "RNN" and config["merge_mode"] == "concat"
    assert "backward_layer" not in config
    with raises_naming(ValueError, "mapping"):
        layer.set_weights({"forward/kernel": np.zeros((5, 12)), "sideways/kernel": np.zeros((5, 12))})
    with raises_naming(ValueError, "mapping"):
        layer.set_weights({"forward/kernel": np.zeros((5, 12)), "backward/kernel": np.zeros((4, 12))})
    np.testing.assert_array_equal(layer.get_weights()["forward/kernel"], w["forward/kernel"])  # unchanged
    layer.set_weights({"backward/bias": np.ones(12)})
    np.testing.assert_array_equal(layer.get_weights()["backward/bias"], np.ones(12, np.float32))
    given_bw = RNN(rnnrs.BasicLSTMCell(3), go_backwards=True)
    with_bw = Bidirectional(RNN(rnnrs.BasicLSTMCell(3)), backward_layer=given_bw)
    assert with_bw.backward_layer is given_bw
    assert json.loads(json.dumps(with_bw.get_config()))["backward_layer"]["config"]["go_backwards"] is True


def test_bidirectional_symbolic_specs():
    x = Input((None, 2))
    cell_args = {"num_units": 3}
    b = Bidirectional(RNN(rnnrs.BasicLSTMCell(**cell_args), return_sequences=True, return_state=True))
    c = [Input((3,)) for _ in range(4)]
    outs = b(x, initial_state=c)
    assert [o.shape for o in outs] == [(None, None, 6)] + [(None, 3)] * 4
    assert outs[0].node.inputs == [x, *c]
    none = Bidirectional(RNN(rnnrs.GRUCell(2)), merge_mode=None)(Input((5, 2)))
    assert [o.shape for o in none] == [(None, 2), (None, 2)]
    assert Bidirectional(RNN(rnnrs.GRUCell(2)), merge_mode="sum")(Input((5, 2))).shape == (None, 2)
    with pytest.raises(ValueError, match="initial_state: expected 4 arrays"):
        b(x, initial_state=c[:3])
    assert set(b.weight_shapes([x.spec])) == {"forward/kernel", "forward/bias", "backward/kernel", "backward/bias"}


def test_bidirectional_bad_arguments():
    with raises_naming(TypeError, "layer"):
        Bidirectional(rnnrs.BasicRNNCell(2))
    with raises_naming(TypeError, "merge_mode"):
        Bidirectional(RNN(rnnrs.BasicRNNCell(2)), merge_mode=1)
    with raises_naming(ValueError, "merge_mode"):
        Bidirectional(RNN(rnnrs.BasicRNNCell(2)), merge_mode="max")
    with raises_naming(ValueError, "merge_mode"):
        Bidirectional(
            RNN(rnnrs.BasicRNNCell(2)), merge_mode="sum", backward_layer=RNN(rnnrs.BasicRNNCell(3), go_backwards=True)
        )
    with raises_naming(ValueError, "backward_layer"):
        Bidirectional(RNN(rnnrs.BasicRNNCell(2)), backward_layer=RNN(rnnrs.BasicRNNCell(2)))
    with raises_naming(ValueError, "backward_layer"):
        Bidirectional(
            RNN(rnnrs.BasicRNNCell(2)),
            backward_layer=RNN(rnnrs.BasicRNNCell(2), go_backwards=True, return_sequences=True),
        )
    with raises_naming(TypeError, "backward_layer"):
        Bidirectional(RNN(rnnrs.BasicRNNCell(2)), backward_layer=rnnrs.BasicRNNCell(2))
    with raises_naming(ValueError, "backward_layer"):
        Bidirectional(
            RNN(rnnrs.BasicRNNCell(2)), backward_layer=RNN(rnnrs.BasicRNNCell(2, dtype=np.float64), go_backwards=True)
        )


def test_bidirectional_stateful_and_state_argument():
    """Both directions keep their states; reset_states clears both; _apply's
    state is a (forward, backward) pair."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2, 3, 2))
    b = Bidirectional(RNN(rnnrs.BasicRNNCell(2, dtype=np.float64, seed=0), stateful=True, return_state=True))
    y1 = b(x)
    y2 = b(x)
    assert not np.allclose(y1[0], y2[0])
    np.testing.assert_array_equal(b.forward_layer.states, y2[1])
    b.reset_states()
    np.testing.assert_array_equal(b(x)[0], y1[0])
    applied = b._apply([x], [None], False, (y1[1], y1[2]))
    np.testing.assert_array_equal(applied.outputs[0], b(x, initial_state=[y1[1], y1[2]])[0])


def test_dropout_wrapper_generators_are_the_layers_state():
    """An RNN layer saves its DropoutWrappers' generator positions (training resumes with the same masks)."""
    cell = rnnrs.DropoutWrapper(rnnrs.GRUCell(3, seed=1), input_keep_prob=0.5, seed=4)
    layer = rnnrs.Bidirectional(rnnrs.RNN(cell))
    x = np.ones((2, 4, 2), np.float32)
    layer(x)
    state = layer.get_state()
    assert sorted(state) == ["backward/dropout_0/generator", "forward/dropout_0/generator"]
    first = layer(x, training=True)
    layer.set_state(state)
    np.testing.assert_array_equal(layer(x, training=True), first)  # the same masks again
    assert rnnrs.RNN(rnnrs.GRUCell(3)).get_state() == {}
    with pytest.raises(ValueError, match=r"^mapping: expected names among \['dropout_0/generator'\]"):
        rnnrs.RNN(cell).set_state({"dropout_1/generator": state["forward/dropout_0/generator"]})
    with pytest.raises(ValueError, match="^mapping: expected names 'forward/<name>' or 'backward/<name>'"):
        layer.set_state({"sideways/x": 0})
