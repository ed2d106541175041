"""rnnrs.distributed on a local Ray instance (2 CPUs, started once for the session).

Pins: data-parallel training with RayStrategy gives weights bitwise equal to
strategy=None (1, 2 and 4 workers, ragged lengths so the shards hold
different token counts), and the same History; a replica killed mid-run is
recreated and the run reaches the same weights; a run resumed from a
checkpoint reaches the uninterrupted run's weights; distributed predict
equals model.predict; the Tune example runs in --quick form. Skipped, with
the reason, only when ray cannot be imported.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'rnnrs[ray]'); scripts/test.sh installs it")

import rnnrs  # noqa: E402
from rnnrs.callbacks import Callback, ModelCheckpoint  # noqa: E402
from rnnrs.distributed import RayStrategy, predict  # noqa: E402

# Ray's own deprecation notices (raised inside ray.data) are not rnnrs's to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS, T, F = 330, 60, 3  # batches of 300 rows x 60 steps: 4 shards of 75 rows; the last batch (30 rows) is one


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, T, F)).astype(np.float32)
    lengths = rng.integers(1, T + 1, size=ROWS)  # ragged: shards hold different token counts
    y = rng.integers(0, 4, size=(ROWS, T))
    return x, y, lengths


def _model():
    m = rnnrs.Sequential([rnnrs.RNN(rnnrs.GRUCell(6, seed=1), return_sequences=True), rnnrs.Dense(4, seed=2)])
    m.compile(rnnrs.Adam(0.01, clip_norm=0.5), metrics=["accuracy"])
    return m


def _fit(strategy=None, epochs=10, **kw):
    x, y, lengths = _data()
    m = kw.pop("model", None) or _model()
    m.fit(x, y, batch_size=300, epochs=epochs, seed=3, sequence_length=lengths, verbose=0, strategy=strategy, **kw)
    return m


def _same(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def reference():
    """strategy=None: 10 epochs of 2 steps = 20 steps, per-step targets with lengths."""
    return _fit()


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_ray_weights_bitwise_equal_to_one_process(reference, workers):
    m = _fit(RayStrategy(workers, cpus_per_worker=2 / max(workers, 2)))
    assert _same(m, reference)
    assert m.history.history == reference.history.history  # loss and accuracy, every epoch


class _Kill(Callback):
    """Kills replica 0 before batch 1 of epoch 2 (the step is then retried on a new one)."""

    def __init__(self, strategy):
        super().__init__()
        self.strategy = strategy
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == 2 and batch == 1:
            ray.kill(self.strategy.workers[0])


def test_killed_replica_is_recreated_and_reaches_same_weights(reference):
    strategy = RayStrategy(2, cpus_per_worker=1)
    m = _fit(strategy, callbacks=[_Kill(strategy)])
    assert strategy.restarts >= 1
    assert _same(m, reference)
    assert strategy.workers == []  # replicas end with fit


def test_resume_from_checkpoint_reaches_uninterrupted_weights(reference, tmp_path):
    path = str(tmp_path / "ckpt-{epoch:02d}.npz")
    _fit(RayStrategy(2, cpus_per_worker=1), epochs=4, callbacks=[ModelCheckpoint(path)])
    resumed = rnnrs.load_model(str(tmp_path / "ckpt-04.npz"))
    _fit(RayStrategy(2, cpus_per_worker=1), model=resumed, initial_epoch=4)
    assert _same(resumed, reference)


def test_distributed_predict_equals_local(reference):
    x, _, lengths = _data()
    local = reference.predict(x, lengths, batch_size=64)
    out = predict(reference, x, batch_size=64, sequence_length=lengths, num_workers=2, cpus_per_worker=0.5)
    assert out.dtype == local.dtype and np.array_equal(out, local)
    ds = ray.data.from_numpy(x[:, :4]).repartition(2)  # fixed-length rows from a Dataset, in input order
    on_ds = predict(reference, ds, batch_size=64, num_workers=2, cpus_per_worker=0.5)
    np.testing.assert_allclose(on_ds, reference.predict(x[:, :4], batch_size=64), rtol=1e-6, atol=1e-7)


def _dropout_model(on=True):
    """A Dropout layer and a DropoutWrapper (input, state and output masks) in one model (``on=False``: never drop)."""
    keep = (0.8, 0.7, 0.9) if on else (1.0, 1.0, 1.0)
    cell = rnnrs.DropoutWrapper(rnnrs.GRUCell(6, seed=1), *keep, seed=5)
    m = rnnrs.Sequential(
        [rnnrs.RNN(cell, return_sequences=True), rnnrs.Dropout(0.3 if on else 0.0, seed=6), rnnrs.Dense(4, seed=2)]
    )
    m.compile(rnnrs.Adam(0.01, clip_norm=0.5), metrics=["accuracy"])
    return m


@pytest.mark.parametrize("workers", [2, 3])
def test_dropout_trains_bitwise_equal_to_one_process(workers):
    """Each shard draws its masks from (the step's key, its index), and the one-shard last batch of every
    epoch from the generators themselves (the replica gets and returns their positions): replicas reproduce
    both."""
    reference = _fit(model=_dropout_model(), epochs=3)
    m = _fit(RayStrategy(workers, cpus_per_worker=2 / workers), model=_dropout_model(), epochs=3)
    assert _same(m, reference)
    assert m.history.history == reference.history.history
    assert not _same(reference, _fit(model=_dropout_model(on=False), epochs=3))  # the masks did something


def test_encoder_decoder_with_dropout_trains_bitwise_equal_to_one_process():
    """Every model kind: an EncoderDecoder (a functional Model of two inputs) with a DropoutWrapper encoder."""
    rng = np.random.default_rng(1)
    sources = [rng.integers(3, 9, size=int(rng.integers(1, 6))) for _ in range(2400)]
    targets = [s[::-1].copy() for s in sources]

    def make():
        encoder = rnnrs.DropoutWrapper(rnnrs.GRUCell(8, seed=0), output_keep_prob=0.8, seed=3)
        return rnnrs.EncoderDecoder(encoder, rnnrs.GRUCell(8, seed=1), 9, 9, 4, start_token=1, end_token=2, seed=0)

    fit = dict(batch_size=2000, epochs=2, seed=0, verbose=0)  # 2000 rows x 5 source steps: 2 shards per batch
    local, ray_model = make(), make()
    local.fit(sources, targets, **fit)
    ray_model.fit(sources, targets, strategy=RayStrategy(2, cpus_per_worker=1), **fit)
    assert _same(ray_model, local)


def _dataset(x, y, lengths, blocks=3):
    rows = [{"x": x[i], "y": y[i], "sequence_length": int(lengths[i])} for i in range(len(x))]
    return ray.data.from_items(rows).repartition(blocks)


def test_dataset_trains_as_its_arrays_on_replicas(reference):
    """fit(dataset) reads the rows once, in order: bitwise the run on the same arrays."""
    x, y, lengths = _data()
    m = _model()
    m.fit(_dataset(x, y, lengths), batch_size=300, epochs=10, seed=3, verbose=0, strategy=RayStrategy(2))
    assert _same(m, reference)
    assert m.history.history == reference.history.history
    val = (x[:40], y[:40], lengths[:40])
    on_arrays = _model().fit(
        x, y, batch_size=300, epochs=1, seed=3, sequence_length=lengths, validation_data=val, verbose=0
    )
    on_ds = _model().fit(
        _dataset(x, y, lengths), batch_size=300, epochs=1, seed=3, validation_data=_dataset(*val, blocks=2), verbose=0
    )
    assert on_ds.history == on_arrays.history


def test_dataset_arguments_are_checked():
    x, y, lengths = _data()
    ds = _dataset(x[:8], y[:8], lengths[:8])
    with pytest.raises(ValueError, match="^y: expected None with a ray.data.Dataset x"):
        _model().fit(ds, y[:8], verbose=0)
    with pytest.raises(ValueError, match="^x: expected a Dataset with columns 'x' and 'y'"):
        _model().fit(ds.drop_columns(["y"]), verbose=0)
    with pytest.raises(ValueError, match="^x: expected a Dataset with columns 'x' and 'y'.*'label'"):
        _model().fit(ds.rename_columns({"y": "label"}), verbose=0)
    ragged = ray.data.from_items([{"x": np.zeros((n, F), np.float32), "y": np.zeros(n, np.int64)} for n in (2, 3)])
    with pytest.raises(ValueError, match="^x: expected column 'x' to hold rows of one shape"):
        _model().fit(ragged, verbose=0)
    with pytest.raises(TypeError, match="^y: expected the targets"):
        _model().fit(x, verbose=0)


def test_strategy_refuses_what_replicas_cannot_reproduce():
    x, y, lengths = _data()
    with pytest.raises(TypeError, match="^strategy: expected None or a rnnrs.distributed strategy"):
        _model().fit(x, y, epochs=1, verbose=0, strategy="ray")
    with pytest.raises(ValueError, match="^num_workers: expected an integer >= 1, got 0"):
        RayStrategy(0)
    with pytest.raises(ValueError, match="^cpus_per_worker: expected a finite number > 0"):
        RayStrategy(1, cpus_per_worker=0)


def test_tune_example_quick():
    env = dict(os.environ)  # the rnnrs this test imports (installed, or on PYTHONPATH in a work tree)
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "tune_digits.py"), "--quick"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "best config:" in done.stdout and "test accuracy" in done.stdout
