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
        self.ray = _import_ray()  # here, so a missing extra is reported before any folder is made
        self.address, self.workers = address, workers
        self.actors, self.gpus = 0, 0
        self._busy: dict = {}  # slot -> process id of its actor, while it holds lines
        self._pids: dict = {}  # slot -> process id of its actor (None for a replacement: not waited for)

    def describe(self) -> dict:
        return {"name": self.name, "address": self.address, "actors": self.actors, "gpus": self.gpus}

    def busy_pids(self) -> list[int]:
        """Process ids of the actors making lines right now (on this machine's runtime)."""
        return [p for p in list(self._busy.values()) if p is not None]

    def _start(self, ray):
        kw = {"include_dashboard": False, "logging_level": "warning", "log_to_driver": False}
        try:
            if self.address:
                ray.init(address=self.address, **kw)
            else:
                ray.init(num_cpus=self.workers or default_workers(), **kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            if not self.address:
                raise EnvironmentProblem(f"cannot start a local Ray runtime ({e})") from None
            raise EnvironmentProblem(f"cannot reach the Ray cluster at {self.address}: check the address (`ray "
                                     "status` on the head node); a cluster with token authentication also needs "
                                     f"RAY_AUTH_MODE=token and its token (~/.ray/auth_token) here ({e})") from None

    def map(self, lines: list[Line], settings: Settings) -> Iterator[tuple[Line, dict]]:
        """Yield (line, result) as lines finish, in no particular order."""
        if not lines:
            return
        ray = self.ray
        from ray.exceptions import GetTimeoutError, ObjectLostError, RayActorError, RayTaskError, WorkerCrashedError

        own = not ray.is_initialized()
        if own:
            self._start(ray)
        actors: dict[int, object] = {}
        try:
            n, opts, device = self._plan(ray, settings, len(lines))
            Actor = ray.remote(max_restarts=0, **opts)(_LineActor)  # a lost actor is replaced below
            ckpt = ray.put(Path(settings.checkpoint).read_bytes()) if settings.checkpoint else None
            for i in range(n):
                actors[i] = Actor.remote(settings, device, ckpt)
            try:  # every actor has loaded the model (or the batch cannot run at all)
                self._pids = dict(enumerate(ray.get([actors[i].pid.remote() for i in range(n)], timeout=900)))
            except (RayActorError, GetTimeoutError) as e:
                raise EnvironmentProblem("Ray actors could not load the model (every Ray node needs osmnet "
                                         f"installed: pip install 'osmnet[ray]'): {e}") from None
            todo, attempts, generation = deque(lines), Counter(), Counter()  # generation: replacements per slot
            pending: dict = {}  # ObjectRef -> (slot, its actor's generation, submission number, line)
            submitted, losses = 0, 0  # losses: actors lost since the last finished line

            def fill(i):
                """Queue lines on slot i up to IN_FLIGHT; yields lines whose audio cannot be read."""
                nonlocal submitted
                while todo and sum(1 for v in pending.values() if v[0] == i) < IN_FLIGHT:
                    line = todo.popleft()
                    try:
                        data = Path(line.audio).read_bytes()
                    except OSError as e:
                        yield line, {"status": "failed", "reason": f"cannot read {line.audio} ({e})",
                                     "seconds": 0.0, "attempts": 1}
                        continue
                    submitted += 1
                    pending[actors[i].make.remote(line, data)] = (i, generation[i], submitted, line)
                    self._busy[i] = self._pids.get(i)

            for i in range(n):
                yield from fill(i)
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                i, gen, seq, line = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except (RayActorError, WorkerCrashedError, ObjectLostError):
                    # the actor is lost: replace it and take back every line queued on it
                    losses += 1
                    if losses > 2 * n:
                        raise EnvironmentProblem(f"Ray actors keep getting lost ({losses} in a row, none "
                                                 "finished a line); see `ray status` and the Ray logs") from None
                    generation[i] += 1
                    actors[i] = Actor.remote(settings, device, ckpt)
                    self._pids[i] = None
                    same = [r for r, v in pending.items() if v[0] == i and v[1] == gen]
                    mine = sorted([(seq, line)] + [pending.pop(r)[2:] for r in same])
                    (_, first), queued = mine[0], [ln for _, ln in mine[1:]]
                    todo.extendleft(reversed(queued))  # only queued there: no attempt is counted
                    failed = lost(first, attempts, "the Ray actor was lost")  # the line it was making
                    if failed is None:
                        todo.appendleft(first)
                    else:
                        yield first, failed
                except RayTaskError as e:  # make() never raises for a bad line; this is Ray's own failure
                    yield line, {"status": "failed", "reason": f"Ray could not run the line: {e}", "seconds": 0.0,
                                 "attempts": attempts[line] + 1}
                else:
                    losses = 0
                    yield line, {**result, "attempts": attempts[line] + 1}
                if not any(v[0] == i for v in pending.values()):
                    self._busy.pop(i, None)
                yield from fill(i)
        finally:
            self._busy.clear()
            for a in actors.values():
                ray.kill(a)
            if own:
                ray.shutdown()

    def _plan(self, ray, settings: Settings, lines: int) -> tuple[int, dict, str]:
        """(actors, their resources, device): one per GPU in the cluster, else one per CPU slot."""
        res = ray.cluster_resources()
        self.gpus = int(res.get("GPU", 0)) if settings.device != "cpu" else 0
        if settings.device == "cuda" and not self.gpus:
            raise EnvironmentProblem("--device cuda: the Ray cluster has no GPUs; leave --device out for CPU actors")
        if self.gpus:
            n, opts, device = self.gpus, {"num_gpus": 1, "num_cpus": 1}, "cuda"
        else:
            n, opts, device = int(res.get("CPU", 1)), {"num_cpus": 1}, "cpu"
            if self.workers and self.address:
                n = min(n, self.workers)
        self.actors = max(1, min(n, lines))
        return self.actors, opts, device
