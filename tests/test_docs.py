"""The pages in docs/ stay true to the code they show."""

from __future__ import annotations

import re
from pathlib import Path

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
