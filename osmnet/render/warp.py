"""Dense piecewise-affine image warp in torch: triangle raster -> backward map -> grid_sample.

The renderer moves a triangle mesh (face mesh + control rings + fixed border) from where it
lies in the photo (source) to where it lies in a frame (target). For each target pixel we need
the triangle covering it and its barycentric coordinates; interpolating the triangle's source
positions with them gives the backward map that `grid_sample` reads the photo through.

The raster is vectorised over a whole batch of frames with no Python loop per triangle: each
triangle is expanded into its scanlines and each scanline into exactly the pixels it covers
(two `repeat_interleave` steps, so a large background triangle costs its area, not its bounding
box), and a packed key (quantised depth, triangle index) is reduced with `scatter_reduce("amin")` so the nearest triangle wins where the mesh folds over itself
(a head turned away hides its far cheek). The same code runs on CPU and CUDA.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from blender_addon.core.errors import InternalError

_TRI_BITS = 12  # up to 4096 triangles per mesh
_DEPTH_LEVELS = 1 << 40
_EMPTY = torch.iinfo(torch.int64).max


def _triangle_setup(verts: torch.Tensor, tris: torch.Tensor):
    """Per (frame, triangle): first vertex, inverse edge matrix, and a validity flag."""
    p = verts[:, tris]  # (B, T, 3, 2)
    a = p[:, :, 0]
    e1 = p[:, :, 1] - a
    e2 = p[:, :, 2] - a
    det = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]
    ok = det.abs() > 1e-9
    inv_det = torch.where(ok, 1.0 / torch.where(ok, det, torch.ones_like(det)), torch.zeros_like(det))
    # inverse of [[e1x, e2x], [e1y, e2y]]
    inv = torch.stack([e2[..., 1] * inv_det, -e2[..., 0] * inv_det,
                       -e1[..., 1] * inv_det, e1[..., 0] * inv_det], dim=-1)  # (B, T, 4)
    return p, a, inv, ok


def _barycentric(px, py, a, inv):
    dx = px - a[..., 0]
    dy = py - a[..., 1]
    l1 = inv[..., 0] * dx + inv[..., 1] * dy
    l2 = inv[..., 2] * dx + inv[..., 3] * dy
    return torch.stack([1.0 - l1 - l2, l1, l2], dim=-1)


def rasterize(verts: torch.Tensor, depth: torch.Tensor, tris: torch.Tensor, height: int, width: int):
    """Triangle index and barycentric coordinates for every pixel centre.

    verts: (B, N, 2) pixel coordinates (x right, y down; pixel (i, j) has its centre at
    (j + 0.5, i + 0.5)); depth: (B, N), smaller is nearer; tris: (T, 3) long.
    Returns tri (B, H, W) long with -1 where no triangle covers the pixel, and bary (B, H, W, 3).
    """
    B, T = verts.shape[0], tris.shape[0]
    if T >= 1 << _TRI_BITS:
        raise InternalError(f"mesh has {T} triangles; the raster supports at most {(1 << _TRI_BITS) - 1}")
    dev = verts.device
    p, a, inv, ok = _triangle_setup(verts, tris)
    ylo = torch.ceil(p[..., 1].amin(dim=2) - 0.5).clamp_min(0).long()  # first row whose centre may be inside
    yhi = torch.floor(p[..., 1].amax(dim=2) - 0.5).clamp_max(height - 1).long()
    row_count = ((yhi - ylo + 1).clamp_min(0) * ok.long()).reshape(-1)  # (B*T,)
    tdepth = depth[:, tris].mean(dim=2)
    # One gather per candidate from a packed per-triangle table is much cheaper than several.
    table = torch.cat([a, inv, tdepth.unsqueeze(-1)], dim=-1).reshape(B * T, 7)
    tri_out = torch.full((B * height * width,), _EMPTY, dtype=torch.int64, device=dev)
    n_rows = int(row_count.sum())
    if n_rows:
        # Stage 1, scanlines: each triangle's rows and the exact x-span of each row.
        owner = torch.repeat_interleave(torch.arange(B * T, device=dev), row_count)
        start = torch.cumsum(row_count, 0) - row_count
        py = ylo.reshape(-1).index_select(0, owner) + (torch.arange(n_rows, device=dev) - start.index_select(0, owner))
        yc = py.to(verts.dtype) + 0.5
        pv = p.reshape(B * T, 6).index_select(0, owner).view(-1, 3, 2)  # (R, 3, 2)
        q0, q1 = pv, pv.roll(-1, dims=1)  # the three edges
        dy = q1[..., 1] - q0[..., 1]
        t = (yc.unsqueeze(1) - q0[..., 1]) / torch.where(dy == 0, torch.ones_like(dy), dy)
        valid = (dy != 0) & (t >= 0) & (t <= 1)
        x = q0[..., 0] + t * (q1[..., 0] - q0[..., 0])
        inf = torch.full_like(x, float("inf"))
        xmin = torch.where(valid, x, inf).amin(dim=1)
        xmax = torch.where(valid, x, -inf).amax(dim=1)
        tol = 1e-4
        xlo = torch.ceil((xmin - 0.5 - tol).clamp(-1, width)).clamp_min(0).long()
        xhi = torch.floor((xmax - 0.5 + tol).clamp(-1, width)).clamp_max(width - 1).long()
        px_count = (xhi - xlo + 1).clamp_min(0)
        n_px = int(px_count.sum())
        if n_px:
            # Per row: the z-buffer key (nearest triangle wins: mean vertex depth quantised into
            # the high bits, triangle index in the low bits) and the flat index of its first pixel.
            q = ((table[:, 6].clamp(-1e3, 1e3) + 1e3) * (_DEPTH_LEVELS / 2e3)).long()
            b = torch.div(torch.arange(B * T, device=dev), T, rounding_mode="floor")
            tri_key = (q << _TRI_BITS) | (torch.arange(B * T, device=dev) - b * T)
            key_row = tri_key.index_select(0, owner)
            first = torch.cumsum(px_count, 0) - px_count
            offset_row = (b.index_select(0, owner) * height + py) * width + xlo - first
            # Stage 2, pixels: every covered pixel of every row.
            row = torch.repeat_interleave(torch.arange(n_rows, device=dev), px_count)
            pix = offset_row.index_select(0, row) + torch.arange(n_px, device=dev)
            tri_out.scatter_reduce_(0, pix, key_row.index_select(0, row), reduce="amin", include_self=True)

    hit = tri_out != _EMPTY
    tri_flat = torch.where(hit, tri_out & ((1 << _TRI_BITS) - 1), torch.full_like(tri_out, -1))
    tri = tri_flat.view(B, height, width)
    # Barycentrics of the winning triangle at each pixel centre.
    g = identity_grid(height, width, device=dev, dtype=verts.dtype)
    rows = (torch.arange(B, device=dev).view(B, 1, 1) * T + tri.clamp_min(0)).reshape(-1)
    tb = table.index_select(0, rows).view(B, height, width, 7)
    bary = _barycentric(g[..., 0], g[..., 1], tb[..., 0:2], tb[..., 2:6])
    return tri, bary


def interpolate(tri: torch.Tensor, bary: torch.Tensor, tris: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
    """Per-vertex attributes (N, K) or (B, N, K) -> per-pixel (B, H, W, K) (undefined where tri == -1)."""
    B, H, W = tri.shape
    vid = tris.index_select(0, tri.reshape(-1).clamp_min(0))  # (P, 3)
    if attrs.dim() == 2:
        vals = attrs.index_select(0, vid.reshape(-1)).view(B, H, W, 3, -1)
    else:
        flat = attrs.reshape(-1, attrs.shape[-1])
        base = (torch.arange(B, device=tri.device) * attrs.shape[1]).repeat_interleave(H * W).unsqueeze(1)
        vals = flat.index_select(0, (vid + base).reshape(-1)).view(B, H, W, 3, -1)
    return (vals * bary.unsqueeze(-1)).sum(dim=3)


def identity_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel-centre coordinates (H, W, 2) in pixels (x, y)."""
    ys = torch.arange(height, device=device, dtype=dtype) + 0.5
    xs = torch.arange(width, device=device, dtype=dtype) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)


def sample(image: torch.Tensor, src_px: torch.Tensor) -> torch.Tensor:
    """Read `image` (B or 1, C, H, W) at source pixel positions (B, h, w, 2) -> (B, C, h, w)."""
    H, W = image.shape[-2:]
    scale = torch.tensor([2.0 / W, 2.0 / H], device=src_px.device, dtype=src_px.dtype)
    grid = src_px * scale - 1.0
    if image.shape[0] != grid.shape[0]:
        image = image.expand(grid.shape[0], -1, -1, -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


def upsample_field(field: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, K, h, w) -> (B, K, H, W) bilinear (a smooth field, e.g. a displacement)."""
    if field.shape[-2] == height and field.shape[-1] == width:
        return field
    return F.interpolate(field.contiguous(), size=(height, width), mode="bilinear", align_corners=False)
