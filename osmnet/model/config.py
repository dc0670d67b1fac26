"""The one typed configuration of the model and its training, saved inside every checkpoint.

Defaults live here and nowhere else. `Config.from_dict` rebuilds a config from a checkpoint or
from user overrides and refuses unknown keys, so a typo never silently becomes a default.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from blender_addon.core.errors import UserInputError


class ConfigError(UserInputError):
    """A configuration value or key that cannot be used; the message names it."""


@dataclass
class AudioConfig:
    """Audio encoder: per-frame features -> hidden, each frame seeing a window of audio."""

    feature_dim: int = 0  # set from the dataset (osmnet.audio.FEATURE_DIM)
    hidden: int = 64
    # Residual kernel-3 convolutions; each adds `d` frames of context on each side, so the
    # window is +-sum(dilations) frames (15 -> +-0.6 s at 25 fps).
    dilations: tuple = (1, 2, 4, 8)
    # Measured on dev (seeds 0/1/2): 0.5 gives jawOpen r 0.420/0.430/0.424 against 0.405/0.413 at 0.3
    # (4-fold speaker cross-validation of the lip net alone: 0.495 vs 0.462-0.475).
    dropout: float = 0.5
    utterance_norm: bool = False  # subtract each recording's mean feature (see osmnet.audio.utterance_offset)

    @property
    def context(self) -> int:
        return int(sum(self.dilations))


@dataclass
class ExpressionConfig:
    """Expression branch: hidden -> 52 ARKit weights, trained through the expression basis."""

    landmark_weight: float = 1.0  # canonical-landmark reconstruction (cm^2)
    mouth_weight: float = 4.0  # extra weight on mouth vertices (found from the basis itself)
    weight_loss: float = 1.0  # direct L1 to the tracked weights (keeps ARKit scale)
    eye_weight: float = 0.1  # blinks and gaze are sampled, not predicted from audio
    lip_corr_weight: float = 1.5  # 1 - Pearson r per window on the lip channels: follow the motion, not the mean
    # Which channels the correlation term covers: "lip4" (jawOpen, mouthClose, mouthFunnel, mouthPucker)
    # or "mouth8" (+ mouthLowerDown L/R, mouthStretch L/R; dev mean r over the 8: 0.19 -> 0.28).
    lip_channels: str = "mouth8"
    drop_unreliable: bool = True  # leave clips whose mouth tracking failed (prepare's "reliable") out
    # Auxiliary phone head (training only, dropped from the saved model): cross-entropy weight on
    # pocketsphinx labels. Measured: no dev gain at 0.5 (docs/model.md), so off.
    phone_weight: float = 0.0
    # Auxiliary lip-gap head (training only): 1 - Pearson r per window with the canonical inner-lip
    # gap (landmarks 13/14), a mouth-opening signal independent of the blendshape scores.
    gap_weight: float = 0.0
    rest_gate: bool = True  # mouth, cheeks and squint go to rest where the speech activity is 0
    variety: float = 1.0  # per-take brows, squint, smile, eye widening (eyes.FaceSampler); 0 = identical


@dataclass
class MotionConfig:
    """Head-motion branch: a motion space spanned by K learned clip-level bases."""

    clip_frames: int = 32  # one clip = 1.28 s at 25 fps
    bases: int = 12  # K: coefficients of a point in the motion space
    feature: int = 48  # dimension of each basis vector (a clip-level motion feature)
    hidden: int = 64
    prev_frames: int = 2  # end of the previous clip the decoder is conditioned on
    kl_weight: float = 0.02  # KL(encoder posterior || audio-mapped range)
    velocity_weight: float = 2.0
    audio_dropout: float = 0.3  # decoder also trains without audio (motion-only clips)
    min_std: float = 0.05  # floor of the learned range, in coefficient units
    join_frames: int = 6  # frames over which a clip's start is corrected onto the previous end
    # Head speed follows the speech energy: velocity x (energy_base + energy_gain x energy), normalized
    # to an RMS of the checkpoint's calibrated head_speed (1 = the decoder's RMS velocity),
    # re-integrated with a pull (energy_leak per frame) back to the decoded pose so the path never
    # drifts. 0 gain and head_speed 1 = the decoder's own motion.
    energy_base: float = 0.8
    energy_gain: float = 0.3  # with the calibrated head_speed: r(head speed, energy) at the real level
    energy_leak: float = 0.06


@dataclass
class TrainConfig:
    epochs: int = 100  # measured: dev lip r peaks around 70-100 epochs, 200 is worse
    batch: int = 16
    window: int = 64  # frames per expression training window (plus audio context)
    lr: float = 2e-3
    ema: float = 0.99  # per-step decay of the weight average that is evaluated and saved (0 = off)
    weight_decay: float = 0.01
    seed: int = 0
    threads: int = 1  # the machine is shared; 2 OpenMP threads under contention were ~10x slower
    dev_every: int = 5  # epochs between dev evaluations (the best one is kept, see `select`)
    select: str = "expression"  # dev loss that picks the kept weights: "expression" or "total"
    # Speakers held out for dev. Empty -> a stable hash picks about dev_fraction of them.
    dev_speakers: tuple = ()
    test_speakers: tuple = ()  # never trained on, never used to choose anything; reported once
    dev_fraction: float = 0.2
    use_motion_only: bool = True
    freq_mask: int = 20  # up to this many adjacent mel bands hidden per window (0 = off)
    gain_augment: float = 2.0  # +- natural-log units of random recording level (about +-13 dB)


@dataclass
class Config:
    fps: float = 25.0
    audio: AudioConfig = field(default_factory=AudioConfig)
    expression: ExpressionConfig = field(default_factory=ExpressionConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Config":
        return _build(cls, d or {}, "config")

    def override(self, pairs: list[str]) -> "Config":
        """Apply `section.key=value` strings (e.g. `motion.bases=16`) and return a new config."""
        d = self.to_dict()
        for pair in pairs:
            if "=" not in pair:
                raise ConfigError(f"override {pair!r} must look like section.key=value")
            key, value = pair.split("=", 1)
            parts = key.strip().split(".")
            node = d
            for p in parts[:-1]:
                if not isinstance(node.get(p), dict):
                    raise ConfigError(f"unknown config section {p!r} in {pair!r}")
                node = node[p]
            if parts[-1] not in node:
                raise ConfigError(f"unknown config key {key!r}; known: {sorted(node)}")
            node[parts[-1]] = _parse_like(value, node[parts[-1]], key)
        return Config.from_dict(d)


def _parse_like(text: str, current, key: str):
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, (tuple, list)):
            return tuple(type(current[0])(x) if current else x for x in text.split(",") if x)
    except ValueError:
        raise ConfigError(f"{key}={text!r} is not a valid {type(current).__name__}") from None
    return text


def _build(cls, d: dict, where: str):
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(d).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ConfigError(f"unknown keys {unknown} in {where}; known: {sorted(known)}")
    kwargs = {}
    for name, f in known.items():
        if name not in d:
            continue
        value = d[name]
        default = getattr(cls(), name)
        if is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{where}.{name}")
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)
