"""fit / evaluate options: ``sample_weight`` and ``class_weight`` (Keras'
reduction, checked against NumPy references and finite differences), the
warning for validation data without lengths, and truncated BPTT
(``bptt_steps``) on stateful recurrent layers."""

from __future__ import annotations

import inspect
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnrs
from helpers import raises_naming
from test_fuzz import call_and_check, mutations

DTYPES = (np.float32, np.float64)
TOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}


# -- NumPy references ------------------------------------------------------------


def log_softmax(z):
    z = np.asarray(z, np.float64)
    s = z - z.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def per_entry(kind, y, out):
    """The per-row (per-step) loss of Keras, float64: shape ``out.shape[:-1]``."""
    out = np.asarray(out, np.float64)
    if kind == "sparse":
        return -np.take_along_axis(log_softmax(out), np.asarray(y)[..., None], axis=-1)[..., 0]
    if kind == "categorical":
        return -(np.asarray(y, np.float64) * log_softmax(out)).sum(axis=-1)
    y = np.asarray(y, np.float64)
    if kind == "binary":
        e = np.maximum(out, 0) - out * y + np.log1p(np.exp(-np.abs(out)))
    elif kind == "mse":
        e = (out - y) ** 2
    elif kind == "mae":
        e = np.abs(out - y)
    else:  # huber, delta 1
        a = np.abs(out - y)
        e = np.where(a <= 1, 0.5 * a * a, a - 0.5)
    return e.mean(axis=-1)


def keras_weighted(kind, y, out, w, mask=None):
    """Keras' reduction: sum(w * loss) over the (unmasked) rows or steps / their number."""
    per = per_entry(kind, y, out)
    w = np.broadcast_to(np.asarray(w, np.float64).reshape(w.shape + (1,) * (per.ndim - w.ndim)), per.shape)
    if mask is None:
        return float((w * per).sum() / per.size)
    return float((w * mask * per).sum() / mask.sum())


LOSS_NAMES = {
    "sparse": "sparse_categorical_crossentropy",
    "categorical": "categorical_crossentropy",
    "binary": "binary_crossentropy",
    "mse": "mse",
    "mae": "mae",
    "huber": "huber",
}


def targets(kind, rng, shape):
    """Targets for outputs of ``shape`` ([..., units])."""
    if kind == "sparse":
        return rng.integers(0, shape[-1], size=shape[:-1])
    if kind == "categorical":
        return np.eye(shape[-1])[rng.integers(0, shape[-1], size=shape[:-1])]
    if kind == "binary":
        return rng.integers(0, 2, size=shape).astype(np.float64)
    return rng.normal(size=shape)


def dense_model(dtype, units, seed=0):
    """``[B, 4] -> Dense(units)``: a model whose outputs have no time axis."""
    x = rnnrs.Input((4,), dtype=dtype)
    return rnnrs.Model(x, rnnrs.Dense(units, seed=seed)(x))


def sequence_model(dtype, units, seed=0):
    """``[B, T, 3] -> RNN(GRU, return_sequences) -> Dense(units)``: per-step outputs."""
    model = rnnrs.Sequential(
        [
            rnnrs.RNN(rnnrs.GRUCell(4, dtype=dtype, seed=seed), return_sequences=True),
            rnnrs.Dense(units, dtype=dtype, seed=seed + 1),
        ]
    )
    model.build(3)
    return model


