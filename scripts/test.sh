#!/usr/bin/env bash
# Runs every test of rnnrs, lint included: it builds and installs the wheel
# with the test tools, then runs the lint gates (ruff over the Python sources;
# cargo fmt, clippy and the doc links of the Rust core), the Rust core's unit
# tests, the type stubs against the built module, and the Python suite
# (pytest + hypothesis). Installs what it needs itself, into the current
# Python (use a virtual environment, see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh

export CI="${CI:-}"
echo "== building and installing rnnrs with its test tools (pip install '.[test]'; a release build, about two minutes the first time)"
python3 -m pip install --quiet --disable-pip-version-check ".[test]"

echo "== ruff (lint and format) over python/ tests/ benches/ examples/"
python3 -m ruff check python tests benches examples
python3 -m ruff format --check python tests benches examples

echo "== cargo fmt --check"
cargo fmt --check

echo "== cargo clippy, core and Python edge (warnings are errors)"
CARGO_TARGET_DIR="$RNNRS_CHECK_TARGET" cargo clippy --quiet --all-targets -- -D warnings
CARGO_TARGET_DIR="$RNNRS_CHECK_TARGET" cargo clippy --quiet --all-targets --features python -- -D warnings

echo "== cargo doc (broken links in the core's docs are errors)"
RUSTDOCFLAGS="-D warnings" CARGO_TARGET_DIR="$RNNRS_CHECK_TARGET" cargo doc --no-deps --quiet

echo "== cargo test (numeric core, no Python; compiling takes about a minute the first time)"
CARGO_TARGET_DIR="$RNNRS_TEST_TARGET" cargo test --release --quiet

echo "== type stubs"
python3 -m mypy.stubtest rnnrs._rnnrs
python3 -m mypy

echo "== pytest"
python3 -m pytest -q tests
