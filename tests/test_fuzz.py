"""Fuzzing every public entry point: only documented outcomes.

Each test builds a valid call, then replaces up to two of its arguments with
values drawn from a pool of hostile ones (wrong types, ranks, shapes and
dtypes; zero sizes; NaN and inf; huge integers; strings, complex numbers,
object arrays, booleans; misaligned, byte-swapped, Fortran-ordered and
negatively strided arrays; broken structures). A call may then

* return a result (NaN and inf propagate: that is a result), or
* raise ``ValueError`` or ``TypeError`` whose message starts with the name of
  one of the call's arguments (the library's error style, ``"name: expected
  ..., got ..."``), or ``MemoryError`` for sizes that cannot be allocated.

Anything else — another exception type, a panic from the Rust core (a
``BaseException``), a crash or a hang — fails. An unchanged valid call must
succeed, and a valid call whose arrays only have another memory layout must
give bitwise the same result as the contiguous one.

The CI hypothesis profile runs every test deterministically; together they
take well under a minute.
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import rnnrs

pytestmark = pytest.mark.filterwarnings("ignore")

# A fixed share of the CI profile's examples for each test here: enough to
# reach every branch of the pool, still well under a minute in all.
FUZZ = settings(
    max_examples=max(300, settings.default.max_examples * 12),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    deadline=None,
)

FLOAT_DTYPES = (np.float32, np.float64)


# --------------------------------------------------------------------------
# Hostile values.
# --------------------------------------------------------------------------

_SPECIAL = [0.0, 1.0, -1.0, 2.5, math.nan, math.inf, -math.inf, 1e300, -3e38, 1e-46]


def _misaligned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``a`` whose data pointer is off by one byte."""
    if a.dtype.itemsize <= 1 or a.dtype.kind in "OU":
        return a
    buf = np.empty(a.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    return out


def _strided(a: np.ndarray) -> np.ndarray:
    """The same values as a non-contiguous view (every other element of a larger array)."""
    if a.ndim == 0:
        return a
    big = np.zeros(a.shape[:-1] + (a.shape[-1] * 2,), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def _reversed(a: np.ndarray) -> np.ndarray:
    """The same values through a view with negative strides."""
    if a.ndim == 0:
        return a
    return np.ascontiguousarray(a[::-1])[::-1]


def _byteswapped(a: np.ndarray) -> np.ndarray:
    """The same values in non-native byte order."""
    if a.dtype.kind not in "fiuc" or a.dtype.itemsize == 1:
        return a
    return a.astype(a.dtype.newbyteorder())


LAYOUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "C": lambda a: a,
    "F": np.asfortranarray,
    "reversed": _reversed,
    "strided": _strided,
    "misaligned": _misaligned,
    "byteswapped": _byteswapped,
    "readonly": lambda a: _readonly(a),
}


def _readonly(a: np.ndarray) -> np.ndarray:
    b = np.array(a, copy=True)
    b.flags.writeable = False
    return b


layouts = st.sampled_from(sorted(LAYOUTS))


@st.composite
def hostile_arrays(draw: st.DrawFn) -> np.ndarray:
    """Arrays of any rank 0-4 (sides 0-3), any dtype, any layout, with NaN and inf."""
    shape = tuple(draw(st.lists(st.integers(0, 3), min_size=0, max_size=4)))
    size = int(np.prod(shape))
    values = np.array(draw(st.lists(st.sampled_from(_SPECIAL), min_size=size, max_size=size)), np.float64)
    dtype = draw(
        st.sampled_from(
            ["float32", "float64", "float16", "int8", "int64", "uint8", "bool", "complex64", "U3", "object", ">f8"]
        )
    )
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        arr = values.reshape(shape)
        if dtype in ("U3", "object"):
            arr = arr.astype(dtype)
        elif np.dtype(dtype).kind in "iub":
            arr = np.nan_to_num(arr, nan=0, posinf=1, neginf=-1).clip(-1, 2).astype(dtype)
        else:
            arr = arr.astype(dtype)
    return LAYOUTS[draw(layouts)](arr)


hostile = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 4),
    st.sampled_from([2**31, 2**40, 2**63, 2**64, -(2**63), 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2.5, 0.5, 1e-46, float("nan")]),
    st.text(max_size=3),
    st.sampled_from(["float32", "tanh", "kernel", "adam", "accuracy", "3"]),
    st.just([]),
    st.just({}),
    st.just(()),
    st.just({"kernel": np.zeros((2, 2))}),
    st.just(np.float64),
    st.just(complex(1, 1)),
    st.just(object()),
    st.lists(st.integers(-1, 3), max_size=3),
    st.lists(st.lists(st.integers(0, 2), max_size=2), max_size=2),
    st.tuples(hostile_arrays(), hostile_arrays()),
    hostile_arrays(),
)


