"""The inside of the mouth: teeth, gums and tongue behind the lips, painted at full resolution.

A warp only stretches the photo's closed lip line when the lips part, so what is behind them is
painted. The parts are curves in the canonical face space built from the portrait's own rest
lips (one column per inner-lip vertex pair): the upper teeth's edge and gum line move with the
skull only, the lower teeth and the tongue also with the jaw (the displacement of the chin and
lower-lip vertices in the frame's expression), so they follow the take's head pose and jaw with
parallax. The renderer also shows the jaw and pucker stronger than the basis (shown_basis).

Each frame, the curves and the inner-lip outline (split into upper and lower chains, so a round
opening works) are projected into the mouth's own frame (s along the line between the lip
corners, t across it, both in half mouth widths) and resampled as functions of s on a grid. Every pixel of a window around the mouth then looks up where
it lies against each curve: coverage with a one-pixel ramp gives crisp, antialiased lip and
tooth edges at any output size. Colours come from the photo (cavity, gums and tongue from its lip
colour, teeth from its skin brightness), so a black-and-white photo gets a grey mouth.
"""
from __future__ import annotations

import numpy as np
import torch

from osmnet.render.rig import MOUTH_LOWER, MOUTH_UPPER, N_FACE

UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)  # outer lip contours, corner to corner
LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LOOP = list(MOUTH_UPPER) + list(MOUTH_LOWER[-2:0:-1])  # the inner lips as one closed outline
UPPER_MIDDLE = len(MOUTH_UPPER) // 2  # its index in LOOP
JAW = (152, 148, 377, 175, 176, 400)  # chin vertices: they move with the mandible alone
LOWER_LIP = (87, 14, 317)  # the lower lip rests on the lower teeth and drops with them
LIP_SHARE = 0.75  # lower teeth move as the mean of chin and lower lip (the lip also rolls on its own)
UPPER_SHOW = 0.3  # cm of upper teeth below the rest upper lip's inner edge
UP_EDGE, UP_GUM, LO_EDGE, LO_GUM, TONGUE = range(5)  # rows of the canonical curves
GRID = 48  # samples of each curve along the mouth
S_MAX = 1.1  # the grid's half-length (the lip corners are at s = +-1)
# Where neighbouring teeth meet, cm from the middle as seen from the front (incisors, canines).
UPPER_GAPS = (0.0, 0.83, 1.42, 1.8)
LOWER_GAPS = (0.0, 0.55, 1.12, 1.6)
TEETH = (0.92, 0.90, 0.85)  # in a well-lit photo; scaled by the photo's skin brightness
JAW_GAIN = 1.7  # the jaw shown at jawOpen = w is the basis's jaw at 1.7 w (see docs/renderer.md)
PUCKER_GAIN = 1.8  # pucker likewise: its corners come in only 0.3-0.4 cm in the basis, too little to see
TONGUE_REACH = 0.45  # how far below the lower lip a tongue out at 1 reaches (half mouth widths)
TONGUE_WIDTH = 0.55  # half-width of the tongue out of the mouth (half mouth widths)


