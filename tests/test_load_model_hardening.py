"""``load_model`` on damaged and hostile files, and ``save``'s arguments.

The README promises: "load_model of a file that is not an rnnrs model raises
ValueError". Before these checks, damaged files raised ``zipfile.BadZipFile``,
``zlib.error``, ``NotImplementedError``, ``tokenize.TokenError``, ``KeyError``,
``RecursionError`` (500 nested wrappers) or ``TypeError: 'int' object is not
iterable``; a 3 KB file declaring ``input_size=10**7`` made ``load_model``
allocate 1.4 GB (random initial weights) before failing, and a 1 MB file
decompressed to 1 GB. Each test below pins one of those behaviours: every
corrupted file is either loaded (a harmless change, e.g. a flipped byte in a
zip timestamp) or refused with a ``ValueError`` whose message starts with
``path:``, names the file and says what is wrong; nothing else escapes.
The memory tests run in a subprocess under an address-space limit, so a
regression fails the test instead of taking the run down.
"""

from __future__ import annotations

import copy
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import pytest

import rnnrs
from helpers import raises_naming

CONFIG = "__rnnrs_model__"


# -- models and files ---------------------------------------------------------


def rich_model():
    """Every kind of part a file can describe: stacked, wrapped, projected
    cells, a dense layer and an optimizer with state."""
    cell = rnnrs.MultiRNNCell(
        [
            rnnrs.DropoutWrapper(rnnrs.LSTMCell(4, use_peepholes=True, num_proj=3, seed=0), output_keep_prob=0.9),
            rnnrs.OutputProjectionWrapper(rnnrs.GRUCell(3, seed=1), 2, seed=2),
        ]
    )
    model = rnnrs.Sequential([rnnrs.RNN(cell, return_sequences=True), rnnrs.Dense(2, seed=3)])
    model.compile(rnnrs.Adam(0.01), "mse", ["mae"])
    x = np.random.default_rng(0).normal(size=(8, 5, 3)).astype(np.float32)
    model.fit(x, np.roll(x[..., :2], -1, axis=1), batch_size=4, epochs=1, seed=0, verbose=0)
    return model, x


def embedding_model():
    model = rnnrs.Sequential([rnnrs.Embedding(7, 4, seed=0), rnnrs.RNN(rnnrs.BasicRNNCell(5, seed=1)), rnnrs.Dense(2)])
    model.compile(rnnrs.Momentum(0.1), "sparse_categorical_crossentropy", "acc")
    ids = np.random.default_rng(0).integers(0, 7, size=(6, 4))
    model.fit(ids, ids[:, 0] % 2, epochs=1, verbose=0)
    return model, ids


def small_classifier():
    model = rnnrs.SequenceClassifier(rnnrs.BasicLSTMCell(8, seed=0), 3, seed=0)
    x = np.random.default_rng(0).normal(size=(12, 5, 4)).astype(np.float32)
    model.fit(x, np.arange(12) % 3, epochs=1, verbose=0)
    return model, x


def objects_model():
    """Compiled with a loss object and metric objects: their configurations are in the file too."""
    model = rnnrs.Sequential([rnnrs.RNN(rnnrs.GRUCell(4, seed=0)), rnnrs.Dense(1, seed=1)])
    model.compile(
        rnnrs.AdamW(0.01),
        rnnrs.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
        [rnnrs.metrics.Precision(thresholds=0.4), rnnrs.metrics.AUC(num_thresholds=20), "accuracy"],
    )
    x = np.random.default_rng(0).normal(size=(12, 5, 4)).astype(np.float32)
    model.fit(x, (np.arange(12) % 2)[:, None], epochs=1, verbose=0)
    return model, x


def functional_model():
    """A graph: two inputs, an encoder's state feeding a decoder, shared and merge layers, two outputs."""
    enc = rnnrs.Input((None, 3), name="enc")
    dec = rnnrs.Input((None,), dtype="int64", name="dec")
    _, c, h = rnnrs.RNN(rnnrs.BasicLSTMCell(4, seed=0), return_state=True)(enc)
    e = rnnrs.Embedding(6, 3, mask_zero=True, seed=1)(dec)
    seq = rnnrs.RNN(rnnrs.BasicLSTMCell(4, seed=2), return_sequences=True)(e, initial_state=[c, h])
    shared = rnnrs.TimeDistributed(rnnrs.Dense(2, seed=3))
    both = rnnrs.Concatenate()([seq, shared(e)])
    model = rnnrs.Model([enc, dec], [rnnrs.Dense(6, seed=4)(both), shared(rnnrs.Dropout(0.1, seed=5)(e))])
    model.compile(rnnrs.Adam(0.01), ["sparse_categorical_crossentropy", "mse"], ["accuracy"], loss_weights=[1.0, 0.5])
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(6, 4, 3)).astype(np.float32), rng.integers(1, 6, size=(6, 5))]
    model.fit(x, [x[1], np.zeros((6, 5, 2), np.float32)], epochs=1, verbose=0)
    return model, x


