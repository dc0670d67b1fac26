"""Other tools' files in Blender: import Audio2Face blendshape JSON and Rhubarb mouth cues as
takes, export the selected take to them, and import a whole `osmnet batch` output folder with
one take set per dialogue line, placed one after another on the timeline.

The formats live in core/interop.py and core/batchfolder.py (no bpy); this module only moves takes in and out of the
takes list (through takes.import_take, so an imported take is like any other) and places
markers and sound strips. Its panel ("Other Tools", under the OSM-Net tab) only draws.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import compat, takes
from .strips import _free_channel, scene_fps  # the sequencer's one channel finder
from .core import batchfolder, interop
from .core.errors import UserInputError
from .opsupport import explain as _explain, reports_user_errors, settings as _settings
from .core.take import ALL_CHANNELS, Take






def add_sound(scene, path, frame: int, frames: int, name: str = ""):
    """A sound strip with `path` at `frame` on a free channel (the same strip is reused)."""
    path = str(path)
    for st in compat.sequencer_strips(scene):
        if st.type == 'SOUND' and compat.strip_range(st)[0] == frame and bpy.path.abspath(st.sound.filepath) == path:
            return st
    return compat.new_sound_strip(scene, name or Path(path).stem, path, _free_channel(scene, frame, frame + frames), frame)


def add_take(context, take: Take, name: str, start_frame: int):
    """Put a take into the takes list at `start_frame`, named `name` (made unique), the way the
    Import button does it: resampled to the scene's frame rate, its own Action(s)."""
    scene = context.scene
    tmp = tempfile.mkdtemp(prefix="osmnet_import_")
    keep = scene.frame_current
    try:
        safe = "".join(c if c.isalnum() or c in " -_.#()" else "_" for c in name).strip() or "take"
        path = take.save(Path(tmp) / f"{safe}.json")
        scene.frame_current = start_frame
        return takes.import_take(context, str(path))
    finally:
        scene.frame_current = keep
        shutil.rmtree(tmp, ignore_errors=True)


def _active_take(context) -> Take:
    item = _settings(context).active()
    problem = takes.ready_problem(item)
    if problem:
        raise UserInputError(problem)
    values, fps = takes.read_values(item)
    meta = {"name": item.name, "seed": item.seed}
    if item.audio_path:
        meta["audio"] = bpy.path.abspath(item.audio_path)
    return Take(fps, {n: values[:, i] for i, n in enumerate(ALL_CHANNELS)}, meta)


def _existing(sound: str, beside: str) -> str:
    """The sound file a cue or blendshape file names, if it is on this computer (a relative path
    is read from the file's folder), else ""."""
    if not sound:
        return ""
    if not os.path.isabs(sound):
        sound = os.path.join(os.path.dirname(beside), sound)
    return sound if os.path.isfile(sound) else ""


class _ImportTake:
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return _explain(cls, takes.target_problem(_settings(context).target))

    def read(self, context, path: str) -> tuple:  # -> (Take, sound file or "")
        raise NotImplementedError

    def execute(self, context):
        path = bpy.path.abspath(self.filepath)
        scene = context.scene
        try:
            take, sound = self.read(context, path)
            item = add_take(context, take, Path(path).stem, scene.frame_current)
        except UserInputError as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        note = ""
        if sound and getattr(self, "add_sound_strip", False):
            add_sound(scene, sound, item.start_frame, item.frames)
            note = ", with its sound"
        self.report({'INFO'}, f"Imported {item.name} ({item.frames} frames{note})")
        return {'FINISHED'}


class OSMNET_OT_import_audio2face(_ImportTake, ImportHelper, bpy.types.Operator):
    """Import an NVIDIA Audio2Face blendshape export (.json) as a new take at the current frame"""
    bl_idname = "osmnet.import_audio2face"
    bl_label = "Import Audio2Face JSON"

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={'HIDDEN'})
    add_sound_strip: BoolProperty(name="Add Sound Strip", default=True,
                                  description="Place the recording named in the export (trackPath) in the sequencer")

    def read(self, context, path):
        take = interop.read_audio2face(path)
        return take, _existing(take.meta.get("audio", ""), path)


