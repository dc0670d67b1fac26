"""Takes layer over the artist's work: on a rig with keyed body animation (spine, arm) and hand-keyed
shape keys, generate (the chunk path the backend's stream takes), swap, re-roll + accept and bake
leave the artist's Actions bit for bit as they were, and the body keys still play at every frame."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import rig  # noqa: E402
import ui_support  # noqa: E402
from blender_addon import compat, layers, operators, takes  # noqa: E402
from blender_addon.core.take import ALL_CHANNELS  # noqa: E402

FPS = 25
FRAMES = 75
CHECK = (1, 9, 20, 33, 47, 60, 75)
SMILE = 'key_blocks["Smile"].value'


def _body_pose(arm, face, scene):
    out = []
    for f in CHECK:
        scene.frame_set(f)
        out.append((arm.pose.bones["spine"].rotation_euler.y, arm.pose.bones["upper_arm.L"].rotation_euler.x,
                    face.data.shape_keys.key_blocks["Smile"].value))
    return np.array(out)


def _face(face, scene, key="jawOpen", frames=CHECK):
    vals = []
    for f in frames:
        scene.frame_set(f)
        vals.append(face.data.shape_keys.key_blocks[key].value)
    return np.array(vals)


def _values(seed):
    rng = np.random.default_rng(seed)
    t = np.arange(FRAMES) / FPS
    v = np.zeros((FRAMES, len(ALL_CHANNELS)), np.float32)
    col = {c: i for i, c in enumerate(ALL_CHANNELS)}
    v[:, col["jawOpen"]] = 0.5 + 0.45 * np.sin(2 * np.pi * (1.5 + seed) * t + rng.uniform(0, 6))
    v[:, col["eyeBlinkLeft"]] = (np.sin(2 * np.pi * 0.7 * t) > 0.95) * 1.0
    v[:, col["headYaw"]] = 0.25 * np.sin(2 * np.pi * 0.4 * t + seed)
    v[:, col["headPitch"]] = 0.1 * np.cos(2 * np.pi * 0.3 * t)
    return v


def _generate(context, job, values_per_take, chunk=20, start=1):
    """What runtime.drain() does with a generate job's events: items, chunks, take_done, end."""
    takes.begin_generated(context, job, len(values_per_take), start, FPS, FRAMES, 5, 1.0)
    for k, values in enumerate(values_per_take):
        for a in range(0, FRAMES, chunk):
            takes.apply_chunk(context.scene, job, k, a, values[a:a + chunk])
        takes.take_done(context.scene, job, k)
    return takes.end_job(context.scene, job, failed=False)


@pytest.fixture
def body(tmp_path):
    scene = ui_support.addon_scene(fps=FPS)
    scene.frame_start, scene.frame_end = 1, FRAMES
    arm, face = rig.make_body_rig()
    scene.osmnet.target = arm
    artist = {a.name: rig.dump_action(a) for a in (bpy.data.actions["BodyAnim"], bpy.data.actions["FaceAnim"])}
    return scene, arm, face, artist, _body_pose(arm, face, scene)


