"""One-shot 2D renderer: one photo + a take -> talking-head frames (CPU and GPU, same code).

No neural weights: the photo's face is found by MediaPipe (osmnet.data.track), its landmarks are
lifted into the canonical face space, each frame's ARKit weights move them through the
expression basis and the head channels turn/shift them, and the whole image follows through a
dense mesh warp (osmnet.render.warp) of the face mesh plus rings for hair, neck and background
(osmnet.render.rig). What the photo cannot show is painted: the closed eyelid (osmnet.render.paint)
and, when the lips part, the teeth, gums and tongue behind them (osmnet.render.mouth).

Take values are applied relative to the photo, so a zero take gives back the photo:
  * expression: a channel acts only above its neutral level, the larger of the photo's own
    score and the take's quiet level (5th percentile, at most QUIET_MAX; 0 for takes under
    2 s), because tracked curves never rest at exactly 0;
  * head rotation: the take's mean rotation is removed (center_pose) so the photo's own pose is
    the take's average pose; headX/Y/Z are already relative to the take's mean.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from osmnet.render import warp
from blender_addon.core.files import atomic_path, replace_dir
from osmnet.render.mouth import MouthPainter, shown_basis
from osmnet.render.paint import Painter
from osmnet.render.rig import OUTER, Rig, RigPoser, build_rig
from blender_addon.core.take import ARKIT_NAMES, HEAD_CHANNELS, Take
from blender_addon.core.errors import UserInputError

PORTRAIT_RES = 512  # the stored crop; frames at other sizes are resampled from it
CROP_FACTOR = 2.2  # crop side / face size
SIZES = (128, 256, 384, 512, 768, 1024)
MAX_SHEET_PIXELS = 64_000_000  # a contact sheet is one image in memory: about 190 MB of RGB at most
QUIET_MIN_FRAMES = 50  # 2 s at 25 fps
QUIET_MAX = 0.3  # a channel never "rests" higher than this (else a constant take would not show)


class RenderError(UserInputError):
    """The photo or the request cannot be rendered; the message says what to change."""


@dataclass
class Portrait:
    """A photo prepared for rendering: the square crop around one face and its rig."""

    image: np.ndarray  # (PORTRAIT_RES, PORTRAIT_RES, 3) uint8 crop
    landmarks: np.ndarray  # (478, 3) crop-normalised (x, y in [0, 1], z same scale)
    blendshapes: np.ndarray  # (52,) the photo's own expression scores
    rig: Rig
    crop: tuple[int, int, int]  # x0, y0, side in the original photo's pixels

    @classmethod
    def from_image(cls, rgb: np.ndarray, face_index: int | None = None, tracker=None) -> "Portrait":
        """Detect the face (the only one, or `face_index`, 0 = largest) and build its rig."""
        from osmnet.data.face_mesh import load_canonical_mesh
        from osmnet.data.track import FaceTracker, to_canonical

        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise RenderError(f"expected an RGB uint8 image (H, W, 3), got {rgb.dtype} {rgb.shape}")
        own = tracker is None
        tracker = tracker or FaceTracker()
        try:
            faces = tracker.detect_image(rgb)
        finally:
            if own:
                tracker.close()
        if not faces:
            raise RenderError("no face found in the photo; use a photo with one clearly visible face "
                              "(frontal or slightly turned, at least ~80 pixels wide)")
        if face_index is None:
            if len(faces) > 1:
                raise RenderError(f"the photo shows {len(faces)} faces; choose one with face_index "
                                  f"(--face N, 0 = largest ... {len(faces) - 1} = smallest)")
            face_index = 0
        if not 0 <= face_index < len(faces):
            raise RenderError(f"face {face_index} asked for, but the photo shows {len(faces)} "
                              f"face(s): use 0..{len(faces) - 1}")
        face = faces[face_index]
        x0, y0, side = _crop_box(face.bbox, rgb.shape[1], rgb.shape[0])
        crop = _resize(rgb[y0:y0 + side, x0:x0 + side], PORTRAIT_RES)
        lm = (face.landmarks - np.array([x0, y0, 0], np.float32)) / side
        canon = to_canonical(face.landmarks)
        rig = build_rig(lm, canon, face.matrix, load_canonical_mesh().triangles)
        return cls(crop, lm.astype(np.float32), face.blendshapes.astype(np.float32), rig, (x0, y0, side))

    @classmethod
    def from_file(cls, path, face_index: int | None = None) -> "Portrait":
        try:
            return cls.from_image(load_image(path), face_index)
        except RenderError as e:
            raise RenderError(f"{path}: {e}") from None

    def image_at(self, size: int) -> np.ndarray:
        """The crop at `size` x `size` (what a zero take renders)."""
        return self.image if size == PORTRAIT_RES else _resize(self.image, size)


def load_image(path) -> np.ndarray:
    """Any photo Pillow reads -> RGB uint8, EXIF rotation applied."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise RenderError(f"photo {path} does not exist")
    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise RenderError(f"{path} is not a readable image ({e}); use a JPEG or PNG photo") from None


