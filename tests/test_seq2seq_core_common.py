"""rnnrs.seq2seq._common: the argument checks every decoder shares."""

from __future__ import annotations

import numpy as np
import pytest

import rnnrs
from rnnrs.seq2seq import _common as c


def test_embedding_from_matrix_casts_and_looks_up():
    """A [V, E] array becomes the lookup table in the cell's dtype."""
    m = np.arange(12, dtype=np.float64).reshape(4, 3)
    emb = c.as_embedding("embedding", m, np.dtype(np.float32), 3)
    assert emb.matrix is not None and emb.matrix.dtype == np.float32
    assert emb.vocab == 4 and emb.width == 3
    np.testing.assert_array_equal(emb(np.array([2, 0])), m[[2, 0]].astype(np.float32))


def test_embedding_from_layer_uses_its_matrix():
    layer = rnnrs.Embedding(5, 2, seed=1)
    emb = c.as_embedding("embedding", layer, np.dtype(np.float32), None)
    assert emb.layer is layer and emb.vocab == 5
    np.testing.assert_array_equal(emb(np.array([4])), layer.get_weights()["embeddings"][[4]])


def test_embedding_callable_checks_its_output():
    emb = c.as_embedding("embedding", lambda ids: np.ones((len(ids), 3)), np.dtype(np.float64), 3)
    assert emb.matrix is None and emb.vocab is None
    assert emb(np.array([1, 2])).shape == (2, 3) and emb.width == 3
    with pytest.raises(ValueError, match="^embedding: expected vectors of width 4"):
        emb.check_width(4)
    bad = c.as_embedding("embedding", lambda ids: np.ones((1, 3)), np.dtype(np.float64), None)
    with pytest.raises(ValueError, match="^embedding: expected the callable to return 2 vectors"):
        bad(np.array([1, 2]))


def test_embedding_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"^embedding: expected vectors of width 5 \(the cell's input size\)"):
        c.as_embedding("embedding", np.zeros((4, 3)), np.dtype(np.float32), 5)
    with pytest.raises(ValueError, match="^embedding: expected a 2-d array"):
        c.as_embedding("embedding", np.zeros(3), np.dtype(np.float32), None)
    with pytest.raises(ValueError, match="^embedding: expected a .* both sizes >= 1"):
        c.as_embedding("embedding", np.zeros((0, 3)), np.dtype(np.float32), None)
    with pytest.raises(TypeError, match="^embedding: expected"):
        c.as_embedding("embedding", "table", np.dtype(np.float32), None)


def test_start_tokens():
    np.testing.assert_array_equal(c.check_start_tokens("start_tokens", [1, 2], 2, 3), [1, 2])
    assert c.check_start_tokens("start_tokens", [1, 2], None, 3).dtype == np.int32
    np.testing.assert_array_equal(c.check_start_tokens("start_tokens", 2, 3, 3), [2, 2, 2])
    with pytest.raises(ValueError, match=r"^start_tokens: expected token ids in \[0, 3\), got 3"):
        c.check_start_tokens("start_tokens", [0, 3], 2, 3)
    with pytest.raises(ValueError, match="^start_tokens: expected token ids in"):
        c.check_start_tokens("start_tokens", [-1], 1, None)
    with pytest.raises(ValueError, match="^start_tokens: expected a 1-d array .* known batch size"):
        c.check_start_tokens("start_tokens", 1, None, 3)
    with pytest.raises(ValueError, match="^start_tokens: expected 3 token ids"):
        c.check_start_tokens("start_tokens", [1, 2], 3, 3)
    with pytest.raises(TypeError, match="^start_tokens: expected integer token ids"):
        c.check_start_tokens("start_tokens", [True], 1, 3)
    with pytest.raises(ValueError, match="^start_tokens: expected integer token ids, got non-integer"):
        c.check_start_tokens("start_tokens", [1.5], 1, 3)


def test_end_token():
    assert c.check_end_token("end_token", np.int64(2), 3) == 2
    assert c.check_end_token("end_token", np.array(1), 3) == 1
    with pytest.raises(ValueError, match=r"^end_token: expected an id in \[0, 3\)"):
        c.check_end_token("end_token", 3, 3)
    with pytest.raises(ValueError, match="^end_token: expected an id >= 0"):
        c.check_end_token("end_token", -1, None)
    for bad in (True, 1.0, "1", None):
        with pytest.raises(TypeError, match="^end_token: expected an integer token id"):
            c.check_end_token("end_token", bad, 3)


def test_output_layer():
    cell = rnnrs.GRUCell(4, dtype=np.float64)
    assert c.check_output_layer(None, cell) is None
    dense = rnnrs.Dense(6)
    assert c.check_output_layer(dense, cell) is dense
    assert dense.built and dense.input_size == 4 and dense.dtype == np.float64
    with pytest.raises(TypeError, match="^output_layer: expected None or an rnnrs.Dense"):
        c.check_output_layer(lambda h: h, cell)
    with pytest.raises(ValueError, match="^output_layer: expected a Dense layer reading the cell's output size 3"):
        c.check_output_layer(dense, rnnrs.GRUCell(3, dtype=np.float64))
    with pytest.raises(ValueError, match="^output_layer: expected a Dense layer of the cell's dtype float32"):
        c.check_output_layer(dense, rnnrs.GRUCell(4))


def test_maximum_iterations():
    assert c.maximum_iterations_arg(None, 7) == 7
    assert c.maximum_iterations_arg(np.int32(0), 7) == 0
    with pytest.raises(ValueError, match="^maximum_iterations: expected an integer >= 0, got -1"):
        c.maximum_iterations_arg(-1, 7)
    for bad in (True, 2.0, "3"):
        with pytest.raises(TypeError, match="^maximum_iterations: expected an integer >= 0"):
            c.maximum_iterations_arg(bad, 7)


def test_project_matches_dense():
    rng = np.random.default_rng(0)
    for activation in (None, "tanh"):
        dense = rnnrs.Dense(5, activation=activation, seed=2)
        dense.build(3, np.float64)
        dense.set_weights({"bias": rng.standard_normal(5)})
        h = rng.standard_normal((2, 3))
        w = dense.get_weights()
        z = h @ w["kernel"] + w["bias"]
        np.testing.assert_allclose(c.project(dense, h), z if activation is None else np.tanh(z), rtol=1e-12)
    h = rng.standard_normal((2, 3))
    assert c.project(None, h) is h