def layers_model():
    """A stack of the other layers: mask_zero, Dropout, Bidirectional, TimeDistributed."""
    model = rnnrs.Sequential(
        [
            rnnrs.Embedding(8, 3, mask_zero=True, seed=0),
            rnnrs.Dropout(0.2, seed=1),
            rnnrs.Bidirectional(rnnrs.RNN(rnnrs.GRUCell(3, seed=2), return_sequences=True), merge_mode="ave"),
            rnnrs.TimeDistributed(rnnrs.Dense(2, seed=3)),
        ]
    )
    model.compile(rnnrs.RMSProp(0.01), "sparse_softmax_cross_entropy")
    ids = np.random.default_rng(0).integers(1, 8, size=(6, 4))
    model.fit(ids, ids % 2, epochs=1, verbose=0)
    return model, ids


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """``{kind: (path, arrays, config, model, inputs)}`` for the models above."""
    folder = tmp_path_factory.mktemp("saved")
    out = {}
    kinds = (
        ("rich", rich_model),
        ("embedding", embedding_model),
        ("classifier", small_classifier),
        ("objects", objects_model),
        ("functional", functional_model),
        ("layers", layers_model),
    )
    for kind, make in kinds:
        model, x = make()
        path = folder / f"{kind}.npz"
        model.save(path)
        with np.load(path, allow_pickle=False) as data:
            arrays = dict(data)
        out[kind] = (path, arrays, json.loads(str(arrays[CONFIG])), model, x)
    return out


def write(path, arrays, config=None):
    """An ``.npz`` like ``save`` writes, with ``config`` (a dict, or raw text) replacing the configuration."""
    members = dict(arrays)
    if config is not None:
        members[CONFIG] = np.array(config if isinstance(config, str) else json.dumps(config))
    np.savez(path, **members)  # stored, not deflated: quicker to write, and read the same way
    return path


def refused(path, *needles, **kwargs):
    """Asserts ``load_model(path)`` raises a ValueError naming ``path`` and its file, containing ``needles``."""
    with raises_naming(ValueError, "^path: ") as info:
        rnnrs.load_model(path, **kwargs)
    message = str(info.value)
    assert str(path) in message, message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


def load_or_refuse(path):
    """The documented outcomes only: a built model, or a ValueError naming ``path``."""
    try:
        model = rnnrs.load_model(path)
    except ValueError as e:
        message = str(e)
        assert message.startswith("path: expected") and str(path) in message and " got " in message, message
        return None
    assert model.built
    return model


def raw_zip(members, central_offset_delta=0):
    """A zip archive written by hand: ``members`` are ``(name, method, data,
    crc, uncompressed_size, flags)`` tuples, ``data`` already compressed."""
    body, central, offset = [], [], 0
    for name, method, data, crc, usize, flags in members:
        encoded = name.encode()
        local = struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0x21, crc, len(data), usize, len(encoded), 0
        )
        body += [local, encoded, data]
        central += [
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                flags,
                method,
                0,
                0x21,
                crc,
                len(data),
                usize,
                len(encoded),
                0,
                0,
                0,
                0,
                0,
                offset,
            ),
            encoded,
        ]
        offset += len(local) + len(encoded) + len(data)
    directory = b"".join(central)
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory), offset + central_offset_delta, 0
    )
    return b"".join(body) + directory + end


def npy_bytes(arr):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def deflated(raw):
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    return co.compress(raw) + co.flush()


# -- damaged bytes ----------------------------------------------------------------


def test_truncated_files_are_refused_at_every_offset(saved, tmp_path):
    """Truncation used to raise zipfile.BadZipFile / zlib.error / EOFError."""
    data = saved["rich"][0].read_bytes()
    offsets = sorted(set(range(0, len(data), 37)) | set(range(len(data) - 40, len(data))))
    for k in offsets:
        path = tmp_path / "cut.npz"
        path.write_bytes(data[:k])
        refused(path)


