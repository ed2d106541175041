#!/usr/bin/env python3
"""Runs compare.py for every dtype x thread count, plus the B=1 step and T=1000 memory
benchmarks, and merges the results into one document with the targets checked.

    python benches/suite.py                    # {f32, f64} x {1, 2} threads, compare.py's default cases
    python benches/suite.py --quick --cells rnn --sizes tiny,small
    python benches/suite.py --dtypes f32 --threads 2 --sizes all --out results.md
    python benches/suite.py --no-step --no-memory    # compare.py's runs only

compare.py fixes its thread count when it is imported, so every (dtype, threads) pair is
one compare.py subprocess, run with ``--json`` into a temporary directory.  Then come two
more subprocesses, also with ``--json``:

* ``step_latency.py --cells lstm,gru --sizes 256 --batch 1 --threads <the run's counts>``:
  one step ``cell(x, state)`` at B=1, H=256 next to PyTorch's cell (``--no-step`` skips it);
* ``long_sequence.py --cells lstm --checkpoint-every none,32,auto --threads <the largest
  count>``: one LSTM training step at B64 T1000 I128 H256, f32, its time and peak extra
  memory, rnnrs plain, with ``checkpoint_every=32`` and ``"auto"``, and torch
  (``--no-memory`` skips it).

``--quick`` is passed to compare.py and step_latency.py (which then runs the first thread
count only); long_sequence.py gets a reduced problem instead (``--time 100 --batch 32``),
and the document says so.  The console output of every run goes to stderr; stdout gets
one markdown document (also written to ``--out``):

* the machine (compare.py's ``host_description``, as the first run saw it), the sizes,
  and the GEMM ceiling of every run;
* one table: cell | size | mode | batch | dtype | threads | rnnrs | torch | ort |
  torch/rnnrs | ort/rnnrs | rnnrs GFLOP/s | % of ceiling | ragged ratio (ratios above 1:
  rnnrs is faster; the last three columns are explained in compare.py's docstring);
* the B=1 step table: cell | H | threads | rnnrs step | torch cell | torch/rnnrs;
* the T=1000 table: variant | time (s) | peak extra MiB | time / rnnrs plain;
* the targets (``TARGETS``), then those of performance round 2 (``TARGETS_ROUND2`` on
  compare.py's rows, ``STEP_TARGETS`` on the step rows and the memory target: some
  checkpointed variant within ``MEMORY_MAX_MIB`` and ``MEMORY_MAX_SLOWDOWN``), each PASS,
  FAIL (with the rows that miss it) or "no data";
* the problems: every run that failed (with its exit status) or wrote no results.

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
STEP_LATENCY = os.path.join(BENCHES_DIR, "step_latency.py")
LONG_SEQUENCE = os.path.join(BENCHES_DIR, "long_sequence.py")
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

STEP_CELLS = ("lstm", "gru")  # step_latency.py --cells
STEP_UNITS = 256  # --sizes (I = H)
STEP_BATCH = 1
RNNRS_STEP, TORCH_CELL = "rnnrs step", "torch cell"  # step_latency.py's contenders
STEP_HEADER = ["cell", "H", "threads", RNNRS_STEP, TORCH_CELL, "torch/rnnrs"]

MEMORY_ARGS = ["--cells", "lstm", "--checkpoint-every", "none,32,auto"]  # long_sequence.py, at its default size
# The reduced problem of --quick: at B=32 rnnrs runs chunks of 32 steps, so checkpoint_every=32 keeps
# 4 segments of T=100 (at B=8 a chunk is 256 steps and the checkpointed runs would keep everything).
MEMORY_QUICK = ["--time", "100", "--batch", "32"]
MEMORY_TIME = 1000  # long_sequence.py's default T, that of the target
MEMORY_HEADER = ["variant", "time (s)", "peak extra MiB", "time / rnnrs plain"]
MEMORY_MAX_MIB = 300.0
MEMORY_MAX_SLOWDOWN = 1.3
MEMORY_TARGET = (
    f"T=1000 training step: peak extra memory <= {MEMORY_MAX_MIB:g} MiB "
    f"with <= {MEMORY_MAX_SLOWDOWN:g}x the plain rnnrs time"
)

Row = Dict[str, Any]  # a compare.py JSON row with its run's "dtype" and "threads", plus "torch/rnnrs", "ort/rnnrs"
# (step_rows, memory_rows: a step_latency.py or long_sequence.py JSON row, plus "torch/rnnrs" or "relative")
Payload = Dict[str, Any]  # one compare.py (step_latency.py, long_sequence.py) --json file

# --------------------------------------------------------------------------------------
# Running compare.py, step_latency.py and long_sequence.py
# --------------------------------------------------------------------------------------


def compare_command(dtype: str, threads: int, json_path: str, args: argparse.Namespace) -> List[str]:
    cmd = [sys.executable, COMPARE, "--dtype", dtype, "--threads", str(threads), "--json", json_path]
    for name in PASSTHROUGH:
        if getattr(args, name) is not None:
            cmd += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    return cmd + (["--quick"] if args.quick else [])


def step_command(json_path: str, args: argparse.Namespace) -> List[str]:
    """step_latency.py at B=1, H=256 for lstm and gru, at every thread count of the run."""
    cmd = [sys.executable, STEP_LATENCY, "--cells", ",".join(STEP_CELLS), "--sizes", str(STEP_UNITS)]
    cmd += ["--batch", str(STEP_BATCH), "--threads", ",".join(map(str, args.threads)), "--json", json_path]
    return cmd + (["--quick"] if args.quick else [])


def memory_command(json_path: str, args: argparse.Namespace) -> List[str]:
    """long_sequence.py (B64 T1000 I128 H256 lstm, f32) at the run's largest thread count."""
    cmd = [sys.executable, LONG_SEQUENCE, *MEMORY_ARGS, "--threads", str(max(args.threads)), "--json", json_path]
    return cmd + (MEMORY_QUICK if args.quick else [])


