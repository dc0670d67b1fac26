"""The local engine: spawned worker processes, each loading the model once.

Each worker has its own pipe and is sent at most QUEUE lines ahead, so this process always knows
which line a worker is making: when a worker dies (killed, out of memory) it is replaced and only
its lines are retried, and no finished line is lost because only this process writes lines.
Workers ignore Ctrl+C; this process stops them, so an interrupted run leaves no half line.
"""
from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager

from blender_addon.core.errors import EnvironmentProblem
from osmnet.batch.lines import MAX_ATTEMPTS, Line, Settings
from osmnet.batch.work import load_generator, safe_make_line

QUEUE = 2  # lines sent ahead to each worker, so it never waits for the driver between lines


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _gpus() -> int:
    import torch  # only for --device cuda: the driver otherwise never loads torch

    count = torch.cuda.device_count()
    if count == 0:
        raise EnvironmentProblem("--device cuda: torch sees no GPU here; use --device cpu or install a CUDA torch")
    return count


def _devices(device: str | None, n: int) -> list[str]:
    """The device of each of `n` workers: cuda spreads them over the visible GPUs in turn."""
    if device in (None, "cpu"):
        return ["cpu"] * n
    if device == "cuda":
        count = _gpus()
        return [f"cuda:{i % count}" for i in range(n)]
    return [device] * n


@contextmanager
def _sigint_ignored():
    """Ignore SIGINT while starting a worker (only the main thread may change signal handlers)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _worker(conn, settings: Settings, device: str):
    """A worker process: load the model, then answer lines until told to stop (None)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl+C and stops us
    try:
        gen = load_generator(settings, device)
    except Exception as e:  # noqa: BLE001 - reported to the driver, which ends the batch with it
        conn.send(("fatal", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            line = conn.recv()
        except (EOFError, OSError):
            return
        if line is None:
            return
        conn.send(("result", safe_make_line(gen, line, settings)))


def lost(line: Line, attempts: Counter, what: str):
    """A line whose worker was lost: None (retry it) or its failed result after MAX_ATTEMPTS."""
    attempts[line] += 1
    if attempts[line] < MAX_ATTEMPTS:
        return None
    return {"status": "failed", "seconds": 0.0, "attempts": attempts[line],
            "reason": f"{what} {attempts[line]} times while making this line (out of memory?)"}


class LocalEngine:
    """`workers` processes on this machine (default: one per core; with --device cuda one per GPU)."""

    name = "local"

    def __init__(self, workers: int | None = None):
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._slots: dict = {}

    def describe(self) -> dict:
        return {"name": self.name, "workers": self.workers}

    def busy_pids(self) -> list[int]:
        """Process ids of the workers making a line right now."""
        return [s["proc"].pid for s in list(self._slots.values()) if s["lines"]]

    def map(self, lines: list[Line], settings: Settings) -> Iterator[tuple[Line, dict]]:
        """Yield (line, result) as lines finish, in no particular order."""
        import multiprocessing as mp
        from multiprocessing.connection import wait

        if not lines:
            return
        if self.workers is None:
            self.workers = _gpus() if settings.device == "cuda" else default_workers()
        ctx = mp.get_context("spawn")  # fork would copy the driver's threads and torch state
        n = min(self.workers, len(lines))
        devices = _devices(settings.device, n)
        todo, attempts = deque(lines), Counter()
        # conn -> {"proc", "lines" (sent, in order; the first is in the making), "ready", "index"}
        slots = self._slots = {}
        ever_ready, start_deaths = False, 0

        def start(i):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, settings, devices[i]), daemon=True,
                               name=f"osmnet-batch-{i}")
            with _sigint_ignored():  # inherited through exec: a worker ignores Ctrl+C from its first line
                proc.start()
            child.close()
            slots[parent] = {"proc": proc, "lines": deque(), "ready": False, "index": i}

        try:
            for i in range(n):
                start(i)
            while todo or any(s["lines"] for s in slots.values()):
                for conn in wait(list(slots)):
                    s = slots[conn]
                    try:
                        kind, payload = conn.recv()
                    except (EOFError, OSError):  # the worker died: replace it, retry its line
                        del slots[conn]
                        conn.close()
                        s["proc"].join()
                        if not s["ready"]:
                            start_deaths += 1
                            if not ever_ready or start_deaths > n:  # replacing it would only loop
                                raise EnvironmentProblem(
                                    f"batch workers exit (code {s['proc'].exitcode}) before loading the model; "
                                    "run `osmnet generate` on one file to see why") from None
                        if s["lines"]:  # the first was in the making; the others only queued
                            line = s["lines"].popleft()
                            todo.extendleft(reversed(s["lines"]))
                            failed = lost(line, attempts, "the worker process died")
                            if failed is None:
                                todo.appendleft(line)
                            else:
                                yield line, failed
                        if todo:
                            start(s["index"])
                        continue
                    if kind == "fatal":
                        raise EnvironmentProblem(f"a batch worker could not load the model: {payload}")
                    if kind == "ready":
                        s["ready"] = ever_ready = True
                    else:
                        line = s["lines"].popleft()
                        yield line, {**payload, "attempts": attempts[line] + 1}
                for conn, s in slots.items():  # give every idle worker its next line
                    while s["ready"] and len(s["lines"]) < QUEUE and todo:
                        s["lines"].append(todo.popleft())
                        try:
                            conn.send(s["lines"][-1])
                        except OSError:  # it just died: the next wait() sees that and retries its lines
                            break
        finally:
            for conn, s in slots.items():
                if not s["lines"]:
                    try:
                        conn.send(None)
                    except OSError:
                        pass
                else:  # interrupted mid-line: nothing of it is written, so just stop it
                    s["proc"].terminate()
            for conn, s in slots.items():
                s["proc"].join(timeout=5)
                if s["proc"].is_alive():
                    s["proc"].kill()
                    s["proc"].join()
                conn.close()
            slots.clear()
