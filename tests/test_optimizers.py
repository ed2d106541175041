"""Optimizers against hand-computed update sequences; global-norm clipping;
state save/restore; bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnnrs
from helpers import raises_naming, seeds

# One parameter, three steps with these gradients; the expected values below
# are worked out by hand from each optimizer's documented rule.
GRADS = [0.5, -1.0, 2.0]


def run(opt, grads=GRADS, start=1.0, dtype=np.float64):
    params = {"w": np.array([start], dtype=dtype)}
    seen = []
    for g in grads:
        opt.apply_gradients(params, {"w": np.array([g], dtype=dtype)})
        seen.append(float(params["w"][0]))
    return seen


def test_sgd_by_hand():
    # p = 1 - 0.1*0.5 = 0.95; 0.95 + 0.1 = 1.05; 1.05 - 0.2 = 0.85
    assert run(rnnrs.SGD(0.1)) == pytest.approx([0.95, 1.05, 0.85], abs=1e-15)


def test_momentum_by_hand():
    # a: 0.5, 0.9*0.5 - 1 = -0.55, 0.9*-0.55 + 2 = 1.505
    # p: 1 - 0.1*0.5 = 0.95; 0.95 + 0.055 = 1.005; 1.005 - 0.1505 = 0.8545
    assert run(rnnrs.Momentum(0.1, momentum=0.9)) == pytest.approx([0.95, 1.005, 0.8545], abs=1e-15)


def test_nesterov_by_hand():
    # p -= lr * (g + m * a) with the updated a (0.5, -0.55, 1.505):
    # 1 - 0.1*(0.5 + 0.45) = 0.905; 0.905 - 0.1*(-1 - 0.495) = 1.0545;
    # 1.0545 - 0.1*(2 + 1.3545) = 0.71905
    assert run(rnnrs.Momentum(0.1, momentum=0.9, use_nesterov=True)) == pytest.approx(
        [0.905, 1.0545, 0.71905], abs=1e-15
    )


def test_rmsprop_by_hand():
    # TF1: ms starts at 1. decay 0.9, eps 0 for round numbers.
    # ms1 = 0.9 + 0.1*0.25 = 0.925;  p1 = 1 - 0.01*0.5/sqrt(0.925)
    # ms2 = 0.8325 + 0.1*1 = 0.9325; p2 = p1 + 0.01/sqrt(0.9325)
    # ms3 = 0.83925 + 0.4 = 1.23925; p3 = p2 - 0.02/sqrt(1.23925)
    p1 = 1 - 0.005 / math.sqrt(0.925)
    p2 = p1 + 0.01 / math.sqrt(0.9325)
    p3 = p2 - 0.02 / math.sqrt(1.23925)
    assert run(rnnrs.RMSProp(0.01, decay=0.9, epsilon=0.0)) == pytest.approx([p1, p2, p3], abs=1e-15)


def test_rmsprop_momentum_centered_by_hand():
    # centered: mg = 0.9 mg + 0.1 g; den = ms - mg^2; mom = 0.5 mom + lr g / sqrt(den + eps)
    ms, mg, mom, p = 1.0, 0.0, 0.0, 1.0
    want = []
    for g in GRADS:
        ms = 0.9 * ms + 0.1 * g * g
        mg = 0.9 * mg + 0.1 * g
        mom = 0.5 * mom + 0.01 * g / math.sqrt(ms - mg * mg + 1e-10)
        p -= mom
        want.append(p)
    # Spelled out for step 1: ms 0.925, mg 0.05, den 0.9225
    assert want[0] == pytest.approx(1 - 0.005 / math.sqrt(0.9225 + 1e-10), abs=1e-15)
    got = run(rnnrs.RMSProp(0.01, decay=0.9, momentum=0.5, epsilon=1e-10, centered=True))
    assert got == pytest.approx(want, abs=1e-15)


def test_adam_by_hand():
    # TF1 form: lr_t = lr sqrt(1 - b2^k) / (1 - b1^k); p -= lr_t m / (sqrt(v) + eps).
    # Step 1: m = 0.05, v = 0.00025 (= 0.001*0.25); lr_t = 0.1*sqrt(0.001)/0.1 = sqrt(0.001)
    # -> p -= sqrt(0.001) * 0.05 / (sqrt(0.00025) + 1e-8) ~= 0.1 (Adam's first step is ~lr)
    m1, v1 = 0.05, 0.00025
    p1 = 1 - math.sqrt(0.001) * m1 / (math.sqrt(v1) + 1e-8)
    m2, v2 = 0.9 * m1 - 0.1, 0.999 * v1 + 0.001
    p2 = p1 - 0.1 * math.sqrt(1 - 0.999**2) / (1 - 0.9**2) * m2 / (math.sqrt(v2) + 1e-8)
    m3, v3 = 0.9 * m2 + 0.2, 0.999 * v2 + 0.004
    p3 = p2 - 0.1 * math.sqrt(1 - 0.999**3) / (1 - 0.9**3) * m3 / (math.sqrt(v3) + 1e-8)
    assert p1 == pytest.approx(0.9, abs=1e-6)
    assert run(rnnrs.Adam(0.1)) == pytest.approx([p1, p2, p3], abs=1e-14)


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnrs.SGD(0.05),
        lambda: rnnrs.Momentum(0.05, 0.8, use_nesterov=True),
        lambda: rnnrs.RMSProp(0.01, momentum=0.3, centered=True),
        lambda: rnnrs.Adam(0.01),
        lambda: rnnrs.AdamW(0.01, weight_decay=0.1),
        lambda: rnnrs.Adagrad(0.05),
    ],
    ids=["sgd", "nesterov", "rmsprop", "adam", "adamw", "adagrad"],
)
def test_float32_matches_float64_and_keeps_dtype(make):
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(3, 2)) for _ in range(5)]
    p64 = {"w": rng.normal(size=(3, 2))}
    p32 = {"w": p64["w"].astype(np.float32)}
    a, b = make(), make()
    for g in grads:
        a.apply_gradients(p64, {"w": g})
        b.apply_gradients(p32, {"w": g.astype(np.float32)})
    assert p32["w"].dtype == np.float32
    np.testing.assert_allclose(p32["w"], p64["w"], rtol=1e-5, atol=1e-6)


def test_updates_in_place_and_only_given_names():
    w, b = np.ones(3), np.ones(2)
    params = {"w": w, "b": b}
    rnnrs.Adam(0.1).apply_gradients(params, {"w": np.ones(3)})
    assert params["w"] is w and np.all(w < 1)  # in place
    assert np.all(b == 1)


@given(seeds, st.floats(0.01, 10.0))
def test_clip_by_global_norm(seed, clip):
    rng = np.random.default_rng(seed)
    grads = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=5) * 3}
    norm = math.sqrt(sum(float((g**2).sum()) for g in grads.values()))
    clipped, got_norm = rnnrs.clip_by_global_norm(grads, clip)
    assert got_norm == pytest.approx(norm, rel=1e-12)
    assert rnnrs.global_norm(clipped) == pytest.approx(min(norm, clip), rel=1e-9)
    scale = clip / max(norm, clip)
    for k in grads:
        np.testing.assert_allclose(clipped[k], grads[k] * scale, rtol=1e-12)
        assert clipped[k] is not grads[k]


def test_clip_by_global_norm_by_hand_and_nonfinite():
    clipped, norm = rnnrs.clip_by_global_norm({"x": np.array([3.0, 0.0]), "y": np.array([[4.0]])}, 1.0)
    assert norm == 5.0
    np.testing.assert_allclose(clipped["x"], [0.6, 0.0])
    np.testing.assert_allclose(clipped["y"], [[0.8]])
    same, norm = rnnrs.clip_by_global_norm({"x": np.array([0.3, 0.4], np.float32)}, 1.0)
    assert norm == pytest.approx(0.5) and same["x"].dtype == np.float32
    np.testing.assert_array_equal(same["x"], np.array([0.3, 0.4], np.float32))
    nan, norm = rnnrs.clip_by_global_norm({"x": np.array([np.inf, 1.0])}, 1.0)  # TF: all NaN
    assert math.isinf(norm) and np.isnan(nan["x"]).all()


def test_optimizer_clip_norm_clips_before_the_update():
    params = {"x": np.zeros(2), "y": np.zeros(1)}
    norm = rnnrs.SGD(1.0, clip_norm=1.0).apply_gradients(params, {"x": np.array([3.0, 0.0]), "y": np.array([4.0])})
    assert norm == 5.0
    np.testing.assert_allclose(params["x"], [-0.6, 0.0])
    np.testing.assert_allclose(params["y"], [-0.8])


def test_float32_global_norm_accumulates_in_float64():
    big = np.full(10, 1e20, dtype=np.float32)  # squares overflow float32
    assert rnnrs.global_norm({"g": big}) == pytest.approx(math.sqrt(10) * float(np.float32(1e20)), rel=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnrs.SGD(0.05),
        lambda: rnnrs.Momentum(0.05, 0.9),
        lambda: rnnrs.RMSProp(0.01, momentum=0.5, centered=True),
        lambda: rnnrs.Adam(0.01, clip_norm=0.5),
        lambda: rnnrs.AdamW(rnnrs.schedules.ExponentialDecay(0.01, 2, 0.5), weight_decay=0.05),
        lambda: rnnrs.Adagrad(rnnrs.schedules.PiecewiseConstantDecay([2, 4], [0.1, 0.05, 0.01])),
    ],
    ids=["sgd", "momentum", "rmsprop", "adam", "adamw-schedule", "adagrad-schedule"],
)
def test_state_save_restore_round_trip(make):
    rng = np.random.default_rng(1)
    grads = [{"w": rng.normal(size=(2, 3)), "b": rng.normal(size=3)} for _ in range(6)]
    params = {"w": rng.normal(size=(2, 3)), "b": rng.normal(size=3)}
    opt = make()
    for g in grads[:3]:
        opt.apply_gradients(params, g)
    state, config = opt.get_state(), opt.get_config()
    saved = {k: v.copy() for k, v in params.items()}
    for g in grads[3:]:
        opt.apply_gradients(params, g)
    # A fresh optimizer, restored, continues identically (bitwise).
    other = rnnrs.optimizers.optimizer_from_config(config)
    other.set_state(state)
    assert other.iterations == 3
    for g in grads[3:]:
        other.apply_gradients(saved, g)
    for k in params:
        np.testing.assert_array_equal(saved[k], params[k])
    # get_state returns copies.
    state["iterations"][...] = 99
    assert opt.iterations == 6
    assert set(opt.get_state()) == {"iterations"} | {
        f"{s}/{n}" for s in opt.slot_names for n in "wb" if s != "mg" or getattr(opt, "centered", False)
    }


def test_bad_hyperparameters():
    with raises_naming(ValueError, "learning_rate"):
        rnnrs.SGD(0.0)
    with raises_naming(ValueError, "learning_rate"):
        rnnrs.Adam(float("nan"))
    with raises_naming(TypeError, "learning_rate"):
        rnnrs.Adam("fast")  # type: ignore[arg-type]
    with raises_naming(ValueError, "momentum"):
        rnnrs.Momentum(0.1, momentum=1.5)
    with raises_naming(ValueError, "beta1"):
        rnnrs.Adam(beta1=1.0)
    with raises_naming(ValueError, "clip_norm"):
        rnnrs.Adam(clip_norm=-1.0)
    with raises_naming(TypeError, "use_nesterov"):
        rnnrs.Momentum(use_nesterov="yes")  # type: ignore[arg-type]


def test_bad_gradients():
    params = {"w": np.zeros((2, 2))}
    opt = rnnrs.Adam()
    with raises_naming(ValueError, "grads"):
        opt.apply_gradients(params, {"v": np.zeros((2, 2))})
    with raises_naming(ValueError, r"grads\['w'\]"):
        opt.apply_gradients(params, {"w": np.zeros(4)})
    with raises_naming(TypeError, r"params\['w'\]"):
        opt.apply_gradients({"w": np.zeros(2, dtype=np.int64)}, {"w": np.zeros(2)})
    assert opt.iterations == 0 and not params["w"].any()
    with raises_naming(FloatingPointError, "grads"):
        opt.apply_gradients(params, {"w": np.array([[np.nan, 0.0], [0.0, 0.0]])}, check_finite=True)
    assert opt.iterations == 0 and not params["w"].any()  # nothing applied
    opt.apply_gradients(params, {"w": np.array([[np.nan, 0.0], [0.0, 0.0]])})  # TF behaviour: NaN flows in
    assert np.isnan(params["w"][0, 0])


def test_bad_state():
    opt = rnnrs.Adam()
    with raises_naming(ValueError, "state"):
        opt.set_state({"m/w": np.zeros(2)})
    with raises_naming(ValueError, "state"):
        opt.set_state({"iterations": np.array(1), "momentum/w": np.zeros(2)})
    with raises_naming(ValueError, "state"):
        opt.set_state({"iterations": np.array(-1)})
    # (This used "Adagrad" as the unknown name before Adagrad existed.)
    with raises_naming(ValueError, r"config\['class_name'\]"):
        rnnrs.optimizers.optimizer_from_config({"class_name": "Adadelta", "config": {}})


def test_get_by_name():
    assert isinstance(rnnrs.optimizers.get("adam"), rnnrs.Adam)
    assert isinstance(rnnrs.optimizers.get("RMSProp"), rnnrs.RMSProp)
    assert isinstance(rnnrs.optimizers.get("adamw"), rnnrs.AdamW)
    assert isinstance(rnnrs.optimizers.get("Adagrad"), rnnrs.Adagrad)
    # (This used "adagrad" as the unknown name before Adagrad existed.)
    with raises_naming(ValueError, "optimizer"):
        rnnrs.optimizers.get("adadelta")
