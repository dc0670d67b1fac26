"""Workers authenticate even on loopback (issue 12, 5): a rogue `worker_hello` gets nothing.

The server holds a worker token (random per token file; `osmnet serve` keeps it in a file only
its owner can read); its in-process workers get it directly, `osmnet worker` reads the file.
A hello without the token is answered with `unauthorized` and the peer never sees a job.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import zmq

from backend import testing as T
from backend.engine import Engine
from backend.server import Limits, Server
from backend.worker import Worker
from blender_addon.core import protocol as P
from blender_addon.core.client import Client, assemble
from osmnet.generate import TakeChunk as Chunk

SR = 16000


class OnesGenerator:
    name, device = "ones", "cpu"

    def stream(self, audio, *, takes=1, seed=0, fps=25.0, **_):
        frames = int(np.ceil(len(audio[0]) / audio[1] * fps))
        for t in range(takes):
            yield Chunk(t, 0, np.ones((frames, 58), np.float32), fps, True)


def rogue(ctx, address, **content):
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(address)
    sock.send_multipart(P.encode(P.Message("worker_hello", {"name": "rogue", "slots": 64, **content})))
    return sock


@pytest.mark.parametrize("token", [None, "", "wrong", 12345, "x" * 10_000])
def test_a_worker_hello_without_the_token_gets_an_error_and_never_a_job(token):
    srv = Server(f"tcp://127.0.0.1:{T.free_port()}", engine=Engine(OnesGenerator()),
                 limits=Limits(heartbeat=0.1)).start()
    ctx = zmq.Context()
    try:
        sock = rogue(ctx, srv.address, **({} if token is None else {"token": token}))
        assert sock.poll(2000)
        reply = P.decode(sock.recv_multipart())
        assert reply.type == "error" and reply.content["code"] == "unauthorized"
        assert "--worker-token" in reply.content["message"]
        hb = P.Message("worker_heartbeat", {"name": "rogue", "slots": 64, "running": 0, "token": "wrong"})
        sock.send_multipart(P.encode(hb))
        with Client(srv.address, timeout=3, heartbeat=0.1) as c:
            assert [w["name"] for w in c.hello()["workers"]] == ["local-0"]
            secret = np.full(SR, 0.5, np.float32)
            for _ in range(3):  # the local worker has 1 slot: a registered rogue would get some of these
                assert assemble(c.generate(audio=(secret, SR)))[0].shape == (25, 58)
        while sock.poll(300):
            msg = P.decode(sock.recv_multipart())
            assert msg.type == "error" and msg.content["code"] == "unauthorized", msg.type
    finally:
        ctx.destroy(linger=0)
        srv.stop()


def test_a_worker_with_the_servers_token_attaches_and_runs_jobs():
    srv = Server(f"tcp://127.0.0.1:{T.free_port()}", engine=None, expect_workers=True,
                 limits=Limits(heartbeat=0.1)).start()
    w = Worker(srv.address, Engine(OnesGenerator()), name="trusted", heartbeat=0.1, token=srv.worker_token).start()
    try:
        with Client(srv.address, timeout=3, heartbeat=0.1) as c:
            deadline = time.monotonic() + 5
            while not c.hello()["workers"] and time.monotonic() < deadline:
                time.sleep(0.02)
            assert assemble(c.generate(audio=(np.zeros(SR, np.float32), SR)))[0].shape == (25, 58)
    finally:
        w.request_stop()
        w.join(5)
        srv.stop()


def test_a_worker_with_a_wrong_token_stops_and_says_why():
    srv = Server(f"tcp://127.0.0.1:{T.free_port()}", engine=None, expect_workers=True,
                 limits=Limits(heartbeat=0.1)).start()
    w = Worker(srv.address, Engine(OnesGenerator()), name="stale", heartbeat=0.1, token="not-it").start()
    try:
        w.join(5)
        assert not w.is_alive() and "--worker-token" in w.refused
        assert not srv.table.workers
    finally:
        w.request_stop()
        srv.stop()


@pytest.mark.slow
def test_osmnet_worker_reads_the_token_file_that_osmnet_serve_wrote(tmp_path):
    port = T.free_port()
    token = tmp_path / "token"
    ckpt = T.checkpoint_for_tests(tmp_path)
    model = ["--checkpoint", str(ckpt)] if ckpt else []
    server = T.serve(port, "--workers", "0", "--worker-token", str(token))
    try:
        assert stat.S_IMODE(os.stat(token).st_mode) == 0o600 and len(token.read_text().strip()) >= 32
        worker = T.worker(port, *model, "--threads", "1", "--worker-token", str(token))
        try:
            with Client(f"tcp://127.0.0.1:{port}", timeout=30) as c:
                assert len(c.hello()["workers"]) == 1
        finally:
            worker.stop()
        from_env = T.worker(port, *model, "--threads", "1", "--worker-token", str(tmp_path / "absent"),
                            env={"OSMNET_WORKER_TOKEN": token.read_text().strip()})  # e.g. a container
        from_env.stop()
        wrong = tmp_path / "wrong"
        wrong.write_text("0" * 43)
        wrong.chmod(0o600)
        refused = subprocess.run([sys.executable, "-m", "osmnet.cli", "worker", "--connect", f"tcp://127.0.0.1:{port}",
                                  *model, "--threads", "1", "--worker-token", str(wrong)],
                                 cwd=T.ROOT, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and "refused this worker" in refused.stderr, refused.stderr[-2000:]
        assert "Traceback" not in refused.stderr
        missing = subprocess.run([sys.executable, "-m", "osmnet.cli", "worker", "--connect", f"tcp://127.0.0.1:{port}",
                                  "--worker-token", str(tmp_path / "absent")],
                                 cwd=T.ROOT, capture_output=True, text=True, timeout=60)
        assert missing.returncode == 2 and "no worker token file" in missing.stderr, missing.stderr[-2000:]
    finally:
        server.stop()


def test_a_token_file_others_can_read_is_refused(tmp_path):
    from backend.security import SecurityError, server_token

    path = tmp_path / "token"
    first = server_token(path)
    assert server_token(path) == first  # kept across restarts, so remote workers re-attach
    path.chmod(0o644)
    with pytest.raises(SecurityError) as e:
        server_token(path)
    assert "chmod 600" in str(e.value)
