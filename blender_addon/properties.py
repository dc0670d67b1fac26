"""The add-on's state: preferences (where the backend is), per-scene generation settings and the
takes list, and the live status of the connection (on the window manager, so never saved).

Only data lives here; operators change it and panels draw it.
"""
from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

DEFAULT_ADDRESS = "tcp://127.0.0.1:5577"


def addon_prefs(context=None):
    """The add-on preferences, or None while the add-on is not enabled through Blender's
    preferences (e.g. registered by a script); callers then use the defaults."""
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon else None


def backend_address(context=None) -> str:
    prefs = addon_prefs(context)
    return (prefs.backend_address.strip() if prefs else "") or DEFAULT_ADDRESS


class OSMNET_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    backend_address: StringProperty(
        name="Backend Address", default=DEFAULT_ADDRESS,
        description="ZeroMQ address of the OSM-Net backend (`osmnet serve --bind ADDRESS`)")
    launcher: EnumProperty(
        name="Start Backend With",
        items=[("PYTHON", "Python Interpreter", "Run `PYTHON -m osmnet.cli serve --bind ADDRESS` "
                "with the Python of the environment where osmnet is installed"),
               ("COMMAND", "Command", "Run the `osmnet` command (or any command line); "
                "`--bind ADDRESS` is appended")],
        default="PYTHON")
    backend_python: StringProperty(
        name="Backend Python", subtype='FILE_PATH',
        description="Python interpreter of the environment with osmnet installed, "
                    "e.g. /path/to/osmnet/.venv/bin/python. Empty: found from the `osmnet` command on PATH "
                    "(or the active virtual/conda environment) when the backend is started")
    backend_command: StringProperty(
        name="Backend Command", default="osmnet serve",
        description="Command line that starts the backend; `--bind ADDRESS` is appended")
    timeout: FloatProperty(
        name="Timeout", default=10.0, min=0.5, max=600.0, subtype='TIME_ABSOLUTE', unit='TIME_ABSOLUTE',
        description="Seconds without any reply from the backend before a request counts as failed")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "backend_address")
        layout.prop(self, "timeout")
        box = layout.box()
        box.label(text="Local backend (started from Blender)", icon='CONSOLE')
        box.prop(self, "launcher", expand=True)
        if self.launcher == 'PYTHON':
            row = box.row(align=True)
            row.prop(self, "backend_python")
            row.operator("osmnet.backend_find_python", text="", icon='VIEWZOOM')
            if not self.backend_python:
                box.label(text="Empty: Start Local Backend looks for the `osmnet` command on PATH", icon='INFO')
        else:
            box.prop(self, "backend_command")


def _take_renamed(self, context):
    from . import takes

    takes.renamed(self)


def _active_take_changed(self, context):
    from . import takes

    takes.play(context, context.scene.osmnet.active())


def _take_influence_changed(self, context):
    from . import takes

    takes.influence_changed(self)


class OSMNET_Take(bpy.types.PropertyGroup):
    """One generated (or imported) take; its curves live in its own Action with a fake user."""

    name: StringProperty(name="Name", update=_take_renamed)
    action: PointerProperty(name="Action", type=bpy.types.Action)
    starred: BoolProperty(name="Star", description="Mark a take you like (kept when unstarred ones are deleted)")
    seed: IntProperty(name="Seed")
    diversity: FloatProperty(name="Diversity")
    start_frame: IntProperty(name="Start Frame", description="Scene frame of the take's first frame")
    fps: FloatProperty(name="FPS", default=25.0)
    frames: IntProperty(name="Frames", description="Length of the take in its own frames")
    received: IntProperty(name="Received", description="Frames received from the backend so far")
    state: EnumProperty(items=[("READY", "Ready", ""), ("GENERATING", "Generating", ""),
                               ("FAILED", "Failed", "")], default="READY")
    job: StringProperty(description="Backend job that is filling this take (empty when done)")
    job_take: IntProperty(description="Index of this take inside its job")
    audio_path: StringProperty(subtype='FILE_PATH', description="Speech the take was generated from")
    audio_offset: FloatProperty(description="Seconds into the speech file where the take begins")
    # ---- take layer and re-roll (addon-anim)
    influence: FloatProperty(name="Influence", default=1.0, min=0.0, max=1.0, subtype='FACTOR',
                             update=_take_influence_changed,
                             description="How strongly the take plays over your own animation (its NLA strip's influence)")
    reroll_of: StringProperty(description="The take this re-roll was made from (empty: not a re-roll)")
    reroll_first: IntProperty(description="First take frame of the re-rolled range")
    reroll_end: IntProperty(description="Take frame after the re-rolled range")


