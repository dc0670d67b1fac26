"""A generated hostile-input corpus for the protocol and the server (hypothesis, bounded budget).

Every example is one message a hostile or broken peer could send on a real loopback socket:
random headers and buffer tables, junk request fields, audio "files" that are playlists,
concat lists, truncated or bit-flipped real recordings, magic bytes with garbage behind them,
rogue worker hellos and worker events from a client. For each: exactly one final answer within
a few seconds (0 hangs), never `internal` and nothing logged as an error (0 tracebacks), the
answer is valid protocol, and an ordinary job still runs after each one. RSS stays bounded.
Budget: OSMNET_FUZZ_EXAMPLES (default 300, about 10 s), derandomized so CI runs the same corpus.
"""
from __future__ import annotations

import io
import itertools
import json
import logging
import os
import tempfile
import threading
import time

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend import testing as T
from backend.engine import Engine
from backend.server import Limits, Server
from blender_addon.core import protocol as P
from blender_addon.core.client import Client, assemble
from osmnet.generate import TakeChunk as Chunk

SR = 16000
EXAMPLES = int(os.environ.get("OSMNET_FUZZ_EXAMPLES", "300"))
HANG_S = 10.0
RSS_GROWTH_MB = 150
EVENTS = ("accepted", "started", "progress", "chunk", "take_done", "frames")


class QuickGenerator:
    name, device = "quick", "cpu"

    def stream(self, audio, *, takes=1, fps=25.0, **_):
        frames = max(1, int(np.ceil(len(audio[0]) / audio[1] * fps)))
        for t in range(takes):
            yield Chunk(t, 0, np.zeros((frames, 58), np.float32), fps, True)


class Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(self.format(record))


def _wav(seconds=0.3):
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, (np.sin(np.arange(int(seconds * SR)) / 9) * 0.3).astype(np.float32), SR, format="WAV")
    return buf.getvalue()


def _flac(seconds=0.3):
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, np.zeros(int(seconds * SR), np.float32), SR, format="FLAC")
    return buf.getvalue()


REAL = [_wav(), _flac()]
# Real audio on the "server machine": a playlist that names it must still be refused, never decoded.
SERVER_FILE = os.path.join(tempfile.mkdtemp(prefix="osmnet-corpus-"), "server_side.wav")
with open(SERVER_FILE, "wb") as _f:
    _f.write(_wav(1.0))
MAGIC = [b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC\x00\x00\x00\x22", b"OggS\x00\x02", b"ID3\x04\x00\x00\x00\x00\x00\x10",
         b"\xff\xfb\x90\x00", b"\xff\xf1\x50\x80", b"\x00\x00\x00\x20ftypM4A ", b"\x1a\x45\xdf\xa3", b"FORM\x00\x00\x00\x10AIFF",
         b"caff\x00\x01\x00\x00", b"#EXTM3U\n", b"ffconcat version 1.0\n", b"\x89PNG\r\n\x1a\n", b"<?xml ", b""]
TARGETS = [SERVER_FILE, f"file://{SERVER_FILE}", "/etc/passwd", "/etc/hostname", "file:///etc/passwd", "http://127.0.0.1:9/x.ts", "concat:/etc/passwd|/etc/hosts",
           "subfile,,start,0,end,0,,:/etc/passwd", "../../../../etc/passwd", "pipe:0", "data:audio/wav;base64,AAAA"]

json_leaf = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
             | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_value = st.recursive(json_leaf, lambda ch: st.lists(ch, max_size=4) | st.dictionaries(st.text(max_size=8), ch,
                                                                                            max_size=4), max_leaves=12)
playlists = st.builds(lambda head, target, live: (head + (f"#EXTINF:1.0,\n{target}\n" if head.startswith("#EXT")
                                                          else f"file '{target}'\n")
                                                  + ("" if live else "#EXT-X-ENDLIST\n")).encode(),
                      st.sampled_from(["#EXTM3U\n#EXT-X-TARGETDURATION:1\n", "ffconcat version 1.0\n",
                                       "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n"]),
                      st.sampled_from(TARGETS), st.booleans())
mutated_real = st.builds(lambda data, cut, at, junk: (data[:at] + junk + data[at + len(junk):])[:cut],
                         st.sampled_from(REAL), st.integers(0, 20_000), st.integers(0, 200), st.binary(max_size=16))
audio_bytes = st.one_of(
    st.builds(lambda m, b: m + b, st.sampled_from(MAGIC), st.binary(max_size=1500)),
    playlists, mutated_real, st.binary(min_size=1, max_size=2000))
names = st.sampled_from(["speech.wav", "x.m3u8", "x.ffconcat", "", "a.flac", "/etc/passwd", "con:", "x" * 300]) | st.text(max_size=20)
small_int = st.integers(-3, 70) | json_value


def mostly(value, junk=None):
    """`value` nine times in ten, else junk: the hostile part of a request should be the one tested."""
    return st.integers(0, 9).flatmap(lambda i: st.just(value) if i else (junk or small_int))


