"""Dev-speaker evaluation of a checkpoint against baselines; one table, one JSON.

Per dev video (real audio features from the dataset, real tracked curves as reference):
- lip_r: Pearson r between generated and tracked jawOpen.
- std_ratio: head-rotation std (RMS over pitch/yaw/roll) of each take / the real one.
- vel_ratio: RMS frame-to-frame head-rotation velocity of each take / the real one.
- diversity: mean pairwise RMS distance between the takes' head rotations / real rotation std.
- beat_align: mean over head-motion beats (minima of angular speed) of exp(-d^2 / 2 sigma^2),
  d = frames to the nearest audio onset (rise of loudness), sigma = 3 frames (as Bailando's BAS).
- join_ratio (model rows): RMS head acceleration at clip joins / elsewhere (1 = seamless).
Rows: real (the tracked motion itself), the model (diversity 1), one-to-one (diversity 0, the
ablation), static head, and another clip's real motion (8 other clips).
"""
from __future__ import annotations

import itertools
import json
import math
import os

import numpy as np
from tqdm import tqdm

from osmnet.audio import ENERGY
from osmnet.metrics import pearson, rot_std, vel_rms  # noqa: F401  (evaluate's public measures)
from osmnet.model import checkpoint as ckpt_mod
from blender_addon.core.files import atomic_path
from osmnet.generate import FeatureArray, Generator
from blender_addon.core.take import ARKIT_NAMES
from osmnet.data.dataset import load_videos, split_speakers
from osmnet.data.prepare import DatasetError

JAW = 6 + ARKIT_NAMES.index("jawOpen")
METRICS = ("lip_r", "std_ratio", "vel_ratio", "diversity", "beat_align", "join_ratio")
SIGMA = 3.0


def _local_minima(x, gap=4):
    idx = [t for t in range(1, len(x) - 1) if x[t] < x[t - 1] and x[t] <= x[t + 1]]
    out = []
    for t in idx:
        if not out or t - out[-1] >= gap:
            out.append(t)
    return np.asarray(out, int)


def motion_beats(rot) -> np.ndarray:
    speed = np.linalg.norm(np.diff(rot[:, :3], axis=0), axis=1)
    speed = np.convolve(speed, np.ones(3) / 3, "same")
    return _local_minima(speed) + 1


def audio_onsets(loud) -> np.ndarray:
    rise = np.maximum(np.diff(np.convolve(loud, np.ones(3) / 3, "same")), 0)
    thr = rise.mean() + 0.5 * rise.std()
    peaks = [t for t in range(1, len(rise) - 1) if rise[t] > thr and rise[t] >= rise[t - 1] and rise[t] > rise[t + 1]]
    out = []
    for t in peaks:
        if not out or t - out[-1] >= 4:
            out.append(t)
    return np.asarray(out, int) + 1


def beat_align(rot, onsets) -> float:
    beats = motion_beats(rot)
    if len(beats) == 0 or len(onsets) == 0:
        return float("nan")
    d = np.abs(beats[:, None] - onsets[None, :]).min(1)
    return float(np.mean(np.exp(-d ** 2 / (2 * SIGMA ** 2))))


def join_ratio(x, clip) -> float:
    acc = np.linalg.norm(np.diff(x[:, :3], 2, axis=0), axis=1)  # acc[i] is centred on frame i + 1
    at = np.zeros(len(acc), bool)
    for j in range(clip, len(x) - 1, clip):
        at[j - 2:j + 1] = True  # second differences that straddle the join
    if not at.any() or at.all():
        return float("nan")
    return float(np.sqrt(np.mean(acc[at] ** 2)) / max(1e-12, np.sqrt(np.mean(acc[~at] ** 2))))