def run_json(cmd: Sequence[str], path: str, what: str, status_1: str) -> Tuple[Optional[Payload], Optional[str]]:
    """Runs ``cmd`` (its console output to stderr) and reads the JSON it wrote to ``path``.

    Returns the payload (None when there is none) and a problem (None when all went
    well); ``what`` names the run in the problem, ``status_1`` says what exit status 1 means."""
    print(f"\n$ {' '.join(cmd)}", file=sys.stderr, flush=True)
    try:
        status = subprocess.call(list(cmd), stdout=sys.stderr)
    except OSError as exc:
        return None, f"{what} did not start: {exc}"
    problem = f"{what} exited with status {status}" + (f" ({status_1})" if status == 1 else "") if status else None
    if not os.path.exists(path):
        return None, problem or f"{what} wrote no results"
    try:
        with open(path) as f:
            return json.load(f), problem
    except (OSError, ValueError) as exc:
        return None, problem or f"{what} wrote unreadable results: {exc}"


@dataclass
class Results:
    payloads: List[Payload] = field(default_factory=list)  # compare.py, one per (dtype, threads)
    step: Optional[Payload] = None  # step_latency.py
    memory: Optional[Payload] = None  # long_sequence.py
    problems: List[str] = field(default_factory=list)

    def add(self, result: Tuple[Optional[Payload], Optional[str]]) -> Optional[Payload]:
        payload, problem = result
        if problem:
            self.problems.append(problem)
        return payload


