"""Functional models without merge layers: ``rnnrs.Input``, layers called on
symbolic tensors, ``rnnrs.Model(inputs, outputs)``.

Pinned here: a chain equals the ``Sequential`` of the same layers (outputs,
gradients, training); a shared layer has one set of weights whose gradient
is the sum over its uses; several inputs (list or dict by name, lengths per
input) and outputs; names made unique in graph order; every construction
error; compile / fit / evaluate / predict with several outputs and per-step
masking; save / load round trips bitwise. Gradients are checked in float64
against central finite differences of ``sum(R_i * output_i)``
(``functional_reference``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnnrs
from functional_reference import (
    as_list,
    assert_same_weights,
    assert_training_continues_identically,
    check_model_gradients,
)
from helpers import ragged_lengths, raises_naming, seeds

F64 = np.float64


def cell(kind, units, seed, dtype=F64):
    return {
        "rnn": lambda: rnnrs.BasicRNNCell(units, dtype=dtype, seed=seed),
        "lstm": lambda: rnnrs.BasicLSTMCell(units, dtype=dtype, seed=seed),
        "gru": lambda: rnnrs.GRUCell(units, dtype=dtype, seed=seed),
    }[kind]()


def close(got, want, what=""):
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13, err_msg=what)


# -- a chain is a Sequential ----------------------------------------------------


def make_stack(spec, seed):
    """Fresh layers for ``spec``: ("dense", units, activation) or (cell kind, units, return_sequences)."""
    layers = []
    for i, (kind, units, extra) in enumerate(spec):
        if kind == "dense":
            layers.append(rnnrs.Dense(units, activation=extra, dtype=F64, seed=seed + i))
        else:
            layers.append(rnnrs.RNN(cell(kind, units, seed + i), return_sequences=extra))
    return layers


stack_specs = st.lists(
    st.tuples(st.sampled_from(["dense", "rnn", "lstm", "gru"]), st.integers(1, 3), st.booleans()),
    min_size=1,
    max_size=3,
).map(
    # Dense: a smooth activation (finite differences); RNNs before the last keep the time axis.
    lambda spec: [
        (k, u, ("tanh" if r else None) if k == "dense" else (r or i < len(spec) - 1))
        for i, (k, u, r) in enumerate(spec)
    ]
)


@given(seed=seeds, spec=stack_specs, data=st.data())
def test_random_chain_equals_sequential(seed, spec, data):
    """Model(Input, layers applied in turn) == Sequential(the same layers with the
    same weights): outputs, backward (weights and inputs), and the model's
    gradients equal finite differences."""
    rng = np.random.default_rng(seed)
    B, T, F = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    lengths = np.array(data.draw(ragged_lengths(B, T)), dtype=np.int64)
    x = rng.normal(size=(B, T, F))
    inp = rnnrs.Input((None, F), dtype="float64")
    t = inp
    for layer in make_stack(spec, seed % 1000):
        t = layer(t)
    model = rnnrs.Model(inp, t)
    seq = rnnrs.Sequential(make_stack(spec, seed % 1000 + 500))
    seq.build(F)
    assert [layer.name for layer in seq.layers] == [layer.name for layer in model.layers]
    assert sorted(seq.get_weights()) == sorted(model.get_weights())
    seq.set_weights(model.get_weights())
    out, backprop = model(x, sequence_length=lengths, return_backprop=True)
    want, want_backprop = seq(x, sequence_length=lengths, return_backprop=True)
    close(out, want, "outputs")
    r = rng.normal(size=out.shape)
    got, ref = backprop(r), want_backprop(r)
    close(got.inputs, ref.inputs, "d_inputs")
    for k, v in ref.weights.items():
        close(got.weights[k], v, k)
    check_model_gradients(model, [x], lengths, rng, per_array=6)


def test_sequential_is_a_model():
    assert isinstance(rnnrs.Sequential([rnnrs.Dense(2)]), rnnrs.Model)
    assert isinstance(rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(3), 2), rnnrs.Model)


def test_chain_trains_exactly_like_sequential():
    """Two epochs of SGD without shuffling give the Sequential's weights and logs."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 5, 2))
    y = rng.normal(size=(7, 5, 2))
    lengths = np.array([5, 0, 3, 1, 5, 2, 4])
    spec = [("gru", 3, True), ("dense", 2, "tanh")]
    inp = rnnrs.Input((None, 2), dtype="float64")
    a, b = make_stack(spec, 1)
    model = rnnrs.Model(inp, b(a(inp)))
    seq = rnnrs.Sequential(make_stack(spec, 9))
    seq.build(2)
    seq.set_weights(model.get_weights())
    logs = []
    for m in (model, seq):
        m.compile(rnnrs.SGD(0.3), "mse")
        h = m.fit(x, y, batch_size=3, epochs=2, shuffle=False, sequence_length=lengths, verbose=0)
        logs.append(h.history["loss"])
    np.testing.assert_allclose(logs[0], logs[1], rtol=1e-12)
    for k, v in seq.get_weights().items():
        close(model.get_weights()[k], v, k)


