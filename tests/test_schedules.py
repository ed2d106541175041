"""Learning-rate schedules (Keras 3's formulas), any callable of the step as
learning rate for every optimizer, AdamW and Adagrad against NumPy references,
bad schedule outputs, and saving/loading optimizers with schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnrs
from helpers import raises_naming
from rnnrs import schedules as S

STEPS = np.arange(0, 400)
rates = st.floats(0.0, 10.0)
positive_steps = st.floats(0.5, 200.0)


# -- NumPy references, written from Keras 3's learning_rate_schedule.py -------------
def ref_exponential(step, lr0, decay_steps, decay_rate, staircase):
    p = step / decay_steps
    if staircase:
        p = np.floor(p)
    return lr0 * np.power(decay_rate, p)


def ref_piecewise(step, boundaries, values):
    out = np.where(step <= boundaries[0], values[0], 0.0)
    out = out + np.where(step > boundaries[-1], values[-1], 0.0)
    for low, high, v in zip(boundaries[:-1], boundaries[1:], values[1:-1]):
        out = out + np.where((step > low) & (step <= high), v, 0.0)
    return out


def ref_cosine(step, lr0, decay_steps, alpha, warmup_target, warmup_steps):
    def decay(s, start):
        return start * ((1 - alpha) * 0.5 * (1 + np.cos(np.pi * s / decay_steps)) + alpha)

    if warmup_target is None:
        return decay(np.minimum(step, decay_steps), lr0)
    s = np.minimum(step, decay_steps + warmup_steps)
    with np.errstate(divide="ignore", invalid="ignore"):
        warm = (warmup_target - lr0) * (s / warmup_steps) + lr0
    return np.where(s < warmup_steps, warm, decay(s - warmup_steps, warmup_target))


def ref_inverse(step, lr0, decay_steps, decay_rate, staircase):
    p = step / decay_steps
    if staircase:
        p = np.floor(p)
    return lr0 / (1 + decay_rate * p)


def values_of(schedule):
    return np.array([schedule(int(k)) for k in STEPS])


@settings(max_examples=60, deadline=None)
@given(rates, positive_steps, st.floats(0.0, 1.2), st.booleans())
def test_exponential_decay_matches_reference(lr0, decay_steps, decay_rate, staircase):
    got = values_of(S.ExponentialDecay(lr0, decay_steps, decay_rate, staircase=staircase))
    np.testing.assert_allclose(got, ref_exponential(STEPS, lr0, decay_steps, decay_rate, staircase), rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=6, unique=True), st.data())
def test_piecewise_constant_matches_reference(bounds, data):
    bounds = sorted(bounds)
    values = data.draw(st.lists(rates, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    got = values_of(S.PiecewiseConstantDecay(bounds, values))
    np.testing.assert_array_equal(got, ref_piecewise(STEPS, np.array(bounds), values))


@settings(max_examples=80, deadline=None)
@given(rates, positive_steps, st.floats(0.0, 1.0), st.one_of(st.none(), rates), st.integers(0, 150))
def test_cosine_decay_matches_reference(lr0, decay_steps, alpha, warmup_target, warmup_steps):
    if warmup_target is None:
        warmup_steps = 0
    schedule = S.CosineDecay(lr0, decay_steps, alpha, warmup_target=warmup_target, warmup_steps=warmup_steps)
    want = ref_cosine(STEPS.astype(float), lr0, decay_steps, alpha, warmup_target, warmup_steps)
    np.testing.assert_allclose(values_of(schedule), want, rtol=1e-12, atol=1e-15)


def test_cosine_warmup_by_hand():
    """Linear rise from initial_learning_rate to warmup_target, then the cosine fall to alpha * target."""
    s = S.CosineDecay(0.1, decay_steps=4, alpha=0.5, warmup_target=1.1, warmup_steps=2)
    assert [s(k) for k in (0, 1, 2)] == pytest.approx([0.1, 0.6, 1.1])
    # step 4 = half way through the decay: 1.1 * (0.5 * 0.5 + 0.5)
    assert s(4) == pytest.approx(1.1 * 0.75)
    assert s(6) == s(100) == pytest.approx(0.55)


@settings(max_examples=60, deadline=None)
@given(rates, positive_steps, st.floats(0.0, 5.0), st.booleans())
def test_inverse_time_decay_matches_reference(lr0, decay_steps, decay_rate, staircase):
    got = values_of(S.InverseTimeDecay(lr0, decay_steps, decay_rate, staircase=staircase))
    np.testing.assert_allclose(got, ref_inverse(STEPS, lr0, decay_steps, decay_rate, staircase), rtol=1e-12)


ALL_SCHEDULES = [
    S.ExponentialDecay(0.1, 3, 0.5, staircase=True),
    S.PiecewiseConstantDecay([1, 3], [0.2, 0.1, 0.05]),
    S.CosineDecay(0.0, 4, alpha=0.1, warmup_target=0.2, warmup_steps=2),
    S.InverseTimeDecay(0.3, 2.0, 0.5),
]


@pytest.mark.parametrize("schedule", ALL_SCHEDULES, ids=lambda s: type(s).__name__)
def test_config_round_trip(schedule):
    config = schedule.get_config()
    again = type(schedule).from_config(config)
    assert again == schedule and again.get_config() == config
    rebuilt = S.schedule_from_config(S.schedule_to_config(schedule))
    assert [rebuilt(k) for k in range(10)] == [schedule(k) for k in range(10)]


def test_bad_schedule_arguments():
    with raises_naming(ValueError, "decay_steps"):
        S.ExponentialDecay(0.1, 0, 0.5)
    with raises_naming(TypeError, "initial_learning_rate"):
        S.InverseTimeDecay("0.1", 10, 0.5)  # type: ignore[arg-type]
    with raises_naming(ValueError, "initial_learning_rate"):
        S.CosineDecay(-1.0, 10)
    with raises_naming(ValueError, "alpha"):
        S.CosineDecay(0.1, 10, alpha=1.5)
    with raises_naming(ValueError, "warmup_steps"):
        S.CosineDecay(0.1, 10, warmup_steps=5)  # no warmup_target: Keras would ignore it silently
    with raises_naming(TypeError, "staircase"):
        S.ExponentialDecay(0.1, 10, 0.5, staircase="yes")  # type: ignore[arg-type]
    with raises_naming(ValueError, "values"):
        S.PiecewiseConstantDecay([10, 20], [0.1, 0.01])
    with raises_naming(ValueError, "boundaries"):
        S.PiecewiseConstantDecay([20, 10], [0.1, 0.01, 0.001])
    with raises_naming(TypeError, "boundaries"):
        S.PiecewiseConstantDecay(10, [0.1, 0.01])  # type: ignore[arg-type]
    with raises_naming(ValueError, r"values\[1\]"):
        S.PiecewiseConstantDecay([10], [0.1, float("nan")])
    with raises_naming(ValueError, "step"):
        S.ExponentialDecay(0.1, 10, 0.5)(-1)
    with raises_naming(ValueError, "learning_rate"):
        S.schedule_from_config({"class_name": "os.system", "config": {}})
    with raises_naming(ValueError, "learning_rate"):
        S.schedule_from_config({"class_name": "CosineDecay", "config": {"decay_steps": {"x": 1}}})
    with raises_naming(ValueError, "learning_rate"):
        S.schedule_from_config({"class_name": "CosineDecay", "config": {"initial_learning_rate": 0.1}})


# -- schedules and callables in every optimizer --------------------------------------
def ref_run(kind, lrs, grads, p0, dtype):
    """Hand-written NumPy reference: ``lrs[k]`` is the rate of update k (0-based)."""
    p = p0.astype(np.float64).copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    a = np.zeros_like(p)
    ms = np.ones_like(p)
    acc = np.full_like(p, 0.1)
    out = []
    for k, (lr, g) in enumerate(zip(lrs, grads), start=1):
        if kind == "sgd":
            p = p - lr * g
        elif kind == "momentum":
            a = 0.9 * a + g
            p = p - lr * a
        elif kind == "rmsprop":
            ms = 0.9 * ms + 0.1 * g * g
            p = p - lr * g / np.sqrt(ms + 1e-10)
        elif kind in ("adam", "adamw"):
            eps = 1e-8 if kind == "adam" else 1e-7
            if kind == "adamw":  # Keras 3: decay first, with the same rate
                p = p - p * 0.004 * lr
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            p = p - lr * math.sqrt(1 - 0.999**k) / (1 - 0.9**k) * m / (np.sqrt(v) + eps)
        elif kind == "adagrad":
            acc = acc + g * g
            p = p - lr * g / np.sqrt(acc + 1e-7)
        out.append(p.copy())
    return out


KINDS = {
    "sgd": rnnrs.SGD,
    "momentum": rnnrs.Momentum,
    "rmsprop": rnnrs.RMSProp,
    "adam": rnnrs.Adam,
    "adamw": rnnrs.AdamW,
    "adagrad": rnnrs.Adagrad,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(
    "schedule",
    [0.05, *ALL_SCHEDULES, lambda step: 0.1 / (1 + step)],
    ids=["number", "exponential", "piecewise", "cosine", "inverse", "lambda"],
)
def test_every_optimizer_uses_schedule_at_step(kind, schedule, dtype):
    """The rate of the k-th update (k from 0) is schedule(k), evaluated once per apply_gradients."""
    rng = np.random.default_rng(3)
    grads = [rng.normal(size=(2, 3)) for _ in range(6)]
    p0 = rng.normal(size=(2, 3))
    opt = KINDS[kind](learning_rate=schedule)
    params = {"w": p0.astype(dtype)}
    got, used = [], []
    for g in grads:
        opt.apply_gradients(params, {"w": g.astype(dtype)})
        got.append(params["w"].copy())
        used.append(opt.last_learning_rate)
    lrs = [schedule(k) if callable(schedule) else schedule for k in range(len(grads))]
    assert used == lrs
    want = ref_run(kind, lrs, [g.astype(dtype).astype(np.float64) for g in grads], p0.astype(dtype), dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for k, (a, b) in enumerate(zip(got, want)):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=f"{kind} step {k}")


def test_callable_called_once_per_update_with_the_step():
    calls = []

    def lr(step):
        calls.append(step)
        return 0.01

    opt = rnnrs.Adam(lr)
    params = {"w": np.ones(2), "b": np.ones(3)}
    for _ in range(3):
        opt.apply_gradients(params, {"w": np.ones(2), "b": np.ones(3)})
    assert calls == [0, 1, 2]


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(
    ("value", "exc"),
    [
        ("0.1", TypeError),
        (None, TypeError),
        (np.zeros(2), TypeError),
        (True, TypeError),
        (-0.1, ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
    ],
    ids=["str", "none", "array", "bool", "negative", "nan", "inf"],
)
def test_bad_schedule_output_changes_nothing(kind, value, exc):
    """A schedule returning a non-number (TypeError) or a negative/NaN/inf rate
    (ValueError) is refused, naming learning_rate, before any parameter, slot or counter moves."""
    opt = KINDS[kind](learning_rate=lambda step: 0.01 if step < 2 else value)
    params = {"w": np.ones(3)}
    for _ in range(2):
        opt.apply_gradients(params, {"w": np.full(3, 0.5)})
    before, state = params["w"].copy(), opt.get_state()
    with raises_naming(exc, "learning_rate"):
        opt.apply_gradients(params, {"w": np.full(3, 0.5)})
    np.testing.assert_array_equal(params["w"], before)
    assert opt.iterations == 2
    after = opt.get_state()
    assert after.keys() == state.keys() and all(np.array_equal(after[k], state[k]) for k in state)


def test_exponential_overflow_is_refused_by_the_optimizer():
    opt = rnnrs.SGD(S.ExponentialDecay(1.0, 1, 1e10))
    opt.iterations = 400  # 1e10 ** 400 overflows float64
    with raises_naming(ValueError, "learning_rate"):
        opt.apply_gradients({"w": np.ones(1)}, {"w": np.ones(1)})


def test_learning_rate_assignment_and_bad_values():
    opt = rnnrs.Adagrad()
    opt.learning_rate = S.InverseTimeDecay(0.5, 1, 1.0)
    params = {"w": np.zeros(1)}
    opt.apply_gradients(params, {"w": np.ones(1)})
    opt.apply_gradients(params, {"w": np.ones(1)})
    assert opt.last_learning_rate == 0.25
    opt.learning_rate = 0.125
    opt.apply_gradients(params, {"w": np.ones(1)})
    assert opt.last_learning_rate == 0.125
    with raises_naming(TypeError, "learning_rate"):
        opt.learning_rate = "fast"  # type: ignore[assignment]
    with raises_naming(ValueError, "learning_rate"):
        opt.learning_rate = 0.0
    assert opt.learning_rate == 0.125


# -- AdamW and Adagrad ---------------------------------------------------------------
def test_adamw_and_adagrad_defaults_and_bad_hyperparameters():
    w = rnnrs.AdamW()
    assert (w.learning_rate, w.weight_decay, w.beta1, w.beta2, w.epsilon) == (0.001, 0.004, 0.9, 0.999, 1e-7)
    a = rnnrs.Adagrad()
    assert (a.learning_rate, a.initial_accumulator_value, a.epsilon) == (0.001, 0.1, 1e-7)
    with raises_naming(ValueError, "weight_decay"):
        rnnrs.AdamW(weight_decay=-0.1)
    with raises_naming(TypeError, "weight_decay"):
        rnnrs.AdamW(weight_decay=None)  # type: ignore[arg-type]
    with raises_naming(ValueError, "initial_accumulator_value"):
        rnnrs.Adagrad(initial_accumulator_value=-1)
    with raises_naming(ValueError, "epsilon"):
        rnnrs.Adagrad(initial_accumulator_value=0.0, epsilon=0.0)


def test_adamw_zero_gradient_only_decays():
    """With g = 0 the Adam part is 0, so one step is exactly p * (1 - lr * wd) (decoupled decay)."""
    opt = rnnrs.AdamW(0.1, weight_decay=0.5)
    params = {"w": np.array([2.0, -4.0])}
    opt.apply_gradients(params, {"w": np.zeros(2)})
    np.testing.assert_allclose(params["w"], [2.0 * 0.95, -4.0 * 0.95], rtol=1e-15)


# -- compile and save / load ---------------------------------------------------------
def tiny_model(optimizer):
    model = rnnrs.Sequential([rnnrs.RNN(rnnrs.GRUCell(4)), rnnrs.Dense(2)])
    model.compile(optimizer, "sparse_softmax_cross_entropy")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 5, 3)), rng.integers(0, 2, size=8)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    return model, x, y


def test_compile_by_name():
    for name, cls in (("adamw", rnnrs.AdamW), ("adagrad", rnnrs.Adagrad), ("AdamW", rnnrs.AdamW)):
        model, _, _ = tiny_model(name)
        assert type(model.optimizer) is cls


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnrs.SGD(0.05),
        lambda: rnnrs.Momentum(S.PiecewiseConstantDecay([2], [0.05, 0.01])),
        lambda: rnnrs.RMSProp(S.ExponentialDecay(0.01, 2, 0.9, staircase=True)),
        lambda: rnnrs.Adam(S.InverseTimeDecay(0.01, 1, 0.5)),
        lambda: rnnrs.AdamW(S.CosineDecay(0.0, 10, warmup_target=0.01, warmup_steps=3), weight_decay=0.01),
        lambda: rnnrs.Adagrad(0.05, initial_accumulator_value=0.2),
    ],
    ids=["sgd", "momentum", "rmsprop", "adam", "adamw", "adagrad"],
)
def test_save_load_round_trip_continues_identically(tmp_path, make):
    model, x, y = tiny_model(make())
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = rnnrs.load_model(path)
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 4
    for m in (model, loaded):  # one more update each: same rate, same weights
        m.fit(x[:4], y[:4], epochs=1, batch_size=4, verbose=0, shuffle=False)
    assert loaded.optimizer.last_learning_rate == model.optimizer.last_learning_rate
    for k, v in model.get_weights().items():
        np.testing.assert_array_equal(loaded.get_weights()[k], v)


def test_save_refuses_a_plain_callable_learning_rate(tmp_path):
    model, _, _ = tiny_model(rnnrs.Adam(lambda step: 0.001))
    with raises_naming(TypeError, "learning_rate"):
        model.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_load_refuses_bad_schedule_configs(tmp_path):
    """The schedule's configuration in a file is untrusted: only SCHEDULES, scalar arguments the class accepts."""
    import json

    model, _, _ = tiny_model(rnnrs.Adam(S.ExponentialDecay(0.01, 2, 0.5)))
    path = tmp_path / "m.npz"
    model.save(path)
    arrays = dict(np.load(path))
    config = json.loads(str(arrays["__rnnrs_model__"]))
    bad_schedules = [
        {"class_name": "LearningRateSchedule", "config": {}},
        {"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1}},
        {
            "class_name": "ExponentialDecay",
            "config": {"initial_learning_rate": 0.1, "decay_steps": -2, "decay_rate": 1},
        },
        {"class_name": "ExponentialDecay", "config": {"initial_learning_rate": {"a": [1]}}},
        {"class_name": "ExponentialDecay"},
        {"class_name": "ExponentialDecay", "config": [1, 2]},
        {"class_name": "ExponentialDecay", "config": {}, "module": "os"},
        {"config": {}},
    ]
    for i, bad in enumerate(bad_schedules):
        config["compile"]["optimizer"]["config"]["learning_rate"] = bad
        arrays["__rnnrs_model__"] = np.array(json.dumps(config))
        target = tmp_path / f"bad{i}.npz"
        np.savez(target, **arrays)
        with raises_naming(ValueError, "learning_rate"):
            rnnrs.load_model(target)


def test_staircase_takes_numpy_bools_like_every_flag():
    """``staircase`` follows the package's flags: True, False or a NumPy bool; 1 is refused."""
    assert rnnrs.schedules.ExponentialDecay(0.1, 10, 0.5, staircase=np.bool_(True)).staircase is True
    with pytest.raises(TypeError, match="^staircase"):
        rnnrs.schedules.ExponentialDecay(0.1, 10, 0.5, staircase=1)
