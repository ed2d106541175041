#!/usr/bin/env python3
"""Encoder-decoder training and greedy / beam decoding: rnnrs.seq2seq next to PyTorch CPU.

    python benches/seq2seq.py                          # every case, 2 and 1 threads
    python benches/seq2seq.py --cases greedy,beam --threads 2 --markdown
    python benches/seq2seq.py --repeat 1 --rounds 1 --batch 4 --vocab 20 ...   # smoke test sizes

What is measured
----------------
One LSTM encoder-decoder, float32, with the same weights in every contender (``--seed``):
source and target vocabularies of ``--vocab`` ids (default 5000), embeddings of width
``--embed`` (256), one ``BasicLSTMCell(--units)`` (256, forget_bias 1.0) encoder and one as
decoder, and an output projection ``Dense(vocab)`` on the decoder's outputs.  Id 0 is the
start token (GO), id 1 the end token (EOS).  Three cases (``--cases``):

``train``: one training step on a batch of ``--batch`` (64) source sequences of
``--source-time`` (30) ids and target sequences of ``--target-time`` (30) ids, every row
full length: embedding lookups, the encoder, the decoder teacher-forced on
``[GO, target[:-1]]`` from the encoder's final state, the projection to the vocabulary,
the softmax cross-entropy against ``target`` averaged over every step, and the gradient
of every weight (both embedding matrices, both cells, the projection).  No optimizer
update.

* ``rnnrs``: ``rnnrs.Embedding`` layers, ``rnnrs.dynamic_rnn`` encoder, decoder
  ``seq2seq.BasicDecoder(cell, seq2seq.TrainingHelper(...), encoder_state,
  output_layer=rnnrs.Dense)`` run by ``seq2seq.dynamic_decode(..., return_backprop=True)``,
  ``seq2seq.sequence_loss``; then the backprops, the decoder's initial-state gradient
  flowing into the encoder's.
* ``rnnrs dynamic_rnn``: the same model written with the older pieces only (decoder
  ``dynamic_rnn`` from the encoder's state, ``Dense`` layer, ``rnnrs.sequence_loss``): what
  the seq2seq API costs on top.
* ``torch``: ``nn.Embedding`` x 2, ``nn.LSTM`` encoder and decoder (``batch_first``),
  ``nn.Linear``, ``F.cross_entropy``, ``loss.backward()``.

``greedy``: greedy decoding of ``--decode-batch`` (256) sequences, at most ``--max-steps``
(50) steps, from a fixed random initial state (as an encoder would give): each step
embeds the previous ids, runs the cell, projects to the vocabulary and takes the argmax;
a row ends at its first EOS (its length counts the EOS).  The weights are random, so the
EOS logit's bias is set (from a NumPy run of the same decode, see ``calibrate_eos``) so
that the rows end at varied steps with the median length ``--eos-median`` (default 25;
0: no row ever ends, every decode runs ``--max-steps``).  The line before the table shows
the lengths.

* ``rnnrs``: ``seq2seq.dynamic_decode(BasicDecoder(cell, GreedyEmbeddingHelper(embedding,
  start_tokens, end_token), state, output_layer=Dense), maximum_iterations=50)``, TF's
  default ``impute_finished=False``: finished rows keep being computed;
* ``rnnrs impute``: the same with ``impute_finished=True``: finished rows leave the product;
* ``torch``: a ``torch.no_grad()`` loop of ``nn.LSTMCell``, ``nn.Linear``, ``argmax``,
  ``nn.Embedding`` over every row until all have ended (as ``rnnrs``);
* ``torch compact``: the same loop keeping only the unfinished rows (index-select of the
  state each step; as ``rnnrs impute``).

``beam``: beam search of width ``--beam`` (5) over the same 256 rows, at most 50 steps,
with the GNMT length penalty (``--length-penalty``, default 1.0), TF 1.15's semantics
(only beam 0 live at the first step, finished beams extend with EOS at no cost, the
penalty applied before every top-k, lengths counting the EOS, backtracking through the
parents at the end).

* ``rnnrs``: ``seq2seq.dynamic_decode(BeamSearchDecoder(cell, embedding, start_tokens,
  end_token, state, beam_width, output_layer=Dense, length_penalty_weight=...),
  maximum_iterations=50)``;
* ``torch``: a batched beam search written here (``torch_beam_search``) doing the same
  work: ``B * beam`` LSTM rows, ``log_softmax``, masking of finished beams, the penalty,
  ``topk`` over ``beam * V`` per row, the parents' states and flags gathered, the next
  ids embedded; the backtracking loop at the end.

Same maths first
----------------
Every contender writes what it computed (an untimed run after the timed ones) and the
parent compares it with the first contender of the case (``rnnrs``, or the next one that
ran): training compares the loss and every weight's gradient (torch's mapped back to the
TF layout) within 1e-3 of the largest entry; decoding compares the lengths and the ids
(best beam for beam search) row by row.  Float32 rounding can flip a near-tie of two
logits, after which that row's ids differ: the check passes when at least 98 % of the rows
agree (the share is printed) and fails otherwise (status 1).

Timing and memory
-----------------
As in ``long_sequence.py``, each (case, contender, thread count) runs in a fresh
subprocess: it imports its library, sets the thread count (``rnnrs.set_num_threads``;
``torch.set_num_threads``, inter-op 1), loads the shared weights and inputs, builds the
model and runs one small warm-up call (two time steps / two decoding steps).  The baseline
is ``ru_maxrss`` then; the child runs ``--repeat`` timed calls with the garbage collector
paused and reports each call's time and the high-water mark after it.  The parent runs
``--rounds`` rounds of children, rotating the contenders' order from one round to the next
so that machine noise lands on all alike, and reports the median time of all calls and
the largest peak extra memory (RSS high-water mark over the baseline: outputs, caches,
gradients, scratch).  ``x/rnnrs`` above 1 means rnnrs is faster.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

BENCHES_DIR = os.path.dirname(os.path.abspath(__file__))
if BENCHES_DIR not in sys.path:  # report.py, next to this file
    sys.path.insert(0, BENCHES_DIR)
import numpy as np  # noqa: E402

from report import (  # noqa: E402
    THREAD_VARIABLES,
    csv_choice,
    fmt_time,
    fmt_times,
    fmt_value,
    ratio,
    render_table,
    timed_calls,
)

MIB = 1024.0 * 1024.0
GO, EOS = 0, 1
RESULT_MARK = "SEQ2SEQ_RESULT "  # prefix of the child's one JSON line on stdout
CHILD_TIMEOUT_S = 3600
AGREE_MIN = 0.98  # share of rows whose decode must agree with the reference contender
GRAD_TOL = 1e-3  # training: |difference| / largest |entry|, per array

CASES: Dict[str, Tuple[str, ...]] = {
    "train": ("rnnrs", "rnnrs dynamic_rnn", "torch"),
    "greedy": ("rnnrs", "rnnrs impute", "torch", "torch compact"),
    "beam": ("rnnrs", "torch"),
}
# the speed targets: (case, torch contender, rnnrs contender, at least x faster)
TARGETS = (
    ("train", "torch", "rnnrs", 2.0),
    ("greedy", "torch", "rnnrs", 3.0),
    ("greedy", "torch compact", "rnnrs impute", 3.0),
    ("beam", "torch", "rnnrs", 3.0),
)


# --------------------------------------------------------------------------------------
# The model: weights in TF 1.x layout, inputs, the EOS bias (made once by the parent)
# --------------------------------------------------------------------------------------


def lstm_step_np(x: np.ndarray, c: np.ndarray, h: np.ndarray, kernel: np.ndarray, bias: np.ndarray):
    """One ``BasicLSTMCell`` step (gates ``i, j, f, o``, forget_bias 1.0) in NumPy."""
    z = np.concatenate([x, h], axis=1) @ kernel + bias
    i, j, f, o = np.split(z, 4, axis=1)

    def sig(v: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-v))

    c = c * sig(f + 1.0) + sig(i) * np.tanh(j)
    return c, np.tanh(c) * sig(o)


def eos_margins(m: Dict[str, np.ndarray], max_steps: int) -> np.ndarray:
    """``[T, B]``: by how much the best non-EOS logit beats the unbiased EOS logit at each
    step of a greedy decode in which EOS never wins.  Until a row's EOS wins, its decode is
    that one, so with an EOS bias ``beta`` a row ends at the first step where its margin is
    below ``beta``."""
    c, h = m["init_c"].copy(), m["init_h"].copy()
    ids = np.full(c.shape[0], GO)
    margins = np.empty((max_steps, c.shape[0]), dtype=np.float64)
    for t in range(max_steps):
        c, h = lstm_step_np(m["emb_tgt"][ids], c, h, m["dec_kernel"], m["dec_bias"])
        logits = h @ m["out_kernel"] + m["out_bias"]
        eos = logits[:, EOS].copy()
        logits[:, EOS] = -np.inf
        ids = logits.argmax(axis=1)
        margins[t] = logits[np.arange(len(ids)), ids] - eos
    return margins


def lengths_for_bias(margins: np.ndarray, beta: float) -> np.ndarray:
    ends = margins < beta
    return np.where(ends.any(axis=0), ends.argmax(axis=0) + 1, margins.shape[0])


def calibrate_eos(m: Dict[str, np.ndarray], max_steps: int, median: int) -> float:
    """The EOS bias giving greedy decodes a median length of about ``median`` (0: never)."""
    if median <= 0:
        return -1e4
    return eos_bias_for_median(eos_margins(m, max_steps), median)


def eos_bias_for_median(margins: np.ndarray, median: int) -> float:
    """The EOS bias for which the greedy decodes whose margins (``eos_margins``) are
    ``margins`` have a median length of about ``median``."""
    lo, hi = float(margins.min()) - 1.0, float(margins.max()) + 1.0
    for _ in range(60):  # lengths shrink as the bias grows
        mid = 0.5 * (lo + hi)
        if np.median(lengths_for_bias(margins, mid)) > median:
            lo = mid
        else:
            hi = mid
    return hi


def make_model(args: argparse.Namespace) -> Dict[str, np.ndarray]:
    """Every weight and input, float32, TF layout (kernels ``[in + H, 4H]``, gates i, j, f, o)."""
    rng = np.random.default_rng(args.seed)
    V, E, H = args.vocab, args.embed, args.units

    def glorot(shape: Tuple[int, int]) -> np.ndarray:
        limit = np.sqrt(6.0 / (shape[0] + shape[1]))
        return rng.uniform(-limit, limit, size=shape).astype(np.float32)

    def small(shape: Tuple[int, ...], scale: float) -> np.ndarray:
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    m: Dict[str, np.ndarray] = {
        "emb_src": small((V, E), 0.3),
        "emb_tgt": small((V, E), 0.3),
        "enc_kernel": glorot((E + H, 4 * H)),
        "enc_bias": small((4 * H,), 0.1),
        "dec_kernel": glorot((E + H, 4 * H)),
        "dec_bias": small((4 * H,), 0.1),
        "out_kernel": glorot((H, V)) * np.float32(4.0),  # peaked logits: decodes that move
        "out_bias": small((V,), 0.1),
        "src": rng.integers(2, V, size=(args.batch, args.source_time)).astype(np.int32),
        "tgt": rng.integers(2, V, size=(args.batch, args.target_time)).astype(np.int32),
        "init_c": small((args.decode_batch, H), 1.0),
        "init_h": np.tanh(small((args.decode_batch, H), 1.0)),
    }
    m["tgt_in"] = np.concatenate([np.full((args.batch, 1), GO, np.int32), m["tgt"][:, :-1]], axis=1)
    m["out_bias"][EOS] = 0.0
    m["out_bias"][EOS] = np.float32(calibrate_eos(m, args.max_steps, args.eos_median))
    return m


# --------------------------------------------------------------------------------------
# rnnrs contenders (each: (warm-up call, timed call, check call returning arrays))
# --------------------------------------------------------------------------------------

Call = Callable[[], Any]


def _rnnrs_parts(m: Dict[str, np.ndarray]) -> Any:
    import rnnrs

    def cell(prefix: str) -> Any:
        c = rnnrs.BasicLSTMCell(m[prefix + "_kernel"].shape[1] // 4)
        c.set_weights({"kernel": m[prefix + "_kernel"], "bias": m[prefix + "_bias"]})
        return c

    dense = rnnrs.Dense(m["out_kernel"].shape[1])
    dense.set_weights({"kernel": m["out_kernel"], "bias": m["out_bias"]})

    def embedding(key: str) -> Any:
        e = rnnrs.Embedding(*m[key].shape)
        e.set_weights({"embeddings": m[key]})
        return e

    return rnnrs, cell("enc"), cell("dec"), dense, embedding("emb_src"), embedding("emb_tgt")


def _grads(**arrays: Any) -> Dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}


def rnnrs_train(m: Dict[str, np.ndarray], threads: int, seq2seq_api: bool) -> Tuple[Call, Call, Call]:
    rnnrs, enc, dec, dense, emb_src, emb_tgt = _rnnrs_parts(m)
    rnnrs.set_num_threads(threads)
    if seq2seq_api:
        from rnnrs import seq2seq

    def step(src: np.ndarray, tgt_in: np.ndarray, tgt: np.ndarray) -> Dict[str, np.ndarray]:
        x_src, bp_src = emb_src(src, return_backprop=True)
        _, enc_state, bp_enc = rnnrs.dynamic_rnn(enc, x_src, return_backprop=True)
        x_tgt, bp_tgt = emb_tgt(tgt_in, return_backprop=True)
        if seq2seq_api:
            lengths = np.full(tgt.shape[0], tgt.shape[1], dtype=np.int32)
            helper = seq2seq.TrainingHelper(x_tgt, lengths)
            decoder = seq2seq.BasicDecoder(dec, helper, enc_state, output_layer=dense)
            outputs, _, _, bp_dec = seq2seq.dynamic_decode(decoder, return_backprop=True)
            loss, d_logits = seq2seq.sequence_loss(outputs.rnn_output, tgt, np.ones(tgt.shape, np.float32))
            g_dec = bp_dec(d_rnn_output=d_logits)
            d_x_tgt, d_dec, d_out = g_dec.inputs, g_dec.weights, g_dec.output_layer
        else:
            y, _, bp_rnn = rnnrs.dynamic_rnn(dec, x_tgt, initial_state=enc_state, return_backprop=True)
            logits, bp_dense = dense(y, return_backprop=True)
            loss, d_logits = rnnrs.sequence_loss(logits, tgt)
            g_dense = bp_dense(d_logits)
            g_dec = bp_rnn(d_outputs=g_dense.inputs)
            d_x_tgt, d_dec, d_out = g_dec.inputs, g_dec.weights, g_dense.weights
        g_enc = bp_enc(d_state=g_dec.initial_state)
        return dict(
            loss=loss,
            emb_src=bp_src(g_enc.inputs).weights["embeddings"],
            emb_tgt=bp_tgt(d_x_tgt).weights["embeddings"],
            enc_kernel=g_enc.weights["kernel"],
            enc_bias=g_enc.weights["bias"],
            dec_kernel=d_dec["kernel"],
            dec_bias=d_dec["bias"],
            out_kernel=d_out["kernel"],
            out_bias=d_out["bias"],
        )

    src, tgt_in, tgt = m["src"], m["tgt_in"], m["tgt"]
    # The timed call returns the gradients as computed; the float64 copies the
    # comparison reads are made by the check call only (as torch's contender does).
    return (
        lambda: step(src[:, :2], tgt_in[:, :2], tgt[:, :2]),
        lambda: step(src, tgt_in, tgt),
        lambda: _grads(**step(src, tgt_in, tgt)),
    )


def rnnrs_decode(
    m: Dict[str, np.ndarray], threads: int, max_steps: int, beam: int, impute: bool, penalty: float
) -> Tuple[Call, Call, Call]:
    rnnrs, _, dec, dense, _, _ = _rnnrs_parts(m)
    from rnnrs import seq2seq

    rnnrs.set_num_threads(threads)
    state = rnnrs.LSTMStateTuple(m["init_c"], m["init_h"])
    start = np.full(m["init_c"].shape[0], GO, dtype=np.int32)
    embedding = m["emb_tgt"]

    def run(steps: int) -> Any:
        if beam:
            decoder = seq2seq.BeamSearchDecoder(
                dec, embedding, start, EOS, state, beam, output_layer=dense, length_penalty_weight=penalty
            )
            return seq2seq.dynamic_decode(decoder, maximum_iterations=steps)
        helper = seq2seq.GreedyEmbeddingHelper(embedding, start, EOS)
        decoder = seq2seq.BasicDecoder(dec, helper, state, output_layer=dense)
        return seq2seq.dynamic_decode(decoder, maximum_iterations=steps, impute_finished=impute)

    def check() -> Dict[str, np.ndarray]:
        outputs, final_state, lengths = run(max_steps)[:3]
        if beam:  # the best beam: ids [B, T], its length (EOS included)
            return {"ids": np.asarray(outputs.predicted_ids)[:, :, 0], "lengths": np.asarray(final_state.lengths)[:, 0]}
        return {"ids": np.asarray(outputs.sample_id), "lengths": np.asarray(lengths)}

    return lambda: run(2), lambda: run(max_steps), check


# --------------------------------------------------------------------------------------
# torch contenders
# --------------------------------------------------------------------------------------


def _torch_setup(threads: int) -> Any:
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    return torch


def to_torch_lstm(kernel: np.ndarray, bias: np.ndarray) -> Dict[str, np.ndarray]:
    """A TF ``BasicLSTMCell``'s weights as torch's ``weight_ih``, ``weight_hh``, ``bias_ih``,
    ``bias_hh`` (gates ``i, j, f, o`` -> ``i, f, g, o``; forget_bias 1.0 folded in)."""
    H = kernel.shape[1] // 4
    order = [0, 2, 1, 3]  # torch's i, f, g, o among TF's i, j, f, o
    k = np.concatenate([kernel[:, g * H : (g + 1) * H] for g in order], axis=1)
    b = np.concatenate([bias[g * H : (g + 1) * H] + (1.0 if g == 2 else 0.0) for g in order])
    I = kernel.shape[0] - H
    return {
        "weight_ih": np.ascontiguousarray(k[:I].T),
        "weight_hh": np.ascontiguousarray(k[I:].T),
        "bias_ih": b.astype(np.float32),
        "bias_hh": np.zeros_like(b, dtype=np.float32),
    }


def from_torch_lstm_grads(d_ih: np.ndarray, d_hh: np.ndarray, d_b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Gradients of torch's ``weight_ih``, ``weight_hh`` and (either) bias in TF's layout."""
    H = d_hh.shape[1]
    k = np.concatenate([d_ih.T, d_hh.T], axis=0)  # [I + H, 4H], gates i, f, g, o
    order = [0, 2, 1, 3]  # TF's i, j, f, o among torch's i, f, g, o
    kernel = np.concatenate([k[:, g * H : (g + 1) * H] for g in order], axis=1)
    bias = np.concatenate([d_b[g * H : (g + 1) * H] for g in order])
    return kernel, bias


