"""First-order optimizers on dicts of named parameters (TensorFlow 1.x update rules).

An optimizer updates ``params`` (a dict of name → float array) **in place**
from ``grads`` (a dict with some or all of the same names)::

    opt = rnnrs.Adam(learning_rate=0.001, clip_norm=5.0)
    opt.apply_gradients(params, grads)

Slots (moments, accumulators) are kept per parameter name and created on first
use. ``get_state()`` / ``set_state()`` save and restore them together with the
step counter (``iterations``); ``get_config()`` / :func:`optimizer_from_config`
do the same for the hyper-parameters.

Update rules (``g`` gradient, ``lr`` learning rate, ``k`` the step, 1-based):

* ``SGD``:       ``p -= lr * g``
* ``Momentum``:  ``a = momentum * a + g``; ``p -= lr * a`` (Nesterov: ``p -= lr * (g + momentum * a)``)
* ``RMSProp``:   ``ms = decay * ms + (1 - decay) * g**2`` (``ms`` starts at **ones**, as in
  ``tf.train.RMSPropOptimizer``); centered: ``mg = decay * mg + (1 - decay) * g``,
  ``den = ms - mg**2``; ``mom = momentum * mom + lr * g / sqrt(den + epsilon)``; ``p -= mom``
* ``Adam``:      ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g**2``;
  ``p -= lr * sqrt(1 - b2**k) / (1 - b1**k) * m / (sqrt(v) + epsilon)``
  (``tf.train.AdamOptimizer``'s "epsilon hat" form)
* ``AdamW``:     ``p -= lr * weight_decay * p`` (decoupled weight decay, Keras 3),
  then the ``Adam`` update
* ``Adagrad``:   ``acc += g**2`` (``acc`` starts at ``initial_accumulator_value``);
  ``p -= lr * g / sqrt(acc + epsilon)`` (Keras 3)

``learning_rate`` (any optimizer) is a number > 0, a schedule of
:mod:`rnnrs.schedules`, or any callable of the step: ``lr = learning_rate(s)``
with ``s = iterations`` before the update (0 for the first one, as Keras'
``optimizer.iterations``), evaluated once per ``apply_gradients``. A callable
returning anything but a finite number >= 0 raises ``TypeError`` /
``ValueError`` naming ``learning_rate`` before any parameter changes.

``clip_norm`` (any optimizer) first rescales all gradients together by
``clip_norm / max(global_norm, clip_norm)`` (:func:`clip_by_global_norm`).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Mapping, MutableMapping, Optional, Union

import numpy as np

from ._validate import FLOAT_DTYPES, flag, numeric_array
from .schedules import schedule_from_config, schedule_to_config

#: What ``learning_rate`` accepts: a number, or a callable of the step (a schedule).
LearningRate = Union[float, Callable[[int], float]]


def _number(name: str, value: Any, low: float, high: float, low_open: bool = False, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    v = float(value)
    lo_ok = v > low if low_open else v >= low
    hi_ok = v < high if high_open else v <= high
    if not (math.isfinite(v) and lo_ok and hi_ok):
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name}: expected a number in {lo}{low}, {high}{hi}, got {value}")
    return v


def _gradient_arrays(grads: Any) -> dict[str, np.ndarray]:
    """``grads`` as a dict of numeric arrays (``TypeError`` naming ``grads``
    for anything else: no mapping, or complex, string or object entries)."""
    if not isinstance(grads, Mapping):
        raise TypeError(f"grads: expected a mapping of name to gradient array, got {type(grads).__name__}")
    return {k: numeric_array(f"grads[{k!r}]", g, "a gradient array") for k, g in grads.items()}


def _norm_parts(grads: Mapping[str, np.ndarray]) -> tuple[float, float]:
    """``(scale, root)`` with ``global norm = scale * root``, overflow-safe,
    for gradients already checked (:func:`_gradient_arrays`).

    The sum of squares is accumulated in float64 (``scale = 1``). When it
    overflows (or underflows) although every entry is finite, the entries are
    first divided by the largest absolute value ``scale`` (as
    ``numpy.linalg.norm`` and ``hypot`` do), so ``root`` is in ``[1, sqrt(n)]``.
    ``root`` is NaN or inf exactly when some entry is.
    """
    flats = [g.reshape(-1) for g in grads.values()]
    total = 0.0
    for flat in flats:
        # einsum, not np.dot: no BLAS call (a multi-threaded BLAS dot can cost
        # 100x more than the sum itself), and float64 accumulation for float32.
        total += float(np.einsum("i,i->", flat, flat, dtype=np.float64))
    if 1e-280 < total < math.inf:
        return 1.0, math.sqrt(total)
    top = max((float(np.max(np.abs(f))) for f in flats if f.size), default=0.0)
    if top == 0.0 or not math.isfinite(top):  # all zeros; or NaN / inf entries (total is NaN / inf)
        return 1.0, math.sqrt(total)
    scaled = 0.0
    for flat in flats:
        f = flat.astype(np.float64) / top
        scaled += float(np.einsum("i,i->", f, f))
    return top, math.sqrt(scaled)


def global_norm(grads: Mapping[str, Any]) -> float:
    """``sqrt(sum of every squared entry of every gradient)``, accumulated in
    float64 and overflow-safe: finite gradients give a finite norm (when the
    squares overflow the entries are scaled by the largest one first), unless
    the norm itself exceeds the float64 range (about 1.8e308). NaN or inf in
    a gradient gives a NaN or inf norm."""
    scale, root = _norm_parts(_gradient_arrays(grads))
    return scale * root


def _rescaled(g: np.ndarray, divisor: float, factor: float) -> np.ndarray:
    """``g / divisor * factor`` as a new array of ``g``'s float dtype (float64
    for other dtypes); in float64 when the factor would underflow in float32."""
    out: np.ndarray
    if g.dtype not in FLOAT_DTYPES:
        out = (g / divisor) * factor
    elif divisor == 1.0 and factor >= np.finfo(g.dtype).tiny:
        out = g * g.dtype.type(factor)
    else:
        out = ((g.astype(np.float64) / divisor) * factor).astype(g.dtype)
    return out


def _clipped(arrays: dict[str, np.ndarray], clip: float, parts: tuple[float, float]) -> dict[str, np.ndarray]:
    """``arrays`` rescaled to a global norm of at most ``clip``, given the
    norm's ``_norm_parts``."""
    scale, root = parts
    if not math.isfinite(root):
        return {
            k: np.full_like(g, np.nan, dtype=g.dtype if g.dtype in FLOAT_DTYPES else np.float64)
            for k, g in arrays.items()
        }
    norm = scale * root
    if norm <= clip:
        divisor, factor = 1.0, 1.0
    elif scale == 1.0:
        divisor, factor = 1.0, clip / norm
    else:  # g * clip / (scale * root), without forming the product (it may overflow)
        divisor, factor = scale, clip / root
    return {k: _rescaled(g, divisor, factor) for k, g in arrays.items()}


