"""Audio/video offset of each speech clip, found and undone at `osmnet prepare` time.

Some source videos have their sound a few frames early or late (hdtf_WDA_KatieHill_000: ~5
frames), which teaches the lips the wrong timing and lowers the dev lip metric. A SyncNet-style
check with our own signals: a linear *sync probe* (ridge regression, per-frame audio features ->
mouth opening) is fitted on the clips of all *other* speakers, so a clip's own offset cannot
bend its probe; the clip's tracked mouth opening (z(jawOpen) + z(inner-lip gap of the canonical
landmarks)) is then cross-correlated with the probe's prediction over lags -MAX_LAG..MAX_LAG.

Convention: `av_offset` = d where corr(mouth[t + d], audio-predicted[t]) peaks; d < 0 means the
mouth moves d frames before the sound that goes with it (the audio is late). The fix delays the
audio by d: new[t] = old[t - d], edges repeated (`av_shift` = d, or 0 when not applied). It is applied only when the peak is clearly
better than lag 0 (gain >= MIN_GAIN), itself a real link (peak >= MIN_PEAK), and inside the search
range (|d| < MAX_LAG: a peak on the border is usually a drift of a short, weakly linked clip).
"""
from __future__ import annotations

import numpy as np

from blender_addon.core.take import ALL_CHANNELS
from osmnet.data.face_mesh import lip_gap
from osmnet.metrics import pearson

MAX_LAG = 8  # frames searched each way (0.32 s at 25 fps)
MIN_GAIN = 0.15  # peak r - lag-0 r needed to shift
MIN_PEAK = 0.30  # peak r needed to shift
RIDGE = 10.0
_JAW = ALL_CHANNELS.index("jawOpen")


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / (x.std(0) + 1e-6)


def mouth_opening(channels: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(T,) z-scored mouth opening: tracked jawOpen plus the canonical inner-lip gap."""
    gap = lip_gap(landmarks)
    return _z(channels[:, _JAW].astype(np.float64)) + _z(gap.astype(np.float64))


def lagged_corr(mouth: np.ndarray, pred: np.ndarray, d: int) -> float:
    """Pearson r of mouth[t + d] with pred[t] over the frames where both exist."""
    x, y = (mouth[d:], pred[:len(pred) - d]) if d >= 0 else (mouth[:d], pred[-d:])
    return pearson(x, y, empty=0.0)


def shift_frames(a: np.ndarray, d: int) -> np.ndarray:
    """new[t] = a[t - d] (delay by d frames; d < 0 advances), the edge frame repeated into the gap."""
    if d == 0 or len(a) == 0:
        return a.copy()
    idx = np.clip(np.arange(len(a)) - d, 0, len(a) - 1)
    return a[idx]


def estimate_offsets(clips: list[tuple[str, np.ndarray, np.ndarray]]) -> list[dict]:
    """clips: (speaker, audio features (T, D), mouth opening (T,)) -> per clip
    {av_offset, av_peak_r, av_lag0_r, av_confidence, av_shift} (av_shift: the frames to delay
    the audio by, 0 when not clearly out of sync). Needs clips of at least two speakers."""
    speakers = {s for s, _, _ in clips}
    if len(speakers) < 2:
        return [{"av_offset": None, "av_shift": 0} for _ in clips]
    feats = [np.c_[_z(f.astype(np.float64)), np.ones(len(f))] for _, f, _ in clips]
    gram = {s: 0.0 for s in speakers}
    rhs = {s: 0.0 for s in speakers}
    for (s, _, m), x in zip(clips, feats):
        gram[s] = gram[s] + x.T @ x
        rhs[s] = rhs[s] + x.T @ m
    g_all, r_all = sum(gram.values()), sum(rhs.values())
    lags = range(-MAX_LAG, MAX_LAG + 1)
    out = []
    for (s, _, m), x in zip(clips, feats):
        g, r = g_all - gram[s], r_all - rhs[s]  # leave this speaker out
        w = np.linalg.solve(g + RIDGE * np.eye(len(g)), r)
        pred = x @ w
        rs = np.array([lagged_corr(m, pred, d) for d in lags])
        k = int(np.argmax(rs))
        d, peak, zero = k - MAX_LAG, float(rs[k]), float(rs[MAX_LAG])
        clear = d != 0 and abs(d) < MAX_LAG and peak - zero >= MIN_GAIN and peak >= MIN_PEAK
        out.append({"av_offset": d, "av_peak_r": round(peak, 4), "av_lag0_r": round(zero, 4),
                    "av_confidence": round(peak - zero, 4), "av_shift": d if clear else 0})
    return out
