"""Hardening of the Python package: inputs that used to be silently wrong, torn
by a concurrent update, or refused with an unclear message.

Each test names the behaviour it pins; before the fixes these failed (NaN
gradients, a wrong input size, an infinite norm, torn results, NaN outputs,
an infinite loss, silent coercions, a TypeError naming no argument, garbled
or NumPy-repr messages).
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import rnnrs
import rnnrs._state as st
from rnnrs import convert, losses

F32, F64 = np.float32, np.float64


def _misaligned(arr: np.ndarray) -> np.ndarray:
    """A copy of ``arr`` whose data starts one byte into a buffer (misaligned)."""
    arr = np.ascontiguousarray(arr)
    buf = bytearray(arr.nbytes + 1)
    out = np.frombuffer(buf, dtype=arr.dtype, count=arr.size, offset=1).reshape(arr.shape)
    out[...] = arr
    assert not out.flags.aligned
    return out


def _cells(dtype=F32):
    """One of every cell and wrapper, unbuilt, seeded."""
    return {
        "basic": rnnrs.BasicRNNCell(4, dtype=dtype, seed=1),
        "gru": rnnrs.GRUCell(4, dtype=dtype, seed=2),
        "lstm": rnnrs.BasicLSTMCell(4, dtype=dtype, seed=3),
        "lstm_proj": rnnrs.LSTMCell(4, num_proj=3, use_peepholes=True, dtype=dtype, seed=4),
        "multi": rnnrs.MultiRNNCell(
            [rnnrs.BasicRNNCell(4, dtype=dtype, seed=5), rnnrs.BasicLSTMCell(4, dtype=dtype, seed=6)]
        ),
        "dropout": rnnrs.DropoutWrapper(rnnrs.GRUCell(4, dtype=dtype, seed=7), output_keep_prob=0.5, seed=8),
        "projection": rnnrs.OutputProjectionWrapper(rnnrs.BasicRNNCell(4, dtype=dtype, seed=9), 2, seed=10),
        "residual": rnnrs.ResidualWrapper(rnnrs.BasicRNNCell(4, dtype=dtype, seed=11)),
    }


CELL_NAMES = list(_cells())


# -- item 4: padding under state dropout ---------------------------------------


@pytest.mark.parametrize("make", [lambda: rnnrs.BasicRNNCell(4, seed=0), lambda: rnnrs.BasicLSTMCell(4, seed=0)])
@pytest.mark.parametrize("variational", [False, True])
def test_state_dropout_ignores_nan_padding(make, variational):
    """NaN in padded steps (t >= len) under DropoutWrapper(state_keep_prob < 1)
    with training=True: outputs, final state and every gradient equal the run
    with zeros in the padding, bit for bit (were all NaN)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 2)).astype(F32)
    lengths = [3, 5, 0]
    padded = x.copy()
    for b, n in enumerate(lengths):
        padded[b, n:] = np.nan
        x[b, n:] = 0.0
    dy = rng.standard_normal((3, 5, 4)).astype(F32)
    dy_nan = dy.copy()
    dy_nan[0, 3:] = np.nan  # gradients arriving at padded steps are ignored too

    def run(inputs, d_outputs):
        cell = rnnrs.DropoutWrapper(
            make(), input_keep_prob=0.8, state_keep_prob=0.9, variational_recurrent=variational, seed=3
        )
        out, state, bp = rnnrs.dynamic_rnn(cell, inputs, sequence_length=lengths, training=True, return_backprop=True)
        return out, state, bp(d_outputs)

    out_a, state_a, g_a = run(x, dy)
    out_b, state_b, g_b = run(padded, dy_nan)
    assert np.array_equal(out_a, out_b)
    for a, b in zip(np.atleast_1d(state_a), np.atleast_1d(state_b)):
        assert np.array_equal(a, b)
    assert g_a.weights.keys() == g_b.weights.keys()
    for k in g_a.weights:
        assert np.all(np.isfinite(g_b.weights[k])), k
        assert np.array_equal(g_a.weights[k], g_b.weights[k]), k
    assert np.array_equal(g_a.inputs, g_b.inputs)


# -- item 5: converters check every shape ----------------------------------------


