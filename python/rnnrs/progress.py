"""A small text progress bar for training loops (no dependency).

On a terminal it redraws one line in place (``\\r``), at most every
``interval`` seconds::

    epoch  3/30 [===========>..................]  4/10  0.1s  loss 0.4127  accuracy 0.8800

:func:`progress_mode` decides what ``fit(verbose=...)`` prints: ``"auto"``
gives the bar when the stream is a terminal and nothing otherwise (logs and
pipes stay clean); ``0`` nothing; ``1`` the bar; ``2`` one line per epoch.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
from typing import Any, Mapping, Optional, TextIO


def progress_mode(verbose: Any, stream: TextIO) -> int:
    """``0`` quiet, ``1`` bar, ``2`` a line per epoch, for ``fit``'s ``verbose``
    (``"auto"`` or the integer 0, 1 or 2: ``TypeError`` for another type,
    bools included, ``ValueError`` for another value)."""
    if isinstance(verbose, str):
        if verbose != "auto":
            raise ValueError(f"verbose: expected 'auto', 0, 1 or 2, got {verbose!r}")
        isatty = getattr(stream, "isatty", None)
        return 1 if callable(isatty) and isatty() else 0
    if isinstance(verbose, bool) or not isinstance(verbose, numbers.Integral):
        raise TypeError(f"verbose: expected 'auto', 0, 1 or 2, got {type(verbose).__name__} {verbose!r}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose: expected 'auto', 0, 1 or 2, got {verbose!r}")
    return int(verbose)


def format_metrics(metrics: Mapping[str, float]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())


def _number(name: str, value: Any, kind: type, what: str, ok: bool) -> None:
    """``TypeError`` unless ``value`` is a ``kind`` (never a bool), ``ValueError`` unless ``ok``."""
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{name}: expected {what}, got {type(value).__name__} {value!r}")
    if not ok:
        raise ValueError(f"{name}: expected {what}, got {value!r}")


class ProgressBar:
    """One epoch's bar.

    Args:
        total: number of steps (batches), an integer >= 0.
        prefix: printed before the bar (e.g. ``"epoch  3/30"``).
        stream: where to write (default ``sys.stdout`` at construction).
        width: characters of the bar (an integer >= 1).
        interval: minimum seconds between redraws, >= 0 (the last step always draws).
    """

    def __init__(
        self, total: int, prefix: str = "", stream: Optional[TextIO] = None, width: int = 30, interval: float = 0.1
    ) -> None:
        _number("total", total, numbers.Integral, "an integer >= 0", isinstance(total, numbers.Real) and total >= 0)
        if not isinstance(prefix, str):
            raise TypeError(f"prefix: expected a str, got {type(prefix).__name__}")
        if stream is not None and not callable(getattr(stream, "write", None)):
            raise TypeError(f"stream: expected a text stream with write() or None, got {type(stream).__name__}")
        _number("width", width, numbers.Integral, "an integer >= 1", isinstance(width, numbers.Real) and width >= 1)
        good = isinstance(interval, numbers.Real) and 0 <= interval < math.inf
        _number("interval", interval, numbers.Real, "a finite number of seconds >= 0", good)
        self.total = int(total)
        self.prefix = prefix
        self.stream = sys.stdout if stream is None else stream
        self.width = int(width)
        self.interval = float(interval)
        self.start = time.perf_counter()
        self._last_draw = -float("inf")
        self._last_len = 0

    def _line(self, done: int, metrics: Mapping[str, float]) -> str:
        frac = done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        bar = "=" * max(filled - 1, 0) + (">" if 0 < filled < self.width else "=" if filled else "")
        bar = bar.ljust(self.width, ".")
        digits = len(str(self.total))
        elapsed = time.perf_counter() - self.start
        parts = [f"{self.prefix} [{bar}] {done:>{digits}}/{self.total}  {elapsed:.1f}s"]
        if metrics:
            parts.append(format_metrics(metrics))
        return "  ".join(parts).lstrip()

    def update(self, done: int, metrics: Optional[Mapping[str, float]] = None) -> None:
        """Redraws the line for ``done`` finished steps (throttled)."""
        now = time.perf_counter()
        if done < self.total and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        self._write("\r" + self._pad(self._line(done, metrics or {})))

    def close(self, metrics: Optional[Mapping[str, float]] = None) -> None:
        """Draws the finished bar with ``metrics`` and ends the line."""
        self._write("\r" + self._pad(self._line(self.total, metrics or {})) + "\n")

    def _pad(self, line: str) -> str:
        padded = line.ljust(self._last_len)
        self._last_len = len(line)
        return padded

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
