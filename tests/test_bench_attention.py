"""benches/attention.py: a ``--quick`` run end to end, and the pieces that set its model up.

The run takes one call of every contender at toy sizes (one child process each, a few
seconds); without torch its rows say "not installed" and rnnrs' are timed and checked
against each other, and the torch cross-check is skipped with that reason."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import rnnrs
from rnnrs import seq2seq

BENCHES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benches")
SCRIPT = os.path.join(BENCHES, "attention.py")
sys.path.insert(0, BENCHES)
import attention as bench  # noqa: E402
import seq2seq as s2s  # noqa: E402

HAS_TORCH = importlib.util.find_spec("torch") is not None
TIME = r"\s[\d.]+ (µs|ms|s)\s"


def _row(case: str, contender: str, text: str) -> str:
    """The table line of (case, contender); the table's columns are separated by 2+ spaces."""
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 5 and cells[0] == case and cells[3] == contender:
            return line
    raise AssertionError(f"no row {case} / {contender} in:\n{text}")


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *argv], capture_output=True, text=True, timeout=300)


def test_quick_run_times_every_rnnrs_contender_and_checks_them():
    """Both cases run at the --quick sizes; rnnrs' contenders are timed, the seq2seq-API
    training agrees with the dynamic_rnn one, torch's rows are timed and agree where torch
    is installed and say "not installed" otherwise; the targets are printed; status 0."""
    proc = _run("--quick", "--threads", "1")
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "B4 Ts5 Tt6 V23 E3 H5 U4 A6" in _row("train", "rnnrs", out)
    assert "B7 Tm5 max6 beam2" in _row("beam", "rnnrs", out)
    for case, contenders in bench.CASES.items():
        for contender in contenders:
            line = _row(case, contender, out)
            if contender == "torch" and not HAS_TORCH:
                assert "not installed" in line, line
                continue
            assert re.search(TIME, line), line
            assert "MISMATCH" not in line, line
    assert "loss and gradients agree" in _row("train", "rnnrs dynamic_decode", out)
    assert re.search(r"reference; lengths min \d+ median [\d.]+ max \d+", _row("beam", "rnnrs", out))
    for case in ("train", "beam"):
        assert re.search(rf"- \*\*(PASS|FAIL|no data)\*\* {case}, 1 thread\(s\): torch / rnnrs", out), out


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed: the PyTorch cross-check cannot run")
def test_torch_computes_the_same_loss_gradients_and_beams():
    """With torch installed, its hand-written attention model (weights converted from the
    TF layout) gives rnnrs' loss and every gradient within 1e-3, and the same best beams,
    at two sets of toy sizes (the second with a longer memory and attention wider than H)."""
    for extra in ([], ["--units", "7", "--attention-units", "9", "--attention-size", "11", "--source-time", "8"]):
        proc = _run("--quick", "--threads", "1", "--contenders", "rnnrs,torch", *extra)
        out = proc.stdout
        assert proc.returncode == 0, out + proc.stderr
        assert "loss and gradients agree" in _row("train", "torch", out), out
        assert "7/7 rows agree" in _row("beam", "torch", out), out


def _rnnrs_cell(m):
    _, _, _, cell, dense, _, _ = bench._rnnrs_parts(m, m["dec_memory"], m["dec_memory_lengths"])
    return cell, dense


def test_numpy_attention_step_is_the_wrappers():
    """The NumPy decoder step behind the EOS calibration (lstm_step_np + attention_np) gives
    what rnnrs' AttentionWrapper computes over three teacher-forced steps, masked memory
    rows included (a wrong calibration would only skew the lengths, not fail a check)."""
    args = bench.parse_args(["--quick", "--eos-median", "0", "--source-time", "6"])
    m = bench.make_model(args)
    assert m["dec_memory_lengths"].min() < 6  # some rows attend to part of the memory
    cell, dense = _rnnrs_cell(m)
    B = m["init_c"].shape[0]
    ids = np.random.default_rng(3).integers(0, args.vocab, size=(B, 3))
    x = m["emb_tgt"][ids]
    start = cell.zero_state(B).clone(cell_state=rnnrs.LSTMStateTuple(m["init_c"], m["init_h"]))
    outputs, _ = rnnrs.dynamic_rnn(cell, x, initial_state=start)

    memory = m["dec_memory"]
    mask = bench.memory_mask(m["dec_memory_lengths"], memory.shape[1])
    keys = memory @ m["memory_kernel"]
    c, h = m["init_c"], m["init_h"]
    att = np.zeros((B, args.attention_size), np.float32)
    for t in range(3):
        c, h = bench.lstm_step_np(np.concatenate([x[:, t], att], axis=1), c, h, m["dec_kernel"], m["dec_bias"])
        att = bench.attention_np(m, h, keys, memory, mask)
        np.testing.assert_allclose(outputs[:, t], att, rtol=1e-4, atol=1e-5)


def test_eos_bias_gives_the_greedy_median_length_asked():
    """The EOS bias comes from a NumPy greedy decode of the attention model: rnnrs' greedy
    decode over the AttentionWrapper with that bias ends its rows at the lengths the margins
    predict (median as asked); --eos-median 0 puts the bias out of reach."""
    args = bench.parse_args(["--quick", "--decode-batch", "41", "--max-steps", "12", "--eos-median", "5"])
    m = bench.make_model(args)
    cell, dense = _rnnrs_cell(m)
    B = 41
    state = cell.zero_state(B).clone(cell_state=rnnrs.LSTMStateTuple(m["init_c"], m["init_h"]))
    helper = seq2seq.GreedyEmbeddingHelper(m["emb_tgt"], np.full(B, bench.GO, np.int32), bench.EOS)
    decoder = seq2seq.BasicDecoder(cell, helper, state, output_layer=dense)
    _, _, lengths = seq2seq.dynamic_decode(decoder, maximum_iterations=12)

    unbiased = {**m, "out_bias": np.where(np.arange(args.vocab) == bench.EOS, 0, m["out_bias"]).astype(np.float32)}
    predicted = s2s.lengths_for_bias(bench.eos_margins(unbiased, 12), float(m["out_bias"][bench.EOS]))
    assert abs(np.median(predicted) - 5) <= 1 and predicted.min() < predicted.max()
    assert np.mean(np.asarray(lengths) == predicted) >= 0.9  # float32 near-ties may flip a row
    no_eos = bench.make_model(bench.parse_args(["--quick", "--eos-median", "0"]))
    assert no_eos["out_bias"][bench.EOS] < -1e3


def test_quick_sizes_and_bad_options(capsys):
    """--quick gives the tiny sizes unless an option is given explicitly; options out of
    range stop the script with a message naming them, before any child runs."""
    args = bench.parse_args(["--quick", "--units", "9"])
    assert (args.batch, args.vocab, args.units, args.repeat, args.max_steps) == (4, 23, 9, 1, 6)
    full = bench.parse_args([])
    assert (full.batch, full.vocab, full.units, full.attention_size, full.max_steps, full.beam) == (
        64,
        5000,
        256,
        256,
        30,
        5,
    )
    for argv, name in (
        (["--threads", "0"], "--threads"),
        (["--attention-units", "0"], "--attention-units"),
        (["--attention-size", "0"], "--attention-size"),
        (["--vocab", "2"], "--vocab"),
        (["--max-steps", "1"], "--max-steps"),
    ):
        with pytest.raises(SystemExit):
            bench.parse_args(argv)
        assert name in capsys.readouterr().err
    with pytest.raises(SystemExit, match="unknown case"):
        bench.main(["--cases", "greedy"])
