"""The one place that talks to the backend: the client connection, a local `osmnet serve` process
started from Blender, the table of running jobs, and drain(), which applies what arrived.

Threads never touch bpy: the client's socket thread queues events, and drain() — called from
the modal operator's timer, a bpy.app timer, or directly by tests and scripts (timers never
fire in the bpy module) — runs on Blender's main thread and turns events into Actions, strips
and status text. Every failure ends up in the status line (window_manager.osmnet_status).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import bpy

from . import localserver, strips, takes
from .properties import addon_prefs, backend_address
from .core.errors import UserInputError

__all__ = ["UserInputError", "drain", "start_generate", "start_reroll", "start_render", "start_hello", "cancel",
           "busy", "job_outcome", "set_status"]


@dataclass
class Job:
    id: str
    kind: str                 # generate | reroll | render | hello
    scene: str
    label: str
    frames: int = 0           # expected frames per take (from `started`)
    takes: int = 1
    received: int = 0
    start_frame: int = 1
    folder: str = ""          # render: where frames go
    take_name: str = ""       # render: the take being rendered
    fps: float = 25.0
    extra: dict = field(default_factory=dict)
    during_start: bool = False  # sent while the local backend was still loading its model


class _State:
    def __init__(self):
        self.client = None
        self.client_key = None
        self.jobs: dict[str, Job] = {}
        self.outcomes: dict[str, tuple[str, str]] = {}
        self.timer_registered = False
        self.tick = None


_state = _State()


# ------------------------------------------------------------------ status

def _status(context=None):
    return (context or bpy.context).window_manager.osmnet_status


def set_status(text: str, level: str = "INFO", context=None):
    st = _status(context)
    st.text, st.level = text, level


def busy() -> bool:
    return any(j.kind != "hello" for j in _state.jobs.values())


def job_outcome(job_id: str):
    """(report level, message) once the job has ended, else None."""
    return _state.outcomes.get(job_id)


def _finish(job: Job, level: str, message: str, context=None):
    _state.jobs.pop(job.id, None)
    _state.outcomes[job.id] = ({"INFO": 'INFO', "WARNING": 'WARNING', "ERROR": 'ERROR'}[level], message)
    st = _status(context)
    st.busy = busy()
    if not st.busy:
        st.progress, st.job = 0.0, ""
    set_status(message, level, context)


# ------------------------------------------------------------------ connection

def client(context=None):
    """The client for the configured address (re-created when the address or timeout changes)."""
    from .core.client import Client

    prefs = addon_prefs(context)
    key = (backend_address(context), float(prefs.timeout) if prefs else 10.0)
    if _state.client is None or _state.client_key != key:
        close_client()
        _state.client = Client(key[0], timeout=key[1])
        _state.client_key = key
    return _state.client


def close_client():
    if _state.client is not None:
        _state.client.close()
    _state.client, _state.client_key = None, None


def _submit(context, kind: str, label: str, send, **fields) -> Job:
    if busy() and kind != "hello":
        raise UserInputError("A job is already running; wait for it or cancel it (Esc)")
    try:
        job_id = send(client(context))
    except Exception as e:  # ClientError (too large, closed) or a bad address string
        raise UserInputError(f"Could not send the request to {backend_address(context)}: {e}") from None
    job = Job(job_id, kind, context.scene.name, label, during_start=localserver.starting(), **fields)
    _state.jobs[job_id] = job
    st = _status(context)
    st.busy, st.job, st.progress = kind != "hello", label, 0.0
    set_status(f"{label}: waiting for the backend at {backend_address(context)}", "INFO", context)
    return job


def start_hello(context) -> str:
    """Ask the backend who it is; the answer (or the timeout) arrives through drain()."""
    job = _submit(context, "hello", "Checking connection", lambda c: c.submit_hello())
    set_status(f"Contacting {backend_address(context)} ...", "INFO", context)
    return job.id


def start_generate(context) -> str:
    s, scene = context.scene.osmnet, context.scene
    problem = takes.target_problem(s.target)
    if problem:
        raise UserInputError(problem)
    speech = strips.read_speech(context)
    fps = strips.scene_fps(scene)
    if s.audio_source == 'FILE' and s.add_sound_strip:
        strips.place_sound(scene, speech)
    opts = dict(takes=s.takes_count, seed=s.seed, diversity=s.diversity, intensity=s.intensity, fps=fps)
    label = f"Generating {s.takes_count} take{'s' if s.takes_count > 1 else ''}"
    job = _submit(context, "generate", label, lambda c: c.submit_generate((speech.samples, speech.sr), **opts),
                  takes=s.takes_count, start_frame=speech.start_frame, fps=fps)
    job.frames = int(round(speech.samples.size / speech.sr * fps))
    takes.begin_generated(context, job.id, job.takes, speech.start_frame, fps, job.frames, s.seed, s.diversity,
                          audio=speech)
    return job.id


def start_reroll(context) -> str:
    """Generate the preview range of the selected take again with the re-roll box's seed,
    diversity and what (head, face or both); the result is a new take to compare or accept."""
    problem = takes.reroll_problem(context)
    if problem:
        raise UserInputError(problem)
    s, scene = context.scene.osmnet, context.scene
    base = s.active()
    first, end = takes.reroll_range(context, base)
    values, fps = takes.read_values(base)
    speech = strips.read_speech_for_take(context, base)
    seed, diversity, what = s.reroll_seed, s.reroll_diversity, s.reroll_what.lower()
    opts = dict(takes=1, seed=seed, diversity=diversity, intensity=s.intensity, fps=fps,
                base=(values, fps), reroll=(first, end), what=what)  # a refused `what` shows as an error
    label = f"Re-rolling {what} of frames {takes.scene_frame(base, first)}-{takes.scene_frame(base, end - 1)} of {base.name}"
    job = _submit(context, "reroll", label, lambda c: c.submit_generate((speech.samples, speech.sr), **opts),
                  start_frame=base.start_frame, fps=fps)
    job.frames = values.shape[0]
    takes.begin_reroll(context, job.id, base, seed, first, end, diversity=diversity)
    s.reroll_seed = seed + 1  # pressing Re-roll again gives another variant
    return job.id


def start_render(context) -> str:
    s = context.scene.osmnet
    take = s.active()
    problem = takes.ready_problem(take)
    if problem:
        raise UserInputError(problem)
    image = bpy.path.abspath(s.portrait_path)
    if not os.path.isfile(image):
        raise UserInputError(f"Portrait {image} does not exist; choose the photo again")
    values, fps = takes.read_values(take)
    folder = strips.frames_folder(context, take.name)
    job = _submit(context, "render", f"Rendering {take.name}",
                  lambda c: c.submit_render((values, fps), image, size=int(s.render_size)),
                  start_frame=take.start_frame, folder=str(folder), take_name=take.name, fps=fps)
    job.frames = values.shape[0]
    return job.id


def cancel(context=None, job_id: str | None = None):
    """Stop a job (all jobs when job_id is None); what already arrived is kept."""
    for job in [j for j in _state.jobs.values() if job_id in (None, j.id)]:
        if job.kind != "hello" and _state.client is not None:
            try:
                _state.client.cancel(job.id)
            except Exception:
                pass  # the backend is gone; nothing left to stop there
        takes.end_job(bpy.data.scenes.get(job.scene), job.id, failed=False)
        _finish(job, "WARNING", f"{job.label}: cancelled", context)


# ------------------------------------------------------------------ drain

def drain(context=None) -> bool:
    """Apply every event that arrived; returns True while jobs are still running. Never blocks."""
    context = context or bpy.context
    if _state.client is not None:
        for ev in _state.client.drain():
            job = _state.jobs.get(ev.job)
            if job is None:
                if ev.type == "error" and ev.job is None:
                    set_status(f"Backend: {ev.content.get('message', 'error')}", "ERROR", context)
                continue
            try:
                _on_event(job, ev, context)
            except Exception as e:  # a bug or a deleted scene/take: end the job, keep Blender alive
                _fail(job, f"{job.label} failed while applying results: {type(e).__name__}: {e}", context)
    if localserver.poll(context):  # the local backend just said it is listening: connect at once
        try:
            start_hello(context)
        except UserInputError as e:
            set_status(str(e), "ERROR", context)
    return bool(_state.jobs)


def _on_welcome(job, info: dict, context):
    st = _status(context)
    st.model = f"{info.get('model') or 'unknown model'} on {info.get('device') or '?'}"
    _finish(job, "INFO", f"Connected to {info.get('server', 'osmnet')} ({st.model})", context)


def _on_event(job: Job, ev, context):
    scene = bpy.data.scenes.get(job.scene)
    st = _status(context)
    if ev.type == "welcome":
        _on_welcome(job, ev.content, context)
    elif ev.type == "started":
        job.frames = int(ev.content.get("frames", job.frames))
        set_status(f"{job.label} ...", "INFO", context)
        if scene is not None and job.kind in ("generate", "reroll"):
            takes.set_expected_frames(scene, job.id, job.frames)
    elif ev.type == "progress":
        st.progress = float(ev.content.get("done", st.progress))
    elif ev.type == "chunk":
        takes.apply_chunk(scene, job.id, int(ev.take), int(ev.start), ev.values)
        job.received += ev.values.shape[0]
        st.progress = min(1.0, job.received / max(1, job.frames * job.takes))
    elif ev.type == "take_done":
        takes.take_done(scene, job.id, int(ev.take))
    elif ev.type == "frames":
        _write_frames(job, ev)
        st.progress = min(1.0, job.received / max(1, job.frames))
    elif ev.type == "finished":
        status = ev.content.get("status", "ok")
        if status != "ok":
            takes.end_job(scene, job.id, failed=False)
            _finish(job, "WARNING", f"{job.label}: {status}", context)
            return
        message = takes.end_job(scene, job.id, failed=False) or f"{job.label}: done"
        if job.kind == "render" and scene is not None:
            strip = strips.place_frames(scene, _folder(job), job.received, job.start_frame, f"{job.take_name} 2D")
            message = (f"Rendered {job.received} frames of {job.take_name} into {job.folder}; they play in scene "
                       f"\"{strip.id_data.name}\" (F12 here still renders the 3D scene)")
        _finish(job, "INFO", message, context)
    elif ev.type == "error":
        _fail(job, _error_text(ev.content), context)


def _error_text(content) -> str:
    code, message = content.get("code", "internal"), content.get("message", "unknown error")
    if code in ("timeout", "server_lost"):
        return (f"Backend unreachable: {message} (start it in the Backend panel or fix the address "
                "in the add-on preferences)")
    return f"Backend error: {message}"


def _fail(job: Job, message: str, context):
    if job.kind == "hello" and (localserver.starting() or job.during_start):
        # No answer because the model was still loading: not an error. drain() says hello again
        # the moment the backend listens; a hello sent during the load may time out just after
        # that, and then its silence says nothing (the new hello reports the connection).
        if localserver.starting():
            _finish(job, "INFO", localserver.starting_text(), context)
        else:
            _state.jobs.pop(job.id, None)
            _state.outcomes[job.id] = ('INFO', "sent while the backend was loading; asked again when it was ready")
            _status(context).busy = busy()
        return
    if job.kind == "hello":
        _status(context).model = ""
    takes.end_job(bpy.data.scenes.get(job.scene), job.id, failed=True)
    _finish(job, "ERROR", message, context)


def _folder(job):
    from pathlib import Path

    return Path(job.folder)


def _write_frames(job: Job, ev):
    batch = ev.frames
    start = int(ev.content.get("start", job.received))
    folder = _folder(job)
    for i in range(batch.shape[0]):
        strips.write_png(folder / strips.frame_name(start + i), batch[i])
    job.received = max(job.received, start + batch.shape[0])


def ensure_app_timer():
    """Drain from a Blender timer too, for jobs started by scripts (no modal operator)."""
    if _state.timer_registered:
        return

    def tick():
        if drain():
            return 0.1
        _state.timer_registered = False
        return None

    _state.timer_registered = True
    _state.tick = tick
    bpy.app.timers.register(tick, first_interval=0.1)


def register():
    pass


def unregister():
    """Leave nothing running behind: stop jobs, the client thread and our backend process."""
    for job in list(_state.jobs.values()):
        if job.kind != "hello" and _state.client is not None:
            try:
                _state.client.cancel(job.id)
            except Exception:
                pass
    _state.jobs.clear()
    if _state.tick is not None and bpy.app.timers.is_registered(_state.tick):
        bpy.app.timers.unregister(_state.tick)
    _state.tick, _state.timer_registered = None, False
    close_client()
    localserver.stop()
