"""Sound and pictures in the scene: read the speech (file or sound strip), place it as a sound
strip, place rendered 2D frames as an image strip, and render a preview mp4 with the sound.

Everything is aligned on scene frames: a take's frame 0 sits at its start frame, and takes are
generated at the scene's frame rate so each take frame is one scene frame.
"""
from __future__ import annotations

import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from . import compat
from .core.errors import UserInputError
from .core.files import atomic_write


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
    """Minimal RGB8 PNG writer (no image library inside Blender's Python); atomic."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    atomic_write(path, png)


def frames_folder(context, take_name: str) -> Path:
    base = bpy.path.abspath(context.scene.osmnet.frames_dir or "//osmnet_frames/")
    if base.startswith("//") or not os.path.isabs(base):  # unsaved .blend: "//" has no folder
        base = os.path.join(tempfile.gettempdir(), "osmnet_frames")
    folder = Path(base) / bpy.path.clean_name(take_name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def frame_name(index: int) -> str:
    return f"frame_{index:05d}.png"


def place_frames(scene, folder: Path, count: int, start_frame: int, name: str):
    """An image strip showing frame_00000.png ... at start_frame, replacing an older one of the same name."""
    strips = compat.sequencer_strips(scene)
    old = strips.get(name)
    if old is not None:
        strips.remove(old)
    channel = _free_channel(scene, start_frame, start_frame + count, lowest=2)
    strip = compat.new_image_strip(scene, name, str(folder / frame_name(0)), channel, start_frame)
    for i in range(1, count):
        strip.elements.append(frame_name(i))
    return strip


# ------------------------------------------------------------------ preview mp4

def render_preview(context, frame_start: int | None = None, frame_end: int | None = None) -> str:
    """Render the 3D scene (Workbench, with sound) to the preview mp4; returns its path.

    The range defaults to the selected take (or the scene range). Scene settings touched here are
    restored afterwards; the file appears only when complete.
    """
    scene = context.scene
    s = scene.osmnet
    if scene.camera is None:
        raise UserInputError("The scene has no camera; add one (Shift+A > Camera) and aim it at the face")
    out = bpy.path.abspath(s.preview_path or "//osmnet_preview.mp4")
    if out.startswith("//") or not os.path.isabs(out):
        raise UserInputError("Save the .blend file first or give an absolute Preview File path")
    take = s.active()
    if frame_start is None:
        frame_start, frame_end = ((take.start_frame, take.start_frame + take.frames - 1)
                                  if take is not None and take.frames else (scene.frame_start, scene.frame_end))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    tmp = str(Path(out).with_name(f".{Path(out).stem}.partial.mp4"))
    saved = _save_render_settings(scene)
    try:
        scene.render.engine = 'BLENDER_WORKBENCH'
        scene.frame_start, scene.frame_end = frame_start, frame_end
        scene.render.use_sequencer = False  # the 3D scene, not the image strips; sound still mixes in
        scene.render.use_file_extension = False
        compat.set_video_output(scene, tmp)
        bpy.ops.render.render(animation=True)
    finally:
        _restore_render_settings(scene, saved)
    if not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
        raise UserInputError("Blender wrote no video; check the console for render errors")
    os.replace(tmp, out)
    return out


_RENDER_KEYS = ("engine", "filepath", "use_sequencer", "use_file_extension")
_FFMPEG_KEYS = ("format", "codec", "audio_codec")


def _save_render_settings(scene):
    r = scene.render
    ims = r.image_settings
    return {
        "render": {k: getattr(r, k) for k in _RENDER_KEYS},
        "ffmpeg": {k: getattr(r.ffmpeg, k) for k in _FFMPEG_KEYS},
        "image": [(k, getattr(ims, k)) for k in ("media_type", "file_format") if hasattr(ims, k)],
        "range": (scene.frame_start, scene.frame_end),
    }


def _restore_render_settings(scene, saved):
    r = scene.render
    for k, v in saved["render"].items():
        setattr(r, k, v)
    for k, v in saved["image"]:
        try:
            setattr(r.image_settings, k, v)
        except (TypeError, ValueError):
            pass
    for k, v in saved["ffmpeg"].items():
        try:
            setattr(r.ffmpeg, k, v)
        except (TypeError, ValueError):
            pass
    scene.frame_start, scene.frame_end = saved["range"]
