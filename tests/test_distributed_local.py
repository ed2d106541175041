"""rnnrs.distributed without Ray, and the fixed-shard reduction of fit (no Ray needed).

Pins: ``import rnnrs`` (and ``rnnrs.distributed``) never imports ray, and
RayStrategy / predict raise ImportError naming the "rnnrs[ray]" extra when
ray is missing; shard_bounds cuts a batch by its shape alone (rows x steps); a run
resumed from a checkpoint with the same seed (initial_epoch skips the
earlier epochs' shuffles) reaches the uninterrupted run's weights, with
dropout too; dropout's mask sources are found in a fixed order (a copy's
too) and draw one key per step.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import rnnrs
from rnnrs.callbacks import ModelCheckpoint
from rnnrs.trainers.shard_rng import draw_keys, mask_sources, shard_generator, shard_generators
from rnnrs.trainers.trainer import SHARD_TOKENS, batch_steps, shard_bounds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)  # the rnnrs this test imports (installed, or on PYTHONPATH in a work tree)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_import_rnnrs_never_imports_ray():
    done = _run("import sys, rnnrs, rnnrs.distributed; assert 'ray' not in sys.modules, 'ray imported'")
    assert done.returncode == 0, done.stderr


def test_missing_ray_names_the_extra():
    code = (
        "import sys; sys.modules['ray'] = None\n"  # makes `import ray` fail as if not installed
        "from rnnrs.distributed import RayStrategy, predict\n"
        "for f in (lambda: RayStrategy(2), lambda: predict(None, None)):\n"
        "    try:\n"
        "        f()\n"
        "    except ImportError as e:\n"
        "        assert 'pip install \"rnnrs[ray]\"' in str(e), str(e)\n"
        "    else:\n"
        "        raise AssertionError('no ImportError')\n"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("rows", [1, 63, 64, 150, 256, 300, 1000])
@pytest.mark.parametrize("steps", [1, 8, 60, 100])
def test_shard_bounds_depend_on_shape_only(rows, steps):
    bounds = shard_bounds(rows, steps)
    sizes = [b - a for a, b in bounds]
    assert bounds[0][0] == 0 and bounds[-1][1] == rows
    assert all(bounds[i][1] == bounds[i + 1][0] for i in range(len(bounds) - 1))
    assert len(bounds) == max(1, min(rows, rows * steps // SHARD_TOKENS)) and max(sizes) - min(sizes) <= 1


def test_small_batches_are_one_shard_and_medium_ones_are_cut():
    """The digits demo's batches (150 x 8) stay whole (no cost); 256 x 100 is cut in 6."""
    assert shard_bounds(150, 8) == [(0, 150)]
    assert len(shard_bounds(256, 100)) == 6
    assert batch_steps([np.zeros((4, 7, 2), np.float32)]) == 7
    assert batch_steps([np.zeros((4, 7), np.int64)]) == 7  # ids
    assert batch_steps([np.zeros((4, 7), np.float32)]) == 1  # features, no time axis


def test_resume_from_checkpoint_reaches_uninterrupted_weights(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 5, 3)).astype(np.float32)
    lengths = rng.integers(1, 6, size=150)
    y = rng.integers(0, 3, size=150)

    def model():
        m = rnnrs.SequenceClassifier(rnnrs.LSTMCell(4, seed=1), 3, seed=2)
        m.compile(rnnrs.Adam(0.01), metrics=["accuracy"])
        return m

    whole = model()
    whole.fit(x, y, batch_size=100, epochs=5, seed=7, sequence_length=lengths, verbose=0)
    first = model()
    path = str(tmp_path / "ckpt-{epoch}.npz")
    first.fit(
        x, y, batch_size=100, epochs=2, seed=7, sequence_length=lengths, verbose=0, callbacks=[ModelCheckpoint(path)]
    )
    resumed = rnnrs.load_model(str(tmp_path / "ckpt-2.npz"))
    resumed.fit(x, y, batch_size=100, epochs=5, seed=7, sequence_length=lengths, verbose=0, initial_epoch=2)
    for k, v in whole.get_weights().items():
        assert np.array_equal(resumed.get_weights()[k], v), k


def _dropout_model():
    cell = rnnrs.DropoutWrapper(rnnrs.GRUCell(4, seed=1), 0.8, 0.7, 0.9, seed=5)
    m = rnnrs.Sequential([rnnrs.RNN(cell), rnnrs.Dropout(0.3, seed=6), rnnrs.Dense(3, seed=2)])
    m.compile(rnnrs.Adam(0.01), metrics=["accuracy"])
    return m


def test_mask_sources_are_found_in_a_fixed_order_and_draw_one_key_per_step_of_several_shards():
    m = _dropout_model()
    m.predict(np.zeros((1, 5, 3), np.float32))  # builds it
    sources = mask_sources(m)
    assert [type(s).__name__ for s in sources] == ["DropoutWrapper", "Dropout"]
    copy = pickle.loads(pickle.dumps(m))
    assert [type(s).__name__ for s in mask_sources(copy)] == ["DropoutWrapper", "Dropout"]
    before = [s._rng.bit_generator.state for s in sources]
    assert draw_keys(sources, 1) is None  # one shard: it draws from the generators themselves
    assert [s._rng.bit_generator.state for s in sources] == before
    keys = draw_keys(sources, 2)
    assert keys == draw_keys(mask_sources(copy), 2)  # a copy draws the same keys
    assert [s._rng.bit_generator.state for s in sources] != before
    with shard_generators(sources, keys, 3):
        inside = [s._rng for s in sources]
        assert all(np.array_equal(g.random(4), shard_generator(k, 3).random(4)) for g, k in zip(inside, keys))
    assert all(s._rng is not g for s, g in zip(sources, inside))  # their own generators are back


def test_dropout_resume_from_checkpoint_reaches_uninterrupted_weights(tmp_path):
    """The generators' positions are saved with the model: a resumed run draws the same masks."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 5, 3)).astype(np.float32)
    y = rng.integers(0, 3, size=150)
    whole = _dropout_model()
    whole.fit(x, y, batch_size=100, epochs=4, seed=7, verbose=0)
    first = _dropout_model()
    path = str(tmp_path / "ckpt-{epoch}.npz")
    first.fit(x, y, batch_size=100, epochs=2, seed=7, verbose=0, callbacks=[ModelCheckpoint(path)])
    resumed = rnnrs.load_model(str(tmp_path / "ckpt-2.npz"))
    resumed.fit(x, y, batch_size=100, epochs=4, seed=7, verbose=0, initial_epoch=2)
    for k, v in whole.get_weights().items():
        assert np.array_equal(resumed.get_weights()[k], v), k
