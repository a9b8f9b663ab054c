"""Request/reply endpoints of the service (the state snapshot, the control endpoint): one
thread per endpoint owning a ZeroMQ ROUTER socket, answering each request with one reply.
Clients use REQ (or DEALER with an empty delimiter frame); requests and replies are JSON.

A request that is not JSON or raises in its handler gets ``{"ok": false, "error": ...}``;
the endpoint never dies of a bad request. A handler that needs a while (the cluster's
``add_source`` and engine changes) returns ``Later(work)``: ``work`` runs on a thread of its
own, its result is the reply, and the endpoint answers other requests meanwhile. A request
larger than ``max_request_bytes`` never reaches it over TCP or IPC: the socket's
``ZMQ_MAXMSGSIZE`` makes libzmq disconnect the peer as soon as it announces the size, before
the bytes are kept (the client gets no reply and times out); over ``inproc://`` the size is
checked here and refused with a reply. The socket comes from the process's
``streamer.net.sockets.Sockets`` (its CurveZMQ server role).

Example (plain text: binds a port)::

    server = RequestServer("snapshot", "tcp://127.0.0.1:5557", lambda req: board.snapshot(), sockets)
    ...
    server.close()
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

from configs.core.errors import ConfigError, ExpStreamError

if TYPE_CHECKING:
    from streamer.net.sockets import Sockets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Later:
    """A handler's reply that takes a while: ``work()`` is run on a thread of its own and what
    it returns (or raises) is the reply, as ``answer`` makes one."""

    work: Callable[[], dict[str, Any]]


Handler = Callable[[dict[str, Any]], "dict[str, Any] | Later"]
"""A parsed request -> the reply (raise ExpStreamError for a refusal with a reason), or
``Later`` for one that takes a while."""


def answer(handler: Handler, request: Any, name: str = "endpoint") -> dict[str, Any]:
    """The reply to one parsed request: ``{"ok": true, ...}`` with what ``handler`` returns,
    or ``{"ok": false, "error": ...}`` when the request is not an object, is refused
    (ExpStreamError: its message) or the handler fails (an internal error, logged). A
    ``Later`` is waited for here (``RequestServer`` runs it on a thread instead).

    Example:
        >>> answer(lambda req: {"echo": req["x"]}, {"x": 1}), answer(lambda req: {}, [1])
        ({'ok': True, 'echo': 1}, {'ok': False, 'error': 'request must be a JSON object'})
    """
    try:
        if not isinstance(request, dict):
            raise ConfigError("request must be a JSON object")
        reply = handler(request)
        return {"ok": True, **(reply.work() if isinstance(reply, Later) else reply)}
    except ExpStreamError as e:
        log.warning("%s: request refused: %s", name, e)
        return {"ok": False, "error": str(e)}
    except Exception as e:  # a bug in a handler must not take the endpoint down
        log.exception("%s: request failed", name)
        return {"ok": False, "error": f"internal error: {type(e).__name__}: {e}"}


class RequestServer:
    """A ROUTER socket on its own thread, handing every request to ``handler``."""

    def __init__(
        self, name: str, endpoint: str, handler: Handler, sockets: Sockets, *, max_request_bytes: int = 1 << 20
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.handler = handler
        self.max_request_bytes = max_request_bytes
        self.requests = 0
        self.errors = 0
        self._sockets = sockets
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise ConfigError(f"{name}.endpoint {endpoint!r}: {self._error}") from self._error

    def _run(self) -> None:
        try:
            sock = self._sockets.server(
                zmq.ROUTER, self.endpoint, what=f"{self.name}.endpoint", max_message_bytes=self.max_request_bytes
            )
        except Exception as e:  # handed to the constructor, which raises it
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        later: dict[Future, bytes] = {}
        """Replies being worked on (``Later``) -> who asked."""
        try:
            while not self._stop.is_set():
                if sock.poll(10 if later else 100):
                    frames = sock.recv_multipart()
                    ident, body = frames[0], frames[-1]
                    reply = self._answer(body)
                    if isinstance(reply, Future):
                        later[reply] = ident
                    else:
                        sock.send_multipart([ident, b"", reply])
                for done in [f for f in later if f.done()]:
                    sock.send_multipart([later.pop(done), b"", done.result()])
        finally:
            sock.close(0)

    def _answer(self, body: bytes) -> bytes | Future:
        self.requests += 1
        try:
            if len(body) > self.max_request_bytes:
                raise ConfigError(f"request of {len(body)} bytes; at most {self.max_request_bytes}")
            try:
                request = json.loads(body) if body.strip() else {}
            except ValueError as e:
                raise ConfigError(f"request is not JSON ({e})") from e
        except ConfigError as e:
            log.warning("%s: request refused: %s", self.name, e)
            reply: dict[str, Any] = {"ok": False, "error": str(e)}
        else:
            got = self._handle(request)
            if isinstance(got, Later):
                return self._later(got, request)
            reply = got
        return self._encode(reply)

    def _handle(self, request: Any) -> dict[str, Any] | Later:
        """``answer``, except that a ``Later`` comes back as it is."""
        held: list[Later] = []

        def handler(req: dict[str, Any]) -> dict[str, Any]:
            reply = self.handler(req)
            if isinstance(reply, Later):
                held.append(reply)
                return {}
            return reply

        reply = answer(handler, request, self.name)
        return held[0] if held else reply

    def _later(self, later: Later, request: Any) -> Future:
        """Run ``later`` on a thread of its own; its encoded reply, when done."""
        done: Future = Future()

        def work() -> None:
            done.set_result(self._encode(answer(lambda req: later.work(), request, self.name)))

        threading.Thread(target=work, name=f"{self.name}-later", daemon=True).start()
        return done

    def _encode(self, reply: dict[str, Any]) -> bytes:
        if not reply["ok"]:
            self.errors += 1
        return json.dumps(reply, allow_nan=False).encode()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def request(
    endpoint: str,
    body: dict[str, Any],
    timeout_s: float = 10.0,
    context: zmq.Context | None = None,
    server_key: str | Path | None = None,
    client_key: str | Path | None = None,
) -> dict:
    """One request to a ``RequestServer`` (REQ socket; CurveZMQ with both key files);
    TimeoutError when no reply comes. The client side (``streamer.client``): it uses
    ``context`` or pyzmq's shared one, never a service's."""
    ctx = context or zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        if server_key is not None and client_key is not None:
            from streamer.net.security import secure_client

            secure_client(sock, server_key, client_key)
        sock.connect(endpoint)
        sock.send(json.dumps(body).encode())
        if not sock.poll(int(timeout_s * 1000)):
            raise TimeoutError(f"no reply from {endpoint} within {timeout_s} s")
        return json.loads(sock.recv())
    finally:
        sock.close(0)
