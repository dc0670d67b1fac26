"""Backend speed: first-chunk latency and total time for 60 s of speech x 8 takes through
`osmnet serve`, cancel latency, and throughput with 1 vs 2 `osmnet worker` processes.

Prints one JSON line. Real processes, real sockets on loopback, real speech from ../shared.
    python bench/bench_backend.py [--seconds 60] [--takes 8] [--checkpoint PATH] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend import testing as T  # noqa: E402
from blender_addon.core.client import Client, assemble  # noqa: E402


def one_job(address, wave, takes, seed=0):
    """(seconds to first chunk, seconds in total, frames per take) for one generate job."""
    with Client(address, timeout=120) as c:
        c.hello()
        t0 = time.perf_counter()
        first, events = None, []
        for ev in c.generate(audio=wave, takes=takes, seed=seed):
            if ev.type == "chunk" and first is None:
                first = time.perf_counter() - t0
            events.append(ev)
        total = time.perf_counter() - t0
    frames = {t: a.shape[0] for t, a in assemble(events).items()}
    return first, total, frames


def cancel_latency(address, wave, repeats=5):
    """Median ms from sending cancel to (a) the stream's final `finished` (status cancelled) and
    (b) the worker having stopped (the server's `stopping` count back to 0)."""
    out, stops = [], []
    with Client(address, timeout=60) as c:
        for _ in range(repeats):
            job = c.submit_generate(wave, takes=8)
            events, seen, t0 = T.cancel_after_first_chunk(c, job)
            assert events[-1].content.get("status") == "cancelled"
            out.append(seen * 1000)
            T.wait_until_workers_idle(c)
            stops.append((time.perf_counter() - t0) * 1000)
    return sorted(out)[len(out) // 2], sorted(stops)[len(stops) // 2]


def kill_detection(port, ckpt_args, wave):
    """ms from SIGKILL of the server (mid-stream) to the client's clean error."""
    import signal

    from blender_addon.core.client import ClientError

    server = T.serve(port, *ckpt_args)
    t_kill = None
    try:
        with Client(f"tcp://127.0.0.1:{port}", timeout=5) as c:
            try:
                for ev in c.generate(audio=wave, takes=8):
                    if ev.type == "chunk" and t_kill is None:
                        server.p.send_signal(signal.SIGKILL)
                        t_kill = time.perf_counter()
            except ClientError as e:
                return (time.perf_counter() - t_kill) * 1000, e.code
    finally:
        server.kill()
    raise RuntimeError("the stream ended normally after the server was killed")


class Cluster:
    """`osmnet serve --workers 0` with n `osmnet worker` processes attached."""

    def __init__(self, ckpt_args, n_workers, threads):
        port = T.free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        self.server = T.serve(port, "--workers", "0")
        self.workers = [T.worker(port, "--name", f"w{i}", "--threads", str(threads), *ckpt_args)
                        for i in range(n_workers)]
        with Client(self.address, timeout=30) as c:
            while len(c.hello()["workers"]) < n_workers:
                time.sleep(0.1)
        for _ in range(n_workers):
            one_job(self.address, T.speech(2.0), 1)  # warm every worker

    def throughput(self, jobs, wave, takes):
        """Seconds of generated motion (audio seconds x takes) per wall second, jobs sent at once."""
        t0 = time.perf_counter()
        threads = [threading.Thread(target=one_job, args=(self.address, wave, takes, i)) for i in range(jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return jobs * takes * len(wave[0]) / wave[1] / (time.perf_counter() - t0)

    def stop(self):
        for w in self.workers:
            w.stop()
        self.server.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--takes", type=int, default=8)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--jobs", type=int, default=8, help="concurrent jobs in the throughput runs")
    ap.add_argument("--job-seconds", type=float, default=60.0, help="audio per throughput job")
    ap.add_argument("--repeats", type=int, default=5, help="alternating throughput runs per setup (median)")
    args = ap.parse_args()

    ckpt = args.checkpoint or T.checkpoint_for_tests(tempfile.mkdtemp(prefix="osmnet-bench-"))
    ckpt_args = ["--checkpoint", str(ckpt)] if ckpt else []
    result = {"bench": "backend", "device": args.device, "cpus": os.cpu_count(),
              "load_avg_1m": round(os.getloadavg()[0], 2),
              "model": "shipped default" if ckpt is None else Path(ckpt).name}

    port = T.free_port()
    server = T.serve(port, "--device", args.device, *ckpt_args)
    address = f"tcp://127.0.0.1:{port}"
    try:
        with Client(address, timeout=10) as c:
            rtts = sorted(c.ping() for _ in range(50))
        result["ping_ms_median"] = round(rtts[25] * 1000, 3)
        wave = T.speech(args.seconds)
        first, total, frames = one_job(address, wave, args.takes)  # cold: first job after start
        result["cold_first_chunk_s"] = round(first, 3)
        result["cold_total_s"] = round(total, 3)
        first, total, frames = one_job(address, wave, args.takes, seed=1)
        result.update({"audio_s": args.seconds, "takes": args.takes, "frames_per_take": frames[0],
                       "first_chunk_s": round(first, 3), "total_s": round(total, 3),
                       "realtime_factor": round(args.seconds * args.takes / total, 2)})
        seen, stopped = cancel_latency(address, T.speech(args.seconds))
        result["cancel_ms_median"] = round(seen, 2)
        result["cancel_worker_stopped_ms_median"] = round(stopped, 2)
    finally:
        server.stop()
    ms, code = kill_detection(T.free_port(), ckpt_args, T.speech(args.seconds))
    result["server_kill_to_client_error_ms"] = round(ms, 2)
    result["server_kill_error_code"] = code

    wave = T.speech(args.job_seconds)
    threads = max(1, (os.cpu_count() or 2) // 2)
    clusters = {1: Cluster(ckpt_args, 1, threads), 2: Cluster(ckpt_args, 2, threads)}
    runs = {1: [], 2: []}
    try:
        for _ in range(args.repeats):  # alternate, so a busy spell on a shared machine hits both alike
            for n, cluster in clusters.items():
                runs[n].append(cluster.throughput(args.jobs, wave, 4))
    finally:
        for cluster in clusters.values():
            cluster.stop()
    one, two = (sorted(runs[n])[len(runs[n]) // 2] for n in (1, 2))
    result.update({"throughput_jobs": args.jobs, "throughput_job": f"{args.job_seconds:g} s x 4 takes",
                   "torch_threads_per_worker": threads,
                   "throughput_1_worker_take_s_per_s": round(one, 2),
                   "throughput_2_workers_take_s_per_s": round(two, 2), "speedup_2_vs_1": round(two / one, 2),
                   "throughput_runs": {str(n): [round(x, 1) for x in r] for n, r in runs.items()}})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
