"""The portrait rig's own geometry, checked against scipy (which the render path does not import)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from osmnet.render.rig import _ray_to_hull, convex_hull


@pytest.mark.parametrize("seed", range(5))
def test_the_hull_and_the_ray_distances_match_scipy(seed):
    from scipy.spatial import ConvexHull

    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(468, 2)) * [3.0, 5.0]
    pts = np.concatenate([pts, [[0, 10], [0, -10], [0, 4]]])  # exact ties on x, a collinear-ish point
    hull = convex_hull(pts)
    want = pts[ConvexHull(pts).vertices]  # counter-clockwise as well
    start = int(np.lexsort((want[:, 1], want[:, 0]))[0])  # the lowest x (then y) first, as convex_hull
    np.testing.assert_allclose(hull, np.roll(want, -start, axis=0), atol=1e-12)

    eq = ConvexHull(pts).equations
    angles = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    d = np.stack([np.cos(angles), np.sin(angles)], 1)
    c = pts.mean(0)
    along = d @ eq[:, :2].T
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = np.where(along > 1e-9, -(eq[:, 2] + eq[:, :2] @ c) / along, np.inf).min(1)
    np.testing.assert_allclose(_ray_to_hull(c, d, pts), ref, rtol=1e-9)


def test_a_square_with_points_on_its_edges_has_four_corners():
    side = np.linspace(0, 1, 5)
    pts = np.concatenate([np.stack([side, 0 * side], 1), np.stack([side, 0 * side + 1], 1),
                          np.stack([0 * side, side], 1), np.stack([0 * side + 1, side], 1), [[0.5, 0.5]]])
    np.testing.assert_array_equal(convex_hull(pts), [[0, 0], [1, 0], [1, 1], [0, 1]])


def test_rendering_a_portrait_imports_no_scipy(shared_data, face_model):
    """scipy.spatial's import was ~0.3 s of every cold render; a fresh process, so no other
    test's import hides it."""
    script = ("import sys\n"
              "from blender_addon.core.take import zero_take\n"
              "from osmnet.render.portrait import Portrait, render_frames\n"
              f"p = Portrait.from_file({str(shared_data / 'faces' / 'liveportrait_s0.jpg')!r})\n"
              "t = zero_take(4, 25.0)\n"
              "t.channels['headYaw'][:] = 0.2\n"
              "assert len(list(render_frames(p, t, size=128))) == 4\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))\n")
    env = {**os.environ, "OSMNET_FACE_LANDMARKER": str(face_model)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-500:]
