"""Issue 12 point 8: never a mixed or silently overwritten output.

An existing output is refused unless --force (checked before the inputs are even read: they do not
exist here), and --force replaces a whole set at once.
"""
from __future__ import annotations

import json

import pytest
from cli_support import assert_one_line_error, cli

from blender_addon.core.take import Take, zero_take

# Each command's output flag, an existing output of the right kind, and the rest of its arguments.
EXISTING = {
    "generate": (["generate", "x.wav", "--out", "{dir}"], "dir"),
    "plot": (["plot", "t.json", "--out", "{file}.png"], "file"),
    "render --out": (["render", "--image", "x.jpg", "--take", "t.json", "--out", "{file}.mp4"], "file"),
    "render --frames-dir": (["render", "--image", "x.jpg", "--take", "t.json", "--frames-dir", "{dir}"], "dir"),
    "contact-sheet": (["contact-sheet", "--image", "x.jpg", "--take", "t.json", "--out", "{file}.png"], "file"),
    "track": (["track", "x.mp4", "--out", "{file}.json"], "file"),
    "prepare": (["prepare", "videos", "--out", "{dir}"], "dir"),
    "train": (["train", "--data", "nowhere", "--out", "{file}.pt"], "file"),
    "head": (["head", "--out", "{dir}"], "dir"),
    "evaluate --json": (["evaluate", "--data", "nowhere", "--json", "{file}.json"], "file"),
}
OWN = {"generate": "take_00.json", "render --frames-dir": "frame_00000.png", "prepare": "index.json",
       "head": "neutral.obj"}


def _argv(case, tmp_path):
    argv, kind = EXISTING[case]
    if kind == "dir":
        existing = tmp_path / "existing"
        existing.mkdir()
        (existing / OWN[case]).write_text("old")
        marker = existing / OWN[case]
    else:
        suffix = next(a for a in argv if a.startswith("{file}"))[len("{file}"):]
        existing = tmp_path / f"existing{suffix}"
        existing.write_text("old")
        marker = existing
    return [a.replace("{dir}", str(existing)).replace("{file}", str(tmp_path / "existing")) for a in argv], marker


@pytest.mark.parametrize("case", sorted(EXISTING))
def test_an_existing_output_is_refused_without_force_and_left_as_it_was(tmp_path, case):
    argv, marker = _argv(case, tmp_path)
    assert_one_line_error(cli(*argv), "already exists", "--force")
    assert marker.read_text() == "old"


@pytest.mark.parametrize("case", ["generate", "render --frames-dir", "prepare", "head"])
def test_force_never_deletes_files_the_command_did_not_write(tmp_path, case):
    argv, marker = _argv(case, tmp_path)
    (marker.parent / "notes.txt").write_text("mine")
    assert_one_line_error(cli(*argv, "--force"), "did not write", "notes.txt")
    assert (marker.parent / "notes.txt").read_text() == "mine" and marker.read_text() == "old"


def test_generate_4_then_2_takes_into_one_folder_never_leaves_a_mixed_set(tmp_path, speech):
    out = tmp_path / "takes"
    assert cli("generate", speech, "--takes", 4, "--seed", 1, "--out", out).rc == 0
    first = {p.name: p.read_text() for p in out.iterdir()}
    assert sorted(first) == [f"take_{k:02d}.json" for k in range(4)]

    assert_one_line_error(cli("generate", speech, "--takes", 2, "--seed", 2, "--out", out), "--force")
    assert {p.name: p.read_text() for p in out.iterdir()} == first

    assert cli("generate", speech, "--takes", 2, "--seed", 2, "--out", out, "--force").rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["take_00.json", "take_01.json"]
    assert {Take.load(p).meta["seed"] for p in out.iterdir()} == {2}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


def test_a_failing_forced_generate_keeps_the_old_set_whole(tmp_path, speech):
    out = tmp_path / "takes"
    assert cli("generate", speech, "--takes", 2, "--out", out).rc == 0
    before = {p.name: p.read_text() for p in out.iterdir()}
    bad = tmp_path / "base.json"
    bad.write_text(json.dumps(zero_take(500).to_dict()))  # 20 s base for 2 s of speech: fails mid-run
    r = cli("generate", speech, "--takes", 2, "--base", bad, "--reroll", "0:10", "--out", out, "--force")
    assert_one_line_error(r, "re-roll a take made from this speech")
    assert {p.name: p.read_text() for p in out.iterdir()} == before


def test_plot_force_replaces_the_picture(tmp_path, take_file):
    png = tmp_path / "plot.png"
    png.write_bytes(b"old")
    r = cli("plot", take_file, "--out", png, "--force")
    assert r.rc == 0, r.err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_frames_force_replaces_every_frame_of_a_longer_earlier_take(tmp_path, portrait_photo):
    frames = tmp_path / "frames"
    assert cli("render", "--image", portrait_photo, "--take", zero_take(6).save(tmp_path / "a.json"),
               "--size", 128, "--frames-dir", frames).rc == 0
    assert len(list(frames.iterdir())) == 6
    r = cli("render", "--image", portrait_photo, "--take", zero_take(3).save(tmp_path / "b.json"),
            "--size", 128, "--frames-dir", frames, "--force")
    assert r.rc == 0, r.err
    assert sorted(p.name for p in frames.iterdir()) == [f"frame_{i:05d}.png" for i in range(3)]


def test_prepare_force_replaces_the_whole_dataset(tmp_path, shared_data, face_model):
    """Clips of the first run never stay beside the second run's index."""
    sets = {}
    for name, speakers in (("first", "AB"), ("second", "CD")):
        folder = tmp_path / name
        folder.mkdir()
        for s in speakers:
            (folder / f"grid_spk{s}_clip1.mp4").symlink_to(shared_data / "talking" / f"grid_spk{s}_clip1.mp4")
        sets[name] = folder
    ds = tmp_path / "dataset"
    assert cli("prepare", sets["first"], "--workers", 1, "--model", face_model, "--out", ds).rc == 0
    assert_one_line_error(cli("prepare", sets["second"], "--workers", 1, "--model", face_model, "--out", ds),
                          "--force")
    assert cli("prepare", sets["second"], "--workers", 1, "--model", face_model, "--out", ds, "--force").rc == 0
    assert sorted(p.name for p in (ds / "clips").iterdir()) == ["grid_spkC_clip1.npz", "grid_spkD_clip1.npz"]
    index = json.loads((ds / "index.json").read_text())
    assert sorted(c["name"] for c in index["clips"]) == ["grid_spkC_clip1", "grid_spkD_clip1"]


def test_head_force_replaces_the_folder_whole(tmp_path, face_model):
    out = tmp_path / "head"
    assert cli("head", "--model", face_model, "--out", out).rc == 0
    (out / "shapes" / "stale.obj").write_text("from an older export")
    assert_one_line_error(cli("head", "--model", face_model, "--out", out), "--force")
    assert cli("head", "--model", face_model, "--out", out, "--force").rc == 0
    assert not (out / "shapes" / "stale.obj").exists() and len(list((out / "shapes").iterdir())) == 52
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head"]