def _crop_box(bbox, width: int, height: int) -> tuple[int, int, int]:
    """Square crop around the face with room for hair and neck, kept inside the photo."""
    bx0, by0, bx1, by1 = bbox
    face = max(bx1 - bx0, by1 - by0)
    side = int(round(min(CROP_FACTOR * face, width, height)))
    cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2 - 0.08 * face
    x0 = int(round(np.clip(cx - side / 2, 0, width - side)))
    y0 = int(round(np.clip(cy - side / 2, 0, height - side)))
    return x0, y0, max(side, 1)


def _resize(rgb: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if rgb.shape[0] == size and rgb.shape[1] == size:
        return np.ascontiguousarray(rgb)
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((size, size), Image.LANCZOS))


def _relative_channels(portrait: Portrait, take: Take, center_pose: bool):
    """Take -> (head (T, 6), expression weights (T, 52)) relative to the photo (module docstring)."""
    head = take.array(HEAD_CHANNELS).astype(np.float64)
    if center_pose:
        head[:, :3] -= head[:, :3].mean(0)
    w = take.array(ARKIT_NAMES)
    # A take shorter than QUIET_MIN_FRAMES is too short to tell its quiet level: taken as 0.
    quiet = np.percentile(w, 5, axis=0) if len(w) >= QUIET_MIN_FRAMES else np.zeros(w.shape[1], np.float32)
    rest = np.maximum(portrait.blendshapes, np.minimum(quiet, QUIET_MAX))
    return head, np.clip(w - rest, 0.0, None).astype(np.float32)


def check_size(size: int) -> None:
    if size not in SIZES:
        raise RenderError(f"size {size} is not supported; use one of {SIZES}")


def check_contact_sheet(takes: int, times, size: int) -> None:
    """Refuse a sheet before anything is allocated or rendered: size, times, and its pixel count."""
    check_size(size)
    if takes < 1 or not times:
        raise RenderError("a contact sheet needs at least one take and one time")
    for t in times:
        if not (np.isfinite(t) and t >= 0):
            raise RenderError(f"time {t} s must be a finite number of seconds >= 0")
    pixels = (52 + takes * size) * (18 + len(times) * size)
    if pixels > MAX_SHEET_PIXELS:
        raise RenderError(f"a contact sheet of {len(times)} time(s) x {takes} take(s) at {size} px would be "
                          f"{pixels / 1e6:.0f} Mpx; keep it under {MAX_SHEET_PIXELS / 1e6:.0f} Mpx "
                          "(fewer times or takes, or a smaller size)")


