"""Learning-rate schedules: the learning rate as a function of the step (Keras 3's formulas).

A schedule is a callable ``schedule(step) -> float`` where ``step`` is the
number of updates the optimizer has applied so far (0 for the first update,
like Keras' ``optimizer.iterations``). Any optimizer accepts one as its
``learning_rate`` (or any other callable of the step) and evaluates it once
per ``apply_gradients``::

    lr = rnnrs.schedules.CosineDecay(0.0, decay_steps=1000, warmup_target=0.01, warmup_steps=100)
    model.compile(rnnrs.AdamW(learning_rate=lr), "sparse_softmax_cross_entropy")

Formulas (``s`` the step, computed in float64):

* ``ExponentialDecay``: ``initial_learning_rate * decay_rate ** (s / decay_steps)``
  (with ``staircase``, the exponent is ``floor(s / decay_steps)``)
* ``PiecewiseConstantDecay``: ``values[0]`` while ``s <= boundaries[0]``,
  ``values[i]`` while ``boundaries[i-1] < s <= boundaries[i]``, ``values[-1]``
  after the last boundary
* ``CosineDecay``: without warm-up, ``s = min(s, decay_steps)`` and
  ``initial_learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)``;
  with ``warmup_target``, ``s = min(s, warmup_steps + decay_steps)``, a linear
  rise ``initial_learning_rate + (warmup_target - initial_learning_rate) * s / warmup_steps``
  while ``s < warmup_steps``, then the cosine decay from ``warmup_target`` at
  step ``s - warmup_steps``
* ``InverseTimeDecay``: ``initial_learning_rate / (1 + decay_rate * s / decay_steps)``
  (with ``staircase``, ``floor(s / decay_steps)``)

Schedules are saved with a model (``get_config()``; rebuilt by
:func:`schedule_from_config` from the fixed list :data:`SCHEDULES` only).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping, Optional, Sequence

from ._validate import flag
from .saving.serialize import registered_from_config, short


def _real(name: str, value: Any, what: str, ok: Any) -> float:
    """``value`` as a float; ``TypeError`` for a non-number, ``ValueError``
    unless finite and ``ok(value)``; both say ``expected {what}``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected {what}, got {type(value).__name__} {short(value)}")
    v = float(value)
    if not (math.isfinite(v) and ok(v)):
        raise ValueError(f"{name}: expected {what}, got {short(value)}")
    return v


def _rate(name: str, value: Any) -> float:
    return _real(name, value, "a finite number >= 0", lambda v: v >= 0)


def _positive(name: str, value: Any) -> float:
    return _real(name, value, "a finite number > 0", lambda v: v > 0)


def _numbers(name: str, value: Any) -> list[float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name}: expected a list of numbers, got {type(value).__name__} {short(value)}")
    return [_real(f"{name}[{i}]", v, "a finite number", lambda _: True) for i, v in enumerate(value)]


def _plain_number(x: float) -> Any:
    """Whole floats as ints in configurations (``decay_steps=1000`` stays 1000)."""
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


