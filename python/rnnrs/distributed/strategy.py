"""``RayStrategy``: data-parallel training of any rnnrs model on Ray actors.

Each step the driver (the process calling ``fit``) puts the weights in Ray's
object store once, and every replica (a Ray actor holding a copy of the
model and a reference to the training data) runs its contiguous run of the
batch's fixed row shards (``rnnrs.trainers.trainer.shard_bounds``) in two
phases: forward and loss (it returns each shard's loss sums and entry
counts, and its metric updates), then, given the batch's entry counts,
backward (it returns each shard's gradients, not added up). The driver adds
the shards' gradients in shard order — the sum ``fit`` computes in one
process — clips and applies the optimizer, so the weights are bitwise equal
to ``strategy=None``. Progress bar, callbacks, validation and ``History``
run in the driver as in one process.
"""

from __future__ import annotations

import copy
import math
import numbers
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from .. import metrics as _metrics
from ..trainers.shard_rng import mask_sources, positions, restore, shard_generators
from ..trainers.trainer import LocalShards, batch_steps, shard_bounds
from ._ray import ensure_started, require_ray


def _metric_delta(metric: _metrics.Metric, fresh: Mapping[str, Any]) -> dict[str, Any]:
    """The state a freshly reset metric gained from one shard: its number or
    array attributes that changed (every rnnrs metric's state is sums, so the
    driver adds these to its own; adding to 0 is exact, which keeps the
    driver's metric bitwise equal to one process's)."""
    delta = {}
    for k, v in vars(metric).items():
        if isinstance(v, (float, np.ndarray)) and k in fresh and not np.array_equal(v, fresh[k]):
            delta[k] = v
    return delta


def _merge_metric(metric: _metrics.Metric, delta: Mapping[str, Any]) -> None:
    for k, v in delta.items():
        setattr(metric, k, getattr(metric, k) + v)


def _rows(arrays: Sequence[Optional[np.ndarray]], index: Any) -> list[Any]:
    return [None if a is None else a[index] for a in arrays]


class _Replica:
    """A Ray actor's body: a model copy, the training data and the kept shard passes."""

    def __init__(self, model: Any, data: tuple[Any, Any, Any, Any], threads: int) -> None:
        import rnnrs

        rnnrs.set_num_threads(threads)
        self.model = model
        self.data = data
        self.shards = LocalShards(model, model._losses_per_output)

    def forward(
        self,
        params: Mapping[str, np.ndarray],
        rows: np.ndarray,
        bounds: Sequence[tuple[int, int]],
        first: int,
        keys: Optional[Sequence[int]],
        live: Optional[Sequence[np.ndarray]],
    ) -> tuple[list[tuple[dict[str, tuple[float, float]], list[dict[str, Any]]]], Optional[list[np.ndarray]]]:
        """Phase one on ``rows`` cut at ``bounds`` (the batch's shards
        ``first, first + 1, ...``; ``keys`` the step's dropout keys, or None
        and ``live`` the dropout generators' positions for a batch of one
        shard): per shard its sums and metric updates, and the generators'
        new positions (None with keys)."""
        self.model._push(params)
        if live is not None:
            restore(self.shards.sources, live)
        xs, ys, lengths, ws = self.data
        out = []
        self.shards.kept = []
        for i, (a, b) in enumerate(bounds):
            index = rows[a:b]
            fresh = []
            for metric in self.model._metric_objects:
                metric.reset_state()
                fresh.append(copy.deepcopy(vars(metric)))
            with shard_generators(self.shards.sources, keys, first + i):
                part = self.model._shard_loss(
                    self.shards.losses, _rows(xs, index), _rows(ys, index), _rows(lengths, index), _rows(ws, index)
                )
            self.shards.kept.append(part)
            deltas = [_metric_delta(m, f) for m, f in zip(self.model._metric_objects, fresh)]
            out.append((part.sums, deltas))
        return out, (None if live is None else positions(self.shards.sources))

    def backward(self, counts: Mapping[str, float]) -> list[dict[str, np.ndarray]]:
        """Phase two: each kept shard's gradients, in order."""
        return list(self.shards.backward(counts))

    def pid(self) -> int:
        import os

        return os.getpid()


def _check_model(model: Any) -> None:
    """``ValueError`` naming ``strategy`` for what replicas cannot reproduce bit for bit."""
    foreign = [type(m).__name__ for m in model._metric_objects if type(m).__module__ != _metrics.__name__]
    if foreign:
        raise ValueError(
            f"strategy: expected rnnrs.metrics metrics (their states add up across replicas), got {foreign}"
        )