# -- sample_weight: values ----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@given(
    kind=st.sampled_from(sorted(LOSS_NAMES)),
    rows=st.integers(1, 7),
    seed=st.integers(0, 2**16),
    batch=st.integers(1, 8),
)
def test_sample_weight_is_keras_reduction_per_row(dtype, kind, rows, seed, batch):
    """evaluate(sample_weight=[B]) = sum(w * per-row loss) / B (not / sum(w)), whatever the batch size."""
    rng = np.random.default_rng(seed)
    units = 1 if kind == "binary" else 3
    model = dense_model(dtype, units, seed=seed % 7)
    model.compile("sgd", LOSS_NAMES[kind])
    x = rng.normal(size=(rows, 4)).astype(dtype)
    y = targets(kind, rng, (rows, units))
    w = rng.uniform(0, 3, size=rows) * (rng.random(rows) < 0.8)  # some zeros
    got = model.evaluate(x, y, sample_weight=w, batch_size=batch)["loss"]
    want = keras_weighted(kind, y, model(x), w)
    assert math.isclose(got, want, rel_tol=TOL[np.dtype(dtype)], abs_tol=TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@given(
    kind=st.sampled_from(sorted(LOSS_NAMES)),
    seed=st.integers(0, 2**16),
    per_step=st.booleans(),
    with_lengths=st.booleans(),
)
def test_sample_weight_per_step_with_lengths(dtype, kind, seed, per_step, with_lengths):
    """Per-step outputs: [B] weights weigh every step of a row, [B, T] weights each step;
    padded steps count 0 and the denominator is the number of unmasked steps."""
    rng = np.random.default_rng(seed)
    rows, steps = 5, 4
    units = 1 if kind == "binary" else 3
    model = sequence_model(dtype, units, seed=seed % 5)
    model.compile("sgd", LOSS_NAMES[kind])
    x = rng.normal(size=(rows, steps, 3)).astype(dtype)
    lengths = np.array([4, 1, 0, 3, 2]) if with_lengths else None
    y = targets(kind, rng, (rows, steps, units))
    w = rng.uniform(0, 2, size=(rows, steps) if per_step else rows)
    got = model.evaluate(x, y, sequence_length=lengths, sample_weight=w, batch_size=2)["loss"]
    mask = None if lengths is None else rnnrs.sequence_mask(lengths, steps, np.float64)
    want = keras_weighted(kind, y, model(x, sequence_length=lengths), w, mask)
    assert math.isclose(got, want, rel_tol=TOL[np.dtype(dtype)], abs_tol=TOL[np.dtype(dtype)])


def sparse_sequence_case(rows, steps, seed):
    """A float64 per-step classifier compiled with SGD, inputs and class ids per step."""
    rng = np.random.default_rng(seed)
    model = sequence_model(np.float64, 3)
    model.compile("sgd", "sparse_softmax_cross_entropy")
    return model, rng.normal(size=(rows, steps, 3)), rng.integers(0, 3, size=(rows, steps))


def test_sample_weight_of_ones_is_unweighted_and_two_doubles():
    model, x, y = sparse_sequence_case(6, 5, 0)
    lengths = np.array([5, 2, 0, 4, 1, 3])
    plain = model.evaluate(x, y, sequence_length=lengths)["loss"]
    ones = model.evaluate(x, y, sequence_length=lengths, sample_weight=np.ones(6))["loss"]
    twos = model.evaluate(x, y, sequence_length=lengths, sample_weight=np.full((6, 5), 2.0))["loss"]
    assert math.isclose(ones, plain, rel_tol=1e-12)
    assert math.isclose(twos, 2 * plain, rel_tol=1e-12)  # Keras: / number of entries, not / sum(w)


def test_sample_weight_several_outputs_list_dict_and_one_array():
    """Several outputs: a list (None allowed), a dict by output name, or one array for all."""
    rng = np.random.default_rng(3)
    inp = rnnrs.Input((4,), dtype=np.float64)
    a = rnnrs.Dense(3, seed=0, name="cls")(inp)
    b = rnnrs.Dense(2, seed=1, name="reg")(inp)
    model = rnnrs.Model(inp, [a, b])
    model.compile("sgd", ["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5])
    x = rng.normal(size=(5, 4))
    y = [rng.integers(0, 3, size=5), rng.normal(size=(5, 2))]
    w = rng.uniform(0, 2, size=5)
    out = model(x)
    ce, se = keras_weighted("sparse", y[0], out[0], w), keras_weighted("mse", y[1], out[1], np.ones(5))
    logs = model.evaluate(x, y, sample_weight=[w, None])
    assert math.isclose(logs["cls_loss"], ce, rel_tol=1e-12)
    assert math.isclose(logs["reg_loss"], se, rel_tol=1e-12)
    assert math.isclose(logs["loss"], ce + 0.5 * se, rel_tol=1e-12)
    assert logs == model.evaluate(x, y, sample_weight={"cls": w})
    both = model.evaluate(x, y, sample_weight=w)
    assert math.isclose(both["reg_loss"], keras_weighted("mse", y[1], out[1], w), rel_tol=1e-12)


# -- sample_weight: gradients ----------------------------------------------------------


def sgd_gradient(model, x, y, **fit_args):
    """The gradient fit applied (one full batch of plain SGD with learning rate 1)."""
    before = model.get_weights()
    model.compile(rnnrs.SGD(1.0), model.loss)
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0, **fit_args)
    after = model.get_weights()
    model.set_weights(before)
    return {k: before[k] - after[k] for k in before}


def finite_differences(model, value, eps=1e-6):
    """d value / d weight, central differences over every weight entry."""
    grads = {}
    weights = model.get_weights()
    for name, w in weights.items():
        g = np.zeros_like(w)
        for i in range(w.size):
            values = []
            for step in (eps, -eps):
                moved = w.copy()
                moved.flat[i] += step
                model.set_weights({name: moved})
                values.append(value())
            g.flat[i] = (values[0] - values[1]) / (2 * eps)
        model.set_weights({name: w})
        grads[name] = g
    return grads


@pytest.mark.parametrize("kind", sorted(LOSS_NAMES))
def test_weighted_gradient_is_derivative_of_reported_loss(kind):
    """fit's gradient with sample_weight (and class_weight where it applies) is the exact
    derivative of the weighted value evaluate reports (float64, finite differences)."""
    rng = np.random.default_rng(11)
    units = 1 if kind == "binary" else 3
    model = sequence_model(np.float64, units, seed=2)
    model.compile("sgd", LOSS_NAMES[kind])
    x = rng.normal(size=(4, 3, 3))
    y = targets(kind, rng, (4, 3, units))
    lengths = np.array([3, 1, 2, 0])
    w = rng.uniform(0.5, 2, size=(4, 3))
    extra = {"class_weight": {0: 3.0, 1: 0.25}} if kind in ("sparse", "binary", "categorical") else {}
    cw = np.ones(3) if not extra else np.array([3.0, 0.25, 1.0])
    if kind == "sparse":
        w_all = w * cw[y]
    elif kind == "categorical":
        w_all = w * cw[y.argmax(-1)]
    elif kind == "binary":
        w_all = w * cw[y[..., 0].astype(int)]
    else:
        w_all = w
    got = sgd_gradient(model, x, y, sequence_length=lengths, sample_weight=w, **extra)
    fd = finite_differences(model, lambda: model.evaluate(x, y, sequence_length=lengths, sample_weight=w_all)["loss"])
    for name in got:
        np.testing.assert_allclose(got[name], fd[name], rtol=1e-6, atol=1e-9, err_msg=name)


# -- class_weight --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["sparse", "categorical", "binary"])
def test_class_weight_equals_its_sample_weight_and_multiplies(dtype, kind):
    """class_weight = sample_weight of class_weight.get(class, 1) per row (missing classes 1),
    multiplied by sample_weight: the same training, bitwise."""
    rng = np.random.default_rng(5)
    units = 1 if kind == "binary" else 3
    x = rng.normal(size=(12, 4)).astype(dtype)
    y = targets(kind, rng, (12, units))
    ids = y.argmax(-1) if kind == "categorical" else y[:, 0].astype(int) if kind == "binary" else y
    cw = {0: 2.5, 1: 0.5}
    per_row = np.array([cw.get(int(c), 1.0) for c in ids])
    sw = rng.uniform(0, 2, size=12)
    trained = []
    for args in ({"class_weight": cw, "sample_weight": sw}, {"sample_weight": sw * per_row}):
        model = dense_model(dtype, units, seed=4)
        model.compile(rnnrs.Adam(0.05), LOSS_NAMES[kind])
        history = model.fit(x, y, batch_size=5, epochs=2, seed=1, verbose=0, **args)
        trained.append((model.get_weights(), history.history["loss"]))
    (w1, h1), (w2, h2) = trained
    assert h1 == h2
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k])


