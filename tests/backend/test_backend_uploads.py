"""Hostile audio uploads over real sockets: playlists, other formats, length bombs (issue 12, 1-3).

Uploaded bytes are decoded as data only (docs/architecture.md, failure boundaries): the
container is recognised from its first bytes against an allow-list and that demuxer is forced,
so nothing in the bytes can make the server open another file or a URL, and the length is
checked from the header before decoding and again while decoding.
"""
from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest

from backend import testing as T
from backend.engine import Engine
from backend.server import Limits, Server
from blender_addon.core.client import Client, ClientError, assemble
from osmnet.generate import TakeChunk as Chunk

SR = 16000


class CountingGenerator:
    """Stand-in model: one chunk per take; remembers the audio it was given."""

    name, device = "counting", "cpu"

    def __init__(self):
        self.heard = []

    def stream(self, audio, *, takes=1, fps=25.0, **_):
        wave, sr = audio
        self.heard.append(len(wave) / sr)
        frames = int(np.ceil(len(wave) / sr * fps))
        for t in range(takes):
            yield Chunk(t, 0, np.zeros((frames, 58), np.float32), fps, True)


@pytest.fixture
def served():
    gen = CountingGenerator()
    srv = Server(f"tcp://127.0.0.1:{T.free_port()}", engine=Engine(gen),
                 limits=Limits(heartbeat=0.1, max_audio_seconds=600.0)).start()
    c = Client(srv.address, timeout=5, heartbeat=0.1)
    yield srv, c, gen
    c.close()
    srv.stop()


