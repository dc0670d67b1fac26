"""What a worker does with one job: decode inputs, run the engine, stream events back.

Runs on a worker's compute thread. `emit(Message)` hands an event to the worker's socket loop;
`cancelled` is checked between every chunk, so a cancel stops the job at the next chunk.
Every failure ends the job with an `error` event whose message says what to do; nothing escapes.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from contextlib import contextmanager

import numpy as np

from blender_addon.core.errors import UserInputError
from blender_addon.core.protocol import Message, ProtocolError
from blender_addon.core.take import ALL_CHANNELS, Take
from osmnet.render.portrait import RenderError

log = logging.getLogger("osmnet.backend")
PROGRESS_EVERY = 0.1  # seconds between progress events
KEEPALIVE = 1.0       # a running job sends some event at least this often (clients time out silent jobs)
FRAMES_BATCH = 8      # rendered frames per `frames` message


class Progress:
    """The job's events go out through here, so it knows when the client last heard of the job.

    `update(done)` sends `progress` at most every PROGRESS_EVERY seconds; `alive()` sends one
    only when nothing was sent for KEEPALIVE seconds: it is called from inside long work (between
    decoded packets, between the model's clips), so a client can tell a slow job from a stuck one.
    """

    def __init__(self, emit, stage: str):
        self._emit, self.stage, self.done = emit, stage, 0.0
        self._last_sent = self._last_progress = time.monotonic()

    def emit(self, event: Message):
        self._emit(event)
        self._last_sent = time.monotonic()

    def update(self, done: float, stage: str | None = None):
        self.done, self.stage = min(1.0, max(0.0, done)), stage or self.stage
        if time.monotonic() - self._last_progress >= PROGRESS_EVERY:
            self._send()

    def alive(self):
        if time.monotonic() - self._last_sent >= KEEPALIVE:
            self._send()

    @contextmanager
    def busy(self):
        """Keep-alives from a helper thread while one call that cannot report runs (the face
        graph's first build takes seconds); the job's own thread is blocked in it meanwhile."""
        done = threading.Event()

        def tick():
            while not done.wait(KEEPALIVE / 2):
                self.alive()

        helper = threading.Thread(target=tick, name="osmnet-job-keepalive", daemon=True)
        helper.start()
        try:
            yield
        finally:
            done.set()
            helper.join()

    def _send(self):
        self._last_progress = time.monotonic()
        self.emit(Message("progress", {"stage": self.stage, "done": round(self.done, 4)}))


def run_job(engine, kind: str, spec: dict, buffers: list, cancelled, emit):
    start = time.monotonic()
    progress = Progress(emit, "preparing")
    try:
        run = run_generate if kind == "generate" else run_render
        status = run(engine, spec, buffers, cancelled, progress)
    except ProtocolError as e:
        emit(Message("error", {"code": e.code, "message": e.message}))
        return
    except Exception as e:
        if isinstance(e, UserInputError):
            # The request's own mistake (GenerateError, TakeError, ...): the message says what to fix.
            emit(Message("error", {"code": e.code, "message": str(e)}))
        else:  # the engine failed: report it, keep the worker alive
            log.exception("job failed")
            emit(Message("error", {"code": "internal", "message": f"{kind} failed: {type(e).__name__}: {e}"}))
        return
    emit(Message("finished", {"status": status, "elapsed": round(time.monotonic() - start, 4)}))


def _audio(engine, spec, buffers, progress) -> tuple[np.ndarray, int]:
    """The job's speech as samples; file bytes and paths are decoded as data only, within the limits."""
    src = spec["audio"]
    if src["kind"] == "samples":
        return np.asarray(buffers[src["buffer"]], dtype=np.float32), src["sr"]
    try:
        return engine.load_audio(path=src["path"] if src["kind"] == "path" else None,
                                 data=buffers[src["buffer"]] if src["kind"] == "file" else None,
                                 max_seconds=spec["max_audio_seconds"], tick=progress.alive)
    except UserInputError as e:  # MediaError, AudioTooLongError: the file's own fault
        code = "audio_too_long" if e.code == "audio_too_long" else "bad_audio"
        raise ProtocolError(code, str(e)) from None
    except Exception as e:  # a decoder failing in a way it should not: still the file's fault, say so
        log.warning("audio decoding failed unexpectedly: %s: %s", type(e).__name__, e)
        raise ProtocolError("bad_audio", f"could not decode the audio ({type(e).__name__}: {e}); export it "
                            "as WAV/MP3/OGG/FLAC and try again") from None


def run_generate(engine, spec, buffers, cancelled, progress) -> str:
    wave, sr = _audio(engine, spec, buffers, progress)
    seconds = wave.shape[0] / sr
    if seconds > spec["max_audio_seconds"]:
        raise ProtocolError("audio_too_long", f"the audio lasts {seconds:.1f} s; this server accepts at most "
                            f"{spec['max_audio_seconds']:g} s: split it or raise --max-audio-seconds")
    if not np.all(np.isfinite(wave)):
        raise ProtocolError("bad_audio", "the audio samples contain NaN or infinite values")
    takes, fps = spec["takes"], spec["fps"]
    frames = math.ceil(round(seconds * fps, 6))
    progress.emit(Message("started", {"takes": takes, "frames": frames, "fps": fps, "seconds": seconds,
                                      "channels": list(ALL_CHANNELS)}))
    progress.stage = "generating"
    base = None
    if spec["base"] is not None:
        base = Take.from_array(buffers[spec["base"]["buffer"]], spec["base"]["fps"])

    def should_stop() -> bool:  # asked by the model between clips: also proves the job is alive
        progress.alive()
        return cancelled.is_set()

    stream = engine.stream((wave, sr), takes=takes, seed=spec["seed"], diversity=spec["diversity"],
                           intensity=spec["intensity"], fps=fps, base=base,
                           reroll=tuple(spec["reroll"]) if spec["reroll"] else None,
                           what=spec.get("what", "both"), should_stop=should_stop)
    produced = 0
    try:
        for chunk in stream:
            if cancelled.is_set():
                return "cancelled"
            values = np.ascontiguousarray(chunk.values, dtype=np.float32)
            progress.emit(Message("chunk", {"take": int(chunk.take), "start": int(chunk.start),
                                            "frames": values.shape[0], "fps": float(chunk.fps),
                                            "done": bool(chunk.done)}, [values]))
            produced += values.shape[0]
            if chunk.done:
                progress.emit(Message("take_done", {"take": int(chunk.take),
                                                    "frames": int(chunk.start) + values.shape[0]}))
            progress.update(produced / max(1, takes * frames))
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()  # stop the generator's own work promptly on cancel
    return "cancelled" if cancelled.is_set() else "ok"


def run_render(engine, spec, buffers, cancelled, progress) -> str:
    src = spec["image"]
    try:
        if src["kind"] == "pixels":
            rgb = np.ascontiguousarray(buffers[src["buffer"]])
        elif src["kind"] == "path":
            rgb = engine.load_image(path=src["path"])
        else:
            rgb = engine.load_image(data=buffers[src["buffer"]])
    except Exception as e:
        raise ProtocolError("bad_image", f"could not read the portrait ({type(e).__name__}: {e}); use a "
                            "PNG or JPEG photo") from None
    take = Take.from_array(np.asarray(buffers[spec["take"]["buffer"]]), spec["take"]["fps"])
    try:
        with progress.busy():
            portrait = engine.portrait(rgb, spec["face_index"])
    except RenderError as e:
        raise ProtocolError("bad_image", str(e)) from None  # no face, several faces, wrong index
    size = spec["size"]
    progress.emit(Message("started", {"frames": take.frames, "fps": take.fps, "size": size}))
    progress.stage = "rendering"
    batch, start = [], 0
    for frame in engine.render_frames(portrait, take, size):
        if cancelled.is_set():
            return "cancelled"
        batch.append(np.asarray(frame, dtype=np.uint8))
        if len(batch) == FRAMES_BATCH:
            progress.emit(Message("frames", {"start": start, "count": len(batch)}, [np.stack(batch)]))
            start += len(batch)
            batch = []
            progress.update(start / take.frames)
    if batch and not cancelled.is_set():
        progress.emit(Message("frames", {"start": start, "count": len(batch)}, [np.stack(batch)]))
    return "cancelled" if cancelled.is_set() else "ok"
