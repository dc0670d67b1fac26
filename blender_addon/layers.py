"""Takes as a layer over the artist's animation: one NLA track per take on each data-block it animates.

A take's Action (keyframes.py) is never made the active Action of the rig: it plays from an NLA
track named "OSM-Net | <take>", one strip over the take's frames. The artist's own Action stays
active on the same data-block (armature object, shape-key block) and keeps playing: body keys,
hand-keyed shape keys. Blender evaluates the active Action above the NLA, so where the artist
keyed the very same control as the take, the artist's keys win (set `action_blend_type` to
Combine, "Add My Keys", to add them to the take instead). The take's track holds only the
curves the take drives (head bone, face shape keys), so nothing else of the rig is touched.

Playing a take unmutes its tracks and mutes the other take tracks that overlap it in time (A/B
is one click; takes placed one after another all play). The strip's influence is a single
constant key on the strip's own influence curve (Blender keys it when animated influence is
turned on). Restoring "my animation" mutes every take track; nothing is deleted. Only RNA data
changes, so all of it is undoable.

Public API
    TRACK_PREFIX ; track_name(take) -> str
    sync(take, parts, influence=None)    tracks/strips for [(action, slot, ID)] match the keyed range
    play(take, parts) ; is_playing(take, parts) ; has_tracks(take, parts) ; set_influence(take, parts, value)
    influence(strip) ; mute_all(ids) -> int tracks muted ; remove(take, ids) ; rename(old, new, ids)
    channel_default(id_, data_path, index) ; rest_channel(id_, data_path, index)
    take_tracks(id_) -> [(take, track)]
    set_artist_blend(ids, combine: bool)
"""
from __future__ import annotations

from . import compat

TRACK_PREFIX = "OSM-Net | "
ORIGINAL_BLEND = "osmnet_original_blend"


class LayerError(RuntimeError):
    """The take layer cannot be changed on this data-block; the message says what to fix."""


def track_name(take: str) -> str:
    return f"{TRACK_PREFIX}{take}"


def _anim(id_):
    ad = id_.animation_data or id_.animation_data_create()
    if ad.use_tweak_mode:
        raise LayerError(f"{id_.name} is in NLA tweak mode: leave tweak mode (Tab in the NLA editor) first")
    return ad


def take_tracks(id_) -> list:
    """[(take name, track)] of the take layer on `id_` (tracks of other tools are left out)."""
    ad = id_.animation_data
    if ad is None:
        return []
    return [(t.name[len(TRACK_PREFIX):], t) for t in ad.nla_tracks if t.name.startswith(TRACK_PREFIX)]


def _track(id_, take: str, create: bool):
    """The take's track on `id_`; only `create` may add animation data (panels look up tracks)."""
    if not create:
        ad = id_.animation_data
        return ad.nla_tracks.get(track_name(take)) if ad is not None else None
    ad = _anim(id_)
    track = ad.nla_tracks.get(track_name(take))
    if track is None:
        track = ad.nla_tracks.new()
        track.name = track_name(take)
        track.mute = True  # a new take does not play until it is chosen
    return track


def _keyed_range(action, slot):
    """(first, last) keyed frame of one slot's curves, or None before any key."""
    lo, hi = None, None
    for fc in compat.fcurve_collection(action, slot, create=False) or ():
        if len(fc.keyframe_points):
            a, b = fc.range()
            lo, hi = (a, b) if lo is None else (min(lo, a), max(hi, b))
    return None if lo is None else (lo, hi)


def _strip(track, take: str, action, slot, first: float, last: float):
    strip = track.strips[0] if len(track.strips) else None
    if strip is not None and strip.action != action:
        track.strips.remove(strip)
        strip = None
    if strip is None:
        strip = track.strips.new(take, int(first), action)
        compat.set_strip_slot(strip, slot)
        strip.extrapolation = 'NOTHING'  # outside the take the artist's animation (or the rest pose) shows
        strip.blend_type = 'REPLACE'
        strip.use_sync_length = False
    last = max(last, first + 1)  # a one-frame take still needs a strip one frame long
    if (strip.action_frame_start, strip.action_frame_end) != (first, last):
        strip.action_frame_start, strip.action_frame_end = first, last
        strip.frame_start_ui = first
    return strip


def influence(strip) -> float:
    if not strip.use_animated_influence:
        return 1.0
    fc = strip.fcurves.find("influence")
    return float(fc.keyframe_points[0].co[1]) if fc is not None and len(fc.keyframe_points) else strip.influence


def _set_strip_influence(strip, value: float):
    value = min(1.0, max(0.0, float(value)))
    if not strip.use_animated_influence:
        if value == 1.0:
            return
        strip.use_animated_influence = True  # Blender adds an influence curve with one key
    fc = strip.fcurves.find("influence")
    if fc is None or not len(fc.keyframe_points):
        strip.influence = value
        return
    for k in fc.keyframe_points:  # one key: a constant influence over the whole take
        k.co.y = value
        k.handle_left.y = k.handle_right.y = value
    fc.update()
    strip.influence = value


