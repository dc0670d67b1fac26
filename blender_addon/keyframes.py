"""Take -> keyframes on the artist's rig: one Action per take, played as a layer over the artist's own.

Each take is its own Action (fake user, named after the take). Where slotted actions exist
(Blender 4.4+) that Action holds a slot per animated data-block (the armature object, each mesh's
shape-key block); before that there is one Action per data-block. The take's raw values (take
fps, ALL_CHANNELS) are stored inside the Action, so a take can be streamed in chunk by chunk,
re-rolled in part, re-keyed after the mapping or the scene frame rate changed, and read back.
The take's Action is never made the active Action of the rig: it plays from an NLA track (layers.py),
so the artist's own Action keeps playing underneath and is never edited. Keys are written in bulk (keyframe_points.add + foreach_set), one per
scene frame at the scene's exact rate (render.fps / fps_base), linear. Only RNA data changes.

Public API
    new_take(mapping, scene, name, fps, start_frame=None, meta=None, activate=True) -> name
    write_chunk(name, values, start, mapping, scene) -> skipped   values (n, 58) ALL_CHANNELS order,
                                                                  start = first take frame
    bake_take(take, mapping, scene, name, start_frame=None, activate=True) -> BakedTake
    replace_take(name, take, mapping, scene, frame_range=None)     re-roll merge (take frames [a, b))
    refresh_take(name, mapping, scene)          re-key from the stored values (mapping / fps changed)
    take_from_action(name) -> core.take.Take     the stored raw take
    list_takes() ; activate_take(name) (plays its layer, mutes overlapping takes) ; rename_take(old, new)
    delete_take(name) ; restore_original(ids) (every take layer muted: only the artist's animation plays)
    take_parts(name) -> [(action, slot, ID)] ; take_ids(name) ; take_curve(name, id_, path, index) -> FCurve
    missing_targets(mapping) -> [str] ; scene_fps(scene) ; frame_count(take_frames, take_fps, scene_fps)
                                                (from rigcurves.py: resolving targets and sampling curves)
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

import bpy
import numpy as np

from . import compat, layers, rigcurves
from .core.errors import UserInputError
from .core.mapping import Mapping
from .rigcurves import frame_count, missing_targets, scene_fps  # noqa: F401  (public API)
from .core.take import ALL_CHANNELS, Take

TAKE_PROP = "osmnet_take"
ORIGINAL_ACTION = "osmnet_original_action"
ORIGINAL_SLOT = "osmnet_original_slot"
_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


class TakeApplyError(UserInputError):
    """A take that cannot be applied to this rig; the message says what to fix."""


@dataclass
class BakedTake:
    name: str
    actions: list
    frames: tuple  # first and last scene frame keyed
    skipped: list = field(default_factory=list)  # targets that were not found, in words


# ---------------------------------------------------------------- keys

_PATCH_MAX = 256  # up to this many keys (and a quarter of the curve) are set one by one


def _patch_keys(kp, frames: np.ndarray, values: np.ndarray) -> bool:
    """A few keys of a regular curve (one key per frame, as this module writes it: streaming, a
    short re-roll) are set one by one instead of rewriting the whole curve. False when the curve
    is not like that (an artist moved keys, a gap, or too many keys to be worth it)."""
    m, n = len(kp), len(frames)
    if n > _PATCH_MAX or 4 * n > m:
        return False
    first, last = kp[0].co[0], kp[m - 1].co[0]
    i0 = int(round(frames[0] - first))
    n_new = max(0, int(round(frames[-1] - last)))
    n_over = n - n_new
    if last - first != m - 1 or i0 < 0 or i0 + n_over > m or (n_new and i0 + n_over != m):
        return False
    if n_over and (kp[i0].co[0] != frames[0] or kp[i0 + n_over - 1].co[0] != frames[n_over - 1]):
        return False
    if n_new:
        kp.add(n_new)
    for j in range(n):
        key = kp[i0 + j]
        key.co = (frames[j], values[j])
        if j >= n_over:
            key.interpolation = "LINEAR"
    return True


def _set_keys(fc, frames: np.ndarray, values: np.ndarray):
    """Keys within [frames[0], frames[-1]] become (frames, values); keys outside stay as they are."""
    kp = fc.keyframe_points
    m = len(kp)
    if m and _patch_keys(kp, frames, values):
        fc.update()  # handles of the touched keys
        return
    if m == 0:  # a new curve: nothing to merge
        kp.add(len(frames))
        co = np.empty(2 * len(frames), np.float32)
        co[0::2], co[1::2] = frames, values
        kp.foreach_set("co", co)
        kp.foreach_set("interpolation", [_LINEAR] * len(frames))  # a list: enums take no buffer
        fc.update()
        return
    co = np.empty(2 * m, np.float32)
    ip = np.empty(m, np.int32)
    kp.foreach_get("co", co)
    kp.foreach_get("interpolation", ip)
    old = co[0::2]
    keep = (old < frames[0] - 0.5) | (old > frames[-1] + 0.5)
    f = np.concatenate([old[keep], frames])
    v = np.concatenate([co[1::2][keep], values])
    interp = np.concatenate([ip[keep], np.full(len(frames), _LINEAR, np.int32)])
    order = np.argsort(f, kind="stable")
    f, v, interp = f[order], v[order], interp[order]
    if len(f) < m:
        kp.clear()
        m = 0
    if len(f) > m:
        kp.add(len(f) - m)
    new_co = np.empty(2 * len(f), np.float32)
    new_co[0::2], new_co[1::2] = f, v
    kp.foreach_set("co", new_co)
    kp.foreach_set("interpolation", interp.tolist())
    fc.update()


# ---------------------------------------------------------------- take Actions and their stored values

def id_type(id_) -> str:
    return "KEY" if isinstance(id_, bpy.types.Key) else "OBJECT"


_id_type = id_type


def _lookup(id_type: str, name: str):
    return (bpy.data.shape_keys if id_type == "KEY" else bpy.data.objects).get(name)


def _take_actions(name: str) -> list:
    acts = [a for a in bpy.data.actions if a.get(TAKE_PROP) == name]
    if not acts:
        raise TakeApplyError(f"there is no take called {name!r} (takes: {list_takes()})")
    return acts


def _parts(name: str) -> list:
    """[(action, slot, ID)] of one take, for the data-blocks that still exist."""
    parts = []
    for a in _take_actions(name):
        for id_type, id_name in json.loads(a.get("osmnet_targets", "[]")):
            id_ = _lookup(id_type, id_name)
            if id_ is not None:
                parts.append((a, compat.ensure_slot(a, id_type, id_name), id_))
    return parts


def take_parts(name: str) -> list:
    return _parts(name)


def take_ids(name: str) -> list:
    return [id_ for _a, _s, id_ in _parts(name)]


def take_curve(name: str, id_, data_path: str, index: int = 0):
    """The take's F-curve for one channel of `id_` (None if the take does not drive it)."""
    for action, slot, owner in _parts(name):
        if owner == id_:
            fcs = compat.fcurve_collection(action, slot, create=False)
            return fcs.find(data_path, index=index) if fcs is not None else None
    return None


