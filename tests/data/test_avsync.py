"""A/V offset estimation: recovers a known shift, leaves in-sync clips alone, shifts with edge repeat."""
from __future__ import annotations

import numpy as np
import pytest

from osmnet.data.avsync import MAX_LAG, estimate_offsets, mouth_opening, shift_frames


def _clips(rng, n=6, T=400, D=12):
    """Clips whose mouth is a smoothed linear read-out of their (random, smooth) audio features."""
    w = rng.standard_normal(D)
    kernel = np.hanning(7) / np.hanning(7).sum()
    clips = []
    for i in range(n):
        f = np.stack([np.convolve(rng.standard_normal(T), kernel, "same") for _ in range(D)], 1)
        mouth = f @ w + 0.3 * rng.standard_normal(T)
        clips.append((f"spk{i}", f, mouth))
    return clips


@pytest.mark.parametrize("shift", [4, -3])
def test_a_known_shift_is_recovered_and_other_clips_stay(shift):
    clips = _clips(np.random.default_rng(0))
    s, f, m = clips[2]
    clips[2] = (s, shift_frames(f, -shift), m)  # the sound now comes `shift` frames early/late
    est = estimate_offsets(clips)
    assert est[2]["av_offset"] == shift and est[2]["av_shift"] == shift
    assert est[2]["av_confidence"] > 0.3
    assert all(e["av_offset"] == 0 and e["av_shift"] == 0 for i, e in enumerate(est) if i != 2)
    fixed = shift_frames(clips[2][1], est[2]["av_shift"])
    np.testing.assert_array_equal(fixed[10:-10], f[10:-10])


def test_unlinked_or_single_speaker_clips_are_not_shifted():
    rng = np.random.default_rng(1)
    noise = [(f"spk{i}", rng.standard_normal((300, 8)), rng.standard_normal(300)) for i in range(4)]
    assert all(e["av_shift"] == 0 for e in estimate_offsets(noise))
    one = [("same", f, m) for _, f, m in _clips(rng, n=3)]
    assert all(e["av_offset"] is None and e["av_shift"] == 0 for e in estimate_offsets(one))


def test_shift_frames_delays_and_repeats_the_edge():
    a = np.arange(6.0)
    np.testing.assert_array_equal(shift_frames(a, 2), [0, 0, 0, 1, 2, 3])
    np.testing.assert_array_equal(shift_frames(a, -2), [2, 3, 4, 5, 5, 5])
    assert abs(MAX_LAG) >= 5


@pytest.mark.slow
def test_a_real_clip_shifted_by_four_frames_is_found(shared_data, face_model, tmp_path):
    """Real tracking + real audio of two speakers; one clip's audio delayed by 4 frames."""
    from osmnet.audio import audio_features
    from osmnet.data.prepare import _fit_length
    from osmnet.audio import load_audio
    from blender_addon.core.take import ALL_CHANNELS
    from osmnet.data.track import track_video

    clips = []
    for name in ("styletalk_reagan_clip1", "styletalk_feifeili_clip1", "pcavs_00086"):
        video = shared_data / "talking" / f"{name}.mp4"
        wav = video.with_suffix(".wav")
        tr = track_video(video, model_path=face_model)
        feats = _fit_length(audio_features(load_audio(wav if wav.exists() else video)), tr.take.frames)
        clips.append((name.split("_")[1], feats, mouth_opening(tr.take.array(ALL_CHANNELS), tr.landmarks_canonical)))
    base = estimate_offsets(clips)
    s, f, m = clips[0]
    clips[0] = (s, shift_frames(f, 4), m)
    est = estimate_offsets(clips)
    assert abs(est[0]["av_offset"] - (base[0]["av_offset"] - 4)) <= 1