# --------------------------------------------------------------------------
# The oracle.
# --------------------------------------------------------------------------


def call_and_check(fn: Callable[..., Any], args: dict[str, Any], mutated: set[str], names: set[str]) -> Any:
    """Calls ``fn(**args)``; returns its result, or None when it raised as documented.

    Fails when a call with nothing ``mutated`` raises, or when any call raises
    something other than ValueError/TypeError naming an argument in ``names``
    (or MemoryError).
    """
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return fn(**args)
    except MemoryError:
        assert mutated, "a valid call raised MemoryError"
        return None
    except (ValueError, TypeError) as e:
        if not mutated:
            raise AssertionError(f"a valid call raised {type(e).__name__}: {e}") from e
        message = str(e)
        assert any(message.startswith(n) for n in names), (
            f"{type(e).__name__} does not start with an argument's name (one of {sorted(names)}; "
            f"arguments replaced: {sorted(mutated)}): {message!r}"
        )
        return None
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - the point: nothing else may escape
        raise AssertionError(
            f"undocumented {type(e).__module__}.{type(e).__name__} (replaced {sorted(mutated)}): {e}"
        ) from e


@st.composite
def mutations(draw: st.DrawFn, args: dict[str, Any], names: list[str]) -> tuple[dict[str, Any], set[str]]:
    """``args`` with up to two of ``names`` replaced by hostile values."""
    chosen = draw(st.sets(st.sampled_from(names), max_size=2)) if names else set()
    out = dict(args)
    for name in chosen:
        out[name] = draw(hostile)
    return out, set(chosen)


# --------------------------------------------------------------------------
# Cells.
# --------------------------------------------------------------------------

CELL_FACTORIES: dict[str, Callable[[Any, int], rnnrs.RNNCell]] = {
    "rnn": lambda dt, s: rnnrs.BasicRNNCell(3, dtype=dt, seed=s),
    "basic_lstm": lambda dt, s: rnnrs.BasicLSTMCell(3, dtype=dt, seed=s),
    "lstm_full": lambda dt, s: rnnrs.LSTMCell(
        3, use_peepholes=True, cell_clip=2.0, num_proj=2, proj_clip=1.0, dtype=dt, seed=s
    ),
    "gru": lambda dt, s: rnnrs.GRUCell(3, dtype=dt, seed=s),
    "gru_after": lambda dt, s: rnnrs.GRUCell(3, reset_after=True, dtype=dt, seed=s),
    "multi": lambda dt, s: rnnrs.MultiRNNCell(
        [rnnrs.BasicLSTMCell(3, dtype=dt, seed=s), rnnrs.GRUCell(2, dtype=dt, seed=s + 1)]
    ),
    "dropout": lambda dt, s: rnnrs.DropoutWrapper(
        rnnrs.BasicRNNCell(3, dtype=dt, seed=s), 0.7, 0.8, 0.9, variational_recurrent=bool(s % 2), seed=s
    ),
    "projection": lambda dt, s: rnnrs.OutputProjectionWrapper(rnnrs.GRUCell(3, dtype=dt, seed=s), 2, seed=s),
    "residual": lambda dt, s: rnnrs.ResidualWrapper(rnnrs.BasicRNNCell(2, dtype=dt, seed=s)),
}

INPUT_SIZE = 2


