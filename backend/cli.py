"""The backend's commands (`osmnet serve`, `osmnet worker`, `osmnet keys`).

They reach `osmnet` through the `osmnet.commands` entry points in pyproject.toml, so the model
library never imports the backend (or zmq); the work itself is in server.py, worker.py and
security.py.
"""
from __future__ import annotations

import sys

from blender_addon.core.errors import OsmnetError
from osmnet.cli.errors import CommandError


def add_serve(sub):
    p = sub.add_parser("serve", help="run the backend that Blender and scripts talk to (loads the model once)")
    p.add_argument("--bind", default="tcp://127.0.0.1:5555",
                   help="address to listen on (default: this machine only); other interfaces need --keys")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] for the built-in worker")
    p.add_argument("--checkpoint", default=None, help="model checkpoint (default: the shipped model)")
    p.add_argument("--keys", default=None, metavar="DIR", help="CurveZMQ keys from `osmnet keys` (encrypts "
                   "and authenticates every client and worker)")
    p.add_argument("--workers", type=int, default=1, help="built-in worker threads sharing the loaded model "
                   "(0: only remote `osmnet worker`s run jobs)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: chosen from the cores and load, "
                   "see osmnet/runtime.py)")
    p.add_argument("--max-audio-seconds", type=float, default=600.0)
    p.add_argument("--max-message-mb", type=float, default=64.0)
    p.add_argument("--worker-token", default=None, metavar="FILE", help="file that holds the token `osmnet "
                   "worker` must present (default: ~/.cache/osmnet/worker-PORT.token; made owner-only on first start)")
    p.set_defaults(run=run_serve)


def run_serve(a):
    import logging

    import zmq

    from backend.engine import Engine
    from backend.security import check_bind, default_token_file
    from backend.server import Limits, Server

    logging.basicConfig(level=logging.INFO, format="osmnet serve: %(message)s")
    try:
        check_bind(a.bind, a.keys)  # refuse before spending seconds on loading the model
        engine = Engine.load(a.checkpoint, a.device, threads=a.threads) if a.workers > 0 else None
        server = Server(a.bind, engine=engine, local_workers=a.workers, keys_dir=a.keys,
                        limits=Limits(max_audio_seconds=a.max_audio_seconds, max_message_mb=a.max_message_mb),
                        expect_workers=a.workers == 0,
                        worker_token_file=a.worker_token or default_token_file(),
                        token_file_optional=a.worker_token is None).start()
    except (OsmnetError, OSError) as e:
        raise CommandError(str(e)) from None
    except zmq.ZMQError as e:
        raise CommandError(f"cannot listen on {a.bind}: {e} (is another server using this port?)") from None
    what = f"model {engine.name} on {engine.device}, {a.workers} worker(s)" if engine else "no built-in worker"
    print(f"osmnet serve: listening on {server.address} ({what}); Ctrl+C stops", file=sys.stderr, flush=True)
    if server.worker_token_file:
        print(f"osmnet serve: `osmnet worker` attaches with the token in {server.worker_token_file}",
              file=sys.stderr, flush=True)
    _wait_until_stopped(server)
    return 0


def add_worker(sub):
    p = sub.add_parser("worker", help="an extra worker (e.g. one per GPU or machine) for a running `osmnet serve`")
    p.add_argument("--connect", default="tcp://127.0.0.1:5555", help="the server's address")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--checkpoint", default=None, help="model checkpoint (default: the shipped model)")
    p.add_argument("--keys", default=None, metavar="DIR", help="folder with client.key_secret and server.key")
    p.add_argument("--name", default=None, help="name shown in the server's worker list")
    p.add_argument("--slots", type=int, default=1, help="jobs this worker runs at the same time")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: chosen from the cores and load, "
                   "see osmnet/runtime.py)")
    p.add_argument("--worker-token", default=None, metavar="FILE", help="the server's worker token file (default: "
                   "~/.cache/osmnet/worker-PORT.token, as `osmnet serve` on this machine writes it; "
                   "or set OSMNET_WORKER_TOKEN)")
    p.set_defaults(run=run_worker)


def run_worker(a):
    import logging

    import os

    from backend.engine import Engine
    from backend.security import TOKEN_ENV, default_token_file, read_token, token_path
    from backend.worker import Worker
    from blender_addon.core.client import ClientError

    logging.basicConfig(level=logging.INFO, format="osmnet worker: %(message)s")
    try:
        # the token first: a worker that would be refused should not spend seconds loading a model
        token = os.environ.get(TOKEN_ENV) or read_token(token_path(a.worker_token or default_token_file(), a.connect))
        engine = Engine.load(a.checkpoint, a.device, threads=a.threads)
        worker = Worker(a.connect, engine, name=a.name, slots=a.slots, keys_dir=a.keys, token=token).start()
    except ClientError as e:  # missing key files
        raise CommandError(e.message) from None
    except (OsmnetError, OSError) as e:
        raise CommandError(str(e)) from None
    print(f"osmnet worker: {worker.name} ({engine.name} on {engine.device}) attaching to {a.connect}",
          file=sys.stderr, flush=True)
    _wait_until_stopped(worker)
    if worker.refused:
        raise CommandError(worker.refused)
    return 0


def _wait_until_stopped(service):
    """Block the main thread until the service stops (shutdown request, SIGTERM or Ctrl+C)."""
    import signal

    signal.signal(signal.SIGTERM, lambda *_: service.request_stop())
    try:
        while service.is_alive():
            service.join(0.5)
    except KeyboardInterrupt:
        service.request_stop()
        service.join(10.0)


def add_keys(sub):
    p = sub.add_parser("keys", help="create CurveZMQ keys so `osmnet serve` may listen beyond this machine")
    p.add_argument("--out", required=True, metavar="DIR", help="new folder for the key files")
    p.set_defaults(run=run_keys)


def run_keys(a):
    from backend.security import SecurityError, make_keys

    try:
        paths = make_keys(a.out)
    except SecurityError as e:
        raise CommandError(str(e)) from None
    print(f"server: osmnet serve --bind tcp://0.0.0.0:5555 --keys {a.out}")
    print(f"clients/workers: copy {paths['client_secret']} and {paths['server']} into a folder and pass it as --keys")
    return 0
