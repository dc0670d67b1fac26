"""Job identity is never confusable (issue 12, 4): the worker link uses the server's own job keys.

A client's job id only names the job between that client and the server; workers see a key
the server made, so a cancelled job's late events (its worker is still winding down) can never
be delivered to a new job that reuses the id, and two clients may use the same id.
"""
from __future__ import annotations

import collections
import time

import numpy as np

from backend.engine import Engine
from backend.server import Limits, Server
from backend.testing import free_port
from backend.worker import Worker
from blender_addon.core import protocol as P
from blender_addon.core.client import Client, assemble
from osmnet.generate import TakeChunk as Chunk

SR = 16000


class SeedGenerator:
    """Every value of a take equals the job's seed; 10 blocks of 5 frames, 30 ms each."""

    name, device = "seeds", "cpu"

    def stream(self, audio, *, takes=1, seed=0, fps=25.0, **_):
        wave, sr = audio
        frames = int(np.ceil(len(wave) / sr * fps))
        for s in range(0, frames, 5):
            time.sleep(0.03)
            n = min(5, frames - s)
            for t in range(takes):
                yield Chunk(t, s, np.full((n, 58), seed, np.float32), fps, s + n >= frames)


def submit(c, job_id, seed, seconds=2.0):
    with c._lock:
        c._pending[job_id] = collections.deque()
    c._send(P.Message("generate", {"audio": {"kind": "samples", "buffer": 0, "sr": SR}, "seed": seed},
                      [np.zeros(int(seconds * SR), np.float32)], id=job_id))
    return c._iterate(job_id)


def test_reusing_a_job_id_right_after_cancel_on_a_two_slot_worker_never_mixes_the_jobs():
    srv = Server(f"tcp://127.0.0.1:{free_port()}", engine=None, expect_workers=True,
                 limits=Limits(heartbeat=0.1)).start()
    w = Worker(srv.address, Engine(SeedGenerator()), name="two-slots", slots=2, heartbeat=0.1,
               token=srv.worker_token).start()
    try:
        with Client(srv.address, timeout=5, heartbeat=0.1) as c:
            for trial in range(5):
                first = submit(c, "same", seed=1)
                for ev in first:
                    if ev.type == "chunk":
                        break
                c.cancel("same")
                assert [ev.content.get("status") for ev in first] == ["cancelled"]
                events = list(submit(c, "same", seed=2))  # the first still winds down on the worker
                assert events[-1].type == "finished" and events[-1].content["status"] == "ok", (trial, events[-1])
                take = assemble(events)[0]
                assert take.shape == (50, 58) and np.all(take == 2), f"trial {trial}: the first job's events leaked"
                assert [e.type for e in events].count("finished") == 1
    finally:
        w.request_stop()
        w.join(5)
        srv.stop()


def test_two_clients_may_use_the_same_job_id_at_the_same_time():
    srv = Server(f"tcp://127.0.0.1:{free_port()}", engine=Engine(SeedGenerator()), local_workers=2,
                 limits=Limits(heartbeat=0.1)).start()
    try:
        with Client(srv.address, timeout=5, heartbeat=0.1) as a, Client(srv.address, timeout=5, heartbeat=0.1) as b:
            ia, ib = submit(a, "job-1", seed=3), submit(b, "job-1", seed=4)
            ea, eb = list(ia), list(ib)
            assert np.all(assemble(ea)[0] == 3) and np.all(assemble(eb)[0] == 4)
    finally:
        srv.stop()


def test_events_a_worker_sends_for_a_job_it_does_not_run_are_dropped():
    """A worker that names a key of another worker's job (or a made-up one) reaches no client."""
    import zmq

    srv = Server(f"tcp://127.0.0.1:{free_port()}", engine=None, expect_workers=True,
                 limits=Limits(heartbeat=0.1, worker_timeout=5)).start()
    ctx = zmq.Context()
    fake = ctx.socket(zmq.DEALER)
    fake.connect(srv.address)
    fake.send_multipart(P.encode(P.Message("worker_hello", {"name": "fake", "slots": 1, "token": srv.worker_token})))
    try:
        with Client(srv.address, timeout=3, heartbeat=0.1) as c:
            job = c.submit_generate((np.zeros(SR, np.float32), SR))
            assert fake.poll(3000)
            msgs = []
            while not any(m.type == "work" for m in msgs):
                msgs.append(P.decode(fake.recv_multipart()))
            key = next(m for m in msgs if m.type == "work").content["job"]
            assert key != job, "the worker link must not carry the client's id"
            for ref in (job, "made-up-key"):
                fake.send_multipart(P.encode(P.Message("finished", {"status": "ok"}, ref=ref)))
            time.sleep(0.3)
            early = c.drain()
            assert not any(e.final for e in early), [e.type for e in early]
            fake.send_multipart(P.encode(P.Message("finished", {"status": "ok", "elapsed": 0.1}, ref=key)))
            deadline = time.monotonic() + 3
            events = []
            while not (events and events[-1].final) and time.monotonic() < deadline:
                events += c.drain()
                time.sleep(0.01)
            assert events[-1].type == "finished" and events[-1].job == job
    finally:
        ctx.destroy(linger=0)
        srv.stop()