def test_from_keras_checks_the_recurrent_kernel_shape_before_building():
    """A short recurrent kernel used to build input_size=2 from [k, rk[:3], b]."""
    ref = rnnrs.BasicLSTMCell(4, seed=0)
    ref.build(3)
    k, rk, b = convert.to_keras(ref)
    cell = rnnrs.BasicLSTMCell(4)
    with pytest.raises(ValueError, match=r"^weights\[1\]: expected .*\(4, 16\), got \(3, 16\)"):
        convert.from_keras(cell, [k, rk[:3], b])
    assert not cell.built
    with pytest.raises(ValueError, match=r"^weights\[2\]: expected .*\(16,\), got \(15,\)"):
        convert.from_keras(cell, [k, rk, b[:15]])
    with pytest.raises(ValueError, match=r"^weights\[0\]: expected .*got \(16,\)"):  # a 1-d kernel
        convert.from_keras(cell, [k[0], rk, b])
    assert not cell.built
    convert.from_keras(cell, [k, rk, b])
    assert cell.input_size == 3
    with pytest.raises(ValueError, match=r"^weights\[0\]: expected .*\(3, 16\), got \(2, 16\)"):
        convert.from_keras(cell, [k[:2], rk, b])  # built for 3 inputs


@pytest.mark.parametrize(
    "which, cut",
    [("weight_hh_l0", (slice(None), slice(0, 3))), ("weight_hh_l0", slice(0, 15))]
    + [(name, slice(0, 15)) for name in ("weight_ih_l0", "bias_ih_l0", "bias_hh_l0")],
)
def test_from_torch_checks_every_shape_before_building(which, cut):
    """A short weight_hh used to build input_size=2."""
    ref = rnnrs.BasicLSTMCell(4, seed=0)
    ref.build(3)
    sd = convert.to_torch(ref)
    sd[which] = sd[which][cut]
    cell = rnnrs.BasicLSTMCell(4)
    with pytest.raises(ValueError, match=rf"^state_dict\['{which}'\]: expected"):
        convert.from_torch(cell, sd)
    assert not cell.built


def test_from_torch_checks_the_projection_shape():
    ref = rnnrs.LSTMCell(4, num_proj=2, seed=0)
    ref.build(3)
    sd = convert.to_torch(ref)
    sd["weight_hr_l0"] = sd["weight_hr_l0"][:, :3]
    with pytest.raises(ValueError, match=r"^state_dict\['weight_hr_l0'\]: expected .*\(2, 4\), got \(2, 3\)"):
        convert.from_torch(rnnrs.LSTMCell(4, num_proj=2), sd)


# -- item 6: overflow-safe global norm --------------------------------------------


def test_global_norm_and_clipping_do_not_overflow():
    """global_norm of finite gradients whose squares overflow was inf, and
    clipping turned them into NaN; check_finite then said 'NaN or inf in []'."""
    g = {"w": np.array([1e200, -1e200])}
    assert rnnrs.global_norm(g) == pytest.approx(np.sqrt(2) * 1e200, rel=1e-15)
    clipped, norm = rnnrs.clip_by_global_norm(g, 1.0)
    assert norm == pytest.approx(np.sqrt(2) * 1e200, rel=1e-15)
    np.testing.assert_allclose(clipped["w"], [2**-0.5, -(2**-0.5)], rtol=1e-15)
    # tiny gradients (squares underflow) keep their norm
    assert rnnrs.global_norm({"w": np.array([3e-200, 4e-200])}) == pytest.approx(5e-200, rel=1e-15)
    # float32 gradients clipped to a tiny norm: the scale underflows in float32, not the result
    big = {"w": np.array([3e37, 4e37], F32)}
    small, _ = rnnrs.clip_by_global_norm(big, 1e-20)
    assert small["w"].dtype == F32
    np.testing.assert_allclose(small["w"], [6e-21, 8e-21], rtol=1e-6)
    # a norm beyond float64's range still clips to finite values
    huge = {"a": np.full(4, 1.5e308)}
    out, _ = rnnrs.clip_by_global_norm(huge, 2.0)
    np.testing.assert_allclose(out["a"], np.full(4, 1.0), rtol=1e-15)


