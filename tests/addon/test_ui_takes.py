"""The takes list as an artist uses it: import, select (the face plays it), rename, star, delete,
export; and greyed-out buttons that say why."""
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import ui_support  # noqa: E402
from blender_addon.core import take as takefile  # noqa: E402


@pytest.fixture
def scene():
    return ui_support.addon_scene()


def _take_file(path, frames=50, fps=25.0, jaw=None):
    t = np.arange(frames) / fps
    ch = {n: np.zeros(frames, np.float32) for n in takefile.ALL_CHANNELS}
    ch["jawOpen"] = (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)).astype(np.float32) if jaw is None else jaw
    ch["headYaw"] = (0.2 * np.sin(2 * np.pi * 0.5 * t)).astype(np.float32)
    takefile.Take(fps, ch, {"source": "test"}).save(path)
    return ch


def _shape_key_action(obj):
    """The take Action playing on the mesh's shape keys (its unmuted take layer)."""
    import rig

    return rig.playing(obj.data.shape_keys)[0]


def _jaw_values(obj, frames):
    scene = bpy.context.scene
    out = []
    for f in frames:
        scene.frame_set(f)
        out.append(obj.data.shape_keys.key_blocks["jawOpen"].value)
    return np.array(out)


def test_buttons_explain_what_is_missing(scene):
    with pytest.raises(RuntimeError, match="Choose the face"):
        bpy.ops.osmnet.generate()
    face = ui_support.make_face()
    scene.osmnet.target = face
    with pytest.raises(RuntimeError, match="audio file"):
        bpy.ops.osmnet.generate()
    with pytest.raises(RuntimeError, match="Select a take"):
        bpy.ops.osmnet.take_export(filepath="/tmp/x.json")
    with pytest.raises(RuntimeError, match="Select a take"):
        bpy.ops.osmnet.reroll()
    with pytest.raises(RuntimeError, match="Nothing is running"):
        bpy.ops.osmnet.cancel()


def test_import_select_rename_star_delete(scene, tmp_path):
    face = ui_support.make_face()
    scene.osmnet.target = face
    ch = _take_file(tmp_path / "a.json")
    _take_file(tmp_path / "b.json", jaw=np.zeros(50, np.float32))
    scene.frame_current = 11
    assert bpy.ops.osmnet.take_import(filepath=str(tmp_path / "a.json")) == {'FINISHED'}
    assert bpy.ops.osmnet.take_import(filepath=str(tmp_path / "b.json")) == {'FINISHED'}
    s = scene.osmnet
    assert [t.name for t in s.takes] == ["a", "b"]
    a, b = s.takes
    assert a.action.use_fake_user and b.action.use_fake_user and a.action != b.action
    assert a.start_frame == 11 and a.frames == 50

    s.active_take = 0  # selecting a take makes the face play it at once
    assert _shape_key_action(face) == a.action
    np.testing.assert_allclose(_jaw_values(face, [11, 15, 23]), ch["jawOpen"][[0, 4, 12]], atol=1e-4)
    s.active_take = 1
    assert _shape_key_action(face) == b.action
    assert np.all(_jaw_values(face, [11, 15, 23]) == 0)

    a.name = "best take"  # renaming in the list renames the Action too
    assert a.action.name == "best take"
    a.starred = True
    assert bpy.ops.osmnet.take_delete_unstarred() == {'FINISHED'}
    assert [t.name for t in s.takes] == ["best take"]
    assert "b" not in bpy.data.actions
    s.active_take = 0
    assert bpy.ops.osmnet.take_delete() == {'FINISHED'}
    assert len(s.takes) == 0 and "best take" not in bpy.data.actions


def test_export_json_and_livelink_csv_round_trip(scene, tmp_path):
    scene.osmnet.target = ui_support.make_face()
    ch = _take_file(tmp_path / "in.json")
    bpy.ops.osmnet.take_import(filepath=str(tmp_path / "in.json"))
    bpy.ops.osmnet.take_export(filepath=str(tmp_path / "out.json"), file_format='JSON')
    bpy.ops.osmnet.take_export(filepath=str(tmp_path / "out.csv"), file_format='CSV')
    back = takefile.Take.load(tmp_path / "out.json")
    np.testing.assert_allclose(back.channels["jawOpen"], ch["jawOpen"], atol=1e-5)
    csv = takefile.read_livelink_csv(tmp_path / "out.csv", fps=25.0)
    np.testing.assert_allclose(csv.channels["jawOpen"], ch["jawOpen"], atol=1e-4)
    # the CSV imports back as a take too
    assert bpy.ops.osmnet.take_import(filepath=str(tmp_path / "out.csv"), csv_fps=25.0) == {'FINISHED'}
    assert scene.osmnet.takes[-1].frames == 50


@pytest.mark.parametrize("content, message", [
    ("not json at all", "not valid JSON"),
    ('{"format": "something-else"}', "not an osmnet take"),
])
def test_bad_take_file_is_reported_and_adds_nothing(scene, tmp_path, content, message):
    scene.osmnet.target = ui_support.make_face()
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.osmnet.take_import(filepath=str(bad))
    assert len(scene.osmnet.takes) == 0


def test_take_at_another_scene_rate_is_resampled_to_scene_frames(scene, tmp_path):
    scene.render.fps = 50
    face = ui_support.make_face()
    scene.osmnet.target = face
    _take_file(tmp_path / "t.json", frames=25, fps=25.0)
    scene.frame_current = 1
    bpy.ops.osmnet.take_import(filepath=str(tmp_path / "t.json"))
    item = scene.osmnet.takes[0]
    assert item.frames == 50 and item.fps == 50


def test_preview_head_becomes_the_face_and_plays_the_selected_take(scene, tmp_path):
    assert bpy.ops.osmnet.preview_head() == {'FINISHED'}
    rig = scene.osmnet.target
    assert rig is not None and rig.type == 'ARMATURE'
    mesh = next(c for c in rig.children if c.type == 'MESH')
    assert len(mesh.data.shape_keys.key_blocks) == 53
    ch = _take_file(tmp_path / "t.json")
    scene.frame_current = 1
    bpy.ops.osmnet.take_import(filepath=str(tmp_path / "t.json"))
    scene.osmnet.active_take = 0
    np.testing.assert_allclose(_jaw_values(mesh, [1, 5, 13]), ch["jawOpen"][[0, 4, 12]], atol=1e-4)
    head = rig.pose.bones[0]
    rotations = []
    for f in (1, 13, 38):  # headYaw swings 0, +0.2, -0.2 rad: the head bone turns
        scene.frame_set(f)
        rotations.append(tuple(head.matrix_basis.to_quaternion()))
    assert len({tuple(round(x, 3) for x in q) for q in rotations}) == 3