def _torch_modules(torch: Any, m: Dict[str, np.ndarray], recurrent: str) -> Any:
    """The model as torch modules; ``recurrent`` is ``"LSTM"`` (one layer) or ``"LSTMCell"``."""
    nn = torch.nn

    def lstm(prefix: str) -> Any:
        kernel, bias = m[prefix + "_kernel"], m[prefix + "_bias"]
        H = kernel.shape[1] // 4
        mod = getattr(nn, recurrent)(kernel.shape[0] - H, H, **({"batch_first": True} if recurrent == "LSTM" else {}))
        suffix = "_l0" if recurrent == "LSTM" else ""
        mod.load_state_dict({k + suffix: torch.from_numpy(v) for k, v in to_torch_lstm(kernel, bias).items()})
        return mod

    def embedding(key: str) -> Any:
        return nn.Embedding.from_pretrained(torch.from_numpy(m[key].copy()), freeze=False)

    linear = nn.Linear(*m["out_kernel"].shape)
    linear.load_state_dict(
        {"weight": torch.from_numpy(np.ascontiguousarray(m["out_kernel"].T)), "bias": torch.from_numpy(m["out_bias"])}
    )
    return embedding("emb_src"), embedding("emb_tgt"), lstm("enc"), lstm("dec"), linear


