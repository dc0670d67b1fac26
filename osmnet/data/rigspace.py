"""Rig space: MediaPipe's blendshape scores -> weights that mean what ARKit means.

MediaPipe scores a neutral face with eyeBlink ~0.1-0.4, eyeSquint ~0.2-0.6, mouthSmile and
mouthPress ~0.1-0.2 and so on, and a closed lid or a wide jaw never reaches 1. An ARKit rig reads
0 as its neutral face and 1 as the full shape, so raw scores keep a rig's eyes 20-40 % shut and its
mouth smirking. `calibrate` fixes both from the video itself (docs/take-format.md, "Rig space"):

- neutral: per channel, the video's resting level -- the median for the eye channels (eyes are
  open and looking ahead most of the time; blinks are brief) and the 10th percentile for every
  other shape (every face relaxes each shape at some point within a few seconds);
- scale: eyeBlink so the video's full blinks (the 90th percentile of its blink peaks, or
  CLOSED_BLINK when it shows fewer than MIN_BLINKS) reach 1; jawOpen by JAW_GAIN, one constant
  measured on the shared clips, so a wide speaking jaw reaches ~0.9 (a per-video jaw scale would
  blow up the small jaw motion of quiet speakers); the other shapes keep MediaPipe's scale.
- weight = clip((score - neutral) * scale, 0, 1). Head channels are not touched.
"""
from __future__ import annotations

import numpy as np

from blender_addon.core.channels import ALL_CHANNELS, ARKIT_NAMES, HEAD_CHANNELS

REST_PERCENTILE = 10.0  # face shapes: the resting level of a video
EYE_PERCENTILE = 50.0  # eye channels: open, looking ahead
# Pooled over the 66 shared clips, (jawOpen - neutral) has its 99.5th percentile at 0.56.
JAW_GAIN = 1.6
CLOSED_BLINK = 0.75  # raw eyeBlink of a closed lid, for videos with too few blinks to measure
MIN_BLINKS = 2
MAX_BLINK_SCALE = 3.0  # a narrow-eyed face whose lids barely move is not stretched further
BLINK_THRESHOLD = 0.15  # a blink rises this far above the running median of the lid
SPACE_RAW, SPACE_RIG = "raw", "rig"  # the take meta "curves" field

_EYE = np.array([n.startswith("eye") for n in ARKIT_NAMES])
_BLINK = [ARKIT_NAMES.index("eyeBlinkLeft"), ARKIT_NAMES.index("eyeBlinkRight")]
_JAW = ARKIT_NAMES.index("jawOpen")


def blink_peaks(lid: np.ndarray, threshold: float = BLINK_THRESHOLD, half: int = 12) -> np.ndarray:
    """Frames where a (T,) lid curve peaks more than `threshold` above its running median."""
    lid = np.asarray(lid, np.float64)
    if len(lid) < 3:
        return np.zeros(0, int)
    pad = np.pad(lid, half, mode="edge")
    base = np.median(np.lib.stride_tricks.sliding_window_view(pad, 2 * half + 1), axis=1)
    ex = lid - base
    peaks: list[int] = []
    for t in range(1, len(ex) - 1):
        if ex[t] > threshold and ex[t] >= ex[t - 1] and ex[t] > ex[t + 1] and (not peaks or t - peaks[-1] > 4):
            peaks.append(t)
    return np.asarray(peaks, int)


def fit(scores: np.ndarray) -> dict:
    """(T, 52) raw scores of one video -> its calibration {neutral (52,), scale (52,), blinks, closed_blink}."""
    x = np.asarray(scores, np.float64)
    if x.ndim != 2 or x.shape[1] != len(ARKIT_NAMES) or len(x) == 0:
        raise ValueError(f"expected (frames, {len(ARKIT_NAMES)}) blendshape scores, got shape {x.shape}")
    neutral = np.where(_EYE, np.percentile(x, EYE_PERCENTILE, axis=0), np.percentile(x, REST_PERCENTILE, axis=0))
    scale = np.ones(len(ARKIT_NAMES))
    scale[_JAW] = JAW_GAIN
    lid = x[:, _BLINK].mean(1)
    peaks = blink_peaks(lid)
    closed = float(np.percentile(lid[peaks], 90)) if len(peaks) >= MIN_BLINKS else CLOSED_BLINK
    scale[_BLINK] = min(MAX_BLINK_SCALE, 1.0 / max(closed - float(neutral[_BLINK].mean()), 1e-3))
    return {"neutral": neutral, "scale": scale, "blinks": int(len(peaks)), "closed_blink": closed}


def apply(scores: np.ndarray, calib: dict) -> np.ndarray:
    """Raw (T, 52) scores -> rig-space weights with a calibration from `fit`."""
    x = np.asarray(scores, np.float64)
    return np.clip((x - calib["neutral"]) * calib["scale"], 0.0, 1.0).astype(np.float32)


def calibrate_channels(channels: np.ndarray) -> tuple[np.ndarray, dict]:
    """(T, 58) take channels (ALL_CHANNELS order) -> rig-space channels and the calibration used."""
    ch = np.asarray(channels, np.float32)
    if ch.ndim != 2 or ch.shape[1] != len(ALL_CHANNELS):
        raise ValueError(f"expected (frames, {len(ALL_CHANNELS)}) channels, got shape {ch.shape}")
    calib = fit(ch[:, len(HEAD_CHANNELS):])
    out = ch.copy()
    out[:, len(HEAD_CHANNELS):] = apply(ch[:, len(HEAD_CHANNELS):], calib)
    return out, calib


def summary(calib: dict) -> dict:
    """The calibration as JSON-friendly numbers for take meta and the dataset index."""
    return {"neutral": {n: round(float(v), 4) for n, v in zip(ARKIT_NAMES, calib["neutral"]) if abs(v) >= 5e-5},
            "scale": {n: round(float(v), 4) for n, v in zip(ARKIT_NAMES, calib["scale"]) if v != 1.0},
            "blinks": calib["blinks"], "closed_blink": round(float(calib["closed_blink"]), 4)}