def test_apply_gradients_with_huge_finite_gradients_and_check_finite():
    params = {"w": np.zeros(2), "v": np.zeros(1)}
    opt = rnnrs.SGD(0.5, clip_norm=1.0)
    norm = opt.apply_gradients(params, {"w": np.array([1e200, -1e200]), "v": np.zeros(1)}, check_finite=True)
    assert np.isfinite(norm)
    np.testing.assert_allclose(params["w"], [-0.5 * 2**-0.5, 0.5 * 2**-0.5], rtol=1e-15)
    with pytest.raises(FloatingPointError, match=r"NaN or inf in \['v'\]"):
        opt.apply_gradients(params, {"w": np.ones(2), "v": np.array([np.nan])}, check_finite=True)


def test_apply_gradients_refuses_a_list_with_a_type_error():
    """apply_gradients(p, [g]) raised AttributeError."""
    with pytest.raises(TypeError, match=r"^grads: expected a mapping"):
        rnnrs.SGD().apply_gradients({"w": np.zeros(2)}, [np.zeros(2)])
    with pytest.raises(TypeError, match=r"^params: expected a mutable mapping"):
        rnnrs.SGD().apply_gradients([np.zeros(2)], {"w": np.zeros(2)})


# -- item 7: atomic set_weights under concurrent calls ------------------------------


def _weights_pair(cell):
    a = cell.get_weights()
    rng = np.random.default_rng(99)
    b = {k: (v + rng.uniform(0.1, 0.5, v.shape)).astype(v.dtype) for k, v in a.items()}
    return a, b


WRAPPER_FACTORIES = {
    "projection": lambda: rnnrs.OutputProjectionWrapper(rnnrs.BasicRNNCell(6, seed=1), 5, seed=2),
    "multi": lambda: rnnrs.MultiRNNCell(
        [rnnrs.BasicRNNCell(6, seed=1), rnnrs.GRUCell(6, seed=2), rnnrs.BasicLSTMCell(6, seed=3)]
    ),
    "residual_multi": lambda: rnnrs.ResidualWrapper(
        rnnrs.MultiRNNCell([rnnrs.BasicRNNCell(5, seed=1), rnnrs.BasicRNNCell(5, seed=2)])
    ),
    # stepwise (state dropout) path; keep so close to 1 that no unit is dropped
    "dropout_stepwise": lambda: rnnrs.DropoutWrapper(
        rnnrs.MultiRNNCell([rnnrs.BasicRNNCell(5, seed=1), rnnrs.BasicRNNCell(5, seed=2)]),
        state_keep_prob=1 - 1e-12,
        seed=0,
    ),
    "projection_of_dropout": lambda: rnnrs.OutputProjectionWrapper(
        rnnrs.DropoutWrapper(rnnrs.BasicRNNCell(6, seed=1)), 4, seed=2
    ),
}


def _wrapper_setup(name):
    """A built wrapper of ``WRAPPER_FACTORIES``, two weight sets for it, and
    two calls: a masked ``dynamic_rnn`` and one step (each returns the outputs)."""
    cell = WRAPPER_FACTORIES[name]()
    x = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(F32)
    training = name.startswith("dropout")
    cell.build(5)
    w_a, w_b = _weights_pair(cell)

    def run_sequence():
        return rnnrs.dynamic_rnn(cell, x, sequence_length=[3, 2], training=training)[0]

    def run_step():
        return cell(x[:, 0], cell.zero_state(2))[0]

    return cell, w_a, w_b, run_sequence, run_step


def _hammer(cell, w_a, w_b, call, calls_wanted=1500, seconds=20.0):
    """Runs ``call()`` in three threads while a fourth alternates
    ``cell.set_weights`` between ``w_a`` and ``w_b``, until ``calls_wanted``
    calls are done (or ``seconds`` pass); ``call`` returns True when its
    result matched one of the weight sets. Returns (calls, mismatches)."""
    stop = threading.Event()
    done = [0]
    bad = [0]
    lock = threading.Lock()

    def caller():
        while not stop.is_set():
            ok = call()
            with lock:
                done[0] += 1
                bad[0] += not ok
                if done[0] >= calls_wanted:
                    stop.set()

    def setter():
        i = 0
        while not stop.is_set():
            cell.set_weights(w_a if i % 2 else w_b)
            i += 1

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: makes a torn read likely if one is possible
    try:
        threads = [threading.Thread(target=caller) for _ in range(3)] + [threading.Thread(target=setter)]
        for t in threads:
            t.start()
        stop.wait(seconds)
        stop.set()
        for t in threads:
            t.join(60)
    finally:
        sys.setswitchinterval(old)
        stop.set()
    return done[0], bad[0]


