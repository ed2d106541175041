"""The chapter's code (Hands-On ML 1st ed., ch. 14, Korean translation) as tests.

The chapter prints outputs of randomly initialised TF graphs, so its numbers
cannot be reproduced; what is checked is the structure it describes, with the
numbers recomputed by hand from the same weights.
"""

from __future__ import annotations

import numpy as np
import pytest

import reference as ref
import rnnrs
from helpers import assert_close

n_inputs = 3
n_neurons = 5

# "X0_batch" / "X1_batch": 4 instances, integer arrays as in the chapter.
X0_batch = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 0, 1]])  # t = 0
X1_batch = np.array([[9, 8, 7], [0, 0, 0], [6, 5, 4], [3, 2, 1]])  # t = 1

X_batch = np.array(
    [
        # t = 0      t = 1
        [[0, 1, 2], [9, 8, 7]],  # instance 1
        [[3, 4, 5], [0, 0, 0]],  # instance 2 (padded with a zero vector)
        [[6, 7, 8], [6, 5, 4]],  # instance 3
        [[9, 0, 1], [3, 2, 1]],  # instance 4
    ]
)
seq_length_batch = np.array([2, 1, 2, 2])


def chapter_weights(variant):
    """Wx [3, 5], Wy [5, 5], b [1, 5] like the chapter's tf.Variables."""
    rng = np.random.default_rng(14)
    Wx = rng.normal(size=[n_inputs, n_neurons])  # tf.random_normal
    Wy = rng.normal(size=[n_neurons, n_neurons])
    b = np.zeros([1, n_neurons])  # tf.zeros
    if variant == "small":
        # Same structure, but unsaturated tanh and a non-zero bias so that the
        # comparison is sensitive to every term.
        Wx, Wy = 0.05 * Wx, 0.3 * Wy
        b = rng.normal(scale=0.3, size=[1, n_neurons])
    return Wx, Wy, b


def hand_built(Wx, Wy, b):
    """The chapter's graph without any RNN function: two explicit steps."""
    Y0 = np.tanh(X0_batch @ Wx + b)
    Y1 = np.tanh(Y0 @ Wy + X1_batch @ Wx + b)
    return Y0, Y1


def chapter_cell(Wx, Wy, b, dtype):
    basic_cell = rnnrs.BasicRNNCell(num_units=n_neurons, dtype=dtype)
    # [x, h] order: the Wx rows come first, then the Wy rows.
    basic_cell.set_weights({"kernel": np.vstack([Wx, Wy]), "bias": b[0]})
    return basic_cell


def cast64(a, dtype):
    return np.asarray(a, dtype=dtype).astype(np.float64)


# --------------------------------------------------------------------------
# (a) The hand-built two-step RNN equals static_rnn and dynamic_rnn
# --------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["chapter", "small"])
def test_hand_built_rnn_equals_static_and_dynamic_rnn(dtype, variant):
    Wx, Wy, b = (cast64(w, dtype) for w in chapter_weights(variant))
    Y0_val, Y1_val = hand_built(Wx, Wy, b)
    basic_cell = chapter_cell(Wx, Wy, b, dtype)

    output_seqs, states = rnnrs.static_rnn(basic_cell, [X0_batch, X1_batch])
    Y0, Y1 = output_seqs
    assert Y0.shape == Y1.shape == (4, n_neurons)
    assert_close(Y0, Y0_val, dtype, "Y0 (static_rnn)")
    assert_close(Y1, Y1_val, dtype, "Y1 (static_rnn)")
    assert_close(states, Y1_val, dtype, "states (static_rnn)")

    outputs, states = rnnrs.dynamic_rnn(basic_cell, np.stack([X0_batch, X1_batch], axis=1))
    assert outputs.shape == (4, 2, n_neurons)
    assert_close(outputs[:, 0], Y0_val, dtype, "Y0 (dynamic_rnn)")
    assert_close(outputs[:, 1], Y1_val, dtype, "Y1 (dynamic_rnn)")
    assert_close(states, Y1_val, dtype, "states (dynamic_rnn)")

    # Like the printed Y0_val / Y1_val: 4 x 5 values inside [-1, 1].
    assert np.all(np.abs(outputs) <= 1)
    # Instance 2 has X1 = 0, so its Y1 depends on Y0 only: tanh(Y0 @ Wy + b).
    assert_close(outputs[1, 1], np.tanh(Y0_val[1] @ Wy + b[0]), dtype, "instance 2, t = 1")


