"""benches/long_sequence.py runs end to end at a tiny size and prints its table.

One run of the script (one child process per library), a few seconds in all."""

from __future__ import annotations

import importlib.util
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
