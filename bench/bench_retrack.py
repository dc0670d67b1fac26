"""Renderer truth: real takes rendered on portraits and tracked again (the cycle check).

Each clip of ../shared/data/talking is tracked into a take (osmnet track, in rig space as the
model makes takes), the take is rendered
on each portrait at each size, the mp4 is tracked again and every channel is compared with the
take (Pearson r). Prints one JSON line per (clip, portrait, size) and a last line with the
worst r of each promised channel (target: >= 0.85 for yaw, pitch, roll and jawOpen).
Usage: python bench/bench_retrack.py [--clips A.mp4 ...] [--faces a.jpg ...] [--sizes 256 512]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_render.py

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OSMNET_SHARED", ROOT.parent / "shared")) / "data"
CLIPS = ("hdtf_WDA_KatieHill_000.mp4", "hdtf_WDA_AlexandriaOcasioCortez_000.mp4")
FACES = ("liveportrait_s0.jpg", "makeittalk_natalie.jpg", "sadtalker_people_0.png", "makeittalk_obama.jpg",
         "liveportrait_s5.jpg")
TARGET = 0.85


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=list(CLIPS), help="clips of ../shared/data/talking")
    ap.add_argument("--faces", nargs="+", default=list(FACES), help="portraits of ../shared/data/faces")
    ap.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import torch

    from osmnet.data.track import FaceTracker, to_rig_space
    from osmnet.render.portrait import Portrait
    from osmnet.render.retrack import CHANNELS, retrack

    torch.set_num_threads(a.threads)
    worst = {ch: 1.0 for ch in CHANNELS}
    with FaceTracker() as tracker, tempfile.TemporaryDirectory() as tmp:
        portraits = {f: Portrait.from_image(_load(SHARED / "faces" / f), tracker=tracker) for f in a.faces}
        for clip in a.clips:
            take = to_rig_space(tracker.track_video(SHARED / "talking" / clip).take)  # as the model makes takes
            for face, portrait in portraits.items():
                for size in a.sizes:
                    t0 = time.perf_counter()
                    r = retrack(portrait, take, size, Path(tmp) / "r.mp4", tracker=tracker)
                    for ch in CHANNELS:
                        worst[ch] = min(worst[ch], r[ch])
                    print(json.dumps({"bench": "retrack", "clip": clip, "face": face, "size": size,
                                      **{k: round(v, 3) for k, v in r.items()},
                                      "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
    print(json.dumps({"bench": "retrack", "worst": {k: round(v, 3) for k, v in worst.items()}, "target": TARGET,
                      "clips": len(a.clips), "faces": len(a.faces), "sizes": a.sizes}))


def _load(path):
    from osmnet.render.portrait import load_image

    return load_image(path)


if __name__ == "__main__":
    main()
