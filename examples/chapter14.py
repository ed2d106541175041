"""The chapter's examples (Hands-On ML, ch. 14, "RNNs in TensorFlow"), on rnnrs.

Runs each code sample of the chapter with rnnrs in place of TensorFlow 1.x,
as written but for ``tf.contrib.rnn.X``/``tf.nn.X`` -> ``rnnrs.X``,
``tf.float32`` -> ``np.float32`` and placeholders/sessions -> NumPy arrays
(TensorFlow 1.x's positional orders and ``dtype=`` work as in TensorFlow),
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
output_seqs, states = rnnrs.static_rnn(basic_cell, [X0_batch, X1_batch], dtype=np.float32)
Y0_val, Y1_val = output_seqs
print("Y0_val =\n", Y0_val)
print("Y1_val =\n", Y1_val)
print(
    "static_rnn equals the hand-built RNN:", np.allclose(Y0_val, Y0, atol=1e-5) and np.allclose(Y1_val, Y1, atol=1e-5)
)
# TensorFlow's positional order: static_rnn(cell, inputs, initial_state, dtype, ...)
(Y1_again,), _ = rnnrs.static_rnn(basic_cell, [X1_batch], Y0_val, np.float32)
print("static_rnn(cell, inputs, initial_state) continues from a state:", np.allclose(Y1_again, Y1_val, atol=1e-6))

# -- the same with one [batch, steps, inputs] array unstacked ----------------
X_batch = np.array(
    [
        # t = 0      t = 1
        [[0, 1, 2], [9, 8, 7]],  # instance 1
        [[3, 4, 5], [0, 0, 0]],  # instance 2
        [[6, 7, 8], [6, 5, 4]],  # instance 3
        [[9, 0, 1], [3, 2, 1]],  # instance 4
    ]
)
X_seqs = list(np.transpose(X_batch, axes=[1, 0, 2]))  # tf.unstack(tf.transpose(X, perm=[1, 0, 2]))
output_seqs, states = rnnrs.static_rnn(basic_cell, X_seqs, dtype=np.float32)
outputs_val = np.transpose(np.stack(output_seqs), axes=[1, 0, 2])

# -- "Dynamic unrolling through time": one [batch, steps, inputs] array -----
outputs, states = rnnrs.dynamic_rnn(basic_cell, X_batch, dtype=np.float32)
print("dynamic_rnn equals static_rnn:", np.allclose(outputs, outputs_val) and np.allclose(outputs[:, 0], Y0_val))

# -- "Handling variable length input sequences" ------------------------------
seq_length_batch = np.array([2, 1, 2, 2])
outputs_val, states_val = rnnrs.dynamic_rnn(basic_cell, X_batch, dtype=np.float32, sequence_length=seq_length_batch)
print("outputs_val (instance 2 is zero past its length) =\n", outputs_val)
print("states_val (instance 2 holds its t = 0 output) =\n", states_val)

# -- "Training RNNs": backpropagation through time ----------------------------
# A small sequence classifier: does a ragged sequence of numbers sum to more
# than zero? The chapter's recipe — final state -> dense -> softmax, Adam —
# with rnnrs's training API (fit shuffles, batches and backpropagates through
# time; examples/digits_classifier.py is the chapter's full digits version).
rng = np.random.default_rng(0)
n_steps, n_train, n_test, n_hidden = 20, 2000, 500, 32


def make(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lengths = rng.integers(1, n_steps + 1, size=n)
    x = rng.normal(size=(n, n_steps, 1)).astype(np.float32)
    x[np.arange(n_steps)[None, :] >= lengths[:, None]] = 0.0
    y = (x.sum(axis=(1, 2)) > 0).astype(np.int64)
    return x, lengths, y


X_train, L_train, y_train = make(n_train)
X_test, L_test, y_test = make(n_test)
model = rnnrs.SequenceClassifier(
    rnnrs.BasicRNNCell(n_hidden, seed=0), num_classes=2, seed=0, optimizer=rnnrs.Adam(0.01)
)
start = time.perf_counter()
history = model.fit(
    X_train,
    y_train,
    batch_size=50,
    epochs=5,
    sequence_length=L_train,
    validation_data=(X_test, y_test, L_test),
    seed=0,
    verbose=0,
)
seconds = time.perf_counter() - start
for epoch, accuracy in enumerate(history.history["val_accuracy"]):
    print(f"epoch {epoch + 1}: test accuracy {accuracy:.3f}")
print(f"trained in {seconds:.2f} s")
