"""`osmnet prepare` on a small real dataset: clip files, index, speakers, failures reported not hidden."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from osmnet.audio import FEATURE_DIM
from osmnet.data.prepare import DatasetError, find_videos, prepare, speaker_of
from osmnet.data.expression import ExpressionBasis
from blender_addon.core.take import ALL_CHANNELS

GOOD = {"pcavs_00010": "talking", "styletalk_feifeili_clip3": "talking", "mead_furious_talk2_clip1": "motion_only"}


@pytest.fixture(scope="session")
def prepared(tmp_path_factory, shared_data, face_model):
    """Three real clips (audio inside, audio beside, no audio) and two broken ones, prepared once."""
    src = tmp_path_factory.mktemp("videos")
    for name, folder in GOOD.items():
        os.symlink(shared_data / folder / f"{name}.mp4", src / f"{name}.mp4")
    os.symlink(shared_data / "talking" / "styletalk_feifeili_clip3.wav", src / "styletalk_feifeili_clip3.wav")
    (src / "broken_text.mp4").write_text("this is not a video\n" * 20)
    os.symlink(shared_data / "talking" / "styletalk_feifeili_clip3.mp4", src / "styletalk_short_audio.mp4")
    sf.write(src / "styletalk_short_audio.wav", np.zeros(16000, np.float32), 16000)  # 1 s of 7 s
    out = tmp_path_factory.mktemp("dataset")
    index = prepare([src], out, workers=2, model_path=face_model, progress=False)
    return out, index


@pytest.mark.slow
def test_good_clips_are_written_and_indexed(prepared):
    out, index = prepared
    assert json.loads((out / "index.json").read_text()) == index
    assert sorted(c["name"] for c in index["clips"]) == sorted(GOOD)
    for c in index["clips"]:
        z = np.load(out / "clips" / f"{c['name']}.npz")
        T = c["frames"]
        assert z["channels"].shape == (T, len(ALL_CHANNELS)) and z["landmarks"].shape == (T, 478, 3)
        assert c["duration"] == pytest.approx(T / 25)
        if c["has_audio"]:
            assert z["audio"].shape == (T, FEATURE_DIM) and z["loudness"].shape == (T,)
        else:
            assert "audio" not in z.files
    by_name = {c["name"]: c for c in index["clips"]}
    assert by_name["styletalk_feifeili_clip3"]["audio_source"].endswith(".wav")
    assert by_name["pcavs_00010"]["audio_source"].endswith(".mp4")
    assert by_name["mead_furious_talk2_clip1"]["has_audio"] is False
    assert len(index["audio_mean"]) == FEATURE_DIM and min(index["audio_std"]) > 0


@pytest.mark.slow
def test_failed_clips_are_listed_with_the_reason_and_leave_no_file(prepared):
    out, index = prepared
    failed = {f["name"]: f["error"] for f in index["failed"]}
    assert set(failed) == {"broken_text", "styletalk_short_audio"}
    assert "not a readable media file" in failed["broken_text"]
    assert "lasts 1.00 s" in failed["styletalk_short_audio"]
    assert sorted(p.stem for p in (out / "clips").iterdir()) == sorted(GOOD)
    assert index["summary"]["failed"] == 2


@pytest.mark.slow
def test_clip_statistics_are_plausible(prepared):
    _, index = prepared
    for c in index["clips"]:
        s = c["stats"]
        assert all(0.2 < x < 15 for x in s["pose_std_deg"])
        assert s["lost_frames"] >= 0 and 0 <= s["jaw_open_mean"] <= 1
        assert ("jaw_loudness_corr" in s) == c["has_audio"]
        assert ("av_offset" in s) == c["has_audio"]  # A/V sync checked for every speech clip
        if c["has_audio"]:
            assert -8 <= s["av_offset"] <= 8 and s["av_shift"] in (0, s["av_offset"])
    assert index["speakers"] == {"pcavs_00010": 1, "feifeili": 1, "furious_talk2": 1}


@pytest.mark.slow
def test_an_expression_basis_is_fitted_with_the_dataset(prepared):
    out, index = prepared
    basis = ExpressionBasis.load(out / "expression_basis.npz")
    assert basis.deltas.shape == (52, 468, 3)
    assert index["expression_basis"]["clips"] == 3


@pytest.mark.parametrize("stem, speaker", [
    ("styletalk_Obama_clip1", "obama"), ("styletalk_KristiNoem", "kristinoem"),
    ("styletalk_andrew_clip_2", "andrew"), ("styletalk_feifeili_clip2_short", "feifeili"),
    ("pcavs_00002", "pcavs_00002"), ("pcavs_741400104", "pcavs_741400104"),
    ("hdtf_WDA_KatieHill_000", "katiehill"), ("mimictalk_German_20s", "german"),
    ("mimictalk_Trump_10s", "trump"), ("mead_trump_clip1", "trump"), ("real3dportrait_May_5s", "may"),
    ("mead_furious_talk1_clip2", "furious_talk1"), ("mead_sad_emotion_clip1", "sad_emotion"),
    ("myclip", "myclip"),
])
def test_speaker_ids_from_file_names(stem, speaker):
    assert speaker_of(stem) == speaker


def test_inputs_that_do_not_exist_or_hold_no_videos(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        find_videos([tmp_path / "nope"])
    with pytest.raises(DatasetError, match="no videos"):
        find_videos([tmp_path])


def test_two_clips_with_the_same_name_are_refused(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "clip.mp4").write_bytes(b"x")
    with pytest.raises(DatasetError, match="share the clip name"):
        find_videos([tmp_path / "a", tmp_path / "b"])


def test_cli_prepare_with_no_videos_is_a_clear_error(tmp_path, capsys):
    from osmnet.cli import main

    assert main(["prepare", str(tmp_path), "--out", str(tmp_path / "ds")]) == 2
    assert "no videos" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()
