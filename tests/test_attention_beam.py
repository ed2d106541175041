"""BeamSearchDecoder's coverage penalty over an AttentionWrapper (TF 1.15's
``coverage_penalty_weight``) against real TensorFlow
(``tests/fixtures/attention/beam_coverage.npz``, written by
``scripts/attention_fixtures.py``).

Pins: with a length penalty and a coverage penalty that changes the decode,
the step ids, parent ids, whole hypotheses, scores, final log probabilities,
lengths, finished flags and ``final_state.accumulated_attention_probs``
``[B, beam, Tm]`` equal TensorFlow's, the sums starting from the initial
state's alignments (``maximum_iterations=0`` returns them); the same with
``impute_finished=True``, time-major outputs and in float64 (ids exactly);
without the penalty the accumulated probabilities are ``()``; a nonzero
weight never reaches the Rust loop (which declines an AttentionWrapper
anyway); a nonzero weight without an attention cell and a non-finite weight
are errors naming ``coverage_penalty_weight``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rnnrs
from rnnrs import seq2seq
from rnnrs.seq2seq import _fast

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "attention" / "beam_coverage.npz"
B = 3


@pytest.fixture(scope="module")
def f():
    with np.load(FIXTURE) as data:
        return {key: data[key] for key in data.files}


def decoder(f, dtype=np.float32, coverage=None, alignments=True, **kwargs):
    """rnnrs's decoder for the fixture's case: the memory and the initial
    state for the B batch rows (nothing tiled by hand)."""
    w = {k[len("weight/") :]: v.astype(dtype) for k, v in f.items() if k.startswith("weight/")}
    lstm = rnnrs.LSTMCell(w["kernel"].shape[1] // 4, forget_bias=float(f["forget_bias"]), dtype=dtype)
    lstm.set_weights({"kernel": w["kernel"], "bias": w["bias"]})
    mech = seq2seq.LuongAttention(lstm.output_size, f["memory"].astype(dtype), f["memory_sequence_length"], scale=True)
    cell = seq2seq.AttentionWrapper(lstm, mech, attention_layer_size=w["attention_layer/kernel"].shape[1])
    cell.build(f["embedding"].shape[1])
    cell.set_weights({k: w[k] for k in ("memory_layer/kernel", "attention_g", "attention_layer/kernel")})
    dense = rnnrs.Dense(f["dense_kernel"].shape[1], dtype=dtype)
    dense.build(f["dense_kernel"].shape[0])
    dense.set_weights({"kernel": f["dense_kernel"].astype(dtype), "bias": f["dense_bias"].astype(dtype)})
    state = cell.zero_state(B).clone(
        cell_state=rnnrs.LSTMStateTuple(*(f[f"init/cell_state/{k}"].astype(dtype) for k in ("c", "h"))),
        attention=f["init/attention"].astype(dtype),
    )
    if alignments:
        state = state.clone(alignments=f["init/alignments"].astype(dtype))
    return seq2seq.BeamSearchDecoder(
        cell,
        f["embedding"].astype(dtype),
        f["start_tokens"],
        int(f["end_token"]),
        state,
        int(f["beam_width"]),
        output_layer=dense,
        length_penalty_weight=float(f["length_penalty_weight"]),
        coverage_penalty_weight=float(f["coverage_penalty_weight"]) if coverage is None else coverage,
        **kwargs,
    )


def decode(dec, f, **kwargs):
    kwargs.setdefault("maximum_iterations", int(f["maximum_iterations"]))
    return seq2seq.dynamic_decode(dec, **kwargs)


def check_against_tensorflow(f, out, final, lengths, tol=1e-5):
    steps = out.beam_search_decoder_output
    np.testing.assert_array_equal(steps.predicted_ids, f["step_ids"])
    np.testing.assert_array_equal(steps.parent_ids, f["parent_ids"])
    np.testing.assert_array_equal(out.predicted_ids, f["predicted_ids"])
    np.testing.assert_allclose(steps.scores, f["scores"], rtol=tol, atol=tol)
    np.testing.assert_allclose(final.log_probs, f["log_probs"], rtol=tol, atol=tol)
    np.testing.assert_array_equal(final.finished, f["finished"])
    np.testing.assert_array_equal(final.lengths, f["lengths"])
    np.testing.assert_array_equal(lengths, f["lengths"])
    acc = final.accumulated_attention_probs
    assert isinstance(acc, np.ndarray) and acc.shape == f["accumulated_attention_probs"].shape
    np.testing.assert_allclose(acc, f["accumulated_attention_probs"], rtol=tol, atol=tol)


def test_the_fixture_exercises_the_penalty(f):
    """The case is one where the penalty matters: finished and unfinished
    hypotheses, sums above 1 (clipped) and exact zeros (masked memory)."""
    acc = f["accumulated_attention_probs"]
    assert float(f["coverage_penalty_weight"]) != 0.0 and float(f["length_penalty_weight"]) != 0.0
    assert f["finished"].any() and not f["finished"].all()
    assert (acc > 1).any() and (acc == 0).any()
    assert (f["init/alignments"] > 0).any()


def test_coverage_penalty_matches_tensorflow(f):
    check_against_tensorflow(f, *decode(decoder(f), f))


def test_without_the_penalty_the_decode_differs_and_nothing_is_accumulated(f):
    """Weight 0 (the default) gives another decode here, and
    ``accumulated_attention_probs`` stays ``()`` as without attention."""
    out, final, _ = decode(decoder(f, coverage=0.0), f)
    assert final.accumulated_attention_probs == ()
    assert not np.array_equal(out.beam_search_decoder_output.predicted_ids, f["step_ids"])


def test_the_fixture_sums_count_the_live_steps(f):
    """TF's sums: the initial alignments (1 per row) plus 1 per step a
    hypothesis was live."""
    np.testing.assert_allclose(f["accumulated_attention_probs"].sum(axis=2), f["lengths"] + 1, rtol=1e-5)


def test_the_sums_start_from_the_initial_alignments(f):
    """TF starts the accumulated probabilities from the initial state's
    alignments: no step returns them (tiled to the beams); a zero state
    starts from zeros, which changes this decode."""
    K = int(f["beam_width"])
    _, final, _ = decode(decoder(f), f, maximum_iterations=0)
    np.testing.assert_array_equal(final.accumulated_attention_probs, np.repeat(f["init/alignments"][:, None], K, 1))
    out, final, _ = decode(decoder(f, alignments=False), f)
    assert not np.allclose(final.accumulated_attention_probs, f["accumulated_attention_probs"])


@pytest.mark.parametrize("beam_width", [1, 3])
def test_each_live_step_adds_one_to_a_hypothesis_sums(beam_width):
    """Alignments sum to 1 and a hypothesis adds them on each step it was live
    (its length, the EOS step included): the accumulated probabilities of a
    final hypothesis sum to its length plus the initial alignments' sum (0
    from a zero state), here with Bahdanau attention; entries past each
    row's memory length stay 0."""
    rng = np.random.default_rng(0)
    memory = rng.normal(size=(2, 5, 3)).astype(np.float32)
    mech = seq2seq.BahdanauAttention(4, memory, [5, 2], seed=2)
    cell = seq2seq.AttentionWrapper(rnnrs.GRUCell(4, seed=1), mech, attention_layer_size=3, seed=3)
    embedding = rng.normal(size=(6, 2)).astype(np.float32)
    dec = seq2seq.BeamSearchDecoder(
        cell, embedding, [0, 2], 1, None, beam_width, output_layer=rnnrs.Dense(6, seed=4), coverage_penalty_weight=0.5
    )
    _, final, lengths = seq2seq.dynamic_decode(dec, maximum_iterations=5)
    acc = final.accumulated_attention_probs
    assert acc.shape == (2, beam_width, 5) and acc.dtype == np.float32
    np.testing.assert_allclose(acc.sum(axis=2), lengths, rtol=1e-5)
    assert (acc[1, :, 2:] == 0).all() and (acc[0] > 0).all()


