"""What a take puts on a rig: mapping targets resolved in this file, curves sampled at scene frames.

Reads the rig, writes nothing (keyframes.py writes the Actions). Sampling follows osmnet's
Take.resample rule (duration kept, frames = round(duration * fps), linear, held at the end) at the
scene's exact rate, render.fps / fps_base.

Public API
    scene_fps(scene) ; frame_count(take_frames, take_fps, fps)
    missing_targets(mapping) -> [str]     what the mapping points at that this file lacks
    (the head moves a pose bone, or an object through its delta transform: core/headpose.py)
    rig_ids(mapping) -> [ID]              the data-blocks it animates
    sample_curves(raw, take_fps, mapping, scene, k0, k1) -> ([(ID, path, index, group, values)], skipped)
"""
from __future__ import annotations

import bpy
import numpy as np

from .core.headpose import head_curves
from .core.mapping import Mapping, Target
from .core.visemes import add_viseme_channels
from .core.channels import ALL_CHANNELS


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def frame_count(take_frames: int, take_fps: float, fps: float) -> int:
    """Same rule as osmnet's Take.resample: the duration is kept, frames = round(duration * fps)."""
    return max(1, int(round(take_frames / take_fps * fps)))


def _resolve(target: Target):
    """-> (ID, clamp range or None), or (None, why it is missing)."""
    ob = bpy.data.objects.get(target.owner)
    if ob is None:
        return None, f"object {target.owner!r} not found"
    if target.kind == "shape_key":
        sk = getattr(ob.data, "shape_keys", None)
        kb = sk.key_blocks.get(target.name) if sk is not None else None
        if kb is None:
            return None, f"{target.owner}: shape key {target.name!r} not found"
        return sk, (kb.slider_min, kb.slider_max)
    if target.kind == "custom_prop":
        if target.name not in ob.keys():
            return None, f"{target.owner}: custom property {target.name!r} not found (add it first)"
        return ob, None
    if ob.pose is None or ob.pose.bones.get(target.name) is None:
        return None, f"{target.owner}: bone {target.name!r} not found"
    return ob, None


def _head_target(mapping: Mapping):
    """-> (object that moves, pose bone or None for an object head, why missing)."""
    head = mapping.head
    if not head.enabled:
        return None, None, ""
    head.validate()
    ob = bpy.data.objects.get(head.owner)
    if head.kind == "object":
        return (ob, None, "") if ob is not None else (None, None, f"head object {head.object!r} not found")
    pbone = ob.pose.bones.get(head.bone) if ob is not None and ob.pose is not None else None
    if pbone is None:
        return None, None, f"head bone {head.armature}/{head.bone} not found"
    return ob, pbone, ""


def _own_rotation(ob):
    """The object's own rotation (not its delta) as a quaternion, where the head turns from."""
    mode = ob.rotation_mode
    if mode == "QUATERNION":
        return tuple(ob.rotation_quaternion.normalized())
    if mode == "AXIS_ANGLE":
        from mathutils import Quaternion

        angle, *axis = ob.rotation_axis_angle
        return tuple(Quaternion(axis, angle))
    return tuple(ob.rotation_euler.to_quaternion())


def missing_targets(mapping: Mapping) -> list:
    """What the mapping points at that this file does not have, in words (for a UI to show)."""
    out = [why for r in mapping.routes for id_, why in [_resolve(r.target)] if id_ is None]
    why = _head_target(mapping)[2]
    return out + [why] if why else out


def rig_ids(mapping: Mapping) -> list:
    """Every data-block the mapping animates that exists in this file."""
    ids = []
    for r in mapping.routes:
        id_, _ = _resolve(r.target)
        if id_ is not None and id_ not in ids:
            ids.append(id_)
    arm, _, _ = _head_target(mapping)
    if arm is not None and arm not in ids:
        ids.append(arm)
    return ids


def sample_curves(raw: np.ndarray, take_fps: float, mapping: Mapping, scene, k0: int, k1: int):
    """Scene-frame indices [k0, k1) of every mapped curve -> ([(ID, path, index, group, values)], skipped).
    Smoothing sees a margin on both sides, so a window gives the same values as the whole take."""
    fps = scene_fps(scene)
    n = frame_count(len(raw), take_fps, fps)
    pad = int(np.ceil(3 * mapping.smoothing * fps)) + 1 if mapping.smoothing > 0 else 0
    a, b = max(0, k0 - pad), min(n, k1 + pad)
    t_in = np.arange(len(raw)) / take_fps
    t_out = np.arange(a, b) / fps
    col = {c: i for i, c in enumerate(ALL_CHANNELS)}
    values = {c: np.interp(t_out, t_in, raw[:, col[c]]) for c in ALL_CHANNELS}
    # Viseme rigs: routes may start at viseme channels, worked out from the mouth (core/visemes.py).
    values = add_viseme_channels(values, [r.channel for r in mapping.routes], mapping.neutral)
    cut = slice(k0 - a, k0 - a + (k1 - k0))
    out, skipped = [], []
    for target, v in mapping.target_curves(values, fps).items():
        id_, extra = _resolve(target)
        if id_ is None:
            skipped.append(extra)
            continue
        v = v[cut] if extra is None else np.clip(v[cut], extra[0], extra[1])
        out.append((id_, target.data_path, target.index, target.name if target.kind == "bone" else "", v))
    ob, pbone, why = _head_target(mapping)
    if why:
        skipped.append(why)
    elif ob is not None:
        ch = mapping.channel_curves({k: v for k, v in values.items() if k.startswith("head")}, fps)
        if pbone is not None:
            curves = head_curves(ch, mapping.head, pbone.rotation_mode, pbone.name)
            group = mapping.head.bone
        else:
            if ob.rotation_mode == "AXIS_ANGLE" and mapping.head.use_rotation:
                skipped.append(f"{ob.name}: an axis-angle object cannot turn by its delta rotation; set its "
                               "rotation mode to Quaternion or an Euler order")
            curves = head_curves(ch, mapping.head, ob.rotation_mode, frame=_own_rotation(ob))
            group = "OSM-Net Head"
        for path, index, v in curves:
            out.append((ob, path, index, group, v[cut]))
    return out, skipped
