"""rnnrs.EncoderDecoder (an encoder–decoder as a functional Model) and
Sequential.generate for models that start with an Embedding.

Pinned: teacher-forced training lowers the loss and counts the EOS step;
``translate`` returns plain id lists cut before the EOS (a row that never
ends has ``maximum_iterations`` ids); a beam of width 1 decodes as greedy;
``save`` / ``load_model`` round-trip the model (tokens, weights, decodes,
optimizer state); bad tokens, ids, lengths and cells are refused naming the
argument; id models sample with a temperature and a seed.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnnrs
from helpers import raises_naming
from rnnrs import seq2seq
from rnnrs.models.seq2seq import cut

SOS, EOS = 1, 2
SOURCE_VOCAB, TARGET_VOCAB = 9, 9  # ids 3..8 are tokens in both


def reversal(n, seed):
    """Rows of 1 to 5 tokens in [3, 9) and the same rows reversed."""
    rng = np.random.default_rng(seed)
    sources = [rng.integers(3, 9, size=int(rng.integers(1, 6))) for _ in range(n)]
    return sources, [s[::-1].copy() for s in sources]


def make_model(cell=rnnrs.GRUCell, units=24, **kwargs):
    return rnnrs.EncoderDecoder(
        cell(units, seed=0),
        cell(units, seed=1),
        SOURCE_VOCAB,
        TARGET_VOCAB,
        8,
        start_token=SOS,
        end_token=EOS,
        seed=0,
        optimizer=rnnrs.Adam(0.01),
        **kwargs,
    )


@pytest.fixture(scope="module")
def trained():
    sources, targets = reversal(600, 0)
    model = make_model()
    history = model.fit(sources, targets, epochs=30, batch_size=32, seed=0, verbose=0)
    return model, history


def test_fit_lowers_the_loss_and_learns_the_task(trained):
    model, history = trained
    loss = history.history["loss"]
    assert loss[-1] < 0.2 * loss[0], loss
    sources, targets = reversal(100, 1)
    logs = model.evaluate(sources, targets)
    assert set(logs) == {"loss", "accuracy", "exact_match"}
    assert logs["accuracy"] > 0.9 and logs["exact_match"] > 0.75, logs


def test_the_loss_counts_every_target_step_and_the_eos():
    """The teacher-forced loss equals the mean cross-entropy over the steps
    ``y_0 ... y_{L-1}, EOS`` of each row (padding excluded), computed by hand
    from the model's own logits on ``[start] + targets``."""
    model = make_model()
    sources = [np.array([3, 4, 5]), np.array([6])]
    targets = [np.array([7, 8]), np.array([3, 4, 5, 6])]
    logs = model.evaluate(sources, targets)
    padded_src = np.array([[3, 4, 5], [6, 0, 0]])
    full = np.array([[7, 8, EOS, 0, 0], [3, 4, 5, 6, EOS]])
    logits = model([padded_src, full], sequence_length=[[3, 1], [3, 5]]).astype(np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = [logp[0, t, full[0, t]] for t in range(3)] + [logp[1, t, full[1, t]] for t in range(5)]
    np.testing.assert_allclose(logs["loss"], -np.mean(picked), rtol=1e-5)
    # The decoder reads [start, y_0, ...]: its first input is the start token.
    shifted = model._teacher._apply([full], [None], False).outputs[0]
    np.testing.assert_array_equal(shifted, [[SOS, 7, 8, EOS, 0], [SOS, 3, 4, 5, 6]])


def test_fit_takes_padded_arrays_with_lengths_and_validation(trained):
    model = make_model()
    sources, targets = reversal(64, 2)
    src = rnnrs.utils.pad_sequences(sources, padding="post", dtype="int64")
    tgt = rnnrs.utils.pad_sequences(targets, padding="post", dtype="int64")
    lengths = np.array([len(s) for s in sources])
    history = model.fit(
        src,
        tgt,
        source_length=lengths,
        target_length=lengths,
        epochs=2,
        verbose=0,
        seed=0,
        validation_data=(sources[:8], targets[:8]),
    )
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history.history)
    # The same rows given as lists train identically.
    twin = make_model()
    again = twin.fit(sources, targets, epochs=2, verbose=0, seed=0, validation_data=(sources[:8], targets[:8]))
    np.testing.assert_allclose(again.history["loss"], history.history["loss"], rtol=1e-6)