@st.composite
def built_cells(draw: st.DrawFn) -> rnnrs.RNNCell:
    cell = CELL_FACTORIES[draw(st.sampled_from(sorted(CELL_FACTORIES)))](
        draw(st.sampled_from(FLOAT_DTYPES)), draw(st.integers(0, 3))
    )
    cell.build(INPUT_SIZE)
    return cell


CONSTRUCTORS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "BasicRNNCell": (rnnrs.BasicRNNCell, {"num_units": 3, "activation": "relu", "dtype": np.float64, "seed": 1}),
    "BasicLSTMCell": (rnnrs.BasicLSTMCell, {"num_units": 3, "forget_bias": 0.5, "activation": "tanh", "seed": 0}),
    "LSTMCell": (
        rnnrs.LSTMCell,
        {"num_units": 3, "use_peepholes": True, "cell_clip": 1.0, "num_proj": 2, "proj_clip": 3.0, "seed": 2},
    ),
    "GRUCell": (rnnrs.GRUCell, {"num_units": 3, "reset_after": True, "dtype": np.float32, "seed": 0}),
    "MultiRNNCell": (rnnrs.MultiRNNCell, {"cells": "__cells__"}),
    "DropoutWrapper": (
        rnnrs.DropoutWrapper,
        {
            "cell": "__cell__",
            "input_keep_prob": 0.5,
            "output_keep_prob": 0.9,
            "state_keep_prob": 1.0,
            "variational_recurrent": True,
            "seed": 3,
        },
    ),
    "OutputProjectionWrapper": (rnnrs.OutputProjectionWrapper, {"cell": "__cell__", "output_size": 2, "seed": 0}),
    "ResidualWrapper": (rnnrs.ResidualWrapper, {"cell": "__cell2__"}),
    "Dense": (rnnrs.Dense, {"units": 3, "activation": "tanh", "use_bias": True, "seed": 0}),
    "Embedding": (rnnrs.Embedding, {"input_dim": 5, "output_dim": 3, "seed": 0}),
    "RNN": (rnnrs.RNN, {"cell": "__cell__", "return_sequences": True}),
    "SGD": (rnnrs.SGD, {"learning_rate": 0.1, "clip_norm": 1.0}),
    "Momentum": (rnnrs.Momentum, {"learning_rate": 0.1, "momentum": 0.5, "use_nesterov": True}),
    "RMSProp": (rnnrs.RMSProp, {"learning_rate": 0.1, "decay": 0.9, "momentum": 0.1, "epsilon": 1e-7}),
    "Adam": (rnnrs.Adam, {"learning_rate": 0.1, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-7, "clip_norm": 5.0}),
    "AdamW": (rnnrs.AdamW, {"learning_rate": 0.1, "weight_decay": 0.01, "epsilon": 1e-7}),
    "Adagrad": (rnnrs.Adagrad, {"learning_rate": 0.1, "initial_accumulator_value": 0.1}),
    "ExponentialDecay": (
        rnnrs.schedules.ExponentialDecay,
        {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5},
    ),
    "CosineDecay": (
        rnnrs.schedules.CosineDecay,
        {"initial_learning_rate": 0.1, "decay_steps": 10, "alpha": 0.1, "warmup_target": 0.2, "warmup_steps": 3},
    ),
    "PiecewiseConstantDecay": (
        rnnrs.schedules.PiecewiseConstantDecay,
        {"boundaries": [2, 5], "values": [0.3, 0.2, 0.1]},
    ),
    "BinaryCrossentropy": (rnnrs.losses.BinaryCrossentropy, {"from_logits": True, "label_smoothing": 0.1}),
    "CategoricalCrossentropy": (rnnrs.losses.CategoricalCrossentropy, {"from_logits": False, "label_smoothing": 0.0}),
    "Huber": (rnnrs.losses.Huber, {"delta": 2.0}),
    "AUC": (rnnrs.metrics.AUC, {"num_thresholds": 50}),
    "Precision": (rnnrs.metrics.Precision, {"thresholds": 0.4}),
    "BinaryAccuracy": (rnnrs.metrics.BinaryAccuracy, {"threshold": 0.3}),
    "SparseTopKCategoricalAccuracy": (rnnrs.metrics.SparseTopKCategoricalAccuracy, {"k": 2}),
    "EarlyStopping": (
        rnnrs.callbacks.EarlyStopping,
        {"monitor": "loss", "min_delta": 0.1, "patience": 2, "mode": "min", "restore_best_weights": True},
    ),
    "ReduceLROnPlateau": (rnnrs.callbacks.ReduceLROnPlateau, {"monitor": "loss", "factor": 0.5, "patience": 1}),
    "Input": (rnnrs.Input, {"shape": (None, 2), "dtype": "float64", "name": "x"}),
    "Model": (rnnrs.Model, {"inputs": "__input__", "outputs": "__output__"}),
    "SequenceClassifier": (rnnrs.SequenceClassifier, {"cell": "__cell__", "num_classes": 3, "seed": 0}),
    "SequenceRegressor": (rnnrs.SequenceRegressor, {"cell": "__cell__", "output_size": 2, "seed": 0}),
}


