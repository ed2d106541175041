"""Models: gradients of the whole stack, fit (loss decreases, determinism,
masking, validation, history, progress), predict / evaluate, generation,
save / load, and every bad input of the issue."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest

import rnnrs
from helpers import raises_naming


def toy_classification(n=96, T=6, F=3, seed=0, dtype=np.float32):
    """Class = which feature has the largest sum over the sequence (learnable)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, T, F)).astype(dtype)
    y = x.sum(axis=1).argmax(axis=1)
    return x, y


def toy_regression(n=64, T=8, seed=0):
    x, y = rnnrs.datasets.time_series_windows(n, T, seed=seed)
    return x / 5, y / 5


def finite_difference(f, x, eps=1e-6):
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return g


def model_gradient_check(model, x, y, lengths):
    model.build(None if model._takes_ids() else x.shape[-1])
    xs, ls = model._data("x", x, lengths, "sequence_length")
    losses = model._losses_per_output
    ys = model._targets("y", y, xs, model._output_shapes(xs, ls), losses)
    fwd = model._forward(xs, ls, False)
    _, d_out, _ = model._loss(losses, ys, fwd)
    grads = model._backward(fwd, d_out)
    weights = model.get_weights()
    assert sorted(grads) == sorted(weights)

    def loss():
        return model._loss(losses, ys, model._forward(xs, ls, False))[0]

    for name, w in weights.items():

        def loss_w(name=name, w=w):
            model.set_weights({name: w})
            return loss()

        fd = finite_difference(loss_w, w)
        model.set_weights({name: w})
        np.testing.assert_allclose(grads[name], fd, rtol=1e-5, atol=1e-8, err_msg=name)


# -- gradients of whole models (float64) ---------------------------------------


def test_classifier_gradients_finite_differences():
    x, y = toy_classification(n=5, T=4, F=2, dtype=np.float64)
    model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(3, dtype=np.float64, seed=1), 3, seed=2)
    model_gradient_check(model, x, y, np.array([4, 2, 0, 1, 3]))


def test_sequence_regressor_gradients_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 5, 2))
    y = rng.normal(size=(3, 5, 2))
    cell = rnnrs.MultiRNNCell(
        [
            rnnrs.BasicRNNCell(3, dtype=np.float64, seed=1),
            rnnrs.ResidualWrapper(rnnrs.BasicRNNCell(3, dtype=np.float64, seed=2)),
        ]
    )
    model = rnnrs.SequenceRegressor(cell, output_size=2, seed=3)
    model_gradient_check(model, x, y, np.array([5, 3, 1]))


def test_embedding_sequence_labeller_gradients_finite_differences():
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 5, size=(3, 4))
    y = rng.integers(0, 3, size=(3, 4))
    model = rnnrs.Sequential(
        [
            rnnrs.Embedding(5, 3, dtype=np.float64, seed=0),
            rnnrs.RNN(rnnrs.BasicRNNCell(4, dtype=np.float64, seed=1), return_sequences=True),
            rnnrs.Dense(3, activation=None, seed=2),
        ]
    )
    model.compile("adam", "sparse_softmax_cross_entropy", ["accuracy"])
    model_gradient_check(model, ids, y, np.array([4, 2, 3]))


# -- fit ------------------------------------------------------------------------


