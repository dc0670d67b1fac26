"""Rig space on real tracked clips: MediaPipe's resting scores become 0, full blinks reach ~1,
the jaw keeps its timing, and `osmnet track` says which kind of curves it wrote."""
from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.take import ALL_CHANNELS, ARKIT_NAMES, Take
from osmnet.data import rigspace
from osmnet.data.track import FaceTracker, to_rig_space
from osmnet.metrics import pearson

# Chosen for what they show, not for their results: pcavs_00010 has a high resting eyeBlink score
# (~0.4) and no blink; the other two blink several times.
CLIPS = ("pcavs_00010", "pcavs_741400104", "real3dportrait_May_5s")


@pytest.fixture(scope="module")
def takes(shared_data, face_model):
    with FaceTracker(face_model) as tracker:
        return {n: tracker.track_video(shared_data / "talking" / f"{n}.mp4").take for n in CLIPS}


def col(take, name):
    return take.channels[name]


def test_resting_scores_of_real_faces_become_zero(takes):
    for name, raw in takes.items():
        rig = to_rig_space(raw)
        assert raw.meta["curves"] == "raw" and rig.meta["curves"] == "rig"
        assert np.median(col(raw, "eyeBlinkLeft")) > 0.05 or np.median(col(raw, "eyeSquintLeft")) > 0.1, name
        for ch in ("eyeBlinkLeft", "eyeBlinkRight", "eyeSquintLeft", "eyeSquintRight"):
            assert np.median(col(rig, ch)) < 0.02, (name, ch)
        for ch in ("mouthSmileLeft", "mouthPressLeft", "mouthClose", "browDownLeft", "jawOpen"):
            assert np.percentile(col(rig, ch), 5) < 0.01, (name, ch)
        # the calibration is in the take, so a rig space take can be traced back
        assert set(rig.meta["calibration"]) == {"neutral", "scale", "blinks", "closed_blink"}


def test_a_full_blink_closes_the_lids(takes):
    for name in ("pcavs_741400104", "real3dportrait_May_5s"):
        raw, rig = takes[name], to_rig_space(takes[name])
        lid_raw = (col(raw, "eyeBlinkLeft") + col(raw, "eyeBlinkRight")) / 2
        lid = (col(rig, "eyeBlinkLeft") + col(rig, "eyeBlinkRight")) / 2
        assert lid_raw.max() < 0.9 and lid.max() > 0.9, name  # MediaPipe never reaches 1; rig space does
        assert len(rigspace.blink_peaks(lid)) >= 2


def test_the_jaw_keeps_its_timing_and_a_wide_jaw_nears_one(takes):
    for name, raw in takes.items():
        rig = to_rig_space(raw)
        a, b = col(raw, "jawOpen"), col(rig, "jawOpen")
        moving = b > 0
        assert pearson(a[moving], b[moving]) > 0.999, name  # affine above the neutral
        assert b.max() == pytest.approx(min(1.0, (a.max() - np.percentile(a, 10)) * rigspace.JAW_GAIN), abs=1e-4)
    assert to_rig_space(rig).channels["jawOpen"] is rig.channels["jawOpen"]  # already rig space: unchanged


def test_head_channels_are_not_touched_and_bad_shapes_are_refused(takes):
    raw = takes["pcavs_00010"]
    rig = to_rig_space(raw)
    np.testing.assert_array_equal(rig.array(ALL_CHANNELS)[:, :6], raw.array(ALL_CHANNELS)[:, :6])
    with pytest.raises(ValueError, match="blendshape scores"):
        rigspace.fit(np.zeros((10, 51)))


def test_cli_track_says_whether_its_curves_are_raw_or_calibrated(tmp_path, shared_data, face_model, capsys):
    from osmnet.cli import main

    video = shared_data / "talking" / "pcavs_00010.mp4"
    assert main(["track", str(video), "--model", str(face_model), "--out", str(tmp_path / "rig.json")]) == 0
    assert "calibrated" in capsys.readouterr().out
    assert main(["track", str(video), "--model", str(face_model), "--raw", "--out", str(tmp_path / "raw.json")]) == 0
    assert "raw MediaPipe scores (not calibrated)" in capsys.readouterr().out
    rig, raw = Take.load(tmp_path / "rig.json"), Take.load(tmp_path / "raw.json")
    assert rig.meta["curves"] == "rig" and raw.meta["curves"] == "raw"
    assert np.median(rig.channels["eyeBlinkLeft"]) < np.median(raw.channels["eyeBlinkLeft"]) - 0.1
    assert len(ARKIT_NAMES) == 52
