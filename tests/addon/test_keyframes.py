"""A real tracked take on a test rig: keys follow the take at any scene frame rate, takes play as
NLA layers and swap by muting, an artist's own Action is never touched, re-roll and streaming."""
from __future__ import annotations

import numpy as np
import pytest

import bpy
import rig
from blender_addon import compat, keyframes as kf
from blender_addon.core.mapping import HeadBinding, auto_mapping
from blender_addon.core.take import ALL_CHANNELS, Take


def keys(id_, data_path, index=0):
    """(frames, values) of the take curve playing on id_ now."""
    action, slot = rig.playing(id_)
    fc = compat.fcurve_collection(action, slot, create=False).find(data_path, index=index)
    assert fc is not None, f"{id_.name} has no curve {data_path}[{index}]"
    co = np.empty(2 * len(fc.keyframe_points), np.float32)
    fc.keyframe_points.foreach_get("co", co)
    return co[0::2], co[1::2]


def expected(take, channel, fps, n):
    return np.interp(np.arange(n) / fps, np.arange(take.frames) / take.fps, take.channels[channel])


def rot(axis, a):
    c, s = np.cos(a), np.sin(a)
    return {"X": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), "Y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "Z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def reversed_take(take):
    return Take(take.fps, {k: v[::-1].copy() for k, v in take.channels.items()}, {"variant": "reversed"})


@pytest.fixture
def scene_rig():
    arm, face, teeth = rig.make_rig()
    return bpy.context.scene, arm, face, teeth, auto_mapping([face, teeth], arm)


