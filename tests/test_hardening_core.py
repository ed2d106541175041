"""Hardening of the core's edges: absurd sizes, Ctrl-C, the thread pool and ``RNNRS_NUM_THREADS``.

The absurd-size cases run in a child process under an address-space limit (4 GiB), so that a
regression (an abort on a failed allocation, a spin) cannot take the test run down; the Ctrl-C
cases send SIGINT to a child in the middle of a long call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import rnnrs

POSIX = sys.platform.startswith("linux")
needs_linux = pytest.mark.skipif(not POSIX, reason="address-space limits and /proc are Linux-only")

# The child's preamble: a 4 GiB address-space limit, then rnnrs.
LIMITED = """
import resource, sys, time
_hard = resource.getrlimit(resource.RLIMIT_AS)[1]
_limit = 4 << 30 if _hard == resource.RLIM_INFINITY else min(4 << 30, _hard)
resource.setrlimit(resource.RLIMIT_AS, (_limit, _limit))
import numpy as np
import rnnrs
"""

CELLS = {
    "rnn": "rnnrs.BasicRNNCell(1)",
    "lstm": "rnnrs.BasicLSTMCell(1)",
    "gru": "rnnrs.GRUCell(1)",
    "gru_reset_after": "rnnrs.GRUCell(1, reset_after=True)",
}


def run_child(code: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RUST_BACKTRACE="0")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, env=env
    )


def assert_raised(child: subprocess.CompletedProcess[str], exc: str, arg: str) -> None:
    """The child died of a Python exception ``exc`` whose message starts with ``arg``
    (exit status 1), not of a signal (an abort is -6) or a timeout."""
    last = child.stderr.strip().splitlines()[-1] if child.stderr.strip() else ""
    assert child.returncode == 1, (child.returncode, child.stderr[-2000:])
    assert last.startswith(f"{exc}: {arg}:"), child.stderr[-2000:]


@needs_linux
@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize(
    ("shape", "extra"),
    [
        ((1, 2**31, 0), ""),  # aborted in Plan::new ("memory allocation of 17179869184 bytes failed")
        ((1, 2**40, 0), ", sequence_length=[0]"),  # no steps, but the outputs [1, 2**40, 1]: aborted in the scatter
        ((2**20, 2**20, 0), ""),  # spun in Plan::new for minutes
    ],
)
def test_absurd_sizes_raise_memory_error_at_once(kind: str, shape: tuple[int, ...], extra: str) -> None:
    """Pins item 1 and 2 of issue 15: zero-byte inputs whose call would need absurd buffers raise
    ``MemoryError`` naming ``inputs`` within a second, before allocating, for every cell kind."""
    child = run_child(
        LIMITED
        + f"""
cell = {CELLS[kind]}
x = np.zeros({shape}, np.float32)
start = time.perf_counter()
try:
    rnnrs.dynamic_rnn(cell, x{extra})
finally:
    print("elapsed", time.perf_counter() - start, file=sys.stderr)
"""
    )
    assert_raised(child, "MemoryError", "inputs")
    elapsed = float(next(line for line in child.stderr.splitlines() if line.startswith("elapsed")).split()[1])
    assert elapsed < 1.0, elapsed


@needs_linux
def test_backward_under_a_tight_limit_raises_memory_error() -> None:
    """Pins item 1 for the backward pass: when its buffers cannot be allocated, ``MemoryError``
    naming ``inputs``, never an abort. After the forward pass the child cuts its address space to
    what it holds plus 16 MiB; the backward pass needs about 100 MiB more (the input gradients,
    gathered and in the caller's layout; its gate gradients are one chunk of steps'). (mimalloc's
    arena reservation is turned off so that the limit binds at once.)"""
    code = """
import resource, sys
import numpy as np
import rnnrs
cell = rnnrs.BasicLSTMCell(64)
out, state, bp = rnnrs.dynamic_rnn(cell, np.zeros((1, 200_000, 64), np.float32), return_backprop=True)
dy = np.ones_like(out)
size = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + (16 << 20), resource.getrlimit(resource.RLIMIT_AS)[1]))
print("limited", file=sys.stderr, flush=True)
bp(d_outputs=dy)
"""
    env = dict(os.environ, RUST_BACKTRACE="0", MIMALLOC_ARENA_RESERVE="0")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert "limited" in child.stderr, child.stderr[-2000:]
    assert_raised(child, "MemoryError", "inputs")
    assert "the gathered input gradients" in child.stderr


# ---------------------------------------------------------------------------------------------
# Ctrl-C

LONG_FORWARD = """
import numpy as np, sys, time
import rnnrs
rnnrs.set_num_threads({threads})
cell = rnnrs.BasicLSTMCell(1024, seed=0)
x = np.zeros((1, 30000, 1), np.float32)  # about 20 s
cell.build(1)
print("start", flush=True)
t0 = time.perf_counter()
try:
    rnnrs.dynamic_rnn(cell, x)
except KeyboardInterrupt:
    print("interrupted after", time.perf_counter() - t0, flush=True)
    sys.exit(3)
print("finished", flush=True)
"""

LONG_BACKWARD = """
import numpy as np, sys, time
import rnnrs
rnnrs.set_num_threads({threads})
cell = rnnrs.BasicLSTMCell(1024, seed=0)
x = np.zeros((1, 10000, 1), np.float32)  # forward ~5 s, backward ~7 s
out, state, bp = rnnrs.dynamic_rnn(cell, x, return_backprop=True)
dy = np.ones_like(out)
print("start", flush=True)
t0 = time.perf_counter()
try:
    bp(d_outputs=dy)
