"""Publishing that never blocks the pipeline: to a ZeroMQ socket, or to a JSON-lines file.

``send`` numbers the message (a per-topic ``seq``) and puts ``(topic, message)`` on a
bounded queue; a worker thread owns the socket or the file and writes in ``seq`` order.
For ZeroMQ a full queue drops the new message (counted), and past a subscriber's high-water
mark ZeroMQ drops that subscriber's messages (others are unaffected; subscribers see ``seq``
gaps). The JSON-lines sink waits instead and never drops. JSON is strict: NaN and Infinity
are never written (a message holding one is dropped, counted and logged).

The ZeroMQ socket is an XPUB (a PUB that also sees subscriptions): with
``publisher.wait_subscribers`` the first message waits until that many subscriptions have
arrived, instead of hoping ``settle_s`` was long enough (ZeroMQ's slow joiner). The socket
comes from the process's ``streamer.net.sockets.Sockets``: with CurveZMQ keys it is a server
(only authorized clients subscribe, so only they count as subscribers), or with
``client=True`` a client of the endpoint it connects to (a cluster worker publishing to its
driver's forwarder). Without a ``Sockets`` it makes a plain one of its own.

Example (plain text: binds a port)::

    pub = ZmqPublisher(PublisherSettings(endpoint="tcp://127.0.0.1:5556"), outlets.sockets)
    pub.send("faces.cam0", {"schema_version": 1, ...})
    pub.close()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from configs.core.errors import ConfigError
from configs.streamer import PublisherSettings
from streamer.base import Publisher
from streamer.net.sockets import Sockets
from streamer.net.wire import decode, encode, new_run_id
from streamer.queues import FullPolicy, QueueWorker
from streamer.values import PublisherStats

__all__ = ["JsonlPublisher", "Observer", "ZmqPublisher", "create_publisher", "decode"]

log = logging.getLogger(__name__)

Observer = Callable[[str, dict[str, Any]], None]
"""Called on the publisher's thread with every message just BEFORE it goes out, in ``seq``
order (``streamer.output.state.StateBoard.apply`` keeps the snapshot this way: a subscriber never
receives a message the snapshot does not already include)."""


class QueuedPublisher(Publisher):
    """What both publishers share: per-topic ``seq``, the queue, the worker thread that owns
    the output, strict encoding and the observer. Subclasses open, write and close."""

    def __init__(self, settings: PublisherSettings, observer: Observer | None, policy: FullPolicy, what: str) -> None:
        self.settings = settings
        self.stats = PublisherStats()
        self.observer = observer
        self._seq: dict[str, int] = {}
        self._seq_lock = threading.Lock()
        self.run = new_run_id()
        """This publisher's run: stamped on every message with its ``seq``."""
        self._worker: QueueWorker[tuple[str, dict[str, Any]]] = QueueWorker(
            "publisher", settings.queue_size, self._handle, setup=self._open, finish=self._close, policy=policy
        )
        self._worker.started.wait()
        if self._worker.setup_error is not None:
            e = self._worker.setup_error
            raise ConfigError(f"{what}: {e}") from e

    @property
    def queue_depth(self) -> int:
        return len(self._worker.queue)

    def send(self, topic: str, msg: dict[str, Any]) -> bool:
        # seq and queue order agree per topic: both are taken under one lock
        with self._seq_lock:
            seq = self._seq.get(topic, 0)
            self._seq[topic] = seq + 1
            msg["seq"] = seq
            msg["run"] = self.run
            if self._worker.submit((topic, msg)):
                return True
        self.stats.dropped_queue += 1
        return False

    def _handle(self, item: tuple[str, dict[str, Any]]) -> None:
        topic, msg = item
        try:
            payload = encode(msg, self.settings.encoding if self.settings.kind == "zmq" else "json")
        except (TypeError, ValueError) as e:
            log.error("cannot encode message on %s: %s", topic, e)
            self.stats.dropped_socket += 1
            return
        if self.observer is not None:  # before writing: no subscriber can see a message the state lacks
            self.observer(topic, msg)
        if self._write(topic, payload):
            self.stats.sent += 1
        else:
            self.stats.dropped_socket += 1

    # ---- on the worker's thread ----------------------------------------------------------

    def _open(self) -> None:
        """Open the output (on the worker's thread)."""

    def _write(self, topic: str, payload: bytes) -> bool:
        """Write one encoded message; False when it could not be written without blocking."""
        raise NotImplementedError

    def _close(self) -> None:
        """Close the output (on the worker's thread)."""

    def close(self) -> None:
        """Write what is queued, then close the output. Idempotent."""
        self._worker.close()


