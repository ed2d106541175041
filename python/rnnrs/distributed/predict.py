"""``rnnrs.distributed.predict``: batch inference on Ray actors (``map_batches``)."""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import numpy as np

from .._validate import positive_int
from ._ray import ensure_started, require_ray


class _Predictor:
    """A ``map_batches`` actor: a model copy (and, for arrays, the data) predicting one batch per call."""

    def __init__(self, model: Any, data: Any, batch_size: int, threads: int, column: str) -> None:
        import rnnrs

        rnnrs.set_num_threads(threads)
        self.model = model
        self.data = data
        self.batch_size = batch_size
        self.column = column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.data is not None:  # arrays: the batch holds the indices of model.predict's batches
            xs, lengths = self.data
            parts = [self._rows(xs, lengths, int(i)) for i in batch["id"]]
            outs = [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))] if parts else []
        else:
            x = np.stack(list(batch[self.column])) if batch[self.column].dtype == object else batch[self.column]
            out = self.model.predict(x, batch_size=self.batch_size)
            outs = out if isinstance(out, list) else [out]
        return {f"output_{k}": o for k, o in enumerate(outs)}

    def _rows(self, xs: list[np.ndarray], lengths: list[Optional[np.ndarray]], i: int) -> list[np.ndarray]:
        sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
        part = [x[sl] for x in xs]
        part_lengths = [None if ls is None else ls[sl] for ls in lengths]
        single = len(part) == 1
        out = self.model.predict(
            part[0] if single else part, part_lengths[0] if single else part_lengths, batch_size=self.batch_size
        )
        return out if isinstance(out, list) else [out]


def predict(
    model: Any,
    data: Any,
    batch_size: int = 256,
    sequence_length: Any = None,
    num_workers: int = 2,
    cpus_per_worker: float = 1,
    column: str = "data",
    address: Optional[str] = None,
) -> Any:
    """``model.predict`` on Ray actors (``ray.data``'s ``map_batches`` with a
    model actor per worker), returned in input order.

    Args:
        model: a built rnnrs model (copied to every worker).
        data: arrays as ``model.predict`` takes them (one array, or a list /
            dict for several inputs) — the result then equals
            ``model.predict(data, sequence_length, batch_size)`` bit for bit:
            the workers run the same batches of ``batch_size`` rows — or a
            ``ray.data.Dataset`` whose ``column`` holds one input row per
            dataset row (``ray.data.from_numpy`` names it ``"data"``);
            Ray cuts its batches (at most ``batch_size`` rows), which may
            differ from ``model.predict``'s in the last bits.
        batch_size: rows per ``model.predict`` batch, an integer >= 1.
        sequence_length: the rows' lengths, as ``model.predict`` takes them
            (arrays only).
        num_workers: model actors, an integer >= 1.
        cpus_per_worker: CPUs per actor, a number > 0 (its rnnrs pool gets
            ``max(1, floor(cpus_per_worker))`` threads).
        column: the input column of a Dataset.
        address: as :class:`RayStrategy`'s.

    Returns:
        What ``model.predict`` returns: one array, or a list for several outputs.
    """
    ray = require_ray("predict")
    batch_size = positive_int("batch_size", batch_size)
    num_workers = positive_int("num_workers", num_workers)
    if isinstance(cpus_per_worker, (bool, np.bool_)) or not isinstance(cpus_per_worker, numbers.Real):
        raise TypeError(f"cpus_per_worker: expected a number > 0, got {type(cpus_per_worker).__name__}")
    if not (math.isfinite(float(cpus_per_worker)) and float(cpus_per_worker) > 0):
        raise ValueError(f"cpus_per_worker: expected a finite number > 0, got {cpus_per_worker}")
    if not isinstance(column, str):
        raise TypeError(f"column: expected a str, got {type(column).__name__}")
    threads = max(1, int(math.floor(cpus_per_worker)))
    ensure_started(ray, address)
    if isinstance(data, ray.data.Dataset):
        if sequence_length is not None:
            raise ValueError("sequence_length: expected None with a Dataset (give fixed-length rows), got lengths")
        if column not in data.columns():
            raise ValueError(f"column: expected one of the Dataset's columns {data.columns()}, got {column!r}")
        dataset, payload = data, None
        rows_per_call = batch_size
    else:
        xs, lengths = model._data("data", data, sequence_length, "sequence_length")
        n = xs[0].shape[0]
        if n == 0:
            return model.predict(data, sequence_length, batch_size)
        batches = math.ceil(n / batch_size)
        dataset = ray.data.from_numpy(np.arange(batches, dtype=np.int64)).rename_columns({"data": "id"})
        dataset = dataset.repartition(min(num_workers, batches))  # one block per worker at least
        payload = (xs, lengths)
        rows_per_call = 1
    ctx = ray.data.DataContext.get_current()
    kept = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True
    verbose = ctx.enable_progress_bars
    ctx.enable_progress_bars = False
    try:
        mapped = dataset.map_batches(
            _Predictor,
            fn_constructor_args=(model, payload, batch_size, threads, column),
            batch_size=rows_per_call,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=num_workers),
            num_cpus=float(cpus_per_worker),
        )
        results = list(mapped.iter_batches(batch_size=None, batch_format="numpy"))
    finally:
        ctx.execution_options.preserve_order = kept
        ctx.enable_progress_bars = verbose
    keys = sorted(results[0], key=lambda k: int(k.split("_")[1])) if results else []
    outs = [np.concatenate([b[k] for b in results]) for k in keys]
    return outs[0] if len(outs) == 1 else outs
