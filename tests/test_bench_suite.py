"""benches/suite.py: merging compare.py's JSON (and step_latency.py's and long_sequence.py's)
and checking the targets, on synthetic rows.

Nothing here times anything or starts a benchmark: main() runs stand-in commands that write
synthetic JSON."""

from __future__ import annotations

import json
import os
import sys

import pytest

BENCHES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benches")
sys.path.insert(0, BENCHES)
import suite  # noqa: E402

SIZES = {"tiny": (4, 2, 3, 5), "medium": (64, 100, 128, 256)}


def _row(cell, size, mode, layout, rnnrs, torch=None, ort=None, efficiency=None, ragged_ratio=None):
    B, T, I, H = SIZES[size]
    return {
        "label": f"{cell}/{size}/{mode}/{layout}",
        "cell": cell,
        "mode": mode,
        "layout": layout,
        "size": {"name": size, "batch": B, "time": T, "inputs": I, "units": H},
        "median_s": {"rnnrs": rnnrs, "reference": None, "torch": torch, "onnxruntime": ort},
        "status": {
            "rnnrs": "",
            "reference": "skipped",
            "torch": "" if torch else "not installed",
            "onnxruntime": "" if ort else "forward only",
        },
        "rnnrs_gflops": None if efficiency is None else 100.0 * efficiency,
        "efficiency": efficiency,
        "ragged_ratio": ragged_ratio,
    }


def _payload(dtype, threads, rows, ceiling=100.0):
    return {
        "args": {"dtype": dtype, "threads": threads},
        "host": ["CPU      : test"],
        "machine": [],
        "ceiling": {"gflops": ceiling, "backends": {"numpy.matmul": {"gflops": ceiling, "n": 1024}}},
        "rows": rows,
    }


def _payloads():
    return [
        _payload(
            "f32",
            2,
            [
                _row("rnn", "tiny", "forward", "full", 1e-5, torch=2e-4, ort=2e-5),
                _row("rnn", "tiny", "forward", "ragged", 1e-5, torch=2e-4, ort=1e-5, ragged_ratio=1.5),
                _row("lstm", "medium", "train", "full", 1e-2, torch=1.5e-2, efficiency=0.9),
            ],
        ),
        _payload(
            "f32",
            1,
            [
                _row("rnn", "tiny", "forward", "full", 2e-5, torch=1e-4, ort=4e-5),
                _row("lstm", "medium", "train", "full", 2e-2, torch=2e-2, efficiency=0.5),
            ],
        ),
        _payload("f64", 1, [_row("rnn", "tiny", "forward", "full", 2e-5, torch=1e-4)]),
    ]


def test_merge_orders_rows_and_adds_run_fields_and_ratios():
    rows = suite.merge(_payloads())
    assert [(r["label"], r["dtype"], r["threads"]) for r in rows] == [
        ("rnn/tiny/forward/full", "f32", 1),
        ("rnn/tiny/forward/full", "f32", 2),
        ("rnn/tiny/forward/full", "f64", 1),
        ("rnn/tiny/forward/ragged", "f32", 2),
        ("lstm/medium/train/full", "f32", 1),
        ("lstm/medium/train/full", "f32", 2),
    ]
    assert rows[1]["torch/rnnrs"] == pytest.approx(20.0) and rows[1]["ort/rnnrs"] == pytest.approx(2.0)
    assert rows[2]["ort/rnnrs"] is None  # no ort time (f64)


def test_targets_pass_fail_and_no_data():
    verdicts = {v.target.text: v for v in suite.check_targets(suite.merge(_payloads()))}
    tiny_torch = verdicts["inference >= 10x torch on tiny"]
    assert tiny_torch.status == "FAIL" and tiny_torch.checked == 4  # 5x at f32/1t and f64
    assert sorted(suite.row_label(r) for r, _ in tiny_torch.misses) == [
        "rnn/tiny/forward/full f32 1t",
        "rnn/tiny/forward/full f64 1t",
    ]
    assert verdicts["inference >= 1.5x ort on tiny/small"].status == "FAIL"  # the ragged row: 1.0x
    assert verdicts["ragged ratio <= 1.15"].status == "FAIL"
    lstm = verdicts["training >= 1.25x torch on lstm medium/large"]
    assert lstm.status == "FAIL" and [r["threads"] for r, _ in lstm.misses] == [1]
    assert verdicts["training >= 2x torch on every cell and size (but lstm medium/large)"].status == "no data"
    eff = verdicts["efficiency >= 80 % of the GEMM ceiling at H >= 256, B >= 64"]
    assert (eff.status, eff.checked, len(eff.misses)) == ("FAIL", 2, 1)
    assert verdicts["inference >= 1.0x ort on lstm/gru medium/large"].status == "no data"


