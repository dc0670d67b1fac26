"""The OSM-Net wire format: the one place that says what travels between Blender and the backend.

Every message is a ZeroMQ multipart message: frame 0 is a UTF-8 JSON header, frames 1.. are raw
binary buffers (arrays or file bytes) described by the header's "buffers" list (dtype + shape).
There is no pickle: a peer can only send JSON and plain bytes. docs/protocol.md is the normative
description and is tested against this module (message types, error codes, version).

This module is imported by the Blender add-on (Python 3.11 / 3.13), so it uses only the standard
library and numpy: no bpy, no zmq, no torch.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from .channels import ALL_CHANNELS

PROTOCOL_VERSION = 1

# Requests a client sends to the server (a DEALER talking to the server's ROUTER).
REQUESTS = ("hello", "ping", "generate", "render", "cancel", "shutdown")
SAMPLE_RATE_RANGE = (8000, 192000)  # Hz: speech rates accepted anywhere (files, arrays, the protocol)
REROLL_WHAT = ("head", "face", "both")  # what a generate "reroll" regenerates (the "what" field)
# Replies and streamed events the server sends back; `ref` names the request (= the job id).
REPLIES = ("welcome", "pong", "accepted", "started", "progress", "chunk", "take_done", "frames",
           "finished", "error", "bye")
# The worker link: extra workers (`osmnet worker`) attach to the same server socket.
WORKER_MESSAGES = ("worker_hello", "worker_heartbeat", "work", "cancel_work", "worker_stop")
MESSAGE_TYPES = REQUESTS + REPLIES + WORKER_MESSAGES

# Error codes with what the person in front of the screen should do about them.
ERROR_CODES = {
    "bad_message": "the message is not valid OSM-Net protocol; update the add-on to match the server",
    "bad_version": "client and server speak different protocol versions; update the older side",
    "unknown_type": "the server does not know this request type; update the server",
    "bad_request": "a field of the request is missing or out of range; the message names it",
    "too_large": "the message is bigger than the server accepts; send a shorter clip or raise --max-message-mb",
    "audio_too_long": "the audio is longer than the server accepts; split it or raise --max-audio-seconds",
    "bad_audio": "the audio could not be decoded; export it as WAV/MP3/OGG/FLAC and try again",
    "bad_image": "the portrait could not be used; pick a photo with exactly one clear, frontal face",
    "not_local": "local paths and shutdown are only accepted from this machine; send the file bytes instead",
    "unknown_job": "no job with this id is running (it may have finished already)",
    "duplicate_job": "a job with this id is already running; use a fresh id",
    "no_workers": "the server has no worker to run jobs; start one with `osmnet worker --connect ...`",
    "worker_lost": "the worker running this job stopped; run the job again",
    "server_busy": "the job queue is full; wait for running jobs to finish",
    "shutting_down": "the server is shutting down; start `osmnet serve` again and retry",
    "internal": "the server hit an unexpected error; the message has details, please report it",
    "unauthorized": "a worker tried to attach without this server's worker token; pass --worker-token FILE",
    # Raised on the client side only (the server never sends these).
    "timeout": "the server did not answer in time; is `osmnet serve` running at this address?",
    "server_lost": "the connection to the server was lost; restart `osmnet serve` and try again",
}

ALLOWED_DTYPES = ("uint8", "int16", "int32", "int64", "float32", "float64", "bytes")
MAX_HEADER_BYTES = 256 * 1024
MAX_ID_CHARS = 64
MAX_DIMS = 4


class ProtocolError(Exception):
    """A message broke the wire format or a request was refused; `code` is one of ERROR_CODES."""

    def __init__(self, code: str, message: str):
        if code not in ERROR_CODES:
            code, message = "internal", f"(unknown error code {code!r}) {message}"
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self):
        return f"[{self.code}] {self.message}"


@dataclass
class Message:
    """One decoded message. `buffers` are numpy arrays (dtype "bytes" arrives as bytes)."""

    type: str
    content: dict = field(default_factory=dict)
    buffers: list = field(default_factory=list)
    id: str | None = None
    ref: str | None = None
    protocol: int = PROTOCOL_VERSION


def _describe(buf) -> tuple[dict, bytes | memoryview]:
    if isinstance(buf, (bytes, bytearray, memoryview)):
        data = memoryview(buf).cast("B") if not isinstance(buf, bytes) else buf
        return {"dtype": "bytes", "shape": [len(data)]}, data
    arr = np.ascontiguousarray(buf)
    name = arr.dtype.name
    if name not in ALLOWED_DTYPES:
        raise ProtocolError("bad_request", f"arrays of dtype {name} cannot be sent; use one of "
                            f"{', '.join(ALLOWED_DTYPES)}")
    if arr.ndim > MAX_DIMS:
        raise ProtocolError("bad_request", f"arrays may have at most {MAX_DIMS} dimensions, got {arr.ndim}")
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return {"dtype": name, "shape": list(arr.shape)}, memoryview(arr.reshape(-1).view(np.uint8))


def encode(msg: Message) -> list:
    """Message -> list of frames (header bytes, then one frame per buffer), ready for send_multipart."""
    if msg.type not in MESSAGE_TYPES:
        raise ProtocolError("unknown_type", f"cannot encode unknown message type {msg.type!r}")
    descs, frames = [], []
    for buf in msg.buffers:
        desc, data = _describe(buf)
        descs.append(desc)
        frames.append(data)
    header = {"protocol": msg.protocol, "type": msg.type, "content": msg.content, "buffers": descs}
    if msg.id is not None:
        header["id"] = msg.id
    if msg.ref is not None:
        header["ref"] = msg.ref
    raw = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return [raw] + frames


def _frame_bytes(frame) -> memoryview:
    """Accept bytes, memoryview or a zmq.Frame (anything with a .buffer) without copying."""
    buf = getattr(frame, "buffer", frame)
    return memoryview(buf).cast("B") if not isinstance(buf, memoryview) or buf.format != "B" else buf


def peek_ids(raw_header) -> tuple[str | None, str | None]:
    """Best effort (id, type) of a header that failed to decode, so the error can name the request."""
    try:
        h = json.loads(bytes(_frame_bytes(raw_header)[:MAX_HEADER_BYTES]))
        mid = h.get("id") if isinstance(h, dict) else None
        mtype = h.get("type") if isinstance(h, dict) else None
        return (mid if _valid_id(mid) else None), (mtype if isinstance(mtype, str) else None)
    except Exception:
        return None, None


def _valid_id(value) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS and value.isprintable()


def decode(frames, *, max_bytes: int | None = None) -> Message:
    """Frames -> Message, checking everything a hostile or buggy peer could get wrong.

    Raises ProtocolError(bad_message | bad_version | unknown_type | too_large); never anything else.
    """
    try:
        return _decode(frames, max_bytes)
    except ProtocolError:
        raise
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError) as e:
        raise ProtocolError("bad_message", f"malformed message ({type(e).__name__}: {e})") from None


def _decode(frames, max_bytes):
    if not frames:
        raise ProtocolError("bad_message", "empty message")
    views = [_frame_bytes(f) for f in frames]
    total = sum(v.nbytes for v in views)
    if max_bytes is not None and total > max_bytes:
        raise ProtocolError("too_large", f"message is {total / 2**20:.1f} MiB, the server accepts at most "
                            f"{max_bytes / 2**20:.1f} MiB; send shorter audio or raise --max-message-mb")
    if views[0].nbytes > MAX_HEADER_BYTES:
        raise ProtocolError("bad_message", f"header is {views[0].nbytes} bytes (at most {MAX_HEADER_BYTES})")
    try:
        header = json.loads(bytes(views[0]).decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ProtocolError("bad_message", "header is not UTF-8 JSON") from None
    except json.JSONDecodeError as e:
        raise ProtocolError("bad_message", f"header is not valid JSON ({e.msg} at char {e.pos})") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_message", "header must be a JSON object")
    version = header.get("protocol")
    if version != PROTOCOL_VERSION:
        raise ProtocolError("bad_version", f"message speaks protocol {version!r}, this side speaks "
                            f"{PROTOCOL_VERSION}; update the add-on or the server so both match")
    mtype = header.get("type")
    if not isinstance(mtype, str) or mtype not in MESSAGE_TYPES:
        raise ProtocolError("unknown_type", f"unknown message type {str(mtype)[:40]!r}; known: "
                            f"{', '.join(REQUESTS)}")
    content = header.get("content", {})
    if not isinstance(content, dict):
        raise ProtocolError("bad_message", "\"content\" must be a JSON object")
    for key in ("id", "ref"):
        if key in header and header[key] is not None and not _valid_id(header[key]):
            raise ProtocolError("bad_message", f"\"{key}\" must be a printable string of 1-{MAX_ID_CHARS} chars")
    descs = header.get("buffers", [])
    if not isinstance(descs, list) or len(descs) != len(views) - 1:
        n = len(descs) if isinstance(descs, list) else "?"
        raise ProtocolError("bad_message", f"header describes {n} buffers but {len(views) - 1} were sent")
    buffers = [_read_buffer(d, v, i) for i, (d, v) in enumerate(zip(descs, views[1:]))]
    return Message(mtype, content, buffers, header.get("id"), header.get("ref"), version)


def _reject_constant(name):
    raise ValueError(f"{name} is not allowed in OSM-Net messages")


def _read_buffer(desc, view: memoryview, index: int):
    if not isinstance(desc, dict):
        raise ProtocolError("bad_message", f"buffer {index}: description must be an object")
    dtype, shape = desc.get("dtype"), desc.get("shape")
    if dtype not in ALLOWED_DTYPES:
        raise ProtocolError("bad_message", f"buffer {index}: dtype {str(dtype)[:20]!r} is not allowed")
    if (not isinstance(shape, list) or len(shape) > MAX_DIMS
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**40 for s in shape)):
        raise ProtocolError("bad_message", f"buffer {index}: shape must be a list of at most {MAX_DIMS} "
                            "non-negative integers")
    if dtype == "bytes":
        if len(shape) != 1 or shape[0] != view.nbytes:
            raise ProtocolError("bad_message", f"buffer {index}: says {shape} bytes but has {view.nbytes}")
        return bytes(view)
    itemsize = np.dtype(dtype).itemsize
    expected = math.prod(shape) * itemsize
    if expected != view.nbytes:
        raise ProtocolError("bad_message", f"buffer {index}: {dtype}{shape} needs {expected} bytes but "
                            f"{view.nbytes} arrived (truncated or wrong shape)")
    return np.frombuffer(view, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


def error(code: str, message: str, ref: str | None = None) -> Message:
    """An error reply; `message` should tell the user what to do next."""
    if code not in ERROR_CODES:
        raise ValueError(f"unknown error code {code!r}")
    return Message("error", {"code": code, "message": message}, ref=ref)


# ---- typed field readers: one place that turns request content into checked values ----

def field_int(content: dict, name: str, default=None, lo=None, hi=None) -> int:
    value = content.get(name, default)
    if value is None and default is None:
        raise ProtocolError("bad_request", f"\"{name}\" is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError("bad_request", f"\"{name}\" must be an integer, got {_short(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ProtocolError("bad_request", f"\"{name}\" must be in [{lo}, {hi}], got {value}")
    return value


def field_float(content: dict, name: str, default=None, lo=None, hi=None) -> float:
    value = content.get(name, default)
    if value is None and default is None:
        raise ProtocolError("bad_request", f"\"{name}\" is required")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProtocolError("bad_request", f"\"{name}\" must be a finite number, got {_short(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ProtocolError("bad_request", f"\"{name}\" must be in [{lo}, {hi}], got {value}")
    return float(value)


def field_choice(content: dict, name: str, choices, default):
    value = content.get(name, default)
    if value not in choices:
        raise ProtocolError("bad_request", f"\"{name}\" must be one of {', '.join(choices)}, got {_short(value)}")
    return value


def field_buffer(msg: Message, index, name: str, dtype=None, ndim=None):
    """The buffer a request field points at (by index), with its dtype/rank checked."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(msg.buffers):
        raise ProtocolError("bad_request", f"\"{name}\" must name one of the {len(msg.buffers)} "
                            f"buffers sent with the message, got {_short(index)}")
    buf = msg.buffers[index]
    if dtype == "bytes":
        if not isinstance(buf, bytes):
            raise ProtocolError("bad_request", f"\"{name}\" must be a bytes buffer")
        return buf
    if dtype is not None and (isinstance(buf, bytes) or buf.dtype.name != dtype):
        got = "bytes" if isinstance(buf, bytes) else buf.dtype.name
        raise ProtocolError("bad_request", f"\"{name}\" must be a {dtype} array, got {got}")
    if ndim is not None and buf.ndim != ndim:
        raise ProtocolError("bad_request", f"\"{name}\" must have {ndim} dimensions, got shape {list(buf.shape)}")
    return buf


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---- replies as a client receives them: one place that says what a well-formed reply holds ----