def _action_for(name: str, id_):
    """The (action, slot) of take `name` that animates `id_`, made if missing."""
    key = [_id_type(id_), id_.name]
    acts = _take_actions(name)
    for a in acts:
        if key in json.loads(a.get("osmnet_targets", "[]")):
            return a, compat.ensure_slot(a, key[0], key[1])
    if compat.SLOTTED_ACTIONS:
        a = acts[0]
    else:
        a = compat.new_action(f"{name} | {id_.name}")
        for k in ("osmnet_raw", "osmnet_fps", "osmnet_start", "osmnet_meta", TAKE_PROP):
            a[k] = acts[0][k]
        a["osmnet_targets"] = "[]"
        a.use_fake_user = True
    a["osmnet_targets"] = json.dumps(json.loads(a["osmnet_targets"]) + [key])
    return a, compat.ensure_slot(a, key[0], key[1])


def _get_raw(action) -> np.ndarray:
    flat = np.frombuffer(base64.b64decode(action.get("osmnet_raw", "")), dtype="<f4")
    return flat.reshape(-1, len(ALL_CHANNELS)).copy()


def _set_raw(name: str, raw: np.ndarray):
    text = base64.b64encode(np.ascontiguousarray(raw, dtype="<f4").tobytes()).decode("ascii")
    for a in _take_actions(name):
        a["osmnet_raw"] = text


# ---------------------------------------------------------------- takes

def list_takes() -> list:
    names = []
    for a in bpy.data.actions:
        name = a.get(TAKE_PROP)
        if name and name not in names:
            names.append(name)
    return names


def _unique_name(base: str) -> str:
    taken = set(list_takes()) | {a.name for a in bpy.data.actions}
    if base not in taken:
        return base
    i = 2
    while f"{base} ({i})" in taken:
        i += 1
    return f"{base} ({i})"


