"""Safe by default: loopback only without keys; CurveZMQ keys encrypt and authenticate."""
from __future__ import annotations

import os
import stat
import time

import numpy as np
import pytest

from backend.engine import Engine
from backend.security import SecurityError, make_keys
from blender_addon.core.endpoints import is_loopback as is_loopback_endpoint
from backend.server import Limits, Server
from backend.testing import free_port
from backend.worker import Worker
from blender_addon.core.client import Client, ClientError, assemble
from osmnet import cli
from osmnet.generate import TakeChunk as Chunk  # stand-ins yield the real chunk type


class OnesGenerator:
    name, device = "ones", "cpu"

    def stream(self, audio, *, takes=1, seed=0, fps=25.0, **_):
        frames = int(np.ceil(len(audio[0]) / audio[1] * fps))
        for t in range(takes):
            yield Chunk(t, 0, np.full((frames, 58), seed + t, np.float32), fps, True)


@pytest.mark.parametrize("endpoint,ok", [
    ("tcp://127.0.0.1:5555", True), ("tcp://127.4.5.6:5555", True), ("tcp://localhost:5555", True),
    ("tcp://[::1]:5555", True), ("ipc:///tmp/osmnet.sock", True), ("inproc://x", True),
    ("tcp://0.0.0.0:5555", False), ("tcp://*:5555", False), ("tcp://192.168.1.20:5555", False),
    ("tcp://eth0:5555", False), ("tcp://[::]:5555", False), ("tcp://example.org:5555", False),
])
def test_only_loopback_endpoints_count_as_local(endpoint, ok):
    assert is_loopback_endpoint(endpoint) is ok


def test_binding_beyond_this_machine_without_keys_is_refused_with_the_fix_in_the_message():
    with pytest.raises(SecurityError) as e:
        Server(f"tcp://0.0.0.0:{free_port()}", engine=None)
    assert "osmnet keys --out DIR" in str(e.value) and "--keys" in str(e.value) and "127.0.0.1" in str(e.value)


def test_the_serve_command_refuses_a_public_bind_without_loading_anything(capsys):
    t0 = time.monotonic()
    assert cli.main(["serve", "--bind", f"tcp://0.0.0.0:{free_port()}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("osmnet: error: refusing to bind") and "osmnet keys" in err
    assert time.monotonic() - t0 < 5


def test_keys_command_writes_two_key_pairs_with_private_secrets(tmp_path, capsys):
    out = tmp_path / "keys"
    assert cli.main(["keys", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["client.key", "client.key_secret", "server.key", "server.key_secret"]
    for secret in ("client.key_secret", "server.key_secret"):
        assert stat.S_IMODE(os.stat(out / secret).st_mode) == 0o600
    assert cli.main(["keys", "--out", str(out)]) == 2  # never overwrite keys clients already hold
    assert "already exists" in capsys.readouterr().err


@pytest.fixture
def curve_server(tmp_path):
    keys = tmp_path / "keys"
    make_keys(keys)
    limits = Limits(heartbeat=0.1, client_timeout=2.0, worker_timeout=2.0)
    # Any interface is allowed once keys are given; clients still reach it through 127.0.0.1.
    port = free_port()
    srv = Server(f"tcp://0.0.0.0:{port}", engine=None, keys_dir=keys, limits=limits, expect_workers=True).start()
    worker = Worker(f"tcp://127.0.0.1:{port}", Engine(OnesGenerator()), name="remote", keys_dir=keys, token=srv.worker_token,
                    heartbeat=0.1).start()
    yield f"tcp://127.0.0.1:{port}", keys, srv
    worker.request_stop()
    worker.join(5)
    srv.stop()


def test_with_keys_the_curve_handshake_succeeds_and_jobs_run_over_the_encrypted_link(curve_server):
    address, keys, srv = curve_server
    with Client(address, timeout=5, keys_dir=keys) as c:
        deadline = time.monotonic() + 5
        while not c.hello()["workers"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [w["name"] for w in c.hello()["workers"]] == ["remote"]
        takes = assemble(c.generate(audio=(np.zeros(16000, np.float32), 16000), takes=2, seed=4))
    assert takes[1].shape == (25, 58) and np.all(takes[1] == 5)


def test_a_client_without_keys_gets_no_service_from_a_curve_server(curve_server):
    address, _, _ = curve_server
    with Client(address, timeout=2.0) as c:
        t0 = time.monotonic()
        with pytest.raises(ClientError) as e:
            c.hello()
    assert e.value.code == "server_lost" and "requires CurveZMQ keys" in e.value.message
    assert time.monotonic() - t0 < 1.0


def test_a_client_with_someone_elses_keys_is_refused(curve_server, tmp_path):
    address, keys, _ = curve_server
    other = tmp_path / "other"
    make_keys(other)
    (other / "server.key").write_bytes((keys / "server.key").read_bytes())  # knows the server, not trusted
    with Client(address, timeout=2.0, keys_dir=other) as c:
        t0 = time.monotonic()
        with pytest.raises(ClientError) as e:
            c.hello()
    assert e.value.code == "server_lost" and "refused our keys" in e.value.message
    assert time.monotonic() - t0 < 1.0


def test_missing_key_files_are_named_in_the_error(tmp_path):
    with pytest.raises(ClientError) as e:
        Client("tcp://127.0.0.1:1", timeout=1, keys_dir=tmp_path)
    assert "client.key_secret" in e.value.message and "osmnet keys" in e.value.message


def _lan_address():
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("198.51.100.1", 9))  # no packet is sent; this only picks the outgoing interface
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


def test_a_client_from_another_address_may_not_send_paths_or_stop_the_server(curve_server, tmp_path):
    _, keys, srv = curve_server
    ip = _lan_address()
    if ip is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect through")
    port = srv.address.rsplit(":", 1)[1]
    wav = tmp_path / "speech.wav"
    wav.write_bytes(b"RIFF")  # never read: the request is refused before any worker sees it
    with Client(f"tcp://{ip}:{port}", timeout=5, keys_dir=keys) as c:
        assert not c.local
        with pytest.raises(ClientError) as e:
            list(c.generate(audio=str(wav), send_path=True))
        assert e.value.code == "not_local" and "file bytes" in e.value.message
        with pytest.raises(ClientError) as e:
            c.shutdown_server()
        assert e.value.code == "not_local"
        deadline = time.monotonic() + 5
        while not c.hello()["workers"] and time.monotonic() < deadline:
            time.sleep(0.05)
        takes = assemble(c.generate(audio=(np.zeros(8000, np.float32), 16000), takes=1, seed=2))
    assert takes[0].shape == (13, 58) and srv.is_alive()
