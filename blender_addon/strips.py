"""Sound and pictures in the scene: read the speech (file or sound strip), place it as a sound
strip, and place rendered 2D frames as an image strip in their own scene (preview.py renders the
preview mp4).

Everything is aligned on scene frames: a take's frame 0 sits at its start frame, and takes are
generated at the scene's frame rate so each take frame is one scene frame.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from . import compat
from .core.errors import UserInputError
from .core.files import atomic_path


@dataclass
class Speech:
    samples: np.ndarray  # float32 mono
    sr: int
    start_frame: int     # scene frame where the speech (and the take) begins
    filepath: str        # absolute path of the sound file
    strip_name: str = ""  # the sound strip it came from, if any
    offset: float = 0.0   # seconds into the file where the speech begins


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def active_sound_strip(context):
    ed = context.scene.sequence_editor
    strip = getattr(ed, "active_strip", None) if ed else None
    return strip if strip is not None and strip.type == 'SOUND' and strip.select else None


def audio_source_problem(context) -> str | None:
    """Why Generate cannot run with the current audio settings (cheap: used by poll)."""
    s = context.scene.osmnet
    if s.audio_source == 'FILE':
        return None if s.audio_path.strip() else "Choose an audio file with the speech"
    return None if active_sound_strip(context) else "Select a sound strip in the sequencer"


def start_frame(context) -> int:
    s, scene = context.scene.osmnet, context.scene
    return {"PLAYHEAD": scene.frame_current, "SCENE": scene.frame_start}.get(s.timing, s.custom_frame)


def _decode(path: str):
    import aud  # Blender's audio library: reads every format Blender can play

    try:
        sound = aud.Sound(path)
        data = np.asarray(sound.data(), dtype=np.float32)
        rate = int(sound.specs[0])
    except Exception as e:
        raise UserInputError(f"Blender could not decode {os.path.basename(path)} ({e}); use WAV, MP3, FLAC or OGG") from None
    mono = data.mean(axis=1) if data.ndim == 2 else data
    if mono.size < rate // 25:
        raise UserInputError(f"{os.path.basename(path)} is shorter than one frame of speech")
    return np.ascontiguousarray(mono, dtype=np.float32), rate


def read_speech(context) -> Speech:
    """The speech to animate as mono samples, plus where it starts on the timeline."""
    s, scene = context.scene.osmnet, context.scene
    problem = audio_source_problem(context)
    if problem:
        raise UserInputError(problem)
    if s.audio_source == 'FILE':
        path = bpy.path.abspath(s.audio_path)
        if not os.path.isfile(path):
            raise UserInputError(f"Audio file {path} does not exist; choose the speech file again")
        samples, sr = _decode(path)
        return Speech(samples, sr, start_frame(context), path)
    strip = active_sound_strip(context)
    path = bpy.path.abspath(strip.sound.filepath, library=strip.sound.library)
    if not os.path.isfile(path):
        raise UserInputError(f"The sound of strip {strip.name} is not on disk ({path}); unpack or relink it")
    samples, sr = _decode(path)
    # Only the part of the sound that the strip shows (its trimmed range) is speech for the take.
    fps = scene_fps(scene)
    shown_first, shown_end, trimmed = compat.strip_span(strip)
    first = int(round(trimmed / fps * sr))
    count = int(round((shown_end - shown_first) / fps * sr))
    part = samples[first:first + count]
    if part.size < sr // 25:
        raise UserInputError(f"Strip {strip.name} shows less than one frame of its sound")
    return Speech(np.ascontiguousarray(part), sr, int(shown_first), path, strip.name, first / sr)


def read_speech_for_take(context, item) -> Speech:
    """The speech a take was generated from (for re-roll), cut to the take's length."""
    path = bpy.path.abspath(item.audio_path)
    if not os.path.isfile(path):
        raise UserInputError(f"The speech of {item.name} ({path}) is gone; re-roll needs the original audio")
    samples, sr = _decode(path)
    first = int(round(item.audio_offset * sr))
    count = int(round(item.frames / item.fps * sr))
    return Speech(np.ascontiguousarray(samples[first:first + count]), sr, item.start_frame, path, "", item.audio_offset)


def _free_channel(scene, frame_start: int, frame_end: int, lowest: int = 1) -> int:
    busy = {st.channel for st in compat.sequencer_strips(scene)
            for first, end in [compat.strip_range(st)] if first < frame_end and end > frame_start}
    channel = lowest
    while channel in busy:
        channel += 1
    return channel


