"""A small synthetic dataset in the `osmnet prepare` layout, for model/train/sample tests.

Speech-like audio (voiced bursts with pauses) drives jawOpen; head pose is a smooth random walk
nudged by loudness; landmarks are the expression basis applied to the weights plus a per-clip
face-shape offset. Learnable, tiny, and made in well under a second.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from osmnet.audio import audio_features, loudness
from osmnet.data.expression import ExpressionBasis
from blender_addon.core.take import ALL_CHANNELS, ARKIT_NAMES
from osmnet.data.phones import N_PHONES, PHONES

SR, FPS = 16000, 25.0


def speech_like(seconds: float, rng) -> np.ndarray:
    n = int(seconds * SR)
    t = np.arange(n) / SR
    env = np.zeros(n, np.float32)
    pos = 0
    while pos < n:
        on = int(rng.uniform(0.1, 0.35) * SR)
        off = int(rng.uniform(0.05, 0.3) * SR)
        env[pos:pos + on] = np.sin(np.linspace(0, np.pi, min(on, n - pos)))
        pos += on + off
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (0.3 * env * voice + 0.003 * rng.standard_normal(n)).astype(np.float32)


def make_basis(rng) -> ExpressionBasis:
    neutral = rng.normal(0, 5, (468, 3)).astype(np.float32)
    deltas = rng.normal(0, 0.3, (52, 468, 3)).astype(np.float32)
    deltas[ARKIT_NAMES.index("jawOpen"), :60, 1] -= 2.0  # a "mouth" region the jaw moves
    return ExpressionBasis(neutral, deltas)


def make_dataset(root, speakers: int = 5, clips_per_speaker: int = 2, seconds: float = 6.0, seed: int = 0,
                 motion_only: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "clips").mkdir(parents=True, exist_ok=True)
    basis = make_basis(rng)
    basis.save(root / "expression_basis.npz")
    index = []
    jaw = 6 + ARKIT_NAMES.index("jawOpen")
    blink = [6 + ARKIT_NAMES.index(n) for n in ("eyeBlinkLeft", "eyeBlinkRight")]
    items = [(f"spk{s}", True) for s in range(speakers) for _ in range(clips_per_speaker)]
    items += [(f"mo{m}", False) for m in range(motion_only)]
    for i, (spk, has_audio) in enumerate(items):
        wave = speech_like(seconds, rng)
        loud = loudness(wave, SR, FPS)
        T = len(loud)
        ch = np.zeros((T, len(ALL_CHANNELS)), np.float32)
        level = np.clip((loud + 45) / 30, 0, 1)
        ch[:, jaw] = np.clip(0.05 + 0.5 * level + 0.02 * rng.standard_normal(T), 0, 1)
        ch[:, 6:] += np.clip(0.05 * rng.random(52), 0, 1)
        for p in range(int(rng.integers(10, 40)), T - 5, int(rng.integers(60, 90))):
            ch[p - 1:p + 2, blink] += np.array([[0.3], [0.7], [0.3]])
        walk = np.cumsum(rng.normal(0, 0.004, (T, 6)), 0)
        walk = np.apply_along_axis(lambda x: np.convolve(x, np.ones(9) / 9, "same"), 0, walk)
        ch[:, :6] = walk + 0.02 * level[:, None] * np.array([1, 0.5, 0.2, 0, 0, 0])
        ch[:, 3:6] *= 0.05
        lm = basis.apply(ch[:, 6:]) + rng.normal(0, 0.5, (1, 468, 3)).astype(np.float32)
        lm = np.concatenate([lm, np.zeros((T, 10, 3), np.float32)], 1)
        name = f"{spk}_{i}"
        arrays = {"channels": ch, "landmarks": lm.astype(np.float32), "loudness": loud}
        if has_audio:
            arrays["audio"] = audio_features(wave, SR, FPS)
            # phone labels as prepare writes them: "SIL" in the pauses, a vowel while sounding
            arrays["phones"] = np.zeros((T, N_PHONES), np.float32)
            arrays["phones"][np.arange(T), np.where(level > 0.3, PHONES.index("AA"), PHONES.index("SIL"))] = 1.0
            import soundfile as sf
            sf.write(root / "clips" / f"{name}.wav", wave, SR)
        np.savez(root / "clips" / f"{name}.npz", **arrays)
        index.append({"name": name, "speaker": spk, "duration": T / FPS, "frames": T, "fps": FPS,
                      "has_audio": has_audio, "stats": {}})
    (root / "index.json").write_text(json.dumps({"format": "osmnet-dataset", "version": 2, "curves": "rig",
                                                 "clips": index}))
    return root


def tiny_config():
    """A model small enough to train in a couple of seconds on one core."""
    from osmnet.model.config import Config

    cfg = Config()
    cfg.audio.hidden, cfg.audio.dilations, cfg.audio.dropout = 24, (1, 2, 1), 0.3  # 3 epochs: lighter dropout
    cfg.motion.hidden, cfg.motion.bases, cfg.motion.feature, cfg.motion.clip_frames = 24, 4, 8, 16
    cfg.train.epochs, cfg.train.batch, cfg.train.window, cfg.train.dev_every, cfg.train.threads = 3, 4, 32, 1, 1
    return cfg


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("synth_data"), speakers=4, seconds=5.0)


@pytest.fixture(scope="session")
def tiny_checkpoint(synth_data, tmp_path_factory):
    from osmnet.model.train import train

    out = tmp_path_factory.mktemp("tiny_ckpt") / "tiny.pt"
    train(synth_data, out, tiny_config(), log=lambda *a: None)
    return out
