"""`osmnet generate AUDIO --takes N --seed S --out DIR`: speech -> several takes; re-roll a range."""
from __future__ import annotations

import sys

from osmnet.cli import checks as c
from osmnet.cli.errors import CommandError

TAKE_FILES = ("take_*.json",)  # what a generate writes into --out (and all --force may replace)


def add(sub):
    p = sub.add_parser("generate", help="speech -> several takes of head motion and expression")
    p.add_argument("audio", help="speech file (wav, mp3, ogg, flac, or a video with audio)")
    p.add_argument("--takes", type=c.int_in(1, c.MAX_TAKES), default=4,
                   help=f"number of takes, 1..{c.MAX_TAKES} (default 4)")
    p.add_argument("--seed", type=c.int_in(0, c.SEED_MAX), default=0, help="same seed -> identical takes (default 0)")
    p.add_argument("--out", required=True, help="folder for take_00.json, take_01.json, ...")
    c.add_force(p)
    p.add_argument("--fps", type=c.float_in(*c.FPS), default=25.0, help="frame rate of the takes, 1..240 (default 25)")
    p.add_argument("--diversity", type=c.float_in(*c.DIVERSITY), default=1.0,
                   help="0 = the one mapped motion, 1 = the learned range (default), >1 wider (up to 10)")
    p.add_argument("--intensity", type=c.float_in(*c.INTENSITY), default=1.0, help="head-motion gain, 0..10 (default 1)")
    p.add_argument("--base", help="take to re-roll (with --reroll)")
    p.add_argument("--reroll", type=c.frame_range, metavar="START:END", help="frames of --base to replace")
    p.add_argument("--what", choices=("head", "face", "both"), default="both",
                   help="what --reroll regenerates: head pose, face (brows, eyes, blinks, gaze), or both (default)")
    p.add_argument("--checkpoint", help="model checkpoint (default: the shipped model)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.set_defaults(run=run)


def run(a):
    from pathlib import Path

    from tqdm import tqdm

    from blender_addon.core.files import replace_dir
    from blender_addon.core.take import Take
    from osmnet.generate import Generator

    if (a.base is None) != (a.reroll is None):
        raise CommandError("--base and --reroll go together: --base take.json --reroll START:END")
    out = c.output(a, a.out, kind="dir", owns=TAKE_FILES)
    if not Path(a.audio).is_file():
        raise CommandError(f"speech file {a.audio} does not exist" if not Path(a.audio).exists()
                           else f"speech file {a.audio} is not a file")
    base = Take.load(a.base) if a.base else None
    gen = Generator.load(a.checkpoint, device=a.device)
    parts = {}
    with tqdm(desc="generate", unit="chunk", file=sys.stderr, leave=False) as bar:
        for ch in gen.stream(a.audio, takes=a.takes, seed=a.seed, diversity=a.diversity, intensity=a.intensity,
                             fps=a.fps, base=base, reroll=a.reroll, what=a.what):
            parts.setdefault(ch.take, []).append(ch.values)
            bar.update(1)
    import numpy as np

    meta = {"generator": gen.name, "curves": "rig", "audio": Path(a.audio).name, "seed": a.seed,
            "diversity": a.diversity, "intensity": a.intensity,
            **({"reroll": list(a.reroll), "reroll_what": a.what} if a.reroll else {})}
    with replace_dir(out) as tmp:  # the whole set at once: never new take_00/01 beside old take_02/03
        for k in sorted(parts):
            Take.from_array(np.concatenate(parts[k]), a.fps, meta={**meta, "take": k}).save(tmp / f"take_{k:02d}.json")
    print(f"wrote {len(parts)} takes to {out}/ (take_00.json ...), {a.fps:g} fps")
