#!/usr/bin/env bash
# The main job: builds and installs rnnrs, then trains the chapter's sequence
# classifier (a 150-unit BasicRNNCell reading the bundled 8x8 digits row by
# row, Adam 0.001) with a progress bar, and prints its test accuracy and
# training time. Extra arguments go to the example (e.g. --cell gru, --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
echo "== building and installing rnnrs (pip install .; a release build, about two minutes the first time)"
python3 -m pip install --quiet --disable-pip-version-check .
python3 examples/digits_classifier.py --verbose 1 "$@"
