"""Models: a graph of layers with a loss, an optimizer and a training loop.

Keras' vocabulary on TensorFlow 1.x's pieces::

    model = rnnrs.SequenceClassifier(rnnrs.BasicRNNCell(150), num_classes=10)   # RNN → Dense → softmax
    history = model.fit(X, y, batch_size=150, epochs=30, validation_data=(X_val, y_val), seed=0)
    model.evaluate(X_test, y_test)        # {'loss': ..., 'accuracy': ...}
    model.predict(X_test)                 # class probabilities [B, C]
    model.save("digits.npz"); rnnrs.load_model("digits.npz")

:class:`Model` is any graph from :func:`rnnrs.Input` tensors to outputs
(several inputs and outputs, shared layers); :class:`Sequential` is the
chain special case; :class:`SequenceClassifier` (final output → dense →
softmax, cross-entropy, accuracy) and :class:`SequenceRegressor` (every
step's output → optional projection, mean squared error) are ready-made
stacks. Every model trains with ``fit`` (:mod:`rnnrs.trainers`: seeded
shuffling, mini-batches, validation, callbacks, a :class:`History`, a
progress bar on a terminal), saves to one ``.npz`` (:mod:`rnnrs.saving`),
and stacks whose outputs have the inputs' size can ``generate`` sequences
by feeding each prediction back (the chapter's "creative RNN").

Variable-length batches: pass ``sequence_length`` (``[B]``) to ``fit``,
``evaluate`` and ``predict`` (and ``validation_data=(x, y, lengths)``);
per-step losses and metrics then count only the steps ``t < len[b]``.

Shape letters: ``B`` batch, ``T`` time, ``F`` input features, ``C`` classes,
``O`` outputs.
"""

from ..saving.model_io import load_model
from ..trainers.trainer import History
from .model import Model, ModelBackprop, ModelGradients
from .ready import SequenceClassifier, SequenceRegressor
from .seq2seq import EncoderDecoder
from .sequential import Sequential

__all__ = [
    "EncoderDecoder",
    "History",
    "Model",
    "ModelBackprop",
    "ModelGradients",
    "SequenceClassifier",
    "SequenceRegressor",
    "Sequential",
    "load_model",
]
