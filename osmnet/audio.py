"""The audio front-end: the sample rate, reading speech, and per-video-frame features.

Everything that hears audio (prepare, training, generation, the backend, the renderer's muxing)
reads speech through `load_audio` / `read_speech` here and addresses features by the names in
FEATURE_LAYOUT, so the rate and the layout are written once.

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
from pathlib import Path

import numpy as np

from blender_addon.core.errors import UserInputError

SAMPLE_RATE = 16000  # Hz: every wave inside osmnet is float32 mono at this rate
N_MELS = 80
SUBFRAMES = 4
FEATURE_DIM = N_MELS * SUBFRAMES + 3
# Where each feature lives in a (T, FEATURE_DIM) array, by name.
FEATURE_LAYOUT = {
    "mel": slice(0, N_MELS * SUBFRAMES),  # (SUBFRAMES, N_MELS) sub-frame-major
    "energy": N_MELS * SUBFRAMES,
    "pitch": N_MELS * SUBFRAMES + 1,
    "voicing": N_MELS * SUBFRAMES + 2,
}
MEL, ENERGY, PITCH, VOICING = (FEATURE_LAYOUT[k] for k in ("mel", "energy", "pitch", "voicing"))
SPEECH_LOG_ENERGY = math.log(10 ** (-45 / 10))  # frames louder than -45 dBFS count as sound


class SpeechError(UserInputError):
    """Speech that cannot be used (no samples, NaN, wrong type); the message says what to give."""
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


def audio_features(wave, sr: int = SAMPLE_RATE, fps: float = 25.0, chunk_frames: int = CHUNK_FRAMES) -> np.ndarray:
    """(T, FEATURE_DIM) float32 features of a mono wave; see the module docstring for the layout."""
    wave = mono(wave)
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


def loudness(wave, sr: int = SAMPLE_RATE, fps: float = 25.0) -> np.ndarray:
    """(T,) float32 log-RMS level in dB (full scale = 0 dB, floor -100 dB) per video frame."""
    wave = mono(wave)
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


def mono(wave) -> np.ndarray:
    """(samples,) or (samples, channels) / (channels, samples) -> float32 (samples,): the one downmix."""
    wave = np.asarray(wave, np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=1 if wave.shape[1] <= 8 else 0)
    if wave.ndim != 1:
        raise SpeechError(f"expected a mono wave (samples,), got shape {wave.shape}")
    return wave


def load_audio(path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The first audio stream of any audio or video file as float32 mono at `sr` Hz."""
    from osmnet.media import decode_audio

    return decode_audio(path, sr)


