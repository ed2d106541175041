"""The chapter's deep RNN: three stacked recurrent layers with dropout, on the time series.

Hands-On ML (1st ed., ch. 14, "Deep RNNs" and "Applying Dropout"): a
MultiRNNCell of 3 cells of 100 units, each wrapped in a DropoutWrapper
(dropout on its inputs) that is active only while training, and a dense layer
applied to every step's output (the chapter's "reshape trick"), trained with
Adam (0.001) on the MSE of the next value. Prints the test MSE (dropout off)
and the training time.

    python examples/deep_rnn.py [--cell rnn|lstm|gru] [--keep-prob 0.5] [--quick]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import rnnrs  # noqa: E402
from _common import make_cell, parser, train_series, verbosity  # noqa: E402


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=100, help="units per layer (default 100)")
    p.add_argument("--layers", type=int, default=3, help="stacked layers (default 3)")
    p.add_argument(
        "--keep-prob", type=float, default=0.9, help="input keep probability of each layer while training (default 0.9)"
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="passes over the training windows (default 15, 6 with --quick)"
    )
    args = p.parse_args()
    n_train = 2000 if args.quick else 5000
    epochs = args.epochs if args.epochs is not None else (6 if args.quick else 15)

    layers = [
        rnnrs.DropoutWrapper(
            make_cell(args.cell, args.units, seed=args.seed + i), input_keep_prob=args.keep_prob, seed=args.seed + i
        )
        for i in range(args.layers)
    ]
    model = rnnrs.SequenceRegressor(rnnrs.MultiRNNCell(layers), output_size=1, seed=args.seed)
    print(
        f"MultiRNNCell of {args.layers} x DropoutWrapper({type(layers[0].cell).__name__}({args.units}), "
        f"input_keep_prob={args.keep_prob}) -> Dense(1) on every step; {n_train} windows, {epochs} epochs",
        flush=True,
    )
    mse, seconds, rate = train_series(model, n_train, epochs, args.seed, verbosity(args.verbose))
    print(f"test MSE: {mse:.6f}")
    print(f"training time: {seconds:.2f} s ({rate:.0f} steps per second)")


if __name__ == "__main__":
    main()