def torch_train(m: Dict[str, np.ndarray], threads: int) -> Tuple[Call, Call, Call]:
    torch = _torch_setup(threads)
    F = torch.nn.functional
    emb_src, emb_tgt, enc, dec, linear = _torch_modules(torch, m, "LSTM")
    params = [p for mod in (emb_src, emb_tgt, enc, dec, linear) for p in mod.parameters()]

    def step(src: Any, tgt_in: Any, tgt: Any) -> Any:
        for p in params:
            p.grad = None
        _, (h, c) = enc(emb_src(src))
        y, _ = dec(emb_tgt(tgt_in), (h, c))
        logits = linear(y)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        loss.backward()
        return loss

    src, tgt_in, tgt = (torch.from_numpy(m[k].astype(np.int64)) for k in ("src", "tgt_in", "tgt"))

    def check() -> Dict[str, np.ndarray]:
        loss = step(src, tgt_in, tgt)

        def g(p: Any) -> np.ndarray:
            return p.grad.numpy()

        enc_k, enc_b = from_torch_lstm_grads(g(enc.weight_ih_l0), g(enc.weight_hh_l0), g(enc.bias_ih_l0))
        dec_k, dec_b = from_torch_lstm_grads(g(dec.weight_ih_l0), g(dec.weight_hh_l0), g(dec.bias_ih_l0))
        return _grads(
            loss=loss.item(),
            emb_src=g(emb_src.weight),
            emb_tgt=g(emb_tgt.weight),
            enc_kernel=enc_k,
            enc_bias=enc_b,
            dec_kernel=dec_k,
            dec_bias=dec_b,
            out_kernel=g(linear.weight).T,
            out_bias=g(linear.bias),
        )

    return (lambda: step(src[:, :2], tgt_in[:, :2], tgt[:, :2])), (lambda: step(src, tgt_in, tgt)), check


