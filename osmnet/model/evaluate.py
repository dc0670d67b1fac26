"""Dev- (or, once, test-) speaker evaluation of a checkpoint against baselines; one table, one JSON.

Per held-out video (real audio features from the dataset, real tracked rig-space curves as reference):
- lip_r: Pearson r between generated and tracked jawOpen.
- mouth_r: mean Pearson r over the 8 mouth shapes (networks.MOUTH8).
- std_ratio: head-rotation std (RMS over pitch/yaw/roll) of each take / the real one.
- vel_ratio: RMS frame-to-frame head-rotation velocity of each take / the real one.
- diversity: mean pairwise RMS distance between the takes' head rotations / real rotation std.
- beat_align: mean over head-motion beats (minima of angular speed) of exp(-d^2 / 2 sigma^2),
  d = frames to the nearest audio onset (rise of loudness), sigma = 3 frames (as Bailando's BAS).
- join_ratio (model rows): RMS head acceleration at clip joins / elsewhere (1 = seamless).
- head_energy_r: Pearson r(head angular speed, speech loudness), both Gaussian-smoothed (sigma 2
  frames; loudness floored 60 dB under its peak), mean over takes.
- brow_div: mean pairwise RMS distance between the takes' 5 brow curves (0 = identical brows).
- blinks_min: full blinks (eyeBlink mean rising through 0.8 inside the clip) per minute, mean over takes.
Rows: real (the tracked motion itself), the model (diversity 1), one-to-one (diversity 0, the
ablation), static head, another clip's real motion (8 other clips), and two ridge regressions
fitted on the checkpoint's *training* speakers (+-8 frames, every 2nd, of utterance-normalized
log-mel (80, sub-frames averaged) + energy/pitch/voicing; and the same + pocketsphinx phone shares
of the evaluated clip itself, which generation never has): the lip baselines.

Rest checks (`rest`): every evaluated clip with a 2 s digital-silence gap inserted in the middle
(median of each rest channel over the gap, 0.2 s in from its edges), and, with `pause_audio`,
real recordings whose natural pauses (runs of >= 0.24 s within 6 dB of the noise floor) are judged
the same way.
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
from osmnet.model.networks import MOUTH8

JAW = 6 + ARKIT_NAMES.index("jawOpen")
MOUTH = [6 + ARKIT_NAMES.index(n) for n in MOUTH8]
BROWS = [6 + i for i, n in enumerate(ARKIT_NAMES) if n.startswith("brow")]
BLINKS = [6 + ARKIT_NAMES.index(n) for n in ("eyeBlinkLeft", "eyeBlinkRight")]
REST = ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "eyeSquintLeft", "eyeSquintRight", "mouthSmileLeft",
        "mouthSmileRight", "mouthPressLeft", "mouthPressRight", "mouthClose")
REST_INDEX = [6 + ARKIT_NAMES.index(n) for n in REST]
METRICS = ("lip_r", "mouth_r", "std_ratio", "vel_ratio", "diversity", "head_energy_r", "brow_div", "blinks_min",
           "beat_align", "join_ratio")
LIP_ONLY = ("lip_r", "mouth_r")
SIGMA = 3.0
ENERGY_SIGMA = 2.0
FULL_BLINK = 0.8
GAP_S, GAP_EDGE_S = 2.0, 0.2
RIDGE_LAMBDA, RIDGE_CONTEXT, RIDGE_STEP = 1.0, 8, 2


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


def head_energy_r(x, loud) -> float:
    """r(head angular speed, loudness), both smoothed with sigma ENERGY_SIGMA frames."""
    from osmnet.audio import gaussian_smooth

    speed = np.linalg.norm(np.diff(np.asarray(x)[:, :3], axis=0), axis=1)
    e = np.maximum(loud, np.max(loud) - 60.0)
    e = (e[1:] + e[:-1]) / 2  # the level between the two frames of each step
    return pearson(gaussian_smooth(speed, ENERGY_SIGMA), gaussian_smooth(e, ENERGY_SIGMA))


def full_blinks_per_min(x, fps: float = 25.0) -> float:
    """Rises of the mean eyeBlink through FULL_BLINK per minute of the T - 1 frame steps where a rise
    can be seen. A blink already closed at frame 0 began before the clip and is not counted (counting
    it as well biased short clips upwards); real and generated curves are counted by this same rule."""
    lid = np.asarray(x)[:, BLINKS].mean(1) >= FULL_BLINK
    n = int(np.sum(lid[1:] & ~lid[:-1]))
    return n / max((len(lid) - 1) / fps / 60.0, 1e-9)


def score(takes: list[np.ndarray], real: np.ndarray, onsets, clip=None, lip=True, loud=None) -> dict:
    """Metrics of generated takes (each (T, 58)) against one real video (T, 58)."""
    rs, rv = rot_std(real), vel_rms(real)
    pairs = list(itertools.combinations(range(len(takes)), 2))
    div = [np.sqrt(np.mean((takes[i][:, :3] - takes[j][:, :3]) ** 2)) / rs for i, j in pairs]
    brow = [np.sqrt(np.mean((takes[i][:, BROWS] - takes[j][:, BROWS]) ** 2)) for i, j in pairs]
    return {
        "lip_r": pearson(takes[0][:, JAW], real[:, JAW]) if lip else float("nan"),
        "mouth_r": _nanmean([pearson(takes[0][:, c], real[:, c]) for c in MOUTH]) if lip else float("nan"),
        "head_energy_r": _nanmean([head_energy_r(t, loud) for t in takes]) if loud is not None else float("nan"),
        "brow_div": float(np.mean(brow)) if brow else float("nan"),
        "blinks_min": float(np.mean([full_blinks_per_min(t) for t in takes])),
        "std_ratio": float(np.mean([rot_std(t) for t in takes]) / rs),
        "vel_ratio": float(np.mean([vel_rms(t) for t in takes]) / rv),
        "diversity": float(np.mean(div)) if div else float("nan"),
        "beat_align": _nanmean([beat_align(t, onsets) for t in takes]),
        "join_ratio": _nanmean([join_ratio(t, clip) for t in takes]) if clip else float("nan"),
    }


def _other_motion(videos, v, k, T) -> list[np.ndarray]:
    """k other speakers' real curves (the longest clips: short GRID takes barely move), tiled/cropped to T frames."""
    others = sorted((o for o in videos if o.speaker != v.speaker and o.audio is not None), key=lambda o: -o.frames)
    out = []
    for i in range(k):
        o = others[i % len(others)]
        ch = o.channels.copy()
        ch[:, :6] -= ch[:, :6].mean(0)
        out.append(np.resize(ch, (T, ch.shape[1])) if len(ch) < T else ch[:T])
    return out


