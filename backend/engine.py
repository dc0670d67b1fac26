"""The engine: a thin adapter over osmnet's Generator and renderer, loaded once per process.

Workers only talk to this interface (stream, load_audio, load_image, portrait, render_frames),
so the server mechanics can be tested with any object that follows it, and the model code
stays free of anything network-related.
"""
from __future__ import annotations

import gc
import importlib.util
import io
import threading

import numpy as np

from blender_addon.core.errors import EnvironmentProblem, UserInputError

from osmnet.audio import SAMPLE_RATE  # noqa: E402  (the one rate)

MAX_IMAGE_PIXELS = 40_000_000  # a portrait larger than this is refused before decoding


class Engine:
    def __init__(self, generator, render_device: str | None = None):
        self.generator = generator
        self._tracker = None  # one MediaPipe face graph for every render job (made once, early)
        self._tracker_lock = threading.Lock()
        self.name = str(getattr(generator, "name", type(generator).__name__))
        self.device = str(getattr(generator, "device", "cpu"))
        self.render_device = render_device or self.device
        self.capabilities = ["generate"] + (["render"] if self._has_renderer() else [])

    @classmethod
    def load(cls, checkpoint=None, device: str = "cpu", threads: int | None = None) -> "Engine":
        """Load the model and run it once, so that "ready" means the model answers: the first
        real job then pays no first-call costs (allocator, kernels, lazy imports)."""
        from osmnet import runtime

        runtime.configure(threads)  # the same thread and OpenMP settings as every entry point
        import torch

        from osmnet.generate import Generator

        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise EnvironmentProblem(f"device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu")
        engine = cls(Generator.load(checkpoint, device=device))
        engine.warm_up()
        engine.preload_renderer()
        # Everything loaded so far lives as long as the process. Python's full garbage collection
        # walked those ~180,000 objects in ~96 ms with the GIL held, at moments set by a job's
        # allocations, so the server's replies stalled past 100 ms now and then; frozen, they are
        # skipped and a full collection takes well under 1 ms.
        gc.collect()
        gc.freeze()
        return engine

    def warm_up(self) -> None:
        """One tiny generation (1 s of noise, 2 takes) through the whole path. Not silence: digital
        silence skips the loudness statistics, whose first np.percentile imported numpy.ma inside
        the first real job and held the GIL for 130-190 ms, stalling the server's replies."""
        noise = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.05
        for _ in self.stream((noise, SAMPLE_RATE), takes=2):
            pass

    @staticmethod
    def _has_renderer() -> bool:
        return importlib.util.find_spec("osmnet.render.portrait") is not None

    # ---- generation ----
    def stream(self, audio, should_stop=None, **options):
        """Yields TakeChunk(take, start, values (n, 58), fps, done) as soon as each exists.

        `should_stop` (a no-argument callable) is polled by the generator between clips, so a
        cancel stops the model inside a block instead of at the next chunk.
        """
        return self.generator.stream(audio, should_stop=should_stop, **options)

    def load_audio(self, path=None, data: bytes | None = None, *, max_seconds: float = 600.0,
                   tick=None) -> tuple[np.ndarray, int]:
        """A path or uploaded file bytes -> (float32 mono samples, SAMPLE_RATE), read as data only.

        Both go through osmnet.media.load_untrusted_audio: an allow-list of containers whose
        demuxer is forced (no playlists, nothing that opens another file or a URL), the length
        checked from the header before decoding and again while decoding, and a time limit.
        """
        from osmnet.media import load_untrusted_audio

        source = path if data is None else data
        what = "the uploaded audio" if data is not None else f"audio file {path}"
        return load_untrusted_audio(source, SAMPLE_RATE, max_seconds=max_seconds, name=what, tick=tick), SAMPLE_RATE

    # ---- rendering ----
    def load_image(self, path=None, data: bytes | None = None) -> np.ndarray:
        """A path or encoded image bytes (PNG, JPEG, ...) -> RGB uint8 (H, W, 3).

        The size is read from the header first: a small file that claims a huge picture is
        refused before it is decompressed."""
        from PIL import Image, ImageOps

        with Image.open(path if data is None else io.BytesIO(data)) as img:
            w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:
                raise UserInputError(f"the portrait is {w}x{h} pixels; at most {MAX_IMAGE_PIXELS // 10**6} megapixels "
                                 "are accepted, scale it down")
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"), dtype=np.uint8)

    def preload_renderer(self) -> bool:
        """Build the face graph now, before the server says it is ready, when the model file is at
        hand (never downloads here): the first render job then does not wait for MediaPipe, and no
        background thread competes with the ROUTER loop for the GIL after "ready" (a hello must be
        answered at once). Returns whether the graph is ready."""
        if "render" not in self.capabilities:
            return False
        from osmnet.data.assets import AssetError, face_landmarker_path

        try:
            path = face_landmarker_path(allow_download=False)
        except AssetError:
            return False  # a render job resolves (or downloads) it and reports what is missing
        tracker = self._face_tracker(path)
        if tracker is None:
            return False
        with self._tracker_lock:
            tracker.detect_image(np.zeros((64, 64, 3), np.uint8))  # builds the graph (no face: [])
        return True

    def _face_tracker(self, model_path=None):
        with self._tracker_lock:
            if self._tracker is None:
                from osmnet.data.track import FaceTracker

                try:
                    self._tracker = FaceTracker(model_path)
                except Exception:  # no model file yet: the render job reports it when it runs
                    return None
            return self._tracker

    def portrait(self, rgb: np.ndarray, face_index=None):
        from osmnet.render.portrait import Portrait

        tracker = self._face_tracker()
        with self._tracker_lock:  # a MediaPipe graph serves one image at a time
            return Portrait.from_image(rgb, face_index=face_index, tracker=tracker)

    def render_frames(self, portrait, take, size: int):
        from osmnet.render.portrait import render_frames

        return render_frames(portrait, take, size=size, device=self.render_device)