def torch_greedy(torch: Any, emb: Any, cell: Any, linear: Any, h: Any, c: Any, steps: int, compact: bool) -> Any:
    """Greedy decoding: ``(ids [B, steps_run], lengths [B])``, lengths counting the EOS."""
    batch = h.shape[0]
    ids = torch.full((batch,), GO, dtype=torch.long)
    out = torch.full((batch, max(steps, 1)), EOS, dtype=torch.long)
    lengths = torch.full((batch,), steps, dtype=torch.long)
    finished = torch.zeros(batch, dtype=torch.bool)
    rows = torch.arange(batch)  # compact: the unfinished rows, in the arrays' order
    ran = 0
    for t in range(steps):
        h, c = cell(emb(ids), (h, c))
        ids = linear(h).argmax(dim=1)
        ran = t + 1
        out[rows, t] = ids
        ended = ids == EOS
        if compact:
            lengths[rows[ended]] = t + 1
            keep = ~ended
            if not bool(keep.any()):
                break
            rows, ids, h, c = rows[keep], ids[keep], h[keep], c[keep]
        else:
            lengths = torch.where(finished, lengths, torch.where(ended, t + 1, lengths))
            finished = finished | ended
            if bool(finished.all()):
                break
    return out[:, :ran], lengths


def torch_beam_search(
    torch: Any, emb: Any, cell: Any, linear: Any, h0: Any, c0: Any, beam: int, steps: int, penalty: float
) -> Any:
    """Batched beam search with TF 1.15's semantics (see the module docstring):
    ``(ids [B, T, beam] best first, lengths [B, beam])``."""

    def step(ids: Any, state: Any) -> Any:
        h, c = cell(emb(ids), state)
        return linear(h), (h, c)

    state = (h0.repeat_interleave(beam, dim=0), c0.repeat_interleave(beam, dim=0))  # row b * beam + k
    return torch_beam_search_steps(torch, step, state, h0.shape[0], beam, steps, penalty)