@pytest.mark.parametrize("name", list(WRAPPER_FACTORIES))
def test_wrapper_set_weights_is_atomic_for_concurrent_calls(name):
    """While one thread alternates set_weights between two weight sets, every
    call in other threads returns exactly one of the two reference results (an
    OutputProjectionWrapper used to mix old and new weights)."""
    cell, w_a, w_b, run_sequence, run_step = _wrapper_setup(name)

    def run():
        return run_sequence(), run_step()

    cell.set_weights(w_a)
    ref_a = run()
    cell.set_weights(w_b)
    ref_b = run()
    assert not np.array_equal(ref_a[0], ref_b[0])

    def call():
        out, step = run()
        ok_seq = np.array_equal(out, ref_a[0]) or np.array_equal(out, ref_b[0])
        return ok_seq and (np.array_equal(step, ref_a[1]) or np.array_equal(step, ref_b[1]))

    calls, torn = _hammer(cell, w_a, w_b, call)
    assert calls > 0
    assert torn == 0, f"{torn} of {calls} results matched neither weight set"


def _last_leaf(cell):
    """The last cell computed by the core inside a (nested) wrapper."""
    while not isinstance(cell, (rnnrs.BasicRNNCell, rnnrs.GRUCell, rnnrs.BasicLSTMCell, rnnrs.LSTMCell)):
        cell = cell.cells[-1] if isinstance(cell, rnnrs.MultiRNNCell) else cell.cell
    return cell


@pytest.mark.parametrize("name", list(WRAPPER_FACTORIES))
@pytest.mark.parametrize("entry", ["dynamic_rnn", "step"])
def test_wrapper_call_runs_on_one_snapshot_when_weights_change_mid_call(name, entry):
    """The worst case of a concurrent update, made deterministic: set_weights
    lands in the middle of a call (when its last core cell starts). The call
    must still compute with the weights it started with, all of them (an
    OutputProjectionWrapper read its own weights and its cell's at different
    moments; MultiRNNCell and the stepwise DropoutWrapper each layer's or
    step's)."""
    cell, w_a, w_b, run_sequence, run_step = _wrapper_setup(name)
    run = run_step if entry == "step" else run_sequence

    cell.set_weights(w_a)
    ref_a = run()
    leaf = _last_leaf(cell)
    pending = [w_b]

    def run_then_update(*args, **kwargs):
        if pending:
            cell.set_weights(pending.pop())
        return type(leaf)._run(leaf, *args, **kwargs)

    leaf._run = run_then_update
    try:
        got = run()
    finally:
        del leaf._run
    assert not pending, "the update was not injected"
    assert np.array_equal(got, ref_a)
    assert all(np.array_equal(v, w_b[k]) for k, v in cell.get_weights().items())


def test_get_weights_of_a_wrapper_is_one_snapshot():
    cell = WRAPPER_FACTORIES["projection"]()
    cell.build(5)
    w_a, w_b = _weights_pair(cell)
    cell.set_weights(w_a)

    def call():
        got = cell.get_weights()
        return any(all(np.array_equal(got[k], w[k]) for k in got) for w in (w_a, w_b))

    calls, mixed = _hammer(cell, w_a, w_b, call, calls_wanted=5000)
    assert calls > 0
    assert mixed == 0, f"{mixed} of {calls} get_weights() mixed the two weight sets"


def test_failed_wrapper_set_weights_changes_nothing():
    cell = WRAPPER_FACTORIES["projection"]()
    cell.build(5)
    before = cell.get_weights()
    bad = {"kernel": before["kernel"] + 1, "output_projection/bias": np.zeros(4)}  # wrong bias shape
    with pytest.raises(ValueError, match=r"output_projection/bias"):
        cell.set_weights(bad)
    after = cell.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)


# -- item 8: keep probabilities whose inverse overflows ---------------------------


