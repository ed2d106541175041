"""Inference through an exported ONNX graph on ONNX Runtime, next to rnnrs itself.

For each case the same weights run as ``rnnrs`` (``dynamic_rnn`` or
``model.predict``) and as the graph ``rnnrs.convert.to_onnx`` writes, on an
ONNX Runtime session with as many intra-op threads as rnnrs's pool. Best of
``--repeat`` runs after warm-up, float32; the outputs are compared too.

    python benches/onnx_export.py                 # 2 threads, full and ragged batches
    python benches/onnx_export.py --threads 1 --repeat 50

Needs ``onnx`` and ``onnxruntime`` (``pip install "rnnrs[onnx]" onnxruntime``).
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import numpy as np

import rnnrs


def best(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=30)
    args = p.parse_args()

    import onnxruntime as ort

    rnnrs.set_num_threads(args.threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1

    def session(model: Any) -> Any:
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    rng = np.random.default_rng(0)
    print(f"threads {args.threads}, best of {args.repeat}; times in ms (speed-up = ONNX Runtime / rnnrs)")
    print(f"{'case':<44}{'lengths':<9}{'rnnrs':>9}{'ORT':>9}{'speed-up':>10}{'max |diff|':>12}")
    cells = {
        "BasicRNNCell": lambda: rnnrs.BasicRNNCell(128, seed=0),
        "BasicLSTMCell": lambda: rnnrs.BasicLSTMCell(128, seed=0),
        "GRUCell": lambda: rnnrs.GRUCell(128, seed=0),
        "GRUCell(reset_after)": lambda: rnnrs.GRUCell(128, reset_after=True, seed=0),
        "LSTMCell(num_proj=64) (Scan)": lambda: rnnrs.LSTMCell(128, num_proj=64, seed=0),
    }
    batch, steps = 64, 50
    x = rng.normal(size=(batch, steps, 128)).astype(np.float32)
    for name, make in cells.items():
        cell = make()
        cell.build(128)
        graph = session(rnnrs.convert.to_onnx(cell))
        for kind, lengths in (("full", np.full(batch, steps)), ("ragged", rng.integers(1, steps + 1, size=batch))):
            feed = {"inputs": x, "sequence_length": lengths.astype(np.int64)}
            ours = rnnrs.dynamic_rnn(cell, x, sequence_length=lengths)[0]
            theirs = graph.run(["outputs"], feed)[0]
            diff = float(np.abs(ours - theirs).max())
            t_ours = best(lambda: rnnrs.dynamic_rnn(cell, x, sequence_length=lengths), args.repeat)  # noqa: B023
            t_ort = best(lambda: graph.run(["outputs"], feed), args.repeat)  # noqa: B023
            label = f"{name} B{batch} T{steps} H128"
            print(f"{label:<44}{kind:<9}{t_ours * 1e3:>9.2f}{t_ort * 1e3:>9.2f}{t_ort / t_ours:>9.2f}x{diff:>12.1e}")

    digits = rnnrs.datasets.load_digits()
    images = digits.images.astype(np.float32) / 16
    model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(150, seed=0), num_classes=10, seed=0)
    model.fit(images, digits.labels, batch_size=150, epochs=1, seed=0, verbose=0)
    graph = session(rnnrs.convert.to_onnx(model))
    feed = {"inputs": images, "sequence_length": np.full(len(images), 8, np.int64)}
    diff = float(np.abs(model.predict(images) - graph.run(["predictions"], feed)[0]).max())
    t_ours = best(lambda: model.predict(images, batch_size=len(images)), args.repeat)
    t_ort = best(lambda: graph.run(["predictions"], feed), args.repeat)
    label = "digits SequenceClassifier predict, B1797 T8"
    print(f"{label:<44}{'full':<9}{t_ours * 1e3:>9.2f}{t_ort * 1e3:>9.2f}{t_ort / t_ours:>9.2f}x{diff:>12.1e}")


if __name__ == "__main__":
    main()
