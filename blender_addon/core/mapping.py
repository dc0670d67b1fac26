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
    ManualRoute(channel, key, owner="", weight=1.0)   a route the artist chose in the mapping panel
    MappingRules(manual, channels, neutral, strength, smoothing, head, auto, visemes)   the panel's state
        .build(objects_keys, head=None) -> Mapping ; .to_dict() / MappingRules.from_dict(d)
    save_preset(rules, path) / load_preset(path) -> MappingRules
    coverage(mapping, channels=ARKIT_NAMES) -> {channel: [Target]} ; coverage_warning(mapping, objects_keys)
    viseme_targets(mapping) -> [Target]      shape keys driven through viseme channels (core/visemes.py)
    suggest_routes(objects_keys, mapping) -> [ManualRoute]   near-miss names (mouthOpen -> jawOpen ...)
    HEAD_CONVENTIONS ; head_axes(convention, kind) -> (pitch, yaw, roll)
    auto_mapping(mesh_objects, armature=None) -> Mapping   (reads names from bpy objects)
    MappingError
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .channels import ARKIT_NAMES
from .errors import UserInputError
from .files import atomic_write
from .visemes import VISEME_CHANNELS, viseme_routes

PRESET_FORMAT = "osmnet-mapping"
PRESET_VERSION = 2
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


HEAD_KINDS = ("bone", "object")
VISEME_MODES = ("auto", "on", "off")
# Signed rig axes (pitch, yaw, roll) for the take's camera axes (x right, y up, z towards the viewer).
HEAD_CONVENTIONS = {
    "BONE": ("+X", "+Y", "+Z"),    # a pose bone: Y runs along the bone (up the neck), X to the side
    "Z_UP": ("+X", "+Z", "-Y"),    # an object in Blender's axes: Z up, the face looks down -Y
    "Y_UP": ("+X", "+Y", "+Z"),    # an object imported Y-up without axis conversion: face looks down +Z
}


def head_axes(convention: str, kind: str = "bone") -> tuple:
    """(pitch, yaw, roll) signed axes of an axis convention; 'AUTO' picks by what is driven."""
    if convention == "AUTO":
        convention = "BONE" if kind == "bone" else "Z_UP"
    if convention not in HEAD_CONVENTIONS:
        raise MappingError(f"head axis convention {convention!r} is not one of {['AUTO', *HEAD_CONVENTIONS]}")
    return HEAD_CONVENTIONS[convention]


@dataclass
class HeadBinding:
    """Head channels -> one pose bone (kind 'bone': armature + bone) or one object (kind 'object':
    its delta transform, so the artist's own rotation and keys stay). The take's rotation is
    R = yaw * pitch * roll (roll applied first, as in osmnet.data.track); each angle turns about a
    signed axis of the bone or object. The defaults fit a bone pointing up (+Z) with roll 0 in a
    face looking down -Y (Blender's front view)."""

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
    kind: str = "bone"
    object: str = ""

    def validate(self):
        if self.kind not in HEAD_KINDS:
            raise MappingError(f"head kind {self.kind!r} is not one of {HEAD_KINDS}")
        for group in (("pitch", "yaw", "roll"), ("x", "y", "z")):
            axes = [getattr(self, k) for k in group]
            if any(a not in AXES for a in axes):
                raise MappingError(f"head axes {dict(zip(group, axes))} must each be one of {AXES}")
            if len({a[1] for a in axes}) != 3:
                raise MappingError(f"head axes {dict(zip(group, axes))} must use X, Y and Z once each")

    def with_axes(self, pitch: str, yaw: str, roll: str) -> "HeadBinding":
        """The same binding turning about these axes; translation follows the same axes."""
        from dataclasses import replace

        return replace(self, pitch=pitch, yaw=yaw, roll=roll, x=pitch, y=yaw, z=roll)

    @property
    def owner(self) -> str:
        """The object that moves: the armature (bone kind) or the object itself."""
        return self.armature if self.kind == "bone" else self.object

    @property
    def enabled(self) -> bool:
        named = self.armature and self.bone if self.kind == "bone" else self.object
        return bool(named and (self.use_rotation or self.use_location))


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
_COPY_SUFFIX = re.compile(r"\.\d{3}$")  # Blender's duplicate names: jawOpen.001


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

