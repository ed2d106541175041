"""Writes ``tests/fixtures/seq2seq/*.npz``: real TensorFlow seq2seq results that
pin ``tests/seq2seq_reference.py`` (checked by ``tests/test_seq2seq_reference.py``).

TensorFlow 2.x dropped ``tf.contrib.seq2seq``; TensorFlow Addons'
``tfa.seq2seq`` is its port (same ``_beam_search_step``, ``_mask_probs``,
length penalty, ``gather_tree`` kernel, ``sequence_loss`` and
``dynamic_decode`` loop). Run with a Python 3.11 that has ``tensorflow`` 2.15
and ``tensorflow-addons`` 0.23 (the last pair that work together; the full
``tensorflow`` build, since tfa's ``gather_tree`` C++ kernel, a port of TF
1.15's, does not load into ``tensorflow-cpu`` and would fall back to Python)::

    python3.11 -m venv /tmp/venv-tfa
    /tmp/venv-tfa/bin/pip install "tensorflow==2.15.1" "tensorflow-addons==0.23.*" "numpy<2"
    /tmp/venv-tfa/bin/python scripts/seq2seq_fixtures.py

Never imported by the tests. Every case uses float32, a Keras ``LSTMCell``
(gate blocks ``i, f, c, o``; no forget bias added at run time) with random
weights, a ``Dense`` output layer and an embedding matrix. Each file stores
the Keras weights (``keras_kernel``, ``keras_recurrent_kernel``,
``keras_bias``) and the same cell in rnnrs's ``LSTMCell`` layout
(``kernel`` ``[E + H, 4H]`` = the two Keras kernels stacked, column blocks
reordered to ``i, j(=c), f, o``; ``bias`` likewise with ``forget_bias`` (1.0,
stored as ``forget_bias``) taken out of the ``f`` block, since rnnrs adds it
at run time). Seeds are searched until a case shows what it is meant to pin
(ragged EOS, rows cut by ``maximum_iterations``, a length penalty that
changes the result); the chosen seeds are stored as ``seed``.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_addons as tfa  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "seq2seq"
FORGET_BIAS = 1.0
F32 = np.float32


def lstm_weights(rng: np.random.Generator, E: int, H: int, scale: float) -> dict[str, np.ndarray]:
    """Random Keras LSTM weights and the same cell in rnnrs's layout."""
    k = (rng.standard_normal((E, 4 * H)) * scale).astype(F32)
    r = (rng.standard_normal((H, 4 * H)) * scale).astype(F32)
    b = (rng.standard_normal(4 * H) * 0.5).astype(F32)
    i, f, c, o = (slice(n * H, (n + 1) * H) for n in range(4))

    def reorder(a: np.ndarray) -> np.ndarray:  # Keras i, f, c, o -> TF 1.x i, j(=c), f, o
        return np.concatenate([a[..., i], a[..., c], a[..., f], a[..., o]], axis=-1)

    bias = reorder(b).copy()
    bias[2 * H : 3 * H] -= F32(FORGET_BIAS)
    return {
        "keras_kernel": k,
        "keras_recurrent_kernel": r,
        "keras_bias": b,
        "kernel": reorder(np.concatenate([k, r], axis=0)),
        "bias": bias,
        "forget_bias": np.asarray(FORGET_BIAS, F32),
    }


def common(rng: np.random.Generator, B: int, E: int, H: int, V: int, end_token: int) -> dict[str, np.ndarray]:
    w = lstm_weights(rng, E, H, 0.8)
    w.update(
        {
            "embedding": rng.standard_normal((V, E)).astype(F32),
            "dense_kernel": (rng.standard_normal((H, V)) * 1.5).astype(F32),
            "dense_bias": (rng.standard_normal(V) * 0.3).astype(F32),
            "c0": (rng.standard_normal((B, H)) * 0.5).astype(F32),
            "h0": (rng.standard_normal((B, H)) * 0.5).astype(F32),
            "end_token": np.asarray(end_token, np.int32),
        }
    )
    w["dense_bias"][end_token] += F32(0.7)  # EOS a little likelier: rows end at different steps
    return w


