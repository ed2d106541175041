"""A bidirectional LSTM sentiment classifier, Keras style, on generated reviews.

Each "review" is 6 to 40 token ids: neutral words, some positive and some
negative words, and the word "not", which flips the word after it. A review is
positive when its (flipped) positive words outnumber its negative ones. The
reviews are padded at the end with id 0 (``pad_sequences(padding="post")``),
and ``Embedding(mask_zero=True)`` turns the padding into sequence lengths, so
no padded step is ever read as data.

The model is the one a Keras user would write::

    Sequential([Embedding(V, 32, mask_zero=True),
                Bidirectional(RNN(BasicLSTMCell(32))),
                Dense(1)])                           # one logit

trained with AdamW on a CosineDecay schedule, binary cross-entropy on the
logit, accuracy, a validation split and EarlyStopping(restore_best_weights=True):
5% of the training labels are flipped, so after a few epochs the model starts
learning those by heart, the validation loss rises and training stops,
keeping the weights of the best epoch.

    python examples/keras_style.py            # prints validation and test accuracy and time
    python examples/keras_style.py --quick    # reduced run (what the tests run)
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import rnnrs  # noqa: E402
from _common import parser, verbosity  # noqa: E402

VOCAB = 100
NOT = 1
POSITIVE = np.arange(2, 12)
NEGATIVE = np.arange(12, 22)
NEUTRAL = np.arange(22, VOCAB)


def reviews(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` reviews (lists of ids, no padding) and their labels (1 positive, 0 negative)."""
    rng = np.random.default_rng(seed)
    texts: list[np.ndarray] = []
    labels = np.empty(n, dtype=np.int64)
    i = 0
    while i < n:
        length = int(rng.integers(6, 41))
        words = rng.choice(NEUTRAL, size=length)
        score = 0
        for pos in rng.choice(length, size=int(rng.integers(1, 5)), replace=False):
            polarity = 1 if rng.random() < 0.5 else -1
            words[pos] = rng.choice(POSITIVE if polarity > 0 else NEGATIVE)
            if pos > 0 and rng.random() < 0.3:  # "not good" is negative
                words[pos - 1] = NOT
                polarity = -polarity
            score += polarity
        # A "not" may have overwritten a sentiment word: score what is there.
        score = 0
        for t, w in enumerate(words):
            polarity = 1 if w in POSITIVE else -1 if w in NEGATIVE else 0
            score += -polarity if (t > 0 and words[t - 1] == NOT) else polarity
        if score == 0:
            continue
        texts.append(words)
        labels[i] = int(score > 0)
        i += 1
    return texts, labels


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=None, help="at most this many epochs (default 30; 12 with --quick)")
    p.add_argument(
        "--noise", type=float, default=0.05, help="share of training labels flipped (default 0.05; test labels clean)"
    )
    args = p.parse_args()
    n_train = 3000 if args.quick else 8000
    epochs = args.epochs if args.epochs is not None else (12 if args.quick else 30)

    texts, labels = reviews(n_train + 1000, args.seed)
    x = rnnrs.utils.pad_sequences(texts, padding="post", dtype="int64")  # [N, 40], 0 = padding
    noisy = labels[:n_train].copy()
    flip = np.random.default_rng(args.seed + 1).random(n_train) < args.noise
    noisy[flip] = 1 - noisy[flip]  # a few wrong labels: the model would end up learning them by heart
    x_train, y_train = x[:n_train], noisy.astype(np.float32)[:, None]
    x_test, y_test = x[n_train:], labels[n_train:].astype(np.float32)[:, None]

    model = rnnrs.Sequential(
        [
            rnnrs.Embedding(VOCAB, 32, mask_zero=True, seed=args.seed),
            rnnrs.Bidirectional(rnnrs.RNN(rnnrs.BasicLSTMCell(32, seed=args.seed))),
            rnnrs.Dense(1, seed=args.seed),
        ]
    )
    batch_size = 64
    steps = epochs * -(-int(n_train * 0.8) // batch_size)
    schedule = rnnrs.schedules.CosineDecay(0.0, steps, warmup_target=0.01, warmup_steps=steps // 10)
    model.compile(rnnrs.AdamW(schedule, weight_decay=1e-4), "binary_crossentropy", metrics=["accuracy"])
    stop = rnnrs.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)

    start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        batch_size=batch_size,
        epochs=epochs,
        validation_split=0.2,
        callbacks=[stop],
        seed=args.seed,
        verbose=verbosity(args.verbose),
    )
    seconds = time.perf_counter() - start
    model.summary()
    best = int(np.argmin(history.history["val_loss"]))
    test = model.evaluate(x_test, y_test)
    print(f"epochs run: {len(history.epoch)} (best: {best + 1})")
    print(f"validation accuracy: {history.history['val_accuracy'][best]:.4f}")
    print(f"test accuracy: {test['accuracy']:.4f}")
    print(f"training time: {seconds:.1f} s")


if __name__ == "__main__":
    main()
