"""The server's bookkeeping: jobs, the clients that own them, the workers that run them.

Pure data and decisions (no sockets), so the ROUTER loop stays a thin shell that reads these
tables and sends what they say. The queue is FIFO; a job goes to the worker with the fewest
running jobs (ties: the one that got work longest ago), which spreads work across workers.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Job:
    id: str
    client: bytes            # ROUTER identity of the client that asked
    kind: str                # "generate" | "render"
    spec: dict               # checked request content, forwarded to the worker
    buffers: list            # request buffers forwarded with the work
    local_only: bool = False  # reads a path on this machine: only same-machine workers may run it
    worker: bytes | None = None
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    cancel_sent: float | None = None


@dataclass
class ClientState:
    identity: bytes
    last_seen: float
    local: bool
    jobs: set = field(default_factory=set)


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
    """Every live job, indexed by id, client and worker; the FIFO queue of jobs not yet assigned."""

    def __init__(self, max_queue: int = 256):
        self.max_queue = max_queue
        self.jobs: dict[str, Job] = {}
        self.queue: deque[str] = deque()
        self.clients: dict[bytes, ClientState] = {}
        self.workers: dict[bytes, WorkerState] = {}
        # Jobs that ended (cancelled, client gone) while a worker still runs them: job -> worker.
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
        self.jobs[job.id] = job
        self.clients[job.client].jobs.add(job.id)
        self.queue.append(job.id)
        return len(self.queue) - 1

    def queue_full(self) -> bool:
        return len(self.queue) >= self.max_queue

    def finish(self, job_id: str) -> Job | None:
        """Remove a job everywhere. If a worker still runs it, remember to drop its late events."""
        job = self.jobs.pop(job_id, None)
        if job is None:
            return None
        if job.worker is not None:
            self.draining[job_id] = job.worker
        client = self.clients.get(job.client)
        if client:
            client.jobs.discard(job_id)
        try:
            self.queue.remove(job_id)
        except ValueError:
            pass
        return job

    def release(self, worker_id: bytes, job_id: str):
        """The worker says it is done with a job (finished, failed or cancelled): free its slot."""
        self.draining.pop(job_id, None)
        worker = self.workers.get(worker_id)
        if worker is not None and job_id in worker.running:
            worker.running.discard(job_id)
            worker.jobs_done += 1

    # -- workers --
    def add_worker(self, state: WorkerState):
        self.workers[state.identity] = state

    def remove_worker(self, identity: bytes) -> list[str]:
        """Drop a worker; returns ids of the live jobs it was running (they have failed)."""
        worker = self.workers.pop(identity, None)
        if worker is None:
            return []
        for job_id in list(self.draining):
            if self.draining[job_id] == identity:
                del self.draining[job_id]
        return [j for j in worker.running if j in self.jobs]

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
            worker.running.add(job.id)
            worker.last_assigned = now
            yield job, worker
        self.queue.extendleft(reversed(skipped))

    def stats(self) -> dict:
        return {"queued": len(self.queue), "running": len(self.jobs) - len(self.queue),
                "stopping": len(self.draining), "workers": len(self.workers), "clients": len(self.clients)}
