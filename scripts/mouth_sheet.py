"""A contact sheet of mouth shapes: rows = portraits, columns = closed, open and rounded mouths.

For looking at the mouth interior (docs/renderer.md describes one). Each cell is one frame of a
one-frame take holding the shape, rendered at --size and cropped around the mouth unless
--whole is given.
Usage: python scripts/mouth_sheet.py --faces a.jpg b.png ... --out sheet.png [--size 512] [--whole]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FACES_DIR = Path(os.environ.get("OSMNET_SHARED", ROOT.parent / "shared")) / "data" / "faces"
SHAPES = (  # (label, channels)
    ("photo", {}),
    ("closed", {"mouthClose": 0.3, "mouthPressLeft": 0.3, "mouthPressRight": 0.3}),
    ("jaw 0.15", {"jawOpen": 0.15}),
    ("jaw 0.35", {"jawOpen": 0.35}),
    ("aa", {"jawOpen": 0.3, "mouthLowerDownLeft": 0.4, "mouthLowerDownRight": 0.4,
            "mouthUpperUpLeft": 0.3, "mouthUpperUpRight": 0.3}),
    ("funnel", {"mouthFunnel": 0.7, "jawOpen": 0.1}),
    ("pucker", {"mouthPucker": 0.9}),
    ("tongue out", {"tongueOut": 1.0, "jawOpen": 0.1}),
    ("smile", {"mouthSmileLeft": 0.7, "mouthSmileRight": 0.7, "jawOpen": 0.1}),
)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", nargs="+", help="photos (paths, or names in ../shared/data/faces)",
                    default=["liveportrait_s0.jpg", "makeittalk_obama.jpg", "sadtalker_happy.png"])
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--whole", action="store_true", help="whole frames instead of mouth crops")
    a = ap.parse_args()

    import numpy as np
    from PIL import Image, ImageDraw

    from blender_addon.core.take import zero_take
    from osmnet.render.portrait import Portrait, render_frames, save_png

    cell = 256
    rows = []
    for face in a.faces:
        path = Path(face) if Path(face).is_file() else FACES_DIR / face
        portrait = Portrait.from_file(path)
        cells = []
        for label, channels in SHAPES:
            take = zero_take(1)
            for k, v in channels.items():
                take.channels[k][:] = v
            im = next(render_frames(portrait, take, size=a.size, center_pose=False))
            if not a.whole:  # a square of 0.32 of the crop around the lips
                cx, cy = (portrait.landmarks[[13, 14], :2].mean(0) * a.size).astype(int)
                h = int(0.16 * a.size)
                im = im[max(cy - h, 0):cy + h, max(cx - h, 0):cx + h]
            pic = Image.fromarray(np.ascontiguousarray(im)).resize((cell, cell), Image.LANCZOS)
            ImageDraw.Draw(pic).text((4, 3), f"{path.stem[:18]} | {label}", fill=(255, 255, 255))
            cells.append(np.asarray(pic))
        rows.append(np.concatenate(cells, axis=1))
    print(save_png(np.concatenate(rows, axis=0), a.out))


if __name__ == "__main__":
    main()
