"""The 2D renderer: the warp engine, the mp4 writer, and real portraits speaking real takes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from osmnet.render import warp
from blender_addon.core.take import zero_take

PORTRAIT = "liveportrait_s0.jpg"


# ---- warp engine (synthetic meshes, no data needed) --------------------------------------------

def grid_mesh(n: int, lo: float, hi: float):
    """A regular triangulated grid of n x n vertices over [lo, hi]^2."""
    xs = torch.linspace(lo, hi, n)
    gy, gx = torch.meshgrid(xs, xs, indexing="ij")
    verts = torch.stack([gx, gy], -1).reshape(-1, 2)
    tris = []
    for i in range(n - 1):
        for j in range(n - 1):
            a = i * n + j
            tris += [(a, a + 1, a + n), (a + 1, a + n + 1, a + n)]
    return verts, torch.tensor(tris)


def test_raster_covers_every_pixel_and_interpolates_positions_exactly():
    verts, tris = grid_mesh(9, -1.0, 65.0)
    inner = ((verts > -1.0) & (verts < 65.0)).all(1, keepdim=True)  # the outline stays put
    v = verts + torch.randn(2, *verts.shape, generator=torch.Generator().manual_seed(0)) * 1.5 * inner
    tri, bary = warp.rasterize(v, torch.zeros(2, len(verts)), tris, 64, 64)
    assert (tri >= 0).all()
    assert (bary >= -1e-4).all() and torch.allclose(bary.sum(-1), torch.ones(()), atol=1e-5)
    pos = warp.interpolate(tri, bary, tris, v)
    assert torch.allclose(pos, warp.identity_grid(64, 64).expand(2, -1, -1, -1), atol=1e-3)


def test_affine_motion_gives_the_inverse_affine_backward_map():
    src, tris = grid_mesh(6, -10.0, 74.0)
    A = torch.tensor([[1.1, 0.2], [-0.15, 0.9]])
    t = torch.tensor([3.0, -2.0])
    dst = src @ A.T + t
    tri, bary = warp.rasterize(dst[None], torch.zeros(1, len(src)), tris, 64, 64)
    back = warp.interpolate(tri, bary, tris, src)[0]
    expect = (warp.identity_grid(64, 64) - t) @ torch.linalg.inv(A).T
    covered = tri[0] >= 0
    assert covered.float().mean() > 0.9
    assert torch.allclose(back[covered], expect[covered], atol=1e-3)


def test_nearer_triangle_wins_whatever_the_order():
    v = torch.tensor([[[0.0, 0.0], [32.0, 0.0], [0.0, 32.0], [2.0, 2.0], [30.0, 2.0], [2.0, 30.0]]])
    tris = torch.tensor([[0, 1, 2], [3, 4, 5]])
    for near_first in (True, False):
        depth = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]]) * (1 if near_first else -1)
        tri, _ = warp.rasterize(v, depth, tris, 32, 32)
        assert tri[0, 8, 8] == (0 if near_first else 1)


def test_integer_shift_warps_an_image_exactly():
    img = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    src, tris = grid_mesh(5, -8.0, 40.0)
    dst = src + torch.tensor([3.0, 2.0])  # content moves right 3, down 2
    tri, bary = warp.rasterize(dst[None], torch.zeros(1, len(src)), tris, 32, 32)
    back = warp.interpolate(tri, bary, tris, src)
    out = warp.sample(img, back)
    assert torch.allclose(out[..., 2:, 3:], img[..., :-2, :-3], atol=1e-5)


def test_vertices_the_photo_hides_read_the_fold_line_instead():
    from osmnet.render.rig import _hidden_fill

    # Three upright triangles and a flap folded back over the edge x = 1 (vertices 4, 5).
    pts = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [0.5, 0], [0.5, 1], [0, 2]], np.float64)
    tris = np.array([[0, 1, 2], [1, 3, 2], [2, 3, 6], [1, 4, 3], [4, 5, 3]])
    tex = _hidden_fill(pts, tris)
    assert np.allclose(tex[:4], pts[:4]) and np.allclose(tex[6], pts[6])
    assert np.allclose(tex[[4, 5], 0], 1.0, atol=1e-3)  # both now read along the fold line


def test_overlay_blended_in_its_window_equals_blending_everywhere():
    from osmnet.render.portrait import _composite

    g = torch.Generator().manual_seed(2)
    overlay = torch.zeros(3, 4, 32, 32)
    overlay[:, :, 10:14, 5:20] = torch.rand(3, 4, 4, 15, generator=g)
    overlay[:, :3] *= overlay[:, 3:]  # premultiplied
    frames = torch.rand(3, 3, 64, 64, generator=g)
    window, everywhere = frames.clone(), frames.clone()
    _composite(window, overlay, 2)
    _composite(everywhere, overlay, 0)
    assert torch.allclose(window, everywhere, atol=1e-6) and not torch.allclose(window, frames)


# ---- mp4 writer ---------------------------------------------------------------------------------

def _streams(path):
    import av

    with av.open(str(path)) as c:
        return {s.type: (s.codec_context.name, float(s.duration * s.time_base), s.frames,
                         getattr(s.codec_context, "pix_fmt", None)) for s in c.streams}


def test_write_video_muxes_h264_and_aac_of_the_video_length(tmp_path):
    from osmnet.media import write_video

    frames = (np.random.default_rng(0).random((30, 48, 64, 3)) * 255).astype(np.uint8)
    speech = np.sin(np.arange(16000 * 2) / 16000 * 2 * np.pi * 220).astype(np.float32)  # 2 s > 1.2 s video
    out = write_video(iter(frames), 25.0, tmp_path / "a.mp4", audio=(speech, 16000))
    s = _streams(out)
    assert s["video"][0] == "h264" and s["video"][2] == 30 and s["video"][3] == "yuv420p"
    assert s["audio"][0] == "aac" and abs(s["audio"][1] - 1.2) < 0.05


@pytest.mark.parametrize("bad", [[], [np.zeros((8, 8), np.uint8)], [np.zeros((8, 8, 3), np.float32)],
                                 [np.zeros((8, 8, 3), np.uint8), np.zeros((10, 8, 3), np.uint8)]])
def test_write_video_refuses_bad_frames_and_leaves_no_file(tmp_path, bad):
    from osmnet.media import MediaError, write_video

    with pytest.raises(MediaError):
        write_video(iter(bad), 25.0, tmp_path / "bad.mp4")
    assert list(tmp_path.iterdir()) == []


# ---- real portraits ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def basis():
    from osmnet.data.expression import ExpressionBasis, ExpressionError

    try:
        return ExpressionBasis.load()
    except ExpressionError as e:
        pytest.skip(f"no shipped expression basis yet: {e}")


@pytest.fixture(scope="module")
def model_env(face_model):
    """Point osmnet's model lookup at the shared copy (no download) for this module's tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OSMNET_FACE_LANDMARKER", str(face_model))
        yield face_model