def test_flipped_bytes_load_or_are_refused(saved, tmp_path):
    """Flipped bytes anywhere: a model, or a ValueError naming path (was BadZipFile, zlib.error, TokenError...)."""
    data = saved["classifier"][0].read_bytes()
    outcomes = {"loaded": 0, "refused": 0}
    for k in range(0, len(data), 17):
        for mask in (0x01, 0xFF):
            damaged = bytearray(data)
            damaged[k] ^= mask
            path = tmp_path / "flip.npz"
            path.write_bytes(bytes(damaged))
            outcomes["loaded" if load_or_refuse(path) is not None else "refused"] += 1
    assert outcomes["refused"] > outcomes["loaded"] > 0  # timestamps and the like do not matter


def test_garbage_and_other_formats(tmp_path):
    cases = {
        "empty": b"",
        "text": b"hello, not a model",
        "npy": npy_bytes(np.ones(3, np.float32)),
        "npy_object": b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (1,), }" + b" " * 50,
        "zip_magic_only": b"PK\x05\x06" + b"\x00" * 18,
        "random": np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(content)
        refused(path)


# -- the zip container ------------------------------------------------------------


def test_zip_structure_is_checked(saved, tmp_path):
    _, arrays, config, _, _ = saved["classifier"]
    cfg_npy = npy_bytes(np.array(json.dumps(config)))
    w_npy = npy_bytes(arrays["weights/dense/bias"])

    def member(name, raw, method=zipfile.ZIP_DEFLATED, flags=0):
        data = deflated(raw) if method == zipfile.ZIP_DEFLATED else raw
        return (name, method, data, zlib.crc32(raw), len(raw), flags)

    cases = {
        "empty zip": (raw_zip([]), "configuration"),
        "not npy": (raw_zip([member("notes.txt", b"hi")]), "notes.txt"),
        "only config": (raw_zip([member(CONFIG + ".npy", cfg_npy)]), "weights"),
        "twice": (raw_zip([member(CONFIG + ".npy", cfg_npy), member(CONFIG + ".npy", cfg_npy)]), "twice"),
        "bzip2": (raw_zip([member(CONFIG + ".npy", cfg_npy, zipfile.ZIP_BZIP2)]), "compression"),
        "lzma": (raw_zip([member(CONFIG + ".npy", cfg_npy, zipfile.ZIP_LZMA)]), "compression"),
        "encrypted": (raw_zip([member(CONFIG + ".npy", cfg_npy, flags=1)]), "encrypted"),
        "stray": (raw_zip([member(CONFIG + ".npy", cfg_npy), member("extra.npy", w_npy)]), "extra"),
        "bad offset": (raw_zip([member(CONFIG + ".npy", cfg_npy)], central_offset_delta=10**6), "zip"),
        "bad crc": (raw_zip([(CONFIG + ".npy", 8, deflated(cfg_npy), 1234, len(cfg_npy), 0)]), CONFIG),
        "short stream": (raw_zip([(CONFIG + ".npy", 8, deflated(cfg_npy)[:40], 0, len(cfg_npy), 0)]), CONFIG),
        "not deflate": (raw_zip([(CONFIG + ".npy", 8, b"\xff" * 64, 0, len(cfg_npy), 0)]), CONFIG),
    }
    for name, (content, needle) in cases.items():
        path = tmp_path / "z.npz"
        path.write_bytes(content)
        try:
            refused(path, needle)
        except AssertionError as e:
            raise AssertionError(f"case {name!r}: {e}") from None


def test_npy_headers_are_checked(saved, tmp_path):
    """Damaged .npy headers used to raise tokenize.TokenError, KeyError, ..."""
    _, arrays, config, _, _ = saved["classifier"]
    good = npy_bytes(arrays["weights/dense/bias"])
    head_len = good.index(b"}") + 1
    cases = [
        b"\x93NUMPZ" + good[6:],
        good[:6] + b"\x03\x00" + good[8:],  # format version 3.0
        good[:6] + b"\x09\x00" + good[8:],
        good[:10]
        + b"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}".ljust(head_len - 10)
        + good[head_len:],
        good[:10]
        + b"{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }".ljust(head_len - 10)
        + good[head_len:],
        good[:10] + b"{'descr': 'zz', 'fortran_order': False, 'shape': (3,), }".ljust(head_len - 10) + good[head_len:],
        good[:10] + b"{'descr': '<f4', 'fortran_order': 1, 'shape': (3,), }".ljust(head_len - 10) + good[head_len:],
        good[:10]
        + b"{'descr': '<f4', 'fortran_order': False, 'shape': '''(3,), }".ljust(head_len - 10)
        + good[head_len:],
        good[:10] + b"(" * (head_len - 10) + good[head_len:],
        good[:8] + b"\xff\xff" + good[10:],  # header length beyond the member
        good[: head_len - 20],
    ]
    for i, raw in enumerate(cases):
        members = {k: npy_bytes(v) for k, v in arrays.items()}
        members["weights/dense/bias"] = raw
        path = tmp_path / f"h{i}.npz"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for k, v in members.items():
                z.writestr(k + ".npy", v)
        refused(path, "weights/dense/bias")