@pytest.mark.parametrize("arg", ["input_keep_prob", "output_keep_prob", "state_keep_prob"])
def test_keep_prob_whose_inverse_overflows_is_refused(arg):
    """DropoutWrapper(input_keep_prob=1e-46) on a float32 cell gave all-NaN outputs."""
    with pytest.raises(ValueError, match=rf"^{arg}: expected a number in \(0, 1\] whose inverse is finite in float32"):
        rnnrs.DropoutWrapper(rnnrs.BasicRNNCell(4), **{arg: 1e-46})
    # float64 can scale by 1e46: accepted, and the outputs are finite
    cell = rnnrs.DropoutWrapper(rnnrs.BasicRNNCell(4, dtype=F64, seed=0), **{arg: 1e-46}, seed=0)
    out, _ = rnnrs.dynamic_rnn(cell, np.ones((2, 3, 3)), training=True)
    assert np.all(np.isfinite(out))
    # the smallest float32 keep probability still works
    cell = rnnrs.DropoutWrapper(rnnrs.BasicRNNCell(4, seed=0), **{arg: 3e-39}, seed=0)
    out, _ = rnnrs.dynamic_rnn(cell, np.ones((2, 3, 3), F32), training=True)
    assert not np.any(np.isnan(out))


# -- item 9: losses stable for all finite inputs -------------------------------------


def test_sparse_softmax_cross_entropy_finite_for_extreme_float32_logits():
    """[[3e38, -3e38]] with label 1 returned inf (the shifted logit overflowed)."""
    value, grad = losses.sparse_softmax_cross_entropy([1], F32([[3e38, -3e38]]))
    assert value == pytest.approx(float(F32(3e38)) * 2, rel=1e-12)
    assert grad.dtype == F32
    np.testing.assert_array_equal(grad, [[1.0, -1.0]])
    value, grad = losses.sparse_softmax_cross_entropy([0], F32([[3e38, -3e38]]))
    assert value == 0.0
    np.testing.assert_array_equal(grad, [[0.0, 0.0]])
    # weighted, and through sequence_loss
    value, _ = losses.sparse_softmax_cross_entropy([1, 0], F32([[3e38, -3e38], [0.0, 0.0]]), weights=[1.0, 0.0])
    assert value == pytest.approx(float(F32(3e38)) * 2, rel=1e-12)
    value, grad = losses.sequence_loss(F32([[[3e38, -3e38], [1.0, 1.0]]]), [[1, 0]])
    assert value == pytest.approx((float(F32(3e38)) * 2 + np.log(2)) / 2, rel=1e-12)
    assert np.all(np.isfinite(grad))
    # float64 logits: finite while the loss itself is within range
    value, _ = losses.sparse_softmax_cross_entropy([1], F64([[8e307, -8e307]]))
    assert value == pytest.approx(1.6e308, rel=1e-12)


def test_mean_squared_error_does_not_overflow_in_the_difference():
    """float32 (p - y) overflowed to inf although the loss and its gradient are finite."""
    p, y = F32([3e38] * 4), F32([-3e38] * 4)
    value, grad = losses.mean_squared_error(y, p)
    assert value == pytest.approx((2 * float(F32(3e38))) ** 2, rel=1e-12)
    assert grad.dtype == F32
    np.testing.assert_allclose(grad, [float(F32(3e38))] * 4, rtol=1e-7)
    # float64 whose difference overflows: the gradient is finite (the value is beyond range)
    value, grad = losses.mean_squared_error(F64([-1.5e308] * 4), F64([1.5e308] * 4))
    np.testing.assert_allclose(grad, [1.5e308] * 4, rtol=1e-15)
    value, grad = losses.mean_squared_error(F64([-1e150] * 4), F64([1e150] * 4), weights=[1.0, 1.0, 1.0, 1.0])
    assert value == pytest.approx(4e300, rel=1e-12)
    np.testing.assert_allclose(grad, [1e150] * 4, rtol=1e-15)


# -- item 10: silent coercions ------------------------------------------------------


CONSTRUCTORS = {
    "BasicRNNCell": lambda **kw: rnnrs.BasicRNNCell(4, **kw),
    "GRUCell": lambda **kw: rnnrs.GRUCell(4, **kw),
    "BasicLSTMCell": lambda **kw: rnnrs.BasicLSTMCell(4, **kw),
    "LSTMCell": lambda **kw: rnnrs.LSTMCell(4, **kw),
    "Embedding": lambda **kw: rnnrs.Embedding(5, 3, **kw),
}


