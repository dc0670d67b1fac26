"""Spontaneous eye blinks and small gaze drift: fitted from tracked data, sampled per take.

Blinks are not driven by speech, so they are not predicted from audio: the blink rate, the
blink shape (per eye) and its amplitude come from the real tracked `eyeBlink*` curves, and
blinks are placed by a renewal process (refractory gap + exponential wait). Gaze drift is two
AR(1) processes on the two main directions (PCA) of the 8 `eyeLook*` curves, with the
variance and time constant measured on the data. Everything here is numpy; `fit` returns a
plain dict stored in the checkpoint.
"""
from __future__ import annotations

import numpy as np

from blender_addon.core.take import ALL_CHANNELS

BLINK = ("eyeBlinkLeft", "eyeBlinkRight")
GAZE = tuple(n for n in ALL_CHANNELS if n.startswith("eyeLook"))
EYE_CHANNELS = BLINK + GAZE
EYE_INDEX = [ALL_CHANNELS.index(n) for n in EYE_CHANNELS]
HALF = 4  # blink template covers -HALF .. +HALF+1 frames around the peak
REFRACTORY_S = 0.3
FALLBACK_RATE = 0.28  # blinks/s (about 17 per minute) when the data shows none


def ar1(noise: np.ndarray, phi: np.ndarray, c0: np.ndarray) -> np.ndarray:
    """y[t] = phi * y[t-1] + noise[t] per column, from y[-1] = c0 (what scipy's lfilter computes;
    written out because importing scipy.signal costs seconds on every `osmnet generate`)."""
    out = np.empty_like(noise, dtype=np.float64)
    y = c0.astype(np.float64)
    for t in range(len(noise)):
        y = phi * y + noise[t]
        out[t] = y
    return out


def _running_median(x: np.ndarray, half: int) -> np.ndarray:
    pad = np.pad(x, half, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(pad, 2 * half + 1)
    return np.median(win, axis=1)


def detect_blinks(blink: np.ndarray, threshold: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2) eyeBlink curves -> peak frames of blinks and the baseline (T, 2)."""
    base = np.stack([_running_median(blink[:, i], 12) for i in range(2)], 1)
    ex = (blink - base).mean(1)
    peaks = []
    for t in range(1, len(ex) - 1):
        if ex[t] > threshold and ex[t] >= ex[t - 1] and ex[t] > ex[t + 1]:
            if not peaks or t - peaks[-1] > 4:
                peaks.append(t)
    return np.asarray(peaks, int), base


def fit(videos: list[np.ndarray], fps: float = 25.0) -> dict:
    """Per-video (T, 58) channel arrays -> eye statistics (plain lists, JSON/torch friendly)."""
    blinks, heights, n_blinks, seconds, levels = [], [], 0, 0.0, []
    gaze_centered, gaze_means = [], []
    for ch in videos:
        b = ch[:, EYE_INDEX[:2]]
        peaks, base = detect_blinks(b)
        n_blinks += len(peaks)
        seconds += len(b) / fps
        levels.append(np.median(b, 0))
        for p in peaks:
            if HALF <= p < len(b) - HALF - 1:
                seg = b[p - HALF:p + HALF + 2] - base[p - HALF:p + HALF + 2]
                blinks.append(seg)
                heights.append(seg[HALF].mean())
        g = ch[:, EYE_INDEX[2:]]
        gaze_means.append(g.mean(0))
        gaze_centered.append(g - g.mean(0))
    if blinks:
        template = np.maximum(np.mean(blinks, 0), 0.0)  # the lid never opens wider than at rest
        template /= max(1e-6, template[HALF].mean())
        amp = (float(np.mean(heights)), float(np.std(heights)))
    else:  # a generic symmetric blink shape
        shape = np.exp(-0.5 * ((np.arange(2 * HALF + 2) - HALF) / 1.3) ** 2)
        template, amp = np.stack([shape, shape], 1), (0.5, 0.1)
    rate = n_blinks / seconds if n_blinks else FALLBACK_RATE
    g = np.concatenate(gaze_centered) if gaze_centered else np.zeros((1, len(GAZE)))
    u, s, vt = np.linalg.svd(g - g.mean(0), full_matrices=False)
    comps = vt[:2]  # (2, 8)
    series = [gc @ comps.T for gc in gaze_centered]
    std = np.sqrt(np.mean(np.concatenate(series) ** 2, 0)) if series else np.zeros(2)
    lag = [np.sum(s_[1:] * s_[:-1], 0) / np.maximum(1e-9, np.sum(s_ ** 2, 0)) for s_ in series if len(s_) > 2]
    phi = np.clip(np.mean(lag, 0), 0.0, 0.995) if lag else np.full(2, 0.95)
    return {
        "fps": float(fps), "blink_rate": float(rate), "blink_source": "data" if n_blinks else "fallback",
        "blink_template": template.tolist(), "blink_amp": list(amp),
        "blink_level": np.mean(levels, 0).tolist() if levels else [0.1, 0.1],
        "gaze_mean": np.mean(gaze_means, 0).tolist() if gaze_means else [0.0] * len(GAZE),
        "gaze_comps": comps.tolist(), "gaze_std": np.asarray(std).tolist(), "gaze_phi": np.asarray(phi).tolist(),
    }


class EyeSampler:
    """Streams (n, 10) eye curves (EYE_CHANNELS order) at the stats' fps; state carries across calls."""

    def __init__(self, stats: dict, rng: np.random.Generator):
        self.s = stats
        # independent streams for blinks and gaze, so chunk sizes never change the result
        self.rng, self.gaze_rng = (np.random.default_rng(x) for x in rng.bit_generator.seed_seq.spawn(2))
        self.fps = stats["fps"]
        self.template = np.asarray(stats["blink_template"], np.float64)
        self.buf = np.zeros((0, 2))
        self.t = 0
        self.next_blink = float(self.rng.uniform(0, self._interval()))
        self.phi = np.asarray(stats["gaze_phi"])
        self.std = np.asarray(stats["gaze_std"])
        self.c = self.gaze_rng.normal(0.0, 1.0, 2) * self.std

    def _interval(self) -> float:
        rate = max(1e-3, self.s["blink_rate"])
        return self.fps * (REFRACTORY_S + self.rng.exponential(max(0.1, 1.0 / rate - REFRACTORY_S)))

    def next(self, n: int) -> np.ndarray:
        k = len(self.template)
        if len(self.buf) < n + k:
            self.buf = np.concatenate([self.buf, np.zeros((n + k - len(self.buf), 2))])
        while self.next_blink < self.t + n:
            pos = int(round(self.next_blink)) - self.t
            mean, sd = self.s["blink_amp"]
            amp = max(0.3 * mean, self.rng.normal(mean, sd))
            lo = max(0, pos - HALF)
            self.buf[lo:pos - HALF + k] += amp * self.template[lo - (pos - HALF):]
            self.next_blink += self._interval()
        blink = np.asarray(self.s["blink_level"]) + self.buf[:n]
        self.buf = self.buf[n:]
        self.t += n
        a = np.sqrt(1 - self.phi ** 2) * self.std
        noise = self.gaze_rng.normal(0.0, 1.0, (n, 2)) * a
        cs = ar1(noise, np.asarray(self.phi, np.float64), np.asarray(self.c, np.float64))
        self.c = cs[-1].copy()
        gaze = np.asarray(self.s["gaze_mean"]) + cs @ np.asarray(self.s["gaze_comps"])
        return np.clip(np.concatenate([blink, gaze], 1), 0.0, 1.0).astype(np.float32)
