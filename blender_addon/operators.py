"""Operators: every button of the add-on. They act, report what happened, and explain in poll()
why a button is greyed out. The work itself lives in runtime (backend), takes (Actions) and
strips (sequencer, preview render).

Jobs on the backend run without freezing Blender: invoke() starts the job and a modal timer
that calls runtime.drain(); Esc cancels the job on the backend too. execute() (scripts,
background mode) only starts the job; the caller or a bpy.app timer drains it.
"""
from __future__ import annotations

import time

import bpy
from bpy.props import EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import localserver, preview, rigmap, runtime, strips, takes
from .core.errors import UserInputError
from .opsupport import explain as _explain, reports_user_errors, settings as _settings
from .properties import addon_prefs






class _JobOperator:
    """Start a backend job, then drain it from a modal timer until it ends; Esc cancels."""

    _timer = None
    job_id: str = ""

    def start(self, context) -> str:  # returns the job id
        raise NotImplementedError

    @reports_user_errors
    def execute(self, context):
        self.job_id = self.start(context)
        runtime.ensure_app_timer()
        return {'FINISHED'}

    def invoke(self, context, event):
        try:
            self.job_id = self.start(context)
        except UserInputError as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.05, window=context.window)
        wm.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        if event.type == 'ESC':
            runtime.cancel(context, self.job_id)
            self._end(context)
            self.report({'WARNING'}, "Cancelled")
            return {'CANCELLED'}
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        runtime.drain(context)
        _redraw(context)
        outcome = runtime.job_outcome(self.job_id)
        if outcome is None:
            return {'PASS_THROUGH'}
        self._end(context)
        level, message = outcome
        self.report({level}, message)
        return {'FINISHED'} if level != 'ERROR' else {'CANCELLED'}

    def _end(self, context):
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        _redraw(context)


def _redraw(context):
    screen = getattr(context, "screen", None)
    for area in (screen.areas if screen else ()):
        if area.type in {'VIEW_3D', 'SEQUENCE_EDITOR', 'DOPESHEET_EDITOR'}:
            area.tag_redraw()


# ------------------------------------------------------------------ backend

class OSMNET_OT_backend_start(bpy.types.Operator):
    """Start `osmnet serve` on this computer at the backend address (set up in the add-on preferences)"""
    bl_idname = "osmnet.backend_start"
    bl_label = "Start Local Backend"

    @classmethod
    def poll(cls, context):
        return _explain(cls, "The local backend is already running" if localserver.backend_running() else None)

    @reports_user_errors
    def execute(self, context):
        command = localserver.start_backend(context, on_tick=runtime.drain)
        self.report({'INFO'}, "Started: " + " ".join(command))
        return {'FINISHED'}


class OSMNET_OT_backend_stop(bpy.types.Operator):
    """Stop the backend that was started from this Blender session"""
    bl_idname = "osmnet.backend_stop"
    bl_label = "Stop Local Backend"

    @classmethod
    def poll(cls, context):
        return _explain(cls, None if localserver.backend_running() else "No backend was started from Blender")

    def execute(self, context):
        localserver.stop_backend(context)
        self.report({'INFO'}, "Local backend stopped")
        return {'FINISHED'}


class OSMNET_OT_backend_check(_JobOperator, bpy.types.Operator):
    """Ask the backend at the configured address who it is (model, channels)"""
    bl_idname = "osmnet.backend_check"
    bl_label = "Check Connection"

    @classmethod
    def poll(cls, context):
        return _explain(cls, "Wait for the running job to finish" if runtime.busy() else None)

    def start(self, context):
        return runtime.start_hello(context)

    def _still_starting(self, context):
        """The local backend is loading its model: say so (it connects by itself when ready)."""
        text = localserver.starting_text()
        runtime.set_status(text, "INFO", context)
        self.report({'INFO'}, text)
        return {'FINISHED'}

    def execute(self, context):
        return self._still_starting(context) if localserver.starting() else super().execute(context)

    def invoke(self, context, event):
        return self._still_starting(context) if localserver.starting() else super().invoke(context, event)