def test_translate_returns_id_lists_cut_before_the_eos(trained):
    model, _ = trained
    sources, targets = reversal(50, 3)
    out = model.translate(sources)
    assert isinstance(out, list) and len(out) == 50
    assert all(isinstance(row, list) and all(type(i) is int for i in row) for row in out)
    assert all(EOS not in row for row in out)
    # the fixture trained 30 epochs: most reversals are right (a test of the format, not of quality)
    assert sum(row == t.tolist() for row, t in zip(out, targets)) >= 30
    # A cap shorter than the answers: rows that did not end keep exactly maximum_iterations ids.
    short = model.translate(sources, maximum_iterations=2)
    assert all(len(row) <= 2 for row in short)
    assert all(row == full[:2] for row, full in zip(short, out) if len(full) >= 2)
    assert model.translate(sources, maximum_iterations=0) == [[]] * 50
    assert model.translate([]) == []
    # Batching does not change the decodes.
    assert model.translate(sources, batch_size=7) == out


def test_cut_drops_only_a_final_eos():
    ids = np.array([5, 6, EOS, 0, 0])
    assert cut(ids, 3, EOS) == [5, 6]  # ended by its EOS (counted in the length)
    assert cut(ids, 2, EOS) == [5, 6]  # stopped by maximum_iterations
    assert cut(np.array([EOS]), 1, EOS) == []
    assert cut(ids, 0, EOS) == []


def test_beam_width_one_equals_greedy(trained):
    """A BeamSearchDecoder of width 1 on the model's own decoder, embedding
    and output layer gives the ids translate's greedy decode gives; wider
    beams return lists of the same form."""
    model, _ = trained
    sources, _ = reversal(40, 4)
    greedy = model.translate(sources, maximum_iterations=12)
    src = rnnrs.utils.pad_sequences(sources, padding="post", dtype="int64")
    lengths = np.array([len(s) for s in sources])
    emb = model._source_embedding._apply([src], [lengths], False).outputs[0]
    state = model._encoder._apply([emb], [lengths], False).state
    from rnnrs.seq2seq.beam_search import BeamSearchDecoder

    decoder = BeamSearchDecoder(
        model.decoder_cell,
        model._target_embedding,
        np.full(40, SOS),
        EOS,
        state,
        1,
        output_layer=model._output,
    )
    outputs, final_state, _ = seq2seq.dynamic_decode(decoder, maximum_iterations=12)
    ids, ends = outputs.predicted_ids[:, :, 0], final_state.lengths[:, 0]
    assert [cut(ids[b], int(ends[b]), EOS) for b in range(40)] == greedy
    wide = model.translate(sources, beam_width=3, maximum_iterations=12)
    assert len(wide) == 40 and all(EOS not in row and len(row) <= 12 for row in wide)
    assert model.evaluate(sources[:10], [s[::-1] for s in sources[:10]], beam_width=3)["exact_match"] >= 0.7


def test_save_and_load_model_round_trip(trained, tmp_path):
    model, _ = trained
    path = tmp_path / "reverse.npz"
    model.save(path)
    loaded = rnnrs.load_model(path)
    assert type(loaded) is rnnrs.EncoderDecoder
    assert (loaded.start_token, loaded.end_token, loaded.source_vocab, loaded.target_vocab) == (SOS, EOS, 9, 9)
    assert loaded.embedding_size == 8
    before, after = model.get_weights(), loaded.get_weights()
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    sources, targets = reversal(30, 5)
    assert loaded.translate(sources) == model.translate(sources)
    assert loaded.translate(sources, beam_width=2) == model.translate(sources, beam_width=2)
    assert loaded.evaluate(sources, targets) == model.evaluate(sources, targets)
    # Training resumes from the saved optimizer state identically.
    twin = rnnrs.EncoderDecoder.load(path)
    a = loaded.fit(sources, targets, epochs=1, verbose=0, seed=3, shuffle=False)
    b = twin.fit(sources, targets, epochs=1, verbose=0, seed=3, shuffle=False)
    assert a.history["loss"][-1] == b.history["loss"][-1]


