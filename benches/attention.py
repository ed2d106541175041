#!/usr/bin/env python3
"""Bahdanau-attention encoder-decoder training and beam search: rnnrs.seq2seq next to PyTorch CPU.

    python benches/attention.py                        # both cases, 2 and 1 threads
    python benches/attention.py --cases beam --threads 1 --markdown
    python benches/attention.py --quick                # tiny sizes, one call each: a smoke test

What is measured
----------------
One LSTM encoder-decoder with Bahdanau attention, float32, with the same weights in every
contender (``--seed``): source and target vocabularies of ``--vocab`` ids (default 5000),
embeddings of width ``--embed`` (256), an ``LSTMCell(--units)`` (256, forget_bias 1.0)
encoder, and as decoder ``AttentionWrapper(LSTMCell(256), BahdanauAttention(
--attention-units), attention_layer_size=--attention-size, output_attention=True)`` (256,
256), followed by a projection ``Dense(vocab)`` of the attention.  Each decoder step, in
TF 1.15's order: cell input ``[x, previous attention]``, the cell, the score
``attention_v . tanh(memory @ memory_layer/kernel + h @ query_layer/kernel)`` over the
memory positions within each row's length, ``alignments = softmax(score)``, ``context =
alignments @ memory``, ``attention = [h, context] @ attention_layer/kernel``.  Id 0 is the
start token (GO), id 1 the end token (EOS).  Two cases (``--cases``):

``train``: one training step on ``--batch`` (64) source sequences of ``--source-time`` (30)
ids and target sequences of ``--target-time`` (30) ids, every row full length: the
embeddings, the encoder, the attention over the encoder's outputs, the decoder
teacher-forced on ``[GO, target[:-1]]`` from the encoder's final state, the projection,
the softmax cross-entropy averaged over every step, and the gradient of every weight (both
embeddings, both cells, the four attention weights, the projection), the encoder's
through both the decoder's initial state and the memory.  No optimizer update.

* ``rnnrs``: ``Embedding`` layers, ``dynamic_rnn`` encoder, ``BahdanauAttention`` given the
  encoder's outputs (``setup_memory``), the ``AttentionWrapper`` run by ``dynamic_rnn``
  from ``zero_state(B).clone(cell_state=encoder_state)``, ``Dense``,
  ``rnnrs.sequence_loss``; the backprops, ``Gradients.memory`` and the initial state's
  gradient flowing into the encoder's.
* ``rnnrs dynamic_decode``: the same with ``BasicDecoder(wrapper, TrainingHelper,
  state, output_layer=Dense)`` + ``dynamic_decode(return_backprop=True)`` and
  ``seq2seq.sequence_loss`` (``DecoderGradients.memory``).
* ``torch``: ``nn.Embedding`` x 2, ``nn.LSTM`` encoder (``batch_first``), then a loop
  written here of ``nn.LSTMCell`` steps and the attention above (``nn.Linear`` layers
  without bias, a ``v`` parameter, ``softmax``, ``bmm``), ``nn.Linear``,
  ``F.cross_entropy``, ``loss.backward()``.

``beam``: beam search of width ``--beam`` (5) over ``--decode-batch`` (256) rows, at most
``--max-steps`` (30) steps, GNMT length penalty ``--length-penalty`` (1.0), TF 1.15's
semantics (as ``seq2seq.py``'s beam case), attending to a fixed random memory of
``[256, source-time, units]`` (as an encoder would give) whose rows have random lengths
between half the source length and all of it, from a fixed random initial LSTM state and
a zero attention.

* ``rnnrs``: ``dynamic_decode(BeamSearchDecoder(wrapper, embedding, start_tokens, EOS,
  wrapper.zero_state(256).clone(cell_state=state), 5, output_layer=Dense,
  length_penalty_weight=1.0), maximum_iterations=30)``, the memory and its lengths given
  for the 256 rows (the wrapper repeats them per beam);
* ``torch``: ``seq2seq.py``'s batched beam search (``torch_beam_search_steps``) over the
  attention step: the memory, its keys and mask repeated per beam once, ``(h, c,
  attention)`` gathered by parent after every step.

The EOS logit's bias is set, as in ``seq2seq.py``, from a NumPy greedy decode of the same
model so that greedy rows would end at a median length of ``--eos-median`` (20; 0: never);
beams, which an EOS ends only when every beam of the row has, may still run every step.
The line before the table shows the best beams' lengths.

Same maths first
----------------
Every contender writes what an untimed call computed; the parent compares it with the
case's first contender (``seq2seq.py``'s checks): training, the loss and every gradient
(torch's mapped back to the TF layout) within 1e-3 of the largest entry of each array;
beam search, the best beam's ids and length row by row, at least 98 % of the rows equal
(float32 rounding can flip a near-tie).  A mismatch makes the exit status 1.

Timing and memory
-----------------
As ``seq2seq.py`` (whose parent code this script runs): one fresh subprocess per (case,
contender, thread count), a small warm-up call (two steps), ``--repeat`` timed calls with
the garbage collector paused, ``--rounds`` rounds in rotating order; the table shows the
median and fastest call and the peak extra memory (RSS high-water mark over the child's
baseline).  ``x/rnnrs`` above 1 means rnnrs is faster.  Targets: training >= 2x torch,
beam search >= 3x.

Results
-------
``python benches/attention.py --repeat 3 --rounds 2`` on the project's shared 2-core VM (load
average 1.3 to 5.3 during the run), with the attention loop running in Python over the
wrapped cell's one-step runs; the table and what it means are in the "attention.py" section
of ``benches/README.md``.  Medians, rnnrs / torch: training 555 / 608 ms at 1 thread (1.10x),
694 / 386 ms at 2 (0.56x); beam search 20.8 / 6.5 s at 1 thread (0.31x), 22.6 / 13.7 s at 2
(0.61x).  Losses and gradients agree to 2.6e-6, the best beams in 256/256 rows.  All four
targets FAIL; three quarters of rnnrs' beam search time is the Python beam step's full
``argsort`` of the scores (the Rust beam loop declines an ``AttentionWrapper``).  Merged onto
the Rust attention loop (i16's d8f9f0a, quieter machine): training 370 / 643 ms at 1 thread
(1.74x), 340 / 433 ms at 2 (1.28x); beam search 21.2 / 5.1 s (0.24x) and 20.7 / 3.0 s (0.15x).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

BENCHES_DIR = os.path.dirname(os.path.abspath(__file__))
if BENCHES_DIR not in sys.path:  # report.py and seq2seq.py, next to this file
    sys.path.insert(0, BENCHES_DIR)
import numpy as np  # noqa: E402

from report import csv_choice  # noqa: E402
from seq2seq import (  # noqa: E402
    EOS,
    GO,
    RESULT_MARK,
    Call,
    _grads,
    _torch_setup,
    check_args,
    eos_bias_for_median,
    from_torch_lstm_grads,
    lstm_step_np,
    measure,
    render,
    run_groups,
    target_lines,
    to_torch_lstm,
    write_json,
)

CASES: Dict[str, Tuple[str, ...]] = {
    "train": ("rnnrs", "rnnrs dynamic_decode", "torch"),
    "beam": ("rnnrs", "torch"),
}
# the speed targets: (case, torch contender, rnnrs contender, at least x faster)
TARGETS = (
    ("train", "torch", "rnnrs", 2.0),
    ("beam", "torch", "rnnrs", 3.0),
)
QUICK = {
    "batch": 4,
    "source_time": 5,
    "target_time": 6,
    "vocab": 23,
    "embed": 3,
    "units": 5,
    "attention_units": 4,
    "attention_size": 6,
    "decode_batch": 7,
    "max_steps": 6,
    "beam": 2,
    "eos_median": 3,
    "repeat": 1,
    "rounds": 1,
}
# the attention weights: the model's key -> the rnnrs wrapper's weight name
ATTENTION_WEIGHTS = {
    "memory_kernel": "memory_layer/kernel",
    "query_kernel": "query_layer/kernel",
    "attention_v": "attention_v",
    "attention_kernel": "attention_layer/kernel",
}


# --------------------------------------------------------------------------------------
# The model: weights in TF 1.x layout, inputs, the EOS bias (made once by the parent)
# --------------------------------------------------------------------------------------


def attention_np(
    m: Dict[str, np.ndarray], h: np.ndarray, keys: np.ndarray, memory: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """One Bahdanau attention in NumPy: ``[h, softmax(v . tanh(keys + h Wq)) @ memory] @ Wa``."""
    score = np.tanh(keys + (h @ m["query_kernel"])[:, None, :]) @ m["attention_v"]
    score = np.where(mask, score, -np.inf)
    e = np.exp(score - score.max(axis=1, keepdims=True))
    context = np.einsum("bt,btd->bd", e / e.sum(axis=1, keepdims=True), memory)
    out: np.ndarray = np.concatenate([h, context], axis=1) @ m["attention_kernel"]
    return out


def memory_mask(lengths: np.ndarray, time: int) -> np.ndarray:
    """``[B, Tm]``: the positions each row attends to."""
    return np.arange(time)[None, :] < np.asarray(lengths)[:, None]


def eos_margins(m: Dict[str, np.ndarray], max_steps: int) -> np.ndarray:
    """``seq2seq.eos_margins`` for the attention decoder of the ``beam`` case: ``[T, B]``,
    by how much the best non-EOS logit beats the unbiased EOS logit at each step of a
    greedy decode in which EOS never wins."""
    memory = m["dec_memory"]
    mask = memory_mask(m["dec_memory_lengths"], memory.shape[1])
    keys = memory @ m["memory_kernel"]
    c, h = m["init_c"].copy(), m["init_h"].copy()
    att = np.zeros((c.shape[0], m["attention_kernel"].shape[1]), dtype=c.dtype)
    ids = np.full(c.shape[0], GO)
    margins = np.empty((max_steps, c.shape[0]), dtype=np.float64)
    for t in range(max_steps):
        x = np.concatenate([m["emb_tgt"][ids], att], axis=1)
        c, h = lstm_step_np(x, c, h, m["dec_kernel"], m["dec_bias"])
        att = attention_np(m, h, keys, memory, mask)
        logits = att @ m["out_kernel"] + m["out_bias"]
        eos = logits[:, EOS].copy()
        logits[:, EOS] = -np.inf
        ids = logits.argmax(axis=1)
        margins[t] = logits[np.arange(len(ids)), ids] - eos
    return margins


def make_model(args: argparse.Namespace) -> Dict[str, np.ndarray]:
    """Every weight and input, float32, TF layout (LSTM kernels ``[in + H, 4H]``, gates
    i, j, f, o; the decoder's input is ``[embedding, attention]``)."""
    rng = np.random.default_rng(args.seed)
    V, E, H, U, A = args.vocab, args.embed, args.units, args.attention_units, args.attention_size
    Ts, Bd = args.source_time, args.decode_batch

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
        "dec_kernel": glorot((E + A + H, 4 * H)),
        "dec_bias": small((4 * H,), 0.1),
        "memory_kernel": glorot((H, U)),
        "query_kernel": glorot((H, U)),
        "attention_v": rng.uniform(-np.sqrt(3.0 / U), np.sqrt(3.0 / U), size=U).astype(np.float32),
        "attention_kernel": glorot((2 * H, A)),
        "out_kernel": glorot((A, V)) * np.float32(4.0),  # peaked logits: decodes that move
        "out_bias": small((V,), 0.1),
        "src": rng.integers(2, V, size=(args.batch, Ts)).astype(np.int32),
        "tgt": rng.integers(2, V, size=(args.batch, args.target_time)).astype(np.int32),
        "dec_memory": np.tanh(small((Bd, Ts, H), 1.0)),
        "dec_memory_lengths": rng.integers((Ts + 1) // 2, Ts + 1, size=Bd).astype(np.int32),
        "init_c": small((Bd, H), 1.0),
        "init_h": np.tanh(small((Bd, H), 1.0)),
    }
    m["tgt_in"] = np.concatenate([np.full((args.batch, 1), GO, np.int32), m["tgt"][:, :-1]], axis=1)
    m["out_bias"][EOS] = 0.0
    if args.eos_median > 0:
        beta = eos_bias_for_median(eos_margins(m, args.max_steps), args.eos_median)
        # the search ends just above a margin: rounding to float32 must not fall below it
        bias = np.float32(beta)
        m["out_bias"][EOS] = np.nextafter(bias, np.float32(np.inf)) if float(bias) < beta else bias
    else:
        m["out_bias"][EOS] = np.float32(-1e4)
    return m


# --------------------------------------------------------------------------------------
# rnnrs contenders (each: (warm-up call, timed call, check call returning arrays))
# --------------------------------------------------------------------------------------


def _rnnrs_parts(m: Dict[str, np.ndarray], memory: Optional[np.ndarray], lengths: Optional[np.ndarray]) -> Any:
    """rnnrs, the encoder cell, the mechanism, the attention decoder cell, the projection
    and the two embedding layers, with the model's weights."""
    import rnnrs
    from rnnrs import seq2seq

    H = m["enc_kernel"].shape[1] // 4
    enc = rnnrs.LSTMCell(H)
    enc.set_weights({"kernel": m["enc_kernel"], "bias": m["enc_bias"]})
    mechanism = seq2seq.BahdanauAttention(m["memory_kernel"].shape[1], memory, memory_sequence_length=lengths)
    cell = seq2seq.AttentionWrapper(
        rnnrs.LSTMCell(H), mechanism, attention_layer_size=m["attention_kernel"].shape[1], output_attention=True
    )
    cell.set_weights(
        {"kernel": m["dec_kernel"], "bias": m["dec_bias"], **{v: m[k] for k, v in ATTENTION_WEIGHTS.items()}}
    )
    dense = rnnrs.Dense(m["out_kernel"].shape[1])
    dense.set_weights({"kernel": m["out_kernel"], "bias": m["out_bias"]})

    def embedding(key: str) -> Any:
        e = rnnrs.Embedding(*m[key].shape)
        e.set_weights({"embeddings": m[key]})
        return e

    return rnnrs, enc, mechanism, cell, dense, embedding("emb_src"), embedding("emb_tgt")


def rnnrs_train(m: Dict[str, np.ndarray], threads: int, decoder_api: bool) -> Tuple[Call, Call, Call]:
    rnnrs, enc, mechanism, cell, dense, emb_src, emb_tgt = _rnnrs_parts(m, None, None)
    from rnnrs import seq2seq

    rnnrs.set_num_threads(threads)

    def step(src: np.ndarray, tgt_in: np.ndarray, tgt: np.ndarray) -> Dict[str, np.ndarray]:
        x_src, bp_src = emb_src(src, return_backprop=True)
        memory, enc_state, bp_enc = rnnrs.dynamic_rnn(enc, x_src, return_backprop=True)
        mechanism.setup_memory(memory)
        start = cell.zero_state(src.shape[0]).clone(cell_state=enc_state)
        x_tgt, bp_tgt = emb_tgt(tgt_in, return_backprop=True)
        if decoder_api:
            lengths = np.full(tgt.shape[0], tgt.shape[1], dtype=np.int32)
            helper = seq2seq.TrainingHelper(x_tgt, lengths)
            decoder = seq2seq.BasicDecoder(cell, helper, start, output_layer=dense)
            outputs, _, _, bp_dec = seq2seq.dynamic_decode(decoder, return_backprop=True)
            loss, d_logits = seq2seq.sequence_loss(outputs.rnn_output, tgt, np.ones(tgt.shape, np.float32))
            g_dec = bp_dec(d_rnn_output=d_logits)
            d_x_tgt, d_dec, d_out = g_dec.inputs, g_dec.weights, g_dec.output_layer
        else:
            y, _, bp_rnn = rnnrs.dynamic_rnn(cell, x_tgt, initial_state=start, return_backprop=True)
            logits, bp_dense = dense(y, return_backprop=True)
            loss, d_logits = rnnrs.sequence_loss(logits, tgt)
            g_dense = bp_dense(d_logits)
            g_dec = bp_rnn(d_outputs=g_dense.inputs)
            d_x_tgt, d_dec, d_out = g_dec.inputs, g_dec.weights, g_dense.weights
        g_enc = bp_enc(d_outputs=g_dec.memory, d_state=g_dec.initial_state.cell_state)
        return dict(
            loss=loss,
            emb_src=bp_src(g_enc.inputs).weights["embeddings"],
            emb_tgt=bp_tgt(d_x_tgt).weights["embeddings"],
            enc_kernel=g_enc.weights["kernel"],
            enc_bias=g_enc.weights["bias"],
            dec_kernel=d_dec["kernel"],
            dec_bias=d_dec["bias"],
            **{k: d_dec[v] for k, v in ATTENTION_WEIGHTS.items()},
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


def rnnrs_beam(
    m: Dict[str, np.ndarray], threads: int, max_steps: int, beam: int, penalty: float
) -> Tuple[Call, Call, Call]:
    rnnrs, _, _, cell, dense, _, _ = _rnnrs_parts(m, m["dec_memory"], m["dec_memory_lengths"])
    from rnnrs import seq2seq

    rnnrs.set_num_threads(threads)
    batch = m["init_c"].shape[0]
    state = cell.zero_state(batch).clone(cell_state=rnnrs.LSTMStateTuple(m["init_c"], m["init_h"]))
    start = np.full(batch, GO, dtype=np.int32)
    embedding = m["emb_tgt"]

    def run(steps: int) -> Any:
        decoder = seq2seq.BeamSearchDecoder(
            cell, embedding, start, EOS, state, beam, output_layer=dense, length_penalty_weight=penalty
        )
        return seq2seq.dynamic_decode(decoder, maximum_iterations=steps)

    def check() -> Dict[str, np.ndarray]:
        outputs, final_state, _ = run(max_steps)[:3]
        return {"ids": np.asarray(outputs.predicted_ids)[:, :, 0], "lengths": np.asarray(final_state.lengths)[:, 0]}

    return lambda: run(2), lambda: run(max_steps), check


# --------------------------------------------------------------------------------------
# torch contenders
# --------------------------------------------------------------------------------------


def _torch_parts(torch: Any, m: Dict[str, np.ndarray]) -> Any:
    """The model as torch modules: the two embeddings, the encoder ``nn.LSTM``, the decoder
    ``nn.LSTMCell``, the attention (``Attention``) and the projection ``nn.Linear``."""
    nn = torch.nn
    H = m["enc_kernel"].shape[1] // 4

    def lstm(prefix: str, kind: Any, suffix: str, **kwargs: Any) -> Any:
        kernel = m[prefix + "_kernel"]
        mod = kind(kernel.shape[0] - H, H, **kwargs)
        weights = to_torch_lstm(kernel, m[prefix + "_bias"])
        mod.load_state_dict({k + suffix: torch.from_numpy(v) for k, v in weights.items()})
        return mod

    def linear(kernel: np.ndarray, bias: Optional[np.ndarray]) -> Any:
        mod = nn.Linear(*kernel.shape, bias=bias is not None)
        mod.weight.data.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
        if bias is not None:
            mod.bias.data.copy_(torch.from_numpy(bias))
        return mod

    class Attention(nn.Module):  # type: ignore[misc]
        """Bahdanau attention with an attention layer (TF's ``output_attention=True``)."""

        def __init__(self) -> None:
            super().__init__()
            self.memory_layer = linear(m["memory_kernel"], None)
            self.query_layer = linear(m["query_kernel"], None)
            self.v = nn.Parameter(torch.from_numpy(m["attention_v"].copy()))
            self.attention_layer = linear(m["attention_kernel"], None)

        def forward(self, h: Any, keys: Any, memory: Any, mask: Optional[Any]) -> Any:
            score = torch.tanh(keys + self.query_layer(h).unsqueeze(1)) @ self.v  # [B, Tm]
            if mask is not None:
                score = score.masked_fill(~mask, float("-inf"))
            alignments = torch.softmax(score, dim=1)
            context = torch.bmm(alignments.unsqueeze(1), memory).squeeze(1)
            return self.attention_layer(torch.cat([h, context], dim=1))

    def embedding(key: str) -> Any:
        return nn.Embedding.from_pretrained(torch.from_numpy(m[key].copy()), freeze=False)

    return (
        embedding("emb_src"),
        embedding("emb_tgt"),
        lstm("enc", nn.LSTM, "_l0", batch_first=True),
        lstm("dec", nn.LSTMCell, ""),
        Attention(),
        linear(m["out_kernel"], m["out_bias"]),
    )


def torch_train(m: Dict[str, np.ndarray], threads: int) -> Tuple[Call, Call, Call]:
    torch = _torch_setup(threads)
    F = torch.nn.functional
    emb_src, emb_tgt, enc, dec, attention, linear = _torch_parts(torch, m)
    params = [p for mod in (emb_src, emb_tgt, enc, dec, attention, linear) for p in mod.parameters()]
    A = m["attention_kernel"].shape[1]

    def step(src: Any, tgt_in: Any, tgt: Any) -> Any:
        for p in params:
            p.grad = None
        memory, (h, c) = enc(emb_src(src))
        keys = attention.memory_layer(memory)
        h, c = h[0], c[0]
        att = torch.zeros(src.shape[0], A)
        x = emb_tgt(tgt_in)
        outputs = []
        for t in range(x.shape[1]):
            h, c = dec(torch.cat([x[:, t], att], dim=1), (h, c))
            att = attention(h, keys, memory, None)
            outputs.append(att)
        logits = linear(torch.stack(outputs, dim=1))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        loss.backward()
        return loss

    src, tgt_in, tgt = (torch.from_numpy(m[k].astype(np.int64)) for k in ("src", "tgt_in", "tgt"))

    def check() -> Dict[str, np.ndarray]:
        loss = step(src, tgt_in, tgt)

        def g(p: Any) -> np.ndarray:
            return p.grad.numpy()

        enc_k, enc_b = from_torch_lstm_grads(g(enc.weight_ih_l0), g(enc.weight_hh_l0), g(enc.bias_ih_l0))
        dec_k, dec_b = from_torch_lstm_grads(g(dec.weight_ih), g(dec.weight_hh), g(dec.bias_ih))
        return _grads(
            loss=loss.item(),
            emb_src=g(emb_src.weight),
            emb_tgt=g(emb_tgt.weight),
            enc_kernel=enc_k,
            enc_bias=enc_b,
            dec_kernel=dec_k,
            dec_bias=dec_b,
            memory_kernel=g(attention.memory_layer.weight).T,
            query_kernel=g(attention.query_layer.weight).T,
            attention_v=g(attention.v),
            attention_kernel=g(attention.attention_layer.weight).T,
            out_kernel=g(linear.weight).T,
            out_bias=g(linear.bias),
        )

    return (lambda: step(src[:, :2], tgt_in[:, :2], tgt[:, :2])), (lambda: step(src, tgt_in, tgt)), check


def torch_beam(
    m: Dict[str, np.ndarray], threads: int, max_steps: int, beam: int, penalty: float
) -> Tuple[Call, Call, Call]:
    torch = _torch_setup(threads)
    from seq2seq import torch_beam_search_steps

    _, emb, _, cell, attention, linear = _torch_parts(torch, m)
    memory = torch.from_numpy(m["dec_memory"])
    lengths = torch.from_numpy(m["dec_memory_lengths"].astype(np.int64))
    h0, c0 = torch.from_numpy(m["init_h"]), torch.from_numpy(m["init_c"])
    batch, A = h0.shape[0], m["attention_kernel"].shape[1]

    def run(steps: int) -> Any:
        with torch.no_grad():
            # per beam: row b * beam + k reads memory row b (TF's tile_batch order)
            mem = memory.repeat_interleave(beam, dim=0)
            mask = torch.arange(mem.shape[1]).unsqueeze(0) < lengths.repeat_interleave(beam).unsqueeze(1)
            keys = attention.memory_layer(mem)

            def step(ids: Any, state: Any) -> Any:
                h, c, att = state
                h, c = cell(torch.cat([emb(ids), att], dim=1), (h, c))
                att = attention(h, keys, mem, mask)
                return linear(att), (h, c, att)

            state = (h0.repeat_interleave(beam, dim=0), c0.repeat_interleave(beam, dim=0), torch.zeros(batch * beam, A))
            return torch_beam_search_steps(torch, step, state, batch, beam, steps, penalty)

    def check() -> Dict[str, np.ndarray]:
        ids, lengths_out = run(max_steps)
        return {"ids": ids[:, :, 0].numpy(), "lengths": lengths_out[:, 0].numpy()}

    return lambda: run(2), lambda: run(max_steps), check


def make_calls(
    case: str, contender: str, m: Dict[str, np.ndarray], args: argparse.Namespace
) -> Tuple[Call, Call, Call]:
    if case == "train":
        if contender == "torch":
            return torch_train(m, args.threads)
        return rnnrs_train(m, args.threads, decoder_api=contender == "rnnrs dynamic_decode")
    if contender == "torch":
        return torch_beam(m, args.threads, args.max_steps, args.beam, args.length_penalty)
    return rnnrs_beam(m, args.threads, args.max_steps, args.beam, args.length_penalty)


# --------------------------------------------------------------------------------------
# The parent (seq2seq.py's, with this script's children and sizes)
# --------------------------------------------------------------------------------------

SIZE_ARGS = (
    "batch",
    "source_time",
    "target_time",
    "vocab",
    "embed",
    "units",
    "attention_units",
    "attention_size",
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


def describe_size(case: str, args: argparse.Namespace) -> str:
    attention = f"U{args.attention_units} A{args.attention_size}"
    if case == "train":
        return (
            f"B{args.batch} Ts{args.source_time} Tt{args.target_time} V{args.vocab} E{args.embed} H{args.units} "
            + attention
        )
    return (
        f"B{args.decode_batch} Tm{args.source_time} max{args.max_steps} beam{args.beam} V{args.vocab} "
        f"E{args.embed} H{args.units} {attention}"
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cases", default=",".join(CASES), help="comma list of train, beam (default both)")
    p.add_argument("--contenders", default="all", help="comma list of contenders to run (default all)")
    p.add_argument("--threads", default="2,1", help="comma list of thread counts (default 2,1)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one call per contender (a smoke test)")
    p.add_argument("--batch", type=int, default=64, help="training batch (default 64)")
    p.add_argument("--source-time", type=int, default=30, help="source length = memory time (default 30)")
    p.add_argument("--target-time", type=int, default=30)
    p.add_argument("--vocab", type=int, default=5000, help="source and target vocabulary (default 5000)")
    p.add_argument("--embed", type=int, default=256, help="embedding width (default 256)")
    p.add_argument("--units", type=int, default=256, help="LSTM units (default 256)")
    p.add_argument("--attention-units", type=int, default=256, help="BahdanauAttention num_units (default 256)")
    p.add_argument("--attention-size", type=int, default=256, help="attention_layer_size (default 256)")
    p.add_argument("--decode-batch", type=int, default=256, help="sequences decoded at once (default 256)")
    p.add_argument("--max-steps", type=int, default=30, help="maximum_iterations of the decodes (default 30)")
    p.add_argument("--beam", type=int, default=5, help="beam width (default 5)")
    p.add_argument("--length-penalty", type=float, default=1.0, help="GNMT length_penalty_weight (default 1.0)")
    p.add_argument("--eos-median", type=int, default=20, help="median greedy length the EOS bias aims at; 0: no EOS")
    p.add_argument("--repeat", type=int, default=5, help="timed calls per child (default 5)")
    p.add_argument("--rounds", type=int, default=2, help="children per contender, order rotating (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    p.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    p.add_argument("--child", help=argparse.SUPPRESS)  # internal: "case:contender"
    p.add_argument("--model", help=argparse.SUPPRESS)  # internal: the shared weights (.npz)
    p.add_argument("--check-out", help=argparse.SUPPRESS)  # internal: where the child writes its arrays
    args = p.parse_args(argv)
    if args.quick:  # the tiny sizes replace the defaults; options given explicitly still count
        given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
        for name, value in QUICK.items():
            if "--" + name.replace("_", "-") not in given:
                setattr(args, name, value)
    sizes = ("batch", "source_time", "target_time", "embed", "units", "attention_units", "attention_size")
    return check_args(p, args, (*sizes, "decode_batch", "beam", "repeat", "rounds"))


def main(argv: Sequence[str] = ()) -> int:
    args = parse_args(argv)
    if args.child:
        case, contender = args.child.split(":", 1)
        print(RESULT_MARK + json.dumps(measure(case, contender, args, make_calls)), flush=True)
        return 0

    cases = csv_choice(args.cases, list(CASES), "case")
    everyone = sorted({c for cs in CASES.values() for c in cs})
    wanted = csv_choice(args.contenders, everyone, "contender")
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(
        f"attention, float32; threads {','.join(map(str, args.threads))}; {args.rounds} round(s) x {args.repeat} "
        f"call(s) per contender, one subprocess each; {os.cpu_count()} CPUs, load average {load}"
    )
    with tempfile.TemporaryDirectory(prefix="attention-bench-") as workdir:
        args.model = os.path.join(workdir, "model.npz")
        t0 = time.perf_counter()
        np.savez(args.model, **make_model(args))
        print(f"model and EOS bias made in {time.perf_counter() - t0:.1f} s", flush=True)
        rows, all_ok = run_groups(cases, CASES, wanted, args, workdir, child_command)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"\nload average at the end {load}")
    print(render(rows, args, args.markdown, describe_size))
    print("\n  x/rnnrs: the contender's median over rnnrs'; above 1: rnnrs is faster")
    print("  peak extra MiB: ru_maxrss high-water mark over the child's baseline (after imports, model and warm-up)")
    print("\nTargets:")
    print("\n".join(target_lines(rows, TARGETS)))
    if args.json:
        write_json(rows, args.json)
    if any(r.contender.startswith("rnnrs") and r.status == "not installed" for r in rows):
        print("rnnrs (or rnnrs.seq2seq) does not import: build it with `maturin develop --release`.", file=sys.stderr)
        return 2
    return 0 if all_ok and not any(r.status == "error" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
