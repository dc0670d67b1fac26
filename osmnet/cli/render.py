"""`osmnet render` (a portrait speaks a take) and `osmnet contact-sheet` (the same moments of several takes)."""
from __future__ import annotations

import sys

from osmnet.cli import checks as c
from osmnet.cli.errors import CommandError

FRAME_FILES = ("frame_*.png",)  # what --frames-dir holds (and all --force may replace)


def add(sub):
    add_render(sub)
    add_contact_sheet(sub)


def add_render(sub):
    p = sub.add_parser("render", help="2D preview: a photo speaks a take (mp4 with audio and/or PNG frames)")
    p.add_argument("--image", required=True, help="portrait photo (JPEG/PNG) with one face (or pick with --face)")
    p.add_argument("--take", required=True, help="take file (.json) to perform")
    p.add_argument("--audio", help="speech to mux into the mp4 (trimmed/padded to the take's length)")
    p.add_argument("--out", help="mp4 to write")
    p.add_argument("--frames-dir", help="also/instead write frame_00000.png ... here (for Blender)")
    c.add_force(p)
    p.add_argument("--size", type=c.int_in(1, 1 << 16), default=256,
                   help="frame size in pixels (128, 256, 384, 512, 768 or 1024; default 256)")
    p.add_argument("--face", type=c.int_in(0, 1000), help="which face when the photo shows several (0 = largest)")
    p.add_argument("--device", default="cpu", help="torch device (cpu or cuda; default cpu)")
    p.add_argument("--basis", help="expression basis .npz (default: the one shipped with osmnet)")
    p.set_defaults(run=run_render)


def run_render(a):
    from tqdm import tqdm

    from osmnet.data.expression import ExpressionBasis
    from blender_addon.core.take import Take
    from osmnet.render.portrait import check_size, render_video

    if not a.out and not a.frames_dir:
        raise CommandError("nothing to write: give --out preview.mp4 and/or --frames-dir DIR")
    check_size(a.size)
    c.output(a, a.out, suffixes=(".mp4",))
    c.output(a, a.frames_dir, kind="dir", owns=FRAME_FILES, flag="--frames-dir")
    take = Take.load(a.take)
    basis = ExpressionBasis.load(a.basis)
    with tqdm(total=take.frames, unit="frame", desc="rendering", file=sys.stderr, leave=False) as bar:
        render_video(a.image, take, a.out, audio=a.audio, size=a.size, face_index=a.face, device=a.device,
                     frames_dir=a.frames_dir, progress=bar, basis=basis)
    wrote = [x for x in (a.out, a.frames_dir and f"{a.frames_dir}/frame_*.png") if x]
    print(f"wrote {' and '.join(wrote)}: {take.frames} frames at {take.fps:g} fps, {a.size}x{a.size}")


def add_contact_sheet(sub):
    p = sub.add_parser("contact-sheet", help="the same moments of several takes side by side (PNG)")
    p.add_argument("--image", required=True, help="portrait photo (JPEG/PNG)")
    p.add_argument("--take", required=True, nargs="+", help=f"take files (.json), one column each (up to {c.MAX_TAKES})")
    p.add_argument("--at", type=c.time_s, nargs="+", default=[1.0],
                   help=f"times in seconds, one row each (default 1.0; up to {c.MAX_TIMES})")
    p.add_argument("--out", required=True, help="PNG to write")
    c.add_force(p)
    p.add_argument("--size", type=c.int_in(1, 1 << 16), default=256,
                   help="cell size in pixels (128, 256, 384, 512, 768 or 1024; default 256)")
    p.add_argument("--face", type=c.int_in(0, 1000), help="which face when the photo shows several (0 = largest)")
    p.add_argument("--basis", help="expression basis .npz (default: the one shipped with osmnet)")
    p.set_defaults(run=run_contact_sheet)


def run_contact_sheet(a):
    from pathlib import Path

    from osmnet.data.expression import ExpressionBasis
    from blender_addon.core.take import Take
    from osmnet.render.portrait import Portrait, check_contact_sheet, contact_sheet, save_png

    if len(a.take) > c.MAX_TAKES or len(a.at) > c.MAX_TIMES:
        raise CommandError(f"a contact sheet shows up to {c.MAX_TAKES} takes and {c.MAX_TIMES} times; "
                           f"got {len(a.take)} and {len(a.at)}")
    check_contact_sheet(len(a.take), a.at, a.size)  # before a byte is read or a pixel allocated
    c.output(a, a.out, suffixes=(".png",))
    takes = [Take.load(t) for t in a.take]
    portrait = Portrait.from_file(a.image, a.face)
    sheet = contact_sheet(portrait, takes, a.at, size=a.size, labels=[Path(t).stem for t in a.take],
                          basis=ExpressionBasis.load(a.basis))
    save_png(sheet, a.out)
    print(f"wrote {a.out}: {len(a.at)} moment(s) x {len(takes)} take(s)")
