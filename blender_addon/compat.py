"""Every difference between the Blender versions the add-on supports (4.2 LTS ... 5.2 LTS).

Detected by feature, never by version number, so a point release that back-ports or drops
something still takes the right path. Nothing else in the add-on branches on the Blender version.

  Actions    4.4+ slotted actions (slots, layers/strips/channelbags); 5.0 removed Action.fcurves,
             so fcurves are made through a channelbag there. Before 4.4: action.fcurves + id_root.
  NLA        4.4+ NLA strips play one slot of their Action (strip.action_slot).
  Sequencer  `strips` (4.4+) vs `sequences` (removed in 5.0); each has new_sound / new_image;
             5.2 renamed frame_final_start/end to left_handle/right_handle (old names deprecated).
  EEVEE      'BLENDER_EEVEE_NEXT' (4.2-4.x) vs 'BLENDER_EEVEE' (5.x).
  Video      5.0 added image_settings.media_type ('VIDEO' must be chosen before 'FFMPEG').

Public API
    SLOTTED_ACTIONS                         bool
    new_action(name) -> Action
    ensure_slot(action, id_type, name) -> ActionSlot | None      (None before 4.4)
    action_slots(action) -> list[(slot | None, id_type, slot name)]
    fcurve_collection(action, slot) -> the fcurves collection to create / find curves in
    new_fcurve(action, slot, data_path, index=0, group="") -> FCurve
    iter_fcurves(action) -> every FCurve of the action (all slots)
    assign_action(id_, action, slot=None) / active_action(id_) -> (action, slot)
    set_strip_slot(nla_strip, slot) / strip_slot(nla_strip)   the slot of its Action an NLA strip plays
    sequencer_strips(scene) ; all_strips(scene) ; strip_range(strip) ; strip_span(strip)
    strip_content_start(strip) ; set_strip_range(strip, first, end)
    new_sound_strip(scene, name, path, channel, frame_start)
    new_image_strip(scene, name, path, channel, frame_start)
    eevee_engine() -> str ; set_eevee(scene)
    set_video_output(scene, filepath, container="MPEG4", codec="H264", audio_codec="AAC")
"""
from __future__ import annotations

import bpy

SLOTTED_ACTIONS = "slots" in bpy.types.Action.bl_rna.properties \
    and "action_slot" in bpy.types.AnimData.bl_rna.properties
_LEGACY_FCURVES = "fcurves" in bpy.types.Action.bl_rna.properties


# ---------------------------------------------------------------- actions

def new_action(name: str):
    return bpy.data.actions.new(name)


def ensure_slot(action, id_type: str, name: str):
    """The slot of `action` for data-blocks of `id_type` ('OBJECT', 'KEY', ...) called `name`."""
    if not SLOTTED_ACTIONS:
        action.id_root = id_type
        return None
    for slot in action.slots:
        if slot.target_id_type == id_type and slot.name_display == name:
            return slot
    return action.slots.new(id_type=id_type, name=name)


def action_slots(action):
    """[(slot or None, id_type, name)] so callers can walk slots the same way on every version."""
    if not SLOTTED_ACTIONS:
        return [(None, action.id_root, action.name)]
    return [(s, s.target_id_type, s.name_display) for s in action.slots]


def _channelbag(action, slot, create: bool):
    for layer in action.layers:
        for strip in layer.strips:
            bag = strip.channelbag(slot) if hasattr(strip, "channelbag") else None
            if bag is not None:
                return bag
    if not create:
        return None
    layer = action.layers[0] if len(action.layers) else action.layers.new("Layer")
    strip = layer.strips[0] if len(layer.strips) else layer.strips.new(type="KEYFRAME")
    return strip.channelbags.new(slot)


def fcurve_collection(action, slot, create: bool = True):
    """Where the F-curves of one slot live: a channelbag's fcurves (4.4+) or action.fcurves."""
    if SLOTTED_ACTIONS:
        bag = _channelbag(action, slot, create)
        return bag.fcurves if bag is not None else None
    return action.fcurves


def new_fcurve(action, slot, data_path: str, index: int = 0, group: str = ""):
    if not SLOTTED_ACTIONS:
        return action.fcurves.new(data_path, index=index, action_group=group)
    bag = _channelbag(action, slot, create=True)
    fc = bag.fcurves.new(data_path, index=index)
    if group:
        grp = bag.groups.get(group) or bag.groups.new(group)
        fc.group = grp
    return fc


