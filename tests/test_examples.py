"""The examples run as scripts and reach their quality figures.

Reduced sizes (``--quick``) with thresholds, plus the README's main job at
full size (the digits classifier, >= 97% test accuracy, a few seconds).
``--cell lstm`` / ``--cell gru`` train the other cells.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

import rnnrs

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run(script, *args, check=True):
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    raw = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        timeout=300,
        env=env,
        cwd=str(ROOT),
    )
    # Decoded by hand: text=True would turn the progress bar's "\r" into "\n".
    result = subprocess.CompletedProcess(raw.args, raw.returncode, raw.stdout.decode(), raw.stderr.decode())
    if check:
        assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    return result


def figure(text, label):
    match = re.search(rf"{label}: ([0-9.]+)", text)
    assert match, f"no '{label}' in:\n{text}"
    return float(match.group(1))


def test_digits_classifier_main_job():
    """The README's main job, full size: >= 97% test accuracy in seconds."""
    out = run("digits_classifier.py").stdout
    assert figure(out, "test accuracy") >= 0.97, out
    assert figure(out, "training time") < 60, out
    assert out.strip() and "\r" not in out  # quiet progress when not a terminal


def test_digits_classifier_quick_with_progress_bar():
    out = run("digits_classifier.py", "--quick", "--verbose", "1").stdout
    assert figure(out, "test accuracy") >= 0.93, out
    assert "\repoch 15/15 [==============================] 10/10" in out, out
    finished = re.findall(r"\repoch +\d+/15 \[=+\] 10/10 [^\r\n]*loss [0-9.]+  accuracy [0-9.]+\n", out)
    assert len(finished) == 15, out  # one finished bar per epoch


def test_time_series_and_generation(tmp_path):
    model_path = tmp_path / "series.npz"
    plot = tmp_path / "series.png"
    out = run("time_series.py", "--quick", "--save", str(model_path), "--plot", str(plot)).stdout
    assert figure(out, "test MSE") < 0.5, out  # the series' variance is ~13
    assert model_path.exists()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in out
    else:  # pragma: no cover - depends on the optional extra
        assert plot.exists()
    gen = run("generate.py", "--model", str(model_path), "--plot", str(tmp_path / "gen.png")).stdout
    assert "loaded" in gen
    mse, baseline = (
        float(v)
        for v in re.search(
            r"steps, 100 seeds from the series\): ([0-9.]+) "
            r"\(repeating the last seed value: ([0-9.]+)\)",
            gen,
        ).groups()
    )
    assert mse < 0.25 * baseline, gen
    assert "generated 300 steps" in gen


def test_generate_trains_when_there_is_no_model(tmp_path):
    out = run("generate.py", "--quick", "--model", str(tmp_path / "none.npz"), "--plot", str(tmp_path / "g.png")).stdout
    assert "trained a time-series model" in out and "continuation MSE" in out


def test_deep_rnn_quick():
    out = run("deep_rnn.py", "--quick").stdout
    assert "MultiRNNCell of 3 x DropoutWrapper" in out
    assert figure(out, "test MSE") < 1.5, out  # a constant predictor scores ~13
    assert figure(out, "training time") > 0


@pytest.mark.parametrize("kind,cls", [("lstm", "BasicLSTMCell"), ("gru", "GRUCell")])
def test_other_cells_train_or_explain(kind, cls):
    result = run("digits_classifier.py", "--quick", "--cell", kind, check=False)
    if hasattr(rnnrs, cls):  # after the cells branch is merged
        assert result.returncode == 0, result.stderr
        assert figure(result.stdout, "test accuracy") >= 0.85, result.stdout  # chance is 0.10
    else:
        assert result.returncode != 0
        assert f"rnnrs.{cls}" in result.stderr and "--cell rnn" in result.stderr
        assert "Traceback" not in result.stderr


def test_bad_cell_option():
    result = run("deep_rnn.py", "--cell", "nas", check=False)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_benchmark_script_quick():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benches" / "train_digits_torch.py"), "--quick", "--rnnrs-only"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(ROOT),
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r"rnnrs \(\d+ threads?\)\s+[0-9.]+", out.stdout), out.stdout


def test_keras_style_bidirectional_classifier():
    """Embedding(mask_zero) → Bidirectional LSTM → Dense, AdamW on CosineDecay,
    EarlyStopping(restore_best_weights): >= 95% on clean test reviews."""
    out = run("keras_style.py", "--quick").stdout
    assert figure(out, "test accuracy") >= 0.95, out
    run_epochs, best = (int(v) for v in re.search(r"epochs run: (\d+) \(best: (\d+)\)", out).groups())
    assert 1 <= best <= run_epochs <= 12, out
    assert "Bidirectional" in out, out  # the summary table