def run_all(args: argparse.Namespace) -> Results:
    """One compare.py run per (dtype, threads), then step_latency.py and long_sequence.py
    (unless ``--no-step``, ``--no-memory``).  Returns their JSON payloads and the problems."""
    results = Results()
    mismatch = "a mismatch: see its output"
    with tempfile.TemporaryDirectory(prefix="rnnrs-suite-") as tmp:
        for dtype in args.dtypes:
            for threads in args.threads:
                path = os.path.join(tmp, f"{dtype}-{threads}.json")
                what = f"{dtype}, {threads} thread(s): compare.py"
                payload = results.add(run_json(compare_command(dtype, threads, path, args), path, what, mismatch))
                if payload is not None:
                    results.payloads.append(payload)
        if not args.no_step:
            path = os.path.join(tmp, "step.json")
            results.step = results.add(run_json(step_command(path, args), path, "step_latency.py", mismatch))
        if not args.no_memory:
            path = os.path.join(tmp, "memory.json")
            results.memory = results.add(
                run_json(memory_command(path, args), path, "long_sequence.py", "a case failed: see below")
            )
            results.problems += [
                f"long_sequence.py, {r['label']}: {r['status']}" + (f" ({r['detail']})" if r.get("detail") else "")
                for r in (results.memory or {}).get("rows", [])
                if r["status"] == "error"
            ]
    return results


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


def row_label(row: Row) -> str:
    return f"{'/'.join(str(_field(row, k)) for k in ORDER)} {row['dtype']} {row['threads']}t"


@dataclass(frozen=True)
class Target:
    text: str
    applies: Callable[[Row], bool]
    column: str  # the row value checked; rows without one are not counted
    low: Optional[float] = None  # passes when value >= low
    high: Optional[float] = None  # passes when value <= high
    show: Callable[[Optional[float]], str] = fmt_times
    label: Callable[[Row], str] = row_label  # how a row that misses the target is named

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

TARGETS_ROUND2: Tuple[Target, ...] = (
    Target(
        "inference >= 1.2x ort on lstm small/medium/large",
        lambda r: _in(r, mode=["forward"], cell=["lstm"], size=["small", *BIG], dtype=["f32"]),
        "ort/rnnrs",
        low=1.2,
    ),
    Target(
        "inference >= 1.2x ort on gru medium/large",
        lambda r: _in(r, mode=["forward"], cell=["gru"], size=BIG, dtype=["f32"]),
        "ort/rnnrs",
        low=1.2,
    ),
    Target(
        "training >= 1.5x torch on lstm small/medium",
        lambda r: _in(r, mode=["train"], cell=["lstm"], size=["small", "medium"], dtype=["f32"]),
        "torch/rnnrs",
        low=1.5,
    ),
    Target(
        "training >= 1.25x torch on lstm large",
        lambda r: _in(r, mode=["train"], cell=["lstm"], size=["large"], dtype=["f32"]),
        "torch/rnnrs",
        low=1.25,
    ),
    Target(
        "training >= 2x torch on rnn/gru medium",
        lambda r: _in(r, mode=["train"], cell=["rnn", "gru"], size=["medium"], dtype=["f32"]),
        "torch/rnnrs",
        low=2.0,
    ),
    Target(
        "training >= 1.5x torch on rnn/gru large",
        lambda r: _in(r, mode=["train"], cell=["rnn", "gru"], size=["large"], dtype=["f32"]),
        "torch/rnnrs",
        low=1.5,
    ),
    Target(
        "efficiency >= 85 % of the GEMM ceiling at H >= 256, B >= 64",
        lambda r: r["size"]["units"] >= 256 and r["size"]["batch"] >= 64 and r["dtype"] == "f32",
        "efficiency",
        low=0.85,
        show=fmt_percent,
    ),
)


def step_label(row: Row) -> str:
    return f"{row['cell']} B{row['batch']} H{row['units']} {row['threads']}t"


