"""Real video -> head pose, ARKit blendshape curves and landmarks, with MediaPipe Face Landmarker.

Head rotation comes from MediaPipe's facial transformation matrix M (canonical face -> camera,
centimetres). Camera space: x to the image's right, y up, z towards the camera (OpenGL). With
R = M[:3, :3] = Ry(yaw) @ Rx(pitch) @ Rz(roll):
    headPitch > 0: chin goes down (looking down)      headYaw > 0: nose turns to the image's right
    headRoll  > 0: head tilts counter-clockwise as seen in the image (towards the subject's right
                   shoulder for a non-mirrored video)
headX/Y/Z are M's translation in metres (same axes) minus the clip mean.
Takes are resampled from the video's frame rate to `fps` (frames = round(duration * fps)).
"""
from __future__ import annotations

import atexit
import ctypes
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from osmnet.data.face_mesh import load_canonical_mesh
from osmnet.media import MediaError, iter_video_frames, probe_video
from osmnet.audio import SAMPLE_RATE, load_audio
from blender_addon.core.take import ALL_CHANNELS, ARKIT_NAMES, HEAD_CHANNELS, Take
from blender_addon.core.errors import UserInputError

N_LANDMARKS = 478
MAX_AUDIO_MISMATCH_S = 0.1


class TrackError(UserInputError):
    """The video cannot be tracked (no face, audio of a different length, ...)."""


@dataclass
class Face:
    landmarks: np.ndarray  # (478, 3) float32: x, y in pixels, z in the same pixel scale
    blendshapes: np.ndarray  # (52,) float32, ARKIT_NAMES order (tongueOut = 0)
    matrix: np.ndarray  # (4, 4) float32 facial transformation (canonical cm -> camera cm)
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels (landmark extent)


@dataclass
class Tracked:
    take: Take
    landmarks_canonical: np.ndarray  # (T, 478, 3) float32, canonical face space (cm)
    lost_frames: int


def rotation_to_euler(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 3) pitch, yaw, roll in radians for R = Ry(yaw) Rx(pitch) Rz(roll)."""
    from scipy.spatial.transform import Rotation

    R = np.asarray(R, np.float64)
    ypr = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_euler("YXZ")  # intrinsic: R = Ry Rx Rz
    return ypr[:, [1, 0, 2]].reshape(*R.shape[:-2], 3)


def euler_to_rotation(pitch, yaw, roll) -> np.ndarray:
    """Inverse of rotation_to_euler (scalars or arrays) -> (..., 3, 3). Written out, not scipy's
    Rotation: the renderer poses every frame with it, and scipy.spatial's import was ~0.3 s of
    each cold render."""
    p, y, r = (np.asarray(a, np.float64) for a in np.broadcast_arrays(*map(np.asarray, (pitch, yaw, roll))))
    cp, sp, cy, sy, cr, sr = np.cos(p), np.sin(p), np.cos(y), np.sin(y), np.cos(r), np.sin(r)
    rows = [[cy * cr + sy * sp * sr, sy * sp * cr - cy * sr, sy * cp],  # Ry(yaw) Rx(pitch) Rz(roll)
            [cp * sr, cp * cr, -sp],
            [cy * sp * sr - sy * cr, sy * sr + cy * sp * cr, cy * cp]]
    return np.stack([np.stack(row, -1) for row in rows], -2)


def fit_similarity(src, dst, weights=None):
    """Least-squares s, R (proper rotation), t with dst ~ s R src + t (weighted Umeyama).

    `src` and/or `dst` may carry a leading batch axis (T, N, 3); the fit is then per item and
    s (T,), R (T, 3, 3), t (T, 3) come back batched. `weights` (N,) default to equal."""
    S, D = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    batched = S.ndim == 3 or D.ndim == 3
    S, D = (S if S.ndim == 3 else S[None]), (D if D.ndim == 3 else D[None])
    n = S.shape[1]
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
    ms, md = np.einsum("n,tnd->td", w, S), np.einsum("n,tnd->td", w, D)
    a, b = S - ms[:, None], D - md[:, None]
    cov = np.einsum("n,tnd,tne->tde", w, b, a)  # (T, 3, 3): sum w dst src^T
    U, sv, Vt = np.linalg.svd(cov)
    sign = np.ones((cov.shape[0], 3))
    sign[:, 2] = np.sign(np.linalg.det(U @ Vt))
    R = (U * sign[:, None, :]) @ Vt
    s = (sv * sign).sum(-1) / np.maximum(np.einsum("n,tnd->t", w, a ** 2), 1e-12)
    t = md - s[:, None] * np.einsum("tde,te->td", R, ms)
    return (s, R, t) if batched else (float(s[0]), R[0], t[0])


def to_canonical(landmarks: np.ndarray, task_path=None) -> np.ndarray:
    """Landmarks (..., 468 or 478, 3) in image units -> canonical face space (cm).

    Image axes (x right, y down, z away) are turned into canonical axes (y up, z towards the
    viewer), then a weighted similarity Procrustes fit on MediaPipe's rigid landmark basis maps
    each frame onto the canonical mesh; the same transform is applied to every landmark.
    """
    mesh = load_canonical_mesh(task_path)
    X = np.asarray(landmarks, np.float64) * np.array([1.0, -1.0, -1.0])
    single = X.ndim == 2
    if single:
        X = X[None]
    s, R, t = fit_similarity(X[:, :468], mesh.vertices.astype(np.float64), mesh.procrustes_weights)
    out = (s[:, None, None] * np.einsum("tde,tne->tnd", R, X) + t[:, None]).astype(np.float32)
    return out[0] if single else out


# Trackers with an open MediaPipe graph, held strongly until close(): MediaPipe's own __del__
# waits on its dispatcher thread, and run by the garbage collector in the middle of an import
# (which holds the import lock that thread may need) it deadlocks the process. Never collected
# while open, a graph is closed by its owner or at exit, outside any import.
_OPEN_TRACKERS: "set[FaceTracker]" = set()


@atexit.register
def _close_open_trackers():
    """MediaPipe's own __del__ fails noisily at interpreter exit; close what is still open first."""
    for tracker in list(_OPEN_TRACKERS):
        tracker.close()