def clip_by_global_norm(
    grads: Mapping[str, Any], clip_norm: float, use_norm: Optional[float] = None
) -> tuple[dict[str, np.ndarray], float]:
    """Rescales gradients so that their global norm is at most ``clip_norm``
    (``tf.clip_by_global_norm`` on a dict).

    Returns ``(clipped, global_norm)`` where ``global_norm`` is the norm
    before clipping (:func:`global_norm`) and ``clipped[k] = grads[k] *
    clip_norm / max(global_norm, clip_norm)`` (new arrays; the inputs are not
    modified). The rescaling is overflow-safe: finite gradients always give
    finite clipped gradients, even when their squares overflow. As in
    TensorFlow, NaN or inf in a gradient makes every clipped gradient NaN.
    """
    clip = _number("clip_norm", clip_norm, 0.0, math.inf, low_open=True, high_open=True)
    arrays = _gradient_arrays(grads)
    if use_norm is None:
        parts = _norm_parts(arrays)
    else:
        if isinstance(use_norm, bool) or not isinstance(use_norm, numbers.Real):
            raise TypeError(f"use_norm: expected a number >= 0 or None, got {type(use_norm).__name__}")
        if float(use_norm) < 0:
            raise ValueError(f"use_norm: expected a number >= 0 or None, got {use_norm}")
        parts = (1.0, float(use_norm))
    return _clipped(arrays, clip, parts), parts[0] * parts[1]


