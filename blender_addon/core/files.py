"""Atomic output: a file appears whole under its final name, or not at all.

Every writer (takes, presets, datasets, checkpoints, videos, images, frames) goes through
`atomic_path`, so an interrupted or failing command never leaves a half-written file behind.
A set of files (a folder of takes, frames, a dataset) goes through `replace_dir`, so a reader sees
the old set or the new one, never a mix; `check_output` refuses an existing output (unless
forced) and an unwritable place before any work starts.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import EnvironmentProblem, UserInputError


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


# ---- outputs: refused when they exist (unless forced), checked writable before the work, swapped in whole

def check_output(path, *, kind: str = "file", force: bool = False, suffixes=(), owns=(), flag: str = "--out") -> Path:
    """Check before any work that `path` can be written as a new `kind` ("file" or "dir") output.

    An existing output is refused unless `force`; a folder output with files it does not `own`
    (glob patterns of what the command writes) is refused even then, so --force never deletes a
    user's other files. `suffixes` are the file name endings the command writes (".png").
    The nearest existing parent must be a writable folder (probed by creating a file, which is
    what counts on read-only mounts and for root). Returns `path` as a Path.
    """
    path = Path(path)
    exists = path.is_symlink() or path.exists()
    if exists and kind == "file" and path.is_dir():
        example = path / ("out" + (suffixes[0] if suffixes else ""))
        raise UserInputError(f"{flag} {path} is a folder; give a file name, e.g. {example}")
    if exists and kind == "dir" and not path.is_dir():
        raise UserInputError(f"{flag} {path} exists and is not a folder; choose a folder name")
    if suffixes and path.suffix.lower() not in suffixes:
        raise UserInputError(f"{flag} {path}: this command writes {' or '.join(suffixes)}; "
                             f"name the file {path.with_suffix(suffixes[0]).name}")
    if exists:
        if kind == "dir" and not any(path.iterdir()):
            pass  # an empty folder (made for this) is not an output to protect
        elif not force:
            raise UserInputError(f"{flag} {path} already exists; pass --force to replace it, or choose another {flag}")
        elif kind == "dir":
            foreign = sorted(p.name for p in path.iterdir() if not any(p.match(g) for g in owns))
            if foreign:
                raise UserInputError(f"{flag} {path} holds files this command did not write ({', '.join(foreign[:3])}"
                                     f"{' ...' if len(foreign) > 3 else ''}); --force only replaces its own output")
    parent = path.parent if path.parent != path else path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserInputError(f"{flag} {path}: {parent} is a file, not a folder")
    probe_writable(parent, flag=flag, target=path)
    return path


def probe_writable(folder, flag: str = "--out", target=None) -> None:
    """Raise EnvironmentProblem unless a file can be created in `folder` (then removes it)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".osmnet-probe-", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise EnvironmentProblem(f"cannot write {target or folder}: {folder} is not writable ({e.strerror}); "
                                 f"choose another {flag}") from None


@contextmanager
def replace_dir(path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; when the block succeeds it replaces `path` whole.

    Readers see the old set or the new one, never a mix: on Linux the two folders are exchanged in
    one rename (renameat2 RENAME_EXCHANGE); elsewhere the old folder is moved aside first and
    restored if the second rename fails. On failure the old folder is left untouched.
    """
    path = Path(path)
    if path.is_symlink():  # replace the folder the link points to, keep the link
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-new-", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; outputs are shared like any folder
        if not path.exists():
            os.replace(tmp, path)
        elif not _exchange(tmp, path):
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}-old-", dir=path.parent))
            os.replace(path, old / "x")
            try:
                os.replace(tmp, path)
            except OSError:
                os.replace(old / "x", path)
                raise
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # after an exchange, tmp holds the old set


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step where the OS can (Linux renameat2); False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    return renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0
