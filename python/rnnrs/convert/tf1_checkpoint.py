"""TensorFlow 1.x checkpoints (``tf.compat.v1.train.Saver``'s V2 format) read
and written without TensorFlow.

A checkpoint ``<prefix>`` is two files:

- ``<prefix>.index``: a LevelDB-format table (SSTable): data blocks of sorted,
  prefix-compressed keys with restart points, an index block, a metaindex
  block and a 48-byte footer ending in the magic ``0xdb4775248b80fb57``;
  every block is followed by a type byte (0: uncompressed) and the masked
  CRC-32C of the block and its type. The values are protobufs: under the key
  ``""`` a ``BundleHeaderProto`` (number of shards, endianness, version),
  under each variable's name a ``BundleEntryProto`` (dtype, shape, shard,
  offset, size and the masked CRC-32C of the tensor's bytes). The few fields
  needed are decoded and encoded here by hand (no protobuf dependency).
- ``<prefix>.data-00000-of-00001`` (one per shard): the tensors' raw
  little-endian bytes, C order.

Names follow TensorFlow 1.x's variable scoping: see :func:`tf1_names`.

Everything read is checked before it is used: ``ValueError`` naming
``path`` for a missing, truncated or damaged file (bad magic, bad block or
tensor checksum, keys out of order, varints or sizes out of range, entries
pointing outside their data file, a tensor whose size does not match its
shape and dtype), and for variables the object needs that are missing, of
the wrong shape or dtype, or partitioned. Sizes are checked against the
files' lengths before anything is allocated.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np

from .. import _rnnrs
from ..cells import WEIGHTS_LOCK, RNNCell
from ..saving.model_io import checked_path, write_atomically
from ..tfnames import check_scope, tf_scoped_names

__all__ = ["from_tf1_checkpoint", "list_tf1_checkpoint", "tf1_names", "to_tf1_checkpoint"]

PathLike = Union[str, "os.PathLike[str]"]

_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48
_TRAILER = 5  # type byte + masked crc32c
_MASK_DELTA = 0xA282EAD8
_BLOCK_SIZE = 4096  # a data block is closed once it reaches this many bytes (LevelDB's default)
_RESTART_INTERVAL = 16
_MAX_INDEX = 1 << 30  # an index holds ~100 bytes per variable: larger files are refused unread

# TensorFlow's DataType enum (types.proto) → NumPy dtype; None: listed, never loaded.
_DTYPES: dict[int, tuple[str, Optional[np.dtype[Any]]]] = {
    1: ("float32", np.dtype("<f4")),
    2: ("float64", np.dtype("<f8")),
    3: ("int32", np.dtype("<i4")),
    4: ("uint8", np.dtype("u1")),
    5: ("int16", np.dtype("<i2")),
    6: ("int8", np.dtype("i1")),
    7: ("string", None),
    8: ("complex64", np.dtype("<c8")),
    9: ("int64", np.dtype("<i8")),
    10: ("bool", np.dtype("?")),
    14: ("bfloat16", None),
    17: ("uint16", np.dtype("<u2")),
    18: ("complex128", np.dtype("<c16")),
    19: ("float16", np.dtype("<f2")),
    20: ("resource", None),
    21: ("variant", None),
    22: ("uint32", np.dtype("<u4")),
    23: ("uint64", np.dtype("<u8")),
}
_DT_OF = {"float32": 1, "float64": 2}


# -- CRC-32C -------------------------------------------------------------------
def masked_crc32c(data: bytes) -> int:
    """LevelDB's / TensorFlow's stored form of a CRC-32C: rotated right by 15
    bits plus ``0xa282ead8`` (mod 2**32), so that a CRC of data holding CRCs
    is not itself trivially related to them. The CRC itself comes from the
    Rust edge (``_rnnrs.crc32c``, unmasked, hardware-accelerated)."""
    crc = _rnnrs.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


# -- errors and byte reading -----------------------------------------------------
class _Damaged(Exception):
    """A format error in a file; reported as ``ValueError`` naming ``path``."""


def _varint(buf: bytes, pos: int, end: int, bits: int = 64) -> tuple[int, int]:
    """The base-128 varint at ``buf[pos:end]`` and the position after it."""
    value = shift = 0
    while True:
        if pos >= end:
            raise _Damaged("a varint runs past its end")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift >= bits:
            raise _Damaged(f"a varint longer than {bits} bits")
    if value >> bits:
        raise _Damaged(f"a varint longer than {bits} bits")
    return value, pos


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a protobuf message: an int for
    varint / fixed wire types, bytes for length-delimited ones."""
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        value: Any
        if number == 0:
            raise _Damaged("a protobuf field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 1:
            if pos + 8 > end:
                raise _Damaged("a truncated protobuf field")
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos, end)
            if pos + size > end:
                raise _Damaged("a protobuf field runs past its message")
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            if pos + 4 > end:
                raise _Damaged("a truncated protobuf field")
            value, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        else:
            raise _Damaged(f"a protobuf wire type {wire}")
        yield number, wire, value


