"""The training loop (:class:`~rnnrs.trainers.trainer.Trainer`: ``compile``,
``fit``, ``evaluate``, ``predict``) and what ``compile`` chooses from
(:mod:`~rnnrs.trainers.compile_utils`)."""

from .trainer import Forward, History, Trainer

__all__ = ["Forward", "History", "Trainer"]
