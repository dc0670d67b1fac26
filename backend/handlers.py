"""One function per client request type, run inside the ROUTER loop.

They only check fields and update the job table (microseconds): decoding audio, running the
model and rendering happen on workers (backend/tasks.py). A handler raises ProtocolError to
refuse a request; the server turns that into an `error` reply and carries on.
"""
from __future__ import annotations

import os
import time

from blender_addon.core import protocol as P
from blender_addon.core.protocol import Message, ProtocolError

from blender_addon.core.take import ALL_CHANNELS, FPS_RANGE

from .jobs import Job


def hello(srv, client, msg: Message):
    srv.reply(client.identity, srv.welcome(), ref=msg.id)


def ping(srv, client, msg: Message):
    srv.reply(client.identity, Message("pong", {"time": time.time(), **srv.table.stats()}), ref=msg.id)


def generate(srv, client, msg: Message):
    spec, local_only = check_generate(msg, client.local, srv.limits)
    _enqueue(srv, client, msg, "generate", spec, local_only)


def render(srv, client, msg: Message):
    spec, local_only = check_render(msg, client.local, srv.limits)
    _enqueue(srv, client, msg, "render", spec, local_only)


def cancel(srv, client, msg: Message):
    job_id = msg.content.get("job")
    job = srv.table.of_client(client.identity, job_id)
    if job is None:
        raise ProtocolError("unknown_job", f"no running job {str(job_id)[:64]!r} for this client; "
                            "it may have finished already")
    srv.cancel_job(job, notify=True)


def shutdown(srv, client, msg: Message):
    if not client.local:
        raise ProtocolError("not_local", "shutdown is only accepted from this machine")
    srv.reply(client.identity, Message("bye", {"reason": "shutdown requested"}), ref=msg.id)
    srv.request_stop()


HANDLERS = {"hello": hello, "ping": ping, "generate": generate, "render": render,
            "cancel": cancel, "shutdown": shutdown}


def _enqueue(srv, client, msg, kind, spec, local_only):
    if not msg.id:
        raise ProtocolError("bad_request", f"a {kind} request needs an \"id\": it becomes the job id")
    if msg.id in client.jobs:
        raise ProtocolError("duplicate_job", f"job {msg.id!r} is already running; use a fresh id")
    if not srv.table.workers and not srv.expect_workers:
        raise ProtocolError("no_workers", "this server has no workers; start one with "
                            "`osmnet worker --connect ...`")
    workers = srv.table.workers.values()
    if workers and not any(kind in w.capabilities for w in workers):
        raise ProtocolError("no_workers", f"none of the attached workers can {kind}; start a worker whose "
                            f"osmnet install includes the {kind} module")
    if srv.table.queue_full():
        raise ProtocolError("server_busy", f"{len(srv.table.queue)} jobs are already waiting; try again "
                            "when some have finished")
    job = Job(msg.id, client.identity, kind, spec, msg.buffers, local_only)
    position = srv.table.add(job)
    srv.reply(client.identity, Message("accepted", {"job": job.id, "kind": kind, "queue_position": position}),
              ref=job.id)


# ---- field checks shared by the handlers (cheap: no decoding, at most one stat()) ----

def check_generate(msg: Message, local: bool, limits) -> tuple[dict, bool]:
    c = msg.content
    audio, local_only = _check_source(msg, c.get("audio"), "audio", local, limits)
    spec = {
        "audio": audio,
        "takes": P.field_int(c, "takes", 1, 1, limits.max_takes),
        "seed": P.field_int(c, "seed", 0, 0, 2**63 - 1),
        "diversity": P.field_float(c, "diversity", 1.0, 0.0, 10.0),
        "intensity": P.field_float(c, "intensity", 1.0, 0.0, 10.0),
        "fps": P.field_float(c, "fps", 25.0, *FPS_RANGE),
        "reroll": None,
        "what": P.field_choice(c, "what", P.REROLL_WHAT, "both"),
        "base": None,
        "max_audio_seconds": limits.max_audio_seconds,  # file audio is only measured once decoded
    }
    if c.get("reroll") is not None:
        rr = c["reroll"]
        if (not isinstance(rr, list) or len(rr) != 2 or not all(isinstance(x, int) and not isinstance(x, bool)
                                                               for x in rr) or not 0 <= rr[0] < rr[1]):
            raise ProtocolError("bad_request", "\"reroll\" must be [first_frame, end_frame] with "
                                "0 <= first < end")
        spec["reroll"] = rr
    if c.get("base") is not None:
        spec["base"] = _check_take(msg, c["base"], "base")
    elif spec["reroll"]:
        raise ProtocolError("bad_request", "\"reroll\" needs a \"base\" take whose range is generated again")
    return spec, local_only


