"""The Mapping and Head Motion panels as an artist uses them: coverage shown, a warning for a rig
without ARKit names (with suggestions that fix it), manual routes, gain and captured neutral that
reach the keys, presets, and a plain head mesh (no armature) that turns."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import rig  # noqa: E402
import ui_support  # noqa: E402
from test_ui_panels import CheckingLayout, _PanelSelf  # noqa: E402
from blender_addon import compat, panels, rigmap, takes  # noqa: E402
from blender_addon.core.take import ALL_CHANNELS, Take  # noqa: E402

FPS = 25
N = 50
JAW = ALL_CHANNELS.index("jawOpen")


def _values():
    t = np.arange(N) / FPS
    v = np.zeros((N, len(ALL_CHANNELS)), np.float32)
    col = {c: i for i, c in enumerate(ALL_CHANNELS)}
    v[:, col["jawOpen"]] = 0.5 + 0.4 * np.sin(2 * np.pi * 1.2 * t)
    v[:, col["mouthSmileLeft"]] = 0.6
    v[:, col["mouthSmileRight"]] = 0.2
    v[:, col["headYaw"]] = 0.3 * np.sin(2 * np.pi * 0.5 * t)
    v[:, col["headPitch"]] = 0.1 * np.sin(2 * np.pi * 0.3 * t)
    v[:, col["headX"]] = 0.02 * t
    return v


def _generate(values=None, job="job"):
    """The path a generate job's chunks take (runtime.drain -> takes.apply_chunk)."""
    values = _values() if values is None else values
    context = bpy.context
    takes.begin_generated(context, job, 1, 1, FPS, N, 0, 1.0)
    takes.apply_chunk(context.scene, job, 0, 0, values)
    takes.end_job(context.scene, job, failed=False)
    return values


def _key(ob, name, frames):
    out = []
    for f in frames:
        bpy.context.scene.frame_set(f)
        out.append(ob.data.shape_keys.key_blocks[name].value)
    return np.array(out)


def _draw(cls):
    log = []
    cls.draw(_PanelSelf(log), bpy.context)
    return log


def _labels(log):
    return [text for kind, text in log if kind == "label"]


@pytest.fixture
def scene():
    scene = ui_support.addon_scene(fps=FPS)
    scene.frame_start = 1
    return scene


def test_coverage_is_shown_for_every_channel(scene):
    face = ui_support.make_face()
    face.data.shape_keys.key_blocks["cheekPuff"].name = "Cheek_Puff_L"  # Character Creator name
    face.data.shape_keys.key_blocks["tongueOut"].name = "Tongue_Stick_Out"  # no rule knows this one
    scene.osmnet.target = face
    ms = scene.osmnet.mapping
    assert [r.channel for r in ms.rows] == list(ALL_CHANNELS)  # choosing the Face lists its channels
    labels = _labels(_draw(panels.OSMNET_PT_mapping))
    assert "51 of 52 face channels drive shape keys on Face" in labels
    view = rigmap.view(scene)
    assert view.targets_text("cheekPuff") == "Cheek_Puff_L" and view.targets_text("tongueOut") == "missing"
    rows = {r.channel: r for r in ms.rows}
    for channel, want in (("cheekPuff", "> Cheek_Puff_L"), ("tongueOut", "missing")):
        log = []
        panels.OSMNET_UL_channels.draw_item(None, bpy.context, CheckingLayout(log), ms, rows[channel], 0, ms,
                                            "active_row", 0)
        assert ("label", want) in log
    ms.show = 'MISSING'
    flags, _ = panels.OSMNET_UL_channels.filter_items(_ListSelf(), bpy.context, ms, "rows")
    assert [r.channel for r, f in zip(ms.rows, flags) if f] == ["tongueOut"]


class _ListSelf:
    bitflag_filter_item = 1 << 30
    filter_name = ""


