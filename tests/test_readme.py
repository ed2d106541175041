"""The README's Python examples run as written, and the demo script runs."""

from __future__ import annotations

import pathlib
import re
import runpy

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def python_blocks(path: pathlib.Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def test_readme_examples_run_in_order() -> None:
    blocks = python_blocks(ROOT / "README.md")
    assert len(blocks) >= 2, "the README lost its examples"
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102


def test_chapter_demo_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(ROOT / "examples" / "chapter14.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "static_rnn equals the hand-built RNN: True" in out
    assert "dynamic_rnn equals static_rnn: True" in out
    accuracy = float(re.findall(r"test accuracy ([0-9.]+)", out)[-1])
    assert accuracy > 0.85, out
