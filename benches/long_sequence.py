#!/usr/bin/env python3
"""Time and peak memory of one training step on long sequences: rnnrs next to PyTorch CPU.

    python benches/long_sequence.py                      # lstm, B64 T1000 I128 H256, f32, 2 threads
    python benches/long_sequence.py --cells lstm,gru,rnn --time 200
    python benches/long_sequence.py --dtype f64 --markdown
    python benches/long_sequence.py --cells lstm,gru,rnn --checkpoint-every none,32,auto
    python benches/long_sequence.py --checkpoint-every none,32,auto --json memory.json

What is measured
----------------
Backpropagation through time keeps every step's activations until the backward pass has
used them, so the memory of a training step grows linearly with the sequence length T.
At T = 1000 that cache, not the weights, is what decides whether a batch fits in memory.
For every cell kind (``--cells``, default ``lstm``) and library this script measures one
training step on a ``[B, T, I]`` batch (every sequence T steps long):

* rnnrs: ``out, state, bp = rnnrs.dynamic_rnn(cell, x, return_backprop=True)`` and
  ``bp(d_outputs=dY)``, i.e. the gradients of ``sum(out * dY)`` w.r.t. the inputs and all
  weights, for ``BasicLSTMCell(H)``, ``GRUCell(H, reset_after=True)``, ``BasicRNNCell(H)``;
* torch (when installed): ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (``batch_first=True``, one
  layer, its default initialisation) on CPU, ``out, _ = module(x)`` then ``out.backward(dY)``,
  with ``x.requires_grad`` so that it computes ``d inputs`` as rnnrs does.

The weights are not shared and the results are not compared: ``compare.py`` checks that
both libraries compute the same thing.  Here only the cost of the computation matters.

``--checkpoint-every`` (a comma list of ``none``, positive integers and ``auto``; default
``none``) runs rnnrs once per value, with ``dynamic_rnn(..., checkpoint_every=k)``
(gradient checkpointing: the forward pass keeps the state every ``k`` steps and backprop
recomputes the rest; the gradients are bitwise the same).  Its rows are labelled
``rnnrs k=32``, ``rnnrs k=auto``.

Each (library, cell kind) runs in a fresh subprocess, so one measurement's allocations
(or its allocator's retained pages) cannot leak into another's.  The child imports its
library, sets its thread count (``--threads``), builds ``x`` and ``dY`` (drawn directly in
the run's dtype, without temporaries), builds the cell and runs one small warm-up step at
T = 10, so library and thread-pool initialisation and the weights are all in the baseline.
The baseline is ``getrusage(RUSAGE_SELF).ru_maxrss`` at that point.  The child then runs
the T-step training step ``--repeat`` times (default 3), timing each; the table shows
the median time and the peak RSS increase over the baseline (MiB), i.e. the largest
resident memory the step needed beyond its inputs: the forward's cache, the outputs,
the gradients and any scratch space.  ``ru_maxrss`` is a high-water mark, so the
baseline is only exact when the current RSS equals it; the child also reads the
current RSS (``/proc/self/statm``) and the per-case line reports the difference ("slack",
which would make the figure too low).  The per-case line also shows the high-water mark
after each repetition: a mark that still grows after the first one means that memory of
one step outlived it.

The last column is an estimate of what rnnrs's forward pass keeps for backprop, the
analytic size of its cache (``rust/cell/*.rs``: ``LstmCache``, ``GruCache``, ``RnnCache``),
``floats per token x B x T x itemsize`` with, per token,

* lstm: 4H gate activations + H cell state + H output state + I inputs,
* gru (reset_after): 3H gates + H ``q`` (``h @ hidden_kernel + hidden_bias``) + H state + I,
* rnn: H state + I inputs.

It leaves out the outputs ``[B, T, H]``, the input gradient ``[B, T, I]`` and the
backward's scratch space, which the measured peak includes.  With ``checkpoint_every=k``
the forward keeps, per token, the I inputs and the state (lstm 2H, gru and rnn H) once
every ``k`` steps, ``k`` rounded up to whole chunks of steps as rnnrs does
(:func:`chunk_steps`); the backward's buffers of one segment are not in the estimate.

``--json PATH`` also writes the results to ``PATH``: ``machine`` (the host lines printed
under the title), ``args`` (the parsed options) and one entry per row with its case
(``cell``, ``batch``, ``time``, ``inputs``, ``units``, ``dtype``, ``threads``), ``library``,
``checkpoint_every`` (null, an integer or ``"auto"``) and ``segment_steps``, ``label``,
``status`` and ``detail``, ``version``, every run's time (``times_s``) and ``median_s``, the
memory figures in bytes (``baseline_bytes``, ``current_bytes``, ``peaks_bytes``) and in MiB
(``peak_extra_mib``, ``estimate_mib``).  The exit status is 1 when a case failed (a row
with status ``error``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

# --------------------------------------------------------------------------------------
# Thread count must be fixed before NumPy (and its BLAS) is imported; the children
# inherit these variables (and set them again, as they parse the same option).
# --------------------------------------------------------------------------------------


BENCHES_DIR = os.path.dirname(os.path.abspath(__file__))
if BENCHES_DIR not in sys.path:  # report.py, next to this file
    sys.path.insert(0, BENCHES_DIR)
from report import csv_choice, pin_threads  # noqa: E402  (report imports nothing heavy)

_THREADS = pin_threads(sys.argv[1:])

import numpy as np  # noqa: E402

from report import cpu_line, fmt_time, fmt_value, render_table, timed_calls, write_json  # noqa: E402

MIB = 1024.0 * 1024.0
WARMUP_TIME = 10  # steps of the warm-up call, before the baseline
RESULT_MARK = "LONG_SEQUENCE_RESULT "  # prefix of the child's one JSON line on stdout
CHILD_TIMEOUT_S = 3600
LIBRARIES = ("rnnrs", "torch")

# --------------------------------------------------------------------------------------
# Cell kinds
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellKind:
    key: str
    torch_module: str  # torch.nn.<torch_module>
    make_rnnrs_cell: Callable[[Any, int, Any], Any]  # (rnnrs module, units, dtype) -> cell
    cache_floats: Callable[[int, int], int]  # (inputs, units) -> floats rnnrs caches per token


STATE_WIDTH = {"lstm": 2, "gru": 1, "rnn": 1}  # state floats per unit (lstm: c and h)


def chunk_steps(batch: int) -> int:
    """Steps per chunk of rnnrs' backward products (``Plan::chunk_steps`` in
    ``rust/sequence/plan.rs``): the smallest power of two that gives a row group 512
    slot rows (2048 when the batch is one group); groups of at least 16 rows, a power
    of two of them, at most 8."""
    groups = 1 << max(1, min(batch // 16, 8)).bit_length() - 1
    per_group = -(-batch // groups)
    need = -(-(512 if groups > 1 else 2048) // per_group)
    return 1 << (need - 1).bit_length()


def segment_steps(every: Any, batch: int, time: int) -> int:
    """``checkpoint_every`` as rnnrs applies it (``Plan::segment_steps``): ``"auto"`` is
    ``ceil(sqrt(T))``; rounded up to whole chunks."""
    k = int(np.ceil(np.sqrt(time))) if every == "auto" else int(every)
    chunk = chunk_steps(batch)
    return -(-max(1, min(k, time)) // chunk) * chunk


CELL_KINDS: Dict[str, CellKind] = {
    k.key: k
    for k in (
        CellKind(
            "lstm", "LSTM", lambda r, H, dt: r.BasicLSTMCell(H, dtype=dt), lambda I, H: 4 * H + H + H + I
        ),  # gates, c, h, x
        CellKind(
            "gru", "GRU", lambda r, H, dt: r.GRUCell(H, reset_after=True, dtype=dt), lambda I, H: 3 * H + H + H + I
        ),  # gates, q, h, x
        CellKind("rnn", "RNN", lambda r, H, dt: r.BasicRNNCell(H, dtype=dt), lambda I, H: H + I),  # h, x
    )
}


@dataclass(frozen=True)
class Size:
    batch: int
    time: int
    inputs: int
    units: int

    def describe(self) -> str:
        return f"B{self.batch} T{self.time} I{self.inputs} H{self.units}"


def cache_estimate_mib(kind: CellKind, size: Size, dtype: Any, every: Any = None) -> float:
    """The analytic size of rnnrs's forward cache for a full batch (see the docstring);
    with ``checkpoint_every``, the inputs and one state per segment."""
    if every is not None and size.time > chunk_steps(size.batch):
        k = segment_steps(every, size.batch, size.time)
        segments = -(-size.time // k)
        floats = size.inputs * size.batch * size.time + STATE_WIDTH[kind.key] * size.units * size.batch * segments
    else:
        floats = kind.cache_floats(size.inputs, size.units) * size.batch * size.time
    return floats * np.dtype(dtype).itemsize / MIB


def parse_every(text: str) -> Any:
    """One ``--checkpoint-every`` value: None, ``"auto"`` or an int >= 1."""
    if text == "none":
        return None
    if text == "auto":
        return text
    value = int(text)  # ValueError for anything else
    if value < 1:
        raise ValueError(text)
    return value


def every_label(every: Any) -> str:
    return "none" if every is None else str(every)


# --------------------------------------------------------------------------------------
# The child: one library, one cell kind, one size
# --------------------------------------------------------------------------------------


def _current_rss_bytes() -> Optional[int]:
    """The current RSS from /proc (Linux only), else None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _rnnrs_step(
    kind: CellKind, size: Size, dtype: Any, threads: int, every: Any = None
) -> Callable[[np.ndarray, np.ndarray], None]:
    import rnnrs

    rnnrs.set_num_threads(threads)
    cell = kind.make_rnnrs_cell(rnnrs, size.units, dtype)
    options = {} if every is None else {"checkpoint_every": every}

    def step(x: np.ndarray, dy: np.ndarray) -> None:
        _, _, backprop = rnnrs.dynamic_rnn(cell, x, return_backprop=True, **options)
        backprop(d_outputs=dy)  # outputs, cache and gradients are all dropped on return

    return step


