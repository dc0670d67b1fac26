"""`osmnet evaluate --data DATASET`: dev-speaker metrics of a checkpoint against baselines."""
from __future__ import annotations

from osmnet.cli import checks as c


def add(sub):
    p = sub.add_parser("evaluate", help="dev-speaker metrics of a checkpoint vs baselines")
    p.add_argument("--data", required=True, help="dataset folder made by `osmnet prepare`")
    p.add_argument("--checkpoint", help="model checkpoint (default: the shipped model)")
    p.add_argument("--takes", type=c.int_in(1, c.MAX_TAKES), default=8,
                   help=f"takes per dev video, 1..{c.MAX_TAKES} (default 8)")
    p.add_argument("--seed", type=c.int_in(0, c.SEED_MAX), default=0)
    p.add_argument("--json", help="also write the results here")
    c.add_force(p)
    p.add_argument("--split", choices=("dev", "test"), default="dev",
                   help="held-out speakers to score: dev (default) or test (report it once, at the end)")
    p.add_argument("--pause-audio", nargs="*", default=[], metavar="AUDIO",
                   help="real recordings whose natural pauses must rest the mouth (e.g. radio clips)")
    p.set_defaults(run=run)


def run(a):
    from osmnet.model.evaluate import evaluate, format_table

    c.output(a, a.json, suffixes=(".json",), flag="--json")
    result = evaluate(a.data, a.checkpoint, takes=a.takes, seed=a.seed, out_json=a.json, split=a.split,
                      pause_audio=a.pause_audio)
    print(f"{result['split']} speakers: {', '.join(result['dev_speakers'])} ({result['dev_seconds']} s)")
    print(format_table(result))
