"""The OSM-Net tab in the 3D view's sidebar (N). Panels only draw: no I/O, no state changes."""
from __future__ import annotations

import textwrap

import bpy

from . import localserver, rigmap, takes
from .properties import addon_prefs
from .strips import active_sound_strip, frames_scene_name

_ICONS = {"INFO": 'INFO', "WARNING": 'ERROR', "ERROR": 'CANCEL'}


class _Sidebar:
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "OSM-Net"


class OSMNET_UL_takes(bpy.types.UIList):
    """One row per take: star, name (double-click to rename), length and state."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0, *args):
        row = layout.row(align=True)
        row.prop(item, "starred", text="", icon='SOLO_ON' if item.starred else 'SOLO_OFF', emboss=False)
        row.prop(item, "name", text="", emboss=False)
        if item.state == 'GENERATING':
            row.label(text=f"{item.received}/{item.frames or '?'}", icon='TIME')
        elif item.state == 'FAILED':
            row.label(text="failed", icon='ERROR')
        else:
            row.label(text=f"{item.frames / item.fps:.1f} s" if item.fps else "")

    def filter_items(self, context, data, propname):
        items = getattr(data, propname)
        flags = [self.bitflag_filter_item] * len(items)
        if self.filter_name:
            needle = self.filter_name.lower()
            flags = [self.bitflag_filter_item if needle in t.name.lower() else 0 for t in items]
        return flags, []


class OSMNET_PT_main(_Sidebar, bpy.types.Panel):
    bl_label = "OSM-Net"

    def draw(self, context):
        st = context.window_manager.osmnet_status
        layout = self.layout
        col = layout.column(align=True)
        col.alert = st.level == 'ERROR'
        # long errors wrap instead of being cut off by the sidebar's width
        region = getattr(context, "region", None)
        width = max(20, int(region.width / 7)) if region is not None else 50
        for i, line in enumerate(textwrap.wrap(st.text, width) or [""]):
            col.label(text=line, icon=_ICONS[st.level] if i == 0 else 'BLANK1')
        if st.busy:
            row = layout.row(align=True)
            row.progress(factor=st.progress, text=f"{st.job} {st.progress * 100:.0f}%")
            row.operator("osmnet.cancel", text="", icon='X')


class OSMNET_PT_backend(_Sidebar, bpy.types.Panel):
    bl_label = "Backend"
    bl_parent_id = "OSMNET_PT_main"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        st = context.window_manager.osmnet_status
        prefs = addon_prefs(context)
        if prefs is not None:
            layout.prop(prefs, "backend_address", text="Address")
        else:
            layout.label(text="Enable the add-on in Preferences to set the address", icon='INFO')
        if st.model:
            layout.label(text=f"Model: {st.model}", icon='CHECKMARK')
        phase = localserver.phase()
        if st.backend_running and phase == "starting":
            layout.label(text="Local backend: starting (loading the model)", icon='SORTTIME')
        elif st.backend_running and phase == "ready":
            layout.label(text="Local backend: ready", icon='CHECKMARK')
        row = layout.row(align=True)
        if st.backend_running:
            row.operator("osmnet.backend_stop", icon='PAUSE')
        else:
            row.operator("osmnet.backend_start", icon='PLAY')
        row.operator("osmnet.backend_check", text="", icon='FILE_REFRESH')


class OSMNET_PT_generate(_Sidebar, bpy.types.Panel):
    bl_label = "Generate"
    bl_parent_id = "OSMNET_PT_main"

    def draw(self, context):
        s = context.scene.osmnet
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        row = layout.row(align=True)
        row.prop(s, "target")
        row.operator("osmnet.preview_head", text="", icon='USER')
        draw_mapping_warning(layout, context)
        layout.prop(s, "audio_source", expand=True)
        if s.audio_source == 'FILE':
            layout.prop(s, "audio_path")
            layout.prop(s, "add_sound_strip")
        else:
            strip = active_sound_strip(context)
            layout.label(text=strip.name if strip else "Select a sound strip in the sequencer",
                         icon='SOUND' if strip else 'ERROR')
        col = layout.column(align=True)
        col.prop(s, "takes_count")
        col.prop(s, "diversity")
        col.prop(s, "intensity")
        col.prop(s, "seed")
        if s.audio_source == 'FILE':
            layout.prop(s, "timing")
            if s.timing == 'CUSTOM':
                layout.prop(s, "custom_frame")
        layout.operator("osmnet.generate", icon='PLAY_SOUND')


class OSMNET_PT_takes(_Sidebar, bpy.types.Panel):
    bl_label = "Takes"
    bl_parent_id = "OSMNET_PT_main"

    def draw(self, context):
        s = context.scene.osmnet
        layout = self.layout
        row = layout.row()
        row.template_list("OSMNET_UL_takes", "", s, "takes", s, "active_take", rows=4)
        col = row.column(align=True)
        col.operator("osmnet.take_import", text="", icon='IMPORT')
        col.operator("osmnet.take_export", text="", icon='EXPORT')
        col.separator()
        col.operator("osmnet.take_delete", text="", icon='REMOVE')
        col.operator("osmnet.take_delete_unstarred", text="", icon='TRASH')
        take = s.active()
        if take is not None and take.action is not None:
            layout.label(text=f"Seed {take.seed}, diversity {take.diversity:.2f}, starts at frame {take.start_frame}")
        draw_take_layer(layout, context, take)
        draw_reroll(layout, context, take)
        draw_bake(layout, context)


class OSMNET_PT_output(_Sidebar, bpy.types.Panel):
    bl_label = "Render"
    bl_parent_id = "OSMNET_PT_main"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        s = context.scene.osmnet
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        col = layout.column()
        col.label(text="2D portrait animated by the backend")
        col.prop(s, "portrait_path")
        col.prop(s, "render_size")
        col.prop(s, "frames_dir")
        col.operator("osmnet.render_frames", icon='IMAGE_DATA')
        own = bpy.data.scenes.get(frames_scene_name(context.scene))
        if own is not None:
            col.label(text=f"The frames play in scene \"{own.name}\"", icon='SCENE_DATA')
        layout.separator()
        col = layout.column()
        col.label(text="Scene with sound, one mp4")
        col.prop(s, "preview_path")
        col.prop(s, "preview_mode")
        col.prop(s, "preview_percentage")
        col.prop(s, "preview_frame_step")
        col.operator("osmnet.render_preview", icon='RENDER_ANIMATION')


# ------------------------------------------------------------------ take layer, re-roll, bake, mapping (addon-anim)

def draw_mapping_warning(layout, context):
    """One red line under the Face when the face would (almost) not move; details in the Mapping panel."""
    if context.scene.osmnet.target is None:
        return
    warning = rigmap.view(context.scene).warning
    if warning:
        col = layout.column()
        col.alert = True
        col.label(text=warning.split(":")[0] + ": see the Mapping panel", icon='ERROR')


def draw_take_layer(layout, context, take):
    """Influence of the selected take, whether it plays, and the way back to the artist's own animation."""
    s = context.scene.osmnet
    col = layout.column(align=True)
    if take is not None and take.action is not None:
        playing = takes.is_playing(take)
        row = col.row(align=True)
        row.prop(take, "influence", slider=True)
        row.label(text="plays" if playing else "muted", icon='PLAY' if playing else 'PAUSE')
    row = col.row(align=True)
    row.prop(s, "my_keys", expand=True)
    col.operator("osmnet.take_restore", icon='LOOP_BACK')