# -- shared layers ----------------------------------------------------------------


def test_shared_dense_on_two_inputs_sums_its_gradients():
    """One Dense called on two inputs: listed once, weights once, gradient = the
    sum of the gradients of its two calls (each input gets its own)."""
    rng = np.random.default_rng(0)
    a = rnnrs.Input((None, 3), dtype="float64", name="a")
    b = rnnrs.Input((None, 3), dtype="float64", name="b")
    d = rnnrs.Dense(2, activation="tanh", seed=0)
    model = rnnrs.Model([a, b], [d(a), d(b)])
    assert len(model.layers) == 1 and model.layers[0] is d
    assert sorted(model.get_weights()) == ["dense/bias", "dense/kernel"]
    assert model.count_params() == 3 * 2 + 2
    xa, xb = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 4, 3))
    (ya, yb), backprop = model([xa, xb], return_backprop=True)
    ra, rb = rng.normal(size=ya.shape), rng.normal(size=yb.shape)
    g = backprop([ra, rb])
    ea, bpa = d(xa, return_backprop=True)
    eb, bpb = d(xb, return_backprop=True)
    close(ya, ea)
    close(yb, eb)
    ga, gb = bpa(ra), bpb(rb)
    for k in ("kernel", "bias"):
        close(g.weights[f"dense/{k}"], ga.weights[k] + gb.weights[k], k)
    assert isinstance(g.inputs, list) and len(g.inputs) == 2
    close(g.inputs[0], ga.inputs)
    close(g.inputs[1], gb.inputs)
    check_model_gradients(model, [xa, xb], None, rng)


def test_shared_dense_in_series():
    """d(d(x)): the kernel's gradient collects both calls (NumPy by hand)."""
    rng = np.random.default_rng(1)
    inp = rnnrs.Input((None, 3), dtype="float64")
    d = rnnrs.Dense(3, activation="tanh", seed=2)
    model = rnnrs.Model(inp, d(d(inp)))
    assert model.layers == [d]
    x = rng.normal(size=(2, 4, 3))
    w = model.get_weights()
    K, c = w["dense/kernel"], w["dense/bias"]
    h1 = np.tanh(x @ K + c)
    h2 = np.tanh(h1 @ K + c)
    y, backprop = model(x, return_backprop=True)
    close(y, h2)
    r = rng.normal(size=y.shape)
    g = backprop(r)
    dz2 = r * (1 - h2**2)
    dz1 = (dz2 @ K.T) * (1 - h1**2)
    close(g.weights["dense/kernel"], np.einsum("bti,btu->iu", h1, dz2) + np.einsum("bti,btu->iu", x, dz1))
    close(g.weights["dense/bias"], dz2.sum((0, 1)) + dz1.sum((0, 1)))
    close(g.inputs, dz1 @ K.T)
    check_model_gradients(model, [x], None, rng)


def test_shared_rnn_on_two_branches_with_lengths():
    """One LSTM layer on a float input and on an embedding of ids (same shape)."""
    rng = np.random.default_rng(2)
    sig = rnnrs.Input((None, 3), dtype="float64", name="sig")
    ids = rnnrs.Input((None,), dtype="int64", name="ids")
    emb = rnnrs.Embedding(5, 3, dtype=F64, seed=1)
    shared = rnnrs.RNN(cell("lstm", 2, 3), return_sequences=True)
    head = rnnrs.Dense(2, activation="tanh", seed=4)
    out1 = head(shared(sig))
    out2 = rnnrs.RNN(cell("gru", 2, 5))(shared(emb(ids)))
    model = rnnrs.Model([sig, ids], [out1, out2])
    assert [layer.name for layer in model.layers].count("rnn") == 1
    assert len(model.layers) == 4
    B, T = 4, 5
    x, tok = rng.normal(size=(B, T, 3)), rng.integers(0, 5, size=(B, T))
    lengths = np.array([5, 0, 2, 1])
    outs = model([x, tok], sequence_length=[lengths, lengths])
    assert isinstance(outs, list) and len(outs) == 2
    close(outs[0], head(shared(x, sequence_length=lengths)))
    second = model.layers[[layer.name for layer in model.layers].index("rnn_1")]
    e = emb(tok, sequence_length=lengths)
    close(outs[1], second(shared(e, sequence_length=lengths), sequence_length=lengths))
    g = check_model_gradients(model, [x, tok], [lengths, lengths], rng)
    assert g.inputs[1] is None  # integer ids have no gradient


