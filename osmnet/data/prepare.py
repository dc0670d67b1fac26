"""`osmnet prepare`: real talking videos -> a training dataset folder.

Per clip: MediaPipe tracking resampled to `fps` (take channels), landmarks in canonical face
space, per-frame audio features and loudness. Audio is the video's own audio stream, else a
.wav of the same stem beside the video (as for styletalk_*); a clip with neither is kept as
motion-only (no "audio" array). Audio whose length differs from the video's by more than
0.1 s fails that clip. Speech clips whose sound is clearly early or late against the tracked
mouth get their audio shifted into sync (osmnet.data.avsync; offsets under "stats"). Failed clips are printed and listed under "failed" in index.json.

Curves are stored in rig space (osmnet.data.rigspace: 0 = the face's own neutral, 1 = the full
shape; the raw MediaPipe scores are kept as "channels_raw", the calibration under "stats").
A clip whose tracked jawOpen does not follow its own landmark lip gap (Pearson r < MIN_JAW_GAP_R,
e.g. a tracker fooled by a beard or lighting) is marked `"reliable": false` and left out of the
expression loss. English speech gets phone labels (osmnet.data.phones, cached) for the training-only
phone head and the evaluation baselines; clips matching a `not_english` pattern get none.

Layout:  DATASET/index.json, DATASET/clips/<name>.npz (channels (T, 58) in ALL_CHANNELS order, rig
space; channels_raw (T, 58) as tracked; landmarks (T, 478, 3) canonical cm, loudness (T,) dB,
audio (T, FEATURE_DIM) when there is speech, phones (T, N_PHONES) when labelled),
DATASET/expression_basis.npz (fitted on the rig-space weights).

Speaker rule (speaker_of): the file stem split on "_"; the first token names the source
collection and is dropped, as is HDTF's party tag "WDA"; trailing tokens that only number a
clip ("clip", "clip2", "1", "000", "20s", "short") are dropped; the rest, lower-cased, is the
speaker: styletalk_Obama_clip1 -> "obama", mead_furious_talk1_clip2 -> "furious_talk1",
mimictalk_Trump_10s -> "trump". When nothing is left (pcavs_00002) the whole stem is its own
speaker. Lower-casing joins the same person across collections (mead_trump / mimictalk_Trump).
"""
from __future__ import annotations

import fnmatch
import json
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from blender_addon.core.files import atomic_path
from blender_addon.core.take import ALL_CHANNELS
from blender_addon.core.errors import UserInputError
from osmnet.metrics import pearson

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
FORMAT = "osmnet-dataset"
VERSION = 2  # 2: rig-space channels, channels_raw, reliability, phones
MIN_JAW_GAP_R = 0.5  # tracked jawOpen vs canonical inner-lip gap: below this the clip's mouth curves are unreliable
_CLIP_TOKEN = re.compile(r"^(clip\d*|\d+s?|short)$", re.IGNORECASE)


class DatasetError(UserInputError):
    """The inputs or the output folder of `osmnet prepare` are unusable."""


def speaker_of(stem: str) -> str:
    """Speaker id from a file stem (rule in the module docstring)."""
    tokens = stem.split("_")
    rest = tokens[1:] if len(tokens) > 1 else tokens
    if tokens[0].lower() == "hdtf" and rest and rest[0].upper() in ("WDA", "WRA", "RD"):
        rest = rest[1:]
    while rest and _CLIP_TOKEN.match(rest[-1]):
        rest = rest[:-1]
    return "_".join(rest).lower() if rest else stem.lower()


def find_videos(inputs) -> list[Path]:
    """Video files named directly or found (non-recursively) in the given folders, sorted."""
    found = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found += sorted(q for q in p.iterdir() if q.suffix.lower() in VIDEO_SUFFIXES and q.is_file())
        elif p.exists():
            found.append(p)
        else:
            raise DatasetError(f"{p} does not exist")
    stems = {}
    for p in found:
        if p.stem in stems and stems[p.stem] != p:
            raise DatasetError(f"two inputs share the clip name {p.stem!r}: {stems[p.stem]} and {p}; rename one")
        stems[p.stem] = p
    if not stems:
        raise DatasetError(f"no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) found in {list(map(str, inputs))}")
    return list(stems.values())


