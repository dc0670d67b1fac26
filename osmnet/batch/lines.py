"""What a batch makes: lines (speech file, name, takes, seed, diversity) from files, folders and
CSV manifests, and the settings every line shares.

A line's seed derives from the batch seed and the line's name, so its takes do not depend on
the order of the lines, the number of workers or the engine.
"""
from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from blender_addon.core.errors import UserInputError
from blender_addon.core.batchfolder import BATCH_REPORT
from blender_addon.core.take import FPS_RANGE

REPORT = BATCH_REPORT  # the batch folder's report; no line may take this name
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus")
MAX_ATTEMPTS = 2  # a line whose worker dies this often is reported failed instead of retried


class BatchError(UserInputError):
    """A bad source, manifest row, name or output folder; the message says what to fix."""


@dataclass(frozen=True)
class Line:
    name: str  # folder name under DIR; manifest name or file stem
    audio: str  # absolute path
    takes: int
    seed: int  # the line's own seed (already derived)
    diversity: float


@dataclass(frozen=True)
class Settings:
    """What every line shares: how takes are made and by which model."""

    fps: float = 25.0
    intensity: float = 1.0
    checkpoint: str | None = None  # None: the shipped model
    device: str | None = None  # None: cpu locally; on Ray the GPUs when the cluster has them

    def __post_init__(self):
        lo, hi = FPS_RANGE
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and lo <= self.fps <= hi):
            raise BatchError(f"--fps must be between {lo:g} and {hi:g}, got {self.fps!r}")
        _number(self.intensity, float, "--intensity", "intensity", 0)
        if self.checkpoint is not None:
            if not Path(self.checkpoint).is_file():
                raise BatchError(f"checkpoint {self.checkpoint} does not exist; give a .pt made by `osmnet train` "
                                 "or leave --checkpoint out for the shipped model")
            object.__setattr__(self, "checkpoint", str(Path(self.checkpoint).resolve()))  # same from any folder


def line_seed(seed: int, name: str) -> int:
    """A 31-bit seed from (batch seed, line name): stable across runs, machines and Python
    processes (a hash of the UTF-8 text, not Python's salted hash())."""
    digest = hashlib.blake2b(f"{int(seed)}\x1f{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 33


def _check_name(name: str, where: str) -> str:
    bad = (not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\\0")
           or any(ord(c) < 32 for c in name) or name.casefold() == REPORT)
    if bad:
        raise BatchError(f"{where}: {name!r} cannot be a line name (it becomes a folder: no '/', '\\', "
                         f"leading '.', control characters or {REPORT!r}); give another name")
    return name


def _number(text, kind, where, what, low, high=None):
    try:
        v = kind(text)
        if kind is int and float(text) != v:
            raise ValueError
    except (TypeError, ValueError):
        raise BatchError(f"{where}: {what} must be a number, got {text!r}") from None
    if not (math.isfinite(v) and v >= low):
        raise BatchError(f"{where}: {what} must be >= {low}, got {text!r}")
    if high is not None and v > high:
        raise BatchError(f"{where}: {what} must be at most {high}, got {text!r}")
    return v


def _manifest(path: Path, takes: int, seed: int, diversity: float, caps: dict) -> list[tuple[Line, str]]:
    """Rows `audio,name[,takes,seed,diversity]` (a header row naming these columns is optional);
    audio paths are relative to the manifest; an empty cell means the command's value, and a
    seed given here is used as it is."""
    cols = ("audio", "name", "takes", "seed", "diversity")
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError) as e:
        raise BatchError(f"cannot read manifest {path} ({e}); give a UTF-8 CSV file") from None
    order = cols
    if rows and rows[0] and rows[0][0].strip().lower() == "audio":
        order = tuple(c.strip().lower() for c in rows[0])
        unknown = [c for c in order if c not in cols]
        if unknown or "name" not in order:
            raise BatchError(f"{path}:1: header must name the columns audio,name[,takes,seed,diversity], "
                             f"got {','.join(rows[0])}")
        rows = [None] + rows[1:]
    lines = []
    for i, row in enumerate(rows, 1):
        if row is None or not any(c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        where = f"{path}:{i}"
        if len(row) > len(order) or len(row) < 2:
            raise BatchError(f"{where}: expected audio,name[,takes,seed,diversity], got {len(row)} columns")
        cell = {c: v.strip() for c, v in zip(order, row)}
        audio = (path.parent / cell["audio"]).resolve()
        if not audio.is_file():
            raise BatchError(f"{where}: audio file {cell['audio']} not found (paths are relative to the manifest)")
        name = _check_name(cell.get("name", ""), where)
        lines.append((Line(
            name, str(audio),
            _number(cell["takes"], int, where, "takes", 1, caps["takes"]) if cell.get("takes") else takes,
            _number(cell["seed"], int, where, "seed", 0) if cell.get("seed") else line_seed(seed, name),
            _number(cell["diversity"], float, where, "diversity", 0, caps["diversity"]) if cell.get("diversity")
            else diversity), where))
    return lines


def collect_lines(sources: Iterable, *, takes: int = 4, seed: int = 0, diversity: float = 1.0,
                  max_takes: int | None = None, max_diversity: float | None = None) -> list[Line]:
    """Audio files, folders of audio files (not recursive) and .csv manifests -> lines with
    unique names, in the order given. `max_takes` / `max_diversity` cap every line, manifest rows
    included (the command line passes its own bounds)."""
    caps = {"takes": max_takes, "diversity": max_diversity}
    _number(takes, int, "--takes", "takes", 1, max_takes)
    _number(seed, int, "--seed", "seed", 0)
    _number(diversity, float, "--diversity", "diversity", 0, max_diversity)

    def from_file(f: Path):
        return Line(_check_name(f.stem, str(f)), str(f.resolve()), takes, line_seed(seed, f.stem), diversity), str(f)

    lines: list[tuple[Line, str]] = []  # (line, where it was named)
    for src in map(Path, sources):
        if src.suffix.lower() == ".csv" and src.is_file():
            lines += _manifest(src, takes, seed, diversity, caps)
        elif src.is_dir():
            files = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith(".")
                           and p.suffix.lower() in AUDIO_SUFFIXES)
            if not files:
                raise BatchError(f"folder {src} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
            lines += [from_file(f) for f in files]
        elif src.is_file():
            lines.append(from_file(src))
        else:
            raise BatchError(f"source {src} does not exist; give audio files, folders or a .csv manifest")
    seen: dict[str, int] = {}
    for i, (line, where) in enumerate(lines):
        j = seen.setdefault(line.name.casefold(), i)  # folders are case-insensitive on some systems: so are names
        if j != i:
            raise BatchError(f"two lines are named {line.name!r} ({lines[j][1]} and {where}); names must be unique: "
                             "rename a file or give names in a manifest")
    return [line for line, _ in lines]
