"""Keying speed of the add-on: 8 takes x 60 s x every channel, against keyframe_insert in a loop.

Runs inside headless Blender (a bpy venv). The rig is a face mesh with all 52 ARKit shape keys
and an armature whose head bone uses quaternions (4 curves), so one take is 56 curves; the scene
runs at 30 fps while takes come at 25 fps, so every take is resampled on the way in.
Also: one take streamed in 1 s chunks (write_chunk), the cost of the last chunks.
Prints one JSON line. Target: bulk_total_s < 0.3 for the 8 takes (`target_met`; best of
--repeats runs, as the machine is shared; bulk_total_cpu_s is this process's CPU time).
Usage: .venv-bpy52/bin/python bench/bench_keyframes.py [--takes 8] [--seconds 60] [--naive-seconds 60]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "addon")]

import bpy  # noqa: E402
import numpy as np  # noqa: E402

import rig  # noqa: E402  (the test rig builder)
from blender_addon import compat, keyframes as kf  # noqa: E402
from blender_addon.core.mapping import auto_mapping  # noqa: E402
from blender_addon.core.take import ALL_CHANNELS, ARKIT_NAMES, Take  # noqa: E402


def make_take(seconds: float, seed: int, fps: float = 25.0) -> Take:
    rng = np.random.default_rng(seed)
    n = int(seconds * fps)
    walk = np.cumsum(rng.normal(0, 0.02, (n, len(ALL_CHANNELS))), axis=0)
    values = np.clip(0.3 + walk, 0, 1).astype(np.float32)
    values[:, :6] = walk[:, :6] * 0.2
    return Take(fps, {c: values[:, i] for i, c in enumerate(ALL_CHANNELS)})


def naive(take: Take, scene, face, arm, seconds: float) -> tuple[float, int]:
    """What an add-on without bulk keying does: set each value, keyframe_insert, per frame."""
    fps = kf.scene_fps(scene)
    n = int(round(min(seconds, take.duration) * fps))
    blocks = [face.data.shape_keys.key_blocks[c] for c in ARKIT_NAMES]
    values = take.sample_times(np.arange(n) / fps, ARKIT_NAMES)
    pbone = arm.pose.bones["DEF-head"]
    t0 = time.perf_counter()
    for k in range(n):
        for kb, v in zip(blocks, values[k]):
            kb.value = v
            kb.keyframe_insert("value", frame=1 + k)
        pbone.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
        pbone.keyframe_insert("rotation_quaternion", frame=1 + k)
    return time.perf_counter() - t0, n * (len(blocks) + 4)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--takes", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--naive-seconds", type=float, default=60.0, help="length of the one naive take")
    ap.add_argument("--repeats", type=int, default=3, help="bulk runs; the best and the median are printed")
    args = ap.parse_args()

    rig.clear_file()
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    arm = rig.make_armature(rotation_mode="QUATERNION")
    face = rig.make_mesh("Face", ARKIT_NAMES)
    mapping = auto_mapping([face], arm)
    takes = [make_take(args.seconds, seed) for seed in range(args.takes)]

    runs, cpu = [], []
    for r in range(args.repeats):  # the machine is shared: best of a few runs, median beside it
        for name in kf.list_takes():
            kf.delete_take(name)
        t0, c0 = time.perf_counter(), time.process_time()
        baked = [kf.bake_take(t, mapping, scene, f"Take {i + 1}", start_frame=1) for i, t in enumerate(takes)]
        runs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    bulk = min(runs)
    curves = sum(1 for a in baked[0].actions for _ in compat.iter_fcurves(a))
    keys_per_take = curves * (baked[0].frames[1] - baked[0].frames[0] + 1)

    t0 = time.perf_counter()
    for i in range(20):
        kf.activate_take(f"Take {1 + i % args.takes}")
    swap = (time.perf_counter() - t0) / 20

    # streaming: one take arriving in 1 s chunks, as the backend sends them
    name = kf.new_take(mapping, scene, "Streamed", fps=takes[0].fps, start_frame=1)
    values, step, chunk_s = takes[0].array(ALL_CHANNELS), int(takes[0].fps), []
    for start in range(0, len(values), step):
        t0 = time.perf_counter()
        kf.write_chunk(name, values[start:start + step], start, mapping, scene)
        chunk_s.append(time.perf_counter() - t0)

    rig.clear_file()
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = 30, 1.0
    arm = rig.make_armature(rotation_mode="QUATERNION")
    face = rig.make_mesh("Face", ARKIT_NAMES)
    naive_s, naive_keys = naive(takes[0], bpy.context.scene, face, arm, args.naive_seconds)
    bulk_per_key = bulk / (keys_per_take * args.takes)
    print(json.dumps({
        "blender": bpy.app.version_string, "takes": args.takes, "seconds": args.seconds, "scene_fps": 30,
        "curves_per_take": curves, "keys_per_take": keys_per_take,
        "bulk_total_s": round(bulk, 4), "bulk_total_median_s": round(float(np.median(runs)), 4),
        "bulk_total_cpu_s": round(min(cpu), 4), "bulk_per_take_s": round(bulk / args.takes, 4),
        "swap_take_s": round(swap, 6),
        "stream_chunks": len(chunk_s), "stream_total_s": round(sum(chunk_s), 4),
        "stream_last_chunk_s": round(float(np.median(chunk_s[-5:])), 4),
        "naive_one_take_s": round(naive_s, 3), "naive_keys": naive_keys,
        "speedup_per_key": round((naive_s / naive_keys) / bulk_per_key, 1),
        "target_met": bulk < 0.3,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