STEP_TARGETS: Tuple[Target, ...] = (
    Target(
        f"one step at B={STEP_BATCH}, H={STEP_UNITS}: rnnrs step >= 2x torch cell ({', '.join(STEP_CELLS)})",
        lambda r: r["cell"] in STEP_CELLS and r["units"] == STEP_UNITS and r["batch"] == STEP_BATCH,
        "torch/rnnrs",
        low=2.0,
        label=step_label,
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


def _rows(n: int) -> str:
    return f"{n} row" + ("" if n == 1 else "s")


def render_verdicts(verdicts: Sequence[Verdict], most: int = 6) -> List[str]:
    lines = []
    for v in verdicts:
        line = f"- **{v.status}** {v.target.text}"
        if v.misses:
            shown = ", ".join(f"{v.target.label(r)} {v.target.show(value)}" for r, value in v.misses[:most])
            more = f" (+{len(v.misses) - most} more)" if len(v.misses) > most else ""
            line += f": {len(v.misses)} of {_rows(v.checked)} miss it: {shown}{more}"
        elif v.checked:
            line += f": {_rows(v.checked)}"
        lines.append(line)
    return lines


# --------------------------------------------------------------------------------------
# One step at B=1 (step_latency.py) and one training step at T=1000 (long_sequence.py)
# --------------------------------------------------------------------------------------


def step_rows(payload: Optional[Payload]) -> List[Row]:
    """step_latency.py's rows, each with "torch/rnnrs" (torch cell median / rnnrs step median)."""
    rows = (payload or {}).get("rows", [])
    return [{**r, "torch/rnnrs": ratio(r["median_s"].get(TORCH_CELL), r["median_s"].get(RNNRS_STEP))} for r in rows]


def step_table(rows: Sequence[Row]) -> str:
    body = [
        [r["cell"], str(r["units"]), str(r["threads"])]
        + [time_cell(r["median_s"].get(n), r["status"].get(n, "not run")) for n in (RNNRS_STEP, TORCH_CELL)]
        + [fmt_times(r["torch/rnnrs"])]
        for r in rows
    ]
    return render_table(STEP_HEADER, body, markdown=True, left=3)


def _plain(row: Row) -> bool:
    return bool(row["library"] == "rnnrs" and row["checkpoint_every"] is None)


def memory_rows(payload: Optional[Payload]) -> List[Row]:
    """long_sequence.py's rows, each with "relative" (its median time / plain rnnrs's)."""
    rows = (payload or {}).get("rows", [])
    plain = next((r["median_s"] for r in rows if _plain(r)), None)
    return [{**r, "relative": ratio(r["median_s"], plain)} for r in rows]


def variant(row: Row) -> str:
    if row["library"] != "rnnrs":
        return str(row["library"])
    return "rnnrs plain" if _plain(row) else f"rnnrs checkpoint_every={row['checkpoint_every']}"


def memory_size(row: Row) -> str:
    return f"B{row['batch']} T{row['time']} I{row['inputs']} H{row['units']}"


def memory_table(rows: Sequence[Row]) -> str:
    body = [
        [
            variant(r),
            fmt_value(r["median_s"], ".3f") if r["median_s"] is not None else time_cell(None, r["status"]),
            fmt_value(r["peak_extra_mib"], ".1f"),
            fmt_times(r["relative"]),
        ]
        for r in rows
    ]
    return render_table(MEMORY_HEADER, body, markdown=True, left=1)


@dataclass
class MemoryVerdict:
    """The memory target: it passes when some checkpointed variant meets both bounds."""

    checked: List[Tuple[Row, float, float]]  # checkpointed rnnrs rows with figures: (row, peak MiB, relative time)
    plain: Optional[Row] = None

    @staticmethod
    def meets(peak_mib: float, relative: float) -> bool:
        return peak_mib <= MEMORY_MAX_MIB and relative <= MEMORY_MAX_SLOWDOWN

    @property
    def status(self) -> str:
        if not self.checked:
            return "no data"
        return "PASS" if any(self.meets(m, t) for _, m, t in self.checked) else "FAIL"


def check_memory(rows: Sequence[Row]) -> MemoryVerdict:
    checked = [
        (r, float(r["peak_extra_mib"]), float(r["relative"]))
        for r in rows
        if r["library"] == "rnnrs" and not _plain(r) and r["peak_extra_mib"] is not None and r["relative"] is not None
    ]
    return MemoryVerdict(checked, next((r for r in rows if _plain(r)), None))


def render_memory_verdict(v: MemoryVerdict) -> str:
    line = f"- **{v.status}** {MEMORY_TARGET}"
    if not v.checked:
        return line
    shown = [f"{variant(r)} {mib:.1f} MiB at {t:.2f}x" for r, mib, t in v.checked]
    if v.plain is not None and v.plain["peak_extra_mib"] is not None:
        shown.append(f"rnnrs plain {v.plain['peak_extra_mib']:.1f} MiB")
    line += ": " + ", ".join(shown)
    size = memory_size(v.checked[0][0])
    return line + ("" if v.checked[0][0]["time"] == MEMORY_TIME else f" (measured at {size}, a reduced problem)")


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


def step_section(payload: Payload) -> List[str]:
    return [
        "",
        f"## One step at B={STEP_BATCH}, H={STEP_UNITS}",
        "",
        "`out, state = cell(x, state)` (f32, I = H) next to PyTorch's `nn.LSTMCell` / `nn.GRUCell` on tensors "
        "under `no_grad` (`benches/step_latency.py`); median time per call, torch/rnnrs above 1 means rnnrs is faster.",
        "",
        step_table(step_rows(payload)),
    ]


def memory_section(payload: Payload, quick: bool) -> List[str]:
    rows = memory_rows(payload)
    args = payload.get("args") or {}
    size = memory_size(rows[0]) if rows else "-"
    lines = [
        "",
        f"## One training step at T={rows[0]['time'] if rows else MEMORY_TIME}",  # T=100 with --quick
        "",
        f"LSTM {size}, {args.get('dtype', 'f32')}, {args.get('threads', '?')} thread(s) "
        f"(`benches/long_sequence.py`, one subprocess per variant): median time of "
        f"{args.get('repeat', '?')} training steps and the peak RSS over the baseline after the warm-up; "
        'rnnrs plain, with `checkpoint_every=32` and `"auto"`, and torch\'s `nn.LSTM`.',
    ]
    if quick:
        lines += ["", f"(--quick: a reduced problem, {size}, instead of B64 T1000 I128 H256)"]
    return lines + ["", memory_table(rows)]


def render(
    payloads: Sequence[Payload],
    problems: Sequence[str],
    quick: bool,
    step: Optional[Payload] = None,
    memory: Optional[Payload] = None,
) -> str:
    """The document; ``step`` and ``memory`` are step_latency.py's and long_sequence.py's
    payloads (None: not run, or failed)."""
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
    ]
    if step is not None:
        out += step_section(step)
    if memory is not None:
        out += memory_section(memory, quick)
    out += ["", "## Targets", ""] + render_verdicts(check_targets(rows))
    out += ["", "## Targets of performance round 2", ""] + render_verdicts(check_targets(rows, TARGETS_ROUND2))
    out += render_verdicts(check_targets(step_rows(step), STEP_TARGETS))
    out.append(render_memory_verdict(check_memory(memory_rows(memory))))
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
    p.add_argument("--no-step", action="store_true", help="skip step_latency.py (one step at B=1, H=256)")
    p.add_argument("--no-memory", action="store_true", help="skip long_sequence.py (one training step at T=1000)")
    p.add_argument("--out", metavar="FILE", help="also write the markdown document to FILE")
    args = p.parse_args(argv)
    args.dtypes = _list(args.dtypes, str, DTYPES, "--dtypes")
    args.threads = _list(args.threads, int, None, "--threads")
    return args


def main(argv: Sequence[str] = ()) -> int:
    args = parse_args(argv)
    results = run_all(args)
    text = render(results.payloads, results.problems, args.quick, results.step, results.memory)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 1 if results.problems or not results.payloads else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