# ---- ridge baselines (the lips from a linear map of the same features) ------------------------

def ridge_design(v, phones: bool) -> np.ndarray:
    """(T, taps x dims) design of one video: utterance-normalized mel (sub-frames averaged) +
    energy/pitch/voicing (+ phone shares), at offsets -RIDGE_CONTEXT..+RIDGE_CONTEXT step RIDGE_STEP."""
    from osmnet.audio import MEL, N_MELS, SUBFRAMES, utterance_offset

    a = v.audio.astype(np.float64) - utterance_offset(v.audio)
    parts = [a[:, MEL].reshape(len(a), SUBFRAMES, N_MELS).mean(1), a[:, MEL.stop:]]
    if phones:
        from osmnet.data.phones import N_PHONES

        parts.append(v.phones if v.phones is not None else np.zeros((len(a), N_PHONES)))
    x = np.concatenate(parts, 1)
    k = RIDGE_CONTEXT
    pad = np.concatenate([np.repeat(x[:1], k, 0), x, np.repeat(x[-1:], k, 0)])
    return np.concatenate([pad[k + d:k + d + len(x)] for d in range(-k, k + 1, RIDGE_STEP)], 1)


def fit_ridge(train, phones: bool):
    """Ridge (lambda RIDGE_LAMBDA x frames, standardized inputs) from features to the 8 mouth shapes."""
    vids = [v for v in train if v.audio is not None and v.reliable and (not phones or v.phones is not None)]
    X = np.concatenate([ridge_design(v, phones) for v in vids])
    Y = np.concatenate([v.channels[:, MOUTH] for v in vids]).astype(np.float64)
    mu, sd = X.mean(0), X.std(0) + 1e-6
    Xn = (X - mu) / sd
    W = np.linalg.solve(Xn.T @ Xn + RIDGE_LAMBDA * len(Xn) * np.eye(Xn.shape[1]), Xn.T @ (Y - Y.mean(0)))
    return lambda v: ((ridge_design(v, phones) - mu) / sd) @ W + Y.mean(0)


