"""Whole-process speed of what users run, against the cost of `python -c "import torch"` measured in
the same run (the floor every torch program pays; this machine is shared and noisy, so only ratios
measured side by side mean anything).

Runs, alternating, `--repeat` times each:
  torch        python -c "import torch"
  generate     osmnet generate SPEECH(60 s) --takes 8 --out DIR         (cold process)
  render       osmnet render --image PHOTO --take TAKE(8 s) --size 256 --out X.mp4   (cold process)
  serve_ping   osmnet serve started -> first answered ping               (cold process)
Then, with one warm `osmnet serve`, 60 s x 8 takes through the server against the same job
in-process (alternating), with the first chunk of each.

Prints one JSON line: medians, and the ratios the goals are stated in
(generate <= 1.6x torch, render <= 2.5x, serve_ping <= 2x, warm serve <= 1.3x in-process,
first chunk within 0.1 s of in-process).
    python bench/bench_startup.py [--repeat 3] [--device cpu] [--skip render]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("OSMNET_SHARED", ROOT.parent / "shared"))
PY = sys.executable
PHOTO = SHARED / "data" / "faces" / "liveportrait_s1.jpg"


def _timed(cmd, env=None) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"bench_startup: {' '.join(map(str, cmd))} failed:\n{res.stderr[-2000:]}")
    return dt


def _serve_ping(port: int, device: str) -> float:
    """Seconds from starting `osmnet serve` to its first answered ping (then it is stopped)."""
    from blender_addon.core.client import Client, ClientError

    t0 = time.perf_counter()
    proc = subprocess.Popen([PY, "-m", "osmnet", "serve", "--bind", f"tcp://127.0.0.1:{port}", "--device", device],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with Client(f"tcp://127.0.0.1:{port}", timeout=0.5) as c:
            while True:
                try:
                    c.ping()
                    return time.perf_counter() - t0
                except ClientError:
                    if proc.poll() is not None:
                        raise SystemExit("bench_startup: osmnet serve exited before answering") from None
                    if time.perf_counter() - t0 > 120:
                        raise SystemExit("bench_startup: osmnet serve did not answer within 120 s") from None
    finally:
        proc.terminate()
        proc.wait(10)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _inputs(tmp: Path):
    """60 s of real speech and an 8 s take (generated from it by the shipped model)."""
    import soundfile as sf

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_generate import speech

    wave = speech(60.0)
    wav = tmp / "speech60.wav"
    sf.write(wav, wave, 16000)
    sf.write(tmp / "speech8.wav", wave[: 8 * 16000], 16000)
    _timed([PY, "-m", "osmnet", "generate", str(tmp / "speech8.wav"), "--takes", "1", "--out", str(tmp / "take8")])
    return wave, wav, tmp / "take8" / "take_00.json", tmp / "speech8.wav"


def _warm_serve(wave, takes: int, repeat: int, device: str) -> dict:
    """Warm server vs in-process generation of the same job, alternating; seconds and first chunk."""
    import numpy as np

    from osmnet import runtime

    runtime.configure()
    from blender_addon.core.client import Client
    from osmnet.generate import Generator

    port = _free_port()
    proc = subprocess.Popen([PY, "-m", "osmnet", "serve", "--bind", f"tcp://127.0.0.1:{port}", "--device", device],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "listening on" in line:
                break
        gen = Generator.load(device=device)
        gen.generate((np.zeros(16000, np.float32), 16000), takes=1)  # warm-up, as the server does
        served, local, served_first, local_first = [], [], [], []
        with Client(f"tcp://127.0.0.1:{port}", timeout=120) as c:
            c.hello()
            list(c.generate(audio=(wave[:32000], 16000), takes=takes))  # warm the server's caches too
            for _ in range(repeat):
                t0 = time.perf_counter()
                first = None
                for ev in c.generate(audio=(wave, 16000), takes=takes):
                    if ev.type == "chunk" and first is None:
                        first = time.perf_counter() - t0
                served.append(time.perf_counter() - t0)
                served_first.append(first)
                t0 = time.perf_counter()
                first = None
                for _ch in gen.stream((wave, 16000), takes=takes):
                    if first is None:
                        first = time.perf_counter() - t0
                local.append(time.perf_counter() - t0)
                local_first.append(first)
    finally:
        proc.terminate()
        proc.wait(10)
    med = statistics.median
    return {"serve_s": round(med(served), 3), "inprocess_s": round(med(local), 3),
            "serve_first_chunk_s": round(med(served_first), 3), "inprocess_first_chunk_s": round(med(local_first), 3),
            "serve_over_inprocess": round(med(served) / med(local), 2),
            "first_chunk_gap_s": round(med(served_first) - med(local_first), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--takes", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip", nargs="*", default=[], choices=["generate", "render", "serve_ping", "warm"])
    a = ap.parse_args()
    env = dict(os.environ)
    if PHOTO.parent.parent.parent.joinpath("models", "face_landmarker.task").exists():
        env.setdefault("OSMNET_FACE_LANDMARKER", str(SHARED / "models" / "face_landmarker.task"))
    os.environ.update(env)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        wave, wav, take8, speech8 = _inputs(tmp)
        runs = {"torch": [], "generate": [], "render": [], "serve_ping": []}
        for i in range(a.repeat):
            runs["torch"].append(_timed([PY, "-c", "import torch"]))
            if "generate" not in a.skip:
                runs["generate"].append(_timed([PY, "-m", "osmnet", "generate", str(wav), "--takes", str(a.takes),
                                                "--out", str(tmp / f"g{i}"), "--device", a.device], env))
            if "render" not in a.skip and PHOTO.exists():
                runs["render"].append(_timed([PY, "-m", "osmnet", "render", "--image", str(PHOTO), "--take", str(take8),
                                              "--audio", str(speech8), "--size", "256", "--device", a.device,
                                              "--out", str(tmp / f"r{i}.mp4")], env))
            if "serve_ping" not in a.skip:
                runs["serve_ping"].append(_serve_ping(_free_port(), a.device))
        med = {k: round(statistics.median(v), 3) for k, v in runs.items() if v}
        out = {"bench": "startup", "repeat": a.repeat, "device": a.device, "cpus": os.cpu_count(),
               "load_avg_1m": round(os.getloadavg()[0], 2), **{f"{k}_s": v for k, v in med.items()}}
        for k in ("generate", "render", "serve_ping"):
            if k in med:
                out[f"{k}_over_torch"] = round(med[k] / med["torch"], 2)
        if "warm" not in a.skip:
            out.update(_warm_serve(wave, a.takes, a.repeat, a.device))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