def torch_beam_search_steps(
    torch: Any,
    step: Callable[[Any, Any], Any],
    state: Tuple[Any, ...],
    batch: int,
    beam: int,
    steps: int,
    penalty: float,
) -> Any:
    """The beam search of ``torch_beam_search`` over any step: ``step(ids [B * beam],
    state) -> (logits [B * beam, V], state)``, the state a tuple of tensors of ``B * beam``
    rows (row ``b * beam + k``: beam ``k`` of batch entry ``b``) that the search gathers
    by parent after every step."""
    log_probs = torch.full((batch, beam), float("-inf"))
    log_probs[:, 0] = 0.0  # only beam 0 is live at the first step
    finished = torch.zeros((batch, beam), dtype=torch.bool)
    lengths = torch.zeros((batch, beam), dtype=torch.long)
    ids = torch.full((batch * beam,), GO, dtype=torch.long)
    base = (torch.arange(batch) * beam).unsqueeze(1)  # first row of each batch entry
    step_ids: List[Any] = []
    parents: List[Any] = []
    for _ in range(steps):
        logits, state = step(ids, state)
        total = torch.log_softmax(logits, dim=1).view(batch, beam, -1)
        vocab = total.shape[2]
        # a finished beam extends only with EOS, at no cost
        eos_lp = torch.where(finished, torch.zeros_like(log_probs), total[:, :, EOS])
        total.masked_fill_(finished.unsqueeze(2), float("-inf"))
        total[:, :, EOS] = eos_lp
        total.add_(log_probs.unsqueeze(2))
        if penalty:  # the candidate's length: + 1 for a non-EOS word of a live beam, else + 0
            grown = ((5.0 + (lengths + (~finished).long()).float()) / 6.0) ** penalty
            scores = total / grown.unsqueeze(2)
            scores[:, :, EOS] = total[:, :, EOS] / ((5.0 + lengths.float()) / 6.0) ** penalty
        else:
            scores = total
        _, top = scores.view(batch, -1).topk(beam, dim=1)  # sorted: best first
        parent = torch.div(top, vocab, rounding_mode="floor")
        word = top % vocab
        log_probs = total.view(batch, -1).gather(1, top)
        prev_finished = finished.gather(1, parent)
        finished = prev_finished | (word == EOS)
        lengths = lengths.gather(1, parent) + (~prev_finished).long()
        rows = (base + parent).view(-1)
        state = tuple(s[rows] for s in state)
        ids = word.view(-1)
        step_ids.append(word)
        parents.append(parent)
        if bool(finished.all()):
            break
    # backtrack from the last step (TF's gather_tree); ids past a beam's end are EOS
    T = len(step_ids)
    out = torch.full((batch, T, beam), EOS, dtype=torch.long)
    if T:
        beams = torch.arange(beam).unsqueeze(0).expand(batch, beam)
        for t in range(T - 1, -1, -1):
            out[:, t] = step_ids[t].gather(1, beams)
            beams = parents[t].gather(1, beams)
        ended = (out == EOS).long().cumsum(dim=1)  # EOS count up to each step
        out[(ended - (out == EOS).long()) > 0] = EOS
    return out, lengths