def test_lstm_cells_and_their_state_tuples():
    sources, targets = reversal(64, 6)
    model = make_model(rnnrs.BasicLSTMCell, units=12)
    history = model.fit(sources, targets, epochs=3, verbose=0, seed=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    out = model.translate(sources[:5], maximum_iterations=6)
    assert len(out) == 5 and all(len(row) <= 6 for row in out)


def test_bad_tokens_and_sizes_name_the_argument():
    cell = rnnrs.GRUCell
    with raises_naming(ValueError, "start_token"):
        rnnrs.EncoderDecoder(cell(4), cell(4), 5, 6, 3, start_token=6, end_token=2)
    with raises_naming(ValueError, "end_token"):
        rnnrs.EncoderDecoder(cell(4), cell(4), 5, 6, 3, start_token=1, end_token=-1)
    with raises_naming(TypeError, "start_token"):
        rnnrs.EncoderDecoder(cell(4), cell(4), 5, 6, 3, start_token=True, end_token=2)
    with raises_naming(TypeError, "end_token"):
        rnnrs.EncoderDecoder(cell(4), cell(4), 5, 6, 3, start_token=1, end_token=2.0)
    with raises_naming(ValueError, "target_vocab"):
        rnnrs.EncoderDecoder(cell(4), cell(4), 5, 0, 3, start_token=1, end_token=2)
    with raises_naming(ValueError, "embedding_size"):
        rnnrs.EncoderDecoder(cell(4), cell(4), 5, 6, 0, start_token=1, end_token=2)
    with raises_naming(TypeError, "encoder_cell"):
        rnnrs.EncoderDecoder("gru", cell(4), 5, 6, 3, start_token=1, end_token=2)
    with raises_naming(TypeError, "decoder_cell"):
        rnnrs.EncoderDecoder(cell(4), None, 5, 6, 3, start_token=1, end_token=2)
    with raises_naming(ValueError, "decoder_cell"):  # a GRU state is not an LSTM's (c, h)
        rnnrs.EncoderDecoder(cell(4), rnnrs.BasicLSTMCell(4), 5, 6, 3, start_token=1, end_token=2)
    with raises_naming(ValueError, "decoder_cell"):
        rnnrs.EncoderDecoder(cell(4), cell(5), 5, 6, 3, start_token=1, end_token=2)
    with raises_naming(ValueError, "decoder_cell"):
        rnnrs.EncoderDecoder(cell(4), cell(4, dtype=np.float64), 5, 6, 3, start_token=1, end_token=2)
    shared = cell(4)
    with raises_naming(ValueError, "decoder_cell"):
        rnnrs.EncoderDecoder(shared, shared, 5, 6, 3, start_token=1, end_token=2)
    # The graph form (what load_model uses) refuses a graph that is not an encoder-decoder's.
    ids = rnnrs.Input((None,), dtype="int64")
    with raises_naming(ValueError, "outputs"):
        rnnrs.EncoderDecoder(ids, rnnrs.Dense(3)(rnnrs.Embedding(5, 2)(ids)))


def test_bad_sequences_name_the_argument():
    model = make_model()
    good_s, good_t = reversal(4, 7)
    with raises_naming(ValueError, r"sources\[1\]"):
        model.fit([[3], [9]], good_t[:2], verbose=0)  # 9 is outside the source vocabulary
    with raises_naming(ValueError, r"targets\[0\]"):
        model.fit(good_s[:2], [[-1], [3]], verbose=0)
    with raises_naming(ValueError, "targets"):  # the end token is appended, not given
        model.fit(good_s[:2], [[3, EOS, 4], [3]], verbose=0)
    with raises_naming(ValueError, "targets"):
        model.fit(good_s, good_t[:3], verbose=0)
    with raises_naming(ValueError, "sources"):
        model.translate(np.array([[3, 4], [5, 12]]))
    with raises_naming(ValueError, "source_length"):
        model.translate(np.array([[3, 4], [5, 6]]), source_length=[1, 3])
    with raises_naming(ValueError, "source_length"):
        model.translate([[3, 4], [5]], source_length=[2, 1])
    with raises_naming(TypeError, r"sources\[0\]"):
        model.translate([["a"]])
    with raises_naming(ValueError, "beam_width"):
        model.translate(good_s, beam_width=0)
    with raises_naming(ValueError, "maximum_iterations"):
        model.translate(good_s, maximum_iterations=-1)
    with raises_naming(TypeError, "maximum_iterations"):
        model.translate(good_s, maximum_iterations=2.5)
    with raises_naming(ValueError, "length_penalty_weight"):
        model.translate(good_s, beam_width=2, length_penalty_weight=-1)
    with raises_naming(ValueError, "validation_data"):
        model.fit(good_s, good_t, verbose=0, validation_data=(good_s,))
    with raises_naming(ValueError, "validation_data: targets"):
        model.fit(good_s, good_t, verbose=0, validation_data=(good_s, [[EOS]] * 4))
    # Called as a Model on [sources, targets]: target ids are checked too.
    with raises_naming(ValueError, r"x\[1\]"):
        model([np.array([[3]]), np.array([[9]])])


# -- Sequential.generate on token ids -----------------------------------------------


@pytest.fixture(scope="module")
def counter():
    """A character model that learnt to count 0 1 2 3 4 0 1 ... (logits out)."""
    model = rnnrs.Sequential(
        [
            rnnrs.Embedding(5, 4, seed=0),
            rnnrs.RNN(rnnrs.GRUCell(16, seed=0), return_sequences=True),
            rnnrs.Dense(5, seed=0),
        ]
    )
    model.compile(rnnrs.Adam(0.02), "sparse_softmax_cross_entropy")
    x = np.array([np.roll(np.arange(5), -k).tolist() * 3 for k in range(5)] * 8)
    model.fit(x[:, :-1], x[:, 1:], epochs=60, verbose=0, seed=0)
    return model


def test_generate_continues_an_id_sequence(counter):
    out = counter.generate([0, 1, 2], 8, temperature=0)
    assert out.dtype == np.int64 and out.shape == (8,)
    np.testing.assert_array_equal(out, [3, 4, 0, 1, 2, 3, 4, 0])
    batch = counter.generate([[0, 1], [2, 3]], 4, temperature=0.2, sample_seed=0)
    np.testing.assert_array_equal(batch, [[2, 3, 4, 0], [4, 0, 1, 2]])
    windowed = counter.generate([0, 1, 2], 8, window=4, temperature=0)
    np.testing.assert_array_equal(windowed, out)
    assert counter.generate([0], 0).shape == (0,)


def test_generate_samples_reproducibly_by_the_documented_rule(counter):
    """Sampling draws u = default_rng(sample_seed).random((steps, B)) and takes
    the first id whose cumulative softmax(logits / T) exceeds u."""
    a = counter.generate([0, 1], 30, temperature=3.0, sample_seed=7)
    b = counter.generate([0, 1], 30, temperature=3.0, sample_seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, counter.generate([0, 1], 30, temperature=3.0, sample_seed=8))
    first = counter.generate([0, 1], 1, temperature=2.0, sample_seed=5)
    logits = counter(np.array([[0, 1]]))[0, -1].astype(np.float64) / 2.0
    cdf = np.cumsum(np.exp(logits - logits.max()))
    u = np.random.default_rng(5).random((1, 1))[0, 0]
    assert first[0] == min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), 4)
    # At a high temperature every id appears; at a low one the count goes on.
    assert set(counter.generate([0], 200, temperature=50.0, sample_seed=0).tolist()) == {0, 1, 2, 3, 4}


def test_generate_arguments_name_themselves(counter):
    with raises_naming(ValueError, "seed"):
        counter.generate([5], 3)
    with raises_naming(ValueError, "seed"):
        counter.generate(np.zeros((1, 2, 3), dtype=int), 3)
    with raises_naming(ValueError, "temperature"):
        counter.generate([0], 3, temperature=-0.5)
    with raises_naming(ValueError, "temperature"):
        counter.generate([0], 3, temperature=float("inf"))
    with raises_naming(ValueError, "sample_seed"):
        counter.generate([0], 3, sample_seed=-1)
    reg = rnnrs.SequenceRegressor(rnnrs.BasicRNNCell(4, seed=0), output_size=2)
    with raises_naming(ValueError, "temperature"):
        reg.generate(np.zeros((3, 2)), 2, temperature=0.5)
    wrong = rnnrs.Sequential([rnnrs.Embedding(5, 4), rnnrs.RNN(rnnrs.GRUCell(3), return_sequences=True)])
    with raises_naming(ValueError, "generate"):
        wrong.generate([0, 1], 2)
