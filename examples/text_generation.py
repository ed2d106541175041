"""Character-level text generation: an LSTM learns to continue Jane Austen.

The text is the bundled ``rnnrs/data/pride_and_prejudice.txt`` (chapters 1
to 16 of *Pride and Prejudice*, public domain; see
``PRIDE_AND_PREJUDICE_LICENSE.txt`` beside it). The model predicts each next
character from the ones before it (Keras' ``lstm_text_generation`` / the
"char-RNN")::

    model = rnnrs.Sequential([rnnrs.Embedding(V, 32),
                              rnnrs.RNN(rnnrs.LSTMCell(256), return_sequences=True),
                              rnnrs.Dense(V)])          # next-character logits
    model.generate(seed_ids, 300, temperature=0.5, sample_seed=0)

and then writes new text by sampling one character at a time at three
temperatures: 0.2 (careful, repetitive), 0.5 and 1.0 (adventurous). It
prints the held-out next-character accuracy and loss (in bits per
character) beside the loss of always guessing by the characters' frequencies.

    python examples/text_generation.py            # the whole text
    python examples/text_generation.py --quick    # reduced run (what the tests run)
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import rnnrs  # noqa: E402
from _common import parser, verbosity  # noqa: E402

TEXT = os.path.join(rnnrs.datasets.DATA_DIR, "pride_and_prejudice.txt")
SEED_TEXT = "It is a truth universally acknowledged, that "
TEMPERATURES = (0.2, 0.5, 1.0)


def windows(ids: np.ndarray, length: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``ids[i : i + length]`` and next-character targets ``ids[i + 1 : i + length + 1]``."""
    starts = np.arange(0, ids.shape[0] - length - 1, stride)
    x = np.stack([ids[s : s + length] for s in starts])
    y = np.stack([ids[s + 1 : s + length + 1] for s in starts])
    return x, y


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=None, help="LSTM units (default 256, --quick 128)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 20, --quick 5)")
    p.add_argument("--chars", type=int, default=None, help="characters of the text used (default all, --quick 20000)")
    p.add_argument("--length", type=int, default=400, help="characters generated per temperature (default 400)")
    args = p.parse_args()
    units = args.units or (128 if args.quick else 256)
    epochs = args.epochs or (5 if args.quick else 20)
    with open(TEXT, encoding="ascii") as f:
        text = f.read()
    text = text[: args.chars or (20_000 if args.quick else len(text))]
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = np.array([index[c] for c in text], dtype=np.int64)
    split = int(len(ids) * 0.9)
    x, y = windows(ids[:split], 64, 3)
    x_val, y_val = windows(ids[split:], 64, 64)
    counts = np.bincount(ids[:split], minlength=len(chars)) + 1
    unigram_bits = float(-(counts / counts.sum() * np.log2(counts / counts.sum())).sum())

    model = rnnrs.Sequential(
        [
            rnnrs.Embedding(len(chars), 32, seed=args.seed),
            rnnrs.RNN(rnnrs.LSTMCell(units, seed=args.seed), return_sequences=True),
            rnnrs.Dense(len(chars), seed=args.seed),
        ]
    )
    model.compile(rnnrs.Adam(0.005, clip_norm=5.0), "sparse_softmax_cross_entropy", ["accuracy"])
    print(f"{len(text)} characters ({len(chars)} distinct), {x.shape[0]} training windows of 64; LSTM of {units}")
    start = time.perf_counter()
    model.fit(x, y, batch_size=64, epochs=epochs, seed=args.seed, verbose=verbosity(args.verbose))
    seconds = time.perf_counter() - start
    logs = model.evaluate(x_val, y_val)
    bits = logs["loss"] / np.log(2)
    print(f"training: {epochs} epochs in {seconds:.1f} s")
    print(f"held-out next-character accuracy: {logs['accuracy']:.4f}")
    print(f"held-out loss: {bits:.3f} bits per character (character frequencies alone: {unigram_bits:.3f})")
    seed_ids = np.array([index[c] for c in SEED_TEXT if c in index], dtype=np.int64)
    for temperature in TEMPERATURES:
        out = model.generate(seed_ids, args.length, temperature=temperature, sample_seed=args.seed)
        sample = "".join(chars[i] for i in out)
        print(f"--- temperature {temperature}:\n{SEED_TEXT}{sample}")


if __name__ == "__main__":
    main()