def iter_fcurves(action):
    if SLOTTED_ACTIONS:
        for layer in action.layers:
            for strip in layer.strips:
                for bag in getattr(strip, "channelbags", ()):
                    yield from bag.fcurves
    elif _LEGACY_FCURVES:
        yield from action.fcurves


def assign_action(id_, action, slot=None):
    """Make `action` (and its slot) what animates `id_`; None clears it. Normal RNA: undoable."""
    ad = id_.animation_data or id_.animation_data_create()
    if ad.use_tweak_mode:
        raise RuntimeError(f"{id_.name} is in NLA tweak mode: leave tweak mode before switching takes")
    ad.action = action
    if SLOTTED_ACTIONS and action is not None and slot is not None:
        ad.action_slot = slot


def active_action(id_):
    ad = id_.animation_data
    if ad is None or ad.action is None:
        return None, None
    return ad.action, (ad.action_slot if SLOTTED_ACTIONS else None)


def set_strip_slot(strip, slot):
    """An NLA strip plays one slot of its Action where slots exist (Blender picks one by name
    otherwise, which may be another data-block's); before 4.4 the Action is the slot."""
    if SLOTTED_ACTIONS and slot is not None and "action_slot" in strip.bl_rna.properties:
        strip.action_slot = slot


def strip_slot(strip):
    return strip.action_slot if SLOTTED_ACTIONS and "action_slot" in strip.bl_rna.properties else None


# ---------------------------------------------------------------- sequencer

def sequencer_strips(scene):
    """The top-level strip collection of the scene's sequencer (created if missing)."""
    se = scene.sequence_editor or scene.sequence_editor_create()
    return se.strips if hasattr(se, "strips") else se.sequences


def all_strips(scene):
    """Every strip, inside meta strips too (`strips_all` 4.4+, `sequences_all` before; [] if none)."""
    se = scene.sequence_editor
    if se is None:
        return []
    return list(se.strips_all if hasattr(se, "strips_all") else se.sequences_all)


def strip_range(strip) -> tuple:
    """(first, end) timeline frames a strip plays, after trimming: `left_handle`/`right_handle`
    in 5.2+, `frame_final_start`/`frame_final_end` before (deprecated there)."""
    if "left_handle" in strip.bl_rna.properties:
        return strip.left_handle, strip.right_handle
    return strip.frame_final_start, strip.frame_final_end


def strip_span(strip) -> tuple:
    """(first, end, offset_start): the played frames and how many content frames the left
    handle trims (`left_handle_offset` in 5.2+, `frame_offset_start` before)."""
    first, end = strip_range(strip)
    if "left_handle_offset" in strip.bl_rna.properties:
        return first, end, strip.left_handle_offset
    return first, end, strip.frame_offset_start


def strip_content_start(strip) -> float:
    """Timeline frame where the strip's content begins (`content_start` 5.2+, `frame_start` before)."""
    return strip.content_start if "content_start" in strip.bl_rna.properties else strip.frame_start


def set_strip_range(strip, first: int, end: int):
    """Trim a strip to play timeline frames [first, end) (`left/right_handle` 5.2+, `frame_final_*` before)."""
    if "left_handle" in strip.bl_rna.properties:
        strip.left_handle, strip.right_handle = first, end
    else:
        strip.frame_final_start, strip.frame_final_end = first, end


def new_sound_strip(scene, name: str, filepath: str, channel: int = 1, frame_start: int = 1):
    return sequencer_strips(scene).new_sound(name, filepath, channel, frame_start)


def new_image_strip(scene, name: str, filepath: str, channel: int = 2, frame_start: int = 1):
    return sequencer_strips(scene).new_image(name, filepath, channel, frame_start)


# ---------------------------------------------------------------- rendering

def eevee_engine() -> str:
    items = {e.identifier for e in bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items}
    for ident in ("BLENDER_EEVEE_NEXT", "BLENDER_EEVEE"):
        if ident in items:
            return ident
    raise RuntimeError(f"this Blender has no EEVEE render engine (engines: {sorted(items)})")


def set_eevee(scene):
    scene.render.engine = eevee_engine()


def set_video_output(scene, filepath: str, container: str = "MPEG4", codec: str = "H264",
                     audio_codec: str = "AAC"):
    """Render to one video file with sound: FFMPEG output, chosen the way this Blender wants it."""
    render = scene.render
    settings = render.image_settings
    if "media_type" in settings.bl_rna.properties:
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    render.ffmpeg.format = container
    render.ffmpeg.codec = codec
    render.ffmpeg.audio_codec = audio_codec
    render.filepath = filepath
