"""Server mechanics over real zmq sockets on loopback: streaming order, bad requests, cancel,
vanishing clients, unreachable servers, balancing across workers.

The engine here is a small deterministic stand-in that follows the Generator interface
(stream(...) -> TakeChunk), so these tests isolate the backend; the real Generator is
exercised end to end in test_backend_generate.py.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from backend.engine import Engine
from backend.server import Limits, Server
from backend.testing import cancel_after_first_chunk, free_port, wait_until_workers_idle
from backend.worker import Worker
from blender_addon.core import protocol as P
from blender_addon.core.client import Client, ClientError, assemble
from osmnet.generate import TakeChunk as Chunk  # stand-ins yield the real chunk type

SR = 16000


class SteppedGenerator:
    """Deterministic chunks of `block` frames; `delay` seconds of 'work' before each block."""

    name, device = "stepped", "cpu"

    def __init__(self, block=10, delay=0.0):
        self.block, self.delay = block, delay
        self.blocks_made = 0

    def stream(self, audio, *, takes=1, seed=0, diversity=1.0, intensity=1.0, fps=25.0, base=None, reroll=None,
               what="both", should_stop=None):
        wave, sr = audio
        frames = int(np.ceil(len(wave) / sr * fps))
        for s in range(0, frames, self.block):
            time.sleep(self.delay)
            self.blocks_made += 1
            n = min(self.block, frames - s)
            for t in range(takes):
                vals = np.random.default_rng([seed, t, s]).standard_normal((n, 58)).astype(np.float32) * diversity
                yield Chunk(t, s, vals, fps, s + n >= frames)

    def expected(self, seconds, takes, seed, fps=25.0):
        frames = int(np.ceil(seconds * fps))
        return {t: np.concatenate([np.random.default_rng([seed, t, s]).standard_normal(
            (min(self.block, frames - s), 58)).astype(np.float32) for s in range(0, frames, self.block)])
            for t in range(takes)}


def audio(seconds):
    return np.zeros(int(seconds * SR), np.float32), SR


@pytest.fixture
def server_with():
    servers, clients = [], []

    def make(gen=None, client_timeout=3.0, **kw):
        limits = kw.pop("limits", None) or Limits(heartbeat=0.1, client_timeout=0.6, worker_timeout=1.0)
        engine = Engine(gen or SteppedGenerator())
        srv = Server(f"tcp://127.0.0.1:{free_port()}", engine=engine, limits=limits, **kw).start()
        servers.append(srv)
        c = Client(srv.address, timeout=client_timeout, heartbeat=0.1)
        clients.append(c)
        return srv, c

    yield make
    for c in clients:
        c.close()
    for s in servers:
        s.stop()


def test_hello_describes_model_workers_channels_and_limits(server_with):
    srv, c = server_with()
    info = c.hello()
    assert info["protocol"] == P.PROTOCOL_VERSION and info["model"] == "stepped"
    assert len(info["channels"]) == 58 and info["channels"][:3] == ["headPitch", "headYaw", "headRoll"]
    assert [w["name"] for w in info["workers"]] == ["local-0"]
    assert info["limits"]["max_takes"] == 64
    assert c.ping() < 1.0


def test_generate_streams_events_in_protocol_order_with_every_chunk_in_place(server_with):
    gen = SteppedGenerator(block=7)
    srv, c = server_with(gen)
    events = list(c.generate(audio=audio(2.0), takes=3, seed=11))
    types = [e.type for e in events]
    assert [t for t in types if t != "progress"][:2] == ["accepted", "started"] and types[-1] == "finished"
    assert events[-1].content["status"] == "ok"
    assert types.count("take_done") == 3
    takes = assemble(events)
    expected = gen.expected(2.0, 3, 11)
    assert sorted(takes) == [0, 1, 2]
    for t in takes:
        assert np.array_equal(takes[t], expected[t])
    for ev in events:  # take_done comes right after its take's last chunk
        if ev.type == "take_done":
            assert ev.content["frames"] == 50


def test_drain_gives_the_same_events_without_ever_blocking(server_with):
    gen = SteppedGenerator(block=5, delay=0.01)
    srv, c = server_with(gen)
    job = c.submit_generate(audio(1.0), takes=2, seed=3)
    events, slowest = [], 0.0
    deadline = time.monotonic() + 10
    while not (events and events[-1].final) and time.monotonic() < deadline:
        t0 = time.perf_counter()
        events += c.drain()
        slowest = max(slowest, time.perf_counter() - t0)
        time.sleep(0.005)
    assert events[-1].type == "finished" and all(e.job == job for e in events)
    assert slowest < 0.01, "drain() must return at once (it runs in Blender's UI thread)"
    got = assemble(events)
    for t, arr in gen.expected(1.0, 2, 3).items():
        assert np.array_equal(got[t], arr)
    assert c.drain() == []
    hello = c.submit_hello()
    deadline = time.monotonic() + 5
    replies = []
    while not replies and time.monotonic() < deadline:
        replies = c.drain()
        time.sleep(0.005)
    assert [(e.type, e.job) for e in replies] == [("welcome", hello)] and replies[0].content["model"] == "stepped"


@pytest.mark.parametrize("content,code,words", [
    ({}, "bad_request", "audio"),
    ({"audio": {"kind": "samples", "buffer": 3, "sr": SR}}, "bad_request", "buffer"),
    ({"audio": {"kind": "path", "path": "relative.wav"}}, "bad_request", "does not exist"),
    ({"audio": {"kind": "path", "path": "/no/such/file.wav"}}, "bad_request", "does not exist"),
    ({"audio": {"kind": "samples", "buffer": 0, "sr": SR}, "takes": 0}, "bad_request", "takes"),
    ({"audio": {"kind": "samples", "buffer": 0, "sr": SR}, "takes": 65}, "bad_request", "takes"),
    ({"audio": {"kind": "samples", "buffer": 0, "sr": SR}, "seed": -1}, "bad_request", "seed"),
    ({"audio": {"kind": "samples", "buffer": 0, "sr": SR}, "fps": "fast"}, "bad_request", "fps"),
    ({"audio": {"kind": "samples", "buffer": 0, "sr": SR}, "reroll": [5, 2]}, "bad_request", "reroll"),
    ({"audio": {"kind": "samples", "buffer": 0, "sr": SR}, "reroll": [0, 5]}, "bad_request", "base"),
    ({"audio": {"kind": "samples", "buffer": 0, "sr": SR}, "what": "eyes"}, "bad_request", "what"),
    ({"audio": {"kind": "samples", "buffer": 0, "sr": 7}}, "bad_request", "sr"),
    ({"audio": {"kind": "file", "buffer": 0, "name": "x.wav"}}, "bad_request", "bytes"),
])
def test_bad_generate_requests_get_a_named_error_and_the_server_carries_on(server_with, content, code, words):
    srv, c = server_with()
    job = c._submit("generate", content, [np.zeros(SR, np.float32)])
    with pytest.raises(ClientError) as e:
        list(c._iterate(job))
    assert e.value.code == code and words in e.value.message
    assert c.ping() < 1.0


def test_audio_that_cannot_be_decoded_fails_the_job_not_the_worker(server_with):
    srv, c = server_with()
    with pytest.raises(ClientError) as e:
        list(c.generate(audio=b"this is not audio at all" * 10))
    assert e.value.code == "bad_audio" and "WAV" in e.value.message
    assert assemble(c.generate(audio=audio(0.4), takes=1))[0].shape == (10, 58)


def test_too_long_audio_and_too_large_messages_are_refused_with_the_limit_in_the_message(server_with):
    srv, c = server_with(limits=Limits(max_audio_seconds=2.0, max_message_mb=0.5))
    with pytest.raises(ClientError) as e:
        list(c.generate(audio=audio(3.0)))
    assert e.value.code == "audio_too_long" and "2 s" in e.value.message
    with pytest.raises(ClientError) as e:  # this client has not learned the limit: the server says it
        list(c.generate(audio=audio(10.0)))
    assert e.value.code == "too_large" and "0.5 MiB" in e.value.message
    with pytest.raises(ClientError) as e:  # beyond twice the limit the server does not even read it
        list(c.generate(audio=audio(20.0)))
    assert e.value.code == "server_lost"
    assert c.ping() < 1.0  # the connection comes back by itself
    c.hello()  # now the client knows the limit and refuses before sending anything
    with pytest.raises(ClientError) as e:
        c.submit_generate(audio(20.0))
    assert e.value.code == "too_large"


def test_a_local_client_may_send_a_path_instead_of_bytes(server_with, tmp_path):
    import soundfile

    wav = tmp_path / "speech.wav"
    soundfile.write(wav, np.zeros(SR, np.float32), SR)
    srv, c = server_with()
    assert c.local
    takes = assemble(c.generate(audio=str(wav), takes=2))
    assert takes[1].shape == (25, 58)


def test_cancel_ends_the_stream_within_100_ms_and_frees_the_worker(server_with):
    gen = SteppedGenerator(block=5, delay=0.02)
    srv, c = server_with(gen)
    job = c.submit_generate(audio(60.0), takes=2)
    events, latency, _ = cancel_after_first_chunk(c, job)
    assert events[-1].type == "finished" and events[-1].content["status"] == "cancelled"
    assert latency < 0.1, f"cancel took {latency * 1000:.0f} ms"
    made = gen.blocks_made
    time.sleep(0.2)
    assert gen.blocks_made - made <= 1, "the worker kept generating after the cancel"
    t1 = time.perf_counter()  # the single worker is free again for the next job
    assert assemble(c.generate(audio=audio(0.4)))[0].shape == (10, 58)
    assert time.perf_counter() - t1 < 1.0


def test_leaving_a_generate_loop_early_cancels_the_job_on_the_server(server_with):
    gen = SteppedGenerator(block=5, delay=0.02)
    srv, c = server_with(gen)
    for ev in c.generate(audio=audio(60.0)):
        if ev.type == "chunk":
            break
    deadline = time.monotonic() + 2
    while (srv.table.jobs or srv.table.draining) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not srv.table.jobs and not srv.table.draining
    assert gen.blocks_made < 20


class InterruptibleGenerator(SteppedGenerator):
    """Long blocks (0.5 s) that look at `should_stop` every 10 ms, like the real model per clip."""

    def stream(self, audio, *, should_stop=None, **kw):
        for chunk in super().stream(audio, **kw):
            yield chunk
            for _ in range(50):
                if should_stop and should_stop():
                    return
                time.sleep(0.01)


def test_cancel_stops_the_models_work_inside_a_block_when_the_generator_can_be_told(server_with):
    gen = InterruptibleGenerator(block=25)
    srv, c = server_with(gen)
    job = c.submit_generate(audio(60.0), takes=1)
    events, _, t0 = cancel_after_first_chunk(c, job)
    wait_until_workers_idle(c)
    stopped = time.perf_counter() - t0
    assert events[-1].content["status"] == "cancelled"
    assert stopped < 0.1, f"the worker computed on for {stopped * 1000:.0f} ms of a 500 ms block"


def test_cancel_of_an_unknown_job_is_a_clear_error(server_with):
    srv, c = server_with()
    with pytest.raises(ClientError) as e:
        c._request("cancel", {"job": "never-was"})
    assert e.value.code == "unknown_job"


def test_jobs_of_a_client_that_vanishes_are_cancelled(server_with):
    gen = SteppedGenerator(block=5, delay=0.02)
    srv, watcher = server_with(gen)
    doomed = Client(srv.address, timeout=3, heartbeat=0.1)
    doomed.submit_generate(audio(60.0), takes=1)
    deadline = time.monotonic() + 5
    while srv.table.stats()["running"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    doomed._closed = True  # the process dies: no cancel, no goodbye, heartbeats stop
    doomed._thread.join(2)
    doomed._ctx.destroy(linger=0)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3 and (srv.table.jobs or srv.table.draining):
        time.sleep(0.01)
    assert not srv.table.jobs and not srv.table.draining, "the job outlived its client"
    assert time.monotonic() - t0 < 1.5
    assert watcher.ping() < 1.0


def test_an_unreachable_server_gives_a_clean_timeout_error_not_a_hang():
    with Client(f"tcp://127.0.0.1:{free_port()}", timeout=0.5) as c:
        t0 = time.monotonic()
        with pytest.raises(ClientError) as e:
            c.hello()
        assert e.value.code == "timeout" and "osmnet serve" in e.value.message
        assert time.monotonic() - t0 < 1.5
        job = c.submit_generate(audio(1.0))
        time.sleep(0.8)
        events = c.drain()
        assert events and events[-1].type == "error" and events[-1].job == job


def test_a_server_without_workers_says_how_to_start_one():
    srv = Server(f"tcp://127.0.0.1:{free_port()}", engine=None).start()
    try:
        with Client(srv.address, timeout=2) as c:
            with pytest.raises(ClientError) as e:
                list(c.generate(audio=audio(1.0)))
            assert e.value.code == "no_workers" and "osmnet worker" in e.value.message
    finally:
        srv.stop()


def test_jobs_are_balanced_across_two_attached_workers():
    limits = Limits(heartbeat=0.1, client_timeout=2.0, worker_timeout=2.0)
    srv = Server(f"tcp://127.0.0.1:{free_port()}", engine=None, limits=limits, expect_workers=True).start()
    workers = [Worker(srv.address, Engine(SteppedGenerator(block=5, delay=0.03)), name=f"w{i}", heartbeat=0.1,
                      token=srv.worker_token).start()
               for i in range(2)]
    clients = [Client(srv.address, timeout=5, heartbeat=0.1) for _ in range(4)]
    try:
        deadline = time.monotonic() + 5
        while len(srv.table.workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.perf_counter()
        results = {}

        def run(i, c):
            results[i] = list(c.generate(audio=audio(1.0), takes=1, seed=i))

        threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        elapsed = time.perf_counter() - t0
        ran_on = [next(e.content["worker"] for e in results[i] if e.type == "started") for i in range(4)]
        assert sorted(ran_on) == ["w0", "w0", "w1", "w1"], ran_on
        one_job = 5 * 0.03  # 5 blocks of 30 ms each: 4 jobs on 2 workers take about 2 jobs' time
        assert elapsed < 4 * one_job + 0.3
        for i in range(4):
            assert np.array_equal(assemble(results[i])[0], SteppedGenerator(block=5).expected(1.0, 1, i)[0])
    finally:
        for c in clients:
            c.close()
        for w in workers:
            w.request_stop()
            w.join(5)
        srv.stop()


def test_a_worker_that_is_stopped_mid_job_reports_the_job_as_lost():
    srv = Server(f"tcp://127.0.0.1:{free_port()}", engine=None, expect_workers=True,
                 limits=Limits(heartbeat=0.1, worker_timeout=0.5)).start()
    w = Worker(srv.address, Engine(SteppedGenerator(block=5, delay=0.05)), name="leaving", heartbeat=0.1,
               token=srv.worker_token).start()
    try:
        with Client(srv.address, timeout=3, heartbeat=0.1) as c:
            with pytest.raises(ClientError) as e:
                for ev in c.generate(audio=audio(60.0)):
                    if ev.type == "chunk":
                        w.request_stop()
            assert e.value.code == "worker_lost" and "leaving" in e.value.message
    finally:
        w.request_stop()
        w.join(5)
        srv.stop()


def test_a_worker_that_crashes_mid_job_fails_the_job_with_worker_lost():
    """A raw DEALER plays a worker that takes a job, sends one chunk and dies without a word."""
    import zmq

    srv = Server(f"tcp://127.0.0.1:{free_port()}", engine=None, expect_workers=True,
                 limits=Limits(heartbeat=0.1, worker_timeout=0.5)).start()
    ctx = zmq.Context()
    fake = ctx.socket(zmq.DEALER)
    fake.connect(srv.address)
    fake.send_multipart(P.encode(P.Message("worker_hello", {"name": "crashy", "slots": 1, "token": srv.worker_token})))
    try:
        with Client(srv.address, timeout=3, heartbeat=0.1) as c:
            job = c.submit_generate(audio(1.0))
            assert fake.poll(3000)
            while True:
                msg = P.decode(fake.recv_multipart())
                if msg.type == "work":
                    break
            fake.send_multipart(P.encode(P.Message("chunk", {"take": 0, "start": 0, "frames": 1, "fps": 25.0,
                                                              "done": False}, [np.zeros((1, 58), np.float32)],
                                                   ref=msg.content["job"])))  # the key
            fake.close(linger=0)
            t0 = time.monotonic()
            events = []
            while not (events and events[-1].final) and time.monotonic() - t0 < 3:
                events += c.drain()
                time.sleep(0.01)
            assert [e.type for e in events][-2:] == ["chunk", "error"]
            assert events[-1].content["code"] == "worker_lost" and "crashy" in events[-1].content["message"]
            assert time.monotonic() - t0 < 1.5
    finally:
        ctx.destroy(linger=0)
        srv.stop()


def test_shutdown_from_this_machine_stops_the_server(server_with):
    srv, c = server_with()
    c.shutdown_server()
    srv.join(5)
    assert not srv.is_alive()


def test_duplicate_job_ids_are_refused(server_with):
    srv, c = server_with(SteppedGenerator(block=5, delay=0.05))
    c._send(P.Message("generate", {"audio": {"kind": "samples", "buffer": 0, "sr": SR}}, [audio(5)[0]], id="same"))
    c._pending["dup-reply"] = __import__("collections").deque()
    with pytest.raises(ClientError) as e:
        c._pending["same"] = __import__("collections").deque()
        c._send(P.Message("generate", {"audio": {"kind": "samples", "buffer": 0, "sr": SR}}, [audio(5)[0]], id="same"))
        list(c._iterate("same"))
    assert e.value.code == "duplicate_job"


def test_a_render_request_with_no_worker_able_to_render_is_refused_at_once():
    engine = Engine(SteppedGenerator())
    engine.capabilities = ["generate"]
    srv = Server(f"tcp://127.0.0.1:{free_port()}", engine=None, expect_workers=True,
                 limits=Limits(heartbeat=0.1)).start()
    w = Worker(srv.address, engine, name="gen-only", heartbeat=0.1, token=srv.worker_token).start()
    try:
        with Client(srv.address, timeout=3, heartbeat=0.1) as c:
            deadline = time.monotonic() + 5
            while not c.hello()["workers"] and time.monotonic() < deadline:
                time.sleep(0.02)
            with pytest.raises(ClientError) as e:
                list(c.render((np.zeros((5, 58), np.float32), 25.0), np.zeros((64, 64, 3), np.uint8)))
            assert e.value.code == "no_workers" and "render" in e.value.message
            assert c.hello()["capabilities"] == ["generate"]
    finally:
        w.request_stop()
        w.join(5)
        srv.stop()
