"""The ROUTER loop: receive -> decode -> dispatch -> forward streamed replies. Never blocks on work.

Clients (DEALER) and workers (DEALER, `osmnet worker` or the in-process worker threads on
inproc://) talk to one ROUTER socket. The loop only decodes headers, updates the job table and
moves frames; workers do everything slow. Every failure a peer can cause is caught per message,
so a bad request costs one `error` reply and nothing else. A peer becomes a worker only with the
server's worker token (security.py), and workers only ever see the server's own job keys
(jobs.py); their events are forwarded with the client's job id put back. See docs/architecture.md.
"""
from __future__ import annotations

import errno
import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass

import zmq

from blender_addon.core import protocol as P
from blender_addon.core.protocol import Message, ProtocolError

from . import handlers
from .jobs import Job, JobTable, WorkerState
from .memory import return_big_buffers_to_the_os, trim
from .security import (SecurityError, check_bind, new_token, secure_server, server_token, token_matches,
                       token_path)

log = logging.getLogger("osmnet.backend")


TRIM_AFTER_BYTES = 4 << 20  # received bytes after which the ROUTER loop trims the heap


@dataclass
class Limits:
    max_message_mb: float = 64.0
    max_audio_seconds: float = 600.0
    max_takes: int = 64
    max_queue: int = 256
    heartbeat: float = 1.0         # clients and workers send one at least this often
    client_timeout: float = 10.0   # a client with jobs silent this long is gone: cancel its jobs
    worker_timeout: float = 10.0   # a worker silent this long is gone: fail its jobs

    @property
    def max_message_bytes(self) -> int:
        return int(self.max_message_mb * 2**20)


def peer_is_local(frame) -> bool:
    """Whether a message came from this machine (tcp from loopback, or inproc/ipc)."""
    try:
        addr = frame.get("Peer-Address")
    except (zmq.ZMQError, AttributeError):
        return True  # inproc:// and ipc:// carry no peer address: same process or machine
    return addr.startswith("127.") or addr in ("::1", "::ffff:127.0.0.1") or addr.startswith("::ffff:127.")


