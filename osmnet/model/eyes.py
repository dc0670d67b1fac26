"""Spontaneous eye blinks, gaze drift and upper-face variety: fitted from tracked data, sampled per take.

Blinks are not driven by speech, so they are not predicted from audio: the blink rate, the
blink shape (per eye) and its amplitude come from the real tracked `eyeBlink*` curves, and
blinks are placed by a renewal process (refractory gap + exponential wait). Gaze drift is two
AR(1) processes on the two main directions (PCA) of the 8 `eyeLook*` curves, with the
variance and time constant measured on the data. Everything here is numpy; `fit` returns a
plain dict stored in the checkpoint.

Curves are in rig space (osmnet.data.rigspace), so an open eye is 0 and a full blink reaches 1:
sampled blinks peak at BLINK_PEAK +- a little (the tracked peaks undersample the closure at 25 fps).

Face variety (FaceSampler): brows, eye squint, smile and eye widening differ from take to take --
a take-level offset drawn from how much these channels differ between real videos, a slow AR(1)
drift with the within-video spread and time constant of the data, and, where the data links a
channel to the speech (the brows rise with emphasis: median slope on the 0-1 speech energy), that
link with a per-take strength. cheekSquint (MediaPipe never scores it) follows the smile, as on an
ARKit capture. Lips are not touched: they come from the audio alone.
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
MAX_RATE = 0.3  # blinks/s (18 per minute): short, lively clips overstate the resting rate
BLINK_PEAK, BLINK_SPREAD = 0.95, 0.05  # peak of a sampled blink (rig space: 1 = lids closed)
FACE = ("browInnerUp", "browDownLeft", "browDownRight", "browOuterUpLeft", "browOuterUpRight",
        "eyeSquintLeft", "eyeSquintRight", "mouthSmileLeft", "mouthSmileRight", "eyeWideLeft", "eyeWideRight")
FACE_INDEX = [ALL_CHANNELS.index(n) for n in FACE]
CHEEK_INDEX = [ALL_CHANNELS.index(n) for n in ("cheekSquintLeft", "cheekSquintRight")]
SMILE_INDEX = [ALL_CHANNELS.index(n) for n in ("mouthSmileLeft", "mouthSmileRight")]
CHEEK_FROM_SMILE = 0.5
OFFSET_SHARE = 0.5  # of the between-video spread: takes of one voice differ less than two people


def ar1(noise: np.ndarray, phi, c0, chunk: int = 32) -> np.ndarray:
    """y[t] = phi * y[t-1] + noise[t] per column, from y[-1] = c0 (what scipy's lfilter computes;
    written out because importing scipy.signal costs seconds on every `osmnet generate`). Closed
    form per chunk of frames, y = phi^t (c + cumsum(noise / phi^t)), so phi^-t stays small."""
    x = np.asarray(noise, np.float64)
    p = np.maximum(np.asarray(phi, np.float64), 0.05)
    out = np.empty_like(x)
    y = np.broadcast_to(np.asarray(c0, np.float64), x.shape[1:]).copy()
    for a in range(0, len(x), chunk):
        xs = x[a:a + chunk]
        pw = p ** np.arange(1, len(xs) + 1).reshape((-1,) + (1,) * (x.ndim - 1))
        out[a:a + chunk] = pw * (y + np.cumsum(xs / pw, axis=0))
        y = out[a + len(xs) - 1]
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


def fit_face(videos: list[np.ndarray], loudness=None) -> dict:
    """Per-video (T, 58) rig-space arrays (+ loudness (T,) dB or None each) -> face variety statistics."""
    from osmnet.audio import gaussian_smooth, speech_energy

    means, resid, slopes = [], [], []
    for k, ch in enumerate(videos):
        f = np.asarray(ch[:, FACE_INDEX], np.float64)
        means.append(f.mean(0))
        resid.append(f - f.mean(0))
        loud = loudness[k] if loudness is not None else None
        if loud is not None and len(loud) == len(f):
            e = gaussian_smooth(speech_energy(loud), 2.0)
            e = e - e.mean()
            if float(e @ e) > 1e-6:
                slopes.append((resid[-1] * e[:, None]).sum(0) / float(e @ e))
    if not means:
        return {}
    r = np.concatenate(resid)
    phi = [(q[1:] * q[:-1]).sum(0) / np.maximum((q ** 2).sum(0), 1e-9) for q in resid if len(q) > 2]
    slope = np.median(slopes, 0) if slopes else np.zeros(len(FACE))
    brow = np.array([n.startswith("brow") for n in FACE])
    return {"face_channels": list(FACE), "face_between": np.std(means, 0).tolist(), "face_within": r.std(0).tolist(),
            "face_phi": np.clip(np.mean(phi, 0), 0.0, 0.995).tolist() if phi else [0.9] * len(FACE),
            "face_energy_slope": np.where(brow, slope, 0.0).tolist()}  # the link the data shows: the brows


def fit(videos: list[np.ndarray], fps: float = 25.0, loudness=None) -> dict:
    """Per-video (T, 58) channel arrays -> eye and face statistics (plain lists, JSON/torch friendly)."""
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
    rate = min(MAX_RATE, n_blinks / seconds) if n_blinks else FALLBACK_RATE
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
        **fit_face(videos, loudness),
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
        # The process runs from before the take starts, so a blink whose tail reaches frame 0 is drawn.
        self.next_blink = -(HALF + 1) + self._first_wait()
        self.phi = np.asarray(stats["gaze_phi"])
        self.std = np.asarray(stats["gaze_std"])
        self.c = self.gaze_rng.normal(0.0, 1.0, 2) * self.std

    def _wait_s(self) -> float:
        """Mean of the exponential part of a blink interval (seconds); the interval adds REFRACTORY_S."""
        return max(0.1, 1.0 / max(1e-3, self.s["blink_rate"]) - REFRACTORY_S)

    def _interval(self) -> float:
        return self.fps * (REFRACTORY_S + self.rng.exponential(self._wait_s()))

    def _first_wait(self) -> float:
        """Frames to the first blink as seen from a moment the process has long been running (its
        stationary forward-recurrence time, density (1 - F(t)) / mean interval): with probability
        REFRACTORY_S / mean uniform within the gap, else the gap plus a full exponential wait.
        Drawing it like any other interval (or a uniform share of one) puts the first blink too
        early, and short clips then blink more per minute than long takes."""
        wait = self._wait_s()
        if self.rng.uniform() < REFRACTORY_S / (REFRACTORY_S + wait):
            return self.fps * self.rng.uniform(0.0, REFRACTORY_S)
        return self.fps * (REFRACTORY_S + self.rng.exponential(wait))

    def next(self, n: int) -> np.ndarray:
        k = len(self.template)
        if len(self.buf) < n + k:
            self.buf = np.concatenate([self.buf, np.zeros((n + k - len(self.buf), 2))])
        while self.next_blink < self.t + n:
            pos = int(round(self.next_blink)) - self.t
            amp = float(np.clip(self.rng.normal(BLINK_PEAK, BLINK_SPREAD), 0.8, 1.0))
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


class FaceSampler:
    """Streams per-take variety for the FACE channels ((n, len(FACE)) deltas to add to the
    expression branch's output) and the cheekSquint that follows the smile; seeded, chunk-size free."""

    def __init__(self, stats: dict, rng: np.random.Generator, amount: float = 1.0):
        self.on = amount > 0 and "face_channels" in stats and list(stats["face_channels"]) == list(FACE)
        if not self.on:
            return
        self.offset_rng, self.rng = (np.random.default_rng(x) for x in rng.bit_generator.seed_seq.spawn(2))
        between = np.asarray(stats["face_between"], np.float64)
        self.within = np.asarray(stats["face_within"], np.float64) * amount
        self.phi = np.asarray(stats["face_phi"], np.float64)
        sym = self.offset_rng.normal(0.0, 1.0, len(FACE))
        for a, b in ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10)):  # left/right mostly move together
            sym[b] = 0.8 * sym[a] + 0.6 * sym[b]
        self.offset = sym * between * OFFSET_SHARE * amount
        self.link = np.asarray(stats["face_energy_slope"], np.float64) * self.offset_rng.uniform(0.5, 1.5) * amount
        self.c = self.rng.normal(0.0, 1.0, len(FACE)) * self.within

    def next(self, energy: np.ndarray) -> np.ndarray | None:
        """(n,) speech energy in [0, 1] of the next n frames -> (n, len(FACE)) deltas, or None when off."""
        if not self.on:
            return None
        n = len(energy)
        noise = self.rng.normal(0.0, 1.0, (n, len(FACE))) * (np.sqrt(1 - self.phi ** 2) * self.within)
        drift = ar1(noise, self.phi, self.c)
        if n:
            self.c = drift[-1].copy()
        return (self.offset + drift + (np.asarray(energy, np.float64)[:, None] - 0.5) * self.link).astype(np.float32)
