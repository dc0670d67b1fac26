"""Real batches on real speech: local worker processes and Ray actors, bad files, re-runs,
killed workers and Ctrl+C."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from blender_addon.core.take import Take
from osmnet.batch import LocalEngine, RayEngine, Settings, collect_lines, line_seed, run_batch
from osmnet.batch.folder import LINE_FILE, PARTIAL
from osmnet.cli import main

pytestmark = [pytest.mark.shared, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
GOOD = ("line00", "line01", "line02")
LONG = 8


def takes_of(out: Path, name: str) -> list[np.ndarray]:
    return [Take.load(p).array() for p in sorted((out / name).glob("take_*.json"))]


def kill_first_busy_worker(engine, done: list, killed: dict):
    """Once a line is finished, SIGKILL a worker (process or actor) that is making another."""
    def kill():
        while not done:
            time.sleep(0.005)
        for _ in range(4000):
            pids = engine.busy_pids()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed["pid"] = pids[0]
                return
            time.sleep(0.005)
    threading.Thread(target=kill, daemon=True).start()


def watch(out: Path, done: list):
    """on_line hook: remember each finished line's first take file (inode, mtime)."""
    def on_line(entry):
        if entry["status"] == "done":
            st = (out / entry["name"] / "take_00.json").stat()
            done.append((entry["name"], st.st_ino, st.st_mtime_ns))
    return on_line


