#!/usr/bin/env python3
"""Side-by-side timing of rnnrs against a NumPy reference, PyTorch and ONNX Runtime.

    python benches/compare.py                 # default sizes, 2 threads everywhere
    python benches/compare.py --quick         # smoke test: a few repetitions only
    python benches/compare.py --sizes tiny,small --threads 1 --markdown
    python benches/compare.py --dtype f64 --json results.json

What is measured
----------------
For every cell kind x size x mode (forward / train) x batch layout (full / ragged) the
script builds one rnnrs cell with a fixed seed, copies its weights into every other
contender, checks that each contender computes the same outputs and final state (and,
in train mode, the same gradients) as rnnrs, and only then times them.

Cell kinds (``--cells``, default all):

* ``rnn``:  ``BasicRNNCell(H, activation="tanh")``  vs ``nn.RNN``  / ONNX ``RNN``
* ``lstm``: ``BasicLSTMCell(H)`` (forget_bias 1.0) vs ``nn.LSTM`` / ONNX ``LSTM``;
            the final state ``LSTMStateTuple(c, h)`` is compared in both parts
* ``gru``:  ``GRUCell(H, reset_after=True)``        vs ``nn.GRU``  / ONNX ``GRU``
            with ``linear_before_reset=1``

* forward: ``outputs, state = rnnrs.dynamic_rnn(cell, X, sequence_length=L)``
* train:   forward with ``return_backprop=True`` + ``backprop(d_outputs=dY)``, i.e. the
           gradients of ``loss = sum(outputs * dY)`` w.r.t. the inputs and all weights.

Batch layouts (``--layouts``): ``full``, every sequence T steps long, or ``ragged``, the
lengths drawn uniformly from the integers in [ceil(T/4), T] (``rng.integers(lo, T + 1)``,
seeded by the size only, so every cell kind and both modes get the same lengths).

Timing is interleaved: each repetition runs every contender once, in an order that
rotates from one repetition to the next, so machine noise hits all of them equally.
Warm-up calls come first; medians are reported.  The garbage collector is paused
while timing.  Peers (PyTorch, ONNX Runtime, the NumPy reference) are optional; a
missing one is reported as "not installed".

Before the cases the script measures the GEMM ceiling: the best GFLOP/s (median of
``--gemm-reps`` calls) of a large square product through ``numpy.matmul``, rnnrs' own
GEMM (``rnnrs._rnnrs.affine``, the kernels its hoisted and deferred products run on) and,
when installed, ``torch.matmul``, with the run's dtype and thread count.  (NumPy's
OpenBLAS may run AVX2 kernels on an AVX-512 machine: the best of the three is the
ceiling.)  It is printed with
the machine and stored in the JSON (``"ceiling"``).

Derived columns (rnnrs only; also in the JSON rows):

* ``rnnrs GFLOP/s``: the FLOPs of the cell's matrix products over the median time.
  Forward ``2 * tokens * (I + H) * G`` with G = H (rnn), 4H (lstm), 3H (gru) and
  tokens = B*T, or the sum of the lengths for a ragged batch (the work actually done);
  train counts 3x forward.  Elementwise work is not counted.
* ``% of ceiling``: that GFLOP/s over the GEMM ceiling.
* ``ragged ratio`` (ragged rows): ragged time / (sum(lengths) / (B*T) x full time) of
  the same cell, size and mode.  1.0: the time follows the real work; the target is <= 1.15.

Adding a cell kind means adding one ``CellKind`` entry to ``CELL_KINDS``: the rnnrs
cell factory, a NumPy-reference builder, the torch module class (its weights come from
``rnnrs.convert.to_torch``, its gradients are mapped back through the same layout) and
an ONNX node builder.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

# --------------------------------------------------------------------------------------
# Thread count must be fixed before NumPy (and its BLAS) is imported, so that the NumPy
# reference runs with the same number of threads as everybody else.
# --------------------------------------------------------------------------------------


BENCHES_DIR = os.path.dirname(os.path.abspath(__file__))
if BENCHES_DIR not in sys.path:  # report.py, next to this file
    sys.path.insert(0, BENCHES_DIR)
from report import csv_choice, pin_threads  # noqa: E402  (report imports nothing heavy)

_THREADS = pin_threads(sys.argv[1:])

import numpy as np  # noqa: E402

REPO = os.path.dirname(BENCHES_DIR)
TESTS_DIR = os.path.join(REPO, "tests")
from report import METRIC_HEADER, fmt_time, fmt_times, fmt_value, metric_cells, ratio, time_cell, write_json  # noqa: E402
from report import render_table as _render  # noqa: E402

# --------------------------------------------------------------------------------------
# Optional imports
# --------------------------------------------------------------------------------------


def _try_import(name: str):
    try:
        module = __import__(name)
        return module, None
    except Exception as exc:  # ImportError, or a broken install raising something else
        return None, f"{type(exc).__name__}: {exc}"


rnnrs, RNNRS_ERR = _try_import("rnnrs")
torch, TORCH_ERR = _try_import("torch")
ort, ORT_ERR = _try_import("onnxruntime")
onnx, ONNX_ERR = _try_import("onnx")

if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)
reference, REFERENCE_ERR = _try_import("reference")
reference_lstm, REFERENCE_LSTM_ERR = _try_import("reference_lstm")
reference_gru, REFERENCE_GRU_ERR = _try_import("reference_gru")

threadpoolctl, _ = _try_import("threadpoolctl")
_THREADPOOL_LIMIT = None
if threadpoolctl is not None:  # belt and braces: env vars may come too late for some BLAS
    try:
        _THREADPOOL_LIMIT = threadpoolctl.threadpool_limits(_THREADS)
    except Exception:
        pass

# --------------------------------------------------------------------------------------
# Problem sizes
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    name: str
    batch: int
    time: int
    inputs: int
    units: int

    def work(self) -> int:
        """Multiply-adds of one forward pass (B*T*(I+H)*H for the plain RNN cell)."""
        return self.batch * self.time * (self.inputs + self.units) * self.units

    def describe(self) -> str:
        return f"B{self.batch} T{self.time} I{self.inputs} H{self.units}"


SIZES: Dict[str, Size] = {
    s.name: s
    for s in (
        Size("tiny", 4, 2, 3, 5),
        Size("small", 32, 50, 32, 64),
        Size("medium", 64, 100, 128, 256),
        Size("large", 128, 200, 256, 512),  # not run by default
        # a small batch of a wide cell (one group of rows: its steps split by units); not run by default
        Size("narrow", 8, 200, 128, 512),
    )
}
DEFAULT_SIZES = ("tiny", "small", "medium")
REFERENCE_MAX_WORK = 50_000_000  # the NumPy reference is timed on tiny and small, not medium
MODES = ("forward", "train")
LAYOUTS = ("full", "ragged")
TINY_TARGET_US = 30.0
TRAIN_FLOPS_FACTOR = 3  # backward = two products (d inputs/state, d weights) per forward one

# --------------------------------------------------------------------------------------
# A benchmark case and what a contender builder returns
# --------------------------------------------------------------------------------------


@dataclass
class Case:
    kind: "CellKind"
    size: Size
    mode: str  # "forward" | "train"
    layout: str  # "full" | "ragged"
    dtype: Any  # np.float32 | np.float64
    threads: int
    seed: int
    x: np.ndarray  # [B, T, I]
    lengths: Optional[np.ndarray]  # [B] int64, None for "full"
    d_outputs: np.ndarray  # [B, T, H], fixed random cotangent
    weights: Dict[str, np.ndarray]  # the rnnrs cell's weights (TF names/layouts)
    rnnrs_cell: Any

    @property
    def label(self) -> str:
        return f"{self.kind.key}/{self.size.name}/{self.mode}/{self.layout}"

    @property
    def tokens(self) -> int:
        """The (batch row, time step) pairs actually computed: B*T, or the sum of the lengths."""
        if self.lengths is None:
            return self.size.batch * self.size.time
        return int(self.lengths.sum())

    def flops(self) -> float:
        """FLOPs of the cell's matrix products in one timed call: ``2 * tokens * (I + H) * G``
        forward (G = gates * H), ``TRAIN_FLOPS_FACTOR`` times that in train mode.  The
        elementwise work is not counted."""
        fwd = 2.0 * self.tokens * (self.size.inputs + self.size.units) * self.kind.gates * self.size.units
        return fwd * (TRAIN_FLOPS_FACTOR if self.mode == "train" else 1)


@dataclass
class Result:
    """What a contender computes once, for the correctness check.

    ``state``: the final state as named parts, ``{"h": h}`` for an array state and
    ``{"c": c, "h": h}`` for an LSTM (see ``_state_parts``); every part rnnrs reports
    must be reported.  ``grads`` keys: "inputs" (required in train mode) plus the TF
    weight names and "initial_state" (LSTM: "initial_state.c", "initial_state.h"); a
    contender may omit weights or initial-state gradients it cannot provide (torch
    has no initial-state gradient unless asked, etc.)."""

    outputs: np.ndarray
    state: Dict[str, np.ndarray]
    grads: Optional[Dict[str, np.ndarray]] = None


@dataclass
class Prepared:
    run: Callable[[], Any]  # the timed operation
    result: Callable[[], Result]  # outputs (+ grads in train mode) for the check
    note: str = ""


class Unavailable(Exception):
    """The contender cannot run this case (not installed, unsupported dtype, forward-only ...)."""


@dataclass
class CellKind:
    key: str
    title: str
    gates: int  # G / H, G = the width of the cell's products [I+H] x [G]: rnn 1, lstm 4, gru 3
    make_rnnrs_cell: Callable[[int, Any, int], Any]
    rnnrs: Callable[[Case], Prepared]
    reference: Callable[[Case], Prepared]
    torch: Callable[[Case], Prepared]
    onnxruntime: Callable[[Case], Prepared]


# --------------------------------------------------------------------------------------
# rnnrs (generic over cell kinds: only the cell factory differs)
# --------------------------------------------------------------------------------------


def _state_parts(state: Any) -> Dict[str, np.ndarray]:
    """A state (or a state's gradient) as named arrays: ``{"h": h}`` for an array,
    ``{"c": c, "h": h}`` for an ``LSTMStateTuple`` or a ``(c, h)`` pair."""
    if state is None:
        return {}
    if isinstance(state, dict):
        return {k: np.asarray(v) for k, v in state.items()}
    if hasattr(state, "c") and hasattr(state, "h"):
        return {"c": np.asarray(state.c), "h": np.asarray(state.h)}
    if isinstance(state, (tuple, list)) and len(state) == 2:
        return {"c": np.asarray(state[0]), "h": np.asarray(state[1])}
    return {"h": np.asarray(state)}


def _state_grads(prefix: str, parts: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """``{"h": a}`` -> ``{prefix: a}``; ``{"c": a, "h": b}`` -> ``{prefix.c: a, prefix.h: b}``."""
    if list(parts) == ["h"]:
        return {prefix: parts["h"]}
    return {f"{prefix}.{k}": v for k, v in parts.items()}


def _grads_to_dict(g: Any) -> Dict[str, np.ndarray]:
    out = {"inputs": np.asarray(g.inputs)}
    out.update(_state_grads("initial_state", _state_parts(getattr(g, "initial_state", None))))
    for k, v in g.weights.items():
        out[k] = np.asarray(v)
    return out


def rnnrs_prepare(case: Case) -> Prepared:
    cell, x, L, dy = case.rnnrs_cell, case.x, case.lengths, case.d_outputs
    dynamic_rnn = rnnrs.dynamic_rnn
    if case.mode == "forward":

        def run():
            return dynamic_rnn(cell, x, sequence_length=L)

        def result():
            out, state = dynamic_rnn(cell, x, sequence_length=L)
            return Result(np.asarray(out), _state_parts(state))
    else:

        def run():
            _, _, backprop = dynamic_rnn(cell, x, sequence_length=L, return_backprop=True)
            return backprop(d_outputs=dy, d_state=None)

        def result():
            out, state, backprop = dynamic_rnn(cell, x, sequence_length=L, return_backprop=True)
            return Result(np.asarray(out), _state_parts(state), _grads_to_dict(backprop(d_outputs=dy, d_state=None)))

    return Prepared(run, result)


# --------------------------------------------------------------------------------------
# NumPy references, PyTorch, ONNX Runtime (the per-kind builders)
# --------------------------------------------------------------------------------------


def _call_reference_backward(cache, dy) -> Dict[str, np.ndarray]:
    g = reference.rnn_backward(cache, dy, None)
    names = ("inputs", "initial_state", "kernel", "bias")
    if isinstance(g, dict):
        alias = {
            "inputs": ("inputs", "d_inputs", "dx", "d_x", "x"),
            "initial_state": ("initial_state", "d_initial_state", "dh0", "d_h0", "h0"),
            "kernel": ("kernel", "d_kernel", "dkernel", "dK"),
            "bias": ("bias", "d_bias", "dbias", "db"),
        }
        out = {}
        for k, options in alias.items():
            for o in options:
                if o in g:
                    out[k] = np.asarray(g[o])
                    break
        if "weights" in g and isinstance(g["weights"], dict):
            out.update({k: np.asarray(v) for k, v in g["weights"].items()})
        return out
    if hasattr(g, "inputs"):
        out = {"inputs": np.asarray(g.inputs)}
        if hasattr(g, "initial_state"):
            out["initial_state"] = np.asarray(g.initial_state)
        out.update({k: np.asarray(v) for k, v in getattr(g, "weights", {}).items()})
        return out
    return {k: np.asarray(v) for k, v in zip(names, g)}


def rnn_reference(case: Case) -> Prepared:
    if reference is None:
        raise Unavailable(f"tests/reference.py not importable ({REFERENCE_ERR})")
    forward, backward = getattr(reference, "rnn_forward", None), getattr(reference, "rnn_backward", None)
    if forward is None or backward is None:
        raise Unavailable("tests/reference.py has no rnn_forward/rnn_backward")
    B, H = case.size.batch, case.size.units
    x, L, dy = case.x, case.lengths, case.d_outputs
    kernel, bias = case.weights["kernel"], case.weights["bias"]
    h0 = np.zeros((B, H), case.dtype)

    def fwd():
        return forward(x, h0, kernel, bias, "tanh", lengths=L)

    if case.mode == "forward":
        run = fwd
    else:

        def run():
            _, _, cache = fwd()
            return backward(cache, dy, None)

    def result():
        out, state, cache = fwd()
        grads = _call_reference_backward(cache, dy) if case.mode == "train" else None
        return Result(np.asarray(out), _state_parts(state), grads)

    return Prepared(run, result)


def _reference_prepare(
    case: Case, fwd: Callable[[], Tuple[Any, Any, Any]], bwd: Callable[[Any], Dict[str, np.ndarray]]
) -> Prepared:
    """Shared by the LSTM and GRU references: ``fwd()`` -> (outputs, state, cache),
    ``bwd(cache)`` -> gradients keyed like rnnrs'."""
    if case.mode == "forward":
        run = fwd
    else:

        def run():
            return bwd(fwd()[2])

    def result():
        out, state, cache = fwd()
        grads = bwd(cache) if case.mode == "train" else None
        return Result(np.asarray(out), _state_parts(state), grads)

    return Prepared(run, result)


def lstm_reference(case: Case) -> Prepared:
    if reference_lstm is None:
        raise Unavailable(f"tests/reference_lstm.py not importable ({REFERENCE_LSTM_ERR})")
    B, H = case.size.batch, case.size.units
    x, L, dy = case.x, case.lengths, case.d_outputs
    cell = case.rnnrs_cell
    zeros = np.zeros((B, H), case.dtype)

    def fwd():
        return reference_lstm.lstm_forward(
            x, zeros, zeros, case.weights, lengths=L, forget_bias=cell.forget_bias, activation=cell.activation
        )

    def bwd(cache):
        d_x, d_c0, d_h0, d_w = reference_lstm.lstm_backward(cache, dy)
        return {"inputs": d_x, "initial_state.c": d_c0, "initial_state.h": d_h0, **d_w}

    return _reference_prepare(case, fwd, bwd)


def gru_reference(case: Case) -> Prepared:
    if reference_gru is None:
        raise Unavailable(f"tests/reference_gru.py not importable ({REFERENCE_GRU_ERR})")
    B, H = case.size.batch, case.size.units
    x, L, dy = case.x, case.lengths, case.d_outputs
    cell = case.rnnrs_cell
    h0 = np.zeros((B, H), case.dtype)

    def fwd():
        return reference_gru.gru_forward(x, h0, case.weights, cell.activation, cell.reset_after, lengths=L)

    def bwd(cache):
        d_x, d_h0, d_w = reference_gru.gru_backward(cache, dy)
        return {"inputs": d_x, "initial_state": d_h0, **d_w}

    return _reference_prepare(case, fwd, bwd)


def _torch_dtype(dtype):
    return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32


def _torch_grad_map(case: Case) -> Callable[[Dict[str, np.ndarray]], Dict[str, np.ndarray]]:
    """Maps torch parameter gradients (``weight_ih_l0`` ...) back to the TF weight names.

    ``rnnrs.convert.to_torch`` is affine in the TF weights, each torch entry being a
    copy of one TF entry or a constant (a zero ``bias_hh`` part, the folded forget_bias).
    So the gradient w.r.t. a TF entry is the sum of the torch gradients of the entries
    it was copied to.  Which ones is read off ``to_torch`` itself: a float64 probe cell
    of the same kind gets the codes 1..N as weights, and ``to_torch(codes) - to_torch(0)``
    says which TF entry (0: none) every torch entry holds.  The weights the peer runs
    with and the gradient map therefore come from the same layout."""
    I, H = case.size.inputs, case.size.units
    probe = case.kind.make_rnnrs_cell(H, np.float64, case.seed)
    probe.build(I)
    shapes = {k: np.shape(v) for k, v in probe.get_weights().items()}
    codes, n = {}, 0
    for k, shape in shapes.items():
        size = int(np.prod(shape, dtype=np.int64))
        codes[k] = np.arange(n + 1, n + size + 1, dtype=np.float64).reshape(shape)
        n += size
    probe.set_weights({k: np.zeros(shape) for k, shape in shapes.items()})
    offset = rnnrs.convert.to_torch(probe)
    probe.set_weights(codes)
    coded = rnnrs.convert.to_torch(probe)
    index: Dict[str, np.ndarray] = {}
    seen = np.zeros(n + 1, np.int64)
    for name, arr in coded.items():
        diff = np.asarray(arr, np.float64) - np.asarray(offset[name], np.float64)
        idx = np.rint(diff).astype(np.int64)
        if np.any(idx != diff) or np.any(idx < 0) or np.any(idx > n):
            raise RuntimeError(f"to_torch's {name} is not a copy of TF weight entries")
        index[name] = idx
        np.add.at(seen, idx.ravel(), 1)
    if np.any(seen[1:] == 0):
        raise RuntimeError("to_torch drops some TF weight entries; cannot map gradients back")
    gather = {k: c.astype(np.int64) for k, c in codes.items()}

    def to_tf(torch_grads: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        flat = np.zeros(n + 1, np.float64)
        for name, idx in index.items():
            if name not in torch_grads:
                raise RuntimeError(f"torch reported no gradient for {name}")
            g = np.asarray(torch_grads[name], np.float64)
            keep = idx > 0
            np.add.at(flat, idx[keep], g[keep])
        return {k: flat[g].astype(case.dtype) for k, g in gather.items()}

    return to_tf


def _torch_peer(module_class: str):
    """The torch builder of a cell kind: ``torch.nn.<module_class>`` loaded with
    ``rnnrs.convert.to_torch(cell)``; gradients mapped back by ``_torch_grad_map``."""

    def build(case: Case) -> Prepared:
        if torch is None:
            raise Unavailable("not installed")
        I, H = case.size.inputs, case.size.units
        state_dict = rnnrs.convert.to_torch(case.rnnrs_cell)
        module = getattr(torch.nn, module_class)(I, H, num_layers=1, bias=True, batch_first=True)
        module = module.to(_torch_dtype(case.dtype))
        module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state_dict.items()})
        to_tf = _torch_grad_map(case) if case.mode == "train" else None

        def to_tf_grads(x_grad) -> Dict[str, np.ndarray]:
            grads = to_tf({name: p.grad.numpy() for name, p in module.named_parameters()})
            grads["inputs"] = x_grad.numpy().copy()
            return grads

        return _torch_prepare(case, module, to_tf_grads)

    return build