_GRAPH: dict[str, Any] = {}


def _fresh(value: Any) -> Any:
    if value == "__input__":
        _GRAPH["input"] = rnnrs.Input((None, 2))
        return _GRAPH["input"]
    if value == "__output__":
        return rnnrs.Dense(2, seed=0)(rnnrs.RNN(rnnrs.GRUCell(3, seed=0))(_GRAPH["input"]))
    if value == "__cell__":
        return rnnrs.BasicRNNCell(3, seed=0)
    if value == "__cell2__":
        return rnnrs.BasicRNNCell(2, seed=0)
    if value == "__cells__":
        return [rnnrs.BasicRNNCell(3, seed=0), rnnrs.GRUCell(2, seed=1)]
    return value


@FUZZ
@given(name=st.sampled_from(sorted(CONSTRUCTORS)), data=st.data())
def test_constructors(name, data):
    cls, good = CONSTRUCTORS[name]
    args = {k: _fresh(v) for k, v in good.items()}
    args, mutated = data.draw(mutations(args, sorted(args)))
    # A message may name any constructor argument (e.g. `mode` when the replaced `monitor` leaves
    # mode="auto" unable to choose a direction).
    call_and_check(cls, args, mutated, set(args) | set(inspect.signature(cls).parameters))


@FUZZ
@given(cell=built_cells(), data=st.data())
def test_cell_methods(cell, data):
    method = data.draw(st.sampled_from(["build", "zero_state", "call", "set_weights"]))
    batch = data.draw(st.integers(0, 3))
    dtype = cell.dtype
    if method == "build":
        # Building again with the same size is a no-op; anything else is refused.
        args, mutated = data.draw(mutations({"input_size": INPUT_SIZE}, ["input_size"]))
        call_and_check(cell.build, args, mutated, {"input_size"})
    elif method == "zero_state":
        args, mutated = data.draw(mutations({"batch_size": batch}, ["batch_size"]))
        call_and_check(cell.zero_state, args, mutated, {"batch_size"})
    elif method == "call":
        good = {"inputs": np.ones((batch, INPUT_SIZE), dtype), "state": cell.zero_state(batch)}
        args, mutated = data.draw(mutations(good, ["inputs", "state"]))
        call_and_check(cell, args, mutated, {"inputs", "state"})
    else:
        weights = cell.get_weights()
        key = data.draw(st.sampled_from(sorted(weights)))
        replace = data.draw(st.booleans())
        mapping: Any = dict(weights)
        mutated: set[str] = set()
        if replace:
            mapping[key] = data.draw(hostile)
            mutated = {"mapping"}
        elif data.draw(st.booleans()):
            mapping = data.draw(hostile)
            mutated = {"mapping"}
        before = cell.get_weights()
        try:
            cell.set_weights(mapping)
            refused = False
        except (ValueError, TypeError):
            refused = True
        except BaseException:  # noqa: BLE001 - reported by call_and_check below
            refused = True
        if refused:
            # A refused update changes nothing (and is reported as documented).
            after = cell.get_weights()
            assert all(np.array_equal(before[k], after[k], equal_nan=True) for k in before)
            call_and_check(cell.set_weights, {"mapping": mapping}, mutated, {"mapping"})


