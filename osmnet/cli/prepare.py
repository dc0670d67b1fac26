"""`osmnet prepare VIDEOS... --out DATASET`: tracked clips, landmarks, audio features, the expression basis."""
from __future__ import annotations

from osmnet.cli import checks as c

DATASET_FILES = ("index.json", "clips", "expression_basis.npz")  # what prepare writes (and --force replaces)


def add(sub):
    p = sub.add_parser("prepare", help="turn videos into a training dataset")
    p.add_argument("inputs", nargs="+", metavar="VIDEOS_OR_DIR", help="videos, or folders of videos")
    p.add_argument("--out", required=True, help="dataset folder to write (index.json, clips/, expression_basis.npz)")
    c.add_force(p)
    p.add_argument("--workers", type=c.int_in(1, c.MAX_WORKERS), default=2,
                   help=f"parallel processes, 1..{c.MAX_WORKERS} (default 2)")
    p.add_argument("--model", help="MediaPipe face_landmarker.task (default: resolved as for `osmnet track`)")
    p.add_argument("--fps", type=c.float_in(*c.FPS), default=25.0, help="frame rate of the dataset, 1..240 (default 25)")
    p.add_argument("--phones", choices=("auto", "on", "off"), default="auto",
                   help="pocketsphinx phone labels of English speech (training-only; default: when installed)")
    p.add_argument("--not-english", action="append", default=[], metavar="PATTERN",
                   help="clip names (glob, e.g. '*German*') that are not English: no phone labels; repeatable")
    p.set_defaults(run=run)


def run(a):
    from osmnet.data.prepare import DatasetError, prepare

    from blender_addon.core.files import replace_dir

    out = c.output(a, a.out, kind="dir", owns=DATASET_FILES)
    with replace_dir(out) as tmp:  # a dataset appears whole: never clips of two runs in one index
        index = prepare(a.inputs, tmp, workers=a.workers, model_path=a.model, fps=a.fps, phones=a.phones,
                        not_english=a.not_english)
    s = index["summary"]
    print(f"wrote {a.out}: {s['clips']} clips ({s['seconds_total']:.0f} s, {s['seconds_with_audio']:.0f} s with "
          f"speech) from {len(index['speakers'])} speakers in {s['prepare_seconds']:.0f} s; {s['failed']} failed")
    if s.get("unreliable"):
        print(f"unreliable mouth tracking (left out of the expression loss): {', '.join(s['unreliable'])}")
    basis = index.get("expression_basis") or {}
    if "r2_held_out" in basis:
        print(f"expression basis: R^2 {basis['r2_held_out']:.3f} on {len(basis['held_out'])} held-out clips")
    return 1 if s["failed"] else 0
