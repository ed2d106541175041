"""benches/distributed.py: the sweep's definitions and sizes, and one tiny run end to end.

Pins: the efficiency is the speed-up over the 1-thread process divided by the workers;
every sweep configuration is at least 2 shards under fit's shard rule, split evenly over
2 workers (else the second worker idles and the efficiency is meaningless); the
"smallest work reaching 90 %" is the first row from which on every larger one reaches it;
a --sweep --quick run prints its table (skipped only when ray cannot be imported)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from rnnrs.trainers.trainer import SHARD_TOKENS

BENCHES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benches")
# Loaded under its own name: "distributed" is also a PyPI package (Dask's).
_spec = importlib.util.spec_from_file_location("bench_distributed", os.path.join(BENCHES, "distributed.py"))
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_efficiency_is_speed_up_over_one_thread_divided_by_workers():
    assert bench.efficiency(100.0, 50.0) == 1.0
    assert bench.efficiency(100.0, 100.0) == 0.5
    assert bench.efficiency(90.0, 25.0, workers=4) == 0.9


@pytest.mark.parametrize("configs", [bench.SWEEP, bench.QUICK_SWEEP], ids=["full", "quick"])
def test_every_sweep_batch_gives_both_workers_the_same_number_of_shards(configs):
    for _units, batch, steps_t, timed in configs:
        k = bench.shards(batch, steps_t)
        assert batch * steps_t >= 2 * SHARD_TOKENS
        assert k >= 2 and k % 2 == 0, (batch, steps_t, k)
        assert timed >= 3


def test_the_digits_batch_is_one_shard_so_the_overhead_table_says_the_second_worker_idles():
    assert bench.shards(150, 8) == 1
    assert bench.shards(256, 100) == 6


def _row(work_ms: float, eff: float) -> bench.SweepRow:
    return bench.SweepRow(8, 128, 64, 2, t1=2 * work_ms, t2=work_ms, tr=work_ms / eff, tb=work_ms, load="0/0/0")


def test_smallest_reaching_is_the_first_of_the_rows_that_all_reach_the_target():
    rows = [_row(40, 0.93), _row(5, 0.5), _row(20, 0.85), _row(10, 0.95), _row(80, 0.92)]
    best = bench.smallest_reaching(rows)
    assert best is not None and best.work == 40  # 10 ms reached 90 % but 20 ms did not
    assert bench.smallest_reaching([_row(5, 0.95), _row(10, 0.8)]) is None
    assert abs(_row(10, 0.95).eff - 0.95) < 1e-12


def test_table_is_markdown_with_right_aligned_numbers():
    text = bench.table(["name", "ms:"], [["a", 1.5]])
    assert text.splitlines() == ["| name | ms |", "|---|---:|", "| a | 1.5 |"]


def test_quick_sweep_runs_and_prints_its_table():
    pytest.importorskip("ray", reason="ray is not installed (pip install 'rnnrs[ray]')")
    script = os.path.join(BENCHES, "distributed.py")
    proc = subprocess.run([sys.executable, script, "--sweep", "--quick"], capture_output=True, text=True, timeout=240)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "neither idles" in out, out
    for units, batch, steps_t, _ in bench.QUICK_SWEEP:
        assert re.search(rf"^\| {units} \| {batch} x {steps_t} \| 2 \| [\d.]+ \|.* %", out, re.MULTILINE), out
    assert re.search(r"load average \(1/5/15 min\) at start [\d.]+/", out), out
