"""Scale-out on Ray (the optional extra ``pip install "rnnrs[ray]"``).

- :class:`RayStrategy`: ``model.fit(..., strategy=RayStrategy(num_workers=N))``
  runs each global batch's forward and backward passes on ``N`` Ray actors
  and applies one update in this process. The weights after training are
  bitwise equal to ``strategy=None`` (see ``fit``'s ``strategy``).
- :func:`predict`: ``model.predict`` over a ``ray.data.Dataset`` or arrays,
  on Ray actors, in input order.

Importing this package does not import ``ray``; using it without ``ray``
raises ``ImportError`` naming the extra. ``import rnnrs`` never imports it.
"""

from __future__ import annotations

from .predict import predict
from .strategy import RayStrategy

__all__ = ["RayStrategy", "predict"]
