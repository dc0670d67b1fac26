#!/usr/bin/env bash
# Make the headless-Blender test environments for the add-on:
#   .venv-bpy45  Python 3.11 + bpy 4.5      .venv-bpy52  Python 3.13 + bpy 5.2
#   .venv-bpy45-nozmq / .venv-bpy52-nozmq   the same Blenders WITHOUT pyzmq, like a user's Blender:
#   tests/addon/test_package.py installs the extension zip there and it must bring its own pyzmq.
# PY311 / PY313 override the interpreters (default: python3.11 and pyenv's 3.13.0).
set -euo pipefail
cd "$(dirname "$0")/.."
make_env() {  # dir python bpy-spec
  local dir=$1 py=$2 spec=$3
  if ! "$dir/bin/python" -c 'import bpy, zmq, numpy, pytest' 2>/dev/null; then
    [ -x "$dir/bin/python" ] || $py -m venv "$dir"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$spec" numpy pyzmq pytest 2>&1 \
      | grep -v '^WARNING: Location' || true
  fi
  "$dir/bin/python" -c 'import bpy; print("setup_bpy:", "'"$dir"'", "bpy", bpy.app.version_string)'
}
make_nozmq_env() {  # dir python bpy-spec
  local dir=$1 py=$2 spec=$3
  if ! "$dir/bin/python" -c 'import bpy, pytest' 2>/dev/null; then
    [ -x "$dir/bin/python" ] || $py -m venv "$dir"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$spec" pytest 2>&1 \
      | grep -v '^WARNING: Location' || true
  fi
  if "$dir/bin/python" -c 'import zmq' 2>/dev/null; then
    echo "setup_bpy: $dir has pyzmq; it must not (pip uninstall pyzmq there)" >&2
    return 1
  fi
  "$dir/bin/python" -c 'import bpy; print("setup_bpy:", "'"$dir"'", "bpy", bpy.app.version_string, "(no pyzmq)")'
}
make_env .venv-bpy45 "${PY311:-python3.11}" "bpy==4.5.*"
make_env .venv-bpy52 "${PY313:-env PYENV_VERSION=3.13.0 python3.13}" "bpy==5.2.*"
make_nozmq_env .venv-bpy45-nozmq "${PY311:-python3.11}" "bpy==4.5.*"
make_nozmq_env .venv-bpy52-nozmq "${PY313:-env PYENV_VERSION=3.13.0 python3.13}" "bpy==5.2.*"
