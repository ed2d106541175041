"""The dense layers' kernels in the extension: ``_rnnrs.affine`` (``x @ kernel
+ bias``, what ``Dense`` and the decoders' output layers run) and
``_rnnrs.scatter_add_rows`` (an ``Embedding``'s gradient), against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnnrs
from rnnrs import _rnnrs

DTYPES = [np.float32, np.float64]


def reference(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    z = x.astype(np.float64) @ kernel.astype(np.float64)
    return z if bias is None else z + bias.astype(np.float64)


def close(got: np.ndarray, want: np.ndarray, dtype: type) -> None:
    assert got.dtype == dtype
    tol = 2e-5 if dtype == np.float32 else 1e-12
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@given(
    n=st.integers(0, 70),
    i=st.integers(1, 40),
    u=st.integers(1, 90),
    with_bias=st.booleans(),
    layout=st.sampled_from(["c", "x.T", "kernel.T", "strided", "reversed"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_affine_matches_numpy(dtype: type, n: int, i: int, u: int, with_bias: bool, layout: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, i)).astype(dtype)
    kernel = rng.standard_normal((i, u)).astype(dtype)
    bias = rng.standard_normal(u).astype(dtype) if with_bias else None
    want = reference(x, kernel, bias)
    # the same values in the layouts the layers pass (transposed views, slices)
    if layout == "x.T":
        x = np.ascontiguousarray(x.T).T
    elif layout == "kernel.T":
        kernel = np.ascontiguousarray(kernel.T).T
    elif layout == "strided":
        x = np.repeat(x, 2, axis=1)[:, ::2]
        kernel = np.repeat(kernel, 3, axis=0)[::3]
    elif layout == "reversed":
        x = x[::-1].copy()[::-1]
        kernel = kernel[:, ::-1].copy()[:, ::-1]
    got = _rnnrs.affine(x, kernel, bias)
    assert got.shape == (n, u) and got.flags.c_contiguous
    close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_large_product_and_its_transposes(dtype: type) -> None:
    """A vocabulary-sized projection and the two products of its backward
    (``x.T @ dz``, ``dz @ kernel.T``) read through transposed views."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 64)).astype(dtype)
    kernel = rng.standard_normal((64, 1500)).astype(dtype) * 0.1
    bias = rng.standard_normal(1500).astype(dtype)
    dz = rng.standard_normal((300, 1500)).astype(dtype)
    close(_rnnrs.affine(x, kernel, bias), reference(x, kernel, bias), dtype)
    close(_rnnrs.affine(x.T, dz), reference(x.T, dz, None), dtype)
    close(_rnnrs.affine(dz, kernel.T), reference(dz, kernel.T, None), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_bitwise_identical_for_any_thread_count(dtype: type, parallel_everything: None) -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((257, 130)).astype(dtype)
    kernel = rng.standard_normal((130, 777)).astype(dtype)
    bias = rng.standard_normal(777).astype(dtype)
    results = []
    for threads in (1, 2, 3):
        rnnrs.set_num_threads(threads)
        results.append((_rnnrs.affine(x, kernel, bias), _rnnrs.affine(x.T, _rnnrs.affine(x, kernel))))
    for z, dw in results[1:]:
        assert np.array_equal(z, results[0][0]) and np.array_equal(dw, results[0][1])


def test_affine_refuses_bad_arguments_naming_them() -> None:
    x = np.ones((3, 4), np.float32)
    kernel = np.ones((4, 5), np.float32)
    with pytest.raises(TypeError, match="kernel: expected a 2-d numpy.float32 array, got a 2-d float64"):
        _rnnrs.affine(x, kernel.astype(np.float64))
    with pytest.raises(TypeError, match="x: expected a 2-d numpy.float32 or numpy.float64 array, got a 2-d int64"):
        _rnnrs.affine(np.ones((3, 4), np.int64), kernel)
    with pytest.raises(TypeError, match="x: expected a 2-d numpy.float32 array, got a 1-d float32"):
        _rnnrs.affine(np.ones(4, np.float32), kernel)
    with pytest.raises(TypeError, match="x: .* got list"):
        _rnnrs.affine([[1.0]], kernel)
    with pytest.raises(ValueError, match=r"kernel: expected 4 rows \(x's columns\), got shape \[5, 5\]"):
        _rnnrs.affine(x, np.ones((5, 5), np.float32))
    with pytest.raises(ValueError, match=r"bias: expected shape \[5\]"):
        _rnnrs.affine(x, kernel, np.ones(4, np.float32))
    with pytest.raises(TypeError, match="bias: expected a 1-d numpy.float32 array"):
        _rnnrs.affine(x, kernel, np.ones(5, np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
@given(
    n=st.integers(0, 60),
    rows=st.integers(1, 12),
    d=st.integers(0, 9),
    seed=st.integers(0, 2**31 - 1),
)
def test_scatter_add_rows_is_numpy_add_at_bit_for_bit(dtype: type, n: int, rows: int, d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, rows, n)  # repeated ids: several sums per row
    src = (rng.standard_normal((n, d)) * 10.0 ** rng.integers(-3, 4, (n, 1))).astype(dtype)
    want = np.zeros((rows, d), dtype)
    np.add.at(want, ids, src)
    got = _rnnrs.scatter_add_rows(ids.astype(np.int64), src, rows)
    assert got.dtype == dtype and got.shape == (rows, d)
    assert np.array_equal(got, want)


def test_scatter_add_rows_refuses_bad_arguments_naming_them() -> None:
    src = np.ones((3, 2), np.float32)
    with pytest.raises(ValueError, match=r"ids: expected ids in \[0, 4\), got 4 at index 2"):
        _rnnrs.scatter_add_rows(np.array([0, 1, 4]), src, 4)
    with pytest.raises(ValueError, match=r"ids: expected ids in \[0, 4\), got -1 at index 0"):
        _rnnrs.scatter_add_rows(np.array([-1, 1, 2]), src, 4)
    with pytest.raises(ValueError, match=r"ids: expected 3 ids \(one per row of the gradients\), got 2"):
        _rnnrs.scatter_add_rows(np.array([0, 1]), src, 4)
    with pytest.raises(TypeError, match="src: expected a 2-d numpy.float32 or numpy.float64 array"):
        _rnnrs.scatter_add_rows(np.array([0, 1, 2]), src.astype(np.int32), 4)
    with pytest.raises(TypeError):
        _rnnrs.scatter_add_rows(np.array([0.0, 1.0, 2.0]), src, 4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_and_embedding_gradients_match_numpy(dtype: type) -> None:
    """The layers through the kernels: Dense's forward and three gradients and
    Embedding's table gradient, against the NumPy expressions."""
    rng = np.random.default_rng(5)
    dense = rnnrs.Dense(7, dtype=dtype, seed=0)
    x = rng.standard_normal((4, 5, 3)).astype(dtype)
    y, bp = dense(x, return_backprop=True)
    w = dense.get_weights()
    close(y, reference(x.reshape(-1, 3), w["kernel"], w["bias"]).reshape(4, 5, 7), dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    g = bp(dy)
    close(g.inputs, (dy.astype(np.float64) @ w["kernel"].T.astype(np.float64)), dtype)
    close(g.weights["kernel"], reference(x.reshape(-1, 3).T, dy.reshape(-1, 7), None), dtype)
    close(g.weights["bias"], dy.astype(np.float64).sum(axis=(0, 1)), dtype)

    emb = rnnrs.Embedding(6, 4, dtype=dtype, seed=0)
    ids = rng.integers(0, 6, (3, 8))
    out, bp_emb = emb(ids, return_backprop=True)
    d_out = rng.standard_normal(out.shape).astype(dtype)
    want = np.zeros((6, 4), dtype)
    np.add.at(want, ids.reshape(-1), d_out.reshape(-1, 4))
    assert np.array_equal(bp_emb(d_out).weights["embeddings"], want)


@pytest.mark.parametrize("activation", [None, "tanh", "relu", "sigmoid"])
def test_outputs_handed_out_may_be_modified(activation: str | None) -> None:
    """With ``return_backprop`` the caller may write into the outputs it gets:
    a layer whose backward reads them (an activation's derivative) hands out a
    copy; Dense without activation and Embedding hand out the array itself,
    which their backward never reads."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    dy = rng.standard_normal((5, 4)).astype(np.float32)
    dense = rnnrs.Dense(4, activation=activation, seed=1)
    _, bp_clean = dense(x, return_backprop=True)
    want = bp_clean(dy)
    y, bp = dense(x, return_backprop=True)
    y[...] = 7.0
    got = bp(dy)
    assert np.array_equal(got.inputs, want.inputs)
    assert all(np.array_equal(got.weights[k], want.weights[k]) for k in want.weights)

    emb = rnnrs.Embedding(5, 2, seed=0)
    ids = np.array([[1, 2, 1]])
    out, bp_emb = emb(ids, return_backprop=True)
    out[...] = -1.0
    d = np.ones((1, 3, 2), np.float32)
    assert np.array_equal(bp_emb(d).weights["embeddings"][1], [2.0, 2.0])
