"""Helpers to run real servers and workers as processes, for the backend tests and bench/.

Nothing here is used by the service itself; it lives in the package so tests and benchmarks
launch `osmnet serve` / `osmnet worker` exactly the way a person does.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def peak_rss_bytes(pid: int) -> int:
    """The most resident memory a process has had since it started (VmHWM)."""
    return rss_bytes(pid, "VmHWM")


def token_file(port: int) -> str:
    """Where test servers keep their worker token (never the user's ~/.cache)."""
    import tempfile

    folder = Path(tempfile.gettempdir()) / f"osmnet-test-tokens-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return str(folder / f"worker-{port}.token")


class Proc:
    """A running `osmnet ...` command; waits for a line on stderr that says it is ready."""

    def __init__(self, args, ready: str, env=None, timeout: float = 90.0):
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.args = args
        self.p = subprocess.Popen([sys.executable, "-m", "osmnet.cli", *args], cwd=ROOT, env=full_env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, args=(ready,), daemon=True).start()
        if not self._ready.wait(timeout) or self.p.poll() is not None:
            self.kill()
            raise RuntimeError(f"`osmnet {' '.join(args)}` did not start:\n" + "".join(self.lines[-30:]))

    def _read(self, ready):
        for line in self.p.stdout:
            self.lines.append(line)
            if ready in line:
                self._ready.set()
        self._ready.set()

    @property
    def pid(self) -> int:
        return self.p.pid

    def output(self) -> str:
        return "".join(self.lines)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(10)

    def stop(self, timeout: float = 10.0) -> int:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        return self.p.returncode


def serve(port: int, *extra, env=None) -> Proc:
    token = [] if "--worker-token" in extra else ["--worker-token", token_file(port)]
    return Proc(["serve", "--bind", f"tcp://127.0.0.1:{port}", *token, *extra], "listening on", env=env)


def worker(port: int, *extra, env=None, timeout: float = 90.0) -> Proc:
    token = [] if "--worker-token" in extra else ["--worker-token", token_file(port)]
    return Proc(["worker", "--connect", f"tcp://127.0.0.1:{port}", *token, *extra], "attached to the server",
                env=env, timeout=timeout)


def speech(seconds: float, data_dir: Path | None = None) -> tuple[np.ndarray, int]:
    """Real speech from the shared data, looped to `seconds` (16 kHz mono float32)."""
    from osmnet.audio import SAMPLE_RATE, load_audio

    data_dir = data_dir or Path(os.environ.get("OSMNET_SHARED", ROOT.parent / "shared")) / "data" / "audio"
    waves = [load_audio(p, sr=SAMPLE_RATE) for p in sorted(Path(data_dir).glob("*.wav"))[:6]]
    if not waves:
        raise FileNotFoundError(f"no speech .wav files in {data_dir}")
    wave = np.concatenate(waves)
    n = int(seconds * SAMPLE_RATE)
    return np.resize(wave, n).astype(np.float32), SAMPLE_RATE


def checkpoint_for_tests(tmp_dir) -> Path | None:
    """The shipped checkpoint if present, else an untrained one with the real architecture.

    Streaming, seeding and identity are properties of the Generator code, not of trained
    weights, so an untrained checkpoint tests the backend path faithfully while the default
    model is still being trained. Returns None to mean "use the shipped default".
    """
    import torch

    from osmnet.model import checkpoint, eyes
    from osmnet.audio import FEATURE_DIM
    from osmnet.model.config import Config
    from osmnet.model.networks import OSMNet

    if checkpoint.DEFAULT_CHECKPOINT.is_file():
        return None
    path = Path(tmp_dir) / "untrained.pt"
    if path.is_file():
        return path
    cfg = Config()
    cfg.audio.feature_dim = FEATURE_DIM
    torch.manual_seed(0)
    model = OSMNet(cfg)
    rng = np.random.default_rng(0)
    tracks = [np.clip(rng.normal(0.1, 0.05, (500, 58)), 0, 1).astype(np.float32) for _ in range(2)]
    # Every normalization array the checkpoint format names: head-pose ones are per head channel,
    # the rest per audio feature; scales are 1 (0.05 rad/m for the head), offsets 0.
    norms = {}
    for key in checkpoint.NORM_KEYS:
        size = 6 if "pose" in key else FEATURE_DIM
        norms[key] = np.full(size, (0.05 if "pose" in key else 1.0) if "std" in key else 0.0, np.float32)
    ck = checkpoint.Checkpoint(cfg, model.state_dict(), norms, eyes.fit(tracks), {"note": "untrained, for tests"})
    checkpoint.save(ck, path)
    return path


def cancel_after_first_chunk(client, job) -> tuple[list, float, float]:
    """Wait for `job`'s first chunk, cancel it and drain to its final event.

    Returns (events, seconds from the cancel to the final event, perf_counter stamp of the cancel),
    the numbers the cancel tests and the bench measure."""
    events = []
    while not any(e.type == "chunk" for e in events):
        events += client.drain()
        time.sleep(0.001)
    t0 = time.perf_counter()
    client.cancel(job)
    while not (events and events[-1].final):
        events += client.drain()
        time.sleep(0.0005)
    return events, time.perf_counter() - t0, t0


def wait_until_workers_idle(client) -> None:
    """Block until no cancelled job is still winding down on a worker (`stopping` back to 0)."""
    while client._request("ping", {}).content["stopping"]:
        time.sleep(0.002)