def torch_decode(
    m: Dict[str, np.ndarray], threads: int, max_steps: int, beam: int, compact: bool, penalty: float
) -> Tuple[Call, Call, Call]:
    torch = _torch_setup(threads)
    _, emb, _, cell, linear = _torch_modules(torch, m, "LSTMCell")
    h0, c0 = torch.from_numpy(m["init_h"]), torch.from_numpy(m["init_c"])

    def run(steps: int) -> Any:
        with torch.no_grad():
            if beam:
                return torch_beam_search(torch, emb, cell, linear, h0, c0, beam, steps, penalty)
            return torch_greedy(torch, emb, cell, linear, h0, c0, steps, compact)

    def check() -> Dict[str, np.ndarray]:
        ids, lengths = run(max_steps)
        if beam:
            return {"ids": ids[:, :, 0].numpy(), "lengths": lengths[:, 0].numpy()}
        return {"ids": ids.numpy(), "lengths": lengths.numpy()}

    return lambda: run(2), lambda: run(max_steps), check


def make_calls(
    case: str, contender: str, m: Dict[str, np.ndarray], args: argparse.Namespace
) -> Tuple[Call, Call, Call]:
    threads, steps, penalty = args.threads, args.max_steps, args.length_penalty
    beam = args.beam if case == "beam" else 0
    if case == "train":
        if contender == "torch":
            return torch_train(m, threads)
        return rnnrs_train(m, threads, seq2seq_api=contender == "rnnrs")
    if contender.startswith("torch"):
        return torch_decode(m, threads, steps, beam, contender == "torch compact", penalty)
    return rnnrs_decode(m, threads, steps, beam, contender == "rnnrs impute", penalty)


# --------------------------------------------------------------------------------------
# The child: one case, one contender, one thread count
# --------------------------------------------------------------------------------------


def measure(
    case: str,
    contender: str,
    args: argparse.Namespace,
    make: Callable[[str, str, Dict[str, np.ndarray], argparse.Namespace], Tuple[Call, Call, Call]] = make_calls,
) -> Dict[str, Any]:
    """Runs in the child: baseline after imports, model and warm-up; ``repeat`` timed calls;
    then one untimed call whose arrays go to ``--check-out``.  ``make`` gives the
    contender's calls (``make_calls``' signature)."""
    with np.load(args.model) as f:
        m = {k: f[k] for k in f.files}
    try:
        warm, timed, check = make(case, contender, m, args)
    except ImportError as exc:
        return {"status": "not installed", "error": f"{type(exc).__name__}: {exc}"}
    warm()
    baseline, times, peaks = timed_calls(timed, args.repeat)
    np.savez(args.check_out, **check())
    library = "torch" if contender.startswith("torch") else "rnnrs"
    version = str(getattr(sys.modules.get(library), "__version__", "?"))
    return {"status": "", "version": version, "times_s": times, "baseline_bytes": baseline, "peaks_bytes": peaks}


# --------------------------------------------------------------------------------------
# The parent
# --------------------------------------------------------------------------------------


@dataclass
class Row:
    case: str
    contender: str
    threads: int
    status: str = ""  # "", "not installed", "error"
    detail: str = ""
    version: str = ""
    times_s: List[float] = field(default_factory=list)
    extra_bytes: List[int] = field(default_factory=list)  # peak over baseline, per call
    check: str = ""  # what the comparison with the case's reference found
    check_file: str = ""

    @property
    def median_s(self) -> Optional[float]:
        return statistics.median(self.times_s) if self.times_s else None

    @property
    def peak_extra_mib(self) -> Optional[float]:
        return max(self.extra_bytes) / MIB if self.extra_bytes else None


SIZE_ARGS = (
    "batch",
    "source_time",
    "target_time",
    "vocab",
    "embed",
    "units",
    "decode_batch",
    "max_steps",
    "beam",
    "eos_median",
    "seed",
)


def child_command(case: str, contender: str, threads: int, check_out: str, args: argparse.Namespace) -> List[str]:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", f"{case}:{contender}", "--model", args.model]
    for name in SIZE_ARGS:
        cmd += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    cmd += ["--length-penalty", repr(args.length_penalty), "--threads", str(threads)]
    return cmd + ["--repeat", str(args.repeat), "--check-out", check_out]


def run_child(
    row: Row,
    args: argparse.Namespace,
    workdir: str,
    round_index: int,
    command: Callable[[str, str, int, str, argparse.Namespace], List[str]] = child_command,
) -> None:
    """Runs one child (its command line from ``command``, ``child_command``'s signature)
    and adds its calls to ``row`` (status set on failure)."""
    check_out = os.path.join(workdir, f"{row.case}-{row.contender.replace(' ', '_')}-{row.threads}-{round_index}.npz")
    env = dict(os.environ)
    for var in THREAD_VARIABLES:  # read at import by NumPy's BLAS, torch and rnnrs
        env[var] = str(row.threads)
    cmd = command(row.case, row.contender, row.threads, check_out, args)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        row.status, row.detail = "error", f"timed out after {CHILD_TIMEOUT_S} s"
        return
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        row.status, row.detail = "error", f"exit {proc.returncode}: {tail}"
        return
    result = json.loads(lines[-1][len(RESULT_MARK) :])
    if result["status"]:
        row.status, row.detail = result["status"], result.get("error", "")
        return
    row.version = result["version"]
    row.times_s += result["times_s"]
    row.extra_bytes += [p - result["baseline_bytes"] for p in result["peaks_bytes"]]
    row.check_file = check_out


def compare_train(ref: Dict[str, np.ndarray], got: Dict[str, np.ndarray]) -> Tuple[bool, str]:
    worst, where = 0.0, ""
    for k, a in ref.items():
        scale = max(float(np.abs(a).max()), 1e-12)
        err = float(np.abs(got[k] - a).max()) / scale
        if err > worst:
            worst, where = err, k
    ok = worst <= GRAD_TOL
    return ok, f"loss and gradients agree, worst {worst:.1e} ({where})" if ok else f"MISMATCH {worst:.1e} in {where}"


