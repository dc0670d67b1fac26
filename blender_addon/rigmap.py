"""The Mapping panel's settings -> the Mapping of the scene's face (the rules live in core/mapping.py).

The panel stores, per channel, an optional manual shape key (and weight), enable, gain, offset
and captured neutral, plus the head binding (bone or object, axes, translation). Everything
else comes from the face's shape key and bone names each time, so renaming a key or adding a
mesh needs no refresh. view() is what panels draw from: it is memoized on what it reads, so
drawing the 52 rows does not re-match names on every redraw.

Public API
    face_meshes(target) -> [mesh objects]     auto_head(target) -> HeadBinding
    ensure_rows(settings)                      the 52 ARKit + 6 head rows exist, in channel order
    rules(settings, target=None) -> MappingRules   set_rules(settings, rules)
    scene_mapping(scene) -> Mapping            view(scene) -> MappingView
    capture_neutral(scene, values, first, end, channel="") ; apply_suggestions(scene) -> int
"""
from __future__ import annotations

from dataclasses import dataclass, field

import bpy

from .core import mapping as mp
from .core.channels import ALL_CHANNELS, ARKIT_NAMES


def face_meshes(target) -> list:
    """The meshes whose shape keys the takes drive: the target (if a mesh) and every mesh below it."""
    if target is None:
        return []
    meshes = [target] if target.type == 'MESH' else []
    return meshes + [c for c in target.children_recursive if c.type == 'MESH']


def _armature_of(target):
    if target.type == 'ARMATURE':
        return target
    parent = target.parent
    while parent is not None:
        if parent.type == 'ARMATURE':
            return parent
        parent = parent.parent
    for mod in getattr(target, "modifiers", ()):
        if mod.type == 'ARMATURE' and mod.object is not None:
            return mod.object
    return None


def auto_head(target) -> mp.HeadBinding:
    """The head bone of the target's armature when there is one with a head-like bone, else the
    target object itself (a plain head mesh turns by its delta rotation)."""
    if target is None:
        return mp.HeadBinding()
    arm = _armature_of(target)
    if arm is not None:
        bone = mp.guess_head_bone(b.name for b in arm.data.bones)
        if bone:
            return mp.HeadBinding(armature=arm.name, bone=bone)
    if target.type == 'ARMATURE':
        return mp.HeadBinding()  # an armature without a head bone: pick one in the Head panel
    return mp.HeadBinding(kind="object", object=target.name).with_axes(*mp.head_axes("AUTO", "object"))


def ensure_rows(settings):
    rows = settings.rows
    if [r.channel for r in rows] == list(ALL_CHANNELS):
        return
    old = {r.channel: {k: getattr(r, k) for k in ("key", "weight", "enabled", "gain", "offset", "neutral")}
           for r in rows}
    rows.clear()
    for ch in ALL_CHANNELS:
        row = rows.add()
        row.channel = ch
        for k, v in old.get(ch, {}).items():
            setattr(row, k, v)


def _head(settings, target) -> mp.HeadBinding:
    mode = settings.head_mode
    if mode == 'NONE':
        return mp.HeadBinding()
    if mode == 'AUTO':
        head = auto_head(target)
    elif mode == 'BONE':
        arm = settings.head_armature
        head = mp.HeadBinding(armature=arm.name if arm else "", bone=settings.head_bone)
    else:
        ob = settings.head_object
        head = mp.HeadBinding(kind="object", object=ob.name if ob else "")
    if settings.head_axes == 'CUSTOM':
        axes = (settings.head_pitch, settings.head_yaw, settings.head_roll)
    else:
        axes = mp.head_axes(settings.head_axes, head.kind)
    from dataclasses import replace

    return replace(head.with_axes(*axes), use_rotation=settings.head_rotation,
                   use_location=settings.head_location, location_scale=settings.head_location_scale)


def rules(settings, target=None) -> mp.MappingRules:
    """The panel's rules; the automatic head is looked up on `target` (default: the Face)."""
    ms = settings.mapping
    manual, channels, neutral = [], {}, {}
    for r in ms.rows:
        if r.key:
            manual.append(mp.ManualRoute(r.channel, r.key, "", r.weight))
        if not r.enabled or r.gain != 1.0 or r.offset != 0.0:
            channels[r.channel] = mp.ChannelSetting(r.enabled, r.gain, r.offset)
        if r.neutral != 0.0:
            neutral[r.channel] = r.neutral
    return mp.MappingRules(manual=manual, channels=channels, neutral=neutral, strength=ms.strength,
                           smoothing=ms.smoothing, head=_head(ms, target or settings.target), auto=ms.auto,
                           visemes=ms.visemes)