def check_render(msg: Message, local: bool, limits) -> tuple[dict, bool]:
    c = msg.content
    image, local_only = _check_source(msg, c.get("image"), "image", local, limits)
    spec = {
        "image": image,
        "take": _check_take(msg, c.get("take"), "take"),
        "size": P.field_int(c, "size", 256, 32, 1024),
        "face_index": None if c.get("face_index") is None else P.field_int(c, "face_index", 0, 0, 64),
    }
    frames = msg.buffers[spec["take"]["buffer"]].shape[0]
    if frames / spec["take"]["fps"] > limits.max_audio_seconds:
        raise ProtocolError("audio_too_long", f"the take lasts {frames / spec['take']['fps']:.1f} s; this "
                            f"server renders at most {limits.max_audio_seconds:g} s; render it in parts")
    return spec, local_only


def _check_take(msg: Message, value, name: str) -> dict:
    if not isinstance(value, dict):
        raise ProtocolError("bad_request", f"\"{name}\" must be {{\"buffer\": index, \"fps\": number}}")
    arr = P.field_buffer(msg, value.get("buffer"), f"{name}.buffer", "float32", 2)
    if arr.shape[1] != len(ALL_CHANNELS) or arr.shape[0] == 0:
        raise ProtocolError("bad_request", f"\"{name}\" must be (frames, {len(ALL_CHANNELS)}) float32 in the "
                            f"channel order of the welcome message, got {list(arr.shape)}")
    return {"buffer": value["buffer"], "fps": P.field_float(value, "fps", None, *FPS_RANGE)}


def _check_source(msg: Message, value, name: str, local: bool, limits) -> tuple[dict, bool]:
    """`audio` / `image`: file bytes in a buffer, raw samples/pixels, or a path (loopback only)."""
    if not isinstance(value, dict) or value.get("kind") not in ("file", "samples", "pixels", "path"):
        raise ProtocolError("bad_request", f"\"{name}\" must be {{\"kind\": \"file\"|\"path\"|"
                            f"{'samples' if name == 'audio' else 'pixels'}, ...}}")
    kind = value["kind"]
    if kind == "path":
        path = value.get("path")
        if not local:
            raise ProtocolError("not_local", f"\"{name}\" is a path, which only clients on this machine may "
                                "send; send the file bytes (kind \"file\") instead")
        if not isinstance(path, str) or not os.path.isabs(path) or not os.path.isfile(path):
            raise ProtocolError("bad_request", f"{name} file {str(path)[:200]!r} does not exist on the server "
                                "machine (an absolute path is needed)")
        return {"kind": "path", "path": path}, True
    if kind == "file":
        data = P.field_buffer(msg, value.get("buffer"), f"{name}.buffer", "bytes")
        if not data:
            raise ProtocolError("bad_request", f"the {name} file is empty")
        fname = value.get("name", "")
        return {"kind": "file", "buffer": value["buffer"], "name": fname if isinstance(fname, str) else ""}, False
    if name == "audio" and kind == "samples":
        wave = P.field_buffer(msg, value.get("buffer"), "audio.buffer", "float32", 1)
        sr = P.field_int(value, "sr", None, *P.SAMPLE_RATE_RANGE)
        if wave.shape[0] / sr > limits.max_audio_seconds:
            raise ProtocolError("audio_too_long", f"the audio lasts {wave.shape[0] / sr:.1f} s; this server "
                                f"accepts at most {limits.max_audio_seconds:g} s: split it or raise "
                                "--max-audio-seconds")
        if wave.shape[0] < sr // 25:
            raise ProtocolError("bad_audio", "the audio is shorter than one frame; send at least 0.04 s")
        return {"kind": "samples", "buffer": value["buffer"], "sr": sr}, False
    if name == "image" and kind == "pixels":
        img = P.field_buffer(msg, value.get("buffer"), "image.buffer", "uint8", 3)
        if img.shape[2] != 3 or min(img.shape[:2]) < 32:
            raise ProtocolError("bad_image", f"pixels must be (height, width, 3) RGB of at least 32x32, "
                                f"got {list(img.shape)}")
        return {"kind": "pixels", "buffer": value["buffer"]}, False
    raise ProtocolError("bad_request", f"\"{name}\" cannot be of kind {kind!r}")
