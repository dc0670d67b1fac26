"""The takes list: each take is an item in scene.osmnet.takes and its own Action(s) with a fake
user (keyframes.py: one Action per take, a slot per animated data-block), played as an NLA layer
over the artist's own Action (layers.py), so the artist's animation keeps playing and is never
touched. Selecting a take plays it; Restore My Animation mutes them all; a re-roll can be
accepted into its take; Bake to My Action writes a take into the artist's Actions (bake.py).

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

from . import bake, keyframes, layers, rigcurves, rigmap
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


def rig_mapping(target, scene=None) -> mapping.Mapping:
    """Which channel drives what on the face: the Mapping panel's rules (scene's settings) on
    the target's shape key and bone names (rigmap.py)."""
    if target is None:
        raise UserInputError("Choose the face that plays the takes (or Create Preview Head)")
    settings = (scene or bpy.context.scene).osmnet
    try:
        return rigmap.rules(settings, target).build(mapping.shape_key_names(rigmap.face_meshes(target)))
    except mapping.MappingError as e:
        raise UserInputError(str(e)) from None


def target_problem(target) -> str | None:
    """Why takes cannot be keyed on `target` (cheap enough for poll)."""
    if target is None:
        return "Choose the face that plays the takes (or Create Preview Head)"
    try:
        m = rig_mapping(target)
    except UserInputError as e:
        return str(e)
    if not m.routes and not m.head.enabled:
        return (f"{target.name} has no ARKit shape keys or head bone to animate: route channels by hand "
                "in the Mapping panel or choose a head in the Head panel")
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
    rig = rig_mapping(scene.osmnet.target, scene)
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
    for other in bpy.context.scene.osmnet.takes:  # re-rolls keep pointing at their take
        if other.reroll_of == old:
            other.reroll_of = new


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


def scene_frame(item, take_frame: int) -> int:
    """Scene frame where take frame `take_frame` of the item plays."""
    return item.start_frame + int(round(take_frame * scene_fps(bpy.context.scene) / item.fps)) if item.fps \
        else item.start_frame + take_frame


def begin_reroll(context, job_id, base, seed, first, end, diversity=None):
    scene = context.scene
    s = scene.osmnet
    values, fps = read_values(base)
    label = f"{scene_frame(base, first)}-{scene_frame(base, end - 1)}"  # scene frames, as the artist chose them
    item = _new_item(scene, f"{base.name} re-roll {label}", base.start_frame, fps, values.shape[0],
                     seed=seed, diversity=s.diversity if diversity is None else diversity, state='GENERATING',
                     job=job_id, job_take=0, audio_path=base.audio_path, audio_offset=base.audio_offset,
                     reroll_of=base.name, reroll_first=first, reroll_end=end, influence=base.influence)
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
    if not done:
        return None
    message = f"{done} take{'s' if done != 1 else ''} ready"
    warning = rigmap.view(scene).warning if s.target is not None else None
    return f"{message}; {warning.split(':')[0]}: see the Mapping panel" if warning else message


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
    ratio = item.fps / scene_fps(scene) if item.fps else 1.0
    first = max(0, int(round((scene.frame_preview_start - item.start_frame) * ratio)))
    end = min(item.frames, int(round((scene.frame_preview_end + 1 - item.start_frame) * ratio)))
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


# ------------------------------------------------------------------ take layer, re-roll accept, bake (addon-anim)

def _face_ids(scene) -> list:
    """Every data-block the takes of this scene animate, plus what the Face's mapping would."""
    ids = []
    for item in scene.osmnet.takes:
        if item.action is not None and item.name in keyframes.list_takes():
            ids += [i for i in keyframes.take_ids(item.name) if i not in ids]
    target = scene.osmnet.target
    if target is not None:
        try:
            ids += [i for i in rigcurves.rig_ids(rig_mapping(target, scene)) if i not in ids]
        except UserInputError:
            pass
    return ids


def influence_changed(item):
    if item.action is None or item.name not in keyframes.list_takes():
        return
    layers.set_influence(item.name, keyframes.take_parts(item.name), item.influence)


def my_keys_changed(context):
    scene = context.scene
    try:
        layers.set_artist_blend(_face_ids(scene), scene.osmnet.my_keys == 'COMBINE')
    except layers.LayerError as e:
        raise UserInputError(str(e)) from None


def is_playing(item) -> bool:
    if item is None or item.action is None or item.name not in keyframes.list_takes():
        return False
    return layers.is_playing(item.name, keyframes.take_parts(item.name))