class OSMNET_OT_backend_find_python(bpy.types.Operator):
    """Look for the Python of an environment with osmnet installed (the `osmnet` command on PATH,
the active virtual or conda environment) and put it in Backend Python"""
    bl_idname = "osmnet.backend_find_python"
    bl_label = "Find Backend Python"

    def execute(self, context):
        prefs = addon_prefs(context)
        found = localserver.guess_backend_python()
        if found is None:
            self.report({'ERROR'}, "No Python with osmnet found (no `osmnet` command on PATH, no active "
                                   "environment); set Backend Python by hand")
            return {'CANCELLED'}
        if prefs is not None:
            prefs.backend_python = found[0]
        self.report({'INFO'}, f"Backend Python: {found[0]} (from {found[1]})")
        return {'FINISHED'}


# ------------------------------------------------------------------ generate

def _generate_problem(context):
    if runtime.busy():
        return "A job is running; wait for it or press Esc to cancel"
    if localserver.starting():
        return "The local backend is still loading its model; wait until the status line says it is ready"
    return takes.target_problem(_settings(context).target) or strips.audio_source_problem(context)


class OSMNET_OT_generate(_JobOperator, bpy.types.Operator):
    """Generate new takes of head motion and lip sync from the speech; each take becomes its own Action"""
    bl_idname = "osmnet.generate"
    bl_label = "Generate Takes"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return _explain(cls, _generate_problem(context))

    def start(self, context):
        job = runtime.start_generate(context)
        warning = rigmap.view(context.scene).warning  # never only the head without saying so
        if warning:
            self.report({'WARNING'}, warning)
        return job


class OSMNET_OT_reroll(_JobOperator, bpy.types.Operator):
    """Generate the selected take again inside the scene's preview range (head, face or both, with the
re-roll seed and diversity), keeping the rest; the result is a new take to compare or accept"""
    bl_idname = "osmnet.reroll"
    bl_label = "Re-roll Preview Range"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        if runtime.busy():
            return _explain(cls, "A job is running; wait for it or press Esc to cancel")
        return _explain(cls, takes.reroll_problem(context))

    def start(self, context):
        return runtime.start_reroll(context)


class OSMNET_OT_cancel(bpy.types.Operator):
    """Stop the running job; takes keep what has arrived so far"""
    bl_idname = "osmnet.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return _explain(cls, None if runtime.busy() else "Nothing is running")

    def execute(self, context):
        runtime.cancel(context)
        self.report({'WARNING'}, "Cancelled")
        return {'FINISHED'}


# ------------------------------------------------------------------ takes list

class OSMNET_OT_take_delete(bpy.types.Operator):
    """Delete the selected take and its Action"""
    bl_idname = "osmnet.take_delete"
    bl_label = "Delete Take"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        s = _settings(context)
        if s.active() is None:
            return _explain(cls, "Select a take in the list")
        return _explain(cls, "The take is still being generated" if s.active().state == 'GENERATING' else None)

    def execute(self, context):
        name = takes.delete_take(context, _settings(context).active_take)
        self.report({'INFO'}, f"Deleted {name}")
        return {'FINISHED'}


class OSMNET_OT_take_delete_unstarred(bpy.types.Operator):
    """Delete every take that is not starred"""
    bl_idname = "osmnet.take_delete_unstarred"
    bl_label = "Delete Unstarred Takes"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        s = _settings(context)
        if runtime.busy():
            return _explain(cls, "A job is running; wait for it or press Esc to cancel")
        return _explain(cls, None if any(not t.starred for t in s.takes) else "Every take is starred")

    def invoke(self, context, event):
        return context.window_manager.invoke_confirm(self, event)

    def execute(self, context):
        s = _settings(context)
        doomed = [i for i, t in enumerate(s.takes) if not t.starred]
        for i in reversed(doomed):
            takes.delete_take(context, i)
        self.report({'INFO'}, f"Deleted {len(doomed)} takes")
        return {'FINISHED'}


