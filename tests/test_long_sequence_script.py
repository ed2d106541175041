"""benches/long_sequence.py runs end to end at a tiny size and prints its table.

One run of the script (one child process per library), a few seconds in all."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benches", "long_sequence.py")
ARGS = ["--time", "20", "--batch", "4", "--inputs", "3", "--units", "5", "--cells", "lstm"]
# cell, size, library, then a time ("59.7 µs", "1.20 ms", "2.31 s"), the peak MiB and the estimate
ROW = r"^lstm\s+B4 T20 I3 H5\s+{library}\s+[\d.]+ (µs|ms|s)\s+-?[\d.]+\s+(?:[\d.]+|-)\s*$"


def test_tiny_run_prints_rnnrs_row():
    proc = subprocess.run([sys.executable, SCRIPT, *ARGS], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(ROW.format(library="rnnrs"), proc.stdout, re.MULTILINE), proc.stdout
    if importlib.util.find_spec("torch") is not None:
        assert re.search(ROW.format(library="torch"), proc.stdout, re.MULTILINE), proc.stdout
    else:
        assert re.search(r"^lstm\s+B4 T20 I3 H5\s+torch\s+not installed", proc.stdout, re.MULTILINE), proc.stdout


def test_checkpoint_every_adds_a_row_per_value():
    args = ["--time", "80", "--batch", "32", "--inputs", "3", "--units", "5", "--cells", "gru", "--libraries", "rnnrs"]
    proc = subprocess.run(
        [sys.executable, SCRIPT, *args, "--checkpoint-every", "none,32,auto"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for label in ("rnnrs", r"rnnrs k=32", r"rnnrs k=auto"):
        row = rf"^gru\s+B32 T80 I3 H5\s+{label}\s+[\d.]+ (µs|ms|s)\s+-?[\d.]+\s+[\d.]+\s*$"
        assert re.search(row, proc.stdout, re.MULTILINE), proc.stdout
    assert "K rounded up to whole chunks of 32 steps (segments of 32, 32 steps)" in proc.stdout, proc.stdout


def test_bad_checkpoint_every_is_refused():
    proc = subprocess.run(
        [sys.executable, SCRIPT, *ARGS, "--checkpoint-every", "0"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "--checkpoint-every" in proc.stderr, proc.stderr


def test_json_holds_machine_args_and_rows(tmp_path):
    path = tmp_path / "memory.json"
    args = ["--time", "80", "--batch", "32", "--inputs", "3", "--units", "5", "--cells", "lstm", "--threads", "1"]
    proc = subprocess.run(
        [sys.executable, SCRIPT, *args, "--checkpoint-every", "none,32", "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    payload = json.loads(path.read_text())
    assert payload["machine"] and all(isinstance(line, str) for line in payload["machine"])
    assert payload["args"]["time"] == 80 and payload["args"]["every"] == [None, 32] and payload["args"]["threads"] == 1
    rows = {r["label"]: r for r in payload["rows"]}
    assert list(rows) == ["rnnrs", "rnnrs k=32", "torch"]
    for label in ("rnnrs", "rnnrs k=32"):
        row = rows[label]
        assert (row["cell"], row["batch"], row["time"], row["inputs"], row["units"]) == ("lstm", 32, 80, 3, 5)
        assert (row["dtype"], row["threads"], row["library"], row["status"]) == ("f32", 1, "rnnrs", "")
        assert len(row["times_s"]) == 3 and row["median_s"] == sorted(row["times_s"])[1]
        assert len(row["peaks_bytes"]) == 3 and row["peak_extra_mib"] is not None and row["estimate_mib"] > 0
    assert rows["rnnrs"]["checkpoint_every"] is None and rows["rnnrs"]["segment_steps"] is None
    assert rows["rnnrs k=32"]["checkpoint_every"] == 32 and rows["rnnrs k=32"]["segment_steps"] == 32
    assert rows["rnnrs k=32"]["estimate_mib"] < rows["rnnrs"]["estimate_mib"]
    torch_row = rows["torch"]
    if importlib.util.find_spec("torch") is not None:
        assert torch_row["status"] == "" and torch_row["median_s"] is not None and torch_row["estimate_mib"] is None
    else:
        assert torch_row["status"] == "not installed" and torch_row["median_s"] is None
