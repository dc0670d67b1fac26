"""Fewer keys for a baked curve: keep only the keys needed to stay within a tolerance.

A take is keyed once per scene frame; an animator editing it by hand wants the few keys that
carry the shape. reduce_keys keeps a subset of the keys such that the curve through the kept
keys, with linear interpolation (how the add-on keys takes), is within `tolerance` of every
original key: Ramer-Douglas-Peucker on the vertical distance, which bounds exactly what the
artist sees at every frame. Pure numpy, so it is tested without Blender.

Public API
    reduce_keys(frames, values, tolerance) -> index array of the keys to keep (first and last always)
    max_error(frames, values, keep) -> the largest |kept curve - original| over the original keys
"""
from __future__ import annotations

import numpy as np


def reduce_keys(frames, values, tolerance: float) -> np.ndarray:
    """Indices (sorted) of the keys to keep so that linear interpolation between them stays within
    `tolerance` of every key. tolerance <= 0 keeps every key; a constant curve keeps its ends."""
    f = np.asarray(frames, np.float64)
    v = np.asarray(values, np.float64)
    n = len(f)
    if n != len(v):
        raise ValueError(f"frames ({n}) and values ({len(v)}) differ in length")
    if n <= 2 or tolerance <= 0:
        return np.arange(n)
    keep = np.zeros(n, bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        t = (f[a + 1:b] - f[a]) / (f[b] - f[a])
        err = np.abs(v[a] + t * (v[b] - v[a]) - v[a + 1:b])
        i = int(np.argmax(err))
        if err[i] > tolerance:
            m = a + 1 + i
            keep[m] = True
            stack += [(a, m), (m, b)]
    return np.flatnonzero(keep)


def max_error(frames, values, keep) -> float:
    f = np.asarray(frames, np.float64)
    v = np.asarray(values, np.float64)
    keep = np.asarray(keep)
    return float(np.max(np.abs(np.interp(f, f[keep], v[keep]) - v))) if len(f) else 0.0
