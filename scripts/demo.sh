#!/usr/bin/env bash
# The main job: builds and installs rnnrs, then trains the chapter's sequence
# classifier (a 150-unit BasicRNNCell reading the bundled 8x8 digits row by
# row, Adam 0.001) with a progress bar, and prints its test accuracy and
# training time. Extra arguments go to the example (e.g. --cell gru, --quick).
#
# Installs into the active virtual environment, or else into .venv/ at the
# repository root, created on first use (see scripts/env.sh); builds under
# target/wheel/. `bash scripts/demo.sh --print-python` prints the interpreter
# it would use, and why, and changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
rnnrs_setup "$@"
echo "== building and installing rnnrs (pip install .; a release build, about three minutes the first time)"
"$RNNRS_PYTHON" -m pip install --quiet --disable-pip-version-check .
"$RNNRS_PYTHON" examples/digits_classifier.py --verbose 1 "$@"