def draw_reroll(layout, context, take):
    s, scene = context.scene.osmnet, context.scene
    box = layout.box()
    if scene.use_preview_range:
        box.label(text=f"Preview range {scene.frame_preview_start}-{scene.frame_preview_end}", icon='PREVIEW_RANGE')
    else:
        box.label(text="Set a preview range (Alt+P in the timeline) to re-roll part of a take", icon='INFO')
    box.row(align=True).prop(s, "reroll_what", expand=True)
    row = box.row(align=True)
    row.prop(s, "reroll_seed")
    row.prop(s, "reroll_diversity")
    box.operator("osmnet.reroll", icon='FILE_REFRESH')
    if take is not None and take.reroll_of:
        box.label(text=f"Re-roll of {take.reroll_of}, frames {takes.scene_frame(take, take.reroll_first)}-"
                       f"{takes.scene_frame(take, take.reroll_end - 1)}", icon='INFO')
        box.operator("osmnet.reroll_accept", icon='CHECKMARK')


def draw_bake(layout, context):
    s = context.scene.osmnet
    row = layout.row(align=True)
    row.prop(s, "bake_tolerance")
    row.operator("osmnet.take_bake", icon='KEYINGSET')


class OSMNET_UL_channels(bpy.types.UIList):
    """One row per take channel: its name, what it drives on this face (or "missing"), and its gain."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0, *args):
        view = rigmap.view(context.scene)
        text = view.targets_text(item.channel) if item.channel in view.coverage else ""
        row = layout.row(align=True)
        row.prop(item, "enabled", text="")
        row.label(text=item.channel)
        if item.channel in view.coverage:
            sub = row.row()
            sub.alert = text == "missing"
            sub.label(text=("> " + text) if text != "missing" else "missing",
                      icon='HAND' if item.key else ('ERROR' if text == "missing" else 'LINKED'))
        row.label(text=f"x{item.gain:.2f}" if item.gain != 1.0 or item.offset else "")

    def filter_items(self, context, data, propname):
        items = getattr(data, propname)
        view = rigmap.view(context.scene)
        show = data.show
        flags = []
        for it in items:
            mapped = bool(view.coverage.get(it.channel))
            ok = (show == 'ALL' or (show == 'MAPPED') == mapped) and (it.channel in view.coverage or show == 'ALL')
            if self.filter_name and self.filter_name.lower() not in it.channel.lower():
                ok = False
            flags.append(self.bitflag_filter_item if ok else 0)
        return flags, []


class OSMNET_PT_mapping(_Sidebar, bpy.types.Panel):
    bl_label = "Mapping"
    bl_parent_id = "OSMNET_PT_main"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        s = context.scene.osmnet
        ms = s.mapping
        layout = self.layout
        if s.target is None:
            layout.label(text="Choose the Face in the Generate panel", icon='INFO')
            return
        view = rigmap.view(context.scene)
        if view.error:
            col = layout.column()
            col.alert = True
            col.label(text=view.error, icon='ERROR')
        meshes = ", ".join(view.objects_keys) or "no mesh with shape keys"
        visemes = f", {view.visemes} viseme keys" if view.visemes else ""
        layout.label(text=f"{view.mapped} of 52 face channels drive shape keys on {meshes}{visemes}",
                     icon='CHECKMARK' if view.mapped or view.visemes else 'ERROR')
        if view.warning:
            col = layout.column(align=True)
            col.alert = True
            for i, line in enumerate(textwrap.wrap(view.warning, 48)):
                col.label(text=line, icon='ERROR' if i == 0 else 'BLANK1')
            if view.suggestions:
                layout.operator("osmnet.mapping_suggest", icon='LIGHT')
        row = layout.row(align=True)
        row.prop(ms, "auto")
        row.prop(ms, "visemes", text="")
        row.prop(ms, "show", text="")
        if len(ms.rows) == 0:
            layout.label(text="Select the Face again to list its channels", icon='INFO')
        else:
            layout.template_list("OSMNET_UL_channels", "", ms, "rows", ms, "active_row", rows=8)
            if 0 <= ms.active_row < len(ms.rows):
                draw_channel(layout, context, ms.rows[ms.active_row], view)
        col = layout.column(align=True)
        col.prop(ms, "strength")
        col.prop(ms, "smoothing")
        row = layout.row(align=True)
        row.operator("osmnet.mapping_neutral", text="Capture Neutral (All)", icon='EYEDROPPER').channel = ""
        row.operator("osmnet.mapping_neutral", text="", icon='X').clear = True
        row = layout.row(align=True)
        row.prop(ms, "preset_path", text="")
        row.operator("osmnet.mapping_load", text="", icon='FILEBROWSER')
        row.operator("osmnet.mapping_save", text="", icon='FILE_TICK')
        row = layout.row()
        row.alert = ms.stale
        row.operator("osmnet.takes_rekey", icon='FILE_REFRESH')


def draw_channel(layout, context, row_item, view):
    """The selected channel: the shape key it drives (chosen by hand or automatic) and its curve settings."""
    box = layout.box()
    box.label(text=row_item.channel, icon='SHAPEKEY_DATA')
    if row_item.channel in view.coverage:  # a face channel: route it to a shape key
        mesh = next((m for m in rigmap.face_meshes(context.scene.osmnet.target)
                     if m.data.shape_keys is not None), None)
        row = box.row(align=True)
        if mesh is not None:
            row.prop_search(row_item, "key", mesh.data.shape_keys, "key_blocks", text="Drives")
        else:
            row.prop(row_item, "key", text="Drives")
        row.operator("osmnet.mapping_clear", text="", icon='X').channel = row_item.channel
        if row_item.key:
            box.prop(row_item, "weight")
        box.label(text=("Now: " + view.targets_text(row_item.channel)))
    col = box.column(align=True)
    col.prop(row_item, "gain")
    col.prop(row_item, "offset")
    row = box.row(align=True)
    row.prop(row_item, "neutral")
    row.operator("osmnet.mapping_neutral", text="", icon='EYEDROPPER').channel = row_item.channel


class OSMNET_PT_head(_Sidebar, bpy.types.Panel):
    bl_label = "Head Motion"
    bl_parent_id = "OSMNET_PT_main"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        s = context.scene.osmnet
        ms = s.mapping
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.prop(ms, "head_mode")
        head = rigmap.view(context.scene).mapping.head
        if ms.head_mode == 'BONE':
            layout.prop(ms, "head_armature")
            if ms.head_armature is not None:
                layout.prop_search(ms, "head_bone", ms.head_armature.data, "bones")
        elif ms.head_mode == 'OBJECT':
            layout.prop(ms, "head_object")
        if ms.head_mode != 'NONE':
            what = (f"Bone {head.armature}: {head.bone}" if head.kind == "bone" else f"Object {head.object}") \
                if head.enabled else "nothing: choose a bone or an object"
            layout.label(text=f"Turns {what}", icon='CHECKMARK' if head.enabled else 'ERROR')
            layout.prop(ms, "head_axes")
            if ms.head_axes == 'CUSTOM':
                col = layout.column(align=True)
                col.prop(ms, "head_pitch")
                col.prop(ms, "head_yaw")
                col.prop(ms, "head_roll")
            layout.prop(ms, "head_rotation")
            layout.prop(ms, "head_location")
            if ms.head_location:
                layout.prop(ms, "head_location_scale")


CLASSES = (OSMNET_UL_takes, OSMNET_PT_main, OSMNET_PT_backend, OSMNET_PT_generate, OSMNET_PT_takes,
           OSMNET_PT_output, OSMNET_UL_channels, OSMNET_PT_mapping, OSMNET_PT_head)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
