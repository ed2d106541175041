"""rnnrs.seq2seq.sequence_loss (TF 1.15's four reduction flags) and tile_batch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnnrs
from rnnrs import LSTMStateTuple, seq2seq

# The flag combinations TF 1.15 accepts (avg_t, avg_b, sum_t, sum_b) and the shape of the value.
COMBOS = [
    ((True, True, False, False), ()),
    ((False, False, True, True), ()),
    ((True, False, False, False), ("B",)),
    ((False, True, False, False), ("T",)),
    ((False, False, True, False), ("B",)),
    ((False, False, False, True), ("T",)),
    ((False, False, False, False), ("B", "T")),
]


def ref_loss(logits, targets, weights, avg_t, avg_b, sum_t, sum_b):
    """TF 1.15's sequence_loss, transcribed (div_no_nan: 0 where the divisor is 0)."""
    z = logits.astype(np.float64)
    lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
    ce = (lse - np.take_along_axis(z, targets[..., None], -1)[..., 0]) * weights

    def div(a, b):
        return np.where(b == 0, 0.0, a / np.where(b == 0, 1, b))

    if avg_t and avg_b:
        return div(ce.sum(), weights.sum())
    if sum_t and sum_b:
        return div(ce.sum(), np.count_nonzero(weights))
    if avg_t or avg_b:
        axis = 0 if avg_b else 1
        return div(ce.sum(axis), weights.sum(axis))
    if sum_t or sum_b:
        axis = 0 if sum_b else 1
        return div(ce.sum(axis), np.count_nonzero(weights, axis=axis))
    return ce


@given(seed=st.integers(0, 2**16), combo=st.sampled_from(COMBOS), zero_row=st.booleans())
def test_sequence_loss_matches_tf_reductions_and_gradient(seed, combo, zero_row):
    """Value per TF 1.15's reductions (incl. all-zero weight rows → 0) and d_logits = d value.sum()."""
    flags, shape = combo
    rng = np.random.default_rng(seed)
    b, t, v = 3, 4, 5
    logits = rng.standard_normal((b, t, v))
    targets = rng.integers(0, v, (b, t))
    weights = rng.integers(0, 3, (b, t)).astype(np.float64)
    if zero_row:
        weights[1] = 0
    value, d = seq2seq.sequence_loss(logits, targets, weights, *flags)
    expected = ref_loss(logits, targets, weights, *flags)
    sizes = {"B": b, "T": t}
    assert np.shape(value) == tuple(sizes[s] for s in shape)
    if not shape:
        assert isinstance(value, float)
    np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-14)
    eps = 1e-6
    for _ in range(4):
        idx = tuple(int(rng.integers(0, n)) for n in logits.shape)
        up, down = logits.copy(), logits.copy()
        up[idx] += eps
        down[idx] -= eps
        fd = (np.sum(ref_loss(up, targets, weights, *flags)) - np.sum(ref_loss(down, targets, weights, *flags))) / (
            2 * eps
        )
        np.testing.assert_allclose(d[idx], fd, rtol=1e-5, atol=1e-8)


def test_sequence_loss_default_agrees_with_rnnrs_sequence_loss():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 3, 4)).astype(np.float32)
    targets = rng.integers(0, 4, (2, 3))
    weights = rnnrs.sequence_mask([3, 1], 3)
    value, d = seq2seq.sequence_loss(logits, targets, weights)
    old_value, old_d = rnnrs.sequence_loss(logits, targets, weights)
    assert value == pytest.approx(old_value, rel=1e-6)
    np.testing.assert_allclose(d, old_d, rtol=1e-6)
    assert d.dtype == np.float32
    value, d = seq2seq.sequence_loss(logits, targets, np.zeros((2, 3)))
    assert value == 0.0 and not d.any()
    assert seq2seq.sequence_loss(logits, targets, None)[0] == pytest.approx(rnnrs.sequence_loss(logits, targets)[0])


def test_sequence_loss_bad_arguments():
    logits, targets, weights = np.zeros((2, 3, 4)), np.zeros((2, 3), int), np.ones((2, 3))
    with pytest.raises(ValueError, match="^sum_over_timesteps: expected False when average_across_timesteps"):
        seq2seq.sequence_loss(logits, targets, weights, sum_over_timesteps=True)
    with pytest.raises(ValueError, match="^sum_over_batch: expected False when average_across_batch"):
        seq2seq.sequence_loss(logits, targets, weights, average_across_timesteps=False, sum_over_batch=True)
    with pytest.raises(ValueError, match="^sum_over_batch: expected False when average_across_timesteps"):
        seq2seq.sequence_loss(logits, targets, weights, average_across_batch=False, sum_over_batch=True)
    with pytest.raises(ValueError, match="^sum_over_timesteps: expected False when average_across_batch"):
        seq2seq.sequence_loss(logits, targets, weights, average_across_timesteps=False, sum_over_timesteps=True)
    with pytest.raises(ValueError, match="^logits: expected a 3-d array"):
        seq2seq.sequence_loss(np.zeros((2, 4)), targets, weights)
    with pytest.raises(ValueError, match=r"^targets: expected shape \(2, 3\)"):
        seq2seq.sequence_loss(logits, np.zeros((2, 2), int), weights)
    with pytest.raises(ValueError, match=r"^targets: expected class ids in \[0, 4\)"):
        seq2seq.sequence_loss(logits, np.full((2, 3), 4), weights)
    with pytest.raises(ValueError, match=r"^weights: expected shape \(2, 3\)"):
        seq2seq.sequence_loss(logits, targets, np.ones(3))
    with pytest.raises(TypeError, match="^average_across_batch: expected True or False"):
        seq2seq.sequence_loss(logits, targets, weights, average_across_batch=1)
    with pytest.raises(ValueError, match="^softmax_loss_function: expected None"):
        seq2seq.sequence_loss(logits, targets, weights, softmax_loss_function=lambda **k: 0)


def test_tile_batch_repeats_rows_in_place_through_structures():
    a = np.arange(6).reshape(3, 2)
    np.testing.assert_array_equal(seq2seq.tile_batch(a, 2), [[0, 1], [0, 1], [2, 3], [2, 3], [4, 5], [4, 5]])
    state = (LSTMStateTuple(a, a + 10), None, [a.astype(np.float32)], {"m": np.arange(3)})
    tiled = seq2seq.tile_batch(state, 3)
    assert isinstance(tiled[0], LSTMStateTuple) and tiled[1] is None and isinstance(tiled[2], list)
    np.testing.assert_array_equal(tiled[0].h, np.repeat(a + 10, 3, axis=0))
    assert tiled[2][0].dtype == np.float32 and tiled[2][0].shape == (9, 2)
    np.testing.assert_array_equal(tiled[3]["m"], [0, 0, 0, 1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(seq2seq.tile_batch(a, 1), a)


def test_tile_batch_bad_arguments():
    with pytest.raises(ValueError, match="^multiplier: expected an integer >= 1, got 0"):
        seq2seq.tile_batch(np.zeros((2, 2)), 0)
    with pytest.raises(TypeError, match="^multiplier: expected an integer >= 1"):
        seq2seq.tile_batch(np.zeros((2, 2)), 2.0)
    with pytest.raises(ValueError, match=r"^t\[1\]\.h: expected an array of rank >= 1"):
        seq2seq.tile_batch((np.zeros(2), LSTMStateTuple(np.zeros((2, 1)), np.float64(1.0))), 2)
    with pytest.raises(TypeError, match="^t: expected a numeric array"):
        seq2seq.tile_batch(np.array(["a"]), 2)
