"""Shared fixtures: where the real data lives, and clear skips when it is absent; a private cache folder."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Shared helpers (synth_dataset.py) live in tests/; the test modules live in folders that mirror the tree.
sys.path.insert(0, str(Path(__file__).resolve().parent))
SHARED = Path(os.environ.get("OSMNET_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
FACE_MODEL = SHARED / "models" / "face_landmarker.task"
_SAVED_CACHE_ENV: dict = {}


def pytest_configure(config):
    """Every cache the suite and the processes it starts write (worker tokens of `osmnet serve`,
    phone labels, model downloads: all under $XDG_CACHE_HOME/osmnet) goes to a temporary folder
    made before any test module is imported, never the user's ~/.cache/osmnet."""
    _SAVED_CACHE_ENV["XDG_CACHE_HOME"] = os.environ.get("XDG_CACHE_HOME")
    _SAVED_CACHE_ENV["folder"] = tempfile.mkdtemp(prefix="osmnet-test-cache-")
    os.environ["XDG_CACHE_HOME"] = _SAVED_CACHE_ENV["folder"]


def pytest_unconfigure(config):
    if "folder" not in _SAVED_CACHE_ENV:
        return
    shutil.rmtree(_SAVED_CACHE_ENV.pop("folder"), ignore_errors=True)
    old = _SAVED_CACHE_ENV.pop("XDG_CACHE_HOME")
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (the real data lives in ../shared beside the repo; "
                    "set OSMNET_SHARED to point elsewhere)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need(DATA, "shared data folder")


@pytest.fixture(scope="session")
def face_model() -> Path:
    return _need(FACE_MODEL, "MediaPipe face_landmarker.task")
