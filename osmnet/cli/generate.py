"""`osmnet generate AUDIO --takes N --seed S --out DIR`: speech -> several takes; re-roll a range."""
from __future__ import annotations

import argparse
import sys

from osmnet.cli.errors import CommandError


def _reroll_range(text):
    try:
        a, b = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"re-roll range {text!r} must look like START:END (frames)") from None
    return a, b


def add(sub):
    p = sub.add_parser("generate", help="speech -> several takes of head motion and expression")
    p.add_argument("audio", help="speech file (wav, mp3, ogg, flac, or a video with audio)")
    p.add_argument("--takes", type=int, default=4, help="number of takes (default 4)")
    p.add_argument("--seed", type=int, default=0, help="same seed -> identical takes (default 0)")
    p.add_argument("--out", required=True, help="folder for take_00.json, take_01.json, ...")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate of the takes (default 25)")
    p.add_argument("--diversity", type=float, default=1.0,
                   help="0 = the one mapped motion, 1 = the learned range (default), >1 wider")
    p.add_argument("--intensity", type=float, default=1.0, help="head-motion gain (default 1)")
    p.add_argument("--base", help="take to re-roll (with --reroll)")
    p.add_argument("--reroll", type=_reroll_range, metavar="START:END", help="frames of --base to replace")
    p.add_argument("--what", choices=("head", "face", "both"), default="both",
                   help="what --reroll regenerates: head pose, face (brows, eyes, blinks, gaze), or both (default)")
    p.add_argument("--checkpoint", help="model checkpoint (default: the shipped model)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.set_defaults(run=run)


def run(a):
    from pathlib import Path

    from tqdm import tqdm

    from osmnet.generate import Generator
    from blender_addon.core.take import Take

    if (a.base is None) != (a.reroll is None):
        raise CommandError("--base and --reroll go together: --base take.json --reroll START:END")
    base = Take.load(a.base) if a.base else None
    gen = Generator.load(a.checkpoint, device=a.device)
    parts = {}
    with tqdm(desc="generate", unit="chunk", file=sys.stderr, leave=False) as bar:
        for ch in gen.stream(a.audio, takes=a.takes, seed=a.seed, diversity=a.diversity, intensity=a.intensity,
                             fps=a.fps, base=base, reroll=a.reroll, what=a.what):
            parts.setdefault(ch.take, []).append(ch.values)
            bar.update(1)
    import numpy as np

    meta = {"generator": gen.name, "curves": "rig", "audio": Path(a.audio).name, "seed": a.seed, "diversity": a.diversity,
            "intensity": a.intensity, **({"reroll": list(a.reroll), "reroll_what": a.what} if a.reroll else {})}
    out = Path(a.out)
    for k in sorted(parts):
        Take.from_array(np.concatenate(parts[k]), a.fps, meta={**meta, "take": k}).save(out / f"take_{k:02d}.json")
    print(f"wrote {len(parts)} takes to {out}/ (take_00.json ...), {a.fps:g} fps")
