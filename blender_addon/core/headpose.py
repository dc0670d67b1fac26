"""Head channels -> curves of one pose bone or object, in whatever rotation mode the artist's uses.

The take's head rotation is R = yaw * pitch * roll (roll applied first, the convention of
osmnet.data.track); a HeadBinding says which signed bone axis each angle turns about. A bone whose
Euler order already is that composition gets the three angles as they are; quaternion, axis-angle
and every other Euler order get the same rotation converted, so the pose is identical in every
mode. Pure numpy (no bpy), so the conversions are tested against mathutils and without Blender.

Public API
    native_order(binding) -> 'ZXY' (the Euler order equal to the take's composition)
    head_quaternions(pitch, yaw, roll, binding) -> (n, 4) w, x, y, z, one hemisphere
    quaternion_to_euler(q, order) -> (n, 3) continuous angles
    quaternion_to_axis_angle(q) -> (n, 4) angle, x, y, z
    head_curves(channels, binding, rotation_mode, bone_name='', frame=None) -> [(data_path, index, values)]
                                        (a pose bone, or an object's delta transform)
"""
from __future__ import annotations

import numpy as np

from .mapping import HeadBinding, Target

_AXIS = {"X": 0, "Y": 1, "Z": 2}


def _sign(signed_axis: str) -> float:
    return -1.0 if signed_axis[0] == "-" else 1.0


def native_order(binding: HeadBinding) -> str:
    """Blender names Euler orders by application order: roll first, then pitch, then yaw."""
    return binding.roll[1] + binding.pitch[1] + binding.yaw[1]


def _axis_quat(signed_axis: str, angle) -> np.ndarray:
    half = _sign(signed_axis) * np.asarray(angle, np.float64) / 2
    q = np.zeros((half.shape[0], 4))
    q[:, 0] = np.cos(half)
    q[:, 1 + _AXIS[signed_axis[1]]] = np.sin(half)
    return q


def _qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = a.T
    w2, x2, y2, z2 = b.T
    return np.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], axis=1)


def head_quaternions(pitch, yaw, roll, binding: HeadBinding) -> np.ndarray:
    q = _qmul(_qmul(_axis_quat(binding.yaw, yaw), _axis_quat(binding.pitch, pitch)), _axis_quat(binding.roll, roll))
    # neighbouring keys on the same hemisphere, so linear interpolation takes the short way
    flips = np.cumsum(np.r_[0, np.sum(q[1:] * q[:-1], axis=1) < 0]) % 2 == 1
    q[flips] *= -1
    return q


def _matrices(q: np.ndarray) -> np.ndarray:
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=1).reshape(-1, 3, 3)


def quaternion_to_euler(q: np.ndarray, order: str) -> np.ndarray:
    """Angles (a_i, a_j, a_k) stored by axis (x, y, z) for R = R_k R_j R_i, order = 'ijk'."""
    i, j, k = (_AXIS[c] for c in order)
    s = 1.0 if (i, j, k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1.0
    R = _matrices(q)
    b = np.arcsin(np.clip(-s * R[:, k, i], -1.0, 1.0))
    a = np.arctan2(s * R[:, k, j], R[:, k, k])
    c = np.arctan2(s * R[:, j, i], R[:, i, i])
    out = np.empty((len(q), 3))
    out[:, i], out[:, j], out[:, k] = np.unwrap(a), b, np.unwrap(c)
    return out


def quaternion_to_axis_angle(q: np.ndarray) -> np.ndarray:
    q = q * np.where(q[:, :1] < 0, -1.0, 1.0)  # angle in [0, pi]
    w = np.clip(q[:, 0], -1.0, 1.0)
    s = np.sqrt(np.maximum(1.0 - w * w, 0.0))
    axis = np.where(s[:, None] > 1e-9, q[:, 1:] / np.maximum(s, 1e-9)[:, None], [0.0, 1.0, 0.0])
    return np.column_stack([2 * np.arccos(w), axis])


def _conjugate(q_frame: np.ndarray, q: np.ndarray) -> np.ndarray:
    """frame * q * frame^-1: a rotation about the object's own axes, expressed in its parent's
    axes (an object's delta rotation turns about the parent's axes, after its own rotation)."""
    f = np.broadcast_to(np.asarray(q_frame, np.float64), q.shape)
    inv = f * np.array([1.0, -1.0, -1.0, -1.0])
    return _qmul(_qmul(f, q), inv)


def _rotate(q_frame, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v (n, 3) by one quaternion."""
    R = _matrices(np.asarray(q_frame, np.float64).reshape(1, 4))[0]
    return v @ R.T


def head_curves(ch: dict, binding: HeadBinding, rotation_mode: str, bone_name: str = "",
                frame=None) -> list:
    """Channels (already through the mapping's gain/neutral/smoothing) -> curves of the pose bone
    `bone_name`, or of an object (binding.kind 'object'): its delta rotation/location, turning about
    the object's own axes at rotation `frame` (w, x, y, z; its current rotation), so its own
    rotation, location and keys stay as the artist set them. Axis-angle objects have no delta
    rotation: they get the location only."""
    out = []
    obj = binding.kind == "object"
    q_frame = np.array([1.0, 0.0, 0.0, 0.0]) if frame is None else np.asarray(frame, np.float64)
    identity = np.allclose(q_frame, [1.0, 0.0, 0.0, 0.0])

    def path(prop):
        return ("delta_" + prop) if obj else Target("bone", "", bone_name, prop).data_path

    rot_ok = not (obj and rotation_mode == "AXIS_ANGLE")
    if rot_ok and binding.use_rotation and all(k in ch for k in ("headPitch", "headYaw", "headRoll")):
        pitch, yaw, roll = (np.asarray(ch[k], np.float64) for k in ("headPitch", "headYaw", "headRoll"))
        if rotation_mode == native_order(binding) and identity:
            vals = np.empty((len(pitch), 3))
            for sa, ang in ((binding.pitch, pitch), (binding.yaw, yaw), (binding.roll, roll)):
                vals[:, _AXIS[sa[1]]] = _sign(sa) * ang
            prop = "rotation_euler"
        else:
            q = head_quaternions(pitch, yaw, roll, binding)
            if not identity:
                q = _conjugate(q_frame, q)
            if rotation_mode == "QUATERNION":
                prop, vals = "rotation_quaternion", q
            elif rotation_mode == "AXIS_ANGLE":
                prop, vals = "rotation_axis_angle", quaternion_to_axis_angle(q)
            else:
                prop, vals = "rotation_euler", quaternion_to_euler(q, rotation_mode)
        out += [(path(prop), i, vals[:, i]) for i in range(vals.shape[1])]
    if binding.use_location and all(k in ch for k in ("headX", "headY", "headZ")):
        n = len(np.asarray(ch["headX"]))
        loc = np.zeros((n, 3))
        for sa, name in ((binding.x, "headX"), (binding.y, "headY"), (binding.z, "headZ")):
            loc[:, _AXIS[sa[1]]] = _sign(sa) * binding.location_scale * np.asarray(ch[name], np.float64)
        if obj and not identity:
            loc = _rotate(q_frame, loc)
        out += [(path("location"), i, loc[:, i]) for i in range(3)]
    return out
