"""The digits sequence classifier trained by rnnrs and by PyTorch (CPU), side by side.

Same data (the bundled 8x8 digits, standardised, stratified 80/20 split), same
model (a 150-unit tanh RNN reading 8 rows of 8 pixels, its last output through
a dense layer of 10 logits, Glorot-uniform kernels and zero biases, inputs
dropped with probability 0.2 while training, as examples/digits_classifier.py), same
optimizer (Adam, learning rate 0.001), same batch size, epochs and shuffling
scheme. Only the training loop is timed (no evaluation inside it). Runs are
interleaved (rnnrs, torch with its default threads, torch with one thread) and
repeated; the table gives the median time and the accuracy of each.

    python benches/train_digits_torch.py                 # 100 epochs of batches of 150, 3 repeats
    python benches/train_digits_torch.py --quick         # 10 epochs, 1 repeat

PyTorch is optional: without it only rnnrs runs.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from typing import Any, Callable

import numpy as np

import rnnrs


def load(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    digits = rnnrs.datasets.load_digits()
    x = digits.images.astype(np.float32)
    y = digits.labels.astype(np.int64)
    train, test = rnnrs.datasets.train_test_split(len(y), test_size=0.2, seed=seed, stratify=y)
    x = (x - x[train].mean()) / x[train].std()
    return x[train], y[train], x[test], y[test]


def run_rnnrs(
    data: tuple[np.ndarray, ...], epochs: int, batch_size: int, seed: int, keep: float
) -> tuple[float, float]:
    x, y, x_test, y_test = data
    cell: rnnrs.RNNCell = rnnrs.BasicRNNCell(150, seed=seed)
    if keep < 1.0:
        cell = rnnrs.DropoutWrapper(cell, input_keep_prob=keep, seed=seed)
    model = rnnrs.SequenceClassifier(cell, 10, seed=seed, optimizer=rnnrs.Adam(0.001))
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, seed=seed, verbose=0)
    seconds = time.perf_counter() - start
    return seconds, model.evaluate(x_test, y_test)["accuracy"]


def run_torch(
    data: tuple[np.ndarray, ...], epochs: int, batch_size: int, seed: int, keep: float, threads: int
) -> tuple[float, float]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        x, y, x_test, y_test = (torch.from_numpy(a) for a in data)

        class Classifier(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.dropout = torch.nn.Dropout(1.0 - keep)
                self.rnn = torch.nn.RNN(8, 150, nonlinearity="tanh", batch_first=True)
                self.dense = torch.nn.Linear(150, 10)
                for name, p in [*self.rnn.named_parameters(), *self.dense.named_parameters()]:
                    if "weight" in name:
                        torch.nn.init.xavier_uniform_(p)
                    else:
                        torch.nn.init.zeros_(p)

            def forward(self, inputs: Any) -> Any:
                _, h = self.rnn(self.dropout(inputs))
                return self.dense(h[0])

        model = Classifier()
        optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
        loss_fn = torch.nn.CrossEntropyLoss()
        rng = np.random.default_rng(seed)
        n = len(x)
        start = time.perf_counter()
        model.train()
        for _ in range(epochs):
            order = torch.from_numpy(rng.permutation(n))
            xs, ys = x[order], y[order]
            for i in range(0, n, batch_size):
                optimizer.zero_grad()
                loss = loss_fn(model(xs[i : i + batch_size]), ys[i : i + batch_size])
                loss.backward()
                optimizer.step()
        seconds = time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            accuracy = float((model(x_test).argmax(1) == y_test).double().mean())
        return seconds, accuracy
    finally:
        torch.set_num_threads(before)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=150)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--keep-prob",
        type=float,
        default=0.8,
        help="input keep probability while training (default 0.8, as examples/digits_classifier.py; 1: none)",
    )
    p.add_argument("--quick", action="store_true", help="10 epochs, 1 repeat")
    p.add_argument("--rnnrs-only", action="store_true", help="skip PyTorch")
    p.add_argument(
        "--torch-threads",
        default="default,1",
        help="comma-separated PyTorch thread counts ('default' = torch.get_num_threads()); default 'default,1'",
    )
    args = p.parse_args()
    if args.quick:
        args.epochs, args.repeats = 10, 1
    data = load()
    runs: dict[str, Callable[[], tuple[float, float]]] = {
        f"rnnrs ({rnnrs.get_num_threads()} thread{'s' if rnnrs.get_num_threads() > 1 else ''})": (
            lambda: run_rnnrs(data, args.epochs, args.batch_size, args.seed, args.keep_prob)
        )
    }
    try:
        if args.rnnrs_only:
            raise ImportError
        import torch
    except ImportError:
        print("PyTorch skipped" if args.rnnrs_only else "PyTorch is not installed: rnnrs only (pip install torch)")
    else:
        counts: list[int] = []
        for item in args.torch_threads.split(","):
            n = torch.get_num_threads() if item.strip() == "default" else int(item)
            if n not in counts:
                counts.append(n)
        for n in counts:
            runs[f"PyTorch {torch.__version__} CPU ({n} thread{'s' if n > 1 else ''})"] = functools.partial(
                run_torch, data, args.epochs, args.batch_size, args.seed, args.keep_prob, n
            )
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for r in range(args.repeats):
        for name, run in runs.items():
            results[name].append(run())
            print(
                f"  repeat {r + 1}: {name}: {results[name][-1][0]:.2f} s, accuracy {results[name][-1][1]:.4f}",
                flush=True,
            )
    steps = args.epochs * -(-len(data[0]) // args.batch_size)
    print(
        f"\ndigits classifier, 150-unit tanh RNN, Adam 0.001, {args.epochs} epochs x batches of {args.batch_size} "
        f"({steps} steps), input keep prob {args.keep_prob}, median of {args.repeats}:"
    )
    base = statistics.median(s for s, _ in next(iter(results.values())))
    print(f"{'':44} {'train s':>8} {'ms/step':>8} {'test acc':>9} {'vs rnnrs':>9}")
    for name, rs in results.items():
        med = statistics.median(s for s, _ in rs)
        acc = statistics.median(a for _, a in rs)
        print(f"{name:44} {med:8.2f} {1000 * med / steps:8.2f} {acc:9.4f} {med / base:8.1f}x")


if __name__ == "__main__":
    main()