@pytest.mark.parametrize("name", list(CONSTRUCTORS))
def test_dtype_none_is_not_float64(name):
    """BasicRNNCell(4, dtype=None) gave float64. A cell's dtype=None is now
    TensorFlow 1.x's default, float32; Embedding still refuses None."""
    if name == "Embedding":
        with pytest.raises(TypeError, match=r"^dtype: expected numpy.float32 or numpy.float64, got None"):
            CONSTRUCTORS[name](dtype=None)
    else:
        assert CONSTRUCTORS[name](dtype=None).dtype == np.float32


SEEDED = {
    **CONSTRUCTORS,
    "Dense": lambda **kw: rnnrs.Dense(3, **kw),
    "DropoutWrapper": lambda **kw: rnnrs.DropoutWrapper(rnnrs.BasicRNNCell(2), **kw),
    "OutputProjectionWrapper": lambda **kw: rnnrs.OutputProjectionWrapper(rnnrs.BasicRNNCell(2), 3, **kw),
}


@pytest.mark.parametrize("name", list(SEEDED))
def test_seeds_must_be_non_negative_integers(name):
    """seed=-1 was accepted (and failed later, in numpy.random.default_rng)."""
    with pytest.raises(ValueError, match=r"^seed: expected an integer >= 0 or None, got -1"):
        SEEDED[name](seed=-1)
    for bad in (1.5, "3", True):
        with pytest.raises(TypeError, match=r"^seed: expected an integer >= 0 or None"):
            SEEDED[name](seed=bad)
    assert SEEDED[name](seed=np.int64(2**40)).seed == 2**40


@pytest.mark.parametrize("name", CELL_NAMES)
@pytest.mark.parametrize("bad", [2.9, "3", True, None, np.float64(4.0)])
def test_build_refuses_non_integer_sizes(name, bad):
    """build(2.9) / build("3") / build(True) built 2 / 3 / 1; build(None) gave
    a message naming no argument."""
    cell = _cells()[name]
    with pytest.raises(TypeError, match=r"^input_size: expected an integer >= 0, got"):
        cell.build(bad)
    assert not cell.built


@pytest.mark.parametrize("name", CELL_NAMES)
def test_build_accepts_numpy_integers(name):
    cell = _cells()[name]
    size = 2 if name == "projection" else 4
    cell.build(np.int64(size))
    assert cell.input_size == size
    with pytest.raises(ValueError, match=r"^input_size: expected an integer >= 0, got -1"):
        _cells()[name].build(-1)


@pytest.mark.parametrize("name", CELL_NAMES)
@pytest.mark.parametrize("bad", [2.7, "2", True, None])
def test_zero_state_refuses_non_integer_batch_sizes(name, bad):
    """zero_state(2.7) gave 2 rows."""
    with pytest.raises(TypeError, match=r"^batch_size: expected an integer >= 0, got"):
        _cells()[name].zero_state(bad)


def test_rnn_layer_and_dense_build_refuse_non_integer_sizes():
    with pytest.raises(TypeError, match=r"^input_size"):
        rnnrs.RNN(rnnrs.BasicRNNCell(3)).build(2.5)
    with pytest.raises(TypeError, match=r"^input_size"):
        rnnrs.Dense(3).build(True)


@pytest.mark.parametrize("lengths", [[True, False], np.array([1, 0], dtype=bool)])
def test_boolean_sequence_length_is_refused(lengths):
    """Booleans were accepted as lengths 1/0."""
    with pytest.raises(TypeError, match=r"^sequence_length: expected integers, got dtype bool"):
        rnnrs.dynamic_rnn(rnnrs.BasicRNNCell(3), np.ones((2, 2, 3)), sequence_length=lengths)
    with pytest.raises(TypeError, match=r"^sequence_length"):
        rnnrs.RNN(rnnrs.BasicRNNCell(3))(np.ones((2, 2, 3)), sequence_length=lengths)


