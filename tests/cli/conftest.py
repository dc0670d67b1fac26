"""Inputs the CLI tests share: a valid take, a short speech file, a read-only folder, the portrait."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from blender_addon.core.take import zero_take


@pytest.fixture
def take_file(tmp_path) -> Path:
    """A valid 50-frame take (2 s at 25 fps)."""
    return zero_take(50).save(tmp_path / "good.json")


@pytest.fixture
def speech(tmp_path) -> Path:
    """2 s of 16 kHz noise: enough for the model to make a take from."""
    import soundfile as sf

    path = tmp_path / "speech.wav"
    sf.write(path, (np.random.default_rng(0).standard_normal(32000) * 0.1).astype(np.float32), 16000)
    return path


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder nothing can be written into, root included (chattr +i where chmod is not enough)."""
    ro = tmp_path / "readonly"
    ro.mkdir()
    os.chmod(ro, 0o555)
    immutable = False
    if _writable(ro):
        immutable = subprocess.run(["chattr", "+i", str(ro)], capture_output=True).returncode == 0
        if not immutable or _writable(ro):
            os.chmod(ro, 0o755)
            pytest.skip("cannot make a read-only folder here (running as root without chattr)")
    yield ro
    if immutable:
        subprocess.run(["chattr", "-i", str(ro)], capture_output=True)
    os.chmod(ro, 0o755)


def _writable(folder: Path) -> bool:
    try:
        (folder / ".probe").write_text("x")
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


@pytest.fixture
def portrait_photo(shared_data, face_model, monkeypatch) -> Path:
    monkeypatch.setenv("OSMNET_FACE_LANDMARKER", str(face_model))
    return shared_data / "faces" / "liveportrait_s1.jpg"
