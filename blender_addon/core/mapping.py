"""Which take channel drives what on the artist's rig, and how strongly.

A Mapping is a list of routes (channel -> target, many-to-one and one-to-many both allowed: the
routes into one target are summed), per-channel settings (enable, gain, offset), a global
strength, temporal smoothing, an optional neutral pose subtracted first, and the head-bone
binding. Pure Python + numpy, so it is tested without Blender; the two functions at the end that
look at Blender objects only read names from them.

Public API
    Target(kind, owner, name, prop="", index=0)   kind: 'shape_key' | 'custom_prop' | 'bone'
        .id_type ('KEY' | 'OBJECT'), .data_path
    Route(channel, target, weight=1.0) ; ChannelSetting(enabled, gain, offset)
    HeadBinding(armature, bone, pitch="+X", yaw="+Y", roll="+Z", use_rotation, use_location, ...)
    Mapping(routes, channels, head, strength, smoothing, neutral)
        .setting(ch) .channel_curves(values, fps) .target_curves(values, fps)
        .to_dict() / Mapping.from_dict(d) ; save_preset(m, path) / load_preset(path)
    normalize_name(s) ; match_channel(shape_key_name) -> ARKit name | None
    detect_routes(objects_keys: {object: [shape key names]}) -> list[Route]
    guess_head_bone(bone_names) -> str | None ; neutral_pose(values, start, end) -> {ch: value}
    auto_mapping(mesh_objects, armature=None) -> Mapping   (reads names from bpy objects)
    MappingError
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserInputError
from .files import atomic_write
from .channels import ARKIT_NAMES

PRESET_FORMAT = "osmnet-mapping"
PRESET_VERSION = 1
TARGET_KINDS = ("shape_key", "custom_prop", "bone")
AXES = ("+X", "-X", "+Y", "-Y", "+Z", "-Z")


class MappingError(UserInputError):
    """A mapping or preset that cannot be used; the message says what to fix."""


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Target:
    """One animatable value. owner = object name; name = shape key / property / bone name;
    prop = the bone's property ('rotation_euler', 'location', ... or '["custom"]'); index = array index."""

    kind: str
    owner: str
    name: str
    prop: str = ""
    index: int = 0

    def __post_init__(self):
        if self.kind not in TARGET_KINDS:
            raise MappingError(f"target kind {self.kind!r} is not one of {TARGET_KINDS}")
        if self.kind == "bone" and not self.prop:
            raise MappingError(f"bone target {self.owner}/{self.name} needs a property, e.g. 'rotation_euler'")

    @property
    def id_type(self) -> str:
        """Which data-block holds the curve: shape keys live on the mesh's Key, the rest on the object."""
        return "KEY" if self.kind == "shape_key" else "OBJECT"

    @property
    def data_path(self) -> str:
        if self.kind == "shape_key":
            return f"key_blocks[{_quote(self.name)}].value"
        if self.kind == "custom_prop":
            return f"[{_quote(self.name)}]"
        sep = "" if self.prop.startswith("[") else "."
        return f"pose.bones[{_quote(self.name)}]{sep}{self.prop}"


@dataclass
class Route:
    channel: str
    target: Target
    weight: float = 1.0


@dataclass
class ChannelSetting:
    enabled: bool = True
    gain: float = 1.0
    offset: float = 0.0


@dataclass
class HeadBinding:
    """Head channels -> one pose bone. The take's rotation is R = yaw * pitch * roll (roll applied
    first, as in osmnet.data.track); each angle turns about a signed bone axis. The defaults fit a bone
    pointing up (+Z) with roll 0 in a face looking down -Y (Blender's front view)."""

    armature: str = ""
    bone: str = ""
    pitch: str = "+X"
    yaw: str = "+Y"
    roll: str = "+Z"
    use_rotation: bool = True
    use_location: bool = False
    x: str = "+X"
    y: str = "+Y"
    z: str = "+Z"
    location_scale: float = 1.0

    def validate(self):
        for group in (("pitch", "yaw", "roll"), ("x", "y", "z")):
            axes = [getattr(self, k) for k in group]
            if any(a not in AXES for a in axes):
                raise MappingError(f"head axes {dict(zip(group, axes))} must each be one of {AXES}")
            if len({a[1] for a in axes}) != 3:
                raise MappingError(f"head axes {dict(zip(group, axes))} must use X, Y and Z once each")

    @property
    def enabled(self) -> bool:
        return bool(self.armature and self.bone and (self.use_rotation or self.use_location))