def test_class_weight_per_step_targets():
    """Per-step class ids: each step weighs class_weight[its id]."""
    model, x, y = sparse_sequence_case(4, 3, 2)
    lengths = np.array([3, 2, 1, 3])
    table = np.array([1.0, 4.0, 0.0])
    g1 = sgd_gradient(model, x, y, sequence_length=lengths, class_weight={1: 4.0, 2: 0})
    g2 = sgd_gradient(model, x, y, sequence_length=lengths, sample_weight=table[y])
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])


@pytest.mark.parametrize(
    ("loss", "class_weight", "exc"),
    [
        ("sparse_categorical_crossentropy", [1.0, 2.0], TypeError),  # not a dict
        ("sparse_categorical_crossentropy", {"0": 1.0}, TypeError),  # key not an integer
        ("sparse_categorical_crossentropy", {1.0: 1.0}, TypeError),
        ("sparse_categorical_crossentropy", {True: 1.0}, TypeError),
        ("sparse_categorical_crossentropy", {3: 1.0}, ValueError),  # no class 3 of 3
        ("sparse_categorical_crossentropy", {-1: 1.0}, ValueError),
        ("sparse_categorical_crossentropy", {0: -1.0}, ValueError),
        ("sparse_categorical_crossentropy", {0: float("nan")}, ValueError),
        ("sparse_categorical_crossentropy", {0: float("inf")}, ValueError),
        ("sparse_categorical_crossentropy", {0: "2"}, TypeError),
        ("mse", {0: 1.0}, ValueError),  # a loss without classes
        ("mae", {}, ValueError),
    ],
)
def test_class_weight_refused(loss, class_weight, exc):
    model = dense_model(np.float32, 3)
    model.compile("sgd", loss)
    y = np.array([0, 1, 2, 0]) if loss.startswith("sparse") else np.zeros((4, 3))
    with raises_naming(exc, "^class_weight"):
        model.fit(np.ones((4, 4)), y, verbose=0, class_weight=class_weight)


