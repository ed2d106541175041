#!/usr/bin/env python3
"""Latency of one recurrent step (B=1 by default): rnnrs next to PyTorch CPU.

    python benches/step_latency.py                      # rnn, lstm, gru at H=64 and H=256, 1 and 2 threads
    python benches/step_latency.py --quick              # smoke test: tiny budget, first size and thread count
    python benches/step_latency.py --cells lstm --sizes 128,32x64 --threads 1 --markdown
    python benches/step_latency.py --json step.json

What is measured
----------------
A decoder, a controller or a streaming model calls its cell once per incoming token, so
what counts there is the fixed cost of one call on a batch of one, not the throughput of
``dynamic_rnn`` over long sequences (``compare.py``).  For every cell kind x size x thread
count the script builds one rnnrs cell with a fixed seed (biases offset by fixed random
values, so that a bias copied to the wrong place shows), copies its weights into the
matching ``torch.nn.*Cell`` with ``rnnrs.convert.to_torch(cell)`` (its ``_l0`` suffixes
dropped: the cell modules have no layer index), and times four ways of taking one step
with the float32 input ``x [B, I]``:

* ``rnnrs step``:            ``out, state = cell(x, state)``
* ``rnnrs stepper``:         ``out = stepper.step(x)`` on ``stepper = cell.stepper(B, state)``
                             (the state and the step's buffers kept between calls)
* ``rnnrs dynamic_rnn T=1``: ``out, state = rnnrs.dynamic_rnn(cell, x[:, None, :], initial_state=state)``
* ``torch cell``:            ``state = torch_cell(x_t, state)`` under ``torch.no_grad()``, with the
                             tensor ``x_t = torch.from_numpy(x)`` made once
* ``torch cell from numpy``: the same call on ``torch.from_numpy(x)`` and the NumPy state
                             (``torch.from_numpy``), its new state turned back into NumPy
                             arrays (``.numpy()``): what a NumPy user pays for a step

Cell kinds (``--cells``, default all):

* ``rnn``:  ``BasicRNNCell(H, activation="tanh")`` vs ``nn.RNNCell(I, H, nonlinearity="tanh")``
* ``lstm``: ``BasicLSTMCell(H)`` (forget_bias 1.0) vs ``nn.LSTMCell(I, H)``; state
            ``LSTMStateTuple(c, h)`` vs torch's ``(h, c)``
* ``gru``:  ``GRUCell(H, reset_after=True)``        vs ``nn.GRUCell(I, H)``

Every contender feeds its new state into its next call, as a decoding loop does.

Before timing, every contender takes one step from the same random (non-zero) state and
its output and new state are compared with ``rnnrs step``'s (largest absolute difference
at most 1e-4).  A contender that disagrees is not timed: it shows as ``MISMATCH``, the
script prints the worst entry and the exit status is 1.

Timing follows ``compare.py``: every contender is warmed up, then each round times every
contender once, in an order that rotates from one round to the next, with the garbage
collector paused, after ``--settle`` seconds of idle and ``--warm`` seconds of untimed
calls.  A call takes microseconds, so one timed sample is a batch of calls lasting about
``--chunk`` seconds (the calls per batch are calibrated per contender); a sample is its
batch's time over its calls.  Each contender gets about ``--budget`` seconds of timed
calls per case, and the tables show the median sample, i.e. the time of one call.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

# --------------------------------------------------------------------------------------
# Thread counts: the libraries' import-time variables get the largest count of the run
# before NumPy (and its BLAS) or torch is imported; each case then sets its own count
# with rnnrs.set_num_threads and torch.set_num_threads.
# --------------------------------------------------------------------------------------

BENCHES_DIR = os.path.dirname(os.path.abspath(__file__))
if BENCHES_DIR not in sys.path:  # report.py, next to this file
    sys.path.insert(0, BENCHES_DIR)
from report import csv_choice, pin_threads  # noqa: E402  (report imports nothing heavy)

DEFAULT_THREADS = "1,2"


def thread_counts(value: str) -> List[int]:
    """``--threads``: a comma list of thread counts, each at least 1."""
    try:
        counts = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of integers, got {value!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected thread counts >= 1, got {value!r}")
    return counts


def _most_threads(argv: Sequence[str]) -> int:
    """The largest ``--threads`` count in ``argv`` (1 when it does not parse: ``parse_args``
    then reports the error)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--threads", default=DEFAULT_THREADS)
    ns, _ = p.parse_known_args(argv)
    try:
        return max(thread_counts(ns.threads))
    except argparse.ArgumentTypeError:
        return 1


