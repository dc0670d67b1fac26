"""Head rotation conversions agree with Blender's own mathutils for every rotation mode."""
from __future__ import annotations

import numpy as np
import pytest

import bpy  # noqa: F401  (mathutils comes with it)
from mathutils import Euler, Quaternion

from blender_addon.core import headpose as hp
from blender_addon.core.mapping import HeadBinding


def _angle(q1, q2):
    a = Quaternion(q1).rotation_difference(Quaternion(q2)).angle
    return min(a, 2 * np.pi - a)


@pytest.fixture
def quats():
    q = np.random.default_rng(0).normal(size=(100, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


@pytest.mark.parametrize("order", ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"])
def test_quaternion_to_euler_gives_the_same_rotation_as_mathutils(quats, order):
    e = hp.quaternion_to_euler(quats, order)
    assert max(_angle(Euler(tuple(e[i]), order).to_quaternion(), quats[i]) for i in range(len(quats))) < 1e-5


def test_axis_angle_gives_the_same_rotation(quats):
    aa = hp.quaternion_to_axis_angle(quats)
    assert max(_angle(Quaternion(aa[i, 1:], aa[i, 0]), quats[i]) for i in range(len(quats))) < 1e-5


def test_head_quaternions_compose_yaw_pitch_roll_like_the_native_euler_order():
    b = HeadBinding(pitch="+X", yaw="-Z", roll="+Y")
    assert hp.native_order(b) == "YXZ"
    rng = np.random.default_rng(2)
    p, y, r = rng.uniform(-0.6, 0.6, (3, 50))
    q = hp.head_quaternions(p, y, r, b)
    for i in range(50):
        e = Euler((p[i], r[i], -y[i]), "YXZ")  # angles stored by axis X, Y, Z
        assert _angle(e.to_quaternion(), q[i]) < 1e-6


def test_quaternion_keys_stay_on_one_hemisphere():
    yaw = np.linspace(0, 6 * np.pi, 200)
    q = hp.head_quaternions(np.zeros(200), yaw, np.zeros(200), HeadBinding())
    assert np.all(np.sum(q[1:] * q[:-1], axis=1) > 0)


def test_euler_curves_are_continuous_across_pi():
    yaw = np.linspace(2.5, 3.8, 60)
    ch = {"headPitch": np.full(60, 0.1), "headYaw": yaw, "headRoll": np.zeros(60)}
    curves = hp.head_curves(ch, HeadBinding(), "XYZ", "head")
    for _path, _i, v in curves:
        assert np.max(np.abs(np.diff(v))) < 0.2