class FaceTracker:
    """MediaPipe Face Landmarker for photos (IMAGE mode) and videos (VIDEO mode); close() when done."""

    def __init__(self, model_path=None, max_faces: int = 4):
        from osmnet.data.assets import face_landmarker_path

        self.model_path = face_landmarker_path(model_path)
        self.max_faces = max_faces
        self._image = None

    def _create(self, video: bool, num_faces: int):
        os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's native INFO/WARNING chatter
        import_mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision

        mode = vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE
        opts = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)), running_mode=mode,
            num_faces=num_faces, output_face_blendshapes=True, output_facial_transformation_matrixes=True)
        try:
            return vision.FaceLandmarker.create_from_options(opts)
        except (RuntimeError, ValueError) as e:
            raise TrackError(f"MediaPipe could not load {self.model_path} ({e}); "
                             "is it a Face Landmarker .task bundle?") from None

    def close(self):
        if self._image is not None:
            self._image.close()
            self._image = None
        _OPEN_TRACKERS.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def detect_image(self, rgb: np.ndarray) -> list[Face]:
        """Every face in one RGB uint8 image (H, W, 3), largest first."""
        if self._image is None:
            self._image = self._create(False, self.max_faces)
            _OPEN_TRACKERS.add(self)
        rgb = _as_rgb(rgb)
        faces = _detect(self._image, rgb, None)
        return sorted(faces, key=lambda f: -(f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))

    def track_frames(self, frames, size=None):
        """(times (N,), faces list[Face | None]) for an iterable of (time_s, rgb) video frames."""
        lm = self._create(True, 1)
        times, faces, last_ms = [], [], -1
        try:
            for t, rgb in frames:
                ms = max(last_ms + 1, int(round(t * 1000)))
                last_ms = ms
                found = _detect(lm, _as_rgb(rgb), ms)
                times.append(t)
                faces.append(found[0] if found else None)
        finally:
            lm.close()
        return np.asarray(times, np.float64), faces

    def track_video(self, path, audio=None, fps: float = 25.0, progress=None) -> Tracked:
        """Track a video into a take at `fps`; see the module docstring for the conventions."""
        info = probe_video(path)
        if audio is not None:
            check_audio_length(audio, info.duration)
        n_out = max(1, int(round(info.duration * fps)))
        times, faces = self.track_frames(_threaded(iter_video_frames(path), progress))
        if not any(f is not None for f in faces):
            raise TrackError(f"no face found in any of the {len(faces)} frames of {path}; "
                             "osmnet needs a video of one clearly visible face")
        ok = np.array([f is not None for f in faces])
        t_ok = times[ok]
        good = [f for f in faces if f is not None]
        mats = np.stack([f.matrix for f in good]).astype(np.float64)
        bs = np.stack([f.blendshapes for f in good])
        canon = to_canonical(np.stack([f.landmarks for f in good]), self.model_path)
        t_out = np.arange(n_out) / fps
        euler = np.unwrap(rotation_to_euler(mats[:, :3, :3]), axis=0)
        trans = mats[:, :3, 3] / 100.0
        head = np.concatenate([euler, trans - trans.mean(0)], axis=1)
        head_out = _interp_rows(t_out, t_ok, head)
        bs_out = np.clip(_interp_rows(t_out, t_ok, bs), 0.0, 1.0)
        canon_out = _interp_rows(t_out, t_ok, canon).astype(np.float32)
        nearest = np.clip(np.searchsorted(times, t_out + 0.5 / info.fps) - 1, 0, len(times) - 1)
        lost = int((~ok[nearest]).sum())
        channels = {n: head_out[:, i] for i, n in enumerate(HEAD_CHANNELS)}
        channels.update({n: bs_out[:, i] for i, n in enumerate(ARKIT_NAMES)})
        meta = {"source": Path(path).name, "source_fps": info.fps, "source_frames": len(times),
                "lost_frames": lost, "model": Path(self.model_path).name, "tracker": "mediapipe-face-landmarker",
                "curves": "raw"}
        if audio is not None:
            meta["audio"] = Path(audio).name
        return Tracked(Take(fps, channels, meta), canon_out, lost)


