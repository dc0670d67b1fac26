"""Safe by default: loopback only unless CurveZMQ keys are given.

`osmnet keys --out DIR` writes two key pairs in pyzmq's certificate format:
  DIR/server.key, DIR/server.key_secret   (the server; share server.key with clients)
  DIR/client.key, DIR/client.key_secret   (clients and workers; the server trusts every *.key in DIR)
A server with keys encrypts every connection and accepts only clients whose public key is in DIR.
"""
from __future__ import annotations

import os
from pathlib import Path

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
