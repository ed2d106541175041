"""Cells and layers ↔ JSON-serialisable configurations, and the guarded
reading of model files.

A cell's configuration is ``{"class_name": <name in the rnnrs package>,
"config": {constructor argument: value}}``. It is read from the cell's
``get_config()`` when it has one; otherwise from the constructor's signature,
each argument's value being the cell's attribute of that name (or
``_<name>``); nested cells (``cell=``, ``cells=``) recurse, at most
:data:`MAX_DEPTH` levels deep. A cell whose arguments cannot be read that way
cannot be saved: the error says which argument, rather than saving a default
silently.

Reading (:class:`Archive`) trusts nothing in the file: only ``.npy`` members
stored or deflated (what ``numpy.savez`` / ``savez_compressed`` write), their
``.npy`` headers read from a few kilobytes without decompressing the arrays,
each member's declared size checked against its header and against a memory
budget before any array is read, arrays read without pickle. Every problem
is a ``ValueError`` saying which member and what is wrong.
"""

from __future__ import annotations

import inspect
import io
import math
import numbers
import reprlib
import zipfile
from typing import IO, Any, Mapping, NamedTuple

import numpy as np

from ..cells import RNNCell
from .registry import classes

# Arguments that carry no information (MultiRNNCell accepts only True).
_FIXED = {("MultiRNNCell", "state_is_tuple"): True}

#: How deeply cells may nest (a wrapper of a wrapper of ...), saving and loading.
MAX_DEPTH = 64

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 80, 80
_SHORT.maxdict = _SHORT.maxlist = _SHORT.maxtuple = 6


def short(value: Any) -> str:
    """A bounded ``repr`` for messages about untrusted data (deep or long values abridged)."""
    return _SHORT.repr(value)


def _plain(where: str, value: Any, depth: int) -> Any:
    """``value`` as JSON-friendly data (dtypes by name, numpy scalars unwrapped)."""
    if isinstance(value, RNNCell):
        return cell_to_config(value, depth + 1)
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(f"{where}[{i}]", v, depth) for i, v in enumerate(value)]
    raise TypeError(
        f"{where}: expected a number, string, bool, None, dtype or cell to save, got {type(value).__name__}"
    )


def cell_to_config(cell: RNNCell, depth: int = 0) -> dict[str, Any]:
    """The configuration that rebuilds ``cell`` (weights not included).

    Raises ``ValueError`` naming ``cell`` when cells nest more than
    :data:`MAX_DEPTH` levels (such a file could not be loaded)."""
    cls = type(cell)
    name = cls.__name__
    if depth >= MAX_DEPTH:
        raise ValueError(
            f"cell: expected cells nested at most {MAX_DEPTH} levels deep to save, got deeper nesting ({name})"
        )
    getter = getattr(cell, "get_config", None)
    if callable(getter):
        raw = getter()
        if not isinstance(raw, Mapping):
            raise TypeError(f"{name}.get_config(): expected a mapping, got {type(raw).__name__}")
        return {"class_name": name, "config": {k: _plain(f"{name}.{k}", v, depth) for k, v in raw.items()}}
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
        config[key] = _plain(f"{name}.{key}", value, depth)
    return {"class_name": name, "config": config}


def _cell_classes() -> dict[str, type[RNNCell]]:
    """The registered cell classes (:mod:`rnnrs.saving.registry`)."""
    return classes("cell")


