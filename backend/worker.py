"""A worker: attaches to the server's ROUTER, runs jobs on compute threads, streams events back.

The same class runs as the server's in-process workers (inproc://, sharing the server's loaded
engine) and as `osmnet worker --connect tcp://...` (its own process, its own engine, e.g. one per
GPU or machine). One socket-loop thread owns the DEALER socket; compute threads hand it events
through a queue and wake it through an inproc pipe, so cancels are read while a job runs.

A worker proves itself with the server's worker token (in every hello and heartbeat) and uses
a random routing id, so no other peer can take over its identity on the server's socket. The
job names it gets and answers with are the server's job keys, unique per job (jobs.py).
"""
from __future__ import annotations

import logging
import os
import queue
import secrets
import socket
import threading
import time
import uuid

import zmq

from blender_addon.core import protocol as P
from blender_addon.core.endpoints import apply_client_keys
from blender_addon.core.errors import UserInputError
from blender_addon.core.protocol import Message, ProtocolError

from .memory import return_big_buffers_to_the_os
from .tasks import run_job

log = logging.getLogger("osmnet.backend")


class Worker:
    def __init__(self, connect: str, engine, *, name: str | None = None, slots: int = 1, ctx=None,
                 keys_dir=None, heartbeat: float = 1.0, stop_event: threading.Event | None = None,
                 token: str | None = None):
        self.connect, self.engine, self.slots = connect, engine, slots
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.keys_dir, self.heartbeat = keys_dir, heartbeat
        self._own_ctx = ctx is None
        self.ctx = ctx or zmq.Context()
        self.stop_event = stop_event or threading.Event()
        self._outbox: queue.Queue = queue.Queue()
        self._wake_addr = f"inproc://osmnet-worker-wake-{uuid.uuid4().hex[:8]}"
        self._wake_lock = threading.Lock()
        self._wake_out = None
        self._jobs: dict[str, tuple] = {}  # job id -> (cancelled, thread, [asked])
        self._thread = None
        self._attached = False
        self.token = token or ""
        self.refused: str | None = None  # why the server turned this worker away (a wrong token)

    def start(self) -> "Worker":
        """Open the sockets here (so a bad address or key raises to the caller), loop in a thread."""
        sockets = self._open()
        self._thread = threading.Thread(target=self._loop, args=sockets, name=f"osmnet-worker-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def join(self, timeout=None):
        if self._thread:
            self._thread.join(timeout)

    def request_stop(self):
        self.stop_event.set()

    def is_alive(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    def _hello(self) -> Message:
        return Message("worker_hello", {"name": self.name, "device": self.engine.device, "model": self.engine.name,
                                        "slots": self.slots, "capabilities": list(self.engine.capabilities),
                                        "pid": os.getpid(), "token": self.token})

    def run(self):
        self._loop(*self._open())

    def _open(self):
        if self._own_ctx:  # a worker process of its own (`osmnet worker`): it receives audio uploads too
            return_big_buffers_to_the_os()
        sock = self.ctx.socket(zmq.DEALER)
        sock.routing_id = b"w" + secrets.token_bytes(15)  # unguessable: nobody can claim to be us
        sock.linger = 0
        sock.sndhwm = sock.rcvhwm = 100_000
        try:
            if self.keys_dir is not None:
                apply_client_keys(sock, self.keys_dir)
            sock.connect(self.connect)
        except zmq.ZMQError as e:
            sock.close(linger=0)
            raise UserInputError(f"cannot connect to {self.connect!r}: {e}; use tcp://HOST:PORT of a running "
                             "`osmnet serve`") from None
        except Exception:
            sock.close(linger=0)
            raise
        wake_in = self.ctx.socket(zmq.PULL)
        wake_in.bind(self._wake_addr)
        self._wake_out = self.ctx.socket(zmq.PUSH)
        self._wake_out.connect(self._wake_addr)
        return sock, wake_in

    def _loop(self, sock, wake_in):
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(wake_in, zmq.POLLIN)
        sock.send_multipart(P.encode(self._hello()), zmq.NOBLOCK)  # queued until connected
        next_beat = time.monotonic() + self.heartbeat
        warn_at = time.monotonic() + 5.0
        try:
            while not self.stop_event.is_set():
                ready = dict(poller.poll(min(100, int(self.heartbeat * 500))))
                if wake_in in ready:
                    while True:
                        try:
                            wake_in.recv(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                self._flush(sock)
                if sock in ready:
                    self._receive(sock)
                now = time.monotonic()
                if not self._attached and now > warn_at:
                    log.warning("worker %s: no server answers at %s yet; still trying", self.name, self.connect)
                    warn_at = now + 30.0
                if now >= next_beat:
                    beat = self._hello()
                    beat.type = "worker_heartbeat"
                    beat.content["running"] = len(self._jobs)
                    try:
                        sock.send_multipart(P.encode(beat), zmq.NOBLOCK)
                    except zmq.Again:
                        pass
                    next_beat = now + self.heartbeat
        finally:
            for cancelled, _, _ in self._jobs.values():
                cancelled.set()
            for _, thread, _ in list(self._jobs.values()):
                thread.join(2.0)
            self._flush(sock)
            with self._wake_lock:  # a job thread that outlived the join must not touch a closed socket
                self._wake_out.close(linger=0)
                self._wake_out = None
            for s in (sock, wake_in):
                s.close(linger=200)
            if self._own_ctx:
                self.ctx.term()

    def _receive(self, sock):
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                msg = P.decode(frames)
            except ProtocolError as e:
                log.warning("worker %s: dropped a bad message from the server: %s", self.name, e)
                continue
            if msg.type == "work":
                if isinstance(msg.content.get("job"), str) and msg.content["job"] not in self._jobs:
                    self._start_job(msg)
            elif msg.type == "cancel_work":
                entry = self._jobs.get(msg.content.get("job"))
                if entry:
                    entry[2][0] = True
                    entry[0].set()
            elif msg.type == "worker_stop":
                log.info("worker %s: server asked us to stop", self.name)
                self.stop_event.set()
            elif msg.type == "welcome":
                self._attached = True
                log.info("worker %s attached to the server", self.name)
            elif msg.type == "error" and msg.content.get("code") == "unauthorized":
                self.refused = f"the server at {self.connect} refused this worker: {msg.content.get('message')}"
                log.error("worker %s: %s", self.name, self.refused)
                self.stop_event.set()

    def _start_job(self, msg: Message):
        job_id = msg.content["job"]
        cancelled = threading.Event()
        asked = [False]  # set when the server forwarded a cancel for this job

        def emit(event: Message):
            event.ref = job_id
            if event.type == "started":
                event.content["worker"] = self.name
            elif event.type == "finished" and event.content.get("status") == "cancelled" and not asked[0]:
                # Stopped because this worker is going away, not because anyone asked: say so.
                event = Message("error", {"code": "worker_lost", "message": f"worker {self.name} was stopped "
                                          "while running this job; run it again"}, ref=job_id)
            self._outbox.put(P.encode(event))
            self._wake()

        def body():
            try:
                run_job(self.engine, msg.content["kind"], msg.content["spec"], msg.buffers, cancelled, emit)
            finally:
                self._outbox.put(("done", job_id))
                self._wake()

        thread = threading.Thread(target=body, name=f"osmnet-job-{job_id[:8]}", daemon=True)
        self._jobs[job_id] = (cancelled, thread, asked)
        thread.start()

    def _wake(self):
        with self._wake_lock:
            if self._wake_out is not None:
                try:
                    self._wake_out.send(b"", zmq.NOBLOCK)
                except zmq.Again:
                    pass  # the loop is already awake with wake-ups queued

    def _flush(self, sock):
        while True:
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, tuple):
                self._jobs.pop(item[1], None)
                continue
            try:
                sock.send_multipart(item, zmq.NOBLOCK, copy=False)
            except zmq.Again:
                pass  # no server connected (it stopped): the job's events have no reader any more
