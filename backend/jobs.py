"""The server's bookkeeping: jobs, the clients that own them, the workers that run them.

Pure data and decisions (no sockets), so the ROUTER loop stays a thin shell that reads these
tables and sends what they say. The queue is FIFO; a job goes to the worker with the fewest
running jobs (ties: the one that got work longest ago), which spreads work across workers.

A job has two names: `id`, chosen by its client and meaningful only between that client and
the server, and `key`, made here and never reused, which is all a worker ever sees. Every table
is indexed by key, so a client reusing an id (right after a cancel, while a worker still winds
the old job down) or two clients picking the same id can never receive each other's events.
"""
from __future__ import annotations

import itertools
import time
import uuid
from collections import deque
from dataclasses import dataclass, field


_serial = itertools.count()


def new_key() -> str:
    """A job key unique within this process and never reused (it goes to the worker as the job)."""
    return f"k{next(_serial):x}-{uuid.uuid4().hex[:12]}"


@dataclass
class Job:
    id: str                  # the client's job id (unique among that client's live jobs only)
    client: bytes            # ROUTER identity of the client that asked
    kind: str                # "generate" | "render"
    spec: dict               # checked request content, forwarded to the worker
    buffers: list            # request buffers forwarded with the work
    local_only: bool = False  # reads a path on this machine: only same-machine workers may run it
    worker: bytes | None = None
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    cancel_sent: float | None = None
    key: str = field(default_factory=new_key)  # the server's name for the job: tables and workers use it


@dataclass
class ClientState:
    identity: bytes
    last_seen: float
    local: bool
    jobs: dict = field(default_factory=dict)  # the client's job id -> job key


@dataclass
class WorkerState:
    identity: bytes
    name: str
    device: str
    model: str
    slots: int
    local: bool
    last_seen: float
    capabilities: tuple = ("generate", "render")
    running: set = field(default_factory=set)
    last_assigned: float = 0.0
    jobs_done: int = 0

    @property
    def free(self) -> int:
        return self.slots - len(self.running)

    def describe(self) -> dict:
        return {"name": self.name, "device": self.device, "model": self.model, "slots": self.slots,
                "running": len(self.running), "jobs_done": self.jobs_done, "local": self.local}


class JobTable:
    """Every live job by key (and by client id through its client); the FIFO queue of jobs not yet assigned."""

    def __init__(self, max_queue: int = 256):
        self.max_queue = max_queue
        self.jobs: dict[str, Job] = {}  # job key -> job
        self.queue: deque[str] = deque()  # job keys
        self.clients: dict[bytes, ClientState] = {}
        self.workers: dict[bytes, WorkerState] = {}
        # Jobs that ended (cancelled, client gone) while a worker still runs them: key -> worker.
        # The worker's late events are dropped; its slot is freed when it says "finished".
        self.draining: dict[str, bytes] = {}

    # -- clients --
    def touch_client(self, identity: bytes, local: bool, now: float) -> ClientState:
        state = self.clients.get(identity)
        if state is None:
            state = self.clients[identity] = ClientState(identity, now, local)
        state.last_seen = now
        return state

    def silent_clients(self, now: float, timeout: float) -> list[ClientState]:
        """Clients with jobs that have not been heard from (no heartbeat) for `timeout` seconds."""
        return [c for c in self.clients.values() if c.jobs and now - c.last_seen > timeout]

    def forget_idle_clients(self, now: float, keep_for: float):
        for ident in [i for i, c in self.clients.items() if not c.jobs and now - c.last_seen > keep_for]:
            del self.clients[ident]

    # -- jobs --
    def add(self, job: Job) -> int:
        """Queue a job; returns its queue position (0 = next)."""
        self.jobs[job.key] = job
        self.clients[job.client].jobs[job.id] = job.key
        self.queue.append(job.key)
        return len(self.queue) - 1

    def of_client(self, identity: bytes, job_id) -> Job | None:
        """The live job a client calls `job_id` (None for an id it does not have, or another client's)."""
        client = self.clients.get(identity)
        key = client.jobs.get(job_id) if client is not None and isinstance(job_id, str) else None
        return self.jobs.get(key) if key is not None else None

    def queue_full(self) -> bool:
        return len(self.queue) >= self.max_queue

    def finish(self, key: str) -> Job | None:
        """Remove a job everywhere. If a worker still runs it, remember to drop its late events."""
        job = self.jobs.pop(key, None)
        if job is None:
            return None
        if job.worker is not None:
            self.draining[key] = job.worker
        client = self.clients.get(job.client)
        if client and client.jobs.get(job.id) == key:
            del client.jobs[job.id]
        try:
            self.queue.remove(key)
        except ValueError:
            pass
        return job

    def release(self, worker_id: bytes, key: str):
        """The worker says it is done with a job (finished, failed or cancelled): free its slot."""
        if self.draining.get(key) == worker_id:
            del self.draining[key]
        worker = self.workers.get(worker_id)
        if worker is not None and key in worker.running:
            worker.running.discard(key)
            worker.jobs_done += 1

    # -- workers --
    def add_worker(self, state: WorkerState):
        self.workers[state.identity] = state

    def remove_worker(self, identity: bytes) -> list[str]:
        """Drop a worker; returns ids of the live jobs it was running (they have failed)."""
        worker = self.workers.pop(identity, None)
        if worker is None:
            return []
        for key in list(self.draining):
            if self.draining[key] == identity:
                del self.draining[key]
        return [k for k in worker.running if k in self.jobs]

    def silent_workers(self, now: float, timeout: float) -> list[WorkerState]:
        return [w for w in self.workers.values() if now - w.last_seen > timeout]

    def assignments(self, now: float):
        """Yield (job, worker) pairs to start now, in queue order, least-loaded worker first."""
        skipped = deque()
        while self.queue:
            job = self.jobs[self.queue[0]]
            candidates = [w for w in self.workers.values() if w.free > 0 and job.kind in w.capabilities
                          and (w.local or not job.local_only)]
            if not candidates:
                if not any(w.free > 0 for w in self.workers.values()):
                    break
                skipped.append(self.queue.popleft())  # only unsuitable workers are free: try the next job
                continue
            worker = min(candidates, key=lambda w: (len(w.running) / w.slots, w.last_assigned))
            self.queue.popleft()
            job.worker, job.started = worker.identity, now
            worker.running.add(job.key)
            worker.last_assigned = now
            yield job, worker
        self.queue.extendleft(reversed(skipped))

    def stats(self) -> dict:
        return {"queued": len(self.queue), "running": len(self.jobs) - len(self.queue),
                "stopping": len(self.draining), "workers": len(self.workers), "clients": len(self.clients)}
