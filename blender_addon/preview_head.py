"""Create preview head: a face mesh with the 52 ARKit shape keys on a one-bone armature.

The shapes are the project's own: the canonical MediaPipe face mesh moved by the expression
basis osmnet learned from tracked video (`osmnet head --out DIR` writes preview_head.npz). The
add-on ships a compact copy (data/preview_head.npz: float16 shapes, about 100 KB). The head
bone's rest axes equal osmnet's camera axes (x to the image's right, y up, z towards the camera),
so the default HeadBinding plays a take's head pose with the signs osmnet.track measured.

Public API
    DATA_PATH                                       the bundled npz
    HeadData.load(path=None) -> HeadData            vertices/deltas in Blender axes (metres)
    create_preview_head(scene, name="OSM Preview Head", path=None) -> (armature, mesh object)
    pack(src, dst)                                  osmnet's npz -> the compact bundled one
                                                    (`python -m blender_addon.preview_head SRC DST`)
    PreviewHeadError
"""
from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .core.errors import UserInputError
from .core.files import atomic_write
from .core.channels import ARKIT_NAMES

DATA_PATH = Path(__file__).resolve().parent / "data" / "preview_head.npz"
BONE = "head"
_SOURCE_AXES = "x: subject's left, y: up, z: out of the face"


class PreviewHeadError(UserInputError):
    """The preview head data is missing or not what the add-on expects; the message says why."""


def _to_blender(xyz: np.ndarray) -> np.ndarray:
    """osmnet head space (x image right, y up, z out of the face) -> Blender (face looks down -Y)."""
    return np.stack([xyz[..., 0], -xyz[..., 2], xyz[..., 1]], axis=-1)


@dataclass
class HeadData:
    vertices: np.ndarray  # (V, 3) float32, metres, Blender axes
    triangles: np.ndarray  # (F, 3) int32
    uv: np.ndarray  # (V, 2) float32
    deltas: np.ndarray  # (52, V, 3) float32, Blender axes
    names: tuple

    @classmethod
    def load(cls, path=None) -> "HeadData":
        path = Path(path or DATA_PATH)
        if not path.is_file():
            raise PreviewHeadError(f"preview head data {path} is missing; reinstall the add-on, or make it "
                                   "with `osmnet head --out DIR` and pack it (see preview_head.py)")
        try:
            with np.load(path) as d:
                raw = {k: d[k] for k in ("vertices", "triangles", "uv", "deltas", "names")}
                axes = str(d["axes"]) if "axes" in d.files else _SOURCE_AXES
        except (KeyError, ValueError, OSError) as e:
            raise PreviewHeadError(f"{path} is not a preview head npz ({e})") from None
        if axes != _SOURCE_AXES:
            raise PreviewHeadError(f"{path} uses axes {axes!r}; expected {_SOURCE_AXES!r}")
        v, t, uv, dl = raw["vertices"], raw["triangles"], raw["uv"], raw["deltas"]
        names = tuple(str(n) for n in raw["names"])
        if v.ndim != 2 or v.shape[1] != 3 or uv.shape != (len(v), 2) or dl.shape != (len(names), len(v), 3):
            raise PreviewHeadError(f"{path} has inconsistent shapes: vertices {v.shape}, uv {uv.shape}, "
                                   f"deltas {dl.shape}, {len(names)} names")
        if set(names) != set(ARKIT_NAMES):
            raise PreviewHeadError(f"{path} does not hold the 52 ARKit shapes (has {len(names)} names)")
        if t.ndim != 2 or t.shape[1] != 3 or t.min() < 0 or t.max() >= len(v):
            raise PreviewHeadError(f"{path} has triangles that point outside its {len(v)} vertices")
        return cls(_to_blender(v.astype(np.float32)), t.astype(np.int32), uv.astype(np.float32),
                   _to_blender(dl.astype(np.float32)), names)

    def pivot(self) -> np.ndarray:
        """Where the head turns: behind the face and level with the chin (roughly the top of the neck)."""
        lo, hi = self.vertices.min(axis=0), self.vertices.max(axis=0)
        return np.array([0.0, hi[1] + 0.03, lo[2] + 0.01], np.float32)


