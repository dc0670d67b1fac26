"""A generic preview head: the canonical face mesh plus one shape per ARKit blendshape.

`osmnet head --out DIR` writes neutral.obj, shapes/<ARKit name>.obj (the neutral mesh with
that blendshape at weight 1, same vertex order, so Blender can join them as shape keys) and
preview_head.npz, a compact copy the Blender add-on bundles to build its preview head without
osmnet or torch. Units are metres; axes are MediaPipe's canonical face space: x towards the
subject's left, y up, z out of the face (towards the viewer). In Blender (Z up, front = -Y)
a vertex (x, y, z) goes to (x, -z, y); OBJ importers with "Y up, -Z forward" do that for you.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from blender_addon.core.files import replace_dir
from blender_addon.core.take import ARKIT_NAMES

CM_TO_M = 0.01


def preview_head_arrays(basis=None, task_path=None) -> dict:
    """Everything the preview head needs, as plain numpy arrays (metres)."""
    from osmnet.data.expression import ExpressionBasis
    from osmnet.data.face_mesh import load_canonical_mesh

    basis = basis if basis is not None else ExpressionBasis.load()
    mesh = load_canonical_mesh(task_path)
    return {
        "vertices": (basis.neutral * CM_TO_M).astype(np.float32),
        "triangles": mesh.triangles.astype(np.int32),
        "uv": mesh.uv.astype(np.float32),
        "deltas": (basis.deltas * CM_TO_M).astype(np.float32),
        "names": np.array(ARKIT_NAMES),
        "units": np.array("m"),
        "axes": np.array("x: subject's left, y: up, z: out of the face"),
    }


def _write_obj(path: Path, vertices, arrays):
    """OBJ with positions, UVs and triangles (no material: the preview head has no texture)."""
    import trimesh

    m = trimesh.Trimesh(vertices=vertices, faces=arrays["triangles"], process=False)
    m.visual = trimesh.visual.TextureVisuals(uv=arrays["uv"])
    text, _ = trimesh.exchange.obj.export_obj(m, include_normals=False, include_texture=True,
                                              return_texture=True)
    lines = [ln for ln in text.splitlines() if not ln.startswith(("mtllib", "usemtl"))]
    path.write_text("\n".join(lines) + "\n")


def export_head(out, basis=None, task_path=None) -> Path:
    """Write the OBJ files and preview_head.npz into `out` (replaced as a whole, atomically)."""
    arrays = preview_head_arrays(basis, task_path)
    out = Path(out)
    with replace_dir(out) as tmp:
        (tmp / "shapes").mkdir()
        _write_obj(tmp / "neutral.obj", arrays["vertices"], arrays)
        for i, name in enumerate(ARKIT_NAMES):
            _write_obj(tmp / "shapes" / f"{name}.obj", arrays["vertices"] + arrays["deltas"][i], arrays)
        np.savez(tmp / "preview_head.npz", **arrays)
    return out