def _torch_state(state) -> Dict[str, np.ndarray]:
    """torch's final state (``h_n`` [1, B, H], or ``(h_n, c_n)`` for nn.LSTM) as named parts."""
    if isinstance(state, tuple):
        h_n, c_n = state
        return {"c": c_n[0].detach().numpy().copy(), "h": h_n[0].detach().numpy().copy()}
    return {"h": state[0].detach().numpy().copy()}


def _torch_prepare(case: Case, module, to_tf_grads) -> Prepared:
    """Shared by all torch cell kinds: forward / train, full / ragged (packed)."""
    T = case.size.time
    x_t = torch.from_numpy(case.x)
    dy_t = torch.from_numpy(case.d_outputs)
    pack = torch.nn.utils.rnn.pack_padded_sequence
    unpack = torch.nn.utils.rnn.pad_packed_sequence
    lengths_t = None if case.lengths is None else torch.from_numpy(case.lengths.astype(np.int64))

    def fwd(x):
        if lengths_t is None:
            return module(x)
        packed = pack(x, lengths_t, batch_first=True, enforce_sorted=False)
        out, state = module(packed)
        out, _ = unpack(out, batch_first=True, total_length=T)
        return out, state

    if case.mode == "forward":

        def run():
            with torch.no_grad():
                return fwd(x_t)

        def result():
            with torch.no_grad():
                out, state = fwd(x_t)
            return Result(out.numpy().copy(), _torch_state(state))
    else:
        x_leaf = x_t.clone().requires_grad_(True)

        def run():
            x_leaf.grad = None
            module.zero_grad(set_to_none=True)
            out, _ = fwd(x_leaf)
            # same gradients as (out * dY).sum().backward(), minus two elementwise ops
            out.backward(dy_t)

        def result():
            x_leaf.grad = None
            module.zero_grad(set_to_none=True)
            out, state = fwd(x_leaf)
            out.backward(dy_t)
            return Result(out.detach().numpy().copy(), _torch_state(state), to_tf_grads(x_leaf.grad))

    return Prepared(run, result)