def restore_my_animation(context) -> int:
    """Only the artist's own animation plays: every take layer is muted (the takes stay)."""
    ids = _face_ids(context.scene)
    keyframes.restore_original(ids)
    return len(ids)


def accept_problem(item) -> str | None:
    problem = ready_problem(item)
    if problem:
        return problem
    if not item.reroll_of:
        return "Select a re-roll (made by Re-roll Preview Range) to accept it into its take"
    if item.reroll_of not in bpy.context.scene.osmnet.takes:
        return f"The take {item.reroll_of!r} this re-roll came from is gone"
    return None


def accept_reroll(context) -> str:
    """Merge the re-rolled frames into the take they came from and drop the re-roll take."""
    scene = context.scene
    s = scene.osmnet
    item = s.active()
    problem = accept_problem(item)
    if problem:
        raise UserInputError(problem)
    base_name, first, end = item.reroll_of, item.reroll_first, item.reroll_end
    try:
        rerolled = keyframes.take_from_action(item.name)
        keyframes.replace_take(base_name, rerolled, rig_mapping(s.target, scene), scene, frame_range=(first, end))
    except keyframes.TakeApplyError as e:
        raise UserInputError(str(e)) from None
    _remove(scene, s.active_take)
    index = next(i for i, t in enumerate(s.takes) if t.name == base_name)
    s.active_take = index  # plays the take, now with the accepted frames
    return base_name


def bake_active(context, tolerance: float) -> bake.BakeReport:
    item = context.scene.osmnet.active()
    problem = ready_problem(item)
    if problem:
        raise UserInputError(problem)
    try:
        return bake.bake_take_to_actions(item.name, tolerance)
    except (keyframes.TakeApplyError, layers.LayerError) as e:
        raise UserInputError(str(e)) from None


def rekey_all(context) -> int:
    """Key every take again with the current mapping (after mapping or frame rate changes)."""
    scene = context.scene
    rig = rig_mapping(scene.osmnet.target, scene)
    n = 0
    for item in scene.osmnet.takes:
        if item.action is not None and item.state != 'GENERATING' and item.name in keyframes.list_takes():
            keyframes.refresh_take(item.name, rig, scene)
            layers.set_influence(item.name, keyframes.take_parts(item.name), item.influence)
            n += 1
    scene.osmnet.mapping.stale = False
    if 0 <= scene.osmnet.active_take < len(scene.osmnet.takes):
        play(context, scene.osmnet.active())
    return n


# ------------------------------------------------------------------ mapping panel actions (addon-anim)

def capture_neutral(context, channel: str = "", clear: bool = False) -> int:
    """Neutral of one channel (or every face channel) from the selected take: the mean over the
    preview range when it is set, else the value at the current frame."""
    scene = context.scene
    s = scene.osmnet
    if clear:
        rigmap.ensure_rows(s.mapping)
        rows = [r for r in s.mapping.rows if r.channel == channel or not channel]
        for r in rows:
            r.neutral = 0.0
        return len(rows)
    item = s.active()
    problem = ready_problem(item)
    if problem:
        raise UserInputError(problem)
    values, _fps = read_values(item)
    if scene.use_preview_range:
        first, end = reroll_range(context, item)
    else:
        k = int(round((scene.frame_current - item.start_frame) * item.fps / scene_fps(scene)))
        first, end = k, k + 1
    first, end = max(0, first), min(values.shape[0], end)
    if end <= first:
        raise UserInputError(f"The {'preview range' if scene.use_preview_range else 'current frame'} is outside "
                             f"{item.name}; move it onto a stretch where the face rests")
    return rigmap.capture_neutral(scene, values, first, end, channel)


def _preset_path(context, path: str) -> str:
    path = path or context.scene.osmnet.mapping.preset_path
    if not path:
        raise UserInputError("Choose a preset file first")
    path = bpy.path.abspath(path)
    if path.startswith("//") or not os.path.isabs(path):
        raise UserInputError("Save the .blend file first or give the preset an absolute path")
    return path


def save_mapping(context, path: str = "") -> str:
    path = _preset_path(context, path)
    try:
        return str(mapping.save_preset(rigmap.rules(context.scene.osmnet), path))
    except mapping.MappingError as e:
        raise UserInputError(str(e)) from None
    except OSError as e:
        raise UserInputError(f"Could not write {path}: {e.strerror}") from None


def load_mapping(context, path: str = "") -> str:
    path = _preset_path(context, path)
    try:
        rules = mapping.load_preset(path)
    except mapping.MappingError as e:
        raise UserInputError(str(e)) from None
    rigmap.set_rules(context.scene.osmnet, rules)
    context.scene.osmnet.mapping.stale = True
    return path
