"""Where a ZeroMQ endpoint points and how a client proves who it is: shared by client, server and workers.

`is_loopback` decides what the server lets a peer do (local paths, shutdown) and whether it may
bind without encryption; `apply_client_keys` turns on CurveZMQ for a client or worker socket
from the key folder made by `osmnet keys`. zmq is imported only when keys are applied.
"""
from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from .errors import UserInputError


class KeyFileError(UserInputError):
    """A CurveZMQ key file is missing or unreadable; the message says where to get it."""


def is_loopback(endpoint: str) -> bool:
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


def load_key(path: str, want_secret: bool):
    """(public, secret) of a pyzmq certificate file; secret is None for a public-only file."""
    import zmq.auth

    if not os.path.isfile(path):
        raise KeyFileError(f"key file {path} not found; create keys with `osmnet keys --out DIR` on the "
                           "server and copy DIR/client.key_secret and DIR/server.key to this machine")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except Exception as e:  # pyzmq raises plain ValueError/OSError variants for a bad file
        raise KeyFileError(f"{path} is not a CurveZMQ key file ({e})") from None
    if want_secret and secret is None:
        raise KeyFileError(f"{path} holds no secret key; use the .key_secret file")
    return public, secret


def apply_client_keys(sock, keys_dir) -> None:
    """CurveZMQ for a client/worker socket: DIR/client.key_secret (ours) + DIR/server.key (theirs)."""
    public, secret = load_key(os.path.join(keys_dir, "client.key_secret"), True)
    server_public, _ = load_key(os.path.join(keys_dir, "server.key"), False)
    sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = public, secret, server_public