def _scalar(value: Any) -> bool:
    """Whether ``value`` is a JSON scalar, or a flat list of them (a constructor argument)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    return isinstance(value, list) and all(v is None or isinstance(v, (bool, int, float, str)) for v in value)


def constructor_kwargs(config: Any, where: str) -> dict[str, Any]:
    """``config`` (untrusted) as keyword arguments: a mapping of names to JSON
    scalars or flat lists of them; ``ValueError`` naming ``where`` otherwise."""
    if not isinstance(config, Mapping):
        raise ValueError(f"{where}: expected a mapping of constructor arguments, got {short(config)}")
    for key, value in config.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"{where}: expected argument names, got {short(key)}")
        if not _scalar(value):
            raise ValueError(
                f"{where}.{key}: expected a number, string, bool, None or list of them, got {short(value)}"
            )
    return dict(config)


def registered_from_config(config: Any, classes: Mapping[str, Any], where: str) -> Any:
    """The object an untrusted ``{"class_name": ..., "config": {...}}``
    describes, built only from ``classes`` (name to class) with JSON scalar
    (or flat list) arguments the class accepts; ``ValueError`` naming
    ``where`` for anything else."""
    if not isinstance(config, Mapping) or not isinstance(config.get("class_name"), str):
        raise ValueError(f"{where}: expected {{'class_name': ..., 'config': {{...}}}}, got {short(config)}")
    stray = sorted(str(k) for k in config if k not in ("class_name", "config"))
    if stray:
        raise ValueError(f"{where}: expected the keys 'class_name' and 'config', got also {short(stray)}")
    cls = classes.get(config["class_name"])
    if cls is None:
        raise ValueError(f"{where}.class_name: expected one of {sorted(classes)}, got {short(config['class_name'])}")
    kwargs = constructor_kwargs(config.get("config", {}), f"{where}.config")
    return construct(cls, kwargs, where)


def construct(cls: Any, kwargs: Mapping[str, Any], where: str) -> Any:
    """``cls(**kwargs)`` for an untrusted configuration: any error the
    constructor raises becomes a ``ValueError`` naming ``where``."""
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(
            f"{where}: expected arguments {cls.__name__} accepts, got {short(dict(kwargs))} ({e})"
        ) from None


def cell_from_config(config: Any, where: str = "cell", depth: int = 0) -> RNNCell:
    """The cell that :func:`cell_to_config` described (unbuilt). The
    configuration is untrusted: anything but nested cell configurations of
    the package's public cell classes, at most :data:`MAX_DEPTH` levels
    deep, with scalar arguments raises ``ValueError`` naming ``where``."""
    if depth >= MAX_DEPTH:
        raise ValueError(f"{where}: expected cells nested at most {MAX_DEPTH} levels deep, got deeper nesting")
    if not isinstance(config, Mapping) or not isinstance(config.get("class_name"), str):
        raise ValueError(f"{where}: expected {{'class_name': ..., 'config': {{...}}}}, got {short(config)}")
    classes = _cell_classes()
    name = config["class_name"]
    cls = classes.get(name)
    if cls is None:
        raise ValueError(
            f"{where}: expected a cell class of this rnnrs build ({', '.join(sorted(classes))}), got {short(name)}"
        )
    raw = config.get("config", {})
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}.config: expected a mapping of constructor arguments, got {short(raw)}")
    kwargs: dict[str, Any] = {}
    plain: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "cell":
            kwargs[key] = cell_from_config(value, f"{where}.cell", depth + 1)
        elif key == "cells":
            if not isinstance(value, list):
                raise ValueError(f"{where}.cells: expected a list of cell configurations, got {short(value)}")
            kwargs[key] = [cell_from_config(v, f"{where}.cells[{i}]", depth + 1) for i, v in enumerate(value)]
        else:
            plain[key] = value
    kwargs.update(constructor_kwargs(plain, f"{where}.config"))
    cell: RNNCell = construct(cls, kwargs, where)
    return cell


# -- reading .npz files without trusting them ---------------------------------

#: Largest ``.npy`` header read (NumPy's own limit for untrusted files).
MAX_HEADER = 10_000
#: Compression methods accepted (those ``numpy.savez`` and ``savez_compressed`` write).
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}


class ArrayHeader(NamedTuple):
    """What a member's ``.npy`` header declares."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    nbytes: int


