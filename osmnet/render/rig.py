"""The portrait rig: the warp mesh of one photo and where its vertices go in each frame.

Vertices (all in crop-normalised image units: x right, y down, z away from the camera, 1 = crop
side):
  * the 468 face-mesh vertices, lifted into the canonical face space (osmnet.data.track.to_canonical),
    where a frame's expression displacement (osmnet.data.expression.ExpressionBasis) is added before
    the frame's head pose projects them back;
  * one pupil vertex per eye, the centre of a triangle fan filling the eye opening, which the
    gaze channels move across the eye;
  * an inner ring around the face oval (hair, ears, jaw line, neck) that moves rigidly with the
    head but ignores expression, and an outer ring that follows the head only partly (the fade);
  * a fixed border on the frame's edge, so the background and shoulders stay put.
Rings are built as quad strips between loops of equal length (oval -> inner -> outer -> border),
so the whole plane is tiled by a valid triangulation without any Delaunay step.

Triangles are labelled by region so the renderer can paint what the photo does not show: the
closed eyelid (the strip above each eye; osmnet.render.paint). The inner-lip strip is labelled
MOUTH; the mouth's inside is painted from the lip vertices themselves (osmnet.render.mouth).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from osmnet.data.track import euler_to_rotation, fit_similarity

# Inner-lip and eye contours of the MediaPipe mesh, corner to corner (both arcs share corners).
MOUTH_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
MOUTH_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
EYES = (  # (upper arc, lower arc): the subject's right eye (image left), then left
    ((33, 246, 161, 160, 159, 158, 157, 173, 133), (33, 7, 163, 144, 145, 153, 154, 155, 133)),
    ((263, 466, 388, 387, 386, 385, 384, 398, 362), (263, 249, 390, 373, 374, 380, 381, 382, 362)),
)
FACE, MOUTH, EYE_R, EYE_L, LID_R, LID_L, OUTER = range(7)
N_FACE = 468
IRIS = (468, 473)  # iris-centre landmarks of the 478-point model (matched to the eyes by distance)
N_CORE = N_FACE + 2  # face mesh + one pupil vertex per eye (the centre of the eye's triangle fan)
GAZE_ACROSS = 0.2  # pupil travel at eyeLookIn/Out = 1, as a share of the eye's width
GAZE_UP = 0.3  # ... at eyeLookUp/Down = 1, as a share of the eye's opening
GAZE_LIMIT = (0.28, 0.35)  # the pupil never leaves the eye
FLIP = np.diag([1.0, -1.0, -1.0])  # camera axes (y up, z to viewer) <-> image axes (y down, z away)

# Ring geometry: radial scale of the face oval (top of the head gets more room for hair).
INNER_SCALE = (1.22, 1.5)  # (chin, crown)
OUTER_SCALE = (1.9, 2.3)
INNER_FOLLOW = (0.8, 1.0)  # share of the rigid head motion (neck below the chin moves less)
OUTER_FOLLOW = (0.25, 0.45)
TURN_FULL_FILL = 0.1  # rad of pitch/yaw away from the photo's pose at which hidden sides are fully filled
BORDER_MARGIN = 0.0  # the fixed border lies on the crop's edge: the frame never wobbles


@dataclass
class Rig:
    """Per-portrait warp mesh; built once, reused for every frame."""

    src: np.ndarray  # (N, 3) vertex positions in the photo (crop-normalised)
    tex_turned: np.ndarray  # (N, 2) where each vertex reads the photo once the head turns (_hidden_fill)
    canon: np.ndarray  # (N, 3) canonical-space position (face: identity shape; rings: lifted)
    follow: np.ndarray  # (N,) share of the rigid head motion (1 face, 0 border)
    tris: np.ndarray  # (T, 3) int64
    region: np.ndarray  # (T,) int64 region label per triangle
    attrs: np.ndarray  # (N, 1): lid (1 at the lash line), read by the eyelid painter
    scale: float  # crop units per canonical cm
    rot: np.ndarray  # (3, 3) canonical -> camera rotation of the photo's head
    trans: np.ndarray  # (3,) image-space position of the canonical origin
    distance_cm: float  # camera distance of the photo's head (for headZ)


def _oval_loop(tris: np.ndarray) -> list[int]:
    """The mesh's outer boundary as one ordered vertex loop."""
    edges: dict[tuple[int, int], int] = {}
    for t in tris:
        for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])):
            k = (min(a, b), max(a, b))
            edges[k] = edges.get(k, 0) + 1
    nxt: dict[int, list[int]] = {}
    for (a, b), n in edges.items():
        if n == 1:
            nxt.setdefault(int(a), []).append(int(b))
            nxt.setdefault(int(b), []).append(int(a))
    start = min(nxt)
    loop, prev = [start], None
    while True:
        cand = [v for v in nxt[loop[-1]] if v != prev]
        prev = loop[-1]
        if cand[0] == start:
            return loop
        loop.append(cand[0])


