"""The Client against a misbehaving server (issue 12, 6): every failure is a clean ClientError.

The "server" here is a raw ROUTER socket on loopback that answers the way a test needs: it
keeps answering heartbeats while a job goes quiet, sends junk limits, or sends garbage.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq

from backend.testing import free_port
from blender_addon.core import protocol as P
from blender_addon.core.client import Client, ClientError, Event, assemble


class FakeServer:
    """ROUTER on loopback; `answer(msg)` returns the replies: frame lists, or (delay_s, frames)."""

    def __init__(self, answer):
        self.answer = answer
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.sock.bind(self.address)
        self.seen: list[P.Message] = []
        self._later: list[tuple[float, bytes, list]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop:
            now = time.monotonic()
            for item in [x for x in self._later if x[0] <= now]:
                self._later.remove(item)
                self.sock.send_multipart([item[1], *item[2]])
            if not self.sock.poll(10):
                continue
            ident, *frames = self.sock.recv_multipart()
            msg = P.decode(frames)
            self.seen.append(msg)
            for r in self.answer(msg):
                delay, r = r if isinstance(r, tuple) else (0.0, r)
                self._later.append((now + delay, ident, r))

    def close(self):
        self._stop = True
        self._thread.join(2)
        self.ctx.destroy(linger=0)


def reply(msg, type_, content=None, buffers=()):
    return P.encode(P.Message(type_, content or {}, list(buffers), ref=msg.id))


def pongs_and(on_job):
    def answer(msg):
        if msg.type == "ping":
            return [reply(msg, "pong", {"time": time.time()})]
        if msg.type in ("generate", "render"):
            return on_job(msg)
        return []
    return answer


@pytest.fixture
def fake():
    made = []

    def make(answer):
        made.append(FakeServer(answer))
        return made[-1]

    yield make
    for f in made:
        f.close()


def test_a_job_that_goes_quiet_while_heartbeats_are_answered_ends_with_timeout(fake):
    srv = fake(pongs_and(lambda m: [reply(m, "accepted", {"job": m.id, "kind": "generate", "queue_position": 0}),
                                    reply(m, "started", {"takes": 1, "frames": 25, "fps": 25.0})]))
    with Client(srv.address, timeout=1.0, heartbeat=0.1) as c:
        t0 = time.monotonic()
        with pytest.raises(ClientError) as e:
            list(c.generate(audio=(np.zeros(16000, np.float32), 16000)))
        took = time.monotonic() - t0
        assert e.value.code == "timeout" and "sent nothing" in e.value.message
        assert took < 2.0, f"took {took:.1f} s with timeout=1"
        time.sleep(0.2)
        assert any(m.type == "cancel" for m in srv.seen), "the stuck job is cancelled on the server"
        job = c.submit_generate((np.zeros(16000, np.float32), 16000))  # same through drain()
        time.sleep(1.6)
        events = c.drain()
        assert events[-1].type == "error" and events[-1].job == job and events[-1].content["code"] == "timeout"


@pytest.mark.parametrize("request_", ["hello", "generate"])
def test_a_request_the_server_never_answers_while_it_answers_heartbeats_ends_with_timeout(fake, request_):
    srv = fake(pongs_and(lambda m: []))  # pongs, but nothing for the request itself
    with Client(srv.address, timeout=1.0, heartbeat=0.1) as c:
        t0 = time.monotonic()
        with pytest.raises(ClientError) as e:
            if request_ == "hello":
                c.hello()
            else:
                list(c.generate(audio=(np.zeros(16000, np.float32), 16000)))
        assert e.value.code == "timeout" and time.monotonic() - t0 < 2.0


def test_a_queued_job_is_not_given_up_while_the_server_says_it_is_queued(fake):
    def on_job(m):  # 1.5 s of "still queued", longer than the client's timeout, then done
        return ([reply(m, "accepted", {"job": m.id, "kind": "generate", "queue_position": 3})]
                + [(0.1 * i, reply(m, "progress", {"stage": "queued", "done": 0.0})) for i in range(1, 16)]
                + [(1.6, reply(m, "finished", {"status": "ok", "elapsed": 1.6}))])

    srv = fake(pongs_and(on_job))
    with Client(srv.address, timeout=1.0, heartbeat=0.1) as c:
        events = list(c.generate(audio=(np.zeros(16000, np.float32), 16000)))
        assert events[-1].type == "finished"


@pytest.mark.parametrize("limits", ["junk", None, [1, 2], {"max_message_mb": "big"}, {"max_message_mb": -5},
                                    {"max_message_mb": 1e300}, {"max_message_mb": True}])
def test_hello_with_junk_limits_is_a_clean_bad_message(fake, limits):
    srv = fake(lambda m: [reply(m, "welcome", {"protocol": 1, "limits": limits, "channels": [],
                                               "heartbeat": 1.0})] if m.type == "hello" else [])
    with Client(srv.address, timeout=2.0) as c:
        with pytest.raises(ClientError) as e:
            c.hello()
        assert e.value.code == "bad_message" and "limits" in e.value.message


@pytest.mark.parametrize("garbage", [[b"\xff\xfe not json"], [b"{}"], [b"[1, 2]"],
                                     [b'{"protocol": 1, "type": "welcome", "buffers": [{"dtype": "float32"}]}']])
def test_a_garbage_reply_is_bad_message_at_once_not_a_timeout(fake, garbage):
    srv = fake(lambda m: [garbage] if m.type == "hello" else [])
    with Client(srv.address, timeout=5.0) as c:
        t0 = time.monotonic()
        with pytest.raises(ClientError) as e:
            c.hello()
        assert e.value.code == "bad_message"
        assert time.monotonic() - t0 < 1.0


@pytest.mark.parametrize("event", [
    ("chunk", {"take": 0, "start": 0, "frames": 5, "fps": 25.0, "done": True}, []),
    ("chunk", {"take": 0, "start": 0, "frames": 5, "fps": 25.0, "done": True}, [np.zeros((5, 3), np.float32)]),
    ("chunk", {"take": "zero", "start": 0, "done": True}, [np.zeros((5, 58), np.float32)]),
    ("chunk", {"take": 0, "start": -4, "done": True}, [np.zeros((5, 58), np.float32)]),
    ("frames", {"start": 0, "count": 1}, [np.zeros((4,), np.uint8)]),
    ("error", {"code": ["x"], "message": 5}, []),
])
def test_a_malformed_job_event_ends_the_job_with_bad_message(fake, event):
    kind, content, buffers = event
    srv = fake(pongs_and(lambda m: [reply(m, "accepted", {"job": m.id}), reply(m, kind, content, buffers)]))
    with Client(srv.address, timeout=2.0, heartbeat=0.1) as c:
        with pytest.raises(ClientError) as e:
            list(c.generate(audio=(np.zeros(16000, np.float32), 16000)))
        assert e.value.code == "bad_message"


@pytest.mark.parametrize("events", [
    [Event("chunk", "j", {"take": 0, "start": 0}, [])],
    [Event("chunk", "j", {"take": 0, "start": 0}, [np.zeros(5, np.float32)])],
    [Event("chunk", "j", {"take": None, "start": 0}, [np.zeros((5, 58), np.float32)])],
    [Event("chunk", "j", {"take": 0, "start": 5}, [np.zeros((5, 58), np.float32)])],
])
def test_assemble_refuses_broken_chunks_with_a_clean_error(events):
    with pytest.raises(ClientError) as e:
        assemble(events)
    assert e.value.code == "bad_message"


def test_assemble_joins_good_chunks():
    evs = [Event("chunk", "j", {"take": 0, "start": 0}, [np.zeros((5, 58), np.float32)]),
           Event("chunk", "j", {"take": 0, "start": 5}, [np.ones((3, 58), np.float32)])]
    assert assemble(evs)[0].shape == (8, 58)


def test_a_job_stuck_inside_the_real_server_ends_with_timeout_and_is_cancelled():
    """The real server and worker, a model that hangs after its first chunk (as ffmpeg did on a
    live playlist): the client gives up within its timeout although pings are answered."""
    from backend.engine import Engine
    from backend.server import Limits, Server
    from osmnet.generate import TakeChunk

    release = threading.Event()

    class Hanging:
        name, device = "hanging", "cpu"

        def stream(self, audio, *, fps=25.0, **_):
            yield TakeChunk(0, 0, np.zeros((5, 58), np.float32), fps, False)
            release.wait(30)  # stuck: no should_stop, no events

    srv = Server(f"tcp://127.0.0.1:{free_port()}", engine=Engine(Hanging()),
                 limits=Limits(heartbeat=0.1, client_timeout=5.0)).start()
    try:
        with Client(srv.address, timeout=1.0, heartbeat=0.1) as c:
            t0 = time.monotonic()
            with pytest.raises(ClientError) as e:
                list(c.generate(audio=(np.zeros(16000 * 4, np.float32), 16000)))
            assert e.value.code == "timeout" and time.monotonic() - t0 < 2.5
            assert c.ping() < 1.0
            deadline = time.monotonic() + 2
            while srv.table.jobs and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not srv.table.jobs, "the stuck job was not cancelled on the server"
    finally:
        release.set()
        srv.stop()
