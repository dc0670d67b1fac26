"""Shared fixtures: where the real data lives, and clear skips when it is absent."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Shared helpers (synth_dataset.py) live in tests/; the test modules live in folders that mirror the tree.
sys.path.insert(0, str(Path(__file__).resolve().parent))
SHARED = Path(os.environ.get("OSMNET_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
FACE_MODEL = SHARED / "models" / "face_landmarker.task"


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