def _strip(inner: list[int], outer: list[int]) -> list[tuple[int, int, int]]:
    n = len(inner)
    out = []
    for i in range(n):
        j = (i + 1) % n
        out += [(inner[i], inner[j], outer[i]), (outer[i], inner[j], outer[j])]
    return out


def _ray_to_box(c: np.ndarray, d: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Distance along unit rays d from c to the box [lo, hi]^2 (c inside)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.where(d[:, 0] > 0, (hi - c[0]) / d[:, 0], (lo - c[0]) / d[:, 0])
        ty = np.where(d[:, 1] > 0, (hi - c[1]) / d[:, 1], (lo - c[1]) / d[:, 1])
    tx = np.where(np.abs(d[:, 0]) < 1e-9, np.inf, tx)
    ty = np.where(np.abs(d[:, 1]) < 1e-9, np.inf, ty)
    return np.minimum(tx, ty)


def convex_hull(points: np.ndarray) -> np.ndarray:
    """(K, 2) the convex hull's corners of 2D points, counter-clockwise, no collinear ones
    (Andrew's monotone chain). Here rather than scipy.spatial, whose import alone cost the first
    render ~0.3 s of its cold start."""
    p = np.unique(np.asarray(points, np.float64), axis=0)  # sorted by x, then y
    if len(p) < 3:
        return p

    def half(seq):
        out = []
        for q in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (q[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (q[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(q)
        return out[:-1]

    return np.array(half(p) + half(p[::-1]))


def _ray_to_hull(c: np.ndarray, d: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance along unit rays d from c (inside) to the convex hull of 2D points."""
    a = convex_hull(points)
    e = np.roll(a, -1, axis=0) - a  # counter-clockwise edges: the outward normal is (ey, -ex)
    n = np.stack([e[:, 1], -e[:, 0]], 1) / np.linalg.norm(e, axis=1, keepdims=True)
    off = -(n * a).sum(1)  # n . x + off <= 0 inside
    along = d @ n.T  # (R, E)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(along > 1e-9, -(off + n @ c) / along, np.inf)
    return t.min(axis=1)


def _inside(poly: np.ndarray, p: np.ndarray) -> bool:
    """Even-odd test: is point p inside the polygon (K, 2)?"""
    a, b = poly, np.roll(poly, -1, axis=0)
    cross = (a[:, 1] > p[1]) != (b[:, 1] > p[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        x = a[:, 0] + (p[1] - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    return bool(np.count_nonzero(cross & (p[0] < x)) % 2)


def _pupils(lm: np.ndarray) -> np.ndarray:
    """(2, 3) pupil position per eye: the iris landmark when it lies in the eye, else its centre."""
    out = []
    for upper, lower in EYES:
        loop = list(upper) + list(lower[-2:0:-1])
        centre = lm[loop].mean(0)
        irises = [lm[i] for i in IRIS if i < len(lm)]
        best = min(irises, key=lambda p: np.linalg.norm(p[:2] - centre[:2]), default=centre)
        inside = _inside(lm[loop, :2], best[:2])
        out.append(np.array([best[0], best[1], centre[2]]) if inside else centre)
    return np.stack(out)


def _eye_fans(tris: np.ndarray, region: np.ndarray):
    """Replace each eye's lid-to-lid strip by a fan around its pupil vertex (so gaze can move it)."""
    keep = ~np.isin(region, (EYE_R, EYE_L))
    fans, labels = [], []
    for k, (upper, lower) in enumerate(EYES):
        loop = list(upper) + list(lower[-2:0:-1])
        for i in range(len(loop)):
            fans.append((N_FACE + k, loop[i], loop[(i + 1) % len(loop)]))
            labels.append(EYE_R + k)
    return (np.concatenate([tris[keep], np.asarray(fans, np.int64)]),
            np.concatenate([region[keep], np.asarray(labels, np.int64)]))


def _face_regions(mesh_tris: np.ndarray, canon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Region label per face triangle and the (N_FACE, 1) lid attribute (1 at the lash line)."""
    region = np.full(len(mesh_tris), FACE, np.int64)
    attrs = np.zeros((N_FACE, 1), np.float32)
    mouth = set(MOUTH_UPPER) | set(MOUTH_LOWER)
    in_set = lambda t, s: all(int(v) in s for v in t)  # noqa: E731
    region[[in_set(t, mouth) for t in mesh_tris]] = MOUTH
    for k, (upper, lower) in enumerate(EYES):
        eye = set(upper) | set(lower)
        region[[in_set(t, eye) for t in mesh_tris]] = EYE_R + k
        lash = set(upper[1:-1])
        attrs[list(lash), 0] = 1.0
        floor = canon[list(upper), 1].min() - 0.05
        for ti, t in enumerate(mesh_tris):
            if region[ti] == FACE and any(int(v) in lash for v in t) and canon[t, 1].min() >= floor:
                region[ti] = LID_R + k
    return region, attrs


def _hidden_fill(src2d: np.ndarray, tris: np.ndarray, iters: int = 300) -> np.ndarray:
    """Photo positions for face vertices that the photo does not show (a turned face's far side).

    Their triangles are folded over (back-facing) in the photo, so reading the photo there would
    paint the visible cheek a second time once a turn brings that side into view. Vertices
    touched only by folded triangles take the average of their neighbours instead, with the
    other vertices fixed (a discrete harmonic fill): the revealed side stretches the fold line.
    """
    a = src2d[tris[:, 1]] - src2d[tris[:, 0]]
    b = src2d[tris[:, 2]] - src2d[tris[:, 0]]
    area = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    folded = np.sign(area) != np.sign(np.median(area))
    n = len(src2d)
    seen = np.zeros(n, bool)
    seen[tris[~folded].ravel()] = True
    hidden = ~seen & np.isin(np.arange(n), tris[folded].ravel())
    tex = src2d.copy()
    if not hidden.any():
        return tex
    edges = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    adj = np.zeros((n, n), np.float32)
    adj[edges[:, 0], edges[:, 1]] = adj[edges[:, 1], edges[:, 0]] = 1.0
    adj = adj[hidden] / adj[hidden].sum(1, keepdims=True)
    for _ in range(iters):
        tex[hidden] = adj @ tex
    return tex


def build_rig(landmarks: np.ndarray, canonical: np.ndarray, matrix: np.ndarray,
              mesh_tris: np.ndarray) -> Rig:
    """Rig from the photo's landmarks (478 or 468, 3; crop-normalised) and their canonical lift."""
    lm = np.asarray(landmarks, np.float64)
    src_face = lm[:N_FACE]
    canon_face = np.asarray(canonical, np.float64)[:N_FACE]
    s, R_img, t = fit_similarity(canon_face, src_face)
    rot = FLIP @ R_img  # canonical -> camera
    tris = np.asarray(mesh_tris, np.int64)
    region, face_attrs = _face_regions(tris, canon_face)
    pupils = _pupils(lm)
    tris, region = _eye_fans(tris, region)

    oval = _oval_loop(tris)
    o = src_face[oval]
    c = o[:, :2].mean(0)
    d = o[:, :2] - c
    r = np.linalg.norm(d, axis=1, keepdims=True)
    u = d / np.maximum(r, 1e-9)
    up = np.clip(-u[:, 1:2] * 0.5 + 0.5, 0.0, 1.0)  # 1 at the crown, 0 at the chin
    box = _ray_to_box(c, u, -BORDER_MARGIN, 1.0 + BORDER_MARGIN)[:, None]
    # Rings stay ordered (oval < inner < outer < border) even when the face fills the photo.
    # In a turned face the far side of the oval lies inside the visible face: the inner ring must
    # clear the visible outline (convex hull of all landmarks) or it would drag the face along.
    r = np.maximum(r, _ray_to_hull(c, u, src_face[:, :2])[:, None] / 1.08)
    r_in = np.maximum(np.minimum(r * (INNER_SCALE[0] + up * (INNER_SCALE[1] - INNER_SCALE[0])), 0.75 * box), 1.08 * r)
    box = np.maximum(box, 1.15 * r_in)
    r_out = np.minimum(r * (OUTER_SCALE[0] + up * (OUTER_SCALE[1] - OUTER_SCALE[0])), r_in + 0.6 * (box - r_in))
    r_out = np.maximum(r_out, 1.04 * r_in)
    depth_back = o[:, 2:3] + 0.05  # rings sit a little behind the oval
    ring_in = np.concatenate([c + u * r_in, depth_back], 1)
    ring_out = np.concatenate([c + u * r_out, depth_back], 1)
    border = np.concatenate([c + u * box, depth_back], 1)

    # Lift ring points into canonical space so they can follow the head rigidly.
    inv = lambda p: (p - t) @ R_img / s  # noqa: E731  (R_img^T (p - t) / s, row form)
    n = len(oval)
    idx_in = np.arange(N_CORE, N_CORE + n)
    idx_out = idx_in + n
    idx_border = idx_out + n
    src = np.concatenate([src_face, pupils, ring_in, ring_out, border]).astype(np.float32)
    canon = np.concatenate([canon_face, inv(pupils), inv(ring_in), inv(ring_out), inv(border)]).astype(np.float32)
    up1 = up[:, 0]
    follow = np.concatenate([np.ones(N_CORE),
                             INNER_FOLLOW[0] + up1 * (INNER_FOLLOW[1] - INNER_FOLLOW[0]),
                             OUTER_FOLLOW[0] + up1 * (OUTER_FOLLOW[1] - OUTER_FOLLOW[0]),
                             np.zeros(n)]).astype(np.float32)
    ring_tris = (_strip(oval, list(idx_in)) + _strip(list(idx_in), list(idx_out))
                 + _strip(list(idx_out), list(idx_border)))
    all_tris = np.concatenate([tris, np.asarray(ring_tris, np.int64)])
    all_region = np.concatenate([region, np.full(len(ring_tris), OUTER, np.int64)])
    attrs = np.concatenate([face_attrs, np.zeros((2 + 3 * n, 1), np.float32)])
    dist = float(-matrix[2, 3]) if matrix is not None and matrix[2, 3] < -1e-3 else 50.0
    tex = np.concatenate([_hidden_fill(src[:N_CORE, :2], tris), src[N_CORE:, :2]]).astype(np.float32)
    return Rig(src, tex, canon, follow, all_tris, all_region, attrs, s, rot, t, dist)


class RigPoser:
    """Torch side of a rig: per-frame vertex positions from head channels and expression offsets."""

    def __init__(self, rig: Rig, device="cpu"):
        f = lambda a: torch.as_tensor(np.asarray(a, np.float32), device=device)  # noqa: E731
        self.rig = rig
        self.device = device
        self.src = f(rig.src)
        self.tex_turn = f(rig.tex_turned) - self.src[:, :2]  # (N, 2), zero where the photo shows the vertex
        self.canon = f(rig.canon)
        self.follow = f(rig.follow)
        self.flip = f(FLIP)
        self.rot0 = f(rig.rot)
        self.trans0 = f(rig.trans)
        self.tris = torch.as_tensor(rig.tris, device=device)
        self.region = torch.as_tensor(rig.region, device=device)
        self.attrs = f(rig.attrs)
        pairs = [(MOUTH_UPPER, MOUTH_LOWER)] + list(EYES)
        self.pairs = [(torch.tensor(u[1:-1], device=device), torch.tensor(lo[1:-1], device=device))
                      for u, lo in pairs]
        self.base = (rig.scale * (self.canon @ (self.flip @ self.rot0).T)) + self.trans0  # (N, 3)

    def _uncross(self, X: torch.Tensor) -> torch.Tensor:
        """Stop a closing lid or lip at its partner instead of passing through it (canonical y up)."""
        X = X.clone()
        for up, lo in self.pairs:
            y_up, y_lo = X[:, up, 1], X[:, lo, 1]
            X[:, up, 1] = torch.maximum(y_up, y_lo)
        return X

    def texture(self, head: np.ndarray) -> torch.Tensor:
        """(B, N, 2) photo positions to read: the hidden-side fill fades in as the head turns, so a
        frame at the photo's own pose reads exactly the photo."""
        turn = np.sqrt(np.asarray(head)[:, 0] ** 2 + np.asarray(head)[:, 1] ** 2)
        w = torch.as_tensor(np.clip(turn / TURN_FULL_FILL, 0.0, 1.0), dtype=torch.float32, device=self.device)
        return self.src[:, :2] + w.view(-1, 1, 1) * self.tex_turn

    def pose(self, head: np.ndarray, expr: torch.Tensor | None, gaze: torch.Tensor | None = None) -> torch.Tensor:
        """head (B, 6) [pitch, yaw, roll rad, x, y, z m] relative to the photo; expr (B, 468, 3) cm;
        gaze (B, 2 eyes, [in - out, up - down]) for the subject's right then left eye.

        Returns target vertex positions (B, N, 3) in crop-normalised image units.
        """
        X = self.canon.expand(len(head), -1, -1)
        if expr is not None:
            X = torch.cat([self._uncross(X[:, :N_FACE] + expr), X[:, N_FACE:]], dim=1)
        verts = self.src + (self.place(X, head) - self.base) * self.follow.view(1, -1, 1)
        return self._place_pupils(verts, gaze)

    def place(self, X: torch.Tensor, head: np.ndarray) -> torch.Tensor:
        """Canonical points (B, K, 3) -> image (B, K, 3) under each frame's rigid head pose."""
        head = np.asarray(head, np.float64)
        delta = torch.as_tensor(euler_to_rotation(head[:, 0], head[:, 1], head[:, 2]),
                                dtype=torch.float32, device=self.device)  # camera frame
        rot_img = self.flip @ delta @ self.rot0  # (B, 3, 3) canonical -> image
        rig = self.rig
        zoom = rig.distance_cm / np.maximum(rig.distance_cm - 100.0 * head[:, 5], 1.0)
        scale = torch.as_tensor(rig.scale * zoom, dtype=torch.float32, device=self.device).view(-1, 1, 1)
        shift = np.stack([head[:, 3], -head[:, 4], -head[:, 5]], 1) * 100.0 * rig.scale
        trans = self.trans0 + torch.as_tensor(shift, dtype=torch.float32, device=self.device).unsqueeze(1)
        return scale * (X @ rot_img.transpose(1, 2)) + trans

    def _eye_frame(self, v: torch.Tensor, k: int):
        """Origin, across/up unit vectors, width and opening of eye k in (B, N, 3) vertices."""
        upper, lower = EYES[k]
        outer, inner = v[:, upper[0], :2], v[:, upper[-1], :2]
        top, bottom = v[:, upper[len(upper) // 2], :2], v[:, lower[len(lower) // 2], :2]
        across = inner - outer
        width = across.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        e = across / width
        u = torch.stack([e[:, 1], -e[:, 0]], dim=-1)
        u = u * torch.sign(((top - bottom) * u).sum(-1, keepdim=True) + 1e-9)  # towards the upper lid
        opening = ((top - bottom) * u).sum(-1, keepdim=True).clamp_min(0)
        return (top + bottom) / 2, e, u, width, opening

    def _place_pupils(self, v: torch.Tensor, gaze: torch.Tensor | None) -> torch.Tensor:
        """Put each pupil where it sits in the photo's eye (in eye coordinates), moved by gaze;
        a closing eye carries it along (it never ends up outside the lids)."""
        v = v.clone()
        src = self.src.unsqueeze(0)
        for k in range(2):
            o0, e0, u0, w0, h0 = self._eye_frame(src, k)
            p0 = src[:, N_FACE + k, :2] - o0
            a = (p0 * e0).sum(-1, keepdim=True) / w0
            b = (p0 * u0).sum(-1, keepdim=True) / h0.clamp_min(1e-6)
            if gaze is not None:
                a = (a + GAZE_ACROSS * gaze[:, k, :1]).clamp(-GAZE_LIMIT[0], GAZE_LIMIT[0])
                b = (b + GAZE_UP * gaze[:, k, 1:]).clamp(-GAZE_LIMIT[1], GAZE_LIMIT[1])
            o, e, u, w, h = self._eye_frame(v, k)
            v[:, N_FACE + k, :2] = o + a * w * e + b * h * u
        return v