def encode(fmt: str, codec: str, wave: np.ndarray, sr: int = SR) -> bytes:
    """Real speech in a real container, written by ffmpeg (PyAV)."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as c:
        s = c.add_stream(codec, rate=sr)
        s.layout = "mono"
        step = s.codec_context.frame_size or 1024
        kind = s.codec_context.format.name.rstrip("p")
        wave = np.pad(wave, (0, -len(wave) % step))
        for i in range(0, len(wave), step):
            arr = wave[i:i + step].reshape(1, -1)
            arr = {"s16": (arr * 32767).astype(np.int16), "s32": (arr * 2**31 - 1).astype(np.int32)}.get(
                kind, arr.astype(np.float32))
            frame = av.AudioFrame.from_ndarray(arr, format=s.codec_context.format.name, layout="mono")
            frame.sample_rate, frame.pts = sr, i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return buf.getvalue()


def ordinary_job_still_runs(c):
    takes = assemble(c.generate(audio=(np.zeros(SR // 2, np.float32), SR), takes=2))
    assert takes[1].shape == (13, 58)


def refused(c, data, name="speech.wav", timeout=3.0) -> ClientError:
    t0 = time.monotonic()
    with pytest.raises(ClientError) as e:
        list(c.generate(audio=data if name is None else data, takes=1))
    assert time.monotonic() - t0 < timeout, f"refusing took {time.monotonic() - t0:.1f} s"
    return e.value


class Listener:
    """A TCP port that records whether anything connects (a live playlist's segment URL)."""

    def __init__(self):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1  # never answer: a live stream that stalls
            self._keep = conn


@pytest.mark.parametrize("name", ["x.m3u8", "speech.wav", ""])
def test_a_live_hls_playlist_is_refused_at_once_and_never_fetched(served, name):
    srv, c, gen = served
    live = Listener()
    playlist = (f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n"
                f"http://127.0.0.1:{live.port}/seg0.ts\n").encode()  # no ENDLIST: live
    job = c._submit("generate", {"audio": {"kind": "file", "buffer": 0, "name": name}}, [playlist])
    t0 = time.monotonic()
    with pytest.raises(ClientError) as e:
        list(c._iterate(job))
    assert e.value.code == "bad_audio" and "playlist" in e.value.message
    assert time.monotonic() - t0 < 2.0
    assert live.hits == 0 and gen.heard == []
    ordinary_job_still_runs(c)  # the worker's slot is free again


def test_a_finished_playlist_or_concat_list_naming_a_server_file_reads_nothing(served, tmp_path):
    import soundfile

    srv, c, gen = served
    secret = tmp_path / "server_side.wav"
    soundfile.write(secret, np.full(SR, 0.25, np.float32), SR)
    mp3 = tmp_path / "server_side.mp3"
    mp3.write_bytes(encode("mp3", "libmp3lame", np.full(SR, 0.25, np.float32)))
    lists = [
        f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n{mp3}\n#EXT-X-ENDLIST\n",
        f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\nfile://{secret}\n#EXT-X-ENDLIST\n",
        f"ffconcat version 1.0\nfile '{secret}'\n",
        f"[playlist]\nFile1={secret}\nNumberOfEntries=1\n",
    ]
    for text in lists:
        for name in ("x.m3u8", "x.ffconcat", "speech.wav"):
            job = c._submit("generate", {"audio": {"kind": "file", "buffer": 0, "name": name}}, [text.encode()])
            with pytest.raises(ClientError) as e:
                list(c._iterate(job))
            assert e.value.code == "bad_audio", (text, name)
    assert gen.heard == [], "a playlist made the server read its own file"
    ordinary_job_still_runs(c)


def test_a_local_path_to_a_playlist_is_refused_the_same_way(served, tmp_path):
    srv, c, gen = served
    m3u8 = tmp_path / "list.m3u8"
    m3u8.write_text(f"#EXTM3U\n#EXTINF:1.0,\n{tmp_path / 'other.wav'}\n#EXT-X-ENDLIST\n")
    assert c.local
    with pytest.raises(ClientError) as e:
        list(c.generate(audio=str(m3u8)))
    assert e.value.code == "bad_audio" and gen.heard == []


@pytest.mark.parametrize("fmt,codec,sr", [
    ("wav", "pcm_s16le", 16000), ("flac", "flac", 16000), ("ogg", "libopus", 48000), ("mp3", "libmp3lame", 16000),
    ("adts", "aac", 16000), ("ipod", "aac", 16000), ("webm", "libopus", 48000), ("aiff", "pcm_s16be", 16000),
])
def test_every_allowed_container_still_decodes_from_bytes(served, shared_data, fmt, codec, sr):
    from osmnet.audio import load_audio

    srv, c, gen = served
    speech = load_audio(shared_data / "audio" / "dreamtalk_German1.wav", sr=sr)[: 2 * sr]
    events = list(c.generate(audio=encode(fmt, codec, speech, sr), takes=1))
    assert events[-1].content["status"] == "ok"
    assert abs(gen.heard[-1] - 2.0) < 0.15, (fmt, gen.heard[-1])


def test_random_bytes_and_text_with_an_audio_name_are_bad_audio(served):
    srv, c, gen = served
    for data in (b"this is not audio at all" * 10, bytes(range(256)) * 4, b"RIFF\0\0\0\0WAVEjunk" * 3,
                 b"fLaC" + bytes(100), b"OggS" + bytes(60), b"\x00\x00\x00\x18ftypmp42" + bytes(40)):
        e = refused(c, data)
        assert e.code == "bad_audio", data[:16]
    assert gen.heard == []
    ordinary_job_still_runs(c)


def flac_of_silence(path, hours: float = 3.0, sr: int = 16000):
    import soundfile

    block = np.zeros(sr * 60, np.int16)
    with soundfile.SoundFile(path, "w", samplerate=sr, channels=1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(int(hours * 60)):
            f.write(block)
    return path


def hide_the_length(flac: bytes) -> bytes:
    """The same FLAC with STREAMINFO's total-samples field zeroed ('unknown'): only decoding can tell."""
    b = bytearray(flac)
    assert b[:4] == b"fLaC" and b[4] & 0x7F == 0  # STREAMINFO is the first metadata block
    b[8 + 13] &= 0xF0
    b[8 + 14:8 + 18] = bytes(4)
    return bytes(b)


@pytest.fixture(scope="module")
def flac_bomb(tmp_path_factory):
    return flac_of_silence(tmp_path_factory.mktemp("bomb") / "silence_3h.flac").read_bytes()


@pytest.mark.slow
def test_a_flac_of_three_hours_of_silence_is_refused_fast_with_bounded_memory(flac_bomb, tmp_path):
    """Against a real `osmnet serve` process: refused in a fraction of a second (decoding it all took
    79 s), peak RSS < 800 MB (it went 316 -> 1,664 MB), and the server keeps serving."""
    ckpt = T.checkpoint_for_tests(tmp_path)
    port = T.free_port()
    server = T.serve(port, *(["--checkpoint", str(ckpt)] if ckpt else []), "--threads", "1",
                     "--worker-token", str(tmp_path / "token"))
    try:
        with Client(f"tcp://127.0.0.1:{port}", timeout=30) as c:
            c.hello()
            list(c.generate(audio=(np.zeros(SR, np.float32), SR)))  # warm: the first job pays for lazy imports
            for data, name in ((flac_bomb, "header"), (hide_the_length(flac_bomb), "decoding")):
                t0 = time.monotonic()
                with pytest.raises(ClientError) as e:
                    list(c.generate(audio=data))
                took = time.monotonic() - t0
                assert e.value.code == "audio_too_long" and "600 s" in e.value.message, e.value
                print(f"\n{len(data) / 1e6:.2f} MB FLAC of 3 h, length found by the {name}: refused in {took:.2f} s")
                assert took < 5.0, "decoding it all took 79 s before; a refusal must not decode it"
            events = list(c.generate(audio=(np.zeros(SR, np.float32), SR)))  # still serving
            assert events[-1].content["status"] == "ok"
        peak = T.peak_rss_bytes(server.pid) / 2**20
        print(f"server peak RSS {peak:.0f} MiB")
        assert peak < 800, f"peak RSS {peak:.0f} MiB during the FLAC bomb"
    finally:
        server.stop()


def test_a_portrait_that_claims_a_huge_picture_is_refused_before_decoding(served):
    """48 megapixels in a 1-bit PNG of a few kB: refused from the header, the server carries on."""
    from PIL import Image

    srv, c, gen = served
    buf = io.BytesIO()
    Image.new("1", (8000, 6000)).save(buf, format="PNG")
    assert len(buf.getvalue()) < 100_000
    with pytest.raises(ClientError) as e:
        list(c.render((np.zeros((3, 58), np.float32), 25.0), buf.getvalue(), size=64))
    assert e.value.code == "bad_image" and "megapixels" in e.value.message
    ordinary_job_still_runs(c)
