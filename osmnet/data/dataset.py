"""A prepared dataset (`osmnet prepare`) -> normalized per-video arrays, a speaker split and
training windows for the two branches.

Split: all clips of a speaker land on one side. `train.test_speakers` are held out of training
and of every choice (reported once, at the end); dev speakers are `train.dev_speakers` when given,
otherwise those whose CRC32(name) falls under `train.dev_fraction` (stable across machines and
runs), chosen among speakers with audio so dev metrics always exist.
"""
from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from osmnet.model.config import Config
from blender_addon.core.take import ARKIT_NAMES, HEAD_CHANNELS
from osmnet.data.prepare import DatasetError  # noqa: F401  (one class for every dataset problem)
from osmnet.audio import MEL, N_MELS, SUBFRAMES
from osmnet.audio import utterance_offset
from osmnet.data.phones import N_PHONES
from osmnet.data.face_mesh import lip_gap

N_HEAD = len(HEAD_CHANNELS)
LEVEL_DIMS = 321  # features that move with the recording level: 4 x 80 log-mel + log-energy


@dataclass
class Video:
    name: str
    speaker: str
    channels: np.ndarray  # (T, 58) rig space, ALL_CHANNELS order
    audio: np.ndarray | None  # (T, D) raw features, None for motion-only clips
    landmarks: np.ndarray | None  # (T, 468, 3) canonical, identity offset removed
    loudness: np.ndarray | None
    phones: np.ndarray | None = None  # (T, N_PHONES) phone shares (English speech), else None
    reliable: bool = True  # the mouth tracking agrees with the landmarks (prepare's jaw_gap_r)

    @property
    def frames(self) -> int:
        return len(self.channels)

    @property
    def pose(self) -> np.ndarray:
        """Head pose relative to this video's mean (rotation and translation)."""
        p = self.channels[:, :N_HEAD]
        return p - p.mean(0)


def read_index(root: Path) -> list[dict]:
    index = root / "index.json"
    if not index.is_file():
        raise DatasetError(f"{root} has no index.json: build a dataset with `osmnet prepare VIDEOS... --out {root}`")
    data = json.loads(index.read_text())
    clips = data["clips"] if isinstance(data, dict) else data
    if not clips:
        raise DatasetError(f"{index} lists no clips")
    if isinstance(data, dict) and data.get("curves") != "rig":
        raise DatasetError(f"{root} holds raw MediaPipe curves (dataset version {data.get('version')}); "
                           f"rebuild it with this osmnet's `osmnet prepare` (rig-space curves)")
    return clips


def load_videos(root, basis=None) -> list[Video]:
    """Every clip of the dataset (landmarks only with a basis); landmarks get their per-video identity offset removed: the part of
    the real face that the tracked weights through the basis do not explain (face shape)."""
    root = Path(root)
    videos = []
    if basis is not None:
        flat = basis.deltas.reshape(len(ARKIT_NAMES), -1).astype(np.float32)
        neutral = basis.neutral.reshape(-1).astype(np.float32)
    for c in read_index(root):
        path = root / "clips" / f"{c['name']}.npz"
        if not path.is_file():
            raise DatasetError(f"index.json lists {c['name']} but {path} is missing; re-run `osmnet prepare`")
        z = np.load(path)
        ch = z["channels"].astype(np.float32)
        audio = z["audio"].astype(np.float32) if "audio" in z.files and c.get("has_audio", True) else None
        lm = None
        if basis is not None and "landmarks" in z.files:
            lm = z["landmarks"][:, :468].reshape(len(ch), -1).astype(np.float32)
            recon = neutral + ch[:, N_HEAD:] @ flat
            lm = (lm - (lm - recon).mean(0)).reshape(len(ch), 468, 3)
        loud = z["loudness"].astype(np.float32) if "loudness" in z.files else None
        phones = z["phones"].astype(np.float32) if "phones" in z.files and audio is not None else None
        videos.append(Video(c["name"], str(c.get("speaker", c["name"])), ch, audio, lm, loud, phones,
                            bool(c.get("reliable", True))))
    return videos


def test_videos(videos: list[Video], cfg: Config) -> list[Video]:
    """The clips of `train.test_speakers` (never trained on, never used to choose anything)."""
    unknown = set(cfg.train.test_speakers) - {v.speaker for v in videos if v.audio is not None}
    if unknown:
        raise DatasetError(f"test speakers {sorted(unknown)} have no audio clips in the dataset")
    return [v for v in videos if v.speaker in set(cfg.train.test_speakers)]


