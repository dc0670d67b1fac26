"""Blender's "Start Local Backend" -> "Connected", against `python -c "import torch"` in the same run.

Run with a bpy venv (timers do not fire in the bpy module, so this calls `runtime.drain()` every
50 ms, as the UI's timer would every 500 ms):
    .venv-bpy45/bin/python bench/bench_blender_start.py [--repeat 3] [--python .venv/bin/python]
Prints one JSON line: medians of alternating runs, and start_over_torch (goal <= 2).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "addon")]

import bpy  # noqa: E402

import ui_support  # noqa: E402  (enables the add-on the way the tests do)
from blender_addon import localserver, runtime  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_to_connected(python: str) -> float:
    prefs = bpy.context.preferences.addons["blender_addon"].preferences
    prefs.backend_address = f"tcp://127.0.0.1:{_free_port()}"
    prefs.launcher, prefs.backend_python = 'PYTHON', python
    st = bpy.context.window_manager.osmnet_status
    st.model = ""
    t0 = time.perf_counter()
    try:
        assert bpy.ops.osmnet.backend_start() == {'FINISHED'}
        while not st.model:
            runtime.drain()
            if localserver.phase() == "exited" or time.perf_counter() - t0 > 180:
                raise SystemExit(f"bench_blender_start: the backend did not connect: {st.text}")
            time.sleep(0.05)
        return time.perf_counter() - t0
    finally:
        localserver.stop()
        runtime.close_client()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"),
                    help="the backend's Python (the venv with osmnet installed)")
    a = ap.parse_args()
    ui_support.addon_scene()
    torch_s, start_s = [], []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        subprocess.run([a.python, "-c", "import torch"], check=True)
        torch_s.append(time.perf_counter() - t0)
        start_s.append(start_to_connected(a.python))
    med = statistics.median
    print(json.dumps({"bench": "blender_start", "blender": bpy.app.version_string, "repeat": a.repeat,
                      "load_avg_1m": round(os.getloadavg()[0], 2), "torch_s": round(med(torch_s), 3),
                      "start_to_connected_s": round(med(start_s), 3),
                      "start_over_torch": round(med(start_s) / med(torch_s), 2)}))


if __name__ == "__main__":
    main()