def test_class_weight_refused_for_several_outputs_and_callables():
    inp = rnnrs.Input((4,))
    model = rnnrs.Model(inp, [rnnrs.Dense(3)(inp), rnnrs.Dense(3)(inp)])
    model.compile("sgd", "sparse_categorical_crossentropy")
    y = np.array([0, 1, 2, 0])
    with raises_naming(ValueError, "^class_weight"):
        model.fit(np.ones((4, 4)), [y, y], verbose=0, class_weight={0: 2.0})
    single = dense_model(np.float32, 3)
    single.compile("sgd", lambda t, p: (0.0, np.zeros_like(p)))
    with raises_naming(ValueError, "^class_weight"):
        single.fit(np.ones((4, 4)), np.zeros((4, 3)), verbose=0, class_weight={0: 2.0})
    binary = dense_model(np.float32, 2)
    binary.compile("sgd", "binary_crossentropy")
    with raises_naming(ValueError, "^class_weight"):  # two units: which one is the class?
        binary.fit(np.ones((4, 4)), np.zeros((4, 2)), verbose=0, class_weight={0: 2.0})
    one = dense_model(np.float32, 1)
    one.compile("sgd", "binary_crossentropy")
    with raises_naming(ValueError, "^class_weight"):  # a probability is no class
        one.fit(np.ones((2, 4)), np.array([[0.5], [1.0]]), verbose=0, class_weight={0: 2.0})


# -- sample_weight: refused values ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "exc"),
    [
        (np.array([1.0, -0.5, 1.0, 1.0]), ValueError),
        (np.array([1.0, np.nan, 1.0, 1.0]), ValueError),
        (np.array([1.0, np.inf, 1.0, 1.0]), ValueError),
        (np.ones(3), ValueError),  # one row short
        (np.ones((4, 2)), ValueError),  # [B, T] for outputs without a time axis
        (np.ones((4, 1)), ValueError),
        (2.0, ValueError),  # a scalar is not one weight per row
        (np.array(["a", "b", "c", "d"]), TypeError),
        (np.ones(4, bool), TypeError),
        ([[1.0], [1.0, 2.0]], ValueError),  # ragged
    ],
)
@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_sample_weight_refused(weight, exc, method):
    model = dense_model(np.float32, 3)
    model.compile("sgd", "sparse_categorical_crossentropy")
    call = getattr(model, method)
    kwargs = {"verbose": 0} if method == "fit" else {}
    with raises_naming(exc, "^sample_weight"):
        call(np.ones((4, 4)), np.array([0, 1, 2, 0]), sample_weight=weight, **kwargs)


