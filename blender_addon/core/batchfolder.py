"""Reading an `osmnet batch --out DIR` folder in the add-on: DIR/<name>/take_00.json ... per
dialogue line and DIR/batch.json, the report (docs/batch.md). The add-on may not import osmnet,
so this is the reader on the add-on's side of that layout; no bpy, so plain pytest tests it.

Public API
    BatchLine(name, takes, audio, status, reason, seed)
    read_batch_folder(folder, audio_dirs=()) -> ([BatchLine], warnings)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import UserInputError

BATCH_REPORT = "batch.json"  # docs/batch.md: {"format": "osmnet-batch", "version": 1, "lines": [...], ...}
BATCH_FORMAT, BATCH_VERSION = "osmnet-batch", 1
TAKE_GLOB = "take_*.json"
LINE_FILE = "line.json"  # inside each finished line's folder: what was made, from what
PARTIAL_DIR = ".osmnet-partial"  # lines being written (hidden: never read as a line)
# The layout's one home: `osmnet batch` (osmnet/batch/folder.py) writes what this module reads.


@dataclass
class BatchLine:
    """One dialogue line of an `osmnet batch` folder: its take files (DIR/<name>/take_*.json,
    sorted), the speech file if it could be found, and what batch.json says about it."""

    name: str
    takes: list
    audio: Path | None = None
    status: str = ""  # done / skipped / failed / pending as batch.json says; "" without a batch.json
    reason: str = ""
    seed: int | None = None


def _report_lines(report) -> list:
    """batch.json's per-line entries as dicts with a "name", in the report's order."""
    lines = report.get("lines") if isinstance(report, dict) else report
    if isinstance(lines, dict):
        lines = [{"name": k, **(v if isinstance(v, dict) else {})} for k, v in lines.items()]
    if not isinstance(lines, list):
        return []
    return [d for d in lines if isinstance(d, dict) and isinstance(d.get("name"), str)]


def _find_audio(candidates, places) -> Path | None:
    for c in candidates:
        if not isinstance(c, str) or not c.strip():
            continue
        p = Path(c).expanduser()
        for base in ([None] if p.is_absolute() else places):
            q = p if base is None else Path(base) / p
            if q.is_file():
                return q.resolve()
        for base in places:  # a path from another machine: try its file name here
            q = Path(base) / Path(c.replace("\\", "/")).name
            if q.is_file():
                return q.resolve()
    return None


def _take_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("meta")
    except (OSError, ValueError, AttributeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def read_batch_folder(folder, audio_dirs=()):
    """An `osmnet batch --out DIR` folder -> ([BatchLine], warnings).

    Lines come in batch.json's order, then any take folder it does not list (sorted); without a
    batch.json every sub-folder holding take_*.json is a line. A line's speech is looked up from
    batch.json's entry, then the takes' meta "audio", as given, relative to DIR, the line's folder,
    DIR's parent and `audio_dirs`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserInputError(f"batch folder {folder} does not exist; choose the --out folder of osmnet batch")
    warnings, report = [], None
    report_path = folder / BATCH_REPORT
    if report_path.is_file():
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            warnings.append(f"{report_path.name} is not valid JSON ({e}); imported the take folders without it")
    if isinstance(report, dict) and report.get("format", BATCH_FORMAT) != BATCH_FORMAT:
        warnings.append(f"{report_path.name} is not an osmnet batch report (format {report.get('format')!r}); "
                        "imported the take folders without it")
        report = None
    elif isinstance(report, dict) and isinstance(report.get("version"), int) and report["version"] > BATCH_VERSION:
        warnings.append(f"{report_path.name} has batch report version {report['version']}; this add-on reads "
                        f"version {BATCH_VERSION}, so some details may be missing: update the add-on")
    entries = {d["name"]: d for d in _report_lines(report)}
    # Hidden folders (.osmnet-partial: lines still being written) are not lines.
    folders = {p.name: p for p in folder.iterdir()
               if p.is_dir() and not p.name.startswith(".") and any(p.glob(TAKE_GLOB))}
    names = list(entries) + sorted(n for n in folders if n not in entries)
    places = [folder, None, folder.parent, *audio_dirs]
    lines = []
    for name in names:
        entry = entries.get(name, {})
        takes = sorted(folders[name].glob(TAKE_GLOB)) if name in folders else []
        status = str(entry.get("status", ""))
        reason = str(entry.get("reason") or entry.get("error") or "")
        meta = _take_meta(takes[0]) if takes else {}
        line_places = [folder / name if p is None else p for p in places]
        audio = _find_audio([entry.get("audio"), meta.get("audio")], line_places)  # what osmnet batch writes
        seed = entry.get("seed", meta.get("seed"))
        lines.append(BatchLine(name, takes, audio, status, reason,
                               seed if isinstance(seed, int) and not isinstance(seed, bool) else None))
    if not any(line.takes for line in lines):
        raise UserInputError(f"{folder} holds no batch lines (<name>/take_00.json ...); choose the --out folder "
                             "of osmnet batch")
    return lines, warnings