# ------------------------------------------------------------------ mapping panel (addon-anim)

def _mapping_changed(self, context):
    ms = getattr(context.scene.osmnet, "mapping", None) if context and context.scene else None
    if ms is not None:
        ms.stale = True


_AXIS_ITEMS = [(a, a, f"Turn about the {a} axis") for a in ("+X", "-X", "+Y", "-Y", "+Z", "-Z")]


class OSMNET_ChannelRow(bpy.types.PropertyGroup):
    """One take channel in the Mapping panel: what it drives and how strongly."""

    channel: StringProperty(name="Channel", description="ARKit blendshape or head channel of the take")
    key: StringProperty(name="Shape Key", update=_mapping_changed,
                        description="Shape key this channel drives instead of the automatic match "
                                    "(on every face mesh that has it); empty: automatic")
    weight: FloatProperty(name="Weight", default=1.0, soft_min=0.0, soft_max=2.0, update=_mapping_changed,
                          description="Scale of this channel on the shape key chosen by hand")
    enabled: BoolProperty(name="Enabled", default=True, update=_mapping_changed,
                          description="Off: the channel drives nothing")
    gain: FloatProperty(name="Gain", default=1.0, soft_min=0.0, soft_max=3.0, update=_mapping_changed,
                        description="Multiplies the channel's motion around its neutral")
    offset: FloatProperty(name="Offset", default=0.0, soft_min=-1.0, soft_max=1.0, update=_mapping_changed,
                          description="Added after the gain")
    neutral: FloatProperty(name="Neutral", default=0.0, update=_mapping_changed,
                           description="The channel's value when the face rests; subtracted first (Capture Neutral)")


class OSMNET_Mapping(bpy.types.PropertyGroup):
    """Which take channel drives which shape key or bone: the Mapping and Head panels."""

    rows: CollectionProperty(type=OSMNET_ChannelRow)
    active_row: IntProperty(name="Channel", default=0)
    show: EnumProperty(name="Show", items=[("ALL", "All", "Every channel"),
                                           ("MISSING", "Missing", "Channels that drive nothing on this face"),
                                           ("MAPPED", "Mapped", "Channels that drive a shape key")],
                       default="ALL")
    auto: BoolProperty(name="Match Names", default=True, update=_mapping_changed,
                       description="Channels without a shape key chosen by hand drive the shape keys named "
                                   "after them (jawOpen, JawOpen, ARKit_jawOpen, Jaw_Open, jawOpen.001 ...)")
    visemes: EnumProperty(
        name="Visemes", update=_mapping_changed,
        items=[("auto", "Visemes: Auto", "Drive viseme keys (viseme_aa, vrm_oh ...) only when no ARKit jawOpen maps, "
                "so a head with both does not open its mouth twice"),
               ("on", "Visemes: On", "Drive the viseme keys as well as the ARKit ones"),
               ("off", "Visemes: Off", "Never drive viseme keys")], default="auto")
    strength: FloatProperty(name="Strength", default=1.0, min=0.0, soft_max=2.0, update=_mapping_changed,
                            description="Scales every channel's motion around its neutral")
    smoothing: FloatProperty(name="Smoothing", default=0.0, min=0.0, soft_max=0.2, unit='TIME_ABSOLUTE',
                             update=_mapping_changed, description="Gaussian smoothing of the curves, in seconds (0: off)")
    preset_path: StringProperty(name="Preset", subtype='FILE_PATH', default="//osmnet_mapping.json",
                                description="Mapping preset file (.json) to save or load")
    stale: BoolProperty(name="Mapping Changed",
                        description="The mapping changed since the takes were keyed: Re-key Takes applies it")
    head_mode: EnumProperty(
        name="Head", update=_mapping_changed,
        items=[("AUTO", "Automatic", "The rig's head bone if it has one, else the Face object itself"),
               ("BONE", "Bone", "A pose bone you choose"),
               ("OBJECT", "Object", "An object (a head mesh, or an empty above it) turns by its delta transform"),
               ("NONE", "None", "No head motion")], default="AUTO")
    head_armature: PointerProperty(name="Armature", type=bpy.types.Object, update=_mapping_changed,
                                   poll=lambda self, ob: ob.type == 'ARMATURE')
    head_bone: StringProperty(name="Bone", update=_mapping_changed, description="Pose bone that turns the head")
    head_object: PointerProperty(name="Object", type=bpy.types.Object, update=_mapping_changed,
                                 description="Object that turns with the head (about its origin)")
    head_axes: EnumProperty(
        name="Axes", update=_mapping_changed,
        items=[("AUTO", "Automatic", "Bone axes for a bone, Blender's Z-up axes for an object"),
               ("BONE", "Bone (Y along the bone)", "Pitch about X, yaw about Y (the bone), roll about Z"),
               ("Z_UP", "Object, Z up, facing -Y", "Blender's own axes: pitch about X, yaw about Z, roll about -Y"),
               ("Y_UP", "Object, Y up, facing +Z", "Kept Y-up on import: pitch about X, yaw about Y, roll about Z"),
               ("CUSTOM", "Custom", "Choose the axis for pitch, yaw and roll")], default="AUTO")
    head_pitch: EnumProperty(name="Pitch", items=_AXIS_ITEMS, default="+X", update=_mapping_changed)
    head_yaw: EnumProperty(name="Yaw", items=_AXIS_ITEMS, default="+Y", update=_mapping_changed)
    head_roll: EnumProperty(name="Roll", items=_AXIS_ITEMS, default="+Z", update=_mapping_changed)
    head_rotation: BoolProperty(name="Rotation", default=True, update=_mapping_changed,
                                description="Turn the head with the take's pitch, yaw and roll")
    head_location: BoolProperty(name="Translation", default=False, update=_mapping_changed,
                                description="Move the head with the take's head position (metres, about its mean)")
    head_location_scale: FloatProperty(name="Translation Scale", default=1.0, soft_min=0.0, soft_max=10.0,
                                       update=_mapping_changed, description="Metres of the take -> units of the rig")


