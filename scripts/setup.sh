#!/usr/bin/env bash
# Install osmnet into ./.venv (Python 3.11+). Safe to re-run: it only adds what is missing.
# torch is pinned to 2.13.0: on the project machines that is a local CPU wheel, while an
# unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "setup: Python 3.11+ is needed (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,ray]" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c 'import osmnet, torch, mediapipe, zmq, av' \
  || { echo "setup: the install is incomplete (see pip's messages above)" >&2; exit 1; }
echo "setup: osmnet is installed in .venv (run .venv/bin/osmnet --help)"