def new_take(mapping: Mapping, scene, name: str, fps: float, start_frame: int | None = None,
             meta: dict | None = None, activate: bool = True) -> str:
    """An empty take (no keys yet) for the rig the mapping points at; returns its unique name."""
    ids = rigcurves.rig_ids(mapping)
    if not ids:
        raise TakeApplyError("nothing to key: the mapping points at no existing shape key, property or "
                             "head bone; run auto-detect on the face meshes or fix the mapping")
    name = _unique_name(name)
    a = compat.new_action(name if compat.SLOTTED_ACTIONS else f"{name} | {ids[0].name}")
    a.use_fake_user = True
    a[TAKE_PROP] = name
    a["osmnet_fps"] = float(fps)
    a["osmnet_start"] = int(scene.frame_start if start_frame is None else start_frame)
    a["osmnet_meta"] = json.dumps(meta or {}, default=str)
    a["osmnet_raw"] = ""
    # before slotted actions an Action animates one data-block: the first one is this Action's
    a["osmnet_targets"] = "[]" if compat.SLOTTED_ACTIONS else json.dumps([[_id_type(ids[0]), ids[0].name]])
    for id_ in ids:
        _action_for(name, id_)
    if activate:
        activate_take(name)
    return name


def write_chunk(name: str, values, start: int, mapping: Mapping, scene) -> list:
    """Put take frames [start, start + n) (values (n, 58), ALL_CHANNELS order) into take `name` and
    key every scene frame they influence. Chunks may come in any order and may overwrite earlier
    ones (re-roll); a gap before `start` is held at the last value. Returns skipped targets."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2 or values.shape[1] != len(ALL_CHANNELS):
        raise TakeApplyError(f"a chunk must have shape (frames, {len(ALL_CHANNELS)}), got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise TakeApplyError("the chunk has NaN or infinite values")
    if start < 0:
        raise TakeApplyError(f"a chunk cannot start before take frame 0 (start={start})")
    first = _take_actions(name)[0]
    raw = _get_raw(first)
    old_len, end = len(raw), start + len(values)
    if end > len(raw):
        fill = raw[-1] if len(raw) else values[0]
        raw = np.concatenate([raw, np.repeat(fill[None], end - len(raw), axis=0)])
    raw[start:end] = values
    _set_raw(name, raw)
    take_fps = float(first["osmnet_fps"])
    fps = scene_fps(scene)
    # scene frames that interpolate between changed take frames: t * take_fps in (lo - 1, hi)
    lo = min(start, old_len)
    k0 = int(np.floor((lo - 1) / take_fps * fps)) if lo > 0 else 0
    n = frame_count(len(raw), take_fps, fps)
    k1 = n if len(raw) != old_len else int(np.ceil(end / take_fps * fps)) + 1
    skipped = _key_range(name, raw, take_fps, mapping, scene, k0, k1)
    _sync_layer(name)  # the take's strips cover what is keyed so far
    return skipped


def _key_range(name, raw, take_fps, mapping, scene, k0, k1) -> list:
    """(Re)key scene-frame indices [k0, k1), widened by the smoothing reach, clipped to the take."""
    fps = scene_fps(scene)
    n = frame_count(len(raw), take_fps, fps)
    pad = int(np.ceil(3 * mapping.smoothing * fps)) + 1 if mapping.smoothing > 0 else 0
    k0, k1 = max(0, k0 - pad), min(n, k1 + pad)
    if k0 >= k1:
        return []
    start = int(_take_actions(name)[0]["osmnet_start"])
    curves, skipped = rigcurves.sample_curves(raw, take_fps, mapping, scene, k0, k1)
    frames = start + np.arange(k0, k1, dtype=np.float64)
    where = {}  # per data-block: its (action, slot) and existing curves, looked up once
    for id_, path, index, group, v in curves:
        if id_ not in where:
            action, slot = _action_for(name, id_)
            fcs = compat.fcurve_collection(action, slot)
            where[id_] = (action, slot, {(fc.data_path, fc.array_index): fc for fc in fcs})
        action, slot, existing = where[id_]
        fc = existing.get((path, index)) or compat.new_fcurve(action, slot, path, index, group)
        _set_keys(fc, frames, v)
    return skipped


def bake_take(take: Take, mapping: Mapping, scene, name: str, start_frame: int | None = None,
              activate: bool = True) -> BakedTake:
    """A whole take at once: new_take + one write_chunk."""
    name = new_take(mapping, scene, name, take.fps, start_frame, take.meta, activate)
    skipped = write_chunk(name, take.array(ALL_CHANNELS), 0, mapping, scene)
    start = int(_take_actions(name)[0]["osmnet_start"])
    n = frame_count(take.frames, take.fps, scene_fps(scene))
    return BakedTake(name, _take_actions(name), (start, start + n - 1), skipped)


def replace_take(name: str, take: Take, mapping: Mapping, scene, frame_range=None) -> list:
    """Re-roll merge: take frames [a, b) of `take` (all of it when None) replace those of take
    `name`; keys outside the scene frames they influence keep their values."""
    first = _take_actions(name)[0]
    if abs(take.fps - float(first["osmnet_fps"])) > 1e-6:
        raise TakeApplyError(f"take {name!r} runs at {first['osmnet_fps']} fps, the new values at {take.fps}: "
                             "resample them first")
    a, b = frame_range if frame_range is not None else (0, take.frames)
    return write_chunk(name, take.array(ALL_CHANNELS)[a:b], a, mapping, scene)


def refresh_take(name: str, mapping: Mapping, scene) -> list:
    """Re-key the whole take from its stored values: after a mapping or scene fps change."""
    first = _take_actions(name)[0]
    raw = _get_raw(first)
    for action, slot, _id in _parts(name):
        for fc in list(compat.fcurve_collection(action, slot) or ()):
            fc.keyframe_points.clear()
    if not len(raw):
        return []
    skipped = _key_range(name, raw, float(first["osmnet_fps"]), mapping, scene, 0, len(raw) * 10**6)
    for action, slot, id_ in _parts(name):  # controls the mapping no longer drives: gone, and at rest
        fcs = compat.fcurve_collection(action, slot, create=False)
        for fc in [fc for fc in (fcs or ()) if not len(fc.keyframe_points)]:
            layers.rest_channel(id_, fc.data_path, fc.array_index)
            fcs.remove(fc)
    _sync_layer(name)
    return skipped


def take_from_action(name: str) -> Take:
    first = _take_actions(name)[0]
    raw = _get_raw(first)
    if not len(raw):
        raise TakeApplyError(f"take {name!r} has no values yet")
    return Take(float(first["osmnet_fps"]), {c: raw[:, i] for i, c in enumerate(ALL_CHANNELS)},
                json.loads(first.get("osmnet_meta", "{}")))


def rename_take(old: str, new: str) -> str:
    """Rename a take (its Actions follow); refuses an empty or already used name."""
    new = new.strip()
    if not new:
        raise TakeApplyError("a take needs a name")
    if new != old and (new in list_takes() or new in bpy.data.actions):
        raise TakeApplyError(f"there already is a take or Action called {new!r}")
    ids = take_ids(old)
    for a in _take_actions(old):
        a[TAKE_PROP] = new
        a.name = new if a.name == old else a.name.replace(old, new, 1)
    layers.rename(old, new, ids)
    return new


PLAY_PENDING = "osmnet_play"  # chosen before its first keys arrived: play it once it has a layer


def _sync_layer(name: str):
    parts = _parts(name)
    try:
        layers.sync(name, parts)
        first = _take_actions(name)[0]
        if first.get(PLAY_PENDING) and layers.has_tracks(name, parts):
            layers.play(name, parts)
            del first[PLAY_PENDING]
    except layers.LayerError as e:
        raise TakeApplyError(str(e)) from None


def activate_take(name: str):
    """Play take `name` as a layer over the artist's animation (layers.play): its tracks unmute,
    other takes overlapping it in time are muted. No Action is assigned or edited."""
    parts = _parts(name)
    restore_original([id_ for _a, _s, id_ in parts], mute=False)
    _take_actions(name)[0][PLAY_PENDING] = True
    _sync_layer(name)


def restore_original(ids, mute: bool = True):
    """Only the artist's own animation plays on `ids`: every take layer is muted (takes stay).
    A take Action that an older version of the add-on made the active Action is taken off and
    the Action the data-block had before comes back."""
    for id_ in ids:
        action, _slot = compat.active_action(id_)
        if action is not None and TAKE_PROP in action:
            original = id_.get(ORIGINAL_ACTION)
            slot = None
            if original is not None and compat.SLOTTED_ACTIONS:
                slot = original.slots.get(id_.get(ORIGINAL_SLOT, ""))
            compat.assign_action(id_, original, slot)
        id_.pop(ORIGINAL_ACTION, None)
        id_.pop(ORIGINAL_SLOT, None)
    if mute:
        layers.mute_all(ids)


def delete_take(name: str):
    """Remove a take's layer and Action(s); the artist's animation is not touched."""
    parts = _parts(name)
    restore_original([id_ for _a, _s, id_ in parts], mute=False)
    layers.remove(name, [id_ for _a, _s, id_ in parts])
    for action in _take_actions(name):
        bpy.data.actions.remove(action)