class RayStrategy:
    """Data-parallel training on Ray actors, bitwise equal to one process.

    ``model.fit(x, y, ..., strategy=RayStrategy(num_workers=N))`` trains as
    ``fit`` does without a strategy, with each global batch's fixed row
    shards (at least 4096 row-steps each, see ``fit``'s ``strategy``) split into ``N``
    contiguous runs, one per replica. A replica is a Ray actor holding a copy
    of the model (weights refreshed every step from one ``ray.put``) and a
    reference to the training data (put in the object store once per
    ``fit``); it limits rnnrs's thread pool to its CPUs. The driver adds the
    shards' gradients in shard order, divides by the batch's entry count (as
    a share per shard), clips and applies the optimizer: the weights equal
    ``strategy=None`` bit for bit, for any ``N``.

    Fault tolerance: a replica that dies (or whose node does) is recreated
    and the step retried, up to ``max_retries`` times per step
    (``RuntimeError`` after). Resuming from a checkpoint is ``fit``'s
    ``initial_epoch`` on a model saved by ``ModelCheckpoint`` (weights and
    optimizer state), with the same ``seed``.

    Args:
        num_workers: replicas, an integer >= 1 (more than the batch's shards
            leaves some idle).
        cpus_per_worker: CPUs each replica reserves, a number > 0
            (fractional is allowed; rnnrs's pool in the replica gets
            ``max(1, floor(cpus_per_worker))`` threads).
        address: None (the running Ray instance, or a new local one
            without dashboard) or a Ray address such as ``"auto"`` or
            ``"ray://head:10001"``, used when Ray is not yet initialised.
        max_retries: retries of a step after replicas died, an integer >= 0.

    Attributes:
        workers: the replicas' actor handles during a ``fit`` (empty after).
        restarts: replicas recreated so far.

    Raises:
        ImportError: ``ray`` is not installed (install ``rnnrs[ray]``), when
            the strategy is created.
        ValueError: (at ``fit``) truncated BPTT or stateful layers, or
            custom metric objects.
    """

    def __init__(
        self, num_workers: int, cpus_per_worker: float = 1, address: Optional[str] = None, max_retries: int = 3
    ) -> None:
        require_ray("RayStrategy")
        if isinstance(num_workers, (bool, np.bool_)) or not isinstance(num_workers, numbers.Integral):
            raise TypeError(f"num_workers: expected an integer >= 1, got {type(num_workers).__name__}")
        if num_workers < 1:
            raise ValueError(f"num_workers: expected an integer >= 1, got {num_workers}")
        if isinstance(cpus_per_worker, (bool, np.bool_)) or not isinstance(cpus_per_worker, numbers.Real):
            raise TypeError(f"cpus_per_worker: expected a number > 0, got {type(cpus_per_worker).__name__}")
        if not (math.isfinite(float(cpus_per_worker)) and float(cpus_per_worker) > 0):
            raise ValueError(f"cpus_per_worker: expected a finite number > 0, got {cpus_per_worker}")
        if address is not None and not isinstance(address, str):
            raise TypeError(f"address: expected None or a Ray address (str), got {type(address).__name__}")
        if isinstance(max_retries, (bool, np.bool_)) or not isinstance(max_retries, numbers.Integral):
            raise TypeError(f"max_retries: expected an integer >= 0, got {type(max_retries).__name__}")
        if max_retries < 0:
            raise ValueError(f"max_retries: expected an integer >= 0, got {max_retries}")
        self.num_workers: int = int(num_workers)
        self.cpus_per_worker: float = float(cpus_per_worker)
        self.address: Optional[str] = address
        self.max_retries: int = int(max_retries)
        self.workers: list[Any] = []
        self.restarts: int = 0

    def __repr__(self) -> str:
        return (
            f"RayStrategy(num_workers={self.num_workers}, cpus_per_worker={self.cpus_per_worker:g}, "
            f"address={self.address!r})"
        )

    def _open(self, model: Any, losses: list[Any], xs: Any, ys: Any, lengths: Any, ws: Any) -> _RayShards:
        """The runner ``fit`` drives for one call (``close`` ends its replicas)."""
        _check_model(model)
        ray = require_ray("RayStrategy")
        ensure_started(ray, self.address)
        return _RayShards(self, ray, model, xs, ray.put((xs, ys, lengths, ws)))