def _onnx_session(
    case: Case, rnn_node_builder, cell_state: bool = False
) -> Tuple[Any, Dict[str, np.ndarray], List[str]]:
    """Wrap one ONNX recurrent node: X [B,T,I] -> Transpose -> node -> Y [T,1,B,H] -> [B,T,H].

    ONNX Runtime's CPU kernels reject layout=1 (batch-major), so the graph transposes
    in and out; the contender's interface is the same batch-major one as rnnrs'.
    Outputs: Y, H_n (and C_n, the LSTM's final cell state, when ``cell_state``)."""
    if ort is None:
        raise Unavailable("not installed" if ONNX_ERR is None else "onnxruntime not installed")
    if onnx is None:
        raise Unavailable("onnx not installed (needed to build the graph)")
    if case.mode != "forward":
        raise Unavailable("forward only")
    from onnx import TensorProto, helper, numpy_helper

    B, T, I = case.x.shape
    H = case.size.units
    elem = TensorProto.DOUBLE if np.dtype(case.dtype) == np.float64 else TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("X", elem, [B, T, I])]
    nodes = [helper.make_node("Transpose", ["X"], ["X_tbi"], perm=[1, 0, 2])]
    feeds = {"X": case.x}
    seq_name = ""
    if case.lengths is not None:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [B]))
        feeds["sequence_lens"] = case.lengths.astype(np.int32)
        seq_name = "sequence_lens"
    node_outputs = ["Y_t1bh", "Y_h"] + (["Y_c"] if cell_state else [])
    node, initializers = rnn_node_builder(case, "X_tbi", seq_name, node_outputs)
    nodes.append(node)
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes1")
    axes0 = numpy_helper.from_array(np.array([0], np.int64), "axes0")
    nodes += [
        helper.make_node("Squeeze", ["Y_t1bh", "axes1"], ["Y_tbh"]),
        helper.make_node("Transpose", ["Y_tbh"], ["Y"], perm=[1, 0, 2]),
        helper.make_node("Squeeze", ["Y_h", "axes0"], ["H_n"]),
    ]
    outputs = [helper.make_tensor_value_info("Y", elem, [B, T, H]), helper.make_tensor_value_info("H_n", elem, [B, H])]
    if cell_state:
        nodes.append(helper.make_node("Squeeze", ["Y_c", "axes0"], ["C_n"]))
        outputs.append(helper.make_tensor_value_info("C_n", elem, [B, H]))
    graph = helper.make_graph(
        nodes, f"{case.kind.key}_bench", inputs, outputs, initializer=initializers + [axes, axes0]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)  # accepted by every recent onnxruntime
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = case.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 4  # the check below reports failures itself
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if np.dtype(case.dtype) == np.float64:
            raise Unavailable("no float64 kernel") from exc
        raise Unavailable(f"session creation failed: {msg[:120]}") from exc
    out_names = [o.name for o in outputs]
    if np.dtype(case.dtype) == np.float64:
        # ORT registers its LSTM / GRU kernels for double but throws when they run
        # ("LSTM operator does not support double yet"): a missing kernel, not a mismatch.
        try:
            sess.run(out_names, feeds)
        except Exception as exc:
            raise Unavailable("no float64 kernel") from exc
    return sess, feeds, out_names