# --------------------------------------------------------------------------
# Run functions and their backprops.
# --------------------------------------------------------------------------


def _lengths(data: st.DataObject, batch: int, time: int) -> Any:
    kind = data.draw(st.sampled_from(["none", "array", "list"]))
    if kind == "none":
        return None
    values = data.draw(st.lists(st.integers(0, time), min_size=batch, max_size=batch))
    return values if kind == "list" else np.array(values, data.draw(st.sampled_from([np.int32, np.int64])))


@FUZZ
@given(cell=built_cells(), data=st.data())
def test_dynamic_rnn(cell, data):
    batch, time = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
    time_major = data.draw(st.booleans())
    x = np.asarray(
        data.draw(
            st.lists(
                st.sampled_from(_SPECIAL[:5]), min_size=batch * time * INPUT_SIZE, max_size=batch * time * INPUT_SIZE
            )
        ),
        cell.dtype,
    )
    x = x.reshape((time, batch, INPUT_SIZE) if time_major else (batch, time, INPUT_SIZE))
    good = {
        "cell": cell,
        "inputs": x,
        "sequence_length": _lengths(data, batch, time),
        "initial_state": cell.zero_state(batch) if data.draw(st.booleans()) else None,
        "time_major": time_major,
        "training": data.draw(st.booleans()),
        "return_backprop": True,
    }
    names = set(good) - {"return_backprop"}
    args, mutated = data.draw(mutations(good, sorted(names - {"cell", "time_major"})))
    result = call_and_check(rnnrs.dynamic_rnn, args, mutated, names)
    if result is None:
        return
    outputs, state, backprop = result
    if not mutated and not good["training"]:
        # Another memory layout of the same inputs: bitwise the same outputs.
        layout = data.draw(layouts)
        again = rnnrs.dynamic_rnn(**{**good, "inputs": LAYOUTS[layout](x), "return_backprop": False})[0]
        np.testing.assert_array_equal(again, outputs)
    grads = {"d_outputs": np.ones_like(outputs), "d_state": None}
    grads, mutated_grads = data.draw(mutations(grads, ["d_outputs", "d_state"]))
    call_and_check(backprop, grads, mutated_grads, {"d_outputs", "d_state"})


@FUZZ
@given(cell=built_cells(), data=st.data())
def test_static_and_bidirectional(cell, data):
    batch, time = data.draw(st.integers(0, 3)), data.draw(st.integers(1, 3))
    steps = [np.full((batch, INPUT_SIZE), 0.5 * t, cell.dtype) for t in range(time)]
    which = data.draw(st.sampled_from(["static_rnn", "bidirectional_dynamic_rnn", "static_bidirectional_rnn"]))
    lengths = _lengths(data, batch, time)
    if which == "static_rnn":
        good = {"cell": cell, "input_list": steps, "sequence_length": lengths, "return_backprop": True}
    else:
        other = CELL_FACTORIES["gru"](cell.dtype, 5)
        inputs = steps if which == "static_bidirectional_rnn" else np.stack(steps, 1)
        good = {
            "cell_fw": cell,
            "cell_bw": other,
            "inputs": inputs,
            "sequence_length": lengths,
            "initial_state_bw": other.zero_state(batch) if data.draw(st.booleans()) else None,
            "return_backprop": True,
        }
    names = set(good) - {"return_backprop"}
    args, mutated = data.draw(mutations(good, sorted(names)))
    # static_rnn's input_list is TensorFlow's `inputs` (its keyword alias here).
    call_and_check(getattr(rnnrs, which), args, mutated, names | {"inputs"})