def compare_decode(ref: Dict[str, np.ndarray], got: Dict[str, np.ndarray]) -> Tuple[bool, str]:
    same = 0
    rows = len(ref["lengths"])
    for b in range(rows):
        n = int(ref["lengths"][b])
        if int(got["lengths"][b]) == n and np.array_equal(ref["ids"][b, :n], got["ids"][b, :n]):
            same += 1
    share = same / max(rows, 1)
    ok = share >= AGREE_MIN
    return ok, f"{same}/{rows} rows agree" + ("" if ok else " (MISMATCH)")


def unended(result: Dict[str, np.ndarray]) -> np.ndarray:
    """``[B]``: whether each row's decode stopped at ``--max-steps`` without an EOS."""
    ids, lengths = result["ids"], result["lengths"]
    if ids.shape[1] == 0:
        return np.ones(len(lengths), dtype=bool)
    last = ids[np.arange(len(lengths)), np.clip(lengths - 1, 0, ids.shape[1] - 1)]
    return last != EOS


def check_rows(rows: Sequence[Row]) -> bool:
    """Compares every row of a (case, threads) group with its first row that ran; sets ``check``."""
    ran = [r for r in rows if not r.status and r.check_file]
    if not ran:
        return True
    with np.load(ran[0].check_file) as f:
        ref = {k: f[k] for k in f.files}
    ran[0].check = "reference"
    compare = compare_train if ran[0].case == "train" else compare_decode
    all_ok = True
    for r in ran[1:]:
        with np.load(r.check_file) as f:
            ok, r.check = compare(ref, {k: f[k] for k in f.files})
        all_ok &= ok
    if ran[0].case != "train":
        lengths = ref["lengths"]
        ran[0].check = (
            f"reference; lengths min {lengths.min()} median {np.median(lengths):g} max {lengths.max()}, "
            f"{int(unended(ref).sum())} rows without EOS"
        )
    return all_ok


def describe_size(case: str, args: argparse.Namespace) -> str:
    if case == "train":
        return f"B{args.batch} Ts{args.source_time} Tt{args.target_time} V{args.vocab} E{args.embed} H{args.units}"
    beam = f" beam{args.beam}" if case == "beam" else ""
    return f"B{args.decode_batch} max{args.max_steps}{beam} V{args.vocab} E{args.embed} H{args.units}"


HEADER = ("case", "size", "threads", "contender", "median", "min", "calls", "peak extra MiB", "x/rnnrs", "check")


def render(
    rows: Sequence[Row],
    args: argparse.Namespace,
    markdown: bool,
    describe: Callable[[str, argparse.Namespace], str] = describe_size,
) -> str:
    """The table of ``rows``; ``describe(case, args)`` fills the size column."""
    body = []
    for r in rows:
        ref = next((o for o in rows if (o.case, o.threads) == (r.case, r.threads) and o.contender == "rnnrs"), None)
        pair = {"torch compact": "rnnrs impute"}.get(r.contender)
        if pair:
            ref = next((o for o in rows if (o.case, o.threads, o.contender) == (r.case, r.threads, pair)), ref)
        x = ratio(r.median_s, ref.median_s if ref is not None and ref is not r else None)
        body.append(
            [
                r.case,
                describe(r.case, args),
                str(r.threads),
                r.contender,
                fmt_time(r.median_s) if r.median_s is not None else (r.status or "-"),
                fmt_time(min(r.times_s)) if r.times_s else "-",
                str(len(r.times_s)),
                fmt_value(r.peak_extra_mib, ".1f"),
                fmt_times(x) + (f" (vs {pair})" if pair and x is not None else ""),
                r.check,
            ]
        )
    return render_table(HEADER, body, markdown, left=4)


