"""TF 1.x checkpoints without TensorFlow (``rnnrs.convert.*tf1_checkpoint``).

The fixtures under ``tests/fixtures/tf1/`` were written by real TensorFlow
(``scripts/make_tf1_fixtures.py``, ``tf.compat.v1`` graph mode and
``Saver``); each holds TensorFlow's outputs and final states on a fixed
ragged batch. This file never imports TensorFlow.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnnrs
from helpers import raises_naming
from rnnrs import _rnnrs
from rnnrs.convert import from_tf1_checkpoint, list_tf1_checkpoint, tf1_names, to_tf1_checkpoint
from rnnrs.convert import tf1_checkpoint as tc

FIXTURES = Path(__file__).parent / "fixtures" / "tf1"

# case → (rnnrs object factory, scope TF ran under)
CASES = {
    "basic_rnn": (lambda: rnnrs.BasicRNNCell(5), "rnn"),
    "basic_rnn_f64_scope": (lambda: rnnrs.BasicRNNCell(4, dtype=np.float64), "encoder"),
    "basic_lstm": (lambda: rnnrs.BasicLSTMCell(4), "rnn"),
    "lstm_peephole_proj": (
        lambda: rnnrs.LSTMCell(4, use_peepholes=True, cell_clip=1.5, num_proj=3, proj_clip=0.8),
        "rnn",
    ),
    "gru": (lambda: rnnrs.GRUCell(4), "rnn"),
    "cudnn_gru": (lambda: rnnrs.GRUCell(4, reset_after=True), "rnn"),
    "multi": (
        lambda: rnnrs.MultiRNNCell([rnnrs.DropoutWrapper(rnnrs.BasicLSTMCell(4)), rnnrs.GRUCell(3)]),
        "rnn",
    ),
    "output_projection": (lambda: rnnrs.OutputProjectionWrapper(rnnrs.BasicRNNCell(5), 2), "rnn"),
    "bidirectional": (
        lambda: (rnnrs.GRUCell(3), rnnrs.LSTMCell(4, use_peepholes=True)),
        "bidirectional_rnn",
    ),
}


def _expected(case):
    with np.load(FIXTURES / case / "expected.npz") as f:
        return {k: f[k] for k in f.files}


def _weights(obj):
    """Every weight of a cell or pair, by rnnrs name (a pair's as fw/…, bw/…)."""
    if isinstance(obj, tuple):
        return {f"{d}/{k}": v for d, c in zip(("fw", "bw"), obj) for k, v in c.get_weights().items()}
    return obj.get_weights()


def _leaves(prefix, state):
    if isinstance(state, rnnrs.LSTMStateTuple):
        return {f"{prefix}/c": state.c, f"{prefix}/h": state.h}
    if isinstance(state, tuple):
        out = {}
        for i, s in enumerate(state):
            out.update(_leaves(f"{prefix}/cell_{i}", s))
        return out
    return {prefix: state}


def _run(obj, inputs, lengths):
    """rnnrs's results named as the fixture names TensorFlow's."""
    if isinstance(obj, tuple):
        (o_fw, o_bw), (s_fw, s_bw) = rnnrs.bidirectional_dynamic_rnn(obj[0], obj[1], inputs, sequence_length=lengths)
        return {"outputs_fw": o_fw, "outputs_bw": o_bw, **_leaves("state_fw", s_fw), **_leaves("state_bw", s_bw)}
    outputs, state = rnnrs.dynamic_rnn(obj, inputs, sequence_length=lengths)
    return {"outputs": outputs, **_leaves("state", state)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tensorflow_fixture_loads_and_matches_tensorflow(case):
    """Pins the name mapping against what real TensorFlow wrote: every
    trainable variable lands bitwise on the rnnrs weight ``tf1_names`` maps
    it to, and ``dynamic_rnn`` then reproduces TensorFlow's outputs and final
    states (1e-5) on a ragged batch with lengths 0 and T."""
    make, scope = CASES[case]
    want = _expected(case)
    obj = make()
    from_tf1_checkpoint(FIXTURES / case, obj)
    names = tf1_names(obj, scope)
    tf_vars = {k[len("var/") :]: v for k, v in want.items() if k.startswith("var/")}
    assert sorted(names.values()) == sorted(tf_vars)
    got = _weights(obj)
    for ours, theirs in names.items():
        assert got[ours].dtype == tf_vars[theirs].dtype
        np.testing.assert_array_equal(got[ours], tf_vars[theirs], err_msg=f"{ours} <- {theirs}")
    results = _run(obj, want["inputs"], want["sequence_length"])
    expected = {k: v for k, v in want.items() if k.startswith(("outputs", "state"))}
    assert sorted(results) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(results[key], value, rtol=0, atol=1e-5, err_msg=key)


def test_listing_shows_every_variable_and_extras_are_ignored():
    """``list_tf1_checkpoint`` shows optimizer slots and ``global_step`` (int64)
    too; loading ignores them."""
    listed = list_tf1_checkpoint(FIXTURES / "cudnn_gru")
    assert listed == sorted(listed)
    as_dict = {n: (d, s) for n, d, s in listed}
    assert as_dict["global_step"] == ("int64", ())
    assert as_dict["rnn/cudnn_compatible_gru_cell/gates/kernel"] == ("float32", (7, 8))
    assert as_dict["rnn/cudnn_compatible_gru_cell/gates/kernel/Adam"] == ("float32", (7, 8))
    assert as_dict["rnn/cudnn_compatible_gru_cell/candidate/input_projection/kernel"] == ("float32", (3, 4))
    assert len(listed) == 21


@pytest.mark.parametrize("form", ["directory", "prefix", "index", "data", "pathlib"])
def test_path_forms(form):
    """``path`` may be the directory, the prefix, the .index file or a data file."""
    folder = FIXTURES / "basic_rnn"
    path = {
        "directory": str(folder),
        "prefix": str(folder / "model.ckpt"),
        "index": str(folder / "model.ckpt.index"),
        "data": str(folder / "model.ckpt.data-00000-of-00001"),
        "pathlib": folder / "model.ckpt",
    }[form]
    cell = rnnrs.BasicRNNCell(5)
    from_tf1_checkpoint(path, cell)
    np.testing.assert_array_equal(cell.get_weights()["kernel"], _expected("basic_rnn")["var/rnn/basic_rnn_cell/kernel"])


def test_directory_whose_checkpoint_file_has_a_moved_absolute_path(tmp_path):
    """TensorFlow writes absolute paths into ``checkpoint`` by default: a moved
    directory is still read (the named checkpoint is looked for beside it)."""
    shutil.copytree(FIXTURES / "basic_rnn", tmp_path / "moved")
    (tmp_path / "moved" / "checkpoint").write_text('model_checkpoint_path: "/nowhere/else/model.ckpt"\n')
    cell = rnnrs.BasicRNNCell(5)
    from_tf1_checkpoint(tmp_path / "moved", cell)
    assert cell.built


def test_explicit_and_wrong_scope():
    """``scope=`` selects the prefix; a scope without the variables raises and changes nothing."""
    cell = rnnrs.BasicRNNCell(4, dtype=np.float64)
    from_tf1_checkpoint(FIXTURES / "basic_rnn_f64_scope", cell, scope="encoder")
    before = cell.get_weights()
    with raises_naming(ValueError, "path") as info:
        from_tf1_checkpoint(FIXTURES / "basic_rnn_f64_scope", cell, scope="decoder")
    assert "decoder/basic_rnn_cell/kernel" in str(info.value)
    for k, v in cell.get_weights().items():
        np.testing.assert_array_equal(v, before[k])


def test_rnn_layer():
    """An ``rnnrs.layers.RNN`` loads through its cell."""
    layer = rnnrs.layers.RNN(rnnrs.BasicLSTMCell(4))
    from_tf1_checkpoint(FIXTURES / "basic_lstm", layer)
    want = _expected("basic_lstm")
    np.testing.assert_array_equal(layer.cell.get_weights()["bias"], want["var/rnn/basic_lstm_cell/bias"])


def test_missing_variables_are_listed_and_nothing_changes():
    """A cell whose variables the checkpoint lacks: ValueError listing them; weights unchanged."""
    cell = rnnrs.BasicLSTMCell(5)
    cell.build(3)
    before = cell.get_weights()
    with raises_naming(ValueError, "path") as info:
        from_tf1_checkpoint(FIXTURES / "basic_rnn", cell)
    assert "rnn/basic_lstm_cell/kernel" in str(info.value) and "rnn/basic_lstm_cell/bias" in str(info.value)
    for k, v in cell.get_weights().items():
        np.testing.assert_array_equal(v, before[k])


def test_wrong_shape_and_dtype_change_nothing():
    """A built cell of another size, or of another dtype, is refused before anything is set."""
    for cell in (rnnrs.BasicRNNCell(5), rnnrs.BasicRNNCell(5, dtype=np.float64)):
        cell.build(4)  # the fixture's input size is 3
        before = cell.get_weights()
        with raises_naming(ValueError, "path"):
            from_tf1_checkpoint(FIXTURES / "basic_rnn", cell)
        for k, v in cell.get_weights().items():
            np.testing.assert_array_equal(v, before[k])
    with raises_naming(ValueError, "path") as info:
        from_tf1_checkpoint(FIXTURES / "basic_rnn_f64_scope", rnnrs.BasicRNNCell(4))
    assert "float64" in str(info.value)
    # an unbuilt cell of the wrong size fails in set_weights' validation
    with raises_naming(ValueError, "path"):
        from_tf1_checkpoint(FIXTURES / "basic_rnn", rnnrs.BasicRNNCell(6))


def test_pair_is_all_or_nothing():
    """A pair whose backward cell does not fit leaves the forward cell unchanged too."""
    fw, bw = rnnrs.GRUCell(3), rnnrs.LSTMCell(4, use_peepholes=True)
    fw.build(3)
    bw.build(5)  # wrong input size
    before = fw.get_weights()
    with raises_naming(ValueError, "path"):
        from_tf1_checkpoint(FIXTURES / "bidirectional", (fw, bw))
    for k, v in fw.get_weights().items():
        np.testing.assert_array_equal(v, before[k])


def _random_object(kind, dtype, units, size, seed):
    rng = np.random.default_rng(seed)
    makers = {
        "basic_rnn": lambda: rnnrs.BasicRNNCell(units, dtype=dtype),
        "basic_lstm": lambda: rnnrs.BasicLSTMCell(units, dtype=dtype),
        "lstm": lambda: rnnrs.LSTMCell(units, use_peepholes=True, num_proj=2, dtype=dtype),
        "gru": lambda: rnnrs.GRUCell(units, dtype=dtype),
        "gru_reset_after": lambda: rnnrs.GRUCell(units, reset_after=True, dtype=dtype),
        "multi": lambda: rnnrs.MultiRNNCell(
            [rnnrs.BasicRNNCell(units, dtype=dtype) for _ in range(40)] + [rnnrs.GRUCell(units, dtype=dtype)]
        ),
        "projection": lambda: rnnrs.OutputProjectionWrapper(rnnrs.BasicLSTMCell(units, dtype=dtype), 3),
        "pair": lambda: (rnnrs.BasicLSTMCell(units, dtype=dtype), rnnrs.GRUCell(units, reset_after=True, dtype=dtype)),
    }
    obj = makers[kind]()
    for cell in obj if isinstance(obj, tuple) else (obj,):
        cell.build(size)
        cell.set_weights({k: rng.standard_normal(v.shape) for k, v in cell.get_weights().items()})
    return obj, makers[kind]


@given(
    kind=st.sampled_from(["basic_rnn", "basic_lstm", "lstm", "gru", "gru_reset_after", "multi", "projection", "pair"]),
    dtype=st.sampled_from([np.float32, np.float64]),
    units=st.integers(1, 5),
    size=st.integers(0, 4),
    seed=st.integers(0, 2**16),
    scope=st.sampled_from([None, "", "rnn", "encoder/layer_1"]),
)
def test_round_trip_is_bitwise(tmp_path_factory, kind, dtype, units, size, seed, scope):
    """rnnrs → to_tf1_checkpoint → from_tf1_checkpoint gives every weight back
    bit for bit, into an unbuilt object (built from the checkpoint), under any
    scope (auto-detected). The 41-layer stack needs several data blocks."""
    folder = tmp_path_factory.mktemp("ckpt")
    obj, make = _random_object(kind, dtype, units, size, seed)
    prefix = to_tf1_checkpoint(obj, folder / "model.ckpt", scope=scope)
    assert prefix == str(folder / "model.ckpt")
    fresh = make()
    from_tf1_checkpoint(folder, fresh)
    want, got = _weights(obj), _weights(fresh)
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].dtype == want[k].dtype
        assert got[k].tobytes() == want[k].tobytes(), k
    listed = list_tf1_checkpoint(folder)
    names = tf1_names(obj, scope)
    assert sorted(n for n, _, _ in listed) == sorted(names.values())
    assert all(d == np.dtype(dtype).name for _, d, _ in listed)


@pytest.mark.parametrize("case", ["basic_rnn", "basic_lstm", "lstm_peephole_proj", "multi", "bidirectional"])
def test_written_data_file_equals_tensorflows(tmp_path, case):
    """The data file ``to_tf1_checkpoint`` writes for TensorFlow's weights is
    byte for byte the one TensorFlow wrote, and the listing (names, dtypes,
    shapes) is the same."""
    make, scope = CASES[case]
    obj = make()
    from_tf1_checkpoint(FIXTURES / case, obj)
    to_tf1_checkpoint(obj, tmp_path / "model.ckpt", scope=scope)
    ours = (tmp_path / "model.ckpt.data-00000-of-00001").read_bytes()
    theirs = (FIXTURES / case / "model.ckpt.data-00000-of-00001").read_bytes()
    assert ours == theirs
    assert list_tf1_checkpoint(tmp_path) == list_tf1_checkpoint(FIXTURES / case)


def test_crc32c_known_values():
    """The Rust edge's CRC-32C (unmasked) and the masked form stored in files."""
    assert _rnnrs.crc32c(b"") == 0
    assert _rnnrs.crc32c(b"123456789") == 0xE3069283
    assert _rnnrs.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4 test vector
    assert _rnnrs.crc32c(bytes(range(32))) == 0x46DD794E
    big = np.random.default_rng(0).bytes(1 << 17)  # the GIL-released path
    assert _rnnrs.crc32c(big) == _rnnrs.crc32c(big[: 1 << 16] + big[1 << 16 :])
    crc = _rnnrs.crc32c(b"abc")
    assert tc.masked_crc32c(b"abc") == ((((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


# -- damaged files ---------------------------------------------------------------------
def _load_or_refuse(folder, original):
    """Loading a damaged copy either raises ValueError naming ``path`` or
    gives exactly the original weights."""
    cell = rnnrs.BasicRNNCell(5)
    try:
        from_tf1_checkpoint(folder, cell)
    except ValueError as e:
        message = str(e)
        assert message.startswith("path:") and "expected" in message and "got" in message, message
        assert not cell.built
        return False
    for k, v in cell.get_weights().items():
        np.testing.assert_array_equal(v, original[k])
    return True


def _damageable_copy(tmp_path, which):
    """The basic_rnn fixture's weights, and a copy of it whose file ``which`` the test damages (path, bytes)."""
    original = rnnrs.BasicRNNCell(5)
    from_tf1_checkpoint(FIXTURES / "basic_rnn", original)
    shutil.copytree(FIXTURES / "basic_rnn", tmp_path / "c")
    target = tmp_path / "c" / which
    return original.get_weights(), target, target.read_bytes()


@pytest.mark.parametrize("which", ["model.ckpt.index", "model.ckpt.data-00000-of-00001"])
def test_truncation_at_every_offset_is_refused(tmp_path, which):
    """Every truncation of either file is refused with ValueError naming path."""
    weights, target, data = _damageable_copy(tmp_path, which)
    for cut in range(len(data)):
        target.write_bytes(data[:cut])
        assert not _load_or_refuse(tmp_path / "c", weights), f"truncated at {cut} loaded"
        if which.endswith(".index"):
            with pytest.raises(ValueError, match="^path:"):
                list_tf1_checkpoint(tmp_path / "c")


@pytest.mark.parametrize("which", ["model.ckpt.index", "model.ckpt.data-00000-of-00001"])
@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_flipped_bytes_are_refused_or_harmless(tmp_path, which, mask):
    """Flipping any byte (any of three bit patterns) of either file: ValueError
    naming path, or (only where the byte is padding) the original weights.
    Every byte of the data file and every block byte of the index is covered
    by a checksum."""
    weights, target, data = _damageable_copy(tmp_path, which)
    loaded = []
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= mask
        target.write_bytes(bytes(damaged))
        if _load_or_refuse(tmp_path / "c", weights):
            loaded.append(i)
    if which.endswith(".data-00000-of-00001"):
        assert loaded == []
    else:
        # only the footer (block handles, then zero padding up to the magic) is
        # unchecked: a flip there either moves a handle (refused) or touches
        # padding (or makes a handle's varint non-canonical: the same value)
        assert loaded and all(len(data) - 48 <= i < len(data) - 8 for i in loaded), loaded


@given(st.binary(max_size=300))
def test_random_index_files_never_crash(tmp_path_factory, junk):
    """Arbitrary bytes as an index file: ValueError naming path, nothing else."""
    folder = tmp_path_factory.mktemp("junk")
    (folder / "model.ckpt.index").write_bytes(junk)
    (folder / "model.ckpt.data-00000-of-00001").write_bytes(junk)
    with pytest.raises(ValueError, match="^path:"):
        list_tf1_checkpoint(folder / "model.ckpt")
    with pytest.raises(ValueError, match="^path:"):
        from_tf1_checkpoint(folder / "model.ckpt", rnnrs.BasicRNNCell(2))


def _write_index(folder, entries):
    header = tc._field(1, 0, tc._put_varint(1))
    table = tc._table_bytes([(b"", header)] + sorted(entries))
    (folder / "model.ckpt.index").write_bytes(table)


def _entry(dtype_code, shape, offset, size, crc=0):
    dims = b"".join(
        tc._field(2, 2, tc._put_varint(len(d)) + d) for d in (tc._field(1, 0, tc._put_varint(n)) for n in shape)
    )
    return (
        tc._field(1, 0, tc._put_varint(dtype_code))
        + tc._field(2, 2, tc._put_varint(len(dims)) + dims)
        + tc._field(4, 0, tc._put_varint(offset))
        + tc._field(5, 0, tc._put_varint(size))
        + tc._field(6, 5, crc.to_bytes(4, "little"))
    )


def test_absurd_sizes_are_refused_without_allocating(tmp_path):
    """Well-formed index entries that claim huge tensors, sizes that do not
    match their shape, ranges past the data file, a shard that does not
    exist, or a dtype that cannot be loaded: ValueError naming path."""
    (tmp_path / "model.ckpt.data-00000-of-00001").write_bytes(bytes(180))
    huge = 2**31
    bad = {
        "huge": _entry(1, (huge, huge), 0, huge * huge * 4),
        "mismatch": _entry(1, (8, 5), 0, 20),
        "outside": _entry(1, (8, 5), 100, 160),
        "string": _entry(7, (5,), 0, 20),
    }
    for what, proto in bad.items():
        kernel = proto
        bias = _entry(1, (5,), 160, 20, tc.masked_crc32c(bytes(20)))
        _write_index(tmp_path, [(b"rnn/basic_rnn_cell/kernel", kernel), (b"rnn/basic_rnn_cell/bias", bias)])
        cell = rnnrs.BasicRNNCell(5)
        with raises_naming(ValueError, "path"):
            from_tf1_checkpoint(tmp_path, cell)
        assert not cell.built, what
    # a shard beyond the header's count
    sharded = _entry(1, (5,), 0, 20) + tc._field(3, 0, tc._put_varint(3))
    _write_index(tmp_path, [(b"rnn/basic_rnn_cell/bias", sharded)])
    with raises_naming(ValueError, "path"):
        list_tf1_checkpoint(tmp_path)
    # a negative size (int64 two's complement in a varint)
    negative = _entry(1, (5,), 0, 2**64 - 20)
    _write_index(tmp_path, [(b"rnn/basic_rnn_cell/bias", negative)])
    with raises_naming(ValueError, "path"):
        list_tf1_checkpoint(tmp_path)


@pytest.mark.parametrize(
    ("value", "error"),
    [(123, TypeError), (b"model.ckpt", TypeError), (None, TypeError), ("", ValueError)],
)
def test_path_type_is_checked(value, error):
    with raises_naming(error, "path"):
        list_tf1_checkpoint(value)


def test_bad_paths(tmp_path):
    """Nothing there, an ambiguous directory, a V1-style single file."""
    with raises_naming(ValueError, "path"):
        list_tf1_checkpoint(tmp_path / "nothing")
    with raises_naming(ValueError, "path"):
        list_tf1_checkpoint(tmp_path)  # an empty directory
    for name in ("a", "b"):
        shutil.copy(FIXTURES / "basic_rnn" / "model.ckpt.index", tmp_path / f"{name}.index")
    with raises_naming(ValueError, "path"):
        list_tf1_checkpoint(tmp_path)
    (tmp_path / "v1.ckpt").write_bytes(b"\x00" * 64)
    with raises_naming(ValueError, "path"):
        list_tf1_checkpoint(tmp_path / "v1.ckpt")
    (tmp_path / "checkpoint").write_text("nonsense\n")
    with raises_naming(ValueError, "path"):
        list_tf1_checkpoint(tmp_path)


def test_objects_and_writer_arguments(tmp_path):
    """What cannot be named or written is refused with the argument named."""
    with raises_naming(TypeError, "obj"):
        tf1_names(object())
    with raises_naming(TypeError, "obj"):
        from_tf1_checkpoint(FIXTURES / "basic_rnn", [rnnrs.BasicRNNCell(5)])
    cell = rnnrs.BasicRNNCell(5)
    with raises_naming(ValueError, "obj"):
        from_tf1_checkpoint(FIXTURES / "basic_rnn", (cell, cell))
    with raises_naming(ValueError, "obj"):
        to_tf1_checkpoint(rnnrs.BasicRNNCell(5), tmp_path / "unbuilt.ckpt")
    cell.build(3)
    with raises_naming(ValueError, "path"):
        to_tf1_checkpoint(cell, tmp_path / "missing_dir" / "model.ckpt")
    with raises_naming(TypeError, "scope"):
        to_tf1_checkpoint(cell, tmp_path / "model.ckpt", scope=3)
    # no temporary file (write_atomically's ".rnnrs-*") left by the refused calls
    assert not any(p.name.startswith(".rnnrs-") for p in tmp_path.iterdir())


def test_checkpoint_state_file_names_the_written_checkpoint(tmp_path):
    """``to_tf1_checkpoint`` writes a relative ``checkpoint`` file, so the
    directory form of ``path`` finds the latest written checkpoint."""
    first, second = rnnrs.BasicRNNCell(2, seed=1), rnnrs.BasicRNNCell(2, seed=2)
    first.build(1)
    second.build(1)
    to_tf1_checkpoint(first, tmp_path / "a.ckpt")
    to_tf1_checkpoint(second, os.fspath(tmp_path / "b.ckpt") + ".index")
    assert (tmp_path / "checkpoint").read_text().startswith('model_checkpoint_path: "b.ckpt"')
    loaded = rnnrs.BasicRNNCell(2)
    from_tf1_checkpoint(tmp_path, loaded)
    np.testing.assert_array_equal(loaded.get_weights()["kernel"], second.get_weights()["kernel"])


def test_names_table():
    """The mapping rule of the docstring, spelled out for the wrappers."""
    stack = rnnrs.MultiRNNCell(
        [
            rnnrs.OutputProjectionWrapper(rnnrs.GRUCell(2, reset_after=True), 3),
            rnnrs.ResidualWrapper(rnnrs.DropoutWrapper(rnnrs.LSTMCell(3, num_proj=3))),
        ]
    )
    gru = "rnn/multi_rnn_cell/cell_0/output_projection_wrapper/cudnn_compatible_gru_cell"
    assert tf1_names(stack) == {
        "cell_0/gates/kernel": f"{gru}/gates/kernel",
        "cell_0/gates/bias": f"{gru}/gates/bias",
        "cell_0/candidate/input_kernel": f"{gru}/candidate/input_projection/kernel",
        "cell_0/candidate/hidden_kernel": f"{gru}/candidate/hidden_projection/kernel",
        "cell_0/candidate/input_bias": f"{gru}/candidate/input_projection/bias",
        "cell_0/candidate/hidden_bias": f"{gru}/candidate/hidden_projection/bias",
        "cell_0/output_projection/kernel": "rnn/multi_rnn_cell/cell_0/output_projection_wrapper/kernel",
        "cell_0/output_projection/bias": "rnn/multi_rnn_cell/cell_0/output_projection_wrapper/bias",
        "cell_1/kernel": "rnn/multi_rnn_cell/cell_1/lstm_cell/kernel",
        "cell_1/bias": "rnn/multi_rnn_cell/cell_1/lstm_cell/bias",
        "cell_1/projection/kernel": "rnn/multi_rnn_cell/cell_1/lstm_cell/projection/kernel",
    }
    assert tf1_names((rnnrs.BasicRNNCell(1), rnnrs.BasicRNNCell(1)), scope="birnn/") == {
        "fw/kernel": "birnn/fw/basic_rnn_cell/kernel",
        "fw/bias": "birnn/fw/basic_rnn_cell/bias",
        "bw/kernel": "birnn/bw/basic_rnn_cell/kernel",
        "bw/bias": "birnn/bw/basic_rnn_cell/bias",
    }


def test_pair_dtype_is_checked_per_cell():
    """Each cell of a pair is checked against its own dtype (float32 fixture, float64 backward cell)."""
    fw, bw = rnnrs.GRUCell(3), rnnrs.LSTMCell(4, use_peepholes=True, dtype=np.float64)
    with raises_naming(ValueError, "path") as info:
        from_tf1_checkpoint(FIXTURES / "bidirectional", (fw, bw))
    assert "bidirectional_rnn/bw/lstm_cell" in str(info.value) and "float64" in str(info.value)
    assert not fw.built and not bw.built


def test_oversized_index_is_refused_unread(monkeypatch):
    """An index file beyond the size limit is refused before it is read."""
    monkeypatch.setattr(tc, "_MAX_INDEX", 100)
    with raises_naming(ValueError, "path") as info:
        list_tf1_checkpoint(FIXTURES / "basic_rnn")
    assert "larger than 100 bytes" in str(info.value)


def test_ambiguous_scope_is_refused_and_a_layer_can_be_picked(tmp_path):
    """A lone cell matches both layers of a stacked checkpoint: scope=None
    raises ValueError naming scope; ``scope=`` picks one layer."""
    stack = rnnrs.MultiRNNCell([rnnrs.BasicRNNCell(3, seed=1), rnnrs.BasicRNNCell(3, seed=2)])
    stack.build(3)
    to_tf1_checkpoint(stack, tmp_path / "model.ckpt")
    with raises_naming(ValueError, "scope") as info:
        from_tf1_checkpoint(tmp_path, rnnrs.BasicRNNCell(3))
    assert "rnn/multi_rnn_cell/cell_0" in str(info.value) and "rnn/multi_rnn_cell/cell_1" in str(info.value)
    layer = rnnrs.BasicRNNCell(3)
    from_tf1_checkpoint(tmp_path, layer, scope="rnn/multi_rnn_cell/cell_1")
    np.testing.assert_array_equal(layer.get_weights()["kernel"], stack.get_weights()["cell_1/kernel"])


# -- checkpoint state files, header entry, .meta paths -------------------------------------------


def _one_cell_checkpoint(folder: Path, name: str) -> tuple[rnnrs.BasicRNNCell, str]:
    cell = rnnrs.BasicRNNCell(3, seed=4)
    cell.build(2)
    folder.mkdir(parents=True, exist_ok=True)
    return cell, to_tf1_checkpoint(cell, folder / name)


@pytest.mark.parametrize(
    "state",
    [
        'model_checkpoint_path: "{abs}"\nall_model_checkpoint_paths: "{abs}"\n',  # TensorFlow: raw UTF-8
        'model_checkpoint_path: "{octal}"\n',  # protobuf's ASCII form: octal escapes
    ],
    ids=["utf8", "octal"],
)
def test_directory_with_a_non_latin1_checkpoint_name(tmp_path, state):
    """Pins: the directory form read the 'checkpoint' file as Latin-1 and
    mangled a name such as 模型 into '??' (checkpoint not found); the
    text-proto escapes are undone on bytes, then UTF-8 decoded."""
    cell, prefix = _one_cell_checkpoint(tmp_path, "模型.ckpt-2")
    octal = "".join(f"\\{b:03o}" for b in prefix.encode("utf-8"))
    (tmp_path / "checkpoint").write_bytes(state.format(abs=prefix, octal=octal).encode("utf-8"))
    other = rnnrs.BasicRNNCell(3)
    from_tf1_checkpoint(tmp_path, other)
    np.testing.assert_array_equal(other.get_weights()["kernel"], cell.get_weights()["kernel"])


@pytest.mark.parametrize("name", ["模型", 'a"b\\c', "it's", "tab\there"])
def test_checkpoint_file_written_as_tensorflow_writes_it(tmp_path, name):
    """Pins: to_tf1_checkpoint's 'checkpoint' file is TensorFlow's text-proto
    form (raw UTF-8; \\\\, \", \\' and \\t escaped, as
    tf.train.update_checkpoint_state writes it) and the directory form reads
    it back, whatever the name."""
    cell, prefix = _one_cell_checkpoint(tmp_path, name)
    escaped = name.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'").replace("\t", "\\t")
    assert (tmp_path / "checkpoint").read_bytes().decode("utf-8").splitlines()[0] == (
        f'model_checkpoint_path: "{escaped}"'
    )
    other = rnnrs.BasicRNNCell(3)
    from_tf1_checkpoint(tmp_path, other)
    np.testing.assert_array_equal(other.get_weights()["bias"], cell.get_weights()["bias"])


def test_checkpoint_file_that_is_not_utf8_names_path(tmp_path):
    _one_cell_checkpoint(tmp_path, "m")
    (tmp_path / "checkpoint").write_bytes(b'model_checkpoint_path: "\\377m"\n')
    with raises_naming(ValueError, "^path"):
        from_tf1_checkpoint(tmp_path, rnnrs.BasicRNNCell(3))


def test_index_without_header_entry_is_refused(tmp_path):
    """Pins: an index whose first key is not the header's ('') was read as a
    checkpoint; TensorFlow's BundleReader refuses it, and so does rnnrs."""
    _, prefix = _one_cell_checkpoint(tmp_path, "m")
    entries = tc._table(Path(prefix + ".index").read_bytes())
    assert entries[0][0] == b""
    Path(prefix + ".index").write_bytes(tc._table_bytes(entries[1:]))
    with raises_naming(ValueError, "^path") as info:
        list_tf1_checkpoint(prefix)
    assert "header" in str(info.value)
    with raises_naming(ValueError, "^path"):
        from_tf1_checkpoint(prefix, rnnrs.BasicRNNCell(3))
    Path(prefix + ".index").write_bytes(tc._table_bytes([]))  # no entry at all
    with raises_naming(ValueError, "^path"):
        list_tf1_checkpoint(prefix)


def test_meta_path_reads_its_v2_checkpoint(tmp_path):
    """Pins: '<prefix>.meta' (the graph Saver writes next to a V2
    checkpoint) was refused as a V1 checkpoint; it names the checkpoint
    <prefix>. A .meta without its .index is still refused."""
    cell, prefix = _one_cell_checkpoint(tmp_path, "model.ckpt-7")
    Path(prefix + ".meta").write_bytes(b"graph")
    other = rnnrs.BasicRNNCell(3)
    from_tf1_checkpoint(prefix + ".meta", other)
    np.testing.assert_array_equal(other.get_weights()["kernel"], cell.get_weights()["kernel"])
    assert [n for n, _, _ in list_tf1_checkpoint(Path(prefix + ".meta"))] == [
        "rnn/basic_rnn_cell/bias",
        "rnn/basic_rnn_cell/kernel",
    ]
    (tmp_path / "lone.meta").write_bytes(b"graph")
    with raises_naming(ValueError, "^path"):
        from_tf1_checkpoint(tmp_path / "lone.meta", rnnrs.BasicRNNCell(3))