# --------------------------------------------------------------------------
# Losses, optimizers, converters, layers, models, threads.
# --------------------------------------------------------------------------


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOAT_DTYPES))
def test_losses(data, dtype):
    which = data.draw(st.sampled_from(["sparse", "mse", "sequence_loss", "sequence_mask"]))
    n = data.draw(st.integers(0, 3))
    if which == "sparse":
        fn = rnnrs.sparse_softmax_cross_entropy
        good = {"labels": np.arange(n) % 3, "logits": np.linspace(-1, 1, n * 3).reshape(n, 3).astype(dtype)}
    elif which == "mse":
        fn = rnnrs.mean_squared_error
        good = {"labels": np.zeros((n, 2), dtype), "predictions": np.ones((n, 2), dtype)}
    elif which == "sequence_loss":
        fn = rnnrs.sequence_loss
        good = {"logits": np.zeros((n, 2, 3), dtype), "targets": np.zeros((n, 2), np.int64)}
    else:
        fn = rnnrs.sequence_mask
        good = {"lengths": np.arange(n), "maxlen": 3}
    if which != "sequence_mask" and data.draw(st.booleans()):
        good["weights"] = None
    args, mutated = data.draw(mutations(good, sorted(good)))
    call_and_check(fn, args, mutated, set(good))


@FUZZ
@given(data=st.data())
def test_optimizers(data):
    which = data.draw(st.sampled_from(["SGD", "Momentum", "RMSProp", "Adam"]))
    optimizer = getattr(rnnrs, which)(clip_norm=data.draw(st.sampled_from([None, 1.0])))
    params = {"w": np.ones((2, 3), np.float32), "b": np.zeros(3, np.float64)}
    grads: Any = {"w": np.full((2, 3), 0.5, np.float32), "b": np.ones(3)}
    fn = data.draw(st.sampled_from(["apply_gradients", "global_norm", "clip_by_global_norm"]))
    if fn == "apply_gradients":
        good = {"params": params, "grads": grads, "check_finite": data.draw(st.booleans())}
        args, mutated = data.draw(mutations(good, sorted(good)))
        call_and_check(optimizer.apply_gradients, args, mutated, set(good))
    elif fn == "global_norm":
        args, mutated = data.draw(mutations({"grads": grads}, ["grads"]))
        norm = call_and_check(rnnrs.global_norm, args, mutated, {"grads"})
        if not mutated:
            assert norm == pytest.approx(math.sqrt(6 * 0.25 + 3))
    else:
        good = {"grads": grads, "clip_norm": 1.0, "use_norm": None}
        args, mutated = data.draw(mutations(good, sorted(good)))
        call_and_check(rnnrs.clip_by_global_norm, args, mutated, set(good))


@FUZZ
@given(data=st.data())
def test_converters(data):
    kind = data.draw(st.sampled_from(["rnn", "basic_lstm", "gru_after"]))
    source = CELL_FACTORIES[kind](np.float32, 0)
    source.build(INPUT_SIZE)
    direction = data.draw(st.sampled_from(["torch", "keras"]))
    target = CELL_FACTORIES[kind](np.float32, 1)
    if data.draw(st.booleans()):
        target.build(INPUT_SIZE)
    if direction == "torch":
        payload: Any = rnnrs.convert.to_torch(source)
        if data.draw(st.booleans()) and payload:
            payload[data.draw(st.sampled_from(sorted(payload)))] = data.draw(hostile)
            mutated = {"state_dict"}
        else:
            payload, mutated = data.draw(mutations({"state_dict": payload}, ["state_dict"]))
            payload = payload["state_dict"]
        call_and_check(rnnrs.convert.from_torch, {"cell": target, "state_dict": payload}, mutated, {"state_dict"})
    else:
        payload = rnnrs.convert.to_keras(source)
        if data.draw(st.booleans()):
            payload[data.draw(st.integers(0, len(payload) - 1))] = data.draw(hostile)
            mutated = {"weights"}
        else:
            payload, mutated = data.draw(mutations({"weights": payload}, ["weights"]))
            payload = payload["weights"]
        call_and_check(rnnrs.convert.from_keras, {"cell": target, "weights": payload}, mutated, {"weights"})
    if not mutated:
        for k, v in source.get_weights().items():
            np.testing.assert_allclose(target.get_weights()[k], v, rtol=1e-6, atol=1e-6)


