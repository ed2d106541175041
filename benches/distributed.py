"""Per-step cost of training on Ray (rnnrs.distributed.RayStrategy) against one process.

    python benches/distributed.py            # digits model and a medium LSTM (B=256, T=100, H=256)
    python benches/distributed.py --quick

For each model: ms per training step with strategy=None and with RayStrategy
over 1 and 2 workers (1 CPU each), the Ray overhead per step, and 2 workers'
efficiency (one-process time / (2 x two-worker time) x 2 = speed-up / 2).
Needs the ray extra (pip install "rnnrs[ray]").

Closing note (2-core machine shared with other jobs, load average ~17
during the run, so the figures are rough): digits model, one process 5.1
ms/step, Ray 1 worker 17.3 ms (+12 ms/step: one ray.put of the weights and
two actor round trips per step), 2 workers 18.3 ms, i.e. far below one
process: a 150-row batch is 3 shards of 50 rows and about 1.5 ms of work per
worker, dwarfed by the fixed per-step cost. Medium LSTM (B=256 global, T=100,
H=256): one process 1625 ms/step, Ray 1 worker 1649 ms (+25 ms, 1.5%), 2
workers 1156 ms: a 1.4x speed-up (70% efficiency; each worker has one core
and its own pool of one thread, the one process had a pool of two). With a
fixed cost c ~ 12-25 ms per step, 2 workers reach 90% efficiency when each
worker's share of a step takes about 9c, i.e. roughly 0.1-0.2 s of work per
worker per step (the sweep that pins this smallest size was not run).
On a real multi-node cluster the per-step cost adds the network: the weights
go out once per step through the object store (1.3 M float32 weights of the
medium LSTM = 5 MB: ~4 ms at 10 Gb/s) and every shard's gradients come back
(5 MB per shard, summed by the driver in shard order: with 16 shards, 80 MB
per step, ~65 ms at 10 Gb/s). So expect near-linear scaling only when each
worker's share of a step is well above ~100 ms, and use batches of at least
4096 x num_workers row-steps (one shard per worker at least; the figures
above were taken with shards of 64 rows: the digits batch is now one shard,
so its second worker idles, and the medium batch six shards of ~43 rows).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnnrs


def case(name: str, rows: int, steps_t: int, features: int, units: int, lstm: bool):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, steps_t, features)).astype(np.float32)
    y = rng.integers(0, 10, size=rows)
    cell = rnnrs.LSTMCell(units, seed=0) if lstm else rnnrs.BasicRNNCell(units, seed=0)
    return name, x, y, (lambda: rnnrs.SequenceClassifier(type(cell)(units, seed=0), 10, seed=0))


class _Clock(rnnrs.Callback):
    """Times the steps after the first (replicas start during the first)."""

    def __init__(self) -> None:
        super().__init__()
        self.ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def per_step(make, x, y, batch, epochs, strategy) -> float:
    """Median ms per training step, the first step (replica start-up) left out."""
    clock = _Clock()
    make().fit(x, y, batch_size=batch, epochs=epochs, verbose=0, strategy=strategy, shuffle=False, callbacks=[clock])
    return float(np.median(np.diff(clock.ends))) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    import ray

    from rnnrs.distributed import RayStrategy

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    cases = [
        (case("digits (BasicRNNCell 150, B=150, T=8)", 1500, 8, 8, 150, False), 150, 2 if args.quick else 4),
        (case("medium LSTM (B=256, T=100, H=256)", 256 * (3 if args.quick else 6), 100, 32, 256, True), 256, 1),
    ]
    for (name, x, y, make), batch, epochs in cases:
        local = per_step(make, x, y, batch, epochs, None)
        one = per_step(make, x, y, batch, epochs, RayStrategy(1, cpus_per_worker=1))
        two = per_step(make, x, y, batch, epochs, RayStrategy(2, cpus_per_worker=1))
        print(
            f"{name}: one process {local:.1f} ms/step; Ray 1 worker {one:.1f} ms (+{one - local:.1f}); "
            f"Ray 2 workers {two:.1f} ms; 2-worker efficiency vs one process {local / (2 * two) * 100:.0f}%",
            flush=True,
        )
    ray.shutdown()


if __name__ == "__main__":
    main()