def test_a_rig_with_no_arkit_names_is_warned_and_one_click_routes_it(scene):
    arm = rig.make_armature("Rig", bone="Head")
    head = rig.make_mesh("HeadMesh", ["mouthOpen", "mouthSmile"])
    head.parent = arm
    scene.osmnet.target = arm
    log = _draw(panels.OSMNET_PT_mapping)
    text = " ".join(_labels(log))
    assert "0 of 52 face channels" in text
    assert "No shape key on HeadMesh matches an ARKit name: only the head will move" in text
    assert ("operator", "osmnet.mapping_suggest") in log
    assert "No shape key on HeadMesh matches an ARKit name: see the Mapping panel" in _labels(
        _draw(panels.OSMNET_PT_generate))  # seen without opening the (closed) Mapping panel
    takes.begin_generated(bpy.context, "j0", 1, 1, FPS, N, 0, 1.0)
    takes.apply_chunk(scene, "j0", 0, 0, _values())
    message = takes.end_job(scene, "j0", failed=False)
    assert message == "1 take ready; No shape key on HeadMesh matches an ARKit name: see the Mapping panel"
    assert bpy.ops.osmnet.mapping_suggest() == {'FINISHED'}
    rows = {r.channel: r for r in scene.osmnet.mapping.rows}
    assert (rows["jawOpen"].key, rows["mouthSmileLeft"].key, rows["mouthSmileLeft"].weight) == ("mouthOpen", "mouthSmile", 0.5)
    assert rigmap.view(scene).warning is None
    v = _generate()
    np.testing.assert_allclose(_key(head, "mouthOpen", range(1, N + 1)), v[:, JAW], atol=1e-5)
    np.testing.assert_allclose(_key(head, "mouthSmile", [10]), [0.4], atol=1e-5)  # 0.5 * (0.6 + 0.2)


def test_a_manual_route_replaces_the_name_match_and_generate_uses_it(scene):
    face = rig.make_mesh("Face", ["jawOpen", "Mouth_Wide"])
    teeth = rig.make_mesh("Teeth", ["Mouth_Wide"])
    teeth.parent = face
    scene.osmnet.target = face
    row = next(r for r in scene.osmnet.mapping.rows if r.channel == "jawOpen")
    row.key, row.weight = "Mouth_Wide", 0.5
    assert rigmap.view(scene).targets_text("jawOpen") == "Mouth_Wide (2 meshes)"
    v = _generate()
    for ob in (face, teeth):
        np.testing.assert_allclose(_key(ob, "Mouth_Wide", range(1, N + 1)), 0.5 * v[:, JAW], atol=1e-5)
    action, slot = rig.playing(face.data.shape_keys)  # the manual route replaced the name match
    assert compat.fcurve_collection(action, slot).find('key_blocks["jawOpen"].value') is None
    assert bpy.ops.osmnet.mapping_clear(channel="jawOpen") == {'FINISHED'}
    assert scene.osmnet.mapping.stale
    assert bpy.ops.osmnet.takes_rekey() == {'FINISHED'}
    assert not scene.osmnet.mapping.stale
    np.testing.assert_allclose(_key(face, "jawOpen", range(1, N + 1)), v[:, JAW], atol=1e-5)


def test_gain_offset_and_captured_neutral_reach_the_keys(scene):
    face = ui_support.make_face()
    scene.osmnet.target = face
    v = _generate()
    scene.frame_set(1)
    assert bpy.ops.osmnet.mapping_neutral(channel="jawOpen") == {'FINISHED'}
    rows = {r.channel: r for r in scene.osmnet.mapping.rows}
    assert rows["jawOpen"].neutral == pytest.approx(float(v[0, JAW]))
    rows["jawOpen"].gain, rows["jawOpen"].offset = 2.0, 0.1
    bpy.ops.osmnet.takes_rekey()
    want = np.clip(2.0 * (v[:, JAW] - v[0, JAW]) + 0.1, 0, 1)
    np.testing.assert_allclose(_key(face, "jawOpen", range(1, N + 1)), want, atol=1e-5)
    scene.use_preview_range, scene.frame_preview_start, scene.frame_preview_end = True, 1, 10
    assert bpy.ops.osmnet.mapping_neutral() == {'FINISHED'}  # every face channel, mean over the range
    assert rows["mouthSmileLeft"].neutral == pytest.approx(0.6)
    assert rows["jawOpen"].neutral == pytest.approx(float(v[:10, JAW].mean()), abs=1e-6)


