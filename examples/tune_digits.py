"""Hyperparameter search with Ray Tune for the digits classifier.

Searches the cell kind (BasicRNNCell, BasicLSTMCell, GRUCell), its units and
Adam's learning rate for the chapter's sequence classifier on the bundled
8x8 digits, with 2 trials at a time; each trial reserves ``--cpus-per-trial``
CPUs and sizes rnnrs's thread pool to them. Every trial trains on 80% of
the training images and reports its validation accuracy after each epoch;
the best configuration is then retrained on all training images and its
test accuracy printed. Needs the ``ray`` extra: ``pip install "rnnrs[ray]"``
(and ``ray[tune]``).

    python examples/tune_digits.py                  # 12 trials of 20 epochs
    python examples/tune_digits.py --quick          # 4 trials of 2 epochs (what the tests run)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import rnnrs  # noqa: E402
from _common import make_cell, parser  # noqa: E402


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardised images (8 steps of 8 pixels), labels, and the stratified 80/20 train/test split."""
    data = rnnrs.datasets.load_digits()
    x = data.images.astype(np.float32)
    train, test = rnnrs.datasets.train_test_split(len(data.labels), test_size=0.2, seed=0, stratify=data.labels)
    x = (x - x[train].mean()) / x[train].std()
    return x, data.labels, train, test


def build(config: dict[str, Any], seed: int) -> rnnrs.SequenceClassifier:
    cell = make_cell(config["cell"], int(config["units"]), seed=seed)
    return rnnrs.SequenceClassifier(cell, num_classes=10, seed=seed, optimizer=rnnrs.Adam(config["lr"]))


def trainable(config: dict[str, Any]) -> None:
    """One trial: train, report the validation accuracy after every epoch."""
    from ray import tune

    rnnrs.set_num_threads(max(1, int(config["cpus"])))  # the trial's CPUs, not the machine's
    x, y, train, _ = digits()
    model = build(config, config["seed"])

    class Report(rnnrs.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            tune.report({"val_accuracy": logs["val_accuracy"], "epoch": epoch + 1})

    model.fit(
        x[train],
        y[train],
        batch_size=150,
        epochs=config["epochs"],
        seed=config["seed"],
        validation_split=0.2,
        verbose=0,
        callbacks=[Report()],
    )


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=None, help="trials to run (default 12; 4 with --quick)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 20; 2 with --quick)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs each trial reserves (default 1)")
    args = p.parse_args()
    trials = args.trials or (4 if args.quick else 12)
    epochs = args.epochs or (2 if args.quick else 20)
    try:
        import ray
        from ray import tune
    except ImportError as e:
        sys.exit(f'this example needs Ray: pip install "rnnrs[ray]" "ray[tune]" ({e})')

    if not ray.is_initialized():
        ray.init(num_cpus=int(2 * args.cpus_per_trial), include_dashboard=False, log_to_driver=False)
    space = {
        "cell": tune.choice(["rnn", "lstm", "gru"]),
        "units": tune.choice([32, 64] if args.quick else [64, 100, 150]),
        "lr": tune.loguniform(1e-3, 1e-2),
        "epochs": epochs,
        "seed": args.seed,
        "cpus": args.cpus_per_trial,
    }
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as storage:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": args.cpus_per_trial}),
            param_space=space,
            tune_config=tune.TuneConfig(metric="val_accuracy", mode="max", num_samples=trials, max_concurrent_trials=2),
            run_config=tune.RunConfig(storage_path=storage, name="tune_digits", verbose=0),
        )
        best = tuner.fit().get_best_result()
    seconds = time.perf_counter() - start
    config = {k: best.config[k] for k in ("cell", "units", "lr")}
    print(f"{trials} trials of {epochs} epochs, 2 at a time: {seconds:.1f} s")
    print(f"best config: {config}, validation accuracy {best.metrics['val_accuracy']:.4f}")

    x, y, train, test = digits()
    model = build(best.config, args.seed)
    model.fit(x[train], y[train], batch_size=150, epochs=epochs, seed=args.seed, verbose=0)
    result = model.evaluate(x[test], y[test])
    print(f"test accuracy of the best config: {result['accuracy']:.4f}", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
