"""The OSM-Net tab in the 3D view's sidebar (N). Panels only draw: no I/O, no state changes."""
from __future__ import annotations

import textwrap

import bpy

from . import localserver
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
        box = layout.box()
        scene = context.scene
        if scene.use_preview_range:
            box.label(text=f"Preview range {scene.frame_preview_start}-{scene.frame_preview_end}", icon='PREVIEW_RANGE')
        else:
            box.label(text="Set a preview range (Alt+P in the timeline) to re-roll part of a take", icon='INFO')
        box.operator("osmnet.reroll", icon='FILE_REFRESH')


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


CLASSES = (OSMNET_UL_takes, OSMNET_PT_main, OSMNET_PT_backend, OSMNET_PT_generate, OSMNET_PT_takes,
           OSMNET_PT_output)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
