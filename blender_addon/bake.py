"""Bake a take into the artist's own Actions, with fewer keys, so it can be edited like hand keys.

For every data-block the take animates, its curves are written into the Action the data-block
plays itself (one is made, "<name> Action", if it has none): inside the take's frames the keys of
those curves are replaced by the take's, reduced to the keys needed to stay within `tolerance`
of what plays now (core/keyreduce.py, linear keys); keys outside the take's frames and every
other curve of the Action (the body, hand-keyed shape keys) stay exactly as they were. What
plays now includes the take's influence. The take's layer is muted afterwards, so the baked keys
are not doubled; the take itself stays in the list. Only RNA data changes: undoable.

Public API
    bake_take_to_actions(name, tolerance=0.005) -> BakeReport
"""
from __future__ import annotations

from dataclasses import dataclass, field

import bpy
import numpy as np

from . import compat, keyframes, layers
from .core.keyreduce import max_error, reduce_keys

_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


@dataclass
class BakeReport:
    take: str
    actions: list = field(default_factory=list)   # names of the Actions written to
    curves: int = 0
    keys_before: int = 0                            # one per frame, as the take plays
    keys_after: int = 0
    worst_error: float = 0.0

    def summary(self) -> str:
        return (f"Baked {self.take} into {', '.join(self.actions)}: {self.curves} curves, "
                f"{self.keys_before} -> {self.keys_after} keys (max error {self.worst_error:.4f})")


def _artist_action(id_):
    """(action, slot) the data-block plays itself; a new Action when it has none. A take Action
    left active by an older version of the add-on is put back to the artist's first."""
    keyframes.restore_original([id_])
    action, slot = compat.active_action(id_)
    if action is not None and keyframes.TAKE_PROP in action:
        raise keyframes.TakeApplyError(f"{id_.name} plays take {action[keyframes.TAKE_PROP]!r} as its own Action; "
                                       "use Restore My Animation first")
    if action is None:
        label = id_.user.name if isinstance(id_, bpy.types.Key) and id_.user is not None else id_.name
        action = compat.new_action(f"{label}Action" if not isinstance(id_, bpy.types.Key) else f"{label} KeysAction")
        slot = compat.ensure_slot(action, keyframes.id_type(id_), id_.name)
        compat.assign_action(id_, action, slot)
    elif compat.SLOTTED_ACTIONS and slot is None:
        slot = compat.ensure_slot(action, keyframes.id_type(id_), id_.name)
        compat.assign_action(id_, action, slot)
    return action, slot


def _write(fc, frames: np.ndarray, values: np.ndarray):
    """Keys of `fc` inside [frames[0], frames[-1]] become (frames, values), linear; the rest stay."""
    kp = fc.keyframe_points
    m = len(kp)
    co = np.empty(2 * m, np.float32)
    kp.foreach_get("co", co)
    inside = np.flatnonzero((co[0::2] >= frames[0] - 0.5) & (co[0::2] <= frames[-1] + 0.5))
    for i in inside[::-1]:
        kp.remove(kp[int(i)], fast=True)
    first = len(kp)
    kp.add(len(frames))
    new = np.empty(2 * len(frames), np.float32)
    new[0::2], new[1::2] = frames, values
    sub = kp[first:] if hasattr(kp, "__getitem__") else None
    for j, key in enumerate(sub):
        key.co = (new[2 * j], new[2 * j + 1])
        key.interpolation = 'LINEAR'
    fc.update()  # sorts the keys and recomputes handles


def bake_take_to_actions(name: str, tolerance: float = 0.005) -> BakeReport:
    parts = keyframes.take_parts(name)
    if not parts:
        raise keyframes.TakeApplyError(f"take {name!r} animates nothing in this file")
    report = BakeReport(name)
    for action, slot, id_ in parts:
        track = id_.animation_data.nla_tracks.get(layers.track_name(name)) if id_.animation_data else None
        influence = layers.influence(track.strips[0]) if track is not None and len(track.strips) else 1.0
        curves = [fc for fc in compat.fcurve_collection(action, slot, create=False) or () if len(fc.keyframe_points)]
        if not curves:
            continue
        mine, my_slot = _artist_action(id_)
        target = compat.fcurve_collection(mine, my_slot)
        existing = {(fc.data_path, fc.array_index): fc for fc in target}
        for fc in curves:
            co = np.empty(2 * len(fc.keyframe_points), np.float32)
            fc.keyframe_points.foreach_get("co", co)
            frames, values = co[0::2].astype(np.float64), co[1::2].astype(np.float64)
            if influence < 1.0:
                found = layers.channel_default(id_, fc.data_path, fc.array_index)
                d = float(found[2]) if found is not None else 0.0
                values = d + influence * (values - d)
            keep = reduce_keys(frames, values, tolerance)
            report.keys_before += len(frames)
            report.keys_after += len(keep)
            report.worst_error = max(report.worst_error, max_error(frames, values, keep))
            out = existing.get((fc.data_path, fc.array_index))
            if out is None:
                group = fc.group.name if fc.group is not None else ""
                out = compat.new_fcurve(mine, my_slot, fc.data_path, fc.array_index, group)
            _write(out, frames[keep], values[keep])
            report.curves += 1
        if mine.name not in report.actions:
            report.actions.append(mine.name)
        if track is not None:
            track.mute = True
    return report