@pytest.fixture(scope="module")
def portrait(shared_data, model_env):
    from osmnet.render.portrait import Portrait

    return Portrait.from_file(shared_data / "faces" / PORTRAIT)


def psnr(a, b) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def test_zero_take_gives_back_the_photo(portrait, basis):
    from osmnet.render.portrait import render_frames

    frames = list(render_frames(portrait, zero_take(3), size=256, basis=basis))
    assert len(frames) == 3 and frames[0].shape == (256, 256, 3) and frames[0].dtype == np.uint8
    assert psnr(frames[0], portrait.image_at(256)) >= 35.0


@pytest.mark.parametrize("kwargs, match", [({"size": 300}, "size 300"), ({"batch": 0}, "batch"),
                                           ({"take": "take.json"}, "expected a Take")]
                         + ([] if torch.cuda.is_available() else [({"device": "cuda"}, "no CUDA")]))
def test_bad_render_requests_fail_when_called_not_at_the_first_frame(portrait, basis, kwargs, match):
    from osmnet.render.portrait import RenderError, render_frames

    args = {"take": zero_take(2), "basis": basis, **kwargs}
    with pytest.raises(RenderError, match=match):
        render_frames(portrait, **args)  # not iterated


def _one(portrait, basis, **channels):
    from osmnet.render.portrait import render_frames

    take = zero_take(1)
    for k, v in channels.items():
        take.channels[k][:] = v
    return next(render_frames(portrait, take, size=256, basis=basis, center_pose=False)).astype(float)