_MAX_THREADS = pin_threads(["--threads", str(_most_threads(sys.argv[1:]))])

import numpy as np  # noqa: E402

from report import cpu_line, fmt_time, fmt_times, ratio, render_table, time_cell, write_json  # noqa: E402

try:
    import rnnrs

    RNNRS_ERR: Optional[str] = None
except ImportError as exc:  # reported by main()
    RNNRS_ERR = f"{type(exc).__name__}: {exc}"


def _try_import(name: str) -> Tuple[Any, Optional[str]]:
    try:
        return __import__(name), None
    except Exception as exc:  # ImportError, or a broken install raising something else
        return None, f"{type(exc).__name__}: {exc}"


torch, TORCH_ERR = _try_import("torch")

DTYPE = np.float32
TOLERANCE = 1e-4  # largest absolute difference allowed between a contender and `rnnrs step`
DEFAULT_SIZES = "64,256"
DEFAULT_BATCH = 1

STEP = "rnnrs step"
STEPPER = "rnnrs stepper"
DYNAMIC = "rnnrs dynamic_rnn T=1"
TORCH = "torch cell"
TORCH_NUMPY = "torch cell from numpy"
CONTENDERS = (STEP, STEPPER, DYNAMIC, TORCH, TORCH_NUMPY)
# (peer, base, label): the peer's time over the base's
RATIOS = (
    (TORCH, STEP, "torch cell/rnnrs step"),
    (TORCH, STEPPER, "torch cell/rnnrs stepper"),
    (TORCH_NUMPY, STEP, "torch from numpy/rnnrs step"),
)

# --------------------------------------------------------------------------------------
# Cell kinds and sizes
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellKind:
    key: str
    make_rnnrs_cell: Callable[[int, int], Any]  # (units, seed) -> cell
    torch_class: str  # torch.nn.<torch_class>
    torch_kwargs: Dict[str, Any]
    lstm: bool  # state LSTMStateTuple(c, h) in rnnrs, (h, c) in torch


CELL_KINDS: Dict[str, CellKind] = {
    k.key: k
    for k in (
        CellKind(
            "rnn",
            lambda H, seed: rnnrs.BasicRNNCell(H, activation="tanh", dtype=DTYPE, seed=seed),
            "RNNCell",
            {"nonlinearity": "tanh"},
            False,
        ),
        CellKind("lstm", lambda H, seed: rnnrs.BasicLSTMCell(H, dtype=DTYPE, seed=seed), "LSTMCell", {}, True),
        CellKind(
            "gru", lambda H, seed: rnnrs.GRUCell(H, reset_after=True, dtype=DTYPE, seed=seed), "GRUCell", {}, False
        ),
    )
}


@dataclass(frozen=True)
class Size:
    batch: int
    inputs: int
    units: int

    def describe(self) -> str:
        return f"B{self.batch} I{self.inputs} H{self.units}"


def parse_sizes(value: str, batch: int) -> List[Size]:
    """``--sizes``: a comma list of ``H`` (inputs I = H) or ``IxH`` entries."""
    sizes = []
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        inputs, _, units = item.rpartition("x")
        try:
            size = Size(batch, int(inputs or units), int(units))
        except ValueError:
            raise SystemExit(f"--sizes: expected H or IxH entries, got {item!r}") from None
        if size.inputs < 1 or size.units < 1:
            raise SystemExit(f"--sizes: expected sizes >= 1, got {item!r}")
        sizes.append(size)
    if not sizes:
        raise SystemExit("--sizes: expected at least one size")
    return sizes