class OSMNET_OT_import_rhubarb(_ImportTake, ImportHelper, bpy.types.Operator):
    """Import Rhubarb Lip Sync mouth cues (TSV, JSON or XML) as a new take of ARKit mouth curves"""
    bl_idname = "osmnet.import_rhubarb"
    bl_label = "Import Rhubarb Cues"

    filter_glob: StringProperty(default="*.tsv;*.txt;*.json;*.xml", options={'HIDDEN'})
    blend: FloatProperty(name="Transition", default=0.08, min=0.0, max=0.5, unit='TIME_ABSOLUTE',
                         description="Seconds the mouth takes to move from one shape to the next")
    add_sound_strip: BoolProperty(name="Add Sound Strip", default=True,
                                  description="Place the recording named in the cue file (JSON, XML) in the sequencer")

    def read(self, context, path):
        cues, meta = interop.read_rhubarb(path)
        take = interop.cues_to_take(cues, fps=scene_fps(context.scene), blend=self.blend,
                                    meta={"file": Path(path).name, "audio": meta["sound_file"]})
        return take, _existing(meta["sound_file"], path)


class _ExportActive:
    @classmethod
    def poll(cls, context):
        return _explain(cls, takes.ready_problem(_settings(context).active()))


class OSMNET_OT_export_audio2face(_ExportActive, ExportHelper, bpy.types.Operator):
    """Write the selected take's 52 ARKit curves as an Audio2Face blendshape JSON"""
    bl_idname = "osmnet.export_audio2face"
    bl_label = "Export Audio2Face JSON"

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={'HIDDEN'})

    def execute(self, context):
        path = bpy.path.abspath(self.filepath)
        try:
            interop.write_audio2face(_active_take(context), path)
        except UserInputError as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        except OSError as e:
            self.report({'ERROR'}, f"Could not write {path}: {e.strerror}")
            return {'CANCELLED'}
        self.report({'INFO'}, f"Wrote {path}")
        return {'FINISHED'}


class OSMNET_OT_export_rhubarb(_ExportActive, ExportHelper, bpy.types.Operator):
    """Write the selected take's mouth as Rhubarb Lip Sync cues (shapes A-H, X), TSV or JSON"""
    bl_idname = "osmnet.export_rhubarb"
    bl_label = "Export Rhubarb Cues"

    filename_ext = ".tsv"
    filter_glob: StringProperty(default="*.tsv;*.json", options={'HIDDEN'})
    file_format: EnumProperty(name="Format", default="TSV", items=[
        ("TSV", "TSV (.tsv)", "Rhubarb's tab-separated output: time and shape per line"),
        ("JSON", "JSON (.json)", "Rhubarb's JSON output with mouthCues and metadata")])
    shapes: StringProperty(name="Mouth Shapes", default="ABCDEFGHX",
                           description="Shapes the cues may use: A-F always, G, H and X are optional (like "
                                       "Rhubarb's --extendedShapes)")
    min_cue: FloatProperty(name="Shortest Cue", default=0.06, min=0.0, max=0.5, unit='TIME_ABSOLUTE',
                           description="Mouth shapes held for less time than this join a neighbour")

    def check(self, context):
        self.filename_ext = ".json" if self.file_format == 'JSON' else ".tsv"
        return super().check(context)

    def execute(self, context):
        path = bpy.path.abspath(self.filepath)
        try:
            take = _active_take(context)
            cues = interop.take_to_cues(take, shapes=self.shapes, min_cue=self.min_cue)
            if self.file_format == 'JSON':
                interop.write_rhubarb_json(cues, path, sound_file=take.meta.get("audio", ""))
            else:
                interop.write_rhubarb_tsv(cues, path)
        except UserInputError as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        except OSError as e:
            self.report({'ERROR'}, f"Could not write {path}: {e.strerror}")
            return {'CANCELLED'}
        self.report({'INFO'}, f"Wrote {len(cues)} mouth cues to {path}")
        return {'FINISHED'}


# ------------------------------------------------------------------ batch folders

def _number(value, kind):
    """A meta value as int/float for the takes list (0 when it is missing or not a number)."""
    try:
        return kind(value) if value is not None and not isinstance(value, bool) else kind(0)
    except (TypeError, ValueError, OverflowError):
        return kind(0)


