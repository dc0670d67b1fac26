"""The local backend: `osmnet serve` started as a child process of Blender (Backend panel), its
log file, and noticing when it exits. Blender quits or the add-on is disabled -> it is stopped."""
from __future__ import annotations

import atexit
import os
import shlex
import subprocess
import sys
import tempfile

import bpy

from .properties import addon_prefs, backend_address
from .core.errors import UserInputError


class _Proc:
    process: subprocess.Popen | None = None
    log = ""


_proc = _Proc()


def _status(context=None):
    return (context or bpy.context).window_manager.osmnet_status


def _set_status(text, level, context=None):
    st = _status(context)
    st.text, st.level = text, level


def backend_command(context=None) -> list[str]:
    prefs = addon_prefs(context)
    address = backend_address(context)
    if prefs is None or prefs.launcher == 'PYTHON':
        python = bpy.path.abspath(prefs.backend_python) if prefs and prefs.backend_python else ""
        if not python:
            raise UserInputError("Set the backend's Python interpreter in the add-on preferences "
                            "(the python of the environment where osmnet is installed)")
        if not os.path.isfile(python):
            raise UserInputError(f"Backend Python {python} does not exist; fix it in the add-on preferences")
        return [python, "-m", "osmnet.cli", "serve", "--bind", address]
    words = shlex.split(prefs.backend_command, posix=os.name != "nt")
    if not words:
        raise UserInputError("Set the backend command in the add-on preferences, e.g. `osmnet serve`")
    return words + ["--bind", address]


def start_backend(context=None, command: list[str] | None = None) -> list[str]:
    """Start `osmnet serve` as a child process; its output goes to a log file named in the status."""
    if backend_running():
        raise UserInputError("The local backend is already running")
    command = command or backend_command(context)
    fd, log = tempfile.mkstemp(prefix="osmnet-backend-", suffix=".log")
    try:
        with os.fdopen(fd, "w") as out:
            flags = subprocess.CREATE_NEW_PROCESS_GROUP if sys.platform == "win32" else 0
            _proc.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, creationflags=flags)
    except OSError as e:
        raise UserInputError(f"Could not start the backend ({e}); check the command in the add-on preferences") from None
    _proc.log = log
    atexit.register(_stop_process_at_exit, _proc.process)  # also when Blender quits without unregister
    _status(context).backend_running = True
    _set_status(f"Local backend starting (log: {log})", "INFO", context)
    return command


def _stop_process_at_exit(proc):
    if proc.poll() is None:
        proc.terminate()


def backend_running() -> bool:
    return _proc.process is not None and _proc.process.poll() is None


def stop_backend(context=None, timeout: float = 5.0):
    stop(timeout)
    _status(context).backend_running = False
    _set_status("Local backend stopped", "INFO", context)


def check(context):
    proc = _proc.process
    if proc is None or proc.poll() is None:
        return
    code = proc.returncode
    _proc.process = None
    _status(context).backend_running = False
    tail = _log_tail(_proc.log)
    _set_status(f"Local backend exited with code {code}: {tail} (log: {_proc.log})", "ERROR", context)


def _log_tail(path, lines=1) -> str:
    try:
        with open(path, errors="replace") as f:
            text = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
        return " / ".join(text[-lines:]) or "no output"
    except OSError:
        return "no log"


def stop(timeout: float = 5.0):
    """Stop the process without touching bpy (used when the add-on is unregistered)."""
    proc = _proc.process
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    _proc.process = None