# -- several outputs, inputs by name, lengths per input ------------------------------


def test_backprop_reads_none_as_zeros_and_summary_counts_shared_weights_once():
    rng = np.random.default_rng(9)
    model, _ = two_input_graph()
    x, tok = rng.normal(size=(2, 3, 3)), rng.integers(0, 6, size=(2, 3))
    (a, b), backprop = model([x, tok], return_backprop=True)
    r = rng.normal(size=a.shape)
    got, want = backprop([r, None]), backprop([r, np.zeros_like(b)])
    for k, v in want.weights.items():
        np.testing.assert_array_equal(got.weights[k], v, err_msg=k)
    np.testing.assert_array_equal(got.inputs[0], want.inputs[0])
    shared = heads_model()
    text = shared.summary(print_fn=lambda line: None)
    assert text.count("dense (Dense)") == 1
    assert f"Total params: {shared.count_params()}" in text
    assert shared.count_params() == sum(v.size for v in shared.get_weights().values())


def test_two_outputs_from_one_trunk():
    rng = np.random.default_rng(4)
    inp = rnnrs.Input((None, 2), dtype="float64")
    trunk = rnnrs.RNN(cell("gru", 3, 0), return_sequences=True)
    per_step = rnnrs.Dense(2, seed=1)
    final = rnnrs.RNN(cell("rnn", 2, 2))
    h = trunk(inp)
    model = rnnrs.Model(inp, [per_step(h), final(h)])
    x, lengths = rng.normal(size=(3, 4, 2)), np.array([4, 0, 2])
    a, b = model(x, sequence_length=lengths)
    eh = trunk(x, sequence_length=lengths)
    close(a, per_step(eh, sequence_length=lengths))
    close(b, final(eh, sequence_length=lengths))
    assert not b[1].any()  # a row of length 0 reads zeros
    check_model_gradients(model, [x], lengths, rng)


def two_input_graph(dtype="float64", seed=0):
    sig = rnnrs.Input((None, 3), dtype=dtype, name="signal")
    tok = rnnrs.Input((None,), dtype="int64", name="tokens")
    rnn = rnnrs.RNN(cell("rnn", 2, seed, dtype), return_sequences=True)
    head = rnnrs.Dense(2, seed=seed + 1)
    model = rnnrs.Model([sig, tok], [rnn(sig), head(rnnrs.Embedding(6, 3, dtype=dtype, seed=seed + 2)(tok))])
    return model, rnn


def test_inputs_by_name_and_lengths_per_input():
    rng = np.random.default_rng(5)
    model, rnn = two_input_graph()
    x, tok = rng.normal(size=(3, 4, 3)), rng.integers(0, 6, size=(3, 4))
    lengths = np.array([4, 1, 0])
    by_list = model([x, tok], sequence_length=[lengths, None])
    by_name = model({"tokens": tok, "signal": x}, sequence_length=[lengths, None])
    for got, want in zip(by_name, by_list):
        np.testing.assert_array_equal(got, want)
    close(by_list[0], rnn(x, sequence_length=lengths))
    close(model([x, tok], sequence_length=[None, None])[0], rnn(x))
    close(model([x, tok])[0], rnn(x))
    with pytest.raises(ValueError, match="^x"):
        model({"signal": x})  # tokens missing
    with pytest.raises(ValueError, match="^x"):
        model({"signal": x, "tokens": tok, "other": x})
    with pytest.raises(ValueError, match="^x"):
        model([x])  # one array for two inputs
    with pytest.raises(ValueError, match="^x"):
        model([x, tok, tok])


