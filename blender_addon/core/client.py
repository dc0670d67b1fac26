"""A small client for the OSM-Net backend (`osmnet serve`): zmq + stdlib + numpy only.

Scripts (blocking, simple):

    with Client("tcp://127.0.0.1:5555", timeout=10) as c:
        print(c.hello()["model"])
        for ev in c.generate(audio="speech.wav", takes=4, seed=1):
            if ev.type == "chunk":
                print(ev.take, ev.start, ev.values.shape)      # (n, 58) float32, channels in ev order

Blender (never block the UI): submit, then call drain() from a bpy.app.timers callback.

    client = Client(address, timeout=10)
    job = client.submit_generate(audio="/path/speech.wav", takes=4, seed=1)
    def tick():
        for ev in client.drain():            # returns at once; [] when nothing new
            ...                              # ev.type: accepted/started/progress/chunk/take_done/finished/error
        return 0.1                           # run again in 0.1 s
    bpy.app.timers.register(tick)

One background thread owns the socket: it sends heartbeats while jobs run (so the server cancels
them if Blender disappears) and turns a dead or unreachable server into an `error` event (code
"timeout" or "server_lost") within `timeout` seconds, so nothing ever hangs. The same holds per
job: a job the server accepted but then says nothing about for `timeout` seconds (a stuck
worker, while the server itself still answers) ends with `timeout` and is cancelled. A reply
that is not well-formed protocol ends what it answers with `bad_message`. The thread never
touches bpy. Wire format: protocol.py / docs/protocol.md.
"""
from __future__ import annotations

import itertools
import os
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import zmq

from . import protocol as P
from .endpoints import KeyFileError, apply_client_keys, is_loopback
from .errors import OsmnetError


class ClientError(OsmnetError):
    """The server refused a request or could not be reached; `.code` is a protocol error code."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{message} [{code}]")
        self.code, self.message = code, message


@dataclass
class Event:
    """One streamed reply. `job` is the job id (None for errors not tied to a request)."""

    type: str
    job: str | None
    content: dict = field(default_factory=dict)
    buffers: list = field(default_factory=list)

    take = property(lambda self: self.content.get("take"))
    start = property(lambda self: self.content.get("start"))
    done = property(lambda self: self.content.get("done"))
    values = property(lambda self: self.buffers[0] if self.type == "chunk" else None)
    frames = property(lambda self: self.buffers[0] if self.type == "frames" else None)

    @property
    def final(self) -> bool:
        """The last event for its request: a job's finished/error, or the one reply to hello/ping/shutdown."""
        return self.type in ("finished", "error", "welcome", "pong", "bye")


