"""Weight converters (rnnrs.convert) to and from PyTorch and Keras 3 layouts.

The layouts' meaning is checked twice: against small NumPy implementations of
PyTorch's and Keras's own equations (always), and against PyTorch itself when
it is installed (optional).
"""

from __future__ import annotations

import numpy as np
import pytest

import rnnrs
from rnnrs import convert

F64 = np.float64
B, T, I = 3, 5, 4


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def inputs(seed=0):
    return np.random.default_rng(seed).normal(size=(B, T, I))


def built(cell, seed=1, scale=0.5):
    """The cell built for I inputs, with every weight (biases too) random."""
    cell.build(I)
    rng = np.random.default_rng(seed)
    cell.set_weights({k: rng.normal(scale=scale, size=v.shape) for k, v in cell.get_weights().items()})
    return cell


def rnnrs_outputs(cell, x):
    outputs, _ = rnnrs.dynamic_rnn(cell, x)
    return outputs


# ---- the targets' own equations, in NumPy ------------------------------------


def torch_like(kind, sd, x, nonlinearity="tanh"):
    """PyTorch nn.RNN / nn.LSTM (optional proj) / nn.GRU, one layer, batch-first."""
    w_ih, w_hh, b_ih, b_hh = sd["weight_ih_l0"], sd["weight_hh_l0"], sd["bias_ih_l0"], sd["bias_hh_l0"]
    hsize = w_hh.shape[1]
    h = np.zeros((x.shape[0], hsize))
    c = np.zeros((x.shape[0], w_ih.shape[0] // 4)) if kind == "lstm" else None
    out = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        if kind == "rnn":
            z = xt @ w_ih.T + b_ih + h @ w_hh.T + b_hh
            h = np.tanh(z) if nonlinearity == "tanh" else np.maximum(z, 0)
        elif kind == "lstm":
            i, f, g, o = np.split(xt @ w_ih.T + b_ih + h @ w_hh.T + b_hh, 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            if "weight_hr_l0" in sd:
                h = h @ sd["weight_hr_l0"].T
        else:  # gru
            gi, gh = xt @ w_ih.T + b_ih, h @ w_hh.T + b_hh
            r = sigmoid(gi[:, :hsize] + gh[:, :hsize])
            z = sigmoid(gi[:, hsize : 2 * hsize] + gh[:, hsize : 2 * hsize])
            n = np.tanh(gi[:, 2 * hsize :] + r * gh[:, 2 * hsize :])
            h = (1 - z) * n + z * h
        out.append(h)
    return np.stack(out, axis=1)


def keras_like(kind, weights, x, reset_after=True):
    """Keras 3 SimpleRNN / LSTM / GRU (tanh, sigmoid gates), return_sequences=True."""
    kernel, recurrent, bias = weights
    units = recurrent.shape[0]
    h = np.zeros((x.shape[0], units))
    c = np.zeros_like(h)
    out = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        if kind == "rnn":
            h = np.tanh(xt @ kernel + bias + h @ recurrent)
        elif kind == "lstm":
            i, f, cc, o = np.split(xt @ kernel + h @ recurrent + bias, 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(cc)
            h = sigmoid(o) * np.tanh(c)
        else:
            b_in, b_rec = (bias[0], bias[1]) if reset_after else (bias, np.zeros_like(bias))
            x_z, x_r, x_h = np.split(xt @ kernel + b_in, 3, axis=1)
            if reset_after:
                r_z, r_r, r_h = np.split(h @ recurrent + b_rec, 3, axis=1)
                z, r = sigmoid(x_z + r_z), sigmoid(x_r + r_r)
                hh = np.tanh(x_h + r * r_h)
            else:
                z = sigmoid(x_z + h @ recurrent[:, :units])
                r = sigmoid(x_r + h @ recurrent[:, units : 2 * units])
                hh = np.tanh(x_h + (r * h) @ recurrent[:, 2 * units :])
            h = z * h + (1 - z) * hh
        out.append(h)
    return np.stack(out, axis=1)


# ---- cells -------------------------------------------------------------------

TORCH_CELLS = {
    "rnn-tanh": (lambda: rnnrs.BasicRNNCell(6, dtype=F64), "rnn"),
    "rnn-relu": (lambda: rnnrs.BasicRNNCell(6, activation="relu", dtype=F64), "rnn"),
    "basic-lstm": (lambda: rnnrs.BasicLSTMCell(6, forget_bias=1.0, dtype=F64), "lstm"),
    "lstm-fb0.3": (lambda: rnnrs.LSTMCell(6, forget_bias=0.3, dtype=F64), "lstm"),
    "lstm-proj": (lambda: rnnrs.LSTMCell(6, num_proj=3, dtype=F64), "lstm"),
    "gru-after": (lambda: rnnrs.GRUCell(6, reset_after=True, dtype=F64), "gru"),
}

KERAS_CELLS = {
    "rnn": (lambda: rnnrs.BasicRNNCell(6, dtype=F64), "rnn", True),
    "basic-lstm": (lambda: rnnrs.BasicLSTMCell(6, dtype=F64), "lstm", True),
    "lstm-fb2": (lambda: rnnrs.LSTMCell(6, forget_bias=2.0, dtype=F64), "lstm", True),
    "gru-after": (lambda: rnnrs.GRUCell(6, reset_after=True, dtype=F64), "gru", True),
    "gru-tf1": (lambda: rnnrs.GRUCell(6, reset_after=False, dtype=F64), "gru", False),
}


@pytest.mark.parametrize("name", sorted(TORCH_CELLS))
def test_to_torch_layout_means_the_same_network(name):
    make, kind = TORCH_CELLS[name]
    cell = built(make())
    sd = convert.to_torch(cell)
    x = inputs()
    nonlin = getattr(cell, "activation", "tanh")
    np.testing.assert_allclose(torch_like(kind, sd, x, nonlin), rnnrs_outputs(cell, x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(TORCH_CELLS))
def test_torch_round_trip(name):
    make, _ = TORCH_CELLS[name]
    cell = built(make())
    back = make()
    convert.from_torch(back, convert.to_torch(cell))
    for k, v in cell.get_weights().items():
        np.testing.assert_allclose(back.get_weights()[k], v, rtol=0, atol=1e-15, err_msg=k)


@pytest.mark.parametrize("name", sorted(KERAS_CELLS))
def test_to_keras_layout_means_the_same_network(name):
    make, kind, reset_after = KERAS_CELLS[name]
    cell = built(make())
    x = inputs()
    np.testing.assert_allclose(
        keras_like(kind, convert.to_keras(cell), x, reset_after), rnnrs_outputs(cell, x), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("name", sorted(KERAS_CELLS))
def test_keras_round_trip(name):
    make, _, _ = KERAS_CELLS[name]
    cell = built(make())
    back = make()
    convert.from_keras(back, convert.to_keras(cell))
    for k, v in cell.get_weights().items():
        np.testing.assert_allclose(back.get_weights()[k], v, rtol=0, atol=1e-15, err_msg=k)


def test_forget_bias_is_folded_into_the_forget_gate():
    cell = rnnrs.BasicLSTMCell(2, forget_bias=1.0, dtype=F64)
    cell.build(1)
    sd = convert.to_torch(cell)  # zero biases: only forget_bias shows, in PyTorch's f block (2nd)
    np.testing.assert_array_equal(sd["bias_ih_l0"], [0, 0, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(convert.to_keras(cell)[2], [0, 0, 1, 1, 0, 0, 0, 0])
    fresh = rnnrs.BasicLSTMCell(2, forget_bias=1.0, dtype=F64)
    convert.from_torch(fresh, sd)
    np.testing.assert_array_equal(fresh.get_weights()["bias"], np.zeros(8))


def test_multi_rnn_cell_becomes_a_multi_layer_state_dict():
    cells = [rnnrs.GRUCell(5, reset_after=True, dtype=F64), rnnrs.GRUCell(5, reset_after=True, dtype=F64)]
    multi = rnnrs.MultiRNNCell(cells)
    multi.build(I)
    sd = convert.to_torch(multi)
    assert sorted(sd) == sorted(f"{w}_l{i}" for i in (0, 1) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    assert sd["weight_ih_l1"].shape == (15, 5)
    again = rnnrs.MultiRNNCell([rnnrs.GRUCell(5, reset_after=True, dtype=F64) for _ in range(2)])
    convert.from_torch(again, sd)
    for k, v in multi.get_weights().items():
        np.testing.assert_allclose(again.get_weights()[k], v, atol=1e-15)


def test_dropout_wrapper_is_looked_through():
    inner = built(rnnrs.BasicRNNCell(3, dtype=F64))
    wrapped = rnnrs.DropoutWrapper(inner, output_keep_prob=0.5)
    assert convert.to_torch(wrapped).keys() == convert.to_torch(inner).keys()


@pytest.mark.parametrize(
    "target,cell,match",
    [
        ("torch", lambda: rnnrs.GRUCell(3), "TF1-form GRUCell"),
        ("torch", lambda: rnnrs.LSTMCell(3, use_peepholes=True), "peepholes"),
        ("keras", lambda: rnnrs.LSTMCell(3, use_peepholes=True), "peepholes"),
        ("torch", lambda: rnnrs.LSTMCell(3, cell_clip=2.0), "cell_clip"),
        ("torch", lambda: rnnrs.LSTMCell(3, num_proj=2, proj_clip=1.0), "proj_clip"),
        ("keras", lambda: rnnrs.LSTMCell(3, num_proj=2), "num_proj"),
        ("torch", lambda: rnnrs.BasicRNNCell(3, activation="sigmoid"), "activation"),
        ("torch", lambda: rnnrs.BasicLSTMCell(3, activation="relu"), "activation"),
        ("keras", lambda: rnnrs.MultiRNNCell([rnnrs.BasicRNNCell(3)]), "MultiRNNCell"),
        ("torch", lambda: rnnrs.ResidualWrapper(rnnrs.BasicRNNCell(2)), "ResidualWrapper"),
    ],
)
def test_what_a_target_cannot_represent_is_refused(target, cell, match):
    c = cell()
    c.build(2)
    with pytest.raises(ValueError, match=match):
        convert.to_torch(c) if target == "torch" else convert.to_keras(c)


def test_bad_inputs_to_from_functions():
    cell = rnnrs.BasicRNNCell(3)
    with pytest.raises(ValueError, match="weight_ih_l0"):
        convert.from_torch(cell, {})
    with pytest.raises(ValueError, match=r"expected layers _l0"):
        convert.from_torch(cell, {"weight_ih_l7": np.zeros((3, 2))})
    with pytest.raises(TypeError, match="state_dict"):
        convert.from_torch(cell, [np.zeros(3)])
    with pytest.raises(ValueError, match="weights"):
        convert.from_keras(cell, [np.zeros((2, 3))])
    with pytest.raises(TypeError, match="cell"):
        convert.to_torch("not a cell")
    gru = rnnrs.GRUCell(2, reset_after=True)
    with pytest.raises(ValueError, match=r"\(2, 6\)"):
        convert.from_keras(gru, [np.zeros((1, 6)), np.zeros((2, 6)), np.zeros(6)])
    lstm = rnnrs.LSTMCell(2, num_proj=1)
    sd = convert.to_torch(built(rnnrs.LSTMCell(2, dtype=F64)))
    with pytest.raises(ValueError, match="weight_hr_l0"):
        convert.from_torch(lstm, sd)
    with pytest.raises(ValueError, match="unbuilt"):
        convert.to_torch(rnnrs.BasicRNNCell(3))


# ---- against PyTorch itself, when it is installed ----------------------------


@pytest.mark.parametrize("name", sorted(TORCH_CELLS))
def test_pytorch_runs_the_converted_weights_identically(name):
    torch = pytest.importorskip("torch")
    make, kind = TORCH_CELLS[name]
    cell = built(make())
    sd = convert.to_torch(cell)
    hidden = sd["weight_hh_l0"].shape[1] if kind != "lstm" else sd["weight_ih_l0"].shape[0] // 4
    if kind == "rnn":
        module = torch.nn.RNN(I, hidden, batch_first=True, nonlinearity=cell.activation)
    elif kind == "lstm":
        proj = sd["weight_hr_l0"].shape[0] if "weight_hr_l0" in sd else 0
        module = torch.nn.LSTM(I, hidden, batch_first=True, proj_size=proj)
    else:
        module = torch.nn.GRU(I, hidden, batch_first=True)
    module = module.double()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    x = inputs()
    with torch.no_grad():
        expected = module(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(rnnrs_outputs(cell, x), expected, rtol=1e-10, atol=1e-12)
    # and back: PyTorch's tensors load into a fresh cell
    fresh = make()
    convert.from_torch(fresh, module.state_dict())
    np.testing.assert_allclose(rnnrs_outputs(fresh, x), expected, rtol=1e-10, atol=1e-12)