def render_frames(portrait: Portrait, take: Take, size: int = 256, device="cpu", batch: int = 16,
                  basis=None, start: int = 0, stop: int | None = None, center_pose: bool = True,
                  raster: int | None = None):
    """Iterator of uint8 (size, size, 3) frames of `take` (frames start..stop) spoken by `portrait`.

    Arguments are checked and the portrait is prepared when called (errors surface here, not
    at the first frame); frames are then made `batch` at a time as the iterator is consumed.

    `raster` is the resolution of the triangle raster (default size // 2): the displacement
    field is smooth, so it is computed coarser and upsampled; colours are sampled at full size.
    """
    check_size(size)
    if batch < 1:
        raise RenderError("batch must be at least 1")
    if not isinstance(take, Take):
        raise RenderError(f"expected a Take, got {type(take).__name__}")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RenderError("device 'cuda' asked for, but torch sees no CUDA GPU; use device='cpu'")
    if basis is None:
        from osmnet.data.expression import ExpressionBasis

        basis = ExpressionBasis.load()
    basis = shown_basis(basis)
    stop = take.frames if stop is None else min(stop, take.frames)
    head, weights = _relative_channels(portrait, take, center_pose)
    raster = raster or max(size // 2, 64)
    with torch.inference_mode():
        job = _Batcher(portrait, basis, size, raster, device)
    return _stream(job, head, weights, start, stop, batch)


_TONGUE = ARKIT_NAMES.index("tongueOut")
_GAZE = [[ARKIT_NAMES.index(f"eyeLook{d}{side}") for d in ("In", "Out", "Up", "Down")]
         for side in ("Right", "Left")]  # the subject's right eye is EYES[0]


def _gaze(weights: np.ndarray) -> np.ndarray:
    """(B, 52) relative weights -> (B, 2 eyes, [in - out, up - down])."""
    g = weights[:, _GAZE]  # (B, 2, 4)
    return np.stack([g[..., 0] - g[..., 1], g[..., 2] - g[..., 3]], axis=-1).astype(np.float32)


def _stream(job: "_Batcher", head, weights, start: int, stop: int, batch: int):
    for a in range(start, stop, batch):
        b = min(a + batch, stop)
        yield from job(head[a:b], weights[a:b])


class _Batcher:
    """Everything fixed for one portrait, size and device; call it with a batch of frames."""

    def __init__(self, portrait: Portrait, basis, size: int, raster: int, device):
        self.size, self.raster, self.device, self.basis = size, raster, device, basis
        self.rest = basis.apply(np.zeros((1, len(ARKIT_NAMES)), np.float32))[0]
        self.poser = RigPoser(portrait.rig, device)
        self.painter = Painter(portrait, self.poser, size, raster, device)
        skin = np.mean([c.cpu().numpy() for c in self.painter.skin], axis=0)
        self.mouth = MouthPainter(portrait, self.poser, size, device, skin)
        self.image = torch.as_tensor(np.array(portrait.image_at(size)), device=device).permute(2, 0, 1)[None].float() / 255
        self.ident_r = warp.identity_grid(raster, raster, device) / raster
        self.ident_s = warp.identity_grid(size, size, device)

    @torch.inference_mode()
    def __call__(self, head: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """head (B, 6), weights (B, 52) relative to the photo -> uint8 frames (B, S, S, 3)."""
        poser, size, raster = self.poser, self.size, self.raster
        expr = torch.as_tensor(self.basis.apply(weights) - self.rest, device=self.device)
        verts = poser.pose(head, expr, torch.as_tensor(_gaze(weights), device=self.device))  # (B, N, 3)
        tri, bary = warp.rasterize(verts[..., :2] * raster, verts[..., 2], poser.tris, raster, raster)
        src = warp.interpolate(tri, bary, poser.tris, poser.texture(head))
        flow = torch.where((tri >= 0).unsqueeze(-1), src - self.ident_r, torch.zeros_like(src))
        region = torch.where(tri >= 0, poser.region[tri.clamp_min(0)], torch.full_like(tri, OUTER))
        overlay = self.painter.overlay(verts, tri, bary, region, poser.tris, poser.attrs)
        flow = warp.upsample_field(flow.permute(0, 3, 1, 2) * size, size, size).permute(0, 2, 3, 1)
        out = warp.sample(self.image, self.ident_s + flow)  # (B, 3, S, S)
        if overlay is not None:
            _composite(out, overlay, size // raster if size % raster == 0 else 0)
        self.mouth.paint(out, verts, head, expr, torch.as_tensor(weights[:, _TONGUE], device=self.device))
        return out.mul_(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _composite(out: torch.Tensor, overlay: torch.Tensor, factor: int):
    """Blend the premultiplied raster-resolution overlay over the frames, in place.

    Only the window where the overlay is non-zero (mouth, eyes) is upsampled and blended; with
    an integer `factor` the window's upsampling equals that of the whole field.
    """
    size, r = out.shape[-1], overlay.shape[-1]
    if factor == 0:
        up = warp.upsample_field(overlay, size, size)
        out.mul_(1 - up[:, 3:4].clamp(0, 1)).add_(up[:, :3])
        return
    used = overlay[:, 3].amax(dim=0) > 0
    if not bool(used.any()):
        return
    ys, xs = torch.nonzero(used.any(dim=1)).squeeze(1), torch.nonzero(used.any(dim=0)).squeeze(1)
    y0, y1 = max(int(ys[0]) - 2, 0), min(int(ys[-1]) + 3, r)
    x0, x1 = max(int(xs[0]) - 2, 0), min(int(xs[-1]) + 3, r)
    win = overlay[:, :, y0:y1, x0:x1]
    up = torch.nn.functional.interpolate(win, scale_factor=factor, mode="bilinear", align_corners=False)
    view = out[:, :, y0 * factor:y1 * factor, x0 * factor:x1 * factor]
    view.mul_(1 - up[:, 3:4].clamp(0, 1)).add_(up[:, :3])


def render_video(image_path, take: Take, out, audio=None, size: int = 256, face_index: int | None = None,
                 device="cpu", frames_dir=None, progress=None, basis=None) -> Path | None:
    """Photo file + take -> mp4 (with `audio` muxed when given) and/or a PNG frame folder."""
    from osmnet.media import write_video

    if out is None and frames_dir is None:
        raise RenderError("nothing to write: give an output .mp4 and/or a frames folder")
    check_size(size)
    portrait = Portrait.from_file(image_path, face_index)
    frames = render_frames(portrait, take, size=size, device=device, basis=basis)
    if progress is not None:
        frames = _counted(frames, progress)
    if frames_dir is not None:
        frames = _PngWriter(frames_dir).tee(frames)
    if out is None:
        for _ in frames:
            pass
        return None
    return write_video(frames, take.fps, out, audio=audio)


def contact_sheet(portrait: Portrait, takes: list[Take], times: list[float], size: int = 256,
                  labels: list[str] | None = None, basis=None, device="cpu") -> np.ndarray:
    """The same moments from several takes side by side: rows = times (s), columns = takes.

    Each frame is rendered with its whole take's calibration (neutral levels, mean pose), so a
    cell shows exactly what that take's video shows at that moment.
    """
    from PIL import Image, ImageDraw

    check_contact_sheet(len(takes), times, size)
    labels = list(labels) if labels else [t.meta.get("name", f"take {i}") for i, t in enumerate(takes)]
    head, gutter = 18, 52
    sheet = Image.new("RGB", (gutter + len(takes) * size, head + len(times) * size), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for c, take in enumerate(takes):
        draw.text((gutter + c * size + 4, 3), str(labels[c])[: size // 7], fill=(230, 230, 230))
        for r, t in enumerate(times):
            i = min(int(round(t * take.fps)), take.frames - 1)
            frame = next(render_frames(portrait, take, size, device=device, batch=1, basis=basis,
                                       start=i, stop=i + 1))
            sheet.paste(Image.fromarray(frame), (gutter + c * size, head + r * size))
    for r, t in enumerate(times):
        draw.text((4, head + r * size + size // 2 - 6), f"{t:.2f} s", fill=(230, 230, 230))
    return np.asarray(sheet)


def save_png(image: np.ndarray, path) -> Path:
    """Write a PNG atomically (temp file beside it, then rename)."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


def _counted(frames, progress):
    for f in frames:
        progress.update(1)
        yield f


class _PngWriter:
    """Writes frames as frame_00000.png ... into a temp folder that replaces the folder as a whole
    when complete (blender_addon.core.files.replace_dir): never old frames beyond a new take's end."""

    def __init__(self, folder):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise RenderError(f"{self.folder} exists and is not a folder; choose another --frames-dir")
        if self.folder.is_dir():
            other = sorted(p.name for p in self.folder.iterdir() if not p.match("frame_*.png"))
            if other:
                raise RenderError(f"frames folder {self.folder} holds other files ({', '.join(other[:3])}); "
                                  "give an empty folder or one of earlier frames")

    def tee(self, frames):
        from PIL import Image

        with replace_dir(self.folder) as tmp:
            for i, f in enumerate(frames):
                Image.fromarray(f).save(tmp / f"frame_{i:05d}.png", compress_level=1)
                yield f


__all__ = ["Portrait", "RenderError", "contact_sheet", "load_image", "render_frames", "render_video", "save_png"]