@pytest.fixture(scope="module")
def local_batch(speech_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    rc = main(["batch", str(speech_folder), "--out", str(out), "--takes", "2", "--seed", "7", "--workers", "2"])
    return out, rc


def test_good_lines_are_done_and_bad_files_reported_with_a_failing_exit_code(local_batch, speech_folder):
    out, rc = local_batch
    assert rc == 1
    report = json.loads((out / "batch.json").read_text())
    by = {e["name"]: e for e in report["lines"]}
    assert [by[n]["status"] for n in GOOD] == ["done"] * 3
    assert by["corrupt"]["status"] == "failed" and "corrupt.wav" in by["corrupt"]["reason"]
    assert by["silent"]["status"] == "failed" and "silent" in by["silent"]["reason"]
    t = report["totals"]
    assert (t["lines"], t["done"], t["failed"], t["pending"]) == (5, 3, 2, 0)
    for n in GOOD:
        e = by[n]
        assert e["audio"] == str(speech_folder / f"{n}.wav") and e["seed"] == line_seed(7, n)
        assert e["files"] == ["take_00.json", "take_01.json"]
        takes = [Take.load(out / n / f) for f in e["files"]]
        assert all(t.frames == e["frames"] == int(np.ceil(e["duration_s"] * 25 - 1e-9)) for t in takes)
        assert not np.allclose(takes[0].array(), takes[1].array())  # two different takes
    assert not (out / PARTIAL).exists()


def test_a_line_gets_the_takes_generate_makes_with_its_seed(local_batch, speech_folder):
    from osmnet.generate import Generator

    out, _ = local_batch
    gen = Generator.load()
    want = gen.generate(str(speech_folder / "line01.wav"), takes=2, seed=line_seed(7, "line01"))
    for got, ref in zip(takes_of(out, "line01"), want):
        np.testing.assert_allclose(got, ref.array(), atol=2e-6)


def test_a_rerun_skips_finished_lines_and_redoes_incomplete_ones(local_batch, speech_folder, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(local_batch[0], out)
    before = {p: p.stat().st_mtime_ns for p in out.glob("line0[02]/*")}
    (out / "line01" / "take_01.json").unlink()
    assert main(["batch", str(speech_folder), "--out", str(out), "--takes", "2", "--seed", "7", "--workers", "1"]) == 1
    by = {e["name"]: e["status"] for e in json.loads((out / "batch.json").read_text())["lines"]}
    assert by == {"line00": "skipped", "line01": "done", "line02": "skipped", "corrupt": "failed", "silent": "failed"}
    assert {p: p.stat().st_mtime_ns for p in before} == before  # finished lines untouched
    assert len(takes_of(out, "line01")) == 2


def test_ray_makes_the_same_takes_and_retries_a_lost_actor(local_batch, speech_folder, tmp_path):
    if not os.environ.get("CI"):  # CI installs the extra (scripts/setup.sh) and must run this test
        pytest.importorskip("ray", reason="Ray is the optional extra osmnet[ray] (scripts/setup.sh installs it)")
    out, done, killed = tmp_path / "ray", [], {}
    engine = RayEngine(workers=2)
    kill_first_busy_worker(engine, done, killed)
    lines = collect_lines([speech_folder], takes=2, seed=7)
    report = run_batch(lines, out, Settings(), engine, on_line=watch(out, done))
    by = {e["name"]: e for e in report["lines"]}
    assert [by[n]["status"] for n in GOOD] == ["done"] * 3 and report["settings"]["engine"]["actors"] == 2
    assert killed and any(e["attempts"] == 2 for e in by.values())  # a line was in flight on the lost actor
    for n in GOOD:
        for a, b in zip(takes_of(out, n), takes_of(local_batch[0], n), strict=True):
            np.testing.assert_allclose(a, b, atol=2e-6)


HEAD = """import sys, ray
ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()  # until the test closes our stdin
ray.shutdown()
"""


def test_a_batch_joins_a_running_ray_cluster_by_address(local_batch, speech_folder, tmp_path):
    """--ray=ADDRESS: a separate process is the cluster (its nodes have osmnet); the batch joins it."""
    if not os.environ.get("CI"):
        pytest.importorskip("ray", reason="Ray is the optional extra osmnet[ray] (scripts/setup.sh installs it)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    head = subprocess.Popen([sys.executable, "-c", HEAD], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        address = head.stdout.readline().strip()
        assert address, "the Ray head did not start"
        out = tmp_path / "joined"
        r = subprocess.run([sys.executable, "-m", "osmnet", "batch", str(speech_folder / "line00.wav"),
                            str(speech_folder / "line02.wav"), "--out", str(out), "--takes", "2", "--seed", "7",
                            f"--ray={address}"], env={**env, "RAY_AUTH_MODE": "token"}, capture_output=True,
                           text=True, timeout=300)
    finally:
        head.stdin.close()  # the head shuts its runtime down
        head.wait(timeout=60)
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "batch.json").read_text())
    assert report["settings"]["engine"]["address"] == address and report["totals"]["done"] == 2
    for n in ("line00", "line02"):
        for a, b in zip(takes_of(out, n), takes_of(local_batch[0], n), strict=True):
            np.testing.assert_allclose(a, b, atol=2e-6)


@pytest.fixture(scope="module")
def long_lines(cut_speech, tmp_path_factory):
    """Eight 6-second lines: long enough that a kill or Ctrl+C lands while lines are being made."""
    return cut_speech(tmp_path_factory.mktemp("long"), LONG, seconds=6.0)


def test_killing_a_worker_mid_run_loses_no_finished_line(long_lines, tmp_path):
    out, done, killed = tmp_path / "out", [], {}
    engine = LocalEngine(2)
    kill_first_busy_worker(engine, done, killed)
    report = run_batch(collect_lines([long_lines], takes=4), out, Settings(), engine, on_line=watch(out, done))
    assert killed and report["totals"]["done"] == LONG
    assert sorted(e["attempts"] for e in report["lines"]) == [1] * (LONG - 1) + [2]  # only its line was redone
    for name, ino, mtime in done:  # every line finished before or after the kill is still the same file
        st = (out / name / "take_00.json").stat()
        assert (st.st_ino, st.st_mtime_ns) == (ino, mtime)


def test_ctrl_c_stops_without_a_half_line_and_the_next_run_finishes(long_lines, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "osmnet", "batch", str(long_lines), "--out", str(out), "--workers", "1",
           "--takes", "4"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # As from a terminal: Ctrl+C is not ignored, even when this suite was started in the background
    # (a non-interactive shell's `cmd &` ignores SIGINT, and that is inherited through exec).
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(out.glob("line*/" + LINE_FILE)) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl+C in a terminal does: the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    report = json.loads((out / "batch.json").read_text())
    made = [e["name"] for e in report["lines"] if e["status"] == "done"]
    assert made and report["totals"]["pending"] == LONG - len(made)
    folders = sorted(p.name for p in out.iterdir() if p.is_dir() and p.name != PARTIAL)
    assert folders == sorted(made)  # only whole lines exist
    assert all(len(takes_of(out, n)) == 4 for n in made) and not (out / PARTIAL).exists()
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    report = json.loads((out / "batch.json").read_text())
    assert sorted(e["name"] for e in report["lines"] if e["status"] == "skipped") == sorted(made)


def test_the_addon_reads_a_batch_folder_as_written(local_batch, speech_folder):
    """The add-on's reader (blender_addon.core.batchfolder) on a real batch: every line in order,
    the done ones with their takes and the speech file for their sound strip."""
    from blender_addon.core.batchfolder import read_batch_folder

    out, _ = local_batch
    lines, warnings = read_batch_folder(out)
    assert warnings == []
    by = {line.name: line for line in lines}
    assert [line.name for line in lines] == ["corrupt", *GOOD, "silent"]
    for n in GOOD:
        assert by[n].status == "done" and by[n].seed == line_seed(7, n) and len(by[n].takes) == 2
        assert by[n].audio == (speech_folder / f"{n}.wav").resolve()
    assert by["corrupt"].status == "failed" and by["corrupt"].takes == [] and "corrupt.wav" in by["corrupt"].reason