class LearningRateSchedule:
    """Base class: ``schedule(step) -> float`` for ``step`` the number of
    updates applied so far (an integer or float >= 0).

    Subclasses implement :meth:`_value` (``step`` already checked) and
    :meth:`get_config`; :meth:`from_config` calls the constructor with the
    configuration. A subclass outside this module works as a learning rate
    but cannot be saved with a model (only :data:`SCHEDULES` are rebuilt).
    """

    def __call__(self, step: Any) -> float:
        """The learning rate at ``step``; ``TypeError``/``ValueError`` naming
        ``step`` for anything but a finite number >= 0."""
        return self._value(_rate("step", step))

    def _value(self, step: float) -> float:
        raise NotImplementedError(f"{type(self).__name__}: expected a __call__ or _value method, got neither")

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments (JSON-serialisable)."""
        raise NotImplementedError(f"{type(self).__name__}: expected a get_config method, got none")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "LearningRateSchedule":
        """``cls(**config)``: the schedule :meth:`get_config` described."""
        if not isinstance(config, Mapping):
            raise TypeError(f"config: expected a mapping of constructor arguments, got {type(config).__name__}")
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, LearningRateSchedule)
            and type(other) is type(self)
            and self.get_config() == other.get_config()
        )

    __hash__ = None  # type: ignore[assignment]


class _StepDecay(LearningRateSchedule):
    """The arguments shared by :class:`ExponentialDecay` and :class:`InverseTimeDecay`."""

    def __init__(
        self, initial_learning_rate: float, decay_steps: float, decay_rate: float, staircase: bool = False
    ) -> None:
        self.initial_learning_rate = _rate("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.decay_rate = _rate("decay_rate", decay_rate)
        self.staircase = flag("staircase", staircase)

    def _progress(self, step: float) -> float:
        """``step / decay_steps``, floored with ``staircase``."""
        p = step / self.decay_steps
        return float(math.floor(p)) if self.staircase else p

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": _plain_number(self.decay_steps),
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
        }


class ExponentialDecay(_StepDecay):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``
    (``keras.optimizers.schedules.ExponentialDecay``).

    Args:
        initial_learning_rate: the rate at step 0 (a finite number >= 0).
        decay_steps: steps over which the rate is multiplied by ``decay_rate`` (> 0).
        decay_rate: the factor per ``decay_steps`` (a finite number >= 0;
            above 1 the rate grows, and a rate that overflows to inf is
            refused by the optimizer with a ``ValueError``).
        staircase: use ``floor(step / decay_steps)`` (a rate constant between
            multiples of ``decay_steps``).
    """

    def _value(self, step: float) -> float:
        p = self._progress(step)
        try:
            factor = math.pow(self.decay_rate, p)
        except OverflowError:
            factor = math.inf
        return self.initial_learning_rate * factor


class PiecewiseConstantDecay(LearningRateSchedule):
    """A constant rate per interval of steps (``keras.optimizers.schedules.PiecewiseConstantDecay``):
    ``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after.

    Args:
        boundaries: strictly increasing finite numbers (the steps where the rate changes).
        values: one more finite rate >= 0 than there are boundaries.
    """

    def __init__(self, boundaries: Sequence[float], values: Sequence[float]) -> None:
        b = _numbers("boundaries", boundaries)
        v = _numbers("values", values)
        if any(hi <= lo for lo, hi in zip(b, b[1:])):
            raise ValueError(f"boundaries: expected strictly increasing numbers, got {short(list(boundaries))}")
        if len(v) != len(b) + 1:
            raise ValueError(
                f"values: expected {len(b) + 1} rates (one more than the {len(b)} boundaries), got {len(v)}"
            )
        self.boundaries = b
        self.values = [_rate(f"values[{i}]", x) for i, x in enumerate(v)]

    def _value(self, step: float) -> float:
        for bound, value in zip(self.boundaries, self.values):
            if step <= bound:
                return value
        return self.values[-1]

    def get_config(self) -> dict[str, Any]:
        return {"boundaries": [_plain_number(b) for b in self.boundaries], "values": list(self.values)}