def rnn_onnxruntime(case: Case) -> Prepared:
    def node_builder(case, x_name, seq_name, node_outputs):
        from onnx import helper, numpy_helper

        I, H = case.size.inputs, case.size.units
        k, b = case.weights["kernel"], case.weights["bias"]
        W = np.ascontiguousarray(k[:I].T)[None]  # [1, H, I]
        R = np.ascontiguousarray(k[I:].T)[None]  # [1, H, H]
        Bias = np.concatenate([b, np.zeros_like(b)])[None]  # [1, 2H]: Wb then Rb
        inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"), numpy_helper.from_array(Bias, "B")]
        node = helper.make_node(
            "RNN",
            [x_name, "W", "R", "B", seq_name],
            node_outputs,
            hidden_size=H,
            activations=["Tanh"],
            direction="forward",
        )
        return node, inits

    return _onnx_prepare(case, node_builder)


def _blocks(a: np.ndarray, order: Sequence[int], width: int) -> np.ndarray:
    """The width-``width`` column blocks of ``a`` in the given order."""
    return np.concatenate([a[..., k * width : (k + 1) * width] for k in order], axis=-1)


# TF1 LSTM column blocks are i, j, f, o; ONNX's gate order is i, o, f, c (c = TF's j).
_ONNX_LSTM_ORDER = (0, 3, 2, 1)


def lstm_onnxruntime(case: Case) -> Prepared:
    """ONNX ``LSTM``, built from the TF weights directly (not via ``to_torch``, so that
    this peer also cross-checks the torch conversion)."""

    def node_builder(case, x_name, seq_name, node_outputs):
        from onnx import helper, numpy_helper

        I, H = case.size.inputs, case.size.units
        k = _blocks(case.weights["kernel"], _ONNX_LSTM_ORDER, H)  # [I+H, 4H], blocks i, o, f, c
        wb = _blocks(case.weights["bias"], _ONNX_LSTM_ORDER, H).copy()
        wb[2 * H : 3 * H] += wb.dtype.type(case.rnnrs_cell.forget_bias)  # f is the third ONNX block
        W = np.ascontiguousarray(k[:I].T)[None]  # [1, 4H, I]
        R = np.ascontiguousarray(k[I:].T)[None]  # [1, 4H, H]
        Bias = np.concatenate([wb, np.zeros_like(wb)])[None]  # [1, 8H]: Wb then Rb
        inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"), numpy_helper.from_array(Bias, "B")]
        node = helper.make_node(
            "LSTM", [x_name, "W", "R", "B", seq_name], node_outputs, hidden_size=H, direction="forward"
        )
        return node, inits

    return _onnx_prepare(case, node_builder, cell_state=True)


def gru_onnxruntime(case: Case) -> Prepared:
    """ONNX ``GRU`` with ``linear_before_reset=1`` (= rnnrs' reset_after=True)."""

    def node_builder(case, x_name, seq_name, node_outputs):
        from onnx import helper, numpy_helper

        I, H = case.size.inputs, case.size.units
        w = case.weights
        gk, gb = w["gates/kernel"], w["gates/bias"]  # columns r | u; ONNX wants z(=u), r, h
        W = np.concatenate([gk[:I, H:], gk[:I, :H], w["candidate/input_kernel"]], axis=1).T  # [3H, I]
        R = np.concatenate([gk[I:, H:], gk[I:, :H], w["candidate/hidden_kernel"]], axis=1).T  # [3H, H]
        wb = np.concatenate([gb[H:], gb[:H], w["candidate/input_bias"]])
        rb = np.concatenate([np.zeros_like(gb), w["candidate/hidden_bias"]])
        Bias = np.concatenate([wb, rb])[None]  # [1, 6H]: Wb then Rb
        inits = [
            numpy_helper.from_array(np.ascontiguousarray(W)[None], "W"),
            numpy_helper.from_array(np.ascontiguousarray(R)[None], "R"),
            numpy_helper.from_array(Bias, "B"),
        ]
        node = helper.make_node(
            "GRU",
            [x_name, "W", "R", "B", seq_name],
            node_outputs,
            hidden_size=H,
            direction="forward",
            linear_before_reset=1,
        )
        return node, inits

    return _onnx_prepare(case, node_builder)


def _onnx_prepare(case: Case, node_builder, cell_state: bool = False) -> Prepared:
    sess, feeds, out_names = _onnx_session(case, node_builder, cell_state)

    def run():
        return sess.run(out_names, feeds)

    def result():
        got = dict(zip(out_names, sess.run(out_names, feeds)))
        state = {"h": got["H_n"]}
        if "C_n" in got:
            state["c"] = got["C_n"]
        return Result(got["Y"], state)

    return Prepared(run, result)


# --------------------------------------------------------------------------------------
# The table of cell kinds.
# --------------------------------------------------------------------------------------

