"""The take format: round trips, validation with clear errors, resampling that keeps duration."""
from __future__ import annotations

import json

import numpy as np
import pytest

from blender_addon.core.take import ALL_CHANNELS, ARKIT_NAMES, HEAD_CHANNELS, Take, TakeError, zero_take


def _random_take(frames=40, fps=25.0, seed=0) -> Take:
    values = np.random.default_rng(seed).normal(size=(frames, len(ALL_CHANNELS))).astype(np.float32)
    return Take.from_array(values, fps, meta={"source": "unit", "seed": seed})


def test_channel_names_are_six_head_channels_and_the_52_arkit_shapes():
    assert len(HEAD_CHANNELS) == 6 and len(ARKIT_NAMES) == 52
    assert len(set(ALL_CHANNELS)) == 58
    assert "jawOpen" in ARKIT_NAMES and "tongueOut" in ARKIT_NAMES and "_neutral" not in ARKIT_NAMES


def test_save_then_load_gives_the_same_take(tmp_path):
    take = _random_take()
    path = take.save(tmp_path / "sub" / "a.json")
    back = Take.load(path)
    assert back.fps == take.fps and back.frames == take.frames and back.meta == take.meta
    np.testing.assert_allclose(back.array(), take.array(), atol=1e-6)


def test_saved_file_has_the_documented_top_level_fields(tmp_path):
    d = json.loads(_random_take(frames=7).save(tmp_path / "a.json").read_text())
    assert d["format"] == "osmnet-take" and d["version"] == 1 and d["frames"] == 7 and d["fps"] == 25.0
    assert set(d["channels"]) == set(ALL_CHANNELS)
    assert all(len(v) == 7 for v in d["channels"].values())


def test_save_leaves_no_temp_file_and_replaces_atomically(tmp_path):
    path = tmp_path / "a.json"
    _random_take(seed=1).save(path)
    _random_take(seed=2).save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert Take.load(path).meta["seed"] == 2


def test_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "a.json"
    _random_take(seed=1).save(path)
    bad = _random_take(seed=2)
    bad.meta["unserializable"] = object()
    with pytest.raises(TypeError):
        bad.save(path)
    assert Take.load(path).meta["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def _mutate(d, key, value):
    d = json.loads(json.dumps(d))
    if value is KeyError:
        del d[key]
    else:
        d[key] = value
    return d


@pytest.mark.parametrize("change, message", [
    (("format", "something-else"), "not an osmnet take"),
    (("version", 99), "version"),
    (("frames", 3), "frames=3"),
    (("channels", KeyError), "no \"channels\""),
    (("fps", -1), "fps"),
])
def test_bad_take_files_are_refused_with_a_clear_message(tmp_path, change, message):
    d = _mutate(_random_take(frames=5).to_dict(), *change)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(TakeError, match=message):
        Take.load(path)


def test_missing_channel_unequal_lengths_and_nan_are_refused():
    chans = zero_take(4).channels
    with pytest.raises(TakeError, match="missing channels"):
        Take(25, {k: v for k, v in chans.items() if k != "jawOpen"})
    with pytest.raises(TakeError, match="same, non-zero length"):
        Take(25, {**chans, "jawOpen": np.zeros(5)})
    with pytest.raises(TakeError, match="NaN"):
        Take(25, {**chans, "jawOpen": np.array([0, np.nan, 0, 0])})


def test_not_json_and_missing_file_are_clear_errors(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(TakeError, match="not valid JSON"):
        Take.load(tmp_path / "x.json")
    with pytest.raises(TakeError, match="does not exist"):
        Take.load(tmp_path / "nope.json")


@pytest.mark.parametrize("src_fps, frames", [(30.0, 602), (24.0, 100), (22.0, 77), (25.0, 50)])
def test_resampling_to_25_fps_keeps_the_duration(src_fps, frames):
    t = np.arange(frames) / src_fps
    values = np.zeros((frames, len(ALL_CHANNELS)), np.float32)
    values[:, 0] = np.sin(2 * np.pi * 0.5 * t)
    out = _random_take().from_array(values, src_fps).resample(25.0)
    assert out.frames == round(frames / src_fps * 25.0)
    assert abs(out.duration - frames / src_fps) <= 0.5 / 25.0 + 1e-9
    t_out = np.arange(out.frames) / 25.0
    ok = t_out <= t[-1]
    np.testing.assert_allclose(out.channels["headPitch"][ok], np.sin(2 * np.pi * 0.5 * t_out[ok]), atol=5e-3)


def test_slice_and_from_array_shapes():
    take = _random_take(frames=30)
    part = take.slice(5, 15)
    assert part.frames == 10
    np.testing.assert_array_equal(part.array(), take.array()[5:15])
    with pytest.raises(TakeError, match="shape"):
        Take.from_array(np.zeros((4, 3)), 25)


def test_zero_take_is_neutral():
    take = zero_take(12, fps=30)
    assert take.frames == 12 and take.fps == 30 and not take.array().any()