class CosineDecay(LearningRateSchedule):
    """Cosine decay with an optional linear warm-up (``keras.optimizers.schedules.CosineDecay``).

    Without ``warmup_target``: the rate falls from ``initial_learning_rate``
    to ``initial_learning_rate * alpha`` along half a cosine over
    ``decay_steps``, then stays there. With ``warmup_target``: it first rises
    linearly from ``initial_learning_rate`` (at step 0) towards
    ``warmup_target`` over ``warmup_steps``, then falls from
    ``warmup_target`` to ``warmup_target * alpha`` over ``decay_steps``.

    Args:
        initial_learning_rate: the rate at step 0 (a finite number >= 0).
        decay_steps: the length of the decay (> 0).
        alpha: the final rate as a fraction of the decay's start, in [0, 1].
        warmup_target: the rate reached after the warm-up (>= 0), or None
            for no warm-up.
        warmup_steps: the length of the warm-up (>= 0); must be 0 when
            ``warmup_target`` is None (Keras ignores it there silently).
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: float,
        alpha: float = 0.0,
        warmup_target: Optional[float] = None,
        warmup_steps: float = 0,
    ) -> None:
        self.initial_learning_rate = _rate("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.alpha = _real("alpha", alpha, "a number in [0, 1]", lambda v: 0 <= v <= 1)
        self.warmup_target = None if warmup_target is None else _rate("warmup_target", warmup_target)
        self.warmup_steps = _rate("warmup_steps", warmup_steps)
        if self.warmup_target is None and self.warmup_steps != 0:
            raise ValueError(
                f"warmup_steps: expected 0 when warmup_target is None (no warm-up), got {short(warmup_steps)}"
            )

    def _decay(self, step: float, start: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * (step / self.decay_steps)))
        return start * ((1.0 - self.alpha) * cosine + self.alpha)

    def _value(self, step: float) -> float:
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        s = min(step, self.decay_steps + self.warmup_steps)
        if s < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return delta * (s / self.warmup_steps) + self.initial_learning_rate
        return self._decay(s - self.warmup_steps, self.warmup_target)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": _plain_number(self.decay_steps),
            "alpha": self.alpha,
            "warmup_target": self.warmup_target,
            "warmup_steps": _plain_number(self.warmup_steps),
        }


class InverseTimeDecay(_StepDecay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``
    (``keras.optimizers.schedules.InverseTimeDecay``).

    Args:
        initial_learning_rate: the rate at step 0 (a finite number >= 0).
        decay_steps: the step scale (> 0).
        decay_rate: a finite number >= 0.
        staircase: use ``floor(step / decay_steps)``.
    """

    def _value(self, step: float) -> float:
        p = self._progress(step)
        return self.initial_learning_rate / (1.0 + self.decay_rate * p)


#: The schedules that can be saved with a model and rebuilt by name (nothing else is ever looked up).
SCHEDULES: dict[str, type[LearningRateSchedule]] = {
    "CosineDecay": CosineDecay,
    "ExponentialDecay": ExponentialDecay,
    "InverseTimeDecay": InverseTimeDecay,
    "PiecewiseConstantDecay": PiecewiseConstantDecay,
}


def schedule_to_config(schedule: Any) -> dict[str, Any]:
    """``{"class_name": ..., "config": {...}}`` for one of :data:`SCHEDULES`;
    ``TypeError`` naming ``learning_rate`` for any other callable (it could not
    be rebuilt when loading)."""
    cls = SCHEDULES.get(type(schedule).__name__)
    if cls is None or type(schedule) is not cls:
        what = getattr(schedule, "__qualname__", None) or type(schedule).__name__
        raise TypeError(
            f"learning_rate: expected a number or a schedule of rnnrs.schedules ({', '.join(SCHEDULES)}) "
            f"to save the optimizer's configuration, got {what} (a plain callable cannot be saved: "
            f"use a built-in schedule, or assign a number to optimizer.learning_rate before saving)"
        )
    return {"class_name": cls.__name__, "config": schedule.get_config()}


def schedule_from_config(config: Any, where: str = "learning_rate") -> LearningRateSchedule:
    """The schedule that :func:`schedule_to_config` described. The
    configuration is untrusted (it may come from a file): anything but a
    class of :data:`SCHEDULES` with JSON scalar (or flat list) arguments it
    accepts raises ``ValueError`` naming ``where``."""
    schedule: LearningRateSchedule = registered_from_config(config, SCHEDULES, where)
    return schedule


__all__ = [
    "CosineDecay",
    "ExponentialDecay",
    "InverseTimeDecay",
    "LearningRateSchedule",
    "PiecewiseConstantDecay",
]