@FUZZ
@given(data=st.data())
def test_layers(data):
    which = data.draw(st.sampled_from(["Dense", "Embedding", "RNN"]))
    batch, time = data.draw(st.integers(0, 3)), data.draw(st.integers(1, 3))
    if which == "Dense":
        layer: Any = rnnrs.Dense(3, activation="tanh", seed=0)
        x: Any = np.ones((batch, time, 2), np.float32)
    elif which == "Embedding":
        layer = rnnrs.Embedding(5, 3, seed=0)
        x = np.arange(batch * time).reshape(batch, time) % 5
    else:
        layer = rnnrs.RNN(rnnrs.BasicLSTMCell(3, seed=0), return_sequences=data.draw(st.booleans()))
        x = np.ones((batch, time, 2), np.float32)
    good = {
        "inputs": x,
        "sequence_length": _lengths(data, batch, time),
        "training": False,
        "return_backprop": data.draw(st.booleans()),
    }
    args, mutated = data.draw(mutations(good, ["inputs", "sequence_length", "training"]))
    call_and_check(layer, args, mutated, set(good))


@FUZZ
@given(data=st.data())
def test_models(data):
    model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(4, seed=0), num_classes=3, seed=0)
    x = np.linspace(0, 1, 6 * 3 * 2, dtype=np.float32).reshape(6, 3, 2)
    y = np.arange(6) % 3
    method = data.draw(st.sampled_from(["fit", "evaluate", "predict", "compile"]))
    if method == "fit":
        good: dict[str, Any] = {
            "x": x,
            "y": y,
            "batch_size": 4,
            "epochs": 1,
            "seed": 0,
            "verbose": 0,
            "callbacks": [rnnrs.callbacks.EarlyStopping(monitor="loss")],
            "validation_split": 0.0,
            "initial_epoch": 0,
        }
        fn: Callable[..., Any] = model.fit
    elif method == "evaluate":
        good = {"x": x, "y": y, "batch_size": 4, "sequence_length": np.full(6, 2)}
        fn = model.evaluate
    elif method == "predict":
        good = {"x": x, "batch_size": 4, "sequence_length": None}
        fn = model.predict
    else:
        good = {"optimizer": "adam", "loss": "sparse_softmax_cross_entropy", "metrics": ["accuracy"]}
        fn = model.compile
    args, mutated = data.draw(mutations(good, sorted(good)))
    # A huge number of epochs is a valid request that would only take long.
    assume(not (isinstance(args.get("epochs"), int) and args["epochs"] > 3))
    call_and_check(fn, args, mutated, set(good))


@FUZZ
@given(data=st.data())
def test_functional_models(data):
    """A model with two inputs (float sequences and ids) and two outputs."""
    feats = rnnrs.Input((None, 2), name="feats")
    ids = rnnrs.Input((None,), dtype="int64", name="ids")
    e = rnnrs.Embedding(5, 2, seed=0)(ids)
    shared = rnnrs.Dense(2, activation="tanh", seed=0)
    h = rnnrs.RNN(rnnrs.BasicLSTMCell(3, seed=0), return_sequences=True)(shared(feats))
    g = rnnrs.RNN(rnnrs.GRUCell(3, seed=1))(shared(e))
    model = rnnrs.Model([feats, ids], [rnnrs.Dense(3, seed=0)(g), rnnrs.Dense(1, seed=1)(h)])
    model.compile("adam", ["sparse_softmax_cross_entropy", "mse"], metrics=["accuracy"])
    x = [np.linspace(0, 1, 6 * 3 * 2, dtype=np.float32).reshape(6, 3, 2), np.arange(18).reshape(6, 3) % 5]
    y = [np.arange(6) % 3, np.zeros((6, 3, 1), np.float32)]
    lengths = [np.array([3, 0, 1, 2, 3, 3]), np.array([3, 0, 1, 2, 3, 3])]
    method = data.draw(st.sampled_from(["fit", "evaluate", "predict", "call"]))
    if method == "fit":
        good: dict[str, Any] = {"x": x, "y": y, "batch_size": 4, "epochs": 1, "seed": 0, "verbose": 0}
        fn: Callable[..., Any] = model.fit
    elif method == "evaluate":
        good = {"x": x, "y": y, "batch_size": 4, "sequence_length": lengths}
        fn = model.evaluate
    elif method == "predict":
        good = {"x": {"feats": x[0], "ids": x[1]}, "batch_size": 4, "sequence_length": lengths}
        fn = model.predict
    else:
        good = {"x": x, "sequence_length": lengths, "training": False, "return_backprop": True}
        fn = model
    args, mutated = data.draw(mutations(good, sorted(good)))
    assume(not (isinstance(args.get("epochs"), int) and args["epochs"] > 3))
    call_and_check(fn, args, mutated, set(good))


