"""benches/suite.py: merging compare.py's JSON and checking the targets, on synthetic rows.

Nothing here times anything or starts compare.py."""

from __future__ import annotations

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
