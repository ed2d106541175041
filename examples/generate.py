"""The chapter's "creative RNN": let the time-series model write its own future.

Hands-On ML (1st ed., ch. 14, "Creative RNN"): start from a seed of
n_steps values, predict the next value, append it, and feed the last n_steps
values back in, 300 times. This uses the model examples/time_series.py saved
(examples/out/time_series.npz), or trains one first when there is none.

Prints the quality figure — the MSE of the first 10 generated values against
the true continuation of the series, averaged over 100 seeds cut from the
series, next to the same figure for repeating the seed's last value — and the
generation time; draws the chapter's two panels (a seed of zeros, a seed from
the series) when matplotlib is installed.

    python examples/generate.py [--model PATH] [--quick] [--stateful]
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import rnnrs  # noqa: E402
from _common import OUT_DIR, have_matplotlib, make_cell, parser, series_model, train_series, verbosity  # noqa: E402

N_STEPS, RESOLUTION, LENGTH, COMPARED, SEEDS = 20, 0.1, 300, 10, 100


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--model",
        default=os.path.join(OUT_DIR, "time_series.npz"),
        help="model saved by examples/time_series.py (trained here when the file is missing)",
    )
    p.add_argument("--retrain", action="store_true", help="train a model even when --model exists")
    p.add_argument(
        "--stateful",
        action="store_true",
        help="carry the recurrent state instead of re-reading the last 20 values (the chapter's loop)",
    )
    p.add_argument("--plot", default=os.path.join(OUT_DIR, "generate.png"), help="where to write the PNG plot")
    args = p.parse_args()

    if os.path.exists(args.model) and not args.retrain:
        model = rnnrs.load_model(args.model)
        print(f"loaded {args.model}")
    else:
        model = series_model(make_cell(args.cell, 100, seed=args.seed))
        n_train, epochs = (2000, 6) if args.quick else (5000, 15)
        mse, seconds, _ = train_series(model, n_train, epochs, args.seed, verbosity(args.verbose))
        print(f"trained a time-series model: test MSE {mse:.6f} in {seconds:.2f} s")

    window = None if args.stateful else N_STEPS
    # The chapter's seed: 20 zeros.
    start = time.perf_counter()
    from_zeros = model.generate(np.zeros((N_STEPS, 1), dtype=np.float32), LENGTH, window=window)
    seconds = time.perf_counter() - start
    # Quality: 100 seeds cut from the series (t0 uniform in the training
    # range), the first 10 generated values against the true continuation.
    rng = np.random.default_rng(args.seed + 20_000)
    t0 = rng.uniform(0.0, 30.0 - RESOLUTION * (N_STEPS + COMPARED), size=(SEEDS, 1))
    windows = rnnrs.datasets.time_series(t0 + RESOLUTION * np.arange(N_STEPS + COMPARED)).astype(np.float32)
    generated = model.generate(windows[:, :N_STEPS, None], COMPARED, window=window)[..., 0]
    error = float(np.mean((generated - windows[:, N_STEPS:]) ** 2))
    baseline = float(np.mean((windows[:, N_STEPS - 1 : N_STEPS] - windows[:, N_STEPS:]) ** 2))
    # The chapter's right panel: a seed cut from the series at t = 12.2.
    t = 12.2 + RESOLUTION * np.arange(N_STEPS + LENGTH)
    truth = rnnrs.datasets.time_series(t).astype(np.float32)
    continued = model.generate(truth[:N_STEPS, None], LENGTH, window=window)

    mode = "stateful" if args.stateful else f"re-reading the last {N_STEPS} values"
    print(f"generated {LENGTH} steps ({mode}) in {seconds * 1000:.1f} ms")
    print(f"from zeros: values in [{from_zeros.min():.2f}, {from_zeros.max():.2f}]")
    print(
        f"continuation MSE (first {COMPARED} generated steps, {SEEDS} seeds from the series): {error:.6f} "
        f"(repeating the last seed value: {baseline:.6f})"
    )

    if not have_matplotlib():
        print('matplotlib is not installed: no plot (pip install "rnnrs[examples]" or pip install matplotlib)')
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps = np.arange(N_STEPS + LENGTH)
    left.plot(steps[:N_STEPS], np.zeros(N_STEPS), "b-", linewidth=3, label="seed")
    left.plot(steps[N_STEPS:], from_zeros[:, 0], "r-", label="generated")
    left.set_title("seed: 20 zeros")
    right.plot(steps, truth, "k:", label="series")
    right.plot(steps[:N_STEPS], truth[:N_STEPS], "b-", linewidth=3, label="seed")
    right.plot(steps[N_STEPS:], continued[:, 0], "r-", label="generated")
    right.set_title("seed: the series at t = 12.2")
    for ax in (left, right):
        ax.set_xlabel("Time step")
        ax.legend(loc="upper left")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.plot)), exist_ok=True)
    fig.savefig(args.plot, dpi=100)
    print(f"saved the plot to {args.plot}")


if __name__ == "__main__":
    main()