def split_speakers(videos: list[Video], cfg: Config) -> tuple[list[Video], list[Video]]:
    """(train, dev); the test speakers are in neither."""
    test = set(cfg.train.test_speakers)
    if test & set(cfg.train.dev_speakers):
        raise DatasetError(f"speakers {sorted(test & set(cfg.train.dev_speakers))} are both dev and test")
    test_videos(videos, cfg)
    videos = [v for v in videos if v.speaker not in test]
    with_audio = sorted({v.speaker for v in videos if v.audio is not None})
    if len(with_audio) < 2:
        raise DatasetError(f"the dataset has audio from {len(with_audio)} speaker(s); a speaker split needs 2 or more")
    if cfg.train.dev_speakers:
        dev = set(cfg.train.dev_speakers)
        unknown = dev - set(with_audio)
        if unknown:
            raise DatasetError(f"dev speakers {sorted(unknown)} have no audio clips in the dataset; known: {with_audio}")
    else:
        dev = {s for s in with_audio if zlib.crc32(s.encode()) % 1000 < cfg.train.dev_fraction * 1000}
        if not dev:
            dev = {min(with_audio, key=lambda s: zlib.crc32(s.encode()))}
        if dev == set(with_audio):
            dev.discard(max(with_audio, key=lambda s: zlib.crc32(s.encode())))
    return [v for v in videos if v.speaker not in dev], [v for v in videos if v.speaker in dev]


def compute_norms(train: list[Video], silence_features: np.ndarray, cfg: Config) -> dict:
    feats = np.concatenate([v.audio - utterance_offset(v.audio, cfg.audio.utterance_norm) for v in train if v.audio is not None])
    mean, std = feats.mean(0), feats.std(0) + 1e-5
    pose = np.concatenate([v.pose for v in train])
    offsets = [utterance_offset(v.audio, cfg.audio.utterance_norm) for v in train if v.audio is not None]
    return {"feat_mean": mean, "feat_std": std, "silence": silence_features.astype(np.float32),
            "pose_std": pose.std(0) + 1e-6, "offset_default": np.mean(offsets, 0).astype(np.float32)}


