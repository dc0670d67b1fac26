"""The one runtime set-up of every entry point: the CLI, `osmnet serve`/`worker`, batch workers, benches.

On a small or shared machine torch's defaults are the slow path: its OpenMP threads busy-wait
for work, so two spinning threads on two busy cores starve each other (measured here: the CLI's
conv1d took 8.3 s with the defaults against 0.8 s with one passive thread). `configure()` picks
the thread count from the cores and the current load and makes idle OpenMP threads sleep. The
wait policy must be in the environment before torch starts OpenMP, so call `configure()` before
the first `import torch` (it is cheap: it imports nothing heavy).
"""
from __future__ import annotations

import os
import sys

_configured: int | None = None


def choose_threads(cores: int | None = None, load: float | None = None) -> int:
    """Threads for torch: the cores not already busy (never fewer than 1); $OSMNET_THREADS wins."""
    env = os.environ.get("OSMNET_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass  # a bad value falls back to the automatic choice
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = 0.0
    free = cores - int(round(load))
    # Small machines get one thread: a second one only helps when a core is truly idle, and a
    # wrong guess costs far more (spinning under contention) than it gains.
    if cores <= 2:
        return 1
    return max(1, min(cores, free))


def configure(threads: int | None = None) -> int:
    """Set OpenMP to passive waiting and torch's thread count; returns the thread count chosen."""
    global _configured
    n = int(threads) if threads else choose_threads()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("KMP_BLOCKTIME", "0")
    os.environ["OMP_NUM_THREADS"] = str(n)
    if "torch" in sys.modules:  # already imported: its pool exists, resize it
        import torch

        torch.set_num_threads(n)
    _configured = n
    return n


def configured_threads() -> int | None:
    """The thread count of the last `configure()`, or None if it never ran."""
    return _configured
