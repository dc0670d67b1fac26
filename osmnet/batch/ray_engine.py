"""The Ray engine: one actor per GPU (or per CPU slot), each holding the model.

With no address a local Ray runtime is started (and stopped at the end); with one, the batch
joins that cluster. The driver sends each line's audio bytes (and a --checkpoint's bytes, once),
so cluster nodes need osmnet installed but not the driver's files; results come back to the
driver, which writes them as the local engine does. An actor that is lost (process killed, node
gone) is replaced and its lines retried. Ray is imported only here, only when --ray is given.
"""
from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path

from blender_addon.core.errors import EnvironmentProblem
from osmnet.batch.lines import Line, Settings
from osmnet.batch.local import default_workers, lost
from osmnet.batch.work import load_generator, safe_make_line

IN_FLIGHT = 2  # lines queued per actor: the next one is already there when one finishes


def _import_ray():
    try:
        import ray
    except ImportError:
        raise EnvironmentProblem("--ray needs Ray: pip install 'osmnet[ray]' (or run without --ray "
                                 "for local worker processes)") from None
    return ray


class _LineActor:
    """Holds one model; made into a Ray actor class by RayEngine.map."""

    def __init__(self, settings: Settings, device: str, checkpoint_bytes):
        self.settings = settings
        self.gen = load_generator(settings, device, checkpoint_bytes)

    def pid(self) -> int:
        return os.getpid()

    def make(self, line: Line, audio_bytes: bytes) -> dict:
        return safe_make_line(self.gen, line, self.settings, audio_bytes)


class RayEngine:
    """Lines on Ray actors: `address` None starts a local runtime with `workers` CPUs (default:
    the cores); an address (or "auto") joins a running cluster."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None):
        self.address, self.workers = address, workers
        self.actors, self.gpus = 0, 0
        self._busy: dict = {}  # slot -> process id of its actor, while it holds lines

    def describe(self) -> dict:
        return {"name": self.name, "address": self.address, "actors": self.actors, "gpus": self.gpus}

    def busy_pids(self) -> list[int]:
        """Process ids of the actors making lines right now (on this machine's runtime)."""
        return list(self._busy.values())

    def _start(self, ray):
        kw = {"include_dashboard": False, "logging_level": "warning", "log_to_driver": False}
        try:
            if self.address:
                ray.init(address=self.address, **kw)
            else:
                ray.init(num_cpus=self.workers or default_workers(), **kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray runtime"
            raise EnvironmentProblem(f"cannot start or reach {where} ({e}); check the address "
                                     "(`ray status` on the head node)") from None

    def map(self, lines: list[Line], settings: Settings) -> Iterator[tuple[Line, dict]]:
        """Yield (line, result) as lines finish, in no particular order."""
        if not lines:
            return
        ray = _import_ray()
        from ray.exceptions import GetTimeoutError, RayActorError

        own = not ray.is_initialized()
        if own:
            self._start(ray)
        actors: dict[int, object] = {}
        try:
            res = ray.cluster_resources()
            self.gpus = int(res.get("GPU", 0)) if settings.device != "cpu" else 0
            if settings.device == "cuda" and not self.gpus:
                raise EnvironmentProblem("--device cuda: the Ray cluster has no GPUs; leave --device out "
                                         "for CPU actors")
            if self.gpus:  # one actor per GPU
                n, opts, device = self.gpus, {"num_gpus": 1, "num_cpus": 1}, "cuda"
            else:  # one actor per CPU slot
                n, opts, device = int(res.get("CPU", 1)), {"num_cpus": 1}, "cpu"
                if self.workers and self.address:
                    n = min(n, self.workers)
            n = self.actors = max(1, min(n, len(lines)))
            Actor = ray.remote(max_restarts=0, **opts)(_LineActor)  # a lost actor is replaced below
            ckpt = ray.put(Path(settings.checkpoint).read_bytes()) if settings.checkpoint else None
            pids: dict[int, int] = {}
            generation = Counter()  # slot -> how many times its actor was replaced

            def new_actor(i):
                actors[i] = Actor.remote(settings, device, ckpt)
                pids[i] = ray.get(actors[i].pid.remote(), timeout=600)

            try:
                for i in range(n):
                    actors[i] = Actor.remote(settings, device, ckpt)
                pids.update(zip(range(n), ray.get([actors[i].pid.remote() for i in range(n)], timeout=600)))
            except (RayActorError, GetTimeoutError) as e:
                raise EnvironmentProblem(f"Ray actors could not load the model: {e}") from None
            todo, attempts = deque(lines), Counter()
            pending: dict = {}  # ObjectRef -> (slot, actor generation, line)

            def fill(i):
                """Queue lines on slot i up to IN_FLIGHT; yields lines whose audio cannot be read."""
                while todo and sum(1 for s, _, _ in pending.values() if s == i) < IN_FLIGHT:
                    line = todo.popleft()
                    try:
                        data = Path(line.audio).read_bytes()
                    except OSError as e:
                        yield line, {"status": "failed", "reason": f"cannot read {line.audio} ({e})",
                                     "seconds": 0.0, "attempts": 1}
                        continue
                    pending[actors[i].make.remote(line, data)] = (i, generation[i], line)
                    self._busy[i] = pids[i]

            for i in range(n):
                yield from fill(i)
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                i, gen, line = pending.pop(ref)
                if not any(s == i for s, _, _ in pending.values()):
                    self._busy.pop(i, None)
                try:
                    result = ray.get(ref)
                except RayActorError:  # the actor is lost: replace it (once per loss), retry the line
                    if gen == generation[i]:
                        generation[i] += 1
                        try:
                            new_actor(i)
                        except (RayActorError, GetTimeoutError) as e:
                            raise EnvironmentProblem(f"a Ray actor was lost and its replacement could not "
                                                     f"load the model: {e}") from None
                    failed = lost(line, attempts, "the Ray actor was lost")
                    if failed is None:
                        todo.appendleft(line)
                    else:
                        yield line, failed
                else:
                    yield line, {**result, "attempts": attempts[line] + 1}
                yield from fill(i)
        finally:
            self._busy.clear()
            for a in actors.values():
                ray.kill(a)
            if own:
                ray.shutdown()