@FUZZ
@given(value=hostile)
def test_set_num_threads(value):
    before = rnnrs.get_num_threads()
    try:
        call_and_check(rnnrs.set_num_threads, {"n": value}, {"n"}, {"num_threads", "n"})
        assert 1 <= rnnrs.get_num_threads() <= 1024
    finally:
        rnnrs.set_num_threads(before)


# --------------------------------------------------------------------------
# Cases the fuzzing found, pinned one by one.
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "exc", "name"),
    [
        # yes/no arguments are True or False, never read by an array's truth value
        (lambda c, x: rnnrs.dynamic_rnn(c, x, training=np.zeros(0)), TypeError, "training"),
        (lambda c, x: rnnrs.dynamic_rnn(c, x, time_major="no"), TypeError, "time_major"),
        (lambda c, x: rnnrs.dynamic_rnn(c, x, return_backprop=[1]), TypeError, "return_backprop"),
        (lambda c, x: rnnrs.GRUCell(2, reset_after=np.ones(2)), TypeError, "reset_after"),
        (lambda c, x: rnnrs.LSTMCell(2, use_peepholes="yes"), TypeError, "use_peepholes"),
        (lambda c, x: rnnrs.RNN(c, return_sequences=2), TypeError, "return_sequences"),
        (
            lambda c, x: rnnrs.Adam().apply_gradients({"w": np.ones(2)}, {"w": np.ones(2)}, check_finite=np.ones(0)),
            TypeError,
            "check_finite",
        ),
        (lambda c, x: rnnrs.Dense(2, activation=np.zeros(0)), TypeError, "activation"),
        # dtypes NumPy's parser chokes on
        (lambda c, x: rnnrs.BasicRNNCell(2, dtype=np.ones((2, 2))), TypeError, "dtype"),
        (lambda c, x: rnnrs.BasicRNNCell(2, dtype="f8,("), TypeError, "dtype"),
        # sizes no array can have
        (lambda c, x: c.zero_state(2**63), ValueError, "batch_size"),
        (lambda c, x: rnnrs.sequence_mask([1, 2], maxlen=2**63), ValueError, "maxlen"),
        # ragged nested lists where arrays belong
        (lambda c, x: c.set_weights({"kernel": [[1.0], [1.0, 2.0]]}), ValueError, r"mapping\['kernel'\]"),
        (lambda c, x: rnnrs.sparse_softmax_cross_entropy([[0], [0, 1]], np.zeros((2, 3))), ValueError, "labels"),
        (lambda c, x: rnnrs.global_norm({"w": [[1.0], [1.0, 2.0]]}), ValueError, r"grads\['w'\]"),
        (lambda c, x: rnnrs.clip_by_global_norm(None, 1.0, use_norm=2.0), TypeError, "grads"),
        (lambda c, x: rnnrs.clip_by_global_norm({"w": np.ones(2)}, 1.0, use_norm=[1.0]), TypeError, "use_norm"),
        # the argument the caller gave is the one named
        (lambda c, x: rnnrs.sequence_loss(np.zeros((1, 2, 3)), [["a", "b"]]), TypeError, "targets"),
        (lambda c, x: c.build(3), ValueError, "input_size"),
        (lambda c, x: rnnrs.dynamic_rnn(c, np.ones((1, 2, 3))), ValueError, "inputs"),
        (
            lambda c, x: rnnrs.bidirectional_dynamic_rnn(c, c, x, initial_state_bw=np.zeros(())),
            ValueError,
            "initial_state_bw",
        ),
    ],
)
def test_found_by_fuzzing(call, exc, name):
    cell = rnnrs.BasicRNNCell(2, seed=0)
    cell.build(INPUT_SIZE)
    x = np.ones((1, 2, INPUT_SIZE), np.float32)
    with pytest.raises(exc, match="^" + name):
        call(cell, x)