def test_generate_swap_reroll_accept_and_bake_keep_the_body_playing_and_the_artists_actions_unchanged(body):
    scene, arm, face, artist, pose = body
    context = bpy.context
    s = scene.osmnet

    def unchanged():
        np.testing.assert_allclose(_body_pose(arm, face, scene), pose, atol=1e-6)
        assert {n: rig.dump_action(bpy.data.actions[n]) for n in artist} == artist
        assert compat.active_action(arm)[0].name == "BodyAnim"
        assert compat.active_action(face.data.shape_keys)[0].name == "FaceAnim"

    a, b = _values(0), _values(1)
    assert _generate(context, "job-1", [a, b]) == "2 takes ready"
    assert s.active_take == 0
    unchanged()
    jaw = a[:, ALL_CHANNELS.index("jawOpen")]
    np.testing.assert_allclose(_face(face, scene), jaw[np.array(CHECK) - 1], atol=1e-5)
    scene.frame_set(30)
    assert arm.pose.bones["head"].matrix_basis.to_quaternion().angle > 0.01  # the head turns as well

    s.active_take = 1  # A/B: one click
    unchanged()
    np.testing.assert_allclose(_face(face, scene), b[np.array(CHECK) - 1, ALL_CHANNELS.index("jawOpen")], atol=1e-5)
    assert [rig.playing_take(i) for i in (arm, face.data.shape_keys)] == [s.takes[1].name] * 2

    s.takes[1].influence = 0.25  # the strip's influence is dialled
    np.testing.assert_allclose(_face(face, scene), 0.25 * b[np.array(CHECK) - 1, ALL_CHANNELS.index("jawOpen")],
                               atol=1e-5)
    s.takes[1].influence = 1.0

    # re-roll scene frames 21..40 of the first take, then accept it into the take
    s.active_take = 0
    scene.use_preview_range = True
    scene.frame_preview_start, scene.frame_preview_end = 21, 40
    base = s.takes[0]
    first, end = takes.reroll_range(context, base)
    assert (first, end) == (20, 40)
    takes.begin_reroll(context, "job-2", base, 99, first, end)
    assert s.takes[-1].name == f"{base.name} re-roll 21-40"
    new = a.copy()
    new[20:40] = _values(7)[20:40]
    takes.apply_chunk(scene, "job-2", 0, 20, new[20:40])
    takes.end_job(scene, "job-2", failed=False)
    unchanged()
    assert bpy.ops.osmnet.reroll_accept() == {'FINISHED'}
    assert len(s.takes) == 2 and s.takes[s.active_take].name == base.name
    np.testing.assert_allclose(takes.read_values(s.takes[0])[0], new, atol=1e-6)
    np.testing.assert_allclose(_face(face, scene, frames=range(21, 41)), new[20:40, ALL_CHANNELS.index("jawOpen")],
                               atol=1e-5)
    unchanged()

    # Restore: only the artist's animation plays; the face rests
    assert bpy.ops.osmnet.take_restore() == {'FINISHED'}
    assert rig.playing_take(face.data.shape_keys) is None and rig.playing_take(arm) is None
    np.testing.assert_allclose(_face(face, scene), 0.0)
    unchanged()
    s.active_take = 1
    s.active_take = 0  # selecting it plays it again

    # Bake into the artist's own Actions: their body and Smile curves stay as they were
    body_before = rig.dump_action(bpy.data.actions["BodyAnim"])
    smile_before = [c for c in rig.dump_action(bpy.data.actions["FaceAnim"]) if c[0] == SMILE]
    playing = _face(face, scene, frames=range(1, FRAMES + 1))
    s.bake_tolerance = 0.01
    assert bpy.ops.osmnet.take_bake() == {'FINISHED'}
    assert rig.playing_take(face.data.shape_keys) is None  # the take is muted: no double animation
    mine = bpy.data.actions["FaceAnim"]
    jaw_fc = compat.fcurve_collection(mine, compat.active_action(face.data.shape_keys)[1]).find(
        'key_blocks["jawOpen"].value')
    assert jaw_fc is not None and len(jaw_fc.keyframe_points) < FRAMES
    np.testing.assert_allclose(_face(face, scene, frames=range(1, FRAMES + 1)), playing, atol=0.01 + 1e-5)
    body_after = rig.dump_action(bpy.data.actions["BodyAnim"])
    assert [c for c in body_after if "head" not in c[0]] == body_before  # body curves bit for bit
    assert [c for c in rig.dump_action(mine) if c[0] == SMILE] == smile_before
    np.testing.assert_allclose(_body_pose(arm, face, scene), pose, atol=1e-6)


def test_where_the_artist_keyed_the_same_control_their_keys_win_or_add(body):
    scene, arm, face, artist, pose = body
    key = face.data.shape_keys
    kb = key.key_blocks["browInnerUp"]
    kb.value = 0.3
    kb.keyframe_insert("value", frame=1)  # hand key on a channel the take drives
    v = _values(0)
    v[:, ALL_CHANNELS.index("browInnerUp")] = 0.5
    _generate(bpy.context, "job-1", [v])
    assert _face(face, scene, "browInnerUp", (10,))[0] == pytest.approx(0.3)
    scene.osmnet.my_keys = 'COMBINE'
    assert key.animation_data.action_blend_type == 'COMBINE'
    assert _face(face, scene, "browInnerUp", (10,))[0] == pytest.approx(0.8)
    scene.osmnet.my_keys = 'REPLACE'
    assert key.animation_data.action_blend_type == 'REPLACE'


