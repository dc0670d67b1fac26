"""Speed of generation: 60 s of speech -> 8 takes on 2 CPU threads, model load timed separately.

Prints one JSON line. Goal: generate_s < 0.5 (excluding load). `--long` also streams 10 min of
speech and reports the peak resident memory, to show long audio runs in bounded memory.
Usage: python bench/bench_generate.py [--checkpoint PATH] [--threads 2] [--long]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT.parent / "shared" / "data" / "audio"


def speech(seconds: float, sr: int = 16000) -> np.ndarray:
    """Real speech from ../shared/data/audio tiled to `seconds` (synthetic tones if absent)."""
    from osmnet.audio import load_audio

    files = sorted(SPEECH.glob("*.wav")) if SPEECH.is_dir() else []
    parts, total = [], 0
    for f in files * 20:
        w = load_audio(f, sr=sr)
        parts.append(w)
        total += len(w)
        if total >= seconds * sr:
            break
    if not parts:
        t = np.arange(int(seconds * sr)) / sr
        return (0.2 * np.sin(2 * np.pi * 140 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    return np.concatenate(parts)[: int(seconds * sr)].astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: the 2nd core runs the feature thread)")
    ap.add_argument("--takes", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--long", action="store_true", help="also stream 10 minutes and report peak memory")
    a = ap.parse_args()

    from osmnet import runtime

    runtime.configure(a.threads)  # the CLI's and the server's settings (threads, passive OpenMP wait)
    from osmnet.generate import Generator

    wave = speech(a.seconds)
    t0 = time.perf_counter()
    gen = Generator.load(a.checkpoint)
    load_s = time.perf_counter() - t0
    gen.generate((wave[:16000], 16000), takes=a.takes)  # warm-up
    from osmnet.audio import audio_features

    times, first, cpu = [], [], []
    for r in range(a.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        for i, ch in enumerate(gen.stream((wave, 16000), takes=a.takes, seed=r)):
            if i == 0:
                first.append(time.perf_counter() - t0)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    c0 = time.process_time()
    audio_features(wave, 16000, 25.0)
    feat_cpu = time.process_time() - c0
    # On a shared machine wall time depends on the neighbours; CPU seconds (all threads) show the
    # work itself. Features of block n+1 are computed on a second thread while block n runs.
    out = {"bench": "generate", "audio_s": a.seconds, "takes": a.takes, "threads": a.threads,
           "load_s": round(load_s, 3), "generate_s": round(min(times), 3), "generate_s_median": round(float(np.median(times)), 3),
           "generate_cpu_s": round(min(cpu), 3), "audio_features_cpu_s": round(feat_cpu, 3),
           "first_chunk_s": round(min(first), 3), "load_avg_1min": round(os.getloadavg()[0], 2),
           "goal_generate_s": 0.5, "ok": min(times) < 0.5}
    if a.long:
        long_wave = speech(600.0)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        frames = sum(len(ch.values) for ch in gen.stream((long_wave, 16000), takes=a.takes) if ch.take == 0)
        out.update({"long_audio_s": 600.0, "long_generate_s": round(time.perf_counter() - t0, 2), "long_frames": frames,
                    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                    "peak_rss_growth_mb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024, 1)})
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