def to_rig_space(take: Take) -> Take:
    """A raw tracked take -> the same take in rig space (osmnet.data.rigspace; meta "curves": "rig"
    and the calibration used under "calibration"). A take already in rig space is returned as is."""
    from osmnet.data import rigspace

    if take.meta.get("curves") == rigspace.SPACE_RIG:
        return take
    ch, calib = rigspace.calibrate_channels(take.array(ALL_CHANNELS))
    meta = {**take.meta, "curves": rigspace.SPACE_RIG, "calibration": rigspace.summary(calib)}
    return Take.from_array(ch, take.fps, meta=meta)


def track_video(path, audio=None, model_path=None, fps: float = 25.0, progress=None) -> Tracked:
    """One-shot FaceTracker(model_path).track_video(...)."""
    with FaceTracker(model_path) as tracker:
        return tracker.track_video(path, audio=audio, fps=fps, progress=progress)


def check_audio_length(audio, video_duration: float, tolerance: float = MAX_AUDIO_MISMATCH_S) -> np.ndarray:
    """Load the 16 kHz audio and refuse it when its length differs from the video's."""
    given = isinstance(audio, np.ndarray)
    wave = audio if given else load_audio(audio)
    dur = len(wave) / SAMPLE_RATE
    if abs(dur - video_duration) > tolerance:
        raise TrackError(f"the audio{'' if given else ' ' + str(audio)} lasts {dur:.2f} s but the video lasts "
                         f"{video_duration:.2f} s; they must match (within {tolerance} s): use the speech "
                         "recorded with this video")
    return wave


# ---- helpers ------------------------------------------------------------------------------------

