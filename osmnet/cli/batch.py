"""`osmnet batch`: many speech files -> a folder of takes per line and batch.json (docs/batch.md)."""
from __future__ import annotations

import argparse
import sys

from osmnet.cli import checks as c

DESCRIPTION = """\
Generate takes for many dialogue lines. Each line is one speech file; its takes go to
OUT/<name>/take_00.json ... and every line's status (done, skipped, failed + reason, pending),
duration, seed and time go to OUT/batch.json. A line's seed derives from --seed and its name, so
the takes do not depend on the order, the worker count or the engine. Finished lines are
skipped when the command runs again (a line with missing files is redone); Ctrl+C stops
without leaving a half-written line.

Local by default: one worker process per core, each loading the model once. --ray runs the
lines on Ray actors instead (one per GPU, or per CPU slot): alone it starts a local Ray
runtime, with an ADDRESS it joins that cluster (needs `pip install 'osmnet[ray]'`)."""

EPILOG = """\
sources:
  audio files (wav, flac, ogg, mp3, m4a, aac, opus; any file with an audio stream when named
  directly), folders of them (not recursive; name = file stem), or CSV manifests with the
  columns audio,name[,takes,seed,diversity] (header optional, audio relative to the manifest,
  empty cells take the command's values, a seed given there is used as it is).

exit status: 0 when every line is done or skipped, 1 when any line failed, 2 for bad
arguments, 130 when interrupted (run the same command again to finish).

examples:
  osmnet batch dialogue/ --out takes/ --takes 4 --seed 7
  osmnet batch lines.csv --out takes/ --ray                 # local Ray runtime
  osmnet batch lines.csv --out takes/ --ray=head-node:6379  # join a Ray cluster"""


def add(sub):
    p = sub.add_parser("batch", help="many dialogue lines -> takes per line (local processes or Ray)",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="audio file, folder of audio files or CSV manifest")
    p.add_argument("--out", required=True, metavar="DIR", help="batch folder (<name>/take_NN.json and batch.json)")
    p.add_argument("--takes", type=c.int_in(1, c.MAX_TAKES), default=4, metavar="N",
                   help=f"takes per line, 1..{c.MAX_TAKES} (default 4)")
    p.add_argument("--seed", type=c.int_in(0, c.SEED_MAX), default=0, metavar="S",
                   help="batch seed; each line's seed derives from it and the line's name (default 0)")
    p.add_argument("--fps", type=c.float_in(*c.FPS), default=25.0, metavar="F",
                   help="frame rate of the takes, 1..240 (default 25)")
    p.add_argument("--diversity", type=c.float_in(*c.DIVERSITY), default=1.0, metavar="D",
                   help="0 = the one mapped motion, 1 = the learned range (default), >1 wider, up to 10")
    p.add_argument("--intensity", type=c.float_in(*c.INTENSITY), default=1.0, metavar="X",
                   help="head-motion gain, 0..10 (default 1)")
    p.add_argument("--checkpoint", metavar="PT", help="model checkpoint (default: the shipped model)")
    p.add_argument("--workers", type=c.int_in(1), metavar="N",
                   help="local: worker processes (default: one per core; one per GPU with --device cuda); "
                        "--ray: CPUs of the local Ray runtime (or at most N CPU actors on a cluster)")
    p.add_argument("--device", choices=("cpu", "cuda"),
                   help="local: cpu (default) or cuda (workers spread over the GPUs); --ray: cpu forces CPU "
                        "actors, otherwise one actor per GPU when the cluster has GPUs")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run on Ray: alone, a local Ray runtime; with ADDRESS (host:port or auto) join that "
                        "cluster. Write --ray=ADDRESS, or put --ray after the sources")
    p.set_defaults(run=run)


def run(a) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from osmnet.batch import BatchError, LocalEngine, RayEngine, Settings, collect_lines, run_batch

    if a.ray and Path(a.ray).exists():
        raise BatchError(f"--ray took {a.ray!r} as the cluster address; put --ray after the sources or "
                         "write --ray=ADDRESS")
    lines = collect_lines(a.sources, takes=a.takes, seed=a.seed, diversity=a.diversity, max_takes=c.MAX_TAKES,
                          max_diversity=c.DIVERSITY[1])
    settings = Settings(fps=a.fps, intensity=a.intensity, checkpoint=a.checkpoint, device=a.device)
    engine = RayEngine(a.ray or None, a.workers) if a.ray is not None else LocalEngine(a.workers)
    failed = []

    def on_line(entry):
        if entry["status"] == "failed":
            failed.append(entry)
            bar.set_postfix_str(f"{len(failed)} failed", refresh=False)

    with tqdm(desc="batch", unit="line", file=sys.stderr, leave=False, dynamic_ncols=True, delay=0.5) as bar:
        try:
            report = run_batch(lines, a.out, settings, engine, progress=bar, on_line=on_line)
        except KeyboardInterrupt:
            bar.close()
            print(f"osmnet batch: stopped; {a.out}/batch.json lists the lines not made yet as pending: "
                  "run the same command again to finish them", file=sys.stderr)
            raise
    t = report["totals"]
    bad = [e for e in report["lines"] if e["status"] == "failed"]
    for e in bad[:10]:
        print(f"failed {e['name']}: {e['reason']}", file=sys.stderr)
    if len(bad) > 10:
        print(f"... and {len(bad) - 10} more failed lines (their reasons are in {a.out}/batch.json)", file=sys.stderr)
    print(f"wrote {a.out}/: {t['done']} done, {t['skipped']} skipped, {t['failed']} failed of {t['lines']} lines "
          f"({t['audio_s']:.0f} s of speech) in {t['wall_s']:.1f} s; report {a.out}/batch.json")
    return 1 if t["failed"] else 0
