"""Take JSON and Live Link Face CSV: round trips, columns matched by name, clear errors."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from blender_addon.core import take as tf


def test_a_tracked_take_survives_a_json_round_trip(tracked_take, tmp_path):
    path = tracked_take.save(tmp_path / "t.json")
    back = tf.Take.load(path)
    assert back.fps == tracked_take.fps and back.meta == tracked_take.meta
    for name in tf.ALL_CHANNELS:
        np.testing.assert_allclose(back.channels[name], tracked_take.channels[name], atol=5e-7)
    assert not list(tmp_path.glob(".*tmp")), "no temp file left behind"


def _shuffle_columns(src, dst, seed=0):
    with open(src, newline="") as f:
        rows = list(csv.reader(f))
    order = np.random.default_rng(seed).permutation(len(rows[0]))
    with open(dst, "w", newline="") as f:
        csv.writer(f).writerows([[r[i] for i in order] for r in rows])
    return [rows[0][i] for i in order]


@pytest.mark.parametrize("fps", [60.0, 30.0, 30000 / 1001])
def test_livelink_csv_round_trip_with_shuffled_columns(tracked_take, tmp_path, fps):
    written = tf.write_livelink_csv(tracked_take, tmp_path / "take.csv", fps=fps)
    header = _shuffle_columns(written, tmp_path / "shuffled.csv")
    assert header[:2] != ["Timecode", "BlendShapeCount"]
    back = tf.read_livelink_csv(tmp_path / "shuffled.csv", fps=fps)
    n = int(round(tracked_take.duration * fps))
    assert back.frames == n and back.fps == fps
    t = np.arange(n) / fps
    for name in tf.ARKIT_NAMES + ("headYaw", "headPitch", "headRoll"):
        want = np.interp(t, np.arange(tracked_take.frames) / tracked_take.fps, tracked_take.channels[name])
        np.testing.assert_allclose(back.channels[name], want, atol=2e-5, err_msg=name)
    assert not np.any(back.channels["headX"])  # Live Link Face has no head translation


def test_livelink_rows_are_placed_by_timecode_and_dropped_rows_interpolated(tmp_path):
    names = ["Timecode", "BlendShapeCount", "JawOpen", "HeadYaw", "EyeBlinkLeft"]
    rows = [["10:00:00:00.000", 61, 0.0, 0.1, 1], ["10:00:00:01.000", 61, 0.2, 0.1, 1],
            ["10:00:00:04.000", 61, 0.8, 0.1, 1], ["10:00:01:00.400", 61, 0.4, 0.1, 1]]
    path = tmp_path / "llf.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([names] + rows)
    take = tf.read_livelink_csv(path, fps=30)
    assert take.frames == 31  # 0 .. 1 s + 0.4 frame -> rounded to frame 30
    np.testing.assert_allclose(take.channels["jawOpen"][:5], [0.0, 0.2, 0.4, 0.6, 0.8], atol=1e-6)
    assert take.channels["eyeBlinkLeft"].min() == 1 and not np.any(take.channels["mouthClose"])


@pytest.mark.parametrize("text,fps,match", [
    ("Frame,JawOpen\n1,0.5\n", 60, "no Timecode column"),
    ("Timecode,BlendShapeCount,Foo\n00:00:00:00.000,61,1\n", 60, "none of the 52 ARKit"),
    ("Timecode,JawOpen\n00:00:00:45.000,0.1\n", 30, "impossible at 30 fps"),
    ("Timecode,JawOpen\n00:00:01:00.000,0.1\n00:00:00:10.000,0.1\n", 30, "do not increase"),
    ("Timecode,JawOpen\n00:00:00:00.000,abc\n", 30, "line 2"),
    ("Timecode,JawOpen\nyesterday,0.1\n", 30, "HH:MM:SS:FF"),
    ("Timecode,JawOpen\n", 30, "no data rows"),
])
def test_bad_livelink_files_say_what_is_wrong(tmp_path, text, fps, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(tf.TakeError, match=match):
        tf.read_livelink_csv(path, fps=fps)


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.update(format="something"), "not an osmnet take"),
    (lambda d: d.update(version=99), "version 99"),
    (lambda d: d["channels"].pop("jawOpen"), "missing channels"),
    (lambda d: d.update(frames=3), "says frames=3"),
    (lambda d: d.update(fps=0), "fps must be a number from 1 to 240"),
    (lambda d: d["channels"].update(jawOpen=[0.0]), "same, non-zero length"),
    (lambda d: d["channels"].update(jawOpen=["x"] * 4), "must be a flat list of numbers"),
])
def test_bad_take_files_say_what_is_wrong(tmp_path, mutate, match):
    d = tf.Take(25, {n: np.zeros(4) for n in tf.ALL_CHANNELS}).to_dict()
    mutate(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(tf.TakeError, match=match):
        tf.Take.load(path)


def test_not_json_and_missing_files_are_clear_errors(tmp_path):
    (tmp_path / "x.json").write_text("{oops")
    with pytest.raises(tf.TakeError, match="not valid JSON"):
        tf.Take.load(tmp_path / "x.json")
    with pytest.raises(tf.TakeError, match="does not exist"):
        tf.Take.load(tmp_path / "nope.json")