@st.composite
def generate_request(draw):
    kind = draw(st.sampled_from(["file", "file", "file", "samples", "path", "junk"]))
    buffers = []
    if kind == "file":
        buffers.append(draw(audio_bytes))
        audio = {"kind": "file", "buffer": draw(mostly(0)), "name": draw(names)}
    elif kind == "samples":
        n = draw(st.integers(0, 4000))
        wave = np.asarray(draw(st.lists(st.floats(width=32), min_size=1, max_size=8)), np.float32)
        buffers.append(np.resize(wave, n))
        audio = {"kind": "samples", "buffer": 0, "sr": draw(st.sampled_from([16000, 8000, 7999, 0]) | small_int)}
    elif kind == "path":
        audio = {"kind": "path", "path": draw(st.sampled_from(TARGETS + ["/dev/zero", "/dev/urandom", "/proc/self/mem"]))}
    else:
        audio = draw(json_value)
    content = {"audio": audio}
    if draw(st.integers(0, 3)) == 0:  # junk in the other fields too
        for key in draw(st.sets(st.sampled_from(["takes", "seed", "diversity", "intensity", "fps", "reroll", "base"]))):
            content[key] = draw(small_int)
    return "generate", content, buffers


@st.composite
def render_request(draw):
    buffers = [np.zeros((draw(st.integers(0, 3)), draw(st.sampled_from([58, 3]))), np.float32),
               draw(st.builds(lambda m, b: m + b, st.sampled_from(MAGIC), st.binary(max_size=300)))]
    content = {"take": {"buffer": draw(st.just(0) | small_int), "fps": draw(st.just(25.0) | json_value)},
               "image": draw(st.just({"kind": "file", "buffer": 1}) | json_value), "size": draw(small_int)}
    return "render", content, buffers


other_request = st.tuples(
    st.sampled_from(["cancel", "hello", "ping", "worker_hello", "worker_heartbeat", "chunk", "finished", "error",
                     "work", "welcome"]),
    st.dictionaries(st.sampled_from(["job", "token", "slots", "name", "code", "status", "take"]), json_value, max_size=4),
    st.just([]))


@st.composite
def raw_frames(draw):
    """Envelopes that lie: random headers, buffer tables and frames (sent as they are)."""
    header = draw(st.dictionaries(st.sampled_from(["protocol", "type", "id", "ref", "content", "buffers"]),
                                  json_value, max_size=6))
    if draw(st.booleans()):
        header.update(protocol=P.PROTOCOL_VERSION,  # any type but shutdown, which a local client may send
                      type=draw(st.sampled_from([t for t in P.MESSAGE_TYPES if t != "shutdown"])))
    frames = [json.dumps(header).encode()]
    if draw(st.booleans()):
        frames[0] = frames[0][: draw(st.integers(0, len(frames[0])))]
    return frames + draw(st.lists(st.binary(max_size=300), max_size=3))


messages = st.one_of(generate_request(), generate_request(), generate_request(), render_request(), other_request,
                     raw_frames())


@pytest.fixture(scope="module")
def target():
    errors = Errors()
    log = logging.getLogger("osmnet.backend")
    log.addHandler(errors)
    hook = threading.excepthook  # a thread dying of an exception is a traceback too
    threading.excepthook = lambda args: errors.records.append(f"thread {args.thread.name}: {args.exc_type.__name__}: "
                                                              f"{args.exc_value}")
    srv = Server(f"tcp://127.0.0.1:{T.free_port()}", engine=Engine(QuickGenerator()),
                 limits=Limits(heartbeat=0.2, max_message_mb=1.0, max_audio_seconds=30.0)).start()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(srv.address)
    probe = Client(srv.address, timeout=5, heartbeat=0.2)
    yield srv, sock, probe, errors
    probe.close()
    ctx.destroy(linger=0)
    srv.stop()
    threading.excepthook = hook
    log.removeHandler(errors)


ids = itertools.count()


def send_and_wait(sock, frames) -> list[P.Message]:
    sock.send_multipart(frames)
    got, deadline = [], time.monotonic() + HANG_S
    while True:
        left = deadline - time.monotonic()
        assert left > 0 and sock.poll(int(left * 1000)), \
            f"no final answer within {HANG_S} s: a hang; got {[m.type for m in got][:8]} ({len(got)} events)"
        msg = P.decode(sock.recv_multipart())  # whatever the server says is valid protocol
        got.append(msg)
        if msg.type not in EVENTS:
            return got


def ordinary_job(probe):
    assert assemble(probe.generate(audio=(np.zeros(SR // 5, np.float32), SR)))[0].shape == (5, 58)


def test_the_server_survives_a_generated_hostile_corpus(target):
    srv, sock, probe, errors = target
    ordinary_job(probe)
    rss0 = T.rss_bytes(os.getpid())
    codes: dict[str, int] = {}
    count = [0]

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(messages)
    def one(message):
        listing = False  # audio bytes that name other files: must never decode
        if isinstance(message, list):
            frames = message
        else:
            mtype, content, buffers = message
            listing = mtype == "generate" and bool(buffers) and isinstance(buffers[0], bytes) and \
                buffers[0].startswith((b"#EXTM3U", b"ffconcat"))
            frames = P.encode(P.Message(mtype, content, buffers, id=f"fz-{next(ids)}"))
        got = send_and_wait(sock, frames)
        final = got[-1]
        key = final.content.get("code", final.type) if final.type == "error" else final.type
        codes[key] = codes.get(key, 0) + 1
        assert key != "internal", final.content
        assert not (listing and key == "finished"), "a playlist was decoded: the server read a file it names"
        assert not errors.records, errors.records
        count[0] += 1
        ordinary_job(probe)  # the server still serves after every hostile message

    one()
    ordinary_job(probe)
    growth = (T.rss_bytes(os.getpid()) - rss0) / 2**20
    print(f"\nhostile corpus: {count[0]} messages, answers {dict(sorted(codes.items()))}, RSS +{growth:.1f} MiB")
    assert growth < RSS_GROWTH_MB
    assert srv.is_alive() and not errors.records
    assert codes.get("bad_audio", 0) > 0 and codes.get("bad_message", 0) > 0