N_CHANNELS = len(ALL_CHANNELS)  # columns of every take array (docs/take-format.md)


def _is_int(value, lo=0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= lo


def _is_number(value, positive=False) -> bool:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return ok and (value > 0 if positive else True)


def reply_problem(msg: Message) -> str | None:
    """What is wrong with a reply or job event from the server (None when it is well-formed).

    decode() already checked the envelope; this checks the fields a client relies on, so a broken
    server surfaces as `bad_message` instead of an IndexError or a wrong take deep in the client."""
    c, bufs = msg.content, msg.buffers
    if msg.type == "error":
        if not isinstance(c.get("code"), str) or not isinstance(c.get("message", ""), str):
            return "an error without a code and message text"
    elif msg.type == "welcome":
        limits = c.get("limits", {})
        if not isinstance(limits, dict):
            return f"welcome.limits must be an object, got {_short(limits)}"
        for name in ("max_message_mb", "max_audio_seconds"):
            if name in limits and not (_is_number(limits[name], positive=True) and limits[name] < 1e9):
                return f"welcome.limits.{name} must be a positive number, got {_short(limits[name])}"
        for name in ("max_takes", "max_queue"):
            if name in limits and not _is_int(limits[name], 1):
                return f"welcome.limits.{name} must be a positive integer, got {_short(limits[name])}"
        if "heartbeat" in c and not _is_number(c["heartbeat"], positive=True):
            return f"welcome.heartbeat must be a positive number, got {_short(c['heartbeat'])}"
        if "channels" in c and not (isinstance(c["channels"], list) and all(isinstance(x, str) for x in c["channels"])):
            return "welcome.channels must be a list of names"
    elif msg.type == "chunk":
        if not (_is_int(c.get("take")) and _is_int(c.get("start"))):
            return f"a chunk needs integer take and start >= 0, got {_short(c.get('take'))}, {_short(c.get('start'))}"
        if (len(bufs) != 1 or isinstance(bufs[0], bytes) or bufs[0].dtype.name != "float32" or bufs[0].ndim != 2
                or bufs[0].shape[1] != N_CHANNELS):
            return f"a chunk must carry one float32 (frames, {N_CHANNELS}) array"
    elif msg.type == "frames":
        if not _is_int(c.get("start")):
            return "a frames event needs an integer start >= 0"
        if (len(bufs) != 1 or isinstance(bufs[0], bytes) or bufs[0].dtype.name != "uint8" or bufs[0].ndim != 4
                or bufs[0].shape[3] != 3):
            return "a frames event must carry one uint8 (count, size, size, 3) array"
    elif msg.type == "take_done":
        if not (_is_int(c.get("take")) and _is_int(c.get("frames"))):
            return "take_done needs integer take and frames"
    elif msg.type == "progress":
        if not _is_number(c.get("done", 0.0)):
            return "progress.done must be a number"
    elif msg.type == "finished":
        if not isinstance(c.get("status", "ok"), str):
            return "finished.status must be a string"
    return None
