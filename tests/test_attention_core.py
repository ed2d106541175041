"""The attention wrapper's core bindings (private ``_rnnrs.attention_forward`` /
``attention_backward``): shapes, errors that name the argument, a small NumPy
forward of the same maths, and float64 finite differences of a few gradients
through the binding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnrs import _rnnrs

B, T, I, H, TM, DM, U, A = 3, 4, 2, 3, 5, 4, 3, 2


def make(kind="bahdanau", normalize=False, scale=False, layer=True, cell="basic_rnn", dtype=np.float64, seed=0):
    """A core cell of input size I + A and every array of a call."""
    rng = np.random.default_rng(seed)
    a = A if layer else DM
    u = H if kind == "luong" else U

    def arr(*shape, s=0.5):
        return (rng.uniform(-s, s, size=shape)).astype(dtype)

    if cell == "basic_rnn":
        cell_w = {"kernel": arr(I + a + H, H), "bias": arr(H)}
        parts = [arr(B, H)]
    else:
        cell_w = {"kernel": arr(I + a + H, 4 * H), "bias": arr(4 * H)}
        parts = [arr(B, H), arr(B, H)]
    core = _rnnrs.Cell(cell, np.dtype(dtype).name, {}, cell_w)
    weights = {"memory_layer/kernel": arr(DM, u)}
    if kind == "bahdanau":
        weights["query_layer/kernel"] = arr(H, u)
        weights["attention_v"] = arr(u, s=1.0)
        if normalize:
            weights["attention_g"] = np.array(1.3, dtype=dtype)
            weights["attention_b"] = arr(u, s=0.2)
    elif scale:
        weights["attention_g"] = np.array(0.8, dtype=dtype)
    if layer:
        weights["attention_layer/kernel"] = arr(H + DM, a)
    call = {
        "x": arr(B, T, I, s=1.0),
        "lengths": np.array([4, 0, 2], dtype=np.int64),
        "state_parts": parts,
        "initial_attention": arr(B, a),
        "memory": arr(B, TM, DM, s=1.0),
        "memory_lengths": np.array([5, 2, 3], dtype=np.int64),
        "weights": weights,
    }
    return core, cell_w, call


def run(core, call, kind="bahdanau", normalize=False, scale=False, output_attention=True, history=True):
    return _rnnrs.attention_forward(
        core,
        call["x"],
        call["lengths"],
        call["state_parts"],
        call["initial_attention"],
        call["memory"],
        call["memory_lengths"],
        call["weights"],
        kind,
        normalize,
        scale,
        output_attention,
        history,
    )


def numpy_luong_basic_rnn(cell_w, call, scale_g=None):
    """TF 1.15's AttentionWrapper(BasicRNNCell, LuongAttention) with an attention
    layer and output_attention=True, in NumPy, row by row."""
    x, mem, w = call["x"], call["memory"], call["weights"]
    out = np.zeros((B, T, A))
    final_a = call["initial_attention"].copy()
    for b in range(B):
        m = call["memory_lengths"][b]
        values = mem[b, :m]
        keys = values @ w["memory_layer/kernel"]
        h = call["state_parts"][0][b]
        a = call["initial_attention"][b]
        for t in range(call["lengths"][b]):
            h = np.tanh(np.concatenate([x[b, t], a, h]) @ cell_w["kernel"] + cell_w["bias"])
            s = keys @ h * (1.0 if scale_g is None else scale_g)
            alpha = np.exp(s - s.max())
            alpha /= alpha.sum()
            c = alpha @ values
            a = np.concatenate([h, c]) @ w["attention_layer/kernel"]
            out[b, t] = a
        final_a[b] = a
    return out, final_a


def test_shapes_and_a_numpy_forward():
    core, cell_w, call = make(kind="luong", scale=True, seed=1)
    outputs, state, attention, alignments, history, tape = run(core, call, kind="luong", scale=True)
    assert outputs.shape == (B, T, A) and outputs.dtype == np.float64
    assert [p.shape for p in state] == [(B, H)]
    assert attention.shape == (B, A) and alignments.shape == (B, TM)
    assert history is not None and history.shape == (T, B, TM)
    assert isinstance(tape, _rnnrs.AttentionTape)
    want_out, want_a = numpy_luong_basic_rnn(cell_w, call, scale_g=0.8)
    np.testing.assert_allclose(outputs, want_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(attention, want_a, rtol=1e-12, atol=1e-12)
    # masking: the row of length 0 keeps its state and gets zero alignments;
    # memory positions past a row's length get exactly zero weight
    np.testing.assert_array_equal(state[0][1], call["state_parts"][0][1])
    assert not alignments[1].any() and not outputs[1].any()
    assert not history[:, 2, 3:].any() and not history[2:, 2].any()
    np.testing.assert_allclose(history[:2, 2].sum(axis=1), 1.0)
    _, _, _, _, none, _ = run(core, call, kind="luong", scale=True, history=False)
    assert none is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_shapes_and_names(dtype):
    core, cell_w, call = make(kind="bahdanau", normalize=True, cell="lstm", dtype=dtype)
    outputs, state, attention, alignments, _, tape = run(core, call, normalize=True)
    assert outputs.dtype == dtype
    d_x, d_state, d_a0, d_memory, d_w = _rnnrs.attention_backward(
        tape, np.ones_like(outputs), [np.ones_like(p) for p in state], None, np.ones_like(alignments)
    )
    assert d_x.shape == call["x"].shape and d_x.dtype == dtype
    assert [p.shape for p in d_state] == [(B, H), (B, H)]
    assert d_a0.shape == call["initial_attention"].shape
    assert d_memory.shape == call["memory"].shape
    assert sorted(d_w) == sorted([*cell_w, *call["weights"]])
    for name, g in d_w.items():
        want = cell_w[name] if name in cell_w else call["weights"][name]
        assert g.shape == want.shape and g.dtype == dtype, name
    # masked memory positions get no gradient
    assert not d_memory[1, 2:].any() and not d_memory[2, 3:].any()
    # all gradients None: zeros
    zeros = _rnnrs.attention_backward(tape, None, None, None, None)
    assert not zeros[0].any() and not zeros[3].any()


def loss_and_grads(core, call, kind, normalize, scale, output_attention, seed=5):
    """A random linear loss of every result, and its gradients by name."""
    rng = np.random.default_rng(seed)
    outputs, state, attention, alignments, _, tape = run(
        core, call, kind, normalize, scale, output_attention, history=False
    )
    w_out = rng.normal(size=outputs.shape)
    w_state = [rng.normal(size=p.shape) for p in state]
    w_att = rng.normal(size=attention.shape)
    w_al = rng.normal(size=alignments.shape)

    def loss(c):
        o, s, a, al, _, _ = run(core, c, kind, normalize, scale, output_attention, history=False)
        state_term = sum((p * w).sum() for p, w in zip(s, w_state))
        return (o * w_out).sum() + state_term + (a * w_att).sum() + (al * w_al).sum()

    d_x, d_state, d_a0, d_memory, d_w = _rnnrs.attention_backward(tape, w_out, w_state, w_att, w_al)
    grads = {"x": d_x, "initial_attention": d_a0, "memory": d_memory, "state0": d_state[0], **d_w}
    return loss, grads


def finite_difference(loss, call, get, index, eps=1e-6):
    plus = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in call.items()}
    plus["weights"] = {k: v.copy() for k, v in call["weights"].items()}
    plus["state_parts"] = [p.copy() for p in call["state_parts"]]
    minus = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in call.items()}
    minus["weights"] = {k: v.copy() for k, v in call["weights"].items()}
    minus["state_parts"] = [p.copy() for p in call["state_parts"]]
    get(plus)[index] += eps
    get(minus)[index] -= eps
    return (loss(plus) - loss(minus)) / (2 * eps)


@pytest.mark.parametrize(
    ("kind", "normalize", "scale", "output_attention"),
    [("bahdanau", True, False, True), ("bahdanau", False, False, False), ("luong", False, True, True)],
)
def test_gradients_match_finite_differences(kind, normalize, scale, output_attention):
    core, _, call = make(kind=kind, normalize=normalize, scale=scale, seed=3)
    loss, grads = loss_and_grads(core, call, kind, normalize, scale, output_attention)
    checks = {
        "x": lambda c: c["x"],
        "memory": lambda c: c["memory"],
        "initial_attention": lambda c: c["initial_attention"],
        "state0": lambda c: c["state_parts"][0],
        **{name: (lambda c, n=name: c["weights"][n]) for name in call["weights"]},
    }
    rng = np.random.default_rng(0)
    for name, get in checks.items():
        g = grads[name]
        for _ in range(4):
            index = tuple(int(rng.integers(n)) for n in g.shape)
            fd = finite_difference(loss, call, get, index)
            assert g[index] == pytest.approx(fd, rel=1e-6, abs=1e-7), (name, index)


def test_errors_name_the_argument():
    core, _, call = make(seed=2)

    def call_with(**changes):
        return run(core, {**call, **changes})

    with pytest.raises(ValueError, match=r"memory_sequence_length: expected values in \[1, 5\].*0 at index 1"):
        call_with(memory_lengths=np.array([5, 0, 3], dtype=np.int64))
    with pytest.raises(ValueError, match=r"sequence_length: expected values in \[0, 4\]"):
        call_with(lengths=np.array([5, 0, 3], dtype=np.int64))
    with pytest.raises(TypeError, match="sequence_length: expected a 1-d numpy.int64 array, got a 1-d int32 array"):
        call_with(lengths=np.array([4, 0, 2], dtype=np.int32))
    with pytest.raises(TypeError, match="memory: expected a 3-d numpy.float64 array, got a 3-d float32 array"):
        call_with(memory=call["memory"].astype(np.float32))
    with pytest.raises(ValueError, match=r"memory: expected shape \[3, Tm, Dm\]"):
        call_with(memory=call["memory"][:2])
    with pytest.raises(ValueError, match=r"initial_attention: expected shape \[3, 2\], got shape \[3, 1\]"):
        call_with(initial_attention=call["initial_attention"][:, :1].copy())
    with pytest.raises(ValueError, match=r"inputs: expected shape \[3, 4, 2\]"):
        call_with(x=call["x"][:, :, :1].copy())
    with pytest.raises(TypeError, match="initial_state: expected a list of state parts"):
        call_with(state_parts=call["state_parts"][0])
    weights = dict(call["weights"])
    del weights["attention_v"]
    with pytest.raises(ValueError, match='weights: expected an entry "attention_v"'):
        call_with(weights=weights)
    with pytest.raises(ValueError, match=r'weights: expected only the weights of a BahdanauAttention.*"bias"'):
        call_with(weights={**call["weights"], "bias": np.zeros(3)})
    with pytest.raises(ValueError, match=r"query_layer/kernel: expected shape \[3, 3\], got shape \[2, 3\]"):
        call_with(weights={**call["weights"], "query_layer/kernel": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="kind: expected 'bahdanau' or 'luong', got \"dot\""):
        run(core, call, kind="dot")
    with pytest.raises(ValueError, match="normalize: expected False for Luong attention"):
        run(core, call, kind="luong", normalize=True)
    with pytest.raises(TypeError, match="core: expected a rnnrs._rnnrs.Cell, got dict"):
        _rnnrs.attention_forward({}, *list(call.values()), "luong", False, False, True, False)
    *_, tape = run(core, call)
    with pytest.raises(ValueError, match=r"d_attention: expected shape \[3, 2\], got shape \[2, 2\]"):
        _rnnrs.attention_backward(tape, None, None, np.zeros((2, 2)), None)
    with pytest.raises(TypeError, match="d_outputs: expected a 3-d numpy.float64 array"):
        _rnnrs.attention_backward(tape, np.zeros((3, 4)), None, None, None)
    with pytest.raises(TypeError, match="tape: expected a rnnrs._rnnrs.AttentionTape, got int"):
        _rnnrs.attention_backward(1, None, None, None, None)


FIXTURES = Path(__file__).parent / "fixtures" / "attention"
ATTENTION_WEIGHTS = {
    "memory_layer/kernel",
    "query_layer/kernel",
    "attention_v",
    "attention_g",
    "attention_b",
    "attention_layer/kernel",
}


def single_cell_fixtures():
    """The real-TensorFlow fixtures (``fixtures/attention/``, written by
    ``scripts/attention_fixtures.py``) of one inner cell, when present."""
    out = []
    for path in sorted(FIXTURES.glob("*.npz")):
        with np.load(path) as d:
            if "cell" in d.files and str(d["cell"]) in ("lstm", "gru", "rnn"):
                out.append(path)
    return out or [None]


@pytest.mark.parametrize("path", single_cell_fixtures(), ids=lambda p: p.stem if p else "none")
def test_against_tensorflow_fixtures(path):
    """Forward results (where specified) and, for the losses without the
    alignment history, every gradient, against tfa.seq2seq (TF 1.15's port)."""
    if path is None:
        pytest.skip("no attention fixtures in tests/fixtures/attention")
    d = dict(np.load(path))
    f = {k: v.astype(np.float64) for k, v in d.items() if v.dtype == np.float32}
    kind = {"lstm": "lstm", "gru": "gru", "rnn": "basic_rnn"}[str(d["cell"])]
    weights = {k[len("weight/") :]: v for k, v in f.items() if k.startswith("weight/")}
    options = {"forget_bias": float(weights.pop("forget_bias"))} if "forget_bias" in weights else {}
    mechanism = {k: v for k, v in weights.items() if k in ATTENTION_WEIGHTS}
    cell_weights = {k: v for k, v in weights.items() if k not in ATTENTION_WEIGHTS}
    core = _rnnrs.Cell(kind, "float64", options, cell_weights)
    names = ["c", "h"] if kind == "lstm" else ["h"]
    lengths = d["sequence_length"].astype(np.int64)
    mlen = d["memory_sequence_length"].astype(np.int64) if "memory_sequence_length" in d else None
    outputs, state, attention, alignments, history, tape = _rnnrs.attention_forward(
        core,
        f["x"],
        lengths,
        [f[f"init/cell_state/{n}"] for n in names],
        f["init/attention"],
        f["memory"],
        mlen,
        mechanism,
        str(d["mechanism"]),
        bool(d["normalize"]),
        bool(d["scale"]),
        bool(d["output_attention"]),
        True,
    )
    tol = {"rtol": 1e-5, "atol": 1e-6}
    np.testing.assert_allclose(outputs, f["out/outputs"], **tol)
    np.testing.assert_allclose(attention, f["out/attention"], **tol)
    for n, p in zip(names, state):
        np.testing.assert_allclose(p, f[f"out/cell_state/{n}"], **tol)
    ran = lengths > 0  # rows of length 0 keep the caller's initial alignments
    np.testing.assert_allclose(alignments[ran], f["out/alignments"][ran], **tol)
    if "out/alignment_history" in f:
        steps = f["out/alignment_history"].shape[0]
        live = (np.arange(steps)[:, None] < lengths[None, :])[:, :, None]
        want = np.where(live, f["out/alignment_history"], 0)
        np.testing.assert_allclose(np.where(live, history[:steps], 0), want, **tol)
    if bool(d["alignment_history"]):
        return  # the fixture's loss reads the history, which backward does not take
    d_alignments = f["d/alignments"] + f["d/attention_state"]
    d_alignments[~ran] = 0
    d_x, d_state, d_a0, d_memory, d_w = _rnnrs.attention_backward(
        tape, f["d/outputs"], [f[f"d/cell_state/{n}"] for n in names], f["d/attention"], d_alignments
    )
    grads = {"x": d_x, "memory": d_memory, "init/attention": d_a0, **d_w}
    grads.update({f"init/cell_state/{n}": p for n, p in zip(names, d_state)})
    for name, g in grads.items():
        want = f[f"grad/{name}"]
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(want).max()), err_msg=name)