def score(takes: list[np.ndarray], real: np.ndarray, onsets, clip=None, lip=True) -> dict:
    """Metrics of generated takes (each (T, 58)) against one real video (T, 58)."""
    rs, rv = rot_std(real), vel_rms(real)
    pairs = list(itertools.combinations(range(len(takes)), 2))
    div = [np.sqrt(np.mean((takes[i][:, :3] - takes[j][:, :3]) ** 2)) / rs for i, j in pairs]
    return {
        "lip_r": pearson(takes[0][:, JAW], real[:, JAW]) if lip else float("nan"),
        "std_ratio": float(np.mean([rot_std(t) for t in takes]) / rs),
        "vel_ratio": float(np.mean([vel_rms(t) for t in takes]) / rv),
        "diversity": float(np.mean(div)) if div else float("nan"),
        "beat_align": _nanmean([beat_align(t, onsets) for t in takes]),
        "join_ratio": _nanmean([join_ratio(t, clip) for t in takes]) if clip else float("nan"),
    }


def _other_motion(videos, v, k, T) -> list[np.ndarray]:
    """k other videos' real curves (other speakers first), tiled/cropped to T frames."""
    others = [o for o in videos if o.speaker != v.speaker and o.audio is not None]
    out = []
    for i in range(k):
        o = others[i % len(others)]
        ch = o.channels.copy()
        ch[:, :6] -= ch[:, :6].mean(0)
        out.append(np.resize(ch, (T, ch.shape[1])) if len(ch) < T else ch[:T])
    return out


def evaluate(data, checkpoint=None, takes: int = 8, seed: int = 0, out_json=None, progress=True) -> dict:
    gen = Generator.load(checkpoint)
    ck = gen.ckpt
    videos = load_videos(data, None)
    dev_names = set(ck.info.get("dev_speakers") or [])
    dev = [v for v in videos if v.speaker in dev_names] if dev_names else split_speakers(videos, ck.config)[1]
    dev = [v for v in dev if v.audio is not None and v.frames >= 2 * ck.config.motion.clip_frames]
    if not dev:
        raise DatasetError(f"no dev videos with audio in {data} for dev speakers {sorted(dev_names)}")
    clip = ck.config.motion.clip_frames
    rows = {name: [] for name in ("real", "model", "one_to_one", "static", "other_clip")}
    for v in tqdm(dev, desc="evaluate", unit="video", file=os.sys.stderr, disable=not progress):
        real = v.channels.copy()
        real[:, :6] -= real[:, :6].mean(0)
        on = audio_onsets(v.loudness if v.loudness is not None else v.audio[:, ENERGY])
        feats = FeatureArray(v.audio)
        model = [t.array() for t in gen.generate(feats, takes=takes, seed=seed, diversity=1.0)]
        one = [t.array() for t in gen.generate(feats, takes=takes, seed=seed, diversity=0.0)]
        static = [np.zeros_like(real) for _ in range(takes)]
        rows["real"].append(score([real], real, on, lip=True))
        rows["model"].append(score(model, real, on, clip))
        rows["one_to_one"].append(score(one, real, on, clip))
        rows["static"].append(score(static, real, on, lip=False))
        rows["other_clip"].append(score(_other_motion(videos, v, takes, len(real)), real, on))
    table = {name: {m: _nanmean([r[m] for r in rs]) for m in METRICS} for name, rs in rows.items()}
    result = {"checkpoint": str(checkpoint or ckpt_mod.DEFAULT_CHECKPOINT), "takes": takes, "seed": seed,
              "dev_speakers": sorted({v.speaker for v in dev}), "dev_videos": [v.name for v in dev],
              "dev_seconds": round(sum(v.frames for v in dev) / ck.config.fps, 1), "table": table,
              "per_video": {name: dict(zip([v.name for v in dev], rs)) for name, rs in rows.items()}}
    if out_json:
        _write_json(result, out_json)
    return result


def _nanmean(xs):
    xs = [x for x in xs if x == x]
    return float(np.mean(xs)) if xs else float("nan")


def _write_json(obj, path):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, allow_nan=True))


def format_table(result: dict) -> str:
    head = f"{'':<12}" + "".join(f"{m:>12}" for m in METRICS)
    lines = [head]
    for name, row in result["table"].items():
        lines.append(f"{name:<12}" + "".join(f"{'-' if row[m] != row[m] else f'{row[m]:.3f}':>12}" for m in METRICS))
    return "\n".join(lines)
