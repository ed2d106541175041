"""Writes tests/fixtures/onnx/: small PyTorch recurrent modules exported with
``torch.onnx.export`` (TorchScript exporter, ``dynamo=False``) and, for each,
``<name>.npz`` with a fixed input and PyTorch's outputs, so that
tests/test_onnx_import.py checks ``rnnrs.convert.from_onnx`` without torch.

Needs torch, onnx and onnxruntime (onnxruntime is used to check that each
exported file computes what PyTorch does before it is written)::

    python scripts/make_onnx_fixtures.py [out_dir]

Every ``.npz`` holds ``x`` (float32 ``[B, T, I]``, or int64 ids ``ids``),
``outputs`` (PyTorch's full-length outputs), ``h_n`` (and ``c_n`` for an
LSTM) in PyTorch's ``[layers * directions, B, H]`` layout, and the same for a
ragged batch packed with ``pack_padded_sequence``: ``lengths``,
``ragged_outputs`` (zeros past each row's length), ``ragged_h_n``
(``ragged_c_n``). The embedding model stores ``ids`` and ``predictions``.
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import onnxruntime as ort
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

B, T, IN = 3, 5, 3
LENGTHS = [5, 2, 4]  # packed sequences cannot hold a length-0 row; the tests add that case themselves


class EmbedLSTMLinear(torch.nn.Module):
    """Embedding(10, 3) → LSTM(3, 4) → Linear(4, 2), batch-first ids ``[B, T]``."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(10, 3)
        self.lstm = torch.nn.LSTM(3, 4, batch_first=True)
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.linear(self.lstm(self.embedding(ids))[0])


def modules() -> dict[str, torch.nn.Module]:
    torch.manual_seed(14)
    return {
        "rnn_tanh": torch.nn.RNN(IN, 4, batch_first=True),
        "rnn_relu": torch.nn.RNN(IN, 4, batch_first=True, nonlinearity="relu"),
        "lstm": torch.nn.LSTM(IN, 4, batch_first=True),
        "gru": torch.nn.GRU(IN, 5, batch_first=True),
        "bilstm": torch.nn.LSTM(IN, 4, batch_first=True, bidirectional=True),
        "bigru2": torch.nn.GRU(IN, 4, num_layers=2, batch_first=True, bidirectional=True),
        "embed_lstm_linear": EmbedLSTMLinear(),
    }


def run_recurrent(module: torch.nn.Module, x: torch.Tensor, lengths: list[int] | None) -> dict[str, np.ndarray]:
    with torch.no_grad():
        if lengths is None:
            out, state = module(x)
        else:
            packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
            out, state = module(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    prefix = "" if lengths is None else "ragged_"
    res = {prefix + "outputs": out.numpy()}
    if isinstance(state, tuple):
        res[prefix + "h_n"], res[prefix + "c_n"] = state[0].numpy(), state[1].numpy()
    else:
        res[prefix + "h_n"] = state.numpy()
    return res


def export(module: torch.nn.Module, example: torch.Tensor, path: str, input_name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            path,
            dynamo=False,
            input_names=[input_name],
            dynamic_axes={input_name: {0: "batch", 1: "time"}},
        )


def main(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(14)
    for name, module in modules().items():
        module.eval()
        path = os.path.join(out_dir, f"{name}.onnx")
        if name == "embed_lstm_linear":
            ids = rng.integers(0, 10, size=(B, T)).astype(np.int64)
            with torch.no_grad():
                expected = module(torch.from_numpy(ids)).numpy()
            export(module, torch.from_numpy(ids), path, "ids")
            data = {"ids": ids, "predictions": expected}
            feed = {"ids": ids}
            check = expected
        else:
            x = rng.normal(size=(B, T, IN)).astype(np.float32)
            data = {"x": x, "lengths": np.array(LENGTHS, np.int64)}
            data.update(run_recurrent(module, torch.from_numpy(x), None))
            data.update(run_recurrent(module, torch.from_numpy(x), LENGTHS))
            export(module, torch.from_numpy(x), path, "inputs")
            feed = {"inputs": x}
            check = data["outputs"]
        got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feed)[0]
        np.testing.assert_allclose(got, check, rtol=1e-5, atol=1e-6, err_msg=f"{name}: onnxruntime vs torch")
        np.savez(os.path.join(out_dir, f"{name}.npz"), **data)
        print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "tests", "fixtures", "onnx"))
