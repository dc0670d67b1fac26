"""Other tools' files: Audio2Face blendshape JSON and Rhubarb Lip Sync mouth cues, both ways."""
import json

import numpy as np
import pytest

from blender_addon.core import interop
from blender_addon.core.channels import ALL_CHANNELS, ARKIT_NAMES
from blender_addon.core.errors import UserInputError
from blender_addon.core.interop import Cue
from blender_addon.core.take import Take


def _take(frames=60, fps=30.0, seed=0):
    rng = np.random.default_rng(seed)
    ch = {n: np.zeros(frames, np.float32) for n in ALL_CHANNELS}
    for n in ARKIT_NAMES:
        ch[n] = np.clip(np.cumsum(rng.normal(0, 0.05, frames)), 0, 1).astype(np.float32)
    ch["headYaw"] = np.linspace(-0.1, 0.1, frames).astype(np.float32)
    return Take(fps, ch, {"audio": "line_01.wav"})


# ---------------------------------------------------------------- Audio2Face

def test_audio2face_round_trip_keeps_every_arkit_curve(tmp_path):
    take = _take()
    path = interop.write_audio2face(take, tmp_path / "a2f.json")
    d = json.loads(path.read_text())
    assert (d["exportFps"], d["numPoses"], d["numFrames"]) == (30.0, 52, 60)
    assert d["facsNames"] == list(ARKIT_NAMES) and len(d["weightMat"]) == 60 and len(d["weightMat"][0]) == 52
    back = interop.read_audio2face(path)
    assert back.fps == 30.0 and back.frames == 60
    for n in ARKIT_NAMES:
        np.testing.assert_allclose(back.channels[n], take.channels[n], atol=1e-6)
    assert np.all(back.channels["headYaw"] == 0)  # Audio2Face has no head motion
    assert back.meta["audio"] == "line_01.wav" and back.meta["source"] == "audio2face"


def _a2f(names, frames=4, fps=60, **extra):
    mat = [[round(0.1 * (j + 1) * (i % 3) / 3, 4) for j in range(len(names))] for i in range(frames)]
    return {"exportFps": fps, "trackPath": "C:/a2f/line.wav", "numPoses": len(names), "numFrames": frames,
            "facsNames": names, "weightMat": mat, **extra}