def test_fit_decreases_the_loss_and_learns():
    x, y = toy_classification(n=256)
    model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(16, seed=0), num_classes=3, seed=0, optimizer=rnnrs.Adam(0.01))
    before = model.evaluate(x, y) if model.built else None
    history = model.fit(x, y, batch_size=32, epochs=8, seed=0, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 8 and history.epoch == list(range(8)) and len(history.seconds) == 8
    assert losses[-1] < 0.5 * losses[0]
    assert history.history["accuracy"][-1] > 0.8
    assert model.history is history
    assert before is None


def test_regressor_fit_decreases_the_loss():
    x, y = toy_regression(n=128)
    model = rnnrs.SequenceRegressor(
        rnnrs.OutputProjectionWrapper(rnnrs.BasicRNNCell(16, seed=0), 1, seed=0), optimizer=rnnrs.Adam(0.01)
    )
    model.compile(rnnrs.Adam(0.01), "mse", ["mae"])
    first = model.evaluate(x, y)
    model.fit(x, y, batch_size=16, epochs=5, seed=0, verbose=0)
    last = model.evaluate(x, y)
    assert last["loss"] < 0.3 * first["loss"] and last["mae"] < first["mae"]


def test_fit_is_deterministic_for_a_seed():
    x, y = toy_classification()

    def train(seed):
        model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(8, seed=0), 3, seed=0)
        history = model.fit(x, y, batch_size=20, epochs=2, seed=seed, verbose=0)
        return history.history["loss"], model.get_weights()

    (la, wa), (lb, wb), (lc, _) = train(1), train(1), train(2)
    assert la == lb and lc != la
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k])


def test_shuffle_false_and_batch_order():
    """Without shuffling one epoch of SGD equals the hand-written loop."""
    x, y = toy_classification(n=10, T=3, F=2, dtype=np.float64)
    model = rnnrs.SequenceClassifier(
        rnnrs.BasicRNNCell(4, dtype=np.float64, seed=1), 3, seed=2, optimizer=rnnrs.SGD(0.5)
    )
    model.build(2)
    params = model.get_weights()
    cell = rnnrs.BasicRNNCell(4, dtype=np.float64)
    cell.set_weights({"kernel": params["rnn/kernel"], "bias": params["rnn/bias"]})
    W, c = params["dense/kernel"], params["dense/bias"]
    for start in (0, 4, 8):  # batches of 4, 4, 2
        xb, yb = x[start : start + 4], y[start : start + 4]
        _, h, backprop = rnnrs.dynamic_rnn(cell, xb, return_backprop=True)
        loss, d_logits = rnnrs.sparse_softmax_cross_entropy(yb, h @ W + c)
        g = backprop(d_state=d_logits @ W.T).weights
        W, c = W - 0.5 * h.T @ d_logits, c - 0.5 * d_logits.sum(0)
        cell.set_weights({k: v - 0.5 * g[k] for k, v in cell.get_weights().items()})
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    got = model.get_weights()
    np.testing.assert_allclose(got["dense/kernel"], W, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got["rnn/kernel"], cell.get_weights()["kernel"], rtol=1e-12, atol=1e-14)


