#!/usr/bin/env bash
# Install everything and run the whole test suite:
#   1. the model library, backend and renderer tests in .venv (Python 3.11, CPU torch);
#   2. the Blender add-on tests and its no-bpy core (tests/core) under bpy 4.5 (Python 3.11) and
#      bpy 5.2 (Python 3.13): the core is the code Blender's own Python runs. They include
#      installing the built extension zip the way a user does, into bpy venvs without pyzmq.
# Extra arguments go to every pytest run (e.g. -x, -k name). Exit code: 0 only if all runs pass.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
bash scripts/setup_bpy.sh || exit 1
# Tests that track or render use the shared MediaPipe model when it is there (no download).
if [ -z "${OSMNET_FACE_LANDMARKER:-}" ] && [ -f ../shared/models/face_landmarker.task ]; then
  export OSMNET_FACE_LANDMARKER=$(cd ../shared/models && pwd)/face_landmarker.task
fi
# The install test (tests/addon/test_package.py) needs the no-pyzmq bpy venvs setup_bpy.sh made:
# here a missing one is a failure, not a skip.
export OSMNET_REQUIRE_INSTALL_TEST=1
reports=$(mktemp -d)
status=0
run() {  # name python pytest-args...
  local name=$1 py=$2; shift 2
  echo "=== tests: $name"
  "$py" -m pytest -q -p no:cacheprovider --junitxml="$reports/$name.xml" "$@"
  local rc=$?
  # pytest's 5 means it collected no test: treat it as a failure, the suite must run tests.
  if [ $rc -eq 5 ]; then echo "tests: $name collected no tests (exit 5): counted as a failure"; fi
  [ $rc -eq 0 ] || status=1
}
run main .venv/bin/python tests "$@"
run bpy45 .venv-bpy45/bin/python tests/core tests/addon "$@"
run bpy52 .venv-bpy52/bin/python tests/core tests/addon "$@"
.venv/bin/python - "$reports" <<'PY'
import sys, glob, xml.etree.ElementTree as ET
tot = dict(tests=0, failures=0, errors=0, skipped=0)
for f in sorted(glob.glob(sys.argv[1] + "/*.xml")):
    for s in ET.parse(f).getroot().iter("testsuite"):
        for k in tot:
            tot[k] += int(s.get(k, 0))
failed = tot["failures"] + tot["errors"]
print(f"all suites: {tot['tests'] - failed - tot['skipped']} passed, {failed} failed, {tot['skipped']} skipped")
PY
exit $status