def test_audio2face_names_match_loosely_and_unknown_poses_are_kept(tmp_path):
    names = ["EyeBlinkLeft", "jawOpen", "MouthSmile_L", "customLipBite"]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(_a2f(names, joints=["jaw"], rotations=[[[0, 0, 0, 1]]] * 4)))
    take = interop.read_audio2face(path)
    assert take.fps == 60.0 and take.frames == 4
    np.testing.assert_allclose(take.channels["jawOpen"], [row[1] for row in _a2f(names)["weightMat"]], atol=1e-7)
    np.testing.assert_allclose(take.channels["mouthSmileLeft"], [row[2] for row in _a2f(names)["weightMat"]], atol=1e-7)
    assert "customLipBite" in take.channels and take.meta["audio2face_unmatched"] == ["customLipBite"]
    assert np.all(take.channels["browInnerUp"] == 0)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("weightMat"), "weightMat"),
    (lambda d: d.update(numFrames=99), "numFrames=99"),
    (lambda d: d.update(numPoses=3), "numPoses=3"),
    (lambda d: d.update(exportFps=0), "exportFps"),
    (lambda d: d.update(weightMat=[[0.1, 0.2]] * 4), r"\(4, 2\)"),
    (lambda d: d.update(weightMat=[[0.1, "x", 0, 0]] * 4), "rows of numbers"),
    (lambda d: d.update(facsNames=["a", "b", "c", "d"]), "none of its 4 poses"),
])
def test_broken_audio2face_files_say_what_is_wrong(tmp_path, change, message):
    d = _a2f(["jawOpen", "mouthClose", "eyeBlinkLeft", "eyeBlinkRight"])
    change(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(UserInputError, match=message):
        interop.read_audio2face(path)


def test_audio2face_reader_names_a_missing_or_non_json_file(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        interop.read_audio2face(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text("not json")
    with pytest.raises(UserInputError, match="not valid JSON"):
        interop.read_audio2face(tmp_path / "x.json")


# ---------------------------------------------------------------- Rhubarb

CUES = [Cue(0.0, 0.12, "X"), Cue(0.12, 0.4, "D"), Cue(0.4, 0.55, "C"), Cue(0.55, 0.8, "F"), Cue(0.8, 0.95, "A"),
        Cue(0.95, 1.2, "G"), Cue(1.2, 1.4, "B"), Cue(1.4, 1.62, "E"), Cue(1.62, 1.8, "H"), Cue(1.8, 2.1, "X")]


def test_rhubarb_tsv_and_json_files_round_trip(tmp_path):
    tsv = interop.write_rhubarb_tsv(CUES, tmp_path / "cues.tsv")
    lines = tsv.read_text().splitlines()
    assert lines[0] == "0.00\tX" and lines[-1] == "2.10\tX" and len(lines) == len(CUES) + 1
    assert interop.read_rhubarb(tsv) == (CUES, {"sound_file": "", "duration": 2.1})
    js = interop.write_rhubarb_json(CUES, tmp_path / "cues.json", sound_file="/audio/hi.wav")
    cues, meta = interop.read_rhubarb(js)
    assert cues == CUES and meta == {"sound_file": "/audio/hi.wav", "duration": 2.1}


def test_rhubarb_xml_output_is_read_too(tmp_path):
    body = "".join(f'<mouthCue start="{c.start:.2f}" end="{c.end:.2f}">{c.shape}</mouthCue>' for c in CUES)
    (tmp_path / "cues.xml").write_text('<?xml version="1.0" encoding="utf-8"?>\n<rhubarbResult><metadata>'
                                       "<soundFile>/audio/hi.wav</soundFile><duration>2.10</duration></metadata>"
                                       f"<mouthCues>{body}</mouthCues></rhubarbResult>")
    assert interop.read_rhubarb(tmp_path / "cues.xml") == (CUES, {"sound_file": "/audio/hi.wav", "duration": 2.1})


def test_cues_become_mouth_curves_that_reach_each_shape():
    take = interop.cues_to_take(CUES, fps=25.0)
    assert take.frames == round(2.1 * 25) and take.meta["source"] == "rhubarb"
    jaw = take.channels["jawOpen"]
    at = lambda t: int(t * 25)  # noqa: E731
    assert jaw[at(0.26)] == pytest.approx(0.7, abs=1e-6)  # middle of D: wide open
    assert jaw[at(0.05)] == 0.0 and take.channels["mouthPucker"][at(0.68)] == pytest.approx(0.75, abs=1e-6)
    assert take.channels["mouthPressLeft"][at(0.88)] == pytest.approx(0.5, abs=1e-6)  # A: lips pressed
    assert take.channels["mouthRollLower"][at(1.08)] == pytest.approx(0.6, abs=1e-6)  # G: lip under teeth
    # Transitions are gradual: no frame-to-frame step larger than half the X -> D opening.
    assert np.max(np.abs(np.diff(jaw))) < 0.4
    assert 0.0 < jaw[at(0.12)] < 0.7
    assert np.all(take.channels["headYaw"] == 0) and np.all(take.channels["eyeBlinkLeft"] == 0)


@pytest.mark.parametrize("fps, shortest", [(100.0, 0.07), (60.0, 0.08), (30.0, 0.12), (25.0, 0.12), (24.0, 0.13)])
def test_cues_to_take_to_cues_gives_the_cues_back(fps, shortest):
    rng = np.random.default_rng(int(fps))
    for _ in range(10):
        cues, t, prev = [], 0.0, None
        while len(cues) < 30:
            shape = str(rng.choice(list(interop.RHUBARB_SHAPES)))
            if shape == prev:
                continue
            d = round(float(rng.uniform(shortest, 0.4)), 2)
            cues.append(Cue(round(t, 2), round(t + d, 2), shape))
            t, prev = t + d, shape
        back = interop.take_to_cues(interop.cues_to_take(cues, fps=fps))
        assert [c.shape for c in back] == [c.shape for c in cues]
        err = max(max(abs(a.start - b.start), abs(a.end - b.end)) for a, b in zip(cues, back))
        assert err <= 1.0 / fps + 0.011  # within a frame (and Rhubarb's 0.01 s)


def test_take_to_cues_keeps_to_the_shapes_asked_for():
    take = interop.cues_to_take(CUES, fps=50.0)
    basic = interop.take_to_cues(take, shapes="ABCDEF")
    assert {c.shape for c in basic} <= set("ABCDEF")
    assert [c.shape for c in basic][:2] == ["A", "D"]  # rest becomes the closed mouth A
    with pytest.raises(UserInputError, match="six basic"):
        interop.take_to_cues(take, shapes="ABX")
    with pytest.raises(UserInputError, match="letters from"):
        interop.take_to_cues(take, shapes="ABCDEFZ")


def test_a_real_tracked_sentence_gives_plausible_cues(tracked_speech_take, tmp_path):
    take = tracked_speech_take
    cues = interop.take_to_cues(take)
    assert cues[0].start == 0.0 and cues[-1].end == pytest.approx(take.duration, abs=0.011)
    assert all(a.end == b.start and a.shape != b.shape for a, b in zip(cues, cues[1:]))
    assert all(c.end - c.start >= 0.06 - 1e-9 for c in cues)
    # GRID clips start and end in silence; the sentence in between opens the mouth several times.
    assert cues[0].shape == "X" and cues[-1].shape == "X"
    assert len({c.shape for c in cues}) >= 3 and sum(c.shape in "CDEH" for c in cues) >= 2
    # Written and read back as Rhubarb would, then animated: open where the take was open.
    cues2, _ = interop.read_rhubarb(interop.write_rhubarb_tsv(cues, tmp_path / "real.tsv"))
    again = interop.cues_to_take(cues2, fps=take.fps)
    n = min(again.frames, take.frames)
    assert np.corrcoef(again.channels["jawOpen"][:n], take.channels["jawOpen"][:n])[0, 1] > 0.6


@pytest.mark.parametrize("text, message", [
    ("0.00\tX\n", "at least two lines"),
    ("0.00\tX\n0.10 D extra\n0.20\tX\n", "line 2"),
    ("0.00\tX\nabc\tD\n0.20\tX\n", "not a number"),
    ("0.00\tX\n0.30\tD\n0.20\tX\n", "line 3: time 0.2 is before"),
    ("0.00\tX\n0.10\tQ\n0.20\tX\n", "mouth shape 'Q'"),
    ('{"mouthCues": [{"start": 0, "end": 0.1}]}', '"value"'),
    ('{"metadata": {}}', "mouthCues"),
    ('<?xml version="1.0"?><rhubarbResult/>', "no mouth cues"),
    ('<?xml version="1.0"?><svg/>', "not Rhubarb's"),
    ('<rhubarbResult><mouthCues><mouthCue start="0">A</mouthCue></mouthCues></rhubarbResult>', "mouthCue"),
    ('{"mouthCues": []}', "no mouth cues"),
    ('{"mouthCues": [{"start": 0.5, "end": 0.6, "value": "A"}, {"start": 0.1, "end": 0.2, "value": "B"}]}', "time order"),
])
def test_broken_cue_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "cues.txt"
    path.write_text(text)
    with pytest.raises(UserInputError, match=message):
        interop.read_rhubarb(path)
