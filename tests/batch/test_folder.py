"""The batch folder: a line is whole or absent, re-runs skip, redo or keep what is there."""
from __future__ import annotations

import json
import os

import pytest

from osmnet.batch import BatchError, Line, Settings
from osmnet.batch.folder import LINE_FILE, PARTIAL, BatchFolder

SETTINGS = Settings()


def line_for(tmp_path, name="hello", takes=2, seed=11):
    audio = tmp_path / f"{name}.wav"
    audio.write_bytes(b"RIFF....WAVE")
    return Line(name, str(audio), takes, seed, 1.0)


def result(takes=2):
    return {"status": "done", "files": {f"take_{k:02d}.json": b'{"k": %d}' % k for k in range(takes)},
            "frames": 50, "duration_s": 2.0, "generator": "osmnet-default", "seconds": 0.1}


def test_a_new_line_is_written_whole_and_then_counts_as_done(tmp_path):
    folder = BatchFolder(tmp_path / "out")
    line = line_for(tmp_path)
    assert folder.state(line, SETTINGS)[0] == "new"
    folder.write(line, SETTINGS, result())
    state, rec = folder.state(line, SETTINGS)
    assert state == "done" and rec["seed"] == 11 and rec["frames"] == 50
    assert sorted(os.listdir(tmp_path / "out" / "hello")) == [LINE_FILE, "take_00.json", "take_01.json"]
    assert os.listdir(tmp_path / "out" / PARTIAL) == []  # nothing left half-written
    folder.close()


@pytest.mark.parametrize("damage", [
    lambda d: (d / "take_01.json").unlink(),
    lambda d: (d / "take_00.json").write_bytes(b"{"),
    lambda d: (d / LINE_FILE).unlink(),
])
def test_a_line_with_missing_or_damaged_files_is_redone_and_replaced(tmp_path, damage):
    folder = BatchFolder(tmp_path / "out")
    line = line_for(tmp_path)
    folder.write(line, SETTINGS, result())
    damage(tmp_path / "out" / "hello")
    assert folder.state(line, SETTINGS)[0] == "redo"
    folder.write(line, SETTINGS, result())
    assert folder.state(line, SETTINGS)[0] == "done"
    folder.close()


@pytest.mark.parametrize("change", [
    lambda t: (line_for(t, seed=12), SETTINGS),
    lambda t: (line_for(t, takes=3), SETTINGS),
    lambda t: (line_for(t), Settings(fps=30.0)),
    lambda t: (line_for(t), Settings(intensity=0.5)),
])
def test_a_line_made_from_another_request_is_kept_not_overwritten(tmp_path, change):
    folder = BatchFolder(tmp_path / "out")
    folder.write(line_for(tmp_path), SETTINGS, result())
    line, settings = change(tmp_path)
    assert folder.state(line, settings)[0] == "other"
    folder.close()


def test_a_folder_with_files_batch_did_not_write_is_left_alone(tmp_path):
    (tmp_path / "out" / "hello").mkdir(parents=True)
    (tmp_path / "out" / "hello" / "notes.txt").write_text("mine")
    folder = BatchFolder(tmp_path / "out")
    assert folder.state(line_for(tmp_path), SETTINGS)[0] == "other"
    folder.close()


def test_leftovers_of_a_killed_run_are_removed_when_the_next_run_starts(tmp_path):
    stale = tmp_path / "out" / PARTIAL / "hello.1234"
    stale.mkdir(parents=True)
    (stale / "take_00.json").write_text("{")
    BatchFolder(tmp_path / "out").close()
    assert not stale.exists()


def test_two_runs_cannot_write_one_folder_at_once(tmp_path):
    first = BatchFolder(tmp_path / "out")
    with pytest.raises(BatchError, match="another `osmnet batch` is writing"):
        BatchFolder(tmp_path / "out")
    first.close()
    BatchFolder(tmp_path / "out").close()  # free again once the first run ends


def test_the_report_is_valid_json_after_every_write(tmp_path):
    folder = BatchFolder(tmp_path / "out")
    folder.write_report({"format": "osmnet-batch", "lines": []})
    assert json.loads((tmp_path / "out" / "batch.json").read_text())["format"] == "osmnet-batch"
    folder.close()


def test_an_out_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(BatchError, match="is a file"):
        BatchFolder(tmp_path / "out")