@dataclass
class Mapping:
    routes: list = field(default_factory=list)
    channels: dict = field(default_factory=dict)  # channel -> ChannelSetting (absent = defaults)
    head: HeadBinding = field(default_factory=HeadBinding)
    strength: float = 1.0  # scales every channel's motion around its neutral
    smoothing: float = 0.0  # Gaussian sigma in seconds; 0 = off
    neutral: dict = field(default_factory=dict)  # channel -> value subtracted first

    def setting(self, channel: str) -> ChannelSetting:
        return self.channels.get(channel) or ChannelSetting()

    def channel_curves(self, values: dict, fps: float) -> dict:
        """Per channel: subtract neutral, smooth, then strength * gain * v + offset. Disabled
        channels are left out."""
        out = {}
        for ch, v in values.items():
            s = self.setting(ch)
            if not s.enabled:
                continue
            v = np.asarray(v, dtype=np.float64) - float(self.neutral.get(ch, 0.0))
            if self.smoothing > 0:
                v = gaussian_smooth(v, self.smoothing * fps)
            out[ch] = self.strength * s.gain * v + s.offset
        return out

    def target_curves(self, values: dict, fps: float) -> dict:
        """Target -> summed curve of its enabled routes (targets without one are left out)."""
        chans = self.channel_curves({r.channel: values[r.channel] for r in self.routes
                                     if r.channel in values}, fps)
        out = {}
        for r in self.routes:
            if r.channel in chans:
                add = r.weight * chans[r.channel]
                out[r.target] = out[r.target] + add if r.target in out else add
        return out

    # -------------------------------------------------------- presets
    def to_dict(self) -> dict:
        return {
            "format": PRESET_FORMAT, "version": PRESET_VERSION,
            "strength": self.strength, "smoothing": self.smoothing, "neutral": dict(self.neutral),
            "head": asdict(self.head),
            "channels": {k: asdict(v) for k, v in self.channels.items()},
            "routes": [{"channel": r.channel, "weight": r.weight, "target": asdict(r.target)} for r in self.routes],
        }

    @classmethod
    def from_dict(cls, d, where: str = "mapping preset") -> "Mapping":
        if not isinstance(d, dict) or d.get("format") != PRESET_FORMAT:
            raise MappingError(f'{where} is not a mapping preset (expected "format": "{PRESET_FORMAT}")')
        if d.get("version") != PRESET_VERSION:
            raise MappingError(f"{where} has preset version {d.get('version')!r}; this add-on reads "
                               f"version {PRESET_VERSION}")
        known = {"format", "version", "strength", "smoothing", "neutral", "head", "channels", "routes"}
        if set(d) - known:
            raise MappingError(f"{where} has unknown keys {sorted(set(d) - known)}")
        try:
            m = cls(
                routes=[Route(r["channel"], Target(**r["target"]), float(r.get("weight", 1.0)))
                        for r in d.get("routes", [])],
                channels={k: ChannelSetting(**v) for k, v in d.get("channels", {}).items()},
                head=HeadBinding(**d.get("head", {})),
                strength=float(d.get("strength", 1.0)), smoothing=float(d.get("smoothing", 0.0)),
                neutral={k: float(v) for k, v in d.get("neutral", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, MappingError):
                raise
            raise MappingError(f"{where} is malformed ({type(e).__name__}: {e})") from None
        m.head.validate()
        return m


def save_preset(mapping: Mapping, path) -> Path:
    return atomic_write(path, json.dumps(mapping.to_dict(), indent=1))


def load_preset(path) -> Mapping:
    path = Path(path)
    if not path.is_file():
        raise MappingError(f"mapping preset {path} does not exist")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MappingError(f"{path} is not valid JSON ({e})") from None
    return Mapping.from_dict(d, where=str(path))


# ---------------------------------------------------------------- signal helpers

def gaussian_smooth(v: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Zero-phase Gaussian smoothing; edges are extended with the end values so they do not sag."""
    if sigma_frames <= 0 or len(v) < 2:
        return v
    radius = max(1, int(np.ceil(3 * sigma_frames)))
    x = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (x / sigma_frames) ** 2)
    k /= k.sum()
    padded = np.concatenate([np.full(radius, v[0]), v, np.full(radius, v[-1])])
    return np.convolve(padded, k, mode="valid")


def neutral_pose(values: dict, start: int = 0, end: int | None = None) -> dict:
    """Mean of each channel over frames [start, end): pick a stretch where the face is at rest."""
    out = {}
    for ch, v in values.items():
        seg = np.asarray(v)[start:end]
        if seg.size == 0:
            raise MappingError(f"neutral range [{start}, {end}) holds no frames")
        out[ch] = float(seg.mean())
    return out


# ---------------------------------------------------------------- name detection

_PREFIX = re.compile(r"^(?:arkit|apple|bs|blendshapes?\d*|shapes?|sk|key|a\d{1,2}|mh|cc)(?:[_.:\-]+|(?=[A-Z]))",
                     re.IGNORECASE)
_SPLIT = re.compile(r"[_.:\-\s]+|(?<=[a-z0-9])(?=[A-Z])")
_SIDES = {"l": "left", "r": "right", "lt": "left", "rt": "right"}


def normalize_name(name: str, strip_prefix: bool = True) -> str:
    """'ARKit_EyeBlink_L', 'eye_blink_left', 'A09_eyeBlinkLeft', 'bs.eyeBlink.L' -> 'eyeblinkleft'."""
    s = name.strip()
    while strip_prefix:
        stripped = _PREFIX.sub("", s, count=1)
        if stripped == s or not stripped:
            break
        s = stripped
    tokens = [t.lower() for t in _SPLIT.split(s) if t]
    return "".join(_SIDES.get(t, t) for t in tokens)


_CANONICAL = {normalize_name(n, strip_prefix=False): n for n in ARKIT_NAMES}


def match_channel(shape_key_name: str):
    """The ARKit channel a shape key name stands for (the whole name first, then without a
    prefix such as 'ARKit_' or 'A01_'), or None."""
    return _CANONICAL.get(normalize_name(shape_key_name, strip_prefix=False)) \
        or _CANONICAL.get(normalize_name(shape_key_name))


def detect_routes(objects_keys: dict) -> list:
    """{mesh object name: [shape key names]} -> a route for every key that names an ARKit shape."""
    routes = []
    for owner, names in objects_keys.items():
        for key in names:
            ch = match_channel(key)
            if ch is not None:
                routes.append(Route(ch, Target("shape_key", owner, key)))
    return routes


def guess_head_bone(bone_names) -> str | None:
    names = list(bone_names)
    scored = []
    for n in names:
        norm = re.sub(r"^(?:def|org|mch|mixamorig\d*|cc_base|bip\d*)[_.:\- ]*", "", n.lower())
        if norm == "head":
            scored.append((0, n))
        elif "head" in norm and not any(w in norm for w in ("top", "end", "tip", "neck", "nub")):
            scored.append((1, n))
    return min(scored)[1] if scored else None


def auto_mapping(mesh_objects, armature=None) -> Mapping:
    """Build routes from the shape keys of `mesh_objects` and bind the armature's head bone."""
    keys = {}
    for ob in mesh_objects:
        sk = getattr(getattr(ob, "data", None), "shape_keys", None)
        if sk is not None:
            keys[ob.name] = [kb.name for kb in sk.key_blocks[1:]]  # [0] is the basis
    mapping = Mapping(routes=detect_routes(keys))
    if armature is not None:
        bone = guess_head_bone(b.name for b in armature.data.bones)
        if bone:
            mapping.head = HeadBinding(armature=armature.name, bone=bone)
    return mapping


