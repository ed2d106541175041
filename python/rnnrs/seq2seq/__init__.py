"""Sequence to sequence (TensorFlow 1.x ``tf.contrib.seq2seq``) on NumPy arrays."""

from __future__ import annotations

from .types import BasicDecoderOutput, DecoderGradients

__all__ = ["BasicDecoderOutput", "DecoderGradients"]
