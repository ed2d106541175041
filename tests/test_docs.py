"""The pages in docs/ stay true to the code they show."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"
END_MARKER = "// ---- end of the example in docs/architecture.md ----"


def test_the_example_cell_is_the_compiled_one():
    """docs/architecture.md shows rust/cell/reference/example.rs (compiled and
    tested with the crate) from its first `use` to the end marker, unchanged."""
    page = ARCHITECTURE.read_text()
    match = re.search(r"<!-- example: (\S+) -->\n```rust\n(.*?)```\n", page, re.S)
    assert match, "the page's example block is missing"
    source = (ROOT / match.group(1)).read_text()
    start = source.index("\nuse ") + 1
    end = source.index(END_MARKER)
    assert match.group(2) == source[start:end].rstrip("\n") + "\n"


def test_the_files_the_page_names_exist():
    page = ARCHITECTURE.read_text()
    for path in sorted(set(re.findall(r"`((?:rust|python|tests|scripts|benches)/[\w/.]+)`", page))):
        if path.endswith("indrnn.rs"):  # the file the example would add
            continue
        assert (ROOT / path).exists(), path


# ---- the user-facing pages: api.md, semantics.md, tensorflow.md, roadmap.md ----

DOCS = ROOT / "docs"
API_COMMAND = "python scripts/api_docs.py"


def _api_docs_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("api_docs", ROOT / "scripts" / "api_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_api_reference_is_generated_from_the_current_docstrings():
    """docs/api.md is exactly what scripts/api_docs.py writes for the rnnrs
    under test: a docstring changed without regenerating the page fails here."""
    generated = _api_docs_module().render()
    committed = (DOCS / "api.md").read_text(encoding="utf-8")
    assert committed == generated, (
        f"docs/api.md is out of date with the docstrings: regenerate it with `{API_COMMAND}` "
        "(from the repository root, with this rnnrs importable) and commit it"
    )


def test_the_api_reference_covers_every_public_name():
    import rnnrs

    page = (DOCS / "api.md").read_text(encoding="utf-8")
    for name in rnnrs.__all__:
        assert f"### `rnnrs.{name}`" in page or f"## `rnnrs.{name}`" in page, name
    for module in ("seq2seq", "convert", "losses", "datasets"):
        for name in getattr(rnnrs, module).__dict__:
            obj = getattr(getattr(rnnrs, module), name)
            if not name.startswith("_") and getattr(obj, "__module__", None) == f"rnnrs.{module}":
                assert f"### `rnnrs.{module}.{name}`" in page, f"rnnrs.{module}.{name}"


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("page", ["semantics.md", "tensorflow.md", "seq2seq.md"])
def test_the_pages_code_runs_as_written(page):
    """Each ```python block of the page, executed in order in one namespace
    (the blocks assert what the prose says)."""
    blocks = _python_blocks(DOCS / page)
    assert len(blocks) >= 4, f"docs/{page} lost its examples"
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, f"docs/{page}", "exec"), namespace)  # noqa: S102


@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")  # Ray's own notices, raised inside ray.data
def test_the_distributed_page_runs_as_written():
    """docs/distributed.md's blocks, in order, on the local Ray instance they start (needs the ray extra)."""
    ray = pytest.importorskip(
        "ray", reason="ray is not installed (pip install 'rnnrs[ray]'); scripts/test.sh installs it"
    )
    if ray.is_initialized():
        ray.shutdown()  # the page starts its own
    namespace: dict[str, object] = {}
    try:
        for block in _python_blocks(DOCS / "distributed.md"):
            exec(compile(block, "docs/distributed.md", "exec"), namespace)  # noqa: S102
    finally:
        if ray.is_initialized():
            ray.shutdown()


def test_every_page_in_docs_is_checked_or_has_no_python():
    """A new page with Python examples gets them run too (api.md's blocks are
    signatures, architecture.md's are Rust)."""
    checked = {"semantics.md", "tensorflow.md", "seq2seq.md", "api.md", "architecture.md", "distributed.md"}
    for page in DOCS.glob("*.md"):
        assert page.name in checked or not _python_blocks(page), f"add docs/{page.name} to the runs above"


def markdown_links(text: str) -> list[str]:
    """The targets of ``[text](target)`` links outside code blocks and spans."""
    prose = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.S))
    return re.findall(r"\]\(([^)\s]+)\)", prose)


def test_the_pages_links_resolve_inside_the_repository():
    for page in DOCS.glob("*.md"):
        text = page.read_text(encoding="utf-8")
        for target in markdown_links(text):
            if target.startswith(("http://", "https://", "#")):
                continue
            file = (page.parent / target.split("#")[0]).resolve()
            assert file.is_relative_to(ROOT), f"docs/{page.name} links outside the repository: {target}"
            assert file.exists(), f"docs/{page.name}: {target} does not exist"
            assert "shared" not in file.relative_to(ROOT).parts, target


def test_the_package_docstring_points_into_the_repository():
    """rnnrs.__doc__ names the docs pages (which exist) and nothing outside."""
    import rnnrs

    doc = rnnrs.__doc__ or ""
    assert "DESIGN.md" not in doc and "../" not in doc
    named = set(re.findall(r"docs/[\w.]+\.md", doc))
    assert {"docs/api.md", "docs/semantics.md", "docs/tensorflow.md", "docs/roadmap.md"} <= named
    for path in named:
        assert (ROOT / path).exists(), path