def test_call_errors_name_the_argument():
    rng = np.random.default_rng(6)
    model, _ = two_input_graph()
    x, tok = rng.normal(size=(3, 4, 3)), rng.integers(0, 6, size=(3, 4))
    with raises_naming(ValueError, "^x"):
        model([rng.normal(size=(3, 4, 2)), tok])  # 2 features where the input has 3
    with raises_naming(ValueError, "^(x|sequence_length)"):
        model([x, tok[:2]])  # batch sizes differ
    with raises_naming(ValueError, "^x"):
        model([x, np.full((3, 4), 6)])  # id out of range for the Embedding
    with raises_naming(ValueError, "^sequence_length"):
        model([x, tok], sequence_length=[np.array([5, 1, 1]), None])  # longer than T
    with raises_naming(ValueError, "^sequence_length"):
        model([x, tok], sequence_length=[np.array([4, 1]), None])  # one per row
    with raises_naming(ValueError, "^sequence_length"):
        model([x, tok], sequence_length=[None, None, None])  # one per input
    outs, backprop = model([x, tok], return_backprop=True)
    with raises_naming(ValueError, "^d_outputs"):
        backprop([np.zeros((3, 4, 2)), np.zeros((3, 4, 3))])  # the first output is [3, 4, 2]: swap
    with pytest.raises((ValueError, TypeError), match="^d_outputs"):
        backprop(np.zeros((3, 4, 2)))  # two outputs need a list


def test_layer_names_made_unique_in_graph_order():
    inp = rnnrs.Input((None, 3))
    layers = [
        rnnrs.Dense(3),
        rnnrs.RNN(rnnrs.BasicRNNCell(3), return_sequences=True),
        rnnrs.Dense(3),
        rnnrs.Dense(2, name="head"),
        rnnrs.Dense(2, name="head"),
        rnnrs.RNN(rnnrs.GRUCell(2)),
        rnnrs.Dense(1),
    ]
    t = inp
    for layer in layers:
        t = layer(t)
    model = rnnrs.Model(inp, t)
    names = ["dense", "rnn", "dense_1", "head", "head_1", "rnn_1", "dense_2"]
    assert [layer.name for layer in model.layers] == names
    assert all(a is b for a, b in zip(model.layers, layers))
    prefixes = {k.split("/")[0] for k in model.get_weights()}
    assert prefixes == set(names)


def test_a_second_model_on_the_same_layers_keeps_the_first_models_weight_names():
    """Layers shared between two models (an encoder and a full model, say):
    building the second must not rename layers under the first, whose
    get_weights would then lose entries to colliding names."""
    x = rnnrs.Input((None, 3))
    a, b = rnnrs.Dense(3, seed=0), rnnrs.Dense(3, seed=1)
    first = rnnrs.Model(x, b(a(x)))
    keys = sorted(first.get_weights())
    assert keys == ["dense/bias", "dense/kernel", "dense_1/bias", "dense_1/kernel"]
    y = rnnrs.Input((None, 3))
    c = rnnrs.Dense(3, seed=2)
    second = rnnrs.Model(y, a(c(y)))  # c comes first in this graph and is also called "dense"
    assert len(second.get_weights()) == 4
    assert sorted(first.get_weights()) == keys
    for layer, key in ((a, "dense/kernel"), (b, "dense_1/kernel")):
        np.testing.assert_array_equal(first.get_weights()[key], layer.get_weights()["kernel"])


# -- construction errors ------------------------------------------------------------


def test_output_on_an_unlisted_input_is_refused():
    a = rnnrs.Input((None, 3), name="a")
    b = rnnrs.Input((None, 3), name="b")
    ya, yb = rnnrs.Dense(2)(a), rnnrs.Dense(2)(b)
    with raises_naming(ValueError, "^outputs:"):
        rnnrs.Model(a, [ya, yb])
    with raises_naming(ValueError, "^outputs:"):
        rnnrs.Model([a], yb)


def test_non_symbolic_entries_are_refused():
    a = rnnrs.Input((None, 3))
    y = rnnrs.Dense(2)(a)
    for inputs, outputs in [
        (np.zeros((1, 2, 3)), y),
        ([a, "b"], y),
        (a, np.zeros((1, 2, 2))),
        (a, [y, None]),
        (a, rnnrs.Dense(2)),
        (None, y),
    ]:
        with pytest.raises(TypeError):
            rnnrs.Model(inputs, outputs)


def test_the_same_input_twice_is_refused():
    a = rnnrs.Input((None, 3))
    y = rnnrs.Dense(2)(a)
    with raises_naming(ValueError, "^inputs:"):
        rnnrs.Model([a, a], y)


def test_shapes_that_do_not_connect_name_the_layer():
    ids = rnnrs.Input((None,), dtype="int64")
    with pytest.raises((TypeError, ValueError)) as info:
        rnnrs.Dense(4, name="proj")(ids)
    assert "proj" in str(info.value) and "(None, None) int64" in str(info.value)
    vec = rnnrs.Input((3,))
    with pytest.raises(ValueError) as info:
        rnnrs.RNN(rnnrs.BasicRNNCell(2), name="encoder")(vec)
    assert "encoder" in str(info.value) and "(None, 3)" in str(info.value)
    built = rnnrs.Dense(2, name="fixed")
    built(rnnrs.Input((None, 3)))
    with pytest.raises(ValueError) as info:
        built(rnnrs.Input((None, 4)))  # built for 3 features
    assert "fixed" in str(info.value) and "(None, None, 4)" in str(info.value)


