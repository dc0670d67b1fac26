"""A generated hostile-input corpus for the CLI (issue 12): 0 tracebacks, 0 hangs, bounded memory.

Hypothesis builds command lines from every command's flags with hostile values (nan, 1e30, huge and
negative integers, garbage text, reversed ranges) and hostile paths (broken take files, devices,
read-only, existing and wrong-kind outputs), plus take files made by replacing one field of a valid
take with arbitrary JSON. Each runs in-process through `osmnet.cli.main` under an alarm; a few
run as real subprocesses to show that stderr never carries a traceback.

Budget: OSMNET_FUZZ_EXAMPLES examples (default 300, under a minute on one core; the search is derandomized so CI runs the same
corpus; set OSMNET_FUZZ_RANDOM=1 to explore new ones).
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_support import cli

from blender_addon.core.take import zero_take

hypothesis = pytest.importorskip("hypothesis", reason="the hostile corpus needs hypothesis (pip install -e .[test])")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("OSMNET_FUZZ_EXAMPLES", "300"))
ALARM_S = 120  # one example longer than this is a hang
MAX_RSS_GROWTH_MB = 1500  # the corpus may load the model and MediaPipe once, never allocate without bound

NUMBERS = ["nan", "-nan", "inf", "-inf", "1e30", "-1e30", "1e309", "1e-9", "1e9", "0", "-0", "-1", "0.5", "64",
           "65", "100000", "9223372036854775808", "-9223372036854775809", "1_000", "0x10", "", " ", "abc", "½",
           "-5:10", "10:5", "0:0", "0:99999", "1:2:3", ":", "3", "25", "240", "241", "1024", "128"]

FLAGS = {  # command -> {flag: "num" | "path" | "out" | "dir" | "text"}; positional arguments under ""
    "generate": {"": ["path"], "--takes": "num", "--seed": "num", "--fps": "num", "--diversity": "num",
                 "--intensity": "num", "--base": "path", "--reroll": "num", "--out": "dir", "--device": "text"},
    "plot": {"": ["path", "path"], "--out": "out"},
    "render": {"--image": "path", "--take": "path", "--audio": "path", "--out": "out", "--frames-dir": "dir",
               "--size": "num", "--face": "num"},
    "contact-sheet": {"--image": "path", "--take": "path", "--at": "num", "--out": "out", "--size": "num",
                      "--face": "num"},
    "track": {"": ["path"], "--fps": "num", "--out": "out", "--audio": "path", "--model": "path"},
    "prepare": {"": ["path"], "--workers": "num", "--fps": "num", "--out": "dir", "--model": "path"},
    "train": {"--data": "path", "--out": "out", "--epochs": "num", "--seed": "num", "--set": "text"},
    "evaluate": {"--data": "path", "--takes": "num", "--seed": "num", "--json": "out"},
    "head": {"--out": "dir", "--basis": "path"},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs every example may name: good and broken takes, speech, devices, existing outputs."""
    import soundfile as sf

    w = tmp_path_factory.mktemp("world")
    zero_take(50).save(w / "good.json")
    zero_take(100).save(w / "long.json")
    good = zero_take(50).to_dict()
    for name, mutate in {"meta_str": lambda d: d.update(meta="x"), "fps_huge": lambda d: d.update(fps=1e9),
                         "vals_str": lambda d: d["channels"].update(jawOpen=["a"] * 50)}.items():
        d = json.loads(json.dumps(good))
        mutate(d)
        (w / f"{name}.json").write_text(json.dumps(d))
    (w / "deep.json").write_text('{"format":"osmnet-take","meta":' + "[" * 100_000 + "]" * 100_000 + "}")
    (w / "empty.json").write_text("")
    sf.write(w / "speech.wav", (np.random.default_rng(0).standard_normal(32000) * 0.1).astype(np.float32), 16000)
    nan = np.zeros(16000, np.float32)
    nan[10] = np.nan
    sf.write(w / "nan.wav", nan, 16000, subtype="FLOAT")
    (w / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    for ext in ("png", "mp4", "json", "pt"):
        (w / f"exists.{ext}").write_text("old")
    (w / "takes").mkdir()
    (w / "takes" / "take_00.json").write_text("old")
    (w / "foreign").mkdir()
    (w / "foreign" / "notes.txt").write_text("mine")
    (w / "readonly").mkdir()
    os.chmod(w / "readonly", 0o555)
    immutable = subprocess.run(["chattr", "+i", str(w / "readonly")], capture_output=True).returncode == 0
    yield w
    if immutable:
        subprocess.run(["chattr", "-i", str(w / "readonly")], capture_output=True)
    os.chmod(w / "readonly", 0o755)


def _snapshot(folder: Path) -> dict:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=12)
FIELDS = ["format", "version", "fps", "frames", "meta", "channels", "channels.jawOpen", "channels.headYaw.3",
          "channels.newChannel", "channels.jawOpen.0"]


