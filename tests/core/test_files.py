"""blender_addon.core.files: a set of files replaced whole, and outputs checked before any work."""
from __future__ import annotations

import pytest

from blender_addon.core.errors import EnvironmentProblem, UserInputError
from blender_addon.core.files import check_output, replace_dir


def _set(folder):
    return {p.name: p.read_text() for p in folder.iterdir()}


def test_replace_dir_swaps_in_the_new_set_and_drops_every_old_file(tmp_path):
    out = tmp_path / "set"
    out.mkdir()
    for k in range(4):
        (out / f"take_{k:02d}.json").write_text("old")
    with replace_dir(out) as tmp:
        assert tmp.parent == out.parent and tmp != out and not list(tmp.iterdir())
        for k in range(2):
            (tmp / f"take_{k:02d}.json").write_text("new")
        assert _set(out) == {f"take_{k:02d}.json": "old" for k in range(4)}  # nothing visible before the end
    assert _set(out) == {"take_00.json": "new", "take_01.json": "new"}
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


def test_replace_dir_keeps_the_old_set_when_the_work_fails(tmp_path):
    out = tmp_path / "set"
    out.mkdir()
    (out / "take_00.json").write_text("old")
    with pytest.raises(RuntimeError):
        with replace_dir(out) as tmp:
            (tmp / "take_00.json").write_text("half")
            raise RuntimeError("the model failed")
    assert _set(out) == {"take_00.json": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


def test_replace_dir_creates_a_new_folder_with_ordinary_permissions(tmp_path):
    with replace_dir(tmp_path / "a" / "new") as tmp:
        (tmp / "x").write_text("1")
    assert _set(tmp_path / "a" / "new") == {"x": "1"}
    assert (tmp_path / "a" / "new").stat().st_mode & 0o755 == 0o755


def test_check_output_refuses_what_exists_unless_forced(tmp_path):
    f = tmp_path / "plot.png"
    check_output(f, suffixes=(".png",))  # nothing there yet: fine
    f.write_text("old")
    with pytest.raises(UserInputError, match="already exists; pass --force"):
        check_output(f, suffixes=(".png",))
    check_output(f, suffixes=(".png",), force=True)


@pytest.mark.parametrize("make, kind, message", [
    (lambda p: p.mkdir(), "file", "is a folder"),
    (lambda p: p.write_text("x"), "dir", "not a folder"),
])
def test_check_output_refuses_an_existing_path_of_the_wrong_kind_even_forced(tmp_path, make, kind, message):
    make(tmp_path / "out.png")
    with pytest.raises(UserInputError, match=message):
        check_output(tmp_path / "out.png", kind=kind, force=True)


def test_check_output_refuses_a_mismatched_extension(tmp_path):
    with pytest.raises(UserInputError, match=r"writes \.mp4; name the file x\.mp4"):
        check_output(tmp_path / "x.png", suffixes=(".mp4",))


def test_check_output_needs_a_folder_above_it(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserInputError, match="is a file, not a folder"):
        check_output(tmp_path / "file" / "sub" / "out.json")


def test_an_empty_folder_is_not_an_output_to_protect_but_foreign_files_are(tmp_path):
    d = tmp_path / "takes"
    d.mkdir()
    check_output(d, kind="dir", owns=("take_*.json",))
    (d / "take_00.json").write_text("old")
    (d / "notes.txt").write_text("mine")
    with pytest.raises(UserInputError, match="did not write .*notes.txt"):
        check_output(d, kind="dir", force=True, owns=("take_*.json",))


def test_check_output_probes_writability_before_any_work(tmp_path, monkeypatch):
    import tempfile

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # what a read-only folder answers
    with pytest.raises(EnvironmentProblem, match="not writable"):
        check_output(tmp_path / "deep" / "out.json")


def test_replace_dir_through_a_symlink_replaces_the_folder_it_points_to(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "take_00.json").write_text("old")
    (tmp_path / "link").symlink_to(real)
    with replace_dir(tmp_path / "link") as tmp:
        (tmp / "take_00.json").write_text("new")
    assert (tmp_path / "link").is_symlink() and _set(real) == {"take_00.json": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_replace_dir_without_an_atomic_exchange_still_swaps_whole_and_cleans_up(tmp_path, monkeypatch):
    """Where renameat2 is missing (macOS, Windows, old kernels) the old set is moved aside, then dropped."""
    import blender_addon.core.files as files

    monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    out = tmp_path / "set"
    out.mkdir()
    for k in range(3):
        (out / f"frame_{k:05d}.png").write_text("old")
    with replace_dir(out) as tmp:
        (tmp / "frame_00000.png").write_text("new")
    assert _set(out) == {"frame_00000.png": "new"}
    assert [p.name for p in tmp_path.iterdir()] == ["set"]
