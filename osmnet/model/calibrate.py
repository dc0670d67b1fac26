"""After training: the two numbers that set the size and the speed of sampled head motion, and the
level of each expression channel (see docs/model.md).

The audio mapper is fitted on the training clips, so its raw range is overconfident; sampling
those very clips and matching their real head motion fixes it. One number cannot match both the
size (rotation std) and the speed (RMS velocity): widening the range adds mostly slow motion, so
with the std matched the velocity stayed at ~0.78 of the real one. Two numbers are calibrated
together: the *range scale* (how far the sampled point strays) and the *head speed* (the RMS gain
of the sampler's energy-following re-integration, which scales motion faster than its pull-back
and leaves slower motion alone).

The expression network is trained partly on correlation (scale-free) and through the landmark
basis, so the lip shapes come out livelier than the tracked ones (mouthClose, mouthStretch,
mouthLowerDown, mouthFunnel 3-7x the real spread on the very training clips), and shapes outside
the correlation term move with the jaw although they do not follow their tracked curves over
time (mouthSmile, mouthPress: within-clip r 0.23 and 0.00 on the training clips): a wide-open
jaw then also smiles, presses and stretches the lips, which reads as a grin. So each channel
gets a gain and an offset from the training videos: the lip channels of the correlation term
keep their timing and get the tracked spread (gain = spread ratio, at most 1); every other
channel gets the least-squares slope of its tracked curve on the output *within* each clip (in
[0, 1]; a speaker's constant smile is identity, and face variety varies it per take), so what
it does not follow settles at its training level. Offsets match the training means.
"""
from __future__ import annotations

import math

import numpy as np

from osmnet.metrics import rot_std, vel_rms
from osmnet.model.networks import LIP_CHANNELS
from osmnet.model.sampler import FeatureArray, Sampler


def _sample(sampler: Sampler, feats: np.ndarray, takes: int) -> list[np.ndarray]:
    """(takes,) arrays (T, 58) at the model's rate sampled from precomputed features, seed 0."""
    fa = FeatureArray(feats)
    blocks = [v for _, v in sampler.blocks(fa, 0, fa.frames, takes, 0, 1.0, 1.0)]
    vals = np.concatenate(blocks, 1)
    return [vals[k] for k in range(takes)]


SCALES = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)
SPEEDS = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


def _where_one(xs, ratios) -> float:
    """The x at which a ratio that grows with x reaches 1 (interpolated in log); when the grid does
    not bracket 1 or the ratio does not grow, the grid point whose ratio is closest to 1."""
    r = np.log(np.maximum(np.asarray(ratios, np.float64), 1e-6))
    if np.all(np.diff(r) > 0) and r[0] <= 0 <= r[-1]:
        return float(np.interp(0.0, r, xs))
    return float(xs[int(np.argmin(np.abs(r)))])


def _ratios(sampler: Sampler, vids, takes: int) -> tuple[float, float]:
    """Median over videos of (rotation-std ratio, velocity ratio), generated / real."""
    std, vel = [], []
    for v in vids:
        t = _sample(sampler, v.audio, takes)
        std.append(np.mean([rot_std(x) for x in t]) / max(1e-9, rot_std(v.pose)))
        vel.append(np.mean([vel_rms(x) for x in t]) / max(1e-9, vel_rms(v.pose)))
    return float(np.median(std)), float(np.median(vel))


def calibrate_range(ck, videos, takes: int = 2) -> dict:
    """Range scale and head speed that make sampled head motion as large *and* as fast as the real
    motion of the *training* videos (median rotation-std and velocity ratios both 1).

    On a grid of speeds x scales: for each speed, the scale that matches the std (as a single
    range scale did before) and the velocity ratio at that scale; then the speed at which that
    velocity ratio is 1, and its scale. The chosen pair is sampled once more and its ratios stored."""
    sampler = Sampler(ck)
    vids = [v for v in videos if v.audio is not None and v.frames >= 2 * ck.config.motion.clip_frames]
    grid = {}
    for speed in SPEEDS:
        sampler.head_speed = speed
        for scale in SCALES:
            sampler.range_scale = scale
            grid[speed, scale] = _ratios(sampler, vids, takes)
    scale_at, vel_at = [], []
    for speed in SPEEDS:
        std_r = [grid[speed, s][0] for s in SCALES]
        s = _where_one(SCALES, std_r)
        scale_at.append(s)
        vel_at.append(math.exp(np.interp(s, SCALES, np.log(np.maximum([grid[speed, x][1] for x in SCALES], 1e-6)))))
    speed = _where_one(SPEEDS, vel_at)
    scale = float(np.interp(speed, SPEEDS, scale_at))
    sampler.range_scale, sampler.head_speed = round(scale, 3), round(speed, 3)
    std_r, vel_r = _ratios(sampler, vids, takes)
    return {"range_scale": round(scale, 3), "head_speed": round(speed, 3),
            "train_std_ratio": round(std_r, 3), "train_vel_ratio": round(vel_r, 3),
            "train_grid": {f"{k}x{s}": [round(a, 3), round(b, 3)] for (k, s), (a, b) in grid.items()}}


def calibrate_expression(ck, videos) -> dict:
    """Per-channel gain in [0, 1] and offset for the expression output, from the *training* videos
    (reliable mouth tracking, with audio): spread ratio on the lip channels, within-clip
    least-squares slope on the others, training means matched."""
    sampler = Sampler(ck)
    vids = [v for v in videos if v.audio is not None and v.reliable and v.frames > 1]
    n = sampler.expression_gain.shape[0]
    if not vids:
        return {"expression_gain": [1.0] * n, "expression_offset": [0.0] * n}
    preds = [sampler.raw_expression(FeatureArray(v.audio)).astype(np.float64) for v in vids]
    reals = [v.channels[:, -n:].astype(np.float64) for v in vids]
    pred, real = np.concatenate(preds), np.concatenate(reals)
    dp = np.concatenate([p - p.mean(0) for p in preds])  # within-clip: over time, not between people
    dr = np.concatenate([r - r.mean(0) for r in reals])
    gain = np.clip((dp * dr).mean(0) / np.maximum((dp * dp).mean(0), 1e-12), 0.0, 1.0)
    lip = LIP_CHANNELS[ck.config.expression.lip_channels]
    gain[lip] = np.minimum(1.0, real[:, lip].std(0) / np.maximum(pred[:, lip].std(0), 1e-6))
    offset = real.mean(0) - gain * pred.mean(0)
    return {"expression_gain": [round(float(g), 4) for g in gain],
            "expression_offset": [round(float(o), 4) for o in offset]}
