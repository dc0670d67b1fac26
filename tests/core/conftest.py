"""Fixtures for the add-on core's tests. They run in the main venv and in the bpy venvs (no torch
there), so real takes are tracked by osmnet in a subprocess of the main venv's Python."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("OSMNET_SHARED", ROOT.parent / "shared"))
GRID_CLIP = SHARED / "data" / "talking" / "grid_spkA_clip1.mp4"  # "bin blue at f two now", silence around it
FACE_MODEL = SHARED / "models" / "face_landmarker.task"


def _main_python() -> Path:
    """A Python that has osmnet's tracker: this one, or $OSMNET_MAIN_PYTHON, or the repo's .venv."""
    if importlib.util.find_spec("mediapipe") is not None:
        return Path(sys.executable)
    return Path(os.environ.get("OSMNET_MAIN_PYTHON", ROOT / ".venv" / "bin" / "python"))


@pytest.fixture(scope="session")
def tracked_speech_take(tmp_path_factory):
    """A take tracked by `osmnet track` from a real GRID sentence clip (made once per session)."""
    from blender_addon.core.take import Take

    python = _main_python()
    for path, what in ((python, "a Python with osmnet (set OSMNET_MAIN_PYTHON)"), (GRID_CLIP, "the shared GRID clip"),
                       (FACE_MODEL, "the MediaPipe model")):
        if not path.exists():
            pytest.skip(f"{what} not found at {path}")
    out = tmp_path_factory.mktemp("tracked") / "grid.json"
    env = dict(os.environ, OSMNET_FACE_LANDMARKER=str(FACE_MODEL), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([str(python), "-m", "osmnet.cli", "track", str(GRID_CLIP), "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"osmnet track failed:\n{proc.stderr[-2000:]}"
    return Take.load(out)