def import_batch(context, folder: str, gap: int = 12, add_sound_strips: bool = True, audio_folder: str = "",
                 start_frame: int | None = None, takes_per_line: int = 0) -> dict:
    """Every line of an `osmnet batch` folder into the takes list: a line's takes (the first
    `takes_per_line`, 0 = all) all start at its slot, slots follow each other with `gap` frames
    between; a timeline marker (and the sound, when found) names each slot. Returns counts and
    problems for the report."""
    scene = context.scene
    audio_dirs = [bpy.path.abspath(audio_folder)] if audio_folder.strip() else []
    lines, warnings = batchfolder.read_batch_folder(bpy.path.abspath(folder), audio_dirs=audio_dirs)
    frame = scene.frame_current if start_frame is None else start_frame
    first_item = len(_settings(context).takes)
    done = {"lines": 0, "takes": 0, "sounds": 0, "no_sound": [], "failed": [], "bad_takes": [], "warnings": warnings}
    for line in lines:
        if not line.takes:
            done["failed"].append(f"{line.name} ({line.reason or line.status or 'no take files'})")
            continue
        length = 0
        for k, path in enumerate(line.takes[:takes_per_line] if takes_per_line > 0 else line.takes):
            try:
                take = Take.load(path)
            except UserInputError as e:
                done["bad_takes"].append(f"{line.name}/{path.name}: {e}")
                continue
            item = add_take(context, take, f"{line.name} #{k + 1}", frame)
            item.seed = line.seed if line.seed is not None else _number(take.meta.get("seed"), int)
            item.diversity = _number(take.meta.get("diversity"), float)
            if line.audio is not None:
                item.audio_path = str(line.audio)
            length = max(length, item.frames)
            done["takes"] += 1
        if not length:
            continue
        scene.timeline_markers.new(line.name, frame=frame)
        if line.audio is None:
            done["no_sound"].append(line.name)
        elif add_sound_strips:
            add_sound(scene, line.audio, frame, length, name=line.name)
            done["sounds"] += 1
        done["lines"] += 1
        frame += length + gap
    s = _settings(context)
    if len(s.takes) > first_item:
        s.active_take = first_item
    done["end_frame"] = frame - gap
    return done


def batch_summary(done: dict) -> tuple:
    """(level, one line) for the operator's report."""
    text = f"Imported {done['lines']} lines ({done['takes']} takes)"
    if done["sounds"]:
        text += f", {done['sounds']} with sound"
    problems = []
    if done["failed"]:
        problems.append(f"{len(done['failed'])} failed in the batch: {', '.join(done['failed'][:3])}")
    if done["bad_takes"]:
        problems.append(f"{len(done['bad_takes'])} unreadable takes: {done['bad_takes'][0]}")
    if done["no_sound"]:
        problems.append(f"no sound file found for {len(done['no_sound'])} lines (set Audio Folder)")
    problems += done["warnings"]
    return ('WARNING' if problems else 'INFO'), "; ".join([text, *problems])


class OSMNET_OT_import_batch(bpy.types.Operator):
    """Import the output folder of `osmnet batch`: every dialogue line's takes, placed one line after
    another from the current frame, with a marker and the sound of each line"""
    bl_idname = "osmnet.import_batch"
    bl_label = "Import Batch Folder"
    bl_options = {'REGISTER', 'UNDO'}

    directory: StringProperty(subtype='DIR_PATH')
    filter_folder: BoolProperty(default=True, options={'HIDDEN'})
    gap: IntProperty(name="Gap", default=12, min=0, max=1000, description="Frames between one line and the next")
    add_sound_strips: BoolProperty(name="Add Sound Strips", default=True,
                                   description="Place each line's speech in the sequencer at its takes")
    audio_folder: StringProperty(name="Audio Folder", subtype='DIR_PATH',
                                 description="Where the speech files are, if not where batch.json says")
    takes_per_line: IntProperty(name="Takes per Line", default=0, min=0, max=64,
                                description="Import only the first takes of each line (0: all of them)")

    @classmethod
    def poll(cls, context):
        return _explain(cls, takes.target_problem(_settings(context).target))

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {'RUNNING_MODAL'}

    @reports_user_errors
    def execute(self, context):
        done = import_batch(context, self.directory, self.gap, self.add_sound_strips, self.audio_folder,
                            takes_per_line=self.takes_per_line)
        level, text = batch_summary(done)
        self.report({level}, text)
        return {'FINISHED'}


class OSMNET_PT_interop(bpy.types.Panel):
    """Other Tools: files from and for Audio2Face and Rhubarb, and batch folders."""
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "OSM-Net"
    bl_label = "Other Tools"
    bl_parent_id = "OSMNET_PT_main"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        col = layout.column(align=True)
        col.label(text="Import as a take")
        row = col.row(align=True)
        row.operator("osmnet.import_audio2face", text="Audio2Face", icon='IMPORT')
        row.operator("osmnet.import_rhubarb", text="Rhubarb", icon='IMPORT')
        col.operator("osmnet.import_batch", icon='FILE_FOLDER')
        col = layout.column(align=True)
        col.label(text="Export the selected take")
        row = col.row(align=True)
        row.operator("osmnet.export_audio2face", text="Audio2Face", icon='EXPORT')
        row.operator("osmnet.export_rhubarb", text="Rhubarb", icon='EXPORT')


CLASSES = (OSMNET_OT_import_audio2face, OSMNET_OT_import_rhubarb, OSMNET_OT_export_audio2face,
           OSMNET_OT_export_rhubarb, OSMNET_OT_import_batch, OSMNET_PT_interop)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
