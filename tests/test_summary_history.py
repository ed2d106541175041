"""``model.summary()`` (a printed, aligned table of layers, output shapes and
parameter counts, Keras-style) and ``model.history`` accumulated across ``fit``
calls."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

import rnnrs
from helpers import raises_naming


def stacked(built: bool = True) -> rnnrs.Sequential:
    model = rnnrs.Sequential(
        [
            rnnrs.Embedding(50, 8, seed=0),
            rnnrs.RNN(rnnrs.LSTMCell(16, seed=0), return_sequences=True),
            rnnrs.RNN(rnnrs.GRUCell(4, seed=0)),
            rnnrs.Dense(3, seed=0),
        ]
    )
    if built:
        model.build()
    return model


# -- summary ------------------------------------------------------------------
def test_summary_prints_and_returns_an_aligned_table(capsys):
    """Pins: summary() prints to stdout (before, it printed nothing) and returns the same
    table: a row per layer with name (class), output shape (None for batch and time) and
    parameter count, then the totals."""
    model = stacked()
    text = model.summary()
    printed = capsys.readouterr().out
    assert printed == text + "\n"
    assert isinstance(text, str)
    lines = text.splitlines()
    assert lines[0] == 'Model: "sequential" (Sequential, float32)'
    counts = {la.name: sum(v.size for v in la.get_weights().values()) for la in model.layers}
    expected = [
        ("embedding (Embedding)", "(None, None, 8)", counts["embedding"]),
        ("rnn (RNN(LSTMCell))", "(None, None, 16)", counts["rnn"]),
        ("rnn_1 (RNN(GRUCell))", "(None, 4)", counts["rnn_1"]),
        ("dense (Dense)", "(None, 3)", counts["dense"]),
    ]
    rows = lines[lines.index(next(line for line in lines if "Layer (type)" in line)) :]
    rows = [line for line in rows if line.startswith(" ") and "params:" not in line and "Loss:" not in line]
    assert len(rows) == 1 + len(expected)  # the header is " Layer (type) ..."
    header, body = rows[0], rows[1:]
    shape_col = header.index("Output Shape")
    width = len(header)
    for row, (name, shape, n) in zip(body, expected):
        assert row.startswith(f" {name} ")
        assert row[shape_col:].startswith(shape)  # shapes start in one column
        assert len(row) == width and row.endswith(f"{n:,}")  # counts right-aligned to one edge
    total = model.count_params()
    assert total == sum(n for _, _, n in expected)
    assert f" Total params: {total:,} ({total * 4 / 1024:.2f} KB)" in lines
    assert f" Trainable params: {total:,} ({total * 4 / 1024:.2f} KB)" in lines
    assert " Non-trainable params: 0 (0 B)" in lines
    rules = {len(line) for line in lines if set(line) in ({"_"}, {"="})}
    assert rules == {width}
    # the repr is one line, so a prompt does not show the table a second time
    assert "\n" not in repr(text) and "4 layers" in repr(text)


def test_summary_print_fn_stream_and_line_length(capsys):
    model = stacked()
    got: list[str] = []
    text = model.summary(print_fn=got.append)
    assert got == text.splitlines()
    buffer = io.StringIO()
    assert model.summary(stream=buffer) == text
    assert buffer.getvalue() == text + "\n"
    assert capsys.readouterr().out == ""  # neither went to stdout
    wide = model.summary(line_length=100, print_fn=lambda line: None)
    assert {len(line) for line in wide.splitlines() if set(line) == {"="}} == {100}


def test_summary_of_ready_made_and_compiled_models(capsys):
    model = rnnrs.SequenceRegressor(rnnrs.BasicRNNCell(5, seed=0), output_size=2)
    model.build(3)
    text = model.summary()
    assert re.search(r"rnn \(RNN\(BasicRNNCell\)\)\s+\(None, None, 5\)\s+45$", text, re.M)
    assert re.search(r"\(None, None, 2\)\s+12$", text, re.M)
    assert " Loss: mean_squared_error" in text


def test_summary_of_an_unbuilt_model_says_what_to_do(capsys):
    """Pins: an unbuilt model raises ValueError naming the fix (as Keras raises ValueError);
    before, summary() reported 0 parameters for every layer."""
    with raises_naming(ValueError, "summary") as info:
        stacked(built=False).summary()
    assert "build(input_size)" in str(info.value) and "fit" in str(info.value)
    with raises_naming(ValueError, "summary"):
        rnnrs.Sequential().summary()
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"line_length": 10}, ValueError, "line_length"),
        ({"line_length": 80.0}, TypeError, "line_length"),
        ({"print_fn": "print"}, TypeError, "print_fn"),
        ({"stream": 3}, TypeError, "stream"),
        ({"print_fn": print, "stream": io.StringIO()}, ValueError, "print_fn"),
    ],
)
def test_summary_arguments_are_checked(kwargs, error, name):
    with raises_naming(error, name):
        stacked().summary(**kwargs)


def test_layers_that_do_not_connect_are_refused_when_built():
    """build checks the whole chain (an RNN after an RNN without return_sequences), before any summary."""
    model = rnnrs.Sequential([rnnrs.RNN(rnnrs.BasicRNNCell(3)), rnnrs.RNN(rnnrs.BasicRNNCell(2))])
    with raises_naming(ValueError, "layers"):
        model.build(2)
    with raises_naming(ValueError, "summary"):
        model.summary(print_fn=lambda line: None)


# -- history ------------------------------------------------------------------
def data(n: int = 24):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 5, 2)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    return x, y


def test_history_accumulates_across_fit_calls():
    """Pins: a second fit appends to model.history (before, it replaced it and the first
    call's epochs were lost); epochs count on; each call returns the same object."""
    x, y = data()
    model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(4, seed=0), num_classes=2)
    assert model.history is None
    first = model.fit(x, y, epochs=3, seed=0, verbose=0)
    first_losses = list(first.history["loss"])
    second = model.fit(x, y, epochs=2, seed=1, verbose=0, validation_data=(x, y))
    assert second is first is model.history
    assert second.epoch == [0, 1, 2, 3, 4]
    assert len(second.seconds) == 5
    assert second.history["loss"][:3] == first_losses and len(second.history["loss"]) == 5
    assert len(second.history["accuracy"]) == 5
    assert len(second.history["val_loss"]) == 2  # only the second call validated
    model.fit(x, y, epochs=0, verbose=0)
    assert model.history.epoch == [0, 1, 2, 3, 4]
    assert "epochs=5" in repr(model.history)


def test_history_starts_afresh_when_reset():
    x, y = data()
    model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(4, seed=0), num_classes=2)
    old = model.fit(x, y, epochs=2, seed=0, verbose=0)
    model.history = None
    new = model.fit(x, y, epochs=1, seed=0, verbose=0)
    assert new is not old and new.epoch == [0] and old.epoch == [0, 1]


def test_history_keeps_the_epochs_before_a_failed_fit():
    x, y = data()
    model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(4, seed=0), num_classes=2)
    history = model.fit(x, y, epochs=2, seed=0, verbose=0)
    with raises_naming(ValueError, "y"):
        model.fit(x, y[:3], epochs=1, verbose=0)
    assert model.history is history and history.epoch == [0, 1]