# Character Creator 3+/4 face keys whose names are not the ARKit names in another spelling
# (the others, e.g. Mouth_Smile_L or Jaw_Open, already normalize to them). Several keys may
# stand for one channel (Brow_Raise_Inner_L and _R both follow browInnerUp).
_CC_ALIASES = {
    "Brow_Drop_L": "browDownLeft", "Brow_Drop_R": "browDownRight",
    "Brow_Raise_Inner_L": "browInnerUp", "Brow_Raise_Inner_R": "browInnerUp",
    "Brow_Raise_Outer_L": "browOuterUpLeft", "Brow_Raise_Outer_R": "browOuterUpRight",
    "Cheek_Puff_L": "cheekPuff", "Cheek_Puff_R": "cheekPuff",
    "Cheek_Raise_L": "cheekSquintLeft", "Cheek_Raise_R": "cheekSquintRight",
    "Eye_L_Look_Down": "eyeLookDownLeft", "Eye_R_Look_Down": "eyeLookDownRight",
    "Eye_L_Look_Up": "eyeLookUpLeft", "Eye_R_Look_Up": "eyeLookUpRight",
    "Eye_L_Look_L": "eyeLookOutLeft", "Eye_L_Look_R": "eyeLookInLeft",
    "Eye_R_Look_L": "eyeLookInRight", "Eye_R_Look_R": "eyeLookOutRight",
    "Mouth_Roll_In_Upper_L": "mouthRollUpper", "Mouth_Roll_In_Upper_R": "mouthRollUpper",
    "Mouth_Roll_In_Lower_L": "mouthRollLower", "Mouth_Roll_In_Lower_R": "mouthRollLower",
    "Mouth_Funnel_Up_L": "mouthFunnel", "Mouth_Funnel_Up_R": "mouthFunnel",
    "Mouth_Funnel_Down_L": "mouthFunnel", "Mouth_Funnel_Down_R": "mouthFunnel",
    "Mouth_Pucker_Up_L": "mouthPucker", "Mouth_Pucker_Up_R": "mouthPucker",
    "Mouth_Pucker_Down_L": "mouthPucker", "Mouth_Pucker_Down_R": "mouthPucker",
    "Mouth_Up_Upper_L": "mouthUpperUpLeft", "Mouth_Up_Upper_R": "mouthUpperUpRight",
    "Mouth_Down_Lower_L": "mouthLowerDownLeft", "Mouth_Down_Lower_R": "mouthLowerDownRight",
}
_ALIASES = {normalize_name(k, strip_prefix=False): v for k, v in _CC_ALIASES.items()}

# Names that are not ARKit but usually mean one (or the mean of two) ARKit channels. They are
# only suggested (the warning lists them, one click applies them), never routed silently.
_NEAR_MISSES = {
    "mouthopen": (("jawOpen", 1.0),), "open": (("jawOpen", 1.0),), "mouthwideopen": (("jawOpen", 1.0),),
    "mouthsmile": (("mouthSmileLeft", 0.5), ("mouthSmileRight", 0.5)),
    "smile": (("mouthSmileLeft", 0.5), ("mouthSmileRight", 0.5)),
    "mouthfrown": (("mouthFrownLeft", 0.5), ("mouthFrownRight", 0.5)),
    "frown": (("mouthFrownLeft", 0.5), ("mouthFrownRight", 0.5)),
    "blink": (("eyeBlinkLeft", 0.5), ("eyeBlinkRight", 0.5)),
    "eyesblink": (("eyeBlinkLeft", 0.5), ("eyeBlinkRight", 0.5)),
    "eyeblink": (("eyeBlinkLeft", 0.5), ("eyeBlinkRight", 0.5)),
    "eyesclosed": (("eyeBlinkLeft", 0.5), ("eyeBlinkRight", 0.5)),
    "browsup": (("browInnerUp", 1.0),), "browup": (("browInnerUp", 1.0),), "browraise": (("browInnerUp", 1.0),),
    "kiss": (("mouthPucker", 1.0),), "pucker": (("mouthPucker", 1.0),),
}


def match_rank(shape_key_name: str):
    """(ARKit channel, rank) for a shape key name, or (None, None). Rank says how sure the match
    is: 0 the name itself, 1 without a prefix ('ARKit_', 'A01_'), 2 a Character Creator name,
    3 a Blender copy ('jawOpen.001')."""
    for rank, strip, name in ((0, False, shape_key_name), (1, True, shape_key_name)):
        ch = _CANONICAL.get(normalize_name(name, strip_prefix=strip))
        if ch:
            return ch, rank
    ch = _ALIASES.get(normalize_name(shape_key_name, strip_prefix=False))
    if ch:
        return ch, 2
    base = _COPY_SUFFIX.sub("", shape_key_name.strip())
    if base != shape_key_name.strip():
        ch, rank = match_rank(base)
        if ch:
            return ch, 3
    return None, None


