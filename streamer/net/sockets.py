"""Every ZeroMQ socket the cluster's driver opens goes through one of two functions:
``server_socket`` (binds: the forwarder's XSUB and XPUB) or ``client_socket`` (connects:
``streamer cluster status``). Each takes an optional ``secure`` callable applied to the
socket before it binds or connects; the request servers (snapshot, control) take the same
callable (``streamer.net.endpoints.RequestServer(secure=...)``).

``server_security`` and ``client_security`` are where the cluster gets them from the
settings, with the same CurveZMQ as a single process (``streamer/net/security.py``): the driver
is the server (``security.server_secret_key`` and the allow-list of workers' and clients'
keys), workers and ``streamer cluster status`` are clients (``security.client_secret_key``
and ``security.server_public_key``). Without keys, plain TCP.

Example:
    >>> import zmq

from streamer.net.security import ServerSecurity, client_securer
    >>> ctx = zmq.Context()
    >>> seen = []
    >>> sock = server_socket(ctx, zmq.XPUB, "tcp://127.0.0.1:*", secure=seen.append)
    >>> seen == [sock], bound_endpoint(sock).startswith("tcp://127.0.0.1:")
    (True, True)
    >>> sock.close(0); ctx.term()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zmq

from streamer.net.security import ServerSecurity, client_securer

SecureSocket = Callable[[zmq.Socket], None]
"""Applies security options (CurveZMQ keys) to a socket before it binds or connects."""


def _socket(ctx: zmq.Context, kind: int, secure: SecureSocket | None, options: dict[int, Any]) -> zmq.Socket:
    sock = ctx.socket(kind)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        for opt, value in options.items():
            sock.setsockopt(opt, value)
        if secure is not None:
            secure(sock)
    except BaseException:
        sock.close(0)
        raise
    return sock


def server_socket(
    ctx: zmq.Context, kind: int, endpoint: str, secure: SecureSocket | None = None, **options: Any
) -> zmq.Socket:
    """A socket of ``kind`` with ``options`` (``zmq`` option name -> value), secured, bound."""
    sock = _socket(ctx, kind, secure, {getattr(zmq, k): v for k, v in options.items()})
    try:
        sock.bind(endpoint)
    except zmq.ZMQError:
        sock.close(0)
        raise
    return sock


def client_socket(
    ctx: zmq.Context, kind: int, endpoint: str, secure: SecureSocket | None = None, **options: Any
) -> zmq.Socket:
    """A socket of ``kind`` with ``options``, secured, connected."""
    sock = _socket(ctx, kind, secure, {getattr(zmq, k): v for k, v in options.items()})
    sock.connect(endpoint)
    return sock


def bound_endpoint(sock: zmq.Socket) -> str:
    """The endpoint a socket is bound to (a ``*`` port resolved)."""
    return sock.getsockopt(zmq.LAST_ENDPOINT).decode()


def server_security(settings: Any, context: zmq.Context) -> ServerSecurity:
    """The driver's CurveZMQ server side (``security.server_secret_key``, the allow-list of
    workers' and clients' keys); its ``secure`` applies to every socket the driver binds.
    Close it after the sockets."""
    return ServerSecurity(settings.security, context)


def client_security(settings: Any) -> SecureSocket | None:
    """What secures a client socket to the driver (a worker's publisher, ``streamer cluster
    status``): ``security.client_secret_key`` + ``security.server_public_key``; None = plain TCP."""
    return client_securer(settings.security)