def sync(take: str, parts, influence_value=None):
    """Make the take layer of `take` match its Actions: a track per data-block, one strip over
    the keyed frames (it grows while chunks stream in). New tracks start muted."""
    created = False
    for action, slot, id_ in parts:
        rng = _keyed_range(action, slot)
        if rng is None:  # the take no longer drives this data-block (the mapping changed)
            track = id_.animation_data.nla_tracks.get(track_name(take)) if id_.animation_data else None
            if track is not None:
                id_.animation_data.nla_tracks.remove(track)
            continue
        track = _track(id_, take, create=False)
        if track is None:
            track, created = _track(id_, take, create=True), True
        strip = _strip(track, take, action, slot, *rng)
        if influence_value is not None:
            _set_strip_influence(strip, influence_value)
    if created and is_playing(take, parts):  # a data-block added to a playing take plays it too
        play(take, parts)


def has_tracks(take: str, parts) -> bool:
    return any(_track(id_, take, create=False) is not None for _a, _s, id_ in parts)


def rename(old: str, new: str, ids):
    for id_ in ids:
        ad = id_.animation_data
        track = ad.nla_tracks.get(track_name(old)) if ad is not None else None
        if track is not None:
            track.name = track_name(new)
            for strip in track.strips:
                strip.name = new


def _span(track):
    s = track.strips[0] if len(track.strips) else None
    return (s.frame_start, s.frame_end) if s is not None else None


def play(take: str, parts):
    """The take plays; other takes that overlap it in time are muted (A/B in one click)."""
    for _action, _slot, id_ in parts:
        mine = _track(id_, take, create=False)
        if mine is None:
            continue
        _anim(id_)  # refuses NLA tweak mode with the way out
        span = _span(mine)
        for other, track in take_tracks(id_):
            if other == take:
                continue
            o = _span(track)
            if span is None or o is None or (o[0] <= span[1] and span[0] <= o[1]):
                track.mute = True
        mine.mute = False


def is_playing(take: str, parts) -> bool:
    tracks = [_track(id_, take, create=False) for _a, _s, id_ in parts]
    return any(t is not None and not t.mute for t in tracks)


def set_influence(take: str, parts, value: float):
    for _action, _slot, id_ in parts:
        track = _track(id_, take, create=False)
        if track is not None and len(track.strips):
            _set_strip_influence(track.strips[0], value)


def channel_default(id_, data_path: str, index: int = 0):
    """(owner struct, property name, default value) of one animated channel, or None."""
    owner_path, _, prop = data_path.rpartition(".")
    try:
        owner = id_.path_resolve(owner_path) if owner_path else id_
        rna = owner.bl_rna.properties[prop]
        return owner, prop, (rna.default_array[index] if rna.is_array else rna.default)
    except (ValueError, KeyError, AttributeError, TypeError, IndexError):
        return None


def _back_to_rest(id_, track):
    """Controls a muted take drove go back to their default value (Blender leaves un-animated
    values where the animation last put them), except those the artist's own Action animates."""
    strip = track.strips[0] if len(track.strips) else None
    if strip is None or strip.action is None:
        return
    action, slot = compat.active_action(id_)
    mine = {(fc.data_path, fc.array_index) for fc in (compat.fcurve_collection(action, slot, create=False) or ())} \
        if action is not None else set()
    for fc in compat.fcurve_collection(strip.action, compat.strip_slot(strip), create=False) or ():
        if (fc.data_path, fc.array_index) not in mine:
            rest_channel(id_, fc.data_path, fc.array_index)


def rest_channel(id_, data_path: str, index: int = 0):
    """Put one channel of `id_` at its default value (shape key 0, rotation identity ...)."""
    found = channel_default(id_, data_path, index)
    if found is None:
        return
    owner, prop, default = found
    if owner.bl_rna.properties[prop].is_array:
        getattr(owner, prop)[index] = default
    else:
        setattr(owner, prop, default)


def mute_all(ids) -> int:
    """Every take track on `ids` stops playing and what it drove goes back to rest; returns how
    many were playing."""
    n = 0
    for id_ in ids:
        for _take, track in take_tracks(id_):
            if not track.mute:
                n += 1
                track.mute = True
                _back_to_rest(id_, track)
    return n


def remove(take: str, ids):
    for id_ in ids:
        ad = id_.animation_data
        track = ad.nla_tracks.get(track_name(take)) if ad is not None else None
        if track is not None:
            _anim(id_)
            ad.nla_tracks.remove(track)


def set_artist_blend(ids, combine: bool):
    """Where the artist keyed the same control as a take: their keys win (Replace, Blender's
    default) or add to the take (Combine). The previous blend mode is kept to restore it."""
    for id_ in ids:
        ad = _anim(id_)
        if combine:
            if ORIGINAL_BLEND not in id_:
                id_[ORIGINAL_BLEND] = ad.action_blend_type
            ad.action_blend_type = 'COMBINE'
        else:
            ad.action_blend_type = id_.pop(ORIGINAL_BLEND, 'REPLACE')
