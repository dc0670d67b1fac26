"""Take files a hostile or broken writer could produce: each is refused with one TakeError naming the problem."""
from __future__ import annotations

import json

import pytest

from blender_addon.core.take import MAX_FILE_BYTES, Take, TakeError, zero_take


def _file(tmp_path, mutate=None, text=None):
    path = tmp_path / "t.json"
    if text is None:
        d = zero_take(10).to_dict()
        mutate(d)
        text = json.dumps(d)
    path.write_text(text)
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(fps=1e9), "fps must be a number from 1 to 240"),
    (lambda d: d.update(fps=1e-9), "fps must be"),
    (lambda d: d.update(fps=float("nan")), "fps must be"),
    (lambda d: d.update(fps=True), "fps must be"),
    (lambda d: d.update(fps="25"), "fps must be"),
    (lambda d: d.update(meta="a string"), '"meta" must be an object'),
    (lambda d: d.update(meta=[1, 2]), '"meta" must be an object'),
    (lambda d: d["channels"].update(jawOpen=["0.5"] * 10), "'jawOpen' must be a flat list of numbers"),
    (lambda d: d["channels"].update(jawOpen=[True] * 10), "'jawOpen' must be a flat list of numbers"),
    (lambda d: d["channels"].update(jawOpen=[[0.5]] * 10), "'jawOpen' must be a flat list of numbers"),
    (lambda d: d["channels"].update(jawOpen={"a": 1}), "'jawOpen' must be a flat list of numbers"),
    (lambda d: d["channels"].update(jawOpen=[None] * 10), "'jawOpen' must be a flat list of numbers"),
    (lambda d: d["channels"].update(jawOpen=[10**40] * 10), "'jawOpen' must be a flat list of numbers"),
    (lambda d: d["channels"].update(headYaw=[1e30] * 10), "'headYaw' has a value of 1e+30"),
    (lambda d: d["channels"].update(jawOpen=[float("inf")] * 10), "NaN or infinite"),
    (lambda d: (d.update(frames=0), [v.clear() for v in d["channels"].values()]), "at least one frame"),
    (lambda d: d.update(frames="10"), '"frames" must be a whole number'),
    (lambda d: d.update(frames=11), "says frames=11"),
])
def test_a_hostile_take_file_is_refused_with_a_message_naming_the_problem(tmp_path, mutate, message):
    path = _file(tmp_path, mutate)
    with pytest.raises(TakeError, match=message.replace("(", r"\(").replace("+", r"\+")) as e:
        Take.load(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("text, message", [
    ('{"format": "osmnet-take", "version": 1, "meta": ' + "[" * 100_000 + "]" * 100_000 + "}", "too deeply"),
    ("[" * 100_000, "too deeply|not valid JSON"),
    ('{"format": "osmnet-take"', "not valid JSON"),
    ("", "not valid JSON"),
])
def test_broken_or_deeply_nested_json_is_refused(tmp_path, text, message):
    with pytest.raises(TakeError, match=message):
        Take.load(_file(tmp_path, text=text))


def test_a_take_file_too_big_to_be_one_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as f:  # sparse: no disk is used, only the size counts
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(TakeError, match="take files are at most"):
        Take.load(path)


def test_a_folder_is_not_a_take_file(tmp_path):
    with pytest.raises(TakeError, match="is not a file"):
        Take.load(tmp_path)


def test_ordinary_takes_still_load(tmp_path):
    take = zero_take(10, fps=60, meta={"name": "x", "nested": {"a": [1, 2]}})
    take.channels["jawOpen"][:] = 0.75
    back = Take.load(take.save(tmp_path / "t.json"))
    assert back.fps == 60 and back.meta == take.meta and float(back.channels["jawOpen"][0]) == 0.75
