"""Writes docs/api.md, the API reference, from the docstrings.

    python scripts/api_docs.py            # regenerate docs/api.md
    python scripts/api_docs.py --check    # exit 1 when docs/api.md is out of date

It documents the public names of ``rnnrs`` (``rnnrs.__all__``) and of its
modules (``rnnrs.seq2seq``, ``rnnrs.convert``, ``rnnrs.losses``, ...): each
function's and class's signature and docstring, and each class's public
methods and properties. A member that a class inherits unchanged from a class
documented above it is listed by name only. The ``rnnrs`` imported is the one
on ``sys.path``: run it from the repository with the package built (``pip
install .``, or ``PYTHONPATH=python`` beside a built extension).
"""

from __future__ import annotations

import argparse
import inspect
import sys
import types
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "api.md"
COMMAND = "python scripts/api_docs.py"
MODULES = ("seq2seq", "distributed", "convert", "losses", "metrics", "schedules", "callbacks", "datasets", "utils")

HEADER = f"""# API reference

Generated from the docstrings by `{COMMAND}`: do not edit this page by hand, change the
docstring and run the script (a test fails while this page and the docstrings differ).
The behaviour that holds across functions is in [semantics.md](semantics.md); how
TensorFlow 1.x names map onto these is in [tensorflow.md](tensorflow.md).
"""


def _default(value: Any) -> str:
    if isinstance(value, type):
        module = "np" if value.__module__ == "numpy" else value.__module__
        return f"{module}.{value.__qualname__}"
    text = repr(value)
    if " at 0x" in text:  # an address would make the page differ from run to run
        raise ValueError(f"a default value without a stable repr: {text}")
    return text


def _annotation(value: Any) -> str:
    return value if isinstance(value, str) else inspect.formatannotation(value)


def signature(obj: Callable[..., Any], skip_self: bool = False) -> str:
    """``(a: int, b: float = 1.0) -> str`` from ``inspect.signature``, with the
    string annotations unquoted and defaults written as in source."""
    sig = inspect.signature(obj)
    parts = []
    seen_kw_only = False
    params = list(sig.parameters.values())
    if skip_self and params and params[0].name == "self":
        params = params[1:]
    for k, p in enumerate(params):
        if p.kind is p.KEYWORD_ONLY and not seen_kw_only:
            parts.append("*")
            seen_kw_only = True
        text = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        if p.kind is p.VAR_POSITIONAL:
            seen_kw_only = True
        if p.annotation is not p.empty:
            text += f": {_annotation(p.annotation)}"
        if p.default is not p.empty:
            text += f" = {_default(p.default)}" if p.annotation is not p.empty else f"={_default(p.default)}"
        parts.append(text)
        last_positional_only = p.kind is p.POSITIONAL_ONLY and (p is params[-1] or params[k + 1].kind is not p.kind)
        if last_positional_only:
            parts.append("/")
    result = f"({', '.join(parts)})"
    if sig.return_annotation is not sig.empty and sig.return_annotation not in ("None", None):
        result += f" -> {_annotation(sig.return_annotation)}"
    return result


def _doc(obj: Any) -> str:
    return _text(inspect.getdoc(obj) or "")


def _members(cls: type) -> list[tuple[str, Any]]:
    """Public methods and properties, in definition order along the MRO (the
    class's own first), ``__call__`` included; rnnrs classes only."""
    names: list[str] = []
    for klass in cls.__mro__:
        if not klass.__module__.startswith("rnnrs"):
            continue
        for name in vars(klass):
            public = not name.startswith("_") or name == "__call__"
            if public and name not in names:
                names.append(name)
    result = []
    for name in names:
        raw = inspect.getattr_static(cls, name)
        if isinstance(raw, (property, staticmethod, classmethod)) or inspect.isfunction(raw):
            result.append((name, raw))
    return result


def _member_doc(cls: type, name: str) -> str:
    """The member's docstring; an override without one (a property of a
    wrapper that forwards to the wrapped cell) has its base class's."""
    for klass in cls.__mro__:
        raw = vars(klass).get(name)
        if raw is None:
            continue
        doc = inspect.getdoc(raw.fget if isinstance(raw, property) else raw)
        if doc:
            return doc
    return ""


def _text(doc: str) -> str:
    if "```" in doc:
        raise ValueError(f"a docstring holds a code fence, which would break the page: {doc[:60]!r}")
    return f"```text\n{doc or '(no docstring)'}\n```\n"


