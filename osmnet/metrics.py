"""Small measures shared by prepare, training, calibration and evaluation (one copy each)."""
from __future__ import annotations

import numpy as np


def pearson(a, b, empty=float("nan")) -> float:
    """Pearson r of two equal-length series; `empty` when either is (nearly) constant or too short."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    if len(a) < 3 or len(a) != len(b):
        return empty
    a, b = a - a.mean(), b - b.mean()
    d = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / d) if d > 1e-12 else empty


def rot_std(x) -> float:
    """RMS over the three rotation channels of their standard deviation (radians)."""
    return float(np.sqrt(np.mean(np.var(np.asarray(x)[:, :3], 0))))


def vel_rms(x) -> float:
    """RMS frame-to-frame change of the three rotation channels (radians per frame)."""
    return float(np.sqrt(np.mean(np.diff(np.asarray(x)[:, :3], axis=0) ** 2)))