def test_fit_with_lengths_ignores_padding():
    """Garbage past each length changes nothing (inputs, per-step targets)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 6, 2)).astype(np.float32)
    y = rng.normal(size=(12, 6, 1)).astype(np.float32)
    lengths = rng.integers(1, 7, size=12)
    pad = np.arange(6)[None, :] >= lengths[:, None]
    x2, y2 = x.copy(), y.copy()
    x2[pad] = 1e3
    y2[pad] = -1e3

    def train(xx, yy):
        model = rnnrs.SequenceRegressor(rnnrs.BasicRNNCell(5, seed=0), output_size=1, seed=0)
        h = model.fit(
            xx,
            yy,
            batch_size=4,
            epochs=2,
            seed=0,
            sequence_length=lengths,
            verbose=0,
            validation_data=(xx, yy, lengths),
        )
        return h.history, model.predict(xx, sequence_length=lengths)

    (ha, pa), (hb, pb) = train(x, y), train(x2, y2)
    assert ha == hb
    np.testing.assert_array_equal(pa, pb)
    assert not pa[pad].any()  # predictions past the length are zero


def test_fit_updates_layers_that_were_built_before_the_model():
    x, y = toy_classification(n=32)
    cell, dense = rnnrs.BasicRNNCell(5, seed=0), rnnrs.Dense(3, seed=0)
    cell.build(3)
    dense.build(5)
    before = {**cell.get_weights(), **dense.get_weights()}
    model = rnnrs.Sequential([rnnrs.RNN(cell), dense])
    model.compile(rnnrs.Adam(0.01), "sparse_softmax_cross_entropy")
    model.fit(x, y, epochs=1, verbose=0)
    after = {**cell.get_weights(), **dense.get_weights()}
    assert all(not np.array_equal(before[k], after[k]) for k in before)
    with raises_naming(ValueError, "x"):
        model.predict(np.zeros((2, 6, 4)))  # the model knows its input size


def test_validation_and_history_keys():
    x, y = toy_classification()
    model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(8, seed=0), 3, seed=0)
    h = model.fit(x[:64], y[:64], batch_size=16, epochs=2, validation_data=(x[64:], y[64:]), verbose=0)
    assert sorted(h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    ev = model.evaluate(x[64:], y[64:])
    assert ev["loss"] == pytest.approx(h.history["val_loss"][-1], rel=1e-6)
    assert ev["accuracy"] == pytest.approx(h.history["val_accuracy"][-1])


def test_evaluate_and_predict_agree_with_direct_computation():
    x, y = toy_classification(n=40)
    model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(6, seed=0), 3, seed=0)
    model.fit(x, y, epochs=1, verbose=0)
    logits = model(x)
    probs = model.predict(x, batch_size=7)  # several batches
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(probs, rnnrs.losses.softmax(logits), rtol=1e-6)
    want_loss, _ = rnnrs.sparse_softmax_cross_entropy(y, logits)
    ev = model.evaluate(x, y, batch_size=9)
    assert ev["loss"] == pytest.approx(want_loss, rel=1e-5)
    assert ev["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == y))
    np.testing.assert_array_equal(model.predict_classes(x), logits.argmax(1))


def test_dropout_is_on_only_while_training():
    x, y = toy_classification(n=32)
    cell = rnnrs.DropoutWrapper(rnnrs.BasicRNNCell(8, seed=0), input_keep_prob=0.5, output_keep_prob=0.5, seed=1)
    model = rnnrs.SequenceClassifier(cell, 3, seed=0)
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(model.predict(x), model.predict(x))  # inference is deterministic
    assert not np.array_equal(model(x, training=True), model(x, training=True))


# -- progress -------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_is_quiet_when_not_a_terminal(capsys):
    x, y = toy_classification(n=32)
    model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(4, seed=0), 3)
    model.fit(x, y, batch_size=8, epochs=2)  # verbose="auto", stdout captured: not a TTY
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    stream = io.StringIO()
    model.fit(x, y, batch_size=8, epochs=2, stream=stream)
    assert stream.getvalue() == ""


def test_progress_bar_on_a_terminal():
    x, y = toy_classification(n=32)
    model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(4, seed=0), 3)
    term = FakeTerminal()
    model.fit(x, y, batch_size=8, epochs=2, stream=term, validation_data=(x, y))
    text = term.getvalue()
    lines = text.split("\n")
    assert len(lines) == 3 and lines[-1] == ""  # one finished line per epoch
    assert "\r" in lines[0] and "epoch 1/2 [" in lines[0] and "epoch 2/2 [" in lines[1]
    assert "4/4" in lines[1] and "loss" in lines[1] and "val_accuracy" in lines[1]
    assert "=" * 30 in lines[1]


def test_verbose_modes():
    x, y = toy_classification(n=16)
    model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(4, seed=0), 3)
    stream = io.StringIO()
    model.fit(x, y, epochs=3, verbose=2, stream=stream)
    assert stream.getvalue().count("\n") == 3 and "\r" not in stream.getvalue()
    stream = io.StringIO()
    model.fit(x, y, epochs=1, verbose=1, stream=stream)  # forced bar
    assert "[" in stream.getvalue()
    term = FakeTerminal()
    model.fit(x, y, epochs=1, verbose=0, stream=term)
    assert term.getvalue() == ""
    with raises_naming(ValueError, "verbose"):
        model.fit(x, y, verbose=3)


def test_progress_bar_unit():
    stream = FakeTerminal()
    bar = rnnrs.ProgressBar(4, "epoch 1/1", stream, width=8, interval=0.0)
    bar.update(2, {"loss": 0.5})
    bar.close({"loss": 0.25})
    parts = stream.getvalue().split("\r")
    assert parts[1].startswith("epoch 1/1 [===>....] 2/4") and "loss 0.5000" in parts[1]
    assert parts[2].startswith("epoch 1/1 [========] 4/4") and parts[2].endswith("loss 0.2500\n")


# -- generation -----------------------------------------------------------------


def trained_series_model(cell=None):
    x, y = toy_regression(n=64, T=10)
    model = rnnrs.SequenceRegressor(cell or rnnrs.OutputProjectionWrapper(rnnrs.BasicRNNCell(12, seed=0), 1, seed=0))
    model.fit(x, y, batch_size=16, epochs=2, seed=0, verbose=0)
    return model, x


def test_generate_window_is_the_chapters_loop():
    model, x = trained_series_model()
    seed = x[3, :, :]
    got = model.generate(seed, 7, window=5)
    sequence = list(seed[:, 0])
    for _ in range(7):  # the chapter: X_batch = sequence[-n_steps:]; append(y_pred[0, -1, 0])
        batch = np.array(sequence[-5:], dtype=np.float32).reshape(1, -1, 1)
        sequence.append(float(model.predict(batch)[0, -1, 0]))
    assert got.shape == (7, 1)
    np.testing.assert_allclose(got[:, 0], sequence[10:], rtol=1e-6, atol=1e-6)


def test_generate_stateful_equals_one_long_run():
    cell = rnnrs.MultiRNNCell([rnnrs.BasicRNNCell(6, seed=0), rnnrs.BasicRNNCell(6, seed=1)])
    model, x = trained_series_model(rnnrs.OutputProjectionWrapper(cell, 1, seed=0))
    got = model.generate(x[:3], 6)
    assert got.shape == (3, 6, 1)
    # Feeding seed + generated[:-1] in one pass predicts exactly the generated values.
    whole = np.concatenate([x[:3], got[:, :-1]], axis=1)
    np.testing.assert_allclose(model.predict(whole)[:, 9:], got, rtol=1e-5, atol=1e-6)
    assert model.generate(x[:3], 0).shape == (3, 0, 1)


def test_generate_needs_a_sequence_model_of_matching_size():
    x, y = toy_classification(n=16)
    clf = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(4, seed=0), 3)
    clf.build(3)
    with raises_naming(ValueError, "generate"):
        clf.generate(x[0], 3)
    reg = rnnrs.SequenceRegressor(rnnrs.BasicRNNCell(4, seed=0), output_size=2)
    with raises_naming(ValueError, "generate"):
        reg.generate(np.zeros((5, 1)), 3)
    with raises_naming(ValueError, "steps"):
        reg.generate(np.zeros((5, 2)), -1)
    with raises_naming(ValueError, "seed"):
        reg.generate(np.zeros((0, 2)), 2)


# -- save / load ----------------------------------------------------------------


MODELS = {
    "classifier": lambda: (rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(6, seed=0), 3, seed=1), "cls"),
    "classifier_f64_relu": lambda: (
        rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(5, activation="relu", dtype=np.float64, seed=0), 3),
        "cls",
    ),
    "deep_dropout": lambda: (
        rnnrs.SequenceClassifier(
            rnnrs.MultiRNNCell(
                [
                    rnnrs.DropoutWrapper(
                        rnnrs.BasicRNNCell(5, seed=i),
                        input_keep_prob=0.8,
                        output_keep_prob=0.9,
                        variational_recurrent=True,
                        seed=i,
                    )
                    for i in range(3)
                ]
            ),
            3,
        ),
        "cls",
    ),
    "projection_regressor": lambda: (
        rnnrs.SequenceRegressor(rnnrs.OutputProjectionWrapper(rnnrs.BasicRNNCell(6, seed=0), 3, seed=2)),
        "reg",
    ),
    "residual_dense_regressor": lambda: (
        rnnrs.SequenceRegressor(
            rnnrs.ResidualWrapper(rnnrs.BasicRNNCell(3, seed=0)),
            output_size=3,
            optimizer=rnnrs.RMSProp(0.01, centered=True),
        ),
        "reg",
    ),
}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_save_load_round_trip(tmp_path, kind):
    model, task = MODELS[kind]()
    x, y = toy_classification(n=40, dtype=model.dtype)
    if task == "reg":
        y = np.roll(x, -1, axis=1)
    model.fit(x, y, batch_size=10, epochs=2, seed=0, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = rnnrs.load_model(path)
    assert type(loaded) is type(model) and loaded.name == model.name
    assert loaded.loss == model.loss and loaded.metrics == model.metrics
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert repr(loaded.layers[0]) == repr(model.layers[0])
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for k, v in model.get_weights().items():
        np.testing.assert_array_equal(loaded.get_weights()[k], v)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    # The optimizer state came along: one more epoch (no shuffling, no
    # dropout difference: deterministic models only) continues identically.
    if kind != "deep_dropout":
        model.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0)
        loaded.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0)
        for k, v in model.get_weights().items():
            np.testing.assert_array_equal(loaded.get_weights()[k], v, err_msg=k)


def test_saved_file_is_plain_numpy(tmp_path):
    model, _ = MODELS["classifier"]()
    model.build(3)
    path = tmp_path / "m.rnnrs"  # any name: written exactly there
    model.save(path)
    assert path.exists() and not (tmp_path / "m.rnnrs.npz").exists()
    with np.load(path, allow_pickle=False) as data:  # no pickle needed
        config = json.loads(str(data["__rnnrs_model__"]))
        assert config["format"] == "rnnrs.model" and config["class_name"] == "SequenceClassifier"
        assert "weights/rnn/kernel" in data.files and "weights/dense/bias" in data.files
        np.testing.assert_array_equal(data["weights/dense/kernel"], model.get_weights()["dense/kernel"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.rnnrs"]  # no temporary left


def test_embedding_model_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, size=(20, 5))
    model = rnnrs.Sequential([rnnrs.Embedding(7, 4, seed=0), rnnrs.RNN(rnnrs.BasicRNNCell(5, seed=1)), rnnrs.Dense(2)])
    model.compile(rnnrs.Momentum(0.1, use_nesterov=True), "sparse_categorical_crossentropy", ["acc"])
    model.fit(ids, ids[:, 0] % 2, epochs=2, verbose=0)
    model.save(tmp_path / "e.npz")
    loaded = rnnrs.Sequential.load(tmp_path / "e.npz")
    np.testing.assert_array_equal(loaded.predict(ids), model.predict(ids))
    assert loaded.metrics == ["accuracy"] and isinstance(loaded.optimizer, rnnrs.Momentum)


def test_load_rejects_files_that_are_not_rnnrs_models(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.ones(3))
    single = tmp_path / "array.npy"
    np.save(single, np.ones(3))
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"weights": np.ones(2)}))
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, __rnnrs_model__=np.array(json.dumps({"format": "other"})))
    future = tmp_path / "future.npz"
    np.savez(future, __rnnrs_model__=np.array(json.dumps({"format": "rnnrs.model", "format_version": 99})))
    for path in (text, plain, single, pickled, wrong, future):
        with raises_naming(ValueError, "path") as info:
            rnnrs.load_model(path)
        assert "rnnrs model" in str(info.value)
    with pytest.raises(FileNotFoundError):
        rnnrs.load_model(tmp_path / "missing.npz")


def test_load_rejects_unknown_classes_and_missing_weights(tmp_path):
    model, _ = MODELS["classifier"]()
    model.build(3)
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path) as data:
        arrays = dict(data)
    config = json.loads(str(arrays["__rnnrs_model__"]))
    config["layers"][0]["config"]["cell"]["class_name"] = "NASCell"
    np.savez(tmp_path / "cell.npz", **{**arrays, "__rnnrs_model__": np.array(json.dumps(config))})
    with raises_naming(ValueError, "cell") as info:
        rnnrs.load_model(tmp_path / "cell.npz")
    assert "NASCell" in str(info.value)
    del arrays["weights/dense/bias"]
    np.savez(tmp_path / "missing.npz", **arrays)
    with raises_naming(ValueError, "path"):
        rnnrs.load_model(tmp_path / "missing.npz")
    with raises_naming(ValueError, "path"):
        rnnrs.SequenceRegressor.load(path)  # a classifier is not a regressor


def test_save_needs_a_built_model(tmp_path):
    with raises_naming(ValueError, "save"):
        rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(3), 2).save(tmp_path / "x.npz")


def test_unsaveable_cell_is_reported(tmp_path):
    class Opaque(rnnrs.BasicRNNCell):
        def __init__(self, num_units, secret=1):
            super().__init__(num_units)

    model = rnnrs.SequenceClassifier(Opaque(3), 2)
    model.build(2)
    with raises_naming(TypeError, "cell") as info:
        model.save(tmp_path / "x.npz")
    assert "secret" in str(info.value)


WRAPPERS = {"MultiRNNCell", "DropoutWrapper", "OutputProjectionWrapper", "ResidualWrapper"}
CELL_CLASSES = sorted(
    name
    for name, v in vars(rnnrs).items()
    if isinstance(v, type) and issubclass(v, rnnrs.RNNCell) and v is not rnnrs.RNNCell and name not in WRAPPERS
)


def test_every_cell_class_trains_saves_and_loads(tmp_path):
    """Cell-agnostic: every cell class of this build (BasicRNNCell today; LSTM
    and GRU once merged) fits, has exact model gradients and round-trips."""
    assert "BasicRNNCell" in CELL_CLASSES
    for name in CELL_CLASSES:
        cls = getattr(rnnrs, name)
        x, y = toy_classification(n=5, T=4, F=2, dtype=np.float64)
        model_gradient_check(
            rnnrs.SequenceClassifier(cls(3, dtype=np.float64, seed=1), 3, seed=2), x, y, np.array([4, 2, 0, 1, 3])
        )
        x, y = toy_classification(n=40)
        model = rnnrs.SequenceClassifier(rnnrs.MultiRNNCell([cls(4, seed=0), cls(5, seed=1)]), 3, seed=0)
        model.fit(x, y, batch_size=10, epochs=1, seed=0, verbose=0)
        model.save(tmp_path / f"{name}.npz")
        loaded = rnnrs.load_model(tmp_path / f"{name}.npz")
        np.testing.assert_array_equal(loaded.predict(x), model.predict(x), err_msg=name)


# -- bad input (the list and more) ----------------------------------------


def classifier():
    return rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(4, seed=0), num_classes=3, seed=0)


def test_labels_out_of_range():
    x, y = toy_classification(n=16)
    y = y.copy()
    y[5] = 3
    with raises_naming(ValueError, "y") as info:
        classifier().fit(x, y, verbose=0)
    assert "[0, 3)" in str(info.value) and "index 5" in str(info.value)
    with raises_naming(ValueError, "y"):
        classifier().fit(x, -np.ones(16, int), verbose=0)
    with raises_naming(ValueError, "y"):
        classifier().evaluate(x, np.full(16, 7))
    with raises_naming(ValueError, r"validation_data\[1\]"):
        classifier().fit(x, y % 3, validation_data=(x, y), verbose=0)


def test_mismatched_lengths_between_x_and_y():
    x, y = toy_classification(n=16)
    with raises_naming(ValueError, "y") as info:
        classifier().fit(x, y[:15], verbose=0)
    assert "16" in str(info.value) and "15" in str(info.value)
    with raises_naming(ValueError, "y"):
        classifier().fit(x, y[:, None], verbose=0)  # one label per row, not per step
    with raises_naming(ValueError, r"validation_data\[1\]"):
        classifier().fit(x, y, validation_data=(x, y[:3]), verbose=0)
    with raises_naming(ValueError, "sequence_length"):
        classifier().fit(x, y, sequence_length=np.ones(15, int), verbose=0)
    with raises_naming(ValueError, "y"):
        rnnrs.SequenceRegressor(rnnrs.BasicRNNCell(4), output_size=1).fit(x, np.zeros((16, 6, 2)), verbose=0)


def test_nan_loss_stops_training_with_a_clear_message():
    x, y = toy_classification(n=32)
    x[20, 2, 1] = np.nan
    model = classifier()
    with raises_naming(FloatingPointError, "loss") as info:
        model.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    assert "batch 3" in str(info.value) and "epoch 1" in str(info.value)
    # Stopped before applying the bad batch: the weights are finite.
    assert all(np.isfinite(w).all() for w in model.get_weights().values())


def test_diverging_training_stops():
    x, y = toy_classification(n=32)
    x *= 1e30  # gradients overflow float32
    model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(4, activation="relu", seed=0), 3, optimizer=rnnrs.SGD(1e30))
    with pytest.raises(FloatingPointError, match="expected (a )?finite"):
        model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    assert all(np.isfinite(w).all() for w in model.get_weights().values())


def test_nan_error_ends_the_progress_line():
    x, y = toy_classification(n=32)
    x[:] = np.nan
    term = FakeTerminal()
    with pytest.raises(FloatingPointError):
        classifier().fit(x, y, stream=term)
    assert term.getvalue().endswith("\n")


def test_other_bad_input():
    x, y = toy_classification(n=16)
    with raises_naming(ValueError, "x"):
        classifier().fit(x[:, :, 0], y, verbose=0)
    model = classifier()
    model.fit(x, y, verbose=0)
    with raises_naming(ValueError, "x"):
        model.predict(np.zeros((2, 6, 5)))  # built for 3 features
    with raises_naming(ValueError, "batch_size"):
        model.fit(x, y, batch_size=0)
    with raises_naming(ValueError, "epochs"):
        model.fit(x, y, epochs=-1)
    with raises_naming(TypeError, "validation_data"):
        model.fit(x, y, validation_data=x)
    with raises_naming(ValueError, "loss"):
        model.compile("adam", "hinge")
    with raises_naming(ValueError, "metrics"):
        model.compile("adam", "mse", ["accuracy"])
    with raises_naming(ValueError, "fit"):
        rnnrs.Sequential([rnnrs.RNN(rnnrs.BasicRNNCell(3))]).fit(x, y)
    with raises_naming(ValueError, "layer"):
        rnnrs.Sequential([rnnrs.Dense(3), rnnrs.Embedding(3, 2)])
    with raises_naming(TypeError, "layer"):
        rnnrs.Sequential([rnnrs.BasicRNNCell(3)])  # a cell, not a layer
    with raises_naming(ValueError, "layers"):
        stacked = rnnrs.Sequential([rnnrs.RNN(rnnrs.BasicRNNCell(3)), rnnrs.RNN(rnnrs.BasicRNNCell(3))])
        stacked.compile("adam", "mse")
        stacked.fit(x, np.zeros((16, 3)), verbose=0)


def test_layer_names_are_unique_and_weights_named():
    model = rnnrs.Sequential(
        [rnnrs.RNN(rnnrs.BasicRNNCell(3, seed=0), return_sequences=True), rnnrs.Dense(4), rnnrs.Dense(2)]
    )
    assert [layer.name for layer in model.layers] == ["rnn", "dense", "dense_1"]
    model.build(2)
    assert sorted(model.get_weights()) == [
        "dense/bias",
        "dense/kernel",
        "dense_1/bias",
        "dense_1/kernel",
        "rnn/bias",
        "rnn/kernel",
    ]
    assert model.count_params() == (5 * 3 + 3) + (3 * 4 + 4) + (4 * 2 + 2)
    assert "dense_1" in model.summary()
    with raises_naming(ValueError, "mapping"):
        model.set_weights({"lstm/kernel": np.zeros(2)})
