"""``Sockets``: the one ZeroMQ context of a process and the only maker of its sockets.

pyzmq runs one ZAP authenticator per context, so a CurveZMQ server socket is only
authenticated when it is made on the context whose authenticator holds the allow-list. Here
the context, the authenticator (``ServerSecurity``, started when ``security.server_secret_key``
is set) and the sockets come from one object, so they cannot diverge:

- ``server(kind, endpoint)``: the CurveZMQ server role (``security.server_secret_key``;
  clients authenticated against ``security.authorized_clients``), bound (or connected, for a
  publisher that connects out); a non-loopback endpoint without keys logs a warning.
- every server socket gets ``ZMQ_MAXMSGSIZE`` (``max_message_bytes``, default
  ``MAX_MESSAGE_BYTES``): libzmq reads a frame's length first and drops a peer that announces
  a larger one before keeping its bytes, so an oversized request costs no memory.
- ``client(kind, endpoint)``: the CurveZMQ client role (``security.client_secret_key`` and
  ``security.server_public_key``: a cluster worker publishing to its driver, ``streamer
  cluster status``), connected. Without those keys, plain TCP.

The publisher, the request endpoints and the cluster's forwarder take a ``Sockets``;
``streamer.service.outlets.Outlets`` makes the one of a process (docs/operations.md).

Example:
    >>> import zmq
    >>> sockets = Sockets()                           # no keys: plain TCP
    >>> sock = sockets.server(zmq.XPUB, "tcp://127.0.0.1:*", what="test.endpoint")
    >>> bound_endpoint(sock).startswith("tcp://127.0.0.1:"), bool(sock.curve_server)
    (True, False)
    >>> sock.close(0); sockets.close()
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import zmq

from configs.streamer import SecuritySettings
from streamer.net.security import ServerSecurity, client_securer

MAX_MESSAGE_BYTES = 1 << 20
"""Largest frame a peer may send to a server socket unless its maker says otherwise (the
publisher's subscriptions, the snapshot's requests); larger ones disconnect the peer."""


class Sockets:
    """One ZeroMQ context, its CurveZMQ server security, and the sockets made on it.

    ``serve=False`` is a process that only connects (``streamer cluster status``): it
    neither loads the server's keys nor starts an authenticator, and ``server`` refuses.
    Close it after every socket made here is closed.
    """

    def __init__(self, settings: SecuritySettings | None = None, *, serve: bool = True) -> None:
        self.settings = settings or SecuritySettings()
        self.serves = serve
        self._ctx = zmq.Context()
        try:
            self.security = ServerSecurity(self.settings if serve else SecuritySettings(), self._ctx)
        except BaseException:
            self._ctx.term()
            raise
        self._client_lock = threading.Lock()
        self._client_secure: Callable[[zmq.Socket], None] | None = None
        self._client_loaded = False

    @property
    def closed(self) -> bool:
        return self._ctx.closed

    def describe(self, client: bool = False) -> str:
        """How sockets of this role are secured, for the log."""
        if client:
            s = self.settings
            return f"CurveZMQ client of {s.server_public_key}" if s.client_secret_key else "not encrypted"
        return f"CurveZMQ, server key {self.security.public_key}" if self.security.enabled else "not encrypted"

    def server(
        self,
        kind: int,
        endpoint: str,
        *,
        what: str = "endpoint",
        bind: bool = True,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        **options: Any,
    ) -> zmq.Socket:
        """A CurveZMQ server socket of ``kind`` (plain without keys) with ``options`` (``zmq``
        option name -> value), bound to ``endpoint`` (``bind=False``: connected). ``what``
        names the setting in the warning about an exposed, unencrypted endpoint. A peer that
        sends a frame over ``max_message_bytes`` is disconnected by libzmq before the frame
        is read (``ZMQ_MAXMSGSIZE``).

        Raises:
            zmq.ZMQError: the endpoint cannot be bound or connected.
        """
        if not self.serves:
            raise RuntimeError("this process only connects (Sockets(serve=False)): no server socket")
        self.security.warn_if_exposed(what, endpoint)
        sock = self._socket(kind, self.security.secure, {"MAXMSGSIZE": max_message_bytes, **options})
        try:
            if bind:
                sock.bind(endpoint)
            else:
                sock.connect(endpoint)
        except zmq.ZMQError:
            sock.close(0)
            raise
        return sock

    def client(self, kind: int, endpoint: str, **options: Any) -> zmq.Socket:
        """A CurveZMQ client socket of ``kind`` (plain without client keys) with ``options``,
        connected to ``endpoint``. The client keys are read on first use (ConfigError when
        a file is missing)."""
        sock = self._socket(kind, self._client_role(), options)
        try:
            sock.connect(endpoint)
        except zmq.ZMQError:
            sock.close(0)
            raise
        return sock

    def _client_role(self) -> Callable[[zmq.Socket], None] | None:
        with self._client_lock:
            if not self._client_loaded:
                self._client_secure = client_securer(self.settings)
                self._client_loaded = True
            return self._client_secure

    def _socket(self, kind: int, secure: Callable[[zmq.Socket], None] | None, options: dict[str, Any]) -> zmq.Socket:
        sock = self._ctx.socket(kind)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            for name, value in options.items():
                sock.setsockopt(getattr(zmq, name), value)
            if secure is not None:
                secure(sock)
        except BaseException:
            sock.close(0)
            raise
        return sock

    def close(self) -> None:
        """Stop the authenticator, then end the context (every socket must be closed).
        Idempotent."""
        self.security.close()
        if not self._ctx.closed:
            self._ctx.term()

    def __enter__(self) -> Sockets:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bound_endpoint(sock: zmq.Socket) -> str:
    """The endpoint a socket is bound to (a ``*`` port resolved)."""
    return sock.getsockopt(zmq.LAST_ENDPOINT).decode()