def _torch_step(
    kind: CellKind, size: Size, dtype: Any, threads: int, every: Any = None
) -> Callable[[np.ndarray, np.ndarray], None]:
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    module = getattr(torch.nn, kind.torch_module)(size.inputs, size.units, num_layers=1, bias=True, batch_first=True)
    module = module.to(torch.float64 if dtype == np.float64 else torch.float32)

    def step(x: np.ndarray, dy: np.ndarray) -> None:
        x_leaf = torch.from_numpy(x).requires_grad_(True)  # shares x's memory
        out, _ = module(x_leaf)
        out.backward(torch.from_numpy(dy))
        del out, x_leaf  # and with x_leaf its gradient
        module.zero_grad(set_to_none=True)

    return step


def _library_version(library: str) -> str:
    module = sys.modules.get(library)
    return str(getattr(module, "__version__", "?"))


def measure(
    library: str, kind: CellKind, size: Size, dtype: Any, threads: int, repeat: int, seed: int, every: Any = None
) -> Dict[str, Any]:
    """Runs in the child: baseline after imports, inputs and warm-up; then ``repeat`` timed steps."""
    make_step = {"rnnrs": _rnnrs_step, "torch": _torch_step}[library]
    try:
        step = make_step(kind, size, dtype, threads, every)
    except ImportError as exc:
        return {"status": "not installed", "error": f"{type(exc).__name__}: {exc}"}
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((size.batch, size.time, size.inputs), dtype=dtype)
    dy = rng.standard_normal((size.batch, size.time, size.units), dtype=dtype)
    w = min(WARMUP_TIME, size.time)
    step(np.ascontiguousarray(x[:, :w]), np.ascontiguousarray(dy[:, :w]))

    gc.collect()
    current = _current_rss_bytes()
    baseline, times, peaks = timed_calls(lambda: step(x, dy), repeat)
    return {
        "status": "",
        "version": _library_version(library),
        "times_s": times,
        "baseline_bytes": baseline,
        "current_bytes": current,
        "peaks_bytes": peaks,
    }


