"""NumPy helpers for the functional-model tests: the scalar test loss
``sum_i sum(R_i * output_i)``, central finite differences on a model's
weights and float inputs, and the comparison of a model's backward pass
with them.

A model's ``backprop(d_outputs)`` is the vector-Jacobian product of its
forward pass, so with ``d_outputs = R`` it must equal the gradient of
``sum(R_i * output_i)``: every output position counts, padded steps
included (masking padded steps is the job of losses, not of ``backprop``).
"""

from __future__ import annotations

import numpy as np


def as_list(value):
    """A model's outputs (or input gradients) as a list."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def feed(xs):
    """What a model is called with: the array for one input, the list for several."""
    return xs[0] if len(xs) == 1 else list(xs)


def scalar_loss(outputs, rs):
    """``sum_i sum(R_i * output_i)`` in float64."""
    return float(sum(np.sum(np.asarray(o, dtype=np.float64) * r) for o, r in zip(as_list(outputs), rs)))


def central_difference(loss, arr, index, eps=1e-6):
    """``d loss / d arr[index]`` by central differences; ``arr`` is modified
    in place and restored; ``loss()`` reads it."""
    old = arr[index]
    arr[index] = old + eps
    up = loss()
    arr[index] = old - eps
    down = loss()
    arr[index] = old
    return (up - down) / (2 * eps)


def coordinates(shape, rng, limit):
    """Every index of ``shape`` when there are at most ``limit``, otherwise
    ``limit`` of them drawn without replacement."""
    size = int(np.prod(shape))
    flat = np.arange(size) if size <= limit else np.sort(rng.choice(size, size=limit, replace=False))
    return [np.unravel_index(int(i), shape) for i in flat]


def assert_gradient(got, index, want, what, rtol=1e-5, atol=1e-7):
    got_value = float(np.asarray(got)[index])
    assert abs(got_value - want) <= atol + rtol * max(abs(want), abs(got_value)), (
        f"{what}{tuple(int(i) for i in index)}: backprop {got_value!r} != finite difference {want!r}"
    )


def check_model_gradients(model, xs, sequence_length, rng, per_array=12, direction=True):
    """Runs ``model(xs, sequence_length, return_backprop=True)`` with
    ``d_outputs = R`` (fixed normal draws) and compares the gradients of
    every weight and every float input with central finite differences of
    ``sum(R_i * output_i)``: per entry (at most ``per_array`` entries of
    each array, drawn with ``rng``) and, with ``direction``, along one
    random direction through all weights and float inputs at once.

    ``xs`` is the list of inputs (float64 arrays or integer ids; the model
    gets the array itself when there is one) and ``sequence_length`` what
    the model is called with. Returns
    the model's ``ModelGradients``.
    """
    outputs, backprop = model(feed(xs), sequence_length=sequence_length, return_backprop=True)
    outs = as_list(outputs)
    rs = [rng.normal(size=o.shape) for o in outs]
    grads = backprop(rs if isinstance(outputs, list) else rs[0])
    weights = model.get_weights()
    assert sorted(grads.weights) == sorted(weights), "gradient keys differ from get_weights() keys"
    d_inputs = as_list(grads.inputs)
    assert len(d_inputs) == len(xs)
    xs = [np.array(x, copy=True) for x in xs]

    def loss():
        return scalar_loss(model(feed(xs), sequence_length=sequence_length), rs)

    for key, w in weights.items():
        assert grads.weights[key].shape == w.shape and grads.weights[key].dtype == w.dtype, key

        def loss_w(key=key, w=w):
            model.set_weights({key: w})
            return loss()

        for index in coordinates(w.shape, rng, per_array):
            assert_gradient(grads.weights[key], index, central_difference(loss_w, w, index), f"weights[{key!r}]")
        model.set_weights({key: w})
    for j, (x, d) in enumerate(zip(xs, d_inputs)):
        if x.dtype.kind != "f":
            assert d is None, f"inputs[{j}] are integer ids: expected no gradient, got {type(d).__name__}"
            continue
        assert d is not None and d.shape == x.shape and d.dtype == x.dtype, f"inputs[{j}]"
        for index in coordinates(x.shape, rng, per_array):
            assert_gradient(d, index, central_difference(loss, x, index), f"d_inputs[{j}]")
    if direction:
        _check_direction(model, xs, weights, grads, d_inputs, loss, rng)
    return grads


def _check_direction(model, xs, weights, grads, d_inputs, loss, rng, eps=1e-6):
    """``d/dε loss(w + ε v, x + ε u)`` at 0 equals ``<g_w, v> + <g_x, u>``."""
    vs = {k: rng.normal(size=w.shape) for k, w in weights.items()}
    us = [rng.normal(size=x.shape) if x.dtype.kind == "f" else None for x in xs]
    want = sum(float(np.sum(grads.weights[k] * v)) for k, v in vs.items())
    want += sum(float(np.sum(d * u)) for d, u in zip(d_inputs, us) if u is not None)

    def moved(step):
        model.set_weights({k: w + step * vs[k] for k, w in weights.items()})
        for x, x0, u in zip(xs, originals, us):
            if u is not None:
                x[...] = x0 + step * u
        return loss()

    originals = [x.copy() for x in xs]
    got = (moved(eps) - moved(-eps)) / (2 * eps)
    model.set_weights(weights)
    for x, x0 in zip(xs, originals):
        x[...] = x0
    assert abs(got - want) <= 1e-7 + 1e-5 * max(abs(want), abs(got)), (
        f"directional derivative: backprop {want!r} != finite difference {got!r}"
    )


def assert_same_weights(got, want):
    """Two models' weights: the same keys and bitwise equal arrays."""
    a, b = got.get_weights(), want.get_weights()
    assert sorted(a) == sorted(b)
    for k, v in b.items():
        np.testing.assert_array_equal(a[k], v, err_msg=k)


def assert_training_continues_identically(loaded, model, x, y, **fit_args):
    """One more epoch of ``fit`` on both models (same seed): the same loss and bitwise the same weights."""
    ha = model.fit(x, y, epochs=1, seed=1, verbose=0, **fit_args)
    hb = loaded.fit(x, y, epochs=1, seed=1, verbose=0, **fit_args)
    assert ha.history["loss"][-1] == hb.history["loss"][-1]
    assert_same_weights(loaded, model)
