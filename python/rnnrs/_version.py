"""The package version (one source: Cargo.toml, through the wheel's metadata)."""

from __future__ import annotations


def _version() -> str:
    """The installed distribution's version (written once, in Cargo.toml, from
    which the wheel takes it); in a source tree without installed metadata,
    Cargo.toml's own; ``"0+unknown"`` when neither is there."""
    from importlib import metadata

    try:
        return metadata.version("rnnrs")
    except metadata.PackageNotFoundError:
        pass
    import pathlib
    import re

    cargo = pathlib.Path(__file__).resolve().parents[2] / "Cargo.toml"
    try:
        found = re.search(r'^version\s*=\s*"([^"]+)"', cargo.read_text(encoding="utf-8"), re.M)
    except OSError:
        found = None
    return found.group(1) if found else "0+unknown"


__version__ = _version()
