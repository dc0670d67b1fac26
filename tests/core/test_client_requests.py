"""What the client puts on the wire for a generate request, seen by a real ZeroMQ ROUTER on loopback."""
from __future__ import annotations

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from blender_addon.core import protocol as P  # noqa: E402
from blender_addon.core.client import Client  # noqa: E402


@pytest.mark.parametrize("what", ["head", "face", "both", None])
def test_a_reroll_request_says_what_to_regenerate(what):
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    client = Client(f"tcp://127.0.0.1:{port}", timeout=5.0)
    try:
        base = (np.zeros((50, 58), np.float32), 25.0)
        extra = {} if what is None else {"what": what}
        client.submit_generate((np.zeros(16000, np.float32), 16000), seed=4, base=base, reroll=(10, 20), **extra)
        msg = None
        while msg is None or msg.type != "generate":  # heartbeats (ping) may come first
            assert router.poll(5000), "the client sent no generate request"
            msg = P.decode(router.recv_multipart()[1:])
        assert msg.content["reroll"] == [10, 20]
        assert msg.content.get("what") == what  # absent: the server's default ("both")
    finally:
        client.close()
        router.close(linger=0)