class _RayShards:
    """``fit``'s runner on Ray actors: the interface of ``LocalShards``."""

    def __init__(self, strategy: RayStrategy, ray: Any, model: Any, xs: Any, data_ref: Any) -> None:
        self.strategy = strategy
        self.ray = ray
        self.model = model
        self.model_ref = ray.put(model)
        self.data_ref = data_ref
        self.xs = xs
        threads = max(1, int(math.floor(strategy.cpus_per_worker)))
        self.actor_class = ray.remote(_Replica).options(num_cpus=strategy.cpus_per_worker, max_restarts=0)
        self.threads = threads
        strategy.workers = [self._new_actor() for _ in range(strategy.num_workers)]
        # per replica: rows, shard bounds (from its first row), index of its first shard
        self.calls: list[tuple[np.ndarray, list[tuple[int, int]], int]] = []
        self.keys: Optional[list[int]] = None
        self.sources = mask_sources(model)  # the driver's dropout generators
        self.weights_ref: Any = None

    def _new_actor(self) -> Any:
        return self.actor_class.remote(self.model_ref, self.data_ref, self.threads)

    def _replace(self, w: int) -> None:
        self.strategy.restarts += 1
        old = self.strategy.workers[w]
        self.strategy.workers[w] = self._new_actor()
        try:
            self.ray.kill(old)
        except Exception:  # already gone
            pass

    def _retrying(self, run: Any) -> Any:
        """``run()`` until no replica dies, recreating the dead ones between tries."""
        errors = (self.ray.exceptions.RayActorError, self.ray.exceptions.ActorUnavailableError)
        for attempt in range(self.strategy.max_retries + 1):
            try:
                return run()
            except errors as e:
                dead = getattr(e, "_rnnrs_worker", None)
                if attempt == self.strategy.max_retries:
                    raise RuntimeError(
                        f"strategy: expected replicas to finish the step, got {attempt + 1} failures "
                        f"(max_retries={self.strategy.max_retries}): {e}"
                    ) from e
                for w in [dead] if dead is not None else range(len(self.strategy.workers)):
                    self._replace(w)
        raise AssertionError("unreachable")

    def _get(self, refs: list[tuple[int, Any]]) -> list[Any]:
        out = []
        for w, ref in refs:
            try:
                out.append(self.ray.get(ref))
            except (self.ray.exceptions.RayActorError, self.ray.exceptions.ActorUnavailableError) as e:
                e._rnnrs_worker = w
                raise
        return out

    def _forward_refs(self, ws: Iterable[int]) -> list[tuple[int, Any]]:
        live = None if self.keys is not None else positions(self.sources)
        return [
            (w, self.strategy.workers[w].forward.remote(self.weights_ref, *self.calls[w], self.keys, live)) for w in ws
        ]

    def forward(
        self, params: Mapping[str, np.ndarray], batch: Any, rows: np.ndarray, keys: Optional[Sequence[int]]
    ) -> list[Any]:
        bounds = shard_bounds(len(rows), batch_steps(self.xs))
        runs = np.array_split(np.arange(len(bounds)), min(self.strategy.num_workers, len(bounds)))
        self.weights_ref = self.ray.put(dict(params))  # the one put of the step
        self.calls = []
        self.keys = None if keys is None else list(keys)
        for shards in runs:  # contiguous runs of shards, in worker order
            first, last = bounds[shards[0]][0], bounds[shards[-1]][1]
            local = [(a - first, b - first) for a, b in (bounds[i] for i in shards)]
            self.calls.append((rows[first:last], local, int(shards[0])))

        def run() -> list[Any]:
            return self._get(self._forward_refs(range(len(self.calls))))

        results = self._retrying(run)
        sums = []
        for per_worker, moved in results:
            if moved is not None:  # one shard: its replica drew from the generators
                restore(self.sources, moved)
            for shard_sums, deltas in per_worker:
                for metric, delta in zip(self.model._metric_objects, deltas):
                    _merge_metric(metric, delta)
                sums.append(shard_sums)
        return sums

    def backward(self, counts: Mapping[str, float]) -> list[dict[str, np.ndarray]]:
        counts = dict(counts)
        workers = range(len(self.calls))
        retry = False

        def run() -> list[Any]:
            nonlocal retry
            if retry:
                # A recreated replica has no kept forward pass: every replica reruns
                # phase one first (same weights and rows: the same passes).
                self._get(self._forward_refs(workers))
            retry = True
            return self._get([(w, self.strategy.workers[w].backward.remote(counts)) for w in workers])

        results = self._retrying(run)
        return [g for per_worker in results for g in per_worker]

    def close(self) -> None:
        for actor in self.strategy.workers:
            try:
                self.ray.kill(actor)
            except Exception:  # already gone
                pass
        self.strategy.workers = []
        self.calls = []
