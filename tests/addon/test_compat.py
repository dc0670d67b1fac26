"""The version-specific paths in compat.py, run for real on this Blender."""
from __future__ import annotations

import wave

import numpy as np
import pytest

import bpy
from blender_addon import compat


def test_fcurves_made_through_compat_animate_the_object():
    ob = bpy.data.objects.new("Empty", None)
    bpy.context.scene.collection.objects.link(ob)
    action = compat.new_action("Move")
    slot = compat.ensure_slot(action, "OBJECT", "Empty")
    fc = compat.new_fcurve(action, slot, "location", 2, group="Object Transforms")
    fc.keyframe_points.add(2)
    fc.keyframe_points.foreach_set("co", [1, 0.0, 11, 5.0])
    fc.keyframe_points.foreach_set("interpolation", [1, 1])
    fc.update()
    compat.assign_action(ob, action, slot)
    bpy.context.scene.frame_set(6)
    assert ob.location.z == pytest.approx(2.5)
    assert compat.active_action(ob) == (action, slot)
    assert list(compat.iter_fcurves(action)) == [fc] and fc.group.name == "Object Transforms"
    assert compat.fcurve_collection(action, slot).find("location", index=2) == fc
    assert [s[1:] for s in compat.action_slots(action)] == [("OBJECT", "Empty" if compat.SLOTTED_ACTIONS else "Move")]


def test_one_action_holds_a_slot_per_data_block_where_slots_exist():
    if not compat.SLOTTED_ACTIONS:
        pytest.skip("this Blender has no slotted actions (before 4.4)")
    action = compat.new_action("Take")
    a = compat.ensure_slot(action, "OBJECT", "Rig")
    b = compat.ensure_slot(action, "KEY", "Key")
    assert a != b and compat.ensure_slot(action, "KEY", "Key") == b and len(action.slots) == 2


def test_assigning_in_nla_tweak_mode_is_refused():
    ob = bpy.data.objects.new("E", None)
    ad = ob.animation_data_create()
    track = ad.nla_tracks.new()
    action = compat.new_action("A")
    compat.ensure_slot(action, "OBJECT", "E")
    track.strips.new("s", 1, action)
    ad.use_tweak_mode = True
    if not ad.use_tweak_mode:
        pytest.skip("tweak mode cannot be entered without an editor here")
    with pytest.raises(RuntimeError, match="tweak mode"):
        compat.assign_action(ob, compat.new_action("B"))


def test_image_and_sound_strips_land_in_the_sequencer(tmp_path):
    scene = bpy.context.scene
    img = bpy.data.images.new("frame", 8, 8)
    img.filepath_raw = str(tmp_path / "frame.png")
    img.file_format = "PNG"
    img.save()
    strip = compat.new_image_strip(scene, "Portrait", str(tmp_path / "frame.png"), channel=2, frame_start=5)
    assert compat.strip_content_start(strip) == 5 and compat.strip_range(strip)[0] == 5 and strip.channel == 2
    with wave.open(str(tmp_path / "speech.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((np.sin(np.arange(16000) * 0.05) * 3000).astype(np.int16).tobytes())
    try:
        sound = compat.new_sound_strip(scene, "Speech", str(tmp_path / "speech.wav"), channel=1, frame_start=1)
    except RuntimeError as e:
        if "Audaspace" not in str(e):
            raise
        pytest.skip(f"this bpy build has no audio: {e}")
    first, end = compat.strip_range(sound)
    assert (first, end - first) == (1, scene.render.fps)  # one second of speech
    if "left_handle_offset" in sound.bl_rna.properties:
        sound.left_handle = 5
    else:
        sound.frame_final_start = 5
    assert compat.strip_span(sound) == (5, end, 4)  # the left handle now trims 4 frames of speech
    assert {s.name for s in compat.sequencer_strips(scene)} == {"Portrait", "Speech"}
    assert {s.name for s in compat.all_strips(scene)} == {"Portrait", "Speech"}


def test_eevee_engine_id_is_one_this_blender_accepts():
    scene = bpy.context.scene
    compat.set_eevee(scene)
    assert scene.render.engine == compat.eevee_engine() and "EEVEE" in scene.render.engine


@pytest.mark.slow
def test_video_output_settings_render_a_real_mp4(tmp_path):
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x = scene.render.resolution_y = 32
    scene.frame_start, scene.frame_end = 1, 3
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    compat.set_video_output(scene, str(tmp_path / "preview_"))
    bpy.ops.render.render(animation=True)
    out = list(tmp_path.glob("preview_*.mp4"))
    assert len(out) == 1 and out[0].read_bytes()[4:8] == b"ftyp"
    clip = bpy.data.movieclips.load(str(out[0]))
    assert clip.frame_duration == 3
