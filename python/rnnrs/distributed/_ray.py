"""The one place that imports ``ray`` (lazily, when a strategy or predict is used)."""

from __future__ import annotations

import importlib
from typing import Any

EXTRA = 'pip install "rnnrs[ray]"'


def require_ray(what: str) -> Any:
    """The ``ray`` module, or ``ImportError`` saying which extra to install."""
    try:
        ray = importlib.import_module("ray")  # typed Any: rnnrs does not type-check against Ray
    except ImportError as e:
        raise ImportError(
            f"{what}: expected the ray package (rnnrs's optional extra: {EXTRA}, which brings ray[data]), "
            f"got none importable ({e})"
        ) from e
    return ray


def ensure_started(ray: Any, address: Any) -> None:
    """Connects to Ray: the running instance if there is one, else ``address``
    (None starts a local instance without the dashboard)."""
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
