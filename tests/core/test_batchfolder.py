"""osmnet batch output folders as the add-on reads them: lines in the report's order, their takes
and speech, and folders without (or with a broken) batch.json."""
import json

import numpy as np
import pytest

from blender_addon.core import batchfolder
from blender_addon.core.channels import ALL_CHANNELS, ARKIT_NAMES
from blender_addon.core.errors import UserInputError
from blender_addon.core.take import Take


def _take(frames, fps, seed):
    rng = np.random.default_rng(seed)
    ch = {n: np.zeros(frames, np.float32) for n in ALL_CHANNELS}
    for n in ARKIT_NAMES:
        ch[n] = np.clip(np.cumsum(rng.normal(0, 0.05, frames)), 0, 1).astype(np.float32)
    return Take(fps, ch)


def _batch_line(folder, name, takes=2, audio=None, seed=3):
    for k in range(takes):
        t = _take(frames=20 + 5 * k, fps=25.0, seed=k)
        t.meta.update({"audio": audio or f"{name}.wav", "seed": seed, "take": k})
        t.save(folder / name / f"take_{k:02d}.json")


def test_batch_folder_lines_come_in_report_order_with_their_speech(tmp_path):
    out, speech = tmp_path / "out", tmp_path / "speech"
    speech.mkdir()
    (speech / "intro.wav").write_bytes(b"RIFF")
    (speech / "outro.wav").write_bytes(b"RIFF")
    _batch_line(out, "outro")
    _batch_line(out, "intro", takes=3)
    _batch_line(out, "zz_extra", takes=1)
    _batch_line(out / ".osmnet-partial", "half_written", takes=1)  # a line still being written
    report = {"format": "osmnet-batch", "version": 1, "lines": [
        {"name": "outro", "status": "done", "audio": str(speech / "outro.wav"), "seed": 11, "duration": 0.8},
        {"name": "intro", "status": "skipped", "audio": "../speech/intro.wav"},
        {"name": "broken", "status": "failed", "reason": "not audio: broken.mp3"},
    ], "totals": {"done": 1, "failed": 1, "skipped": 1}}
    (out / "batch.json").write_text(json.dumps(report))
    lines, warnings = batchfolder.read_batch_folder(out)
    assert [line.name for line in lines] == ["outro", "intro", "broken", "zz_extra"]
    assert [len(line.takes) for line in lines] == [2, 3, 0, 1]
    assert lines[0].audio == (speech / "outro.wav").resolve() and lines[0].seed == 11
    assert lines[1].audio == (speech / "intro.wav").resolve() and lines[1].seed == 3  # from the takes' meta
    assert lines[2].status == "failed" and "not audio" in lines[2].reason
    assert lines[3].audio is None and lines[3].status == ""
    assert warnings == []
    # The take meta only names the file: found once the speech folder is given.
    assert batchfolder.read_batch_folder(out, audio_dirs=[speech])[0][3].audio is None
    (speech / "zz_extra.wav").write_bytes(b"RIFF")
    assert batchfolder.read_batch_folder(out, audio_dirs=[speech])[0][3].audio == (speech / "zz_extra.wav").resolve()


def test_batch_folder_without_or_with_a_broken_report_still_imports(tmp_path):
    _batch_line(tmp_path, "b_line")
    _batch_line(tmp_path, "a_line")
    (tmp_path / "notes").mkdir()
    lines, warnings = batchfolder.read_batch_folder(tmp_path)
    assert [line.name for line in lines] == ["a_line", "b_line"] and warnings == []
    (tmp_path / "batch.json").write_text("{half")
    lines, warnings = batchfolder.read_batch_folder(tmp_path)
    assert [line.name for line in lines] == ["a_line", "b_line"] and "not valid JSON" in warnings[0]
    (tmp_path / "batch.json").write_text(json.dumps({"format": "something-else", "lines": [{"name": "b_line"}]}))
    lines, warnings = batchfolder.read_batch_folder(tmp_path)
    assert [line.name for line in lines] == ["a_line", "b_line"] and "not an osmnet batch report" in warnings[0]
    (tmp_path / "batch.json").write_text(json.dumps({"format": "osmnet-batch", "version": 2,
                                                     "lines": [{"name": "b_line", "status": "done"}]}))
    lines, warnings = batchfolder.read_batch_folder(tmp_path)
    assert [line.name for line in lines] == ["b_line", "a_line"] and "update the add-on" in warnings[0]


def test_a_folder_without_take_folders_is_refused(tmp_path):
    with pytest.raises(UserInputError, match="no batch lines"):
        batchfolder.read_batch_folder(tmp_path)
    with pytest.raises(UserInputError, match="does not exist"):
        batchfolder.read_batch_folder(tmp_path / "missing")