def test_target_bounds():
    low, high = suite.Target("", lambda r: True, "x", low=2.0), suite.Target("", lambda r: True, "x", high=1.15)
    assert low.passes(2.0) and not low.passes(1.99)
    assert high.passes(1.15) and not high.passes(1.2)


def test_render_has_every_column_the_ceilings_and_the_targets():
    text = suite.render(_payloads(), ["f64, 2 thread(s): compare.py exited with status 2"], quick=True)
    header = next(line for line in text.splitlines() if line.startswith("| cell"))
    assert [c.strip() for c in header.strip("|").split("|")] == suite.HEADER
    assert "| f32 | 2 | numpy.matmul 100.0 (n=1024) | 100.0 |" in text
    assert "CPU      : test" in text
    assert (
        "| lstm | medium | train | full | f32 | 1 | 20.00 ms | 20.00 ms | n/a (fwd only) | 1.00x | - | 50 | 50 % | - |"
        in text
    )
    assert "- **FAIL** ragged ratio <= 1.15: 1 of 1 row miss it: rnn/tiny/forward/ragged f32 2t 1.50" in text
    assert "exited with status 2" in text


def test_compare_command_passes_options_through():
    args = suite.parse_args(["--cells", "rnn", "--sizes", "tiny,small", "--quick", "--threads", "1,2"])
    assert args.threads == [1, 2] and args.dtypes == ["f32", "f64"]
    cmd = suite.compare_command("f64", 2, "/tmp/x.json", args)
    assert cmd[1:] == [
        suite.COMPARE,
        "--dtype",
        "f64",
        "--threads",
        "2",
        "--json",
        "/tmp/x.json",
        "--cells",
        "rnn",
        "--sizes",
        "tiny,small",
        "--quick",
    ]
    with pytest.raises(SystemExit):
        suite.parse_args(["--dtypes", "f16"])
    with pytest.raises(SystemExit):
        suite.parse_args(["--threads", "0"])