def _int64(value: int) -> int:
    """A varint read as a protobuf int64 (two's complement)."""
    return value - (1 << 64) if value >> 63 else value


# -- the table (SSTable) -----------------------------------------------------------
def _block(data: bytes, handle: bytes, what: str) -> bytes:
    """The contents of the block a handle (two varints) points to, checked."""
    offset, pos = _varint(handle, 0, len(handle))
    size, pos = _varint(handle, pos, len(handle))
    if offset + size + _TRAILER > len(data) - _FOOTER:
        raise _Damaged(f"the {what} block [{offset}, +{size}] lies outside the index file ({len(data)} bytes)")
    contents = data[offset : offset + size]
    kind = data[offset + size]
    stored = int.from_bytes(data[offset + size + 1 : offset + size + 5], "little")
    if masked_crc32c(data[offset : offset + size + 1]) != stored:
        raise _Damaged(f"the {what} block at offset {offset} fails its CRC-32C check")
    if kind != 0:
        raise _Damaged(f"the {what} block is compressed (type {kind}); only uncompressed blocks are supported")
    return contents


def _block_entries(block: bytes, what: str) -> Iterator[tuple[bytes, bytes]]:
    """The (key, value) entries of a block, keys rebuilt from their shared prefixes."""
    if len(block) < 4:
        raise _Damaged(f"a {what} block shorter than its restart count")
    restarts = int.from_bytes(block[-4:], "little")
    if restarts > (len(block) - 4) // 4:
        raise _Damaged(f"a {what} block claims {restarts} restart points")
    end = len(block) - 4 - 4 * restarts
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos, end, 32)
        unshared, pos = _varint(block, pos, end, 32)
        size, pos = _varint(block, pos, end, 32)
        if shared > len(key) or pos + unshared + size > end:
            raise _Damaged(f"a {what} block entry runs past its block")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + size]
        pos += size


