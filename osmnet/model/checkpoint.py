"""The one checkpoint save/load, used by training, sampling and the backend.

A checkpoint holds a format version, the resolved config, the weights, the normalization the
model was trained with (audio feature mean/std, silence features, head-pose std), the eye
statistics (blink rate, blink shape, gaze drift), sampling calibration and free-form training
info (command, metrics).
It loads with `weights_only=True`: no pickled code, no network.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from osmnet.model.config import Config, ConfigError
from blender_addon.core.files import atomic_path
from blender_addon.core.errors import UserInputError

FORMAT = "osmnet-checkpoint"
VERSION = 1
DEFAULT_DIR = Path(__file__).resolve().parents[1] / "default"  # osmnet/default/
DEFAULT_CHECKPOINT = DEFAULT_DIR / "osmnet.pt"
NORM_KEYS = ("feat_mean", "feat_std", "silence", "pose_std", "offset_default")


class CheckpointError(UserInputError):
    """A checkpoint that is missing, unreadable or of another format version."""


@dataclass
class Checkpoint:
    config: Config
    state: dict  # parameter name -> tensor
    norms: dict  # NORM_KEYS -> float32 arrays
    eyes: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    sampling: dict = field(default_factory=dict)  # e.g. range_scale, calibrated after training

    def build_model(self):
        from osmnet.model.networks import OSMNet

        model = OSMNet(self.config)
        missing, unexpected = model.load_state_dict(self.state, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"checkpoint weights do not fit this osmnet's model (missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]}); retrain with this version")
        return model.eval()


def save(ckpt: Checkpoint, path) -> Path:
    """Write atomically (temp file + rename): a reader never sees a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": FORMAT,
        "version": VERSION,
        "config": ckpt.config.to_dict(),
        "state": {k: v.detach().cpu().float().clone() for k, v in ckpt.state.items()},
        "norms": {k: torch.as_tensor(np.asarray(ckpt.norms[k], np.float32)) for k in NORM_KEYS},
        "eyes": ckpt.eyes,
        "info": ckpt.info,
        "sampling": ckpt.sampling,
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return path


def load(path=None) -> Checkpoint:
    """Load `path`, or the shipped default checkpoint when `path` is None."""
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if not path.is_file():
        hint = ("the shipped default is missing from this install; reinstall osmnet or pass --checkpoint"
                if path == DEFAULT_CHECKPOINT else "check the path, or train one with `osmnet train`")
        raise CheckpointError(f"checkpoint {path} does not exist: {hint}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for foreign / truncated files
        raise CheckpointError(f"{path} is not a readable osmnet checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an osmnet checkpoint (no \"format\": \"{FORMAT}\")")
    if blob.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {blob.get('version')!r}; this osmnet "
                              f"reads version {VERSION}: retrain or use a matching osmnet")
    try:
        config = Config.from_dict(blob["config"])
    except ConfigError as e:
        raise CheckpointError(f"{path} has a config this osmnet does not understand: {e}") from None
    norms = {k: blob["norms"][k].numpy().astype(np.float32) for k in NORM_KEYS}
    return Checkpoint(config, blob["state"], norms, blob.get("eyes", {}), blob.get("info", {}),
                      blob.get("sampling", {}))