def match_channel(shape_key_name: str):
    """The ARKit channel a shape key name stands for, or None (see match_rank)."""
    return match_rank(shape_key_name)[0]


def detect_routes(objects_keys: dict) -> list:
    """{mesh object name: [shape key names]} -> a route for every key that names an ARKit shape.
    On one mesh a channel drives its best-matching keys only: 'jawOpen' wins over 'jawOpen.001'."""
    routes = []
    for owner, names in objects_keys.items():
        best = {}
        for key in names:
            ch, rank = match_rank(key)
            if ch is not None:
                best.setdefault(ch, []).append((rank, key))
        for key in names:
            ch, rank = match_rank(key)
            if ch is not None and rank == min(r for r, _ in best[ch]):
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


# ---------------------------------------------------------------- the mapping panel's rules

@dataclass
class ManualRoute:
    """channel -> shape key `key` chosen by the artist; owner '' means every face mesh with that key."""

    channel: str
    key: str
    owner: str = ""
    weight: float = 1.0


@dataclass
class MappingRules:
    """What the artist set in the mapping panel, by names only, so a preset fits any rig that uses
    the same shape key names. build() turns it into the Mapping of one rig: automatic routes for
    every channel without a manual route (when `auto`), the manual ones for the rest."""

    manual: list = field(default_factory=list)       # [ManualRoute]
    channels: dict = field(default_factory=dict)     # channel -> ChannelSetting
    neutral: dict = field(default_factory=dict)      # channel -> captured neutral value
    strength: float = 1.0
    smoothing: float = 0.0
    head: HeadBinding = field(default_factory=HeadBinding)
    auto: bool = True
    visemes: str = "auto"  # viseme keys (core/visemes.py): "auto" = when no ARKit jawOpen maps, "on", "off"

    def build(self, objects_keys: dict, head: HeadBinding | None = None) -> Mapping:
        from .channels import ALL_CHANNELS

        if self.visemes not in VISEME_MODES:
            raise MappingError(f"visemes must be one of {VISEME_MODES}, got {self.visemes!r}")
        for r in self.manual:
            if r.channel not in ALL_CHANNELS and r.channel not in VISEME_CHANNELS:
                raise MappingError(f"manual route from unknown channel {r.channel!r}; channels are the "
                                   f"52 ARKit names, headPitch/Yaw/Roll/X/Y/Z and the viseme channels")
        manual_channels = {r.channel for r in self.manual}
        routes = [r for r in detect_routes(objects_keys) if r.channel not in manual_channels] if self.auto else []
        if self.auto and self.visemes != "off":
            # a head with both ARKit and viseme keys would open its mouth twice: visemes only when asked
            # for, or when no ARKit jawOpen drives anything
            if self.visemes == "on" or not any(r.channel == "jawOpen" for r in routes) \
                    and "jawOpen" not in manual_channels:
                routes += [Route(ch, Target("shape_key", owner, key)) for ch, owner, key in viseme_routes(objects_keys)
                           if ch not in manual_channels]
        for m in self.manual:
            owners = [m.owner] if m.owner else list(objects_keys)
            for owner in owners:
                if m.owner or m.key in objects_keys.get(owner, ()):
                    routes.append(Route(m.channel, Target("shape_key", owner, m.key), m.weight))
        return Mapping(routes=routes, channels=dict(self.channels), head=head or self.head,
                       strength=self.strength, smoothing=self.smoothing, neutral=dict(self.neutral))

    def to_dict(self) -> dict:
        return {
            "format": PRESET_FORMAT, "version": PRESET_VERSION, "auto": self.auto, "visemes": self.visemes,
            "strength": self.strength, "smoothing": self.smoothing, "neutral": dict(self.neutral),
            "head": asdict(self.head), "channels": {k: asdict(v) for k, v in self.channels.items()},
            "manual": [asdict(r) for r in self.manual],
        }

    @classmethod
    def from_dict(cls, d, where: str = "mapping preset") -> "MappingRules":
        if not isinstance(d, dict) or d.get("format") != PRESET_FORMAT:
            raise MappingError(f'{where} is not a mapping preset (expected "format": "{PRESET_FORMAT}")')
        if d.get("version") != PRESET_VERSION:
            raise MappingError(f"{where} has preset version {d.get('version')!r}; this add-on reads "
                               f"version {PRESET_VERSION} (save the mapping again)")
        known = {"format", "version", "auto", "visemes", "strength", "smoothing", "neutral", "head", "channels",
                 "manual"}
        if set(d) - known:
            raise MappingError(f"{where} has unknown keys {sorted(set(d) - known)}")
        try:
            rules = cls(
                manual=[ManualRoute(r["channel"], r["key"], r.get("owner", ""), float(r.get("weight", 1.0)))
                        for r in d.get("manual", [])],
                channels={k: ChannelSetting(**v) for k, v in d.get("channels", {}).items()},
                neutral={k: float(v) for k, v in d.get("neutral", {}).items()},
                strength=float(d.get("strength", 1.0)), smoothing=float(d.get("smoothing", 0.0)),
                head=HeadBinding(**d.get("head", {})), auto=bool(d.get("auto", True)),
                visemes=str(d.get("visemes", "auto")),
            )
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, MappingError):
                raise
            raise MappingError(f"{where} is malformed ({type(e).__name__}: {e})") from None
        rules.head.validate()
        if rules.visemes not in VISEME_MODES:
            raise MappingError(f"{where}: visemes must be one of {VISEME_MODES}, got {rules.visemes!r}")
        return rules