def test_takes_placed_one_after_another_all_play(body):
    scene, arm, face, artist, pose = body
    context = bpy.context
    _generate(context, "job-1", [_values(0)], start=1)
    _generate(context, "job-2", [_values(1)], start=FRAMES + 1)
    s = scene.osmnet
    s.active_take = 0
    s.active_take = 1  # does not overlap take 0 in time: both keep playing
    assert all(takes.is_playing(t) for t in s.takes)
    assert _face(face, scene, frames=(10,))[0] == pytest.approx(float(_values(0)[9, ALL_CHANNELS.index("jawOpen")]), abs=1e-5)
    assert _face(face, scene, frames=(FRAMES + 10,))[0] == pytest.approx(
        float(_values(1)[9, ALL_CHANNELS.index("jawOpen")]), abs=1e-5)


def test_operators_that_change_data_are_undoable():
    changes_data = {"osmnet.generate", "osmnet.reroll", "osmnet.take_delete", "osmnet.take_delete_unstarred",
                    "osmnet.take_import", "osmnet.preview_head", "osmnet.take_restore", "osmnet.reroll_accept",
                    "osmnet.take_bake", "osmnet.mapping_suggest", "osmnet.mapping_clear", "osmnet.mapping_neutral",
                    "osmnet.mapping_load", "osmnet.takes_rekey"}
    found = {c.bl_idname: set(getattr(c, "bl_options", ())) for c in operators.CLASSES}
    assert changes_data <= set(found)
    assert {n for n in changes_data if not {'REGISTER', 'UNDO'} <= found[n]} == set()


def test_layer_tracks_hold_only_the_head_bone_and_face_channels(body):
    scene, arm, face, artist, pose = body
    _generate(bpy.context, "job-1", [_values(0)])
    name = scene.osmnet.takes[0].name
    for id_ in (arm, face.data.shape_keys):
        (take, track), = layers.take_tracks(id_)
        strip = track.strips[0]
        paths = {fc.data_path for fc in compat.fcurve_collection(strip.action, compat.strip_slot(strip), create=False)}
        assert take == name and paths
        if id_ == arm:
            assert paths <= {'pose.bones["head"].rotation_quaternion'}
        else:
            assert all(p.startswith("key_blocks[") for p in paths) and SMILE not in paths
        assert (strip.frame_start, strip.frame_end) == (1, FRAMES)


def test_a_file_from_the_old_add_on_gets_the_artists_action_back(body):
    """Older versions made the take the rig's active Action (remembering the artist's in an ID
    property); playing a take now puts the artist's Action back and layers the take instead."""
    from blender_addon import keyframes

    scene, arm, face, artist, pose = body
    _generate(bpy.context, "job-1", [_values(0)])
    name = scene.osmnet.takes[0].name
    key = face.data.shape_keys
    for id_ in (arm, key):  # what the old activate_take did
        action, slot = compat.active_action(id_)
        id_[keyframes.ORIGINAL_ACTION] = action
        id_[keyframes.ORIGINAL_SLOT] = slot.identifier
        take_action = next(a for a, _s, owner in keyframes.take_parts(name) if owner == id_)
        take_slot = next(s for a, s, owner in keyframes.take_parts(name) if owner == id_)
        compat.assign_action(id_, take_action, take_slot)
    assert compat.active_action(arm)[0].get("osmnet_take") == name
    scene.osmnet.active_take = 0
    takes.play(bpy.context, scene.osmnet.takes[0])
    assert compat.active_action(arm)[0].name == "BodyAnim" and compat.active_action(key)[0].name == "FaceAnim"
    assert keyframes.ORIGINAL_ACTION not in arm and rig.playing_take(arm) == name
    np.testing.assert_allclose(_body_pose(arm, face, scene), pose, atol=1e-6)
