"""The takes list: each take is an item in scene.osmnet.takes and its own Action(s) with a fake
user (keyframes.py, add-on core: one Action per take, a slot per animated data-block), so a take
survives being unassigned and the artist's own Actions are never touched.

Curves arrive chunk by chunk: the first chunk of a take creates it (keyframes.new_take), every
chunk is keyed at once (keyframes.write_chunk). The raw take (frames x 58 channels at the take's
fps) lives inside the take's Actions (one home: keyframes), so re-roll, export and the 2D render
read it back with keyframes.take_from_action.
"""
from __future__ import annotations

import os
from pathlib import Path

import bpy
import numpy as np

from . import keyframes
from .core import mapping
from .core.take import ALL_CHANNELS, Take, TakeError, read_livelink_csv, write_livelink_csv
from .core.errors import UserInputError
from .strips import scene_fps


# ------------------------------------------------------------------ curves and raw values

def read_values(item):
    """(values (frames, 58) float32, fps) of a take item."""
    if item is None or item.action is None:
        raise UserInputError("The take has no curves yet")
    try:
        take = keyframes.take_from_action(item.name)
    except keyframes.TakeApplyError as e:
        raise UserInputError(str(e)) from None
    return take.array(ALL_CHANNELS).astype(np.float32), take.fps


def rig_mapping(target) -> mapping.Mapping:
    """Which channel drives what on the face: found from shape key and head bone names."""
    if target is None:
        raise UserInputError("Choose the face that plays the takes (or Create Preview Head)")
    if target.type == 'ARMATURE':
        meshes = [c for c in target.children_recursive if c.type == 'MESH']
        return mapping.auto_mapping(meshes, armature=target)
    return mapping.auto_mapping([target])


def target_problem(target) -> str | None:
    """Why takes cannot be keyed on `target` (cheap enough for poll)."""
    if target is None:
        return "Choose the face that plays the takes (or Create Preview Head)"
    m = rig_mapping(target)
    if not m.routes and not m.head.enabled:
        return f"{target.name} has no ARKit shape keys or head bone to animate"
    return None


def _unique_name(scene, base: str) -> str:
    taken = set(keyframes.list_takes()) | {t.name for t in scene.osmnet.takes} | {a.name for a in bpy.data.actions}
    name, i = base, 2
    while name in taken:
        name, i = f"{base} ({i})", i + 1
    return name


def _new_item(scene, name: str, start_frame: int, fps: float, frames: int, **fields):
    item = scene.osmnet.takes.add()
    item.name = _unique_name(scene, name)
    item.start_frame, item.fps, item.frames = start_frame, fps, frames
    for k, v in fields.items():
        setattr(item, k, v)
    return item


def _write(scene, item, start: int, values: np.ndarray):
    """Key take frames [start, start + n) of the item now (its Actions are made on the first chunk)."""
    rig = rig_mapping(scene.osmnet.target)
    try:
        if item.action is None:
            active = scene.osmnet.active() == item
            name = keyframes.new_take(rig, scene, item.name, item.fps, start_frame=item.start_frame,
                                      meta={"seed": item.seed, "diversity": item.diversity}, activate=active)
            item.action = next(a for a in bpy.data.actions if a.get(keyframes.TAKE_PROP) == name)
            if name != item.name:
                item.name = name
        keyframes.write_chunk(item.name, values, start, rig, scene)
    except keyframes.TakeApplyError as e:
        raise UserInputError(str(e)) from None
    item.received = max(item.received, start + values.shape[0])


def renamed(item):
    """The item was renamed in the list: the take's Actions follow (a duplicate name is refused)."""
    old = item.action.get(keyframes.TAKE_PROP) if item.action is not None else None
    if not old or old == item.name:
        return
    try:
        new = keyframes.rename_take(old, item.name)
    except keyframes.TakeApplyError:
        new = old
    if new != item.name:
        item.name = new


def _job_items(scene, job_id):
    return [] if scene is None else [t for t in scene.osmnet.takes if t.job == job_id]


# ------------------------------------------------------------------ generation bookkeeping (runtime calls these)

def begin_generated(context, job_id, count, start_frame, fps, frames, seed, diversity, audio=None):
    scene = context.scene
    s = scene.osmnet
    first = len(s.takes)
    stem = Path(audio.filepath).stem if audio else "Take"
    for k in range(count):
        _new_item(scene, f"{stem} seed {seed} #{k + 1}", start_frame, fps, frames, seed=seed,
                  diversity=diversity, state='GENERATING', job=job_id, job_take=k,
                  audio_path=audio.filepath if audio else "", audio_offset=audio.offset if audio else 0.0)
    s.active_take = first


def begin_reroll(context, job_id, base, seed, first, end):
    scene = context.scene
    s = scene.osmnet
    values, fps = read_values(base)
    item = _new_item(scene, f"{base.name} re-roll {first}-{end - 1}", base.start_frame, fps, values.shape[0],
                     seed=seed, diversity=s.diversity, state='GENERATING', job=job_id, job_take=0,
                     audio_path=base.audio_path, audio_offset=base.audio_offset)
    _write(scene, item, 0, values)  # start from the base; the re-rolled range is overwritten as it arrives
    item.received = 0
    s.active_take = len(s.takes) - 1