def _my_keys_changed(self, context):
    from . import takes

    takes.my_keys_changed(context)


def _target_changed(self, context):
    from . import rigmap

    rigmap.ensure_rows(self.mapping)  # the Mapping panel lists the channels of the new Face


class OSMNET_Settings(bpy.types.PropertyGroup):
    """Per-scene generation settings and the takes list."""

    target: PointerProperty(
        name="Face", type=bpy.types.Object,
        description="Object that plays the takes: a mesh with ARKit shape keys (e.g. the preview head)",
        poll=lambda self, obj: obj.type in {'MESH', 'ARMATURE', 'EMPTY'}, update=_target_changed)
    audio_source: EnumProperty(
        name="Audio", items=[("FILE", "File", "Speech from an audio file (wav, mp3, flac, ogg...)"),
                             ("STRIP", "Sound Strip", "Speech from the selected sound strip in the sequencer")],
        default="FILE")
    audio_path: StringProperty(name="Audio File", subtype='FILE_PATH',
                               description="Speech recording to animate")
    takes_count: IntProperty(name="Takes", default=3, min=1, max=16,
                             description="How many different takes to generate from the same speech")
    diversity: FloatProperty(name="Diversity", default=1.0, min=0.0, max=2.0,
                             description="0 gives the most typical motion; higher values give takes that differ more")
    intensity: FloatProperty(name="Intensity", default=1.0, min=0.0, max=2.0,
                             description="Scale of the expression (blendshape) curves")
    seed: IntProperty(name="Seed", default=0, min=0,
                      description="Same seed and settings give the same takes")
    timing: EnumProperty(
        name="Start", items=[("PLAYHEAD", "Playhead", "Place the takes and sound at the current frame"),
                             ("SCENE", "Scene Start", "Place the takes and sound at the scene's start frame"),
                             ("CUSTOM", "Custom Frame", "Place the takes and sound at a chosen frame")],
        default="SCENE")
    custom_frame: IntProperty(name="Frame", default=1)
    add_sound_strip: BoolProperty(name="Add Sound Strip", default=True,
                                  description="Place the audio file as a sound strip in sync with the takes")
    takes: CollectionProperty(type=OSMNET_Take)
    # ---- mapping, re-roll, bake, layer (addon-anim)
    mapping: PointerProperty(type=OSMNET_Mapping)
    reroll_seed: IntProperty(name="Seed", default=1, min=0,
                             description="Seed of the next re-roll (goes up by one after each, so pressing again gives another)")
    reroll_diversity: FloatProperty(name="Diversity", default=1.0, min=0.0, max=2.0,
                                    description="How far the re-rolled frames may differ from the most typical motion")
    reroll_what: EnumProperty(name="Re-roll", items=[("BOTH", "Both", "Head motion and face"),
                                                     ("HEAD", "Head", "Only the head motion; the face stays"),
                                                     ("FACE", "Face", "Only the face; the head motion stays")],
                              default="BOTH")
    bake_tolerance: FloatProperty(name="Tolerance", default=0.005, min=0.0, soft_max=0.05, precision=4,
                                  description="Keys are dropped while the curve stays this close to the take "
                                              "(shape key units / radians); 0 keeps one key per frame")
    my_keys: EnumProperty(name="My Keys", update=_my_keys_changed,
                          items=[("REPLACE", "Win", "Where you keyed the same control as the take, your keys play "
                                  "(Blender's default)"),
                                 ("COMBINE", "Add", "Your keys on the same controls add to the take")],
                          default="REPLACE")
    active_take: IntProperty(name="Active Take", default=-1, update=_active_take_changed)
    portrait_path: StringProperty(name="Portrait", subtype='FILE_PATH',
                                  description="Photo of a face that the backend animates with the selected take")
    render_size: EnumProperty(
        name="Size", items=[(str(n), f"{n} px", f"Render {n}x{n} frames") for n in (128, 256, 384, 512, 768, 1024)],
        default="256", description="Width and height of the rendered 2D frames (sizes the renderer supports)")
    frames_dir: StringProperty(name="Frames Folder", subtype='DIR_PATH', default="//osmnet_frames/",
                               description="Where rendered 2D frames are written")
    preview_path: StringProperty(name="Preview File", subtype='FILE_PATH', default="//osmnet_preview.mp4",
                                 description="mp4 written by Render Preview")
    preview_mode: EnumProperty(
        name="Preview With",
        items=[("PLAYBLAST", "Playblast", "Draw each frame the way the viewport does (fast); without a window "
                "(background mode) a quick Workbench render stands in"),
               ("ENGINE", "Render Engine", "Render each frame with the scene's own engine, as F12 does (slow)")],
        default="PLAYBLAST")
    preview_percentage: IntProperty(name="Size", default=50, min=1, max=100, subtype='PERCENTAGE',
                                    description="Size of the preview as a percentage of the scene's resolution")
    preview_frame_step: IntProperty(name="Frame Step", default=1, min=1, max=10,
                                    description="Render every Nth frame and hold it N frames (the sound stays whole)")

    def active(self):
        """The selected take item, or None."""
        return self.takes[self.active_take] if 0 <= self.active_take < len(self.takes) else None


class OSMNET_Status(bpy.types.PropertyGroup):
    """What the backend connection is doing now; lives on the window manager, never saved."""

    text: StringProperty(name="Status", default="Not connected")
    level: EnumProperty(items=[("INFO", "Info", ""), ("WARNING", "Warning", ""), ("ERROR", "Error", "")],
                        default="INFO")
    busy: BoolProperty(name="Busy")
    job: StringProperty(name="Job", description="What the running job does, e.g. Generating 3 takes")
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, subtype='FACTOR')
    backend_running: BoolProperty(name="Local Backend Running")
    model: StringProperty(name="Model", description="Model the backend reported when it answered hello")


CLASSES = (OSMNET_AddonPreferences, OSMNET_Take, OSMNET_ChannelRow, OSMNET_Mapping, OSMNET_Settings, OSMNET_Status)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.osmnet = PointerProperty(type=OSMNET_Settings)
    bpy.types.WindowManager.osmnet_status = PointerProperty(type=OSMNET_Status)


def unregister():
    del bpy.types.WindowManager.osmnet_status
    del bpy.types.Scene.osmnet
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