def create_preview_head(scene, name: str = "OSM Preview Head", path=None):
    """Build the mesh (52 ARKit shape keys, UVs, smooth) skinned to one 'head' bone; both objects
    are linked to the scene. Returns (armature object, mesh object)."""
    import bpy

    data = HeadData.load(path)
    me = bpy.data.meshes.new(name)
    me.from_pydata(data.vertices.tolist(), [], data.triangles.tolist())
    uv_layer = me.uv_layers.new(name="UVMap")
    loop_vert = np.empty(len(me.loops), np.int32)
    me.loops.foreach_get("vertex_index", loop_vert)
    uv_layer.data.foreach_set("uv", data.uv[loop_vert].ravel())
    me.polygons.foreach_set("use_smooth", np.ones(len(me.polygons), bool))
    me.update()
    mesh_ob = bpy.data.objects.new(name, me)

    arm = bpy.data.armatures.new(f"{name} Rig")
    arm_ob = bpy.data.objects.new(f"{name} Rig", arm)
    scene.collection.objects.link(arm_ob)
    scene.collection.objects.link(mesh_ob)
    _add_head_bone(arm_ob, data.pivot())

    mesh_ob.parent = arm_ob
    group = mesh_ob.vertex_groups.new(name=BONE)
    group.add(range(len(data.vertices)), 1.0, "REPLACE")
    mod = mesh_ob.modifiers.new("Armature", "ARMATURE")
    mod.object = arm_ob

    mesh_ob.shape_key_add(name="Basis")
    for i, shape in enumerate(data.names):
        kb = mesh_ob.shape_key_add(name=shape, from_mix=False)
        kb.data.foreach_set("co", (data.vertices + data.deltas[i]).ravel())
        kb.value = 0.0  # new keys may start at 1.0: the head must rest neutral
    mesh_ob.data.shape_keys.use_relative = True

    mat = bpy.data.materials.new(f"{name} Skin")
    mat.diffuse_color = (0.8, 0.62, 0.52, 1.0)
    me.materials.append(mat)
    return arm_ob, mesh_ob


def _add_head_bone(arm_ob, pivot):
    """One bone pointing up (+Z) with roll 0: its rest axes are osmnet's camera axes."""
    import bpy

    view_layer = bpy.context.view_layer
    previous = view_layer.objects.active
    view_layer.objects.active = arm_ob
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        bone = arm_ob.data.edit_bones.new(BONE)
        bone.head = tuple(pivot)
        bone.tail = (pivot[0], pivot[1], pivot[2] + 0.12)
        bone.roll = 0.0
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        view_layer.objects.active = previous
    pb = arm_ob.pose.bones[BONE]
    pb.rotation_mode = "QUATERNION"


def pack(src, dst) -> Path:
    """osmnet's preview_head.npz -> the compact copy the add-on ships (float16 shapes, uint16
    triangles), written atomically."""
    with np.load(src) as d:
        out = {
            "vertices": d["vertices"].astype(np.float32), "triangles": d["triangles"].astype(np.uint16),
            "uv": d["uv"].astype(np.float32), "deltas": d["deltas"].astype(np.float16),
            "names": d["names"], "axes": d["axes"] if "axes" in d.files else np.array(_SOURCE_AXES),
        }
    buf = io.BytesIO()
    np.savez_compressed(buf, **out)
    dst = atomic_write(dst, buf.getvalue())
    HeadData.load(dst)  # the packed file must read back
    return dst


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m blender_addon.preview_head SRC_preview_head.npz DST.npz")
    print(pack(sys.argv[1], sys.argv[2]))
