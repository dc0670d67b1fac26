"""Create preview head: 52 ARKit shape keys on a head bone that plays takes with osmnet's signs."""
from __future__ import annotations

import numpy as np
import pytest

import bpy
from blender_addon import keyframes as kf, preview_head as ph
from blender_addon.core.mapping import auto_mapping
from blender_addon.core.take import ALL_CHANNELS, ARKIT_NAMES, Take


def evaluated_vertices(ob) -> np.ndarray:
    dg = bpy.context.evaluated_depsgraph_get()
    ob_eval = ob.evaluated_get(dg)
    me = ob_eval.to_mesh()
    co = np.empty(3 * len(me.vertices), np.float32)
    me.vertices.foreach_get("co", co)
    ob_eval.to_mesh_clear()
    return co.reshape(-1, 3) @ np.array(ob.matrix_world.to_3x3()).T + np.array(ob.matrix_world.translation)


def one_channel_take(channel, value, frames=10):
    ch = {c: np.zeros(frames, np.float32) for c in ALL_CHANNELS}
    ch[channel][:] = value
    return Take(25.0, ch)


@pytest.fixture
def head():
    scene = bpy.context.scene
    scene.render.fps = 25
    arm, mesh = ph.create_preview_head(scene)
    return scene, arm, mesh, auto_mapping([mesh], arm)


def test_the_preview_head_has_every_arkit_shape_and_a_head_bone(head):
    scene, arm, mesh, mapping = head
    keys = mesh.data.shape_keys.key_blocks
    assert [k.name for k in keys][1:] == list(ARKIT_NAMES)
    assert len(mesh.data.vertices) == 468 and len(mesh.data.polygons) == 898 and mesh.data.uv_layers
    assert sorted(r.channel for r in mapping.routes) == sorted(ARKIT_NAMES)
    assert (mapping.head.armature, mapping.head.bone) == (arm.name, "head")
    moved = [np.abs(np.array([p.co for p in k.data]) - np.array([p.co for p in keys[0].data])).max() for k in keys[1:]]
    assert moved[ARKIT_NAMES.index("jawOpen")] > 0.005  # the jaw opens by millimetres, not microns
    assert scene.objects.get(mesh.name) and mesh.parent == arm
    np.testing.assert_allclose(evaluated_vertices(mesh), ph.HeadData.load().vertices, atol=1e-7)  # rests neutral


@pytest.mark.parametrize("channel,value,vertex,axis,sign", [
    ("headPitch", 0.3, "nose", 2, -1),      # pitch > 0: chin down -> nose tip goes down
    ("headYaw", 0.3, "nose", 0, +1),        # yaw > 0: nose turns to the image's right (+X)
    ("headRoll", 0.3, "top", 0, -1),        # roll > 0: counter-clockwise in the image: top goes left
])
def test_head_rotation_signs_match_the_tracker(head, channel, value, vertex, axis, sign):
    scene, arm, mesh, mapping = head
    rest = evaluated_vertices(mesh)
    idx = int(np.argmin(rest[:, 1])) if vertex == "nose" else int(np.argmax(rest[:, 2]))
    kf.bake_take(one_channel_take(channel, value), mapping, scene, "Take", start_frame=1)
    scene.frame_set(3)
    moved = evaluated_vertices(mesh)[idx] - rest[idx]
    assert sign * moved[axis] > 0.005


def test_a_tracked_take_deforms_the_preview_head_exactly(head, tracked_take):
    scene, arm, mesh, mapping = head
    kf.bake_take(tracked_take, mapping, scene, "Take", start_frame=1)
    data = ph.HeadData.load()
    k = int(np.argmax(tracked_take.channels["jawOpen"]))
    scene.frame_set(1 + k)
    w = np.clip(np.array([tracked_take.channels[n][k] for n in data.names]), 0, 1)
    local = data.vertices + np.tensordot(w, data.deltas, axes=1)
    c = {n: float(tracked_take.channels[n][k]) for n in ("headPitch", "headYaw", "headRoll")}
    cam = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], float)  # columns: camera x, y, z in Blender

    def rot(axis, a):
        i, j = {"X": (1, 2), "Y": (2, 0), "Z": (0, 1)}[axis]
        m = np.eye(3)
        m[i, i] = m[j, j] = np.cos(a)
        m[i, j], m[j, i] = -np.sin(a), np.sin(a)
        return m

    R = cam @ rot("Y", c["headYaw"]) @ rot("X", c["headPitch"]) @ rot("Z", c["headRoll"]) @ cam.T
    pivot = data.pivot()
    want = (local - pivot) @ R.T + pivot
    got = evaluated_vertices(mesh)
    assert np.abs(got - want).max() < 2e-5
    assert np.abs(got - data.vertices).max() > 0.003  # the frame really moves the face


def test_missing_or_wrong_head_data_is_a_clear_error(tmp_path):
    with pytest.raises(ph.PreviewHeadError, match="missing"):
        ph.HeadData.load(tmp_path / "none.npz")
    np.savez(tmp_path / "bad.npz", vertices=np.zeros((3, 3)))
    with pytest.raises(ph.PreviewHeadError, match="not a preview head"):
        ph.HeadData.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("channel,axis,sign", [("headX", 0, +1), ("headY", 2, +1), ("headZ", 1, -1)])
def test_head_translation_moves_the_face_along_the_camera_axes(head, channel, axis, sign):
    scene, arm, mesh, mapping = head
    mapping.head.use_location = True
    rest = evaluated_vertices(mesh)
    kf.bake_take(one_channel_take(channel, 0.02), mapping, scene, "Take", start_frame=1)
    scene.frame_set(2)
    shift = (evaluated_vertices(mesh) - rest).mean(axis=0)
    want = np.zeros(3)
    want[axis] = sign * 0.02  # camera x -> Blender X, y (up) -> Z, z (towards camera) -> -Y
    np.testing.assert_allclose(shift, want, atol=1e-6)