def _table(data: bytes) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of an index file, in order (keys strictly increasing)."""
    if len(data) < _FOOTER:
        raise _Damaged(f"the index file has {len(data)} bytes, fewer than its {_FOOTER}-byte footer")
    footer = data[-_FOOTER:]
    if int.from_bytes(footer[-8:], "little") != _MAGIC:
        raise _Damaged("the index file does not end with the table magic number (not a TF 1.x V2 checkpoint)")
    _, pos = _varint(footer, 0, 40)  # the metaindex handle: offset, size
    _, pos = _varint(footer, pos, 40)
    # TensorFlow writes an empty metaindex block and never reads it; it is checked all the same.
    for _ in _block_entries(_block(data, footer[:pos], "metaindex"), "metaindex"):
        pass
    index = _block(data, footer[pos:40], "index")
    entries: list[tuple[bytes, bytes]] = []
    for _, handle in _block_entries(index, "index"):
        for key, value in _block_entries(_block(data, handle, "data"), "data"):
            if entries and key <= entries[-1][0]:
                raise _Damaged(f"the index file's keys are out of order at {key!r}")
            entries.append((key, value))
    return entries


# -- bundle protobufs ----------------------------------------------------------------
class _Entry:
    """One ``BundleEntryProto``."""

    def __init__(self, name: str, raw: bytes) -> None:
        self.name = name
        self.dtype_code = 0
        self.shape: list[int] = []
        self.unknown_rank = False
        self.shard = self.offset = self.size = 0
        self.crc: Optional[int] = None
        self.sliced = False
        for number, wire, value in _fields(raw):
            if number == 1 and wire == 0:
                self.dtype_code = value
            elif number == 2 and wire == 2:
                for n2, w2, v2 in _fields(value):
                    if n2 == 2 and w2 == 2:
                        size = 0
                        for n3, w3, v3 in _fields(v2):
                            if n3 == 1 and w3 == 0:
                                size = _int64(v3)
                        self.shape.append(size)
                    elif n2 == 3 and w2 == 0:
                        self.unknown_rank = bool(v2)
            elif number == 3 and wire == 0:
                self.shard = _int64(value)
            elif number == 4 and wire == 0:
                self.offset = _int64(value)
            elif number == 5 and wire == 0:
                self.size = _int64(value)
            elif number == 6 and wire == 5:
                self.crc = value
            elif number == 7 and wire == 2:
                self.sliced = True
        if self.unknown_rank or any(d < 0 for d in self.shape):
            raise _Damaged(f"variable {name!r} has an unknown shape {self.shape}")
        if self.offset < 0 or self.size < 0 or self.shard < 0:
            raise _Damaged(f"variable {name!r} has a negative offset, size or shard")

    @property
    def dtype_name(self) -> str:
        known = _DTYPES.get(self.dtype_code)
        return known[0] if known else f"DT_{self.dtype_code}"


class _Checkpoint:
    """A parsed ``.index`` file: its prefix, shard count and entries by name."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        try:
            with open(prefix + ".index", "rb") as f:
                if os.fstat(f.fileno()).st_size > _MAX_INDEX:
                    raise _Damaged(f"the index file is larger than {_MAX_INDEX} bytes")
                data = f.read()
        except OSError as e:
            raise _Damaged(f"cannot read {prefix + '.index'}: {e.strerror or e}") from None
        self.shards = 1
        self.entries: dict[str, _Entry] = {}
        header = False
        for key, value in _table(data):
            if not header and key != b"":
                # TensorFlow's BundleReader refuses a bundle whose first key is not the header's.
                raise _Damaged("the index has no header entry (the key '' that every TF 1.x bundle starts with)")
            if key == b"":
                header = True
                for number, wire, v in _fields(value):
                    if number == 1 and wire == 0:
                        self.shards = _int64(v)
                    elif number == 2 and wire == 0 and v != 0:
                        raise _Damaged("the checkpoint is big-endian; only little-endian checkpoints are supported")
                if not 1 <= self.shards <= 99999:
                    raise _Damaged(f"the header claims {self.shards} shards")
                continue
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                raise _Damaged(f"a variable name that is not UTF-8: {key!r}") from None
            entry = _Entry(name, value)
            if entry.shard >= self.shards:
                raise _Damaged(f"variable {name!r} is in shard {entry.shard} of {self.shards}")
            self.entries[name] = entry
        if not header:
            raise _Damaged("the index has no header entry (the key '' that every TF 1.x bundle starts with)")

    def data_file(self, shard: int) -> str:
        return f"{self.prefix}.data-{shard:05d}-of-{self.shards:05d}"

    def read(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """The named numeric tensors, every byte range and checksum checked."""
        out: dict[str, np.ndarray] = {}
        handles: dict[int, Any] = {}
        try:
            for name in names:
                entry = self.entries[name]
                known = _DTYPES.get(entry.dtype_code)
                dtype = known[1] if known else None
                if dtype is None:
                    raise _Damaged(f"variable {name!r} has dtype {entry.dtype_name}, which cannot be loaded")
                if entry.sliced:
                    raise _Damaged(f"variable {name!r} is partitioned (saved in slices), which is not supported")
                count = 1
                for d in entry.shape:
                    count *= d
                if count * dtype.itemsize != entry.size:
                    raise _Damaged(
                        f"variable {name!r} holds {entry.size} bytes, but shape {tuple(entry.shape)} "
                        f"of {entry.dtype_name} needs {count * dtype.itemsize}"
                    )
                if entry.shard not in handles:
                    file_name = self.data_file(entry.shard)
                    try:
                        handles[entry.shard] = open(file_name, "rb")
                    except OSError as e:
                        raise _Damaged(f"cannot read {file_name}: {e.strerror or e}") from None
                f = handles[entry.shard]
                length = os.fstat(f.fileno()).st_size
                if entry.offset + entry.size > length:
                    raise _Damaged(
                        f"variable {name!r} at bytes [{entry.offset}, {entry.offset + entry.size}) lies outside "
                        f"its data file ({length} bytes)"
                    )
                f.seek(entry.offset)
                raw = f.read(entry.size)
                if len(raw) != entry.size:
                    raise _Damaged(f"variable {name!r}: its data file ends early")
                if entry.crc is not None and masked_crc32c(raw) != entry.crc:
                    raise _Damaged(f"variable {name!r} fails its CRC-32C check")
                out[name] = np.frombuffer(raw, dtype=dtype).reshape(entry.shape).astype(dtype.newbyteorder("="))
        finally:
            for f in handles.values():
                f.close()
        return out


# -- paths ---------------------------------------------------------------------------
_DATA_SUFFIX = re.compile(r"\.data-\d{5}-of-\d{5}$")


# Text-proto string escapes (protobuf's CUnescape): a backslash and one of these, an octal \ddd or a hex \xHH.
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b", b"f": b"\f", b"v": b"\v"}
_ESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|(.))", re.S)


