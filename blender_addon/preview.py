"""Render Preview: the 3D scene, frame by frame, into one mp4 with the scene's sound.

Frame by frame so Blender stays responsive (the operator's modal timer calls step()) and the
status line shows progress with an ETA; scripts and tests call run() instead, because timers never
fire in the bpy module. Modes:
  PLAYBLAST  what the camera sees, drawn by the viewport (render.opengl): the fast default.
             Headless Blender has no OpenGL context for it, so there each frame is a Workbench
             render without anti-aliasing instead (still fast), and the result says so.
  ENGINE     the scene's own render engine (what F12 gives), at the chosen size.
The frames then go into a temporary scene's sequencer next to copies of the sound strips and are
written as H.264 + AAC in one pass; the mp4 appears only when complete. Every render setting
touched is restored, also on cancel or error.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import bpy

from . import compat, strips
from .core.errors import UserInputError

__all__ = ["PreviewRender", "UserInputError", "MODES", "format_eta"]

MODES = ("PLAYBLAST", "ENGINE")
_RENDER_KEYS = ("engine", "filepath", "use_sequencer", "use_file_extension", "resolution_percentage")


def default_range(scene):
    """The selected take's frames, else the scene range."""
    take = scene.osmnet.active()
    if take is not None and take.frames:
        return take.start_frame, take.start_frame + take.frames - 1
    return scene.frame_start, scene.frame_end


def output_path(scene) -> str:
    out = bpy.path.abspath(scene.osmnet.preview_path or "//osmnet_preview.mp4")
    if out.startswith("//") or not os.path.isabs(out):
        raise UserInputError("Save the .blend file first or give an absolute Preview File path")
    return out


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


