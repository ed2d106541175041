"""The classes a saved model may name, registered explicitly where they are
defined (``@register("cell")`` on each cell class, ``"layer"`` on each layer,
``"model"`` on each model). A model file is read only through these tables:
no name is ever looked up in a module, so nothing outside them can be built
from a file, and every registered class can be, exported from the package
root or not."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

T = TypeVar("T", bound=type)

#: kind -> {class name -> class}
REGISTRY: dict[str, dict[str, Any]] = {"cell": {}, "layer": {}, "model": {}}


def register(kind: str) -> Callable[[T], T]:
    """Class decorator: makes the class loadable from a file as a ``kind``
    (``"cell"``, ``"layer"`` or ``"model"``) under its class name."""
    table = REGISTRY[kind]

    def add(cls: T) -> T:
        name = cls.__name__
        if name in table and table[name] is not cls:
            raise ValueError(f"register: expected one {kind} class named {name!r}, got a second one")
        table[name] = cls
        return cls

    return add


def classes(kind: str) -> dict[str, Any]:
    """A copy of the ``kind`` table."""
    return dict(REGISTRY[kind])