def audio_source(video: Path, has_stream: bool):
    """The video itself when it carries audio, else a same-stem audio file beside it, else None."""
    if has_stream:
        return video
    for suf in AUDIO_SUFFIXES:
        side = video.with_suffix(suf)
        if side.is_file():
            return side
    return None


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    return pearson(a, b, empty=None)


def clip_stats(channels: np.ndarray, loud: np.ndarray | None, lost: int) -> dict:
    """Numbers to sanity-check a clip: pose spread, expression activity, jaw-loudness link."""
    ix = {n: i for i, n in enumerate(ALL_CHANNELS)}
    stats = {
        "pose_std_deg": [round(float(x), 3) for x in np.degrees(channels[:, :3].std(0))],
        "translation_std_cm": [round(float(x), 3) for x in channels[:, 3:6].std(0) * 100],
        "jaw_open_mean": round(float(channels[:, ix["jawOpen"]].mean()), 4),
        "blink_rate_hz": None,
        "lost_frames": int(lost),
    }
    blink = (channels[:, ix["eyeBlinkLeft"]] + channels[:, ix["eyeBlinkRight"]]) / 2 > 0.5
    stats["blink_rate_hz"] = round(float(np.sum(blink[1:] & ~blink[:-1]) / max(len(blink) / 25.0, 1e-6)), 3)
    if loud is not None:
        floor = np.maximum(loud, loud.max() - 60.0)  # digital silence would dominate the correlation
        c = _corr(channels[:, ix["jawOpen"]], floor)
        stats["jaw_loudness_corr"] = None if c is None else round(c, 4)
    return stats


def _save_npz(path: Path, **arrays):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


_TRACKER = None


def _tracker(model_path):
    global _TRACKER
    if _TRACKER is None:
        from osmnet.data.track import FaceTracker

        _TRACKER = FaceTracker(model_path)
    return _TRACKER


def prepare_clip(video: Path, out_dir: Path, model_path=None, fps: float = 25.0) -> dict:
    """Track one clip and write clips/<stem>.npz; returns its index entry (raises on failure)."""
    from osmnet.audio import SAMPLE_RATE, audio_features, load_audio, loudness
    from osmnet.media import probe_video
    from osmnet.data.track import check_audio_length

    info = probe_video(video)
    src = audio_source(video, info.has_audio)
    wave = None
    if src is not None:
        wave = check_audio_length(load_audio(src), info.duration)
    tracked = _tracker(model_path).track_video(video, fps=fps)
    from osmnet.data import rigspace

    raw = tracked.take.array(ALL_CHANNELS)
    channels, calib = rigspace.calibrate_channels(raw)
    T = len(channels)
    landmarks = tracked.landmarks_canonical.astype(np.float32)
    arrays = {"channels": channels, "channels_raw": raw, "landmarks": landmarks}
    loud = None
    if wave is not None:
        feats, loud = audio_features(wave, SAMPLE_RATE, fps), loudness(wave, SAMPLE_RATE, fps)
        arrays["audio"] = _fit_length(feats, T)
        arrays["loudness"] = loud = _fit_length(loud, T)
    _save_npz(out_dir / "clips" / f"{video.stem}.npz", **arrays)
    stats = clip_stats(channels, loud, tracked.lost_frames)
    gap_r = jaw_gap_r(channels, landmarks)
    stats.update({"jaw_gap_r": None if gap_r is None else round(gap_r, 4), "calibration": rigspace.summary(calib)})
    return {"name": video.stem, "speaker": speaker_of(video.stem), "source": str(video),
            "audio_source": None if src is None else str(src), "has_audio": wave is not None,
            "frames": T, "fps": fps, "duration": round(T / fps, 4), "source_fps": info.fps,
            "reliable": gap_r is not None and gap_r >= MIN_JAW_GAP_R, "stats": stats}


