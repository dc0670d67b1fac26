"""Baking a real tracked take into the artist's own Actions: far fewer keys, and what Blender plays
afterwards stays within the tolerance of what the take played, at every frame."""
from __future__ import annotations

import numpy as np
import pytest

import bpy
import rig
import ui_support
from blender_addon import bake, compat, keyframes as kf
from blender_addon.core.mapping import auto_mapping


def _played(scene, face, arm, frames):
    keys = face.data.shape_keys.key_blocks
    out = []
    for f in frames:
        scene.frame_set(f)
        out.append([keys[n].value for n in ("jawOpen", "mouthSmileLeft", "eyeBlinkRight", "browInnerUp")]
                   + list(arm.pose.bones["DEF-head"].rotation_quaternion))
    return np.array(out)


@pytest.mark.parametrize("tolerance", [0.002, 0.01])
def test_a_baked_real_take_plays_the_same_within_the_tolerance_with_fewer_keys(tracked_take, tolerance):
    scene = bpy.context.scene
    scene.render.fps = 25
    arm = rig.make_armature(rotation_mode="QUATERNION")
    face = ui_support.make_face()
    face.parent = arm
    kf.bake_take(tracked_take, auto_mapping([face], arm), scene, "Take", start_frame=1)
    frames = range(1, tracked_take.frames + 1)
    before = _played(scene, face, arm, frames)
    report = bake.bake_take_to_actions("Take", tolerance)
    assert report.curves == 56 and report.keys_before == 56 * tracked_take.frames
    assert report.keys_after < (0.5 if tolerance < 0.005 else 0.3) * report.keys_before
    assert report.worst_error <= tolerance + 1e-6
    assert rig.playing_take(arm) is None and compat.active_action(arm)[0].name == "RigAction"
    after = _played(scene, face, arm, frames)
    assert np.abs(after - before).max() <= tolerance + 1e-5
    assert np.ptp(before[:, 0]) > 0.05  # the real take moves the jaw


def test_baking_twice_replaces_the_take_range_instead_of_doubling_keys(tracked_take):
    scene = bpy.context.scene
    scene.render.fps = 25
    face = ui_support.make_face()
    kf.bake_take(tracked_take, auto_mapping([face]), scene, "Take", start_frame=1)
    first = bake.bake_take_to_actions("Take", 0.005)
    kf.activate_take("Take")
    second = bake.bake_take_to_actions("Take", 0.005)
    action = compat.active_action(face.data.shape_keys)[0]
    assert sum(len(fc.keyframe_points) for fc in compat.iter_fcurves(action)) == second.keys_after == first.keys_after
