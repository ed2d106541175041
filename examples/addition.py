"""Learning to add: "535+61" → "596", with an encoder–decoder.

Keras' ``addition_rnn`` example: questions ``a+b`` with ``a`` and ``b`` of 1
to 3 digits, each pair once, answered one digit at a time. As in Keras the
question is read reversed ("16+535"), which shortens the paths between the
digits that are added together. Keras' model (an LSTM encoder, a
``RepeatVector`` and an LSTM decoder on fixed-width, space-padded strings)
reports about 99 % per-character validation accuracy; here the answer has
its own length, ended by an EOS token, so the figure that counts is the
exact match of the decoded answers::

    model = rnnrs.EncoderDecoder(rnnrs.GRUCell(128), rnnrs.GRUCell(128), source_vocab=12, target_vocab=13,
                                 embedding_size=16, start_token=SOS, end_token=EOS)

    python examples/addition.py            # 50k questions (Keras' size)
    python examples/addition.py --quick    # reduced run (what the tests run)
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import rnnrs  # noqa: E402
from _common import make_cell, parser, verbosity  # noqa: E402

DIGITS = 3
QUESTION_CHARS = "0123456789+"
SOS, EOS = 1, 2  # answer ids: 0 unused, SOS, EOS, then the digits


def questions(n: int, seed: int, digits: int = DIGITS) -> tuple[list[str], list[str]]:
    """``n`` distinct questions "a+b" (a, b of 1 to ``digits`` digits; ``a+b``
    and ``b+a`` count once, as in Keras) and their answers."""
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, int]] = set()
    asked, answers = [], []
    while len(asked) < n:
        a, b = (int(rng.integers(0, 10 ** int(rng.integers(1, digits + 1)))) for _ in range(2))
        if (min(a, b), max(a, b)) in seen:
            continue
        seen.add((min(a, b), max(a, b)))
        asked.append(f"{a}+{b}")
        answers.append(str(a + b))
    return asked, answers


def encode_questions(texts: list[str]) -> list[np.ndarray]:
    """Each question reversed, as ids ``1 + position in QUESTION_CHARS``."""
    return [np.array([1 + QUESTION_CHARS.index(c) for c in reversed(t)], dtype=np.int64) for t in texts]


def encode_answers(texts: list[str]) -> list[np.ndarray]:
    return [np.array([3 + int(c) for c in t], dtype=np.int64) for t in texts]


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.set_defaults(cell="gru")
    p.add_argument("--units", type=int, default=128, help="units of the encoder and decoder cells (default 128)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 30, --quick 14)")
    p.add_argument("--size", type=int, default=None, help="questions, 10%% held out (default 50000, --quick 12000)")
    args = p.parse_args()
    epochs = args.epochs or (14 if args.quick else 30)
    size = args.size or (12_000 if args.quick else 50_000)

    asked, answers = questions(size, args.seed)
    sources, targets = encode_questions(asked), encode_answers(answers)
    split = size - size // 10
    model = rnnrs.EncoderDecoder(
        make_cell(args.cell, args.units, seed=args.seed),
        make_cell(args.cell, args.units, seed=args.seed + 1),
        source_vocab=1 + len(QUESTION_CHARS),
        target_vocab=13,
        embedding_size=16,
        start_token=SOS,
        end_token=EOS,
        seed=args.seed,
        optimizer=rnnrs.Adam(0.005, clip_norm=5.0),
    )
    print(f"{split} training questions, {size - split} held out; {args.cell} cells of {args.units}")
    start = time.perf_counter()
    model.fit(
        sources[:split],
        targets[:split],
        batch_size=32,
        epochs=epochs,
        validation_data=(sources[split:], targets[split:]),
        seed=args.seed,
        verbose=verbosity(args.verbose),
    )
    seconds = time.perf_counter() - start
    logs = model.evaluate(sources[split:], targets[split:])
    print(f"training: {epochs} epochs in {seconds:.1f} s")
    print(f"held-out digit accuracy (teacher forced): {logs['accuracy']:.4f}")
    print(f"held-out exact match (greedy): {logs['exact_match']:.4f}")
    shown = slice(split, split + 5)
    for text, answer, ids in zip(asked[shown], answers[shown], model.translate(sources[shown])):
        got = "".join(str(i - 3) for i in ids)
        print(f"  {text:>7} = {got:<4} {'ok' if got == answer else 'wrong'}")


if __name__ == "__main__":
    main()
