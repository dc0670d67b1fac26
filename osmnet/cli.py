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
    p.add_argument("inputs", nargs="+", metavar="VIDEOS_OR_DIR", help="videos, or folders of videos")
    p.add_argument("--out", required=True, help="dataset folder to write (index.json, clips/, expression_basis.npz)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    p.add_argument("--model", help="MediaPipe face_landmarker.task (default: resolved as for `osmnet track`)")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate of the dataset (default 25)")
    p.set_defaults(run=_run_prepare)


def _run_prepare(a):
    from osmnet.data import DatasetError, prepare

    try:
        index = prepare(a.inputs, a.out, workers=a.workers, model_path=a.model, fps=a.fps)
    except (DatasetError, *_foundation_errors()) as e:
        raise CommandError(str(e)) from None
    s = index["summary"]
    print(f"wrote {a.out}: {s['clips']} clips ({s['seconds_total']:.0f} s, {s['seconds_with_audio']:.0f} s with "
          f"speech) from {len(index['speakers'])} speakers in {s['prepare_seconds']:.0f} s; {s['failed']} failed")
    basis = index.get("expression_basis") or {}
    if "r2_held_out" in basis:
        print(f"expression basis: R^2 {basis['r2_held_out']:.3f} on {len(basis['held_out'])} held-out clips")
    return 1 if s["failed"] else 0


# ---- model (`osmnet train`, `generate`, `evaluate`, `plot`): osmnet.train / sample / evaluate / plot

def _model_errors():
    from osmnet.checkpoint import CheckpointError
    from osmnet.config import ConfigError
    from osmnet.expression import ExpressionError
    from osmnet.sample import GenerateError
    from osmnet.trainset import DatasetError as TrainsetError

    return (CheckpointError, ConfigError, ExpressionError, GenerateError, TrainsetError, *_foundation_errors())


def _add_train(sub):
    p = sub.add_parser("train", help="train the model on a prepared dataset (torchrun-aware)")
    p.add_argument("--data", required=True, help="dataset folder made by `osmnet prepare`")
    p.add_argument("--out", required=True, help="checkpoint file to write (.pt)")
    p.add_argument("--epochs", type=int, help="training epochs (default from the config)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="config override, e.g. --set motion.bases=16 (repeatable)")
    p.set_defaults(run=_run_train)


def _run_train(a):
    from pathlib import Path

    from osmnet.config import Config
    from osmnet.train import train

    try:
        cfg = Config().override(a.set)
        if not Path(a.data).is_dir():
            raise CommandError(f"dataset folder {a.data} does not exist; make one with `osmnet prepare`")
        train(a.data, a.out, cfg, epochs=a.epochs, seed=a.seed, device=a.device,
              command="osmnet " + " ".join(sys.argv[1:]))
    except _model_errors() as e:
        raise CommandError(str(e)) from None


def _reroll_range(text):
    try:
        a, b = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"re-roll range {text!r} must look like START:END (frames)") from None
    return a, b


