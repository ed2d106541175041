"""Functional models on random DAGs (merge layers): two inputs (a float
sequence and integer ids read by an Embedding), Dense / RNN (BasicRNN, LSTM,
GRU) / Concatenate / Add layers, at least one layer shared between two
tensors, one or two outputs, ragged lengths including 0.

Pinned: the model's forward equals replaying the same layer calls eagerly,
in order, each with its tensor's lengths; its backward (every weight, the
float input; None for the ids) equals central finite differences of
``sum(R_i * output_i)`` (float64).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import rnnrs
from functional_reference import as_list, check_model_gradients
from helpers import ragged_lengths, seeds

F64 = np.float64
Concatenate = rnnrs.layers.Concatenate
Add = rnnrs.layers.Add


class Tensor:
    """A symbolic tensor of the graph under construction and what the replay needs."""

    def __init__(self, sym, width, seq, deps):
        self.sym, self.width, self.seq, self.deps = sym, width, seq, frozenset(deps)


class DagBuilder:
    """Builds a random graph with hypothesis draws, recording every layer call
    so that :meth:`replay` can run the same calls eagerly."""

    def __init__(self, draw, seed):
        self.draw = draw
        self.seed = seed
        self.calls = []  # (layer, [input tensor indices], output tensor index)
        self.tensors = []

    def new_seed(self):
        self.seed += 1
        return self.seed

    def add(self, tensor):
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def call(self, layer, inputs, width, seq=True):
        syms = [self.tensors[i].sym for i in inputs]
        out = layer(syms if len(inputs) > 1 or isinstance(layer, (Concatenate, Add)) else syms[0])
        deps = frozenset().union(*(self.tensors[i].deps for i in inputs))
        index = self.add(Tensor(out, width, seq, deps))
        self.calls.append((layer, list(inputs), index))
        return index

    # -- layers ------------------------------------------------------------
    def dense(self):
        units = self.draw(st.integers(1, 3), label="dense units")
        activation = self.draw(st.sampled_from([None, "tanh", "sigmoid"]), label="dense activation")
        return rnnrs.Dense(units, activation=activation, seed=self.new_seed()), units

    def rnn(self, return_sequences=True):
        kind = self.draw(st.sampled_from(["rnn", "lstm", "gru"]), label="cell")
        units = self.draw(st.integers(1, 3), label="rnn units")
        make = {"rnn": rnnrs.BasicRNNCell, "lstm": rnnrs.BasicLSTMCell, "gru": rnnrs.GRUCell}[kind]
        cell = make(units, dtype=F64, seed=self.new_seed())
        return rnnrs.RNN(cell, return_sequences=return_sequences), units

    def unary(self):
        return self.dense() if self.draw(st.booleans(), label="dense or rnn") else self.rnn()

    def float_sequences(self):
        return [i for i, t in enumerate(self.tensors) if t.seq and t.sym.dtype.kind == "f"]

    def join(self, a, b):
        """Add when the widths match (and the draw says so), else Concatenate."""
        if self.tensors[a].width == self.tensors[b].width and self.draw(st.booleans(), label="add"):
            return self.call(Add(), [a, b], self.tensors[a].width)
        return self.call(Concatenate(), [a, b], self.tensors[a].width + self.tensors[b].width)


def build_dag(draw, F, V, seed):
    """Returns (model, builder, output tensor indices)."""
    g = DagBuilder(draw, seed)
    sig = g.add(Tensor(rnnrs.Input((None, F), dtype="float64", name="signal"), F, True, {"signal"}))
    ids = g.add(Tensor(rnnrs.Input((None,), dtype="int64", name="ids"), 0, True, {"ids"}))
    D = draw(st.integers(1, 3), label="embedding size")
    emb = g.call(rnnrs.Embedding(V, D, dtype=F64, seed=g.new_seed()), [ids], D)
    # The shared layer reads both branches (same shape: adapt the signal's width if needed).
    left = sig
    if F != D or draw(st.booleans(), label="adapt anyway"):
        left = g.call(rnnrs.Dense(D, activation="tanh", seed=g.new_seed()), [sig], D)
    shared, width = g.unary()
    pair = [left, emb] if draw(st.booleans(), label="signal first") else [emb, left]
    for i in pair:
        g.call(shared, [i], width)
    reusable = [(shared, D)]
    for _ in range(draw(st.integers(1, 4), label="further ops")):
        op = draw(st.sampled_from(["unary", "join", "reuse"]), label="op")
        seqs = g.float_sequences()
        if op == "unary":
            i = draw(st.sampled_from(seqs), label="input")
            layer, units = g.unary()
            g.call(layer, [i], units)
            reusable.append((layer, g.tensors[i].width))
        elif op == "join":
            a = draw(st.sampled_from(seqs), label="left")
            b = draw(st.sampled_from(seqs), label="right")
            g.join(a, b)
        else:
            layer, in_width = draw(st.sampled_from(reusable), label="reused layer")
            fits = [i for i in seqs if g.tensors[i].width == in_width]
            i = draw(st.sampled_from(fits), label="reuse input")
            g.call(layer, [i], layer.output_size())
    # The first output joins every tensor nothing reads yet, so that every call
    # (both uses of the shared layer included) reaches an output.
    read = {i for _, inputs, _ in g.calls for i in inputs}
    leaves = [i for i in g.float_sequences() if i not in read]
    main = leaves[-1]
    for i in reversed(leaves[:-1]):
        main = g.join(main, i)
    assert g.tensors[main].deps == {"signal", "ids"}
    outputs = [main]
    if draw(st.booleans(), label="two outputs"):
        others = [i for i in range(emb, len(g.tensors)) if i != main]
        outputs.append(draw(st.sampled_from(others), label="second output"))
    for k, i in enumerate(outputs):
        if draw(st.booleans(), label=f"output {k} read by a final RNN"):
            layer, units = g.rnn(return_sequences=False)
            outputs[k] = g.call(layer, [i], units, seq=False)
    syms = [g.tensors[i].sym for i in outputs]
    model = rnnrs.Model([g.tensors[sig].sym, g.tensors[ids].sym], syms if len(syms) > 1 else syms[0])
    return model, g, outputs


def replay(g, x, ids, lengths):
    """The obviously correct forward: every recorded layer call, in order,
    eagerly on arrays, each sequence with the inputs' lengths."""
    values = {0: x, 1: ids}
    for layer, inputs, out in g.calls:
        args = [values[i] for i in inputs]
        arg = args if isinstance(layer, (Concatenate, Add)) else args[0]
        values[out] = layer(arg, sequence_length=lengths)
    return values