# -- compile / fit / evaluate / predict with several outputs ------------------------


def heads_model(seed=0):
    """Two inputs, two outputs: per-step class logits from the signal, a
    summary vector from the tokens; one Dense shared by both branches."""
    sig = rnnrs.Input((None, 3), name="signal")
    tok = rnnrs.Input((None,), dtype="int64", name="tokens")
    shared = rnnrs.Dense(4, activation="tanh", seed=seed)
    h = rnnrs.RNN(rnnrs.GRUCell(4, seed=seed + 1), return_sequences=True, name="enc")(sig)
    e = rnnrs.Embedding(7, 4, seed=seed + 2)(tok)
    steps = rnnrs.Dense(3, name="steps", seed=seed + 3)(shared(h))
    summary = rnnrs.RNN(rnnrs.BasicRNNCell(2, seed=seed + 4), name="summary")(shared(e))
    return rnnrs.Model([sig, tok], [steps, summary], name="two_heads")


def heads_data(n=24, T=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, T, 3)).astype(np.float32)
    tok = rng.integers(0, 7, size=(n, T))
    lengths = rng.integers(0, T + 1, size=n)
    lengths[:3] = [0, T, 1]
    y_steps = (x[..., 0] > 0).astype(np.int64) + (x[..., 1] > 1)  # classes 0..2
    valid = np.arange(T)[None, :] < lengths[:, None]
    y_sum = np.stack([(tok * valid).sum(1) / T / 7, (valid * (tok % 2)).sum(1) / T], axis=1).astype(np.float32)
    return [x, tok], [y_steps, y_sum], [lengths, lengths]


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_evaluate_logs_weighted_losses_and_metrics_per_output():
    """logs: loss = sum of loss_weights * per-output losses; ``<output>_loss``;
    each metric as ``<output>_<metric>``; per-step losses count only t < length
    (garbage targets past the lengths change nothing)."""
    model = heads_model()
    xs, ys, ls = heads_data()
    model.compile("adam", ["sparse_softmax_cross_entropy", "mse"], metrics=None, loss_weights=[1.0, 0.5])
    logs = model.evaluate(xs, ys, sequence_length=ls, batch_size=100)
    assert set(logs) == {"loss", "steps_loss", "summary_loss"}
    for batch_size in (100, 7, 1):  # whatever the batches, the logged loss is the weighted sum of the logged ones
        again = model.evaluate(xs, ys, sequence_length=ls, batch_size=batch_size)
        np.testing.assert_allclose(
            again["loss"], again["steps_loss"] + 0.5 * again["summary_loss"], rtol=1e-6, err_msg=f"{batch_size}"
        )
    steps, summary = model(xs, sequence_length=ls)
    lengths = ls[0]
    valid = np.arange(steps.shape[1])[None, :] < lengths[:, None]
    p = softmax(steps.astype(np.float64))
    ce = -np.log(np.take_along_axis(p, ys[0][..., None], -1)[..., 0])
    np.testing.assert_allclose(logs["steps_loss"], ce[valid].mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["summary_loss"], np.mean((summary - ys[1]) ** 2), rtol=1e-5)
    garbage = ys[0].copy()
    garbage[~valid] = 2 - garbage[~valid]
    again = model.evaluate(xs, [garbage, ys[1]], sequence_length=ls, batch_size=7)
    for k in logs:
        np.testing.assert_allclose(again[k], logs[k], rtol=1e-5, err_msg=k)


def test_metrics_are_logged_per_output():
    sig = rnnrs.Input((None, 3), name="signal")
    h = rnnrs.RNN(rnnrs.GRUCell(4, seed=0), return_sequences=True)(sig)
    a = rnnrs.Dense(3, name="first", seed=1)(h)
    b = rnnrs.Dense(3, name="second", seed=2)(h)
    model = rnnrs.Model(sig, [a, b])
    model.compile("adam", "sparse_softmax_cross_entropy", metrics=["accuracy"])
    xs, ys, ls = heads_data()
    logs = model.evaluate(xs[0], [ys[0], 2 - ys[0]], sequence_length=ls[0])
    assert set(logs) == {"loss", "first_loss", "second_loss", "first_accuracy", "second_accuracy"}
    pa, pb = model(xs[0], sequence_length=ls[0])
    valid = np.arange(pa.shape[1])[None, :] < ls[0][:, None]
    np.testing.assert_allclose(logs["first_accuracy"], (pa.argmax(-1) == ys[0])[valid].mean(), rtol=1e-6)
    np.testing.assert_allclose(logs["second_accuracy"], (pb.argmax(-1) == 2 - ys[0])[valid].mean(), rtol=1e-6)
    np.testing.assert_allclose(logs["loss"], logs["first_loss"] + logs["second_loss"], rtol=1e-6)