def _add_generate(sub):
    p = sub.add_parser("generate", help="speech -> several takes of head motion and expression")
    p.add_argument("audio", help="speech file (wav, mp3, ogg, flac, or a video with audio)")
    p.add_argument("--takes", type=int, default=4, help="number of takes (default 4)")
    p.add_argument("--seed", type=int, default=0, help="same seed -> identical takes (default 0)")
    p.add_argument("--out", required=True, help="folder for take_00.json, take_01.json, ...")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate of the takes (default 25)")
    p.add_argument("--diversity", type=float, default=1.0,
                   help="0 = the one mapped motion, 1 = the learned range (default), >1 wider")
    p.add_argument("--intensity", type=float, default=1.0, help="head-motion gain (default 1)")
    p.add_argument("--base", help="take to re-roll (with --reroll)")
    p.add_argument("--reroll", type=_reroll_range, metavar="START:END", help="frames of --base to replace")
    p.add_argument("--checkpoint", help="model checkpoint (default: the shipped model)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.set_defaults(run=_run_generate)


def _run_generate(a):
    from pathlib import Path

    from tqdm import tqdm

    from osmnet.sample import Generator
    from osmnet.take import Take

    if (a.base is None) != (a.reroll is None):
        raise CommandError("--base and --reroll go together: --base take.json --reroll START:END")
    try:
        base = Take.load(a.base) if a.base else None
        gen = Generator.load(a.checkpoint, device=a.device)
        parts = {}
        with tqdm(desc="generate", unit="chunk", file=sys.stderr, leave=False) as bar:
            for ch in gen.stream(a.audio, takes=a.takes, seed=a.seed, diversity=a.diversity, intensity=a.intensity,
                                 fps=a.fps, base=base, reroll=a.reroll):
                parts.setdefault(ch.take, []).append(ch.values)
                bar.update(1)
        import numpy as np

        meta = {"generator": gen.name, "audio": Path(a.audio).name, "seed": a.seed, "diversity": a.diversity,
                "intensity": a.intensity, **({"reroll": list(a.reroll)} if a.reroll else {})}
        out = Path(a.out)
        for k in sorted(parts):
            Take.from_array(np.concatenate(parts[k]), a.fps, meta={**meta, "take": k}).save(out / f"take_{k:02d}.json")
    except _model_errors() as e:
        raise CommandError(str(e)) from None
    print(f"wrote {len(parts)} takes to {out}/ (take_00.json ...), {a.fps:g} fps")


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="dev-speaker metrics of a checkpoint vs baselines")
    p.add_argument("--data", required=True, help="dataset folder made by `osmnet prepare`")
    p.add_argument("--checkpoint", help="model checkpoint (default: the shipped model)")
    p.add_argument("--takes", type=int, default=8, help="takes per dev video (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results here")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(a):
    from osmnet.evaluate import evaluate, format_table

    try:
        result = evaluate(a.data, a.checkpoint, takes=a.takes, seed=a.seed, out_json=a.json)
    except (ValueError, *_model_errors()) as e:
        raise CommandError(str(e)) from None
    print(f"dev speakers: {', '.join(result['dev_speakers'])} ({result['dev_seconds']} s)")
    print(format_table(result))


