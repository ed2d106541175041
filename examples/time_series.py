"""The chapter's time-series predictor: t*sin(t)/3 + 2*sin(5t), one step ahead.

Hands-On ML (1st ed., ch. 14, "Training to Predict Time Series"): windows of
20 steps of the series, a 100-unit BasicRNNCell whose outputs an
OutputProjectionWrapper reduces to one value per step, trained with Adam
(0.001) on the mean squared error against the window shifted one step ahead.
Prints the test MSE (1000 fresh windows) and the training time, saves the
trained model (for examples/generate.py) and, when matplotlib is installed
(pip install "rnnrs[examples]"), the chapter's plot as a PNG.

    python examples/time_series.py [--cell rnn|lstm|gru] [--quick]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import OUT_DIR, have_matplotlib, instance_window, make_cell, parser, series_model, train_series, verbosity  # noqa: E402


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=100, help="units of the cell (default 100, as the chapter)")
    p.add_argument(
        "--epochs", type=int, default=None, help="passes over the training windows (default 15, 6 with --quick)"
    )
    p.add_argument("--save", default=os.path.join(OUT_DIR, "time_series.npz"), help="where to write the model")
    p.add_argument("--plot", default=os.path.join(OUT_DIR, "time_series.png"), help="where to write the PNG plot")
    args = p.parse_args()
    n_train = 2000 if args.quick else 5000
    epochs = args.epochs if args.epochs is not None else (6 if args.quick else 15)

    cell = make_cell(args.cell, args.units, seed=args.seed)
    model = series_model(cell)
    print(
        f"OutputProjectionWrapper({type(cell).__name__}({args.units}), 1); {n_train} windows of 20 steps, "
        f"{epochs} epochs of batches of 50",
        flush=True,
    )
    mse, seconds, rate = train_series(model, n_train, epochs, args.seed, verbosity(args.verbose))
    print(f"test MSE: {mse:.6f}")
    print(f"training time: {seconds:.2f} s ({rate:.0f} steps per second)")

    os.makedirs(os.path.dirname(os.path.abspath(args.save)), exist_ok=True)
    model.save(args.save)
    print(f"saved the model to {args.save}")

    t, x, y = instance_window()
    prediction = model.predict(x)
    if not have_matplotlib():
        print('matplotlib is not installed: no plot (pip install "rnnrs[examples]" or pip install matplotlib)')
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.set_title("Testing the model")
    ax.plot(t[:-1], x[0, :, 0], "bo", markersize=10, label="instance")
    ax.plot(t[1:], y[0, :, 0], "w*", markersize=10, markeredgecolor="k", label="target")
    ax.plot(t[1:], prediction[0, :, 0], "r.", markersize=10, label="prediction")
    ax.legend(loc="upper left")
    ax.set_xlabel("Time")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.plot)), exist_ok=True)
    fig.savefig(args.plot, dpi=100)
    print(f"saved the plot to {args.plot}")


if __name__ == "__main__":
    main()
