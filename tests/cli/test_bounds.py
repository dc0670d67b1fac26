"""Issue 12 point 7: every bound is checked before any input is read or memory allocated.

The inputs named here do not exist: a refusal that names the flag (not the missing file) shows the
check ran before anything was read, and no output appears.
"""
from __future__ import annotations

import json

import pytest
from cli_support import assert_one_line_error, cli

from blender_addon.core.take import FPS_RANGE, zero_take
from osmnet.cli import checks

NOWHERE = "missing-input"


@pytest.mark.parametrize("argv, words", [
    (["generate", "x.wav", "--takes", "100000"], ["--takes", "1..64"]),
    (["generate", "x.wav", "--takes", "0"], ["--takes"]),
    (["generate", "x.wav", "--diversity", "1e30"], ["--diversity", "0 to 10"]),
    (["generate", "x.wav", "--intensity", "1e30"], ["--intensity"]),
    (["generate", "x.wav", "--diversity", "nan"], ["--diversity", "finite"]),
    (["generate", "x.wav", "--intensity", "-inf"], ["--intensity"]),
    (["generate", "x.wav", "--fps", "1e9"], ["--fps", "1 to 240"]),
    (["generate", "x.wav", "--seed", "-1"], ["--seed"]),
    (["generate", "x.wav", "--seed", "1e3"], ["--seed", "whole number"]),
    (["track", "x.mp4", "--fps", "nan"], ["--fps"]),
    (["track", "x.mp4", "--fps", "1e9"], ["--fps"]),
    (["prepare", "videos", "--workers", "0"], ["--workers", "1..64"]),
    (["prepare", "videos", "--workers", "-4"], ["--workers"]),
    (["prepare", "videos", "--fps", "1e-9"], ["--fps"]),
    (["evaluate", "--data", NOWHERE, "--takes", "0"], ["--takes"]),
    (["train", "--data", NOWHERE, "--epochs", "0"], ["--epochs"]),
    (["contact-sheet", "--image", "x.jpg", "--take", "t.json", "--size", "100000"], ["--size"]),
    (["contact-sheet", "--image", "x.jpg", "--take", "t.json", "--at", "nan"], ["--at", "finite"]),
    (["contact-sheet", "--image", "x.jpg", "--take", "t.json", "--at", "inf"], ["--at"]),
    (["contact-sheet", "--image", "x.jpg", "--take", "t.json", "--at", "-1"], ["--at"]),
    (["render", "--image", "x.jpg", "--take", "t.json", "--size", "-1"], ["--size"]),
    (["render", "--image", "x.jpg", "--take", "t.json", "--face", "-1"], ["--face"]),
])
def test_an_out_of_range_flag_is_refused_before_anything_is_read(tmp_path, argv, words):
    out = tmp_path / "out"
    suffix = {"contact-sheet": ".png", "render": ".mp4", "train": ".pt"}.get(argv[0], "")
    flag = "--json" if argv[0] == "evaluate" else "--out"
    r = cli(*argv, flag, f"{out}{suffix}" if argv[0] != "evaluate" else f"{out}.json")
    assert_one_line_error(r, *words)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("size, times, takes, words", [
    (65536, [1.0], 1, ["size 65536 is not supported"]),  # passes the parser's bound, not the renderer's sizes
    (1024, [float(t) for t in range(64)], 64, ["Mpx"]),  # 64 x 64 cells of 1024 px: 4 Gpx, refused unallocated
    (256, [0.0] * (checks.MAX_TIMES + 1), 1, ["up to 64"]),
])
def test_a_contact_sheet_too_big_to_hold_is_refused_before_the_photo_is_read(tmp_path, size, times, takes, words):
    r = cli("contact-sheet", "--image", tmp_path / "no-photo.jpg", "--take", *["t.json"] * takes,
            "--at", *times, "--size", size, "--out", tmp_path / "sheet.png")
    assert_one_line_error(r, *words)
    assert not (tmp_path / "sheet.png").exists()


@pytest.mark.parametrize("fps", [1e9, 1e-9, 0.5, 241])
def test_a_take_file_with_an_absurd_frame_rate_is_refused(tmp_path, fps):
    d = zero_take(50).to_dict()
    d["fps"] = fps
    (tmp_path / "t.json").write_text(json.dumps(d))
    r = cli("plot", tmp_path / "t.json", "--out", tmp_path / "p.png")
    assert_one_line_error(r, "fps", "1 to 240")
    assert not (tmp_path / "p.png").exists()


def test_a_take_file_with_nan_values_is_refused(tmp_path):
    d = zero_take(50).to_dict()
    d["channels"]["jawOpen"][3] = float("nan")
    (tmp_path / "t.json").write_text(json.dumps(d))  # json writes NaN, which Python's reader accepts
    assert_one_line_error(cli("render", "--image", "x.jpg", "--take", tmp_path / "t.json", "--out",
                              tmp_path / "r.mp4"), "jawOpen", "NaN")


def test_the_cli_holds_requests_to_the_limits_the_backend_holds_them_to():
    """Same bounds on the command line and over the wire: each edge is accepted by both, a step past it by neither."""
    import numpy as np

    from backend.handlers import check_generate
    from backend.server import Limits
    from blender_addon.core.protocol import Message, ProtocolError

    assert checks.MAX_TAKES == Limits().max_takes
    assert checks.FPS == FPS_RANGE

    def backend_accepts(field, value):
        msg = Message("generate", {"audio": {"kind": "samples", "buffer": 0, "sr": 16000}, field: value},
                      [np.zeros(16000, np.float32)])
        try:
            check_generate(msg, True, Limits())
        except ProtocolError:
            return False
        return True

    def cli_accepts(flag, value):
        parse = {"takes": checks.int_in(1, checks.MAX_TAKES), "seed": checks.int_in(0, checks.SEED_MAX),
                 "diversity": checks.float_in(*checks.DIVERSITY), "intensity": checks.float_in(*checks.INTENSITY),
                 "fps": checks.float_in(*checks.FPS)}[flag]
        try:
            parse(str(value))
        except Exception:
            return False
        return True

    edges = {"takes": (1, checks.MAX_TAKES, 1), "seed": (0, checks.SEED_MAX, 1), "diversity": (*checks.DIVERSITY, 1e-6),
             "intensity": (*checks.INTENSITY, 1e-6), "fps": (*checks.FPS, 1e-6)}
    for field, (lo, hi, step) in edges.items():
        for value, ok in ((lo, True), (hi, True), (lo - step, False), (hi + step, False)):
            assert backend_accepts(field, value) is ok, (field, value)
            assert cli_accepts(field, value) is ok, (field, value)