# -- the configuration ----------------------------------------------------------


BAD_VALUES = [-1, 1.5, 10**30, "", True, None, [1, 2], {"a": 1}]


def paths_of(value, prefix=()):
    """Every path (tuple of keys / indexes) into a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths_of(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths_of(v, prefix + (i,))


def replaced(config, path, value, delete=False):
    out = copy.deepcopy(config)
    if not path:
        return value
    target = out
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


@pytest.mark.parametrize("kind", ["rich", "embedding", "objects", "functional", "layers"])
def test_wrong_json_types_at_every_configuration_key(saved, tmp_path, kind):
    """Ints where lists are expected, lists where dicts are, ... at every key
    (was KeyError, TypeError: 'int' object is not iterable, AttributeError)."""
    _, arrays, config, _, _ = saved[kind]
    count = {"loaded": 0, "refused": 0}
    for path in list(paths_of(config)):
        variants = [replaced(config, path, v) for v in BAD_VALUES]
        if path:
            variants.append(replaced(config, path, None, delete=True))
        for i, variant in enumerate(variants):
            file = write(tmp_path / f"{i}.npz", arrays, variant)
            count["loaded" if load_or_refuse(file) is not None else "refused"] += 1
    assert count["refused"] > 200 and count["loaded"] > 0, count


def test_configuration_text_is_checked(saved, tmp_path):
    _, arrays, config, _, _ = saved["classifier"]
    cases = {
        "not json": ("{", "JSON"),
        "nan": (json.dumps({**config, "input_size": float("nan")}), "NaN"),
        "a list": ("[1, 2]", "format"),
        "no format": (json.dumps({k: v for k, v in config.items() if k != "format"}), "format"),
        "deep json": ("[" * 100_000 + "]" * 100_000, "nest"),
        "version true": (json.dumps({**config, "format_version": True}), "format_version"),
        "version 0": (json.dumps({**config, "format_version": 0}), "format_version"),
        "version 2": (json.dumps({**config, "format_version": 2}), "upgrade"),
        "version text": (json.dumps({**config, "format_version": "1"}), "format_version"),
    }
    for text, needle in cases.values():
        refused(write(tmp_path / "c.npz", arrays, text), needle)
    # The configuration member itself: a number, a 2-d text array, bytes, too large.
    for i, bad in enumerate([np.float32(3), np.array([["a"]]), np.bytes_(b"{}"), np.array("x" * (1 << 20 + 1))]):
        refused(write(tmp_path / f"m{i}.npz", {**arrays, CONFIG: bad}), CONFIG)


def test_unknown_and_non_cell_class_names_are_refused(saved, tmp_path):
    """The cell classes come from vars(rnnrs): names of other attributes of the
    package (functions, modules, private bases, non-cell classes) are refused."""
    _, arrays, config, _, _ = saved["classifier"]
    for name in [
        "NASCell",
        "load_model",
        "np",
        "__builtins__",
        "RNNCell",
        "_Wrapper",
        "Sequential",
        "Dense",
        "LSTMStateTuple",
        "os",
        "rnnrs",
        "",
        "__class__",
    ]:
        variant = copy.deepcopy(config)
        variant["layers"][0]["config"]["cell"]["class_name"] = name
        refused(write(tmp_path / "u.npz", arrays, variant), "cell")
    for path, name in [
        (("layers", 0, "class_name"), "Layer"),
        (("class_name",), "History"),
        (("compile", "optimizer", "class_name"), "Optimizer"),
        (("class_name",), "load_model"),
    ]:
        refused(write(tmp_path / "v.npz", arrays, replaced(config, path, name)))


def nested_dropout_config(config, levels):
    """The configuration's cell wrapped in ``levels`` DropoutWrappers, as JSON
    text (``json.dumps`` itself cannot write 500 levels)."""
    cell = json.dumps(config["layers"][0]["config"]["cell"])
    text = '{"class_name": "DropoutWrapper", "config": {"cell": ' * levels + cell + "}}" * levels
    return json.dumps(replaced(config, ("layers", 0, "config", "cell"), "@CELL@")).replace('"@CELL@"', text)


def test_deeply_nested_cells_are_refused_not_a_recursion_error(saved, tmp_path):
    """500 nested wrappers in the configuration used to raise RecursionError."""
    _, arrays, config, _, _ = saved["classifier"]
    refused(write(tmp_path / "deep.npz", arrays, nested_dropout_config(config, 500)), "nested at most")
    refused(write(tmp_path / "65.npz", arrays, nested_dropout_config(config, 64)), "nested at most 64")
    loaded = rnnrs.load_model(write(tmp_path / "64.npz", arrays, nested_dropout_config(config, 63)))
    assert isinstance(loaded.layers[0].cell, rnnrs.DropoutWrapper)


def test_saving_cells_nested_too_deeply_is_refused(tmp_path):
    cell = rnnrs.BasicRNNCell(2, seed=0)
    for _ in range(64):
        cell = rnnrs.DropoutWrapper(cell)
    model = rnnrs.SequenceClassifier(cell, 2)
    model.build(3)
    with raises_naming(ValueError, "cell"):
        model.save(tmp_path / "deep.npz")
    assert not os.listdir(tmp_path)


# -- arrays: dtypes, shapes, values --------------------------------------------------


def test_arrays_of_the_wrong_dtype_are_refused(saved, tmp_path):
    path, arrays, _, _, _ = saved["classifier"]
    kernel = arrays["weights/rnn/kernel"]
    bad = {
        "object": kernel.astype(object),
        "complex": kernel.astype(np.complex64),
        "strings": kernel.astype("U8"),
        "bytes": kernel.astype("S8"),
        "int": kernel.astype(np.int32),
        "bool": kernel > 0,
        "float16": kernel.astype(np.float16),
        "float64 in a float32 model": kernel.astype(np.float64),
        "structured": np.zeros(kernel.shape, [("a", "<f4")]),
    }
    for value in bad.values():
        file = tmp_path / "d.npz"
        np.savez_compressed(file, **{**arrays, "weights/rnn/kernel": value})  # object arrays are pickled here
        refused(file, "weights/rnn/kernel", "dtype")


def test_big_endian_arrays_are_accepted(saved, tmp_path):
    path, arrays, _, model, x = saved["classifier"]
    swapped = {k: (v.astype(v.dtype.newbyteorder(">")) if v.dtype.kind == "f" else v) for k, v in arrays.items()}
    loaded = rnnrs.load_model(write(tmp_path / "be.npz", swapped))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_arrays_of_the_wrong_shape_are_refused(saved, tmp_path):
    _, arrays, _, _, _ = saved["classifier"]
    kernel = arrays["weights/rnn/kernel"]
    for i, value in enumerate([kernel.T, kernel[None], kernel[:, :-1], kernel[:0], kernel.ravel()]):
        refused(write(tmp_path / f"s{i}.npz", {**arrays, "weights/rnn/kernel": value}), "weights/rnn/kernel", "shape")
    m = arrays["optimizer/m/rnn/kernel"]
    refused(write(tmp_path / "slot.npz", {**arrays, "optimizer/m/rnn/kernel": m[:-1]}), "optimizer/m/rnn/kernel")
    for value in (np.float64(3), np.array([3]), np.array(-1)):
        refused(write(tmp_path / "it.npz", {**arrays, "optimizer/iterations": value}), "iterations")
    unknown = {**arrays, "optimizer/q/rnn/kernel": m}
    refused(write(tmp_path / "q.npz", unknown), "optimizer/q/rnn/kernel")
    missing = {k: v for k, v in arrays.items() if k != "weights/dense/bias"}
    refused(write(tmp_path / "missing.npz", missing), "dense/bias")
    extra = {**arrays, "weights/dense/gamma": arrays["weights/dense/bias"]}
    refused(write(tmp_path / "extra.npz", extra), "dense/gamma")


def test_nan_weights_are_refused_when_loading_and_saving(saved, tmp_path):
    """Documented choice: NaN or infinite weights or optimizer slots are
    refused (load_model: ValueError naming the array; save: ValueError)."""
    _, arrays, _, _, _ = saved["classifier"]
    for key, value in [
        ("weights/dense/bias", np.nan),
        ("weights/rnn/kernel", np.inf),
        ("optimizer/v/rnn/bias", np.nan),
    ]:
        damaged = arrays[key].copy()
        damaged.flat[0] = value
        refused(write(tmp_path / "nan.npz", {**arrays, key: damaged}), key, "finite")
    model, _ = small_classifier()
    weights = model.get_weights()
    weights["dense/bias"][0] = np.nan
    model.set_weights(weights)
    with raises_naming(ValueError, "save") as info:
        model.save(tmp_path / "nan_model.npz")
    assert "dense/bias" in str(info.value) and not (tmp_path / "nan_model.npz").exists()


def test_configuration_and_arrays_must_agree_before_anything_is_read(saved, tmp_path):
    """input_size=10**7 in a 3 KB file: refused from the .npy headers (it used to allocate 1.4 GB first)."""
    _, arrays, config, _, _ = saved["classifier"]
    message = refused(write(tmp_path / "big.npz", arrays, {**config, "input_size": 10**7}), "weights/rnn/kernel")
    assert "(10000008, 32)" in message
    cell = config["layers"][0]["config"]["cell"]
    variant = replaced(
        config, ("layers", 0, "config", "cell"), {**cell, "config": {**cell["config"], "num_units": 10**6}}
    )
    refused(write(tmp_path / "units.npz", arrays, variant), "shape")


# -- memory ---------------------------------------------------------------------------


MEMORY_PROBE = r"""
import json, os, resource, sys, tracemalloc
import numpy as np
import rnnrs