def mouth_curves(canon: np.ndarray) -> np.ndarray:
    """(5, K, 3) canonical points (cm) of the teeth edges, gum lines and tongue top from the rest lips."""
    U, L = canon[list(MOUTH_UPPER)].astype(np.float64), canon[list(MOUTH_LOWER)].astype(np.float64)
    mid = (U + L) / 2
    c = mid[len(mid) // 2]
    half = max(np.linalg.norm(U[0, :2] - U[-1, :2]) / 2, 1e-3)
    dx = (mid[:, 0] - c[0]) / half  # -1 .. 1 corner to corner
    x = c[0] + (mid[:, 0] - c[0]) * 0.95
    up = U[:, 1] - (UPPER_SHOW + 0.1 * dx ** 2)  # the upper incisal edge, just behind the upper lip
    lo = np.minimum(up + 0.25, L[:, 1] + 0.05)  # lower teeth: a little overbite when the jaw is shut
    z = mid[:, 2] - 0.35
    out = np.zeros((5, len(U), 3))
    out[UP_EDGE] = np.stack([x, up, z], 1)
    out[UP_GUM] = np.stack([x, up + 1.0 - 0.3 * dx ** 2, z - 0.15], 1)
    out[LO_EDGE] = np.stack([x, lo, z - 0.15], 1)
    out[LO_GUM] = np.stack([x, lo - 1.0 + 0.3 * dx ** 2, z - 0.2], 1)
    out[TONGUE] = np.stack([c[0] + (mid[:, 0] - c[0]) * 0.8, lo + 0.05 - 0.5 * dx ** 2, z - 1.2], 1)
    return out.astype(np.float32)


def lip_colour(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Median colour (3,) in [0, 1] of the lips, sampled half-way between their inner and outer contours."""
    h, w = image.shape[:2]
    samples = []
    for inner, outer in ((MOUTH_UPPER, UPPER_OUTER), (MOUTH_LOWER, LOWER_OUTER)):
        for i in range(2, len(inner) - 2):
            p = 0.5 * (landmarks[inner[i], :2] + landmarks[outer[i], :2])
            x, y = int(np.clip(p[0] * w, 1, w - 2)), int(np.clip(p[1] * h, 1, h - 2))
            samples.append(image[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3))
    return np.median(np.concatenate(samples), axis=0).astype(np.float32) / 255.0


def opening(v: torch.Tensor) -> torch.Tensor:
    """Mean gap between matching inner-lip points (corners excluded): (B,)."""
    return (v[:, list(MOUTH_UPPER[1:-1]), :2] - v[:, list(MOUTH_LOWER[1:-1]), :2]).norm(dim=-1).mean(dim=1)


def _cover(d: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
    """Coverage of a pixel whose centre lies d (t units) inside an edge: a one-pixel ramp."""
    return (d * px + 0.5).clamp_(0, 1)


def _smoothstep(e0, e1, x):
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def _resample(s: torch.Tensor, v: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear v(s) (..., K) with s increasing, sampled at grid (G,) -> (..., G), constant outside."""
    flat_s, flat_v = s.reshape(-1, s.shape[-1]).contiguous(), v.reshape(-1, v.shape[-1])
    q = grid.expand(len(flat_s), -1).contiguous()
    i = torch.searchsorted(flat_s, q).clamp(1, flat_s.shape[1] - 1)
    s0, s1 = flat_s.gather(1, i - 1), flat_s.gather(1, i)
    v0, v1 = flat_v.gather(1, i - 1), flat_v.gather(1, i)
    w = ((q - s0) / (s1 - s0).clamp_min(1e-6)).clamp(0, 1)
    return (v0 + w * (v1 - v0)).view(*s.shape[:-1], -1)


def _chains(s: torch.Tensor, t: torch.Tensor):
    """Split a closed outline (B, L) that every line across the mouth crosses at most twice into
    its upper and lower chains, each running from the leftmost to the rightmost point (B, L + 1)."""
    B, n = s.shape
    left, right = s.argmin(dim=1, keepdim=True), s.argmax(dim=1, keepdim=True)
    k = torch.arange(n + 1, device=s.device).unsqueeze(0)
    out = []
    for step in (1, -1):
        last = (step * (right - left)) % n
        idx = torch.where(k <= last, (left + step * k) % n, right)
        # the upper-lip middle (loop index UPPER_MIDDLE) tells which chain is the upper one
        upper = ((step * (UPPER_MIDDLE - left)) % n) <= last
        out.append((s.gather(1, idx), t.gather(1, idx), upper))
    (s1, t1, up1), (s2, t2, _) = out
    pick = lambda a, b: torch.where(up1, a, b)  # noqa: E731
    up_s, lo_s = torch.cummax(pick(s1, s2), 1).values, torch.cummax(pick(s2, s1), 1).values
    return (up_s, pick(t1, t2)), (lo_s, pick(t2, t1))


def _gaps(x: torch.Tensor, gaps, px_cm: torch.Tensor, from_edge: torch.Tensor) -> torch.Tensor:
    """Shading factor (1 = no gap) that draws the one-pixel lines where neighbouring teeth meet,
    clearest at the biting edge (`from_edge`, t units) and gone towards the gum, where teeth touch."""
    d = torch.full_like(x, 1e3)
    for g in gaps:
        d = torch.minimum(d, (x.abs() - g).abs())
    fade = (1.0 - from_edge / 0.25).clamp(0, 1)
    return 1.0 - 0.3 * fade * (1.0 - d * px_cm).clamp(0, 1)


class MouthPainter:
    """Per-portrait mouth parts and colours; paints a batch of frames in place."""

    def __init__(self, portrait, poser, size: int, device, skin: np.ndarray):
        f = lambda a: torch.as_tensor(np.asarray(a, np.float32), device=device)  # noqa: E731
        self.poser, self.size, self.device = poser, size, device
        curves = mouth_curves(poser.canon[:N_FACE].cpu().numpy())
        self.curves = f(curves)
        self.moves_with_jaw = f([0, 0, 1, 1, 1]).view(1, 5, 1, 1)
        centre = curves[UP_EDGE, len(MOUTH_UPPER) // 2, 0]
        self.lateral = f(curves[[UP_EDGE, LO_EDGE], :, 0] - centre)  # (2, K) cm from the middle
        # The photo's landmarks sit a little off their rigid canonical projection: carry that offset.
        res = (poser.src - poser.base)[:N_FACE, :2]
        self.offset = (res[list(MOUTH_UPPER)] + res[list(MOUTH_LOWER)]) / 2  # (K, 2)
        self.jaw = torch.as_tensor(JAW, device=device)
        self.lower_lip = torch.as_tensor(LOWER_LIP, device=device)
        self.open0 = opening(poser.src.unsqueeze(0))[0]
        self.grid = torch.linspace(-S_MAX, S_MAX, GRID, device=device)
        lips = lip_colour(portrait.image, portrait.landmarks)
        light = float(np.clip(skin.mean() / 0.6, 0.35, 1.0))
        tint = 0.85 + 0.15 * skin / max(float(skin.mean()), 1e-3)
        # Teeth in a dim or tinted photo must not glow; a grey photo gets grey teeth and a grey mouth.
        sat = float(np.clip((skin.max() - skin.min()) / max(float(skin.max()), 1e-3) / 0.25, 0.0, 1.0))
        teeth = np.array(TEETH) * light * tint
        teeth = teeth.mean() + (teeth - teeth.mean()) * sat
        self.teeth = f(np.clip(teeth, 0, 1)).view(1, 3, 1)
        self.cavity = f(lips * 0.4).view(1, 3, 1)
        self.gum = f(np.clip(lips * 0.9, 0, 1)).view(1, 3, 1)
        self.tongue = f(np.clip(lips * 0.95 + 0.05 * skin, 0, 1)).view(1, 3, 1)

    def _window(self, verts: torch.Tensor, reach: float):
        """Pixel box (y0, y1, x0, x1) around every frame's inner lips (and a tongue out below them)."""
        S = self.size
        lips = verts[:, list(MOUTH_UPPER) + list(MOUTH_LOWER), :2] * S
        lo, hi = lips.amin(dim=(0, 1)), lips.amax(dim=(0, 1))
        half = float((verts[:, MOUTH_UPPER[-1], :2] - verts[:, MOUTH_UPPER[0], :2]).norm(dim=-1).max()) * S / 2
        x0, y0 = int(lo[0]) - 2, int(lo[1]) - 2
        x1, y1 = int(hi[0]) + 3, int(hi[1] + reach * half) + 3
        return max(y0, 0), min(y1, S), max(x0, 0), min(x1, S)

    @torch.inference_mode()
    def paint(self, out: torch.Tensor, verts: torch.Tensor, head: np.ndarray, expr: torch.Tensor,
              tongue_out: torch.Tensor) -> None:
        """Paint the open mouth into frames out (B, 3, S, S) in place.

        verts (B, N, 3) posed rig vertices; head (B, 6) and expr (B, 468, 3) as given to the rig;
        tongue_out (B,) the relative tongueOut weight.
        """
        B, S = verts.shape[0], self.size
        gap = opening(verts)
        amount = ((gap - self.open0) / (0.25 * self.open0 + 2.0 / S)).clamp(0, 1)
        out_of_mouth = (tongue_out * 3).clamp(0, 1)
        if not bool((amount > 0).any()) and not bool((out_of_mouth > 0).any()):
            return
        K = len(MOUTH_UPPER)
        jaw = torch.lerp(expr[:, self.jaw].mean(dim=1), expr[:, self.lower_lip].mean(dim=1), LIP_SHARE)
        X = self.curves.unsqueeze(0) + self.moves_with_jaw * jaw.view(B, 1, 1, 3)
        parts = self.poser.place(X.reshape(B, 5 * K, 3), head)[..., :2].view(B, 5, K, 2) + self.offset
        left, right = verts[:, MOUTH_UPPER[0], :2], verts[:, MOUTH_UPPER[-1], :2]
        origin = (left + right) / 2
        half = ((right - left).norm(dim=-1) / 2).clamp_min(1e-6)  # (B,)
        e = (right - left) / (2 * half).unsqueeze(1)
        n = torch.stack([-e[:, 1], e[:, 0]], dim=1)  # across the mouth, towards the chin

        def local(p):  # (B, ..., 2) image points -> s, t
            d = p - origin.view(B, *([1] * (p.dim() - 2)), 2)
            hv = half.view(B, *([1] * (p.dim() - 2)))
            return ((d * e.view(B, *([1] * (p.dim() - 2)), 2)).sum(-1) / hv,
                    (d * n.view(B, *([1] * (p.dim() - 2)), 2)).sum(-1) / hv)

        ls, lt = local(verts[:, LOOP, :2])  # the opening's outline (B, 20)
        (us, ut), (ds, dt) = _chains(ls, lt)
        s, t = local(parts)  # (B, 5, K)
        s = torch.cummax(s, dim=-1).values  # a far-turned mouth must stay a function of s
        table = torch.cat([  # (B, 9, G): lips, parts, lateral cm of the teeth
            _resample(torch.stack([us, ds], 1), torch.stack([ut, dt], 1), self.grid),
            _resample(torch.cat([s, s[:, [UP_EDGE, LO_EDGE]]], 1),
                      torch.cat([t, self.lateral.expand(B, -1, -1)], 1), self.grid)], dim=1)
        ends = ls.amin(dim=1, keepdim=True), ls.amax(dim=1, keepdim=True)
        tongue_span = s[:, TONGUE, [0, -1]]  # (B, 2)

        y0, y1, x0, x1 = self._window(verts, TONGUE_REACH * float(out_of_mouth.max()))
        if y1 <= y0 or x1 <= x0:
            return
        ys = (torch.arange(y0, y1, device=self.device, dtype=torch.float32) + 0.5) / S
        xs = (torch.arange(x0, x1, device=self.device, dtype=torch.float32) + 0.5) / S
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        pix = torch.stack([gx, gy], dim=-1).reshape(1, -1, 2).expand(B, -1, -1)
        ps, pt = local(pix)  # (B, M)
        g = ((ps + S_MAX) * ((GRID - 1) / (2 * S_MAX))).clamp(0, GRID - 1 - 1e-4)
        i0 = g.long()
        w = (g - i0).unsqueeze(1)
        idx = i0.unsqueeze(1).expand(-1, table.shape[1], -1)
        v = table.gather(2, idx) * (1 - w) + table.gather(2, idx + 1) * w  # (B, 9, M)
        lu, ll, ue, ug, le, lg, tg, xu, xl = v.unbind(1)

        px = (half * S).unsqueeze(1)  # pixels per t unit
        px_cm = px / 2.15  # the rest mouth is about 4.3 cm wide
        inside = _cover(pt - lu, px) * _cover(ll - pt, px) * ((ps >= ends[0]) & (ps <= ends[1]))
        depth = ((torch.minimum(pt - lu, ll - pt)) / (0.35 * (ll - lu)).clamp_min(1e-3)).clamp(0, 1)
        col = self.cavity * (1.0 - 0.5 * depth).unsqueeze(1)  # darker deeper in

        # Tongue: lies on the mouth's floor; put out, a rounded tip rises to the upper teeth.
        to = tongue_out.view(B, 1)
        o = out_of_mouth.view(B, 1)
        top = tg + o * (ue + 0.06 + 0.5 * (ps / TONGUE_WIDTH) ** 2 - tg)
        span = torch.minimum(-tongue_span[:, :1], tongue_span[:, 1:])
        span = span + o * (TONGUE_WIDTH - span)
        a_t = _cover(pt - top, px) * _cover(span - ps.abs(), px)
        tshade = (0.6 + 0.4 * _smoothstep(0.0, 0.2, pt - top)) * (1 - 0.3 * (ps / span.clamp_min(0.1)) ** 2)
        tshade = tshade * (1 - 0.12 * (1 - (ps.abs() * px / 1.5).clamp(0, 1)))  # the middle groove
        tcol = self.tongue * tshade.unsqueeze(1)
        col = col + (tcol - col) * a_t.unsqueeze(1)

        # Lower teeth (in the shade of the upper ones), gum below them.
        a_l = _cover(pt - le, px)
        low = self.teeth * (0.8 * (1 - 0.45 * (xl / 1.9) ** 2) * _gaps(xl, LOWER_GAPS, px_cm, pt - le)).unsqueeze(1)
        low = low + (self.gum - low) * _cover(pt - lg, px).unsqueeze(1)
        col = col + (low - col) * a_l.unsqueeze(1)
        a_front = a_t * _smoothstep(0.2, 0.6, to)  # a tongue that comes out passes over the lower teeth
        col = col + (tcol - col) * a_front.unsqueeze(1)

        # Upper teeth, shaded towards the corners and just under the lip; gum above them.
        a_u = _cover(ue - pt, px)
        shade = (1 - 0.35 * (xu / 1.9) ** 2) * (0.85 + 0.15 * _smoothstep(0.0, 0.05, pt - lu))
        up = self.teeth * (shade * _gaps(xu, UPPER_GAPS, px_cm, ue - pt)).unsqueeze(1)
        up = up + (self.gum * 0.8 - up) * _cover(ug - pt, px).unsqueeze(1)
        col = col + (up - col) * a_u.unsqueeze(1)

        alpha = inside * amount.view(B, 1)
        # A tongue out of the mouth covers the lower lip: a rounded lobe below the inner lower lip.
        reach = TONGUE_REACH * to.clamp(0, 1) * ((1 - (ps / TONGUE_WIDTH) ** 2).clamp_min(0)).sqrt()
        reach = reach * (1 - 0.3 * (ps / TONGUE_WIDTH) ** 2)
        lobe = _cover(pt - ll, px) * _cover(ll + reach - pt, px) * (ps.abs() < TONGUE_WIDTH) * o
        down = ((pt - ll) / (TONGUE_REACH * to).clamp_min(1e-3)).clamp(0, 1)  # 0 at the lip, 1 at the tip
        lshade = (1.0 - 0.3 * down ** 2) * (1 - 0.3 * (ps / TONGUE_WIDTH) ** 2)
        lcol = self.tongue * (lshade * (1 - 0.12 * (1 - (ps.abs() * px / 1.5).clamp(0, 1)))).unsqueeze(1)
        col = col * alpha.unsqueeze(1) * (1 - lobe.unsqueeze(1)) + lcol * lobe.unsqueeze(1)
        a = (alpha + lobe - alpha * lobe).unsqueeze(1)
        view = out[:, :, y0:y1, x0:x1]
        view.mul_((1 - a).view(B, 1, y1 - y0, x1 - x0)).add_(col.view(B, 3, y1 - y0, x1 - x0))


def shown_basis(basis):
    """The basis as the renderer shows it: a stronger jaw and pucker (JAW_GAIN, PUCKER_GAIN), and
    a tongueOut shape when the basis has none (MediaPipe never scores tongueOut, so a basis fitted
    on tracked video has none). Putting the tongue out drops the jaw a little and pushes the lower
    lip down, both shapes the basis already has, so the made-up shape fits any face it fits."""
    from dataclasses import replace

    from blender_addon.core.take import ARKIT_NAMES

    shape = {n: basis.deltas[i] for i, n in enumerate(ARKIT_NAMES)}
    deltas = basis.deltas.copy()
    deltas[ARKIT_NAMES.index("jawOpen")] *= JAW_GAIN
    deltas[ARKIT_NAMES.index("mouthPucker")] *= PUCKER_GAIN
    k = ARKIT_NAMES.index("tongueOut")
    if float(np.abs(basis.deltas[k]).max()) < 1e-3:
        deltas[k] = 0.3 * shape["jawOpen"] + 0.5 * (shape["mouthLowerDownLeft"] + shape["mouthLowerDownRight"])
    return replace(basis, deltas=deltas)
