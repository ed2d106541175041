"""Text formatting and helpers shared by the scripts in ``benches/`` (``compare.py``, ``suite.py``,
``step_latency.py``, ``long_sequence.py``).

No NumPy, no peers: ``suite.py`` (and the tests of its merge and target checks) import
this module without the import-time thread setup and library imports of ``compare.py``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
from typing import Any, Callable, List, Optional, Sequence, Tuple


def fmt_time(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_value(value: Optional[float], spec: str = ".2f", suffix: str = "") -> str:
    """``format(value, spec) + suffix``, or "-" for a missing value."""
    return "-" if value is None else f"{format(value, spec)}{suffix}"


def fmt_times(value: Optional[float]) -> str:
    """A ratio as "2.50x", or "-"."""
    return fmt_value(value, suffix="x")


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    """``a / b``, or None when either is missing (or ``b`` is zero)."""
    return a / b if a is not None and b else None


def fmt_percent(fraction: Optional[float]) -> str:
    return fmt_value(None if fraction is None else 100.0 * fraction, ".0f", " %")


def fmt_gflops(gflops: Optional[float]) -> str:
    """Three significant digits below 100 (tiny cases run at a few MFLOP/s), whole numbers above."""
    return fmt_value(gflops, ".3g" if gflops is not None and gflops < 100 else ".0f")


METRIC_HEADER = ("rnnrs GFLOP/s", "% of ceiling", "ragged ratio")


def metric_cells(gflops: Optional[float], efficiency: Optional[float], ragged_ratio: Optional[float]) -> List[str]:
    """The cells under ``METRIC_HEADER``."""
    return [fmt_gflops(gflops), fmt_percent(efficiency), fmt_value(ragged_ratio)]


def time_cell(median: Optional[float], status: str) -> str:
    """A contender's table cell: its median time, or a short reason why there is none."""
    if median is not None:
        return fmt_time(median)
    if status in ("MISMATCH", "not installed"):
        return status
    if status == "not run":
        return "-"
    if status.startswith("skipped"):
        return "skipped"
    if status == "forward only":
        return "n/a (fwd only)"
    if status == "no float64 kernel":
        return "n/a (f64)"
    if status.startswith("tests/reference"):
        return "n/a"
    return "error" if status else "-"


def render_table(header: Sequence[str], body: Sequence[Sequence[str]], markdown: bool, left: int) -> str:
    """A table as markdown or as aligned plain text; the first ``left`` columns are
    left-aligned, the others (numbers) right-aligned."""
    if markdown:
        head = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---" if i < left else "---:" for i in range(len(header))) + "|",
        ]
        return "\n".join(head + ["| " + " | ".join(r) + " |" for r in body])
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    lines: List[str] = [fmt(header), "  ".join("-" * w for w in widths)]
    return "\n".join(lines + [fmt(r) for r in body])


THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "RNNRS_NUM_THREADS",
)


def pin_threads(argv: Sequence[str]) -> int:
    """Reads ``--threads`` (default 2) from ``argv`` and sets every thread-count variable
    the libraries read at import: call before importing NumPy or any peer."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--threads", type=int, default=2)
    ns, _ = p.parse_known_args(argv)
    threads = max(1, int(ns.threads))
    for var in THREAD_VARIABLES:
        os.environ[var] = str(threads)
    return threads


def csv_choice(value: str, allowed: Sequence[str], what: str) -> List[str]:
    """A comma list of names out of ``allowed`` (``all`` for every one); exits with a
    message naming the unknown ones, or when the list is empty."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    if items == ["all"]:
        return list(allowed)
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise SystemExit(f"unknown {what}: {', '.join(bad) or '(none)'} (choose from {', '.join(allowed)})")
    return items


def maxrss_bytes() -> int:
    """The process's resident-set high-water mark (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def timed_calls(call: Callable[[], object], repeat: int) -> Tuple[int, List[float], List[int]]:
    """``repeat`` timed calls of ``call`` with the garbage collector paused, after
    a collection: the RSS high-water mark before them (the baseline), each
    call's seconds, and the high-water mark after each call."""
    gc.collect()
    baseline = maxrss_bytes()
    times: List[float] = []
    peaks: List[int] = []
    gc.disable()
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
            peaks.append(maxrss_bytes())
    finally:
        gc.enable()
    return baseline, times, peaks


def cpu_line() -> str:
    """The ``CPU      :`` line the scripts print under their titles: processor, logical
    CPUs and the load average at start."""
    load = f", load average {os.getloadavg()[0]:.2f} at start" if hasattr(os, "getloadavg") else ""
    return f"CPU      : {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs{load}"


def write_json(path: str, payload: Any) -> None:
    """Writes a script's ``--json`` results to ``path`` and says so."""
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    print(f"results written to {path}")
