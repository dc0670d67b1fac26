"""Safe by default: loopback only unless CurveZMQ keys are given.

`osmnet keys --out DIR` writes two key pairs in pyzmq's certificate format:
  DIR/server.key, DIR/server.key_secret   (the server; share server.key with clients)
  DIR/client.key, DIR/client.key_secret   (clients and workers; the server trusts every *.key in DIR)
A server with keys encrypts every connection and accepts only clients whose public key is in DIR.
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth


class SecurityError(Exception):
    """Refused for safety; the message says how to do it safely."""


def is_loopback_endpoint(endpoint: str) -> bool:
    """True for inproc://, ipc:// and tcp:// on 127.0.0.0/8, ::1 or localhost."""
    if endpoint.startswith(("inproc://", "ipc://")):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # an interface name or "*": could be reachable from the network


def check_bind(endpoint: str, keys_dir) -> None:
    if keys_dir is None and not is_loopback_endpoint(endpoint):
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


def _load(path: Path, want_secret: bool):
    if not path.is_file():
        raise SecurityError(f"key file {path} not found; create keys with `osmnet keys --out DIR`")
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except Exception as e:
        raise SecurityError(f"{path} is not a CurveZMQ key file ({e})") from None
    if want_secret and secret is None:
        raise SecurityError(f"{path} holds no secret key; use the .key_secret file")
    return public, secret


def secure_server(sock, ctx, keys_dir):
    """Turn on CURVE for a server socket; returns the authenticator thread (stop it on shutdown)."""
    from zmq.auth.thread import ThreadAuthenticator

    keys = Path(keys_dir)
    public, secret = _load(keys / "server.key_secret", True)
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=str(keys))
    sock.curve_publickey, sock.curve_secretkey, sock.curve_server = public, secret, True
    return auth


def secure_client(sock, keys_dir):
    """Turn on CURVE for a client/worker socket from DIR/client.key_secret and DIR/server.key."""
    keys = Path(keys_dir)
    public, secret = _load(keys / "client.key_secret", True)
    server_public, _ = _load(keys / "server.key", False)
    sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = public, secret, server_public
