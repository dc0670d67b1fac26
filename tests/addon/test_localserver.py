"""Start Local Backend as an animator uses it: the child `osmnet serve` is followed from its own
output (starting -> ready -> connected by itself, never a red "unreachable" while the model
loads), an exit is reported with its last line, and the backend's Python is found from the
`osmnet` command on PATH. drain() is called the way the UI's timers call it (timers never fire in
the bpy module)."""
import os
import sys
import time
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

import ui_support  # noqa: E402
from blender_addon import localserver, runtime  # noqa: E402


@pytest.fixture
def prefs():
    ui_support.addon_scene()
    p = bpy.context.preferences.addons["blender_addon"].preferences
    saved = (p.backend_address, p.launcher, p.backend_python, p.backend_command, p.timeout)
    p.backend_address = f"tcp://127.0.0.1:{ui_support.free_port()}"
    yield p
    localserver.stop()
    runtime.cancel()
    runtime.close_client()
    p.backend_address, p.launcher, p.backend_python, p.backend_command, p.timeout = saved


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    ui_support.main_python_or_skip()
    return ui_support.checkpoint_for_e2e(tmp_path_factory.mktemp("ckpt"))


@pytest.mark.slow
def test_start_shows_starting_then_ready_and_connects_by_itself(prefs, checkpoint):
    prefs.launcher = 'COMMAND'
    extra = f" --checkpoint {checkpoint}" if checkpoint else ""
    prefs.backend_command = f"{ui_support.MAIN_PYTHON} -m osmnet.cli serve{extra}"
    prefs.timeout = 1.0  # far shorter than loading the model: a hello sent now gets no answer in time
    st = bpy.context.window_manager.osmnet_status
    assert bpy.ops.osmnet.backend_start() == {'FINISHED'}
    assert localserver.phase() == "starting" and st.backend_running
    assert st.level == 'INFO' and st.text.startswith("Local backend starting")
    # Check Connection while it loads: told it is starting, nothing sent, nothing red
    assert bpy.ops.osmnet.backend_check() == {'FINISHED'}
    assert not runtime._state.jobs and st.level == 'INFO' and "starting" in st.text
    runtime.start_hello(bpy.context)  # a script's hello during the load times out: still not an error
    seen, deadline = [], time.monotonic() + 180
    while time.monotonic() < deadline and not st.model:
        runtime.drain()
        seen.append((localserver.phase(), st.level, st.text))
        time.sleep(0.05)
    assert st.model, seen[-3:]
    assert not [s for s in seen if s[1] == 'ERROR'], [s for s in seen if s[1] == 'ERROR'][:3]
    assert any(text.startswith("Local backend starting: loading the model") and "s)" in text for _, _, text in seen)
    phases = [ph for ph, _, _ in seen]
    assert phases[0] == "starting" and phases[-1] == "ready" and phases == sorted(phases, key=["starting", "ready"].index)
    assert "listening on" in localserver.ready_line()  # ready came from the child's own output
    assert localserver.phase() == "ready" and st.text.startswith("Connected to"), st.text
    bpy.ops.osmnet.backend_stop()
    assert not localserver.backend_running() and not st.backend_running


def test_a_backend_that_exits_is_reported_with_its_last_line(prefs, tmp_path):
    python = ui_support.main_python_or_skip()
    prefs.launcher = 'COMMAND'
    prefs.backend_command = f"{python} -m osmnet.cli serve --checkpoint {tmp_path / 'missing.pt'}"
    assert bpy.ops.osmnet.backend_start() == {'FINISHED'}
    st = bpy.context.window_manager.osmnet_status
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and localserver.phase() == "starting":
        runtime.drain()
        time.sleep(0.05)
    assert localserver.phase() == "exited" and not st.backend_running
    assert st.level == 'ERROR' and "exited with code" in st.text and "missing.pt" in st.text, st.text


def _console_script(folder: Path, python: str, long_form: bool = False) -> Path:
    """An `osmnet` command as pip writes it (a #! line, or /bin/sh + exec for long paths)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "osmnet"
    head = f"#!/bin/sh\n'''exec' {python} \"$0\" \"$@\"\n' '''\n" if long_form else f"#!{python}\n"
    script.write_text(head + "import sys\nfrom osmnet.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return script


@pytest.mark.skipif(os.name == "nt", reason="console scripts are .exe files on Windows")
def test_the_backend_python_is_found_from_the_osmnet_command(prefs, tmp_path, monkeypatch):
    main = str(ui_support.main_python_or_skip())
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.delenv("CONDA_PREFIX", raising=False)
    for long_form in (False, True):
        folder = _console_script(tmp_path / f"bin{int(long_form)}", main, long_form).parent
        found = localserver.guess_backend_python(path=str(folder))
        assert found is not None and found[0] == main and "osmnet" in found[1]
    # a command whose Python cannot import osmnet is not taken (PYTHONPATH would hand it the repo)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    other = _console_script(tmp_path / "other", sys.executable).parent
    assert localserver.guess_backend_python(path=str(other)) is None
    # Start Local Backend with an empty Backend Python uses the guess and shows it in the preferences
    monkeypatch.setenv("PATH", str(tmp_path / "bin0") + os.pathsep + os.environ.get("PATH", ""))
    prefs.launcher, prefs.backend_python = 'PYTHON', ""
    cmd = localserver.backend_command(bpy.context)
    assert cmd == [main, "-m", "osmnet.cli", "serve", "--bind", prefs.backend_address]
    assert prefs.backend_python == main
    prefs.backend_python = ""
    assert bpy.ops.osmnet.backend_find_python() == {'FINISHED'} and prefs.backend_python == main
    # nothing to find: a clear error that says what to set
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    prefs.backend_python = ""
    with pytest.raises(localserver.UserInputError, match="Backend Python|Python interpreter"):
        localserver.backend_command(bpy.context)
