"""Moving weights and models in and out of rnnrs.

- PyTorch and Keras 3 weight layouts: :func:`to_torch`, :func:`from_torch`
  (also bidirectional modules: ``(cell_fw, cell_bw)`` pairs and, for several
  layers, ``(cells_fw, cells_bw)`` lists run by
  :func:`rnnrs.stack_bidirectional_dynamic_rnn`), :func:`to_keras`,
  :func:`from_keras`;
- ONNX: :func:`to_onnx` (cells, wrappers, pairs, ``Sequential`` models) and
  :func:`from_onnx` (the recurrent, dense and embedding layers of a
  ``torch.onnx.export`` file); needs ``pip install "rnnrs[onnx]"``;
- TensorFlow 1.x checkpoints without TensorFlow: :func:`list_tf1_checkpoint`,
  :func:`from_tf1_checkpoint`, :func:`to_tf1_checkpoint`, and the naming
  rule :func:`tf1_names`.

NumPy arrays in and out; no framework is imported (``onnx`` only when an
ONNX function runs).

PyTorch (``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` state dicts, one layer per
cell, ``_l{k}`` suffixes): ``weight_ih [G, I]``, ``weight_hh [G, H]``,
``bias_ih [G]``, ``bias_hh [G]`` (and ``weight_hr [P, H]`` for an LSTM with
``proj_size``), gate orders LSTM ``i, f, g, o``, GRU ``r, z, n`` (reset
after the recurrent product).

Keras 3 (``SimpleRNN`` / ``LSTM`` / ``GRU`` ``get_weights()`` lists):
``[kernel [I, G], recurrent_kernel [H, G], bias]``, gate orders LSTM
``i, f, c, o``, GRU ``z, r, h``; a ``reset_after=True`` GRU's bias is
``[2, 3H]`` (input row, recurrent row).

rnnrs keeps TF 1.x's run-time ``forget_bias`` out of the stored bias; the
converters fold it in (PyTorch, Keras) and take it back out (from them).
Every array coming in is checked before anything is set: numbers only
(complex numbers and strings raise ``TypeError``, never converted), and its
full shape against the cell's units (and input size, once built)
(``ValueError`` naming the array). What a target cannot represent is refused
with a ``ValueError``: a TF1-form
GRU in PyTorch (which only has the reset-after form), peepholes or clipping
anywhere but rnnrs, a projection in Keras, an activation the target lacks.
The activation itself is not stored in weights: configure the target layer
with the same one (PyTorch ``nonlinearity``, Keras ``activation``).

ONNX (:func:`to_onnx`, needs ``pip install "rnnrs[onnx]"``): a cell, a
``(cell_fw, cell_bw)`` pair or a ``Sequential`` model as an ONNX graph with
inputs ``inputs`` and ``sequence_length`` and outputs ``outputs`` and
``state/...`` (``predictions`` for a model): ONNX ``RNN`` / ``LSTM`` /
``GRU`` operators where they are exact, a ``Scan`` for an ``LSTMCell`` with
a projection or cell clipping. ``onnx`` is imported only when it runs.
"""

from .onnx_export import to_onnx
from .onnx_import import from_onnx
from .tf1_checkpoint import from_tf1_checkpoint, list_tf1_checkpoint, tf1_names, to_tf1_checkpoint
from .torch_keras import from_keras, from_torch, to_keras, to_torch

__all__ = [
    "from_keras",
    "from_onnx",
    "from_tf1_checkpoint",
    "from_torch",
    "list_tf1_checkpoint",
    "tf1_names",
    "to_keras",
    "to_onnx",
    "to_tf1_checkpoint",
    "to_torch",
]