@pytest.mark.parametrize("fps,fps_base", [(24, 1.0), (25, 1.0), (30, 1.0), (30, 1.001)])
def test_keys_match_the_take_resampled_to_the_scene_rate(tracked_take, scene_rig, fps, fps_base):
    scene, arm, face, teeth, mapping = scene_rig
    scene.render.fps, scene.render.fps_base = fps, fps_base
    rate = fps / scene.render.fps_base  # fps_base is stored as float32: use what the scene holds
    baked = kf.bake_take(tracked_take, mapping, scene, "Take", start_frame=7)
    n = int(round(tracked_take.duration * rate))
    assert baked.frames == (7, 7 + n - 1) and not baked.skipped
    for ob, key, channel in ((face, "EyeBlink_R", "eyeBlinkRight"), (face, "ARKit_jawOpen", "jawOpen"),
                             (teeth, "JawOpen", "jawOpen"), (face, "bs_mouthSmile_R", "mouthSmileRight")):
        frames, values = keys(ob.data.shape_keys, f'key_blocks["{key}"].value')
        np.testing.assert_array_equal(frames, 7 + np.arange(n))
        np.testing.assert_allclose(values, np.clip(expected(tracked_take, channel, rate, n), 0, 1), atol=1e-6)
    assert np.ptp(values) > 0.05, "the tracked take should move the mouth"
    for k in (0, n // 3, n - 1):  # what Blender evaluates, not only what was stored
        scene.frame_set(7 + k)
        want = np.clip(expected(tracked_take, "jawOpen", rate, n)[k], 0, 1)
        assert face.data.shape_keys.key_blocks["ARKit_jawOpen"].value == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("mode", ["QUATERNION", "ZXY", "XYZ", "YXZ", "AXIS_ANGLE"])
def test_head_bone_pose_equals_the_take_rotation_in_every_rotation_mode(tracked_take, mode):
    arm, face, teeth = rig.make_rig(rotation_mode=mode)
    scene = bpy.context.scene
    scene.render.fps = 25
    mapping = auto_mapping([face], arm)
    kf.bake_take(tracked_take, mapping, scene, "Take", start_frame=1)
    pbone = arm.pose.bones["DEF-head"]
    c = tracked_take.channels
    worst = 0.0
    for k in range(0, tracked_take.frames, 9):
        scene.frame_set(1 + k)
        want = rot("Y", c["headYaw"][k]) @ rot("X", c["headPitch"][k]) @ rot("Z", c["headRoll"][k])
        got = np.array(pbone.matrix_basis.to_3x3())
        worst = max(worst, np.abs(got - want).max())
    assert worst < 1e-4
    assert np.ptp(c["headYaw"]) > 0.01, "a real take turns the head"


def test_signed_axes_turn_the_bone_the_other_way(tracked_take):
    arm, face, _ = rig.make_rig(rotation_mode="XYZ")
    scene = bpy.context.scene
    scene.render.fps = 25
    mapping = auto_mapping([face], arm)
    mapping.head = HeadBinding(armature="Rig", bone="DEF-head", pitch="-X", yaw="+Z", roll="-Y")
    kf.bake_take(tracked_take, mapping, scene, "Take", start_frame=1)
    k = int(np.argmax(np.abs(tracked_take.channels["headYaw"])))
    scene.frame_set(1 + k)
    c = {n: tracked_take.channels[n][k] for n in ("headPitch", "headYaw", "headRoll")}
    want = rot("Z", c["headYaw"]) @ rot("X", -c["headPitch"]) @ rot("Y", -c["headRoll"])
    np.testing.assert_allclose(np.array(arm.pose.bones["DEF-head"].matrix_basis.to_3x3()), want, atol=1e-5)


def _snapshot(ids):
    """Per data-block: its active Action and the take layer that plays."""
    return [(id_.name, getattr(compat.active_action(id_)[0], "name", None), rig.playing_take(id_)) for id_ in ids]


def test_swapping_takes_mutes_one_layer_and_plays_the_other(tracked_take, scene_rig):
    scene, arm, face, teeth, mapping = scene_rig
    a = kf.bake_take(tracked_take, mapping, scene, "Take A")
    b = kf.bake_take(reversed_take(tracked_take), mapping, scene, "Take B")
    assert kf.list_takes() == ["Take A", "Take B"]
    assert all(act.use_fake_user for act in a.actions + b.actions)
    ids = [arm, face.data.shape_keys, teeth.data.shape_keys]
    curves_before = {act.name: [tuple(k.co) for fc in compat.iter_fcurves(act) for k in fc.keyframe_points]
                     for act in bpy.data.actions}
    kf.activate_take("Take A")
    scene.frame_set(20)
    playing_a = _snapshot(ids)
    jaw_a = face.data.shape_keys.key_blocks["ARKit_jawOpen"].value
    kf.activate_take("Take B")
    scene.frame_set(20)
    playing_b = _snapshot(ids)
    assert [p[2] for p in playing_a] == ["Take A"] * 3 and [p[2] for p in playing_b] == ["Take B"] * 3
    assert [p[1] for p in playing_a] == [p[1] for p in playing_b] == [None] * 3  # no Action was assigned
    assert face.data.shape_keys.key_blocks["ARKit_jawOpen"].value != pytest.approx(jaw_a)
    after = {act.name: [tuple(k.co) for fc in compat.iter_fcurves(act) for k in fc.keyframe_points]
             for act in bpy.data.actions}
    assert after == curves_before, "swapping must not edit any keys"
    kf.activate_take("Take A")
    assert _snapshot(ids) == playing_a


def _artist_action(id_, data_path):
    act = bpy.data.actions.new("ArtistAnim")
    slot = compat.ensure_slot(act, "KEY" if isinstance(id_, bpy.types.Key) else "OBJECT", "Artist")
    fc = compat.new_fcurve(act, slot, data_path, 0)
    for f, v in ((1, 0.0), (12, 0.7), (30, 0.2)):
        fc.keyframe_points.insert(f, v)
    compat.assign_action(id_, act, slot)
    return act


def _dump(action):
    return [(fc.data_path, fc.array_index, [tuple(k.co) for k in fc.keyframe_points], [k.interpolation for k in fc.keyframe_points])
            for fc in compat.iter_fcurves(action)]


def test_an_artists_existing_action_keeps_playing_untouched_and_survives_save_and_reload(tracked_take, scene_rig, tmp_path):
    scene, arm, face, teeth, mapping = scene_rig
    key = face.data.shape_keys
    artist = _artist_action(key, 'key_blocks["Smile"].value')
    before, users_before = _dump(artist), artist.users
    assert not artist.use_fake_user
    kf.bake_take(tracked_take, mapping, scene, "Take A")
    kf.bake_take(reversed_take(tracked_take), mapping, scene, "Take B")
    kf.activate_take("Take A")
    assert compat.active_action(key)[0] == artist and rig.playing_take(key) == "Take A"
    scene.frame_set(12)  # the artist's Smile key and the take's jaw both play
    assert key.key_blocks["Smile"].value == pytest.approx(0.7, abs=1e-5)
    assert key.key_blocks["ARKit_jawOpen"].value == pytest.approx(
        np.clip(expected(tracked_take, "jawOpen", 24, 12)[11], 0, 1), abs=1e-4)
    path = tmp_path / "rig.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    artist = bpy.data.actions["ArtistAnim"]
    assert _dump(artist) == before and not artist.use_fake_user and artist.name == "ArtistAnim"
    assert set(kf.list_takes()) == {"Take A", "Take B"}
    key = bpy.data.objects["Face"].data.shape_keys
    assert rig.playing_take(key) == "Take A"
    kf.delete_take("Take A")
    assert compat.active_action(key)[0] == artist and rig.playing_take(key) is None
    assert _dump(artist) == before and artist.users == users_before
    assert kf.list_takes() == ["Take B"]


def test_reroll_merge_replaces_only_the_rerolled_range(tracked_take, scene_rig):
    scene, arm, face, teeth, mapping = scene_rig
    scene.render.fps = 30
    kf.bake_take(tracked_take, mapping, scene, "Take", start_frame=1)
    path = 'key_blocks["ARKit_jawOpen"].value'
    f0, v0 = keys(face.data.shape_keys, path)
    other = reversed_take(tracked_take)
    a, b = 40, 80  # take frames at 25 fps -> scene frames 48..96 at 30 fps
    kf.replace_take("Take", other, mapping, scene, frame_range=(a, b))
    f1, v1 = keys(face.data.shape_keys, path)
    np.testing.assert_array_equal(f0, f1)
    t = (f1 - 1) / 30.0
    inside = (t >= a / 25.0) & (t <= (b - 1) / 25.0)
    outside = (t <= (a - 1) / 25.0) | (t >= b / 25.0)
    mixed = np.interp(t, np.arange(tracked_take.frames) / 25.0,
                      np.where((np.arange(tracked_take.frames) >= a) & (np.arange(tracked_take.frames) < b),
                               other.channels["jawOpen"], tracked_take.channels["jawOpen"]))
    np.testing.assert_allclose(v1[inside], np.clip(mixed[inside], 0, 1), atol=1e-6)
    np.testing.assert_array_equal(v1[outside], v0[outside])
    assert not np.allclose(v1[inside], v0[inside])
    np.testing.assert_allclose(kf.take_from_action("Take").channels["jawOpen"][a:b], other.channels["jawOpen"][a:b])


@pytest.mark.parametrize("smoothing,sizes", [(0.0, [7, 13, 1, 40, 25] + [50] * 10), (0.05, [7, 13, 1, 40, 25] + [50] * 10),
                                              (0.0, [30] + [4] * 40), (0.05, [30] + [4] * 40)])
def test_streamed_chunks_key_exactly_like_the_whole_take(tracked_take, scene_rig, smoothing, sizes, monkeypatch):
    scene, arm, face, teeth, mapping = scene_rig
    scene.render.fps = 24
    mapping.smoothing = smoothing
    whole = kf.bake_take(tracked_take, mapping, scene, "Whole", start_frame=3)
    reference = {fc.data_path + str(fc.array_index): keys_of(fc) for fc in compat.iter_fcurves(whole.actions[0])
                 if "Teeth" not in fc.data_path}
    patched = []  # small chunks on a long curve take the key-by-key path: it must agree too
    monkeypatch.setattr(kf, "_patch_keys", lambda *a, _p=kf._patch_keys: patched.append(_p(*a)) or patched[-1])
    name = kf.new_take(mapping, scene, "Streamed", fps=tracked_take.fps, start_frame=3)
    values = tracked_take.array(ALL_CHANNELS)
    start = 0
    for size in sizes:
        if start >= len(values):
            break
        kf.write_chunk(name, values[start:start + size], start, mapping, scene)
        start += size
    assert start >= len(values)
    assert any(patched) or min(sizes[5:]) > 10
    streamed_action = next(a for a in bpy.data.actions if a.get("osmnet_take") == name)
    for fc in compat.iter_fcurves(streamed_action):
        ref = reference.get(fc.data_path + str(fc.array_index))
        if ref is not None:
            got = keys_of(fc)
            np.testing.assert_array_equal(got[0], ref[0])
            np.testing.assert_allclose(got[1], ref[1], atol=1e-6)
    assert kf.take_from_action(name).array(ALL_CHANNELS).tobytes() == values.tobytes()


def test_a_short_reroll_in_the_middle_keys_like_a_fresh_bake(tracked_take, scene_rig):
    scene, arm, face, teeth, mapping = scene_rig
    scene.render.fps = 30
    other = reversed_take(tracked_take)
    kf.bake_take(tracked_take, mapping, scene, "Take", start_frame=1)
    kf.replace_take("Take", other, mapping, scene, frame_range=(60, 66))  # a handful of keys
    merged = kf.take_from_action("Take")
    ref = kf.bake_take(merged, mapping, scene, "Reference", start_frame=1, activate=False)
    kf.activate_take("Take")
    for path in ('key_blocks["ARKit_jawOpen"].value', 'key_blocks["EyeBlink_R"].value'):
        got = keys(face.data.shape_keys, path)
        want = keys_of(compat.fcurve_collection(ref.actions[0], compat.ensure_slot(ref.actions[0], "KEY", face.data.shape_keys.name)).find(path))
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], atol=1e-6)