# --------------------------------------------------------------------------------------
# Contenders: each runs n steps in a loop, or one step from the check state
# --------------------------------------------------------------------------------------

Parts = Dict[str, np.ndarray]  # a state as named arrays: {"h": h}, or {"c": c, "h": h} for an LSTM


@dataclass
class Contender:
    run: Callable[[int], None]  # n steps, each from the state the previous one returned
    once: Callable[[], Tuple[np.ndarray, Parts]]  # one step from the check state: (output, state)


class Unavailable(Exception):
    """The contender cannot run (torch not installed)."""


def _rnnrs_parts(state: Any) -> Parts:
    if isinstance(state, rnnrs.LSTMStateTuple):
        return {"c": np.asarray(state.c), "h": np.asarray(state.h)}
    return {"h": np.asarray(state)}


def rnnrs_contenders(cell: Any, x: np.ndarray, state0: Any) -> Dict[str, Contender]:
    dynamic_rnn = rnnrs.dynamic_rnn
    states = {STEP: state0, DYNAMIC: state0}

    def step(n: int) -> None:
        state = states[STEP]
        for _ in range(n):
            _, state = cell(x, state)
        states[STEP] = state

    def step_once() -> Tuple[np.ndarray, Parts]:
        out, state = cell(x, state0)
        return np.asarray(out), _rnnrs_parts(state)

    def dynamic(n: int) -> None:
        state = states[DYNAMIC]
        for _ in range(n):
            _, state = dynamic_rnn(cell, x[:, None, :], initial_state=state)
        states[DYNAMIC] = state

    def dynamic_once() -> Tuple[np.ndarray, Parts]:
        out, state = dynamic_rnn(cell, x[:, None, :], initial_state=state0)
        return np.asarray(out)[:, 0, :], _rnnrs_parts(state)

    stepper = cell.stepper(x.shape[0], state0)

    def stepped(n: int) -> None:
        step = stepper.step
        for _ in range(n):
            step(x)

    def stepped_once() -> Tuple[np.ndarray, Parts]:
        fresh = cell.stepper(x.shape[0], state0)
        out = fresh.step(x)
        return np.asarray(out), _rnnrs_parts(fresh.state)

    return {
        STEP: Contender(step, step_once),
        STEPPER: Contender(stepped, stepped_once),
        DYNAMIC: Contender(dynamic, dynamic_once),
    }


def torch_cell(kind: CellKind, size: Size, cell: Any) -> Any:
    """``torch.nn.<kind.torch_class>`` loaded with ``rnnrs.convert.to_torch(cell)``.

    ``to_torch`` returns the state dict of the sequence modules (``nn.RNN`` ...), whose
    names end with the layer index ``_l0``; the cell modules have the same tensors
    without it."""
    if torch is None:
        raise Unavailable("not installed")
    state_dict = {}
    for name, value in rnnrs.convert.to_torch(cell).items():
        if not name.endswith("_l0"):
            raise RuntimeError(f"to_torch returned {name!r}, not a single layer's '*_l0' weight")
        state_dict[name[: -len("_l0")]] = torch.from_numpy(np.ascontiguousarray(value))
    module = getattr(torch.nn, kind.torch_class)(size.inputs, size.units, bias=True, **kind.torch_kwargs)
    module.load_state_dict(state_dict)
    return module.to(torch.float32).eval()


