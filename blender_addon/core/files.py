"""Atomic output: a file appears whole under its final name, or not at all.

Every writer (takes, presets, datasets, checkpoints, videos, images, frames) goes through
`atomic_path`, so an interrupted or failing command never leaves a half-written file behind.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it is renamed to `path` only if the block succeeds.

    The temporary name keeps the final suffix (or `suffix`), so tools that pick a format from
    the file name (PIL, matplotlib, PyAV) behave as they would for `path` itself.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=suffix or path.suffix or ".tmp",
                               dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are meant to be shared like any file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path, data: bytes | str) -> Path:
    """Write `data` (text is UTF-8, newlines as given) to `path` atomically."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
