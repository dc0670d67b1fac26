"""The client runs inside Blender: Python 3.11 (bpy 4.5) and 3.13 (bpy 5.2) with their own numpy
and pyzmq, talking to a server in this venv. Skips when the bpy venvs are not installed."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from backend.engine import Engine
from backend.server import Server
from backend.testing import ROOT, free_port
from osmnet.generate import TakeChunk as Chunk  # stand-ins yield the real chunk type

SCRIPT = r"""
import json, sys
import numpy as np
from blender_addon.core.client import Client, assemble
with Client(sys.argv[1], timeout=10) as c:
    info = c.hello()
    events = list(c.generate(audio=(np.zeros(16000, np.float32), 16000), takes=2, seed=5))
    takes = assemble(events)
print(json.dumps({"python": sys.version.split()[0], "numpy": np.__version__, "model": info["model"],
                  "types": [e.type for e in events], "sums": [float(takes[t].sum()) for t in sorted(takes)],
                  "shape": list(takes[0].shape)}))
"""


class RampGenerator:
    name, device = "ramp", "cpu"

    def stream(self, audio, *, takes=1, seed=0, fps=25.0, **_):
        frames = int(np.ceil(len(audio[0]) / audio[1] * fps))
        for t in range(takes):
            yield Chunk(t, 0, np.arange(frames * 58, dtype=np.float32).reshape(frames, 58) * (seed + t), fps, True)


@pytest.mark.parametrize("venv", [".venv-bpy45", ".venv-bpy52"])
def test_the_client_works_on_blenders_pythons(venv):
    python = ROOT / venv / "bin" / "python"
    if not python.exists():
        pytest.skip(f"{venv} not installed (scripts/ make the bpy venvs)")
    srv = Server(f"tcp://127.0.0.1:{free_port()}", engine=Engine(RampGenerator())).start()
    try:
        out = subprocess.run([str(python), "-c", SCRIPT, srv.address], cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
    finally:
        srv.stop()
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["model"] == "ramp" and result["shape"] == [25, 58]
    assert result["types"][0] == "accepted" and result["types"][-1] == "finished"
    base = float(np.arange(25 * 58, dtype=np.float32).sum())
    assert result["sums"] == [base * 5, base * 6]
