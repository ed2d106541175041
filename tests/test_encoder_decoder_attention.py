"""EncoderDecoder(attention="bahdanau" | "luong"): the decoder attends to the encoder's outputs.

Pins: with attention the reversal task (the hardest for a model reading one final state) is learnt exactly
in 10 epochs, where the same model without attention is far from it; the model's gradients (through the
attention into the encoder: the memory's gradient) equal float64 finite differences; save / load_model
round-trips the weights and the translations; greedy and beam decoding run over the attention wrapper;
an empty source is a ValueError naming the sources.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnnrs

SOS, EOS = 1, 2


def reversal(n, seed):
    rng = np.random.default_rng(seed)
    sources = [rng.integers(3, 9, size=int(rng.integers(1, 6))) for _ in range(n)]
    return sources, [s[::-1].copy() for s in sources]


def make(attention, cell=rnnrs.GRUCell, units=24, dtype=np.float32, **kwargs):
    return rnnrs.EncoderDecoder(
        cell(units, seed=0, dtype=dtype),
        cell(units, seed=1, dtype=dtype),
        9,
        9,
        8,
        start_token=SOS,
        end_token=EOS,
        seed=0,
        attention=attention,
        **kwargs,
    )


@pytest.fixture(scope="module")
def trained():
    sources, targets = reversal(600, 0)
    models = {}
    for attention in (None, "luong", "bahdanau"):
        model = make(attention, optimizer=rnnrs.Adam(0.01))
        model.fit(sources, targets, epochs=10, batch_size=32, seed=0, verbose=0)
        models[attention] = model
    return models


@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
def test_attention_learns_reversal_that_one_state_does_not(trained, attention):
    sources, targets = reversal(200, 1)
    with_attention = trained[attention].evaluate(sources, targets)
    without = trained[None].evaluate(sources, targets)
    assert with_attention["exact_match"] >= 0.98, with_attention
    assert without["exact_match"] < 0.9, without
    assert trained[attention].evaluate(sources, targets, beam_width=3)["exact_match"] >= 0.98
    assert trained[attention].attention == attention and trained[None].attention is None


@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
def test_gradients_match_finite_differences(attention):
    """Through the attention into the encoder (the memory's gradient) and into its final state."""
    model = make(attention, cell=rnnrs.LSTMCell, units=4, dtype=np.float64)
    sources = np.array([[3, 4, 5], [6, 7, 0]])
    targets = np.array([[4, 3, 2], [8, 2, 0]])
    lengths = [np.array([3, 2]), np.array([3, 2])]
    rng = np.random.default_rng(0)
    model([sources, targets], sequence_length=lengths)  # builds it
    model.set_weights({k: rng.normal(scale=0.4, size=v.shape) for k, v in model.get_weights().items()})
    outputs, backprop = model([sources, targets], sequence_length=lengths, return_backprop=True)
    d_out = rng.normal(size=outputs.shape)
    grads = backprop(d_out).weights

    def loss():
        return float(np.sum(model([sources, targets], sequence_length=lengths) * d_out))

    weights = model.get_weights()
    for name in ("encoder/kernel", "source_embedding/embeddings", "decoder/memory_layer/kernel", "decoder/kernel"):
        w = weights[name]
        for index in [tuple(rng.integers(0, n) for n in w.shape) for _ in range(3)]:
            plus, minus = w.copy(), w.copy()
            plus[index] += 1e-6
            minus[index] -= 1e-6
            model.set_weights({name: plus})
            up = loss()
            model.set_weights({name: minus})
            down = loss()
            model.set_weights({name: w})
            np.testing.assert_allclose(grads[name][index], (up - down) / 2e-6, rtol=1e-5, atol=1e-8, err_msg=name)


def test_save_and_load_round_trip(trained, tmp_path):
    model = trained["bahdanau"]
    path = str(tmp_path / "attention.npz")
    model.save(path)
    again = rnnrs.load_model(path)
    assert again.attention == "bahdanau"
    for k, v in model.get_weights().items():
        assert np.array_equal(again.get_weights()[k], v), k
    sources, _ = reversal(20, 2)
    assert again.translate(sources) == model.translate(sources)
    assert again.translate(sources, beam_width=2) == model.translate(sources, beam_width=2)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"^attention: expected None or one of \['bahdanau', 'luong'\]"):
        make("dot")
    model = make("luong")
    with pytest.raises(ValueError, match="^sources: expected every source to hold at least one token"):
        model.fit([[3], []], [[4], [5]], epochs=1, verbose=0)


def test_translate_returns_the_alignments_of_each_row(trained):
    model = trained["luong"]
    sources, targets = reversal(6, 3)
    ids, alignments = model.translate(sources, return_alignments=True)
    assert ids == model.translate(sources)
    for row, source, weights in zip(ids, sources, alignments):
        assert weights.shape == (len(row) + 1, len(source))  # the EOS step included; the source's tokens only
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="^return_alignments: expected False for a model without attention"):
        trained[None].translate(sources, return_alignments=True)
    with pytest.raises(ValueError, match="^return_alignments: expected False .* beam_width=2"):
        model.translate(sources, beam_width=2, return_alignments=True)


def test_calls_from_several_threads_see_their_own_memory():
    """The decoder layer binds each call's memory to copies: concurrent translations stay exact."""
    import threading

    model = make("bahdanau", units=16)
    a, _ = reversal(64, 4)
    b, _ = reversal(37, 5)
    want = {id(a): model.translate(a), id(b): model.translate(b)}
    errors: list[BaseException] = []
    wrong: list[int] = []

    def loop(sources):
        try:
            for _ in range(10):
                if model.translate(sources) != want[id(sources)]:
                    wrong.append(1)
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=loop, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not wrong, (errors[:1], len(wrong))


def test_decoder_dropout_resumes_with_the_same_masks(tmp_path):
    sources, targets = reversal(200, 6)

    def model():
        return rnnrs.EncoderDecoder(
            rnnrs.GRUCell(8, seed=0),
            rnnrs.DropoutWrapper(rnnrs.GRUCell(8, seed=1), output_keep_prob=0.7, seed=2),
            9, 9, 4, start_token=SOS, end_token=EOS, seed=0, attention="luong",
        )  # fmt: skip

    whole = model()
    whole.fit(sources, targets, epochs=2, batch_size=50, seed=1, verbose=0)
    first = model()
    first.fit(sources, targets, epochs=1, batch_size=50, seed=1, verbose=0)
    first.save(str(tmp_path / "m.npz"))
    resumed = rnnrs.load_model(str(tmp_path / "m.npz"))
    assert resumed._decoder.get_state()  # the DropoutWrapper's generator is saved
    resumed.fit(sources, targets, epochs=2, initial_epoch=1, batch_size=50, seed=1, verbose=0)
    for k, v in whole.get_weights().items():
        assert np.array_equal(resumed.get_weights()[k], v), k
