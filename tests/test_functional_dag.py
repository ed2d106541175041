"""Functional models on random DAGs (merge layers): two inputs (a float
sequence and integer ids read by an Embedding), Dense / RNN (BasicRNN, LSTM,
GRU) / Bidirectional / Concatenate / Add layers, at least one layer shared between two
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
from functional_reference import (
    as_list,
    assert_same_weights,
    assert_training_continues_identically,
    check_model_gradients,
)
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
        kind = self.draw(st.sampled_from(["gru", "lstm", "rnn"]), label="cell")
        units = self.draw(st.integers(1, 3), label="rnn units")
        make = {"rnn": rnnrs.BasicRNNCell, "lstm": rnnrs.BasicLSTMCell, "gru": rnnrs.GRUCell}[kind]
        cell = make(units, dtype=F64, seed=self.new_seed())
        return rnnrs.RNN(cell, return_sequences=return_sequences), units

    def bidirectional(self):
        layer, units = self.rnn()
        mode = self.draw(st.sampled_from(["concat", "sum", "ave"]), label="merge mode")
        return rnnrs.layers.Bidirectional(layer, merge_mode=mode), 2 * units if mode == "concat" else units

    def unary(self):
        kind = self.draw(st.sampled_from(["dense", "rnn", "bidirectional"]), label="layer kind")
        return getattr(self, kind)()

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
    if draw(st.sampled_from([2, 1]), label="outputs") == 2:
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


# -- states, bidirectional layers, masks, dropout ----------------------------------------------


def encoder_decoder(seed=0, dtype=F64):
    """An LSTM encoder whose final state (c, h) starts an LSTM decoder over embedded target ids."""
    source = rnnrs.Input((None, 2), dtype=np.dtype(dtype).name, name="source")
    target = rnnrs.Input((None,), dtype="int64", name="target")
    encoder = rnnrs.RNN(rnnrs.BasicLSTMCell(3, dtype=dtype, seed=seed), return_state=True, name="encoder")
    embedding = rnnrs.Embedding(5, 2, dtype=dtype, seed=seed + 1)
    decoder = rnnrs.RNN(rnnrs.BasicLSTMCell(3, dtype=dtype, seed=seed + 2), return_sequences=True, name="decoder")
    head = rnnrs.Dense(4, seed=seed + 3, name="head")
    _, c, h = encoder(source)
    out = head(decoder(embedding(target), initial_state=[c, h]))
    return rnnrs.Model([source, target], out, name="seq2seq"), (encoder, embedding, decoder, head)


def test_encoder_state_starts_the_decoder():
    """return_state / initial_state in a graph, with inputs of different
    lengths and time axes: forward equals the eager calls, backward equals
    finite differences (the decoder's gradient reaches the encoder through
    its state); a source row of length 0 hands the decoder zeros."""
    rng = np.random.default_rng(2)
    model, (encoder, embedding, decoder, head) = encoder_decoder()
    x, ids = rng.normal(size=(3, 4, 2)), rng.integers(0, 5, size=(3, 2))
    src, tgt = np.array([4, 0, 2]), np.array([2, 1, 0])
    out = model([x, ids], sequence_length=[src, tgt])
    _, c, h = encoder(x, sequence_length=src)
    assert not c[1].any() and not h[1].any()
    want = head(decoder(embedding(ids), sequence_length=tgt, initial_state=[c, h]), sequence_length=tgt)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-14)
    grads = check_model_gradients(model, [x, ids], [src, tgt], rng)
    assert np.abs(grads.weights["encoder/kernel"]).sum() > 0


def tagger(seed=0, rate=0.5):
    """Ids with zero padding (mask_zero) joined to a float signal, read by a
    bidirectional GRU, tagged per step by a TimeDistributed Dense after Dropout."""
    signal = rnnrs.Input((None, 2), dtype="float64", name="signal")
    tokens = rnnrs.Input((None,), dtype="int64", name="tokens")
    e = rnnrs.Embedding(6, 3, mask_zero=True, dtype=F64, seed=seed)(tokens)
    joined = Concatenate()([signal, e])  # the lengths come from the mask of the second input
    bi = rnnrs.layers.Bidirectional(rnnrs.RNN(rnnrs.GRUCell(2, dtype=F64, seed=seed + 1), return_sequences=True))
    dropped = rnnrs.layers.Dropout(rate, seed=seed + 2)(bi(joined))
    tags = rnnrs.layers.TimeDistributed(rnnrs.Dense(3, seed=seed + 3))(dropped)
    return rnnrs.Model([signal, tokens], tags, name="tagger")


def padded_ids(rng, lengths, T, vocab):
    ids = rng.integers(1, vocab, size=(len(lengths), T))
    ids[np.arange(T)[None, :] >= np.asarray(lengths)[:, None]] = 0
    return ids


def test_mask_zero_lengths_cross_a_merge_into_a_bidirectional_layer():
    """Lengths derived from the ids' padding reach the bidirectional layer
    through the Concatenate (the signal has none): forward equals the eager
    calls with those lengths; backward equals finite differences; garbage in
    the signal past each length changes nothing before it."""
    rng = np.random.default_rng(3)
    model = tagger()
    lengths = np.array([4, 0, 2, 1])
    x, ids = rng.normal(size=(4, 4, 2)), padded_ids(rng, lengths, 4, 6)
    out = model({"signal": x, "tokens": ids})
    emb, _, bi, drop, tags = model.layers
    assert isinstance(bi, rnnrs.layers.Bidirectional) and isinstance(drop, rnnrs.layers.Dropout)
    seq = np.concatenate([x, emb(ids)], axis=-1)
    want = tags(drop(bi(seq, sequence_length=lengths)), sequence_length=lengths)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-14)
    noisy = x.copy()
    noisy[np.arange(4)[None, :] >= lengths[:, None]] = 1e3
    again = model([noisy, ids])
    valid = np.arange(4)[None, :] < lengths[:, None]
    np.testing.assert_array_equal(again[valid], out[valid])
    check_model_gradients(model, [x, ids], None, rng)


def test_dropout_acts_only_while_training():
    rng = np.random.default_rng(4)
    inp = rnnrs.Input((None, 3), dtype="float64")
    dense = rnnrs.Dense(50, activation="sigmoid", seed=0)
    model = rnnrs.Model(inp, rnnrs.layers.Dropout(0.4, seed=1)(dense(inp)))
    x = rng.normal(size=(2, 3, 3))
    plain = dense(x)
    np.testing.assert_array_equal(model(x), plain)
    noisy = model(x, training=True)
    dropped = noisy == 0
    assert 0.2 < dropped.mean() < 0.6
    np.testing.assert_allclose(noisy[~dropped], plain[~dropped] / 0.6, rtol=1e-12)


@pytest.mark.parametrize("which", ["dag", "seq2seq", "tagger"])
def test_graphs_with_every_layer_kind_save_and_load_bitwise(tmp_path, which):
    """Merge layers, return_state / initial_state, Bidirectional, mask_zero,
    Dropout and TimeDistributed survive save / load: same outputs, same
    weights, and the same next epoch of training."""
    rng = np.random.default_rng(5)
    if which == "seq2seq":
        model, _ = encoder_decoder(dtype=np.float32)
        xs = [rng.normal(size=(6, 4, 2)).astype(np.float32), rng.integers(0, 5, size=(6, 3))]
        lengths = [np.array([4, 0, 2, 3, 1, 4]), np.array([3, 1, 0, 2, 3, 3])]
        y = rng.normal(size=(6, 3, 4)).astype(np.float32)
    else:
        if which == "tagger":
            model = tagger(rate=0.0)  # dropout's own generator: see test_dropout_masks_continue_after_load
        else:
            a = rnnrs.Input((None, 2), dtype="float64", name="a")
            ids = rnnrs.Input((None,), dtype="int64", name="ids")
            shared = rnnrs.Dense(2, activation="tanh", seed=0)
            e = rnnrs.Embedding(6, 2, dtype=F64, seed=1)(ids)
            h = Add()([shared(a), shared(e)])
            h = rnnrs.RNN(rnnrs.GRUCell(3, dtype=F64, seed=2), return_sequences=True)(Concatenate()([h, a]))
            model = rnnrs.Model([a, ids], rnnrs.Dense(3, seed=3)(h))
        lengths = [np.array([4, 0, 2, 3, 1, 4])] * 2
        xs = [rng.normal(size=(6, 4, 2)), padded_ids(rng, lengths[0], 4, 6)]
        if which == "tagger":
            lengths = None
        y = rng.normal(size=(6, 4, 3))
    model.compile(rnnrs.Adam(0.01), "mse")
    model.fit(xs, y, sequence_length=lengths, batch_size=4, epochs=1, seed=0, verbose=0)
    model.save(tmp_path / f"{which}.npz")
    loaded = rnnrs.load_model(tmp_path / f"{which}.npz")
    assert type(loaded) is rnnrs.Model
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    np.testing.assert_array_equal(loaded(xs, sequence_length=lengths), model(xs, sequence_length=lengths))
    assert_same_weights(loaded, model)
    assert_training_continues_identically(loaded, model, xs, y, sequence_length=lengths, batch_size=4)


def test_dropout_masks_continue_after_load(tmp_path):
    """A seeded Dropout draws each training call's mask from its generator;
    save / load must keep the generator's state (as Keras 3 saves its seed
    generators' state), or the loaded model trains differently."""
    rng = np.random.default_rng(6)
    inp = rnnrs.Input((None, 3), dtype="float64")
    out = rnnrs.Dense(2, seed=1)(rnnrs.layers.Dropout(0.3, seed=0)(rnnrs.Dense(8, activation="tanh", seed=0)(inp)))
    model = rnnrs.Model(inp, out)
    x, y = rng.normal(size=(8, 3, 3)), rng.normal(size=(8, 3, 2))
    model.compile(rnnrs.SGD(0.1), "mse")
    model.fit(x, y, batch_size=4, epochs=1, seed=0, verbose=0)
    model.save(tmp_path / "dropout.npz")
    loaded = rnnrs.load_model(tmp_path / "dropout.npz")
    assert_training_continues_identically(loaded, model, x, y, batch_size=4)


def test_a_merge_of_sequences_with_different_lengths_is_refused():
    """Two inputs joined by a merge must come with equal lengths: different
    ones are a ValueError naming sequence_length (never a silent choice)."""
    a = rnnrs.Input((None, 2), dtype="float64", name="a")
    b = rnnrs.Input((None, 2), dtype="float64", name="b")
    model = rnnrs.Model([a, b], rnnrs.RNN(rnnrs.GRUCell(2, dtype=F64, seed=0))(Add()([a, b])))
    x = np.ones((2, 3, 2))
    model([x, x], sequence_length=[[3, 1], [3, 1]])
    with pytest.raises(ValueError, match="sequence_length"):
        model([x, x], sequence_length=[[3, 1], [2, 1]])