path = sys.argv[1]
size = os.path.getsize(path)
allowed = 32 * 2**20 + 16 * size
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
hard = resource.getrlimit(resource.RLIMIT_AS)[1]
limit = vm + allowed + 256 * 2**20  # slack for the allocator's arenas
resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
tracemalloc.start()
try:
    rnnrs.load_model(path)
    outcome = "loaded"
except ValueError as e:
    outcome = "ValueError: " + str(e)
except MemoryError as e:
    outcome = "MemoryError: " + str(e)
print(json.dumps({"outcome": outcome, "peak": tracemalloc.get_traced_memory()[1], "allowed": allowed, "size": size}))
"""


def probe_memory(path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(path)], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def zeros_member(name, shape):
    """A deflated .npy member of float32 zeros of ``shape``, built without holding
    the zeros: full-flushed deflate blocks of zeros repeat byte for byte."""
    import io

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": shape})
    header = head.getvalue()
    total = int(np.prod(shape)) * 4
    chunk = 1 << 24
    assert total % chunk == 0
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = co.compress(header) + co.flush(zlib.Z_FULL_FLUSH)
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(chunk)
    block = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(header)
    for _ in range(total // chunk):
        crc = zlib.crc32(zeros, crc)
    data = start + block * (total // chunk) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    return (name + ".npy", zipfile.ZIP_DEFLATED, data, crc, len(header) + total, 0)


@pytest.fixture(scope="module")
def bombs(saved, tmp_path_factory):
    """Files of about 1 MB whose arrays decompress to 1 GB of zeros."""
    folder = tmp_path_factory.mktemp("bombs")
    _, arrays, config, _, _ = saved["classifier"]
    small = {k: npy_bytes(v) for k, v in arrays.items() if not k.startswith("optimizer/")}

    def plain(name):
        raw = small[name]
        return (name + ".npy", zipfile.ZIP_DEFLATED, deflated(raw), zlib.crc32(raw), len(raw), 0)

    # The configuration agrees with the huge kernel: BasicLSTMCell(8) reading 2**23 - 8 features
    # has a kernel [2**23, 32] of float32, 1 GiB. Only the budget can refuse it.
    consistent = copy.deepcopy(config)
    consistent["compile"] = None
    consistent["input_size"] = 2**23 - 8
    cfg = npy_bytes(np.array(json.dumps(consistent)))
    members = [(CONFIG + ".npy", zipfile.ZIP_DEFLATED, deflated(cfg), zlib.crc32(cfg), len(cfg), 0)]
    members += [plain(k) for k in ("weights/rnn/bias", "weights/dense/kernel", "weights/dense/bias")]
    members.append(zeros_member("weights/rnn/kernel", (2**23, 32)))
    agreeing = folder / "agreeing_bomb.npz"
    agreeing.write_bytes(raw_zip(members))
    # The configuration says 4 features: the kernel's header disagrees.
    plain_cfg = {k: v for k, v in small.items()}
    members = [plain(k) for k in plain_cfg if k != "weights/rnn/kernel"]
    members.append(zeros_member("weights/rnn/kernel", (2**23, 32)))
    disagreeing = folder / "disagreeing_bomb.npz"
    disagreeing.write_bytes(raw_zip(members))
    return agreeing, disagreeing


def test_a_small_file_that_decompresses_to_a_gigabyte_is_refused_before_decompressing(bombs):
    for path in bombs:
        assert os.path.getsize(path) < 2 * 2**20
        result = probe_memory(path)
        assert result["outcome"].startswith("ValueError: path: "), result
        assert "max_bytes" in result["outcome"], result  # refused by the budget, before any header is read
        assert result["peak"] <= result["allowed"], result


def test_input_size_of_ten_million_costs_no_memory(saved, tmp_path):
    _, arrays, config, _, _ = saved["classifier"]
    path = write(tmp_path / "big.npz", arrays, {**config, "input_size": 10**7})
    result = probe_memory(path)
    assert result["outcome"].startswith("ValueError: path: "), result
    assert result["peak"] <= result["allowed"], result
    assert result["peak"] < 4 * 2**20, result  # the declared kernel would take 1.28 GB


def test_a_graph_declaring_huge_layers_costs_no_memory(saved, tmp_path):
    """A functional model's layers are built from the stored arrays before the
    graph is replayed: a Dense of 10**8 units with no stored weights is refused
    without allocating them."""
    _, arrays, config, _, _ = saved["functional"]
    layers = copy.deepcopy(config["layers"])
    index = next(i for i, layer in enumerate(layers) if layer["class_name"] == "Dense")
    layers[index]["config"]["units"] = 10**8
    name = layers[index]["config"]["name"]
    kept = {k: v for k, v in arrays.items() if not k.startswith(f"weights/{name}/") and f"/{name}/" not in k}
    path = write(tmp_path / "huge.npz", kept, {**config, "layers": layers})
    result = probe_memory(path)
    assert result["outcome"].startswith("ValueError: path: "), result
    assert result["peak"] < 4 * 2**20, result


def test_graph_references_are_checked(saved, tmp_path):
    """Nodes may only read inputs and earlier nodes' outputs, name existing layers, and use every layer."""
    _, arrays, config, _, _ = saved["functional"]
    nodes = config["nodes"]
    cases = {
        "a later node": {**config, "nodes": [{**nodes[0], "inputs": [["node", 5, 0]]}] + nodes[1:]},
        "itself": {**config, "nodes": [{**nodes[0], "inputs": [["node", 0, 0]]}] + nodes[1:]},
        "a missing output": {**config, "outputs": [["node", 0, 7]]},
        "an unknown kind": {**config, "outputs": [["layer", 0, 0]]},
        "a missing layer": {**config, "nodes": [{**nodes[0], "layer": 99}] + nodes[1:]},
        "an unused layer": {**config, "nodes": nodes[:-1], "outputs": [["node", len(nodes) - 2, 0]]},
        "a shape that does not connect": {**config, "nodes": [{**nodes[0], "inputs": [["input", 1, 0]]}] + nodes[1:]},
    }
    for what, variant in cases.items():
        message = refused(write(tmp_path / "graph.npz", arrays, variant))
        assert "nodes" in message or "outputs" in message or "layers" in message or "weights" in message, (
            what,
            message,
        )


