"""The chapter's examples (Hands-On ML, ch. 14, "RNNs in TensorFlow"), on rnnrs.

Runs each code sample of the chapter with rnnrs in place of TensorFlow 1.x,
then trains a small sequence classifier by backpropagation through time.
"""

from __future__ import annotations

import time

import numpy as np

import rnnrs

np.set_printoptions(precision=6, suppress=True)
n_inputs, n_neurons = 3, 5

# -- "Basic RNNs in TensorFlow": two steps built by hand --------------------
rng = np.random.default_rng(42)
Wx = rng.normal(size=(n_inputs, n_neurons)).astype(np.float32)
Wy = rng.normal(size=(n_neurons, n_neurons)).astype(np.float32)
b = np.zeros((1, n_neurons), dtype=np.float32)
X0_batch = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 0, 1]])  # t = 0
X1_batch = np.array([[9, 8, 7], [0, 0, 0], [6, 5, 4], [3, 2, 1]])  # t = 1
Y0 = np.tanh(X0_batch @ Wx + b)
Y1 = np.tanh(Y0 @ Wy + X1_batch @ Wx + b)

# -- "Static unrolling through time": the same model with static_rnn --------
basic_cell = rnnrs.BasicRNNCell(num_units=n_neurons)
basic_cell.set_weights({"kernel": np.vstack([Wx, Wy]), "bias": b[0]})  # rows [x; h]
(Y0_val, Y1_val), states = rnnrs.static_rnn(basic_cell, [X0_batch, X1_batch])
print("Y0_val =\n", Y0_val)
print("Y1_val =\n", Y1_val)
print("static_rnn equals the hand-built RNN:", np.allclose(Y0_val, Y0, atol=1e-5) and np.allclose(Y1_val, Y1, atol=1e-5))

# -- "Dynamic unrolling through time": one [batch, steps, inputs] array -----
X_batch = np.array([
    # t = 0      t = 1
    [[0, 1, 2], [9, 8, 7]],  # instance 1
    [[3, 4, 5], [0, 0, 0]],  # instance 2
    [[6, 7, 8], [6, 5, 4]],  # instance 3
    [[9, 0, 1], [3, 2, 1]],  # instance 4
])
outputs_val, states_val = rnnrs.dynamic_rnn(basic_cell, X_batch)
print("dynamic_rnn equals static_rnn:", np.allclose(outputs_val[:, 0], Y0_val) and np.allclose(outputs_val[:, 1], Y1_val))

# -- "Handling variable length input sequences" ------------------------------
seq_length_batch = np.array([2, 1, 2, 2])
outputs_val, states_val = rnnrs.dynamic_rnn(basic_cell, X_batch, sequence_length=seq_length_batch)
print("outputs_val (instance 2 is zero past its length) =\n", outputs_val)
print("states_val (instance 2 holds its t = 0 output) =\n", states_val)

# -- "Training RNNs": backpropagation through time ----------------------------
# A small sequence classifier: does a ragged sequence of numbers sum to more
# than zero? Final state -> dense -> sigmoid, trained with Adam on BPTT
# gradients (the training issue turns this into the full digits classifier).
rng = np.random.default_rng(0)
n_steps, n_train, n_test, n_hidden = 20, 2000, 500, 32


def make(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lengths = rng.integers(1, n_steps + 1, size=n)
    x = rng.normal(size=(n, n_steps, 1)).astype(np.float32)
    x[np.arange(n_steps)[None, :] >= lengths[:, None]] = 0.0
    y = (x.sum(axis=(1, 2)) > 0).astype(np.float32)
    return x, lengths, y


X_train, L_train, y_train = make(n_train)
X_test, L_test, y_test = make(n_test)
cell = rnnrs.BasicRNNCell(n_hidden, seed=0)
cell.build(1)
params = {**cell.get_weights(), "w": np.zeros((n_hidden, 1), np.float32), "c": np.zeros(1, np.float32)}
moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}


def predict(x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, rnnrs.Backprop]:
    _, state, backprop = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths, return_backprop=True)
    return state, 1.0 / (1.0 + np.exp(-(state @ params["w"] + params["c"])[:, 0])), backprop


start, step = time.perf_counter(), 0
for epoch in range(5):
    order = rng.permutation(n_train)
    for i in range(0, n_train, 50):
        idx = order[i : i + 50]
        state, p, backprop = predict(X_train[idx], L_train[idx])
        d_logit = (p - y_train[idx])[:, None] / len(idx)  # d(mean cross-entropy)
        grads = backprop(d_state=d_logit @ params["w"].T).weights
        grads.update(w=state.T @ d_logit, c=d_logit.sum(0))
        step += 1
        for k, g in grads.items():  # Adam, lr 0.01
            m, v = moments[k]
            m[:] = 0.9 * m + 0.1 * g
            v[:] = 0.999 * v + 0.001 * g * g
            params[k] -= 0.01 * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
        cell.set_weights({"kernel": params["kernel"], "bias": params["bias"]})
    _, p, _ = predict(X_test, L_test)
    print(f"epoch {epoch + 1}: test accuracy {np.mean((p > 0.5) == y_test):.3f}")
print(f"trained in {time.perf_counter() - start:.2f} s")
