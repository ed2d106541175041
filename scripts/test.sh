#!/usr/bin/env bash
# Runs every test of rnnrs, lint included: it builds and installs the wheel
# with the test tools, then runs the lint gates (ruff over the Python sources;
# cargo fmt, clippy and the doc links of the Rust core), the Rust core's unit
# tests, the type stubs against the built module, and the Python suite
# (pytest + hypothesis). Installs what it needs itself: into the active
# virtual environment, or else into .venv/ at the repository root, created on
# first use (see scripts/env.sh); builds under target/. `bash scripts/test.sh
# --print-python` prints the interpreter it would use, and why, and changes
# nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
rnnrs_setup "$@"

export CI="${CI:-}"
echo "== building and installing rnnrs with its test tools (pip install '.[test,examples]': matplotlib for the examples' plots; a release build, about three minutes the first time)"
"$RNNRS_PYTHON" -m pip install --quiet --disable-pip-version-check ".[test,examples]"
# rnnrs.distributed's tests need Ray (the "ray" extra, and ray[tune] for the Tune example): installed here
# when the platform has wheels for it; otherwise those tests are skipped and say why.
echo "== installing Ray for the tests of rnnrs.distributed (pip install 'ray[data,tune]')"
"$RNNRS_PYTHON" -m pip install --quiet --disable-pip-version-check "ray[data,tune]>=2.40" \
    || echo "== Ray could not be installed: the tests of rnnrs.distributed will be skipped"

echo "== ruff (lint and format) over python/ tests/ benches/ examples/"
"$RNNRS_PYTHON" -m ruff check python tests benches examples
"$RNNRS_PYTHON" -m ruff format --check python tests benches examples

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
"$RNNRS_PYTHON" -m mypy.stubtest rnnrs._rnnrs
"$RNNRS_PYTHON" -m mypy

echo "== pytest"
"$RNNRS_PYTHON" -m pytest -q tests