def test_sample_weight_refused_structures():
    inp = rnnrs.Input((4,))
    model = rnnrs.Model(inp, [rnnrs.Dense(3, name="a")(inp), rnnrs.Dense(2, name="b")(inp)])
    model.compile("sgd", ["sparse_categorical_crossentropy", "mse"])
    x, y = np.ones((4, 4)), [np.array([0, 1, 2, 0]), np.zeros((4, 2))]
    for bad in ([np.ones(4)], {"c": np.ones(4)}, "ones", [np.ones(4), np.ones(3)]):
        with raises_naming(ValueError, "^sample_weight"):
            model.evaluate(x, y, sample_weight=bad)
    custom = dense_model(np.float32, 3)
    custom.compile("sgd", lambda t, p: (0.0, np.zeros_like(p)))
    with raises_naming(ValueError, "^sample_weight"):  # a callable returns one value: nothing to weigh
        custom.fit(np.ones((4, 4)), np.zeros((4, 3)), verbose=0, sample_weight=np.ones(4))


def test_sample_weight_follows_rows_through_shuffle_and_validation_split():
    """Shuffling permutes the weights with their rows, validation_split cuts them with their rows:
    rows of weight 0 may be replaced by anything without changing training."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=20)
    w = (rng.random(20) < 0.5).astype(np.float64)
    y2 = np.where(w == 0, (y + 1) % 3, y)  # only weight-0 rows differ
    results = []
    for targets_ in (y, y2):
        model = dense_model(np.float32, 3, seed=1)
        model.compile(rnnrs.Adam(0.1), "sparse_categorical_crossentropy")
        h = model.fit(x, targets_, batch_size=4, epochs=3, seed=3, verbose=0, sample_weight=w, validation_split=0.25)
        results.append((model.get_weights(), h.history["loss"]))
    for k in results[0][0]:
        np.testing.assert_array_equal(results[0][0][k], results[1][0][k])
    assert results[0][1] == results[1][1]


def test_metrics_are_not_weighted():
    """As Keras 3's compile(metrics=...): metrics ignore sample_weight and class_weight."""
    rng = np.random.default_rng(0)
    model = dense_model(np.float64, 3)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = rng.normal(size=(10, 4))
    y = rng.integers(0, 3, size=10)
    plain = model.evaluate(x, y)["accuracy"]
    assert model.evaluate(x, y, sample_weight=rng.uniform(0, 5, size=10))["accuracy"] == plain


# -- validation data without lengths ------------------------------------------------------------


def _lengths_warnings(record):
    return [w for w in record if issubclass(w.category, UserWarning) and "validation_data" in str(w.message)]