def target_lines(rows: Sequence[Row], targets: Sequence[Tuple[str, str, str, float]] = TARGETS) -> List[str]:
    """One PASS / FAIL / no data line per (target, thread count) of ``targets``
    (``(case, slower contender, rnnrs contender, at least x faster)``)."""
    out = []
    for case, slow, fast, want in targets:
        found = {(r.threads, r.contender): r for r in rows if r.case == case}
        for threads in sorted({t for t, _ in found}, reverse=True):
            a, b = found.get((threads, slow)), found.get((threads, fast))
            x = ratio(a.median_s if a else None, b.median_s if b else None)
            verdict = "no data" if x is None else ("PASS" if x >= want else "FAIL")
            out.append(
                f"- **{verdict}** {case}, {threads} thread(s): {slow} / {fast} = {fmt_times(x)} (target >= {want:g}x)"
            )
    return out


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cases", default=",".join(CASES), help="comma list of train, greedy, beam (default all)")
    p.add_argument("--contenders", default="all", help="comma list of contenders to run (default all)")
    p.add_argument("--threads", default="2,1", help="comma list of thread counts (default 2,1)")
    p.add_argument("--batch", type=int, default=64, help="training batch (default 64)")
    p.add_argument("--source-time", type=int, default=30)
    p.add_argument("--target-time", type=int, default=30)
    p.add_argument("--vocab", type=int, default=5000, help="source and target vocabulary (default 5000)")
    p.add_argument("--embed", type=int, default=256, help="embedding width (default 256)")
    p.add_argument("--units", type=int, default=256, help="LSTM units (default 256)")
    p.add_argument("--decode-batch", type=int, default=256, help="sequences decoded at once (default 256)")
    p.add_argument("--max-steps", type=int, default=50, help="maximum_iterations of the decodes (default 50)")
    p.add_argument("--beam", type=int, default=5, help="beam width (default 5)")
    p.add_argument("--length-penalty", type=float, default=1.0, help="GNMT length_penalty_weight (default 1.0)")
    p.add_argument("--eos-median", type=int, default=25, help="median greedy length the EOS bias aims at; 0: no EOS")
    p.add_argument("--repeat", type=int, default=5, help="timed calls per child (default 5)")
    p.add_argument("--rounds", type=int, default=2, help="children per contender, order rotating (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    p.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    p.add_argument("--child", help=argparse.SUPPRESS)  # internal: "case:contender"
    p.add_argument("--model", help=argparse.SUPPRESS)  # internal: the shared weights (.npz)
    p.add_argument("--check-out", help=argparse.SUPPRESS)  # internal: where the child writes its arrays
    args = p.parse_args(argv)
    return check_args(
        p, args, ("batch", "source_time", "target_time", "embed", "units", "decode_batch", "beam", "repeat", "rounds")
    )


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace, sizes: Sequence[str]) -> argparse.Namespace:
    """The checks shared with ``attention.py``: ``sizes`` at least 1, the
    vocabulary, steps and EOS median, and ``--threads`` (a comma list in the
    parent, one count in a child)."""
    for name in sizes:
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.vocab < 3:
        p.error("--vocab must be at least 3 (GO, EOS and one word)")
    if args.max_steps < 2:
        p.error("--max-steps must be at least 2")
    if args.eos_median < 0:
        p.error("--eos-median must be at least 0")
    if args.child is None:
        try:
            args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
        except ValueError:
            p.error(f"--threads: expected a comma list of integers, got {args.threads!r}")
        if not args.threads or min(args.threads) < 1:
            p.error("--threads: expected thread counts >= 1")
    else:
        args.threads = int(args.threads)
    return args


def main(argv: Sequence[str] = ()) -> int:
    args = parse_args(argv)
    if args.child:
        case, contender = args.child.split(":", 1)
        print(RESULT_MARK + json.dumps(measure(case, contender, args)), flush=True)
        return 0

    cases = csv_choice(args.cases, list(CASES), "case")
    everyone = sorted({c for cs in CASES.values() for c in cs})
    wanted = csv_choice(args.contenders, everyone, "contender")
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(
        f"seq2seq, float32; threads {','.join(map(str, args.threads))}; {args.rounds} round(s) x {args.repeat} "
        f"call(s) per contender, one subprocess each; {os.cpu_count()} CPUs, load average {load}"
    )
    with tempfile.TemporaryDirectory(prefix="seq2seq-bench-") as workdir:
        args.model = os.path.join(workdir, "model.npz")
        t0 = time.perf_counter()
        np.savez(args.model, **make_model(args))
        print(f"model and EOS bias made in {time.perf_counter() - t0:.1f} s", flush=True)
        rows, all_ok = run_groups(cases, CASES, wanted, args, workdir)
    print()
    print(render(rows, args, args.markdown))
    print(
        "\n  x/rnnrs: the contender's median over rnnrs' (torch compact: over rnnrs impute); above 1: rnnrs is faster"
    )
    print("  peak extra MiB: ru_maxrss high-water mark over the child's baseline (after imports, model and warm-up)")
    print("\nTargets:")
    print("\n".join(target_lines(rows)))
    if args.json:
        write_json(rows, args.json)
    if any(r.contender.startswith("rnnrs") and r.status == "not installed" for r in rows):
        print("rnnrs (or rnnrs.seq2seq) does not import: build it with `maturin develop --release`.", file=sys.stderr)
        return 2
    return 0 if all_ok and not any(r.status == "error" for r in rows) else 1


def run_groups(
    cases: Sequence[str],
    contenders: Dict[str, Tuple[str, ...]],
    wanted: Sequence[str],
    args: argparse.Namespace,
    workdir: str,
    command: Callable[[str, str, int, str, argparse.Namespace], List[str]] = child_command,
) -> Tuple[List[Row], bool]:
    """Runs every (case, thread count) group of ``contenders[case]`` (those in ``wanted``),
    ``args.rounds`` rounds in rotating order, checks each group against its first
    contender and prints its calls: ``(rows, whether every check passed)``."""
    rows: List[Row] = []
    all_ok = True
    for case in cases:
        for threads in args.threads:
            group = [Row(case, c, threads) for c in contenders[case] if c in wanted]
            for i in range(args.rounds):
                shift = i % max(len(group), 1)
                for row in group[shift:] + group[:shift]:
                    if not row.status:
                        run_child(row, args, workdir, i, command)
            all_ok &= check_rows(group)
            for row in group:
                head = f"  {case} {threads}t {row.contender} {row.version}".rstrip()
                if row.status:
                    print(f"{head}: {row.status} ({row.detail})", flush=True)
                else:
                    runs = " ".join(fmt_time(t) for t in row.times_s)
                    print(f"{head}: runs {runs}; peak extra {row.peak_extra_mib:.1f} MiB; {row.check}", flush=True)
            rows += group
    return rows, all_ok


def write_json(rows: Sequence[Row], path: str) -> None:
    """The rows, with their times and checks, as a JSON list."""
    with open(path, "w") as f:
        json.dump(
            [
                {
                    "case": r.case,
                    "contender": r.contender,
                    "threads": r.threads,
                    "status": r.status,
                    "detail": r.detail,
                    "times_s": r.times_s,
                    "median_s": r.median_s,
                    "peak_extra_mib": r.peak_extra_mib,
                    "check": r.check,
                }
                for r in rows
            ],
            f,
            indent=1,
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