def test_onnx_export_bench_runs():
    """benches/onnx_export.py runs end to end (one repetition) where onnxruntime is installed."""
    pytest.importorskip("onnx", reason="the ONNX export needs onnx (rnnrs[onnx])")
    pytest.importorskip("onnxruntime", reason="the benchmark runs the graphs on onnxruntime")
    import subprocess

    result = subprocess.run(
        [sys.executable, os.path.join(BENCHES, "onnx_export.py"), "--repeat", "1", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "digits SequenceClassifier predict" in result.stdout, result.stdout
    diffs = [float(line.split()[-1]) for line in result.stdout.splitlines() if line.endswith(tuple("0123456789"))]
    assert diffs and max(diffs) < 1e-5, result.stdout


# --------------------------------------------------------------------------------------
# Performance round 2: compare.py's rows, one step at B=1 and one training step at T=1000
# --------------------------------------------------------------------------------------


def _round2_verdicts(rows):
    return {v.target.text: v for v in suite.check_targets(rows, suite.TARGETS_ROUND2)}


def test_round2_targets_on_compare_rows():
    SIZES.setdefault("large", (128, 200, 256, 512))
    rows = suite.merge(
        [
            _payload(
                "f32",
                1,
                [
                    _row("lstm", "tiny", "forward", "full", 1e-5, torch=2e-4, ort=1.3e-5),  # not an lstm target size
                    _row("lstm", "medium", "forward", "full", 1e-2, torch=2e-2, ort=1.1e-2, efficiency=0.9),
                    _row("gru", "tiny", "forward", "full", 1e-5, ort=1e-5),  # not a gru target size
                    _row("gru", "large", "forward", "full", 1e-2, ort=1.3e-2, efficiency=0.86),
                    _row("lstm", "medium", "train", "full", 1e-2, torch=1.6e-2, efficiency=0.84),
                    _row("lstm", "large", "train", "full", 1e-2, torch=1.2e-2, efficiency=0.9),
                    _row("rnn", "medium", "train", "full", 1e-2, torch=2.1e-2, efficiency=0.9),
                    _row("gru", "large", "train", "full", 1e-2, torch=1.5e-2, efficiency=0.9),
                ],
            )
        ]
    )
    verdicts = _round2_verdicts(rows)
    lstm_ort = verdicts["inference >= 1.2x ort on lstm small/medium/large"]
    assert (lstm_ort.status, lstm_ort.checked) == ("FAIL", 1)  # tiny is not a target size
    assert [suite.row_label(r) for r, _ in lstm_ort.misses] == ["lstm/medium/forward/full f32 1t"]
    gru_ort = verdicts["inference >= 1.2x ort on gru medium/large"]
    assert (gru_ort.status, gru_ort.checked) == ("PASS", 1)
    assert verdicts["training >= 1.5x torch on lstm small/medium"].status == "PASS"
    lstm_large = verdicts["training >= 1.25x torch on lstm large"]
    assert lstm_large.status == "FAIL" and lstm_large.misses[0][1] == pytest.approx(1.2)
    assert verdicts["training >= 2x torch on rnn/gru medium"].status == "PASS"
    assert verdicts["training >= 1.5x torch on rnn/gru large"].status == "PASS"  # 1.5 is enough
    eff = verdicts["efficiency >= 85 % of the GEMM ceiling at H >= 256, B >= 64"]
    assert (eff.status, eff.checked, len(eff.misses)) == ("FAIL", 6, 1)
    # The first group is unchanged: 0.84 passes its 80 %.
    first = {v.target.text: v for v in suite.check_targets(rows)}
    assert first["efficiency >= 80 % of the GEMM ceiling at H >= 256, B >= 64"].status == "PASS"


def _step_row(cell, threads, step, torch, units=256, torch_status=""):
    return {
        "cell": cell,
        "batch": 1,
        "inputs": units,
        "units": units,
        "threads": threads,
        "dtype": "f32",
        "median_s": {"rnnrs step": step, "rnnrs dynamic_rnn T=1": step, "torch cell": torch},
        "status": {"rnnrs step": "", "rnnrs dynamic_rnn T=1": "", "torch cell": torch_status},
    }


def _step_payload():
    return {
        "machine": ["CPU      : test"],
        "args": {"threads": [1, 2]},
        "rows": [
            _step_row("lstm", 1, 40e-6, 120e-6),
            _step_row("lstm", 2, 40e-6, 100e-6),
            _step_row("gru", 1, 25e-6, 37.5e-6),
            _step_row("gru", 2, 25e-6, None, torch_status="MISMATCH"),
            _step_row("gru", 1, 5e-6, 5e-6, units=64),  # not the target's size
        ],
    }


def test_step_rows_table_and_target():
    rows = suite.step_rows(_step_payload())
    assert [r["torch/rnnrs"] for r in rows] == pytest.approx([3.0, 2.5, 1.5, None, 1.0], nan_ok=True)
    table = suite.step_table(rows)
    assert table.splitlines()[0] == "| " + " | ".join(suite.STEP_HEADER) + " |"
    assert "| lstm | 256 | 1 | 40.0 µs | 120.0 µs | 3.00x |" in table
    assert "| gru | 256 | 2 | 25.0 µs | MISMATCH | - |" in table
    (verdict,) = suite.check_targets(rows, suite.STEP_TARGETS)
    assert (verdict.status, verdict.checked) == ("FAIL", 3)
    (line,) = suite.render_verdicts([verdict])
    assert line == (
        "- **FAIL** one step at B=1, H=256: rnnrs step >= 2x torch cell (lstm, gru): "
        "1 of 3 rows miss it: gru B1 H256 1t 1.50x"
    )
    assert suite.check_targets(suite.step_rows(None), suite.STEP_TARGETS)[0].status == "no data"


def _memory_row(every, median, peak_mib, library="rnnrs", time=1000, batch=64, status=""):
    label = library if every is None else f"{library} k={every}"
    return {
        "cell": "lstm",
        "batch": batch,
        "time": time,
        "inputs": 128,
        "units": 256,
        "dtype": "f32",
        "threads": 2,
        "library": library,
        "checkpoint_every": every,
        "label": label,
        "status": status,
        "detail": "",
        "median_s": median,
        "peak_extra_mib": peak_mib,
    }


def _memory_payload(k32=(0.6, 267.4), auto=(0.7, 253.4), **size):
    return {
        "machine": ["CPU      : test"],
        "args": {"dtype": "f32", "threads": 2, "repeat": 3, "time": size.get("time", 1000)},
        "rows": [
            _memory_row(None, 0.5, 551.4, **size),
            _memory_row(32, *k32, **size),
            _memory_row("auto", *auto, **size),
            _memory_row(None, 1.0, 1045.4, library="torch", **size),
        ],
    }


def test_memory_rows_and_table():
    rows = suite.memory_rows(_memory_payload())
    assert [r["relative"] for r in rows] == pytest.approx([1.0, 1.2, 1.4, 2.0])
    table = suite.memory_table(rows)
    assert table.splitlines()[0] == "| " + " | ".join(suite.MEMORY_HEADER) + " |"
    assert "| rnnrs plain | 0.500 | 551.4 | 1.00x |" in table
    assert "| rnnrs checkpoint_every=32 | 0.600 | 267.4 | 1.20x |" in table
    assert "| rnnrs checkpoint_every=auto | 0.700 | 253.4 | 1.40x |" in table
    assert "| torch | 1.000 | 1045.4 | 2.00x |" in table
    missing = suite.memory_rows({"rows": [_memory_row(None, None, None, library="torch", status="not installed")]})
    assert "| torch | not installed | - | - |" in suite.memory_table(missing)


def test_memory_target_needs_one_variant_within_both_bounds():
    verdict = suite.check_memory(suite.memory_rows(_memory_payload()))
    assert verdict.status == "PASS"  # k=32: 267.4 MiB at 1.2x; auto is too slow
    assert suite.render_memory_verdict(verdict) == (
        "- **PASS** T=1000 training step: peak extra memory <= 300 MiB with <= 1.3x the plain rnnrs time: "
        "rnnrs checkpoint_every=32 267.4 MiB at 1.20x, rnnrs checkpoint_every=auto 253.4 MiB at 1.40x, "
        "rnnrs plain 551.4 MiB"
    )
    # Fast but too big, small but too slow: neither meets both.
    fail = suite.check_memory(suite.memory_rows(_memory_payload(k32=(0.55, 320.0), auto=(0.7, 200.0))))
    assert fail.status == "FAIL"
    assert suite.check_memory(suite.memory_rows(_memory_payload(k32=(0.65, 300.0)))).status == "PASS"  # both bounds
    # No plain time: no ratio, no data.
    rows = [r for r in _memory_payload()["rows"] if r["label"] != "rnnrs"]
    assert suite.check_memory(suite.memory_rows({"rows": rows})).status == "no data"
    assert suite.render_memory_verdict(suite.check_memory(suite.memory_rows(None))) == (
        f"- **no data** {suite.MEMORY_TARGET}"
    )
    reduced = suite.check_memory(suite.memory_rows(_memory_payload(time=100, batch=8)))
    assert suite.render_memory_verdict(reduced).endswith("(measured at B8 T100 I128 H256, a reduced problem)")


def test_render_with_step_and_memory_sections():
    text = suite.render(_payloads(), [], quick=False, step=_step_payload(), memory=_memory_payload())
    lines = text.splitlines()
    order = [
        "## One step at B=1, H=256",
        "## One training step at T=1000",
        "## Targets",
        "## Targets of performance round 2",
    ]
    assert [line for line in lines if line.startswith("## ")] == order
    assert "| lstm | 256 | 2 | 40.0 µs | 100.0 µs | 2.50x |" in lines
    assert "| rnnrs checkpoint_every=32 | 0.600 | 267.4 | 1.20x |" in lines
    assert "LSTM B64 T1000 I128 H256, f32, 2 thread(s)" in text and "--quick" not in text
    round2 = lines[lines.index("## Targets of performance round 2") + 2 :]
    assert len(round2) == len(suite.TARGETS_ROUND2) + 2
    assert round2[-2].startswith("- **FAIL** one step at B=1, H=256")
    assert round2[-1].startswith("- **PASS** T=1000 training step")
    assert "- **FAIL** inference >= 1.2x ort on lstm small/medium/large" not in text  # no lstm forward rows
    assert "- **no data** inference >= 1.2x ort on lstm small/medium/large" in round2


def test_render_without_step_and_memory_and_quick_memory():
    text = suite.render(_payloads(), [], quick=False)
    assert "## One step" not in text and "## One training step" not in text
    assert "- **no data** one step at B=1, H=256: rnnrs step >= 2x torch cell (lstm, gru)" in text
    assert f"- **no data** {suite.MEMORY_TARGET}" in text
    quick = suite.render(_payloads(), [], quick=True, memory=_memory_payload(time=100, batch=8))
    assert "## One training step at T=100" in quick.splitlines()
    assert "(--quick: a reduced problem, B8 T100 I128 H256, instead of B64 T1000 I128 H256)" in quick
    assert "LSTM B8 T100 I128 H256" in quick


def test_step_and_memory_commands():
    args = suite.parse_args(["--threads", "1,2", "--quick"])
    assert not args.no_step and not args.no_memory
    step = suite.step_command("/tmp/s.json", args)
    assert step[1:] == [
        suite.STEP_LATENCY,
        "--cells",
        "lstm,gru",
        "--sizes",
        "256",
        "--batch",
        "1",
        "--threads",
        "1,2",
        "--json",
        "/tmp/s.json",
        "--quick",
    ]
    memory = suite.memory_command("/tmp/m.json", args)
    assert memory[1:] == [
        suite.LONG_SEQUENCE,
        "--cells",
        "lstm",
        "--checkpoint-every",
        "none,32,auto",
        "--threads",
        "2",
        "--json",
        "/tmp/m.json",
        "--time",
        "100",
        "--batch",
        "32",
    ]
    full = suite.parse_args(["--threads", "2,1", "--no-step", "--no-memory"])
    assert full.no_step and full.no_memory
    assert "--quick" not in suite.step_command("x", full) and "--time" not in suite.memory_command("x", full)
    assert suite.memory_command("x", full)[suite.memory_command("x", full).index("--threads") + 1] == "2"


def _fake(payload, status):
    """A command that writes ``payload`` (unless None) to the path it is given and exits with ``status``."""

    def command(path):
        write = "" if payload is None else f"open({path!r}, 'w').write({json.dumps(payload)!r}); "
        return [sys.executable, "-c", f"import sys; {write}sys.exit({status})"]

    return command


def test_run_json_reports_failures_without_raising(tmp_path):
    path = str(tmp_path / "x.json")
    payload, problem = suite.run_json(_fake(None, 3)(path), path, "step_latency.py", "a mismatch")
    assert payload is None and problem == "step_latency.py exited with status 3"
    payload, problem = suite.run_json(_fake(None, 0)(path), path, "step_latency.py", "a mismatch")
    assert payload is None and problem == "step_latency.py wrote no results"
    payload, problem = suite.run_json(_fake({"rows": []}, 1)(path), path, "step_latency.py", "a mismatch")
    assert payload == {"rows": []} and problem == "step_latency.py exited with status 1 (a mismatch)"
    with open(path, "w") as f:
        f.write("{not json")
    payload, problem = suite.run_json([sys.executable, "-c", "pass"], path, "long_sequence.py", "-")
    assert payload is None and problem.startswith("long_sequence.py wrote unreadable results")


def test_main_reports_failed_parts_under_problems(monkeypatch, capfd):
    """main() with every run faked: the runs' console output goes to the real stderr (capfd)."""
    compare = _payloads()[0]
    memory = _memory_payload()
    memory["rows"][2].update(status="error", detail="exit -9: Killed", median_s=None, peak_extra_mib=None)
    monkeypatch.setattr(suite, "compare_command", lambda dtype, threads, path, args: _fake(compare, 0)(path))
    monkeypatch.setattr(suite, "step_command", lambda path, args: _fake(None, 2)(path))
    monkeypatch.setattr(suite, "memory_command", lambda path, args: _fake(memory, 1)(path))
    assert suite.main(["--dtypes", "f32", "--threads", "2"]) == 1
    text = capfd.readouterr().out
    problems = text.splitlines()[text.splitlines().index("## Problems") + 2 :]
    assert problems == [
        "- step_latency.py exited with status 2",
        "- long_sequence.py exited with status 1 (a case failed: see below)",
        "- long_sequence.py, rnnrs k=auto: error (exit -9: Killed)",
    ]
    assert "## One step" not in text and "| rnnrs checkpoint_every=auto | error | - | - |" in text
    assert "- **no data** one step at B=1, H=256" in text and "- **PASS** T=1000 training step" in text

    monkeypatch.setattr(suite, "step_command", lambda path, args: pytest.fail("--no-step runs step_latency.py"))
    monkeypatch.setattr(suite, "memory_command", lambda path, args: pytest.fail("--no-memory runs long_sequence.py"))
    assert suite.main(["--dtypes", "f32", "--threads", "2", "--no-step", "--no-memory"]) == 0
    assert "## Problems" not in capfd.readouterr().out