def test_warns_when_validation_data_has_no_lengths():
    rng = np.random.default_rng(0)
    model = sequence_model(np.float32, 3)
    model.compile("adam", "sparse_softmax_cross_entropy")
    x = rng.normal(size=(6, 4, 3)).astype(np.float32)
    y = rng.integers(0, 3, size=(6, 4))
    lengths = np.array([4, 2, 3, 1, 4, 2])
    with pytest.warns(UserWarning, match="^validation_data: training uses sequence_length") as record:
        model.fit(x, y, sequence_length=lengths, validation_data=(x, y), verbose=0)
    assert len(_lengths_warnings(record)) == 1
    for kwargs in (
        {"sequence_length": lengths, "validation_data": (x, y, lengths)},  # both
        {"validation_data": (x, y)},  # neither
        {"sequence_length": lengths, "validation_split": 0.5},  # split with their lengths
        {"validation_data": (x, y, lengths)},  # only validation
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(x, y, verbose=0, **kwargs)
        assert _lengths_warnings(caught) == [], kwargs


# -- fit's docstring -------------------------------------------------------------------------------


def test_fit_docstring_covers_every_argument():
    doc = inspect.getdoc(rnnrs.Model.fit)
    assert doc is not None
    for name in inspect.signature(rnnrs.Model.fit).parameters:
        if name != "self":
            assert f"\n    {name}:" in doc, name
    evaluate_doc = inspect.getdoc(rnnrs.Model.evaluate)
    assert evaluate_doc is not None and "sample_weight" in evaluate_doc


# -- truncated BPTT ---------------------------------------------------------------------------------


class KeptStateRNN(rnnrs.RNN):
    """A stand-in for ``RNN(cell, stateful=True)`` with the interface ``fit(bptt_steps=...)``
    relies on: ``stateful`` True, a detached copy of each call's final state used as the next
    call's initial state, ``reset_states()`` back to zeros."""

    def __init__(self, cell, return_sequences=True, name=None):
        super().__init__(cell, return_sequences=return_sequences, name=name)
        self.stateful = True
        self.kept = None

    def reset_states(self):
        self.kept = None
        inherited = getattr(super(), "reset_states", None)
        if inherited is not None:  # an RNN with its own kept state forgets it too
            inherited()

    def _apply(self, inputs, lengths, training, state=None):
        applied = super()._apply(inputs, lengths, training, self.kept if state is None else state)
        self.kept = np.array(applied.state, copy=True)
        return applied


def bptt_model(dtype=np.float64, stateful=True, seed=0, units=3):
    cell = rnnrs.GRUCell(4, dtype=dtype, seed=seed)
    rnn = KeptStateRNN(cell) if stateful else rnnrs.RNN(cell, return_sequences=True)
    model = rnnrs.Sequential([rnn, rnnrs.Dense(units, dtype=dtype, seed=seed + 1)])
    model.build(3)
    return model


def plain_copy(model):
    """The same model (same weights) without kept state, for evaluate / call references."""
    plain = bptt_model(model.dtype, stateful=False)
    plain.set_weights(model.get_weights())
    return plain


def bptt_data(rows=5, steps=7, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, steps, 3)).astype(dtype), rng.integers(0, 3, size=(rows, steps))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("k", [7, 8, 100])
def test_bptt_with_k_at_least_t_is_ordinary_training(dtype, k):
    """bptt_steps >= T: one chunk per batch from zero states, bitwise the ordinary training
    (of the same model without kept state)."""
    x, y = bptt_data(dtype=dtype)
    lengths = np.array([7, 3, 0, 5, 6])
    runs = []
    for stateful, extra in ((True, {"bptt_steps": k}), (False, {})):
        model = bptt_model(dtype, stateful)
        model.compile(rnnrs.Adam(0.05), "sparse_softmax_cross_entropy", metrics=["accuracy"])
        h = model.fit(
            x, y, batch_size=2, epochs=2, seed=4, verbose=0, sequence_length=lengths,
            validation_data=(x, y, lengths), **extra,
        )  # fmt: skip
        runs.append((model.get_weights(), h.history))
    assert runs[0][1] == runs[1][1]
    for name in runs[0][0]:
        np.testing.assert_array_equal(runs[0][0][name], runs[1][0][name])


class RecordingSGD(rnnrs.SGD):
    """SGD that keeps every gradient it is given (one entry per optimizer step); with
    ``frozen`` it applies none (the weights stay put)."""

    def __init__(self, lr, frozen=False):
        super().__init__(lr)
        self.steps = []
        self.frozen = frozen

    def apply_gradients(self, params, grads, **kwargs):
        self.steps.append({k: np.array(v, copy=True) for k, v in grads.items()})
        if not self.frozen:
            super().apply_gradients(params, grads, **kwargs)


def chunk_reference(model, x, y, lengths, state):
    """Weight gradient of the mean cross-entropy of one chunk run from ``state`` (None: zeros),
    and the chunk's final state: a model without kept state, run on that chunk alone."""
    rnn, dense = model.layers
    plain = rnnrs.Sequential([rnnrs.RNN(rnn.cell, return_sequences=True), dense])
    ls = [lengths]
    fwd = plain._forward([x], ls, True, states=[state, None])
    mask = None if lengths is None else rnnrs.sequence_mask(lengths, x.shape[1], x.dtype)
    _, d = rnnrs.sparse_softmax_cross_entropy(y, fwd.outputs[0], mask)
    grads = plain._backward(fwd, [d])
    return {k.replace(plain.layers[0].name, rnn.name, 1): v for k, v in grads.items()}, fwd.states[0]