def test_predict_with_several_outputs():
    """A list, one per output: softmax probabilities for the cross-entropy head
    (zero past each length), raw outputs for the mse head; batches joined."""
    model = heads_model()
    xs, ys, ls = heads_data(n=11)
    model.compile("adam", ["sparse_softmax_cross_entropy", "mse"])
    got = model.predict(xs, sequence_length=ls, batch_size=4)
    assert isinstance(got, list) and len(got) == 2
    steps, summary = model(xs, sequence_length=ls)
    valid = np.arange(steps.shape[1])[None, :] < ls[0][:, None]
    np.testing.assert_allclose(got[0], softmax(steps.astype(np.float64)) * valid[..., None], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got[1], summary, rtol=1e-6, atol=1e-7)
    assert got[0].shape == (11, 5, 3) and got[1].shape == (11, 2)


def test_fit_on_two_inputs_lowers_the_loss():
    model = heads_model(seed=3)
    xs, ys, ls = heads_data(n=64, seed=1)
    model.compile(rnnrs.Adam(0.02), ["sparse_softmax_cross_entropy", "mse"])
    first = model.evaluate(xs, ys, sequence_length=ls)
    history = model.fit(xs, ys, sequence_length=ls, batch_size=16, epochs=12, seed=0, verbose=0)
    assert {"loss", "steps_loss", "summary_loss"} <= set(history.history)
    last = model.evaluate(xs, ys, sequence_length=ls)
    assert last["loss"] < 0.6 * first["loss"], (first, last)
    assert last["steps_loss"] < first["steps_loss"] and last["summary_loss"] < first["summary_loss"]
    logs = history.history
    for epoch in range(12):  # each epoch's loss is the sum of its logged output losses
        np.testing.assert_allclose(
            logs["loss"][epoch], logs["steps_loss"][epoch] + logs["summary_loss"][epoch], rtol=1e-6, err_msg=f"{epoch}"
        )


def test_validation_data_with_several_inputs_and_outputs():
    """validation_data=(inputs list, targets list, lengths list): val_ keys per
    output, equal to evaluate on the same data after the epoch; History
    accumulates across fit calls."""
    model = heads_model(seed=1)
    xs, ys, ls = heads_data(n=20)
    vx, vy, vl = heads_data(n=9, seed=5)
    model.compile(rnnrs.Adam(0.01), ["sparse_softmax_cross_entropy", "mse"])
    model.fit(xs, ys, sequence_length=ls, batch_size=5, epochs=1, seed=0, verbose=0, validation_data=(vx, vy, vl))
    history = model.fit(
        xs, ys, sequence_length=ls, batch_size=5, epochs=1, seed=1, verbose=0, validation_data=(vx, vy, vl)
    )
    assert set(history.history) == {
        "loss",
        "steps_loss",
        "summary_loss",
        "val_loss",
        "val_steps_loss",
        "val_summary_loss",
    }
    assert all(len(v) == 2 for v in history.history.values())
    now = model.evaluate(vx, vy, sequence_length=vl)
    for k, v in now.items():
        np.testing.assert_allclose(history.history[f"val_{k}"][-1], v, rtol=1e-6, err_msg=k)


def test_loss_and_targets_errors():
    model = heads_model()
    xs, ys, ls = heads_data(n=6)
    with raises_naming(ValueError, "^loss"):
        model.compile("adam", ["mse"])  # two outputs, one loss in a list
    with raises_naming(ValueError, "^loss_weights"):
        model.compile("adam", "mse", loss_weights=[1.0])
    model.compile("adam", ["sparse_softmax_cross_entropy", "mse"])
    with raises_naming(ValueError, "^y"):
        model.fit(xs, ys[0], sequence_length=ls, verbose=0)  # one target for two outputs
    with raises_naming(ValueError, "^y"):
        model.evaluate(xs, [ys[0], ys[1][:, :1]], sequence_length=ls)


# -- save / load ------------------------------------------------------------------------


