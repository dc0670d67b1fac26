"""Helpers for the add-on UI tests: enable the add-on the way Blender does, build a face with the
52 ARKit shape keys, write real audio files, and run a real `osmnet serve` from the main venv."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MAIN_PYTHON = Path(os.environ.get("OSMNET_MAIN_PYTHON", ROOT / ".venv" / "bin" / "python"))
SHARED_AUDIO = ROOT.parent / "shared" / "data" / "audio"
FACE_MODEL = ROOT.parent / "shared" / "models" / "face_landmarker.task"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def enable_addon():
    import addon_utils
    import bpy

    if bpy.context.preferences.addons.get("blender_addon") is None:
        addon_utils.enable("blender_addon", default_set=True, handle_error=_raise)


def disable_addon():
    import addon_utils

    addon_utils.disable("blender_addon", default_set=True, handle_error=_raise)


def _raise(e):
    raise e


def fresh_scene():
    """Factory startup scene (cube, camera, light) with the add-on still enabled."""
    import bpy

    bpy.ops.wm.read_homefile(use_factory_startup=True)
    return bpy.context.scene


def addon_scene(fps=25):
    """The scene most UI tests start from: add-on enabled, factory scene at a known frame rate."""
    enable_addon()
    scene = fresh_scene()
    scene.render.fps = fps
    return scene


def make_face(name="Face"):
    """A mesh with a basis and the 52 ARKit shape keys (jawOpen moves the bottom vertices)."""
    import bpy

    from blender_addon.core.take import ARKIT_NAMES

    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([(-1, 0, -1), (1, 0, -1), (1, 0, 1), (-1, 0, 1)], [], [(0, 1, 2, 3)])
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis")
    for n in ARKIT_NAMES:
        kb = obj.shape_key_add(name=n, from_mix=False)
        if n == "jawOpen":
            kb.data[0].co.z -= 0.5
            kb.data[1].co.z -= 0.5
    return obj


def write_wav(path, seconds=2.0, sr=16000, freq=180.0) -> Path:
    """A voiced-sounding test signal (harmonics with a syllable-rate envelope), 16-bit mono."""
    t = np.arange(int(seconds * sr)) / sr
    voice = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 6))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t)
    x = (0.25 * voice * env / 2.3 * 32767).astype("<i2")
    path = Path(path)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(x.tobytes())
    return path


def speech_file(tmp_path, seconds=2.0) -> Path:
    """Real speech from ../shared/data/audio when present, else the synthetic signal."""
    real = sorted(SHARED_AUDIO.glob("librispeech_*.ogg"))
    return real[0] if real else write_wav(Path(tmp_path) / "speech.wav", seconds)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main_python_or_skip():
    import pytest

    if not MAIN_PYTHON.is_file():
        pytest.skip(f"main venv python {MAIN_PYTHON} not found (run scripts/setup.sh)")
    return MAIN_PYTHON


def checkpoint_for_e2e(tmp_dir) -> str | None:
    """The shipped model if present, else an untrained one with the real architecture (made by
    the backend's own test helper in the main venv; the add-on cannot import torch)."""
    code = ("import sys; from backend.testing import checkpoint_for_tests as c; "
            "p = c(sys.argv[1]); print(p or '')")
    res = subprocess.run([str(MAIN_PYTHON), "-c", code, str(tmp_dir)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    if res.returncode != 0:
        raise RuntimeError(f"could not make a test checkpoint:\n{res.stderr[-2000:]}")
    return res.stdout.strip() or None


def server_env() -> dict:
    """The environment a person's backend runs in: the MediaPipe model for portraits, one thread."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    if FACE_MODEL.is_file():
        env.setdefault("OSMNET_FACE_LANDMARKER", str(FACE_MODEL))
    return env


class Serve:
    """`osmnet serve` from the main venv on a loopback port, ready when it says "listening on"."""

    def __init__(self, port: int, checkpoint: str | None, timeout: float = 120.0):
        args = [str(MAIN_PYTHON), "-m", "osmnet.cli", "serve", "--bind", f"tcp://127.0.0.1:{port}"]
        if checkpoint:
            args += ["--checkpoint", checkpoint]
        self.address = f"tcp://127.0.0.1:{port}"
        self.p = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=server_env())
        self.lines: list[str] = []
        ready = threading.Event()

        def read():
            for line in self.p.stdout:
                self.lines.append(line)
                if "listening on" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or self.p.poll() is not None:
            self.kill()
            raise RuntimeError("osmnet serve did not start:\n" + "".join(self.lines[-20:]))

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(10)


def drain_until(predicate, timeout=60.0, step=0.02):
    """Call runtime.drain() the way the modal timer does until predicate() or the timeout."""
    from blender_addon import runtime

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runtime.drain()
        if predicate():
            return True
        time.sleep(step)
    return False


def probe_media(path) -> dict:
    """Stream durations, codecs, picture size, how much the picture changes and how many frames
    differ from the one before ('distinct'), read with PyAV in the main venv (real ffmpeg decoding)."""
    code = ("import av, json, sys\n"
            "c = av.open(sys.argv[1]); out = {}\n"
            "for s in c.streams:\n"
            "    out[s.type] = {'duration': float(s.duration * s.time_base) if s.duration else None,\n"
            "                   'codec': s.codec_context.name, 'frames': s.frames, 'rate': float(s.average_rate or 0) if s.type == 'video' else s.rate}\n"
            "import numpy as np\n"
            "c.seek(0); imgs = [f.to_ndarray(format='gray').astype(float) for f in c.decode(video=0)]\n"
            "out['video']['decoded'] = len(imgs)\n"
            "out['video']['motion'] = max(float(np.abs(i - imgs[0]).mean()) for i in imgs)\n"
            "out['video']['size'] = [imgs[0].shape[1], imgs[0].shape[0]]\n"
            "out['video']['distinct'] = 1 + sum(float(np.abs(b - a).mean()) > 0.05 for a, b in zip(imgs, imgs[1:]))\n"
            "print(json.dumps(out))")
    res = subprocess.run([str(MAIN_PYTHON), "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    import json

    return json.loads(res.stdout)