def test_presets_save_and_load_through_the_panel(scene, tmp_path):
    scene.osmnet.target = rig.make_mesh("Face", ["jawOpen", "Mouth_Wide"])
    ms = scene.osmnet.mapping
    rows = {r.channel: r for r in ms.rows}
    rows["jawOpen"].key, rows["eyeBlinkLeft"].gain, ms.strength = "Mouth_Wide", 1.5, 0.8
    ms.head_mode, ms.head_axes, ms.head_location = 'OBJECT', 'Y_UP', True
    ms.head_object = scene.osmnet.target
    path = tmp_path / "cc.json"
    assert bpy.ops.osmnet.mapping_save(filepath=str(path)) == {'FINISHED'}
    rows["jawOpen"].key, rows["eyeBlinkLeft"].gain, ms.strength, ms.head_mode = "", 1.0, 1.0, 'AUTO'
    ms.head_axes, ms.head_location = 'AUTO', False
    assert bpy.ops.osmnet.mapping_load(filepath=str(path)) == {'FINISHED'}
    assert (rows["jawOpen"].key, rows["eyeBlinkLeft"].gain, ms.strength) == ("Mouth_Wide", 1.5, pytest.approx(0.8))
    assert (ms.head_mode, ms.head_axes, ms.head_location) == ('OBJECT', 'Y_UP', True)
    path.write_text('{"format": "osmnet-mapping", "version": 1}')
    with pytest.raises(RuntimeError, match="version 1"):
        bpy.ops.osmnet.mapping_load(filepath=str(path))


def _angle(ob):
    return ob.matrix_world.to_quaternion().rotation_difference(ob.rotation_euler.to_quaternion()).angle


def test_a_plain_head_mesh_turns_by_its_delta_rotation_and_keeps_its_own(scene):
    head = ui_support.make_face("Bust")
    head.rotation_euler = (0.0, 0.0, 0.6)  # placed by the artist, not keyed
    head.location = (2.0, 0.0, 1.0)
    scene.osmnet.target = head
    labels = _labels(_draw(panels.OSMNET_PT_head))
    assert "Turns Object Bust" in labels
    scene.osmnet.mapping.head_location = True
    v = _generate()
    turned = []
    for f in (1, 13, 26, 38):
        scene.frame_set(f)
        turned.append(_angle(head))
        assert tuple(head.rotation_euler) == pytest.approx((0.0, 0.0, 0.6))  # its own rotation stays
    assert max(turned) > 0.2 and len({round(a, 3) for a in turned}) == 4  # the head turns over time
    scene.frame_set(N)
    moved = head.matrix_world.translation - head.location
    assert moved.length == pytest.approx(abs(float(v[N - 1, ALL_CHANNELS.index("headX")])), abs=1e-5)


def test_an_object_head_turns_like_the_same_head_on_a_bone(scene):
    """Z-up object axes and bone axes are the same convention: identical world rotation."""
    arm = rig.make_armature("Rig", bone="head", rotation_mode="QUATERNION")
    mesh = ui_support.make_face("Bust")
    take_values = _values()
    scene.osmnet.target = arm
    _generate(take_values, "a")
    scene.osmnet.target = mesh
    _generate(take_values, "b")
    bone = arm.pose.bones["head"]
    for f in (5, 20, 40):
        scene.frame_set(f)
        q_bone = (arm.matrix_world @ bone.matrix).to_quaternion() @ \
            (arm.matrix_world @ bone.bone.matrix_local).to_quaternion().inverted()
        q_obj = mesh.matrix_world.to_quaternion()
        assert q_bone.rotation_difference(q_obj).angle < 1e-5