class Server:
    """`Server(bind, engine=..., local_workers=1).serve_forever()`; `.start()` runs it in a thread."""

    def __init__(self, bind: str = "tcp://127.0.0.1:5555", *, engine=None, local_workers: int = 1,
                 keys_dir=None, limits: Limits | None = None, expect_workers: bool = False,
                 worker_token: str | None = None, worker_token_file=None, token_file_optional: bool = False):
        """`worker_token_file` (may contain `{port}`): keep the worker token there, owner-only, for
        `osmnet worker`; without it the token lives only in memory (`.worker_token`), for the
        in-process workers and for workers started in this process. `token_file_optional`: a
        file that cannot be written only costs remote workers (a warning), not the server."""
        check_bind(bind, keys_dir)
        self.bind_address, self.keys_dir = bind, keys_dir
        self.engine, self.limits = engine, limits or Limits()
        self.n_local = local_workers if engine is not None else 0
        self.expect_workers = expect_workers  # accept jobs while no worker is attached yet
        self.worker_token = worker_token or new_token()
        self.worker_token_file = worker_token_file
        self._token_file_optional = token_file_optional
        self.table = JobTable(self.limits.max_queue)
        self.address: str | None = None
        self._inproc = f"inproc://osmnet-server-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = None
        self._local_workers = []
        self._startup_error = None
        self._next_queued_note = 0.0
        self._next_refusal_log = 0.0

    # ---- lifecycle ----
    def start(self, timeout: float = 30.0) -> "Server":
        """Serve in a background thread; returns once bound (raises what binding raised)."""
        self._thread = threading.Thread(target=self.serve_forever, name="osmnet-router", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("server did not start in time")
        if self._startup_error:
            raise self._startup_error
        return self

    def request_stop(self):
        self._stop.set()

    def stop(self, timeout: float = 10.0):
        self._stop.set()
        self.join(timeout)

    def join(self, timeout=None):
        if self._thread:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    def serve_forever(self):
        return_big_buffers_to_the_os()
        ctx = zmq.Context()
        auth = None
        try:
            sock = ctx.socket(zmq.ROUTER)
            sock.linger = 0
            sock.router_mandatory = 1
            sock.sndhwm = 100_000  # replies queue here rather than being dropped
            sock.rcvhwm = 1000     # a flooding peer is slowed by TCP back-pressure, not buffered here
            sock.maxmsgsize = 2 * self.limits.max_message_bytes  # hard cap; the soft cap replies too_large
            if self.keys_dir is not None:
                auth = secure_server(sock, ctx, self.keys_dir)
            endpoint = self.bind_address
            if endpoint.startswith("tcp://") and endpoint.endswith(":0"):
                endpoint = endpoint[:-2] + ":*"  # port 0: let the OS pick a free port
            sock.bind(endpoint)
            self.address = sock.last_endpoint.decode()
            if self.worker_token_file is not None:  # after binding: the default file is named by the port
                self.worker_token_file = token_path(self.worker_token_file, self.address)
                try:
                    self.worker_token = server_token(self.worker_token_file)
                except SecurityError as e:
                    if not self._token_file_optional:
                        raise
                    log.warning("%s; only the built-in workers can run jobs", e)
                    self.worker_token_file = None
            sock.bind(self._inproc)  # the in-process workers attach here
            self._sock = sock
            self._start_local_workers(ctx)
        except Exception as e:
            self._startup_error = e
            self._ready.set()
            if auth:
                auth.stop()
            ctx.destroy(linger=0)
            return
        self._ready.set()
        try:
            self._loop(sock)
        finally:
            self._shutdown(sock)
            for w in self._local_workers:
                w.join(5.0)
            if auth:
                auth.stop()
            if any(w.is_alive() for w in self._local_workers):
                log.warning("a worker did not stop in time; leaving its sockets to the process exit")
            else:
                ctx.destroy(linger=0)

    def _start_local_workers(self, ctx):
        from .worker import Worker

        for i in range(self.n_local):
            w = Worker(self._inproc, self.engine, name=f"local-{i}", ctx=ctx, token=self.worker_token,
                       heartbeat=self.limits.heartbeat, stop_event=self._stop)
            self._local_workers.append(w.start())

    # ---- the loop ----
    def _loop(self, sock):
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        next_check = 0.0
        received = 0  # bytes received since the heap was last trimmed
        while not self._stop.is_set():
            busy = poller.poll(100)
            if busy:
                for _ in range(1000):  # fairness: let the periodic checks run under flood
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    received += sum(len(f) for f in frames)
                    try:
                        self._handle(frames)
                    except Exception:  # the loop must survive anything one message can cause
                        log.exception("unexpected error while handling a message")
                        self._safe_reply(frames[0].bytes, P.error(
                            "internal", "the server failed on this message; see its log and report it"))
            now = time.monotonic()
            if received > TRIM_AFTER_BYTES or (received and not busy):
                trim()  # MB of messages passed through, or the flood is over: freed heap back to the OS
                received = 0
            if now >= next_check:
                next_check = now + self.limits.heartbeat / 4
                try:
                    self._check_heartbeats(now)
                except Exception:
                    log.exception("unexpected error in the liveness checks")

    def _handle(self, frames):
        identity = frames[0].bytes
        body = frames[1:]
        worker = self.table.workers.get(identity)
        try:
            msg = P.decode(body, max_bytes=self.limits.max_message_bytes)
        except ProtocolError as e:
            ref, _ = P.peek_ids(body[0]) if body else (None, None)
            if worker is None:
                self._safe_reply(identity, P.error(e.code, e.message, ref))
            return
        now = time.monotonic()
        if worker is not None or msg.type in ("worker_hello", "worker_heartbeat"):
            self._handle_worker(identity, worker, msg, body, now)
            return
        client = self.table.touch_client(identity, peer_is_local(body[0]), now)
        handler = handlers.HANDLERS.get(msg.type)
        if handler is None:  # a reply or worker-link type sent by a client
            self._safe_reply(identity, P.error("unknown_type", f"{msg.type!r} is not a request a client can "
                                               f"send; requests are {', '.join(P.REQUESTS)}", msg.id))
            return
        try:
            handler(self, client, msg)
        except ProtocolError as e:
            self._safe_reply(identity, P.error(e.code, e.message, msg.id))
        self._dispatch(now)

    def _handle_worker(self, identity, worker, msg, body, now):
        if msg.type in ("worker_hello", "worker_heartbeat"):
            c = msg.content
            if not token_matches(self.worker_token, c.get("token")):
                if worker is not None:
                    self._worker_gone(identity, f"worker {worker.name} stopped presenting the worker token")
                if now >= self._next_refusal_log:  # a flood of rogue hellos must not flood the log
                    self._next_refusal_log = now + 10.0
                    log.warning("refused a worker without the right worker token (%s peer)", "loopback" if
                                peer_is_local(body[0]) else "remote")
                self._safe_reply(identity, P.error(
                    "unauthorized", "this server accepts workers only with its worker token: pass "
                    "--worker-token FILE with the token file `osmnet serve` printed (or set OSMNET_WORKER_TOKEN)"))
                return
            if worker is None:
                slots = c.get("slots", 1)
                worker = WorkerState(identity, str(c.get("name", "worker"))[:64], str(c.get("device", "?"))[:32],
                                     str(c.get("model", "?"))[:64],
                                     slots if isinstance(slots, int) and 1 <= slots <= 64 else 1,
                                     peer_is_local(body[0]), now)
                caps = c.get("capabilities")
                if isinstance(caps, list):
                    worker.capabilities = tuple(x for x in caps if x in ("generate", "render"))
                self.table.add_worker(worker)
                log.info("worker %s attached (%s, %s)", worker.name, worker.device, worker.model)
                self._safe_reply(identity, self.welcome())
            worker.last_seen = now
            self._dispatch(now)
            return
        worker.last_seen = now
        key = msg.ref  # workers name jobs by the server's key, never by the client's id
        job = self.table.jobs.get(key) if isinstance(key, str) else None
        ended = msg.type in ("finished", "error")
        if job is not None and job.worker == identity:
            msg.ref = job.id
            self._send(job.client, P.encode(msg))  # the worker's buffers are passed on without a copy
            if ended:
                self.table.finish(key)
                outcome = msg.content.get("status") or msg.content.get("code")
                log.info("job %s (%s) on %s: %s after %.2f s", job.id, job.kind, worker.name, outcome,
                         now - job.created)
        # Anything else is a late event of a job that already ended (cancelled, client gone): dropped.
        if ended and isinstance(key, str):
            self.table.release(identity, key)
            self._dispatch(now)

    def _dispatch(self, now):
        for job, worker in list(self.table.assignments(now)):
            work = Message("work", {"job": job.key, "kind": job.kind, "spec": job.spec}, job.buffers, ref=job.key)
            self._send(worker.identity, P.encode(work))

    # ---- cancellation and liveness ----
    def cancel_job(self, job: Job, *, notify: bool, reason: str = "cancelled by the client"):
        if job.worker is not None:
            self._send(job.worker, P.encode(Message("cancel_work", {"job": job.key}, ref=job.key)))
        self.table.finish(job.key)
        if notify:
            self._safe_reply(job.client, Message("finished", {"job": job.id, "status": "cancelled",
                                                              "reason": reason}), ref=job.id)

    def _check_heartbeats(self, now):
        lim = self.limits
        for client in self.table.silent_clients(now, lim.client_timeout):
            log.info("client silent for %.1f s: cancelling its %d jobs", now - client.last_seen, len(client.jobs))
            self._client_gone(client.identity)
        for worker in self.table.silent_workers(now, lim.worker_timeout):
            self._worker_gone(worker.identity, f"worker {worker.name} stopped answering")
        self.table.forget_idle_clients(now, keep_for=max(60.0, 3 * lim.client_timeout))
        self._dispatch(now)
        if now >= self._next_queued_note:  # queued jobs are not silent ones: say so every heartbeat
            self._next_queued_note = now + lim.heartbeat
            for position, key in enumerate(list(self.table.queue)):
                job = self.table.jobs.get(key)  # a failed send may have dropped a client (and its jobs)
                if job is None:
                    continue
                self._safe_reply(job.client, Message("progress", {"stage": "queued", "done": 0.0,
                                                                  "queue_position": position}), ref=job.id)

    def _client_gone(self, identity):
        client = self.table.clients.pop(identity, None)
        if client:
            for key in list(client.jobs.values()):
                job = self.table.jobs.get(key)
                if job:
                    self.cancel_job(job, notify=False)

    def _worker_gone(self, identity, why):
        for key in self.table.remove_worker(identity):
            job = self.table.finish(key)
            self.table.draining.pop(key, None)
            self._safe_reply(job.client, P.error("worker_lost", f"{why} while running this job; run it again"),
                             ref=job.id)

    # ---- sending ----
    def welcome(self) -> Message:
        from osmnet import __version__
        from blender_addon.core.take import ALL_CHANNELS

        workers = [w.describe() for w in self.table.workers.values()]
        first = workers[0] if workers else {}
        caps = sorted({c for w in self.table.workers.values() for c in w.capabilities})
        return Message("welcome", {
            "protocol": P.PROTOCOL_VERSION, "server": f"osmnet {__version__}",
            "model": first.get("model"), "device": first.get("device"), "workers": workers,
            "capabilities": caps, "channels": list(ALL_CHANNELS), "heartbeat": self.limits.heartbeat,
            "limits": {k: v for k, v in asdict(self.limits).items() if k.startswith("max_")},
        })

    def reply(self, identity, msg: Message, ref=None):
        if ref is not None:
            msg.ref = ref
        self._send(identity, P.encode(msg))

    def _safe_reply(self, identity, msg: Message, ref=None):
        try:
            self.reply(identity, msg, ref)
        except Exception:
            log.exception("could not send a reply")

    def _send(self, identity: bytes, frames) -> bool:
        try:
            self._sock.send_multipart([identity, *frames], zmq.NOBLOCK, copy=False)
            return True
        except zmq.ZMQError as e:
            if e.errno not in (errno.EHOSTUNREACH, errno.EAGAIN):
                raise
        # The peer is gone (or stopped reading): drop it so nothing waits on it.
        if identity in self.table.workers:
            self._worker_gone(identity, "the worker disconnected")
        elif identity in self.table.clients:
            self._client_gone(identity)
        return False

    def _shutdown(self, sock):
        for job in list(self.table.jobs.values()):
            self._safe_reply(job.client, P.error("shutting_down", "the server is shutting down; start "
                                                 "`osmnet serve` again and run this job again"), ref=job.id)
            self.cancel_job(job, notify=False)
        for identity in list(self.table.workers):
            try:
                sock.send_multipart([identity, *P.encode(Message("worker_stop", {}))], zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
        sock.close(linger=500)  # let the last replies leave before the context is destroyed
