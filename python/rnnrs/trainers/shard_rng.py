"""Dropout masks in sharded training: one generator per (step, shard).

A ``Dropout`` layer or a ``DropoutWrapper`` draws its masks from its own
``numpy.random.Generator`` (``_rng``). When ``fit`` cuts a batch into
several shards (:func:`rnnrs.trainers.trainer.shard_bounds`), the shards may
run in this process one after another or on several Ray replicas at once;
for the masks to be the same either way, a shard must not depend on how many
draws the shards before it took. So, for a batch of two shards or more,
every mask source draws one 63-bit key from its own generator (in the
trainer's process), and shard ``i`` of the step draws its masks from
``Generator(PCG64(SeedSequence([key, i])))``: independent streams, the same
wherever the shard runs. A batch of one shard (every batch under 8192
row-steps) draws from the sources' own generators, as training always did;
a replica running it is handed the generators' positions and hands back the
new ones. Either way a seeded layer repeats its masks, and a model saved
mid-training (its layers' generator positions included) resumes with the
same masks.

Sources are found by walking the model's attributes (rnnrs objects, lists,
tuples and dicts, depth first, in attribute order); a model's copy (pickled
to a replica) walks to its sources in the same order.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Optional, Sequence

import numpy as np

#: Keys are drawn below this bound (``Generator.integers``), one per source and step.
KEY_BOUND = 2**63


def _is_source(obj: Any) -> bool:
    return getattr(type(obj), "_DRAWS_MASKS", False) and isinstance(getattr(obj, "_rng", None), np.random.Generator)


def mask_sources(model: Any) -> list[Any]:
    """The objects under ``model`` that draw dropout masks from their
    ``_rng`` (classes that set ``_DRAWS_MASKS = True``), each once, in a
    fixed depth-first order."""
    found: list[Any] = []
    seen: set[int] = set()
    stack = [model]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if _is_source(obj):
            found.append(obj)
        if isinstance(obj, dict):
            children = list(obj.values())
        elif isinstance(obj, (list, tuple)):
            children = list(obj)
        elif type(obj).__module__.startswith("rnnrs.") and hasattr(obj, "__dict__"):
            children = list(vars(obj).values())
        else:
            continue
        stack.extend(reversed(children))  # depth first, in attribute order
    return found


def draw_keys(sources: Sequence[Any], shards: int) -> Optional[list[int]]:
    """One key per source for a step of ``shards`` shards, drawn from each
    source's generator; None for one shard (it draws from the generators)."""
    if shards <= 1:
        return None
    return [int(src._rng.integers(KEY_BOUND)) for src in sources]


def positions(sources: Sequence[Any]) -> list[np.ndarray]:
    """The sources' generator positions (6 uint64 words each)."""
    from ..layers.base import generator_state

    return [generator_state(src._rng) for src in sources]


def restore(sources: Sequence[Any], words: Sequence[np.ndarray]) -> None:
    """Puts the sources' generators at ``words`` (from :func:`positions`)."""
    from ..layers.base import restore_generator

    for src, w in zip(sources, words):
        restore_generator("generator", src._rng, w)


def shard_generator(key: int, shard: int) -> np.random.Generator:
    """The generator shard ``shard`` of a step draws from, for a source's ``key``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([key, shard])))


@contextmanager
def shard_generators(sources: Sequence[Any], keys: Optional[Sequence[int]], shard: int) -> Iterator[None]:
    """Within the block each source draws from its shard generator (its own
    when ``keys`` is None); its own generator is put back after (also on an
    error)."""
    if keys is None:
        yield
        return
    kept = [src._rng for src in sources]
    try:
        for src, key in zip(sources, keys):
            src._rng = shard_generator(key, shard)
        yield
    finally:
        for src, rng in zip(sources, kept):
            src._rng = rng
