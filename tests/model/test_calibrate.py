"""Calibration of sampled head motion: the range scale sets its size, the head speed its speed."""
from __future__ import annotations

import numpy as np
import pytest

from osmnet.data.dataset import load_videos
from osmnet.metrics import rot_std, vel_rms
from osmnet.model import checkpoint
from osmnet.model.calibrate import calibrate_range
from osmnet.model.sampler import FeatureArray, Sampler, follow_energy
from synth_dataset import synth_data, tiny_checkpoint  # noqa: F401  (fixtures)


def _amplitude_after(speed: float, period: float, leak: float = 0.06) -> float:
    t = np.arange(2000)
    head = np.zeros((1, len(t), 6))
    head[0, :, 0] = np.sin(2 * np.pi * t / period)
    y = follow_energy(head, {"gain": np.full(len(t), speed), "follow": None}, 0, leak)
    return float(np.abs(y[0, 500:, 0]).max())  # after the start has settled


def test_head_speed_scales_fast_motion_and_leaves_slow_motion_alone():
    assert _amplitude_after(1.0, 12) == pytest.approx(1.0, abs=0.01)  # speed 1: the decoded path itself
    assert _amplitude_after(1.6, 12) == pytest.approx(1.6, rel=0.05)  # nods faster than the pull back
    assert _amplitude_after(1.6, 1000) == pytest.approx(1.0, rel=0.05)  # slow drift keeps its size


def _sampled(ck, v, scale, speed, seed, takes=1):
    sampler = Sampler(ck)
    sampler.range_scale, sampler.head_speed = scale, speed
    fa = FeatureArray(v.audio)
    vals = np.concatenate([b for _, b in sampler.blocks(fa, 0, fa.frames, takes, seed, 1.0, 1.0)], 1)
    return list(vals)


def test_calibration_recovers_the_size_and_the_speed_of_motion_made_at_a_known_scale_and_speed(
        synth_data, tiny_checkpoint):
    ck = checkpoint.load(tiny_checkpoint)
    names = set(ck.info["train_speakers"])
    videos = [v for v in load_videos(synth_data) if v.speaker in names and v.audio is not None]
    for v in videos:  # "real" heads that move like the model's own takes at scale 1.6, speed 1.4 (another seed)
        v.channels = v.channels.copy()
        v.channels[:, :6] = _sampled(ck, v, 1.6, 1.4, seed=7)[0][:, :6]
    ck.sampling = calibrate_range(ck, videos)
    std, vel = [], []
    for v in videos:
        takes = _sampled(ck, v, ck.sampling["range_scale"], ck.sampling["head_speed"], seed=0, takes=2)
        std.append(np.mean([rot_std(x) for x in takes]) / rot_std(v.pose))
        vel.append(np.mean([vel_rms(x) for x in takes]) / vel_rms(v.pose))
    assert np.median(std) == pytest.approx(1.0, rel=0.1) and np.median(vel) == pytest.approx(1.0, rel=0.1)
    # at speed 1 no range scale of the grid gets the velocity above 0.77 of this motion
    assert ck.sampling["head_speed"] == pytest.approx(1.4, rel=0.1)


def test_expression_calibration_calms_inflated_lips_and_settles_shapes_that_do_not_follow(synth_data, tiny_checkpoint):
    from blender_addon.core.take import ARKIT_NAMES
    from osmnet.model.calibrate import calibrate_expression

    ck = checkpoint.load(tiny_checkpoint)
    names = set(ck.info["train_speakers"])
    videos = [v for v in load_videos(synth_data) if v.speaker in names and v.audio is not None]
    jaw, smile = ARKIT_NAMES.index("jawOpen"), ARKIT_NAMES.index("mouthSmileLeft")
    sampler = Sampler(ck)
    rng = np.random.default_rng(0)
    for v in videos:  # tracked jaw = the network's own jaw at 40 % of its spread; tracked smile = noise
        raw = sampler.raw_expression(FeatureArray(v.audio))
        v.channels = v.channels.copy()
        v.channels[:, 6 + jaw] = 0.05 + 0.4 * raw[:, jaw]
        v.channels[:, 6 + smile] = 0.2 + 0.05 * rng.standard_normal(len(raw))
        v.reliable = True
    cal = calibrate_expression(ck, videos)
    gain, offset = np.array(cal["expression_gain"]), np.array(cal["expression_offset"])
    assert gain[jaw] == pytest.approx(0.4, abs=0.02) and offset[jaw] == pytest.approx(0.05, abs=0.01)
    assert gain[smile] < 0.2 and np.all((gain >= 0) & (gain <= 1))
    ck.sampling = cal  # generation applies it: without the rest gate a take's jaw is the tracked jaw
    ck.config.expression.rest_gate = False
    v = videos[0]
    take = _sampled(ck, v, 1.0, 1.0, seed=0)[0]
    assert np.allclose(take[:, 6 + jaw], np.clip(v.channels[:, 6 + jaw], 0, 1), atol=1e-4)
