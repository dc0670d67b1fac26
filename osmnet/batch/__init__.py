"""Many dialogue lines at once: speech files -> DIR/<name>/take_NN.json + DIR/batch.json.

`collect_lines` turns files, folders and CSV manifests into lines; `run_batch` makes every line
not yet finished, on an engine: `LocalEngine` (worker processes, each loading the model once) or
`RayEngine` (one actor per GPU or CPU slot; optional extra `osmnet[ray]`, imported only when
used). Workers only compute; this process writes each line atomically and keeps batch.json, so
an interrupted or killed run never leaves half a line and a re-run skips what is finished.
See docs/batch.md.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from osmnet.batch.folder import BatchFolder, entry, report
from osmnet.batch.lines import BatchError, Line, Settings, collect_lines, line_seed
from osmnet.batch.local import LocalEngine, default_workers
from osmnet.batch.ray_engine import RayEngine

__all__ = ["BatchError", "Line", "LocalEngine", "RayEngine", "Settings", "collect_lines", "default_workers",
           "line_seed", "run_batch"]

REPORT_EVERY_S = 10.0  # batch.json is rewritten this often during a run (and at its end)


def run_batch(lines: list[Line], out, settings: Settings = Settings(), engine=None, progress=None,
              on_line: Callable[[dict], None] | None = None) -> dict:
    """Make every line not yet finished in `out`; returns the report also written to out/batch.json.
    `progress` is a tqdm-like bar (total is set here, one update per line); `on_line(entry)` is
    called after each line is written. On Ctrl+C the workers stop, the report lists the lines not
    reached as "pending", and KeyboardInterrupt propagates."""
    from contextlib import closing

    engine = engine or LocalEngine()
    t0 = time.perf_counter()
    folder = BatchFolder(out)
    try:
        entries = {line.name: entry(line, settings) for line in lines}
        todo = []
        for line in lines:
            state, rec = folder.state(line, settings)
            e = entries[line.name]
            if state == "done":
                e.update(status="skipped", duration_s=rec["duration_s"], frames=rec["frames"],
                         files=sorted(rec["files"]))
            elif state == "other":
                e.update(status="failed", reason=f"{folder.out / line.name} holds takes made from another request "
                         "(other audio, seed, takes, fps, diversity, intensity or checkpoint); delete it to remake "
                         "the line, or choose another --out")
            else:
                todo.append(line)
        if progress is not None:
            progress.total = len(todo)
            progress.refresh()
        last = time.monotonic()
        try:
            with closing(engine.map(todo, settings)) as results:
                for line, result in results:
                    e = entries[line.name]
                    e.update(seconds=round(result["seconds"], 3), cpu_s=round(result.get("cpu_s", 0.0), 3),
                             attempts=result.get("attempts"))
                    if result["status"] == "done":
                        rec = folder.write(line, settings, result)
                        e.update(status="done", duration_s=rec["duration_s"], frames=rec["frames"],
                                 files=sorted(rec["files"]))
                    else:
                        e.update(status="failed", reason=result["reason"])
                    if progress is not None:
                        progress.update(1)
                    if on_line is not None:
                        on_line(e)
                    if time.monotonic() - last > REPORT_EVERY_S:
                        folder.write_report(report(entries, settings, engine, t0))
                        last = time.monotonic()
        finally:
            final = report(entries, settings, engine, t0)
            folder.write_report(final)
    finally:
        folder.close()
    return final


