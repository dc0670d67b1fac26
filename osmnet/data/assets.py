"""Where the MediaPipe Face Landmarker bundle comes from.

Resolution order: an explicit path, then $OSMNET_FACE_LANDMARKER, then the user cache
(~/.cache/osmnet/face_landmarker.task, or $XDG_CACHE_HOME/osmnet/), then a one-time download
from MediaPipe's public model storage, checked against a pinned sha256 before it is kept.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from blender_addon.core.errors import EnvironmentProblem

ENV_VAR = "OSMNET_FACE_LANDMARKER"
FILENAME = "face_landmarker.task"
URL = ("https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/"
       "float16/1/face_landmarker.task")
SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
REQUIRED_MEMBERS = ("face_detector.tflite", "face_landmarks_detector.tflite", "face_blendshapes.tflite",
                    "geometry_pipeline_metadata_landmarks.binarypb")


class AssetError(EnvironmentProblem):
    """A model file is missing, damaged or could not be fetched; the message says what to do."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "osmnet"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_task_file(path: Path, source: str) -> Path:
    """A readable Face Landmarker bundle, or AssetError naming the file and how it was chosen."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise AssetError(f"face landmarker model {path} (from {source}) does not exist")
    try:
        with zipfile.ZipFile(path) as z:
            missing = [m for m in REQUIRED_MEMBERS if m not in z.namelist()]
    except (zipfile.BadZipFile, OSError) as e:
        raise AssetError(f"face landmarker model {path} (from {source}) is not a readable .task bundle "
                         f"({e}); replace it with {URL}") from None
    if missing:
        raise AssetError(f"face landmarker model {path} (from {source}) lacks {missing}; "
                         f"it is not MediaPipe's Face Landmarker bundle ({URL})")
    return path


def download(url: str, dest: Path, sha256: str = SHA256, timeout: float = 30.0) -> Path:
    """Fetch url to dest via a temp file; keep it only when its sha256 matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download-", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        got = sha256_of(Path(tmp))
        if got != sha256:
            raise AssetError(f"downloaded {url} has sha256 {got}, expected {sha256}; the file was "
                             "discarded (a proxy or a changed upload?). Download it by hand and set "
                             f"{ENV_VAR}")
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise AssetError(f"could not download the face landmarker model from {url} ({e}). Offline? "
                         f"Put {FILENAME} at {dest}, or set {ENV_VAR}=/path/to/{FILENAME}, "
                         "or pass the path explicitly (--model)") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def face_landmarker_path(explicit=None, *, url: str = URL, allow_download: bool = True) -> Path:
    """Path of a usable face_landmarker.task (see the module docstring for the order)."""
    if explicit:
        return check_task_file(Path(explicit), "the explicit path")
    env = os.environ.get(ENV_VAR)
    if env:
        return check_task_file(Path(env), f"${ENV_VAR}")
    cached = cache_dir() / FILENAME
    if cached.is_file():
        return check_task_file(cached, "the user cache")
    if not allow_download:
        raise AssetError(f"no face landmarker model: put {FILENAME} at {cached} or set {ENV_VAR}")
    return check_task_file(download(url, cached), "a fresh download")
