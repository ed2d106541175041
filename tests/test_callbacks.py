"""``rnnrs.callbacks`` (Keras' callbacks) and the fit controls around them:
``fit(callbacks=, validation_split=, initial_epoch=)``. Before these, ``fit`` took
none of the three arguments (TypeError: unexpected keyword argument)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

import rnnrs
from helpers import raises_naming
from rnnrs.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)


def data(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5, 3)).astype(np.float32)
    return x, (x.sum(axis=(1, 2)) > 0).astype(np.int64)


def classifier(lr: float = 0.01) -> rnnrs.SequenceClassifier:
    model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(4, seed=0), num_classes=2)
    model.compile(rnnrs.Adam(lr), metrics=["accuracy"])
    model.build(3)
    rng = np.random.default_rng(1)  # the same weights in every model (the Dense is not seeded)
    model.set_weights({k: rng.normal(0, 0.3, v.shape).astype(v.dtype) for k, v in model.get_weights().items()})
    return model


class Recorder(Callback):
    """Records every hook call fit makes, with its epoch/batch and logs keys."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", logs))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end", sorted(logs)))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, sorted(logs)))

    def on_batch_begin(self, batch, logs=None):  # reached through on_train_batch_begin
        self.calls.append(("batch_begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, sorted(logs)))

    def on_test_begin(self, logs=None):
        self.calls.append(("test_begin",))

    def on_test_end(self, logs=None):
        self.calls.append(("test_end", sorted(logs)))


# -- the base class and the hook order ------------------------------------------
def test_hooks_are_called_in_keras_order_with_the_model_set():
    x, y = data(10)
    model, rec = classifier(), Recorder()
    model.fit(x, y, batch_size=5, epochs=2, validation_split=0.2, callbacks=[rec], verbose=0)
    assert rec.model is model
    assert rec.params == {"epochs": 2, "steps": 2, "verbose": 0}
    batch_keys = ["accuracy", "loss"]
    epoch_keys = ["accuracy", "loss", "val_accuracy", "val_loss"]
    per_epoch = lambda e: [  # noqa: E731
        ("epoch_begin", e),
        ("batch_begin", 0),
        ("batch_end", 0, batch_keys),
        ("batch_begin", 1),
        ("batch_end", 1, batch_keys),
        ("test_begin",),
        ("test_end", ["accuracy", "loss"]),
        ("epoch_end", e, epoch_keys),
    ]
    assert rec.calls == [("train_begin", None), *per_epoch(0), *per_epoch(1), ("train_end", epoch_keys)]


def test_stop_training_set_by_a_callback_ends_fit_after_that_batch():
    class StopAfterFirstBatch(Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model.stop_training = True

    x, y = data(20)
    model, rec = classifier(), Recorder()
    history = model.fit(x, y, batch_size=5, epochs=5, callbacks=[StopAfterFirstBatch(), rec], verbose=0)
    assert len(history.epoch) == 1
    assert [c[0] for c in rec.calls].count("batch_end") == 1
    assert rec.calls[-1][0] == "train_end"


def test_callbacks_must_be_a_list_of_callback_instances():
    x, y = data(10)
    model = classifier()
    with raises_naming(TypeError, "callbacks"):
        model.fit(x, y, callbacks=EarlyStopping(monitor="loss"), verbose=0)
    with raises_naming(TypeError, "callbacks"):
        model.fit(x, y, callbacks=[lambda epoch: None], verbose=0)


def test_a_misspelt_hook_is_refused_naming_it():
    """The issue's "unknown callback hook names": a hook that would never be called."""

    class Typo(Callback):
        def on_epoch_ends(self, epoch, logs=None):
            pass

    x, y = data(10)
    with raises_naming(ValueError, "callbacks.*on_epoch_ends"):
        classifier().fit(x, y, callbacks=[Typo()], verbose=0)


# -- validation_split and initial_epoch -----------------------------------------
def test_validation_split_holds_out_the_last_rows_before_shuffling():
    x, y = data(40)
    split = classifier()
    h1 = split.fit(x, y, epochs=2, validation_split=0.25, seed=3, verbose=0)
    explicit = classifier()
    h2 = explicit.fit(x[:30], y[:30], epochs=2, validation_data=(x[30:], y[30:]), seed=3, verbose=0)
    assert h1.history == h2.history
    for k, v in split.get_weights().items():
        np.testing.assert_array_equal(v, explicit.get_weights()[k])


def test_validation_split_splits_the_lengths_too():
    x, y = data(20)
    lengths = np.arange(20) % 5 + 1
    a, b = classifier(), classifier()
    ha = a.fit(x, y, epochs=1, sequence_length=lengths, validation_split=0.5, seed=0, verbose=0)
    hb = b.fit(
        x[:10], y[:10], epochs=1, sequence_length=lengths[:10], validation_data=(x[10:], y[10:], lengths[10:]),
        seed=0, verbose=0,
    )  # fmt: skip
    assert ha.history == hb.history


def test_validation_split_bad_values():
    x, y = data(10)
    model = classifier()
    with raises_naming(ValueError, "validation_split"):
        model.fit(x, y, validation_split=0.2, validation_data=(x, y), verbose=0)
    for bad in (1.0, -0.1, 0.95):  # 0.95 of 10 rows leaves no training row
        with raises_naming(ValueError, "validation_split"):
            model.fit(x, y, validation_split=bad, verbose=0)
    with raises_naming(TypeError, "validation_split"):
        model.fit(x, y, validation_split="0.2", verbose=0)


def test_initial_epoch_numbers_the_epochs_and_epochs_is_the_last_index():
    x, y = data(10)
    model, rec = classifier(), Recorder()
    history = model.fit(x, y, epochs=5, initial_epoch=3, callbacks=[rec], verbose=0)
    assert history.epoch == [3, 4]
    assert [c[1] for c in rec.calls if c[0] == "epoch_begin"] == [3, 4]
    assert model.fit(x, y, epochs=2, initial_epoch=2, verbose=0).epoch == [3, 4]  # nothing to run
    with raises_naming(ValueError, "initial_epoch"):
        model.fit(x, y, initial_epoch=-1, verbose=0)


# -- EarlyStopping --------------------------------------------------------------
class Scripted(Callback):
    """Replaces the monitored metric by scripted values (placed before the callback under test)."""

    def __init__(self, values):
        super().__init__()
        self.values = list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.values[epoch]


def test_early_stopping_stops_after_patience_and_restores_the_best_weights_bitwise():
    class Snapshot(Callback):
        def __init__(self):
            super().__init__()
            self.weights = []

        def on_epoch_end(self, epoch, logs=None):
            self.weights.append(self.model.get_weights())

    x, y = data(20)
    model, snap = classifier(), Snapshot()
    stop = EarlyStopping(monitor="score", mode="min", patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=20, callbacks=[Scripted([3, 1, 2, 2, 0, 0]), snap, stop], verbose=0)
    assert history.epoch == [0, 1, 2, 3]  # best at epoch 1, two epochs without improvement
    assert stop.stopped_epoch == 3 and stop.best == 1 and stop.best_epoch == 1
    assert model.stop_training is True
    for k, v in model.get_weights().items():
        np.testing.assert_array_equal(v, snap.weights[1][k])
        assert not np.array_equal(v, snap.weights[3][k])


def test_early_stopping_min_delta_baseline_and_start_from_epoch():
    x, y = data(10)
    stop = EarlyStopping(monitor="score", mode="max", min_delta=0.5, patience=0)
    classifier().fit(x, y, epochs=9, callbacks=[Scripted([1, 1.4, 9, 9]), stop], verbose=0)
    assert stop.stopped_epoch == 1  # +0.4 is not an improvement of more than 0.5
    plateau = [1, 2, 2, 2, 2, 2, 2, 2, 2]
    stop = EarlyStopping(monitor="score", mode="max", patience=3)
    classifier().fit(x, y, epochs=9, callbacks=[Scripted(plateau), stop], verbose=0)
    assert stop.stopped_epoch == 4
    stop = EarlyStopping(monitor="score", mode="max", patience=3, baseline=5)
    classifier().fit(x, y, epochs=9, callbacks=[Scripted(plateau), stop], verbose=0)
    assert stop.stopped_epoch == 2  # the improvements never beat the baseline: the wait never reset
    stop = EarlyStopping(monitor="score", mode="min", start_from_epoch=3)
    h = classifier().fit(x, y, epochs=6, callbacks=[Scripted([1, 2, 3, 4, 5, 6]), stop], verbose=0)
    assert stop.stopped_epoch == 4 and len(h.epoch) == 5


def test_early_stopping_auto_mode_directions_and_missing_metric_warns():
    assert EarlyStopping(monitor="val_accuracy")._max is True
    assert EarlyStopping(monitor="val_loss")._max is False
    assert EarlyStopping(monitor="mae")._max is False
    with raises_naming(ValueError, "mode"):
        EarlyStopping(monitor="score")
    with raises_naming(ValueError, "mode"):
        EarlyStopping(mode="lowest")
    x, y = data(10)
    with pytest.warns(RuntimeWarning, match="val_loss"):
        h = classifier().fit(x, y, epochs=2, callbacks=[EarlyStopping()], verbose=0)
    assert len(h.epoch) == 2


def test_early_stopping_bad_arguments():
    with raises_naming(TypeError, "patience"):
        EarlyStopping(patience=1.5)
    with raises_naming(TypeError, "monitor"):
        EarlyStopping(monitor=None)
    with raises_naming(TypeError, "restore_best_weights"):
        EarlyStopping(restore_best_weights=1)
    with raises_naming(ValueError, "min_delta"):
        EarlyStopping(min_delta=float("nan"))


# -- ModelCheckpoint ------------------------------------------------------------
def test_model_checkpoint_writes_loadable_files_named_from_the_logs(tmp_path):
    x, y = data(20)
    model = classifier()
    path = tmp_path / "ckpt-{epoch:02d}-{loss:.3f}.npz"
    history = model.fit(x, y, epochs=3, callbacks=[ModelCheckpoint(path, monitor="loss")], verbose=0)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"ckpt-{e + 1:02d}-{v:.3f}.npz" for e, v in enumerate(history.history["loss"])]
    last = rnnrs.load_model(tmp_path / names[-1])
    for k, v in model.get_weights().items():
        np.testing.assert_array_equal(v, last.get_weights()[k])


def test_model_checkpoint_save_best_only(tmp_path):
    x, y = data(10)
    target = tmp_path / "best.npz"
    saved = []

    class Watch(Callback):
        def on_epoch_end(self, epoch, logs=None):
            saved.append(target.exists() and target.stat().st_mtime_ns)

    ckpt = ModelCheckpoint(target, monitor="score", mode="max", save_best_only=True)
    model = classifier()
    model.fit(x, y, epochs=4, callbacks=[Scripted([1, 3, 2, 5]), ckpt], verbose=0)
    assert ckpt.best == 5
    assert np.array_equal(rnnrs.load_model(target).get_weights()["dense/kernel"], model.get_weights()["dense/kernel"])
    with pytest.warns(RuntimeWarning, match="val_loss"):
        classifier().fit(x, y, epochs=1, callbacks=[ModelCheckpoint(tmp_path / "x.npz", save_best_only=True)],
                         verbose=0)  # fmt: skip
    assert not (tmp_path / "x.npz").exists()


def test_model_checkpoint_bad_filepath(tmp_path):
    with raises_naming(TypeError, "filepath"):
        ModelCheckpoint(3)
    x, y = data(10)
    with raises_naming(ValueError, "filepath"):
        classifier().fit(x, y, callbacks=[ModelCheckpoint(str(tmp_path / "{val_auc}.npz"), monitor="loss")],
                         verbose=0)  # fmt: skip


# -- LearningRateScheduler and ReduceLROnPlateau --------------------------------
def test_learning_rate_scheduler_sets_the_optimizer_rate_each_epoch():
    x, y = data(10)
    model = classifier(lr=0.1)
    seen = []

    class Seen(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(model.optimizer.learning_rate)

    h = model.fit(x, y, epochs=3, callbacks=[LearningRateScheduler(lambda e, lr: lr * 0.5), Seen()], verbose=0)
    assert seen == [0.05, 0.025, 0.0125]
    assert h.history["learning_rate"] == seen
    assert model.optimizer.learning_rate == 0.0125 and model.optimizer.last_learning_rate == 0.0125
    one_arg = LearningRateScheduler(lambda epoch: 0.001 * (epoch + 1))
    model.fit(x, y, epochs=2, callbacks=[one_arg], verbose=0)
    assert model.optimizer.learning_rate == 0.002


def test_learning_rate_scheduler_bad_schedule():
    x, y = data(10)
    with raises_naming(TypeError, "schedule"):
        LearningRateScheduler(0.1)
    with raises_naming(TypeError, "schedule"):
        classifier().fit(x, y, callbacks=[LearningRateScheduler(lambda e, lr: "fast")], verbose=0)
    with raises_naming(ValueError, "schedule"):
        classifier().fit(x, y, callbacks=[LearningRateScheduler(lambda e, lr: -1.0)], verbose=0)


def test_reduce_lr_on_plateau_waits_reduces_cools_down_and_floors():
    x, y = data(10)
    model = classifier(lr=1.0)
    cb = ReduceLROnPlateau(monitor="score", mode="min", factor=0.5, patience=2, cooldown=1, min_lr=0.2)
    h = model.fit(x, y, epochs=8, callbacks=[Scripted([1, 1, 1, 1, 1, 1, 1, 1]), cb], verbose=0)
    # the logged rate is the one the epoch trained with (before a reduction made at its end):
    # reductions at epochs 2, 4 (after one cooldown epoch) and 6 (floored at min_lr)
    assert h.history["learning_rate"] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2]
    assert model.optimizer.learning_rate == 0.2


def test_reduce_lr_on_plateau_bad_arguments_and_schedules():
    with raises_naming(ValueError, "factor"):
        ReduceLROnPlateau(factor=1.0)
    with raises_naming(ValueError, "min_lr"):
        ReduceLROnPlateau(min_lr=-1)
    model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(4, seed=0), num_classes=2)
    model.compile(rnnrs.Adam(rnnrs.schedules.ExponentialDecay(0.1, 10, 0.5)))
    x, y = data(10)
    with raises_naming(TypeError, "learning_rate"):
        model.fit(x, y, callbacks=[ReduceLROnPlateau(monitor="loss")], verbose=0)


# -- CSVLogger ------------------------------------------------------------------
def test_csv_logger_writes_one_row_per_epoch_and_appends(tmp_path):
    x, y = data(10)
    path = tmp_path / "log.csv"
    model = classifier()
    h = model.fit(x, y, epochs=2, validation_split=0.2, callbacks=[CSVLogger(path)], verbose=0)
    rows = list(csv.DictReader(path.read_text().splitlines()))
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert [float(r["val_loss"]) for r in rows] == h.history["val_loss"]
    model.fit(x, y, epochs=4, initial_epoch=2, validation_split=0.2, callbacks=[CSVLogger(path, append=True)],
              verbose=0)  # fmt: skip
    rows = list(csv.DictReader(path.read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3"]  # one header
    semi = tmp_path / "semi.csv"
    model.fit(x, y, epochs=1, callbacks=[CSVLogger(semi, separator=";")], verbose=0)
    header, row = semi.read_text().splitlines()
    assert header == "epoch;accuracy;loss;val_accuracy;val_loss"  # val_ columns added, as Keras
    assert row.endswith(";NA;NA")
    with raises_naming(ValueError, "separator"):
        CSVLogger(path, separator=";;")


# -- TerminateOnNaN -------------------------------------------------------------
def nan_model() -> rnnrs.SequenceRegressor:
    model = rnnrs.SequenceRegressor(rnnrs.BasicRNNCell(3, seed=0), output_size=1)
    model.compile(rnnrs.SGD(0.01), "mse")
    return model


def test_terminate_on_nan_stops_cleanly_where_fit_would_raise():
    x = np.random.default_rng(0).normal(size=(8, 4, 1)).astype(np.float32)
    y = np.zeros((8, 4, 1), np.float32)
    y[5] = np.inf  # the second batch of 4 (no shuffling) has an infinite target
    with pytest.raises(FloatingPointError, match="loss"):
        nan_model().fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
    model = nan_model()
    after_first = []

    class Keep(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                after_first.append(self.model.get_weights())

    with pytest.warns(RuntimeWarning, match="Batch 1"):
        h = model.fit(x, y, batch_size=4, epochs=3, shuffle=False, callbacks=[Keep(), TerminateOnNaN()], verbose=0)
    assert h.epoch == [0] and not math.isfinite(h.history["loss"][0])
    for k, v in model.get_weights().items():  # the bad batch was not applied
        np.testing.assert_array_equal(v, after_first[0][k])


def test_progress_bar_still_prints_with_callbacks():
    import io

    x, y = data(10)
    out = io.StringIO()
    classifier().fit(x, y, epochs=2, verbose=2, stream=out, callbacks=[LearningRateScheduler(lambda e, lr: lr)])
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2") and "learning_rate" in lines[1]
