"""Shared by the examples: the ``--cell`` option, common flags, the time-series model."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Optional

import numpy as np

import rnnrs

#: ``--cell`` choice → rnnrs class name
CELLS = {"rnn": "BasicRNNCell", "lstm": "BasicLSTMCell", "gru": "GRUCell"}
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")


def make_cell(kind: str, num_units: int, seed: Optional[int] = None) -> rnnrs.RNNCell:
    """A ``num_units`` cell of the ``--cell`` kind (``rnn``: BasicRNNCell,
    ``lstm``: BasicLSTMCell, ``gru``: GRUCell)."""
    cell: rnnrs.RNNCell = getattr(rnnrs, CELLS[kind])(num_units, seed=seed)
    return cell


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--cell", choices=sorted(CELLS), default="rnn", help="recurrent cell (default: rnn = BasicRNNCell)")
    p.add_argument("--quick", action="store_true", help="reduced size (what the tests run)")
    p.add_argument("--seed", type=int, default=0, help="seeds weights, data and shuffling (default 0)")
    p.add_argument(
        "--verbose",
        default="auto",
        choices=["auto", "0", "1", "2"],
        help="progress: auto = a bar on a terminal, quiet otherwise (default); 0 quiet; 1 bar; 2 a line per epoch",
    )
    return p


def verbosity(value: str) -> Any:
    return value if value == "auto" else int(value)


def series_model(cell: rnnrs.RNNCell) -> rnnrs.SequenceRegressor:
    """The chapter's time-series predictor: the cell's outputs projected to one
    value per step by an ``OutputProjectionWrapper``."""
    return rnnrs.SequenceRegressor(rnnrs.OutputProjectionWrapper(cell, 1, seed=0))


def train_series(
    model: rnnrs.Sequential, n_train: int, epochs: int, seed: int, verbose: Any, batch_size: int = 50
) -> tuple[float, float, float]:
    """Fits ``model`` on ``n_train`` random 20-step windows of the series
    (batches of 50, as the chapter); returns ``(test MSE, training seconds,
    steps per second)`` on 1000 fresh windows."""
    x, y = rnnrs.datasets.time_series_windows(n_train, 20, seed=seed)
    x_test, y_test = rnnrs.datasets.time_series_windows(1000, 20, seed=seed + 10_000)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, seed=seed, verbose=verbose)
    seconds = time.perf_counter() - start
    steps = epochs * -(-n_train // batch_size)
    return model.evaluate(x_test, y_test)["loss"], seconds, steps / seconds


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def instance_window(n_steps: int = 20, resolution: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The chapter's plotted instance: ``t`` from 12.2 over ``n_steps + 1``
    points; returns ``(t, x [1, n_steps, 1], y [1, n_steps, 1])``."""
    t = np.linspace(12.2, 12.2 + resolution * (n_steps + 1), n_steps + 1)
    values = rnnrs.datasets.time_series(t).astype(np.float32)
    return t, values[None, :-1, None], values[None, 1:, None]