def test_chapter_weights_are_sensitive():
    """Guard for the test above: the 'small' variant is not saturated, so it discriminates."""
    Y0, Y1 = hand_built(*chapter_weights("small"))
    assert np.max(np.abs(Y0)) < 0.99 and np.max(np.abs(Y1)) < 0.99
    # A kernel stacked in the wrong ([h, x]) order has the same shape but
    # must give different numbers, so test (a) really pins the layout down.
    Wx, Wy, b = chapter_weights("small")
    wrong = rnnrs.BasicRNNCell(num_units=n_neurons, dtype=np.float64)
    wrong.set_weights({"kernel": np.vstack([Wy, Wx]), "bias": b[0]})
    outputs, _ = rnnrs.dynamic_rnn(wrong, X_batch)
    assert not np.allclose(outputs[:, 0], Y0, atol=1e-3)


# --------------------------------------------------------------------------
# (b) Variable-length sequences: seq_length_batch = [2, 1, 2, 2]
# --------------------------------------------------------------------------


@pytest.mark.parametrize("run", ["dynamic_rnn", "static_rnn"])
def test_sequence_length_example(dtype, run):
    basic_cell = rnnrs.BasicRNNCell(num_units=n_neurons, dtype=dtype, seed=14)
    if run == "dynamic_rnn":
        outputs_val, states_val = rnnrs.dynamic_rnn(basic_cell, X_batch, sequence_length=seq_length_batch)
    else:
        X_seqs = list(np.transpose(X_batch, (1, 0, 2)))
        output_seqs, states_val = rnnrs.static_rnn(basic_cell, X_seqs, sequence_length=seq_length_batch)
        outputs_val = np.transpose(np.stack(output_seqs), (1, 0, 2))
    assert outputs_val.shape == (4, 2, n_neurons)
    assert states_val.shape == (4, n_neurons)

    # Instance 2 (index 1): zero vector at step 1, final state = its t = 0 output.
    np.testing.assert_array_equal(outputs_val[1, 1], np.zeros(n_neurons))
    assert np.any(outputs_val[1, 0] != 0)
    np.testing.assert_array_equal(states_val[1], outputs_val[1, 0])  # t = 0 !!!
    # The others ran both steps: final state = their t = 1 output.
    for i in (0, 2, 3):
        assert np.any(outputs_val[i, 1] != 0)
        np.testing.assert_array_equal(states_val[i], outputs_val[i, 1])  # t = 1

    w = basic_cell.get_weights()
    want_out, want_state, _ = ref.rnn_forward(
        X_batch.astype(np.float64), None, w["kernel"], w["bias"], "tanh", seq_length_batch
    )
    assert_close(outputs_val, want_out, dtype, "outputs_val")
    assert_close(states_val, want_state, dtype, "states_val")

    # Without sequence_length instance 2 would have run a second step on its
    # zero padding vector, giving a different, non-zero output.
    full, _ = rnnrs.dynamic_rnn(basic_cell, X_batch)
    assert np.any(full[1, 1] != 0)
    np.testing.assert_array_equal(full[1, 0], outputs_val[1, 0])


# --------------------------------------------------------------------------
# (c) X_batch [4, 2, 3] through static_rnn with unstack / transpose
# --------------------------------------------------------------------------