def test_impute_finished_and_time_major_give_the_same_decode(f):
    """Finished beams add no alignments, so keeping their cell state
    (``impute_finished=True``) changes nothing; time-major outputs transpose
    the step arrays only."""
    check_against_tensorflow(f, *decode(decoder(f), f, impute_finished=True))
    out, final, lengths = decode(decoder(f), f, output_time_major=True)
    steps = out.beam_search_decoder_output
    np.testing.assert_array_equal(steps.predicted_ids.transpose(1, 0, 2), f["step_ids"])
    np.testing.assert_array_equal(steps.parent_ids.transpose(1, 0, 2), f["parent_ids"])
    np.testing.assert_allclose(final.accumulated_attention_probs, f["accumulated_attention_probs"], rtol=1e-5)


def test_float64_gives_tensorflows_decode(f):
    out, final, lengths = decode(decoder(f, np.float64), f)
    assert final.accumulated_attention_probs.dtype == np.float64
    assert out.beam_search_decoder_output.scores.dtype == np.float64
    check_against_tensorflow(f, out, final, lengths, tol=2e-5)


def test_a_nonzero_weight_never_reaches_the_rust_loop(f, monkeypatch):
    """The Rust beam loop runs an AttentionWrapper without a coverage penalty;
    with one it is not even asked (the NumPy loop runs)."""
    real, answers = _fast.beam, []

    def spy(*args, **kwargs):
        answers.append(real(*args, **kwargs))
        return answers[-1]

    monkeypatch.setattr(_fast, "beam", spy)
    decode(decoder(f, coverage=0.0), f)
    assert len(answers) == 1 and answers[0] is not None
    decode(decoder(f), f)
    assert len(answers) == 1


def test_a_nonzero_weight_needs_an_attention_cell():
    cell = rnnrs.LSTMCell(4, seed=0)
    args = dict(embedding=np.eye(6, 3, dtype=np.float32), start_tokens=[0, 1], end_token=1, initial_state=None)
    expected = "^coverage_penalty_weight: expected 0.0 unless the cell is an AttentionWrapper"
    with pytest.raises(ValueError, match=expected):
        seq2seq.BeamSearchDecoder(cell, beam_width=2, coverage_penalty_weight=0.5, **args)
    multi = rnnrs.MultiRNNCell([rnnrs.GRUCell(4, seed=1), rnnrs.GRUCell(4, seed=2)])
    with pytest.raises(ValueError, match="got -1.0 with a MultiRNNCell"):
        seq2seq.BeamSearchDecoder(multi, beam_width=2, coverage_penalty_weight=-1, **args)
    seq2seq.BeamSearchDecoder(cell, beam_width=2, coverage_penalty_weight=0.0, **args)  # 0: no attention needed


@pytest.mark.parametrize(
    "weight, error, pattern",
    [
        (float("nan"), ValueError, "^coverage_penalty_weight: expected a finite number, got nan"),
        (float("inf"), ValueError, "^coverage_penalty_weight: expected a finite number, got inf"),
        (True, TypeError, "^coverage_penalty_weight: expected a finite number, got bool"),
        ("0.2", TypeError, "^coverage_penalty_weight: expected a finite number, got str"),
    ],
)
def test_a_non_finite_weight_is_refused(f, weight, error, pattern):
    with pytest.raises(error, match=pattern):
        decoder(f, coverage=weight)
