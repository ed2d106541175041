"""The decoding loops in Rust (``seq2seq._fast``) against a straightforward
Python loop of ``cell(x, state)`` steps and NumPy: ids exactly equal, floats
to rounding, for every core cell, stacks, both dtypes, ``impute_finished``
on and off, sampling, beam widths 1..4, ragged EOS, ``maximum_iterations``
0 and 1, and any thread count."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import rnnrs
from rnnrs.seq2seq import _fast

V, E, B = 7, 3, 5


def make_cell(kind: str, dtype: Any) -> Any:
    if kind == "lstm":
        cell = rnnrs.LSTMCell(4, dtype=dtype, seed=1)
    elif kind == "gru":
        cell = rnnrs.GRUCell(4, dtype=dtype, seed=2)
    elif kind == "rnn":
        cell = rnnrs.BasicRNNCell(4, dtype=dtype, seed=3)
    else:
        cell = rnnrs.MultiRNNCell([rnnrs.GRUCell(5, dtype=dtype, seed=4), rnnrs.LSTMCell(4, dtype=dtype, seed=5)])
    cell.build(E)
    return cell


def setup(kind: str, dtype: Any, seed: int = 0) -> tuple[Any, np.ndarray, Any, Any]:
    rng = np.random.default_rng(seed)
    cell = make_cell(kind, dtype)
    emb = rng.normal(size=(V, E)).astype(dtype)
    dense = rnnrs.Dense(V, dtype=dtype, seed=seed)
    dense.build(cell.output_size, dtype)
    dense.set_weights({"kernel": rng.normal(scale=2.0, size=(cell.output_size, V)), "bias": rng.normal(size=V)})
    state = smap(lambda z: rng.normal(scale=0.5, size=z.shape).astype(dtype), cell.zero_state(B))
    return cell, emb, dense, state


def smap(fn: Any, *states: Any) -> Any:
    """``fn`` leaf by leaf over states of one structure (tuples, LSTMStateTuple)."""
    first = states[0]
    if isinstance(first, tuple):
        parts = [smap(fn, *p) for p in zip(*states)]
        return type(first)(*parts) if hasattr(first, "_fields") else tuple(parts)
    return fn(*states)


def project(dense: Any, h: np.ndarray) -> np.ndarray:
    w = dense.get_weights()
    return h @ w["kernel"] + w["bias"]


def rows(state: Any, keep: np.ndarray, old: Any) -> Any:
    """``where(keep, state, old)`` over a nested state."""
    return smap(lambda n, o: np.where(keep[:, None], n, o), state, old)


def python_greedy(cell, emb, dense, start, end, max_iters, impute, uniforms=None, temperature=1.0, state=None):
    """TF 1.15's dynamic_decode with a Greedy/SampleEmbeddingHelper, step by step."""
    finished = np.full(B, max_iters == 0)
    lengths = np.zeros(B, np.int32)
    x = emb[start]
    outs, ids_all = [], []
    t = 0
    while not finished.all():
        h, new_state = cell(x, state)
        logits = project(dense, h)
        if uniforms is None:
            ids = logits.argmax(axis=1)
        else:
            z = logits.astype(np.float64) / temperature
            e = np.exp(z - z.max(axis=1, keepdims=True))
            cdf = np.cumsum(e, axis=1)
            ids = np.array(
                [min(np.searchsorted(cdf[b], uniforms[t, b] * cdf[b, -1], side="right"), V - 1) for b in range(B)]
            )
        lengths = np.where(~finished, t + 1, lengths).astype(np.int32)
        if impute:
            logits = np.where(finished[:, None], 0, logits)
            ids = np.where(finished, 0, ids)
            state = rows(new_state, ~finished, state)
        else:
            state = new_state
        outs.append(logits)
        ids_all.append(ids)
        finished = finished | (ids == end) | (t + 1 >= max_iters)
        x = emb[ids]
        t += 1
    out = np.stack(outs, 1) if outs else np.zeros((B, 0, V))
    sid = np.stack(ids_all, 1).astype(np.int32) if ids_all else np.zeros((B, 0), np.int32)
    return out, sid, lengths, state


def flat(state: Any) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    smap(out.append, state)
    return out


