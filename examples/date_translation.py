"""Date translation with an encoder–decoder: "April 22, 2019" → "2019-04-22".

The task of Géron's *Hands-On Machine Learning* (2nd ed., ch. 16): random
dates from 1000-01-01 to 9999-12-31, written in one of five formats
("April 22, 2019", "22 April 2019", "Apr 22, 2019", "22.04.2019",
"04/22/2019"), to be rewritten as ISO dates. An :class:`rnnrs.EncoderDecoder`
reads the characters of the source, its decoder writes the ISO date one
character at a time and ends it with an EOS token::

    model = rnnrs.EncoderDecoder(rnnrs.GRUCell(128), rnnrs.GRUCell(128), source_vocab, target_vocab,
                                 embedding_size=32, start_token=SOS, end_token=EOS)
    model.fit(sources, targets, epochs=..., validation_data=(val_sources, val_targets))
    model.translate(test_sources)                 # greedy; beam_width=5 for a beam search

It prints the exact match (the whole date right) of the greedy and beam
decodes on the test set, and the training time. Géron's Keras model reaches
100 % per-character validation accuracy after about 19 epochs.

With ``--attention luong`` (or ``bahdanau``) the decoder attends to the
encoder's outputs at every step (``EncoderDecoder(..., attention="luong")``,
chapter 16's attention mechanisms), and ``--plot out/alignments.png`` draws
what it attends to while writing one date (needs matplotlib). Measured on the
full run (10k training dates, 2000 test dates, greedy exact match): with
Bahdanau attention 2 epochs reach 100 % (3 epochs 100 %); with Luong
attention 2 epochs 93 %, 3 epochs 100 %, 6 epochs 100 %; without attention 2
epochs reach 60 %, 3 epochs 86 %, 4 epochs 92 % and 6 epochs 100 %. (At this
constant learning rate a run can jump out of its minimum in a late epoch: the
reduced run with Luong attention, seed 0, is at 99.98 % validation accuracy
after 5 epochs and 99.46 % after 6.)

    python examples/date_translation.py                      # 10k train / 2k test dates (the full run)
    python examples/date_translation.py --attention bahdanau --epochs 2 --plot out/alignments.png
    python examples/date_translation.py --quick              # reduced run (what the tests run)
"""

from __future__ import annotations

import datetime
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import rnnrs  # noqa: E402
from _common import make_cell, parser, verbosity  # noqa: E402

MONTHS = "January February March April May June July August September October November December".split()
FORMATS = (
    "{month} {day}, {year}",  # April 22, 2019
    "{day} {month} {year}",  # 22 April 2019
    "{mon} {day}, {year}",  # Apr 22, 2019
    "{dd}.{mm}.{year}",  # 22.04.2019
    "{mm}/{dd}/{year}",  # 04/22/2019
)
SOURCE_CHARS = sorted(set("".join(MONTHS)) | set("0123456789 ,./"))
TARGET_CHARS = "0123456789-"
SOS, EOS = 1, 2  # target ids: 0 is unused (padding), then SOS and EOS, then the characters
FIRST, LAST = datetime.date(1000, 1, 1).toordinal(), datetime.date(9999, 12, 31).toordinal()


def dates(n: int, seed: int) -> tuple[list[str], list[str]]:
    """``n`` random dates in [1000-01-01, 9999-12-31]: (written in a random format, ISO)."""
    rng = np.random.default_rng(seed)
    sources, targets = [], []
    for ordinal, fmt in zip(rng.integers(FIRST, LAST + 1, size=n), rng.integers(0, len(FORMATS), size=n)):
        d = datetime.date.fromordinal(int(ordinal))
        month = MONTHS[d.month - 1]
        sources.append(
            FORMATS[fmt].format(
                month=month, mon=month[:3], day=d.day, dd=f"{d.day:02d}", mm=f"{d.month:02d}", year=d.year
            )
        )
        targets.append(d.isoformat())
    return sources, targets


def encode(texts: list[str], chars: str, offset: int) -> list[np.ndarray]:
    """Each text as ids ``offset + position of the character in chars``."""
    index = {c: offset + i for i, c in enumerate(chars)}
    return [np.array([index[c] for c in text], dtype=np.int64) for text in texts]


