"""The fused softmax cross-entropy (``_rnnrs.softmax_cross_entropy``, used by
``rnnrs.sparse_softmax_cross_entropy``, ``rnnrs.sequence_loss`` and
``rnnrs.seq2seq.sequence_loss``) against the NumPy formula it replaced:
float32/float64, weights, non-finite logits, thread-count determinism and
bad ids."""

import numpy as np
import pytest

import rnnrs
from rnnrs import _rnnrs, seq2seq

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 1e-6, np.float64: 1e-12}


def numpy_xent(z, ids):
    """The NumPy code the Rust kernel replaced (float64 loss, z.dtype gradient)."""
    top = z.max(axis=-1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(z - top)
        total = e.sum(axis=-1, keepdims=True)
        z_label = np.take_along_axis(z, ids[..., None], axis=-1)[..., 0].astype(np.float64)
        ce = np.log(total[..., 0]).astype(np.float64) + (top[..., 0].astype(np.float64) - z_label)
        d = e / total
    np.put_along_axis(d, ids[..., None], np.take_along_axis(d, ids[..., None], axis=-1) - 1, axis=-1)
    return ce, d


def close(got, want, rel):
    finite = np.abs(want[np.isfinite(want)])
    np.testing.assert_allclose(got, want, rtol=rel, atol=rel * max(1.0, float(np.max(finite, initial=0))))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("classes", [1, 2, 7, 8, 33, 1000])
def test_kernel_matches_numpy(dtype, classes):
    """Per-row loss and gradient agree with the NumPy formula (1e-6 f32, 1e-12 f64)."""
    rng = np.random.default_rng(classes)
    z = (rng.normal(size=(37, classes)) * 4).astype(dtype)
    ids = rng.integers(0, classes, 37)
    ce, d = _rnnrs.softmax_cross_entropy(z, ids)
    want_ce, want_d = numpy_xent(z, ids)
    assert ce.dtype == np.float64 and d.dtype == dtype and d.shape == z.shape
    close(ce, want_ce, TOL[dtype])
    close(d, want_d, TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_reads_strided_logits(dtype):
    """A non-contiguous view gives what its contiguous copy gives."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=(6, 20)).astype(dtype)[:, ::2]
    ids = rng.integers(0, 10, 6)
    a = _rnnrs.softmax_cross_entropy(z, ids)
    b = _rnnrs.softmax_cross_entropy(np.ascontiguousarray(z), ids)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_softmax_cross_entropy_matches_numpy_with_weights(dtype):
    """The public loss (value and gradient) with and without weights."""
    rng = np.random.default_rng(2)
    z = (rng.normal(size=(4, 5, 50)) * 3).astype(dtype)
    ids = rng.integers(0, 50, (4, 5))
    w = rng.uniform(0, 2, (4, 5))
    w[0, :2] = 0
    ce, d = numpy_xent(z, ids)
    value, grad = rnnrs.sparse_softmax_cross_entropy(ids, z)
    assert value == pytest.approx(ce.mean(), rel=TOL[dtype])
    close(grad, d / dtype(ids.size), TOL[dtype])
    value, grad = rnnrs.sparse_softmax_cross_entropy(ids, z, w)
    wd = w.astype(dtype)
    norm = wd.astype(np.float64).sum()
    assert value == pytest.approx((wd * ce).sum() / norm, rel=TOL[dtype])
    close(grad, d * (wd / dtype(norm))[..., None], TOL[dtype])
    assert grad.dtype == dtype
    value, grad = rnnrs.sequence_loss(z, ids, w)
    assert value == pytest.approx((wd * ce).sum() / norm, rel=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_seq2seq_sequence_loss_matches_numpy(dtype):
    """``seq2seq.sequence_loss`` with every reduction keeps the NumPy formula's values."""
    rng = np.random.default_rng(3)
    z = (rng.normal(size=(3, 4, 9)) * 2).astype(dtype)
    ids = rng.integers(0, 9, (3, 4))
    w = rng.uniform(0, 1, (3, 4))
    w[1] = 0
    ce, d = numpy_xent(z, ids)
    for at, ab in [(True, True), (False, True), (True, False), (False, False)]:
        value, grad = seq2seq.sequence_loss(z, ids, w, average_across_timesteps=at, average_across_batch=ab)
        axes = tuple(a for a, on in ((0, ab), (1, at)) if on)
        if axes:
            div = w.sum(axis=axes)
            safe = np.where(div == 0, 1.0, div)
            want = np.where(div == 0, 0.0, (w * ce).sum(axis=axes) / safe)
            sc = np.expand_dims(np.where(div == 0, 0.0, 1 / safe), axes) if np.ndim(div) else 1 / safe
            want_d = d * (w * sc)[..., None].astype(dtype)
        else:
            want, want_d = w * ce, d * w[..., None].astype(dtype)
        close(np.asarray(value, dtype=np.float64), want, TOL[dtype] * 10 if dtype == np.float32 else TOL[dtype])
        close(grad, want_d, TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_finite_logits_propagate_as_numpy_did(dtype):
    """NaN rows, +inf maxima and all -inf rows are NaN; -inf entries get probability 0;
    a -inf label logit an inf loss; a gap beyond the float range stays finite."""
    inf, nan = np.inf, np.nan
    z = np.array(
        [[1, nan, 0], [inf, 0, 1], [-inf, -inf, -inf], [-inf, 0, 1], [-inf, 0, 1], [3e38, -3e38, 0]], dtype=dtype
    )
    ids = np.array([0, 1, 0, 0, 1, 1])
    ce, d = _rnnrs.softmax_cross_entropy(z, ids)
    want_ce, want_d = numpy_xent(z, ids)
    np.testing.assert_array_equal(np.isnan(ce), np.isnan(want_ce))
    np.testing.assert_array_equal(np.isnan(d), np.isnan(want_d))
    np.testing.assert_array_equal(np.isinf(ce), np.isinf(want_ce))
    ok = ~np.isnan(want_ce)
    close(ce[ok], want_ce[ok], TOL[dtype])
    close(d[ok], want_d[ok], TOL[dtype])
    assert ce[3] == inf and d[3, 0] == -1
    value, grad = rnnrs.sparse_softmax_cross_entropy(ids[3:], z[3:])
    assert value == inf and np.isfinite(grad).all()


def test_bitwise_identical_for_any_thread_count():
    """The rows run on the pool; 1, 2 and 3 threads give the same bits."""
    rng = np.random.default_rng(4)
    z = (rng.normal(size=(640, 301)) * 5).astype(np.float32)
    ids = rng.integers(0, 301, 640)
    before = rnnrs.get_num_threads()
    _rnnrs._set_parallel_work(0)
    try:
        runs = []
        for threads in (1, 2, 3):
            rnnrs.set_num_threads(threads)
            runs.append(_rnnrs.softmax_cross_entropy(z, ids, np.full(640, 0.25)))
    finally:
        _rnnrs._set_parallel_work(None)
        rnnrs.set_num_threads(before)
    for ce, d in runs[1:]:
        assert ce.tobytes() == runs[0][0].tobytes()
        assert d.tobytes() == runs[0][1].tobytes()


def test_bad_ids_and_arguments():
    """Ids out of range name their argument (the public losses keep their messages);
    the kernel re-checks ids, lengths and dtypes."""
    z = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match=r"^labels: "):
        rnnrs.sparse_softmax_cross_entropy([0, 4], z)
    with pytest.raises(ValueError, match=r"^targets: "):
        rnnrs.sequence_loss(z[None], [[0, -1]])
    with pytest.raises(ValueError, match=r"^targets: "):
        seq2seq.sequence_loss(z[None], [[0, 7]], np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"^targets: expected class ids in \[0, 4\), got 4 at index 1"):
        _rnnrs.softmax_cross_entropy(z, np.array([0, 4]), None, "targets")
    with pytest.raises(ValueError, match=r"^labels: expected class ids in \[0, 4\), got -1 at index 0"):
        _rnnrs.softmax_cross_entropy(z, np.array([-1, 0]))
    with pytest.raises(ValueError, match=r"^labels: expected 2 class ids"):
        _rnnrs.softmax_cross_entropy(z, np.array([0]))
    with pytest.raises(ValueError, match=r"^scale: expected 2 row scales"):
        _rnnrs.softmax_cross_entropy(z, np.array([0, 0]), np.ones(3))
    with pytest.raises(TypeError, match=r"^logits: expected a 2-d numpy.float32 or numpy.float64 array"):
        _rnnrs.softmax_cross_entropy(z.astype(np.float16), np.array([0, 0]))
    with pytest.raises(ValueError, match=r"^logits: expected an array \[N, num_classes\] with num_classes >= 1"):
        _rnnrs.softmax_cross_entropy(np.zeros((2, 0)), np.array([0, 0]))
