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


README = ROOT / "README.md"


def readme_links() -> list[str]:
    """The targets of ``[text](target)`` links outside code blocks and spans."""
    text = README.read_text(encoding="utf-8")
    prose = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.S))
    return re.findall(r"\]\(([^)\s]+)\)", prose)


def test_readme_links_resolve_to_files_in_the_repository():
    """Every relative link names a file of the repository, without `../`
    (the contract used to be linked outside it)."""
    links = [t for t in readme_links() if not t.startswith(("http://", "https://", "#"))]
    for page in (
        "docs/api.md",
        "docs/semantics.md",
        "docs/tensorflow.md",
        "docs/roadmap.md",
        "LICENSE",
        "CHANGELOG.md",
    ):
        assert page in links, f"the README does not link {page}"
    for target in links:
        assert "../" not in target, target
        path = (ROOT / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), target
    assert "DESIGN.md" not in README.read_text(encoding="utf-8")


def test_readme_says_what_it_implements_for_whom_and_what_not():
    text = README.read_text(encoding="utf-8")
    assert "*Hands-On Machine Learning" in text and "chapter 14" in text and "TensorFlow 1.x" in text
    assert "It is for NumPy users" in text
    assert "## What rnnrs does not do" in text and "No GPU" in text
    assert "once merged" not in text  # --cell lstm|gru work
    assert "FAIL" not in text  # benchmark tables live in benches/README.md


def test_readme_states_one_demo_time_and_the_set_up():
    """The main job's time is stated once (it used to be 4 s in one place and
    2.3 s in another), and the set-up says where the scripts install."""
    text = README.read_text(encoding="utf-8")
    assert len(re.findall(r"the training takes about \d+ s", text)) == 1
    digits_row = next(line for line in text.splitlines() if line.startswith("| `python examples/digits_classifier.py`"))
    assert not re.search(r"\d s\b", digits_row), digits_row
    assert ".venv/" in text and "python3 -m venv .venv" in text and "RNNRS_PYTHON" in text
    assert "target/" in text and "--print-python" in text
