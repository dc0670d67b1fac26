"""`osmnet ...`: parse arguments, call the library, print. Nothing else lives here.

Each subcommand has one `_add_<name>` function that declares its arguments and the function
that runs it; the work itself is done by the library modules.
"""
from __future__ import annotations

import argparse
import sys


class CommandError(Exception):
    """A user-facing failure: printed as `osmnet: error: ...` with exit code 2, no traceback."""


def _foundation_errors():
    """Errors of the tracking/data modules that are the user's to fix (bad file, no face, ...)."""
    from osmnet.assets import AssetError
    from osmnet.face_mesh import FaceMeshError
    from osmnet.media import MediaError
    from osmnet.take import TakeError
    from osmnet.track import TrackError

    return (AssetError, FaceMeshError, MediaError, TakeError, TrackError)


def _add_track(sub):
    p = sub.add_parser("track", help="track a real video into a take (head pose + ARKit curves)")
    p.add_argument("video", help="video of one talking face (mp4, mov, ...)")
    p.add_argument("--audio", help="speech recorded with the video (checked to match its length)")
    p.add_argument("--model", help="MediaPipe face_landmarker.task (default: $OSMNET_FACE_LANDMARKER, "
                   "then ~/.cache/osmnet/, then download)")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate of the take (default 25)")
    p.add_argument("--out", required=True, help="take file to write (.json)")
    p.set_defaults(run=_run_track)


def _run_track(a):
    from tqdm import tqdm

    from osmnet.media import probe_video
    from osmnet.track import track_video

    try:
        total = probe_video(a.video).frames
        with tqdm(total=total, unit="frame", desc="tracking", file=sys.stderr, leave=False) as bar:
            tracked = track_video(a.video, audio=a.audio, model_path=a.model, fps=a.fps, progress=bar)
        tracked.take.save(a.out)
    except _foundation_errors() as e:
        raise CommandError(str(e)) from None
    take = tracked.take
    print(f"wrote {a.out}: {take.frames} frames at {take.fps:g} fps ({take.duration:.2f} s), "
          f"{tracked.lost_frames} frames without a face (interpolated)")


def _add_prepare(sub):
    p = sub.add_parser("prepare", help="turn videos into a training dataset")
    p.set_defaults(run=lambda a: print("prepare: not implemented yet"))


COMMANDS = [_add_track, _add_prepare]


def build_parser() -> argparse.ArgumentParser:
    from osmnet import __version__

    parser = argparse.ArgumentParser(prog="osmnet", description="Several natural takes of head motion and lip-synced expression from speech.")
    parser.add_argument("--version", action="version", version=f"osmnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.run(args)
    except CommandError as e:
        print(f"osmnet: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("osmnet: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