def _box(portrait, idx, size=256, pad=2):
    p = portrait.landmarks[list(idx), :2] * size
    x0, y0 = np.floor(p.min(0)).astype(int) - pad
    x1, y1 = np.ceil(p.max(0)).astype(int) + pad
    return slice(y0, y1), slice(x0, x1)


def test_open_jaw_paints_a_dark_mouth_and_closed_eyes_hide_the_eye(portrait, basis):
    from osmnet.render.rig import EYES, MOUTH_LOWER

    photo = portrait.image_at(256).astype(float)
    mouth = _box(portrait, (13, 14, 78, 308) + MOUTH_LOWER, pad=6)
    opened = _one(portrait, basis, jawOpen=0.8)
    dark = lambda im: (im[mouth].mean(-1) < 60).mean()  # noqa: E731
    assert dark(opened) > dark(photo) + 0.1
    eye = _box(portrait, EYES[0][0] + EYES[0][1], pad=0)
    closed = _one(portrait, basis, eyeBlinkLeft=1.0, eyeBlinkRight=1.0)
    # The iris/pupil (dark) and eye white are replaced by lid skin: fewer very dark pixels.
    assert (closed[eye].mean(-1) < 70).mean() < (photo[eye].mean(-1) < 70).mean()


def test_gaze_moves_the_pupils_towards_where_the_eyes_look(portrait, basis):
    from osmnet.render.rig import EYES

    def pupil_x(im, k):  # centroid of the darkest pixels in eye k
        rows, cols = _box(portrait, EYES[k][0] + EYES[k][1], pad=0)
        patch = im[rows, cols].mean(-1)
        ys, xs = np.nonzero(patch <= np.percentile(patch, 15))
        return xs.mean()

    right = _one(portrait, basis, eyeLookInRight=1.0, eyeLookOutLeft=1.0)  # both look to image right
    left = _one(portrait, basis, eyeLookOutRight=1.0, eyeLookInLeft=1.0)
    for k in range(2):
        assert pupil_x(right, k) > pupil_x(left, k) + 2  # pixels at 256²


def test_head_yaw_moves_the_face_but_not_the_photo_corners(portrait, basis):
    photo = portrait.image_at(256).astype(float)
    turned = _one(portrait, basis, headYaw=0.3)
    face = _box(portrait, (1, 33, 263, 152), pad=0)
    assert np.abs(turned[face] - photo[face]).mean() > 8
    for corner in (np.s_[:12, :12], np.s_[:12, -12:], np.s_[-12:, :12], np.s_[-12:, -12:]):
        assert np.abs(turned[corner] - photo[corner]).mean() < 2


def test_no_face_and_several_faces_are_clear_errors(portrait):
    from osmnet.render.portrait import Portrait, RenderError

    with pytest.raises(RenderError, match="no face"):
        Portrait.from_image(np.full((200, 200, 3), 128, np.uint8))
    one = portrait.image_at(256)
    two = np.concatenate([one, one[:, ::-1]], axis=1)
    with pytest.raises(RenderError, match="2 faces.*--face"):
        Portrait.from_image(two)
    right = Portrait.from_image(two, face_index=1)
    assert right.crop[0] + right.crop[2] / 2 != Portrait.from_image(two, face_index=0).crop[0] + right.crop[2] / 2
    with pytest.raises(RenderError, match="face 5"):
        Portrait.from_image(two, face_index=5)


