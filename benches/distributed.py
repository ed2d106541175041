"""Per-step cost of training on Ray (rnnrs.distributed.RayStrategy) against one process.

    python benches/distributed.py             # overhead: digits model and a medium LSTM (B=256, T=100, H=256)
    python benches/distributed.py --sweep     # smallest per-worker work at which 2 workers reach 90 % efficiency
    python benches/distributed.py --quick     # either mode at toy sizes, one repetition

Overhead mode: median ms per training step with strategy=None (rnnrs's pool at
1 thread, and at its default size) and with RayStrategy over 1 and 2 workers
(1 CPU and 1 thread each); the Ray overhead per step (1 worker minus the
1-thread process: the same single core's work plus Ray's fixed cost).

Sweep mode: LSTM classifiers whose per-worker work per step goes from ~5 ms to
~500 ms (a cell of 32 to 256 units; global batches of 128-256 rows x 64-128
steps, each at least 2 x SHARD_TOKENS row-steps so that it is at least 2 shards
under the shard rule and neither worker idles), timed with strategy=None at 1
and 2 threads and with RayStrategy(2, cpus_per_worker=1), as a markdown table.

Definitions. t1 is the one process's ms/step with rnnrs.set_num_threads(1),
t2 the same at the default pool size (2 threads on a 2-core machine) and tR
the ms/step with 2 Ray workers of 1 CPU each. The per-worker work is t1 / 2
(each worker runs half of the batch's shards on one core). The efficiency
of 2 workers is their speed-up over the 1-thread process divided by 2:
E = (t1 / tR) / 2 = t1 / (2 tR) -- 100 % means two single-core replicas do the
step in exactly half the single-core time. t2 / tR compares Ray with the
ordinary 2-thread process on the same two cores. Every figure is the median
over --repeats runs (interleaved, so that other jobs' load hits every variant
alike) of each run's median step, the first step (replica start-up) left
out; the load average is printed beside. Needs the ray extra
(pip install "rnnrs[ray]").

Results (full tables in benches/README.md, "distributed.py"). Overhead: the
digits model (one shard per batch: the second worker idles) takes 2.1-5.1
ms/step in one process at 1 thread and 11.4-13.7 ms on one Ray worker: a
fixed cost of ~9 ms per step (one ray.put of the weights, two actor round
trips: forward and backward). For the medium LSTM (6 shards) the fixed cost
is lost in a loaded machine's noise. Sweep (per-worker work 2-321 ms): Ray's
2 workers never reached 90 %: at most 82-88 % at 206-321 ms of per-worker
work, 70-73 % at 44-158 ms. Two plain processes (no Ray, no communication)
reached 89-104 % from ~16 ms on the same machine, so the gap is Ray's fixed
cost (9-20 ms, two phase barriers per step) and replicas computing their
shards 10-40 % slower than one process does.
Multi-node: per step the weights go out once (medium LSTM: 298,506 float32 =
1.2 MB, ~1 ms per node at 10 Gb/s) and every shard's gradients come back
(1.2 MB per shard of 4096 row-steps, which is ~120 ms of one core's work:
a ~1:128 ratio of transfer to compute whatever the cell size, as both scale
with the weights). All shards' gradients reach the driver's one link, so with
N one-core workers they cost ~N/128 of a step: ~12 % at 16 workers, ~50 % at
64; expect near-linear scaling up to a few dozen worker cores per driver at
10 Gb/s, with at least 4096 x N row-steps per global batch and ~100 ms or
more of work per worker per step.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

import rnnrs
from rnnrs.trainers.trainer import SHARD_TOKENS, shard_bounds

FEATURES = 32

# (units, global batch rows, time steps, timed steps per fit): per-worker work ~2 ms to ~350 ms.
# At least 8 steps per fit: a process's first few steps are slower (its allocator
# is still growing its heap), and the median must fall among the settled ones.
SWEEP = [
    (32, 128, 64, 20),
    (64, 128, 64, 12),
    (128, 128, 64, 10),
    (128, 256, 64, 10),
    (256, 128, 64, 10),
    (256, 256, 100, 8),
    (256, 256, 128, 8),
    (256, 256, 200, 6),
]
QUICK_SWEEP = [(16, 128, 64, 3), (32, 128, 64, 3)]


def case(name: str, rows: int, steps_t: int, features: int, units: int, lstm: bool):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, steps_t, features)).astype(np.float32)
    y = rng.integers(0, 10, size=rows)
    cell = rnnrs.LSTMCell if lstm else rnnrs.BasicRNNCell
    return name, x, y, (lambda: rnnrs.SequenceClassifier(cell(units, seed=0), 10, seed=0))


def shards(rows: int, steps_t: int) -> int:
    """Shards of a global batch of ``rows`` x ``steps_t`` under ``fit``'s shard rule."""
    return len(shard_bounds(rows, steps_t))


