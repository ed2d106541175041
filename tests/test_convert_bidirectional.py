"""Stacked bidirectional layers and PyTorch's bidirectional modules.

- ``stack_bidirectional_dynamic_rnn`` (TF contrib's semantics: layer i reads
  both directions of layer i-1) against a stack of the row-by-row NumPy
  reference ``reference_wrappers.bidirectional_forward`` / ``_backward``,
  outputs, states and every gradient, on ragged batches including length 0.
- ``convert.from_torch`` / ``to_torch`` on ``(cell_fw, cell_bw)`` pairs and
  ``(cells_fw, cells_bw)`` lists (``_reverse`` keys), against a NumPy
  PyTorch-equations reference and, when torch is installed, against
  ``nn.LSTM/GRU/RNN(bidirectional=True, num_layers=2)`` with packed sequences.
- The converters' shape checks name the torch/Keras argument and say what it
  is ("this is an LSTM state dict", "hidden size 4, the cell has 5").
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference_wrappers as wr
import rnnrs
from helpers import assert_close, ragged_lengths, raises_naming
from rnnrs import convert

F64 = np.float64
KINDS = ("rnn", "lstm", "gru")


def make_cell(kind, units, dtype, **kw):
    if kind == "rnn":
        return rnnrs.BasicRNNCell(units, dtype=dtype, **kw)
    if kind == "lstm":
        return rnnrs.BasicLSTMCell(units, dtype=dtype, **kw)
    return rnnrs.GRUCell(units, reset_after=True, dtype=dtype, **kw)


def randomise(cell, input_size, rng, scale=0.6):
    cell.build(input_size)
    cell.set_weights({k: rng.normal(scale=scale, size=v.shape) for k, v in cell.get_weights().items()})
    return cell


def reference_layer(cell):
    """The NumPy reference of an rnnrs cell, with its current weights."""
    w = {k: v.astype(np.float64) for k, v in cell.get_weights().items()}
    if isinstance(cell, rnnrs.BasicRNNCell):
        return wr.BasicRNN(w["kernel"], w["bias"], cell.activation)
    if isinstance(cell, rnnrs.BasicLSTMCell):
        return wr.LSTM(w, forget_bias=cell.forget_bias, basic=True)
    return wr.GRU(w, reset_after=cell.reset_after)


def leaves(state):
    """The arrays of an rnnrs or reference state, ``c`` before ``h``."""
    if isinstance(state, (rnnrs.LSTMStateTuple, wr.LSTMState)):
        return [state[0], state[1]]
    return [state]


def random_state(kind, batch, units, rng):
    if kind == "lstm":
        c, h = rng.normal(size=(batch, units)), rng.normal(size=(batch, units))
        return rnnrs.LSTMStateTuple(c, h), wr.LSTMState(c, h)
    a = rng.normal(size=(batch, units))
    return a, a


def cast_state(state, dtype):
    if isinstance(state, rnnrs.LSTMStateTuple):
        return rnnrs.LSTMStateTuple(state.c.astype(dtype), state.h.astype(dtype))
    return state.astype(dtype)


@st.composite
def stacks(draw):
    kind = draw(st.sampled_from(KINDS), label="kind")
    layers = draw(st.integers(1, 3), label="layers")
    B, T, I = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    units = draw(st.lists(st.integers(1, 4), min_size=2 * layers, max_size=2 * layers), label="units")
    lengths = draw(st.none() | ragged_lengths(B, T), label="lengths")
    dtype = draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    with_states = draw(st.booleans(), label="with_states")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    return kind, layers, B, T, I, units, lengths, dtype, with_states, seed


@given(stacks())
def test_stack_matches_a_stack_of_the_numpy_bidirectional_reference(problem):
    """Outputs, final states and every gradient of the stack equal the
    reference's layer-by-layer chain (each layer reading [out_fw, out_bw] of
    the one below), on ragged batches with lengths 0 and T."""
    kind, layers, B, T, I, units, lengths, dtype, with_states, seed = problem
    rng = np.random.default_rng(seed)
    fws, bws, width = [], [], I
    for i in range(layers):
        fws.append(randomise(make_cell(kind, units[2 * i], dtype), width, rng))
        bws.append(randomise(make_cell(kind, units[2 * i + 1], dtype), width, rng))
        width = units[2 * i] + units[2 * i + 1]
    x = rng.normal(size=(B, T, I))
    init_fw = init_bw = None
    ref_fw_states = [None] * layers
    ref_bw_states = [None] * layers
    if with_states:
        pairs_fw = [random_state(kind, B, units[2 * i], rng) for i in range(layers)]
        pairs_bw = [random_state(kind, B, units[2 * i + 1], rng) for i in range(layers)]
        init_fw = [cast_state(p[0], dtype) for p in pairs_fw]
        init_bw = [cast_state(p[0], dtype) for p in pairs_bw]
        ref_fw_states = [p[1] for p in pairs_fw]
        ref_bw_states = [p[1] for p in pairs_bw]
    outputs, states_fw, states_bw, backprop = rnnrs.stack_bidirectional_dynamic_rnn(
        fws,
        bws,
        x.astype(dtype),
        initial_states_fw=init_fw,
        initial_states_bw=init_bw,
        sequence_length=lengths,
        return_backprop=True,
    )
    # the reference, layer by layer
    refs = [(reference_layer(f), reference_layer(b)) for f, b in zip(fws, bws)]
    inp, caches, finals = x, [], []
    for i, (rf, rb) in enumerate(refs):
        (of, ob), (sf, sb), cache = wr.bidirectional_forward(rf, rb, inp, lengths, ref_fw_states[i], ref_bw_states[i])
        caches.append(cache)
        finals.append((sf, sb))
        inp = np.concatenate([of, ob], axis=2)
    assert_close(outputs, inp, dtype, "outputs")
    assert len(states_fw) == len(states_bw) == layers
    for i in range(layers):
        for got, want in zip(leaves(states_fw[i]) + leaves(states_bw[i]), leaves(finals[i][0]) + leaves(finals[i][1])):
            assert_close(got, want, dtype, f"state of layer {i}")
    # gradients: a random upstream gradient on the outputs and on every final state
    d_out = rng.normal(size=outputs.shape)
    d_fw = [[rng.normal(size=a.shape) for a in leaves(s)] for s in states_fw]
    d_bw = [[rng.normal(size=a.shape) for a in leaves(s)] for s in states_bw]

    def as_state(arrays, ref):
        if kind == "lstm":
            return wr.LSTMState(*arrays) if ref else rnnrs.LSTMStateTuple(*(a.astype(dtype) for a in arrays))
        return arrays[0] if ref else arrays[0].astype(dtype)

    g = backprop(d_out.astype(dtype), ([as_state(a, False) for a in d_fw], [as_state(a, False) for a in d_bw]))
    d = d_out
    for i in reversed(range(layers)):
        rf, rb = refs[i]
        split = rf.output_size
        d, (di_fw, di_bw), (dw_fw, dw_bw) = wr.bidirectional_backward(
            rf, rb, caches[i], (d[..., :split], d[..., split:]), (as_state(d_fw[i], True), as_state(d_bw[i], True))
        )
        for got, want in zip(
            leaves(g.initial_state[0][i]) + leaves(g.initial_state[1][i]), leaves(di_fw) + leaves(di_bw)
        ):
            assert_close(got, want, dtype, f"d_initial_state of layer {i}")
        for k in dw_fw:
            assert_close(g.weights[0][i][k], dw_fw[k], dtype, f"d cells_fw[{i}] {k}")
            assert_close(g.weights[1][i][k], dw_bw[k], dtype, f"d cells_bw[{i}] {k}")
    assert_close(g.inputs, d, dtype, "d_inputs")


def test_stack_of_one_layer_is_bidirectional_dynamic_rnn_concatenated():
    rng = np.random.default_rng(3)
    fw, bw = randomise(rnnrs.GRUCell(3, dtype=F64), 2, rng), randomise(rnnrs.GRUCell(2, dtype=F64), 2, rng)
    x = rng.normal(size=(4, 5, 2))
    (of, ob), (sf, sb) = rnnrs.bidirectional_dynamic_rnn(fw, bw, x, sequence_length=[5, 0, 2, 3])
    out, (s1,), (s2,) = rnnrs.stack_bidirectional_dynamic_rnn([fw], [bw], x, sequence_length=[5, 0, 2, 3])
    np.testing.assert_array_equal(out, np.concatenate([of, ob], axis=2))
    np.testing.assert_array_equal(s1, sf)
    np.testing.assert_array_equal(s2, sb)
    # time_major reads and returns [T, B, ...]
    out_tm, _, _ = rnnrs.stack_bidirectional_dynamic_rnn(
        [fw], [bw], x.transpose(1, 0, 2), sequence_length=[5, 0, 2, 3], time_major=True, dtype=np.float64
    )
    np.testing.assert_array_equal(out_tm.transpose(1, 0, 2), out)


def test_stack_errors_name_their_argument():
    """Bad calls raise TypeError/ValueError naming the stack's own arguments
    (not the inner bidirectional_dynamic_rnn's)."""
    x = np.zeros((2, 3, 4))
    c = rnnrs.BasicRNNCell
    with raises_naming(TypeError, "cells_fw"):
        rnnrs.stack_bidirectional_dynamic_rnn(c(2), [c(2)], x)
    with raises_naming(ValueError, "cells_fw"):
        rnnrs.stack_bidirectional_dynamic_rnn([], [], x)
    with raises_naming(ValueError, "cells_bw"):
        rnnrs.stack_bidirectional_dynamic_rnn([c(2), c(2)], [c(2)], x)
    with raises_naming(TypeError, r"cells_bw\[0\]"):
        rnnrs.stack_bidirectional_dynamic_rnn([c(2)], ["cell"], x)
    with raises_naming(ValueError, r"cells_bw\[1\]"):
        rnnrs.stack_bidirectional_dynamic_rnn([c(2), c(2)], [c(2), c(2, dtype=F64)], x)
    with raises_naming(ValueError, "dtype"):
        rnnrs.stack_bidirectional_dynamic_rnn([c(2)], [c(2)], x, dtype=np.float64)
    for bad in ("no such dtype", object()):  # unreadable: TypeError, as for dynamic_rnn
        with raises_naming(TypeError, "dtype"):
            rnnrs.stack_bidirectional_dynamic_rnn([c(2)], [c(2)], x, dtype=bad)
    with raises_naming(ValueError, "initial_states_fw"):
        rnnrs.stack_bidirectional_dynamic_rnn([c(2)], [c(2)], x, initial_states_fw=[None, None])
    with raises_naming(ValueError, r"initial_states_bw\[1\]"):
        rnnrs.stack_bidirectional_dynamic_rnn([c(2), c(2)], [c(2), c(2)], x, initial_states_bw=[None, np.zeros((3, 2))])
    built = c(2)
    built.build(3)  # layer 1 reads 2 + 2 = 4 features
    with raises_naming(ValueError, r"cells_fw\[1\]"):
        rnnrs.stack_bidirectional_dynamic_rnn([c(2), built], [c(2), c(2)], x)
    with raises_naming(ValueError, "sequence_length"):
        rnnrs.stack_bidirectional_dynamic_rnn([c(2)], [c(2)], x, sequence_length=[4, 1])
    out, _, _, bp = rnnrs.stack_bidirectional_dynamic_rnn([c(2)], [c(2)], x, return_backprop=True)
    with raises_naming(ValueError, "d_outputs"):
        bp(np.zeros((2, 3, 2)), None)
    with raises_naming(ValueError, r"d_state\[0\]"):
        bp(None, ([None, None], None))


# ---- PyTorch bidirectional layouts -------------------------------------------


def torch_direction(kind, sd, suffix, x, reverse):
    """One direction of a PyTorch layer (its own equations, NumPy), full lengths."""
    w_ih, w_hh = sd["weight_ih" + suffix], sd["weight_hh" + suffix]
    b_ih, b_hh = sd["bias_ih" + suffix], sd["bias_hh" + suffix]
    hsize = w_hh.shape[1]
    h, c = np.zeros((x.shape[0], hsize)), np.zeros((x.shape[0], hsize))
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
    out = np.zeros((x.shape[0], x.shape[1], hsize))
    for t in steps:
        gi, gh = x[:, t] @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        if kind == "rnn":
            h = np.tanh(gi + gh)
        elif kind == "lstm":
            i, f, g, o = np.split(gi + gh, 4, axis=1)
            c = sig(f) * c + sig(i) * np.tanh(g)
            h = sig(o) * np.tanh(c)
        else:
            r = sig(gi[:, :hsize] + gh[:, :hsize])
            z = sig(gi[:, hsize : 2 * hsize] + gh[:, hsize : 2 * hsize])
            n = np.tanh(gi[:, 2 * hsize :] + r * gh[:, 2 * hsize :])
            h = (1 - z) * n + z * h
        out[:, t] = h
    return out


def pair_stack(kind, layers, units, input_size, dtype, seed):
    rng = np.random.default_rng(seed)
    fws, bws, width = [], [], input_size
    for _ in range(layers):
        fws.append(randomise(make_cell(kind, units, dtype), width, rng))
        bws.append(randomise(make_cell(kind, units, dtype), width, rng))
        width = 2 * units
    return fws, bws


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers", [1, 2])
def test_to_torch_bidirectional_layout_means_the_same_network(kind, layers):
    """to_torch((cells_fw, cells_bw)) writes _l{i} / _l{i}_reverse entries that
    PyTorch's equations run to the stack's outputs."""
    fws, bws = pair_stack(kind, layers, 3, 2, F64, seed=layers)
    target = (fws[0], bws[0]) if layers == 1 else (fws, bws)
    sd = convert.to_torch(target)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    assert sorted(sd) == sorted(f"{w}_l{i}{r}" for i in range(layers) for r in ("", "_reverse") for w in names)
    x = np.random.default_rng(0).normal(size=(3, 4, 2))
    layer_in = x
    for i in range(layers):
        layer_in = np.concatenate(
            [
                torch_direction(kind, sd, f"_l{i}", layer_in, False),
                torch_direction(kind, sd, f"_l{i}_reverse", layer_in, True),
            ],
            axis=2,
        )
    out, _, _ = rnnrs.stack_bidirectional_dynamic_rnn(fws, bws, x)
    np.testing.assert_allclose(out, layer_in, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
def test_bidirectional_round_trip(kind, dtype):
    fws, bws = pair_stack(kind, 2, 3, 2, dtype, seed=5)
    sd = convert.to_torch((fws, bws))
    again_fw = [make_cell(kind, 3, dtype) for _ in range(2)]
    again_bw = [make_cell(kind, 3, dtype) for _ in range(2)]
    convert.from_torch((again_fw, again_bw), sd)
    for got, want in zip(again_fw + again_bw, fws + bws):
        for k, v in want.get_weights().items():
            np.testing.assert_allclose(got.get_weights()[k], v, rtol=0, atol=1e-6 if dtype == np.float32 else 1e-15)
    # one layer as a plain pair
    one = (make_cell(kind, 3, dtype), make_cell(kind, 3, dtype))
    convert.from_torch(one, convert.to_torch((fws[0], bws[0])))
    for k, v in bws[0].get_weights().items():
        np.testing.assert_allclose(one[1].get_weights()[k], v, rtol=0, atol=1e-6 if dtype == np.float32 else 1e-15)


def test_bidirectional_state_dict_mismatches_are_refused_and_change_nothing():
    """Pins the converters' bidirectional checks: a _reverse state dict into one
    cell (refused before, as an unnamed 'extra key'), a unidirectional one into
    a pair, a layer-count mismatch, twins that differ, a layer whose input is
    not the two directions below; a failure in any layer changes no cell."""
    fws, bws = pair_stack("lstm", 2, 3, 2, F64, seed=1)
    sd = convert.to_torch((fws, bws))
    with raises_naming(ValueError, "state_dict"):
        convert.from_torch(rnnrs.BasicLSTMCell(3), sd)
    with raises_naming(ValueError, "state_dict"):
        convert.from_torch((rnnrs.BasicLSTMCell(3), rnnrs.BasicLSTMCell(3)), convert.to_torch(fws[0]))
    with raises_naming(ValueError, "state_dict"):
        convert.from_torch((rnnrs.BasicLSTMCell(3), rnnrs.BasicLSTMCell(3)), sd)  # 2 layers into 1
    with raises_naming(ValueError, r"cells_bw\[0\]"):
        convert.from_torch(
            (rnnrs.BasicLSTMCell(3), rnnrs.GRUCell(3, reset_after=True)), convert.to_torch((fws[0], bws[0]))
        )
    with raises_naming(TypeError, "cell"):
        convert.from_torch((rnnrs.BasicLSTMCell(3), "bw"), sd)
    with raises_naming(ValueError, "MultiRNNCell"):
        convert.to_torch((rnnrs.MultiRNNCell([fws[0]]), bws[0]))
    # layer 1 reading 5 features instead of 3 + 3: named, and nothing changed
    bad = dict(sd)
    bad["weight_ih_l1_reverse"] = np.zeros((12, 5))
    fresh_fw = [rnnrs.BasicLSTMCell(3, dtype=F64) for _ in range(2)]
    fresh_bw = [rnnrs.BasicLSTMCell(3, dtype=F64) for _ in range(2)]
    with raises_naming(ValueError, "weight_ih_l1_reverse"):
        convert.from_torch((fresh_fw, fresh_bw), bad)
    assert all(c.input_size is None for c in fresh_fw + fresh_bw)
    # to_torch: a layer that does not read both directions below
    odd = randomise(rnnrs.BasicLSTMCell(3, dtype=F64), 4, np.random.default_rng(0))
    with raises_naming(ValueError, r"cells_fw\[1\]"):
        convert.to_torch(([fws[0], odd], bws))


def test_multi_rnn_cell_layer_widths_are_checked():
    """A MultiRNNCell's layer i > 0 reads layer i-1's outputs: a state dict whose
    weight_ih_l1 has another width is refused (it built a wrong cell before)."""
    multi = rnnrs.MultiRNNCell([rnnrs.GRUCell(5, reset_after=True), rnnrs.GRUCell(5, reset_after=True)])
    sd = convert.to_torch(
        rnnrs.MultiRNNCell(
            [
                randomise(rnnrs.GRUCell(5, reset_after=True), 4, np.random.default_rng(0)),
                randomise(rnnrs.GRUCell(5, reset_after=True), 5, np.random.default_rng(1)),
            ]
        )
    )
    sd["weight_ih_l1"] = sd["weight_ih_l1"][:, :3]
    with raises_naming(ValueError, "weight_ih_l1"):
        convert.from_torch(multi, sd)
    assert multi.cells[0].input_size is None


# ---- the shape bugs ----------------------------------------------------


def keras_lstm_weights(units=4, input_size=2):
    cell = randomise(rnnrs.BasicLSTMCell(units, dtype=F64), input_size, np.random.default_rng(0))
    return convert.to_keras(cell), convert.to_torch(cell)


def test_keras_recurrent_kernel_of_the_wrong_shape_is_refused_by_name():
    """from_keras(BasicLSTMCell(4), [k, rk[:3], b]) built input_size=2 silently
    once; it must name the recurrent kernel and leave the cell unbuilt."""
    (k, rk, b), _ = keras_lstm_weights()
    cell = rnnrs.BasicLSTMCell(4)
    with raises_naming(ValueError, r"weights\[1\]") as info:
        convert.from_keras(cell, [k, rk[:3], b])
    assert "4 gates x hidden size 4 = 16" in str(info.value)
    assert cell.input_size is None


@pytest.mark.parametrize(
    "cell,match",
    [
        (lambda: rnnrs.GRUCell(4, reset_after=True), r"this is an LSTM state dict .*the cell is a GRUCell"),
        (lambda: rnnrs.BasicRNNCell(4), r"this is an LSTM state dict .*the cell is a BasicRNNCell"),
        (lambda: rnnrs.BasicLSTMCell(5), r"hidden size 4, the cell has 5 units"),
    ],
)
def test_torch_state_dict_of_another_kind_or_size_says_what_it_is(cell, match):
    _, sd = keras_lstm_weights()
    with raises_naming(ValueError, r"state_dict\['weight_hh_l0'\]") as info:
        convert.from_torch(cell(), sd)
    assert re.search(match, str(info.value)), str(info.value)


@pytest.mark.parametrize(
    "cell,match",
    [
        (lambda: rnnrs.GRUCell(4), r"this is an LSTM Keras layer's recurrent kernel .*GRUCell"),
        (lambda: rnnrs.BasicLSTMCell(6), r"hidden size 4, the cell has 6 units"),
    ],
)
def test_keras_weights_of_another_kind_or_size_say_what_they_are(cell, match):
    (k, rk, b), _ = keras_lstm_weights()
    with raises_naming(ValueError, r"weights\[1\]") as info:
        convert.from_keras(cell(), [k, rk, b])
    assert re.search(match, str(info.value)), str(info.value)


def test_torch_weights_name_the_entry_and_the_cells_sizes():
    _, sd = keras_lstm_weights()
    bad = {**sd, "weight_hh_l0": sd["weight_hh_l0"][:, :3]}
    with raises_naming(ValueError, r"state_dict\['weight_hh_l0'\]") as info:
        convert.from_torch(rnnrs.BasicLSTMCell(4), bad)
    assert "4 gates x hidden size 4 = 16" in str(info.value) and "(16, 3)" in str(info.value)
    built = rnnrs.BasicLSTMCell(4)
    built.build(3)
    with raises_naming(ValueError, r"state_dict\['weight_ih_l0'\]"):
        convert.from_torch(built, sd)


def test_keras_gru_bias_of_the_other_form_is_explained():
    gru = randomise(rnnrs.GRUCell(3, reset_after=True, dtype=F64), 2, np.random.default_rng(0))
    with raises_naming(ValueError, r"weights\[2\]") as info:
        convert.from_keras(rnnrs.GRUCell(3, reset_after=False), convert.to_keras(gru))
    assert "reset_after=True" in str(info.value)


# ---- against PyTorch itself, when it is installed ------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pytorch_bidirectional_two_layer_modules_run_identically(kind, dtype):
    """nn.RNN/LSTM/GRU(bidirectional=True, num_layers=2, batch_first=True) with
    the converted weights equals the stack, on packed ragged batches too
    (outputs zero past each length, h_n at each row's end); and back."""
    torch = pytest.importorskip("torch", reason="PyTorch is optional: the NumPy references above cover the layouts")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    module_cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    module = module_cls(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    module = module.double() if dtype == np.float64 else module.float()
    fws = [make_cell(kind, 4, dtype) for _ in range(2)]
    bws = [make_cell(kind, 4, dtype) for _ in range(2)]
    convert.from_torch((fws, bws), module.state_dict())
    x = np.random.default_rng(2).normal(size=(4, 6, 3)).astype(dtype)
    lengths = [6, 1, 3, 5]
    with torch.no_grad():
        packed = pack_padded_sequence(
            torch.from_numpy(x), torch.tensor(lengths), batch_first=True, enforce_sorted=False
        )
        out, state = module(packed)
        out = pad_packed_sequence(out, batch_first=True, total_length=6)[0].numpy()
        full_out = module(torch.from_numpy(x))[0].numpy()
    h_n = (state[0] if kind == "lstm" else state).numpy()  # [layers * 2, B, H]
    got, s_fw, s_bw = rnnrs.stack_bidirectional_dynamic_rnn(fws, bws, x, sequence_length=lengths)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got, out, **tol)
    for i in range(2):
        np.testing.assert_allclose(leaves(s_fw[i])[-1], h_n[2 * i], **tol)
        np.testing.assert_allclose(leaves(s_bw[i])[-1], h_n[2 * i + 1], **tol)
    np.testing.assert_allclose(rnnrs.stack_bidirectional_dynamic_rnn(fws, bws, x)[0], full_out, **tol)
    # and back: the stack's weights load into a fresh module with the same results
    fresh = module_cls(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    fresh = fresh.double() if dtype == np.float64 else fresh.float()
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in convert.to_torch((fws, bws)).items()})
    with torch.no_grad():
        np.testing.assert_allclose(fresh(torch.from_numpy(x))[0].numpy(), full_out, **tol)


# ---- one cell object in two places ------------------------------------------------------


def test_same_cell_twice_in_a_pair_is_refused():
    """Pins: from_torch((c, c), sd) loaded both directions into one cell (the
    backward one silently winning) and to_torch((c, c)) exported identical
    directions; both raise ValueError naming cell."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 2)).astype(np.float32)
    fw, bw = rnnrs.GRUCell(3, reset_after=True, seed=1), rnnrs.GRUCell(3, reset_after=True, seed=2)
    rnnrs.bidirectional_dynamic_rnn(fw, bw, x)
    sd = convert.to_torch((fw, bw))
    c = rnnrs.GRUCell(3, reset_after=True)
    with raises_naming(ValueError, "^cell: .*cell_fw and cell_bw"):
        convert.from_torch((c, c), sd)
    assert not c.built
    with raises_naming(ValueError, "^cell: "):
        convert.to_torch((fw, fw))
    with raises_naming(ValueError, "^cell: "):  # through a wrapper too
        convert.to_torch((fw, rnnrs.DropoutWrapper(fw)))


def test_same_cell_in_two_layers_is_refused_before_anything_changes():
    """Pins: one cell object in two layers of (cells_fw, cells_bw) got the
    state dict's first layer, then failed on the second, leaving it (and
    the other cells) changed; now ValueError naming cell, nothing changed."""
    rng = np.random.default_rng(0)
    src_f = [rnnrs.BasicRNNCell(3, seed=7), rnnrs.BasicRNNCell(3, seed=8)]
    src_b = [rnnrs.BasicRNNCell(3, seed=9), rnnrs.BasicRNNCell(3, seed=10)]
    rnnrs.stack_bidirectional_dynamic_rnn(src_f, src_b, rng.normal(size=(2, 4, 2)).astype(np.float32))
    sd = convert.to_torch((src_f, src_b))
    a, bw = rnnrs.BasicRNNCell(3), [rnnrs.BasicRNNCell(3), rnnrs.BasicRNNCell(3)]
    with raises_naming(ValueError, r"^cell: .*cells_fw\[0\] and cells_fw\[1\]"):
        convert.from_torch(([a, a], bw), sd)
    assert not a.built and not bw[0].built and not bw[1].built
    with raises_naming(ValueError, r"^cell: .*cells_fw\[1\] and cells_bw\[1\]"):
        convert.from_torch(([rnnrs.BasicRNNCell(3), a], [rnnrs.BasicRNNCell(3), a]), sd)
    with raises_naming(ValueError, "^cell: "):
        convert.to_torch(([src_f[0], src_f[0]], src_b))


def test_to_torch_of_an_unbuilt_cell_names_the_argument():
    """Pins: to_torch of an unbuilt cell or pair said 'to_torch: expected a
    built cell'; the message starts with the argument (cell, or the unbuilt
    direction cell_fw / cells_bw[i])."""
    with raises_naming(ValueError, "^cell: expected a built cell"):
        convert.to_torch(rnnrs.BasicRNNCell(3))
    with raises_naming(ValueError, "^cell_fw: expected a built cell"):
        convert.to_torch((rnnrs.BasicRNNCell(3), rnnrs.BasicRNNCell(3)))
    fw, bw = [rnnrs.BasicRNNCell(3), rnnrs.BasicRNNCell(3)], [rnnrs.BasicRNNCell(3), rnnrs.BasicRNNCell(3)]
    fw[0].build(2)
    bw[0].build(2)
    with raises_naming(ValueError, r"^cells_fw\[1\]: expected a built cell"):
        convert.to_torch((fw, bw))
    with raises_naming(ValueError, "^cell: expected a built cell"):
        convert.to_keras(rnnrs.BasicRNNCell(3))
