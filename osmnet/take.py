"""The take: per-frame head pose and ARKit blendshape curves at a fixed frame rate.

Tracked truth and generated takes share this one format, so evaluation, the renderer,
the backend and the Blender add-on read both the same way. See docs/take-format.md.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from osmnet.files import atomic_path

FORMAT = "osmnet-take"
VERSION = 1

HEAD_ROTATION = ("headPitch", "headYaw", "headRoll")  # radians
HEAD_TRANSLATION = ("headX", "headY", "headZ")  # metres, relative to the clip's mean
HEAD_CHANNELS = HEAD_ROTATION + HEAD_TRANSLATION

# Apple ARKit ARFaceAnchor.BlendShapeLocation names, in MediaPipe's (alphabetical) order.
ARKIT_NAMES = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
    "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
assert len(ARKIT_NAMES) == 52

ALL_CHANNELS = HEAD_CHANNELS + ARKIT_NAMES


class TakeError(ValueError):
    """A take file or take object that breaks the format; the message says what to fix."""


@dataclass
class Take:
    """Curves of one performance. `channels` maps a channel name to a float32 array (frames,)."""

    fps: float
    channels: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise TakeError(f"fps must be a positive number, got {self.fps!r}")
        self.fps = float(self.fps)
        missing = [n for n in ALL_CHANNELS if n not in self.channels]
        if missing:
            raise TakeError(f"take is missing channels {missing[:5]}{'...' if len(missing) > 5 else ''}; "
                            "every take needs the 6 head channels and the 52 ARKit names")
        chans = {}
        lengths = set()
        for name, values in self.channels.items():
            arr = np.asarray(values, dtype=np.float32)
            if arr.ndim != 1:
                raise TakeError(f"channel {name!r} must be a 1-D array, got shape {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise TakeError(f"channel {name!r} has NaN or infinite values")
            chans[name] = arr
            lengths.add(arr.shape[0])
        if len(lengths) != 1:
            raise TakeError(f"channels have different lengths {sorted(lengths)}; all must be equal")
        self.channels = chans

    @property
    def frames(self) -> int:
        return next(iter(self.channels.values())).shape[0]

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    def array(self, names=ALL_CHANNELS) -> np.ndarray:
        """Channels stacked as (frames, len(names)) float32."""
        return np.stack([self.channels[n] for n in names], axis=1)

    @classmethod
    def from_array(cls, values: np.ndarray, fps: float, names=ALL_CHANNELS, meta=None) -> "Take":
        values = np.asarray(values, dtype=np.float32)
        if values.ndim != 2 or values.shape[1] != len(names):
            raise TakeError(f"expected an array of shape (frames, {len(names)}), got {values.shape}")
        return cls(fps, {n: values[:, i] for i, n in enumerate(names)}, dict(meta or {}))

    def resample(self, fps: float) -> "Take":
        """Linear resampling in time; the duration is kept (frames = round(duration * fps))."""
        if fps == self.fps:
            return Take(self.fps, dict(self.channels), dict(self.meta))
        n_out = max(1, int(round(self.duration * fps)))
        t_in = np.arange(self.frames) / self.fps
        t_out = np.arange(n_out) / fps
        chans = {k: np.interp(t_out, t_in, v).astype(np.float32) for k, v in self.channels.items()}
        return Take(fps, chans, dict(self.meta))

    def slice(self, start: int, end: int) -> "Take":
        return Take(self.fps, {k: v[start:end] for k, v in self.channels.items()}, dict(self.meta))

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "fps": self.fps,
            "frames": self.frames,
            "meta": self.meta,
            "channels": {k: [round(float(x), 6) for x in v] for k, v in self.channels.items()},
        }

    @classmethod
    def from_dict(cls, d: dict, where: str = "take") -> "Take":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise TakeError(f"{where} is not an osmnet take (expected \"format\": \"{FORMAT}\")")
        if d.get("version") != VERSION:
            raise TakeError(f"{where} has take format version {d.get('version')!r}; this osmnet reads "
                            f"version {VERSION}: upgrade osmnet or re-export the take")
        chans = d.get("channels")
        if not isinstance(chans, dict):
            raise TakeError(f"{where} has no \"channels\" object")
        take = cls(d.get("fps"), {k: np.asarray(v, dtype=np.float32) for k, v in chans.items()},
                   dict(d.get("meta") or {}))
        if d.get("frames") != take.frames:
            raise TakeError(f"{where} says frames={d.get('frames')} but its channels have {take.frames}")
        return take

    def save(self, path) -> Path:
        """Write atomically: a reader never sees a half-written take."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), separators=(",", ":")))
        return path

    @classmethod
    def load(cls, path) -> "Take":
        path = Path(path)
        if not path.is_file():
            raise TakeError(f"take file {path} does not exist")
        try:
            d = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TakeError(f"{path} is not valid JSON ({e}); is it a take file?") from None
        return cls.from_dict(d, where=str(path))


def zero_take(frames: int, fps: float = 25.0, meta=None) -> Take:
    """A take with no motion and a neutral face (useful as a baseline and for tests)."""
    return Take.from_array(np.zeros((frames, len(ALL_CHANNELS)), np.float32), fps, meta=meta)