# --------------------------------------------------------------------------------------
# The parent: one child per (library, cell kind)
# --------------------------------------------------------------------------------------


@dataclass
class Row:
    kind: CellKind
    size: Size
    library: str
    every: Any = None  # rnnrs' checkpoint_every
    status: str = ""  # "", "not installed", "error"
    version: str = ""
    times_s: List[float] = field(default_factory=list)
    baseline_bytes: int = 0
    current_bytes: Optional[int] = None
    peaks_bytes: List[int] = field(default_factory=list)
    detail: str = ""

    @property
    def median_s(self) -> Optional[float]:
        return statistics.median(self.times_s) if self.times_s else None

    @property
    def peak_extra_mib(self) -> Optional[float]:
        return (max(self.peaks_bytes) - self.baseline_bytes) / MIB if self.peaks_bytes else None

    @property
    def label(self) -> str:
        return self.library if self.every is None else f"{self.library} k={self.every}"

    def describe(self) -> str:
        head = f"{self.kind.key} {self.size.describe()} {self.label}"
        if self.status:
            return f"{head}: {self.status}" + (f" ({self.detail})" if self.detail else "")
        runs = " ".join(fmt_time(t) for t in self.times_s)
        marks = " / ".join(f"{(p - self.baseline_bytes) / MIB:.1f}" for p in self.peaks_bytes)
        slack = (
            "" if self.current_bytes is None else f", slack {(self.baseline_bytes - self.current_bytes) / MIB:.1f} MiB"
        )
        return (
            f"{head} {self.version}: runs {runs}; peak extra after each run {marks} MiB; "
            f"baseline {self.baseline_bytes / MIB:.1f} MiB{slack}"
        )