def torch_contenders(kind: CellKind, size: Size, cell: Any, x: np.ndarray, state0: Any) -> Dict[str, Contender]:
    module = torch_cell(kind, size, cell)
    from_numpy, no_grad = torch.from_numpy, torch.no_grad
    parts0 = _rnnrs_parts(state0)
    x_t = from_numpy(x)

    # torch's state: h, or (h, c) for nn.LSTMCell; the cell returns its new state.
    def to_torch_state(parts: Parts) -> Any:
        return (from_numpy(parts["h"]), from_numpy(parts["c"])) if kind.lstm else from_numpy(parts["h"])

    def to_parts(state: Any) -> Tuple[np.ndarray, Parts]:
        if kind.lstm:
            h, c = (np.array(t.numpy()) for t in state)
            return h, {"c": c, "h": h}
        h = np.array(state.numpy())
        return h, {"h": h}

    tensor_state = [to_torch_state(parts0)]

    def tensors(n: int) -> None:
        state = tensor_state[0]
        with no_grad():
            for _ in range(n):
                state = module(x_t, state)
        tensor_state[0] = state

    def tensors_once() -> Tuple[np.ndarray, Parts]:
        with no_grad():
            return to_parts(module(x_t, to_torch_state(parts0)))

    numpy_state = [(parts0["h"], parts0.get("c"))]

    def from_arrays(n: int) -> None:
        h, c = numpy_state[0]
        with no_grad():
            if kind.lstm:
                for _ in range(n):
                    h_t, c_t = module(from_numpy(x), (from_numpy(h), from_numpy(c)))
                    h, c = h_t.numpy(), c_t.numpy()
            else:
                for _ in range(n):
                    h = module(from_numpy(x), from_numpy(h)).numpy()
        numpy_state[0] = (h, c)

    def from_arrays_once() -> Tuple[np.ndarray, Parts]:
        with no_grad():
            h, c = parts0["h"], parts0.get("c")
            state = (from_numpy(h), from_numpy(c)) if kind.lstm else from_numpy(h)
            return to_parts(module(from_numpy(x), state))

    return {TORCH: Contender(tensors, tensors_once), TORCH_NUMPY: Contender(from_arrays, from_arrays_once)}


# --------------------------------------------------------------------------------------
# Timing: rounds of batches of calls, contenders rotated from one round to the next
# --------------------------------------------------------------------------------------


@dataclass
class Timing:
    calls: int  # calls per timed batch
    samples_s: List[float] = field(default_factory=list)  # each batch's time over its calls

    def median_s(self) -> float:
        return statistics.median(self.samples_s)

    def quantile_s(self, q: float) -> float:
        return float(np.quantile(self.samples_s, q))


def calibrate(run: Callable[[int], None], chunk_s: float, max_calls: int = 1_000_000) -> int:
    """The number of calls of ``run`` that take about ``chunk_s`` seconds (at least 1).

    Doubles the count until one batch takes a quarter of ``chunk_s``, then times that
    batch twice more and goes by the fastest of the three: one slow call (a page fault,
    a preemption) must not shrink every timed batch of the case."""
    n = 1
    while True:
        t0 = time.perf_counter()
        run(n)
        elapsed = time.perf_counter() - t0
        if elapsed >= chunk_s / 4 or n >= max_calls:
            break
        n *= 2
    for _ in range(2):
        t0 = time.perf_counter()
        run(n)
        elapsed = min(elapsed, time.perf_counter() - t0)
    return max(1, min(max_calls, math.ceil(n * chunk_s / max(elapsed, 1e-9))))


def time_batches(
    runs: Dict[str, Callable[[int], None]],
    warmup: int,
    budget_s: float,
    chunk_s: float,
    min_rounds: int,
    settle_s: float,
    warm_s: float,
) -> Dict[str, Timing]:
    """Warm up and calibrate every contender, then time ``max(min_rounds, budget_s / chunk_s)``
    rounds; a round times one batch of each contender, in an order that rotates from one
    round to the next.  Before each timed batch the process idles ``settle_s`` seconds (so
    that torch's spinning OpenMP workers do not slow the next contender down), then runs
    the contender untimed for about ``warm_s`` seconds (at least one call): a call right
    after an idle can run slower for a few milliseconds, whoever makes it."""
    names = list(runs)
    for name in names:
        runs[name](warmup)
    timings = {name: Timing(calibrate(runs[name], chunk_s)) for name in names}
    rounds = max(min_rounds, math.ceil(budget_s / chunk_s))
    clock = time.perf_counter
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                run, timing = runs[name], timings[name]
                if settle_s > 0:
                    time.sleep(settle_s)
                run(max(1, math.ceil(timing.calls * warm_s / chunk_s)))
                t0 = clock()
                run(timing.calls)
                timing.samples_s.append((clock() - t0) / timing.calls)
    finally:
        if gc_was_enabled:
            gc.enable()
    return timings