class Client:
    def __init__(self, address: str = "tcp://127.0.0.1:5555", timeout: float = 10.0, *, keys_dir=None,
                 heartbeat: float = 1.0, max_message_mb: float = 64.0):
        self.address, self.timeout, self.heartbeat = address, float(timeout), heartbeat
        self.local = is_loopback(address)
        self.keys_dir = keys_dir
        self.max_message_bytes = int(max_message_mb * 2**20)
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.linger = 0
        self._sock.sndhwm = self._sock.rcvhwm = 100_000
        if keys_dir is not None:
            try:
                apply_client_keys(self._sock, keys_dir)
            except KeyFileError as e:
                self._ctx.destroy(linger=0)
                raise ClientError("bad_request", str(e)) from None
            except Exception:
                self._ctx.destroy(linger=0)
                raise
        self._outbox: queue.Queue = queue.Queue()
        self._lock = threading.Condition()
        self._pending: dict[str, deque] = {}      # request/job id -> events not yet consumed
        self._drained: set[str] = set()          # jobs whose events drain() hands out
        self._orphans: deque = deque()           # errors that name no request
        self._heard: dict[str, float] = {}       # request id -> when it was sent or last heard of
        self._job_ids: set[str] = set()          # ids of generate/render requests (not hello/ping)
        self._waiting_since: float | None = None  # when we started waiting with nothing heard
        self._last_heard = 0.0
        self._closed = False
        self._ids = itertools.count()
        self._wake_addr = f"inproc://osmnet-client-{uuid.uuid4().hex[:8]}"
        self._wake_in = self._ctx.socket(zmq.PULL)
        self._wake_in.bind(self._wake_addr)
        self._wake_out = self._ctx.socket(zmq.PUSH)
        self._wake_out.connect(self._wake_addr)
        self._wake_lock = threading.Lock()
        self._refused: str | None = None
        self._connected = False  # a handshake succeeded and no disconnect since
        self._monitor = self._sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
                                                      | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                                      | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
        self._sock.connect(address)
        self._thread = threading.Thread(target=self._io_loop, name="osmnet-client-io", daemon=True)
        self._thread.start()

    # ---- blocking convenience calls ----
    def hello(self) -> dict:
        reply = self._request("hello", {"client": "osmnet-blender", "protocol": P.PROTOCOL_VERSION})
        limits = reply.content.get("limits", {})  # checked on arrival (protocol.reply_problem)
        if "max_message_mb" in limits:
            self.max_message_bytes = int(limits["max_message_mb"] * 2**20)
        return reply.content

    def ping(self) -> float:
        """Round-trip time in seconds."""
        t0 = time.perf_counter()
        self._request("ping", {})
        return time.perf_counter() - t0

    def shutdown_server(self) -> None:
        self._request("shutdown", {})

    def generate(self, audio, **options):
        """Yield the events of one generate job until it finishes; raise ClientError on an error."""
        return self._iterate(self._submit("generate", *self._generate_body(audio, **options)), job=True)

    def render(self, take, image, **options):
        """Yield the events of one render job (`frames` events hold uint8 (k, size, size, 3))."""
        return self._iterate(self._submit("render", *self._render_body(take, image, **options)), job=True)

    # ---- non-blocking API (Blender timers) ----
    def submit_generate(self, audio, **options) -> str:
        return self._submit("generate", *self._generate_body(audio, **options), drained=True)

    def submit_hello(self) -> str:
        """Non-blocking hello: its `welcome` (or an `error`) arrives through drain()."""
        return self._submit("hello", {"client": "osmnet-blender", "protocol": P.PROTOCOL_VERSION}, [], drained=True)

    def submit_render(self, take, image, **options) -> str:
        return self._submit("render", *self._render_body(take, image, **options), drained=True)

    def cancel(self, job: str) -> None:
        """Ask the server to stop a job; its stream ends with `finished` (status "cancelled")."""
        self._send(P.Message("cancel", {"job": job}, id=self._new_id()))

    def drain(self, max_events: int | None = None) -> list[Event]:
        """Every event that arrived for submitted jobs (in arrival order per job); never blocks."""
        out = []
        with self._lock:
            while self._orphans:
                out.append(self._orphans.popleft())
            for job in list(self._drained):
                events = self._pending.get(job, ())
                while events and (max_events is None or len(out) < max_events):
                    ev = events.popleft()
                    out.append(ev)
                    if ev.final:
                        self._drained.discard(job)
                        self._pending.pop(job, None)
        return out

    def busy(self) -> bool:
        with self._lock:
            return bool(self._pending)

    def close(self):
        if self._closed:
            return
        self._closed = True
        self._wake()
        self._thread.join(2.0)
        with self._wake_lock:
            self._ctx.destroy(linger=0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- building requests ----
    def _generate_body(self, audio, *, takes=1, seed=0, diversity=1.0, intensity=1.0, fps=25.0,
                       reroll=None, base=None, what=None, send_path=None):
        buffers = []
        content = {"takes": takes, "seed": seed, "diversity": diversity, "intensity": intensity, "fps": fps,
                   "audio": self._source(audio, "audio", buffers, send_path)}
        if reroll is not None:
            content["reroll"] = [int(reroll[0]), int(reroll[1])]
            if what is not None:  # "head" | "face" | "both": what the re-roll regenerates (the server checks it)
                content["what"] = str(what)
        if base is not None:
            content["base"] = self._take(base, buffers)
        return content, buffers

    def _render_body(self, take, image, *, size=256, face_index=None, send_path=None):
        buffers = []
        content = {"take": self._take(take, buffers), "image": self._source(image, "image", buffers, send_path),
                   "size": size, "face_index": face_index}
        return content, buffers

    def _source(self, value, what, buffers, send_path):
        """A path, file bytes, (samples, sr) audio or an RGB uint8 image -> the request field."""
        if isinstance(value, (str, os.PathLike)):
            path = os.path.abspath(os.fspath(value))
            if not os.path.isfile(path):
                raise ClientError("bad_request", f"{what} file {path} does not exist")
            if send_path if send_path is not None else self.local:
                return {"kind": "path", "path": path}
            with open(path, "rb") as f:
                value = f.read()
            name = os.path.basename(path)
        else:
            name = ""
        if isinstance(value, (bytes, bytearray, memoryview)):
            buffers.append(bytes(value))
            return {"kind": "file", "buffer": len(buffers) - 1, "name": name}
        if what == "audio":
            wave, sr = value
            buffers.append(np.ascontiguousarray(wave, dtype=np.float32).reshape(-1))
            return {"kind": "samples", "buffer": len(buffers) - 1, "sr": int(sr)}
        buffers.append(np.ascontiguousarray(value, dtype=np.uint8))
        return {"kind": "pixels", "buffer": len(buffers) - 1}

    @staticmethod
    def _take(take, buffers):
        """(values (frames, 58), fps) or any object with .array() and .fps (an osmnet Take)."""
        values, fps = (take.array(), take.fps) if hasattr(take, "array") else take
        buffers.append(np.ascontiguousarray(values, dtype=np.float32))
        return {"buffer": len(buffers) - 1, "fps": float(fps)}

    # ---- plumbing ----
    def _new_id(self) -> str:
        return f"{uuid.uuid4().hex[:12]}-{next(self._ids)}"

    def _submit(self, kind, content, buffers, drained=False) -> str:
        job = self._new_id()
        msg = P.Message(kind, content, buffers, id=job)
        with self._lock:
            self._pending[job] = deque()
            if kind in ("generate", "render"):
                self._job_ids.add(job)
            if drained:
                self._drained.add(job)
        self._send(msg)
        return job

    def _send(self, msg: P.Message):
        if self._closed:
            raise ClientError("server_lost", "this client is closed; create a new Client")
        frames = P.encode(msg)
        size = sum(memoryview(f).nbytes for f in frames)
        if size > self.max_message_bytes:
            with self._lock:
                self._pending.pop(msg.id, None)
                self._drained.discard(msg.id)
            raise ClientError("too_large", f"the request is {size / 2**20:.1f} MiB; the server accepts at most "
                              f"{self.max_message_bytes / 2**20:.1f} MiB: send shorter audio")
        with self._lock:
            if msg.id in self._pending:
                self._heard[msg.id] = time.monotonic()
        self._outbox.put(frames)
        self._wake()

    def _wake(self):
        with self._wake_lock:
            if not self._ctx.closed:
                try:
                    self._wake_out.send(b"", zmq.NOBLOCK)
                except zmq.Again:
                    pass  # the I/O thread already has wake-ups waiting

    def _request(self, kind, content) -> Event:
        rid = self._new_id()
        with self._lock:
            self._pending[rid] = deque()
        self._send(P.Message(kind, content, id=rid))
        events = list(self._iterate(rid))
        return events[-1]

    def _iterate(self, rid, job=False):
        """Yield events for one id until a final one; a reply that is not a job event is final too.

        Leaving the loop early (break, exception in the caller) cancels the job on the server.
        """
        ended = False
        try:
            while True:
                with self._lock:
                    self._lock.wait_for(lambda: self._pending.get(rid) or rid not in self._pending or self._closed,
                                        timeout=self.timeout + 1.0)
                    events = self._pending.get(rid)
                    if (self._closed or not self._thread.is_alive()) and not events:
                        raise ClientError("server_lost", "the client was closed")
                    if not events:
                        continue
                    ev = events.popleft()
                if ev.type == "error":
                    ended = True
                    raise ClientError(ev.content.get("code", "internal"), ev.content.get("message", "unknown error"))
                ended = ev.final
                yield ev
                if ended:
                    return
        finally:
            with self._lock:
                self._pending.pop(rid, None)
            if job and not ended and not self._closed:
                self.cancel(rid)

    def _fail_all(self, code, message):
        with self._lock:
            for rid, events in self._pending.items():
                if not (events and events[-1].final):
                    events.append(Event("error", rid, {"code": code, "message": message}))
            self._lock.notify_all()

    def _io_loop(self):
        poller = zmq.Poller()
        for s in (self._sock, self._wake_in, self._monitor):
            poller.register(s, zmq.POLLIN)
        next_beat = 0.0
        try:
            while not self._closed:
                ready = dict(poller.poll(50))
                if self._wake_in in ready:
                    while _recv_or_none(self._wake_in) is not None:
                        pass
                while True:
                    try:
                        frames = self._outbox.get_nowait()
                    except queue.Empty:
                        break
                    try:
                        self._sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
                    except zmq.Again:  # nothing connected and the queue is full: the timeout reports it
                        pass
                if self._sock in ready:
                    self._receive()
                if self._monitor in ready:
                    self._on_monitor()
                now = time.monotonic()
                with self._lock:
                    waiting = any(not (ev and ev[-1].final) for ev in self._pending.values())
                if not waiting:
                    self._waiting_since = None
                    continue
                if self._waiting_since is None:
                    self._waiting_since = now
                if self._refused:
                    self._fail_all("server_lost", self._refused)
                    continue
                if now >= next_beat:  # heartbeat: keeps our jobs alive on the server, proves it lives
                    try:
                        self._sock.send_multipart(P.encode(P.Message("ping", {}, id="heartbeat")), zmq.NOBLOCK)
                    except zmq.Again:
                        pass
                    next_beat = now + self.heartbeat
                if now - max(self._last_heard, self._waiting_since) > self.timeout:
                    self._fail_all("timeout", f"no answer from the OSM-Net server at {self.address} for "
                                   f"{self.timeout:g} s; is `osmnet serve` running there?")
                    self._waiting_since = now
                self._give_up_silent_requests(now)
        except Exception as e:  # the socket broke: nothing may wait forever on this client
            if not self._closed:
                self._fail_all("server_lost", f"the client's connection broke ({e}); create a new Client")

    def _give_up_silent_requests(self, now):
        """End requests the server has said nothing about for `timeout` s while it answers heartbeats.

        A stuck worker (or a server that drops a request) would otherwise leave the caller
        waiting for good: the server's pongs keep the connection looking alive. Jobs are never
        silent that long while they wait or work (docs/protocol.md), so silence means stuck;
        the job is cancelled on the server too."""
        with self._lock:
            for rid in [r for r in self._heard if r not in self._pending]:
                del self._heard[rid]
            silent = [r for r, seen in self._heard.items() if now - seen > self.timeout
                      and not (self._pending[r] and self._pending[r][-1].final)]
            for rid in silent:
                del self._heard[rid]
                what = "job" if rid in self._job_ids else "request"
                self._pending[rid].append(Event("error", rid, {"code": "timeout", "message": (
                    f"the server at {self.address} answers heartbeats but has sent nothing about {what} {rid} for "
                    f"{self.timeout:g} s (a stuck worker?); it was given up" + (" and cancelled" if what == "job" else "")
                    + ": run it again, and check the server's log if it happens again")}))
            if silent:
                self._lock.notify_all()
        for rid in silent:
            if rid in self._job_ids:
                self._send_now(P.Message("cancel", {"job": rid}, id=self._new_id()))

    def _send_now(self, msg):
        try:
            self._sock.send_multipart(P.encode(msg), zmq.NOBLOCK)
        except zmq.Again:
            pass

    def _receive(self):
        while True:
            frames = _recv_or_none(self._sock, multipart=True)
            if frames is None:
                return
            now = self._last_heard = time.monotonic()
            try:
                msg = P.decode(frames)
                problem = P.reply_problem(msg)
            except P.ProtocolError as e:
                other_version = e.code == "bad_version" and isinstance(_peek(frames, "protocol"), int)
                self._bad_reply(_peek(frames, "ref"), "bad_version" if other_version else "bad_message", e.message)
                continue
            if problem:
                self._bad_reply(msg.ref, "bad_message", problem)
                continue
            ev = Event(msg.type, msg.ref, msg.content, msg.buffers)
            with self._lock:
                if msg.ref in self._pending:
                    self._pending[msg.ref].append(ev)
                    self._heard[msg.ref] = now
                    if ev.final:
                        self._heard.pop(msg.ref, None)
                        self._job_ids.discard(msg.ref)
                    self._lock.notify_all()
                elif msg.type == "error" and msg.ref is None:
                    self._orphans.append(ev)

    def _bad_reply(self, ref, code, problem):
        """A reply that is not well-formed: it ends the request it names, or every waiting one."""
        message = (f"bad reply from the server at {self.address}: {problem}; the server and this add-on "
                   "do not speak the same protocol (update the older one)")
        with self._lock:
            named = ref in self._pending
            if named:
                self._pending[ref].append(Event("error", ref, {"code": code, "message": message}))
                self._heard.pop(ref, None)
                self._lock.notify_all()
            else:  # drain() shows it even when nothing was waiting
                self._orphans.append(Event("error", None, {"code": code, "message": message}))
            cancel = named and ref in self._job_ids
            self._job_ids.discard(ref)
        if cancel:
            self._send_now(P.Message("cancel", {"job": ref}, id=self._new_id()))
        elif not named:
            self._fail_all(code, message)

    def _on_monitor(self):
        from zmq.utils.monitor import recv_monitor_message

        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)["event"]
            except zmq.Again:
                return
            if event == zmq.EVENT_DISCONNECTED and self._connected:
                self._connected = False
                self._fail_all("server_lost", f"the OSM-Net server at {self.address} closed the connection "
                               "(stopped or crashed); start `osmnet serve` again and retry")
            elif event == zmq.EVENT_DISCONNECTED and self.keys_dir is None:
                # Dropped during the handshake, before it ever succeeded: a server with --keys closes
                # a keyless peer, sometimes before our side reports the mechanism mismatch itself.
                self._refused = (f"the server at {self.address} closed the connection during the handshake: it "
                                 "requires CurveZMQ keys (it runs with --keys): pass the folder holding "
                                 "client.key_secret and server.key as keys_dir")
                self._fail_all("server_lost", self._refused)
            elif event in (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL):
                if self.keys_dir is None:
                    why = ("requires CurveZMQ keys (it runs with --keys): pass the folder holding "
                           "client.key_secret and server.key as keys_dir")
                else:
                    why = ("refused our keys; use the client.key_secret and server.key made by its "
                           "`osmnet keys`")
                self._refused = f"the server at {self.address} {why}"  # fails requests until a handshake works
                self._fail_all("server_lost", self._refused)
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._refused, self._connected = None, True