CELL_KINDS: Dict[str, CellKind] = {
    "rnn": CellKind(
        key="rnn",
        title="BasicRNNCell(tanh)",
        gates=1,
        make_rnnrs_cell=lambda units, dtype, seed: rnnrs.BasicRNNCell(units, activation="tanh", dtype=dtype, seed=seed),
        rnnrs=rnnrs_prepare,
        reference=rnn_reference,
        torch=_torch_peer("RNN"),  # nonlinearity defaults to tanh
        onnxruntime=rnn_onnxruntime,
    ),
    "lstm": CellKind(
        key="lstm",
        title="BasicLSTMCell(forget_bias=1)",
        gates=4,
        make_rnnrs_cell=lambda units, dtype, seed: rnnrs.BasicLSTMCell(units, forget_bias=1.0, dtype=dtype, seed=seed),
        rnnrs=rnnrs_prepare,
        reference=lstm_reference,
        torch=_torch_peer("LSTM"),
        onnxruntime=lstm_onnxruntime,
    ),
    "gru": CellKind(
        key="gru",
        title="GRUCell(reset_after=True)",
        gates=3,
        make_rnnrs_cell=lambda units, dtype, seed: rnnrs.GRUCell(units, reset_after=True, dtype=dtype, seed=seed),
        rnnrs=rnnrs_prepare,
        reference=gru_reference,
        torch=_torch_peer("GRU"),
        onnxruntime=gru_onnxruntime,
    ),
}

CONTENDERS = ("rnnrs", "reference", "torch", "onnxruntime")
SHORT = {"rnnrs": "rnnrs", "reference": "numpy-ref", "torch": "torch", "onnxruntime": "ort"}

# --------------------------------------------------------------------------------------
# Correctness checks
# --------------------------------------------------------------------------------------


def _tolerances(dtype) -> Tuple[float, float]:
    """(forward tol, gradient tol).  Gradient tolerance is relative to the largest entry."""
    if np.dtype(dtype) == np.float64:
        return 1e-9, 1e-9
    return 1e-4, 1e-3


def _compare(name: str, got: np.ndarray, want: np.ndarray, tol: float, scaled: bool) -> Optional[str]:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f"{name}: shape {got.shape} != rnnrs {want.shape}"
    if got.size == 0:
        return None
    scale = max(1.0, float(np.max(np.abs(want)))) if scaled else 1.0
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bad = ~(diff <= tol * scale + tol * np.abs(want))
    if np.any(bad):
        idx = np.unravel_index(int(np.nanargmax(np.where(bad, diff, -1))), diff.shape)
        return (
            f"{name}: max|diff|={float(np.nanmax(diff)):.3g} "
            f"(tol {tol:g}{' x ' + format(scale, '.3g') if scaled else ''}), "
            f"{int(bad.sum())}/{bad.size} entries off; worst at {tuple(int(i) for i in idx)}: "
            f"got {float(got[idx]):.7g}, rnnrs {float(want[idx]):.7g}"
        )
    return None


def check(case: Case, name: str, got: Result, want: Result) -> Tuple[List[str], str]:
    """Compare a contender's Result with rnnrs'.  Returns (problems, summary of max errors)."""
    ftol, gtol = _tolerances(case.dtype)
    problems, errs = [], []
    want_state, got_state = want.state or {}, got.state or {}
    pairs = [("outputs", got.outputs, want.outputs)]
    for part in want_state:  # every part of rnnrs' final state (LSTM: c and h) must be there
        what = "state" if list(want_state) == ["h"] else f"state.{part}"
        if part not in got_state:
            problems.append(f"{what}: not reported")
            continue
        pairs.append((what, got_state[part], want_state[part]))
    for what, g, w in pairs:
        p = _compare(what, g, w, ftol, scaled=False)
        if p:
            problems.append(p)
        if np.shape(g) == np.shape(w):
            errs.append(f"{what} {_maxerr(g, w):.1e}")
    if case.mode == "train" and want.grads is not None:
        if got.grads is None or "inputs" not in got.grads:
            problems.append("dinputs: not reported")
        for key in want.grads if got.grads is not None else ():
            if key in got.grads:
                p = _compare(f"d{key}", got.grads[key], want.grads[key], gtol, scaled=True)
                if p:
                    problems.append(p)
                if np.shape(got.grads[key]) == np.shape(want.grads[key]):
                    errs.append(f"d{key} {_maxerr(got.grads[key], want.grads[key]):.1e}")
    return problems, ", ".join(errs)


def _maxerr(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------


@dataclass
class Timing:
    samples_ns: List[int] = field(default_factory=list)

    def median_s(self) -> float:
        return float(np.median(self.samples_ns)) * 1e-9

    def quantile_s(self, q: float) -> float:
        return float(np.quantile(self.samples_ns, q)) * 1e-9

    def min_s(self) -> float:
        return min(self.samples_ns) * 1e-9


def time_interleaved(
    runs: Dict[str, Callable[[], Any]],
    warmup: int,
    repeat: Optional[int],
    budget_s: float,
    min_reps: int,
    max_reps: int,
    settle_s: float = 0.0,
    warm_s: float = 0.0,
) -> Dict[str, Timing]:
    """Warm up every contender, then run rounds of one call each (rotating the order)
    until ``repeat`` rounds, or until ``budget_s`` of wall time and ``min_reps`` rounds.

    Before each timed call the process sleeps ``settle_s``, then calls the same
    contender untimed for ``warm_s`` seconds (at least once): thread pools that spin
    after their work (PyTorch's OpenMP workers keep spinning for a while) would
    otherwise steal the cores from whichever contender runs next, and the untimed
    calls bring the cores back up from the idle -- on the shared VM a call right
    after a 20 ms sleep ran up to 2x slower for the next few milliseconds, whoever
    made it, which weighed most on short calls."""
    names = list(runs)
    timings = {n: Timing() for n in names}
    if not names:
        return timings
    for n in names:
        for _ in range(warmup):
            runs[n]()
    clock = time.perf_counter_ns
    deadline = clock() + int(budget_s * 1e9)
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        rep = 0
        while True:
            if repeat is not None:
                if rep >= repeat:
                    break
            elif rep >= max_reps or (rep >= min_reps and clock() >= deadline):
                break
            shift = rep % len(names)
            for n in names[shift:] + names[:shift]:
                fn = runs[n]
                if settle_s > 0:
                    time.sleep(settle_s)
                    warm_until = clock() + int(warm_s * 1e9)
                    fn()  # untimed: absorbs the wake-up from the idle, warms this contender's caches
                    while clock() < warm_until:
                        fn()
                t0 = clock()
                fn()
                timings[n].samples_ns.append(clock() - t0)
            rep += 1
    finally:
        if gc_was_enabled:
            gc.enable()
    return timings


# --------------------------------------------------------------------------------------
# GEMM ceiling: the machine's large-matrix-product throughput, measured in the same run
# --------------------------------------------------------------------------------------

GEMM_SIZES = (1024, 2048, 4096)
GEMM_MIN_S = 0.010  # a square size is large enough once one product takes this long


@dataclass
class Ceiling:
    """Large-GEMM throughput at the run's thread count and dtype.

    ``backends[name] = (GFLOP/s, n)``: the best over the square sizes tried of
    ``2 n^3 / median time`` of ``name(a, b)`` with ``a``, ``b`` of shape ``[n, n]``.
    The ceiling is the best backend; a backend that raised is in ``errors``."""

    dtype: str
    threads: int
    reps: int
    backends: Dict[str, Tuple[float, int]]
    errors: Dict[str, str] = field(default_factory=dict)

    @property
    def gflops(self) -> Optional[float]:
        return max((g for g, _ in self.backends.values()), default=None)

    def describe(self) -> str:
        parts = [f"{name} {g:.1f} at n={n}" for name, (g, n) in self.backends.items()]
        parts += [f"{name} failed ({e})" for name, e in self.errors.items()]
        return (
            f"{fmt_value(self.gflops, '.1f')} GFLOP/s ({self.dtype}, {self.threads} thread(s); "
            f"{', '.join(parts)}; medians of {self.reps})"
        )

    def to_json(self) -> Dict[str, Any]:
        return {
            "gflops": self.gflops,
            "dtype": self.dtype,
            "threads": self.threads,
            "reps": self.reps,
            "backends": {k: {"gflops": g, "n": n} for k, (g, n) in self.backends.items()},
            "errors": self.errors,
        }


def _gemm_backends() -> Dict[str, Callable[[np.ndarray, np.ndarray], Callable[[], Any]]]:
    """name -> (a, b) -> a call computing ``a @ b`` with that library (torch when installed)."""
    backends: Dict[str, Callable[[np.ndarray, np.ndarray], Callable[[], Any]]] = {
        "numpy.matmul": lambda a, b: lambda: np.matmul(a, b)
    }
    if rnnrs is not None:  # the GEMM the extension runs its big products on (the gemm crate's kernels)
        backends["rnnrs.affine"] = lambda a, b: lambda: rnnrs._rnnrs.affine(a, b)
    if torch is not None:

        def torch_matmul(a: np.ndarray, b: np.ndarray) -> Callable[[], Any]:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            return lambda: torch.matmul(ta, tb)

        backends["torch.matmul"] = torch_matmul
    return backends


def gemm_ceiling(dtype: Any, threads: int, reps: int) -> Ceiling:
    """Time square products through every backend, from the smallest of ``GEMM_SIZES``
    up to the first whose median call takes ``GEMM_MIN_S`` (smaller products stay below
    the throughput plateau; larger ones only cost time).  Call it after the thread
    counts are set, so that it measures the threads the cases get."""
    rng = np.random.default_rng(0)
    operands: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}
    ceiling = Ceiling(np.dtype(dtype).name.replace("float", "f"), threads, reps, {})
    for name, make in _gemm_backends().items():
        try:
            for n in GEMM_SIZES:
                if n not in operands:
                    operands[n] = (rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype))
                t = time_interleaved(
                    {name: make(*operands[n])}, warmup=1, repeat=reps, budget_s=0.0, min_reps=reps, max_reps=reps
                )[name].median_s()
                if 2 * n**3 / t / 1e9 > ceiling.backends.get(name, (0.0, 0))[0]:
                    ceiling.backends[name] = (2 * n**3 / t / 1e9, n)
                if t >= GEMM_MIN_S:
                    break
        except Exception as exc:  # a broken peer must not kill the run
            ceiling.errors[name] = f"{type(exc).__name__}: {exc}"
    return ceiling


