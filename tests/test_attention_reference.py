"""The attention reference (``attention_reference.py``) is trustworthy: its
backward pass equals float64 central finite differences of its forward pass
for every gradient (each weight, the memory, the inputs, every field of the
initial state), it reproduces real TensorFlow's results
(``fixtures/attention/``, written by ``scripts/attention_fixtures.py`` with
``tfa.seq2seq`` under TF 1.x's ``dynamic_rnn``, and a ``BeamSearchDecoder``
over the wrapper, run here through ``seq2seq_reference``), and it rejects
what TF 1.15 would turn into NaN.

NumPy only; no rnnrs, no TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import attention_reference as ar
import reference as ref
import reference_gru as rg
import reference_wrappers as wr
import seq2seq_reference as s2s

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "attention"

# -- random problems -------------------------------------------------------------------

B, T, I, TM, DM, A = 3, 3, 2, 4, 3, 3
MECHANISMS = ("bahdanau", "bahdanau_normalize", "luong", "luong_scale")
CELLS = ("BasicRNN", "LSTM", "GRU", "Multi")


def random_cell(kind, rng, input_size, units):
    """A reference cell layer with random weights; ``units`` is its output size.
    The LSTM is an LSTMCell with peepholes and a projection (no clips: finite
    differences must not straddle a kink); Multi is a GRU under an LSTM."""

    def w(*shape, scale=0.5):
        return rng.normal(scale=scale, size=shape)

    if kind == "BasicRNN":
        return wr.BasicRNN(w(input_size + units, units), w(units, scale=0.3))
    if kind == "LSTM":
        H = units + 1  # num_units != num_proj
        weights = {
            "kernel": w(input_size + units, 4 * H),
            "bias": w(4 * H, scale=0.3),
            **{name: w(H) for name in ("w_i_diag", "w_f_diag", "w_o_diag")},
            "projection/kernel": w(H, units),
        }
        return wr.LSTM(weights, forget_bias=0.5)
    if kind == "GRU":
        shapes = rg.weight_shapes(input_size, units, False)
        return wr.GRU({name: w(*shape) for name, shape in shapes.items()})
    if kind == "Multi":
        return wr.Multi([random_cell("GRU", rng, input_size, 3), random_cell("LSTM", rng, 3, units)])
    raise ValueError(kind)


def random_mechanism(kind, rng, memory, memory_sequence_length, query_depth):
    U = 5 if kind.startswith("bahdanau") else query_depth  # Luong: num_units = the query depth
    kernel = rng.normal(scale=0.6, size=(DM, U))
    if kind.startswith("bahdanau"):
        normalize = kind == "bahdanau_normalize"
        return ar.BahdanauAttention(
            kernel,
            rng.normal(scale=0.6, size=(query_depth, U)),
            rng.normal(scale=0.8, size=U),
            memory,
            memory_sequence_length,
            normalize=normalize,
            attention_g=np.asarray(rng.uniform(0.5, 1.5)) if normalize else None,
            attention_b=rng.normal(scale=0.3, size=U) if normalize else None,
        )
    scale = kind == "luong_scale"
    return ar.LuongAttention(
        kernel,
        memory,
        memory_sequence_length,
        scale=scale,
        attention_g=np.asarray(rng.uniform(0.5, 1.5)) if scale else None,
    )


def random_wrapper(rng, mechanism, cell, attention_layer, output_attention, alignment_history, memory_lengths):
    """An AttentionWrapper layer over a random cell (output width 4) and a random memory."""
    Hout = 4
    A_width = A if attention_layer else DM
    inner = random_cell(cell, rng, I + A_width, Hout)
    memory = rng.normal(size=(B, TM, DM))  # padding holds values too: the masking must drop them
    mech = random_mechanism(mechanism, rng, memory, memory_lengths, Hout)
    kernel = rng.normal(scale=0.5, size=(Hout + DM, A)) if attention_layer else None
    return ar.AttentionWrapper(
        inner, mech, kernel, alignment_history=alignment_history, output_attention=output_attention
    )


def random_state(rng, layer):
    """A random initial state (alignments as probability rows); its alignment history is empty."""
    zero = layer.zero_state(B)
    return zero._replace(
        cell_state=wr.map_state(lambda _c, a: rng.normal(scale=0.5, size=a.shape), zero.cell_state),
        attention=rng.normal(scale=0.5, size=zero.attention.shape),
        alignments=rng.dirichlet(np.ones(TM), size=B),
        attention_state=rng.dirichlet(np.ones(TM), size=B),
    )


def random_d_state(rng, final):
    """Random loss coefficients for every differentiable field of ``final``."""
    return final._replace(
        cell_state=wr.map_state(lambda _c, a: rng.normal(size=a.shape), final.cell_state),
        attention=rng.normal(size=final.attention.shape),
        time=None,
        alignments=rng.normal(size=final.alignments.shape),
        alignment_history=rng.normal(size=np.shape(final.alignment_history)) if len(final.alignment_history) else (),
        attention_state=rng.normal(size=final.attention_state.shape),
    )


def fd_check(layer, x, state, lengths, d_outputs, d_state):
    """Every analytic gradient of ``layer`` against central finite differences
    of its forward pass (the arrays are perturbed in place)."""

    def loss():
        outputs, final, _ = layer.forward(x, state, lengths)
        return ar.linear_loss(outputs, final, d_outputs, d_state)

    _, _, cache = layer.forward(x, state, lengths)
    d_x, d_init, d_w = layer.backward(cache, d_outputs, d_state)
    weights = layer.weights()
    assert set(d_w) == set(weights)
    pairs = [("x", x, d_x)]
    pairs += [
        (f"initial cell_state leaf {i}", a, d)
        for i, (a, d) in enumerate(zip(wr.state_leaves(state.cell_state), wr.state_leaves(d_init.cell_state)))
    ]
    pairs += [(f"initial {name}", getattr(state, name), getattr(d_init, name)) for name in ar.ARRAY_FIELDS]
    pairs += [(name, weights[name], d_w[name]) for name in weights]  # the layer reads these very arrays
    for what, array, analytic in pairs:
        assert analytic.shape == array.shape, what
        numeric = ref.numerical_gradient(loss, array)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=what)
    return d_x, d_init, d_w


FLAG_PAIRS = ((False, True), (True, True), (False, False), (True, False))  # (attention layer, output_attention)
CASES = [(mech, cell, *flags) for mech in MECHANISMS for cell in CELLS for flags in FLAG_PAIRS]


@pytest.mark.parametrize(("mechanism", "cell", "attention_layer", "output_attention"), CASES)
def test_backward_matches_finite_differences(mechanism, cell, attention_layer, output_attention):
    """If this fails, the oracle is wrong. Ragged lengths with a 0, ragged
    memory lengths (with a 1), a random initial state and a loss on every
    field; two cases in three keep the alignment history (in the loss too, with
    the entries of finished rows)."""
    seed = CASES.index((mechanism, cell, attention_layer, output_attention))
    rng = np.random.default_rng(1000 + seed)
    history = bool(seed % 3 != 0)
    layer = random_wrapper(rng, mechanism, cell, attention_layer, output_attention, history, [4, 1, 2])
    x = rng.normal(size=(B, T, layer.input_size))
    lengths = np.array([3, 0, 2])
    state = random_state(rng, layer)
    outputs, final, _ = layer.forward(x, state, lengths)
    d_outputs = rng.normal(size=outputs.shape)
    d_state = random_d_state(rng, final)
    d_x, _, d_w = fd_check(layer, x, state, lengths, d_outputs, d_state)
    assert np.all(d_w["memory"][~layer.mechanism.mask] == 0)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_backward_when_every_row_stops_early(mechanism):
    """``max(sequence_length) < T``: dynamic_rnn runs fewer steps than T (the
    history is shorter, outputs after it are zero); no memory mask; every
    history entry of a finished row is left out of the loss, so nothing flows
    into the padding of ``x``."""
    rng = np.random.default_rng(7 + MECHANISMS.index(mechanism))
    layer = random_wrapper(rng, mechanism, "LSTM", True, True, True, None)
    x = rng.normal(size=(B, 4, layer.input_size))
    lengths = np.array([2, 0, 1])
    state = random_state(rng, layer)
    outputs, final, _ = layer.forward(x, state, lengths)
    assert final.alignment_history.shape == (2, B, TM) and final.time == 2
    assert np.all(outputs[:, 2:] == 0)
    d_state = random_d_state(rng, final)
    finished = np.arange(2)[:, None] >= lengths[None, :]  # [steps, B]
    d_state.alignment_history[finished] = 0.0
    d_x, d_init, _ = fd_check(layer, x, state, lengths, rng.normal(size=outputs.shape), d_state)
    assert np.all(d_x[np.arange(4)[None, :] >= lengths[:, None]] == 0)
    # row 1 never runs: its final state is its initial state
    for name in ar.ARRAY_FIELDS:
        np.testing.assert_array_equal(getattr(final, name)[1], getattr(state, name)[1])
        np.testing.assert_array_equal(getattr(d_init, name)[1], getattr(d_state, name)[1])


def test_no_steps():
    """``T = 0``: no step, the initial state comes back, every gradient passes straight through."""
    rng = np.random.default_rng(3)
    layer = random_wrapper(rng, "bahdanau", "GRU", True, True, True, [4, 2, 1])
    state = random_state(rng, layer)
    outputs, final, cache = layer.forward(np.zeros((B, 0, layer.input_size)), state, np.zeros(B, int))
    assert outputs.shape == (B, 0, A) and final.time == 0 and final.alignment_history.shape == (0, B, TM)
    d_state = random_d_state(rng, final)
    d_x, d_init, d_w = layer.backward(cache, np.zeros((B, 0, A)), d_state)
    np.testing.assert_array_equal(d_init.attention, d_state.attention)
    assert all(np.all(v == 0) for v in d_w.values())


# -- hand-checked semantics ------------------------------------------------------------


def test_masked_memory_is_ignored():
    """Alignments are exactly 0 at masked positions, and the memory there changes nothing."""
    rng = np.random.default_rng(11)
    layer = random_wrapper(rng, "luong_scale", "LSTM", True, True, True, [4, 1, 2])
    x = rng.normal(size=(B, T, layer.input_size))
    outputs, final, _ = layer.forward(x, None, None)
    mask = layer.mechanism.mask
    assert np.all(final.alignment_history[:, ~mask] == 0) and np.all(final.alignment_history[:, mask] > 0)
    np.testing.assert_allclose(final.alignment_history.sum(axis=-1), 1.0, rtol=1e-12)
    layer.mechanism.memory[~mask] = 1e3  # the very array the layer reads
    outputs2, final2, _ = layer.forward(x, None, None)
    np.testing.assert_array_equal(outputs, outputs2)
    np.testing.assert_array_equal(final.alignment_history, final2.alignment_history)


def test_one_step_by_hand():
    """One Bahdanau step on an identity-like cell, written out with plain NumPy."""
    rng = np.random.default_rng(5)
    layer = random_wrapper(rng, "bahdanau", "BasicRNN", True, False, False, [2, 4, 3])
    mech, cell = layer.mechanism, layer.cell
    x = rng.normal(size=(B, 1, layer.input_size))
    state = random_state(rng, layer)
    outputs, final, _ = layer.forward(x, state, None)
    h = np.tanh(np.concatenate([x[:, 0], state.attention, state.cell_state], axis=1) @ cell.kernel + cell.bias)
    for b in range(B):
        n = mech.memory_sequence_length[b]
        values = mech.memory[b, :n]
        keys = values @ mech.memory_layer_kernel
        score = np.tanh(keys + h[b] @ mech.query_layer_kernel) @ mech.attention_v
        alignments = np.exp(score) / np.exp(score).sum()
        context = alignments @ values
        attention = np.concatenate([h[b], context]) @ layer.attention_layer_kernel
        np.testing.assert_allclose(final.alignments[b, :n], alignments, rtol=1e-12)
        assert np.all(final.alignments[b, n:] == 0)
        np.testing.assert_allclose(final.attention[b], attention, rtol=1e-12)
        np.testing.assert_allclose(outputs[b, 0], h[b], rtol=1e-12)  # output_attention=False: the cell output
    np.testing.assert_array_equal(final.attention_state, final.alignments)


def test_bahdanau_normalize_with_g_equal_to_the_norm_is_plain_bahdanau():
    """With ``attention_g = ||attention_v||`` and ``attention_b = 0`` the normalized
    score is the plain one."""
    rng = np.random.default_rng(2)
    memory = rng.normal(size=(B, TM, DM))
    mk, qk, v = rng.normal(size=(DM, 5)), rng.normal(size=(4, 5)), rng.normal(size=5)
    plain = ar.BahdanauAttention(mk, qk, v, memory, [1, 2, 4])
    normed = ar.BahdanauAttention(
        mk, qk, v, memory, [1, 2, 4], normalize=True, attention_g=np.linalg.norm(v), attention_b=np.zeros(5)
    )
    query = rng.normal(size=(B, 4))
    _, keys = plain.prepare()
    np.testing.assert_allclose(normed.alignments(query, keys)[0], plain.alignments(query, keys)[0], rtol=1e-12)


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_memory_length_zero_is_a_value_error(mechanism):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="memory_sequence_length"):
        random_mechanism(mechanism, rng, rng.normal(size=(B, TM, DM)), [3, 0, 2], 4)


def test_bad_shapes_are_value_errors():
    rng = np.random.default_rng(0)
    memory = rng.normal(size=(B, TM, DM))
    with pytest.raises(ValueError, match="memory_sequence_length"):
        ar.LuongAttention(np.zeros((DM, 4)), memory, [1, 2])
    with pytest.raises(ValueError, match="attention_g"):
        ar.LuongAttention(np.zeros((DM, 4)), memory, scale=True, attention_g=np.ones(1))
    with pytest.raises(ValueError, match="memory_layer_kernel"):
        ar.LuongAttention(np.zeros((DM + 1, 4)), memory)
    with pytest.raises(ValueError, match="mechanism"):  # Luong's keys are 5 wide, the query 4
        ar.AttentionWrapper(random_cell("GRU", rng, I + DM, 4), ar.LuongAttention(np.zeros((DM, 5)), memory))


# -- real TensorFlow ---------------------------------------------------------------------

FIXTURE_NAMES = sorted(p.stem for p in FIXTURES.glob("*.npz") if not p.stem.startswith("beam"))
TM_BEAM = 5  # the beam fixture's memory time


def load(name):
    with np.load(FIXTURES / f"{name}.npz") as data:
        return {key: data[key] for key in data.files}


def test_fixtures_are_there_and_small():
    assert len(FIXTURE_NAMES) == 13
    assert sum(p.stat().st_size for p in FIXTURES.glob("*.npz")) < 300_000


def fixture_cell(f, kind, prefix=""):
    w = {k[len("weight/" + prefix) :]: v for k, v in f.items() if k.startswith("weight/" + prefix)}
    if kind == "lstm":
        return wr.LSTM({"kernel": w["kernel"], "bias": w["bias"]}, forget_bias=float(f["forget_bias"]))
    if kind == "gru":
        return wr.GRU({k: w[k] for k in rg.weight_names(False)})
    if kind == "rnn":
        return wr.BasicRNN(w["kernel"], w["bias"])
    return wr.Multi([fixture_cell(f, "lstm", "cell_0/"), fixture_cell(f, "gru", "cell_1/")])


def fixture_cell_state(kind, leaves, prefix=""):
    """A reference cell state from ``<prefix>c`` / ``<prefix>h`` leaves."""
    if kind == "lstm":
        return wr.LSTMState(leaves[prefix + "c"], leaves[prefix + "h"])
    if kind in ("gru", "rnn"):
        return leaves[prefix + "h"]
    return (fixture_cell_state("lstm", leaves, "cell_0/"), fixture_cell_state("gru", leaves, "cell_1/"))


def fixture_layer(f):
    kind = str(f["cell"])
    cell = fixture_cell(f, kind)
    memory = f["memory"]
    lengths = f.get("memory_sequence_length")
    w = {k[len("weight/") :]: v for k, v in f.items() if k.startswith("weight/")}
    if str(f["mechanism"]) == "bahdanau":
        mech = ar.BahdanauAttention(
            w["memory_layer/kernel"],
            w["query_layer/kernel"],
            w["attention_v"],
            memory,
            lengths,
            normalize=bool(f["normalize"]),
            attention_g=w.get("attention_g"),
            attention_b=w.get("attention_b"),
        )
    else:
        mech = ar.LuongAttention(
            w["memory_layer/kernel"], memory, lengths, scale=bool(f["scale"]), attention_g=w.get("attention_g")
        )
    layer = ar.AttentionWrapper(
        cell,
        mech,
        w.get("attention_layer/kernel"),
        alignment_history=bool(f["alignment_history"]),
        output_attention=bool(f["output_attention"]),
    )
    return layer, kind


def fixture_state(f, prefix, kind):
    leaves = {k[len(prefix + "cell_state/") :]: v for k, v in f.items() if k.startswith(prefix + "cell_state/")}
    history = f.get(prefix + "alignment_history", ())
    return ar.AttentionWrapperState(
        cell_state=fixture_cell_state(kind, leaves),
        attention=f[prefix + "attention"],
        time=None,
        alignments=f[prefix + "alignments"],
        alignment_history=history,
        attention_state=f[prefix + "attention_state"],
    )


def close(got, want, what):
    """float32 TensorFlow against the float64 reference: 1e-5 of the array's scale."""
    want = np.asarray(want, np.float64)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale, err_msg=what)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_matches_tensorflow(name):
    f = load(name)
    layer, kind = fixture_layer(f)
    init = fixture_state(f, "init/", kind)._replace(
        time=0, alignment_history=np.zeros((0, B, layer.mechanism.memory_time)) if layer.alignment_history else ()
    )
    outputs, final, cache = layer.forward(f["x"], init, f["sequence_length"])
    close(outputs, f["out/outputs"], "outputs")
    want = fixture_state(f, "out/", kind)
    assert len(wr.state_leaves(final.cell_state)) == len(wr.state_leaves(want.cell_state))
    for i, (got_leaf, want_leaf) in enumerate(zip(wr.state_leaves(final.cell_state), wr.state_leaves(want.cell_state))):
        close(got_leaf, want_leaf, f"cell_state leaf {i}")
    for field in ar.ARRAY_FIELDS:
        close(getattr(final, field), getattr(want, field), field)
    if layer.alignment_history:
        assert final.alignment_history.shape == want.alignment_history.shape
        close(final.alignment_history, want.alignment_history, "alignment_history")

    d_state = fixture_state(f, "d/", kind)
    d_x, d_init, d_w = layer.backward(cache, f["d/outputs"], d_state)
    close(d_x, f["grad/x"], "d x")
    close(d_w["memory"], f["grad/memory"], "d memory")
    grads = {k[len("grad/") :]: v for k, v in f.items() if k.startswith("grad/") and not k.startswith("grad/init/")}
    grads.pop("x"), grads.pop("memory")
    assert set(grads) == set(d_w) - {"memory"}
    for k, v in grads.items():
        close(d_w[k], v, f"d {k}")
    want_init = fixture_state(f, "grad/init/", kind)
    for i, (g, w) in enumerate(zip(wr.state_leaves(d_init.cell_state), wr.state_leaves(want_init.cell_state))):
        close(g, w, f"d initial cell_state leaf {i}")
    for field in ar.ARRAY_FIELDS:
        close(getattr(d_init, field), getattr(want_init, field), f"d initial {field}")


