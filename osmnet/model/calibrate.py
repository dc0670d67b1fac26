"""After training: the one number that scales the learned range (see docs/model.md).

The audio mapper is fitted on the training clips, so its raw range is overconfident; sampling
those very clips at several scales and matching their real head-motion size fixes it.
"""
from __future__ import annotations

import math

import numpy as np

from osmnet.metrics import rot_std
from osmnet.model.sampler import FeatureArray, Sampler


def _sample(sampler: Sampler, feats: np.ndarray, takes: int) -> list[np.ndarray]:
    """(takes,) arrays (T, 58) at the model's rate sampled from precomputed features, seed 0."""
    fa = FeatureArray(feats)
    blocks = [v for _, v in sampler.blocks(fa, 0, fa.frames, takes, 0, 1.0, 1.0)]
    vals = np.concatenate(blocks, 1)
    return [vals[k] for k in range(takes)]


SCALES = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)


def calibrate_range(ck, videos, takes: int = 2) -> dict:
    """Scale of the learned range that makes sampled head motion as large as the real motion of
    the *training* videos (median rotation-std ratio closest to 1). The audio mapper is fitted on
    these clips, so its raw range is overconfident; this one number corrects that."""
    sampler = Sampler(ck)
    vids = [v for v in videos if v.audio is not None and v.frames >= 2 * ck.config.motion.clip_frames]
    ratios = {}
    for scale in SCALES:
        sampler.range_scale = scale
        r = [np.mean([rot_std(t) for t in _sample(sampler, v.audio, takes)]) / max(1e-9, rot_std(v.pose))
             for v in vids]
        ratios[scale] = float(np.median(r))
    r = np.log(np.maximum([ratios[s] for s in SCALES], 1e-6))
    if np.all(np.diff(r) > 0) and r[0] <= 0 <= r[-1]:  # the ratio grows with the scale: interpolate to 1
        best = float(np.interp(0.0, r, SCALES))
    else:
        best = min(SCALES, key=lambda s: abs(math.log(max(ratios[s], 1e-6))))
    return {"range_scale": round(best, 3), "train_std_ratio": {str(k): round(v, 3) for k, v in ratios.items()}}
