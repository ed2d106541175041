#!/usr/bin/env bash
# Runs every test of rnnrs: the Rust core's unit tests, then the Python suite
# (pytest + hypothesis) against a freshly built and installed wheel, then the
# type stubs against the built module. Installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."

export CI="${CI:-}"
python3 -m pip install --quiet --disable-pip-version-check ".[test]"

echo "== cargo test (numeric core, no Python)"
cargo test --release --quiet

echo "== type stubs"
python3 -m mypy.stubtest rnnrs._rnnrs
python3 -m mypy

echo "== pytest"
python3 -m pytest -q tests
