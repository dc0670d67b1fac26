"""Tracking throughput on 256x256 video and the time to prepare all of ../shared/data/talking.

Prints one JSON line. Targets: track_fps >= 100 on 2 cores (MediaPipe's own inference is the
ceiling: `mediapipe_fps` is inference alone on frames already in memory).
Usage: python bench/bench_track.py [--skip-prepare] [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OSMNET_SHARED", ROOT.parent / "shared"))
CLIP = SHARED / "data" / "talking" / "styletalk_Obama_clip1.mp4"  # 256x256, 30 fps, 602 frames
MODEL = SHARED / "models" / "face_landmarker.task"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-prepare", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from osmnet.data.prepare import prepare
    from osmnet.media import iter_video_frames
    from osmnet.data.track import FaceTracker, _detect

    t = time.perf_counter()
    frames = [f for _, f in iter_video_frames(CLIP)]
    decode_fps = len(frames) / (time.perf_counter() - t)
    result = {"bench": "track", "clip": CLIP.name, "size": list(frames[0].shape[:2]), "cpus": os.cpu_count(),
              "decode_fps": round(decode_fps, 1)}
    with FaceTracker(MODEL) as tracker:
        lm = tracker._create(True, 1)
        t = time.perf_counter()
        for i, f in enumerate(frames):
            _detect(lm, f, i * 33 + 1)
        result["mediapipe_fps"] = round(len(frames) / (time.perf_counter() - t), 1)
        lm.close()
        t = time.perf_counter()
        tracked = tracker.track_video(CLIP)
        result["track_fps"] = round(tracked.take.meta["source_frames"] / (time.perf_counter() - t), 1)
    if not args.skip_prepare:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            index = prepare([SHARED / "data" / "talking"], tmp, workers=args.workers, model_path=MODEL, progress=False)
            s = time.perf_counter() - t
        result.update({"prepare_talking_s": round(s, 1), "prepare_clips": index["summary"]["clips"],
                       "prepare_failed": index["summary"]["failed"],
                       "talking_seconds": index["summary"]["seconds_total"],
                       "prepare_realtime_factor": round(index["summary"]["seconds_total"] / s, 2),
                       "workers": args.workers})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