class Windows:
    """Normalized arrays and seeded random windows; audio is padded with silence features."""

    def __init__(self, videos: list[Video], norms: dict, cfg: Config):
        self.cfg, self.ctx = cfg, cfg.audio.context
        fm, fs = norms["feat_mean"], norms["feat_std"]
        self.pad = self.ctx + cfg.motion.clip_frames
        self.videos = videos
        self.feats = []
        for v in videos:
            if v.audio is None:
                self.feats.append(None)
                continue
            off = utterance_offset(v.audio, cfg.audio.utterance_norm, norms["offset_default"])
            pad = np.repeat(((norms["silence"] - off - fm) / fs)[None], self.pad, 0)
            self.feats.append(np.concatenate([pad, (v.audio - off - fm) / fs, pad]).astype(np.float32))
        self.pose = [(v.pose / norms["pose_std"]).astype(np.float32) for v in videos]
        level = np.zeros(cfg.audio.feature_dim, np.float32)
        level[:min(cfg.audio.feature_dim, LEVEL_DIMS)] = 1.0  # log-mel bands and log-energy (osmnet.audio)
        self.level_dir = (level / fs).astype(np.float32)
        # Clips whose mouth tracking is unreliable teach the lips noise: out of the expression loss
        # (their audio and head motion still train the motion branch).
        self.expr_ids = [i for i, v in enumerate(videos) if v.audio is not None and v.landmarks is not None
                         and v.frames >= cfg.train.window and (v.reliable or not cfg.expression.drop_unreliable)]
        # The canonical inner-lip gap: the lip-gap head's target.
        self.gaps = [lip_gap(v.landmarks).astype(np.float32) if v.landmarks is not None else None for v in videos]
        self.motion_ids = [i for i, v in enumerate(videos) if v.frames >= cfg.motion.clip_frames
                           and (v.audio is not None or cfg.train.use_motion_only)]

    def set_landmark_terms(self, basis, vertex_w: np.ndarray):
        """Precompute the weighted landmark error as a quadratic form in the 52 weights:
        sum_v w_v |neutral_v + (x D)_v - y_v|^2 = x G x' - 2 x.b + c, with G = D W D' (52 x 52),
        b = D W (y - neutral), c = |y - neutral|_W^2 -- exact, and far cheaper than meshes per step."""
        d = basis.deltas.reshape(len(ARKIT_NAMES), -1, 3).astype(np.float64)
        wd = d * vertex_w[None, :, None]
        self.gram = np.einsum("kvc,jvc->kj", wd, d).astype(np.float32)
        self.lm_b, self.lm_c = [], []
        for v in self.videos:
            if v.landmarks is None:
                self.lm_b.append(None)
                self.lm_c.append(None)
                continue
            r = v.landmarks.astype(np.float64) - basis.neutral[None]
            self.lm_b.append(np.einsum("kvc,tvc->tk", wd, r).astype(np.float32))
            self.lm_c.append(np.einsum("v,tvc->t", vertex_w, r * r).astype(np.float32))

    def _audio(self, i: int, start: int, n: int) -> np.ndarray:
        f = self.feats[i]
        if f is None:
            return np.zeros((n + 2 * self.ctx, self.cfg.audio.feature_dim), np.float32)
        a = self.pad + start - self.ctx
        return f[a:a + n + 2 * self.ctx]

    def _gain(self, feats, rng):
        """Random recording level per window (log-mel and log-energy shift together): the model
        should hear speech, not the microphone gain of one clip."""
        if rng is None:
            return feats
        g = 0.0 if self.cfg.audio.utterance_norm else self.cfg.train.gain_augment  # a constant level is removed anyway
        if g > 0:
            feats = feats + rng.uniform(-g, g, (len(feats), 1, 1)).astype(np.float32) * self.level_dir
        bands = self.cfg.train.freq_mask
        if bands > 0:  # SpecAugment-style: hide a random run of mel bands (in all 4 sub-frames)
            mel = feats[:, :, MEL].reshape(len(feats), feats.shape[1], SUBFRAMES, N_MELS)
            for b in range(len(feats)):
                width = int(rng.integers(0, bands + 1))
                lo = int(rng.integers(0, N_MELS - width + 1))
                mel[b, :, :, lo:lo + width] = 0.0
            feats[:, :, MEL] = mel.reshape(len(feats), feats.shape[1], SUBFRAMES * N_MELS)
        return feats

    def _pick(self, ids, length, rng):
        w = np.array([self.videos[i].frames - length + 1 for i in ids], float)
        i = ids[rng.choice(len(ids), p=w / w.sum())]
        return i, int(rng.integers(0, self.videos[i].frames - length + 1))

    def expression_batch(self, rng, batch: int, starts=None):
        w = self.cfg.train.window
        picks = starts if starts is not None else [self._pick(self.expr_ids, w, rng) for _ in range(batch)]
        feats = self._gain(np.stack([self._audio(i, s, w) for i, s in picks]), rng)
        weights = np.stack([self.videos[i].channels[s:s + w, N_HEAD:] for i, s in picks])
        lm_b = np.stack([self.lm_b[i][s:s + w] for i, s in picks])
        lm_c = np.stack([self.lm_c[i][s:s + w] for i, s in picks])
        none = np.zeros((w, N_PHONES), np.float32)  # no label: masked out of the phone loss
        phones = np.stack([self.videos[i].phones[s:s + w] if self.videos[i].phones is not None else none
                           for i, s in picks])
        gap = np.stack([self.gaps[i][s:s + w] for i, s in picks])
        return feats, weights, lm_b, lm_c, phones, gap

    def motion_batch(self, rng, batch: int, starts=None):
        L, P = self.cfg.motion.clip_frames, self.cfg.motion.prev_frames
        picks = starts if starts is not None else [self._pick(self.motion_ids, L, rng) for _ in range(batch)]
        if starts is None:  # some clips start a take: no previous clip to join
            picks = [(i, 0) if rng.random() < 0.15 else (i, s) for i, s in picks]
        feats = self._gain(np.stack([self._audio(i, s, L) for i, s in picks]), rng)
        clip = np.stack([self.pose[i][s:s + L] for i, s in picks])
        prev = np.stack([self.pose[i][s - P:s] if s >= P else np.zeros((P, N_HEAD), np.float32) for i, s in picks])
        has_prev = np.array([float(s >= P) for _, s in picks], np.float32)
        has_audio = np.array([float(self.feats[i] is not None) for i, _ in picks], np.float32)
        return feats, clip, prev, has_prev, has_audio

    def fixed_starts(self, ids, length, stride):
        """Deterministic windows for dev losses: every `stride` frames of every video."""
        return [(i, s) for i in ids for s in range(0, self.videos[i].frames - length + 1, stride)]
