"""Which lines a batch makes: sources, manifests, names and the seed each line gets."""
from __future__ import annotations

import subprocess
import sys

import pytest

from osmnet.batch import BatchError, collect_lines, line_seed


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")  # contents are read by the workers, not when collecting
    return path


def test_a_folder_gives_one_line_per_audio_file_named_by_its_stem(tmp_path):
    for name in ("b.wav", "a.ogg", "notes.txt", ".hidden.wav"):
        touch(tmp_path / "clips" / name)
    lines = collect_lines([tmp_path / "clips"], takes=3, seed=5)
    assert [line.name for line in lines] == ["a", "b"]
    assert all(line.takes == 3 and line.seed == line_seed(5, line.name) for line in lines)
    assert lines[0].audio == str((tmp_path / "clips" / "a.ogg").resolve())


def test_a_manifest_names_lines_and_may_set_takes_seed_and_diversity_per_line(tmp_path):
    touch(tmp_path / "audio" / "x.wav")
    touch(tmp_path / "audio" / "y.wav")
    m = tmp_path / "lines.csv"
    m.write_text("audio,name,takes,seed,diversity\naudio/x.wav,hello_01\naudio/y.wav,hello_02,2,99,0.5\n")
    a, b = collect_lines([m], takes=4, seed=1, diversity=1.0)
    assert (a.name, a.takes, a.seed, a.diversity) == ("hello_01", 4, line_seed(1, "hello_01"), 1.0)
    assert (b.name, b.takes, b.seed, b.diversity) == ("hello_02", 2, 99, 0.5)
    assert a.audio == str((tmp_path / "audio" / "x.wav").resolve())  # relative to the manifest


def test_a_manifest_without_header_reads_columns_in_order(tmp_path):
    touch(tmp_path / "x.wav")
    m = tmp_path / "m.csv"
    m.write_text("x.wav,first,2\n\n# a comment\n")
    (line,) = collect_lines([m])
    assert (line.name, line.takes) == ("first", 2)


@pytest.mark.parametrize("rows, message", [
    ("audio,name\nmissing.wav,a\n", "not found"),
    ("audio,name\nx.wav,../up\n", "cannot be a line name"),
    ("audio,name\nx.wav,.hidden\n", "cannot be a line name"),
    ("audio,name\nx.wav,batch.json\n", "cannot be a line name"),
    ("audio,name,takes\nx.wav,a,zero\n", "takes must be a number"),
    ("audio,name,takes\nx.wav,a,0\n", "takes must be >= 1"),
    ("audio,name,seed\nx.wav,a,-1\n", "seed must be >= 0"),
    ("audio,name,diversity\nx.wav,a,nan\n", "diversity must be >= 0"),
    ("audio,name,takes\nx.wav,a,65\n", "takes must be at most 64"),
    ("audio,name,diversity\nx.wav,a,11\n", "diversity must be at most 10"),
    ("audio,name\nx.wav,a,1,2,3,4\n", "expected audio,name"),
    ("audio,title\nx.wav,a\n", "header must name"),
    ("audio,name\nx.wav,a\nx.wav,A\n", "two lines are named"),
])
def test_bad_manifest_rows_are_refused_with_the_row_and_the_fix(tmp_path, rows, message):
    touch(tmp_path / "x.wav")
    (tmp_path / "m.csv").write_text(rows)
    with pytest.raises(BatchError, match=message) as e:
        collect_lines([tmp_path / "m.csv"], max_takes=64, max_diversity=10.0)
    assert "m.csv" in str(e.value)


def test_two_files_with_the_same_stem_are_refused(tmp_path):
    a, b = touch(tmp_path / "a" / "line.wav"), touch(tmp_path / "b" / "line.ogg")
    with pytest.raises(BatchError, match="two lines are named 'line'"):
        collect_lines([a, b])


@pytest.mark.parametrize("make", [lambda p: p / "nothing_here", lambda p: (p / "empty").mkdir() or p / "empty"])
def test_a_missing_or_empty_source_is_refused(tmp_path, make):
    with pytest.raises(BatchError, match="does not exist|holds no audio files"):
        collect_lines([make(tmp_path)])


def test_bad_batch_values_are_refused_before_any_work(tmp_path):
    touch(tmp_path / "x.wav")
    for kw, message in (({"takes": 0}, "takes"), ({"seed": -3}, "seed"), ({"diversity": -1.0}, "diversity")):
        with pytest.raises(BatchError, match=message):
            collect_lines([tmp_path / "x.wav"], **kw)


def test_line_seeds_depend_on_batch_seed_and_name_only():
    seeds = {line_seed(s, n) for s in (0, 1) for n in ("a", "b", "hello world")}
    assert len(seeds) == 6
    assert all(0 <= s < 2**31 for s in seeds)


def test_line_seeds_are_the_same_in_every_python_process():
    """Python's own hash() of a string changes per process; a line's seed must not."""
    code = "from osmnet.batch import line_seed; print(line_seed(7, 'villager_hello_03'))"
    out = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**__import__("os").environ, "PYTHONHASHSEED": h}).stdout for h in ("1", "2")}
    assert out == {f"{line_seed(7, 'villager_hello_03')}\n"}
