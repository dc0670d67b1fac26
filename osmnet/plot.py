"""Several takes on one chart: head angles over time plus key blendshapes, to see at a glance
how takes differ (head motion, blinks) and where they agree (lip sync)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from blender_addon.core.files import atomic_path
from blender_addon.core.take import Take
from blender_addon.core.errors import UserInputError

ANGLES = ("headPitch", "headYaw", "headRoll")
KEY_SHAPES = ("jawOpen", "eyeBlinkLeft", "mouthSmileLeft", "browInnerUp")


def plot_takes(takes: list[Take], out, labels=None, shapes=KEY_SHAPES, title=None) -> Path:
    """Write a PNG (atomically): one row per head angle (degrees) and per blendshape."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not takes:
        raise UserInputError("plot needs at least one take")
    labels = labels or [f"take {i}" for i in range(len(takes))]
    rows = list(ANGLES) + list(shapes)
    fig, axes = plt.subplots(len(rows), 1, figsize=(11, 1.6 * len(rows) + 0.6), sharex=True)
    colors = plt.get_cmap("tab10")
    for r, (ax, name) in enumerate(zip(axes, rows)):
        for i, take in enumerate(takes):
            t = np.arange(take.frames) / take.fps
            y = take.channels[name] * (180 / np.pi if name in ANGLES else 1.0)
            ax.plot(t, y, lw=1.0, color=colors(i % 10), label=labels[i] if r == 0 else None)
        ax.set_ylabel(f"{name}\n({'deg' if name in ANGLES else 'weight'})", fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    axes[0].legend(loc="upper right", fontsize=7, ncol=min(len(takes), 8))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(out)
    try:
        with atomic_path(out, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)
    return out