def set_expected_frames(scene, job_id, frames):
    for item in _job_items(scene, job_id):
        item.frames = frames


def apply_chunk(scene, job_id, take_index, start, values):
    for item in _job_items(scene, job_id):
        if item.job_take == take_index:
            _write(scene, item, start, np.asarray(values, dtype=np.float32))
            return


def take_done(scene, job_id, take_index):
    for item in _job_items(scene, job_id):
        if item.job_take == take_index:
            item.state = 'READY'


def end_job(scene, job_id, failed: bool):
    """Close the job's items: complete ones become READY, empty ones are removed; returns a summary."""
    items = _job_items(scene, job_id)
    if not items:
        return None
    done = 0
    for item in items:
        item.job = ""
        if item.received > 0 and item.state != 'FAILED':
            item.state = 'READY' if not failed or item.received >= item.frames else 'FAILED'
            done += item.state == 'READY'
        else:
            item.state = 'FAILED'
    s = scene.osmnet
    for i in reversed(range(len(s.takes))):
        if s.takes[i].state == 'FAILED' and s.takes[i].received == 0:
            _remove(scene, i)
    if 0 <= s.active_take < len(s.takes):
        try:
            play(bpy.context, s.takes[s.active_take])
        except UserInputError:
            pass  # e.g. the rig is in NLA tweak mode; the take is still in the list
    return f"{done} take{'s' if done != 1 else ''} ready" if done else None


# ------------------------------------------------------------------ list actions

def play(context, item):
    """Make the face play the take (selecting a take in the list calls this)."""
    if item is None or item.action is None:
        return
    try:
        keyframes.activate_take(item.name)
    except (keyframes.TakeApplyError, RuntimeError) as e:
        raise UserInputError(str(e)) from None


def delete_take(context, index: int) -> str:
    return _remove(context.scene, index)


def _remove(scene, index: int) -> str:
    s = scene.osmnet
    item = s.takes[index]
    name, has_curves = item.name, item.action is not None
    s.takes.remove(index)
    if has_curves and name in keyframes.list_takes():
        keyframes.delete_take(name)
    if s.active_take >= len(s.takes):
        s.active_take = len(s.takes) - 1
    return name


def ready_problem(item) -> str | None:
    if item is None:
        return "Select a take in the list"
    if item.state == 'GENERATING':
        return "The take is still being generated"
    if item.action is None or item.received == 0:
        return "The take has no curves; generate or import it again"
    return None


def reroll_range(context, item):
    """The scene preview range as take frames [first, end), clipped to the take."""
    scene = context.scene
    first = max(0, scene.frame_preview_start - item.start_frame)
    end = min(item.frames, scene.frame_preview_end + 1 - item.start_frame)
    return first, end


def reroll_problem(context) -> str | None:
    s, scene = context.scene.osmnet, context.scene
    item = s.active()
    problem = ready_problem(item)
    if problem:
        return problem
    if not item.audio_path:
        return "This take has no speech (it was imported); re-roll needs a generated take"
    if not scene.use_preview_range:
        return "Set the preview range (Alt+P in the timeline) around the frames to re-roll"
    first, end = reroll_range(context, item)
    if end - first < 2:
        return f"The preview range does not overlap {item.name} (frames {item.start_frame}-" \
               f"{item.start_frame + item.frames - 1})"
    return None


def import_take(context, path: str, csv_fps: float = 60.0):
    scene = context.scene
    path = bpy.path.abspath(path)
    try:
        take = (read_livelink_csv(path, fps=csv_fps) if path.lower().endswith(".csv")
                else Take.load(path))
    except TakeError as e:
        raise UserInputError(str(e)) from None
    fps = scene_fps(scene)
    values = take.sample_times(np.arange(int(round(take.duration * fps))) / fps)
    item = _new_item(scene, Path(path).stem, scene.frame_current, fps, values.shape[0])
    _write(scene, item, 0, values.astype(np.float32))
    s = scene.osmnet
    s.active_take = len(s.takes) - 1
    return item


def export_take(context, path: str, fmt: str) -> str:
    item = context.scene.osmnet.active()
    problem = ready_problem(item)
    if problem:
        raise UserInputError(problem)
    values, fps = read_values(item)
    take = Take(fps, {n: values[:, i] for i, n in enumerate(ALL_CHANNELS)},
                         {"name": item.name, "seed": item.seed, "diversity": item.diversity})
    path = bpy.path.abspath(path)
    try:
        if fmt == 'CSV':
            write_livelink_csv(take, path)
        else:
            take.save(path)
    except OSError as e:
        raise UserInputError(f"Could not write {path}: {e.strerror}") from None
    return os.path.abspath(path)


def create_preview_head(context):
    from . import preview_head

    try:
        rig, _mesh = preview_head.create_preview_head(context.scene)
    except preview_head.PreviewHeadError as e:
        raise UserInputError(str(e)) from None
    context.scene.osmnet.target = rig
    return rig
