"""Per-video-frame audio features: what the motion model hears, aligned to the take's frames.

Frame rule (the one every part relies on): with `fps` video frames per second, frame t covers
the time [t/fps, (t+1)/fps) and there are T = ceil(len(wave) / sr * fps) frames (the last one
may be partial; samples beyond the end count as silence).

Features of frame t (FEATURE_DIM = 4 * 80 + 1 + 2 = 323, float32):
  [0:320]   80-band log-mel power (natural log, 25 ms Hann window, 0-8 kHz) at 4 sub-frames
            centred at (t + (k + 0.5) / 4) / fps, k = 0..3 (100 Hz at 25 fps), sub-frame-major
  [320]     log energy of the frame's own samples (natural log of the mean square + 1e-8)
  [321]     pitch: log2(f0 / 100 Hz) where voiced, else 0 (autocorrelation, 60-400 Hz)
  [322]     voicing strength in [0, 1] (normalised autocorrelation peak)
Each frame only sees samples within 40 ms of its own interval, so long audio is processed in
chunks with bounded memory and the result does not depend on the chunk size.
"""
from __future__ import annotations

import math

import numpy as np

N_MELS = 80
SUBFRAMES = 4
FEATURE_DIM = N_MELS * SUBFRAMES + 3
WIN_S = 0.025  # mel analysis window
PITCH_WIN_S = 0.050
F0_MIN, F0_MAX = 60.0, 400.0
CHUNK_FRAMES = 1500  # one minute at 25 fps per chunk


def n_frames(n_samples: int, sr: int, fps: float) -> int:
    return int(math.ceil(n_samples / sr * fps - 1e-9))


def _mel_filters(sr: int, n_fft: int, n_mels: int = N_MELS, fmin: float = 0.0, fmax=None) -> np.ndarray:
    """Triangular HTK-mel filterbank (n_mels, n_fft // 2 + 1), area-normalised."""
    fmax = fmax or sr / 2
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    lo, ce, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0, np.minimum((freqs - lo) / (ce - lo), (hi - freqs) / (hi - ce)))
    return (fb * (2.0 / (hi - lo))).astype(np.float32)


def _frames_at(wave: np.ndarray, centres: np.ndarray, width: int) -> np.ndarray:
    """Windows of `width` samples centred at sample positions `centres` (zeros outside the wave)."""
    starts = np.round(centres).astype(np.int64) - width // 2
    pad = width + 1
    padded = np.concatenate([np.zeros(pad, np.float32), wave, np.zeros(pad, np.float32)])
    idx = starts[:, None] + pad + np.arange(width)[None, :]
    return padded[np.clip(idx, 0, len(padded) - 1)]


def _features_chunk(piece, offset, sr, fps, t0, t1, fb, n_fft, win):
    """Features of frames [t0, t1); `piece` holds the wave from absolute sample `offset` on."""
    t = np.arange(t0, t1)
    sub = (t[:, None] + (np.arange(SUBFRAMES)[None, :] + 0.5) / SUBFRAMES) / fps * sr - offset
    frames = _frames_at(piece, sub.reshape(-1), len(win)) * win
    power = np.abs(np.fft.rfft(frames, n_fft, axis=1)) ** 2
    logmel = np.log(power @ fb.T + 1e-6).reshape(len(t), SUBFRAMES * N_MELS)

    frame_len = max(1, int(round(sr / fps)))
    seg = _frames_at(piece, (t + 0.5) / fps * sr - offset, frame_len).astype(np.float64)
    energy = np.log((seg ** 2).mean(1) + 1e-8)[:, None]

    f0, voicing = _pitch(piece, sr, (t + 0.5) / fps * sr - offset)
    pitch = np.where(voicing > 0.5, np.log2(np.maximum(f0, 1.0) / 100.0), 0.0)
    return np.concatenate([logmel, energy, pitch[:, None], voicing[:, None]], 1).astype(np.float32)


def _pitch(wave, sr, centres):
    """Autocorrelation pitch: (f0 Hz, voicing 0..1) per centre position."""
    width = int(round(PITCH_WIN_S * sr))
    fr = _frames_at(wave, centres, width).astype(np.float64)
    fr -= fr.mean(1, keepdims=True)
    fr *= np.hanning(width)
    n = 1 << int(math.ceil(math.log2(2 * width)))
    spec = np.fft.rfft(fr, n, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, n, axis=1)[:, :width]
    bias = np.correlate(np.hanning(width), np.hanning(width), "full")[width - 1:]  # window's own decay
    ac = ac / np.maximum(bias, 1e-9)
    lmin, lmax = int(sr / F0_MAX), min(int(sr / F0_MIN), width - 1)
    r = ac[:, lmin:lmax + 1] / np.maximum(ac[:, :1], 1e-12)
    best = r.max(1, keepdims=True)
    local_max = np.ones_like(r, bool)
    local_max[:, 1:-1] = (r[:, 1:-1] >= r[:, :-2]) & (r[:, 1:-1] >= r[:, 2:])
    # the shortest lag close to the best peak: avoids picking a sub-harmonic (octave error)
    lag = (local_max & (r >= 0.9 * best)).argmax(1)
    peak = r[np.arange(len(r)), lag]
    silent = ac[:, 0] < 1e-10
    voicing = np.where(silent, 0.0, np.clip(peak, 0.0, 1.0))
    return sr / (lag + lmin).astype(np.float64), voicing


def audio_features(wave, sr: int = 16000, fps: float = 25.0, chunk_frames: int = CHUNK_FRAMES) -> np.ndarray:
    """(T, FEATURE_DIM) float32 features of a mono wave; see the module docstring for the layout."""
    wave = _mono(wave)
    T = n_frames(len(wave), sr, fps)
    win_len = int(round(WIN_S * sr))
    n_fft = 1 << int(math.ceil(math.log2(win_len)))
    fb = _mel_filters(sr, n_fft)
    win = np.hanning(win_len).astype(np.float32)
    margin = int(math.ceil(max(WIN_S, PITCH_WIN_S) * sr)) + 2
    out = np.empty((T, FEATURE_DIM), np.float32)
    for t0 in range(0, T, chunk_frames):
        t1 = min(T, t0 + chunk_frames)
        s0 = max(0, int(math.floor(t0 / fps * sr)) - margin)
        s1 = min(len(wave), int(math.ceil(t1 / fps * sr)) + margin)
        out[t0:t1] = _features_chunk(wave[s0:s1], s0, sr, fps, t0, t1, fb, n_fft, win)
    return out


def loudness(wave, sr: int = 16000, fps: float = 25.0) -> np.ndarray:
    """(T,) float32 log-RMS level in dB (full scale = 0 dB, floor -100 dB) per video frame."""
    wave = _mono(wave)
    T = n_frames(len(wave), sr, fps)
    out = np.empty(T, np.float32)
    for t0 in range(0, T, CHUNK_FRAMES):
        t = np.arange(t0, min(T, t0 + CHUNK_FRAMES))
        a = np.round(t / fps * sr).astype(np.int64)
        b = np.minimum(np.round((t + 1) / fps * sr).astype(np.int64), len(wave))
        csum = np.concatenate([[0.0], np.cumsum(wave[a[0]:b[-1]].astype(np.float64) ** 2)])
        ms = (csum[b - a[0]] - csum[a - a[0]]) / np.maximum(np.round(sr / fps), 1)
        out[t] = 10 * np.log10(ms + 1e-10)
    return out


def _mono(wave) -> np.ndarray:
    wave = np.asarray(wave, np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=1 if wave.shape[1] <= 8 else 0)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono wave (samples,), got shape {wave.shape}")
    return wave