@st.composite
def hostile_take(draw, folder: Path) -> Path:
    """A valid take with one field replaced by arbitrary JSON, written to `folder`."""
    d = zero_take(draw(st.integers(4, 60))).to_dict()  # >= 4: FIELDS index frame 3
    keys = draw(st.sampled_from(FIELDS)).split(".")
    target = d
    for k in keys[:-1]:
        target = target[k]
    last = keys[-1]
    value = draw(JSON)
    if isinstance(target, list):
        target[int(last)] = value
    elif draw(st.booleans()) or last not in target:
        target[last] = value
    else:
        del target[last]
    path = folder / f"hostile_{draw(st.integers(0, 3))}.json"
    path.write_text(json.dumps(d))
    return path


def _paths(world: Path, fresh: Path):
    named = ["good.json", "long.json", "meta_str.json", "fps_huge.json", "vals_str.json", "deep.json", "empty.json",
             "speech.wav", "nan.wav", "photo.jpg", "takes", "foreign", "exists.json", "missing.json"]
    return st.one_of(st.sampled_from([str(world / n) for n in named]),
                     st.sampled_from(["/dev/null", "/dev/zero", "/proc/self/status", "/", ".", "-", "x" * 300]),
                     hostile_take(fresh).map(str))


def _outs(world: Path, fresh: Path, kind: str):
    names = ["out.png", "out.mp4", "out.json", "out.pt", "out", "sub/deeper/out.png"] if kind == "out" else \
        ["outdir", "sub/outdir"]
    return st.one_of(st.sampled_from([str(fresh / n) for n in names]),
                     st.sampled_from([str(world / n) for n in ("exists.png", "exists.mp4", "exists.json", "exists.pt",
                                                                "takes", "foreign", "readonly/x.png", "readonly/d",
                                                                "good.json/inside.png")]))


# A value that passes each flag's check, so a command line gets past the parser often enough for the
# hostile part (one bad value, a broken file, an output in the way) to reach the code behind it.
VALID = {"--takes": ["1", "2"], "--seed": ["0", "7"], "--fps": ["25", "30"], "--diversity": ["0", "1", "2.5"],
         "--intensity": ["0.5", "1"], "--reroll": ["0:10", "5:20"], "--size": ["128", "256"], "--face": ["0"],
         "--at": ["0", "1.5"], "--workers": ["1", "2"], "--epochs": ["1"], "--device": ["cpu"],
         "--base": ["good.json"], "--take": ["good.json"], "--image": ["photo.jpg"], "--audio": ["speech.wav"],
         "generate": ["speech.wav"], "plot": ["good.json"]}
REQUIRED = {"generate": ["--out"], "render": ["--image", "--take"], "contact-sheet": ["--image", "--take", "--out"],
            "track": ["--out"], "prepare": ["--out"], "train": ["--data", "--out"], "evaluate": ["--data"],
            "head": ["--out"]}


@st.composite
def command_line(draw, world: Path, fresh: Path) -> list[str]:
    command = draw(st.sampled_from(sorted(FLAGS)))
    spec = FLAGS[command]
    value = {"num": st.one_of(st.sampled_from(NUMBERS), st.integers(-2**70, 2**70).map(str),
                              st.floats(allow_nan=True, allow_infinity=True).map(repr)),
             "path": _paths(world, fresh), "out": _outs(world, fresh, "out"), "dir": _outs(world, fresh, "dir"),
             "text": st.one_of(st.sampled_from(["cpu", "cuda:7", "tpu", "motion.bases=16", "a.b=c", "=", "meta"]),
                               st.text(max_size=10))}

    def pick(key, kind):
        valid = VALID.get(key)
        if valid and draw(st.integers(0, 4)) < 3:  # mostly valid, so the rest of the line gets tested
            v = draw(st.sampled_from(valid))
            return str(world / v) if kind == "path" or kind == [] else v
        return draw(value[kind])

    argv = [command] + [pick(command, k) if i == 0 else draw(value[k]) for i, k in enumerate(spec.get("", []))]
    flags = [f for f in spec if f]
    chosen = [f for f in REQUIRED.get(command, []) if draw(st.integers(0, 9)) > 0]
    chosen += [f for f in draw(st.lists(st.sampled_from(flags), unique=True, max_size=3)) if f not in chosen]
    for flag in chosen:
        argv += [flag, pick(flag, spec[flag])]
    if draw(st.booleans()):
        argv.append("--force")
    if draw(st.integers(0, 9)) == 0:  # now and then a stray token anywhere
        argv.insert(draw(st.integers(1, len(argv))), draw(st.sampled_from(NUMBERS + ["--", "--out", "-h2"])))
    return argv