def test_save_load_round_trip_is_bitwise(tmp_path):
    """A compiled, trained two-input two-output model with a shared layer: the
    loaded model's outputs, predictions, weights and optimizer state are equal,
    and training both for another epoch keeps them equal. No pickle."""
    model = heads_model()
    xs, ys, ls = heads_data(n=20)
    model.compile(rnnrs.Adam(0.01), ["sparse_softmax_cross_entropy", "mse"], loss_weights=[1.0, 0.25])
    model.fit(xs, ys, sequence_length=ls, batch_size=6, epochs=1, seed=0, verbose=0)
    path = tmp_path / "heads.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        arrays = {k: data[k] for k in data.files}
    config = json.loads(str(arrays["__rnnrs_model__"]))
    assert "two_heads" in json.dumps(config)
    loaded = rnnrs.load_model(path)
    assert type(loaded) is rnnrs.Model and loaded.name == "two_heads"
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert len(loaded.layers) == len(model.layers)  # the shared Dense once
    for a, b in zip(loaded(xs, sequence_length=ls), model(xs, sequence_length=ls)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(loaded.predict(xs, sequence_length=ls), model.predict(xs, sequence_length=ls)):
        np.testing.assert_array_equal(a, b)
    assert_same_weights(loaded, model)
    state, loaded_state = model.optimizer.get_state(), loaded.optimizer.get_state()
    assert sorted(state) == sorted(loaded_state)
    for k in state:
        np.testing.assert_array_equal(loaded_state[k], state[k], err_msg=k)
    assert loaded.evaluate(xs, ys, sequence_length=ls) == model.evaluate(xs, ys, sequence_length=ls)
    assert_training_continues_identically(loaded, model, xs, ys, sequence_length=ls, batch_size=6)


def test_saved_graph_rebuilds_shared_layers_and_input_names(tmp_path):
    """After loading, inputs are still addressed by name and a shared layer is
    still one layer (training it through both uses changes one set of weights)."""
    rng = np.random.default_rng(7)
    a = rnnrs.Input((None, 3), dtype="float64", name="left")
    b = rnnrs.Input((None, 3), dtype="float64", name="right")
    d = rnnrs.Dense(2, activation="tanh", seed=0)
    model = rnnrs.Model([a, b], [d(a), d(b)])
    model.save(tmp_path / "shared.npz")
    loaded = rnnrs.load_model(tmp_path / "shared.npz")
    xa, xb = rng.normal(size=(2, 3, 3)), rng.normal(size=(2, 3, 3))
    for got, want in zip(loaded({"right": xb, "left": xa}), model([xa, xb])):
        np.testing.assert_array_equal(got, want)
    assert len(loaded.layers) == 1 and sorted(loaded.get_weights()) == ["dense/bias", "dense/kernel"]
    check_model_gradients(loaded, [xa, xb], None, rng)


def test_symbolic_tensors_hold_no_values():
    """Symbolic tensors hold no values: feeding one to NumPy is a TypeError."""
    a = rnnrs.Input((None, 3))
    with pytest.raises(TypeError, match="inputs"):
        np.asarray(rnnrs.Dense(2)(a)) + 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_outputs_keep_the_model_dtype(dtype):
    rng = np.random.default_rng(8)
    model, _ = two_input_graph(dtype=dtype)
    outs = model([rng.normal(size=(2, 3, 3)), rng.integers(0, 6, size=(2, 3))])
    assert [o.dtype for o in as_list(outs)] == [np.dtype(dtype)] * 2


def test_stateful_layer_in_a_functional_model():
    """The one-row pass that finds the outputs' shapes neither fails on nor
    overwrites a stateful layer's kept state (it used to: fit raised on its
    first batch, predict left a one-row state behind)."""
    i = rnnrs.Input((None, 3))
    rnn = rnnrs.RNN(rnnrs.GRUCell(4, seed=0), return_sequences=True, stateful=True)
    model = rnnrs.Model(i, rnnrs.Dense(3, seed=1)(rnn(i)))
    model.compile("adam", "sparse_softmax_cross_entropy")
    x = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float32)
    model.fit(x, np.zeros((4, 5), np.int64), batch_size=4, shuffle=False, verbose=0)
    assert rnn.states.shape == (4, 4)
    rnn.reset_states()
    model.predict(x)
    after_predict = rnn.states
    rnn.reset_states()
    model(x)
    np.testing.assert_array_equal(after_predict, rnn.states)


# -- found by review ------------------------------------------------------------------


def _stateful_model(seed=1, lr=0.01):
    i = rnnrs.Input((None, 2), dtype="float64")
    h = rnnrs.RNN(rnnrs.GRUCell(3, dtype=np.float64, seed=seed), return_sequences=True, stateful=True)(i)
    model = rnnrs.Model(i, rnnrs.Dense(1, seed=2)(h))
    model.compile(rnnrs.SGD(lr), "mse")
    return model