# --------------------------------------------------------------------------------------
# One case: check, then time
# --------------------------------------------------------------------------------------


@dataclass
class Row:
    kind: str
    size: Size
    threads: int
    medians: Dict[str, Optional[float]]
    status: Dict[str, str]  # "" when timed, else why not ("not installed", "MISMATCH", "error: ...")
    spread: Dict[str, Tuple[float, float, float]]  # (min, p10, p90) per call, seconds
    calls: Dict[str, int]  # calls per timed batch
    samples: int  # timed batches per contender
    max_diff: Dict[str, float]  # largest |difference| from `rnnrs step` in the check
    problems: Dict[str, str]

    def ratios(self) -> Dict[str, Optional[float]]:
        return {label: ratio(self.medians.get(peer), self.medians.get(base)) for peer, base, label in RATIOS}


def make_inputs(kind: CellKind, size: Size, seed: int) -> Tuple[Any, np.ndarray, Any]:
    """The rnnrs cell (built, biases offset), the input ``x [B, I]`` and a random state."""
    batch, units = size.batch, size.units
    rng = np.random.default_rng([seed, batch, size.inputs, units])
    cell = kind.make_rnnrs_cell(units, seed)
    cell.build(size.inputs)
    # The initial biases are zeros (GRU gates: ones), which would hide a bias copied to
    # the wrong place: offset every bias by fixed random values (as compare.py does).
    cell.set_weights(
        {
            name: value + rng.uniform(-0.5, 0.5, value.shape).astype(DTYPE)
            for name, value in cell.get_weights().items()
            if name.endswith("bias")
        }
    )
    x = rng.standard_normal((batch, size.inputs)).astype(DTYPE)
    h = rng.uniform(-1.0, 1.0, (batch, units)).astype(DTYPE)
    state0 = rnnrs.LSTMStateTuple(rng.uniform(-1.0, 1.0, (batch, units)).astype(DTYPE), h) if kind.lstm else h
    return cell, x, state0


def worst_difference(got: Tuple[np.ndarray, Parts], want: Tuple[np.ndarray, Parts]) -> Tuple[float, str]:
    """The largest absolute difference over the output and every state part, and where it is."""
    pairs = [("output", got[0], want[0])] + [
        (f"state.{name}", got[1].get(name), array) for name, array in want[1].items()
    ]
    worst, where = 0.0, "-"
    for name, a, b in pairs:
        if a is None or a.shape != b.shape:
            return math.inf, f"{name}: shape {None if a is None else a.shape}, expected {b.shape}"
        if not a.size:
            continue
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        index = np.unravel_index(int(np.argmax(diff)), diff.shape)  # the first NaN, if any
        d = float(diff[index])
        if not math.isnan(worst) and (math.isnan(d) or d > worst):
            worst = d
            where = f"{name}{list(map(int, index))}: {float(a[index]):.7g} vs {float(b[index]):.7g}"
    return worst, where


def set_threads(threads: int) -> None:
    rnnrs.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)


