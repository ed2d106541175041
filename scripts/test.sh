#!/usr/bin/env bash
# Runs every test of rnnrs: the ruff lint and format gate over the Python
# sources, the Rust core's unit tests, the type stubs against the built module,
# then the Python suite (pytest + hypothesis) against a freshly built and
# installed wheel. Installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."

export CI="${CI:-}"
python3 -m pip install --quiet --disable-pip-version-check ".[test]"

echo "== ruff"
python3 -m ruff check python tests benches examples
python3 -m ruff format --check python tests benches examples

echo "== cargo test (numeric core, no Python)"
cargo test --release --quiet

echo "== type stubs"
python3 -m mypy.stubtest rnnrs._rnnrs
python3 -m mypy

echo "== pytest"
python3 -m pytest -q tests
