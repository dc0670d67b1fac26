"""Throughput of `osmnet batch`: 50 short real lines, local with 1 and 2 workers and Ray with 2 actors.

Prints one JSON line. Per engine: wall seconds and lines/s over the whole run (start-up
included), the steady rate over the last three quarters of the lines (all workers up), start-up
(time to the first line less that line's own compute), CPU seconds per line (the
machine-independent cost: on a shared machine wall time mostly measures the neighbours) and what
a 4,000-line job would take at the steady rate. Also the CPU cost of starting one worker and of
each step of a line, the driver's cost of writing one line (the ceiling when many GPUs feed one
driver) and `import torch` as the yardstick for start-up. Lines are 2-4 s pieces of
../shared/data/audio (the bench says so and stops when it is absent).
Usage: python bench/bench_batch.py [--lines 50] [--takes 4] [--repeat 2] [--no-ray]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEECH = Path(os.environ.get("OSMNET_SHARED", ROOT.parent / "shared")) / "data" / "audio"


def cut_lines(folder: Path, count: int) -> float:
    """`count` pieces of 2, 3 or 4 s cut round-robin from the shared speech; returns total seconds."""
    import soundfile as sf

    from osmnet.audio import load_audio

    waves = [load_audio(p) for p in sorted(SPEECH.iterdir()) if p.suffix in (".wav", ".ogg")]
    pos, total = [0] * len(waves), 0.0
    for i in range(count):
        k = i % len(waves)
        n = int((2 + i % 3) * 16000)
        if pos[k] + n > len(waves[k]):
            pos[k] = 0
        piece = waves[k][pos[k]:pos[k] + n]
        pos[k] += n
        sf.write(folder / f"line{i:03d}.wav", piece, 16000)
        total += len(piece) / 16000
    return total


def measure(engine, lines, out: Path) -> dict:
    from osmnet.batch import Settings, run_batch

    t0, times, first = time.perf_counter(), [], {}

    def on_line(entry):
        times.append(time.perf_counter() - t0)
        first.setdefault("seconds", entry["seconds"])

    report = run_batch(lines, out, Settings(), engine, on_line=on_line)
    wall = time.perf_counter() - t0
    t = report["totals"]
    # Steady rate over the last three quarters: workers start one by one, so the first lines come
    # while some are still loading the model (that time is in startup_s and wall_s).
    q = len(times) // 4
    steady = (len(times) - 1 - q) / (times[-1] - times[q]) if len(times) > q + 1 and times[-1] > times[q] else None
    startup = times[0] - first["seconds"]
    return {"done": t["done"], "failed": t["failed"], "wall_s": round(wall, 2),
            "lines_per_s": round(t["done"] / wall, 2),
            "steady_lines_per_s": round(steady, 2) if steady else None, "startup_s": round(startup, 2),
            "compute_s_per_line": round(sum(e["seconds"] for e in report["lines"]) / len(lines), 3),
            "cpu_s_per_line": round(sum(e["cpu_s"] for e in report["lines"]) / len(lines), 4),
            "est_4000_lines_min": round((startup + 4000 / steady) / 60, 1) if steady else None}


def driver_write_ms(src: Path, lines, tmp: Path) -> float:
    """Time for the driver to write one finished line (its takes' bytes + line.json, one rename)."""
    from osmnet.batch import Settings
    from osmnet.batch.folder import BatchFolder

    folder = BatchFolder(tmp / "write")
    results = [{"status": "done", "generator": "osmnet-default", "frames": 0, "duration_s": 0.0, "seconds": 0.0,
                "files": {p.name: p.read_bytes() for p in sorted((src / ln.name).glob("take_*.json"))}} for ln in lines]
    t0 = time.perf_counter()
    for line, result in zip(lines, results):
        folder.write(line, Settings(), result)
    folder.close()
    return 1000 * (time.perf_counter() - t0) / len(lines)


def phases(lines) -> dict:
    """CPU seconds per line of each step a worker takes: read the audio, generate, write JSON."""
    import json as js

    from osmnet.audio import SAMPLE_RATE, read_speech
    from osmnet.batch import Settings
    from osmnet.batch.work import load_generator

    gen, cpu = load_generator(Settings(), "cpu"), {"read": 0.0, "generate": 0.0, "serialise": 0.0}
    for line in lines:
        c0 = time.process_time()
        wave = read_speech(line.audio)
        c1 = time.process_time()
        takes = gen.generate((wave, SAMPLE_RATE), takes=line.takes, seed=line.seed)
        c2 = time.process_time()
        [js.dumps(t.to_dict(), separators=(",", ":")) for t in takes]
        c3 = time.process_time()
        for k, v in zip(cpu, (c1 - c0, c2 - c1, c3 - c2)):
            cpu[k] += v / len(lines)
    return {k: round(v, 4) for k, v in cpu.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=50)
    ap.add_argument("--takes", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2, help="rounds over the engines; the fastest of each is kept")
    ap.add_argument("--no-ray", action="store_true")
    a = ap.parse_args()
    if not SPEECH.is_dir():
        print(json.dumps({"bench": "batch", "skipped": f"no speech at {SPEECH}"}))
        return
    from osmnet.batch import LocalEngine, RayEngine, collect_lines

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    import_torch_s = time.perf_counter() - t0
    # What one worker costs to start, in CPU seconds: the runtime set-up, torch, the model.
    start_cpu = float(subprocess.run(
        [sys.executable, "-c", "import time; from osmnet.batch import Settings; from osmnet.batch.work import "
         "load_generator; load_generator(Settings(), 'cpu'); print(time.process_time())"],
        check=True, capture_output=True, text=True).stdout)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "lines").mkdir()
        audio_s = cut_lines(tmp / "lines", a.lines)
        lines = collect_lines([tmp / "lines"], takes=a.takes, seed=0)
        engines = {"local_1": lambda: LocalEngine(1), "local_2": lambda: LocalEngine(2)}
        runs = {}
        if not a.no_ray:
            try:
                import ray  # noqa: F401

                engines["ray_2"] = lambda: RayEngine(workers=2)
            except ImportError:
                runs["ray_2"] = {"skipped": "ray is not installed (pip install 'osmnet[ray]')"}
        # Rounds interleave the engines, so a neighbour's burst of load hits them alike; each
        # engine keeps its fastest round.
        for r in range(a.repeat):
            for name, make in engines.items():
                m = measure(make(), lines, tmp / f"{name}_{r}")
                if name not in runs or m["wall_s"] < runs[name]["wall_s"]:
                    runs[name] = m
        write_ms = driver_write_ms(tmp / "local_1_0", lines, tmp)
        steps = phases(lines[:20])
    s1, s2 = runs["local_1"]["steady_lines_per_s"], runs["local_2"]["steady_lines_per_s"]
    out = {"bench": "batch", "lines": a.lines, "takes": a.takes, "repeat": a.repeat, "audio_s": round(audio_s, 1),
           "cores": os.cpu_count(),
           **runs, "scaling_local_2_vs_1": round(s2 / s1, 2) if s1 and s2 else None,
           "worker_start_cpu_s": round(start_cpu, 2), "cpu_s_per_line_by_step": steps,
           "est_4000_lines_cpu_core_min": round(4000 * runs["local_1"]["cpu_s_per_line"] / 60, 1),
           "driver_write_ms_per_line": round(write_ms, 2),
           "driver_ceiling_lines_per_s": round(1000 / write_ms, 0),
           "import_torch_s": round(import_torch_s, 2), "load_avg_1min": round(os.getloadavg()[0], 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
