"""Cells and layers ↔ JSON-serialisable configurations (for saving models).

A cell's configuration is ``{"class_name": <name in the rnnrs package>,
"config": {constructor argument: value}}``. It is read from the cell's
``get_config()`` when it has one; otherwise from the constructor's signature,
each argument's value being the cell's attribute of that name (or
``_<name>``); nested cells (``cell=``, ``cells=``) recurse. A cell whose
arguments cannot be read that way cannot be saved: the error says which
argument, rather than saving a default silently.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import numpy as np

from .cells import RNNCell

# Arguments that carry no information (MultiRNNCell accepts only True).
_FIXED = {("MultiRNNCell", "state_is_tuple"): True}


def _plain(where: str, value: Any) -> Any:
    """``value`` as JSON-friendly data (dtypes by name, numpy scalars unwrapped)."""
    if isinstance(value, RNNCell):
        return cell_to_config(value)
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(f"{where}[{i}]", v) for i, v in enumerate(value)]
    raise TypeError(
        f"{where}: expected a number, string, bool, None, dtype or cell to save, got {type(value).__name__}"
    )


def cell_to_config(cell: RNNCell) -> dict[str, Any]:
    """The configuration that rebuilds ``cell`` (weights not included)."""
    cls = type(cell)
    name = cls.__name__
    getter = getattr(cell, "get_config", None)
    if callable(getter):
        raw = getter()
        if not isinstance(raw, Mapping):
            raise TypeError(f"{name}.get_config(): expected a mapping, got {type(raw).__name__}")
        return {"class_name": name, "config": {k: _plain(f"{name}.{k}", v) for k, v in raw.items()}}
    config: dict[str, Any] = {}
    for param in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        key = param.name
        if (name, key) in _FIXED:
            config[key] = _FIXED[(name, key)]
            continue
        for attr in (key, "_" + key):
            if hasattr(cell, attr):
                value = getattr(cell, attr)
                break
        else:
            raise TypeError(
                f"cell: expected {name} to expose its constructor argument {key!r} as an attribute "
                f"(or a get_config() method) so that it can be saved, got neither"
            )
        config[key] = _plain(f"{name}.{key}", value)
    return {"class_name": name, "config": config}


def _cell_classes() -> dict[str, type[RNNCell]]:
    import rnnrs

    return {k: v for k, v in vars(rnnrs).items() if isinstance(v, type) and issubclass(v, RNNCell) and v is not RNNCell}


def cell_from_config(config: Any, where: str = "cell") -> RNNCell:
    """The cell that :func:`cell_to_config` described (unbuilt)."""
    if not isinstance(config, Mapping) or not isinstance(config.get("class_name"), str):
        raise ValueError(f"{where}: expected {{'class_name': ..., 'config': {{...}}}}, got {config!r}")
    classes = _cell_classes()
    name = config["class_name"]
    cls = classes.get(name)
    if cls is None:
        raise ValueError(
            f"{where}: expected a cell class of this rnnrs build ({', '.join(sorted(classes))}), got {name!r}"
        )
    kwargs: dict[str, Any] = {}
    for key, value in dict(config.get("config", {})).items():
        if key == "cell":
            kwargs[key] = cell_from_config(value, f"{where}.cell")
        elif key == "cells":
            kwargs[key] = [cell_from_config(v, f"{where}.cells[{i}]") for i, v in enumerate(value)]
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"{where}: expected arguments {name} accepts, got {sorted(kwargs)} ({e})") from None