class ZmqPublisher(QueuedPublisher):
    """XPUB socket (bind or connect) fed by a bounded queue and a sending thread."""

    def __init__(
        self,
        settings: PublisherSettings,
        sockets: Sockets | None = None,
        *,
        observer: Observer | None = None,
        client: bool = False,
    ) -> None:
        """``sockets`` makes the socket (a plain one of its own when None, closed with the
        publisher); ``client`` makes it a CurveZMQ client instead of a server."""
        self._own: Sockets | None = None
        if sockets is None:
            sockets = self._own = Sockets()
        self._sockets = sockets
        self._client = client
        self._sock: zmq.Socket | None = None
        self.subscriptions = 0
        """Subscriptions seen while waiting for ``wait_subscribers``."""
        try:
            super().__init__(settings, observer, "drop_newest", f"publisher.endpoint {settings.endpoint!r}")
        except ConfigError:
            if self._own is not None:
                self._own.close()
            raise

    def _open(self) -> None:
        s = self.settings
        options = {"SNDHWM": s.sndhwm, "LINGER": s.linger_ms, "XPUB_VERBOSE": 1}
        if self._client:
            sock = self._sockets.client(zmq.XPUB, s.endpoint, **options)
        else:
            sock = self._sockets.server(zmq.XPUB, s.endpoint, what="publisher.endpoint", bind=s.bind, **options)
        self._sock = sock
        if s.wait_subscribers:
            self._await_subscribers(sock, s.wait_subscribers, s.settle_s)
        elif s.bind and s.settle_s:
            time.sleep(s.settle_s)

    def _await_subscribers(self, sock: zmq.Socket, wanted: int, limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while self.subscriptions < wanted:
            remaining_ms = int(1000 * (deadline - time.monotonic()))
            if remaining_ms <= 0 or not sock.poll(remaining_ms, zmq.POLLIN):
                log.warning(
                    "publisher: %d of %d subscriber(s) after %.1f s; going on", self.subscriptions, wanted, limit_s
                )
                return
            if sock.recv()[:1] == b"\x01":
                self.subscriptions += 1

    def _write(self, topic: str, payload: bytes) -> bool:
        assert self._sock is not None
        try:
            self._sock.send_multipart([topic.encode(), payload], flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=self.settings.linger_ms)

    def close(self) -> None:
        """Send what is queued (within ``linger_ms``), close the socket. Idempotent."""
        super().close()
        if self._own is not None:
            self._own.close()


class JsonlPublisher(QueuedPublisher):
    """Every message as one JSON line in ``publisher.path`` (``publisher.kind: jsonl``), for
    offline analysis of recorded video. Nothing is dropped: when the writer falls behind,
    ``send`` waits (the pipeline slows down instead)."""

    def __init__(self, settings: PublisherSettings, observer: Observer | None = None) -> None:
        if not settings.path:
            raise ConfigError("publisher.path: publisher.kind jsonl needs a file to write (or --out FILE)")
        self._file: Any = None
        super().__init__(settings, observer, "block", f"publisher.path {settings.path!r}: cannot write")

    def _open(self) -> None:
        path = Path(self.settings.path or "")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w", encoding="utf-8")

    def _write(self, topic: str, payload: bytes) -> bool:
        self._file.write(payload.decode() + "\n")
        return True

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()


def create_publisher(
    settings: PublisherSettings, sockets: Sockets, *, observer: Observer | None = None, client: bool = False
) -> Publisher:
    """The publisher ``publisher.kind`` names (ZeroMQ on ``sockets``, as a CurveZMQ server or,
    with ``client``, a client)."""
    if settings.kind == "jsonl":
        return JsonlPublisher(settings, observer)
    return ZmqPublisher(settings, sockets, observer=observer, client=client)