# --------------------------------------------------------------------------------------
# Machine description
# --------------------------------------------------------------------------------------


def _cpu_info() -> Tuple[str, Optional[int], str]:
    model, physical, flags = platform.processor() or "unknown", None, ""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        cores = set()
        phys_id = core_id = None
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name" and model in ("unknown", "", "x86_64"):
                model = value
            elif key == "physical id":
                phys_id = value
            elif key == "core id":
                core_id = value
            elif key == "flags" and not flags:
                fl = set(value.split())
                flags = " ".join(x for x in ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_tile") if x in fl)
            elif key == "" and core_id is not None:
                cores.add((phys_id, core_id))
                phys_id = core_id = None
        if core_id is not None:
            cores.add((phys_id, core_id))
        physical = len(cores) or None
    except OSError:
        pass
    return model, physical, flags


def _version(mod) -> str:
    return getattr(mod, "__version__", "?") if mod is not None else "not installed"


def _usable_cpus() -> Optional[int]:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def host_description() -> List[str]:
    """The machine and library lines that do not depend on the run's options (suite.py
    prints them once above the results of runs with different dtypes and thread counts)."""
    model, physical, flags = _cpu_info()
    return [
        f"CPU      : {model}" + (f"  [{flags}]" if flags else ""),
        f"cores    : {physical or '?'} physical, {os.cpu_count()} logical, {_usable_cpus()} usable by this process",
        f"OS       : {platform.platform()}"
        + (f"  (load average {os.getloadavg()[0]:.2f} at start)" if hasattr(os, "getloadavg") else ""),
        f"python   : {platform.python_version()} ({platform.python_implementation()})",
        f"numpy    : {np.__version__}{_blas_names()}",
        f"rnnrs    : {_version(rnnrs)}"
        + (f"  ({getattr(rnnrs, '__file__', '')})" if rnnrs is not None else f"  ({RNNRS_ERR})"),
        "reference: "
        + (f"{reference.__file__}" if reference is not None else f"not available ({REFERENCE_ERR})")
        + ("" if reference_lstm is not None and reference_gru is not None else "  (LSTM/GRU references missing)"),
        f"torch    : {_version(torch)}",
        f"onnxrt   : {_version(ort)}",
        f"onnx     : {_version(onnx)}",
    ]


def machine_description(args: argparse.Namespace, host: Optional[List[str]] = None) -> List[str]:
    """``host`` (default ``host_description()``) plus the run's threads and dtype, and
    warnings about load."""
    usable = _usable_cpus()
    in_effect = ([f"torch intra-op {torch.get_num_threads()}"] if torch is not None else []) + [
        f"BLAS {api} x{threads}" for api, _, threads in _blas_libraries()
    ]
    lines = (host_description() if host is None else list(host)) + [
        f"threads  : {args.threads} for every contender (rnnrs.set_num_threads, torch.set_num_threads, "
        f"ORT intra_op_num_threads, BLAS env vars)" + (f"; in effect: {', '.join(in_effect)}" if in_effect else ""),
        f"dtype    : {args.dtype}",
    ]
    if hasattr(os, "getloadavg") and usable and os.getloadavg()[0] > max(0.5, usable - args.threads):
        lines.append(
            f"WARNING  : the machine is busy (load {os.getloadavg()[0]:.2f} on {usable} CPUs); "
            f"thread pools that spin (torch, ORT, rnnrs) suffer most, so ratios will be noisy"
        )
    if usable is not None and args.threads > usable:
        lines.append(f"WARNING  : --threads {args.threads} exceeds the {usable} CPUs available; timings will be noisy")
    return lines


def _blas_names() -> str:
    libs = _blas_libraries()
    return f"  (BLAS: {', '.join(f'{api} {version}'.strip() for api, version, _ in libs)})" if libs else ""


def _blas_libraries() -> List[Tuple[str, str, Any]]:
    """(internal API, version, threads) of every BLAS threadpoolctl sees ([] without it)."""
    if threadpoolctl is None:
        return []
    try:
        return [
            (str(i.get("internal_api")), i.get("version") or "", i.get("num_threads"))
            for i in threadpoolctl.threadpool_info()
            if i.get("user_api") == "blas"
        ]
    except Exception:
        return []


# --------------------------------------------------------------------------------------
# Main loop
# --------------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    kind: str
    size: Size
    mode: str
    layout: str
    medians: Dict[str, Optional[float]]
    status: Dict[str, str]  # "" when timed, else why not
    spread: Dict[str, Tuple[float, float, float]]  # (min, p10, p90) in seconds
    reps: int
    problems: Dict[str, List[str]]
    tokens: int  # B*T, or the sum of the lengths (ragged)
    flops: float  # Case.flops()
    gflops: Optional[float] = None  # rnnrs' achieved GFLOP/s (add_metrics)
    efficiency: Optional[float] = None  # gflops / the GEMM ceiling
    ragged_ratio: Optional[float] = None  # ragged rows: see add_metrics


def make_case(kind: CellKind, size: Size, mode: str, layout: str, dtype, threads: int, seed: int) -> Case:
    rng = np.random.default_rng([seed, size.batch, size.time, size.inputs, size.units])
    B, T, I, H = size.batch, size.time, size.inputs, size.units
    x = rng.standard_normal((B, T, I)).astype(dtype)
    d_outputs = rng.standard_normal((B, T, H)).astype(dtype)
    lengths = None
    if layout == "ragged":
        lo = max(1, math.ceil(T / 4))
        lengths = rng.integers(lo, T + 1, size=B).astype(np.int64)
    cell = kind.make_rnnrs_cell(H, dtype, seed)
    cell.build(I)
    # The initial biases are zeros (GRU gates: ones), which would hide a bias put in the
    # wrong place by a peer's weight mapping: add a fixed random offset to every bias.
    brng = np.random.default_rng([seed, 1, B, T, I, H])
    cell.set_weights(
        {
            k: np.asarray(v) + brng.uniform(-0.5, 0.5, np.shape(v)).astype(dtype)
            for k, v in cell.get_weights().items()
            if k.endswith("bias")
        }
    )
    weights = {k: np.array(v, dtype=dtype, copy=True) for k, v in cell.get_weights().items()}
    return Case(kind, size, mode, layout, dtype, threads, seed, x, lengths, d_outputs, weights, cell)


def run_case(case: Case, args, contenders: Sequence[str]) -> Row:
    print(
        f"\n== {case.kind.title}  {case.size.name} ({case.size.describe()})  {case.mode}  {case.layout}"
        + (f"  lengths in [{case.lengths.min()}, {case.lengths.max()}]" if case.lengths is not None else ""),
        flush=True,
    )
    status: Dict[str, str] = {}
    problems: Dict[str, List[str]] = {}
    prepared: Dict[str, Prepared] = {}
    for name in contenders:
        builder = getattr(case.kind, name)
        try:
            prepared[name] = builder(case)
        except Unavailable as exc:
            status[name] = str(exc)
        except Exception as exc:  # a peer blowing up must not kill the run
            status[name] = f"error: {type(exc).__name__}: {exc}"
            print(f"   {name}: failed to build: {type(exc).__name__}: {exc}")

    if "rnnrs" not in prepared:
        print(f"   !! rnnrs cannot run this case: {status.get('rnnrs')}")
        return _empty_row(case, contenders, status, problems)
    try:
        want = prepared["rnnrs"].result()
    except Exception as exc:
        status["rnnrs"] = f"error: {type(exc).__name__}: {exc}"
        print(f"   !! rnnrs raised {type(exc).__name__}: {exc}")
        return _empty_row(case, contenders, status, problems)
    for name, prep in list(prepared.items()):
        if name == "rnnrs":
            continue
        try:
            got = prep.result()
            errs, summary = check(case, name, got, want)
        except Exception as exc:
            errs, summary = [f"raised {type(exc).__name__}: {exc}"], ""
        if errs:
            problems[name] = errs
            status[name] = "MISMATCH"
            del prepared[name]
            print(
                f"   !! {name} does NOT match rnnrs -> not timed. "
                f"Reproduce: python benches/compare.py --cells {case.kind.key} --sizes {case.size.name} "
                f"--modes {case.mode} --layouts {case.layout} --dtype {args.dtype} --seed {case.seed} --quick"
            )
            for e in errs:
                print(f"      {e}")
            if name == "reference":
                print(
                    "      (tests/reference*.py is the float64 oracle of the test suite: rnnrs is the likely culprit)"
                )
        else:
            print(f"   check {name:<11} vs rnnrs: ok  (max |diff|: {summary})")

    # The NumPy reference is a correctness yardstick, not a peer: time it only on sizes
    # whose work is small (a fixed rule, so the same cells are skipped on every run).
    if "reference" in prepared and not args.reference_all and case.size.work() > REFERENCE_MAX_WORK:
        status["reference"] = "skipped (too slow to be worth timing; --reference-all to time it)"
        del prepared["reference"]

    for name in list(prepared):  # a contender that raises while running is dropped, not fatal
        try:
            prepared[name].run()
        except Exception as exc:
            status[name] = f"error: {type(exc).__name__}: {exc}"
            print(f"   !! {name} raised {type(exc).__name__}: {exc}")
            del prepared[name]

    timings = time_interleaved(
        {n: p.run for n, p in prepared.items()},
        warmup=args.warmup,
        repeat=args.repeat,
        budget_s=args.budget,
        min_reps=args.min_reps,
        max_reps=args.max_reps,
        settle_s=args.settle,
        warm_s=args.warm,
    )
    medians = {n: (timings[n].median_s() if n in timings else None) for n in contenders}
    spread = {n: (t.min_s(), t.quantile_s(0.1), t.quantile_s(0.9)) for n, t in timings.items()}
    reps = len(next(iter(timings.values())).samples_ns) if timings else 0
    base = medians.get("rnnrs")
    for n in contenders:
        if n in timings:
            mn, p10, p90 = spread[n]
            ratio = "" if n == "rnnrs" or not base else f"   {SHORT[n]}/rnnrs = {medians[n] / base:.2f}x"
            print(
                f"   {n:<12} median {fmt_time(medians[n]):>10}  [p10 {fmt_time(p10)}, p90 {fmt_time(p90)}, "
                f"min {fmt_time(mn)}]{ratio}"
            )
        else:
            print(f"   {n:<12} {status.get(n, 'not run')}")
    print(f"   ({reps} interleaved repetitions)", flush=True)
    return Row(
        case.label,
        case.kind.key,
        case.size,
        case.mode,
        case.layout,
        medians,
        {n: status.get(n, "") for n in contenders},
        spread,
        reps,
        problems,
        case.tokens,
        case.flops(),
    )


def _empty_row(case: Case, contenders, status, problems) -> Row:
    return Row(
        case.label,
        case.kind.key,
        case.size,
        case.mode,
        case.layout,
        {n: None for n in contenders},
        {n: status.get(n, "not run") for n in contenders},
        {},
        0,
        problems,
        case.tokens,
        case.flops(),
    )


def add_metrics(rows: List[Row], ceiling: Optional[float]) -> None:
    """Fill in rnnrs' GFLOP/s (``flops`` / median), the efficiency (GFLOP/s / ``ceiling``)
    and, on a ragged row, the ragged ratio: its time over ``tokens / (B*T)`` times the
    time of the full row of the same cell, size and mode.  1.0 means the ragged batch
    costs exactly its share of the work; above means the padding still costs."""
    full = {(r.kind, r.size.name, r.mode): r for r in rows if r.layout == "full"}
    for r in rows:
        t = r.medians.get("rnnrs")
        r.gflops = ratio(r.flops * 1e-9, t)
        r.efficiency = ratio(r.gflops, ceiling)
        f = full.get((r.kind, r.size.name, r.mode)) if r.layout == "ragged" else None
        t_full = None if f is None else f.medians.get("rnnrs")
        if f is not None and t_full is not None:
            r.ragged_ratio = ratio(t, r.tokens / f.tokens * t_full)


def _cell_text(row: Row, name: str) -> str:
    return time_cell(row.medians.get(name), row.status.get(name, ""))


def _ratio_text(row: Row, name: str) -> str:
    return fmt_times(ratio(row.medians.get(name), row.medians.get("rnnrs")))


def render_table(rows: List[Row], contenders: Sequence[str], markdown: bool) -> str:
    peers = [c for c in contenders if c != "rnnrs"]
    header = (
        ["cell", "size", "mode", "batch"]
        + [SHORT[c] for c in contenders]
        + [f"{SHORT[c]}/rnnrs" for c in peers]
        + list(METRIC_HEADER)
    )
    body = [
        [r.kind, f"{r.size.name} ({r.size.describe()})", r.mode, r.layout]
        + [_cell_text(r, c) for c in contenders]
        + [_ratio_text(r, c) for c in peers]
        + metric_cells(r.gflops, r.efficiency, r.ragged_ratio)
        for r in rows
    ]
    return _render(header, body, markdown, left=4)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--threads", type=int, default=2, help="threads for every contender (default 2)")
    p.add_argument(
        "--sizes",
        default=",".join(DEFAULT_SIZES),
        help=f"comma list of {', '.join(SIZES)} or 'all' (default {','.join(DEFAULT_SIZES)})",
    )
    p.add_argument("--modes", default="forward,train", help="comma list of forward,train")
    p.add_argument("--layouts", default="full,ragged", help="comma list of full,ragged")
    p.add_argument("--cells", default=",".join(CELL_KINDS), help=f"comma list of {', '.join(CELL_KINDS)}")
    p.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help=f"comma list of {', '.join(CONTENDERS)} (rnnrs is always included)",
    )
    p.add_argument("--dtype", choices=("f32", "f64"), default="f32")
    p.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="fixed number of interleaved repetitions per case (default: fill --budget)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=2.0,
        help="seconds of timed work per case when --repeat is not given (default 2)",
    )
    p.add_argument("--min-reps", type=int, default=15)
    p.add_argument("--max-reps", type=int, default=5000)
    p.add_argument("--warmup", type=int, default=3, help="warm-up calls per contender (default 3)")
    p.add_argument(
        "--warm",
        type=float,
        default=0.01,
        help="seconds of untimed calls of a contender after the settle idle, before its "
        "timed call (default 0.01; at least one call is always made)",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=0.02,
        help="seconds of idle before each timed call, so that one library's spinning "
        "worker threads do not slow the next one down (default 0.02; 0 disables)",
    )
    p.add_argument(
        "--gemm-reps", type=int, default=7, help="repetitions per product size of the GEMM ceiling (default 7)"
    )
    p.add_argument("--quick", action="store_true", help="smoke test: 3 repetitions, 1 warm-up")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--reference-all",
        action="store_true",
        help="also time the NumPy reference on medium and larger sizes (always used for checks)",
    )
    p.add_argument("--markdown", action="store_true", help="print the summary as a markdown table")
    p.add_argument("--json", metavar="PATH", help="also write all results to PATH as JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.repeat = args.repeat or 3
        args.warmup = 1
        args.gemm_reps = min(args.gemm_reps, 3)
    args.threads = max(1, args.threads)
    return args


def main(argv: Sequence[str] = ()) -> int:
    args = parse_args(argv)
    if rnnrs is None:
        print(f"rnnrs does not import ({RNNRS_ERR}); build it with `maturin develop --release` first.", file=sys.stderr)
        return 2
    sizes = [SIZES[s] for s in csv_choice(args.sizes, list(SIZES), "size")]
    modes = csv_choice(args.modes, MODES, "mode")
    layouts = csv_choice(args.layouts, LAYOUTS, "layout")
    kinds = [CELL_KINDS[k] for k in csv_choice(args.cells, list(CELL_KINDS), "cell kind")]
    contenders = ["rnnrs"] + [c for c in csv_choice(args.contenders, CONTENDERS, "contender") if c != "rnnrs"]
    dtype = np.float64 if args.dtype == "f64" else np.float32

    rnnrs.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass

    host = host_description()
    machine = machine_description(args, host)
    ceiling = gemm_ceiling(dtype, args.threads, args.gemm_reps)
    print("Machine")
    for line in machine + [f"ceiling  : {ceiling.describe()}"]:
        print("  " + line)

    rows: List[Row] = []
    t_start = time.perf_counter()
    for kind in kinds:
        for size in sizes:
            for mode in modes:
                for layout in layouts:
                    case = make_case(kind, size, mode, layout, dtype, args.threads, args.seed)
                    rows.append(run_case(case, args, contenders))

    add_metrics(rows, ceiling.gflops)
    print(
        f"\nSummary: median time per call ({args.dtype}, {args.threads} thread(s)); "
        f"'x/rnnrs' > 1 means rnnrs is faster; GFLOP/s: rnnrs' matrix-product FLOPs per second, "
        f"% of the {fmt_value(ceiling.gflops, '.1f')} GFLOP/s GEMM ceiling; ragged ratio: "
        f"ragged time / (share of the tokens x full time), 1 = proportional to the work\n"
    )
    print(render_table(rows, contenders, args.markdown))
    notes = sorted(
        {
            f"{SHORT[n]}: {s}"
            for r in rows
            for n, s in r.status.items()
            if s and not s.startswith("skipped") and s not in ("MISMATCH", "forward only", "not run")
        }
    )
    skipped = sorted(
        {f"{r.size.name}/{r.mode}/{r.layout}" for r in rows if r.status.get("reference", "").startswith("skipped")}
    )
    if skipped:
        notes.append(
            f"numpy-ref: not timed for {', '.join(skipped)} (slow; --reference-all to include); "
            f"still used for the correctness check"
        )
    if dtype == np.float32 and any(r.medians.get("reference") is not None for r in rows):
        notes.append(
            "numpy-ref: computes in float64 whatever the input dtype (it is the test oracle, "
            "written for clarity), so its times are not an f32 peer's"
        )
    if any(r.status.get("onnxruntime") == "forward only" for r in rows):
        notes.append("ort: forward only (ONNX Runtime has no training path for this graph)")
    for n in notes:
        print(f"  note: {n}")

    tiny = [
        r
        for r in rows
        if r.size.name == "tiny" and r.mode == "forward" and r.layout == "full" and r.medians.get("rnnrs") is not None
    ]
    if tiny:
        print()
    for r in tiny:  # one line per cell kind
        med, (mn, _p10, p90) = r.medians["rnnrs"], r.spread["rnnrs"]
        verdict = "OK" if med * 1e6 < TINY_TARGET_US else "ABOVE TARGET"
        if r.reps < 100:
            verdict += f" (only {r.reps} repetitions: not a reliable verdict)"
        print(
            f"Tiny single forward call ({r.kind}, {r.size.describe()}, full): median {med * 1e6:.1f} µs "
            f"(min {mn * 1e6:.1f}, p90 {p90 * 1e6:.1f}) -- target < {TINY_TARGET_US:.0f} µs: {verdict}"
        )

    mismatches = [(r.label, n, e) for r in rows for n, e in r.problems.items()]
    if mismatches:
        print("\nMISMATCHES (these contenders were not timed for these cases):")
        for label, n, errs in mismatches:
            print(f"  {label} {n}: {errs[0]}" + (f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""))
    load = f", load average {os.getloadavg()[0]:.2f} at end" if hasattr(os, "getloadavg") else ""
    print(f"\nTotal wall time {time.perf_counter() - t_start:.1f} s{load}")

    if args.json:
        payload = {
            "machine": machine,
            "host": host,
            "ceiling": ceiling.to_json(),
            "args": {k: v for k, v in vars(args).items()},
            "rows": [
                {
                    "label": r.label,
                    "cell": r.kind,
                    "size": r.size.__dict__,
                    "mode": r.mode,
                    "layout": r.layout,
                    "median_s": r.medians,
                    "status": r.status,
                    "spread_s": {n: dict(zip(("min", "p10", "p90"), v)) for n, v in r.spread.items()},
                    "reps": r.reps,
                    "problems": r.problems,
                    "dtype": args.dtype,
                    "threads": args.threads,
                    "tokens": r.tokens,
                    "flops": r.flops,
                    "rnnrs_gflops": r.gflops,
                    "efficiency": r.efficiency,
                    "ragged_ratio": r.ragged_ratio,
                }
                for r in rows
            ],
        }
        write_json(args.json, payload)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
