"""The cycle check: a take rendered on a portrait, tracked again, compared with the take.

The renderer is true to a take when our own tracker (osmnet track, MediaPipe) reads the rendered
video back as that take: the video is written as the mp4 a user gets (h264, so the encoder's
blur is part of the check) and tracked like any real clip. Used by bench/bench_retrack.py and
the slow test in tests/render.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

CHANNELS = ("headYaw", "headPitch", "headRoll", "jawOpen")  # the ones the renderer promises
ALSO = ("mouthSmileLeft", "mouthFunnel", "mouthPucker", "eyeBlinkLeft")  # reported, not promised


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two curves; 0 when either is flat (nothing to follow)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def retrack(portrait, take, size: int, video: Path, tracker=None, basis=None,
            channels=CHANNELS + ALSO) -> dict[str, float]:
    """Render `take` on `portrait` at `size` into `video` (mp4), track it, r per channel."""
    from osmnet.data.track import FaceTracker
    from osmnet.media import write_video
    from osmnet.render.portrait import render_frames

    write_video(render_frames(portrait, take, size=size, basis=basis), take.fps, video)
    own = tracker is None
    tracker = tracker or FaceTracker()
    try:
        again = tracker.track_video(video, fps=take.fps).take
    finally:
        if own:
            tracker.close()
    n = min(again.frames, take.frames)
    return {ch: correlation(take.channels[ch][:n], again.channels[ch][:n]) for ch in channels}