def read_speech(audio) -> np.ndarray:
    """A path or (samples, sr) -> checked float32 mono speech at SAMPLE_RATE."""
    if isinstance(audio, (str, Path)):
        if not Path(audio).is_file():
            raise SpeechError(f"audio file {audio} does not exist")
        wave = load_audio(audio, sr=SAMPLE_RATE)
    elif isinstance(audio, tuple) and len(audio) == 2:
        wave, sr = mono(audio[0]), int(audio[1])
        from osmnet.media import check_sample_rate

        check_sample_rate(sr, "the audio array", SpeechError)
        if sr != SAMPLE_RATE:
            from math import gcd

            from scipy.signal import resample_poly  # only for arrays at another rate (seconds to import)

            g = gcd(sr, SAMPLE_RATE)
            wave = resample_poly(wave, SAMPLE_RATE // g, sr // g).astype(np.float32)
    else:
        raise SpeechError("audio must be a file path or a (samples, sample_rate) tuple")
    if wave.ndim != 1 or len(wave) == 0:
        raise SpeechError(f"audio has no samples (shape {wave.shape}); give a file with speech in it")
    if not np.all(np.isfinite(wave)):
        raise SpeechError("audio contains NaN or infinite samples")
    return wave


def utterance_offset(feats: np.ndarray, enabled: bool = True, default=None) -> np.ndarray:
    """What is subtracted from every feature frame of one recording: the mean of its sounding
    frames (removes microphone, room and level; measured to matter on dev speakers). A recording
    with almost no sound gets `default` (the typical speech offset), so silence stays silence
    instead of being scaled up to look like speech."""
    if not enabled:
        return np.zeros(feats.shape[1], np.float32)
    loud = feats[:, ENERGY] > SPEECH_LOG_ENERGY
    if loud.sum() < 10:
        return np.asarray(default if default is not None else feats.mean(0), np.float32)
    return feats[loud].mean(0).astype(np.float32)


def silence_features(fps: float) -> np.ndarray:
    """The feature frame of digital silence (what padding beyond the audio's ends looks like)."""
    return audio_features(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE, fps)[2:-2].mean(0)


# ---- speech activity: what "silence" means for a real recording -------------------------------
# A recording's own levels, not a fixed dBFS threshold: room noise in a radio studio sits 30-40 dB
# above digital silence, and the mouth must rest in those pauses too.
FLOOR_PERCENTILE, SPEECH_PERCENTILE = 10.0, 95.0
ACTIVITY_AT = 0.4  # share of the floor -> speech range where a frame counts as half speech
ACTIVITY_WIDTH_DB = 6.0
HOLD_S = 0.08  # closures between syllables are not pauses
MIN_RANGE_DB = 10.0
DIGITAL_SILENCE_DB = -95.0


def gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 (edges repeated); sigma in frames, 0 = unchanged."""
    x = np.asarray(x, np.float64)
    if sigma <= 0 or len(x) == 0:
        return x.copy()
    r = int(math.ceil(4 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.concatenate([np.repeat(x[:1], r, 0), x, np.repeat(x[-1:], r, 0)])
    win = np.lib.stride_tricks.sliding_window_view(pad, 2 * r + 1, axis=0)
    return win @ k


def speech_levels(loud_db: np.ndarray) -> tuple[float, float]:
    """(noise floor, speech level) in dB of one recording from its per-frame loudness."""
    loud = np.asarray(loud_db, np.float64)
    sound = loud[loud > DIGITAL_SILENCE_DB]
    if len(sound) < 10:
        return DIGITAL_SILENCE_DB, DIGITAL_SILENCE_DB + MIN_RANGE_DB
    floor = float(np.percentile(loud, FLOOR_PERCENTILE))
    speech = float(np.percentile(sound, SPEECH_PERCENTILE))
    return floor, max(speech, floor + MIN_RANGE_DB)


def voice_activity(loud_db: np.ndarray, fps: float = 25.0, levels=None) -> np.ndarray:
    """(T,) float32 in [0, 1]: 1 while someone speaks, 0 in pauses, relative to the recording's
    own noise floor (so noisy natural pauses count as pauses), held over short closures."""
    loud = np.asarray(loud_db, np.float64)
    floor, speech = levels or speech_levels(loud)
    raw = np.clip((loud - (floor + ACTIVITY_AT * (speech - floor))) / ACTIVITY_WIDTH_DB + 0.5, 0.0, 1.0)
    h = max(0, int(round(HOLD_S * fps)))
    if h and len(raw):
        pad = np.concatenate([np.repeat(raw[:1], h), raw, np.repeat(raw[-1:], h)])
        raw = np.lib.stride_tricks.sliding_window_view(pad, 2 * h + 1).max(1)
    return np.clip(gaussian_smooth(raw, 1.0), 0.0, 1.0).astype(np.float32)


def speech_energy(loud_db: np.ndarray, levels=None) -> np.ndarray:
    """(T,) float32 in [0, 1]: loudness between the recording's noise floor (0) and speech level (1)."""
    loud = np.asarray(loud_db, np.float64)
    floor, speech = levels or speech_levels(loud)
    return np.clip((loud - floor) / (speech - floor), 0.0, 1.0).astype(np.float32)
