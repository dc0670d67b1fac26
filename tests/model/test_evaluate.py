"""Evaluation metrics on constructed signals, the dev evaluation end to end, and the take plot."""
from __future__ import annotations

import json

import numpy as np
import pytest

from osmnet.cli import main
from osmnet.model.evaluate import (audio_onsets, beat_align, evaluate, format_table, full_blinks_per_min, join_ratio,
                             motion_beats, pearson, score)
from osmnet.plot import plot_takes
from blender_addon.core.take import ALL_CHANNELS, Take
from synth_dataset import synth_data, tiny_checkpoint  # noqa: F401  (fixtures)

JAW = ALL_CHANNELS.index("jawOpen")


def _take(T, rng, amp=0.05):
    x = np.zeros((T, len(ALL_CHANNELS)), np.float32)
    x[:, :3] = amp * np.sin(np.arange(T)[:, None] / 7.0 + rng.uniform(0, 6, 3))
    x[:, JAW] = rng.uniform(0, 1, T)
    return x


def test_score_of_the_real_motion_against_itself_is_perfect():
    rng = np.random.default_rng(0)
    real = _take(300, rng)
    s = score([real], real, np.array([10, 50]))
    assert s["lip_r"] == pytest.approx(1.0) and s["std_ratio"] == pytest.approx(1.0) and s["vel_ratio"] == pytest.approx(1.0)


def test_ratios_and_diversity_scale_as_they_should():
    rng = np.random.default_rng(1)
    real = _take(400, rng)
    double = real.copy()
    double[:, :3] *= 2
    s = score([double, real], real, np.array([5]))
    assert s["std_ratio"] == pytest.approx(1.5, rel=1e-4) and s["vel_ratio"] == pytest.approx(1.5, rel=1e-4)
    assert s["diversity"] == pytest.approx(1.0, rel=1e-4)  # distance between the two = one real std
    same = score([real, real], real, np.array([5]))
    assert same["diversity"] == 0.0


def test_beat_align_rewards_motion_pauses_on_audio_onsets():
    T = 400
    onsets = np.arange(20, T - 20, 25)
    t = np.arange(T)
    on_beat = np.zeros((T, 3))
    on_beat[:, 0] = np.cumsum(np.abs(np.sin(np.pi * (t - 20) / 25)))  # speed 0 exactly at the onsets
    off_beat = np.zeros((T, 3))
    off_beat[:, 0] = np.cumsum(np.abs(np.sin(np.pi * (t - 32) / 25)))  # pauses half a period away
    assert set(onsets) <= set(motion_beats(on_beat)) | set(motion_beats(on_beat) + 1) | set(motion_beats(on_beat) - 1)
    assert beat_align(on_beat, onsets) > 0.9 > 0.2 > beat_align(off_beat, onsets)


def test_audio_onsets_find_rises_of_loudness():
    loud = np.full(200, -60.0)
    for s in (30, 90, 150):
        loud[s:s + 20] = -20.0
    on = audio_onsets(loud)
    assert len(on) == 3 and np.all(np.abs(on - np.array([30, 90, 150])) <= 1)


def test_join_ratio_sees_a_kink_at_clip_joins():
    x = np.zeros((128, 3))
    x[:, 0] = np.sin(np.arange(128) / 9.0)
    assert join_ratio(x, 32) == pytest.approx(1.0, abs=0.2)
    kinked = x.copy()
    for j in (32, 64, 96):
        kinked[j:, 0] += 0.05
    assert join_ratio(kinked, 32) > 3


def test_blinks_are_counted_where_they_close_inside_the_clip():
    lids = [ALL_CHANNELS.index(n) for n in ("eyeBlinkLeft", "eyeBlinkRight")]
    x = np.zeros((101, len(ALL_CHANNELS)), np.float32)  # 100 frame steps = 4 s at 25 fps
    x[:2, lids] = 0.95  # a blink that closed before the clip began: not this clip's
    x[50:52, lids] = 0.95  # one full blink inside
    x[70, lids] = 0.7  # a partial one
    assert full_blinks_per_min(x) == pytest.approx(15.0)
    x[-1, lids] = 0.9  # one closing on the last frame is inside the clip
    assert full_blinks_per_min(x) == pytest.approx(30.0)


def test_pearson_of_a_flat_signal_is_undefined():
    assert np.isnan(pearson(np.ones(10), np.arange(10.0)))


def test_evaluate_on_dev_speakers_writes_a_table_with_baselines(synth_data, tiny_checkpoint, tmp_path):
    out = tmp_path / "eval.json"
    r = evaluate(synth_data, tiny_checkpoint, takes=3, out_json=out, progress=False)
    t = r["table"]
    assert set(t) == {"real", "model", "one_to_one", "static", "other_clip", "ridge_logmel", "ridge_logmel_phones"}
    # the ridges are lip baselines: lip columns only, and they do hear the synthetic jaw-loudness link
    assert t["ridge_logmel"]["lip_r"] > 0.3 and np.isnan(t["ridge_logmel"]["std_ratio"])
    assert t["real"]["head_energy_r"] == t["real"]["head_energy_r"]  # defined on real motion
    assert set(r["rest"]["gap_median"]) >= {"jawOpen", "eyeBlinkLeft", "mouthClose"}
    assert t["one_to_one"]["diversity"] == pytest.approx(0.0, abs=1e-6)
    assert t["model"]["diversity"] > 0.05
    assert t["static"]["std_ratio"] == 0.0 and t["real"]["std_ratio"] == pytest.approx(1.0)
    assert t["model"]["lip_r"] > t["other_clip"]["lip_r"]
    assert json.loads(out.read_text())["dev_videos"] == r["dev_videos"]
    assert "one_to_one" in format_table(r)


def test_plot_writes_a_png_of_several_takes(tmp_path, capsys):
    rng = np.random.default_rng(2)
    paths = []
    for k in range(3):
        p = tmp_path / f"take_{k:02d}.json"
        Take.from_array(_take(100, rng), 25.0).save(p)
        paths.append(str(p))
    assert main(["plot", *paths, "--out", str(tmp_path / "p.png")]) == 0
    png = (tmp_path / "p.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert main(["plot", str(tmp_path / "missing.json"), "--out", str(tmp_path / "q.png")]) == 2
    assert not (tmp_path / "q.png").exists()
    with pytest.raises(ValueError):
        plot_takes([], tmp_path / "r.png")