def save_preset(rules: MappingRules, path) -> Path:
    return atomic_write(path, json.dumps(rules.to_dict(), indent=1))


def load_preset(path) -> MappingRules:
    path = Path(path)
    if not path.is_file():
        raise MappingError(f"mapping preset {path} does not exist")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MappingError(f"{path} is not valid JSON ({e})") from None
    return MappingRules.from_dict(d, where=str(path))


# ---------------------------------------------------------------- coverage and warnings

def coverage(mapping: Mapping, channels=ARKIT_NAMES) -> dict:
    """channel -> [Target] it drives (an empty list: the channel drives nothing on this rig)."""
    out = {ch: [] for ch in channels}
    for r in mapping.routes:
        if r.channel in out and mapping.setting(r.channel).enabled:
            out[r.channel].append(r.target)
    return out


def suggest_routes(objects_keys: dict, mapping: Mapping) -> list:
    """Manual routes for shape keys with near-miss names (mouthOpen, Smile, Blink ...) that no
    route drives yet; for the warning and its 'apply' button, never applied silently."""
    driven = {(r.target.owner, r.target.name) for r in mapping.routes}
    out, seen = [], set()
    for owner, names in objects_keys.items():
        for key in names:
            pairs = _NEAR_MISSES.get(normalize_name(_COPY_SUFFIX.sub("", key)))
            if not pairs or (owner, key) in driven or key in seen:
                continue
            seen.add(key)
            out += [ManualRoute(ch, key, "", w) for ch, w in pairs]
    return out


def viseme_targets(mapping: Mapping) -> list:
    """The shape keys driven through viseme channels (a viseme rig's mouth)."""
    return [r.target for r in mapping.routes if r.channel in VISEME_CHANNELS and mapping.setting(r.channel).enabled]


def coverage_warning(mapping: Mapping, objects_keys: dict) -> str | None:
    """A sentence for the panel when the face would (almost) not move, else None."""
    cov = coverage(mapping)
    mapped = [ch for ch, targets in cov.items() if targets]
    if viseme_targets(mapping):  # the mouth moves through its visemes
        return None
    meshes = ", ".join(objects_keys) or "the face"
    hint = ""
    sugg = suggest_routes(objects_keys, mapping)
    if sugg:
        hint = " Suggested: " + ", ".join(f"{r.channel} -> {r.key}" for r in sugg[:4]) + (" ..." if len(sugg) > 4 else "")
    if not mapped:
        head = "only the head will move" if mapping.head.enabled else "nothing will move"
        return (f"No shape key on {meshes} matches an ARKit name: {head}. Route channels by hand in the "
                f"Mapping panel (e.g. jawOpen -> mouthOpen) or load a preset.{hint}")
    if not cov["jawOpen"]:
        return f"jawOpen (the main lip-sync channel) drives nothing on {meshes}: route it by hand.{hint}"
    return None


def auto_mapping(mesh_objects, armature=None) -> Mapping:
    """Build routes from the shape keys of `mesh_objects` and bind the armature's head bone."""
    head = HeadBinding()
    if armature is not None:
        bone = guess_head_bone(b.name for b in armature.data.bones)
        if bone:
            head = HeadBinding(armature=armature.name, bone=bone)
    return MappingRules().build(shape_key_names(mesh_objects), head=head)


def shape_key_names(mesh_objects) -> dict:
    """{object name: [shape key names except the basis]} of the objects that have shape keys."""
    keys = {}
    for ob in mesh_objects:
        sk = getattr(getattr(ob, "data", None), "shape_keys", None)
        if sk is not None:
            keys[ob.name] = [kb.name for kb in sk.key_blocks[1:]]  # [0] is the basis
    return keys
