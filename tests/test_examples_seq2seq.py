"""The sequence-to-sequence examples run as scripts (``--quick``) and reach
their quality figures: date translation and addition with an
``EncoderDecoder`` (exact match of whole decoded sequences), character-level
text generation with ``Sequential.generate`` at three temperatures.

Each run takes well under a minute of CPU on two cores; the full runs
(without ``--quick``) are documented in the scripts.
"""

from __future__ import annotations

import importlib.util
import re

from test_examples import figure, run


def test_date_translation_quick():
    """3000 training dates, 12 epochs: greedy and beam decodes of 500 test
    dates mostly exactly right (the full run reaches 100 %)."""
    out = run("date_translation.py", "--quick").stdout
    assert figure(out, "test exact match, greedy") >= 0.8, out
    assert figure(out, "test exact match, beam 5") >= 0.8, out
    assert figure(out, r"test token accuracy \(teacher forced\)") >= 0.97, out
    assert re.search(r"training: 12 epochs in [0-9.]+ s", out), out
    assert re.search(r"'[^']+' -> \d{4}-\d\d-\d\d\n", out), out


def test_date_translation_with_attention_quick(tmp_path):
    """Luong attention: 8 epochs beat what 12 do without it (0.91-0.95 greedy over seeds 0-3; with
    attention 0.97-1.0), and the alignments of one date are drawn."""
    plot = tmp_path / "alignments.png"
    out = run("date_translation.py", "--quick", "--attention", "luong", "--epochs", "8", "--plot", str(plot)).stdout
    assert "attention: luong" in out, out
    assert figure(out, "test exact match, greedy") >= 0.95, out
    assert figure(out, "test exact match, beam 5") >= 0.95, out
    if importlib.util.find_spec("matplotlib") is None:
        assert "matplotlib is not installed" in out, out
    else:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", out
        assert f"written to {plot}" in out, out


def test_addition_quick():
    """12000 three-digit questions, 14 epochs: most held-out answers exactly right."""
    out = run("addition.py", "--quick").stdout
    assert figure(out, r"held-out exact match \(greedy\)") >= 0.75, out
    assert figure(out, r"held-out digit accuracy \(teacher forced\)") >= 0.93, out
    assert re.search(r"\d+\+\d+ = \d+ +(ok|wrong)", out), out


def test_text_generation_quick():
    """20000 characters, 5 epochs: the model beats the characters'
    frequencies by far and writes text at the three temperatures."""
    out = run("text_generation.py", "--quick", "--length", "120").stdout
    assert figure(out, "held-out next-character accuracy") >= 0.4, out
    bits = float(re.search(r"held-out loss: ([0-9.]+) bits per character", out).group(1))
    unigram = float(re.search(r"character frequencies alone: ([0-9.]+)", out).group(1))
    assert bits <= unigram - 1.2, out
    for temperature in ("0.2", "0.5", "1.0"):
        sample = re.search(rf"--- temperature {temperature}:\n(.*?)(?=\n--- |\Z)", out, re.S)
        assert sample and len(sample.group(1)) >= 120 + len("It is a truth universally acknowledged, that "), out
