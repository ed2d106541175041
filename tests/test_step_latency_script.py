"""benches/step_latency.py runs end to end in its --quick mode and prints its table.

One run of the script: three cells at B1 I64 H64, one thread, a few seconds in all
(most of it importing torch when it is installed)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benches", "step_latency.py")
TIME = r"[\d.]+ (?:µs|ms|s)"  # "6.8 µs", "1.20 ms"
RATIO = r"[\d.]+x"
# cell, size, threads, then rnnrs step, rnnrs stepper and rnnrs dynamic_rnn T=1, then the torch columns
ROW = r"^{cell}\s+B1 I64 H64\s+1\s+" + r"\s+".join([TIME] * 3) + r"\s+{torch}\s*$"
TORCH_TIMED = r"\s+".join([TIME, TIME, RATIO, RATIO, RATIO])
TORCH_MISSING = r"not installed\s+not installed\s+-\s+-\s+-"


def test_quick_run_prints_rnnrs_rows():
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--quick"], capture_output=True, encoding="utf-8", env=env, timeout=180
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    torch = TORCH_TIMED if importlib.util.find_spec("torch") is not None else TORCH_MISSING
    for cell in ("rnn", "lstm", "gru"):
        assert re.search(ROW.format(cell=cell, torch=torch), proc.stdout, re.MULTILINE), proc.stdout
