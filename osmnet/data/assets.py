"""Where the MediaPipe Face Landmarker bundle comes from.

Resolution order: an explicit path, then $OSMNET_FACE_LANDMARKER, then the user cache
(~/.cache/osmnet/face_landmarker.task, or $XDG_CACHE_HOME/osmnet/), then a one-time download
from MediaPipe's public model storage (pooch's HTTP downloader; checked against a pinned sha256
before anything is written).
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from blender_addon.core.errors import EnvironmentProblem
from blender_addon.core.files import atomic_write

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
    """Fetch url with pooch's HTTP downloader into memory (the bundle is ~4 MB), check its sha256,
    then write it to dest atomically. Nothing is in the cache folder while bytes are in flight, so
    a failed, cancelled or killed download (a killed process runs no cleanup) leaves nothing there."""
    import io

    import pooch
    import requests

    buf = io.BytesIO()
    try:
        pooch.HTTPDownloader(timeout=timeout, progressbar=False)(url, buf, None)
    except (requests.RequestException, OSError) as e:
        raise AssetError(f"could not download the face landmarker model from {url} ({e}). Offline? "
                         f"Put {FILENAME} at {dest}, or set {ENV_VAR}=/path/to/{FILENAME}, "
                         "or pass the path explicitly (--model)") from None
    got = hashlib.sha256(buf.getbuffer()).hexdigest()
    if got != sha256:
        raise AssetError(f"downloaded {url} has sha256 {got}, expected {sha256}; the file was discarded "
                         f"(a proxy or a changed upload?). Download it by hand and set {ENV_VAR}")
    try:
        atomic_write(dest, buf.getvalue())
    except OSError as e:
        raise AssetError(f"could not write the face landmarker model to {dest} ({e}); "
                         f"set {ENV_VAR}=/path/to/{FILENAME} or pass the path explicitly (--model)") from None
    return Path(dest)


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