def place_sound(scene, speech: Speech):
    """A sound strip with the speech at the take's start (reused if one is already there)."""
    for st in compat.sequencer_strips(scene):
        if st.type == 'SOUND' and compat.strip_range(st)[0] == speech.start_frame \
                and bpy.path.abspath(st.sound.filepath) == speech.filepath:
            return st
    frames = int(np.ceil(speech.samples.size / speech.sr * scene_fps(scene)))
    channel = _free_channel(scene, speech.start_frame, speech.start_frame + frames)
    strip = compat.new_sound_strip(scene, Path(speech.filepath).stem, speech.filepath, channel, speech.start_frame)
    return strip


# ------------------------------------------------------------------ rendered 2D frames

def write_png(path: Path, rgb: np.ndarray):
    """An RGB8 frame -> PNG through Blender's own image writer; atomic (temporary name, then rename)."""
    h, w, _ = rgb.shape
    img = bpy.data.images.new(".osmnet-frame", w, h, alpha=False)  # "." : hidden from image lists
    try:
        px = np.ones((h, w, 4), np.float32)
        px[..., :3] = rgb[::-1] / np.float32(255.0)  # Blender's rows start at the bottom
        img.pixels.foreach_set(px.ravel())
        img.file_format = 'PNG'
        with atomic_path(path) as tmp:
            img.filepath_raw = str(tmp)
            img.save()
    finally:
        bpy.data.images.remove(img)


def frames_folder(context, take_name: str) -> Path:
    base = bpy.path.abspath(context.scene.osmnet.frames_dir or "//osmnet_frames/")
    if base.startswith("//") or not os.path.isabs(base):  # unsaved .blend: "//" has no folder
        base = os.path.join(tempfile.gettempdir(), "osmnet_frames")
    folder = Path(base) / bpy.path.clean_name(take_name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def frame_name(index: int) -> str:
    return f"frame_{index:05d}.png"


def frames_scene_name(scene) -> str:
    return f"{scene.name} 2D"


def frames_scene(scene):
    """The scene that shows the rendered 2D frames of `scene` ("<scene> 2D"), made on first use.

    The frames live there, not in the scene's own sequencer: a scene renders its sequencer instead
    of its 3D view as soon as the sequencer has a picture strip, so F12 would give the portrait.
    """
    own = bpy.data.scenes.get(frames_scene_name(scene))
    if own is None:
        own = bpy.data.scenes.new(frames_scene_name(scene))
        compat.set_video_output(own, "//" + bpy.path.clean_name(own.name) + ".mp4")
        own.view_settings.view_transform = 'Standard'  # the frames are finished pictures: show them as they are
    own.render.fps, own.render.fps_base = scene.render.fps, scene.render.fps_base
    own.render.use_sequencer = True
    return own


def place_frames(scene, folder: Path, count: int, start_frame: int, name: str):
    """An image strip showing frame_00000.png ... at start_frame in the frames scene (with copies of
    the scene's sound strips, so it plays in sync), replacing an older strip of the same name."""
    own = frames_scene(scene)
    old = compat.sequencer_strips(scene).get(name)  # made by an older version of the add-on
    if old is not None and old.type == 'IMAGE':
        compat.sequencer_strips(scene).remove(old)
    strips = compat.sequencer_strips(own)
    old = strips.get(name)
    if old is not None:
        strips.remove(old)
    channel = _free_channel(own, start_frame, start_frame + count, lowest=2)
    strip = compat.new_image_strip(own, name, str(folder / frame_name(0)), channel, start_frame)
    for i in range(1, count):
        strip.elements.append(frame_name(i))
    copy_sound_strips(scene, own, start_frame, start_frame + count)
    img = bpy.data.images.load(str(folder / frame_name(0)), check_existing=False)
    try:
        own.render.resolution_x, own.render.resolution_y = img.size
    finally:
        bpy.data.images.remove(img)
    own.render.resolution_percentage = 100
    first, end = zip(*(compat.strip_range(st) for st in compat.sequencer_strips(own)))
    own.frame_start, own.frame_end = int(min(first)), int(max(end)) - 1
    return strip


def copy_sound_strips(scene, target, first: int, end: int):
    """Copies in `target` of the unmuted sound strips of `scene` that play between first and end,
    at the same place with the same trim; a copy already there is not made twice."""
    have = {(bpy.path.abspath(st.sound.filepath), compat.strip_range(st))
            for st in compat.sequencer_strips(target) if st.type == 'SOUND' and st.sound is not None}
    for st in list(compat.sequencer_strips(scene)):
        if st.type != 'SOUND' or st.mute or st.sound is None:
            continue
        shown = compat.strip_range(st)
        path = bpy.path.abspath(st.sound.filepath, library=st.sound.library)
        if shown[1] <= first or shown[0] >= end or (path, shown) in have:
            continue
        copy = compat.new_sound_strip(target, st.name, path, st.channel, int(compat.strip_content_start(st)))
        compat.set_strip_range(copy, *shown)
        copy.volume = st.volume