def keys_of(fc):
    co = np.empty(2 * len(fc.keyframe_points), np.float32)
    fc.keyframe_points.foreach_get("co", co)
    return co[0::2], co[1::2]


def test_refresh_after_a_frame_rate_change_rekeys_from_the_stored_take(tracked_take, scene_rig):
    scene, arm, face, teeth, mapping = scene_rig
    scene.render.fps = 25
    kf.bake_take(tracked_take, mapping, scene, "Take", start_frame=1)
    scene.render.fps = 60
    mapping.channels.clear()
    kf.refresh_take("Take", mapping, scene)
    frames, values = keys(teeth.data.shape_keys, 'key_blocks["mouthClose"].value')
    n = int(round(tracked_take.duration * 60))
    assert len(frames) == n
    np.testing.assert_allclose(values, np.clip(expected(tracked_take, "mouthClose", 60, n), 0, 1), atol=1e-6)


def test_gain_offset_and_disabled_channels_reach_the_keys(tracked_take, scene_rig):
    scene, arm, face, teeth, mapping = scene_rig
    scene.render.fps = 25
    from blender_addon.core.mapping import ChannelSetting
    mapping.channels["jawOpen"] = ChannelSetting(gain=0.5, offset=0.1)
    mapping.channels["mouthClose"] = ChannelSetting(enabled=False)
    kf.bake_take(tracked_take, mapping, scene, "Take", start_frame=1)
    _, v = keys(teeth.data.shape_keys, 'key_blocks["JawOpen"].value')
    np.testing.assert_allclose(v, np.clip(0.5 * tracked_take.channels["jawOpen"] + 0.1, 0, 1), atol=1e-6)
    action, slot = rig.playing(teeth.data.shape_keys)
    assert compat.fcurve_collection(action, slot).find('key_blocks["mouthClose"].value') is None