def _add_plot(sub):
    p = sub.add_parser("plot", help="head angles and key blendshapes of several takes on one chart")
    p.add_argument("takes", nargs="+", help="take files (.json)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.set_defaults(run=_run_plot)


def _run_plot(a):
    from pathlib import Path

    from osmnet.plot import plot_takes
    from osmnet.take import Take, TakeError

    try:
        takes = [Take.load(p) for p in a.takes]
        plot_takes(takes, a.out, labels=[Path(p).stem for p in a.takes])
    except TakeError as e:
        raise CommandError(str(e)) from None
    print(f"wrote {a.out}")


def _add_head(sub):
    p = sub.add_parser("head", help="export the generic preview head and its 52 ARKit shapes (OBJ + npz)")
    p.add_argument("--out", required=True, help="folder to write (neutral.obj, shapes/*.obj, preview_head.npz)")
    p.add_argument("--basis", help="expression_basis.npz (default: the one shipped with osmnet)")
    p.add_argument("--model", help="MediaPipe face_landmarker.task (for the mesh's triangles and UVs)")
    p.set_defaults(run=_run_head)


def _run_head(a):
    from osmnet.expression import ExpressionBasis, ExpressionError
    from osmnet.head import export_head

    try:
        out = export_head(a.out, ExpressionBasis.load(a.basis), a.model)
    except (ExpressionError, *_foundation_errors()) as e:
        raise CommandError(str(e)) from None
    print(f"wrote {out}: neutral.obj, 52 shapes in shapes/, preview_head.npz")


def _render_errors():
    from osmnet.expression import ExpressionError
    from osmnet.render import RenderError

    return _foundation_errors() + (RenderError, ExpressionError)


def _add_render(sub):
    p = sub.add_parser("render", help="2D preview: a photo speaks a take (mp4 with audio and/or PNG frames)")
    p.add_argument("--image", required=True, help="portrait photo (JPEG/PNG) with one face (or pick with --face)")
    p.add_argument("--take", required=True, help="take file (.json) to perform")
    p.add_argument("--audio", help="speech to mux into the mp4 (trimmed/padded to the take's length)")
    p.add_argument("--out", help="mp4 to write")
    p.add_argument("--frames-dir", help="also/instead write frame_00000.png ... here (for Blender)")
    p.add_argument("--size", type=int, default=256, help="frame size in pixels (256 or 512; default 256)")
    p.add_argument("--face", type=int, help="which face when the photo shows several (0 = largest)")
    p.add_argument("--device", default="cpu", help="torch device (cpu or cuda; default cpu)")
    p.add_argument("--basis", help="expression basis .npz (default: the one shipped with osmnet)")
    p.set_defaults(run=_run_render)


def _run_render(a):
    from tqdm import tqdm

    from osmnet.expression import ExpressionBasis
    from osmnet.render import render_video
    from osmnet.take import Take

    if not a.out and not a.frames_dir:
        raise CommandError("nothing to write: give --out preview.mp4 and/or --frames-dir DIR")
    try:
        take = Take.load(a.take)
        basis = ExpressionBasis.load(a.basis)
        with tqdm(total=take.frames, unit="frame", desc="rendering", file=sys.stderr, leave=False) as bar:
            render_video(a.image, take, a.out, audio=a.audio, size=a.size, face_index=a.face, device=a.device,
                         frames_dir=a.frames_dir, progress=bar, basis=basis)
    except _render_errors() as e:
        raise CommandError(str(e)) from None
    wrote = [x for x in (a.out, a.frames_dir and f"{a.frames_dir}/frame_*.png") if x]
    print(f"wrote {' and '.join(wrote)}: {take.frames} frames at {take.fps:g} fps, {a.size}x{a.size}")


def _add_contact_sheet(sub):
    p = sub.add_parser("contact-sheet", help="the same moments of several takes side by side (PNG)")
    p.add_argument("--image", required=True, help="portrait photo (JPEG/PNG)")
    p.add_argument("--take", required=True, nargs="+", help="take files (.json), one column each")
    p.add_argument("--at", type=float, nargs="+", default=[1.0], help="times in seconds, one row each (default 1.0)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--size", type=int, default=256, help="cell size in pixels (default 256)")
    p.add_argument("--face", type=int, help="which face when the photo shows several (0 = largest)")
    p.add_argument("--basis", help="expression basis .npz (default: the one shipped with osmnet)")
    p.set_defaults(run=_run_contact_sheet)


def _run_contact_sheet(a):
    from pathlib import Path

    from osmnet.expression import ExpressionBasis
    from osmnet.render import Portrait, contact_sheet, save_png
    from osmnet.take import Take

    try:
        takes = [Take.load(t) for t in a.take]
        portrait = Portrait.from_file(a.image, a.face)
        sheet = contact_sheet(portrait, takes, a.at, size=a.size, labels=[Path(t).stem for t in a.take],
                              basis=ExpressionBasis.load(a.basis))
        save_png(sheet, a.out)
    except _render_errors() as e:
        raise CommandError(str(e)) from None
    print(f"wrote {a.out}: {len(a.at)} moment(s) x {len(takes)} take(s)")


COMMANDS = [_add_track, _add_prepare, _add_head, _add_train, _add_generate, _add_evaluate, _add_plot, _add_render,
            _add_contact_sheet]

# Other packages add commands through this entry-point group (the backend adds serve, worker and
# keys), so the model library never imports them.
PLUGIN_GROUP = "osmnet.commands"


def build_parser() -> argparse.ArgumentParser:
    from osmnet import __version__

    parser = argparse.ArgumentParser(prog="osmnet", description="Several natural takes of head motion and lip-synced expression from speech.")
    parser.add_argument("--version", action="version", version=f"osmnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    for add in _plugin_commands():
        add(sub)
    return parser


def _plugin_commands():
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
        try:
            yield ep.load()
        except Exception as e:  # a broken optional part must not take the other commands down
            yield _unavailable(ep.name, e)


def _unavailable(name, error):
    """A stand-in for a command whose package failed to import: it explains instead of crashing."""
    def run(_args):
        raise CommandError(f"the {name} command could not be loaded ({error}); "
                           "reinstall with `bash scripts/setup.sh`")

    def add(sub):
        sub.add_parser(name, help=f"(unavailable: {error})").set_defaults(run=run)
    return add


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
