"""The gated recurrent unit (GRU), in TensorFlow 1.x's form and in the
cuDNN / PyTorch / Keras ``reset_after=True`` form.

Shape letters: ``B`` batch, ``T`` time, ``I`` input size, ``H`` units.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import numpy as np

from ._validate import flag
from .cells import RNNCell, activation_or_default, check_reuse, glorot_uniform, refuse_unless_none
from .saving.registry import register

#: The reset-after GRU's candidate weights by TensorFlow's
#: ``CudnnCompatibleGRUCell`` name -> by rnnrs name (``set_weights`` accepts
#: either; ``get_weights`` returns the rnnrs names, which saved files use).
CUDNN_NAMES = {
    "candidate/input_projection/kernel": "candidate/input_kernel",
    "candidate/hidden_projection/kernel": "candidate/hidden_kernel",
    "candidate/input_projection/bias": "candidate/input_bias",
    "candidate/hidden_projection/bias": "candidate/hidden_bias",
}


@register("cell")
class GRUCell(RNNCell):
    """Gated recurrent unit; output = state = ``h'`` (``[B, H]``).

    Both forms share the gates and the update::

        r, u = split(sigmoid([x, h] @ gates/kernel + gates/bias), 2)   # r: first H columns
        h'   = u * h + (1 - u) * c

    and differ in where the reset gate ``r`` meets the candidate's
    recurrent product:

    * ``reset_after=False`` (default; TensorFlow 1.x ``tf.nn.rnn_cell.GRUCell``,
      Cho et al. 2014, "Learning Phrase Representations using RNN
      Encoder-Decoder for Statistical Machine Translation", arXiv:1406.1078
      v3, eq. 5-8): the reset gate scales ``h`` *before* the matrix product::

          c = act([x, r * h] @ candidate/kernel + candidate/bias)

    * ``reset_after=True`` (the form of NVIDIA cuDNN's GRU, and so of
      PyTorch ``nn.GRU`` and Keras ``GRU(reset_after=True)``; Keras's
      documentation traces it to the paper's first version, arXiv:1406.1078
      v1): the reset gate
      scales the recurrent product *after* it, with its own bias::

          c = act(x @ candidate/input_kernel + candidate/input_bias
                  + r * (h @ candidate/hidden_kernel + candidate/hidden_bias))

      Every recurrent product is then of ``h`` itself, so a time step needs
      one matrix product with ``h`` instead of two (faster for large ``H``).
      The two forms compute different functions; neither's weights can be
      used for the other.

    Shapes: one step ``cell(x [B, I], h [B, H]) -> (h' [B, H], h' [B, H])``;
    ``dynamic_rnn`` maps inputs ``[B, T, I]`` (``[T, B, I]`` time-major) to
    outputs ``[B, T, H]`` (``[T, B, H]``) and a final state ``[B, H]``.

    TensorFlow 1.x's signature and positional order (``GRUCell(num_units,
    activation=None, reuse=None, kernel_initializer=None,
    bias_initializer=None, name=None, dtype=None)``), then rnnrs's
    keyword-only ``reset_after`` and ``seed``.

    Args:
        num_units: number of units ``H``.
        activation: of the candidate ``c``: ``"tanh"`` (the default, also for
            None), ``"relu"``, ``"sigmoid"`` or ``"identity"``. The gates
            always use the sigmoid.
        reuse: None, True or False; accepted and without effect.
        kernel_initializer, bias_initializer: must be None (``ValueError``
            otherwise): the weights start as described below, or come from
            ``set_weights``.
        name: the TensorFlow variable scope (default ``gru_cell``, or
            ``cudnn_compatible_gru_cell`` with ``reset_after``), used only by
            ``get_weights(scope=...)``.
        dtype: ``numpy.float32`` (the default, also for None) or ``numpy.float64``.
        reset_after: which form (a bool; default False, TensorFlow 1.x's).
        seed: seeds the Glorot-uniform kernels; the same seed gives the same weights.

    Weights (TensorFlow 1.x names and layouts; rows for ``x`` first, then ``h``):

    - ``gates/kernel`` ``[I + H, 2H]``: Glorot-uniform
    - ``gates/bias`` ``[2H]``: ones (TensorFlow 1.x's default)
    - ``reset_after=False``: ``candidate/kernel`` ``[I + H, H]`` (Glorot-uniform),
      ``candidate/bias`` ``[H]`` (zeros)
    - ``reset_after=True``: ``candidate/input_kernel`` ``[I, H]`` and
      ``candidate/hidden_kernel`` ``[H, H]`` (Glorot-uniform),
      ``candidate/input_bias`` ``[H]`` and ``candidate/hidden_bias`` ``[H]`` (zeros);
      ``set_weights`` also takes them by TensorFlow's ``CudnnCompatibleGRUCell``
      names ``candidate/input_projection/kernel``, ``candidate/hidden_projection/kernel``,
      ``candidate/input_projection/bias``, ``candidate/hidden_projection/bias``

    Each kernel's Glorot bound ``sqrt(6 / (fan_in + fan_out))`` comes from its
    own shape. Ones in ``gates/bias`` start both gates mostly open: the cell
    initially keeps its state (``u`` near 1) and sees all of it (``r`` near 1).
    """

    _kind = "gru"
    _CONFIG = ("num_units", "activation", "reset_after", "dtype", "seed", "name")
    TF_SCOPE = "gru_cell"

    def __init__(
        self,
        num_units: int,
        activation: Optional[str] = None,
        reuse: Optional[bool] = None,
        kernel_initializer: Any = None,
        bias_initializer: Any = None,
        name: Optional[str] = None,
        dtype: Any = None,
        *,
        reset_after: bool = False,
        seed: Optional[int] = None,
    ) -> None:
        why = "rnnrs initializes as documented; use set_weights"
        refuse_unless_none("kernel_initializer", kernel_initializer, why)
        refuse_unless_none("bias_initializer", bias_initializer, why)
        super().__init__(num_units, dtype, seed, name)
        self.activation = activation_or_default(activation)
        check_reuse(reuse)
        self._reset_after = flag("reset_after", reset_after)

    @property
    def reset_after(self) -> bool:
        """Whether the reset gate is applied after the recurrent product (cuDNN form)."""
        return self._reset_after

    # -- weights -----------------------------------------------------------
    def _weight_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        return _shapes(input_size, self._num_units, self._reset_after)

    def _input_size_from(self, weights: Mapping[str, np.ndarray]) -> int:
        gates = weights.get("gates/kernel")
        h = self._num_units
        if gates is None or gates.ndim != 2 or gates.shape[0] < h:
            got = None if gates is None else gates.shape
            raise ValueError(
                f"weights['gates/kernel']: expected shape (input_size + {h}, {2 * h}) to build the cell, got {got}"
            )
        return int(gates.shape[0]) - h

    def set_weights(self, mapping: Mapping[str, Any], scope: Optional[str] = None) -> None:
        """Replaces weights by name, as :meth:`RNNCell.set_weights`; the names
        must be those of this cell's form (see :attr:`reset_after`). The
        reset-after form also takes its candidate weights by TensorFlow's
        ``CudnnCompatibleGRUCell`` names (``candidate/input_projection/kernel``
        for ``candidate/input_kernel``, ...; one name per weight)."""
        if isinstance(mapping, Mapping) and scope is None:
            mine = set(_shapes(0, 1, self._reset_after))
            other = set(_shapes(0, 1, not self._reset_after)) - mine
            if not self._reset_after:
                other |= set(CUDNN_NAMES)
            foreign = sorted(name for name in mapping if name in other)
            if foreign:
                raise ValueError(
                    f"mapping: expected the weights of a GRUCell with reset_after={self._reset_after} "
                    f"({sorted(mine)}), got {foreign} (names of the reset_after={not self._reset_after} form)"
                )
        super().set_weights(mapping, scope)

    def _prepare_weights(self, mapping: Mapping[str, Any], prefix: str) -> Callable[[], None]:
        if self._reset_after and isinstance(mapping, Mapping) and any(name in CUDNN_NAMES for name in mapping):
            renamed: dict[Any, Any] = {}
            for name, value in mapping.items():
                key = CUDNN_NAMES.get(name, name)
                if key in renamed:
                    alias = next(a for a, k in CUDNN_NAMES.items() if k == key)
                    raise ValueError(
                        f"mapping: expected one of {prefix + alias!r} and {prefix + key!r} (one weight, by its "
                        f"TensorFlow and its rnnrs name), got both"
                    )
                renamed[key] = value
            mapping = renamed
        return super()._prepare_weights(mapping, prefix)

    def _init_weights(self, rng: np.random.Generator, input_size: int) -> dict[str, np.ndarray]:
        h, dt = self._num_units, self._dtype
        weights = {
            "gates/kernel": glorot_uniform(rng, (input_size + h, 2 * h), dt),
            "gates/bias": np.ones(2 * h, dtype=dt),
        }
        if self._reset_after:
            weights["candidate/input_kernel"] = glorot_uniform(rng, (input_size, h), dt)
            weights["candidate/hidden_kernel"] = glorot_uniform(rng, (h, h), dt)
            weights["candidate/input_bias"] = np.zeros(h, dtype=dt)
            weights["candidate/hidden_bias"] = np.zeros(h, dtype=dt)
        else:
            weights["candidate/kernel"] = glorot_uniform(rng, (input_size + h, h), dt)
            weights["candidate/bias"] = np.zeros(h, dtype=dt)
        return weights

    def build(self, input_size: int) -> None:
        """Creates the weights for inputs of size ``input_size``: Glorot-uniform
        kernels seeded by ``seed``, ``gates/bias`` ones, other biases zeros."""
        super().build(input_size)

    # -- running -----------------------------------------------------------
    def _core_options(self) -> dict[str, Any]:
        return {"activation": self.activation, "reset_after": self._reset_after}

    def __repr__(self) -> str:
        return (
            f"GRUCell(num_units={self._num_units}, activation={self.activation!r}, "
            f"reset_after={self._reset_after}, dtype={self._dtype.name})"
        )


def _shapes(input_size: int, h: int, reset_after: bool) -> dict[str, tuple[int, ...]]:
    """The weight names and shapes of one form."""
    shapes: dict[str, tuple[int, ...]] = {"gates/kernel": (input_size + h, 2 * h), "gates/bias": (2 * h,)}
    if reset_after:
        shapes["candidate/input_kernel"] = (input_size, h)
        shapes["candidate/hidden_kernel"] = (h, h)
        shapes["candidate/input_bias"] = (h,)
        shapes["candidate/hidden_bias"] = (h,)
    else:
        shapes["candidate/kernel"] = (input_size + h, h)
        shapes["candidate/bias"] = (h,)
    return shapes