def test_a_mapping_that_points_nowhere_is_a_clear_error(tracked_take):
    rig.make_mesh("Plain", ["Smile", "Frown"])
    mapping = auto_mapping([bpy.data.objects["Plain"]])
    with pytest.raises(kf.TakeApplyError, match="auto-detect"):
        kf.bake_take(tracked_take, mapping, bpy.context.scene, "Take")
    assert not kf.list_takes() and not bpy.data.actions


@pytest.mark.parametrize("values,start,match", [
    (np.zeros((5, 10), np.float32), 0, "shape"),
    (np.full((5, 58), np.nan, np.float32), 0, "NaN"),
    (np.zeros((5, 58), np.float32), -3, "before take frame 0"),
])
def test_bad_chunks_are_refused_with_the_reason(scene_rig, values, start, match):
    scene, arm, face, teeth, mapping = scene_rig
    name = kf.new_take(mapping, scene, "Take", fps=25)
    with pytest.raises(kf.TakeApplyError, match=match):
        kf.write_chunk(name, values, start, mapping, scene)


def test_custom_property_and_bone_targets_are_keyed(tracked_take, scene_rig):
    from blender_addon.core.mapping import Route, Target

    scene, arm, face, teeth, mapping = scene_rig
    scene.render.fps = 25
    face["mouth_open"] = 0.0
    arm.pose.bones["head_end"].rotation_mode = "XYZ"
    mapping.routes += [Route("jawOpen", Target("custom_prop", "Face", "mouth_open"), 2.0),
                       Route("jawOpen", Target("bone", "Rig", "head_end", "rotation_euler", 0), -0.5),
                       Route("browInnerUp", Target("custom_prop", "Face", "not_there"))]
    mapping.head.bone = "Jaw"
    assert kf.missing_targets(mapping) == ["Face: custom property 'not_there' not found (add it first)",
                                           "head bone Rig/Jaw not found"]
    baked = kf.bake_take(tracked_take, mapping, scene, "Take", start_frame=1)
    assert baked.skipped == kf.missing_targets(mapping)
    k = int(np.argmax(tracked_take.channels["jawOpen"]))
    scene.frame_set(1 + k)
    jaw = float(tracked_take.channels["jawOpen"][k])
    assert face["mouth_open"] == pytest.approx(2.0 * jaw, abs=1e-5)
    assert arm.pose.bones["head_end"].rotation_euler.x == pytest.approx(-0.5 * jaw, abs=1e-5)


def test_renaming_a_take_renames_its_actions_and_keeps_it_playable(tracked_take, scene_rig):
    scene, arm, face, teeth, mapping = scene_rig
    kf.bake_take(tracked_take, mapping, scene, "Take A")
    kf.bake_take(tracked_take, mapping, scene, "Take B")
    assert kf.rename_take("Take A", "  Calm  ") == "Calm"
    assert kf.list_takes() == ["Calm", "Take B"]
    assert all(a.name.startswith("Calm") for a in bpy.data.actions if a.get("osmnet_take") == "Calm")
    kf.activate_take("Calm")
    assert rig.playing_take(arm) == "Calm"
    assert [t.name for t in arm.animation_data.nla_tracks] == ["OSM-Net | Calm", "OSM-Net | Take B"]
    for bad, match in (("Take B", "already"), ("", "needs a name")):
        with pytest.raises(kf.TakeApplyError, match=match):
            kf.rename_take("Calm", bad)
