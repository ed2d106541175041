"""Writes the TF 1.x checkpoint fixtures of ``tests/test_tf1_checkpoint.py``
with real TensorFlow (``tf.compat.v1``, graph mode), and checks that real
TensorFlow reads the checkpoints ``rnnrs.convert.to_tf1_checkpoint`` writes.

Run with a Python that has TensorFlow and ``tf-keras`` (TF 2.16+ needs
``tf-keras`` for ``tf.compat.v1.nn.rnn_cell``)::

    TF_USE_LEGACY_KERAS=1 PYTHONPATH=python /path/to/tf/python scripts/make_tf1_fixtures.py [--verify-only]

Each case ``tests/fixtures/tf1/<case>/`` holds what ``tf.compat.v1.train.Saver``
wrote (``model.ckpt.index``, ``model.ckpt.data-00000-of-00001``,
``checkpoint``) and ``expected.npz``: the fixed ``inputs`` ``[B, T, I]``,
``sequence_length`` (ragged, with a 0 and a T), TensorFlow's ``outputs``
(``outputs_fw``/``outputs_bw`` for a bidirectional pair) and final state
leaves (``state/<path>``), and every variable's value (``var/<TF name>``).
Every variable, biases included, is set to random values before saving.

TensorFlow 2.x dropped ``tf.contrib``; ``OutputProjectionWrapper``
(``contrib/rnn/python/ops/core_rnn_cell.py``) and ``CudnnCompatibleGRUCell``
(``contrib/cudnn_rnn/python/ops/cudnn_rnn_ops.py``) are ported below from
TF 1.15's source (same class names, so TF's layer scoping gives them the
same variable names: ``output_projection_wrapper``,
``cudnn_compatible_gru_cell``).

``--verify-only`` skips writing fixtures and runs the writer check: rnnrs
cells with random weights are written with ``to_tf1_checkpoint``, then read
back by TensorFlow (``tf.train.load_checkpoint`` values bitwise equal, and a
``Saver.restore`` into the matching TF graph whose ``dynamic_rnn`` outputs
match rnnrs's within 1e-5).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

v1 = tf.compat.v1
v1.disable_eager_execution()
v1.logging.set_verbosity(v1.logging.ERROR)
rnn_cell = v1.nn.rnn_cell
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "tf1"


class OutputProjectionWrapper(rnn_cell.RNNCell):
    """TF 1.15 ``tf.contrib.rnn.OutputProjectionWrapper`` (its ``_Linear``
    creates ``kernel`` and ``bias`` in the wrapper's own scope)."""

    def __init__(self, cell, output_size, activation=None, reuse=None):
        super().__init__(_reuse=reuse)
        self._cell = cell
        self._output_size = output_size
        self._activation = activation

    @property
    def state_size(self):
        return self._cell.state_size

    @property
    def output_size(self):
        return self._output_size

    def zero_state(self, batch_size, dtype):
        with tf.name_scope(type(self).__name__ + "ZeroState"):
            return self._cell.zero_state(batch_size, dtype)

    def call(self, inputs, state):
        output, res_state = self._cell(inputs, state)
        size = output.get_shape()[-1]
        kernel = v1.get_variable("kernel", [size, self._output_size], dtype=output.dtype)
        bias = v1.get_variable("bias", [self._output_size], dtype=output.dtype, initializer=v1.zeros_initializer())
        projected = tf.nn.bias_add(tf.matmul(output, kernel), bias)
        if self._activation:
            projected = self._activation(projected)
        return projected, res_state


class CudnnCompatibleGRUCell(rnn_cell.GRUCell):
    """TF 1.15 ``tf.contrib.cudnn_rnn.CudnnCompatibleGRUCell`` (reset after
    the recurrent product, as cuDNN)."""

    def __init__(self, num_units, reuse=None, kernel_initializer=None):
        super().__init__(num_units, activation=None, reuse=reuse, kernel_initializer=kernel_initializer)

    def build(self, inputs_shape):
        depth = int(inputs_shape[-1])
        n = self._num_units
        self._gate_kernel = self.add_weight("gates/kernel", shape=[depth + n, 2 * n])
        self._gate_bias = self.add_weight(
            "gates/bias", shape=[2 * n], initializer=v1.constant_initializer(1.0, dtype=self.dtype)
        )
        self._candidate_input_kernel = self.add_weight("candidate/input_projection/kernel", shape=[depth, n])
        self._candidate_hidden_kernel = self.add_weight("candidate/hidden_projection/kernel", shape=[n, n])
        self._candidate_input_bias = self.add_weight(
            "candidate/input_projection/bias", shape=[n], initializer=v1.zeros_initializer()
        )
        self._candidate_hidden_bias = self.add_weight(
            "candidate/hidden_projection/bias", shape=[n], initializer=v1.zeros_initializer()
        )
        self.built = True

    def call(self, inputs, state):
        gate_inputs = tf.nn.bias_add(tf.matmul(tf.concat([inputs, state], 1), self._gate_kernel), self._gate_bias)
        r, u = tf.split(tf.sigmoid(gate_inputs), 2, axis=1)
        candidate = tf.nn.bias_add(tf.matmul(inputs, self._candidate_input_kernel), self._candidate_input_bias)
        candidate += r * tf.nn.bias_add(tf.matmul(state, self._candidate_hidden_kernel), self._candidate_hidden_bias)
        candidate = self._activation(candidate)
        new_h = (1 - u) * candidate + u * state
        return new_h, new_h


# name: (input size, builder(dtype) -> cell or (fw, bw), dtype, scope, extras)
def _cases():
    return {
        "basic_rnn": (3, lambda: rnn_cell.BasicRNNCell(5), tf.float32, None, False),
        "basic_rnn_f64_scope": (3, lambda: rnn_cell.BasicRNNCell(4), tf.float64, "encoder", False),
        "basic_lstm": (3, lambda: rnn_cell.BasicLSTMCell(4), tf.float32, None, False),
        "lstm_peephole_proj": (
            3,
            lambda: rnn_cell.LSTMCell(4, use_peepholes=True, cell_clip=1.5, num_proj=3, proj_clip=0.8),
            tf.float32,
            None,
            False,
        ),
        "gru": (3, lambda: rnn_cell.GRUCell(4), tf.float32, None, False),
        "cudnn_gru": (3, lambda: CudnnCompatibleGRUCell(4), tf.float32, None, True),
        "multi": (
            3,
            lambda: rnn_cell.MultiRNNCell(
                [rnn_cell.DropoutWrapper(rnn_cell.BasicLSTMCell(4), output_keep_prob=1.0), rnn_cell.GRUCell(3)]
            ),
            tf.float32,
            None,
            False,
        ),
        "output_projection": (
            3,
            lambda: OutputProjectionWrapper(rnn_cell.BasicRNNCell(5), 2),
            tf.float32,
            None,
            False,
        ),
        "bidirectional": (
            3,
            lambda: (rnn_cell.GRUCell(3), rnn_cell.LSTMCell(4, use_peepholes=True)),
            tf.float32,
            None,
            False,
        ),
    }


BATCH, TIME = 4, 5
LENGTHS = np.array([5, 0, 3, 1], dtype=np.int32)


def _leaves(prefix, state):
    """(name, tensor) of a state structure's leaves in flatten order."""
    if isinstance(state, rnn_cell.LSTMStateTuple):
        return [(f"{prefix}/c", state.c), (f"{prefix}/h", state.h)]
    if isinstance(state, (tuple, list)):
        out = []
        for i, s in enumerate(state):
            out += _leaves(f"{prefix}/cell_{i}", s)
        return out
    return [(prefix, state)]


def _graph(size, builder, dtype, scope, optimizer):
    """Builds the case's graph; returns (placeholders, fetches)."""
    x = v1.placeholder(dtype, [BATCH, TIME, size], name="x")
    lengths = v1.placeholder(tf.int32, [BATCH], name="lengths")
    made = builder()
    fetches = {}
    if isinstance(made, tuple):
        (out_fw, out_bw), (s_fw, s_bw) = v1.nn.bidirectional_dynamic_rnn(
            made[0], made[1], x, sequence_length=lengths, dtype=dtype, scope=scope
        )
        fetches.update({"outputs_fw": out_fw, "outputs_bw": out_bw})
        fetches.update(dict(_leaves("state_fw", s_fw) + _leaves("state_bw", s_bw)))
    else:
        outputs, state = v1.nn.dynamic_rnn(made, x, sequence_length=lengths, dtype=dtype, scope=scope)
        fetches["outputs"] = outputs
        fetches.update(dict(_leaves("state", state)))
        if optimizer:
            # Extra variables a training checkpoint holds (Adam slots, beta powers, global_step).
            step = v1.train.get_or_create_global_step()
            loss = tf.reduce_sum(tf.square(outputs))
            v1.train.AdamOptimizer(0.01).minimize(loss, global_step=step)
    return x, lengths, fetches


def write_case(name, size, builder, dtype, scope, optimizer):
    np_dtype = np.float64 if dtype == tf.float64 else np.float32
    rng = np.random.default_rng(sum(map(ord, name)))
    graph = tf.Graph()
    with graph.as_default():
        x, lengths, fetches = _graph(size, builder, dtype, scope, optimizer)
        trainable = v1.trainable_variables()
        saver = v1.train.Saver(save_relative_paths=True)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            values = {}
            for var in trainable:
                value = rng.uniform(-0.8, 0.8, size=var.shape.as_list()).astype(np_dtype)
                var.load(value, sess)
                values[var.op.name] = value
            inputs = rng.standard_normal((BATCH, TIME, size)).astype(np_dtype)
            got = sess.run(fetches, {x: inputs, lengths: LENGTHS})
            folder = OUT / name
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            saver.save(sess, str(folder / "model.ckpt"), write_meta_graph=False)
            all_names = [v.op.name for v in v1.global_variables()]
    arrays = {"inputs": inputs, "sequence_length": LENGTHS.astype(np.int64)}
    arrays.update({k: np.asarray(v) for k, v in got.items()})
    arrays.update({f"var/{k}": v for k, v in values.items()})
    np.savez(OUT / name / "expected.npz", **arrays)
    print(f"{name}: trainable {sorted(values)}; all {sorted(all_names)}")


def verify_writer():
    """rnnrs → to_tf1_checkpoint → TensorFlow reads it (values, and a restored graph's outputs)."""
    sys.path.insert(0, str(ROOT / "python"))
    import rnnrs
    from rnnrs.convert import to_tf1_checkpoint

    cases = {
        "basic_rnn": (lambda: rnnrs.BasicRNNCell(5), lambda: rnn_cell.BasicRNNCell(5)),
        "basic_lstm": (lambda: rnnrs.BasicLSTMCell(4), lambda: rnn_cell.BasicLSTMCell(4)),
        "lstm_peephole_proj": (
            lambda: rnnrs.LSTMCell(4, use_peepholes=True, cell_clip=1.5, num_proj=3, proj_clip=0.8),
            lambda: rnn_cell.LSTMCell(4, use_peepholes=True, cell_clip=1.5, num_proj=3, proj_clip=0.8),
        ),
        "gru": (lambda: rnnrs.GRUCell(4), lambda: rnn_cell.GRUCell(4)),
        "cudnn_gru": (lambda: rnnrs.GRUCell(4, reset_after=True), lambda: CudnnCompatibleGRUCell(4)),
        "multi": (
            lambda: rnnrs.MultiRNNCell([rnnrs.BasicLSTMCell(4), rnnrs.GRUCell(3)]),
            lambda: rnn_cell.MultiRNNCell([rnn_cell.BasicLSTMCell(4), rnn_cell.GRUCell(3)]),
        ),
        "output_projection": (
            lambda: rnnrs.OutputProjectionWrapper(rnnrs.BasicRNNCell(5), 2),
            lambda: OutputProjectionWrapper(rnn_cell.BasicRNNCell(5), 2),
        ),
        "bidirectional": (
            lambda: (rnnrs.GRUCell(3), rnnrs.LSTMCell(4, use_peepholes=True)),
            lambda: (rnn_cell.GRUCell(3), rnn_cell.LSTMCell(4, use_peepholes=True)),
        ),
    }
    rng = np.random.default_rng(7)
    failures = 0
    for name, (make_ours, make_tf) in cases.items():
        ours = make_ours()
        pair = isinstance(ours, tuple)
        for cell in ours if pair else (ours,):
            cell.build(3)
            cell.set_weights({k: rng.uniform(-0.8, 0.8, v.shape) for k, v in cell.get_weights().items()})
        inputs = rng.standard_normal((BATCH, TIME, 3)).astype(np.float32)
        lens = LENGTHS.astype(np.int64)
        if pair:
            (o_fw, o_bw), _ = rnnrs.bidirectional_dynamic_rnn(ours[0], ours[1], inputs, sequence_length=lens)
            expected = [o_fw, o_bw]
        else:
            expected = [rnnrs.dynamic_rnn(ours, inputs, sequence_length=lens)[0]]
        with tempfile.TemporaryDirectory() as tmp:
            prefix = os.path.join(tmp, "written.ckpt")
            scope = "bidirectional_rnn" if pair else "rnn"
            to_tf1_checkpoint(ours, prefix, scope=scope)
            reader = tf.train.load_checkpoint(prefix)
            tf_names = sorted(reader.get_variable_to_shape_map())
            graph = tf.Graph()
            with graph.as_default():
                x, lengths, fetches = _graph(3, make_tf, tf.float32, None, False)
                with v1.Session() as sess:
                    v1.train.Saver().restore(sess, prefix)
                    same_values = all(
                        np.array_equal(sess.run(v), reader.get_tensor(v.op.name)) for v in v1.global_variables()
                    )
                    got = sess.run(fetches, {x: inputs, lengths: LENGTHS})
        outs = [got["outputs_fw"], got["outputs_bw"]] if pair else [got["outputs"]]
        err = max(float(np.max(np.abs(a - b))) for a, b in zip(outs, expected))
        ok = same_values and err <= 1e-5
        failures += not ok
        print(f"writer {name}: TF read {tf_names}; values equal {same_values}; max |outputs diff| {err:.2e}")
    print("writer check:", "all passed" if not failures else f"{failures} FAILED")
    return failures


def main():
    if "--verify-only" not in sys.argv:
        for name, (size, builder, dtype, scope, optimizer) in _cases().items():
            write_case(name, size, builder, dtype, scope, optimizer)
    if "--no-verify" not in sys.argv and verify_writer():
        sys.exit(1)


if __name__ == "__main__":
    main()