@pytest.mark.parametrize("kind", ["complex", "string"])
def test_converters_refuse_complex_and_string_arrays(kind):
    """Complex weights lost their imaginary part; string arrays were parsed as numbers."""
    ref = rnnrs.BasicRNNCell(2, seed=0)
    ref.build(1)
    keras = convert.to_keras(ref)
    torch = convert.to_torch(ref)

    def spoil(a):
        return a + 1j if kind == "complex" else a.astype(str)

    cases = [(convert.from_keras, keras, i, rf"weights\[{i}\]") for i in range(3)]
    cases += [(convert.from_torch, torch, key, rf"state_dict\['{key}'\]") for key in torch]
    for load, weights, key, label in cases:
        spoilt = list(weights) if isinstance(weights, list) else dict(weights)
        spoilt[key] = spoil(spoilt[key])
        cell = rnnrs.BasicRNNCell(2)
        with pytest.raises(TypeError, match=rf"^{label}: expected a numeric array, got dtype"):
            load(cell, spoilt)
        assert not cell.built


@pytest.mark.parametrize("name", CELL_NAMES)
@pytest.mark.parametrize("kind", ["complex", "string"])
def test_set_weights_refuses_complex_and_string_arrays(name, kind):
    cell = _cells()[name]
    cell.build(2 if name == "projection" else 4)
    weights = cell.get_weights()
    key = sorted(weights)[-1]
    bad = weights[key] + 1j if kind == "complex" else weights[key].astype(str)
    with pytest.raises(TypeError, match=r"expected a numeric array, got dtype"):
        cell.set_weights({key: bad})
    assert np.array_equal(cell.get_weights()[key], weights[key])


# -- item 11: misaligned and non-native arrays ----------------------------------------


