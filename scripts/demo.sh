#!/usr/bin/env bash
# The main job: builds and installs rnnrs, then runs the chapter's demo.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check .
python3 examples/chapter14.py
