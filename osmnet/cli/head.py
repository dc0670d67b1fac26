"""`osmnet head --out DIR`: the generic preview head and its 52 ARKit shapes as OBJ meshes."""
from __future__ import annotations

from osmnet.cli import checks as c

HEAD_FILES = ("neutral.obj", "shapes", "preview_head.npz")  # what head writes (and --force replaces)


def add(sub):
    p = sub.add_parser("head", help="export the generic preview head and its 52 ARKit shapes (OBJ + npz)")
    p.add_argument("--out", required=True, help="folder to write (neutral.obj, shapes/*.obj, preview_head.npz)")
    c.add_force(p)
    p.add_argument("--basis", help="expression_basis.npz (default: the one shipped with osmnet)")
    p.add_argument("--model", help="MediaPipe face_landmarker.task (for the mesh's triangles and UVs)")
    p.set_defaults(run=run)


def run(a):
    from osmnet.data.expression import ExpressionBasis, ExpressionError
    from osmnet.render.head import export_head

    c.output(a, a.out, kind="dir", owns=HEAD_FILES)
    out = export_head(a.out, ExpressionBasis.load(a.basis), a.model)
    print(f"wrote {out}: neutral.obj, 52 shapes in shapes/, preview_head.npz")
