"""Shared test helpers: problem generation, hypothesis strategies, tolerances.

Kept in a plain module (not in conftest.py) so test modules can import it;
conftest.py puts this directory on sys.path and re-uses the strategies for
its fixtures.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import strategies as st

import reference as ref

DTYPES = (np.float32, np.float64)
ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")
# Which gradients backprop() receives: d_outputs only, d_state only, both, or neither (zeros).
GRAD_MODES = ("outputs", "state", "both", "neither")

# (rtol, atol per unit of scale). The absolute tolerance is multiplied by
# max(1, max|expected|) so that large gradients (sums over batch and time) get
# a proportionate allowance.
TOLERANCES = {
    np.dtype(np.float32): (2e-5, 2e-5),
    np.dtype(np.float64): (1e-10, 1e-10),
}


def assert_close(got, want, dtype, what=""):
    """Compare a library result (in ``dtype``) with a float64 reference value."""
    got = np.asarray(got)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != expected {want.shape}"
    assert got.dtype == np.dtype(dtype), f"{what}: dtype {got.dtype} != expected {np.dtype(dtype)}"
    rtol, atol = TOLERANCES[np.dtype(dtype)]
    finite = want[np.isfinite(want)]
    scale = max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=rtol, atol=atol * scale, err_msg=what)


def glorot_bound(fan_in, fan_out):
    return float(np.sqrt(6.0 / (fan_in + fan_out)))


# --------------------------------------------------------------------------
# A random BasicRNN problem: data, weights and upstream gradients
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RNNProblem:
    """All arrays are float64 'master' copies; ``cast(dtype)`` gives what the library sees."""

    x: np.ndarray  # [B, T, I]; padded positions hold garbage, not zeros
    h0: np.ndarray | None  # [B, H] or None (zero initial state)
    lengths: np.ndarray | None  # [B] int64 or None (all rows run T steps)
    kernel: np.ndarray  # [I + H, H]
    bias: np.ndarray  # [H]
    d_outputs: np.ndarray  # [B, T, H]; padded positions hold garbage that must be ignored
    d_state: np.ndarray  # [B, H]

    @property
    def shape(self):
        B, T, I = self.x.shape
        return B, T, I, self.kernel.shape[1]

    def cast(self, dtype):
        """Round every float array to ``dtype`` (and back to float64 for the reference)."""

        def c(a):
            return None if a is None else np.asarray(a, dtype=dtype).astype(np.float64)

        return replace(
            self,
            x=c(self.x),
            h0=c(self.h0),
            kernel=c(self.kernel),
            bias=c(self.bias),
            d_outputs=c(self.d_outputs),
            d_state=c(self.d_state),
        )

    def grads_for(self, mode):
        """(d_outputs, d_state) for a GRAD_MODES entry; None stands for zeros."""
        return {
            "outputs": (self.d_outputs, None),
            "state": (None, self.d_state),
            "both": (self.d_outputs, self.d_state),
            "neither": (None, None),
        }[mode]

    def reference(self, activation, mode="both"):
        """Float64 reference: outputs, state, and (d_x, d_h0, d_kernel, d_bias)."""
        outputs, state, cache = ref.rnn_forward(self.x, self.h0, self.kernel, self.bias, activation, self.lengths)
        grads = ref.rnn_backward(cache, *self.grads_for(mode))
        return outputs, state, grads


def make_problem(
    seed,
    B,
    T,
    I,
    H,
    *,
    with_h0=True,
    lengths=None,
    weight_scale=1.0,
):
    """Deterministic random problem from ``seed``. ``lengths`` is a sequence or None."""
    rng = np.random.default_rng(seed)
    bound = weight_scale * glorot_bound(I + H, H)
    return RNNProblem(
        x=rng.normal(size=(B, T, I)),
        h0=rng.uniform(-0.9, 0.9, size=(B, H)) if with_h0 else None,
        lengths=None if lengths is None else np.asarray(lengths, dtype=np.int64),
        kernel=rng.uniform(-bound, bound, size=(I + H, H)),
        bias=rng.normal(scale=0.5, size=H),
        d_outputs=rng.normal(size=(B, T, H)),
        d_state=rng.normal(size=(B, H)),
    )


def padding_mask(lengths, B, T):
    """Boolean [B, T]: True where t >= lengths[b] (padded positions)."""
    lengths = ref.as_lengths(lengths, B, T)
    return np.arange(T)[None, :] >= lengths[:, None]


def as_length_container(lengths, kind):
    """Pass sequence_length as a list, an int32 array or an int64 array."""
    if lengths is None:
        return None
    return {
        "list": [int(v) for v in lengths],
        "int32": np.asarray(lengths, dtype=np.int32),
        "int64": np.asarray(lengths, dtype=np.int64),
    }[kind]


# --------------------------------------------------------------------------
# Hypothesis strategies
# --------------------------------------------------------------------------

seeds = st.integers(min_value=0, max_value=2**32 - 1)


def ragged_lengths(batch, time):
    """[batch] lengths in [0, time] with 0 and time (the edge cases) drawn often."""
    one = st.one_of(st.just(0), st.just(time), st.integers(0, time))
    return st.lists(one, min_size=batch, max_size=batch)


@st.composite
def rnn_problems(draw, max_batch=5, max_time=6, max_input=5, max_units=6, min_time=1):
    """An RNNProblem with small random sizes, optional h0 and optional ragged lengths."""
    B = draw(st.integers(1, max_batch), label="B")
    T = draw(st.integers(min_time, max_time), label="T")
    I = draw(st.integers(1, max_input), label="I")
    H = draw(st.integers(1, max_units), label="H")
    with_h0 = draw(st.booleans(), label="with_h0")
    lengths = draw(st.none() | ragged_lengths(B, T), label="lengths")
    weight_scale = draw(st.sampled_from([0.5, 1.0, 1.5]), label="weight_scale")
    seed = draw(seeds, label="seed")
    return make_problem(seed, B, T, I, H, with_h0=with_h0, lengths=lengths, weight_scale=weight_scale)


length_containers = st.sampled_from(["list", "int32", "int64"])
grad_modes = st.sampled_from(GRAD_MODES)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


@contextmanager
def raises_naming(exc_type, argument):
    """Expect ``exc_type`` whose message names ``argument`` and says 'expected ..., got ...'.

    ``argument`` is a regular expression (use ``a|b`` when two names are acceptable).
    """
    with pytest.raises(exc_type, match=argument) as info:
        yield info
    message = str(info.value)
    assert re.search(r"(?i)expected", message), f"message lacks 'expected': {message!r}"
    assert re.search(r"(?i)\bgot\b", message), f"message lacks 'got': {message!r}"


def in_threads(work, count=4, timeout=120.0):
    """``work()`` called from ``count`` Python threads at once: their results,
    in thread order. Fails when a call raised (re-raising the first error) or
    did not finish within ``timeout`` seconds (a hang)."""
    import threading

    results = [None] * count
    errors = []

    def run(i):
        try:
            results[i] = work()
        except BaseException as e:  # re-raised below, on the test's thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a call hung"
    if errors:
        raise errors[0]
    return results