class OSMNET_OT_take_import(bpy.types.Operator, ImportHelper):
    """Import a take file (.json) or a Live Link Face recording (.csv) as a new take"""
    bl_idname = "osmnet.take_import"
    bl_label = "Import Take"
    bl_options = {'REGISTER', 'UNDO'}

    filter_glob: StringProperty(default="*.json;*.csv", options={'HIDDEN'})
    csv_fps: bpy.props.FloatProperty(name="CSV Frame Rate", default=60.0, min=1.0, max=240.0,
                                     description="Frame rate the Live Link Face CSV was recorded at")

    @classmethod
    def poll(cls, context):
        return _explain(cls, takes.target_problem(_settings(context).target))

    @reports_user_errors
    def execute(self, context):
        item = takes.import_take(context, self.filepath, csv_fps=self.csv_fps)
        self.report({'INFO'}, f"Imported {item.name} ({item.frames} frames)")
        return {'FINISHED'}


class OSMNET_OT_take_export(bpy.types.Operator, ExportHelper):
    """Write the selected take as a take file (.json) or a Live Link Face CSV (.csv)"""
    bl_idname = "osmnet.take_export"
    bl_label = "Export Take"

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json;*.csv", options={'HIDDEN'})
    file_format: EnumProperty(name="Format", items=[("JSON", "Take (.json)", "osmnet take file"),
                                                    ("CSV", "Live Link Face (.csv)", "ARKit CSV as recorded by Live Link Face")],
                              default="JSON")

    @classmethod
    def poll(cls, context):
        return _explain(cls, None if _settings(context).active() else "Select a take in the list")

    def check(self, context):
        self.filename_ext = ".csv" if self.file_format == 'CSV' else ".json"
        return super().check(context)

    @reports_user_errors
    def execute(self, context):
        path = takes.export_take(context, self.filepath, self.file_format)
        self.report({'INFO'}, f"Wrote {path}")
        return {'FINISHED'}


# ------------------------------------------------------------------ face and output

class OSMNET_OT_preview_head(bpy.types.Operator):
    """Add a simple head with the 52 ARKit shape keys and make it the face that plays the takes"""
    bl_idname = "osmnet.preview_head"
    bl_label = "Create Preview Head"
    bl_options = {'REGISTER', 'UNDO'}

    @reports_user_errors
    def execute(self, context):
        obj = takes.create_preview_head(context)
        self.report({'INFO'}, f"Created {obj.name}; takes now play on it")
        return {'FINISHED'}


class OSMNET_OT_render_frames(_JobOperator, bpy.types.Operator):
    """Let the backend animate the portrait photo with the selected take and place the frames as an
image strip in the sequencer, in sync with the sound"""
    bl_idname = "osmnet.render_frames"
    bl_label = "Render 2D Frames"
    bl_options = {'REGISTER', 'UNDO'}  # adds the frames scene and its strips

    @classmethod
    def poll(cls, context):
        s = _settings(context)
        if runtime.busy():
            return _explain(cls, "A job is running; wait for it or press Esc to cancel")
        if not s.portrait_path:
            return _explain(cls, "Choose a portrait photo first")
        return _explain(cls, takes.ready_problem(s.active()))

    def start(self, context):
        return runtime.start_render(context)