def test_a_lying_member_size_is_refused(saved, tmp_path):
    """A member declaring fewer bytes than its header's array (or more) is refused from the header."""
    _, arrays, config, _, _ = saved["classifier"]
    members = []
    for k, v in arrays.items():
        raw = npy_bytes(v)
        size = len(raw) - 4 if k == "weights/rnn/kernel" else len(raw)
        members.append((k + ".npy", zipfile.ZIP_DEFLATED, deflated(raw), zlib.crc32(raw), size, 0))
    path = tmp_path / "lying.npz"
    path.write_bytes(raw_zip(members))
    refused(path, "weights/rnn/kernel")


def test_many_members_cost_little_memory(saved, tmp_path):
    """A central directory of 20,000 entries is refused within the memory bound."""
    _, arrays, _, _, _ = saved["classifier"]
    raw = npy_bytes(arrays["weights/dense/bias"])
    data = deflated(raw)
    entries = [(f"weights/x/{i}.npy", zipfile.ZIP_DEFLATED, data, zlib.crc32(raw), len(raw), 0) for i in range(20_000)]
    path = tmp_path / "many.npz"
    path.write_bytes(raw_zip(entries))
    result = probe_memory(path)
    assert result["outcome"].startswith("ValueError: path: "), result
    assert result["peak"] <= result["allowed"], result