def run_case(kind: CellKind, size: Size, threads: int, args: argparse.Namespace) -> Row:
    print(f"\n== {kind.key}  {size.describe()}  {threads} thread(s)", flush=True)
    set_threads(threads)
    cell, x, state0 = make_inputs(kind, size, args.seed)
    status: Dict[str, str] = {}
    problems: Dict[str, str] = {}
    max_diff: Dict[str, float] = {}
    contenders = rnnrs_contenders(cell, x, state0)
    try:
        contenders.update(torch_contenders(kind, size, cell, x, state0))
    except Unavailable as exc:
        status.update({TORCH: str(exc), TORCH_NUMPY: str(exc)})
    except Exception as exc:  # a peer blowing up must not kill the run
        status.update({TORCH: "error", TORCH_NUMPY: "error"})
        print(f"   torch: failed to build: {type(exc).__name__}: {exc}")

    want = contenders[STEP].once()
    for name in [n for n in contenders if n != STEP]:
        try:
            diff, where = worst_difference(contenders[name].once(), want)
        except Exception as exc:
            diff, where = math.inf, f"raised {type(exc).__name__}: {exc}"
        max_diff[name] = diff
        if diff <= TOLERANCE:
            print(f"   check {name:<22} vs {STEP}: ok  (max |diff| {diff:.2g})")
            continue
        status[name], problems[name] = "MISMATCH", f"max |diff| {diff:.3g} > {TOLERANCE:g} at {where}"
        del contenders[name]
        print(f"   !! {name} does NOT match {STEP} -> not timed: {problems[name]}")
        print(
            f"      reproduce: python benches/step_latency.py --cells {kind.key} "
            f"--sizes {size.inputs}x{size.units} --batch {size.batch} --threads {threads} --seed {args.seed} --quick"
        )

    timings = time_batches(
        {name: c.run for name, c in contenders.items()},
        warmup=args.warmup,
        budget_s=args.budget,
        chunk_s=args.chunk,
        min_rounds=args.min_rounds,
        settle_s=args.settle,
        warm_s=args.warm,
    )
    medians: Dict[str, Optional[float]] = {n: (timings[n].median_s() if n in timings else None) for n in CONTENDERS}
    spread = {n: (min(t.samples_s), t.quantile_s(0.1), t.quantile_s(0.9)) for n, t in timings.items()}
    samples = len(next(iter(timings.values())).samples_s)
    base = medians[STEP]
    for name in CONTENDERS:
        median = medians[name]
        if median is None:
            print(f"   {name:<22} {status.get(name, 'not run')}")
            continue
        low, p10, p90 = spread[name]
        vs = "" if name == STEP or not base else f"   {name}/{STEP} = {median / base:.2f}x"
        print(
            f"   {name:<22} median {fmt_time(median):>10}  [p10 {fmt_time(p10)}, p90 {fmt_time(p90)}, "
            f"min {fmt_time(low)}]  ({samples} batches of {timings[name].calls} calls){vs}"
        )
    return Row(
        kind.key,
        size,
        threads,
        medians,
        {n: status.get(n, "") for n in CONTENDERS},
        spread,
        {n: t.calls for n, t in timings.items()},
        samples,
        max_diff,
        problems,
    )


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


def render(rows: Sequence[Row], markdown: bool) -> str:
    header = ["cell", "size", "threads", *CONTENDERS, *(label for _, _, label in RATIOS)]
    body = [
        [r.kind, r.size.describe(), str(r.threads)]
        + [time_cell(r.medians[n], r.status[n]) for n in CONTENDERS]
        + [fmt_times(v) for v in r.ratios().values()]
        for r in rows
    ]
    return render_table(header, body, markdown, left=2)


def _version(module: Any) -> str:
    return str(getattr(module, "__version__", "?")) if module is not None else "not installed"


