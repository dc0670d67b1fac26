"""10,000 malformed messages against a real `osmnet serve` process: it answers, stays up, stays small."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import zmq

from backend import testing as T
from blender_addon.core import protocol as P
from blender_addon.core.client import Client

pytestmark = pytest.mark.slow
MAX_MB = 1.0


def valid_generate(rng) -> list[bytes]:
    wave = rng.standard_normal(int(rng.integers(800, 16000))).astype(np.float32)
    msg = P.Message("generate", {"audio": {"kind": "samples", "buffer": 0, "sr": 16000}, "takes": 2},
                    [wave], id=f"fz{rng.integers(1 << 30)}")
    return [bytes(f) for f in P.encode(msg)]


def header(rng, **kw) -> bytes:
    h = {"protocol": P.PROTOCOL_VERSION, "type": "generate", "id": f"h{rng.integers(1 << 30)}", "content": {},
         "buffers": []}
    h.update(kw)
    return json.dumps(h).encode()


def fuzz_message(rng, i: int) -> list[bytes]:
    kind = i % 10
    if kind == 0:  # random frames
        return [rng.bytes(int(rng.integers(0, 3000))) for _ in range(int(rng.integers(1, 5)))]
    if kind == 1:  # wrong version
        return [header(rng, protocol=int(rng.integers(2, 10**6)), type="ping")]
    if kind == 2:  # truncated array
        frames = valid_generate(rng)
        frames[1] = frames[1][: int(rng.integers(0, len(frames[1])))]
        return frames
    if kind == 3:  # oversize (soft limit: refused with too_large)
        return [header(rng, buffers=[{"dtype": "bytes", "shape": [int(1.2 * MAX_MB * 2**20)]}]),
                bytes(int(1.2 * MAX_MB * 2**20))]
    if kind == 4:  # bad JSON
        raw = bytearray(header(rng, type="ping"))
        del raw[int(rng.integers(len(raw)))]
        return [bytes(raw) + rng.bytes(int(rng.integers(0, 5)))]
    if kind == 5:  # unknown type
        return [header(rng, type="".join(chr(c) for c in rng.integers(97, 123, int(rng.integers(1, 20)))))]
    if kind == 6:  # flipped bytes anywhere in a valid request
        frames = [bytearray(f) for f in valid_generate(rng)]
        for _ in range(int(rng.integers(1, 6))):
            f = frames[int(rng.integers(len(frames)))]
            if f:
                f[int(rng.integers(len(f)))] = int(rng.integers(256))
        return [bytes(f) for f in frames]
    if kind == 7:  # well-formed envelope, nonsense content
        content = {"audio": rng.choice([None, 5, "x", {"kind": "samples", "buffer": 9}, {"kind": "path",
                   "path": "/etc/passwd"}, {"kind": "file", "buffer": -1}]),
                   "takes": rng.choice([0, -3, 10**9, "8", 2.5, None]), "fps": rng.choice([0, 1e308, "x", 25])}
        return [header(rng, content=content)]
    if kind == 8:  # buffer table that lies
        return [header(rng, buffers=[{"dtype": rng.choice(["float32", "object", "S10", "<f4"]),
                                      "shape": [int(rng.integers(-5, 100))]}]), rng.bytes(int(rng.integers(0, 64)))]
    # cancel / render / shutdown with junk
    return [header(rng, type=str(rng.choice(["cancel", "render", "hello", "ping"])),
                   content={"job": int(rng.integers(100)), "take": "x", "image": []})]


def test_ten_thousand_malformed_messages_leave_the_server_answering_and_small():
    port = T.free_port()
    server = T.serve(port, "--workers", "0", "--max-message-mb", str(MAX_MB))
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.rcvhwm = sock.sndhwm = 0
        sock.connect(f"tcp://127.0.0.1:{port}")
        rng = np.random.default_rng(2024)
        replies: dict[str, int] = {}

        def pump(n_messages, start):
            for i in range(start, start + n_messages):
                sock.send_multipart(fuzz_message(rng, i))
                while sock.poll(0):
                    msg = P.decode(sock.recv_multipart())
                    if msg.type == "progress":  # a queued job's notes, not answers
                        continue
                    key = msg.content.get("code", msg.type)
                    replies[key] = replies.get(key, 0) + 1

        with Client(f"tcp://127.0.0.1:{port}", timeout=5) as probe:
            pump(1000, 0)  # warm-up: allocator arenas, caches
            probe.ping()
            rss_before = T.rss_bytes(server.pid)
            t0 = time.monotonic()
            pump(10_000, 1000)
            elapsed = time.monotonic() - t0
            assert probe.ping() < 1.0, "the server stopped answering ping"
            deadline = time.monotonic() + 20
            while sum(replies.values()) < 11_000 and time.monotonic() < deadline:  # every message answered
                while sock.poll(50):
                    msg = P.decode(sock.recv_multipart())
                    if msg.type == "progress":  # a queued job's notes, not answers
                        continue
                    key = msg.content.get("code", msg.type)
                    replies[key] = replies.get(key, 0) + 1
            rss_after = T.rss_bytes(server.pid)
            assert probe.ping() < 1.0
        assert server.p.poll() is None, "the server died:\n" + server.output()[-2000:]
        growth = (rss_after - rss_before) / 2**20
        print(f"\nfuzz: 10000 messages in {elapsed:.2f} s, RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB "
              f"(+{growth:.1f}), replies {dict(sorted(replies.items()))}")
        assert growth < 20, f"RSS grew by {growth:.1f} MiB over 10,000 bad messages"
        assert sum(replies.values()) == 11_000, "every message deserves exactly one answer"
        for code in ("bad_message", "bad_version", "unknown_type", "too_large", "bad_request"):
            assert replies.get(code, 0) > 100, (code, replies)
    finally:
        ctx.destroy(linger=0)
        server.stop()
