"""Edge cases of the decoders found in review, each pinned: a one-layer
MultiRNNCell on the Rust path, sampled decodes whose maximum_iterations is
huge (uniforms drawn as the steps need them), a tiny sampling temperature,
maximum_iterations beyond int64, and Sequential.generate's limits."""

from __future__ import annotations

import numpy as np
import pytest

import rnnrs
from rnnrs import seq2seq

V, E, H = 6, 3, 5
EOS = 1


def parts(seed: int = 0, eos_bias: float = 0.0):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(V, E)).astype(np.float32)
    dense = rnnrs.Dense(V, seed=seed + 1)
    dense.build(H)
    weights = dense.get_weights()
    weights["bias"] = weights["bias"].copy()
    weights["bias"][EOS] += eos_bias
    dense.set_weights(weights)
    return emb, dense


def greedy(cell, emb, dense, embedding=None, **kw):
    helper = seq2seq.GreedyEmbeddingHelper(emb if embedding is None else embedding, [0, 2, 3], EOS)
    return seq2seq.dynamic_decode(seq2seq.BasicDecoder(cell, helper, None, dense), **kw)


@pytest.mark.parametrize("inner", [lambda: rnnrs.GRUCell(H, seed=1), lambda: rnnrs.LSTMCell(H, seed=1)])
def test_one_layer_multi_rnn_cell_decodes_on_the_rust_path(inner, monkeypatch):
    """A MultiRNNCell of one layer has the state (s0,): the Rust path must
    not wrap it twice (it raised TypeError / IndexError)."""
    from rnnrs.seq2seq import _fast

    emb, dense = parts()
    cell = rnnrs.MultiRNNCell([inner()])
    ran = []
    real = _fast.greedy
    monkeypatch.setattr(_fast, "greedy", lambda **kw: ran.append(1) or real(**kw))
    fast = greedy(cell, emb, dense, maximum_iterations=4)
    python = greedy(cell, emb, dense, embedding=lambda ids: emb[ids], maximum_iterations=4)
    assert ran and isinstance(fast[1], tuple) and len(fast[1]) == 1
    np.testing.assert_array_equal(fast[0].sample_id, python[0].sample_id)
    np.testing.assert_allclose(fast[0].rnn_output, python[0].rnn_output, rtol=1e-5, atol=1e-6)
    beam = seq2seq.BeamSearchDecoder(cell, emb, [0, 2], EOS, None, 2, output_layer=dense)
    out, state, _ = seq2seq.dynamic_decode(beam, maximum_iterations=4)
    assert out.predicted_ids.shape[0] == 2 and len(state.cell_state) == 1


def test_a_huge_maximum_iterations_draws_uniforms_as_the_steps_need_them():
    """A sampled decode with maximum_iterations=10**12 (rows ending early)
    gives the ids of the same decode capped at 40 steps, without drawing
    10**12 uniforms first (that raised MemoryError)."""
    emb, dense = parts(eos_bias=4.0)
    cell = rnnrs.GRUCell(H, seed=1)

    def run(limit):
        helper = seq2seq.SampleEmbeddingHelper(emb, [0, 2, 3], EOS, seed=3)
        return seq2seq.dynamic_decode(seq2seq.BasicDecoder(cell, helper, None, dense), maximum_iterations=limit)

    capped, _, lengths = run(40)
    assert lengths.max() < 40  # every row ended by itself
    huge, _, huge_lengths = run(10**12)
    np.testing.assert_array_equal(huge_lengths, lengths)
    np.testing.assert_array_equal(huge.sample_id, capped.sample_id)
    np.testing.assert_allclose(huge.rnn_output, capped.rnn_output, rtol=1e-5, atol=1e-6)


def test_uniforms_drawn_in_blocks_are_the_documented_stream():
    from rnnrs.seq2seq._common import Uniforms

    u = Uniforms(9, 3)
    steps = [u.step(t) for t in range(50)]
    np.testing.assert_array_equal(np.stack(steps), np.random.default_rng(9).random((50, 3)))
    np.testing.assert_array_equal(u.first(70), np.random.default_rng(9).random((70, 3)))


@pytest.mark.parametrize("path", ["rust", "python"])
def test_a_tiny_temperature_samples_the_greedy_ids(path):
    """softmax(z / 1e-300) is the first maximum: dividing after subtracting
    the maximum keeps it exact (it overflowed to NaN and drew id 0)."""
    emb, dense = parts()
    cell = rnnrs.GRUCell(H, seed=1)
    embedding = emb if path == "rust" else (lambda ids: emb[ids])
    helper = seq2seq.SampleEmbeddingHelper(embedding, [0, 2, 3], EOS, softmax_temperature=1e-300, seed=0)
    sampled, _, _ = seq2seq.dynamic_decode(seq2seq.BasicDecoder(cell, helper, None, dense), maximum_iterations=6)
    want, _, _ = greedy(cell, emb, dense, maximum_iterations=6)
    np.testing.assert_array_equal(sampled.sample_id, want.sample_id)


def test_maximum_iterations_beyond_int64_is_no_limit():
    emb, dense = parts(eos_bias=6.0)
    cell = rnnrs.GRUCell(H, seed=1)
    out, _, lengths = greedy(cell, emb, dense, maximum_iterations=2**70)
    want, _, want_lengths = greedy(cell, emb, dense, maximum_iterations=50)
    np.testing.assert_array_equal(lengths, want_lengths)
    beam = seq2seq.BeamSearchDecoder(cell, emb, [0, 2], EOS, None, 2, output_layer=dense)
    seq2seq.dynamic_decode(beam, maximum_iterations=2**64)


def test_generate_refuses_steps_beyond_memory_naming_steps():
    model = rnnrs.Sequential(
        [
            rnnrs.Embedding(V, 4, seed=0),
            rnnrs.RNN(rnnrs.GRUCell(8, seed=0), return_sequences=True),
            rnnrs.Dense(V, seed=0),
        ]
    )
    model.compile("adam", "sparse_softmax_cross_entropy")
    ids = np.random.default_rng(0).integers(0, V, size=(4, 5))
    model.fit(ids, ids, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="^steps: "):
        model.generate(ids[0], 10**12, temperature=1.0, sample_seed=0)
    a = model.generate(ids[0], 5, temperature=1e-300, sample_seed=0)
    b = model.generate(ids[0], 5, temperature=0, sample_seed=0)
    np.testing.assert_array_equal(a, b)