def efficiency(t_one_thread: float, t_workers: float, workers: int = 2) -> float:
    """Speed-up of ``workers`` single-core replicas over the 1-thread process, divided by ``workers``."""
    return t_one_thread / (workers * t_workers)


class _Clock(rnnrs.Callback):
    """Times the steps after the first (replicas start during the first)."""

    def __init__(self) -> None:
        super().__init__()
        self.ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def per_step(make, x, y, batch, epochs, strategy, threads: Optional[int] = None) -> float:
    """Median ms per training step, the first step (replica start-up) left out;
    ``threads`` sizes this process's pool for the run (restored after)."""
    before = rnnrs.get_num_threads()
    if threads is not None:
        rnnrs.set_num_threads(threads)
    try:
        clock = _Clock()
        make().fit(
            x, y, batch_size=batch, epochs=epochs, verbose=0, strategy=strategy, shuffle=False, callbacks=[clock]
        )
    finally:
        rnnrs.set_num_threads(before)
    return float(np.median(np.diff(clock.ends))) * 1000


def timings(make, x, y, batch, epochs, variants: dict[str, Optional[int]], repeats: int) -> dict[str, float]:
    """Median ms/step of each variant over ``repeats`` runs, interleaved. A
    variant is one process with a pool of ``n > 0`` threads (None: the
    default size) or, for ``-n``, RayStrategy over ``n`` workers of 1 CPU."""
    from rnnrs.distributed import RayStrategy

    runs: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for k, n in variants.items():
            if n is not None and n < 0:
                runs[k].append(per_step(make, x, y, batch, epochs, RayStrategy(-n, cpus_per_worker=1)))
            else:
                runs[k].append(per_step(make, x, y, batch, epochs, None, threads=n))
    return {k: float(np.median(v)) for k, v in runs.items()}


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; a header ending in ':' is right-aligned (the colon is dropped)."""
    names = [h.rstrip(":") for h in header]
    align = ["---:" if h.endswith(":") else "---" for h in header]
    lines = ["| " + " | ".join(names) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def overhead(quick: bool, repeats: int) -> None:
    cases = [
        (case("digits (BasicRNNCell 150, B=150, T=8)", 1500, 8, 8, 150, False), 150, 2 if quick else 4),
        (case("medium LSTM (B=256, T=100, H=256)", 256 * (3 if quick else 6), 100, FEATURES, 256, True), 256, 1),
    ]
    rows = []
    notes = []
    for (name, x, y, make), batch, epochs in cases:
        k = shards(batch, x.shape[1])
        t = timings(make, x, y, batch, epochs, {"t1": 1, "t2": None, "r1": -1, "r2": -2}, repeats)
        if k < 2:
            notes.append(f"{name}: {k} shard per global batch ({batch} x {x.shape[1]} row-steps < 2 x {SHARD_TOKENS}): "
                         "the second worker idles, 2 workers cannot beat 1")  # fmt: skip
        rows.append(
            [name, k, f"{t['t1']:.1f}", f"{t['t2']:.1f}", f"{t['r1']:.1f}", f"{t['r1'] - t['t1']:+.1f}",
             f"{t['r2']:.1f}", f"{efficiency(t['t1'], t['r2']) * 100:.0f} %", load()]
        )  # fmt: skip
        print(f"... {name} done, load average {load()}", flush=True)
    print()
    print(
        table(
            ["model", "shards/batch:", "1 process, 1 thread (ms):", "1 process, 2 threads (ms):",
             "Ray 1 worker (ms):", "Ray overhead/step (ms):", "Ray 2 workers (ms):", "2-worker efficiency:",
             "load avg 1/5/15 min:"],
            rows,
        )
    )  # fmt: skip
    for note in notes:
        print(f"- {note}")
    print("- Ray overhead/step = Ray 1 worker - 1 process at 1 thread; 2-worker efficiency = t1 / (2 x t(2 workers)).")


def _bare(args: tuple[int, int, int, int, Any]) -> float:
    """One of two plain processes: ms/step of a 1-thread fit of half the global batch, started together."""
    units, half, steps_t, n, barrier = args
    _, x, y, make = case("bare", half * (n + 1), steps_t, FEATURES, units, True)
    barrier.wait()
    return per_step(make, x, y, half, 1, None, threads=1)


def bare_pair(units: int, batch: int, steps_t: int, n: int) -> float:
    """ms/step of two plain processes (no Ray, no communication) each running
    half the batch on one core at the same time: the slower one's median. What
    two cores of this machine give to any data-parallel scheme."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(2)
        with ctx.Pool(2) as pool:
            return max(pool.map(_bare, [(units, batch // 2, steps_t, n, barrier)] * 2))


class SweepRow(NamedTuple):
    units: int
    batch: int
    steps_t: int
    shards: int
    t1: float
    t2: float
    tr: float
    tb: float
    load: str

    @property
    def work(self) -> float:
        """Per-worker work per step (ms): half the 1-thread process's step."""
        return self.t1 / 2

    @property
    def eff(self) -> float:
        return efficiency(self.t1, self.tr)

    @property
    def ceiling(self) -> float:
        """The efficiency of two plain processes: the most the machine's two cores give."""
        return efficiency(self.t1, self.tb)


def smallest_reaching(rows: Sequence[SweepRow], target: float = 0.9) -> Optional[SweepRow]:
    """The row of least per-worker work from which on (in order of work) every row reaches ``target``."""
    ordered = sorted(rows, key=lambda r: r.work)
    best = None
    for r in reversed(ordered):
        if r.eff < target:
            break
        best = r
    return best


def sweep(quick: bool, repeats: int) -> None:
    configs = QUICK_SWEEP if quick else SWEEP
    for _units, batch, steps_t, _ in configs:
        if shards(batch, steps_t) < 2:
            raise ValueError(f"sweep: expected every global batch to be >= 2 shards, got {batch} x {steps_t}")
    print(
        f"Every global batch is >= 2 x {SHARD_TOKENS} row-steps, so >= 2 shards under the shard rule "
        "(an even number here): both workers get the same share, neither idles.",
        flush=True,
    )
    rows = []
    for units, batch, steps_t, n in configs:
        name, x, y, make = case(f"LSTM {units}", batch * (n + 1), steps_t, FEATURES, units, True)
        t = timings(make, x, y, batch, 1, {"t1": 1, "t2": None, "tr": -2}, repeats)
        tb = float(np.median([bare_pair(units, batch, steps_t, n) for _ in range(repeats)]))
        rows.append(SweepRow(units, batch, steps_t, shards(batch, steps_t), t["t1"], t["t2"], t["tr"], tb, load()))
        print(f"... LSTM H={units} B={batch} T={steps_t} done, load average {load()}", flush=True)
    print()
    print(
        table(
            ["LSTM units:", "global batch B x T", "shards:", "per-worker work (ms):", "1 process, 1 thread (ms):",
             "1 process, 2 threads (ms):", "Ray 2 workers (ms):", "efficiency t1/(2 tR):", "t2 / tR:",
             "fixed cost tR - t1/2 (ms):", "2 plain processes (ms):", "their efficiency t1/(2 tB):",
             "load avg 1/5/15 min:"],
            [[r.units, f"{r.batch} x {r.steps_t}", r.shards, f"{r.work:.1f}", f"{r.t1:.1f}", f"{r.t2:.1f}",
              f"{r.tr:.1f}", f"{r.eff * 100:.0f} %", f"{r.t2 / r.tr:.2f}", f"{r.tr - r.work:.1f}", f"{r.tb:.1f}",
              f"{r.ceiling * 100:.0f} %", r.load]
             for r in sorted(rows, key=lambda r: r.work)],
        )
    )  # fmt: skip
    best = smallest_reaching(rows)
    print(
        "- 2 plain processes: each runs half the batch on one core at the same time, with no Ray and no "
        "communication; their efficiency is the most any data-parallel scheme gets from this machine's two cores."
    )
    if best is None:
        print("- No configuration reached 90 % efficiency from there on.")
    else:
        print(
            f"- Smallest per-worker work reaching 90 % (and every larger one too): {best.work:.0f} ms per step "
            f"(LSTM {best.units}, B x T = {best.batch} x {best.steps_t}, efficiency {best.eff * 100:.0f} %)."
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="toy sizes, one repetition (a smoke run)")
    p.add_argument("--sweep", action="store_true", help="the efficiency sweep instead of the overhead table")
    p.add_argument("--repeats", type=int, default=None, help="runs per variant, medians taken (default 3, quick 1)")
    args = p.parse_args()
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    if repeats < 1:
        p.error(f"--repeats: expected an integer >= 1, got {repeats}")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(f"{os.cpu_count()} cores, rnnrs pool {rnnrs.get_num_threads()} threads, ray {ray.__version__}, "
          f"{repeats} run(s) per variant, load average (1/5/15 min) at start {load()}", flush=True)  # fmt: skip
    try:
        (sweep if args.sweep else overhead)(args.quick, repeats)
    finally:
        print(f"load average at the end {load()}")
        ray.shutdown()


if __name__ == "__main__":
    main()