class Page:
    def __init__(self) -> None:
        self.parts: list[str] = [HEADER]
        # Classes already on the page: name -> {member: docstring}.
        self.documented: dict[str, dict[str, str]] = {}

    def add(self, text: str) -> None:
        self.parts.append(text)

    def function(self, qualname: str, obj: Callable[..., Any]) -> None:
        self.add(f"### `{qualname}`\n\n```python\n{qualname}{signature(obj)}\n```\n\n{_doc(obj)}")

    def klass(self, qualname: str, cls: type) -> None:
        bases = [b.__name__ for b in cls.__bases__ if b is not object]
        head = f"### `{qualname}`\n\n```python\nclass {qualname}{signature(cls)}\n```\n\n"
        if bases:
            head += f"Bases: {', '.join(f'`{b}`' for b in bases)}\n\n"
        self.add(head + _doc(cls))
        inherited: dict[str, list[str]] = {}
        own: dict[str, str] = {}
        for name, raw in _members(cls):
            doc = _member_doc(cls, name)
            own[name] = doc
            origin = next(
                (base for base, members in self.documented.items() if members.get(name) == doc and _is_base(base, cls)),
                None,
            )
            if origin is not None:
                inherited.setdefault(origin, []).append(name)
                continue
            if isinstance(raw, property):
                self.add(f"#### `{qualname}.{name}` (property)\n\n{_text(doc)}")
            else:
                func = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
                skip = not isinstance(raw, staticmethod)
                sig = signature(func, skip_self=skip)
                self.add(f"#### `{qualname}.{name}`\n\n```python\n{name}{sig}\n```\n\n{_text(doc)}")
        for origin, names in inherited.items():
            self.add(f"Also, as in `{origin}`: {', '.join(f'`{n}`' for n in names)}.\n")
        self.documented[cls.__name__] = own

    def render(self) -> str:
        return "\n".join(self.parts)


_CLASSES: dict[str, type] = {}


def _is_base(name: str, cls: type) -> bool:
    base = _CLASSES.get(name)
    return base is not None and base is not cls and issubclass(cls, base)


def _entry(page: Page, qualname: str, obj: Any) -> None:
    if isinstance(obj, type):
        _CLASSES[obj.__name__] = obj
        page.klass(qualname, obj)
    elif callable(obj):
        page.function(qualname, obj)
    elif isinstance(obj, (bool, int, float, str)):
        page.add(f"### `{qualname}`\n\nA constant: `{qualname.rsplit('.', 1)[-1]} = {obj!r}`.\n")
    else:
        raise TypeError(f"{qualname}: not a function, a class or a constant")


def _module_names(module: types.ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(obj) or isinstance(obj, type))
        and obj.__module__ == module.__name__
    ]


# Sections of the top-level names, by the module that defines them.
SECTIONS = (
    ("Cells", ("rnnrs.cells", "rnnrs.lstm", "rnnrs.gru", "rnnrs._state")),
    ("Wrappers", ("rnnrs.wrappers",)),
    ("Run functions and gradients", ("rnnrs.rnn",)),
    ("Threads", ("rnnrs",)),
    ("Layers and models", ("rnnrs.layers", "rnnrs.models", "rnnrs.trainers", "rnnrs.saving", "rnnrs.progress")),
    ("Losses and optimizers", ("rnnrs.losses", "rnnrs.optimizers", "rnnrs.schedules")),
)


def _section(obj: Any) -> str:
    module = getattr(obj, "__module__", "")
    return next(
        (title for title, modules in SECTIONS if any(module == m or module.startswith(m + ".") for m in modules)),
        "Other",
    )


def _bases_first(names: list[str], namespace: Any) -> list[str]:
    """``names`` in their order, except that a class comes after those of its
    bases that are among ``names`` (so inherited members can be referred to)."""
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        obj = getattr(namespace, name)
        if isinstance(obj, type):
            for base in obj.__mro__[1:]:
                if base.__name__ in names and getattr(namespace, base.__name__) is base:
                    visit(base.__name__)
        ordered.append(name)

    for name in names:
        visit(name)
    return ordered


def render(rnnrs: Optional[types.ModuleType] = None) -> str:
    """The text of docs/api.md for the ``rnnrs`` importable now."""
    if rnnrs is None:
        import rnnrs
    _CLASSES.clear()
    page = Page()
    modules = {name: getattr(rnnrs, name) for name in MODULES}
    top = [n for n in rnnrs.__all__ if not isinstance(getattr(rnnrs, n), types.ModuleType)]
    titles = [title for title, _ in SECTIONS] + ["Other"]
    grouped = {title: [n for n in top if _section(getattr(rnnrs, n)) == title] for title in titles}
    contents = ["## Contents\n", "- [`rnnrs`](#rnnrs)"]
    for title, names in grouped.items():
        if names:
            anchor = title.lower().replace(" ", "-")
            contents.append(f"  - [{title}](#{anchor}): " + ", ".join(f"`{n}`" for n in names))
    for name in modules:
        contents.append(f"- [`rnnrs.{name}`](#rnnrs{name})")
    page.add("\n".join(contents) + "\n")
    page.add(f"## `rnnrs`\n\n{_doc(rnnrs)}")
    for title, names in grouped.items():
        if names:
            page.add(f"## {title}\n")
            for name in _bases_first(names, rnnrs):
                _entry(page, f"rnnrs.{name}", getattr(rnnrs, name))
    for mod_name, module in modules.items():
        page.add(f"## `rnnrs.{mod_name}`\n\n{_doc(module)}")
        for name in _module_names(module):
            obj = getattr(module, name)
            if name in top and getattr(rnnrs, name) is obj:
                page.add(
                    f"### `rnnrs.{mod_name}.{name}`\n\nThe same object as [`rnnrs.{name}`](#rnnrs{name.lower()}).\n"
                )
                continue
            _entry(page, f"rnnrs.{mod_name}.{name}", obj)
    return page.render().rstrip("\n") + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Writes docs/api.md from the docstrings.")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when docs/api.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"docs/api.md is out of date: regenerate it with `{COMMAND}`", file=sys.stderr)
            return 1
        print("docs/api.md is up to date")
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
