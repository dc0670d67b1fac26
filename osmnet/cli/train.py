"""`osmnet train --data DATASET --out CHECKPOINT`: the networks (CPU or GPU; DDP under torchrun)."""
from __future__ import annotations

import sys

from osmnet.cli import checks as c
from osmnet.cli.errors import CommandError


def add(sub):
    p = sub.add_parser("train", help="train the model on a prepared dataset (torchrun-aware)")
    p.add_argument("--data", required=True, help="dataset folder made by `osmnet prepare`")
    p.add_argument("--out", required=True, help="checkpoint file to write (.pt)")
    c.add_force(p)
    p.add_argument("--epochs", type=c.int_in(1, 100000), help="training epochs (default from the config)")
    p.add_argument("--seed", type=c.int_in(0, c.SEED_MAX), help="random seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="config override, e.g. --set motion.bases=16 (repeatable)")
    p.set_defaults(run=run)


def run(a):
    from pathlib import Path

    from osmnet.model.config import Config
    from osmnet.model.train import train

    cfg = Config().override(a.set)
    c.output(a, a.out, suffixes=(".pt",))
    if not Path(a.data).is_dir():
        raise CommandError(f"dataset folder {a.data} does not exist; make one with `osmnet prepare`")
    train(a.data, a.out, cfg, epochs=a.epochs, seed=a.seed, device=a.device,
          command="osmnet " + " ".join(sys.argv[1:]))
