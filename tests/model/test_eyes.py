"""Blinks: a take blinks as often per minute in a 4 s clip as in two minutes (the placer is stationary)."""
from __future__ import annotations

import numpy as np
import pytest

from osmnet.model import checkpoint, eyes


def _full_blinks(curves: np.ndarray) -> int:
    lid = curves[:, :2].mean(1) >= 0.8
    return int(np.sum(lid[1:] & ~lid[:-1]) + lid[0])


def _per_minute(stats, seconds: float, seeds: int) -> float:
    n = int(seconds * stats["fps"])
    counts = [_full_blinks(eyes.EyeSampler(stats, np.random.default_rng([s, 0, 1])).next(n)) for s in range(seeds)]
    return float(np.mean(counts)) / seconds * 60.0


def test_short_clips_blink_as_often_per_minute_as_long_takes():
    stats = checkpoint.load(checkpoint.DEFAULT_CHECKPOINT).eyes
    short, long = _per_minute(stats, 4.0, 3000), _per_minute(stats, 120.0, 150)
    assert 6.0 <= short <= 30.0 and 6.0 <= long <= 30.0
    assert short == pytest.approx(long, rel=0.25), (short, long)
    # and both are the rate the model was fitted with (standard errors here are ~0.3 per minute)
    assert long == pytest.approx(60.0 * stats["blink_rate"], rel=0.1)