def _text_unescape(raw: bytes) -> bytes:
    """The bytes a quoted text-proto string stands for (``\\"``, ``\\\\``,
    ``\\n``, octal ``\\346``, hex ``\\xe6`` undone); the result is UTF-8 to decode."""

    def one(m: "re.Match[bytes]") -> bytes:
        if m.group(1) is not None:
            return bytes([int(m.group(1), 8) & 0xFF])
        if m.group(2) is not None:
            return bytes([int(m.group(2), 16)])
        return _ESCAPES.get(m.group(3), m.group(3))

    return _ESCAPE.sub(one, raw)


def _text_escape(text: str) -> str:
    """``text`` quoted as TensorFlow writes a ``checkpoint`` file (protobuf's
    text format with UTF-8 output): ``\\`` ``"`` ``'`` and the newline, return
    and tab escaped, everything else (non-ASCII included) as is."""
    table = {"\\": "\\\\", '"': '\\"', "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return "".join(table.get(ch, ch) for ch in text)


def _state_file_path(state: str) -> str:
    """The ``model_checkpoint_path`` a ``checkpoint`` (CheckpointState text
    proto) file names, escapes undone and decoded from UTF-8."""
    with open(state, "rb") as f:
        raw = f.read(1 << 20)
    found = re.search(rb'^\s*model_checkpoint_path:\s*"((?:[^"\\\n]|\\.)*)"', raw, re.M)
    if not found:
        raise ValueError(f"path: expected a 'checkpoint' file naming model_checkpoint_path, got {state!r}")
    try:
        return _text_unescape(found.group(1)).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(
            f"path: expected a 'checkpoint' file whose model_checkpoint_path is UTF-8, got {state!r} "
            f"naming {found.group(1)!r}"
        ) from None


def _prefix(path: str) -> str:
    """The checkpoint prefix ``path`` names: a prefix, its ``.index``,
    ``.data-*`` or ``.meta`` file, or a directory holding one checkpoint."""
    if os.path.isdir(path):
        state = os.path.join(path, "checkpoint")
        if os.path.isfile(state):
            named = _state_file_path(state)
            candidate = named if os.path.isabs(named) else os.path.join(path, named)
            if not os.path.isfile(candidate + ".index"):
                # TensorFlow writes absolute paths by default: try the checkpoint next to the state file.
                candidate = os.path.join(path, os.path.basename(named))
            if not os.path.isfile(candidate + ".index"):
                raise ValueError(
                    f"path: expected the checkpoint {named!r} named by {state!r} to exist, got no "
                    f"{candidate + '.index'!r}"
                )
            return candidate
        indexes = sorted(p.name for p in Path(path).glob("*.index"))
        if len(indexes) != 1:
            raise ValueError(
                f"path: expected a directory with a 'checkpoint' file or exactly one .index file, "
                f"got {len(indexes)} .index files in {path!r}"
            )
        return os.path.join(path, indexes[0][: -len(".index")])
    if path.endswith(".index") and os.path.isfile(path):
        return path[: -len(".index")]
    if _DATA_SUFFIX.search(path) and os.path.isfile(path):
        return _DATA_SUFFIX.sub("", path)
    if path.endswith(".meta") and os.path.isfile(path[: -len(".meta")] + ".index"):
        return path[: -len(".meta")]  # the graph of a V2 checkpoint: read the checkpoint it was saved with
    if os.path.isfile(path + ".index"):
        return path
    if os.path.isfile(path + ".meta") or (os.path.isfile(path) and not path.endswith(".index")):
        raise ValueError(
            f"path: expected a TF 1.x V2 checkpoint (<prefix>.index and <prefix>.data-*), got {path!r} "
            "(a V1 checkpoint or another file; re-save it with tf.compat.v1.train.Saver())"
        )
    raise ValueError(f"path: expected a checkpoint prefix, .index file or directory, got {path!r} (not found)")


def _open(path: Any) -> _Checkpoint:
    name = checked_path(path)
    prefix = _prefix(name)
    try:
        return _Checkpoint(prefix)
    except _Damaged as e:
        raise ValueError(f"path: expected a valid TF 1.x checkpoint, got a damaged one at {name!r}: {e}") from None


def list_tf1_checkpoint(path: PathLike) -> list[tuple[str, str, tuple[int, ...]]]:
    """Every variable of a TF 1.x V2 checkpoint as ``(name, dtype, shape)``,
    sorted by name (``dtype`` a NumPy dtype name such as ``"float32"``, or
    TensorFlow's name for types NumPy lacks: ``"string"``, ``"bfloat16"``).

    ``path``: the checkpoint's prefix (``.../model.ckpt``), its ``.index``,
    ``.data-*`` or ``.meta`` file (the graph saved with it), or a directory
    holding one checkpoint (named by its ``checkpoint`` file, whose text-proto
    escapes are undone and whose name is UTF-8, or by its only ``.index``
    file). Only the ``.index`` file is read (its block checksums checked); a
    damaged one, or one without the header entry every TF bundle starts
    with, raises ``ValueError`` naming ``path``."""
    ckpt = _open(path)
    return [(e.name, e.dtype_name, tuple(e.shape)) for e in sorted(ckpt.entries.values(), key=lambda e: e.name)]


# -- names -----------------------------------------------------------------------------
def _cell_names(cell: Any, where: str) -> dict[str, str]:
    """rnnrs weight name → TF name below the run function's scope, for a
    cell (the one rule, :func:`rnnrs.tfnames.tf_scoped_names`)."""
    try:
        return tf_scoped_names(cell, "")
    except TypeError:
        raise TypeError(
            f"{where}: expected an rnnrs cell or wrapper TensorFlow 1.x has (BasicRNNCell, BasicLSTMCell, LSTMCell, "
            f"GRUCell, MultiRNNCell, OutputProjectionWrapper, DropoutWrapper, ResidualWrapper), "
            f"got {type(cell).__name__}"
        ) from None


def _parts(obj: Any) -> list[tuple[str, RNNCell]]:
    """(TF sub-scope, cell) of an object: one cell, a layer's cell, or a pair's ``fw`` and ``bw``."""
    if isinstance(obj, RNNCell):
        return [("", obj)]
    if isinstance(obj, tuple) and len(obj) == 2 and all(isinstance(c, RNNCell) for c in obj):
        if obj[0] is obj[1]:
            raise ValueError("obj: expected two distinct cells (cell_fw, cell_bw), got the same cell twice")
        return [("fw/", obj[0]), ("bw/", obj[1])]
    from ..layers.recurrent import RNN  # not at import time: the layers import much of the package

    if isinstance(obj, RNN):
        return [("", obj.cell)]
    raise TypeError(
        f"obj: expected an rnnrs cell, a (cell_fw, cell_bw) pair or an rnnrs.layers.RNN, got {type(obj).__name__}"
    )


def tf1_names(obj: Any, scope: Optional[str] = None) -> dict[str, str]:
    """The TensorFlow 1.x variable name of each weight of ``obj`` (a cell or
    wrapper, a ``(cell_fw, cell_bw)`` pair, or an ``rnnrs.layers.RNN``), by
    rnnrs weight name (a pair's as ``fw/<name>``, ``bw/<name>``): the names
    :func:`from_tf1_checkpoint` reads and :func:`to_tf1_checkpoint` writes.
    ``scope``: the run function's scope (default ``"rnn"``,
    ``"bidirectional_rnn"`` for a pair; ``""`` for none). Works on unbuilt
    cells too.

    The rule: the run function's scope (``rnn`` for ``dynamic_rnn``,
    ``bidirectional_rnn`` for ``bidirectional_dynamic_rnn``, or the
    ``scope=`` it was given), then one scope per cell or wrapper that owns
    variables, named after its TensorFlow class in snake case (rnnrs weight
    name → name after ``<scope>/``)::

        BasicRNNCell    kernel, bias     → basic_rnn_cell/kernel, basic_rnn_cell/bias
        BasicLSTMCell   kernel, bias     → basic_lstm_cell/kernel, basic_lstm_cell/bias
        LSTMCell        kernel, bias, w_i_diag, w_f_diag, w_o_diag, projection/kernel
                                         → lstm_cell/<the same>
        GRUCell         gates/kernel, gates/bias, candidate/kernel, candidate/bias
                                         → gru_cell/<the same>
        GRUCell(reset_after=True)        → cudnn_compatible_gru_cell/...
                        gates/kernel, gates/bias → gates/kernel, gates/bias
                        candidate/input_kernel   → candidate/input_projection/kernel
                        candidate/input_bias     → candidate/input_projection/bias
                        candidate/hidden_kernel  → candidate/hidden_projection/kernel
                        candidate/hidden_bias    → candidate/hidden_projection/bias
        MultiRNNCell    cell_<i>/<w>     → multi_rnn_cell/cell_<i>/<layer i's name for w>
        OutputProjectionWrapper          → output_projection_wrapper/<the wrapped cell's names>
                        output_projection/kernel, output_projection/bias
                                         → output_projection_wrapper/kernel, .../bias
        DropoutWrapper, ResidualWrapper  → no scope of their own: the wrapped cell's names
        (cell_fw, cell_bw)  fw/<w>, bw/<w> → fw/<cell_fw's name for w>, bw/<cell_bw's ...>
        rnnrs.layers.RNN                 → its cell's names

    (Checked against checkpoints written by TensorFlow 2.21's ``tf.compat.v1``;
    ``OutputProjectionWrapper`` and ``CudnnCompatibleGRUCell`` lived in
    ``tf.contrib``, which TF 2 dropped: the fixtures use ports of TF 1.15's
    classes, see ``scripts/make_tf1_fixtures.py``.)"""
    parts = _parts(obj)
    prefix = _scope(scope, len(parts) == 2)
    return {
        f"{sub}{ours}": f"{prefix}{sub}{theirs}"
        for sub, cell in parts
        for ours, theirs in _cell_names(cell, "obj" if not sub else f"obj[{0 if sub == 'fw/' else 1}]").items()
    }


def _scope(scope: Optional[str], pair: bool) -> str:
    """``scope`` as a name prefix ("" or ending in "/"): None is the run
    function's default, anything else follows :func:`rnnrs.tfnames.check_scope`
    (the rule of every ``scope=`` argument of the package)."""
    if scope is None:
        return "bidirectional_rnn/" if pair else "rnn/"
    checked = check_scope(scope)
    return f"{checked}/" if checked else ""


# -- reading onto rnnrs objects ------------------------------------------------------------
def _find_scope(ckpt: _Checkpoint, relative: list[str]) -> Optional[str]:
    """The one prefix under which every name of ``relative`` is in the
    checkpoint (None: none; ValueError: several)."""
    first = relative[0]
    found = []
    for name in ckpt.entries:
        if name == first or name.endswith("/" + first):
            prefix = name[: len(name) - len(first)]
            if all(prefix + r in ckpt.entries for r in relative):
                found.append(prefix)
    if len(found) > 1:
        raise ValueError(
            f"scope: expected one scope holding the object's variables, got several in the checkpoint: "
            f"{sorted(p.rstrip('/') for p in found)}; pass scope="
        )
    return found[0] if found else None


def from_tf1_checkpoint(path: PathLike, obj: Any, scope: Optional[str] = None) -> None:
    """Sets the weights of ``obj`` from a TF 1.x V2 checkpoint (written by
    ``tf.compat.v1.train.Saver``), without TensorFlow.

    ``obj``: a cell or wrapper, a ``(cell_fw, cell_bw)`` pair (as given to
    ``bidirectional_dynamic_rnn``) or an ``rnnrs.layers.RNN``; built or not
    (an unbuilt one is built from the checkpoint's shapes). ``path``: as
    for :func:`list_tf1_checkpoint` (a prefix, its ``.index``, ``.data-*``
    or ``.meta`` file, or a directory). ``scope``: the scope the model ran
    under in TensorFlow (``dynamic_rnn``'s default ``"rnn"``,
    ``bidirectional_dynamic_rnn``'s ``"bidirectional_rnn"``, or the
    ``scope=`` it was given; one trailing ``/`` ignored, checked by
    :func:`rnnrs.tfnames.check_scope` as every ``scope=`` of the package:
    ``"a b"``, ``"_x"`` or ``"a//"`` raise ``ValueError`` naming
    ``scope``); None (default) finds it: the one prefix under which every
    variable the object needs is present. Names map by TensorFlow's scoping rules (:func:`tf1_names`).

    Variables the object does not need (optimizer slots such as
    ``.../kernel/Adam``, ``global_step``, other layers) are ignored. Nothing
    changes unless every needed variable is present, float32/float64 of the
    object's dtype, of the right shape and passes its CRC-32C check;
    otherwise ``ValueError`` naming ``path`` (the missing names listed).
    ``TypeError`` for an object TF 1.x has no names for."""
    parts = _parts(obj)
    names = tf1_names(obj, "")
    if scope is not None:
        _scope(scope, len(parts) == 2)  # type check
    ckpt = _open(path)
    shown = checked_path(path)
    relative = list(names.values())
    if scope is None:
        found = _find_scope(ckpt, relative)
        prefix = found if found is not None else _scope(None, len(parts) == 2)
    else:
        prefix = _scope(scope, len(parts) == 2)
    missing = sorted(prefix + r for r in relative if prefix + r not in ckpt.entries)
    if missing:
        near = sorted(n for n in ckpt.entries if not n.endswith(("/Adam", "/Adam_1", "/Momentum", "/RMSProp")))
        raise ValueError(
            f"path: expected the variables {missing} in the checkpoint {shown!r}, got a checkpoint without "
            f"them (it holds {near[:20]}{' ...' if len(near) > 20 else ''})"
        )
    for sub, cell in parts:
        for ours, theirs in names.items():
            entry = ckpt.entries[prefix + theirs]
            if ours.startswith(sub) and entry.dtype_name != cell.dtype.name:
                raise ValueError(
                    f"path: expected {entry.name!r} in {shown!r} to be {cell.dtype.name} (the cell's dtype), "
                    f"got {entry.dtype_name}"
                )
    try:
        values = ckpt.read(sorted(prefix + r for r in relative))
    except _Damaged as e:
        raise ValueError(f"path: expected a valid TF 1.x checkpoint, got a damaged one at {shown!r}: {e}") from None
    commits: list[Callable[[], None]] = []
    for sub, cell in parts:
        mapping = {ours[len(sub) :]: values[prefix + theirs] for ours, theirs in names.items() if ours.startswith(sub)}
        if cell.built:
            current = cell.get_weights()
            for ours, value in mapping.items():
                if value.shape != current[ours].shape:
                    raise ValueError(
                        f"path: expected {prefix + names[sub + ours]!r} in {shown!r} of shape "
                        f"{current[ours].shape} (the cell's {sub + ours!r}), got {value.shape}"
                    )
        try:
            commits.append(cell._prepare_weights(mapping, sub))
        except ValueError as e:
            raise ValueError(f"path: expected variables that fit the object in {shown!r}, got: {e}") from None
    with WEIGHTS_LOCK:
        for commit in commits:
            commit()


# -- writing ------------------------------------------------------------------------------
def _put_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _put_varint(number << 3 | wire) + payload


def _entry_proto(value: np.ndarray, offset: int, crc: int) -> bytes:
    dims = b"".join(_field(2, 2, _put_varint(len(d)) + d) for d in (_field(1, 0, _put_varint(n)) for n in value.shape))
    out = _field(1, 0, _put_varint(_DT_OF[value.dtype.name]))
    out += _field(2, 2, _put_varint(len(dims)) + dims)
    if offset:
        out += _field(4, 0, _put_varint(offset))
    if value.nbytes:
        out += _field(5, 0, _put_varint(value.nbytes))
    return out + _field(6, 5, crc.to_bytes(4, "little"))


def _build_block(entries: list[tuple[bytes, bytes]], interval: int) -> bytes:
    out, restarts, last = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % interval == 0:
            restarts.append(len(out))
        else:
            limit = min(len(key), len(last))
            while shared < limit and key[shared] == last[shared]:
                shared += 1
        out += _put_varint(shared) + _put_varint(len(key) - shared) + _put_varint(len(value))
        out += key[shared:] + value
        last = key
    for r in restarts or [0]:
        out += r.to_bytes(4, "little")
    out += len(restarts or [0]).to_bytes(4, "little")
    return bytes(out)


def _table_bytes(entries: list[tuple[bytes, bytes]]) -> bytes:
    """An uncompressed SSTable of sorted entries: data blocks, metaindex, index, footer."""
    out = bytearray()

    def add(block: bytes) -> bytes:
        handle = _put_varint(len(out)) + _put_varint(len(block))
        out.extend(block + b"\x00")
        out.extend(masked_crc32c(block + b"\x00").to_bytes(4, "little"))
        return handle

    index: list[tuple[bytes, bytes]] = []
    pending: list[tuple[bytes, bytes]] = []
    size = 0
    for key, value in entries:
        pending.append((key, value))
        size += len(key) + len(value) + 8
        if size >= _BLOCK_SIZE:
            index.append((key, add(_build_block(pending, _RESTART_INTERVAL))))
            pending, size = [], 0
    if pending:
        index.append((pending[-1][0], add(_build_block(pending, _RESTART_INTERVAL))))
    meta = add(_build_block([], 1))
    handles = meta + add(_build_block(index, 1))
    out += handles + b"\x00" * (40 - len(handles)) + struct.pack("<Q", _MAGIC)
    return bytes(out)


def to_tf1_checkpoint(obj: Any, path: PathLike, scope: Optional[str] = None) -> str:
    """Writes the weights of ``obj`` (a built cell or wrapper, a ``(cell_fw,
    cell_bw)`` pair or an ``rnnrs.layers.RNN``) as a TF 1.x V2 checkpoint
    that ``tf.compat.v1.train.Saver().restore`` (and
    :func:`from_tf1_checkpoint`) reads: ``<path>.index``,
    ``<path>.data-00000-of-00001`` and, next to them, a ``checkpoint`` file
    naming this checkpoint (by its relative name, in UTF-8 with TensorFlow's
    text-proto escapes; as ``Saver.save`` does, it replaces an existing one). Names by TensorFlow's scoping rules
    (:func:`tf1_names`) under ``scope``: default ``"rnn"`` (``dynamic_rnn``'s), or
    ``"bidirectional_rnn"`` for a pair (``bidirectional_dynamic_rnn``'s); ``""``
    for none (checked as by :func:`from_tf1_checkpoint`). Each file is written to a temporary name and then renamed.
    Returns the prefix written."""
    parts = _parts(obj)
    for _, cell in parts:
        cell._require_built("obj")
    names = tf1_names(obj, scope)
    prefix = checked_path(path)
    if prefix.endswith(".index"):
        prefix = prefix[: -len(".index")]
    folder = os.path.dirname(prefix) or "."
    if not os.path.isdir(folder) or not os.path.basename(prefix):
        raise ValueError(f"path: expected a checkpoint prefix in an existing directory, got {prefix!r}")
    weights: dict[str, np.ndarray] = {}
    for sub, cell in parts:
        weights.update({sub + k: v for k, v in cell.get_weights().items()})
    header = _field(1, 0, _put_varint(1)) + _field(3, 2, _put_varint(2) + _field(1, 0, _put_varint(1)))
    entries = [(b"", header)]
    data = bytearray()
    for ours, theirs in sorted(names.items(), key=lambda kv: kv[1].encode("utf-8")):
        value = np.ascontiguousarray(weights[ours], dtype=weights[ours].dtype.newbyteorder("<"))
        raw = value.tobytes()
        entries.append((theirs.encode("utf-8"), _entry_proto(value, len(data), masked_crc32c(raw))))
        data += raw
    index = _table_bytes(entries)
    base = _text_escape(os.path.basename(prefix))
    state = f'model_checkpoint_path: "{base}"\nall_model_checkpoint_paths: "{base}"\n'.encode("utf-8")
    # Each file through a temporary one renamed into place: a crash never leaves half a file.
    write_atomically(prefix + ".data-00000-of-00001", lambda f: f.write(data))
    write_atomically(prefix + ".index", lambda f: f.write(index))
    write_atomically(os.path.join(folder, "checkpoint"), lambda f: f.write(state))
    return prefix