class OSMNET_OT_render_preview(bpy.types.Operator):
    """Render the scene with the sound into one mp4: a fast playblast, or the scene's render engine"""
    bl_idname = "osmnet.render_preview"
    bl_label = "Render Preview"

    _timer = None
    _job = None

    @classmethod
    def poll(cls, context):
        if runtime.busy() or context.window_manager.osmnet_status.busy:
            return _explain(cls, "A job is running; wait for it to finish")
        return _explain(cls, None if context.scene.camera else "The scene needs a camera")

    def _begin(self, context):
        s = _settings(context)
        self._job = preview.PreviewRender(context, s.preview_mode, s.preview_percentage, s.preview_frame_step)
        st = context.window_manager.osmnet_status
        st.busy, st.job, st.progress = True, "Rendering preview", 0.0
        runtime.set_status(self._job.status(), "INFO", context)

    def _end(self, context, level, message):
        st = context.window_manager.osmnet_status
        st.busy, st.job, st.progress = runtime.busy(), "", 0.0
        runtime.set_status(message, level, context)
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        _redraw(context)
        self.report({level}, message)

    def _done_message(self, path):
        took = preview.format_eta(time.monotonic() - self._job.started)
        note = f" ({self._job.note})" if self._job.note else ""
        return f"Wrote {path} in {took}{note}"

    def execute(self, context):  # scripts and background mode: every frame now
        try:
            self._begin(context)
            path = self._job.run()
        except UserInputError as e:
            self._end(context, 'ERROR', str(e))
            return {'CANCELLED'}
        self._end(context, 'INFO', self._done_message(path))
        return {'FINISHED'}

    def invoke(self, context, event):  # the UI: one frame per timer tick, progress and ETA, Esc cancels
        try:
            self._begin(context)
        except UserInputError as e:
            self._end(context, 'ERROR', str(e))
            return {'CANCELLED'}
        self._timer = context.window_manager.event_timer_add(0.01, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        if event.type == 'ESC':
            self._job.cancel()
            self._end(context, 'WARNING', "Preview cancelled")
            return {'CANCELLED'}
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        try:
            more = self._job.step()
            if more:
                st = context.window_manager.osmnet_status
                st.progress = self._job.progress
                runtime.set_status(self._job.status(), "INFO", context)
                _redraw(context)
                return {'RUNNING_MODAL'}
            path = self._job.finish()
        except UserInputError as e:
            self._job.cancel()
            self._end(context, 'ERROR', str(e))
            return {'CANCELLED'}
        self._end(context, 'INFO', self._done_message(path))
        return {'FINISHED'}


# ------------------------------------------------------------------ take layer, re-roll accept, bake (addon-anim)

class OSMNET_OT_take_restore(bpy.types.Operator):
    """Mute every take so only your own animation plays (the takes stay; select one to hear it again)"""
    bl_idname = "osmnet.take_restore"
    bl_label = "Restore My Animation"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return _explain(cls, "A job is running; wait for it or press Esc to cancel" if runtime.busy() else None)

    @reports_user_errors
    def execute(self, context):
        takes.restore_my_animation(context)
        self.report({'INFO'}, "Only your own animation plays now; select a take to play it again")
        return {'FINISHED'}


class OSMNET_OT_reroll_accept(bpy.types.Operator):
    """Put the re-rolled frames into the take they came from and remove the re-roll take"""
    bl_idname = "osmnet.reroll_accept"
    bl_label = "Accept Re-roll"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        if runtime.busy():
            return _explain(cls, "A job is running; wait for it or press Esc to cancel")
        return _explain(cls, takes.accept_problem(_settings(context).active()))

    @reports_user_errors
    def execute(self, context):
        name = takes.accept_reroll(context)
        self.report({'INFO'}, f"Accepted the re-roll into {name}")
        return {'FINISHED'}


class OSMNET_OT_take_bake(bpy.types.Operator):
    """Write the selected take into your own Actions with as few keys as the tolerance allows;
the take is muted afterwards so it does not play twice"""
    bl_idname = "osmnet.take_bake"
    bl_label = "Bake to My Action"
    bl_options = {'REGISTER', 'UNDO'}

    tolerance: bpy.props.FloatProperty(name="Tolerance", default=-1.0, min=-1.0, soft_max=0.05, precision=4,
                                       description="Largest change to the curve a dropped key may cause "
                                                   "(-1: the panel's setting)")

    @classmethod
    def poll(cls, context):
        if runtime.busy():
            return _explain(cls, "A job is running; wait for it or press Esc to cancel")
        return _explain(cls, takes.ready_problem(_settings(context).active()))

    def execute(self, context):
        tol = self.tolerance if self.tolerance >= 0 else _settings(context).bake_tolerance
        try:
            report = takes.bake_active(context, tol)
        except UserInputError as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        self.report({'INFO'}, report.summary())
        return {'FINISHED'}


# ------------------------------------------------------------------ mapping panel (addon-anim)

class OSMNET_OT_mapping_suggest(bpy.types.Operator):
    """Route the shape keys with near-miss names that the warning lists (e.g. jawOpen -> mouthOpen)"""
    bl_idname = "osmnet.mapping_suggest"
    bl_label = "Apply Suggestions"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return _explain(cls, None if rigmap.view(context.scene).suggestions else "Nothing to suggest for this face")

    def execute(self, context):
        n = rigmap.apply_suggestions(context.scene)
        self.report({'INFO'}, f"Routed {n} channels; Re-key Takes applies them to existing takes")
        return {'FINISHED'}


class OSMNET_OT_mapping_clear(bpy.types.Operator):
    """Forget the shape key chosen by hand for this channel: it matches by name again"""
    bl_idname = "osmnet.mapping_clear"
    bl_label = "Automatic"
    bl_options = {'REGISTER', 'UNDO'}

    channel: StringProperty(name="Channel")

    def execute(self, context):
        ms = _settings(context).mapping
        for row in ms.rows:
            if row.channel == self.channel or not self.channel:
                row.key, row.weight = "", 1.0
        return {'FINISHED'}


class OSMNET_OT_mapping_neutral(bpy.types.Operator):
    """Capture the neutral face: each channel's mean value in the selected take over the preview
range (or at the current frame) is subtracted from then on"""
    bl_idname = "osmnet.mapping_neutral"
    bl_label = "Capture Neutral"
    bl_options = {'REGISTER', 'UNDO'}

    channel: StringProperty(name="Channel", description="One channel, or every face channel when empty")
    clear: bpy.props.BoolProperty(name="Clear", description="Set the neutral back to 0 instead")

    @classmethod
    def poll(cls, context):
        return _explain(cls, takes.ready_problem(_settings(context).active()))

    @reports_user_errors
    def execute(self, context):
        n = takes.capture_neutral(context, self.channel, self.clear)
        self.report({'INFO'}, f"{'Cleared' if self.clear else 'Captured'} the neutral of {n} channels")
        return {'FINISHED'}


class OSMNET_OT_mapping_save(bpy.types.Operator):
    """Save the mapping (routes by shape key name, gains, neutral, head settings) as a preset file"""
    bl_idname = "osmnet.mapping_save"
    bl_label = "Save Mapping Preset"

    filepath: StringProperty(name="File", subtype='FILE_PATH', description="Preset file; the panel's Preset when empty")

    @reports_user_errors
    def execute(self, context):
        path = takes.save_mapping(context, self.filepath)
        self.report({'INFO'}, f"Wrote {path}")
        return {'FINISHED'}


class OSMNET_OT_mapping_load(bpy.types.Operator):
    """Load a mapping preset into the panel (Re-key Takes applies it to existing takes)"""
    bl_idname = "osmnet.mapping_load"
    bl_label = "Load Mapping Preset"
    bl_options = {'REGISTER', 'UNDO'}

    filepath: StringProperty(name="File", subtype='FILE_PATH', description="Preset file; the panel's Preset when empty")

    @reports_user_errors
    def execute(self, context):
        path = takes.load_mapping(context, self.filepath)
        self.report({'INFO'}, f"Loaded {path}")
        return {'FINISHED'}


class OSMNET_OT_takes_rekey(bpy.types.Operator):
    """Key every take again with the current mapping and head settings"""
    bl_idname = "osmnet.takes_rekey"
    bl_label = "Re-key Takes"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        if runtime.busy():
            return _explain(cls, "A job is running; wait for it or press Esc to cancel")
        s = _settings(context)
        return _explain(cls, None if any(t.action for t in s.takes) else "There are no takes to re-key")

    @reports_user_errors
    def execute(self, context):
        n = takes.rekey_all(context)
        self.report({'INFO'}, f"Re-keyed {n} takes")
        return {'FINISHED'}


ANIM_CLASSES = (
    OSMNET_OT_take_restore, OSMNET_OT_reroll_accept, OSMNET_OT_take_bake,
    OSMNET_OT_mapping_suggest, OSMNET_OT_mapping_clear, OSMNET_OT_mapping_neutral,
    OSMNET_OT_mapping_save, OSMNET_OT_mapping_load, OSMNET_OT_takes_rekey,
)


CLASSES = (
    OSMNET_OT_backend_start, OSMNET_OT_backend_stop, OSMNET_OT_backend_check, OSMNET_OT_backend_find_python,
    OSMNET_OT_generate, OSMNET_OT_reroll, OSMNET_OT_cancel,
    OSMNET_OT_take_delete, OSMNET_OT_take_delete_unstarred, OSMNET_OT_take_import, OSMNET_OT_take_export,
    OSMNET_OT_preview_head, OSMNET_OT_render_frames, OSMNET_OT_render_preview,
) + ANIM_CLASSES


register, unregister = bpy.utils.register_classes_factory(CLASSES)