def set_rules(settings, r: mp.MappingRules):
    """Show a preset in the panel. Head objects named in it are used when they exist here."""
    ms = settings.mapping
    ensure_rows(ms)
    manual = {m.channel: m for m in r.manual}
    for row in ms.rows:
        m = manual.get(row.channel)
        row.key, row.weight = (m.key, m.weight) if m else ("", 1.0)
        s = r.channels.get(row.channel) or mp.ChannelSetting()
        row.enabled, row.gain, row.offset = s.enabled, s.gain, s.offset
        row.neutral = r.neutral.get(row.channel, 0.0)
    ms.strength, ms.smoothing, ms.auto, ms.visemes = r.strength, r.smoothing, r.auto, r.visemes
    h = r.head
    ms.head_rotation, ms.head_location, ms.head_location_scale = h.use_rotation, h.use_location, h.location_scale
    order = ("BONE", "Z_UP", "Y_UP") if h.kind == "bone" else ("Z_UP", "Y_UP", "BONE")
    named = next((k for k in order if mp.HEAD_CONVENTIONS[k] == (h.pitch, h.yaw, h.roll)), None)
    if named and mp.head_axes("AUTO", h.kind) == (h.pitch, h.yaw, h.roll):
        ms.head_axes = 'AUTO'
    elif named:
        ms.head_axes = named
    else:
        ms.head_axes = 'CUSTOM'
    ms.head_pitch, ms.head_yaw, ms.head_roll = h.pitch, h.yaw, h.roll
    if h.kind == "bone" and h.bone:
        arm = bpy.data.objects.get(h.armature)
        if arm is not None and arm.type == 'ARMATURE':
            ms.head_mode, ms.head_armature, ms.head_bone = 'BONE', arm, h.bone
    elif h.kind == "object" and bpy.data.objects.get(h.object) is not None:
        ms.head_mode, ms.head_object = 'OBJECT', bpy.data.objects[h.object]


def scene_mapping(scene) -> mp.Mapping:
    s = scene.osmnet
    return rules(s).build(mp.shape_key_names(face_meshes(s.target)))


@dataclass
class MappingView:
    mapping: mp.Mapping
    objects_keys: dict
    coverage: dict = field(default_factory=dict)   # channel -> [Target]
    mapped: int = 0
    visemes: int = 0                                # shape keys driven through viseme channels
    warning: str | None = None
    suggestions: list = field(default_factory=list)
    error: str | None = None

    def targets_text(self, channel: str) -> str:
        targets = self.coverage.get(channel, [])
        if not targets:
            return "missing"
        names = sorted({t.name for t in targets})
        return ", ".join(names) + (f" ({len(targets)} meshes)" if len(targets) > len(names) else "")


_memo: dict = {}


def _signature(scene):
    s = scene.osmnet
    meshes = face_meshes(s.target)
    keys = tuple((m.name, tuple(kb.name for kb in m.data.shape_keys.key_blocks) if m.data.shape_keys else ())
                 for m in meshes)
    rows = tuple((r.key, r.weight, r.enabled) for r in s.mapping.rows)
    ms = s.mapping
    head = (ms.head_mode, ms.head_armature.name if ms.head_armature else "", ms.head_bone,
            ms.head_object.name if ms.head_object else "", ms.head_axes, ms.head_rotation, ms.head_location)
    return (s.target.name if s.target else "", keys, rows, ms.auto, ms.visemes, head)


def view(scene) -> MappingView:
    """Coverage, warning and suggestions for the panel (memoized on the names it depends on)."""
    sig = _signature(scene)
    hit = _memo.get(scene.name)
    if hit is not None and hit[0] == sig:
        return hit[1]
    objects_keys = mp.shape_key_names(face_meshes(scene.osmnet.target))
    try:
        m = rules(scene.osmnet).build(objects_keys)
    except mp.MappingError as e:
        v = MappingView(mp.Mapping(), objects_keys, error=str(e))
    else:
        cov = mp.coverage(m)
        v = MappingView(m, objects_keys, cov, sum(bool(t) for t in cov.values()), len(mp.viseme_targets(m)),
                        mp.coverage_warning(m, objects_keys) if scene.osmnet.target else None,
                        mp.suggest_routes(objects_keys, m))
    _memo[scene.name] = (sig, v)
    return v


def capture_neutral(scene, values, first: int, end: int, channel: str = "") -> int:
    """Rows' neutral = the mean of the take's raw values over take frames [first, end) (a stretch
    where the face rests); one channel, or every face channel when channel is ''."""
    ms = scene.osmnet.mapping
    ensure_rows(ms)
    rest = mp.neutral_pose({c: values[:, i] for i, c in enumerate(ALL_CHANNELS)}, first, end)
    n = 0
    for row in ms.rows:
        if (row.channel == channel) or (not channel and row.channel in ARKIT_NAMES):
            row.neutral = rest[row.channel]
            n += 1
    return n


def apply_suggestions(scene) -> int:
    """Route the near-miss shape keys the warning names (mouthOpen <- jawOpen ...)."""
    ms = scene.osmnet.mapping
    ensure_rows(ms)
    sugg = view(scene).suggestions
    rows = {r.channel: r for r in ms.rows}
    for r in sugg:
        rows[r.channel].key, rows[r.channel].weight = r.key, r.weight
    return len(sugg)
