"""ZeroMQ publishing that never blocks the pipeline.

``send`` only puts ``(topic, message)`` on a bounded queue (full -> dropped and counted); a
worker thread owns the socket, encodes (JSON or msgpack) and sends multipart
``[topic, payload]`` without blocking. Past a subscriber's high-water mark ZeroMQ drops
that subscriber's messages (others are unaffected); every message carries a per-topic
``seq`` so subscribers count their own gaps. JSON is strict: NaN and Infinity are never
written (a message holding one is dropped, counted and logged).

The socket is an XPUB (a PUB that also sees subscriptions): with
``publisher.wait_subscribers`` the first message waits until that many subscriptions have
arrived, instead of hoping ``settle_s`` was long enough (ZeroMQ's slow joiner). With a
``ServerSecurity`` holding keys, the socket is a CurveZMQ server (``streamer.security``):
only authorized clients subscribe, so only they count as subscribers.

Example (plain text: binds a port)::

    pub = ZmqPublisher(PublisherSettings(endpoint="tcp://127.0.0.1:5556"))
    pub.send("faces.cam0", {"schema_version": 1, ...})
    pub.close()
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from configs.streamer import PublisherSettings
from engine.errors import ConfigError
from streamer.base import Publisher, PublisherStats
from streamer.client import decode as decode  # re-exported: the one decoder
from streamer.queues import QueueWorker
from streamer.security import ServerSecurity

log = logging.getLogger(__name__)


def _json(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":"), allow_nan=False).encode()


def _msgpack(msg: dict[str, Any]) -> bytes:
    import msgpack

    return msgpack.packb(msg, use_bin_type=True)


ENCODERS: dict[str, Callable[[dict[str, Any]], bytes]] = {"json": _json, "msgpack": _msgpack}


class ZmqPublisher(Publisher):
    """XPUB socket (bind or connect) fed by a bounded queue and a sending thread."""

    def __init__(
        self,
        settings: PublisherSettings,
        context: zmq.Context | None = None,
        *,
        security: ServerSecurity | None = None,
    ) -> None:
        """``security`` (its context is used when ``context`` is None) makes the socket a
        CurveZMQ server."""
        self.settings = settings
        self._security = security
        if context is None and security is not None:
            context = security.context
        self.stats = PublisherStats()
        self.subscriptions = 0
        """Subscriptions seen while waiting for ``wait_subscribers``."""
        self._encode = ENCODERS[settings.encoding]
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
            if self._security is not None:
                self._security.secure(sock)
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
            payload = self._encode(msg)
        except (TypeError, ValueError) as e:
            log.error("cannot encode message on %s: %s", topic, e)
            self.stats.dropped_socket += 1
            return
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
