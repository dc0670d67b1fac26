"""Add-on tests run inside headless Blender (the bpy module): .venv-bpy45 and .venv-bpy52.

In an environment without bpy (the main venv) this whole folder is skipped with the reason.
Takes come from the real tracker: `osmnet track` run in the main venv on a shared clip (or a take
file named by $OSMNET_TEST_TAKE), so the add-on is tested on real motion, not synthetic curves.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NO_BPY = ("bpy (Blender as a Python module) is not importable here: run tests/addon with "
          ".venv-bpy45/bin/python or .venv-bpy52/bin/python")
try:
    import bpy  # noqa: F401
except ImportError:
    bpy = None

if bpy is None:
    # Nothing here imports without bpy: collect no test module, report one skip with the reason.
    collect_ignore_glob = ["test_*.py"]

    class _NoBpy(pytest.Item):
        def runtest(self):
            pytest.skip(NO_BPY)

    class _Folder(pytest.File):
        def collect(self):
            yield _NoBpy.from_parent(self, name="addon_tests_need_bpy")

    def pytest_collect_file(file_path, parent):
        if file_path == Path(__file__):
            return _Folder.from_parent(parent, path=file_path)
else:
    sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]

SHARED = Path(os.environ.get("OSMNET_SHARED", ROOT.parent / "shared"))
CLIP = SHARED / "data" / "talking" / "real3dportrait_May_5s.mp4"


@pytest.fixture(autouse=True)
def empty_file():
    """Every test starts from an empty Blender file."""
    import rig

    rig.clear_file()
    yield


@pytest.fixture(scope="session")
def tracked_take_path(tmp_path_factory) -> Path:
    """A take tracked from a real video by osmnet (main venv), made once per session."""
    given = os.environ.get("OSMNET_TEST_TAKE")
    if given:
        return Path(given)
    osmnet = ROOT / ".venv" / "bin" / "osmnet"
    model = SHARED / "models" / "face_landmarker.task"
    for path, what in ((osmnet, "the main venv's osmnet command"), (CLIP, "the shared clip"), (model, "the MediaPipe model")):
        if not path.exists():
            pytest.skip(f"{what} not found at {path}; set OSMNET_TEST_TAKE to a take file instead")
    out = tmp_path_factory.mktemp("takes") / "tracked.json"
    env = dict(os.environ, OSMNET_FACE_LANDMARKER=str(model))
    proc = subprocess.run([str(osmnet), "track", str(CLIP), "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"osmnet track failed:\n{proc.stderr[-2000:]}"
    return out


@pytest.fixture(scope="session")
def tracked_take(tracked_take_path):
    from blender_addon.core import take as takefile

    return takefile.Take.load(tracked_take_path)


SPEECH = SHARED / "data" / "talking" / "styletalk_feifeili_clip2_short.wav"


def _osmnet(*args, timeout=600):
    osmnet = ROOT / ".venv" / "bin" / "osmnet"
    if not osmnet.exists() or not SPEECH.exists():
        pytest.skip(f"needs the main venv's osmnet ({osmnet}) and the shared speech clip ({SPEECH})")
    proc = subprocess.run([str(osmnet), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 and "does not exist" in proc.stderr and "checkpoint" in proc.stderr:
        pytest.skip(f"osmnet has no trained model yet: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, f"osmnet {args[0]} failed:\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="session")
def generated_take_paths(tmp_path_factory):
    """Two takes generated from real speech by the shipped model ($OSMNET_TEST_CHECKPOINT picks
    another), and a re-roll of frames 30:60 of the first one: (take_00, take_01, rerolled)."""
    out = tmp_path_factory.mktemp("generated")
    ckpt = ["--checkpoint", os.environ["OSMNET_TEST_CHECKPOINT"]] if os.environ.get("OSMNET_TEST_CHECKPOINT") else []
    _osmnet("generate", SPEECH, "--takes", 2, "--seed", 7, "--out", out / "takes", *ckpt)
    first, second = sorted((out / "takes").glob("*.json"))[:2]
    _osmnet("generate", SPEECH, "--takes", 1, "--seed", 8, "--base", first, "--reroll", "30:60",
            "--out", out / "reroll", *ckpt)
    return first, second, sorted((out / "reroll").glob("*.json"))[0]