def test_unstack_transpose_equivalence(dtype):
    basic_cell = rnnrs.BasicRNNCell(num_units=n_neurons, dtype=dtype, seed=7)

    # X_seqs = tf.unstack(tf.transpose(X, perm=[1, 0, 2]))
    X_seqs = list(np.transpose(X_batch, (1, 0, 2)))
    assert len(X_seqs) == 2 and all(x.shape == (4, n_inputs) for x in X_seqs)
    output_seqs, states = rnnrs.static_rnn(basic_cell, X_seqs)
    assert len(output_seqs) == 2
    # outputs = tf.transpose(tf.stack(output_seqs), perm=[1, 0, 2])
    outputs_val = np.transpose(np.stack(output_seqs), (1, 0, 2))
    assert outputs_val.shape == (4, 2, n_neurons)
    assert outputs_val.dtype == np.dtype(dtype)
    assert_close(states, outputs_val[:, -1].astype(np.float64), dtype, "states")

    # The same model with dynamic_rnn: no stack/unstack/transpose needed.
    outputs, states_dyn = rnnrs.dynamic_rnn(basic_cell, X_batch)
    assert_close(outputs, outputs_val.astype(np.float64), dtype, "dynamic vs static")
    assert_close(states_dyn, states.astype(np.float64), dtype, "dynamic vs static state")
    # ... and time-major.
    outputs_tm, states_tm = rnnrs.dynamic_rnn(basic_cell, np.transpose(X_batch, (1, 0, 2)), time_major=True)
    assert outputs_tm.shape == (2, 4, n_neurons)
    assert_close(np.transpose(outputs_tm, (1, 0, 2)), outputs_val.astype(np.float64), dtype, "tm")
    assert_close(states_tm, states.astype(np.float64), dtype, "tm state")

    # X_batch holds the same numbers as X0_batch / X1_batch, step by step.
    Y0, Y1 = rnnrs.static_rnn(basic_cell, [X0_batch, X1_batch])[0]
    np.testing.assert_array_equal(Y0, output_seqs[0])
    np.testing.assert_array_equal(Y1, output_seqs[1])
    w = basic_cell.get_weights()
    want, _, _ = ref.rnn_forward(X_batch.astype(np.float64), None, w["kernel"], w["bias"], "tanh")
    assert_close(outputs_val, want, dtype, "outputs_val")


# --------------------------------------------------------------------------
# Training RNNs: BPTT with a cost over outputs Y(t_min) .. Y(t_max) only
# --------------------------------------------------------------------------


def test_bptt_cost_over_last_outputs(dtype):
    """Figure 14-5: the cost uses Y(2), Y(3), Y(4); gradients still reach t = 0, 1 via the state."""
    rng = np.random.default_rng(145)
    B, T = 4, 5
    X = rng.normal(size=(B, T, n_inputs)).astype(dtype)
    targets = rng.normal(size=(B, T, n_neurons))
    basic_cell = rnnrs.BasicRNNCell(num_units=n_neurons, dtype=dtype, seed=5)
    outputs, states, backprop = rnnrs.dynamic_rnn(basic_cell, X, return_backprop=True)

    # C = 0.5 * sum over t = 2..4 of ||Y(t) - target(t)||^2; outputs before t_min are ignored.
    d_outputs = np.zeros((B, T, n_neurons))
    d_outputs[:, 2:] = outputs[:, 2:].astype(np.float64) - targets[:, 2:]
    grads = backprop(d_outputs=d_outputs.astype(dtype))

    w = basic_cell.get_weights()
    Xc = X.astype(np.float64)
    _, _, cache = ref.rnn_forward(Xc, None, w["kernel"], w["bias"], "tanh")
    d_x, d_h0, d_kernel, d_bias = ref.rnn_backward(cache, d_outputs.astype(dtype))
    assert_close(grads.inputs, d_x, dtype, "dC/dX")
    assert_close(grads.initial_state, d_h0, dtype, "dC/dh0")
    assert_close(grads.weights["kernel"], d_kernel, dtype, "dC/dkernel")
    assert_close(grads.weights["bias"], d_bias, dtype, "dC/dbias")
    # Back-propagated through time: the early inputs get gradient too.
    assert np.all(np.abs(grads.inputs[:, :2]).sum(axis=-1) > 0)

    # One gradient-descent step on the kernel lowers the cost.
    def cost(kernel):
        basic_cell.set_weights({"kernel": kernel, "bias": w["bias"]})
        out, _ = rnnrs.dynamic_rnn(basic_cell, X)
        return 0.5 * np.sum((out[:, 2:].astype(np.float64) - targets[:, 2:]) ** 2)

    before = cost(w["kernel"])
    after = cost(w["kernel"] - 0.01 * grads.weights["kernel"])
    assert after < before