class Optimizer:
    """Base class: validation, clipping, slots, state and config.

    Args:
        learning_rate: step size: a number > 0, a
            :class:`~rnnrs.schedules.LearningRateSchedule`, or any callable
            ``f(step) -> number`` of the number of updates applied so far
            (0 for the first), evaluated once per :meth:`apply_gradients`
            (its value must be a finite number >= 0). May be changed between
            steps by assigning ``optimizer.learning_rate`` (same choices). A
            number or a schedule of :mod:`rnnrs.schedules` is saved with the
            model; another callable cannot be (``get_config`` and
            ``Sequential.save`` raise ``TypeError`` naming ``learning_rate``).
        clip_norm: optional global-norm clipping threshold (> 0).
    """

    #: names of the per-parameter slots, in the order of ``get_state``
    slot_names: tuple[str, ...] = ()

    def __init__(self, learning_rate: LearningRate, clip_norm: Optional[float] = None) -> None:
        self.learning_rate = learning_rate
        #: the rate used by the last :meth:`apply_gradients` (None before the first)
        self.last_learning_rate: Optional[float] = None
        self._rate = 0.0
        self.clip_norm = (
            None if clip_norm is None else _number("clip_norm", clip_norm, 0.0, math.inf, low_open=True, high_open=True)
        )
        self.iterations = 0
        self._slots: dict[str, dict[str, np.ndarray]] = {s: {} for s in self.slot_names}
        self.last_global_norm: Optional[float] = None

    @property
    def learning_rate(self) -> LearningRate:
        """A number, a schedule or a callable of the step (see the class doc)."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: LearningRate) -> None:
        if isinstance(value, bool) or not (isinstance(value, numbers.Real) or callable(value)):
            raise TypeError(
                f"learning_rate: expected a number, a LearningRateSchedule or a callable of the step, "
                f"got {type(value).__name__}"
            )
        if isinstance(value, numbers.Real):
            value = _number("learning_rate", value, 0.0, math.inf, low_open=True, high_open=True)
        self._learning_rate: LearningRate = value

    def _current_learning_rate(self) -> float:
        """The rate for the next update: the number, or the callable's value
        at ``iterations`` (checked: a finite number >= 0)."""
        lr = self._learning_rate
        if not callable(lr):
            return float(lr)
        step = self.iterations
        value = lr(step)
        if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "fiu":
            value = value[()]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(
                f"learning_rate: expected the schedule to return a number at step {step}, "
                f"got {type(value).__name__} {value!r:.80}"
            )
        v = float(value)
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"learning_rate: expected a finite number >= 0 from the schedule at step {step}, got {v}")
        return v

    # -- the update ---------------------------------------------------------
    def apply_gradients(
        self, params: MutableMapping[str, np.ndarray], grads: Mapping[str, Any], check_finite: bool = False
    ) -> float:
        """One update of ``params`` (in place) from ``grads``.

        ``params``: name → writeable float32/float64 array. ``grads``: name →
        array of the same shape, for some or all of ``params``' names
        (parameters without a gradient are left alone; their slots too).
        With ``check_finite``, a NaN or infinite gradient raises
        ``FloatingPointError`` before anything is updated (otherwise NaN
        propagates into the parameters, as in TensorFlow).

        The learning rate is evaluated once, before anything is updated (a
        callable at ``iterations``, the number of updates so far; the value
        is kept in ``last_learning_rate``); a bad value raises
        ``TypeError``/``ValueError`` naming ``learning_rate`` and leaves
        ``params``, the slots and ``iterations`` unchanged.

        Returns the global norm of ``grads`` (before clipping; overflow-safe,
        see :func:`global_norm`), also kept in ``last_global_norm``.
        ``params`` and ``grads`` must be mappings (``TypeError`` otherwise,
        e.g. for a list of gradients).
        """
        if not isinstance(params, MutableMapping):
            raise TypeError(f"params: expected a mutable mapping of name to array, got {type(params).__name__}")
        if not isinstance(grads, Mapping):
            raise TypeError(f"grads: expected a mapping of name to gradient array, got {type(grads).__name__}")
        checked: dict[str, np.ndarray] = {}
        for name, g in grads.items():
            if name not in params:
                raise ValueError(f"grads: expected names among the parameters {sorted(params)}, got unknown {name!r}")
            p = params[name]
            if not isinstance(p, np.ndarray) or p.dtype not in FLOAT_DTYPES:
                got = type(p).__name__ if not isinstance(p, np.ndarray) else f"dtype {p.dtype}"
                raise TypeError(f"params[{name!r}]: expected a float32 or float64 numpy array, got {got}")
            ga = numeric_array(f"grads[{name!r}]", g, "a gradient array")
            if ga.shape != p.shape:
                raise ValueError(f"grads[{name!r}]: expected shape {p.shape} (the parameter's), got {ga.shape}")
            checked[name] = ga.astype(p.dtype, copy=False)
        rate = self._current_learning_rate()
        parts = _norm_parts(checked)
        norm = parts[0] * parts[1]
        self.last_global_norm = norm
        if flag("check_finite", check_finite) and not math.isfinite(parts[1]):  # NaN or inf in some gradient
            bad = sorted(k for k, g in checked.items() if not np.all(np.isfinite(g)))
            raise FloatingPointError(
                f"grads: expected finite gradients, got NaN or inf in {bad} at step {self.iterations + 1} "
                f"(lower the learning rate or set clip_norm); parameters left unchanged"
            )
        if self.clip_norm is not None:
            checked = _clipped(checked, self.clip_norm, parts)
        self._rate = self.last_learning_rate = rate
        self.iterations += 1
        for name, g in checked.items():
            self._update(name, params[name], g)
        return norm

    def _slot(self, slot: str, name: str, p: np.ndarray, fill: float = 0.0) -> np.ndarray:
        table = self._slots[slot]
        s = table.get(name)
        if s is None:
            s = np.full(p.shape, fill, dtype=p.dtype)
            table[name] = s
        elif s.shape != p.shape:
            raise ValueError(f"params[{name!r}]: expected shape {s.shape} (its optimizer slots'), got {p.shape}")
        elif s.dtype != p.dtype:
            s = s.astype(p.dtype)
            table[name] = s
        return s

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    # -- config and state ---------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Hyper-parameters: ``{"class_name": ..., "config": {...}}`` (JSON-serialisable).

        A schedule of :mod:`rnnrs.schedules` as ``learning_rate`` becomes its
        own ``{"class_name": ..., "config": {...}}``; any other callable raises
        ``TypeError`` naming ``learning_rate`` (it could not be rebuilt)."""
        config = self._config()
        lr = config["learning_rate"]
        if callable(lr):
            config["learning_rate"] = schedule_to_config(lr)
        return {"class_name": type(self).__name__, "config": config}

    def _config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "clip_norm": self.clip_norm}

    def get_state(self) -> dict[str, np.ndarray]:
        """Copies of the step counter (``"iterations"``, an int64 scalar array)
        and of every slot (``"<slot>/<parameter name>"``)."""
        state: dict[str, np.ndarray] = {"iterations": np.array(self.iterations, dtype=np.int64)}
        for slot in self.slot_names:
            for name, arr in self._slots[slot].items():
                state[f"{slot}/{name}"] = arr.copy()
        return state

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restores what :meth:`get_state` returned (copies; replaces every slot)."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state: expected a mapping from get_state(), got {type(state).__name__}")
        if "iterations" not in state:
            raise ValueError(f"state: expected an 'iterations' entry, got keys {sorted(state)}")
        it = np.asarray(state["iterations"])
        if it.shape != () or it.dtype.kind not in "iu" or int(it) < 0:
            raise ValueError(f"state['iterations']: expected a non-negative integer scalar, got {it!r}")
        slots: dict[str, dict[str, np.ndarray]] = {s: {} for s in self.slot_names}
        for key, value in state.items():
            if key == "iterations":
                continue
            slot, _, name = str(key).partition("/")
            if slot not in slots or not name:
                raise ValueError(
                    f"state: expected keys 'iterations' or '<slot>/<name>' with slot in {list(self.slot_names)}, "
                    f"got {key!r}"
                )
            arr = np.asarray(value)
            if arr.dtype not in FLOAT_DTYPES:
                raise TypeError(f"state[{key!r}]: expected a float32 or float64 array, got dtype {arr.dtype}")
            slots[slot][name] = np.array(arr, copy=True)
        self.iterations = int(it)
        self._slots = slots

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Plain gradient descent (``tf.train.GradientDescentOptimizer``): ``p -= lr * g``
    (``lr`` a number, a schedule or a callable of the step)."""

    def __init__(self, learning_rate: LearningRate = 0.01, clip_norm: Optional[float] = None) -> None:
        super().__init__(learning_rate, clip_norm)

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        p -= p.dtype.type(self._rate) * g


class Momentum(Optimizer):
    """Momentum (``tf.train.MomentumOptimizer``): ``a = momentum * a + g``;
    ``p -= lr * a``, or with ``use_nesterov`` ``p -= lr * (g + momentum * a)``
    (``lr`` a number, a schedule or a callable of the step)."""

    slot_names = ("momentum",)

    def __init__(
        self,
        learning_rate: LearningRate = 0.01,
        momentum: float = 0.9,
        use_nesterov: bool = False,
        clip_norm: Optional[float] = None,
    ) -> None:
        super().__init__(learning_rate, clip_norm)
        self.momentum = _number("momentum", momentum, 0.0, 1.0)
        if not isinstance(use_nesterov, (bool, np.bool_)):
            raise TypeError(f"use_nesterov: expected a bool, got {type(use_nesterov).__name__}")
        self.use_nesterov = flag("use_nesterov", use_nesterov)

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "momentum": self.momentum, "use_nesterov": self.use_nesterov}

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        t = p.dtype.type
        a = self._slot("momentum", name, p)
        a *= t(self.momentum)
        a += g
        if self.use_nesterov:
            p -= t(self._rate) * (g + t(self.momentum) * a)
        else:
            p -= t(self._rate) * a


class RMSProp(Optimizer):
    """RMSProp (``tf.train.RMSPropOptimizer``, whose mean square starts at ones
    and whose ``epsilon`` sits inside the square root).

    Args:
        learning_rate: step size (a number, a schedule or a callable of the step).
        decay: discount of the running mean square (TF1's ``decay``, Keras' ``rho``).
        momentum: momentum of the update.
        epsilon: added to the mean square inside the square root.
        centered: normalise by the variance estimate instead of the mean square.
        clip_norm: optional global-norm clipping.
    """

    slot_names = ("rms", "momentum", "mg")

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        decay: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-10,
        centered: bool = False,
        clip_norm: Optional[float] = None,
    ) -> None:
        super().__init__(learning_rate, clip_norm)
        self.decay = _number("decay", decay, 0.0, 1.0)
        self.momentum = _number("momentum", momentum, 0.0, 1.0)
        self.epsilon = _number("epsilon", epsilon, 0.0, math.inf, high_open=True)
        if not isinstance(centered, (bool, np.bool_)):
            raise TypeError(f"centered: expected a bool, got {type(centered).__name__}")
        self.centered = flag("centered", centered)

    def _config(self) -> dict[str, Any]:
        return {
            **super()._config(),
            "decay": self.decay,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        t = p.dtype.type
        ms = self._slot("rms", name, p, fill=1.0)
        mom = self._slot("momentum", name, p)
        ms *= t(self.decay)
        ms += t(1.0 - self.decay) * np.square(g)
        if self.centered:
            mg = self._slot("mg", name, p)
            mg *= t(self.decay)
            mg += t(1.0 - self.decay) * g
            denom = ms - np.square(mg)
        else:
            denom = ms.copy()
        denom += t(self.epsilon)
        np.sqrt(denom, out=denom)
        mom *= t(self.momentum)
        mom += t(self._rate) * g / denom
        p -= mom


class Adam(Optimizer):
    """Adam (``tf.train.AdamOptimizer``; Kingma & Ba, 2015).

    Args:
        learning_rate: step size (the chapter uses 0.001; a number, a schedule
            or a callable of the step).
        beta1, beta2: decay rates of the first and second moment estimates.
        epsilon: TensorFlow's "epsilon hat", added to ``sqrt(v)``.
        clip_norm: optional global-norm clipping.
    """

    slot_names = ("m", "v")

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        clip_norm: Optional[float] = None,
    ) -> None:
        super().__init__(learning_rate, clip_norm)
        self.beta1 = _number("beta1", beta1, 0.0, 1.0, high_open=True)
        self.beta2 = _number("beta2", beta2, 0.0, 1.0, high_open=True)
        self.epsilon = _number("epsilon", epsilon, 0.0, math.inf, high_open=True)
        self._scratch: dict[str, np.ndarray] = {}

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "beta1": self.beta1, "beta2": self.beta2, "epsilon": self.epsilon}

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        t = p.dtype.type
        m = self._slot("m", name, p)
        v = self._slot("v", name, p)
        k = self.iterations
        lr_t = self._rate * math.sqrt(1.0 - self.beta2**k) / (1.0 - self.beta1**k)
        tmp = self._scratch.get(name)
        if tmp is None or tmp.shape != p.shape or tmp.dtype != p.dtype:
            tmp = np.empty_like(p)
            self._scratch[name] = tmp
        # m = b1 m + (1 - b1) g
        m *= t(self.beta1)
        np.multiply(g, t(1.0 - self.beta1), out=tmp)
        m += tmp
        # v = b2 v + (1 - b2) g^2
        v *= t(self.beta2)
        np.multiply(g, g, out=tmp)
        tmp *= t(1.0 - self.beta2)
        v += tmp
        # p -= lr_t m / (sqrt(v) + eps)
        np.sqrt(v, out=tmp)
        tmp += t(self.epsilon)
        np.divide(m, tmp, out=tmp)
        tmp *= t(lr_t)
        p -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay (``keras.optimizers.AdamW``; Loshchilov & Hutter, 2019).

    Each update first shrinks every parameter that has a gradient,
    ``p -= lr * weight_decay * p`` (after clipping, with the same ``lr`` as
    the step), then applies the :class:`Adam` update from the gradient
    (Keras 3's order).

    Args:
        learning_rate: step size (a number, a schedule or a callable of the step).
        weight_decay: decay per unit of learning rate (a finite number >= 0;
            Keras' default 0.004).
        beta1, beta2: decay rates of the moment estimates (Keras' ``beta_1``
            and ``beta_2``; named as in :class:`Adam` here).
        epsilon: added to ``sqrt(v)`` ("epsilon hat", as in Keras). The
            default is Keras' 1e-7; :class:`Adam` keeps TensorFlow 1.x's 1e-8.
        clip_norm: optional global-norm clipping.
    """

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        weight_decay: float = 0.004,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-7,
        clip_norm: Optional[float] = None,
    ) -> None:
        super().__init__(learning_rate, beta1, beta2, epsilon, clip_norm)
        self.weight_decay = _number("weight_decay", weight_decay, 0.0, math.inf, high_open=True)

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "weight_decay": self.weight_decay}

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        t = p.dtype.type
        if self.weight_decay:
            p -= p * t(self.weight_decay) * t(self._rate)
        super()._update(name, p, g)


