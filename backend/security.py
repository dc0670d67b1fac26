"""Safe by default: loopback only unless CurveZMQ keys are given; workers prove themselves with a token.

`osmnet keys --out DIR` writes two key pairs in pyzmq's certificate format:
  DIR/server.key, DIR/server.key_secret   (the server; share server.key with clients)
  DIR/client.key, DIR/client.key_secret   (clients and workers; the server trusts every *.key in DIR)
A server with keys encrypts every connection and accepts only clients whose public key is in DIR.

Workers are trusted with every client's audio, so attaching as one needs more than reaching the
socket: the server's worker token, sent in `worker_hello`. `osmnet serve` keeps it in a file only
its owner can read (default ~/.cache/osmnet/worker-PORT.token, created on first start and kept,
so remote workers re-attach after a restart); `osmnet worker` reads the same file (or a copy of
it on another machine, or $OSMNET_WORKER_TOKEN). In-process workers get it directly.
"""
from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth

from blender_addon.core.endpoints import is_loopback, load_key
from blender_addon.core.errors import UserInputError


class SecurityError(UserInputError):
    """Refused for safety; the message says how to do it safely."""


def check_bind(endpoint: str, keys_dir) -> None:
    if keys_dir is None and not is_loopback(endpoint):
        raise SecurityError(
            f"refusing to bind {endpoint} without encryption: anyone who can reach this address could "
            "run jobs and read your audio. Bind tcp://127.0.0.1:PORT for this machine only, or create "
            "keys with `osmnet keys --out DIR` and start with `--keys DIR` (copy DIR/client.key_secret and "
            "DIR/server.key to the clients)")


def make_keys(out_dir) -> dict[str, Path]:
    """Create server and client key pairs in out_dir (secret files are readable by the owner only)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("server", "client"):
        if (out / f"{name}.key_secret").exists():
            raise SecurityError(f"{out / (name + '.key_secret')} already exists; pick an empty folder "
                                "(overwriting keys would lock out every client that has the old ones)")
        public, secret = zmq.auth.create_certificates(str(out), name)
        os.chmod(secret, 0o600)
        paths[name] = Path(public)
        paths[name + "_secret"] = Path(secret)
    return paths


def secure_server(sock, ctx, keys_dir):
    """Turn on CURVE for a server socket; returns the authenticator thread (stop it on shutdown)."""
    from zmq.auth.thread import ThreadAuthenticator

    keys = Path(keys_dir)
    public, secret = load_key(str(keys / "server.key_secret"), True)
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=str(keys))
    sock.curve_publickey, sock.curve_secretkey, sock.curve_server = public, secret, True
    return auth


# ---- the worker token ----
TOKEN_ENV = "OSMNET_WORKER_TOKEN"
MIN_TOKEN_CHARS = 16


def default_token_file() -> str:
    """The token file's default place; `{port}` is replaced by the server's TCP port."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "osmnet", "worker-{port}.token")


def token_path(template, endpoint: str) -> Path:
    """`template` with `{port}` filled in from a tcp:// endpoint ("local" for inproc/ipc)."""
    port = None
    if endpoint.startswith("tcp://"):
        try:
            port = urlsplit(endpoint).port
        except ValueError:
            port = None
    return Path(os.path.expanduser(str(template).replace("{port}", str(port or "local"))))


def new_token() -> str:
    return secrets.token_urlsafe(32)


def server_token(path) -> str:
    """The token in `path`; a fresh random one, written owner-only, if the file does not exist yet."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(path)
    except OSError as e:
        raise SecurityError(f"cannot write the worker token file {path} ({e.strerror}); pass --worker-token "
                            "FILE in a folder you can write") from None
    token = new_token()
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def read_token(path) -> str:
    """A worker token from a file that only its owner can read."""
    path = Path(path)
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8", errors="replace").strip() if path.is_file() else ""
    except FileNotFoundError:
        raise SecurityError(f"no worker token file at {path}: `osmnet serve` writes it when it starts; for a "
                            "server on another machine copy its token file here and pass --worker-token FILE "
                            f"(or set {TOKEN_ENV})") from None
    except OSError as e:
        raise SecurityError(f"cannot read the worker token file {path} ({e.strerror})") from None
    if info.st_mode & 0o077:
        raise SecurityError(f"the worker token file {path} can be read by other users; run `chmod 600 {path}`")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise SecurityError(f"the worker token file {path} belongs to another user; use your own copy")
    if len(text) < MIN_TOKEN_CHARS:
        raise SecurityError(f"{path} holds no worker token (at least {MIN_TOKEN_CHARS} characters); delete it and "
                            "start `osmnet serve` again to make a new one")
    return text


def token_matches(expected: str, given) -> bool:
    """Constant-time comparison of a worker's token with the server's."""
    return isinstance(given, str) and hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())
