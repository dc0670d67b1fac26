"""Issue 12 point 9: no traceback ever reaches the user.

Each mistake ends in exactly one line `osmnet: error: ...` and exit 2 (a bug: one line naming the file
with the details, exit 3), and outputs are checked before the work: the inputs named in the
read-only and wrong-kind cases do not exist, so a message about the output shows it came first.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_support import assert_one_line_error, cli

from blender_addon.core.take import zero_take

OUTPUTS = {  # command -> (arguments, the output flag, what the output is called)
    "generate": (["generate", "x.wav"], "--out", "takes"),
    "render": (["render", "--image", "x.jpg", "--take", "t.json"], "--out", "r.mp4"),
    "render frames": (["render", "--image", "x.jpg", "--take", "t.json"], "--frames-dir", "frames"),
    "contact-sheet": (["contact-sheet", "--image", "x.jpg", "--take", "t.json"], "--out", "c.png"),
    "plot": (["plot", "t.json"], "--out", "p.png"),
    "track": (["track", "x.mp4"], "--out", "t.json"),
    "prepare": (["prepare", "videos"], "--out", "dataset"),
    "train": (["train", "--data", "nowhere"], "--out", "m.pt"),
    "head": (["head"], "--out", "head"),
}


@pytest.mark.parametrize("case", sorted(OUTPUTS))
def test_a_read_only_output_folder_is_refused_before_the_work(readonly_dir, case):
    argv, flag, name = OUTPUTS[case]
    assert_one_line_error(cli(*argv, flag, readonly_dir / "sub" / name), "not writable", flag)


@pytest.mark.parametrize("case", sorted(OUTPUTS))
def test_an_output_of_the_wrong_kind_is_refused_even_with_force(tmp_path, case):
    argv, flag, name = OUTPUTS[case]
    wrong = tmp_path / name
    if Path(name).suffix:
        wrong.mkdir()  # a folder where a file goes
    else:
        wrong.write_text("a file where a folder goes")
    assert_one_line_error(cli(*argv, flag, wrong, "--force"), flag, "folder")


@pytest.mark.parametrize("argv, word", [
    (["render", "--image", "x.jpg", "--take", "t.json", "--out", "x.png"], ".mp4"),
    (["plot", "t.json", "--out", "x.mp4"], ".png"),
    (["contact-sheet", "--image", "x.jpg", "--take", "t.json", "--out", "x.jpg"], ".png"),
    (["track", "x.mp4", "--out", "take.csv"], ".json"),
    (["train", "--data", "nowhere", "--out", "model"], ".pt"),
])
def test_an_output_name_that_promises_another_format_is_refused(tmp_path, monkeypatch, argv, word):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(cli(*argv), "this command writes", word)
    assert not list(tmp_path.iterdir())


def _take(tmp_path, mutate=None, text=None, name="t.json"):
    d = zero_take(50).to_dict()
    if mutate:
        mutate(d)
    path = tmp_path / name
    path.write_text(text if text is not None else json.dumps(d))
    return path


HOSTILE_TAKES = {
    "meta is a string": (lambda d: d.update(meta="hello"), None, '"meta" must be an object'),
    "values are strings": (lambda d: d["channels"].update(jawOpen=["0.1"] * 50), None, "flat list of numbers"),
    "100k-deep nesting": (None, '{"format":"osmnet-take","version":1,"meta":' + "[" * 100_000 + "]" * 100_000 + "}",
                          "too deeply"),
    "0 frames": (lambda d: (d.update(frames=0), [v.clear() for v in d["channels"].values()]), None,
                 "at least one frame"),
    "not JSON": (None, "\x00\xff not json", "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TAKES))
@pytest.mark.parametrize("command", ["plot", "render", "contact-sheet"])
def test_a_hostile_take_file_gives_one_line(tmp_path, case, command):
    mutate, text, words = HOSTILE_TAKES[case]
    take = _take(tmp_path, mutate, text)
    argv = {"plot": ["plot", take, "--out", tmp_path / "p.png"],
            "render": ["render", "--image", "x.jpg", "--take", take, "--out", tmp_path / "r.mp4"],
            "contact-sheet": ["contact-sheet", "--image", "x.jpg", "--take", take, "--out", tmp_path / "c.png"]}
    assert_one_line_error(cli(*argv[command]), words)


def test_a_hostile_base_take_gives_one_line(tmp_path, speech):
    base = _take(tmp_path, lambda d: d.update(meta="hello"))
    assert_one_line_error(cli("generate", speech, "--base", base, "--reroll", "0:10", "--out", tmp_path / "g"),
                          '"meta" must be an object')


@pytest.mark.parametrize("reroll, rule", [("-5:10", "0 <= START < END"), ("10:5", "0 <= START < END"),
                                          ("5:5", "0 <= START < END"), ("a:b", "look like START:END"),
                                          ("1:2:3", "look like START:END")])
def test_a_bad_reroll_range_names_the_rule(tmp_path, take_file, reroll, rule):
    r = cli("generate", "x.wav", "--base", take_file, "--reroll", reroll, "--out", tmp_path / "g")
    assert_one_line_error(r, "--reroll", rule)


def test_a_base_take_of_other_speech_is_refused(tmp_path, speech):
    base = zero_take(100).save(tmp_path / "long.json")  # 4 s for 2 s of speech
    r = cli("generate", speech, "--base", base, "--reroll", "0:10", "--out", tmp_path / "g")
    assert_one_line_error(r, "4.00 s", "2.00 s", "re-roll a take made from this speech")
    assert not (tmp_path / "g").exists()


def test_render_audio_with_nan_samples_is_refused_before_a_frame_is_rendered(tmp_path, portrait_photo, monkeypatch,
                                                                             take_file):
    import soundfile as sf

    from osmnet.render import portrait

    wave = np.zeros(32000, np.float32)
    wave[100] = np.nan
    sf.write(tmp_path / "nan.wav", wave, 16000, subtype="FLOAT")
    rendered = []
    real = portrait._Batcher.__call__
    monkeypatch.setattr(portrait._Batcher, "__call__", lambda self, *a: rendered.append(1) or real(self, *a))
    r = cli("render", "--image", portrait_photo, "--take", take_file, "--audio", tmp_path / "nan.wav",
            "--size", 128, "--out", tmp_path / "r.mp4")
    assert_one_line_error(r, "NaN")
    assert rendered == [] and not (tmp_path / "r.mp4").exists()


@pytest.mark.parametrize("argv, words", [
    (["generate", "x.wav"], ["required", "--out"]),
    (["generate", "x.wav", "--out", "o", "--no-such-flag"], ["unrecognized", "--no-such-flag"]),
    ([], ["required", "COMMAND"]),
    (["no-such-command"], ["invalid choice"]),
    (["generate", "x.wav", "--takes", "four", "--out", "o"], ["--takes", "'four'"]),
])
def test_a_malformed_command_line_is_one_line_too(argv, words):
    assert_one_line_error(cli(*argv), *words)


def test_help_and_version_still_exit_0():
    assert cli("--version").rc == 0
    assert cli("generate", "--help").rc == 0


def test_a_bug_is_one_line_naming_the_file_with_the_details(tmp_path, monkeypatch, take_file):
    import osmnet.cli.plot

    def broken(_args):
        return 1 / 0

    monkeypatch.setattr(osmnet.cli.plot, "run", broken)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    r = cli("plot", take_file, "--out", tmp_path / "p.png")
    line = assert_one_line_error(r, "ZeroDivisionError", "please report it", rc=3)
    details = Path(line.split("details in ")[1].split(";")[0])
    assert details.parent == tmp_path
    assert "Traceback" in details.read_text() and "1 / 0" in details.read_text()


def test_an_os_refusal_the_library_did_not_expect_is_one_line(tmp_path, monkeypatch, take_file):
    import osmnet.cli.plot

    def disk_full(_args):
        raise OSError(28, "No space left on device", str(tmp_path / "p.png"))

    monkeypatch.setattr(osmnet.cli.plot, "run", disk_full)
    assert_one_line_error(cli("plot", take_file, "--out", tmp_path / "p.png"), "No space left", "p.png")