@pytest.mark.parametrize("name", ["basic", "lstm", "multi", "projection"])
def test_misaligned_and_big_endian_arrays_are_accepted(name):
    """A misaligned int64 sequence_length raised 'TypeError: The given array
    is not contiguous or is misaligned.'; every array handed to the core now
    works misaligned or byte-swapped, with results equal to aligned ones."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 4)).astype(F32)
    lengths = np.array([4, 2, 0], dtype=np.int64)

    def run(x, lengths, state, dy, ds):
        cell = _cells()[name]
        cell.build(4)
        init = None if state is None else state
        out, final, bp = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=init, return_backprop=True)
        g = bp(dy, ds)
        step_out, _ = cell(x[:, 0], cell.zero_state(3) if state is None else state)
        return out, final, g, step_out

    cell = _cells()[name]
    cell.build(4)
    zero = cell.zero_state(3)
    state = st.map_state(lambda _c, a: rng.standard_normal(a.shape).astype(F32), zero)
    out0, final0, _, _ = run(x, lengths, state, None, None)
    dy = rng.standard_normal(out0.shape).astype(F32)
    ds = st.map_state(lambda _c, a: rng.standard_normal(a.shape).astype(F32), final0)
    want = run(x, lengths, state, dy, ds)

    for convert_array in (_misaligned, lambda a: a.astype(a.dtype.newbyteorder(">"))):
        got = run(
            convert_array(x),
            convert_array(lengths),
            st.map_state(lambda _c, a, f=convert_array: f(a), state),
            convert_array(dy),
            st.map_state(lambda _c, a, f=convert_array: f(a), ds),
        )
        assert np.array_equal(got[0], want[0])
        st.map_state(lambda _c, a, b: np.testing.assert_array_equal(a, b), got[1], want[1])
        assert np.array_equal(got[2].inputs, want[2].inputs)
        st.map_state(lambda _c, a, b: np.testing.assert_array_equal(a, b), got[2].initial_state, want[2].initial_state)
        for k in want[2].weights:
            assert np.array_equal(got[2].weights[k], want[2].weights[k]), k
        assert np.array_equal(got[3], want[3])


def test_misaligned_weights_ids_and_labels_are_accepted():
    cell = rnnrs.BasicRNNCell(3, seed=0)
    cell.build(2)
    w = cell.get_weights()
    other = rnnrs.BasicRNNCell(3)
    other.set_weights({k: _misaligned(v) for k, v in w.items()})
    x = np.ones((1, 2, 2), F32)
    assert np.array_equal(rnnrs.dynamic_rnn(other, x)[0], rnnrs.dynamic_rnn(cell, x)[0])
    emb = rnnrs.Embedding(10, 3, seed=0)
    ids = np.array([[1, 2, 9]], dtype=np.int64)
    assert np.array_equal(emb(_misaligned(ids)), emb(ids))
    assert np.array_equal(emb(ids.astype(">i8")), emb(ids))
    logits = np.random.default_rng(0).standard_normal((3, 4)).astype(F32)
    labels = np.array([0, 3, 1], dtype=np.int64)
    want = losses.sparse_softmax_cross_entropy(labels, logits)
    got = losses.sparse_softmax_cross_entropy(_misaligned(labels), _misaligned(logits))
    assert got[0] == want[0] and np.array_equal(got[1], want[1])


# -- item 13: messages that name the argument -------------------------------------------


def test_multi_rnn_cell_set_weights_names_are_not_garbled():
    """The message said mapping['cell_0cell_0/bias']."""
    cell = rnnrs.MultiRNNCell([rnnrs.BasicRNNCell(2), rnnrs.BasicRNNCell(2)])
    cell.build(2)
    with pytest.raises(ValueError, match=r"^mapping\['cell_0/bias'\]: expected shape \(2,\), got \(3,\)$"):
        cell.set_weights({"cell_0/bias": np.zeros(3)})
    with pytest.raises(ValueError, match=r"got unknown 'cell_9/bias'$") as info:
        cell.set_weights({"cell_9/bias": np.zeros(3)})
    assert "expected names 'cell_<i>/<weight>' with i < 2" in str(info.value)
    nested = rnnrs.MultiRNNCell([cell, rnnrs.BasicRNNCell(2)])
    nested.build(2)
    with pytest.raises(ValueError, match=r"^mapping\['cell_0/cell_1/bias'\]: expected shape"):
        nested.set_weights({"cell_0/cell_1/bias": np.zeros(3)})


@pytest.mark.parametrize("name", CELL_NAMES)
def test_set_weights_with_non_string_keys_names_the_mapping(name):
    """set_weights({0: w}) raised "can only concatenate str (not 'int') to str"."""
    cell = _cells()[name]
    with pytest.raises(TypeError, match=r"^mapping: expected weight names \(str\) as keys, got int 0"):
        cell.set_weights({0: np.zeros(2)})


@pytest.mark.parametrize("layer", [lambda: rnnrs.Dense(2), lambda: rnnrs.Embedding(3, 2)])
def test_layer_set_weights_with_non_string_keys_names_the_mapping(layer):
    with pytest.raises(TypeError, match=r"^mapping: expected weight names \(str\) as keys"):
        layer().set_weights({0: np.zeros(2), "kernel": np.zeros((2, 2))})


def test_ids_messages():
    """Non-integer float ids were refused for their dtype although whole floats
    are accepted; positions were printed as NumPy reprs."""
    emb = rnnrs.Embedding(10, 3)
    with pytest.raises(ValueError, match=r"^inputs: expected integer ids, got non-integer id 1.5 at \(0, 0\)$"):
        emb(np.array([[1.5, 2, 3]]))
    with pytest.raises(ValueError, match=r"non-integer id nan at \(1, 0\)$"):
        emb(np.array([[1.0, 2, 3], [np.nan, 1, 1]]))
    with pytest.raises(ValueError, match=r"^inputs: expected ids in \[0, 10\), got 10 at index \(0, 2\)$"):
        emb(np.array([[1, 2, 10]]))
    with pytest.raises(ValueError, match=r"^inputs: expected ids in \[0, 10\), got -1 at index 1$"):
        emb(np.array([1, -1]))
    with pytest.raises(ValueError, match=r"got 18446744073709551615 at index 0$"):  # not wrapped to -1
        emb(np.array([2**64 - 1], dtype=np.uint64))
    with pytest.raises(TypeError, match=r"^inputs: expected integer ids, got dtype bool"):
        emb(np.array([True, False]))
    assert np.array_equal(emb(np.array([[1.0, 2.0]])), emb(np.array([[1, 2]])))
    with pytest.raises(ValueError, match=r"^labels: expected class ids in \[0, 2\), got 2 at index \(1, 0\)$"):
        losses.sparse_softmax_cross_entropy([[0], [2]], np.zeros((2, 1, 2)))
    with pytest.raises(ValueError, match=r"^labels: expected integer class ids, got non-integer id 0.5 at 1$"):
        losses.sparse_softmax_cross_entropy([0, 0.5], np.zeros((2, 2)))
