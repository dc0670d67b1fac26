"""`osmnet plot TAKES... --out plot.png`: head angles and key blendshapes of several takes."""
from __future__ import annotations

from osmnet.cli import checks as c


def add(sub):
    p = sub.add_parser("plot", help="head angles and key blendshapes of several takes on one chart")
    p.add_argument("takes", nargs="+", help="take files (.json)")
    p.add_argument("--out", required=True, help="PNG to write")
    c.add_force(p)
    p.set_defaults(run=run)


def run(a):
    from pathlib import Path

    from osmnet.plot import plot_takes
    from blender_addon.core.take import Take

    c.output(a, a.out, suffixes=(".png",))
    takes = [Take.load(p) for p in a.takes]
    plot_takes(takes, a.out, labels=[Path(p).stem for p in a.takes])
    print(f"wrote {a.out}")