def test_render_video_writes_mp4_with_speech_and_png_frames(tmp_path, shared_data, portrait, basis):
    from osmnet.audio import load_audio
    from osmnet.render.portrait import render_video

    wav = shared_data / "talking" / "styletalk_Obama_clip1.wav"
    take = zero_take(20, fps=25.0)
    take.channels["jawOpen"][::2] = 0.5
    out = render_video(shared_data / "faces" / PORTRAIT, take, tmp_path / "p.mp4", audio=wav,
                       frames_dir=tmp_path / "frames", basis=basis)
    s = _streams(out)
    assert s["video"][2] == 20 and abs(s["video"][1] - 0.8) < 0.05
    assert s["audio"][0] == "aac" and abs(s["audio"][1] - 0.8) < 0.05
    assert len(load_audio(out)) == pytest.approx(0.8 * 16000, abs=1600)
    pngs = sorted((tmp_path / "frames").glob("frame_*.png"))
    assert len(pngs) == 20 and pngs[0].name == "frame_00000.png"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp leftovers


@pytest.mark.slow
def test_cli_render_and_contact_sheet(tmp_path, shared_data, portrait, basis, capsys):
    from PIL import Image

    from osmnet.cli import main

    takes = []
    for i, yaw in enumerate((0.0, 0.25)):
        t = zero_take(30)
        t.channels["headYaw"][:] = np.linspace(0, yaw, 30)
        takes.append(str(t.save(tmp_path / f"t{i}.json")))
    photo = str(shared_data / "faces" / PORTRAIT)
    assert main(["render", "--image", photo, "--take", takes[0], "--out", str(tmp_path / "a.mp4")]) == 0
    assert _streams(tmp_path / "a.mp4")["video"][2] == 30
    assert main(["contact-sheet", "--image", photo, "--take", *takes, "--at", "0.2", "1.0",
                 "--out", str(tmp_path / "sheet.png"), "--size", "128"]) == 0
    sheet = np.asarray(Image.open(tmp_path / "sheet.png"))
    assert sheet.shape[0] > 2 * 128 and sheet.shape[1] > 2 * 128
    assert main(["render", "--image", str(tmp_path / "nope.jpg"), "--take", takes[0],
                 "--out", str(tmp_path / "b.mp4")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "b.mp4").exists()


@pytest.mark.slow
def test_every_portrait_with_a_face_renders(shared_data, model_env, basis):
    from osmnet.render.portrait import Portrait, RenderError, load_image, render_frames
    from osmnet.data.track import FaceTracker

    take = zero_take(2)
    take.channels["jawOpen"][1], take.channels["headYaw"][1] = 0.5, 0.2
    files = sorted(p for p in (shared_data / "faces").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    rendered, no_face = [], []
    with FaceTracker(model_env) as tracker:
        for path in files:
            try:
                p = Portrait.from_image(load_image(path), tracker=tracker)
            except RenderError as e:
                assert "no face" in str(e) or "faces" in str(e)
                no_face.append(path.name)
                continue
            frames = list(render_frames(p, take, size=256, basis=basis, center_pose=False))
            assert len(frames) == 2 and all(f.shape == (256, 256, 3) for f in frames)
            assert psnr(frames[0], p.image_at(256)) >= 35.0
            rendered.append(path.name)
    # The set holds animals and a posterised cartoon MediaPipe cannot see; every human face renders.
    assert len(rendered) >= 0.85 * len(files), f"only {len(rendered)} of {len(files)} rendered; no face: {no_face}"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_renders_the_same_frames_as_cpu(portrait, basis):
    from osmnet.render.portrait import render_frames

    take = zero_take(4)
    take.channels["jawOpen"][:] = np.linspace(0, 0.6, 4)
    take.channels["headYaw"][:] = np.linspace(0, 0.2, 4)
    cpu = np.stack(list(render_frames(portrait, take, basis=basis, center_pose=False)))
    gpu = np.stack(list(render_frames(portrait, take, basis=basis, device="cuda", center_pose=False)))
    assert np.abs(cpu.astype(int) - gpu.astype(int)).mean() < 1.0