class Adagrad(Optimizer):
    """Adagrad (``keras.optimizers.Adagrad``; Duchi et al., 2011):
    ``acc += g**2``; ``p -= lr * g / sqrt(acc + epsilon)``.

    Args:
        learning_rate: step size (a number, a schedule or a callable of the step).
        initial_accumulator_value: the accumulator's starting value (a finite number >= 0).
        epsilon: added to the accumulator inside the square root (a finite
            number >= 0; > 0 when ``initial_accumulator_value`` is 0, or a
            zero gradient would give 0/0).
        clip_norm: optional global-norm clipping.
    """

    slot_names = ("accumulator",)

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        clip_norm: Optional[float] = None,
    ) -> None:
        super().__init__(learning_rate, clip_norm)
        self.initial_accumulator_value = _number(
            "initial_accumulator_value", initial_accumulator_value, 0.0, math.inf, high_open=True
        )
        self.epsilon = _number("epsilon", epsilon, 0.0, math.inf, high_open=True)
        if self.epsilon == 0.0 and self.initial_accumulator_value == 0.0:
            raise ValueError(
                "epsilon: expected a number > 0 when initial_accumulator_value is 0 (0/0 otherwise), got 0"
            )

    def _config(self) -> dict[str, Any]:
        return {
            **super()._config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        t = p.dtype.type
        acc = self._slot("accumulator", name, p, fill=self.initial_accumulator_value)
        acc += np.square(g)
        den = acc + t(self.epsilon)
        np.sqrt(den, out=den)
        p -= t(self._rate) * g / den


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "SGD": SGD,
    "Momentum": Momentum,
    "RMSProp": RMSProp,
    "Adam": Adam,
    "AdamW": AdamW,
    "Adagrad": Adagrad,
}