def test_the_artist_picks_the_bone_axes_and_translation(scene):
    arm = rig.make_armature("Rig", bone="DEF-head", rotation_mode="XYZ")
    arm.pose.bones["head_end"].rotation_mode = "XYZ"
    scene.osmnet.target = arm
    ms = scene.osmnet.mapping
    ms.head_mode, ms.head_armature, ms.head_bone = 'BONE', arm, "head_end"
    ms.head_axes, ms.head_pitch, ms.head_yaw, ms.head_roll = 'CUSTOM', "-X", "+Z", "+Y"
    ms.head_location, ms.head_location_scale = True, 10.0
    assert ("prop", "head_bone") in _draw(panels.OSMNET_PT_head)
    v = _generate()
    k = int(np.argmax(np.abs(v[:, ALL_CHANNELS.index("headYaw")])))
    scene.frame_set(1 + k)
    pb = arm.pose.bones["head_end"]
    assert pb.rotation_euler.z == pytest.approx(float(v[k, ALL_CHANNELS.index("headYaw")]), abs=1e-5)
    assert pb.rotation_euler.x == pytest.approx(-float(v[k, ALL_CHANNELS.index("headPitch")]), abs=1e-5)
    assert pb.location.x == pytest.approx(-10 * float(v[k, ALL_CHANNELS.index("headX")]), abs=1e-5)
    assert tuple(arm.pose.bones["DEF-head"].rotation_euler) == (0, 0, 0)  # the automatic bone is left alone
    ms.head_mode = 'NONE'
    assert "Turns" not in " ".join(_labels(_draw(panels.OSMNET_PT_head)))


def test_turning_the_head_off_and_re_keying_leaves_the_bone_at_rest(scene):
    arm = rig.make_armature("Rig", bone="Head")
    face = ui_support.make_face("Face")
    face.parent = arm
    scene.osmnet.target = arm
    v = _generate()
    scene.frame_set(20)
    assert arm.pose.bones["Head"].matrix_basis.to_quaternion().angle > 0.01
    assert [t.name for t in arm.animation_data.nla_tracks] == [f"OSM-Net | {scene.osmnet.takes[0].name}"]
    scene.osmnet.mapping.head_mode = 'NONE'
    assert bpy.ops.osmnet.takes_rekey() == {'FINISHED'}
    scene.frame_set(21)
    assert len(arm.animation_data.nla_tracks) == 0  # the take no longer drives the armature
    assert arm.pose.bones["Head"].matrix_basis.to_quaternion().angle < 1e-6
    np.testing.assert_allclose(_key(face, "jawOpen", [21]), v[20, JAW], atol=1e-5)  # the face still plays


def test_a_viseme_only_head_shows_its_visemes_and_generate_keys_them(scene):
    from blender_addon.core import visemes

    keys = [f"viseme_{v}" for v in ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U")]
    head = rig.make_mesh("AvatarHead", keys)
    scene.osmnet.target = head
    labels = _labels(_draw(panels.OSMNET_PT_mapping))
    assert "0 of 52 face channels drive shape keys on AvatarHead, 15 viseme keys" in labels
    assert rigmap.view(scene).warning is None
    v = _generate()
    want = visemes.viseme_curves(Take(FPS, {c: v[:, i] for i, c in enumerate(ALL_CHANNELS)}), "oculus")
    np.testing.assert_allclose(_key(head, "viseme_aa", [5, 17, 30]), want["viseme_aa"][[4, 16, 29]], atol=1e-3)
    assert np.ptp(_key(head, "viseme_aa", range(1, N + 1))) > 0.1  # the mouth moves