def machine_lines(args: argparse.Namespace) -> List[str]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    lines = [
        cpu_line(),
        f"python   : {platform.python_version()}; numpy {np.__version__}; rnnrs {_version(rnnrs)}; "
        f"torch {_version(torch)}" + (f" ({TORCH_ERR})" if torch is None else ""),
        (
            f"threads  : {', '.join(map(str, args.threads))} (rnnrs.set_num_threads, torch.set_num_threads; "
            f"torch inter-op 1; import-time variables {_MAX_THREADS})"
        ),
        (
            f"timing   : f32; {args.budget:g} s of timed calls per contender and case, in batches of about "
            f"{args.chunk * 1e3:g} ms (at least {args.min_rounds}); settle {args.settle:g} s, warm {args.warm:g} s"
        ),
    ]
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if load and usable and load[0] > max(0.5, usable - max(args.threads)):
        lines.append(f"WARNING  : the machine is busy (load {load[0]:.2f} on {usable} CPUs); timings will be noisy")
    return lines


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cells", default=",".join(CELL_KINDS), help=f"comma list of {', '.join(CELL_KINDS)}")
    p.add_argument("--sizes", default=DEFAULT_SIZES, help=f"comma list of H (I = H) or IxH (default {DEFAULT_SIZES})")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, help=f"batch rows B (default {DEFAULT_BATCH})")
    p.add_argument(
        "--threads", type=thread_counts, default=DEFAULT_THREADS, help=f"comma list (default {DEFAULT_THREADS})"
    )
    p.add_argument(
        "--budget", type=float, default=None, help="seconds of timed calls per contender and case (default 0.3)"
    )
    p.add_argument("--chunk", type=float, default=None, help="seconds of one timed batch of calls (default 0.01)")
    p.add_argument("--min-rounds", type=int, default=None, help="fewest timed batches per contender (default 10)")
    p.add_argument(
        "--settle", type=float, default=None, help="seconds of idle before each timed batch (default 0.01; 0 disables)"
    )
    p.add_argument(
        "--warm", type=float, default=None, help="seconds of untimed calls before each timed batch (default 0.005)"
    )
    p.add_argument("--warmup", type=int, default=20, help="warm-up calls per contender (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke test: a tiny budget, the first size and thread count")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    p.add_argument("--json", metavar="PATH", help="also write the rows to PATH as JSON")
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {"budget": 0.3, "chunk": 0.01, "min_rounds": 10, "settle": 0.01, "warm": 0.005}
    if quick:
        defaults = {"budget": 0.01, "chunk": 0.001, "min_rounds": 3, "settle": 0.0, "warm": 0.0}
        args.threads = args.threads[:1]
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.batch < 1:
        p.error("--batch must be at least 1")
    if args.chunk <= 0 or args.budget < 0 or args.settle < 0 or args.warm < 0 or args.min_rounds < 1:
        p.error("--chunk must be positive, --budget, --settle and --warm not negative, --min-rounds at least 1")
    return args


def main(argv: Sequence[str] = ()) -> int:
    args = parse_args(argv)
    if RNNRS_ERR is not None:
        print(f"rnnrs does not import ({RNNRS_ERR}); build it with `maturin develop --release` first.", file=sys.stderr)
        return 2
    kinds = [CELL_KINDS[k] for k in csv_choice(args.cells, list(CELL_KINDS), "cell kind")]
    sizes = parse_sizes(args.sizes, args.batch)[: 1 if args.quick else None]
    if torch is not None:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or parallel work already started
            pass

    machine = machine_lines(args)
    print("One recurrent step: median time per call")
    for line in machine:
        print("  " + line)
    t_start = time.perf_counter()
    rows = [run_case(kind, size, threads, args) for kind in kinds for size in sizes for threads in args.threads]

    print(f"\nMedian time per call (f32); '{RATIOS[0][2]}' etc. > 1 means rnnrs is faster\n")
    print(render(rows, args.markdown))
    if any(r.status[TORCH] == "not installed" for r in rows):
        print(f"\n  note: torch is not installed ({TORCH_ERR})")
    mismatches = [(r, name, text) for r in rows for name, text in r.problems.items()]
    if mismatches:
        print("\nMISMATCHES (these contenders were not timed for these cases):")
        for r, name, text in mismatches:
            print(f"  {r.kind} {r.size.describe()} {r.threads} thread(s) {name}: {text}")
    load = f", load average {os.getloadavg()[0]:.2f} at end" if hasattr(os, "getloadavg") else ""
    print(f"\nTotal wall time {time.perf_counter() - t_start:.1f} s{load}")

    if args.json:
        payload = {
            "machine": machine,
            "args": vars(args),
            "rows": [
                {
                    "cell": r.kind,
                    "batch": r.size.batch,
                    "inputs": r.size.inputs,
                    "units": r.size.units,
                    "threads": r.threads,
                    "dtype": "f32",
                    "median_s": r.medians,
                    "status": r.status,
                    "spread_s": {n: {"min": v[0], "p10": v[1], "p90": v[2]} for n, v in r.spread.items()},
                    "calls_per_sample": r.calls,
                    "samples": r.samples,
                    "max_abs_diff": {n: (None if math.isinf(d) else d) for n, d in r.max_diff.items()},
                    "ratios": r.ratios(),
                    "problems": r.problems,
                }
                for r in rows
            ],
        }
        write_json(args.json, payload)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