def tol(dtype: Any) -> float:
    return 1e-4 if dtype == np.float32 else 1e-10


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn", "multi"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("impute", [False, True])
def test_greedy_and_sampling_match_the_python_loop(kind, dtype, impute):
    """Pins: ids, logits, lengths (EOS counted), T = max(lengths) and the final
    state of the Rust loop equal TF's dynamic_decode run step by step."""
    cell, emb, dense, state = setup(kind, dtype, seed=11)
    start = np.array([0, 1, 2, 3, 4])
    for end in (0, 3, 5):
        for max_iters in (0, 1, 2, 8):
            u = np.random.default_rng(end).random((max_iters, B))
            for uniforms, temp in ((None, 1.0), (u, 1.0), (u, 0.5)):
                got = _fast.greedy(cell, emb, dense, start, end, max_iters, impute, uniforms, temp, initial_state=state)
                assert got is not None
                want = python_greedy(cell, emb, dense, start, end, max_iters, impute, uniforms, temp, state)
                np.testing.assert_array_equal(got[1], want[1])
                np.testing.assert_array_equal(got[2], want[2])
                assert got[0].shape == want[0].shape and got[0].dtype == dtype
                np.testing.assert_allclose(got[0], want[0], rtol=tol(dtype), atol=tol(dtype))
                assert type(got[3]) is type(state)
                for a, b in zip(flat(got[3]), flat(want[3])):
                    np.testing.assert_allclose(a, b, rtol=tol(dtype), atol=tol(dtype))


def python_beam(cell, emb, dense, start, end, state, k, max_iters, w):
    """TF 1.15's BeamSearchDecoder step by step (full sort of the candidates)."""
    state = smap(lambda a: np.repeat(a, k, axis=0), state)
    rows_ = B * k
    lp = np.where(np.arange(rows_) % k == 0, 0.0, -np.inf)
    fin = np.arange(rows_) % k != 0
    lens = np.zeros(rows_, np.int64)
    words = np.repeat(start, k)
    steps = []
    t = 0
    while t < max_iters and not fin.all():
        h, state = cell(emb[words], state)
        logits = project(dense, h).astype(np.float64)
        m = logits.max(axis=1, keepdims=True)
        step = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
        lowest = np.finfo(h.dtype).min
        masked = np.where(np.arange(V) == end, 0.0, lowest)
        step = np.where(fin[:, None], masked[None, :], step)
        total = lp[:, None] + step
        L = lens[:, None] + ((~fin)[:, None] & (np.arange(V) != end)[None, :])
        scores = total / (((5.0 + L) / 6.0) ** w) if w else total
        idx = np.zeros(rows_, np.int64)
        ids, par, sc = (np.zeros(rows_, np.int32) for _ in range(3))
        sc = np.zeros(rows_)
        for b in range(B):
            flat_s = scores[b * k : (b + 1) * k].reshape(-1)
            order = sorted(range(flat_s.size), key=lambda i: (-flat_s[i], i))[:k]
            for i, f in enumerate(order):
                j, v = divmod(f, V)
                idx[b * k + i] = b * k + j
                ids[b * k + i], par[b * k + i], sc[b * k + i] = v, j, flat_s[f]
        lp = total[idx, ids]
        lens = lens[idx] + (~fin[idx])
        fin = fin[idx] | (ids == end)
        state = smap(lambda a, idx=idx: a[idx], state)
        words = ids
        steps.append((ids.reshape(B, k), par.reshape(B, k), sc.reshape(B, k)))
        t += 1
    return steps, state, lp.reshape(B, k), fin.reshape(B, k), lens.reshape(B, k)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn", "multi"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_beam_search_matches_the_python_loop(kind, dtype):
    """Pins TF 1.15's beam search: only beam 0 live at t = 0, finished beams
    extend with EOS at no cost, the length penalty before each top-k, ties to
    the lower index, lengths counting the EOS, the state gathered by parent."""
    cell, emb, dense, state = setup(kind, dtype, seed=21)
    start = np.array([0, 1, 2, 3, 4])
    for k in (1, 2, 3, 4):
        for w in (0.0, 0.7):
            for max_iters in (0, 1, 6):
                end = k % 3
                got = _fast.beam(cell, emb, dense, start, end, state, k, max_iters, w)
                assert got is not None
                steps, st, lp, fin, lens = python_beam(cell, emb, dense, start, end, state, k, max_iters, w)
                assert got[0].shape == (B, len(steps), k)
                for t, (ids, par, sc) in enumerate(steps):
                    np.testing.assert_array_equal(got[0][:, t], ids)
                    np.testing.assert_array_equal(got[1][:, t], par)
                    np.testing.assert_allclose(got[2][:, t], sc, rtol=tol(dtype), atol=tol(dtype))
                np.testing.assert_allclose(got[4], lp, rtol=tol(dtype), atol=tol(dtype))
                np.testing.assert_array_equal(got[5], fin)
                np.testing.assert_array_equal(got[6], lens)
                for a, b in zip(flat(got[3]), flat(st)):
                    assert a.shape[0] == B * k
                    np.testing.assert_allclose(a, b, rtol=tol(dtype), atol=tol(dtype))


