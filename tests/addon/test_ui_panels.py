"""Every panel draws in each state (idle, busy, error, with takes) and only names properties and
operators that exist: draw() runs against the real RNA through a layout that checks each call
(headless Blender has no window to draw into)."""
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import ui_support  # noqa: E402
from blender_addon.core import take as takefile
from blender_addon import panels  # noqa: E402


class CheckingLayout:
    """Stands in for UILayout: records what would be drawn and fails on unknown names."""

    def __init__(self, log):
        self.log = log
        self.alert = self.enabled = self.active = False
        self.use_property_split = self.use_property_decorate = False

    def _sub(self, *a, **k):
        return CheckingLayout(self.log)

    row = column = box = split = _sub

    def prop(self, data, name, **kw):
        assert name in data.bl_rna.properties, f"{type(data).__name__} has no property {name!r}"
        self.log.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kw):
        assert name in data.bl_rna.properties, f"{type(data).__name__} has no property {name!r}"
        assert search_name in search_data.bl_rna.properties, f"{type(search_data).__name__} has no {search_name!r}"
        self.log.append(("prop", name))

    def operator(self, idname, **kw):
        mod, op = idname.split(".")
        assert op in dir(getattr(bpy.ops, mod)), f"no operator {idname}"
        self.log.append(("operator", idname))
        return _OperatorProps(idname)

    def label(self, text="", icon='NONE', **kw):
        if icon != 'NONE':
            assert icon in bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items, icon
        self.log.append(("label", text))

    def template_list(self, listtype, list_id, data, prop, active_data, active_prop, **kw):
        assert hasattr(bpy.types, listtype), listtype
        assert prop in data.bl_rna.properties and active_prop in active_data.bl_rna.properties
        self.log.append(("list", prop))

    def progress(self, factor=0.0, text="", **kw):
        assert 0.0 <= factor <= 1.0
        self.log.append(("progress", text))

    def separator(self, **kw):
        pass


class _OperatorProps:
    """What layout.operator() returns: setting an unknown operator property fails like in Blender."""

    def __init__(self, idname):
        mod, op = idname.split(".")
        object.__setattr__(self, "_rna", getattr(getattr(bpy.ops, mod), op).get_rna_type())

    def __setattr__(self, name, value):
        assert name in self._rna.properties, f"{self._rna.identifier} has no property {name!r}"


def _draw_all(context):
    log = []
    for cls in (panels.OSMNET_PT_main, panels.OSMNET_PT_backend, panels.OSMNET_PT_generate,
                panels.OSMNET_PT_takes, panels.OSMNET_PT_output, panels.OSMNET_PT_mapping, panels.OSMNET_PT_head):
        cls.draw(_PanelSelf(log), context)
    return log


class _PanelSelf:
    def __init__(self, log):
        self.layout = CheckingLayout(log)


@pytest.fixture
def scene(tmp_path):
    ui_support.enable_addon()
    return ui_support.fresh_scene()


def test_panels_draw_idle_busy_and_error_states(scene, tmp_path):
    log = _draw_all(bpy.context)
    assert ("operator", "osmnet.generate") in log and ("operator", "osmnet.backend_start") in log
    assert not any(kind == "progress" for kind, _ in log)

    st = bpy.context.window_manager.osmnet_status
    st.busy, st.job, st.progress = True, "Generating 3 takes", 0.4
    log = _draw_all(bpy.context)
    assert ("progress", "Generating 3 takes 40%") in log and ("operator", "osmnet.cancel") in log

    st.busy, st.level, st.text = False, 'ERROR', "Backend unreachable"
    assert ("label", "Backend unreachable") in _draw_all(bpy.context)
    st.text = "Backend unreachable: " + "no answer from the server at tcp://127.0.0.1:5577 " * 3
    lines = [text for kind, text in _draw_all(bpy.context) if kind == "label" and "5577" in text]
    assert len(lines) >= 2 and all(len(t) <= 50 for t in lines)  # wrapped, nothing cut off


def test_panels_draw_with_takes_strip_source_and_custom_timing(scene, tmp_path):
    s = scene.osmnet
    s.target = ui_support.make_face()
    ch = {n: np.zeros(20, np.float32) for n in takefile.ALL_CHANNELS}
    takefile.Take(25.0, ch).save(tmp_path / "t.json")
    bpy.ops.osmnet.take_import(filepath=str(tmp_path / "t.json"))
    s.active_take = 0
    s.timing = 'CUSTOM'
    log = _draw_all(bpy.context)
    assert ("prop", "custom_frame") in log and ("list", "takes") in log
    assert any(kind == "label" and "Set a preview range" in text for kind, text in log)
    s.audio_source = 'STRIP'
    scene.use_preview_range = True
    log = _draw_all(bpy.context)
    assert ("label", "Select a sound strip in the sequencer") in log
    assert any(kind == "label" and text.startswith("Preview range") for kind, text in log)


def test_the_takes_list_draws_every_state(scene, tmp_path):
    s = scene.osmnet
    item = s.takes.add()
    item.name, item.fps, item.frames = "x", 25.0, 50
    for state in ('READY', 'GENERATING', 'FAILED'):
        item.state = state
        log = []
        panels.OSMNET_UL_takes.draw_item(None, bpy.context, CheckingLayout(log), s, item, 0, s, "active_take", 0)
        assert ("prop", "name") in log and ("prop", "starred") in log
