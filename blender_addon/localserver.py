"""The local backend: `osmnet serve` started as a child process of Blender (Backend panel), its
log file, and following it from its own output: starting (loading the model) -> ready (it printed
"listening on") -> exited. Blender quits or the add-on is disabled -> it is stopped.

poll() reads the child's new output and says when it became ready; runtime.drain() calls it (and
then asks the backend who it is), and so does a bpy.app timer in the UI. Tests and scripts call
drain() themselves: timers never fire in the bpy module.
"""
from __future__ import annotations

import atexit
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bpy

from .properties import addon_prefs, backend_address
from .core.errors import UserInputError

READY_MARK = "listening on"  # what `osmnet serve` prints once the model is loaded and it accepts requests
PROBE = ("import importlib.util as u, sys; "
         "sys.exit(0 if u.find_spec('osmnet') and u.find_spec('backend') else 1)")


class _Proc:
    process: subprocess.Popen | None = None
    log = ""
    phase = ""          # "" | starting | ready | exited
    started = 0.0       # time.monotonic() at start
    read_pos = 0        # how much of the log poll() has read
    last_line = ""      # the child's latest output line
    ready_line = ""     # the line that said it is listening
    timer = None


_proc = _Proc()


def _status(context=None):
    return (context or bpy.context).window_manager.osmnet_status


def _set_status(text, level, context=None):
    st = _status(context)
    st.text, st.level = text, level


# ------------------------------------------------------------------ which Python runs the backend

def _interpreter_of_script(script: Path) -> Path | None:
    """The Python a console script (e.g. the `osmnet` command pip made) runs with."""
    if os.name == "nt":  # <venv>\Scripts\osmnet.exe next to python.exe
        candidate = script.with_name("python.exe")
        return candidate if candidate.is_file() else None
    try:
        head = script.read_bytes()[:512].decode("utf-8", "replace")
    except OSError:
        return None
    # "#!/venv/bin/python" or, for long paths, pip's "#!/bin/sh" + "'''exec' /venv/bin/python ..."
    m = re.search(r"^'''exec' (\S+)", head, re.M) or re.match(r"#!\s*(\S+)", head)
    if not m or m.group(1).endswith("/sh"):
        return None
    return Path(m.group(1))


def _has_osmnet(python: Path) -> bool:
    try:
        # from a neutral folder: `-c` puts the working directory on sys.path, and Blender's may be a checkout
        return subprocess.run([str(python), "-c", PROBE], capture_output=True, timeout=20,
                              cwd=tempfile.gettempdir()).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def guess_backend_python(path: str | None = None) -> tuple[str, str] | None:
    """(python, where it was found) for an environment that has osmnet and its backend installed:
    the interpreter of the `osmnet` command on PATH, else the active virtual or conda environment.
    Each candidate is asked whether it can import osmnet and backend; None when none can."""
    candidates: list[tuple[Path, str]] = []
    script = shutil.which("osmnet", path=path)
    if script:
        python = _interpreter_of_script(Path(script))
        if python is not None:
            candidates.append((python, f"the `osmnet` command on PATH ({script})"))
    for var in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        if os.environ.get(var):
            sub = "Scripts/python.exe" if os.name == "nt" else "bin/python"
            candidates.append((Path(os.environ[var]) / sub, f"${var}"))
    for python, how in candidates:
        if python.is_file() and _has_osmnet(python):
            return str(python), how
    return None


def backend_command(context=None) -> list[str]:
    prefs = addon_prefs(context)
    address = backend_address(context)
    if prefs is None or prefs.launcher == 'PYTHON':
        python = bpy.path.abspath(prefs.backend_python) if prefs and prefs.backend_python else ""
        if not python:
            found = guess_backend_python()
            if found is None:
                raise UserInputError("Set the backend's Python interpreter in the add-on preferences (the python "
                                     "of the environment where osmnet is installed); no `osmnet` command was "
                                     "found on PATH")
            python = found[0]
            if prefs is not None:
                prefs.backend_python = python  # shown (and editable) in the preferences from now on
        if not os.path.isfile(python):
            raise UserInputError(f"Backend Python {python} does not exist; fix it in the add-on preferences")
        return [python, "-m", "osmnet.cli", "serve", "--bind", address]
    words = shlex.split(prefs.backend_command, posix=os.name != "nt")
    if not words:
        raise UserInputError("Set the backend command in the add-on preferences, e.g. `osmnet serve`")
    return words + ["--bind", address]


# ------------------------------------------------------------------ the child process

