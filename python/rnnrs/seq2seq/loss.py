"""``sequence_loss`` (TensorFlow 1.15 ``tf.contrib.seq2seq.sequence_loss``)
with its four reduction flags, returning the value and its gradient."""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from .._validate import check_shape, flag
from ..cells import check_name, refuse_unless_none
from ..losses import _float_input, _softmax_cross_entropy_rows, class_ids

__all__ = ["sequence_loss"]


def sequence_loss(
    logits: Any,
    targets: Any,
    weights: Any,
    average_across_timesteps: bool = True,
    average_across_batch: bool = True,
    sum_over_timesteps: bool = False,
    sum_over_batch: bool = False,
    softmax_loss_function: Any = None,
    name: Optional[str] = None,
) -> tuple[Union[float, np.ndarray], np.ndarray]:
    """Weighted cross-entropy of a sequence of logits (TensorFlow 1.15
    ``tf.contrib.seq2seq.sequence_loss``), and its gradient.

    TensorFlow 1.15's signature and positional order.

    Args:
        logits: ``[B, T, V]`` floats.
        targets: integer ids ``[B, T]`` in ``[0, V)``.
        weights: ``[B, T]`` (e.g. ``rnnrs.sequence_mask(lengths, T)``);
            None weighs every step 1.
        average_across_timesteps: sum over time and divide by the sum of
            the weights over time.
        average_across_batch: the same over the batch axis.
        sum_over_timesteps: sum over time and divide by the number of
            non-zero weights over time.
        sum_over_batch: the same over the batch axis.
        softmax_loss_function: must be None (``ValueError`` otherwise).
        name: None or a scope name; no effect.

    With ``ce = w * cross_entropy`` (``[B, T]``): averaging or summing both
    axes gives a scalar (a Python float), one axis a ``[B]`` (time reduced)
    or ``[T]`` (batch reduced) array, neither the ``[B, T]`` array ``ce``.
    Every division is TensorFlow's ``div_no_nan``: 0 where the divisor (a
    sum of weights, or a count of non-zero weights) is 0. Averaging and
    summing one axis is a ``ValueError`` (as in TensorFlow), and so is
    averaging one axis while summing the other (TensorFlow silently ignores
    the summing flag then).

    Returns:
        ``(value, d_logits)``: ``d_logits`` ``[B, T, V]`` (the logits'
        dtype) is the gradient of ``value.sum()`` with respect to ``logits``.
        The default flags give what :func:`rnnrs.sequence_loss` returns.
    """
    average_t = flag("average_across_timesteps", average_across_timesteps)
    average_b = flag("average_across_batch", average_across_batch)
    sum_t = flag("sum_over_timesteps", sum_over_timesteps)
    sum_b = flag("sum_over_batch", sum_over_batch)
    refuse_unless_none("softmax_loss_function", softmax_loss_function, "rnnrs computes the softmax cross-entropy")
    check_name(name)
    if average_t and sum_t:
        raise ValueError(
            "sum_over_timesteps: expected False when average_across_timesteps is True (they cannot both be set), "
            "got True"
        )
    if average_b and sum_b:
        raise ValueError(
            "sum_over_batch: expected False when average_across_batch is True (they cannot both be set), got True"
        )
    if (average_t and sum_b) or (sum_t and average_b):
        summed = "sum_over_batch" if sum_b else "sum_over_timesteps"
        averaged = "average_across_timesteps" if average_t else "average_across_batch"
        raise ValueError(
            f"{summed}: expected False when {averaged} is True (averaging one axis and summing the other is "
            "not a reduction TensorFlow defines), got True"
        )
    z = _float_input("logits", logits)
    if z.ndim != 3 or z.shape[2] < 1:
        raise ValueError(f"logits: expected a 3-d array [batch, time, num_classes] (num_classes >= 1), got {z.shape}")
    ids = class_ids("targets", targets, z.shape[2], z.shape[:2])
    if weights is None:
        w = np.ones(z.shape[:2], dtype=np.float64)
    else:
        w = _float_input("weights", weights).astype(np.float64)
        check_shape("weights", w, z.shape[:2])
    axes: tuple[int, ...] = tuple(axis for axis, on in ((0, average_b or sum_b), (1, average_t or sum_t)) if on)
    if not axes:
        # the fused kernel: -log softmax(z)[id] (float64 [B, T]) and w * (softmax - onehot) (z.dtype)
        ce, grad = _softmax_cross_entropy_rows(z, ids, w, "targets")
        return (w * ce).astype(z.dtype), grad
    divisor = w.sum(axis=axes) if (average_t or average_b) else np.count_nonzero(w, axis=axes).astype(np.float64)
    safe = np.where(divisor == 0, 1.0, divisor)
    scale = np.where(divisor == 0, 0.0, 1.0 / safe)  # d value / d (w * ce), per reduced entry
    scale_bt = np.expand_dims(scale, axes) if np.ndim(scale) else scale
    ce, d_logits = _softmax_cross_entropy_rows(z, ids, w * scale_bt, "targets")
    value = np.where(divisor == 0, 0.0, (w * ce).sum(axis=axes) / safe)
    if len(axes) == 2:
        return float(value), d_logits
    return value.astype(z.dtype), d_logits