class PreviewRender:
    """One preview being rendered: step() renders the next frame, finish() writes the mp4."""

    def __init__(self, context, mode: str = "PLAYBLAST", percentage: int = 50, frame_step: int = 1,
                 frame_start: int | None = None, frame_end: int | None = None):
        scene = context.scene
        if mode not in MODES:
            raise UserInputError(f"Preview mode {mode!r} is not one of {', '.join(MODES)}")
        if scene.camera is None:
            raise UserInputError("The scene has no camera; add one (Shift+A > Camera) and aim it at the face")
        if frame_start is None or frame_end is None:
            frame_start, frame_end = default_range(scene)
        if frame_end < frame_start:
            raise UserInputError(f"The preview range {frame_start}-{frame_end} is empty")
        self.out = output_path(scene)
        self.scene_name = scene.name
        self.mode = mode
        self.percentage = max(1, min(100, int(percentage)))
        self.step_size = max(1, int(frame_step))
        self.range = (int(frame_start), int(frame_end))
        self.frames = list(range(self.range[0], self.range[1] + 1, self.step_size))
        self.index = 0
        # Viewport drawing needs a window; headless (and the bpy module) it falls back to Workbench.
        self.use_opengl = mode == "PLAYBLAST" and not bpy.app.background
        self.note = ("" if mode != "PLAYBLAST" or self.use_opengl else
                     "no viewport in background mode: used a fast Workbench render instead of the playblast")
        self.folder = Path(tempfile.mkdtemp(prefix="osmnet-preview-"))
        self.started = time.monotonic()
        self._saved = _save(scene)
        self._frame_before = scene.frame_current
        self._done = False

    # ------------------------------------------------------------ progress
    @property
    def total(self) -> int:
        return len(self.frames)

    @property
    def progress(self) -> float:
        return self.index / max(1, self.total)

    def eta(self) -> float | None:
        """Seconds left, from the mean time per frame so far (None before the first frame)."""
        if self.index == 0:
            return None
        per = (time.monotonic() - self.started) / self.index
        return per * (self.total - self.index)

    def status(self) -> str:
        eta = self.eta()
        left = f", {format_eta(eta)} left" if eta is not None else ""
        what = "Playblast" if self.mode == "PLAYBLAST" else "Engine render"
        return f"{what} preview: frame {self.index}/{self.total}{left}"

    # ------------------------------------------------------------ work
    def _scene(self):
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is None:
            raise UserInputError(f"Scene {self.scene_name} was deleted during the preview render")
        return scene

    def step(self) -> bool:
        """Render the next frame; True while frames remain."""
        if self.index >= self.total:
            return False
        scene = self._scene()
        frame = self.frames[self.index]
        scene.frame_set(frame)
        path = self.folder / f"{self.index:05d}"
        r = scene.render
        r.filepath = str(path)
        r.use_file_extension = True
        r.use_sequencer = False  # the 3D scene, not the sequencer's strips
        r.resolution_percentage = self.percentage
        _set_png(r.image_settings)
        if self.use_opengl:
            try:
                bpy.ops.render.opengl(write_still=True, view_context=False)
            except RuntimeError as e:  # no usable viewport after all: the Workbench stand-in from now on
                self.use_opengl = False
                self.note = f"viewport drawing failed ({str(e).strip()}): used a fast Workbench render instead"
        if not self.use_opengl:
            if self.mode == "PLAYBLAST":
                r.engine = 'BLENDER_WORKBENCH'
                scene.display.render_aa = 'OFF'
            bpy.ops.render.render(write_still=True, scene=scene.name)
        if not (self.folder / f"{self.index:05d}.png").is_file():
            raise UserInputError(f"Blender rendered no image for frame {frame}; check the console for render errors")
        self.index += 1
        return self.index < self.total

    def finish(self) -> str:
        """Encode the frames with the sound into the mp4 (atomically); restores the scene."""
        scene = self._scene()
        self.restore()
        out = Path(self.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.partial.mp4")
        enc = bpy.data.scenes.new(".osmnet preview encode")
        try:
            _encode(scene, enc, self.folder, self.total, self.step_size, self.range, str(tmp))
        finally:
            bpy.data.scenes.remove(enc)
            shutil.rmtree(self.folder, ignore_errors=True)
        if not tmp.is_file() or tmp.stat().st_size == 0:
            tmp.unlink(missing_ok=True)
            raise UserInputError("Blender wrote no video; check the console for render errors")
        os.replace(tmp, out)
        return str(out)

    def run(self) -> str:
        """Everything at once (scripts, background mode)."""
        try:
            while self.step():
                pass
        except BaseException:
            self.cancel()
            raise
        return self.finish()

    def restore(self):
        if not self._done:
            scene = bpy.data.scenes.get(self.scene_name)
            if scene is not None:
                _restore(scene, self._saved)
                scene.frame_set(self._frame_before)
            self._done = True

    def cancel(self):
        self.restore()
        shutil.rmtree(self.folder, ignore_errors=True)


def _set_png(ims):
    if "media_type" in ims.bl_rna.properties:
        ims.media_type = 'IMAGE'
    ims.file_format = 'PNG'
    ims.color_mode = 'RGB'


def _encode(scene, enc, folder: Path, count: int, step: int, frame_range, filepath: str):
    """The rendered frames (each held `step` frames) plus the scene's sound strips -> one mp4."""
    first, last = frame_range
    enc.render.fps, enc.render.fps_base = scene.render.fps, scene.render.fps_base
    probe = bpy.data.images.load(str(folder / "00000.png"), check_existing=False)
    try:
        enc.render.resolution_x, enc.render.resolution_y = probe.size
    finally:
        bpy.data.images.remove(probe)
    enc.render.resolution_percentage = 100
    enc.view_settings.view_transform = 'Standard'  # the frames already went through the scene's view transform
    enc.frame_start, enc.frame_end = first, last
    strip = compat.new_image_strip(enc, "preview", str(folder / "00000.png"), 2, first)
    for frame in range(first + 1, last + 1):
        strip.elements.append(f"{min(count - 1, (frame - first) // step):05d}.png")
    strips.copy_sound_strips(scene, enc, first, last + 1)
    compat.set_video_output(enc, filepath)
    enc.render.use_file_extension = False
    enc.render.use_sequencer = True
    bpy.ops.render.render(animation=True, scene=enc.name)


def _save(scene):
    r = scene.render
    ims = r.image_settings
    return {
        "render": {k: getattr(r, k) for k in _RENDER_KEYS},
        "image": [(k, getattr(ims, k)) for k in ("media_type", "file_format", "color_mode") if hasattr(ims, k)],
        "render_aa": scene.display.render_aa,
    }


def _restore(scene, saved):
    r = scene.render
    for k, v in saved["render"].items():
        setattr(r, k, v)
    for k, v in saved["image"]:
        try:
            setattr(r.image_settings, k, v)
        except (TypeError, ValueError):
            pass
    scene.display.render_aa = saved["render_aa"]