def decode(ids: list[int]) -> str:
    return "".join(TARGET_CHARS[i - 3] if 3 <= i < 3 + len(TARGET_CHARS) else "?" for i in ids)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.set_defaults(cell="gru")
    p.add_argument("--units", type=int, default=128, help="units of the encoder and decoder cells (default 128)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 20, --quick 12)")
    p.add_argument("--train", type=int, default=None, help="training dates (default 10000, --quick 3000)")
    p.add_argument("--test", type=int, default=None, help="test dates (default 2000, --quick 500)")
    p.add_argument("--beam-width", type=int, default=5, help="beam width of the beam decode (default 5)")
    p.add_argument(
        "--attention", choices=["none", "bahdanau", "luong"], default="none", help="decoder attention (default none)"
    )
    p.add_argument("--plot", default=None, help="write the alignments of one test date to this PNG (matplotlib)")
    args = p.parse_args()
    epochs = args.epochs or (12 if args.quick else 20)
    n_train = args.train or (3000 if args.quick else 10_000)
    n_test = args.test or (500 if args.quick else 2000)

    train_text, train_iso = dates(n_train + 1000, args.seed)
    test_text, test_iso = dates(n_test, args.seed + 1)
    sources, targets = encode(train_text, "".join(SOURCE_CHARS), 1), encode(train_iso, TARGET_CHARS, 3)
    test_sources, test_targets = encode(test_text, "".join(SOURCE_CHARS), 1), encode(test_iso, TARGET_CHARS, 3)

    model = rnnrs.EncoderDecoder(
        make_cell(args.cell, args.units, seed=args.seed),
        make_cell(args.cell, args.units, seed=args.seed + 1),
        source_vocab=1 + len(SOURCE_CHARS),
        target_vocab=3 + len(TARGET_CHARS),
        embedding_size=32,
        start_token=SOS,
        end_token=EOS,
        seed=args.seed,
        optimizer=rnnrs.Adam(0.005, clip_norm=5.0),
        attention=None if args.attention == "none" else args.attention,
    )
    print(
        f"{n_train} training dates ({len(FORMATS)} formats), {n_test} test dates; {args.cell} cells of {args.units}; "
        f"attention: {args.attention}"
    )
    start = time.perf_counter()
    history = model.fit(
        sources[:n_train],
        targets[:n_train],
        batch_size=64,
        epochs=epochs,
        validation_data=(sources[n_train:], targets[n_train:]),
        seed=args.seed,
        verbose=verbosity(args.verbose),
    )
    seconds = time.perf_counter() - start
    print(
        f"training: {epochs} epochs in {seconds:.1f} s; validation token accuracy "
        f"{history.history['val_accuracy'][-1]:.4f}"
    )

    start = time.perf_counter()
    greedy = model.evaluate(test_sources, test_targets)
    greedy_seconds = time.perf_counter() - start
    start = time.perf_counter()
    beam = model.translate(test_sources, beam_width=args.beam_width)
    beam_seconds = time.perf_counter() - start
    beam_match = float(np.mean([decode(ids) == iso for ids, iso in zip(beam, test_iso)]))
    print(f"test token accuracy (teacher forced): {greedy['accuracy']:.4f}")
    print(f"test exact match, greedy: {greedy['exact_match']:.4f} ({greedy_seconds:.2f} s with the loss)")
    print(f"test exact match, beam {args.beam_width}: {beam_match:.4f} ({beam_seconds:.2f} s)")
    for text, ids in zip(test_text[:5], model.translate(test_sources[:5])):
        print(f"  {text!r:>22} -> {decode(ids)}")
    if args.plot:
        plot_alignments(model, test_text[0], test_sources[0], args.plot)


def plot_alignments(model: rnnrs.EncoderDecoder, text: str, source: np.ndarray, path: str) -> None:
    """The attention over the source's characters (columns) while writing each output character (rows)."""
    if model.attention is None:
        print("--plot: the alignments need a model with attention (--attention luong or bahdanau)")
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('--plot: matplotlib is not installed (pip install matplotlib, or "rnnrs[examples]")')
        return
    (ids,), (weights,) = model.translate([source], return_alignments=True)
    written = list(decode(ids)) + ["EOS"]
    fig, ax = plt.subplots(figsize=(0.32 * len(text) + 1.5, 0.32 * len(written) + 1.2))
    ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(text)), [c if c != " " else "␣" for c in text])
    ax.set_yticks(range(len(written)), written)
    ax.set_xlabel("source characters")
    ax.set_ylabel("written characters")
    ax.set_title(f"{model.attention} attention")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"alignments of {text!r} -> {decode(ids)} written to {path}")


if __name__ == "__main__":
    main()
