"""`osmnet batch` as a command: its help, its argument errors, and start-up that stays light."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from osmnet.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_help_names_every_part_of_the_command(capsys):
    assert main(["batch", "--help"]) == 0
    text = capsys.readouterr().out
    for part in ("SOURCE", "--out", "--takes", "--seed", "--fps", "--diversity", "--workers", "--ray [ADDRESS]",
                 "audio,name[,takes,seed,diversity]", "batch.json", "exit status"):
        assert part in text, part


def test_a_source_after_ray_is_not_taken_for_a_cluster_address(tmp_path, capsys):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "b.wav").write_bytes(b"RIFF")
    rc = main(["batch", str(tmp_path / "a.wav"), "--ray", str(tmp_path / "b.wav"), "--out", str(tmp_path / "out")])
    assert rc == 2
    assert "put --ray after the sources or write --ray=ADDRESS" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_ray_missing_is_one_line_with_the_install_command(tmp_path, capsys, monkeypatch):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra looks like
    rc = main(["batch", str(tmp_path / "a.wav"), "--out", str(tmp_path / "out"), "--ray"])
    assert rc == 2
    assert "pip install 'osmnet[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["nothing.wav"], "does not exist"),
    (["{a}", "--takes", "0"], "--takes"),
    (["{a}", "--takes", "65"], "1..64"),
    (["{a}", "--fps", "0"], "--fps"),
    (["{a}", "--workers", "0"], "--workers"),
    (["{a}", "--diversity", "nan"], "--diversity"),
    (["{a}", "--checkpoint", "missing.pt"], "checkpoint missing.pt does not exist"),
])
def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys, args, message):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    args = [x.format(a=tmp_path / "a.wav") for x in args]
    assert main(["batch", *args, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_other_commands_start_without_ray_or_torch():
    """Ray (and torch) load only inside the command that needs them, never at `osmnet` start-up."""
    code = ("import sys; from osmnet.cli import build_parser; build_parser(); import osmnet.batch; "
            "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}).stdout
    assert out.strip() == "[]"
