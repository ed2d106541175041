"""benches/seq2seq.py: one tiny run end to end, and the pieces that set its model up.

The run takes one repetition of every case at toy sizes (one child process per contender,
a few seconds each); where torch is not installed its rows say so and rnnrs' are timed."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

BENCHES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benches")
SCRIPT = os.path.join(BENCHES, "seq2seq.py")
sys.path.insert(0, BENCHES)
import seq2seq as bench  # noqa: E402

TINY = [
    "--batch", "4", "--source-time", "5", "--target-time", "6", "--vocab", "23", "--embed", "3",
    "--units", "5", "--decode-batch", "7", "--max-steps", "6", "--beam", "2", "--eos-median", "3",
    "--repeat", "1", "--rounds", "1", "--threads", "1",
]  # fmt: skip
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _row(case: str, contender: str, text: str) -> str:
    """The table line of (case, contender); the table's columns are separated by 2+ spaces."""
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 5 and cells[0] == case and cells[3] == contender:
            return line
    raise AssertionError(f"no row {case} / {contender} in:\n{text}")


TIME = r"\s[\d.]+ (µs|ms|s)\s"


def test_tiny_run_times_every_rnnrs_contender_and_checks_them():
    """Every case runs; rnnrs' contenders are timed and agree with the reference contender
    (the dynamic_rnn training and torch where installed); the exit status is 0."""
    proc = subprocess.run([sys.executable, SCRIPT, *TINY], capture_output=True, text=True, timeout=300)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for case, contenders in bench.CASES.items():
        for contender in contenders:
            line = _row(case, contender, out)
            if contender.startswith("torch") and not HAS_TORCH:
                assert "not installed" in line, line
                continue
            assert re.search(TIME, line), line
            assert "MISMATCH" not in line, line
    assert "loss and gradients agree" in _row("train", "rnnrs dynamic_rnn", out)
    assert "7/7 rows agree" in _row("greedy", "rnnrs impute", out)
    assert re.search(r"- \*\*(PASS|FAIL|no data)\*\* beam, 1 thread\(s\): torch / rnnrs", out), out


def test_bad_options_are_refused(capsys):
    """Options out of range stop the script with a message naming them, before any child runs."""
    for argv, name in (
        (["--threads", "0"], "--threads"),
        (["--vocab", "2"], "--vocab"),
        (["--max-steps", "1"], "--max-steps"),
        (["--repeat", "0"], "--repeat"),
    ):
        with pytest.raises(SystemExit):
            bench.parse_args(argv)
        assert name in capsys.readouterr().err
    with pytest.raises(SystemExit, match="unknown case"):
        bench.main(["--cases", "sampling"])


def test_eos_bias_gives_the_median_length_asked():
    """calibrate_eos picks the EOS bias from one NumPy decode; the lengths it predicts for
    that bias have the requested median, and 0 asks for no EOS at all."""
    args = bench.parse_args(TINY[:-6] + ["--decode-batch", "41", "--max-steps", "20"])
    model = bench.make_model(args)
    beta = float(model["out_bias"][bench.EOS])
    margins = bench.eos_margins({**model, "out_bias": np.where(np.arange(23) == bench.EOS, 0, model["out_bias"])}, 20)
    lengths = bench.lengths_for_bias(margins, beta)
    assert abs(np.median(lengths) - 3) <= 1 and lengths.min() >= 1 and lengths.max() <= 20
    assert bench.calibrate_eos(model, 20, 0) < -1e3


def test_torch_lstm_layout_round_trip():
    """to_torch_lstm reorders TF's gates i, j, f, o to torch's i, f, g, o (forget_bias in
    bias_ih); from_torch_lstm_grads maps torch-shaped arrays back to the TF layout."""
    rng = np.random.default_rng(1)
    I, H = 3, 2
    kernel = rng.standard_normal((I + H, 4 * H)).astype(np.float32)
    bias = rng.standard_normal(4 * H).astype(np.float32)
    t = bench.to_torch_lstm(kernel, bias)
    assert t["weight_ih"].shape == (4 * H, I) and t["weight_hh"].shape == (4 * H, H)
    np.testing.assert_array_equal(t["weight_ih"][H : 2 * H], kernel[:I, 2 * H : 3 * H].T)  # f
    np.testing.assert_array_equal(t["bias_ih"][H : 2 * H], bias[2 * H : 3 * H] + 1.0)
    back_k, back_b = bench.from_torch_lstm_grads(t["weight_ih"], t["weight_hh"], t["bias_ih"] - t["bias_hh"])
    np.testing.assert_array_equal(back_k, kernel)
    np.testing.assert_allclose(back_b - bias, np.repeat([0.0, 0.0, 1.0, 0.0], H), atol=1e-6)
