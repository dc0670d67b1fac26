"""The add-on's own take reader (blender_addon.takefile, no osmnet inside Blender) and osmnet.take
read each other's files identically, and agree on the channel names."""
from __future__ import annotations

import numpy as np
import pytest

from blender_addon import takefile
from osmnet import take as otake


def _real_like_take(frames=137, fps=25.0):
    """Values with the ranges of real takes (radians, metres, blendshape weights 0..1)."""
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0, 0.08, (frames, 3)), rng.normal(0, 0.01, (frames, 3)),
                             rng.uniform(0, 1, (frames, 52))], axis=1)
    return otake.Take.from_array(values, fps, meta={"source": "test", "seed": 3, "nested": {"a": [1, 2]}})


def test_channel_names_and_format_constants_agree():
    assert takefile.ALL_CHANNELS == otake.ALL_CHANNELS
    assert takefile.HEAD_CHANNELS == otake.HEAD_CHANNELS and takefile.ARKIT_NAMES == otake.ARKIT_NAMES
    assert (takefile.FORMAT, takefile.VERSION) == (otake.FORMAT, otake.VERSION)


@pytest.mark.parametrize("fps", [25.0, 30000 / 1001])
def test_a_take_written_by_osmnet_is_read_identically_by_the_addon(tmp_path, fps):
    src = _real_like_take(fps=fps)
    path = src.save(tmp_path / "take.json")
    by_osmnet, by_addon = otake.Take.load(path), takefile.load_take(path)
    assert by_addon.fps == by_osmnet.fps and by_addon.meta == by_osmnet.meta
    assert by_addon.array(takefile.ALL_CHANNELS).tobytes() == by_osmnet.array(otake.ALL_CHANNELS).tobytes()


def test_a_take_written_by_the_addon_is_read_identically_by_osmnet(tmp_path):
    src = _real_like_take()
    addon_take = takefile.Take(src.fps, dict(src.channels), dict(src.meta))
    path = takefile.save_take(addon_take, tmp_path / "take.json")
    assert path.read_bytes() == otake.Take(src.fps, dict(src.channels), dict(src.meta)).save(tmp_path / "o.json").read_bytes()
    back = otake.Take.load(path)
    np.testing.assert_array_equal(back.array(), takefile.load_take(path).array())


@pytest.mark.slow
def test_a_tracked_take_reads_the_same_both_ways(shared_data, face_model, tmp_path, monkeypatch):
    monkeypatch.setenv("OSMNET_FACE_LANDMARKER", str(face_model))
    from osmnet.track import track_video

    tracked = track_video(shared_data / "talking" / "real3dportrait_May_5s.mp4").take
    path = tracked.save(tmp_path / "tracked.json")
    assert takefile.load_take(path).array().tobytes() == otake.Take.load(path).array().tobytes()
    again = takefile.save_take(takefile.load_take(path), tmp_path / "again.json")
    assert again.read_bytes() == path.read_bytes()