def _as_rgb(rgb) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise TrackError(f"expected an RGB uint8 image (H, W, 3), got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb)


def _interp_rows(t_out: np.ndarray, t_in: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear interpolation of values (N, ...) sampled at t_in onto t_out, held at the ends."""
    if len(t_in) == 1:
        return np.repeat(values[:1], len(t_out), axis=0)
    i1 = np.clip(np.searchsorted(t_in, t_out), 1, len(t_in) - 1)
    i0 = i1 - 1
    w = np.clip((t_out - t_in[i0]) / np.maximum(t_in[i1] - t_in[i0], 1e-9), 0.0, 1.0)
    w = w.reshape(-1, *([1] * (values.ndim - 1)))
    return values[i0] * (1 - w) + values[i1] * w


def _threaded(frames, progress=None, depth: int = 16):
    """Decode in a background thread (PyAV releases the GIL) while MediaPipe runs."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in frames:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as e:  # handed to the consumer
            q.put(e)

    th = threading.Thread(target=work, daemon=True)
    th.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            if progress is not None:
                progress.update(1)
            yield item
    finally:
        stop.set()
        while th.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                th.join(0.05)


_BLENDSHAPE_ORDER_CHECKED = False
# Parts of mediapipe's package that its __init__ files import eagerly but face tracking never
# uses: drawing_utils pulls in matplotlib (2.2 s measured), audio sounddevice (0.25 s). (retrieval,
# 0.5 s, is imported by other parts of mediapipe in a way a stand-in cannot serve.)
_UNUSED_MEDIAPIPE = ("mediapipe.tasks.python.vision.drawing_utils", "mediapipe.tasks.python.vision.drawing_styles",
                     "mediapipe.tasks.python.audio")


class _StandIns:
    """A meta-path finder that answers the names in `_UNUSED_MEDIAPIPE` with stand-in modules.

    A stand-in imports the real module the first time one of its names is used (PEP 562 module
    __getattr__), so a caller that does use drawing_utils & co. still gets them."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        import importlib.machinery

        return importlib.machinery.ModuleSpec(name, self, is_package=False) if name in self.names else None

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module):
        import importlib
        import sys

        name = module.__name__

        def load(attr):
            self.names.discard(name)  # from now on the real finders answer this name
            sys.modules.pop(name, None)
            real = importlib.import_module(name)
            module.__dict__.update({k: v for k, v in real.__dict__.items() if k != "__getattr__"})
            return getattr(real, attr)

        module.__getattr__ = load


def import_mediapipe():
    """`import mediapipe` without the heavy submodules face tracking never uses (see _StandIns)."""
    import sys

    if "mediapipe" not in sys.modules and not any(isinstance(f, _StandIns) for f in sys.meta_path):
        sys.meta_path.insert(0, _StandIns(_UNUSED_MEDIAPIPE))
    import mediapipe

    return mediapipe


def _detect(landmarker, rgb: np.ndarray, timestamp_ms) -> list[Face]:
    """Run MediaPipe on one frame and read the result straight from its C structs into numpy."""
    mp = import_mediapipe()
    from mediapipe.tasks.python.vision import face_landmarker as fl

    image = mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
    h, w = rgb.shape[:2]
    lib, handle = getattr(landmarker, "_lib", None), getattr(landmarker, "_handle", None)
    if lib is None or handle is None or not hasattr(fl, "MpFaceLandmarkerResultC"):  # public, slower path
        r = landmarker.detect(image) if timestamp_ms is None else landmarker.detect_for_video(image, timestamp_ms)
        raw = [(np.array([[p.x, p.y, p.z] for p in lms], np.float32),
                np.array([c.score for c in b], np.float32), [c.category_name for c in b], m)
               for lms, b, m in zip(r.face_landmarks, r.face_blendshapes, r.facial_transformation_matrixes)]
    else:
        res = fl.MpFaceLandmarkerResultC()
        if timestamp_ms is None:
            lib.MpFaceLandmarkerDetectImage(handle, image._image_ptr, None, ctypes.byref(res))
        else:
            lib.MpFaceLandmarkerDetectForVideo(handle, image._image_ptr, None, timestamp_ms, ctypes.byref(res))
        try:
            raw = [_read_face(res, i) for i in range(res.face_landmarks_count)]
        finally:
            lib.MpFaceLandmarkerCloseResult(ctypes.byref(res))
    return [_make_face(lms, scores, names, m, w, h) for lms, scores, names, m in raw]


def _read_face(res, i):
    from mediapipe.tasks.python.components.containers import category_c, landmark_c

    lms_c = res.face_landmarks[i]
    stride = ctypes.sizeof(landmark_c.MpNormalizedLandmarkC)
    buf = ctypes.string_at(lms_c.landmarks, lms_c.landmarks_count * stride)
    flt = np.frombuffer(buf, np.float32).reshape(lms_c.landmarks_count, stride // 4)
    lms = flt[:, :3].copy()  # x, y, z are the struct's first three floats
    scores, names = np.zeros(0, np.float32), None
    if res.face_blendshapes_count > i:
        cats = res.face_blendshapes[i]
        cstride = ctypes.sizeof(category_c.MpCategoryC)
        cbuf = ctypes.string_at(cats.categories, cats.categories_count * cstride)
        scores = np.frombuffer(cbuf, np.float32).reshape(cats.categories_count, cstride // 4)[:, 1].copy()
        if not _BLENDSHAPE_ORDER_CHECKED:
            names = [cats.categories[j].category_name.decode() for j in range(cats.categories_count)]
    m = res.facial_transformation_matrixes[i].to_numpy() if res.facial_transformation_matrixes_count > i else None
    return lms, scores, names, m


def _make_face(lms, scores, names, matrix, w, h) -> Face:
    global _BLENDSHAPE_ORDER_CHECKED
    if names is not None:
        if [n for n in names if n != "_neutral"] != list(ARKIT_NAMES[:-1]):
            raise TrackError(f"unexpected MediaPipe blendshape names {names[:4]}...; osmnet expects the "
                             "52-category Face Landmarker model (float16/1)")
        _BLENDSHAPE_ORDER_CHECKED = True
    bs = np.zeros(len(ARKIT_NAMES), np.float32)
    bs[:51] = scores[1:52]  # drop "_neutral"; tongueOut stays 0
    pix = lms * np.array([w, h, w], np.float32)
    bbox = (float(pix[:, 0].min()), float(pix[:, 1].min()), float(pix[:, 0].max()), float(pix[:, 1].max()))
    mat = np.eye(4, dtype=np.float32) if matrix is None else np.asarray(matrix, np.float32)
    return Face(pix.astype(np.float32), bs, mat, bbox)