def test_bptt_keeps_per_row_sample_weights_in_every_chunk():
    """A [B] sample_weight weighs every chunk of truncated BPTT (it was dropped: zeros trained as
    ones). With a negligible step, chunks carrying the state give the whole sequence's loss."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 4, 1))
    for w in (np.zeros(3), np.array([0.0, 1.0, 5.0])):
        chunked = _stateful_model(lr=1e-12).fit(
            x, y, batch_size=3, shuffle=False, verbose=0, sample_weight=w, bptt_steps=2
        )
        whole = _stateful_model(lr=1e-12).fit(x, y, batch_size=3, shuffle=False, verbose=0, sample_weight=w)
        np.testing.assert_allclose(chunked.history["loss"], whole.history["loss"], rtol=1e-9, atol=1e-12)
    assert whole.history["loss"][0] > 0


def test_validation_of_a_stateful_model_runs_from_zero_states_and_keeps_trainings():
    """Validation batches of another size than the training batches (they failed after the first
    epoch: the kept state had the training batch's rows), and training's kept state survives."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 6, 2)), rng.normal(size=(10, 6, 1))
    model = _stateful_model()
    history = model.fit(x, y, batch_size=5, epochs=2, shuffle=False, verbose=0, validation_data=(x[:3], y[:3]))
    assert len(history.history["val_loss"]) == 2
    rnn = model.layers[0]
    assert rnn.states.shape == (5, 3)  # the last training batch's, not validation's
    fresh = _stateful_model()
    fresh.set_weights(model.get_weights())
    fresh.layers[0].reset_states()
    np.testing.assert_allclose(fresh.evaluate(x[:3], y[:3])["loss"], history.history["val_loss"][-1], rtol=1e-12)


def test_weights_held_by_two_layers_are_refused():
    """A layer and a wrapper of it, or one cell in two RNN layers, would train two copies of one set of
    weights (each got half the gradient); sharing is calling the same layer twice."""
    i = rnnrs.Input((None, 2))
    dense = rnnrs.Dense(2)
    with raises_naming(ValueError, "layers"):
        rnnrs.Model(i, rnnrs.Add()([rnnrs.TimeDistributed(dense)(i), dense(i)]))
    cell = rnnrs.GRUCell(3)
    a, b = rnnrs.RNN(cell, return_sequences=True), rnnrs.RNN(cell, return_sequences=True)
    with raises_naming(ValueError, "layers"):
        rnnrs.Model(i, rnnrs.Add()([a(i), b(i)]))
    with raises_naming(ValueError, "layers"):
        rnnrs.Sequential([rnnrs.RNN(cell, return_sequences=True), rnnrs.RNN(cell)])
    shared = rnnrs.RNN(rnnrs.GRUCell(3), return_sequences=True)
    assert len(rnnrs.Model(i, rnnrs.Add()([shared(i), shared(i)])).layers) == 2  # the way to share


def test_ids_reaching_a_wrapped_embedding_are_checked_before_training():
    t = rnnrs.Input((None, 3), dtype="int64")
    model = rnnrs.Model(t, rnnrs.TimeDistributed(rnnrs.Embedding(7, 2))(t))
    with raises_naming(ValueError, "x"):
        model(np.full((1, 2, 3), 7))


def test_training_and_return_backprop_on_symbolic_calls_are_refused():
    i = rnnrs.Input((None, 2))
    with raises_naming(ValueError, "training"):
        rnnrs.Dropout(0.5)(i, training=True)
    with raises_naming(ValueError, "return_backprop"):
        rnnrs.Dense(2)(i, return_backprop=True)


def test_evaluate_on_no_rows_reports_every_key():
    """Zero rows give every loss and metric key (0.0, as an all-padding batch does), not an empty dict."""
    i = rnnrs.Input((None, 2))
    h = rnnrs.RNN(rnnrs.GRUCell(3, seed=0))(i)
    model = rnnrs.Model(i, [rnnrs.Dense(2, name="a", seed=1)(h), rnnrs.Dense(1, name="b", seed=2)(h)])
    model.compile("adam", ["sparse_softmax_cross_entropy", "mse"], metrics=["accuracy"])
    logs = model.evaluate(np.zeros((0, 4, 2), np.float32), [np.zeros(0, np.int64), np.zeros((0, 1))])
    assert logs == {"loss": 0.0, "a_loss": 0.0, "b_loss": 0.0, "a_accuracy": 0.0}