def _child_command(library: str, kind: CellKind, args: argparse.Namespace, every: Any = None) -> List[str]:
    return [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        library,
        "--cells",
        kind.key,
        "--batch",
        str(args.batch),
        "--time",
        str(args.time),
        "--inputs",
        str(args.inputs),
        "--units",
        str(args.units),
        "--dtype",
        args.dtype,
        "--threads",
        str(args.threads),
        "--repeat",
        str(args.repeat),
        "--seed",
        str(args.seed),
        "--checkpoint-every",
        every_label(every),
    ]


def run_child(library: str, kind: CellKind, size: Size, args: argparse.Namespace, every: Any = None) -> Row:
    row = Row(kind, size, library, every)
    try:
        proc = subprocess.run(
            _child_command(library, kind, args, every), capture_output=True, text=True, timeout=CHILD_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        row.status, row.detail = "error", f"timed out after {CHILD_TIMEOUT_S} s"
        return row
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        row.status, row.detail = "error", f"exit {proc.returncode}: {tail}"
        return row
    result = json.loads(lines[-1][len(RESULT_MARK) :])
    row.status, row.detail = result["status"], result.get("error", "")
    if not row.status:
        row.version = result["version"]
        row.times_s = result["times_s"]
        row.baseline_bytes = result["baseline_bytes"]
        row.current_bytes = result["current_bytes"]
        row.peaks_bytes = result["peaks_bytes"]
    return row


def render(rows: Sequence[Row], dtype: Any, markdown: bool) -> str:
    header = (
        "cell",
        "B T I H",
        "library",
        "time per training step",
        "peak extra memory (MiB)",
        "cached-activation estimate (MiB)",
    )
    body = []
    for r in rows:
        estimate = cache_estimate_mib(r.kind, r.size, dtype, r.every) if r.library == "rnnrs" else None
        time_text = fmt_time(r.median_s) if r.median_s is not None else (r.status or "-")
        body.append(
            [
                r.kind.key,
                r.size.describe(),
                r.label,
                time_text,
                fmt_value(r.peak_extra_mib, ".1f"),
                fmt_value(estimate, ".1f"),
            ]
        )
    return render_table(header, body, markdown, left=3)


def machine_lines(args: argparse.Namespace) -> List[str]:
    """The host and the run's settings, printed under the title and written to ``--json``."""
    return [
        cpu_line(),
        f"python   : {platform.python_version()}; numpy {np.__version__}",
        f"threads  : {args.threads} for every library (import-time variables {_THREADS})",
        f"timing   : {args.dtype}; median of {args.repeat} training steps per case, one subprocess per case",
    ]


def row_json(r: Row, args: argparse.Namespace) -> Dict[str, Any]:
    """One row of ``--json``."""
    dtype = np.float64 if args.dtype == "f64" else np.float32
    rnnrs = r.library == "rnnrs"
    checkpointed = rnnrs and r.every is not None
    return {
        "cell": r.kind.key,
        "batch": r.size.batch,
        "time": r.size.time,
        "inputs": r.size.inputs,
        "units": r.size.units,
        "dtype": args.dtype,
        "threads": args.threads,
        "library": r.library,
        "checkpoint_every": r.every,
        "segment_steps": segment_steps(r.every, r.size.batch, r.size.time) if checkpointed else None,
        "label": r.label,
        "status": r.status,
        "detail": r.detail,
        "version": r.version,
        "times_s": r.times_s,
        "median_s": r.median_s,
        "baseline_bytes": r.baseline_bytes if r.peaks_bytes else None,
        "current_bytes": r.current_bytes,
        "peaks_bytes": r.peaks_bytes,
        "peak_extra_mib": r.peak_extra_mib,
        "estimate_mib": cache_estimate_mib(r.kind, r.size, dtype, r.every) if rnnrs else None,
    }


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cells", default="lstm", help=f"comma list of {', '.join(CELL_KINDS)} (default lstm)")
    p.add_argument(
        "--libraries",
        default=",".join(LIBRARIES),
        help="comma list of rnnrs, torch (default both; torch is skipped when not installed)",
    )
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--time", type=int, default=1000)
    p.add_argument("--inputs", type=int, default=128)
    p.add_argument("--units", type=int, default=256)
    p.add_argument("--dtype", choices=("f32", "f64"), default="f32")
    p.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    p.add_argument("--repeat", type=int, default=3, help="timed training steps per case (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--checkpoint-every",
        default="none",
        help="comma list of rnnrs checkpoint_every values: none, integers >= 1, auto (default none); "
        "one rnnrs row per value",
    )
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    p.add_argument("--json", metavar="PATH", help="also write the rows to PATH as JSON")
    p.add_argument("--child", choices=LIBRARIES, help=argparse.SUPPRESS)  # internal: one measurement
    args = p.parse_args(argv)
    args.threads = max(1, args.threads)
    for name in ("batch", "time", "inputs", "units", "repeat"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    try:
        args.every = [parse_every(v.strip()) for v in args.checkpoint_every.split(",")]
    except ValueError:
        p.error(
            f"--checkpoint-every: expected a comma list of none, integers >= 1 and auto, got {args.checkpoint_every!r}"
        )
    return args


def main(argv: Sequence[str] = ()) -> int:
    args = parse_args(argv)
    dtype = np.float64 if args.dtype == "f64" else np.float32
    size = Size(args.batch, args.time, args.inputs, args.units)
    kinds = [CELL_KINDS[k] for k in csv_choice(args.cells, list(CELL_KINDS), "cell kind")]
    if args.child:
        result = measure(args.child, kinds[0], size, dtype, args.threads, args.repeat, args.seed, args.every[0])
        print(RESULT_MARK + json.dumps(result), flush=True)
        return 0

    libraries = csv_choice(args.libraries, LIBRARIES, "library")
    machine = machine_lines(args)
    print(f"One training step (forward + backprop of sum(out * dY)), {size.describe()}")
    for line in machine:
        print("  " + line)
    rows: List[Row] = []
    for kind in kinds:
        for library in libraries:
            for every in args.every if library == "rnnrs" else [None]:
                row = run_child(library, kind, size, args, every)
                print("  " + row.describe(), flush=True)
                rows.append(row)
    print()
    print(render(rows, dtype, args.markdown))
    print(
        "\n  peak extra memory: ru_maxrss high-water mark over the baseline (after imports, inputs, "
        "weights and a T=10 warm-up)"
    )
    print(
        "  cached-activation estimate: the analytic size of what rnnrs's forward keeps for backprop "
        "(outputs, d inputs and scratch not included)"
    )
    kept = [e for e in args.every if e is not None]
    if kept:
        segments = ", ".join(str(segment_steps(e, size.batch, size.time)) for e in kept)
        print(
            "  rnnrs k=K: dynamic_rnn(..., checkpoint_every=K), K rounded up to whole chunks of "
            f"{chunk_steps(size.batch)} steps (segments of {segments} steps)"
        )
    if args.json:
        payload = {"machine": machine, "args": vars(args), "rows": [row_json(r, args) for r in rows]}
        write_json(args.json, payload)
    return 1 if any(r.status == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