@pytest.mark.parametrize("with_lengths", [False, True])
def test_bptt_chunks_are_separate_steps_carrying_the_state(with_lengths):
    """k < T: the first chunk's gradient is that of the model run on the chunk alone from zeros;
    its weights are updated; the second chunk starts from the first chunk's final state (computed
    before the update), with gradients cut at the border; lengths are cut as clip(l - t0, 0, k)."""
    x, y = bptt_data(rows=3, steps=7)
    lengths = np.array([7, 2, 5]) if with_lengths else None
    k, lr = 3, 0.1
    model = bptt_model()
    opt = RecordingSGD(lr)
    model.compile(opt, "sparse_softmax_cross_entropy")
    start = model.get_weights()
    model.fit(x, y, batch_size=3, epochs=1, shuffle=False, verbose=0, sequence_length=lengths, bptt_steps=k)
    assert len(opt.steps) == math.ceil(7 / k)

    ref = bptt_model()
    ref.set_weights(start)
    state = None
    weights = start
    for c, got in enumerate(opt.steps):
        t0, t1 = c * k, min(7, (c + 1) * k)
        ls = None if lengths is None else np.clip(lengths - t0, 0, t1 - t0)
        want, state = chunk_reference(ref, x[:, t0:t1], y[:, t0:t1], ls, state)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-14, err_msg=f"chunk {c} {name}")
        weights = {n: weights[n] - lr * want[n] for n in weights}
        ref.set_weights(weights)
    for name, w in model.get_weights().items():
        np.testing.assert_allclose(w, weights[name], rtol=1e-12, atol=1e-14)


def test_bptt_logs_cover_every_chunk_and_skips_chunks_past_all_lengths():
    """The logged loss is the mean over every (unmasked) step of every chunk, as evaluate gives
    on the same weights; a chunk past every row's length is not run (no optimizer step)."""
    x, y = bptt_data(rows=4, steps=8)
    lengths = np.array([3, 1, 4, 2])  # every row ends before step 4: chunks [4, 8) are skipped
    model = bptt_model()
    opt = RecordingSGD(0.1, frozen=True)  # the logged loss is comparable to evaluate's
    model.compile(opt, "sparse_softmax_cross_entropy", metrics=["accuracy"])
    h = model.fit(x, y, batch_size=4, epochs=1, verbose=0, sequence_length=lengths, bptt_steps=2)
    assert len(opt.steps) == 2
    plain = plain_copy(model)
    plain.compile("sgd", "sparse_softmax_cross_entropy", metrics=["accuracy"])
    logs = plain.evaluate(x, y, sequence_length=lengths, batch_size=4)
    assert math.isclose(h.history["loss"][0], logs["loss"], rel_tol=1e-12)
    assert h.history["accuracy"][0] == logs["accuracy"]


def test_bptt_weights_are_cut_with_the_targets():
    """Per-step sample_weight is cut into chunks with the targets."""
    x, y = bptt_data(rows=3, steps=4)
    w = np.random.default_rng(1).uniform(0, 2, size=(3, 4))
    model = bptt_model()
    opt = RecordingSGD(0.1, frozen=True)
    model.compile(opt, "sparse_softmax_cross_entropy")
    h = model.fit(x, y, batch_size=3, verbose=0, sample_weight=w, bptt_steps=2)
    plain = plain_copy(model)
    plain.compile("sgd", "sparse_softmax_cross_entropy")
    assert math.isclose(h.history["loss"][0], plain.evaluate(x, y, sample_weight=w)["loss"], rel_tol=1e-12)


@pytest.mark.parametrize(
    ("value", "exc"),
    [(0, ValueError), (-2, ValueError), (2.0, TypeError), ("3", TypeError), (True, TypeError), ([2], TypeError)],
)
def test_bptt_steps_refused_values(value, exc):
    x, y = bptt_data()
    model = bptt_model()
    model.compile("sgd", "sparse_softmax_cross_entropy")
    with raises_naming(exc, "^bptt_steps"):
        model.fit(x, y, verbose=0, bptt_steps=value)


