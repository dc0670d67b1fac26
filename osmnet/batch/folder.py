"""The batch folder: DIR/<name>/take_NN.json + line.json per finished line, and DIR/batch.json.

Only the driver writes here. A line's files are written into DIR/.osmnet-partial/ and the folder
is renamed into place in one step, so a line is either whole or absent; line.json records what
the line was made from, which is how a re-run knows what to skip, redo or leave alone.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from blender_addon.core.batchfolder import BATCH_FORMAT, BATCH_VERSION, LINE_FILE, PARTIAL_DIR
from blender_addon.core.errors import EnvironmentProblem
from blender_addon.core.files import atomic_write
from osmnet.batch.lines import REPORT, BatchError, Line, Settings

FORMAT, VERSION = BATCH_FORMAT, BATCH_VERSION
PARTIAL = PARTIAL_DIR  # lines being written; removed at the start of every run
LOCK = ".osmnet-batch.lock"


class BatchFolder:
    """DIR: one folder per finished line, each renamed into place whole, and batch.json.
    A lock keeps a second run from writing the same DIR at the same time."""

    def __init__(self, out):
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise BatchError(f"--out {out} is a file; give a folder for the batch")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise EnvironmentProblem(f"cannot write the batch folder {out} ({e}); choose a writable --out") from None
        try:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no fcntl (Windows): no lock
            pass
        except BlockingIOError:
            os.close(self._fd)
            raise BatchError(f"another `osmnet batch` is writing {out}; wait for it or choose another --out") from None
        shutil.rmtree(self.out / PARTIAL, ignore_errors=True)  # left by a run that was killed

    def close(self):
        shutil.rmtree(self.out / PARTIAL, ignore_errors=True)
        os.close(self._fd)

    @staticmethod
    def _request(line: Line, settings: Settings) -> dict:
        """What a finished line must have been made with to be skipped."""
        audio = Path(line.audio)
        size = audio.stat().st_size if audio.is_file() else None
        return {"takes": line.takes, "seed": line.seed, "diversity": line.diversity, "fps": settings.fps,
                "intensity": settings.intensity, "checkpoint": settings.checkpoint, "audio_file": audio.name,
                "audio_bytes": size}

    def state(self, line: Line, settings: Settings) -> tuple[str, dict | None]:
        """("new" | "done" | "redo" | "other", line.json or None). "redo": files missing or
        damaged; "other": made from another request, kept (the reason says how to remake it)."""
        d = self.out / line.name
        if not d.exists():
            return "new", None
        try:
            rec = json.loads((d / LINE_FILE).read_text())
        except (OSError, ValueError):
            rec = None
        if not (isinstance(rec, dict) and rec.get("format") == FORMAT + "-line"):
            ours = all(p.name == LINE_FILE or (p.name.startswith("take_") and p.suffix == ".json")
                       for p in d.iterdir()) if d.is_dir() else False
            return ("redo", None) if ours else ("other", None)
        want = self._request(line, settings)
        if any(rec.get(k) != v for k, v in want.items()):
            return "other", rec
        files = rec.get("files") or {}
        ok = len(files) == line.takes and all((d / f).is_file() and (d / f).stat().st_size == n
                                              for f, n in files.items())
        return ("done" if ok else "redo"), rec

    def write(self, line: Line, settings: Settings, result: dict) -> dict:
        """Put a line's files in place in one rename; returns its line.json record."""
        tag = uuid.uuid4().hex[:8]
        tmp = self.out / PARTIAL / f"{line.name}.{tag}"
        tmp.mkdir(parents=True)
        for fname, data in result["files"].items():
            (tmp / fname).write_bytes(data)
        rec = {"format": FORMAT + "-line", "version": VERSION, "name": line.name, "audio": line.audio,
               **self._request(line, settings), "generator": result["generator"], "frames": result["frames"],
               "duration_s": result["duration_s"], "files": {f: len(b) for f, b in result["files"].items()}}
        (tmp / LINE_FILE).write_text(json.dumps(rec, indent=1))
        final, old = self.out / line.name, self.out / PARTIAL / f"{line.name}.old.{tag}"
        if final.exists():  # an incomplete earlier attempt: moved aside, replaced, then removed
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        return rec

    def write_report(self, data: dict):
        atomic_write(self.out / REPORT, json.dumps(data, indent=1))


def entry(line: Line, settings: Settings) -> dict:
    """A line's row in batch.json before it is made (docs/batch.md lists the fields)."""
    return {"name": line.name, "audio": line.audio, "status": "pending", "reason": None, "seed": line.seed,
            "takes": line.takes, "diversity": line.diversity, "fps": settings.fps, "duration_s": None,
            "frames": None, "files": [], "seconds": None, "cpu_s": None, "attempts": None}


def report(entries: dict, settings: Settings, engine, t0: float) -> dict:
    """batch.json: the settings, the totals and every line's row, in source order."""
    lines = list(entries.values())
    count = {s: sum(e["status"] == s for e in lines) for s in ("done", "skipped", "failed", "pending")}
    speech = sum(e["duration_s"] or 0 for e in lines if e["status"] in ("done", "skipped"))
    wall = time.perf_counter() - t0
    return {"format": FORMAT, "version": VERSION, "settings": {**asdict(settings), "engine": engine.describe()},
            "totals": {"lines": len(lines), **count,
                       "audio_s": round(speech, 3),
                       "wall_s": round(wall, 3), "lines_per_s": round(count["done"] / wall, 3) if wall > 0 else None},
            "lines": lines}