def _peek(frames, key: str):
    """Best effort: one field of a reply header that failed to decode (None if there is none)."""
    import json

    try:
        value = json.loads(bytes(frames[0])[:P.MAX_HEADER_BYTES]).get(key)
    except Exception:  # not JSON, not an object, no frames: nothing to find
        return None
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def _recv_or_none(sock, multipart=False):
    try:
        return sock.recv_multipart(zmq.NOBLOCK) if multipart else sock.recv(zmq.NOBLOCK)
    except zmq.Again:
        return None


def assemble(events) -> dict[int, np.ndarray]:
    """Chunk events -> {take: (frames, 58) array}.

    Raises ClientError("bad_message") if a chunk is malformed, missing, repeated or out of order."""
    parts: dict[int, list] = {}
    lengths: dict[int, int] = {}
    for ev in events:
        if ev.type != "chunk":
            continue
        problem = P.reply_problem(P.Message("chunk", ev.content if isinstance(ev.content, dict) else {},
                                            list(ev.buffers or [])))
        if problem:
            raise ClientError("bad_message", f"cannot assemble the takes: {problem}")
        if ev.start != lengths.get(ev.take, 0):
            raise ClientError("bad_message", f"take {ev.take}: chunk starts at frame {ev.start}, expected "
                              f"{lengths.get(ev.take, 0)} (a chunk is missing or repeated)")
        parts.setdefault(ev.take, []).append(ev.values)
        lengths[ev.take] = ev.start + ev.values.shape[0]
    return {t: np.concatenate(p) for t, p in sorted(parts.items())}