class Archive:
    """An ``.npz`` archive opened for guarded reading.

    Opening checks the zip directory only: every member is a uniquely named
    ``.npy`` file, stored or deflated, not encrypted. :meth:`header` reads a
    member's ``.npy`` header from its first few kilobytes and checks that the
    member's declared size is exactly the header plus the array it
    describes; :meth:`read` reads the array (no pickle). ``ValueError``
    (naming the member) for anything else.
    """

    def __init__(self, fp: IO[bytes], max_members: int) -> None:
        try:
            self._zip = zipfile.ZipFile(fp)
            infos = self._zip.infolist()
        except Exception as e:  # BadZipFile, bad offsets (OSError), bad names (UnicodeDecodeError), ...
            raise ValueError(f"not a readable .npz (zip) archive ({type(e).__name__}: {e})") from None
        if len(infos) > max_members:
            raise ValueError(f"expected at most {max_members} arrays in a model file, got {len(infos)} members")
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename
            if not name.endswith(".npy"):
                raise ValueError(f"expected only NumPy arrays (.npy members), got member {short(name)}")
            key = name[: -len(".npy")]
            if key in self.members:
                raise ValueError(f"expected uniquely named members, got {short(name)} twice")
            if info.compress_type not in _METHODS:
                raise ValueError(
                    f"member {short(name)}: expected compression {' or '.join(_METHODS.values())} "
                    f"(what numpy.savez writes), got method {info.compress_type}"
                )
            if info.flag_bits & 0x1:
                raise ValueError(f"member {short(name)}: expected an unencrypted member, got an encrypted one")
            self.members[key] = info

    def close(self) -> None:
        self._zip.close()

    def size(self, key: str) -> int:
        """The member's declared (uncompressed) size in bytes."""
        return int(self.members[key].file_size)

    def _open(self, key: str) -> IO[bytes]:
        try:
            return self._zip.open(self.members[key])
        except Exception as e:
            raise ValueError(f"{key}: expected a readable member, got {type(e).__name__}: {e}") from None

    def header(self, key: str) -> ArrayHeader:
        """The member's ``.npy`` header, checked against its declared size."""
        info = self.members[key]
        try:
            with self._open(key) as f:
                head = io.BytesIO(f.read(min(info.file_size, 16 + MAX_HEADER)))
            version = np.lib.format.read_magic(head)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(head, max_header_size=MAX_HEADER)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(head, max_header_size=MAX_HEADER)
            else:
                raise ValueError(f"expected .npy format version 1.0 or 2.0, got {version}")
        except ValueError as e:
            raise ValueError(f"{key}: expected a valid .npy header, got {e}") from None
        except Exception as e:  # tokenize.TokenError, zlib.error, ... from a damaged header
            raise ValueError(f"{key}: expected a valid .npy header, got {type(e).__name__}: {e}") from None
        if any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0 for n in shape):
            raise ValueError(f"{key}: expected a shape of non-negative integers, got {short(shape)}")
        nbytes = math.prod(shape) * dtype.itemsize
        if head.tell() + nbytes != info.file_size:
            raise ValueError(
                f"{key}: expected {head.tell() + nbytes} bytes (header and {dtype} array of shape {tuple(shape)}), "
                f"got a member of {info.file_size} bytes"
            )
        return ArrayHeader(tuple(int(n) for n in shape), dtype, nbytes)

    def read(self, key: str) -> np.ndarray:
        """The member's array (call :meth:`header` first: it bounds what is read)."""
        try:
            with self._open(key) as f:
                arr: np.ndarray = np.lib.format.read_array(f, allow_pickle=False, max_header_size=MAX_HEADER)
        except ValueError as e:
            raise ValueError(f"{key}: expected a readable array, got {e}") from None
        except Exception as e:  # zlib.error, BadZipFile (CRC), EOFError from damaged data
            raise ValueError(f"{key}: expected a readable array, got {type(e).__name__}: {e}") from None
        return arr