def test_max_bytes_raises_or_lowers_the_budget(saved, tmp_path):
    path, _, _, model, x = saved["classifier"]
    refused(path, "max_bytes", max_bytes=1000)
    np.testing.assert_array_equal(rnnrs.load_model(path, max_bytes=10**6).predict(x), model.predict(x))
    with raises_naming(ValueError, "max_bytes"):
        rnnrs.load_model(path, max_bytes=0)
    with raises_naming(TypeError, "max_bytes"):
        rnnrs.load_model(path, max_bytes=1.5)


# -- round trips still work; the file's name ---------------------------------------------


def test_every_saved_model_still_loads(saved):
    for kind, (path, _, _, model, x) in saved.items():
        loaded = rnnrs.load_model(path)
        got, want = loaded.predict(x), model.predict(x)
        if isinstance(want, list):  # a model with several outputs
            assert isinstance(got, list) and len(got) == len(want), kind
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a, b, err_msg=kind)
        else:
            np.testing.assert_array_equal(got, want, err_msg=kind)
        assert loaded.optimizer.get_state().keys() == model.optimizer.get_state().keys()


def test_save_and_load_name_path(saved, tmp_path):
    """save(<a directory>) used to fail in os.replace with an OSError not naming path."""
    model = saved["classifier"][3]
    with raises_naming(ValueError, "path") as info:
        model.save(tmp_path)
    assert "directory" in str(info.value)
    with raises_naming(TypeError, "path"):
        model.save(123)
    with raises_naming(TypeError, "path"):
        model.save(b"model.npz")
    with pytest.raises(FileNotFoundError, match="path"):
        model.save(tmp_path / "no" / "such" / "m.npz")
    with raises_naming(ValueError, "path"):
        model.save("")
    assert not os.listdir(tmp_path)
    with raises_naming(ValueError, "path") as info:
        rnnrs.load_model(tmp_path)
    assert "directory" in str(info.value)
    with raises_naming(TypeError, "path"):
        rnnrs.load_model(None)
    with pytest.raises(FileNotFoundError):
        rnnrs.load_model(tmp_path / "missing.npz")