def optimizer_from_config(config: Mapping[str, Any]) -> Optimizer:
    """The optimizer described by ``get_config()``'s output (without its
    state); a ``learning_rate`` given as a schedule's configuration is rebuilt
    with :func:`rnnrs.schedules.schedule_from_config` (``ValueError`` naming
    ``learning_rate`` for anything but a schedule of :mod:`rnnrs.schedules`)."""
    if not isinstance(config, Mapping) or "class_name" not in config:
        raise ValueError(f"config: expected {{'class_name': ..., 'config': {{...}}}}, got {config!r}")
    cls = OPTIMIZERS.get(str(config["class_name"]))
    if cls is None:
        raise ValueError(f"config['class_name']: expected one of {sorted(OPTIMIZERS)}, got {config['class_name']!r}")
    kwargs = dict(config.get("config", {}))
    if isinstance(kwargs.get("learning_rate"), Mapping):
        kwargs["learning_rate"] = schedule_from_config(kwargs["learning_rate"])
    return cls(**kwargs)


def get(identifier: Any) -> Optimizer:
    """An optimizer from an instance (returned as is) or a name, in any case
    (``"sgd"``, ``"momentum"``, ``"rmsprop"``, ``"adam"``, ``"adamw"``,
    ``"adagrad"``, with default settings)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        by_lower: dict[str, Callable[[], Optimizer]] = {k.lower(): v for k, v in OPTIMIZERS.items()}
        cls = by_lower.get(identifier.lower())
        if cls is not None:
            return cls()
        raise ValueError(f"optimizer: expected one of {sorted(by_lower)} or an Optimizer, got {identifier!r}")
    raise TypeError(f"optimizer: expected an rnnrs Optimizer or its name, got {type(identifier).__name__}")