def _with_mouth(real: np.ndarray, mouth: np.ndarray) -> np.ndarray:
    out = np.zeros_like(real)
    out[:, MOUTH] = mouth
    return out


# ---- rest checks -----------------------------------------------------------------------------

def rest_in_gap(gen, v, seed: int = 0) -> dict:
    """Median of each rest channel over a 2 s digital-silence gap inserted in the middle of v."""
    fps = gen.fps_model
    n, edge, mid = int(GAP_S * fps), int(GAP_EDGE_S * fps), len(v.audio) // 2
    silence = gen.ckpt.norms["silence"]
    feats = np.concatenate([v.audio[:mid], np.repeat(silence[None], n, 0), v.audio[mid:]])
    loud = np.concatenate([v.loudness[:mid], np.full(n, -100.0, np.float32), v.loudness[mid:]])
    take = gen.generate(FeatureArray(feats, loud), takes=1, seed=seed)[0].array()
    gap = take[mid + edge:mid + n - edge]
    return {name: float(np.median(gap[:, i])) for name, i in zip(REST, REST_INDEX)}


def natural_pauses(loud, fps: float = 25.0, min_s: float = 0.24, within_db: float = 6.0) -> np.ndarray:
    """Frames in runs of >= min_s seconds whose smoothed loudness is within `within_db` of the floor."""
    from osmnet.audio import gaussian_smooth, speech_levels

    floor, _ = speech_levels(loud)
    quiet = gaussian_smooth(loud, 1.0) < floor + within_db
    out = np.zeros(len(quiet), bool)
    t = 0
    while t < len(quiet):
        if not quiet[t]:
            t += 1
            continue
        u = t
        while u < len(quiet) and quiet[u]:
            u += 1
        if u - t >= int(round(min_s * fps)):
            out[t:u] = True
        t = u
    return out


def rest_in_pauses(gen, path, takes: int = 4, seed: int = 0) -> dict:
    """Median rest channels in the natural pauses of a real recording; jawOpen in its speech for contrast."""
    from osmnet.audio import SAMPLE_RATE, load_audio, loudness

    wave = load_audio(path)
    loud = loudness(wave, SAMPLE_RATE, gen.fps_model)
    arr = [t.array() for t in gen.generate((wave, SAMPLE_RATE), takes=takes, seed=seed)]
    T = min(len(arr[0]), len(loud))
    pause = natural_pauses(loud[:T], gen.fps_model)
    out = {"file": os.path.basename(str(path)), "pause_frames": int(pause.sum())}
    if pause.any():
        out.update({name: float(np.mean([np.median(a[:T][pause, i]) for a in arr])) for name, i in zip(REST, REST_INDEX)})
        out["jawOpen_speech"] = float(np.mean([a[:T][~pause, JAW].mean() for a in arr]))
    return out


