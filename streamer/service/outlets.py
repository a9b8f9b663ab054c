"""What one process serves, built in one place: ``Outlets`` owns the process's one ZeroMQ
context and the CurveZMQ security its authenticator enforces (``sockets``: every socket is
made there), the state board, the publisher that feeds it, the snapshot and control
endpoints, and closes them in the reverse order. ``streamer.service.assembly.Service`` adds
the pipeline, its controller and the metrics; the cluster driver
(``streamer.cluster.front``) adds the forwarder instead of a publisher; ``streamer bench
--publish`` uses the publisher alone. Light: no torch until a publisher is made.

Example:
    >>> from configs import load_settings
    >>> settings = load_settings(None, ["snapshot.endpoint=tcp://127.0.0.1:*"])
    >>> with Outlets(settings) as outlets:
    ...     outlets.serve_snapshot()
    ...     [s.name for s in outlets.servers]
    ['snapshot']
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from streamer.net.endpoints import Handler, RequestServer
from streamer.net.sockets import Sockets
from streamer.output.state import StateBoard

if TYPE_CHECKING:
    from configs import Settings
    from streamer.base import Publisher

log = logging.getLogger(__name__)


class Outlets:
    """One process's sockets, state board, publisher and request endpoints.

    ``settings.security`` secures every server socket (and, for ``publish(client=True)``,
    the publisher as a client). Close it (or use it as a context manager) once the pipeline
    has stopped: endpoints first, then the publisher (it sends what is queued), then the
    context.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._closing = ExitStack()
        self.sockets = Sockets(settings.security)
        self._closing.callback(self.sockets.close)
        self.board = StateBoard()
        """Every published message is applied here just before it goes out; the snapshot
        endpoint answers from it."""
        self.watchers: list[Callable[[str, dict[str, Any]], None]] = []
        """Called with every published message after the board (the live view's feed)."""
        self.servers: list[RequestServer] = []
        self.publisher: Publisher | None = None

    def on_close(self, close: Callable[[], Any]) -> None:
        """Call ``close`` when the outlets close, before what was opened earlier."""
        self._closing.callback(close)

    def publish(self, *, client: bool = False, wrap: Callable[[Publisher], Publisher] | None = None) -> Publisher:
        """The publisher ``publisher.kind`` names, the state board its observer. ``client``:
        it connects to ``publisher.endpoint`` as a CurveZMQ client (a cluster worker);
        ``wrap`` puts a layer around it (the worker's fence)."""
        from streamer.output.publisher import create_publisher

        assert self.publisher is None, "one publisher per process"
        publisher = create_publisher(self.settings.publisher, self.sockets, observer=self.observe, client=client)
        self.publisher = wrap(publisher) if wrap is not None else publisher
        self.on_close(self.publisher.close)
        return self.publisher

    def observe(self, topic: str, msg: dict[str, Any]) -> None:
        """The publisher's observer: the board, then every watcher, in ``seq`` order."""
        self.board.apply(topic, msg)
        for watcher in self.watchers:
            watcher(topic, msg)

    def serve(self, name: str, endpoint: str, handler: Handler, max_request_bytes: int = 1 << 20) -> RequestServer:
        """A request endpoint ``name`` on ``endpoint`` (a CurveZMQ server with keys)."""
        server = RequestServer(name, endpoint, handler, self.sockets, max_request_bytes=max_request_bytes)
        self.servers.append(server)
        self.on_close(server.close)
        return server

    def serve_snapshot(self) -> None:
        """The snapshot endpoint (``snapshot.endpoint``; nothing when it is not set)."""
        if self.settings.snapshot.endpoint:
            self.serve("snapshot", self.settings.snapshot.endpoint, lambda req: self.board.snapshot())

    def serve_control(self, handler: Handler) -> None:
        """The control endpoint (``control.endpoint``; nothing when it is not set)."""
        c = self.settings.control
        if c.endpoint:
            self.serve("control", c.endpoint, handler, c.max_request_bytes)

    def describe(self) -> str:
        """The endpoints served, for the log: ``"; snapshot on tcp://..."`` per endpoint."""
        return "".join(f"; {s.name} on {s.endpoint}" for s in self.servers)

    def close(self) -> None:
        """Close everything, last opened first. Idempotent."""
        self._closing.close()

    def __enter__(self) -> Outlets:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
