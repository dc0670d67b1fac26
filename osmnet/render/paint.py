"""What a warp cannot show around the eyes, painted over it: the closed eyelid.

When an eye closes, the strip above it (region LID) is stretched over the eye: it is painted
with the skin colour sampled between the eye and the brow, darkening towards the lash line,
blended in proportion to how much more the eye is closed than in the photo, so a zero take
paints nothing. Output is a premultiplied RGBA overlay at raster resolution. The mouth's inside
is painted at full resolution by osmnet.render.mouth.
"""
from __future__ import annotations

import numpy as np
import torch

from osmnet.render.rig import EYE_L, EYE_R, EYES, LID_L, LID_R

BROWS = ((46, 53, 52, 65, 55), (276, 283, 282, 295, 285))  # lower brow edge, right then left eye


def _smoothstep(e0, e1, x):
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def _opening(v: torch.Tensor, upper, lower) -> torch.Tensor:
    """Mean gap between matching inner points of two arcs (corners excluded): (B,)."""
    u = v[:, list(upper[1:-1]), :2]
    w = v[:, list(lower[1:-1]), :2]
    return (u - w).norm(dim=-1).mean(dim=1)


def skin_colour(image: np.ndarray, landmarks: np.ndarray, eye: int) -> np.ndarray:
    """Median colour (3,) in [0, 1] half-way between an eye's upper lid and its brow."""
    h, w = image.shape[:2]
    upper = np.array(EYES[eye][0][2:-2])
    samples = []
    for b in BROWS[eye]:
        e = upper[np.argmin(np.linalg.norm(landmarks[upper, :2] - landmarks[b, :2], axis=1))]
        p = 0.5 * (landmarks[e, :2] + landmarks[b, :2])
        x, y = int(np.clip(p[0] * w, 1, w - 2)), int(np.clip(p[1] * h, 1, h - 2))
        samples.append(image[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3))
    return np.median(np.concatenate(samples), axis=0).astype(np.float32) / 255.0


class Painter:
    """Per-portrait constants and the per-batch RGBA overlay."""

    def __init__(self, portrait, poser, size: int, raster: int, device):
        src = poser.src.unsqueeze(0)
        self.eye0 = [_opening(src, up, lo)[0].clamp_min(1e-4) for up, lo in EYES]
        self.raster = raster
        self.skin = [torch.as_tensor(skin_colour(portrait.image, portrait.landmarks, k), device=device)
                     for k in range(2)]

    def closure(self, verts: torch.Tensor) -> list[torch.Tensor]:
        """How much more closed than in the photo each eye is, 0..1, (B,) each."""
        out = []
        for k, (up, lo) in enumerate(EYES):
            c = 1.0 - _opening(verts, up, lo) / self.eye0[k]
            out.append(((c - 0.3) / 0.6).clamp(0, 1))
        return out

    def overlay(self, verts: torch.Tensor, tri: torch.Tensor, bary: torch.Tensor, region: torch.Tensor,
                tris: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        """Premultiplied RGBA (B, 4, r, r) for a batch, or None when no eye is closing in it;
        only eye and lid pixels are computed.

        verts (B, N, 3) target vertices; tri, bary, region: the raster (B, r, r[, 3]);
        tris (T, 3) and attrs (N, 1) the rig's triangles and per-vertex lid attribute.
        """
        closure = self.closure(verts)
        if not any(bool((c > 0).any()) for c in closure):
            return None
        B, r = verts.shape[0], region.shape[-1]
        rgba = torch.zeros(B * r * r, 4, device=verts.device)
        flat_region = region.reshape(-1)
        sel = torch.nonzero(flat_region >= EYE_R).squeeze(1)  # EYE_*, LID_* are 2..5
        sel = sel[flat_region[sel] <= LID_L]
        if sel.numel() == 0:
            return None
        reg = flat_region[sel]
        frame = torch.div(sel, r * r, rounding_mode="floor")
        vid = tris[tri.reshape(-1)[sel]]  # (M, 3)
        lid = (attrs[vid, 0] * bary.reshape(-1, 3)[sel]).sum(dim=1)  # (M,)
        colour = torch.zeros(sel.numel(), 3, device=verts.device)
        alpha = torch.zeros(sel.numel(), device=verts.device)

        for k, c in enumerate(closure):
            if not bool((c > 0).any()):
                continue
            c = c[frame]
            lid_px = reg == (LID_R, LID_L)[k]
            eye_px = reg == (EYE_R, EYE_L)[k]
            a = c * _smoothstep(0.05, 0.6, lid) * lid_px + c ** 3 * eye_px
            # A lid is lit on its curve and shaded towards the lashes (a flat colour looks pasted on).
            curve = 0.9 + 0.14 * _smoothstep(0.2, 0.6, lid) - 0.2 * _smoothstep(0.75, 0.92, lid)
            shade = torch.where(eye_px, torch.full_like(c, 0.8), curve - 0.45 * _smoothstep(0.88, 1.0, lid) * c)
            colour += self.skin[k] * (shade * a).unsqueeze(1)
            alpha += a
        rgba[sel] = torch.cat([colour, alpha.clamp(0, 1).unsqueeze(1)], dim=1)
        return rgba.view(B, r, r, 4).permute(0, 3, 1, 2)  # premultiplied: upsampling keeps edges clean
