"""Training data from a ``ray.data.Dataset``: ``fit(dataset, ...)``.

A Dataset given as ``fit``'s ``x`` (or as ``validation_data``) holds one
example per row in named columns:

- ``"x"``: the inputs, one row each (a ``[T, F]`` sequence, ``[T]`` ids or
  ``[F]`` features: what one row of ``fit``'s ``x`` array holds);
- ``"y"``: the targets, one row each;
- optional ``"sequence_length"`` (an integer per row) and
  ``"sample_weight"`` (a number, or one per step, per row).

Ray reads and transforms the Dataset (files, ``map_batches``) on its own
workers; ``fit`` then takes its rows once, in the Dataset's order, as the
arrays ``fit`` trains on: the result equals ``fit`` on those arrays bit for
bit, with or without a strategy. Under :class:`~rnnrs.distributed.RayStrategy`
they go to the object store once per ``fit``, where every replica reads the
rows of its shards (a global batch's shards may be any rows of the epoch's
order, so a replica needs all of them; the trainer's process holds one copy).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._ray import require_ray

#: The columns ``fit`` reads from a Dataset, as its arguments.
COLUMNS = ("x", "y", "sequence_length", "sample_weight")


def _column(name: str, where: str, values: list[np.ndarray]) -> np.ndarray:
    """One column's batches as one array (rows of object dtype, Ray's ragged
    tensors, are stacked when they all have one shape)."""
    parts = []
    shapes: set[tuple[int, ...]] = set()
    for v in values:
        if len(v) == 0 and len(values) > 1:
            continue  # an empty batch (after a filter) adds nothing, whatever its dtype
        if v.dtype == object:
            rows = {np.shape(r) for r in v}
            shapes |= rows
            if len(rows) == 1:
                v = np.stack(list(v))
        else:
            shapes.add(v.shape[1:])
        parts.append(v)
    if len(shapes) > 1:
        raise ValueError(
            f"{where}: expected column {name!r} to hold rows of one shape (pad sequences and give a "
            f"'sequence_length' column), got shapes {sorted(shapes)[:4]}"
        )
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def columns(dataset: Any, where: str) -> dict[str, Optional[np.ndarray]]:
    """The Dataset's ``COLUMNS`` as arrays, in the Dataset's row order
    (``None`` for an optional column it lacks); ``ValueError`` naming
    ``where`` for missing or unknown columns or rows of several shapes."""
    ray = require_ray(where)
    names = list(dataset.columns() or [])
    missing = [c for c in ("x", "y") if c not in names]
    unknown = [c for c in names if c not in COLUMNS]
    if missing or unknown:
        raise ValueError(
            f"{where}: expected a Dataset with columns 'x' and 'y' (and optionally 'sequence_length', "
            f"'sample_weight'), got columns {names}"
        )
    ctx = ray.data.DataContext.get_current()
    kept, bars = ctx.execution_options.preserve_order, ctx.enable_progress_bars
    ctx.execution_options.preserve_order = True  # rows in the Dataset's order, run after run
    ctx.enable_progress_bars = False
    try:
        batches = list(dataset.iter_batches(batch_size=None, batch_format="numpy"))
    finally:
        ctx.execution_options.preserve_order = kept
        ctx.enable_progress_bars = bars
    if not batches:
        raise ValueError(f"{where}: expected a Dataset with at least one row, got an empty one")
    return {c: _column(c, where, [b[c] for b in batches]) if c in names else None for c in COLUMNS}