def jaw_gap_r(channels: np.ndarray, landmarks: np.ndarray) -> float | None:
    """Pearson r of the tracked jawOpen with the canonical inner-lip gap (MediaPipe vertices 13/14):
    two views of the same mouth from one tracker; they disagree when the tracking failed."""
    from osmnet.data.face_mesh import lip_gap

    return _corr(channels[:, ALL_CHANNELS.index("jawOpen")], lip_gap(landmarks))


def _fit_length(a: np.ndarray, T: int) -> np.ndarray:
    """Audio frame count -> video frame count (they differ by at most ~0.1 s): trim or repeat the edge."""
    if len(a) >= T:
        return a[:T]
    return np.concatenate([a, np.repeat(a[-1:], T - len(a), axis=0)]) if len(a) else np.zeros((T,) + a.shape[1:], a.dtype)


def _work(args):
    video, out_dir, model_path, fps = args
    t = time.time()
    try:
        entry = prepare_clip(Path(video), Path(out_dir), model_path, fps)
        entry["seconds"] = round(time.time() - t, 2)
        return video, entry, None
    except Exception as e:  # reported per clip, never silently
        return video, None, f"{type(e).__name__}: {e}"


def prepare(inputs, out, workers: int = 2, model_path=None, fps: float = 25.0, progress: bool = True,
            fit_basis: bool = True, phones: str = "auto", not_english=(), phone_cache=None) -> dict:
    """Build the dataset folder; returns the index (also written as out/index.json).
    `phones`: "auto" labels English speech when pocketsphinx is installed, "on" requires it, "off"
    skips; `not_english`: file-name patterns (fnmatch, e.g. "*German*") of clips in other languages."""
    from osmnet.data import phones as phones_mod

    if phones not in ("auto", "on", "off"):
        raise DatasetError(f"phones must be auto, on or off, got {phones!r}")
    if phones == "on" and not phones_mod.available():
        raise DatasetError("phone labels need pocketsphinx: pip install pocketsphinx (or --phones off)")
    from tqdm import tqdm

    from osmnet.data.assets import face_landmarker_path

    videos = find_videos(inputs)
    model_path = str(face_landmarker_path(model_path))  # fail once, early, when there is no model
    out = Path(out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    jobs = [(str(v), str(out), model_path, fps) for v in videos]
    results, failed = {}, []
    bar = tqdm(total=len(jobs), unit="clip", desc="preparing", file=sys.stderr, disable=not progress)
    t0 = time.time()

    def record(video, entry, err):
        if err is None:
            results[video] = entry
        else:
            failed.append({"name": Path(video).stem, "source": video, "error": err})
            tqdm.write(f"osmnet prepare: skipped {Path(video).name}: {err}", file=sys.stderr)
        bar.update(1)

    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            record(*_work(job))
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            for fut in as_completed([pool.submit(_work, j) for j in jobs]):
                record(*fut.result())
    bar.close()
    clips = [results[str(v)] for v in videos if str(v) in results]
    for c in sync_clips(out, clips):
        tqdm.write(f"osmnet prepare: {c['name']}: audio out of sync by {c['stats']['av_offset']:+d} frames "
                   f"(r {c['stats']['av_lag0_r']:.2f} -> {c['stats']['av_peak_r']:.2f}); shifted", file=sys.stderr)
    if phones == "on" or (phones == "auto" and phones_mod.available()):
        n = label_phones(out, clips, fps, not_english, phone_cache, progress)
        tqdm.write(f"osmnet prepare: phone labels for {n} English speech clips", file=sys.stderr)
    elif phones == "auto":
        tqdm.write("osmnet prepare: pocketsphinx is not installed; no phone labels "
                   "(pip install pocketsphinx to get them)", file=sys.stderr)
    index = _index(out, clips, failed, fps, time.time() - t0)
    if fit_basis and clips:
        from osmnet.data.expression import fit_dataset_basis

        index["expression_basis"] = fit_dataset_basis(out, clips, task_path=model_path)
    _write_json(out / "index.json", index)
    return index


def sync_clips(out: Path, clips: list) -> list:
    """Estimate every speech clip's audio/video offset (osmnet.data.avsync), store it in its stats and
    shift the clip's audio and loudness where it is clearly out of sync; returns the shifted clips."""
    from osmnet.data.avsync import estimate_offsets, mouth_opening, shift_frames

    speech = [c for c in clips if c["has_audio"]]
    data = [dict(np.load(out / "clips" / f"{c['name']}.npz")) for c in speech]
    found = estimate_offsets([(c["speaker"], d["audio"], mouth_opening(d["channels"], d["landmarks"]))
                              for c, d in zip(speech, data)])
    shifted = []
    for c, d, est in zip(speech, data, found):
        c["stats"].update(est)
        if est["av_shift"]:
            d["audio"], d["loudness"] = shift_frames(d["audio"], est["av_shift"]), shift_frames(d["loudness"], est["av_shift"])
            _save_npz(out / "clips" / f"{c['name']}.npz", **d)
            shifted.append(c)
    return shifted


def label_phones(out: Path, clips: list, fps: float, not_english=(), cache=None, progress=True) -> int:
    """Phone labels (osmnet.data.phones) of every English speech clip, shifted like its audio, into
    its .npz; sets each clip's "phones" flag. Returns how many clips were labelled."""
    from osmnet.audio import load_audio
    from osmnet.data import phones as phones_mod
    from osmnet.data.assets import cache_dir
    from osmnet.data.avsync import shift_frames

    cache = Path(cache) if cache else cache_dir() / "phones"
    n = 0
    for c in clips:
        english = not any(fnmatch.fnmatch(c["name"], p) for p in not_english)
        c["phones"] = False
        if not c["has_audio"] or not english:
            continue
        segs = phones_mod.cached_segments(load_audio(c["audio_source"]), cache)
        path = out / "clips" / f"{c['name']}.npz"
        d = dict(np.load(path))
        lab = phones_mod.frame_labels(segs, c["frames"], fps)
        shift = c["stats"].get("av_shift", 0)
        d["phones"] = shift_frames(lab, shift) if shift else lab
        _save_npz(path, **d)
        c["phones"] = True
        n += 1
    return n


def _index(out: Path, clips: list, failed: list, fps: float, seconds: float) -> dict:
    from osmnet.audio import FEATURE_DIM

    feat_sum = feat_sq = None
    n = 0
    for c in clips:
        if c["has_audio"]:
            a = np.load(out / "clips" / f"{c['name']}.npz")["audio"].astype(np.float64)
            feat_sum = a.sum(0) if feat_sum is None else feat_sum + a.sum(0)
            feat_sq = (a ** 2).sum(0) if feat_sq is None else feat_sq + (a ** 2).sum(0)
            n += len(a)
    speakers = {}
    for c in clips:
        speakers[c["speaker"]] = speakers.get(c["speaker"], 0) + 1
    corrs = [c["stats"]["jaw_loudness_corr"] for c in clips if c["stats"].get("jaw_loudness_corr") is not None]
    index = {"format": FORMAT, "version": VERSION, "fps": fps, "feature_dim": FEATURE_DIM, "curves": "rig",
             "channels": list(ALL_CHANNELS), "clips": clips, "failed": failed, "speakers": speakers,
             "summary": {"clips": len(clips), "failed": len(failed),
                         "seconds_total": round(sum(c["duration"] for c in clips), 2),
                         "seconds_with_audio": round(sum(c["duration"] for c in clips if c["has_audio"]), 2),
                         "jaw_loudness_corr_mean": round(float(np.mean(corrs)), 4) if corrs else None,
                         "unreliable": sorted(c["name"] for c in clips if not c.get("reliable", True)),
                         "prepare_seconds": round(seconds, 1)}}
    if n:
        mean = feat_sum / n
        index["audio_mean"] = [round(float(x), 5) for x in mean]
        index["audio_std"] = [round(float(x), 5) for x in np.sqrt(np.maximum(feat_sq / n - mean ** 2, 1e-12))]
    return index


def _write_json(path: Path, obj):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1))
