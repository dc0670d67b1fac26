"""Render Preview speed in headless Blender: the default preview (playblast; without a window a
Workbench render at 50 % without anti-aliasing stands in) against the engine render of the same
frames at full size (the scene's engine: --engine, default EEVEE as in a new file), both with the
sound, on the preview head playing a moving take. Prints one JSON line.

    .venv-bpy52/bin/python bench/bench_preview.py [--frames 10] [--engine BLENDER_WORKBENCH]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "addon")]

import bpy  # noqa: E402
import numpy as np  # noqa: E402

import ui_support  # noqa: E402
from blender_addon import compat, preview  # noqa: E402
from blender_addon.core import take as takefile  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--engine", default=None, help="engine of the engine render (default: EEVEE)")
    a = ap.parse_args([x for x in sys.argv[1:] if x != "--"])
    tmp = Path(tempfile.mkdtemp(prefix="bench-preview-"))
    scene = ui_support.addon_scene()
    assert bpy.ops.osmnet.preview_head() == {'FINISHED'}
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 1920, 1080, 100
    wav = ui_support.write_wav(tmp / "speech.wav", seconds=a.frames / 25)
    compat.new_sound_strip(scene, "speech", str(wav), 1, 1)
    ch = {n: np.zeros(a.frames, np.float32) for n in takefile.ALL_CHANNELS}
    ch["jawOpen"] = np.linspace(0, 1, a.frames, dtype=np.float32)
    takefile.Take(25.0, ch).save(tmp / "t.json")
    scene.frame_current = 1
    assert bpy.ops.osmnet.take_import(filepath=str(tmp / "t.json")) == {'FINISHED'}
    scene.render.engine = a.engine or compat.eevee_engine()
    out = {"bench": "addon_preview", "blender": bpy.app.version_string, "frames": a.frames,
           "resolution": [1920, 1080], "engine": scene.render.engine, "background": bpy.app.background}
    for key, mode, pct in (("preview", "PLAYBLAST", 50), ("engine", "ENGINE", 100)):
        scene.osmnet.preview_path = str(tmp / f"{key}.mp4")
        t0 = time.perf_counter()
        job = preview.PreviewRender(bpy.context, mode, pct, 1)
        job.run()
        out[f"{key}_s"] = round(time.perf_counter() - t0, 2)
        out[f"{key}_note"] = job.note
    out["engine_over_preview"] = round(out["engine_s"] / max(out["preview_s"], 1e-6), 1)
    print(json.dumps(out))


main()