except KeyboardInterrupt:
    print("interrupted after", time.perf_counter() - t0, flush=True)
    sys.exit(3)
print("finished after", time.perf_counter() - t0, flush=True)
"""


def interrupt_child(code: str) -> tuple[float, str]:
    """Starts ``code``, sends SIGINT 0.5 s after it prints ``start``, and returns the seconds from
    the signal to the child's exit and its output."""
    # A child started from a background job of a non-interactive shell inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: install it whatever the parent ignores.
    handler = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", handler + textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "start", (line, proc.stderr.read() if proc.stderr else "")
        time.sleep(0.5)
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        return time.perf_counter() - sent, out + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@needs_linux
@pytest.mark.parametrize("threads", [1, 2])
def test_ctrl_c_stops_a_long_forward_pass(threads: int) -> None:
    """Pins item 2 of issue 15: SIGINT during a ~20 s ``dynamic_rnn`` raises ``KeyboardInterrupt``
    within about a second (the core polls for signals between time steps), with the loop inline
    (1 thread) or on the pool (2 threads)."""
    took, out = interrupt_child(LONG_FORWARD.format(threads=threads))
    assert "interrupted after" in out, out
    assert took < 2.0, (took, out)


@needs_linux
@pytest.mark.parametrize("threads", [1, 2])
def test_ctrl_c_stops_a_long_backward_pass(threads: int) -> None:
    """Pins item 2 of issue 15 for backpropagation through time: SIGINT during a long backward
    pass raises ``KeyboardInterrupt`` within about a second, its steps run whole (1 thread) or
    split by units over the pool (2 threads: one row, 1024 units)."""
    took, out = interrupt_child(LONG_BACKWARD.format(threads=threads))
    assert "interrupted after" in out, out
    assert took < 2.0, (took, out)


# ---------------------------------------------------------------------------------------------
# Threads


def process_threads() -> int:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("Threads:")).split()[1])


@needs_linux
@pytest.mark.parametrize(
    "n", [257, 2**40, 2**63, 2**64, 2**200, 10**5000], ids=["257", "2**40", "2**63", "2**64", "2**200", "10**5000"]
)
def test_set_num_threads_above_the_maximum_starts_nothing(n: int) -> None:
    """Pins item 3 of issue 15: ``set_num_threads(2**40)`` spawned hundreds of threads before
    failing and ``2**64`` raised ``OverflowError``; now every integer above 256 raises
    ``ValueError`` naming ``num_threads``, the pool keeps its size and no thread starts."""
    before = rnnrs.get_num_threads()
    threads = process_threads()
    with pytest.raises(ValueError, match=r"^num_threads: expected an integer in \[1, 256\], got "):
        rnnrs.set_num_threads(n)
    assert rnnrs.get_num_threads() == before
    assert process_threads() <= threads
    # the core checks too, for any size of int
    with pytest.raises(ValueError, match=r"^num_threads: expected an integer in \[1, 256\]"):
        rnnrs._rnnrs.set_num_threads(n)
    assert rnnrs.get_num_threads() == before
    assert process_threads() <= threads


def test_set_num_threads_limits_and_types() -> None:
    before = rnnrs.get_num_threads()
    try:
        assert rnnrs._rnnrs.MAX_THREADS == 256
        for bad in (0, -1, -(2**70)):
            with pytest.raises(ValueError, match="^num_threads: "):
                rnnrs.set_num_threads(bad)
        for bad in (2.0, "4", True, None):
            with pytest.raises(TypeError, match="^num_threads: "):
                rnnrs.set_num_threads(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="^num_threads: "):
            rnnrs._rnnrs.set_num_threads(True)
        rnnrs.set_num_threads(1)
        assert rnnrs.get_num_threads() == 1
        rnnrs.set_num_threads(np.int64(3))  # type: ignore[arg-type]
        assert rnnrs.get_num_threads() == 3
    finally:
        rnnrs.set_num_threads(before)


def env_child(value: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RNNRS_NUM_THREADS=value)
    code = "import warnings; warnings.simplefilter('always'); import rnnrs; print(rnnrs.get_num_threads())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("value", ["abc", "0", "257", "-3", "2.5", ""])
def test_invalid_num_threads_variable_warns(value: str) -> None:
    """Pins item 10 (its last part) of issue 15: ``RNNRS_NUM_THREADS=abc`` was ignored without a
    word; now importing rnnrs warns (``RuntimeWarning``) naming the variable, the value and the
    thread count used instead."""
    child = env_child(value)
    assert child.returncode == 0, child.stderr
    assert "RuntimeWarning: RNNRS_NUM_THREADS: expected an integer in [1, 256], got " + repr(value) in child.stderr
    used = int(child.stdout.split()[-1])
    assert f"the thread pool uses {used} threads" in child.stderr
    assert 1 <= used <= 256


@pytest.mark.parametrize("value", ["1", "3", " 2 ", "256"])
def test_valid_num_threads_variable_is_used_silently(value: str) -> None:
    child = env_child(value)
    assert child.returncode == 0, child.stderr
    assert "RNNRS_NUM_THREADS" not in child.stderr
    assert int(child.stdout.split()[-1]) == int(value)


def test_no_warning_without_the_variable() -> None:
    env = {k: v for k, v in os.environ.items() if k != "RNNRS_NUM_THREADS"}
    code = "import warnings; warnings.simplefilter('error'); import rnnrs"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert child.returncode == 0, child.stderr