@given(seed=seeds, data=st.data())
def test_random_dag_forward_replays_and_backward_matches_finite_differences(seed, data):
    draw = data.draw
    B = draw(st.integers(2, 3), label="B")
    T = draw(st.integers(1, 4), label="T")
    F = draw(st.integers(1, 3), label="F")
    V = draw(st.integers(2, 5), label="V")
    lengths = draw(ragged_lengths(B, T), label="lengths")
    lengths[draw(st.integers(0, B - 1), label="empty row")] = 0
    lengths = np.array(lengths, dtype=np.int64)
    model, g, outputs = build_dag(draw, F, V, seed % 10_000)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, F))
    ids = rng.integers(0, V, size=(B, T))

    # Structure: every layer once, shared ones included; names unique.
    distinct = []
    for layer, _, _ in g.calls:
        if not any(layer is d for d in distinct):
            distinct.append(layer)
    uses = [sum(layer is c for c, _, _ in g.calls) for layer in distinct]
    assert max(uses) >= 2  # at least one shared layer
    event(f"{len(g.calls)} layer calls, {len(outputs)} outputs, {sum(u >= 2 for u in uses)} shared")
    for layer in distinct:
        event(type(getattr(layer, "cell", layer)).__name__)
    assert len(model.layers) == len(distinct)
    assert all(any(m is d for d in distinct) for m in model.layers)
    names = [layer.name for layer in model.layers]
    assert len(set(names)) == len(names)
    assert sorted(model.get_weights()) == sorted(f"{layer.name}/{k}" for layer in distinct for k in layer.get_weights())

    got = as_list(model([x, ids], sequence_length=[lengths, lengths]))
    values = replay(g, x, ids, lengths)
    assert len(got) == len(outputs)
    for k, (o, i) in enumerate(zip(got, outputs)):
        assert o.dtype == np.float64
        np.testing.assert_allclose(o, values[i], rtol=1e-12, atol=1e-13, err_msg=f"output {k}")
    grads = check_model_gradients(model, [x, ids], [lengths, lengths], rng, per_array=40)
    assert grads.inputs[1] is None