def test_beam_search_over_attention_matches_tensorflow():
    """``BeamSearchDecoder`` over an ``AttentionWrapper`` (Luong, scaled, with an
    attention layer) on ``tile_batch``'d memory: seq2seq_reference's beam search
    stepping the attention reference one step at a time reproduces TF's ids,
    parents, scores and final state."""
    f = load("beam_luong")
    K = int(f["beam_width"])
    w = {k[len("weight/") :]: v for k, v in f.items() if k.startswith("weight/")}
    cell = wr.LSTM({"kernel": w["kernel"], "bias": w["bias"]}, forget_bias=float(f["forget_bias"]))
    mech = ar.LuongAttention(
        w["memory_layer/kernel"],
        s2s.tile_batch_reference(f["memory"], K),
        s2s.tile_batch_reference(f["memory_sequence_length"], K),
        scale=True,
        attention_g=w["attention_g"],
    )
    layer = ar.AttentionWrapper(cell, mech, w["attention_layer/kernel"])
    rows = B * K

    def step(x, state):
        """One decoder step; the beam search's state is (cell_state, attention, alignments, attention_state)."""
        cell_state, attention, alignments, attention_state = state
        full = ar.AttentionWrapperState(cell_state, attention, 0, alignments, (), attention_state)
        out, final, _ = layer.forward(x[:, None, :], full, None)
        return out[:, 0], (final.cell_state, final.attention, final.alignments, final.attention_state)

    initial = (
        wr.LSTMState(f["init/cell_state/c"], f["init/cell_state/h"]),
        f["init/attention"],
        np.zeros((B, TM_BEAM)),
        np.zeros((B, TM_BEAM)),
    )
    r = s2s.beam_search_reference(
        step,
        f["embedding"],
        f["start_tokens"],
        int(f["end_token"]),
        initial,
        K,
        output_layer=(f["dense_kernel"], f["dense_bias"]),
        maximum_iterations=int(f["maximum_iterations"]),
    )
    np.testing.assert_array_equal(r.step_ids, f["step_ids"])
    np.testing.assert_array_equal(r.parent_ids, f["parent_ids"])
    np.testing.assert_array_equal(r.predicted_ids, f["predicted_ids"])
    np.testing.assert_array_equal(r.finished, f["finished"])
    np.testing.assert_array_equal(r.lengths, f["lengths"])
    np.testing.assert_array_equal(r.lengths, f["decode_lengths"])
    close(r.scores, f["scores"], "scores")
    close(r.log_probs, f["log_probs"], "log_probs")
    cell_state, attention, alignments, _ = r.cell_state
    assert attention.shape[0] == rows
    close(cell_state.c, f["out/cell_state/c"], "final c")
    close(cell_state.h, f["out/cell_state/h"], "final h")
    close(attention, f["out/attention"], "final attention")
    close(alignments, f["out/alignments"], "final alignments")
