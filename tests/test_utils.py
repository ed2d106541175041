"""``rnnrs.utils.pad_sequences`` (Keras' semantics: defaults, pre/post padding and
truncation, vectors per step) and ``sequence_lengths`` (the ``sequence_length`` that
goes with post padding); bad arguments are named."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnnrs
from helpers import raises_naming
from rnnrs.utils import pad_sequences, sequence_lengths

SEQS = [[1, 2, 3], [4, 5], [], [6, 7, 8, 9, 10]]


def test_keras_defaults_pad_and_truncate_at_the_front():
    x = pad_sequences(SEQS)
    assert x.dtype == np.int32 and x.shape == (4, 5)
    np.testing.assert_array_equal(x, [[0, 0, 1, 2, 3], [0, 0, 0, 4, 5], [0, 0, 0, 0, 0], [6, 7, 8, 9, 10]])
    np.testing.assert_array_equal(pad_sequences(SEQS, maxlen=3)[3], [8, 9, 10])  # "pre" drops the first steps


def test_post_padding_and_truncation_and_value():
    x = pad_sequences(SEQS, maxlen=3, padding="post", truncating="post", value=-1, dtype="int64")
    assert x.dtype == np.int64
    np.testing.assert_array_equal(x, [[1, 2, 3], [4, 5, -1], [-1, -1, -1], [6, 7, 8]])
    np.testing.assert_array_equal(pad_sequences(SEQS, maxlen=3, padding="post")[3], [8, 9, 10])
    np.testing.assert_array_equal(pad_sequences(SEQS, maxlen=4, truncating="post")[3], [6, 7, 8, 9])


def test_vectors_per_step_floats_and_empty_inputs():
    seqs = [np.ones((2, 3)), np.zeros((0, 3)), np.full((4, 3), 2.0)]
    x = pad_sequences(seqs, dtype=np.float32, padding="post", value=0.5)
    assert x.shape == (3, 4, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0, :2], 1.0)
    np.testing.assert_array_equal(x[0, 2:], 0.5)
    np.testing.assert_array_equal(x[1], 0.5)
    assert pad_sequences([]).shape == (0, 0)
    assert pad_sequences([[], []]).shape == (2, 0)
    assert pad_sequences(SEQS, maxlen=0).shape == (4, 0)
    assert pad_sequences(np.arange(6).reshape(2, 3), maxlen=4).tolist() == [[0, 0, 1, 2], [0, 3, 4, 5]]
    assert pad_sequences(([1], (2, 3))).tolist() == [[0, 1], [2, 3]]  # a tuple of sequences
    with raises_naming(TypeError, "sequences"):
        pad_sequences(s for s in SEQS)  # as in Keras, a sized collection (a generator has no length)
    assert rnnrs.utils.pad_sequences is pad_sequences


def test_sequence_lengths_match_post_padding_for_a_model():
    lengths = sequence_lengths(SEQS, maxlen=4)
    assert lengths.dtype == np.int64 and lengths.tolist() == [3, 2, 0, 4]
    assert sequence_lengths(SEQS).tolist() == [3, 2, 0, 5]
    x = pad_sequences(SEQS, maxlen=4, padding="post", truncating="post")
    model = rnnrs.Sequential([rnnrs.Embedding(11, 4, seed=0), rnnrs.RNN(rnnrs.GRUCell(3, seed=0)), rnnrs.Dense(2)])
    model.compile("adam", "sparse_softmax_cross_entropy")
    out = model.predict(x, sequence_length=lengths)
    # a row is the same whatever padding follows its last valid step
    alone = model.predict(np.array([[4, 5]]), sequence_length=[2])
    np.testing.assert_allclose(out[1], alone[0], rtol=1e-6)


@given(
    st.lists(st.lists(st.integers(-100, 100), max_size=6), max_size=5),
    st.one_of(st.none(), st.integers(0, 7)),
    st.sampled_from(["pre", "post"]),
    st.sampled_from(["pre", "post"]),
)
def test_matches_a_plain_reading_of_keras(seqs, maxlen, padding, truncating):
    """Against the rule in Keras' docstring, written out row by row."""
    x = pad_sequences(seqs, maxlen=maxlen, padding=padding, truncating=truncating, value=7)
    width = max((len(s) for s in seqs), default=0) if maxlen is None else maxlen
    assert x.shape == (len(seqs), width)
    for row, s in zip(x.tolist(), seqs):
        kept = (s[-width:] if truncating == "pre" else s[:width]) if width else []
        pad = [7] * (width - len(kept))
        assert row == (pad + kept if padding == "pre" else kept + pad)
    assert sequence_lengths(seqs, maxlen).tolist() == [min(len(s), width) for s in seqs]


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"sequences": 5}, TypeError, "sequences"),
        ({"sequences": "abc"}, TypeError, "sequences"),
        ({"sequences": [[1], 2]}, TypeError, re.escape("sequences[1]")),
        ({"sequences": [[1], "ab"]}, TypeError, re.escape("sequences[1]")),
        ({"sequences": [[1], [[1, 2]]]}, ValueError, re.escape("sequences[1]")),
        ({"sequences": [[1], ["a"]]}, TypeError, re.escape("sequences[1]")),
        ({"sequences": [[1.5]]}, ValueError, re.escape("sequences[0]")),  # Keras truncates it to 1
        ({"sequences": [[300]], "dtype": "int8"}, ValueError, re.escape("sequences[0]")),  # Keras wraps it
        ({"sequences": [[1]], "maxlen": -1}, ValueError, "maxlen"),
        ({"sequences": [[1]], "maxlen": 2.0}, TypeError, "maxlen"),
        ({"sequences": [[1]], "dtype": str}, TypeError, "dtype"),
        ({"sequences": [[1]], "dtype": "no such type"}, TypeError, "dtype"),
        ({"sequences": [[1]], "padding": "middle"}, ValueError, "padding"),
        ({"sequences": [[1]], "truncating": None}, TypeError, "truncating"),
        ({"sequences": [[1]], "value": 0.5}, ValueError, "value"),
        ({"sequences": [[1]], "value": [0, 1]}, ValueError, "value"),
        ({"sequences": [[1]], "value": "x"}, TypeError, "value"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, name):
    with raises_naming(error, name):
        pad_sequences(**kwargs)


def test_sequence_lengths_bad_arguments():
    with raises_naming(TypeError, "sequences"):
        sequence_lengths(3)
    with raises_naming(ValueError, "maxlen"):
        sequence_lengths([[1]], maxlen=-2)