# -- merge layers in hand-written graphs ---------------------------------------------------


def test_add_of_a_tensor_with_itself_doubles_its_gradient():
    """Add(h, h): the two uses of one tensor sum in the backward pass."""
    rng = np.random.default_rng(0)
    inp = rnnrs.Input((None, 2), dtype="float64")
    d = rnnrs.Dense(3, activation="tanh", seed=1)
    h = d(inp)
    model = rnnrs.Model(inp, Add()([h, h]))
    x = rng.normal(size=(2, 3, 2))
    y, backprop = model(x, return_backprop=True)
    hy, hb = d(x, return_backprop=True)
    np.testing.assert_allclose(y, 2 * hy, rtol=1e-12)
    r = rng.normal(size=y.shape)
    g, want = backprop(r), hb(2 * r)
    np.testing.assert_allclose(g.weights["dense/kernel"], want.weights["kernel"], rtol=1e-12)
    np.testing.assert_allclose(g.inputs, want.inputs, rtol=1e-12)
    check_model_gradients(model, [x], None, rng)


def test_concatenate_joins_two_inputs_and_carries_lengths():
    """Concatenate of two RNN branches, read by a final RNN: the final read-out
    uses the lengths carried through the merge (zeros for a row of length 0)."""
    rng = np.random.default_rng(1)
    sig = rnnrs.Input((None, 2), dtype="float64", name="signal")
    tok = rnnrs.Input((None,), dtype="int64", name="tokens")
    a = rnnrs.RNN(rnnrs.GRUCell(2, dtype=F64, seed=0), return_sequences=True)
    emb = rnnrs.Embedding(4, 3, dtype=F64, seed=1)
    joined = Concatenate()([a(sig), emb(tok)])
    assert joined.shape == (None, None, 5)
    last = rnnrs.RNN(rnnrs.BasicLSTMCell(2, dtype=F64, seed=2))
    model = rnnrs.Model([sig, tok], last(joined))
    x, ids = rng.normal(size=(3, 4, 2)), rng.integers(0, 4, size=(3, 4))
    lengths = np.array([4, 0, 2])
    out = model({"signal": x, "tokens": ids}, sequence_length=[lengths, lengths])
    seq = np.concatenate([a(x, sequence_length=lengths), emb(ids)], axis=-1)
    np.testing.assert_allclose(out, last(seq, sequence_length=lengths), rtol=1e-12, atol=1e-14)
    assert not out[1].any()
    # Lengths given for one input only still reach the merge (None for the other).
    np.testing.assert_allclose(
        model([x, ids], sequence_length=[lengths, None]), last(seq, sequence_length=lengths), rtol=1e-12, atol=1e-14
    )
    check_model_gradients(model, [x, ids], [lengths, lengths], rng)


def test_merge_layers_refuse_shapes_that_do_not_connect():
    a = rnnrs.Input((None, 3), name="a")
    b = rnnrs.Input((None, 4), name="b")
    v = rnnrs.Input((4,), name="v")
    with pytest.raises(ValueError) as info:
        Add(name="sum")([a, b])
    assert "sum" in str(info.value) and "(None, None, 3)" in str(info.value)
    with pytest.raises(ValueError) as info:
        Concatenate(name="cat")([b, v])  # a sequence and a vector
    assert "cat" in str(info.value) and "(None, 4)" in str(info.value)
    with pytest.raises((ValueError, TypeError)) as info:
        Concatenate(name="one")([a])
    assert "one" in str(info.value)
