"""Atomic file output for the add-on: a take, preset, frame or packed head appears whole or not at all.

(The add-on cannot import osmnet, whose `osmnet.files` does the same for the library.)
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path, data: bytes | str) -> Path:
    """Write `data` (text is UTF-8, newlines as given) beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix or ".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