def start_backend(context=None, command: list[str] | None = None, on_tick=None) -> list[str]:
    """Start `osmnet serve` as a child process; its output goes to a log file named in the status."""
    if backend_running():
        raise UserInputError("The local backend is already running")
    command = command or backend_command(context)
    fd, log = tempfile.mkstemp(prefix="osmnet-backend-", suffix=".log")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # its lines reach the log (and poll()) at once
    try:
        with os.fdopen(fd, "w") as out:
            flags = subprocess.CREATE_NEW_PROCESS_GROUP if sys.platform == "win32" else 0
            _proc.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, creationflags=flags, env=env)
    except OSError as e:
        raise UserInputError(f"Could not start the backend ({e}); check the command in the add-on preferences") from None
    _proc.log, _proc.phase, _proc.started = log, "starting", time.monotonic()
    _proc.read_pos, _proc.last_line, _proc.ready_line = 0, "", ""
    atexit.register(_stop_process_at_exit, _proc.process)  # also when Blender quits without unregister
    _status(context).backend_running = True
    _set_status(starting_text(), "INFO", context)
    _ensure_timer(on_tick or (lambda: poll(None)))
    return command


def _stop_process_at_exit(proc):
    if proc.poll() is None:
        proc.terminate()


def backend_running() -> bool:
    return _proc.process is not None and _proc.process.poll() is None


def phase() -> str:
    """'' (none started), 'starting' (loading the model), 'ready' or 'exited'."""
    return _proc.phase


def ready_line() -> str:
    """What the child printed when it became ready ('' before)."""
    return _proc.ready_line


def starting() -> bool:
    return _proc.phase == "starting" and backend_running()


def starting_text() -> str:
    seconds = time.monotonic() - _proc.started
    said = f"; last output: {_proc.last_line}" if _proc.last_line else ""
    return (f"Local backend starting: loading the model ({seconds:.0f} s){said}. It connects by itself "
            f"when ready (log: {_proc.log})")


def stop_backend(context=None, timeout: float = 5.0):
    stop(timeout)
    _status(context).backend_running = False
    _set_status("Local backend stopped", "INFO", context)


def _read_new_lines() -> list[str]:
    try:
        with open(_proc.log, "rb") as f:
            f.seek(_proc.read_pos)
            data = f.read()
    except OSError:
        return []
    end = data.rfind(b"\n") + 1  # only whole lines; the rest is read next time
    _proc.read_pos += end
    lines = [ln.strip() for ln in data[:end].decode("utf-8", "replace").splitlines() if ln.strip()]
    if lines:
        _proc.last_line = lines[-1]
    return lines


def poll(context=None) -> bool:
    """Follow the child from its output and exit code; True exactly once, when it became ready.
    Updates the status line (starting, ready, or exited with its last line)."""
    proc = _proc.process
    if proc is None:
        return False
    lines = _read_new_lines()
    if _proc.phase == "starting":
        ready = next((ln for ln in lines if READY_MARK in ln), None)
        if ready is not None:
            _proc.phase, _proc.ready_line = "ready", ready
            took = time.monotonic() - _proc.started
            _set_status(f"Local backend ready after {took:.0f} s: {ready}", "INFO", context)
            return True
    if proc.poll() is not None:
        code = proc.returncode
        _proc.process, _proc.phase = None, "exited"
        _status(context).backend_running = False
        tail = _proc.last_line or _log_tail(_proc.log)
        _set_status(f"Local backend exited with code {code}: {tail} (log: {_proc.log})", "ERROR", context)
        return False
    if _proc.phase == "starting":
        _set_status(starting_text(), "INFO", context)
    return False


def _log_tail(path, lines=1) -> str:
    try:
        with open(path, errors="replace") as f:
            text = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
        return " / ".join(text[-lines:]) or "no output"
    except OSError:
        return "no log"


def _ensure_timer(on_tick):
    """In the UI, call `on_tick` every half second while the child runs (the caller passes
    runtime.drain, which follows the child and says hello when it is ready; passed in, not
    imported, because runtime imports this module)."""
    if _proc.timer is not None and bpy.app.timers.is_registered(_proc.timer):
        return

    def tick():
        on_tick()
        if _proc.process is None:
            _proc.timer = None
            return None
        return 0.5

    _proc.timer = tick
    bpy.app.timers.register(tick, first_interval=0.5)


def stop(timeout: float = 5.0):
    """Stop the process without touching bpy data (used when the add-on is unregistered)."""
    proc = _proc.process
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    _proc.process = None
    _proc.phase = ""
    if _proc.timer is not None and bpy.app.timers.is_registered(_proc.timer):
        bpy.app.timers.unregister(_proc.timer)
    _proc.timer = None