def keras_parts(w: dict[str, np.ndarray]) -> tuple[Any, Any]:
    E, H4 = w["keras_kernel"].shape
    V = w["dense_kernel"].shape[1]
    cell = tf.keras.layers.LSTMCell(H4 // 4)
    cell.build((None, E))
    cell.set_weights([w["keras_kernel"], w["keras_recurrent_kernel"], w["keras_bias"]])
    dense = tf.keras.layers.Dense(V)
    dense.build((None, H4 // 4))
    dense.set_weights([w["dense_kernel"], w["dense_bias"]])
    return cell, dense


def store_state(out: dict[str, np.ndarray], prefix: str, state: Any) -> None:
    """Keras LSTMCell's state ``[h, c]`` as ``final_c``, ``final_h`` ``[rows, H]``
    (a beam search's ``[B, K, H]`` merged to rows ``b*K + k``)."""
    h, c = (np.asarray(a) for a in state)
    out[prefix + "c"] = c.reshape(-1, c.shape[-1])
    out[prefix + "h"] = h.reshape(-1, h.shape[-1])


def decode_result(
    w: dict[str, np.ndarray], seed: int, impute: bool, decoded: Any, **extra: Any
) -> dict[str, np.ndarray]:
    """The weights, the case's own inputs and BasicDecoder's results."""
    outputs, state, lengths = decoded
    res = dict(w)
    res.update(extra)
    res.update(
        {
            "seed": np.asarray(seed),
            "impute_finished": np.asarray(impute),
            "rnn_output": outputs.rnn_output.numpy(),
            "sample_id": outputs.sample_id.numpy(),
            "lengths": lengths.numpy().astype(np.int32),
        }
    )
    store_state(res, "final_", state)
    return res


def initial_state(w: dict[str, np.ndarray]) -> list[Any]:
    return [tf.constant(w["h0"]), tf.constant(w["c0"])]


def greedy_case(seed: int, impute: bool, w: dict[str, np.ndarray], max_iter: int) -> dict[str, np.ndarray]:
    cell, dense = keras_parts(w)
    B = w["c0"].shape[0]
    decoder = tfa.seq2seq.BasicDecoder(
        cell,
        tfa.seq2seq.GreedyEmbeddingSampler(),
        output_layer=dense,
        impute_finished=impute,
        maximum_iterations=max_iter,
    )
    start = np.arange(B, dtype=np.int32) % w["embedding"].shape[0]
    decoded = decoder(w["embedding"], start_tokens=start, end_token=int(w["end_token"]), initial_state=initial_state(w))
    return decode_result(
        w, seed, impute, decoded, start_tokens=start, maximum_iterations=np.asarray(max_iter, np.int32)
    )


def training_case(seed: int, impute: bool, w: dict[str, np.ndarray], lens: np.ndarray, T: int) -> dict[str, np.ndarray]:
    cell, dense = keras_parts(w)
    B, E = w["c0"].shape[0], w["keras_kernel"].shape[0]
    x = np.random.default_rng(seed + 1000).standard_normal((B, T, E)).astype(F32)
    decoder = tfa.seq2seq.BasicDecoder(cell, tfa.seq2seq.TrainingSampler(), output_layer=dense, impute_finished=impute)
    decoded = decoder(x, initial_state=initial_state(w), sequence_length=lens)
    return decode_result(w, seed, impute, decoded, inputs=x, sequence_length=lens.astype(np.int32))


def beam_case(seed: int, w: dict[str, np.ndarray], K: int, lp: float, max_iter: int) -> dict[str, np.ndarray]:
    cell, dense = keras_parts(w)
    B = w["c0"].shape[0]
    decoder = tfa.seq2seq.BeamSearchDecoder(
        cell, K, output_layer=dense, length_penalty_weight=lp, maximum_iterations=max_iter
    )
    start = np.arange(B, dtype=np.int32) % w["embedding"].shape[0]
    init = [tfa.seq2seq.tile_batch(w["h0"], K), tfa.seq2seq.tile_batch(w["c0"], K)]
    outputs, state, lengths = decoder(
        w["embedding"], start_tokens=start, end_token=int(w["end_token"]), initial_state=init
    )
    bs = outputs.beam_search_decoder_output
    res = dict(w)
    res.update(
        {
            "seed": np.asarray(seed),
            "start_tokens": start,
            "beam_width": np.asarray(K, np.int32),
            "length_penalty_weight": np.asarray(lp, F32),
            "maximum_iterations": np.asarray(max_iter, np.int32),
            "predicted_ids": outputs.predicted_ids.numpy(),
            "step_ids": bs.predicted_ids.numpy(),
            "parent_ids": bs.parent_ids.numpy(),
            "scores": bs.scores.numpy(),
            "log_probs": state.log_probs.numpy(),
            "finished": state.finished.numpy(),
            "lengths": state.lengths.numpy().astype(np.int32),
            "decode_lengths": lengths.numpy().astype(np.int32),
        }
    )
    store_state(res, "final_", state.cell_state)
    return res


def save(name: str, data: dict[str, np.ndarray]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / f"{name}.npz", **data)
    print(f"{name}.npz: {(OUT / f'{name}.npz').stat().st_size} bytes")


def make_greedy() -> None:
    B, E, H, V, eos, max_iter = 5, 3, 6, 7, 1, 7
    for seed in range(1000):
        w = common(np.random.default_rng(seed), B, E, H, V, eos)
        plain = greedy_case(seed, False, w, max_iter)
        lens = plain["lengths"]
        ragged = len(set(lens.tolist())) >= 3 and lens.max() == max_iter and lens.min() < max_iter - 2
        if not ragged:
            continue
        imputed = greedy_case(seed, True, w, max_iter)
        # impute_finished must make a difference after some row's EOS
        if np.allclose(plain["rnn_output"], imputed["rnn_output"]):
            continue
        save("greedy", plain)
        save("greedy_impute", imputed)
        return
    raise RuntimeError("no greedy seed found")


def make_training() -> None:
    B, E, H, V, T = 5, 3, 6, 7, 6
    lens = np.array([3, 0, 6, 1, 4], np.int32)
    w = common(np.random.default_rng(7), B, E, H, V, 1)
    save("training", training_case(7, False, w, lens, T))
    save("training_impute", training_case(7, True, w, lens, T))


def make_beam() -> None:
    B, E, H, V, eos, K, max_iter = 3, 3, 6, 7, 1, 3, 7
    for seed in range(2000):
        w = common(np.random.default_rng(10_000 + seed), B, E, H, V, eos)
        plain = beam_case(seed, w, K, 0.0, max_iter)
        lp = beam_case(seed, w, K, 1.0, max_iter)
        lens = plain["lengths"]
        ok = (
            lens.min() < max_iter - 1  # some beam ended early (EOS kept extending)
            and not plain["finished"].all()  # some beam cut by maximum_iterations
            and len(set(lens.ravel().tolist())) >= 3
            and not np.array_equal(plain["predicted_ids"], lp["predicted_ids"])  # the penalty matters
            and plain["step_ids"].shape[1] == lp["step_ids"].shape[1]
        )
        if ok:
            save("beam", plain)
            save("beam_penalty", lp)
            break
    else:
        raise RuntimeError("no beam seed found")
    # beam_width > vocabulary: at t = 0 the top-k must take candidates of the
    # dead beams 1..K-1 (log_prob -inf), in index order.
    w = common(np.random.default_rng(99), 2, 3, 4, 3, 2)
    save("beam_wide", beam_case(99, w, 5, 0.5, 4))


def make_gather_tree() -> None:
    # time-major [T, B, K]; batch 0: full length; batch 1: shorter than T;
    # batch 2: length 0; batch 3: length above T; end_token 9 in the middle of beams.
    rng = np.random.default_rng(5)
    T, B, K, end = 6, 4, 3, 9
    step_ids = rng.integers(0, 8, (T, B, K)).astype(np.int32)
    step_ids[2, 0, 1] = end
    step_ids[1, 1, 0] = end
    step_ids[3, 3, 2] = end
    parent_ids = rng.integers(0, K, (T, B, K)).astype(np.int32)
    max_lens = np.array([6, 4, 0, 9], np.int32)
    out = tfa.seq2seq.gather_tree(step_ids, parent_ids, max_lens, end).numpy()
    save(
        "gather_tree",
        {
            "step_ids": step_ids,
            "parent_ids": parent_ids,
            "max_sequence_lengths": max_lens,
            "end_token": np.asarray(end, np.int32),
            "beams": out,
        },
    )


FLAG_NAMES = ("average_across_timesteps", "average_across_batch", "sum_over_timesteps", "sum_over_batch")


def make_sequence_loss() -> None:
    rng = np.random.default_rng(11)
    B, T, V = 3, 4, 5
    logits = rng.standard_normal((B, T, V)).astype(F32) * 2
    targets = rng.integers(0, V, (B, T)).astype(np.int32)
    weights = rng.uniform(0.5, 2.0, (B, T)).astype(F32)
    weights[1, 2:] = 0.0  # a padded row
    weights[:, 3] = 0.0  # a step with no weight at all (div_no_nan)
    data: dict[str, np.ndarray] = {"logits": logits, "targets": targets, "weights": weights}
    kept = []
    for flags in itertools.product((False, True), repeat=4):
        kwargs = dict(zip(FLAG_NAMES, flags))
        lg = tf.constant(logits)
        try:
            with tf.GradientTape() as tape:
                tape.watch(lg)
                value = tfa.seq2seq.sequence_loss(lg, targets, weights, **kwargs)
                total = tf.reduce_sum(value)
        except ValueError:
            continue
        key = "".join("1" if f else "0" for f in flags)
        data[f"value_{key}"] = value.numpy()
        data[f"d_logits_{key}"] = tape.gradient(total, lg).numpy()
        kept.append(key)
    data["flags"] = np.array(kept)
    save("sequence_loss", data)


def main() -> None:
    print("tensorflow", tf.__version__, "tensorflow-addons", tfa.__version__)
    # gather_tree must be tfa's C++ kernel (a port of TF 1.15's), not its Python fallback.
    from tensorflow_addons.seq2seq import beam_search_decoder as bsd

    _ = bsd._beam_search_so.ops.addons_gather_tree  # raises when the kernel cannot load
    make_gather_tree()
    make_sequence_loss()
    make_training()
    make_greedy()
    make_beam()


if __name__ == "__main__":
    main()
