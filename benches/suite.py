#!/usr/bin/env python3
"""Runs compare.py for every dtype x thread count and merges the results into one table.

    python benches/suite.py                    # {f32, f64} x {1, 2} threads, compare.py's default cases
    python benches/suite.py --quick --cells rnn --sizes tiny,small
    python benches/suite.py --dtypes f32 --threads 2 --sizes all --out results.md

compare.py fixes its thread count when it is imported, so every (dtype, threads) pair is
one compare.py subprocess, run with ``--json`` into a temporary directory.  Its console
output goes to stderr; stdout gets one markdown document (also written to ``--out``):

* the machine (compare.py's ``host_description``, as the first run saw it), the sizes,
  and the GEMM ceiling of every run;
* one table: cell | size | mode | batch | dtype | threads | rnnrs | torch | ort |
  torch/rnnrs | ort/rnnrs | rnnrs GFLOP/s | % of ceiling | ragged ratio (ratios above 1:
  rnnrs is faster; the last three columns are explained in compare.py's docstring);
* the targets (``TARGETS``), each PASS, FAIL (with the rows that miss it) or "no data".

``--cells``, ``--sizes``, ``--modes``, ``--layouts``, ``--budget``, ``--min-reps`` and ``--quick`` are
passed to every compare.py run.  The exit status is 1 when a run failed or reported a
mismatch; a missed target does not change it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

BENCHES_DIR = os.path.dirname(os.path.abspath(__file__))
if BENCHES_DIR not in sys.path:  # report.py, next to this file
    sys.path.insert(0, BENCHES_DIR)
from report import METRIC_HEADER, fmt_percent, fmt_times, fmt_value, metric_cells, ratio, render_table, time_cell  # noqa: E402

COMPARE = os.path.join(BENCHES_DIR, "compare.py")
DTYPES = ("f32", "f64")
PASSTHROUGH = ("cells", "sizes", "modes", "layouts", "budget", "min_reps")  # and --quick
PEERS = {"torch": "torch", "ort": "onnxruntime"}  # column -> compare.py contender
ORDER = ("cell", "size", "mode", "layout")  # rows sorted by these (in the order compare.py ran them), dtype, threads
HEADER = (
    ["cell", "size", "mode", "batch", "dtype", "threads", "rnnrs"]
    + list(PEERS)
    + [f"{c}/rnnrs" for c in PEERS]
    + list(METRIC_HEADER)
)
BIG = ("medium", "large")

Row = Dict[str, Any]  # a compare.py JSON row with its run's "dtype" and "threads", plus "torch/rnnrs", "ort/rnnrs"
Payload = Dict[str, Any]  # one compare.py --json file

# --------------------------------------------------------------------------------------
# Running compare.py
# --------------------------------------------------------------------------------------


def compare_command(dtype: str, threads: int, json_path: str, args: argparse.Namespace) -> List[str]:
    cmd = [sys.executable, COMPARE, "--dtype", dtype, "--threads", str(threads), "--json", json_path]
    for name in PASSTHROUGH:
        if getattr(args, name) is not None:
            cmd += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    return cmd + (["--quick"] if args.quick else [])


def run_all(args: argparse.Namespace) -> Tuple[List[Payload], List[str]]:
    """One compare.py run per (dtype, threads).  Returns the JSON payloads and the problems."""
    payloads: List[Payload] = []
    problems: List[str] = []
    with tempfile.TemporaryDirectory(prefix="rnnrs-suite-") as tmp:
        for dtype in args.dtypes:
            for threads in args.threads:
                path = os.path.join(tmp, f"{dtype}-{threads}.json")
                cmd = compare_command(dtype, threads, path, args)
                print(f"\n$ {' '.join(cmd)}", file=sys.stderr, flush=True)
                status = subprocess.call(cmd, stdout=sys.stderr)
                if status:
                    problems.append(
                        f"{dtype}, {threads} thread(s): compare.py exited with status {status}"
                        + (" (a mismatch: see its output)" if status == 1 else "")
                    )
                if os.path.exists(path):
                    with open(path) as f:
                        payloads.append(json.load(f))
    return payloads, problems


# --------------------------------------------------------------------------------------
# Merging
# --------------------------------------------------------------------------------------


def _field(row: Row, key: str) -> Any:
    return row["size"]["name"] if key == "size" else row[key]


def merge(payloads: Sequence[Payload]) -> List[Row]:
    """Every run's rows, each with its run's dtype and threads and the peer ratios
    (peer median / rnnrs median), sorted by ``ORDER`` and then dtype and threads."""
    rows: List[Row] = []
    for payload in payloads:
        for r in payload["rows"]:
            row = {"dtype": payload["args"]["dtype"], "threads": payload["args"]["threads"], **r}
            for column, name in PEERS.items():
                row[f"{column}/rnnrs"] = ratio(r["median_s"].get(name), r["median_s"].get("rnnrs"))
            rows.append(row)
    first: Dict[Tuple[str, Any], int] = {}
    for i, row in enumerate(rows):
        for key in ORDER:
            first.setdefault((key, _field(row, key)), i)
    return sorted(rows, key=lambda r: tuple(first[(k, _field(r, k))] for k in ORDER) + (r["dtype"], r["threads"]))


def table(rows: Sequence[Row]) -> str:
    body = [
        [r["cell"], r["size"]["name"], r["mode"], r["layout"], r["dtype"], str(r["threads"])]
        + [time_cell(r["median_s"].get(n), r["status"].get(n, "not run")) for n in ["rnnrs", *PEERS.values()]]
        + [fmt_times(r[f"{c}/rnnrs"]) for c in PEERS]
        + metric_cells(r.get("rnnrs_gflops"), r.get("efficiency"), r.get("ragged_ratio"))
        for r in rows
    ]
    return render_table(HEADER, body, markdown=True, left=6)


# --------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------


def _in(row: Row, **allowed: Sequence[Any]) -> bool:
    """Whether each named field of ``row`` (``size``: its name) is one of the allowed values."""
    return all(_field(row, key) in values for key, values in allowed.items())


@dataclass(frozen=True)
class Target:
    text: str
    applies: Callable[[Row], bool]
    column: str  # the row value checked; rows without one are not counted
    low: Optional[float] = None  # passes when value >= low
    high: Optional[float] = None  # passes when value <= high
    show: Callable[[Optional[float]], str] = fmt_times

    def passes(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


TARGETS: Tuple[Target, ...] = (
    Target(
        "training >= 2x torch on every cell and size (but lstm medium/large)",
        lambda r: _in(r, mode=["train"]) and not _in(r, cell=["lstm"], size=BIG),
        "torch/rnnrs",
        low=2.0,
    ),
    Target(
        "training >= 1.25x torch on lstm medium/large",
        lambda r: _in(r, mode=["train"], cell=["lstm"], size=BIG),
        "torch/rnnrs",
        low=1.25,
    ),
    Target(
        "inference >= 1.0x ort on lstm/gru medium/large",
        lambda r: _in(r, mode=["forward"], cell=["lstm", "gru"], size=BIG),
        "ort/rnnrs",
        low=1.0,
    ),
    Target(
        "inference >= 1.5x ort on tiny/small",
        lambda r: _in(r, mode=["forward"], size=["tiny", "small"]),
        "ort/rnnrs",
        low=1.5,
    ),
    Target(
        "inference >= 10x torch on tiny", lambda r: _in(r, mode=["forward"], size=["tiny"]), "torch/rnnrs", low=10.0
    ),
    Target("ragged ratio <= 1.15", lambda r: _in(r, layout=["ragged"]), "ragged_ratio", high=1.15, show=fmt_value),
    Target("f64 >= 2x torch (every mode)", lambda r: _in(r, dtype=["f64"]), "torch/rnnrs", low=2.0),
    Target(
        "efficiency >= 80 % of the GEMM ceiling at H >= 256, B >= 64",
        lambda r: r["size"]["units"] >= 256 and r["size"]["batch"] >= 64,
        "efficiency",
        low=0.80,
        show=fmt_percent,
    ),
)


@dataclass
class Verdict:
    target: Target
    checked: int  # rows the target applies to that have a value
    misses: List[Tuple[Row, float]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "no data" if not self.checked else "FAIL" if self.misses else "PASS"


def check_targets(rows: Sequence[Row], targets: Sequence[Target] = TARGETS) -> List[Verdict]:
    verdicts = []
    for target in targets:
        values = [(r, float(r[target.column])) for r in rows if target.applies(r) and r.get(target.column) is not None]
        verdicts.append(Verdict(target, len(values), [(r, v) for r, v in values if not target.passes(v)]))
    return verdicts


def row_label(row: Row) -> str:
    return f"{'/'.join(str(_field(row, k)) for k in ORDER)} {row['dtype']} {row['threads']}t"


def _rows(n: int) -> str:
    return f"{n} row" + ("" if n == 1 else "s")


def render_verdicts(verdicts: Sequence[Verdict], most: int = 6) -> List[str]:
    lines = []
    for v in verdicts:
        line = f"- **{v.status}** {v.target.text}"
        if v.misses:
            shown = ", ".join(f"{row_label(r)} {v.target.show(value)}" for r, value in v.misses[:most])
            more = f" (+{len(v.misses) - most} more)" if len(v.misses) > most else ""
            line += f": {len(v.misses)} of {_rows(v.checked)} miss it: {shown}{more}"
        elif v.checked:
            line += f": {_rows(v.checked)}"
        lines.append(line)
    return lines


# --------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------


def _ceiling_row(payload: Payload) -> List[str]:
    c = payload.get("ceiling") or {}
    backends = ", ".join(
        f"{name} {fmt_value(b['gflops'], '.1f')} (n={b['n']})" for name, b in (c.get("backends") or {}).items()
    )
    return [
        payload["args"]["dtype"],
        str(payload["args"]["threads"]),
        backends or "-",
        fmt_value(c.get("gflops"), ".1f"),
    ]


def render(payloads: Sequence[Payload], problems: Sequence[str], quick: bool) -> str:
    rows = merge(payloads)
    sizes = {r["size"]["name"]: r["size"] for r in rows}
    out = ["# rnnrs benchmark suite", ""]
    if payloads:
        out += [
            "Machine (as the first run saw it):",
            "",
            "```",
            *(payloads[0].get("host") or payloads[0]["machine"]),
            "```",
            "",
        ]
    out += [
        "Sizes: " + "; ".join(f"{n} B{s['batch']} T{s['time']} I{s['inputs']} H{s['units']}" for n, s in sizes.items()),
        "",
        "GEMM ceiling per run (best GFLOP/s of a large square product, measured before the cases):",
        "",
        render_table(
            ["dtype", "threads", "by backend (GFLOP/s)", "ceiling GFLOP/s"],
            [_ceiling_row(p) for p in payloads],
            markdown=True,
            left=3,
        ),
        "",
        "Median time per call; x/rnnrs above 1 means rnnrs is faster.",
        "",
        table(rows),
        "",
        "## Targets",
        "",
    ]
    out += render_verdicts(check_targets(rows))
    if quick:
        out += ["", "(--quick: a few repetitions per case on a possibly busy machine; the verdicts are a smoke test)"]
    if problems:
        out += ["", "## Problems", ""] + [f"- {p}" for p in problems]
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def _list(value: str, convert: Callable[[str], Any], allowed: Optional[Sequence[Any]], what: str) -> List[Any]:
    try:
        items = [convert(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"bad {what}: {value}") from None
    bad = [v for v in items if (allowed is not None and v not in allowed) or (isinstance(v, int) and v < 1)]
    if bad or not items:
        raise SystemExit(f"bad {what}: {value}")
    return items


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dtypes", default="f32,f64", help="comma list of f32,f64 (default both)")
    p.add_argument("--threads", default="1,2", help="comma list of thread counts (default 1,2)")
    for name in PASSTHROUGH:
        p.add_argument("--" + name.replace("_", "-"), default=None, help="passed to compare.py (default: compare.py's)")
    p.add_argument("--quick", action="store_true", help="passed to compare.py: a smoke test")
    p.add_argument("--out", metavar="FILE", help="also write the markdown document to FILE")
    args = p.parse_args(argv)
    args.dtypes = _list(args.dtypes, str, DTYPES, "--dtypes")
    args.threads = _list(args.threads, int, None, "--threads")
    return args


def main(argv: Sequence[str] = ()) -> int:
    args = parse_args(argv)
    payloads, problems = run_all(args)
    text = render(payloads, problems, args.quick)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 1 if problems or not payloads else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
