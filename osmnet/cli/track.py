"""`osmnet track VIDEO --out take.json`: real video -> a take (MediaPipe head pose + ARKit curves)."""
from __future__ import annotations

import sys

from osmnet.cli import checks as c


def add(sub):
    p = sub.add_parser("track", help="track a real video into a take (head pose + ARKit curves)")
    p.add_argument("video", help="video of one talking face (mp4, mov, ...)")
    p.add_argument("--audio", help="speech recorded with the video (checked to match its length)")
    p.add_argument("--model", help="MediaPipe face_landmarker.task (default: $OSMNET_FACE_LANDMARKER, "
                   "then ~/.cache/osmnet/, then download)")
    p.add_argument("--fps", type=c.float_in(*c.FPS), default=25.0, help="frame rate of the take, 1..240 (default 25)")
    p.add_argument("--out", required=True, help="take file to write (.json)")
    c.add_force(p)
    p.add_argument("--raw", action="store_true", help="keep MediaPipe's raw scores instead of rig-space "
                   "weights (0 = this face's neutral, 1 = the full shape; docs/take-format.md)")
    p.set_defaults(run=run)


def run(a):
    from tqdm import tqdm

    from osmnet.media import probe_video
    from osmnet.data.track import to_rig_space, track_video

    c.output(a, a.out, suffixes=(".json",))
    total = probe_video(a.video).frames
    with tqdm(total=total, unit="frame", desc="tracking", file=sys.stderr, leave=False) as bar:
        tracked = track_video(a.video, audio=a.audio, model_path=a.model, fps=a.fps, progress=bar)
    take = tracked.take if a.raw else to_rig_space(tracked.take)
    take.save(a.out)
    space = ("raw MediaPipe scores (not calibrated)" if a.raw else
             "rig-space curves (calibrated: 0 = this face's neutral, 1 = full shape)")
    print(f"wrote {a.out}: {take.frames} frames at {take.fps:g} fps ({take.duration:.2f} s), "
          f"{tracked.lost_frames} frames without a face (interpolated); {space}")