def test_beam_width_one_equals_greedy():
    """Pins: a beam of width 1 takes the argmax ids up to each row's EOS."""
    cell, emb, dense, state = setup("lstm", np.float64, seed=31)
    start = np.array([0, 1, 2, 3, 4])
    g = _fast.greedy(cell, emb, dense, start, 2, 10, False, initial_state=state)
    b = _fast.beam(cell, emb, dense, start, 2, state, 1, 10, 0.0)
    assert g is not None and b is not None
    for r in range(B):
        n = g[2][r]
        np.testing.assert_array_equal(b[0][r, :n, 0], g[1][r, :n])
        assert b[6][r, 0] == n


def test_results_do_not_depend_on_the_thread_count():
    """Pins bitwise-identical decodes for 1 and 2 threads."""
    cell, emb, dense, state = setup("multi", np.float32, seed=41)
    start = np.array([0, 1, 2, 3, 4])
    u = np.random.default_rng(0).random((9, B))
    before = rnnrs.get_num_threads()
    rnnrs._rnnrs._set_parallel_work(0)
    try:
        runs = []
        for n in (1, 2):
            rnnrs.set_num_threads(n)
            g = _fast.greedy(cell, emb, dense, start, 3, 9, True, u, 0.8, initial_state=state)
            b = _fast.beam(cell, emb, dense, start, 3, state, 3, 9, 0.5)
            runs.append((g, b))
        (g1, b1), (g2, b2) = runs
        assert g1 is not None and g2 is not None and b1 is not None and b2 is not None
        for x, y in zip(g1[:3] + b1[:3], g2[:3] + b2[:3]):
            np.testing.assert_array_equal(x, y)
    finally:
        rnnrs._rnnrs._set_parallel_work(None)
        rnnrs.set_num_threads(before)


def test_the_rust_path_declines_what_it_cannot_run():
    """Pins the dispatch: wrappers other than MultiRNNCell, callable
    embeddings and Dense layers with an activation go to the Python loop."""
    cell, emb, dense, state = setup("gru", np.float32)
    start = np.zeros(B, np.int64)
    wrapped = rnnrs.ResidualWrapper(cell) if hasattr(rnnrs, "ResidualWrapper") else None
    if wrapped is not None:
        assert _fast.greedy(wrapped, emb, dense, start, 1, 3, False, initial_state=state) is None
    assert _fast.greedy(cell, lambda ids: emb[ids], dense, start, 1, 3, False, initial_state=state) is None
    tanh = rnnrs.Dense(V, activation="tanh")
    assert _fast.beam(cell, emb, tanh, start, 1, state, 2, 3, 0.0) is None
    # without an output layer the logits are the cell output (V = 4 <= 7)
    got = _fast.greedy(cell, emb, None, start, 1, 3, False, initial_state=state)
    assert got is not None and got[0].shape[2] == cell.output_size


def test_bad_arguments_raise_value_errors_naming_them():
    """Pins: the core's checks reach Python as ValueError naming the argument."""
    cell, emb, dense, state = setup("lstm", np.float64)
    with pytest.raises(ValueError, match="^start_tokens: expected ids in"):
        _fast.greedy(cell, emb, dense, np.array([0, 1, 2, 3, 9]), 1, 3, False, initial_state=state)
    with pytest.raises(ValueError, match="^end_token: expected an id in"):
        _fast.greedy(cell, emb, dense, np.zeros(B, np.int64), 7, 3, False, initial_state=state)
    with pytest.raises(ValueError, match="^maximum_iterations: expected an integer >= 0"):
        _fast.greedy(cell, emb, dense, np.zeros(B, np.int64), 1, -1, False, initial_state=state)
    with pytest.raises(ValueError, match="^beam_width: expected an integer >= 1"):
        _fast.beam(cell, emb, dense, np.zeros(B, np.int64), 1, state, 0, 3, 0.0)
    with pytest.raises(ValueError, match="^uniforms: expected shape"):
        _fast.greedy(cell, emb, dense, np.zeros(B, np.int64), 1, 3, False, np.zeros((2, B)), initial_state=state)
