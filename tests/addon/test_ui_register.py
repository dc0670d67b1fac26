"""The add-on registers and unregisters cleanly, as Blender's preferences would do it, twice."""
import pytest

bpy = pytest.importorskip("bpy")

import ui_support  # noqa: E402


def _registered_ids():
    ops = [n for n in dir(bpy.ops.osmnet)] if hasattr(bpy.ops, "osmnet") else []
    panels = [n for n in dir(bpy.types) if n.startswith(("OSMNET_PT_", "OSMNET_UL_"))]
    return ops, panels


def test_enable_disable_twice_leaves_nothing_behind():
    for _ in range(2):
        ui_support.enable_addon()
        assert hasattr(bpy.types.Scene, "osmnet") and hasattr(bpy.types.WindowManager, "osmnet_status")
        assert bpy.context.preferences.addons["blender_addon"].preferences.backend_address.startswith("tcp://")
        for op in ("generate", "reroll", "cancel", "backend_start", "backend_stop", "backend_check",
                   "take_import", "take_export", "take_delete", "render_frames", "render_preview", "preview_head"):
            assert hasattr(bpy.ops.osmnet, op), op
        assert hasattr(bpy.types, "OSMNET_PT_main") and hasattr(bpy.types, "OSMNET_UL_takes")
        ui_support.disable_addon()
        assert not hasattr(bpy.types.Scene, "osmnet")
        assert not hasattr(bpy.types, "OSMNET_PT_main")
        assert not hasattr(bpy.types, "OSMNET_OT_generate")
    ui_support.enable_addon()  # leave it enabled for the other test modules


def test_settings_are_saved_with_the_scene(tmp_path):
    ui_support.enable_addon()
    scene = ui_support.fresh_scene()
    scene.osmnet.takes_count = 5
    scene.osmnet.diversity = 1.5
    path = tmp_path / "settings.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    ui_support.fresh_scene()
    assert bpy.context.scene.osmnet.takes_count == 3
    bpy.ops.wm.open_mainfile(filepath=str(path))
    assert bpy.context.scene.osmnet.takes_count == 5
    assert bpy.context.scene.osmnet.diversity == pytest.approx(1.5)