def evaluate(data, checkpoint=None, takes: int = 8, seed: int = 0, out_json=None, progress=True,
             split: str = "dev", pause_audio=()) -> dict:
    if split not in ("dev", "test"):
        raise DatasetError(f"split must be dev or test, got {split!r}")
    gen = Generator.load(checkpoint)
    ck = gen.ckpt
    videos = load_videos(data, None)
    names = set(ck.info.get(f"{split}_speakers") or [])
    if split == "test" and not names:
        raise DatasetError("this checkpoint names no test speakers (train with train.test_speakers=...)")
    dev = [v for v in videos if v.speaker in names] if names else split_speakers(videos, ck.config)[1]
    dev = [v for v in dev if v.audio is not None and v.frames >= 2 * ck.config.motion.clip_frames]
    if not dev:
        raise DatasetError(f"no {split} videos with audio in {data} for {split} speakers {sorted(names)}")
    train_names = set(ck.info.get("train_speakers") or [])
    train = [v for v in videos if v.speaker in train_names]
    ridges = {}
    if train:
        ridges["ridge_logmel"] = fit_ridge(train, phones=False)
        if any(v.phones is not None for v in train) and all(v.phones is not None for v in dev):
            ridges["ridge_logmel_phones"] = fit_ridge(train, phones=True)
    clip = ck.config.motion.clip_frames
    rows = {name: [] for name in ("real", "model", "one_to_one", "static", "other_clip", *ridges)}
    rest = []
    for v in tqdm(dev, desc="evaluate", unit="video", file=os.sys.stderr, disable=not progress):
        real = v.channels.copy()
        real[:, :6] -= real[:, :6].mean(0)
        loud = v.loudness if v.loudness is not None else v.audio[:, ENERGY] * (10 / math.log(10))
        on = audio_onsets(loud)
        feats = FeatureArray(v.audio, loud)
        model = [t.array() for t in gen.generate(feats, takes=takes, seed=seed, diversity=1.0)]
        one = [t.array() for t in gen.generate(feats, takes=takes, seed=seed, diversity=0.0)]
        static = [np.zeros_like(real) for _ in range(takes)]
        rows["real"].append(score([real], real, on, lip=True, loud=loud))
        rows["model"].append(score(model, real, on, clip, loud=loud))
        rows["one_to_one"].append(score(one, real, on, clip, loud=loud))
        rows["static"].append(score(static, real, on, lip=False))
        rows["other_clip"].append(score(_other_motion(videos, v, takes, len(real)), real, on, loud=loud))
        for name, predict in ridges.items():
            r = score([_with_mouth(real, predict(v))], real, on)
            rows[name].append({m: (r[m] if m in LIP_ONLY else float("nan")) for m in METRICS})
        rest.append(rest_in_gap(gen, v, seed))
    table = {name: {m: _nanmean([r[m] for r in rs]) for m in METRICS} for name, rs in rows.items()}
    gap = {name: _nanmean([r[name] for r in rest]) for name in REST}
    result = {"checkpoint": str(checkpoint or ckpt_mod.DEFAULT_CHECKPOINT), "takes": takes, "seed": seed,
              "split": split, "dev_speakers": sorted({v.speaker for v in dev}), "dev_videos": [v.name for v in dev],
              "dev_seconds": round(sum(v.frames for v in dev) / ck.config.fps, 1), "table": table,
              "rest": {"gap_median": gap, "gap_max_channel": max(gap.values()),
                       "pauses": [rest_in_pauses(gen, p, min(takes, 4), seed) for p in pause_audio]},
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
    head = f"{'':<20}" + "".join(f"{m:>14}" for m in METRICS)
    lines = [head]
    for name, row in result["table"].items():
        lines.append(f"{name:<20}" + "".join(f"{'-' if row[m] != row[m] else f'{row[m]:.3f}':>14}" for m in METRICS))
    rest = result.get("rest")
    if rest:
        lines.append(f"2 s silent gaps, median over the gap: " +
                     ", ".join(f"{k} {v:.3f}" for k, v in rest["gap_median"].items()))
        for p in rest["pauses"]:
            if "jawOpen" in p:
                lines.append(f"natural pauses of {p['file']} ({p['pause_frames']} frames): jawOpen {p['jawOpen']:.3f} "
                             f"(speech {p['jawOpen_speech']:.3f}), max rest channel "
                             f"{max(p[k] for k in REST):.3f}")
    return "\n".join(lines)