def test_loss_and_metric_classes_come_from_fixed_lists(saved, tmp_path):
    """A saved loss or metric names its class; only rnnrs's own loss and metric classes are built."""
    _, arrays, config, model, x = saved["objects"]
    assert rnnrs.load_model(write(tmp_path / "same.npz", arrays, config)).evaluate(x, (np.arange(12) % 2)[:, None])
    for where, bad in (
        ("loss", {"class_name": "Loss", "config": {}}),
        ("loss", {"class_name": "load_model", "config": {}}),
        ("loss", {"class_name": "BinaryCrossentropy", "config": {"from_logits": "yes"}}),
        ("loss", {"class_name": "Huber", "config": {"delta": [[1]]}}),
        ("metrics", [{"class_name": "Metric", "config": {}}]),
        ("metrics", [{"class_name": "AUC", "config": {"num_thresholds": -3}}]),
        ("metrics", [{"class_name": "AUC", "config": {"num_thresholds": 10**30}}]),  # was a hang, then OOM
        ("metrics", [{"class_name": "Precision", "config": {"thresholds": [0.1, 0.2]}}]),
        ("metrics", [{"class_name": "__builtins__"}]),
    ):
        variant = replaced(config, ("compile", where), bad)
        refused(write(tmp_path / "bad.npz", arrays, variant), "compile")


def test_layer_state_members_are_checked(saved, tmp_path):
    """``state/<layer>/<key>`` (a Dropout's generator position) must be a small
    uint64 array a layer of the model accepts."""
    _, arrays, config, _, _ = saved["layers"]
    key = next(k for k in arrays if k.startswith("state/"))
    good = arrays[key]
    cases = {
        "dtype": {**arrays, key: good.astype(np.float64)},
        "at most": {**arrays, key: np.zeros(10**4, np.uint64)},
        "layer in": {**{k: v for k, v in arrays.items() if k != key}, "state/nowhere/generator": good},
        "PCG64": {**arrays, key: np.where(np.arange(6) == 3, 2, good).astype(np.uint64)},
        "6 uint64 words": {**arrays, key: good[:4]},
    }
    for needle, members in cases.items():
        refused(write(tmp_path / "state.npz", members, config), needle)
    assert load_or_refuse(write(tmp_path / "ok.npz", arrays, config)) is not None