def test_bptt_steps_refused_models():
    x, y = bptt_data()
    plain = bptt_model(stateful=False)
    plain.compile("sgd", "sparse_softmax_cross_entropy")
    with raises_naming(ValueError, "^bptt_steps"):  # nothing carries the state
        plain.fit(x, y, verbose=0, bptt_steps=2)
    last_step = rnnrs.Sequential([KeptStateRNN(rnnrs.GRUCell(4, dtype=np.float64), False), rnnrs.Dense(3)])
    last_step.compile("sgd", "sparse_softmax_cross_entropy")
    with raises_naming(ValueError, "^bptt_steps"):  # one output per row: nothing to cut
        last_step.fit(x, y[:, 0], verbose=0, bptt_steps=2)


@pytest.mark.skipif(
    "stateful" not in inspect.signature(rnnrs.RNN).parameters,
    reason="runs where rnnrs.RNN has stateful=True (the layers of the recurrent tier)",
)
def test_bptt_with_rnnrs_stateful_rnn():
    """The same contract with the library's own RNN(cell, stateful=True): k >= T is ordinary
    training, and each chunk's gradient is the chunk's alone from the carried state."""
    x, y = bptt_data(rows=3, steps=6)

    def model(stateful):
        cell = rnnrs.GRUCell(4, dtype=np.float64, seed=0)
        built = rnnrs.Sequential(
            [rnnrs.RNN(cell, return_sequences=True, stateful=stateful), rnnrs.Dense(3, dtype=np.float64, seed=1)]
        )
        built.build(3)
        return built

    runs = []
    for stateful, extra in ((True, {"bptt_steps": 6}), (False, {})):
        m = model(stateful)
        m.compile(rnnrs.Adam(0.05), "sparse_softmax_cross_entropy")
        m.fit(x, y, batch_size=2, epochs=2, seed=1, verbose=0, **extra)
        runs.append(m.get_weights())
    for name in runs[0]:
        np.testing.assert_array_equal(runs[0][name], runs[1][name])
    m = model(True)
    opt = RecordingSGD(0.1)
    m.compile(opt, "sparse_softmax_cross_entropy")
    start = m.get_weights()
    m.fit(x, y, batch_size=3, shuffle=False, verbose=0, bptt_steps=4)
    ref = model(False)
    ref.set_weights(start)
    fwd = ref._forward([x[:, :4]], [None], True)
    _, d = rnnrs.sparse_softmax_cross_entropy(y[:, :4], fwd.outputs[0])
    first = ref._backward(fwd, [d])
    for name in first:
        np.testing.assert_allclose(opt.steps[0][name], first[name], rtol=1e-12, atol=1e-14)
    assert len(opt.steps) == 2


# -- hostile values for the new arguments ---------------------------------------------------------


@settings(
    max_examples=max(200, settings.default.max_examples * 8),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    deadline=None,
)
@given(data=st.data())
def test_new_arguments_refuse_hostile_values_cleanly(data):
    """sample_weight, class_weight and bptt_steps given anything: a result, or a ValueError /
    TypeError naming an argument of the call (test_fuzz's oracle)."""
    method = data.draw(st.sampled_from(["fit", "evaluate", "fit_bptt"]))
    x, y = bptt_data(rows=4, steps=3, dtype=np.float32)
    model = bptt_model(np.float32, stateful=method == "fit_bptt")
    model.compile("sgd", "sparse_softmax_cross_entropy", metrics=["accuracy"])
    if method == "evaluate":
        good = {"x": x, "y": y, "sample_weight": np.ones((4, 3))}
        fn = model.evaluate
    else:
        good = {"x": x, "y": y, "verbose": 0, "sample_weight": np.ones(4), "class_weight": {1: 2.0}}
        if method == "fit_bptt":
            good["bptt_steps"] = 2
        fn = model.fit
    names = [n for n in ("sample_weight", "class_weight", "bptt_steps") if n in good]
    args, mutated = data.draw(mutations(good, names))
    call_and_check(fn, args, mutated, set(good))
