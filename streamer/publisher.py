"""ZeroMQ publishing that never blocks the pipeline.

``send`` only puts ``(topic, message)`` on a bounded queue (full -> dropped and counted); a
worker thread owns the socket, encodes (JSON or msgpack) and sends multipart
``[topic, payload]`` without blocking. Past a subscriber's high-water mark ZeroMQ drops
that subscriber's messages (others are unaffected); every message carries a per-topic
``seq`` so subscribers count their own gaps. JSON is strict: NaN and Infinity are never
written (a message holding one is dropped, counted and logged).

The socket is an XPUB (a PUB that also sees subscriptions): with
``publisher.wait_subscribers`` the first message waits until that many subscriptions have
arrived, instead of hoping ``settle_s`` was long enough (ZeroMQ's slow joiner).

Example (plain text: binds a port)::

    pub = ZmqPublisher(PublisherSettings(endpoint="tcp://127.0.0.1:5556"))
    pub.send("faces.cam0", {"schema_version": 1, ...})
    pub.close()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from configs.streamer import PublisherSettings
from engine.errors import ConfigError
from streamer.base import Publisher, PublisherStats
from streamer.queues import QueueWorker
from streamer.wire import decode, encode

__all__ = ["JsonlPublisher", "Observer", "ZmqPublisher", "decode"]

Observer = Callable[[str, dict[str, Any]], None]
"""Called on the publisher's thread with every message just BEFORE it goes out, in ``seq``
order (``streamer.state.StateBoard.apply`` keeps the snapshot this way: a subscriber never
receives a message the snapshot does not already include)."""

log = logging.getLogger(__name__)


class ZmqPublisher(Publisher):
    """XPUB socket (bind or connect) fed by a bounded queue and a sending thread."""

    def __init__(
        self, settings: PublisherSettings, context: zmq.Context | None = None, observer: Observer | None = None
    ) -> None:
        self.settings = settings
        self.stats = PublisherStats()
        self.observer = observer
        self.subscriptions = 0
        """Subscriptions seen while waiting for ``wait_subscribers``."""
        self._ctx = context or zmq.Context()
        self._own_ctx = context is None
        self._seq: dict[str, int] = {}
        self._seq_lock = threading.Lock()
        self._sock: zmq.Socket | None = None
        self._worker: QueueWorker[tuple[str, dict[str, Any]]] = QueueWorker(
            "publisher", settings.queue_size, self._send, setup=self._open, finish=self._close_socket
        )
        self._worker.started.wait()
        if self._worker.setup_error is not None:
            if self._own_ctx:
                self._ctx.term()
            e = self._worker.setup_error
            raise ConfigError(f"publisher.endpoint {settings.endpoint!r}: {e}") from e

    @property
    def queue_depth(self) -> int:
        return len(self._worker.queue)

    def send(self, topic: str, msg: dict[str, Any]) -> bool:
        # seq and queue order agree per topic: both are taken under one lock
        with self._seq_lock:
            seq = self._seq.get(topic, 0)
            self._seq[topic] = seq + 1
            msg["seq"] = seq
            if self._worker.submit((topic, msg)):
                return True
        self.stats.dropped_queue += 1
        return False

    # ---- on the worker's thread ----------------------------------------------------------

    def _open(self) -> None:
        s = self.settings
        sock = self._ctx.socket(zmq.XPUB)
        try:
            sock.setsockopt(zmq.SNDHWM, s.sndhwm)
            sock.setsockopt(zmq.LINGER, s.linger_ms)
            sock.setsockopt(zmq.XPUB_VERBOSE, 1)
            if s.bind:
                sock.bind(s.endpoint)
            else:
                sock.connect(s.endpoint)
        except zmq.ZMQError:
            sock.close(linger=0)
            raise
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

    def _send(self, item: tuple[str, dict[str, Any]]) -> None:
        topic, msg = item
        assert self._sock is not None
        try:
            payload = encode(msg, self.settings.encoding)
        except (TypeError, ValueError) as e:
            log.error("cannot encode message on %s: %s", topic, e)
            self.stats.dropped_socket += 1
            return
        if self.observer is not None:  # before sending: no subscriber can see a message the state lacks
            self.observer(topic, msg)
        try:
            self._sock.send_multipart([topic.encode(), payload], flags=zmq.NOBLOCK)
            self.stats.sent += 1
        except zmq.Again:
            self.stats.dropped_socket += 1

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=self.settings.linger_ms)

    def close(self) -> None:
        """Send what is queued (within ``linger_ms``), close the socket. Idempotent."""
        self._worker.close()
        if self._own_ctx and not self._ctx.closed:
            self._ctx.term()


class JsonlPublisher(Publisher):
    """Every message as one JSON line in ``publisher.path`` (``publisher.kind: jsonl``), for
    offline analysis of recorded video. Nothing is dropped: when the writer falls behind,
    ``send`` waits (the pipeline slows down instead)."""

    def __init__(self, settings: PublisherSettings, observer: Observer | None = None) -> None:
        if not settings.path:
            raise ConfigError("publisher.path: publisher.kind jsonl needs a file to write (or --out FILE)")
        self.settings = settings
        self.stats = PublisherStats()
        self.observer = observer
        self._seq: dict[str, int] = {}
        self._seq_lock = threading.Lock()
        self._file: Any = None
        self._worker: QueueWorker[tuple[str, dict[str, Any]]] = QueueWorker(
            "publisher", settings.queue_size, self._write, setup=self._open, finish=self._close, policy="block"
        )
        self._worker.started.wait()
        if self._worker.setup_error is not None:
            e = self._worker.setup_error
            raise ConfigError(f"publisher.path {settings.path!r}: cannot write ({e})") from e

    @property
    def queue_depth(self) -> int:
        return len(self._worker.queue)

    def send(self, topic: str, msg: dict[str, Any]) -> bool:
        with self._seq_lock:
            seq = self._seq.get(topic, 0)
            self._seq[topic] = seq + 1
            msg["seq"] = seq
            if self._worker.submit((topic, msg)):
                return True
        self.stats.dropped_queue += 1  # only after close()
        return False

    def _open(self) -> None:
        from pathlib import Path

        path = Path(self.settings.path or "")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w", encoding="utf-8")

    def _write(self, item: tuple[str, dict[str, Any]]) -> None:
        topic, msg = item
        try:
            line = encode(msg, "json").decode()
        except (TypeError, ValueError) as e:
            log.error("cannot encode message on %s: %s", topic, e)
            self.stats.dropped_socket += 1
            return
        self._file.write(line + "\n")
        self.stats.sent += 1
        if self.observer is not None:
            self.observer(topic, msg)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()

    def close(self) -> None:
        """Write what is queued and close the file. Idempotent."""
        self._worker.close()


def create_publisher(settings: PublisherSettings, observer: Observer | None = None) -> Publisher:
    """The publisher ``publisher.kind`` names."""
    if settings.kind == "jsonl":
        return JsonlPublisher(settings, observer)
    return ZmqPublisher(settings, observer=observer)
