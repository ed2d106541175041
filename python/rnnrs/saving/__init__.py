"""Saving and loading: the registry of serialisable classes
(:mod:`~rnnrs.saving.registry`), configurations of cells and objects and the
guarded ``.npz`` reader (:mod:`~rnnrs.saving.serialize`), and model files
(:mod:`~rnnrs.saving.model_io`: ``save`` and :func:`rnnrs.load_model`)."""

from .registry import classes, register

__all__ = ["classes", "register"]