class Hang(BaseException):
    pass


def _alarm(signum, frame):
    raise Hang()


def _peak_rss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def test_generated_hostile_command_lines_never_show_a_traceback_hang_or_grow_memory(world, tmp_path_factory):
    os.environ.setdefault("OSMNET_FACE_LANDMARKER", str(world / "no-model.task"))  # never download
    fresh_root = tmp_path_factory.mktemp("fresh")
    start_rss = _peak_rss_mb()
    seen = {"runs": 0, "ok": 0}
    state = {"world": _snapshot(world)}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              derandomize=os.environ.get("OSMNET_FUZZ_RANDOM") != "1",
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def one(data):
        seen["runs"] += 1
        fresh = fresh_root / str(seen["runs"])
        fresh.mkdir()
        argv = data.draw(command_line(world, fresh), label="argv")
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(ALARM_S)
        try:
            r = cli(*argv)
        except Hang:
            pytest.fail(f"osmnet {argv} ran past {ALARM_S} s")
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        if os.environ.get("OSMNET_FUZZ_SHOW"):
            print(r.rc, [a.replace(str(world), "W").replace(str(fresh_root), "F") for a in argv],
                  (r.error_lines or [""])[-1][:200])
        assert "Traceback" not in r.err, (argv, r.err[-3000:])
        assert r.rc != 3, f"internal error for osmnet {argv}: {r.err[-1000:]}"
        assert r.rc in (0, 1, 2), (argv, r.rc, r.err[-1000:])
        if r.rc == 2:
            assert len(r.error_lines) == 1 and r.error_lines[0].startswith("osmnet: error: "), (argv, r.err[-1000:])
        else:
            seen["ok"] += 1
        now = _snapshot(world)
        if "--force" not in argv:  # without --force nothing that existed may change
            assert now == state["world"], f"osmnet {argv} changed existing files without --force"
        state["world"] = now

    one()
    growth = _peak_rss_mb() - start_rss
    print(f"hostile corpus: {seen['runs']} command lines, {seen['ok']} succeeded, peak RSS grew {growth:.0f} MB")
    assert growth < MAX_RSS_GROWTH_MB


SUBPROCESS_CASES = [
    ["generate", "{w}/speech.wav", "--takes", "100000", "--out", "{f}/g"],
    ["generate", "{w}/speech.wav", "--base", "{w}/good.json", "--reroll", "-5:10", "--out", "{f}/g"],
    ["contact-sheet", "--image", "{w}/photo.jpg", "--take", "{w}/good.json", "--size", "100000", "--out", "{f}/c.png"],
    ["contact-sheet", "--image", "{w}/photo.jpg", "--take", "{w}/good.json", "--at", "nan", "--out", "{f}/c.png"],
    ["plot", "{w}/deep.json", "--out", "{f}/p.png"],
    ["plot", "{w}/meta_str.json", "--out", "{f}/p.png"],
    ["render", "--image", "{w}/photo.jpg", "--take", "{w}/good.json", "--out", "{f}/x.png"],
    ["track", "{w}/speech.wav", "--fps", "1e9", "--out", "{f}/t.json"],
    ["prepare", "{w}", "--workers", "0", "--out", "{f}/ds"],
    ["plot", "{w}/good.json", "--out", "{w}/readonly/p.png"],
]


@pytest.mark.parametrize("argv", SUBPROCESS_CASES, ids=lambda a: " ".join(a[:3]).replace("{w}/", ""))
def test_a_real_osmnet_process_prints_one_line_and_no_traceback(world, tmp_path, argv):
    argv = [a.replace("{w}", str(world)).replace("{f}", str(tmp_path)) for a in argv]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "osmnet.cli", *argv], capture_output=True, text=True, timeout=300,
                       env=env, cwd=tmp_path)
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    assert p.returncode == 2, p.stderr[-1000:]
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("osmnet: ")]
    assert len(lines) == 1 and lines[0].startswith("osmnet: error: "), p.stderr[-1000:]
    assert p.stdout == ""
    assert _peak_rss_mb(resource.RUSAGE_CHILDREN) < 2000
