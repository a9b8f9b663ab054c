"""ZeroMQ PUB publishing that never blocks the pipeline.

``send`` only puts ``(topic, message)`` on a bounded queue (full -> dropped and counted); a
publisher thread owns the socket, encodes (JSON or msgpack) and sends multipart
``[topic, payload]`` without blocking. Past a subscriber's high-water mark ZeroMQ drops
that subscriber's messages (others are unaffected); every message carries a per-topic
``seq`` so subscribers count their own gaps.

Example:
    >>> pub = ZmqPublisher(PublisherSettings(endpoint="tcp://127.0.0.1:5556"))
    >>> pub.send("faces.cam0", {"schema_version": 1, ...})
    True
    >>> pub.close()
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from streamer.base import Publisher
from streamer.config import PublisherSettings

log = logging.getLogger(__name__)

_STOP = object()


def _json(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode()


def _msgpack(msg: dict[str, Any]) -> bytes:
    import msgpack

    return msgpack.packb(msg, use_bin_type=True)


ENCODERS: dict[str, Callable[[dict[str, Any]], bytes]] = {"json": _json, "msgpack": _msgpack}


def decode(payload: bytes, encoding: str = "auto") -> dict[str, Any]:
    """Decode a payload (``auto``: JSON if it starts with ``{``, else msgpack)."""
    if encoding == "json" or (encoding == "auto" and payload[:1] == b"{"):
        return json.loads(payload)
    import msgpack

    return msgpack.unpackb(payload, raw=False)


class ZmqPublisher(Publisher):
    """PUB socket (bind or connect) fed by a bounded queue and a sending thread."""

    def __init__(self, settings: PublisherSettings, context: zmq.Context | None = None) -> None:
        if settings.encoding not in ENCODERS:
            raise ValueError(f"unknown encoding {settings.encoding!r}; allowed: {', '.join(ENCODERS)}")
        self.settings = settings
        self._encode = ENCODERS[settings.encoding]
        self._ctx = context or zmq.Context()
        self._own_ctx = context is None
        self._queue: queue.Queue = queue.Queue(maxsize=settings.queue_size)
        self._seq: dict[str, int] = {}
        self._seq_lock = threading.Lock()
        self.sent = 0
        self.dropped_queue = 0
        """Messages refused by ``send`` because the queue was full."""
        self.dropped_socket = 0
        """Messages the socket would not take without blocking, or that could not be encoded."""
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            if self._own_ctx:
                self._ctx.term()
            raise RuntimeError(f"publisher.endpoint {settings.endpoint!r}: {self._error}") from self._error
        if settings.bind and settings.settle_s:
            time.sleep(settings.settle_s)

    @property
    def dropped(self) -> int:
        """All messages dropped on this side (subscribers past their high-water mark lose
        messages inside ZeroMQ; they see those as ``seq`` gaps)."""
        return self.dropped_queue + self.dropped_socket

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def send(self, topic: str, msg: dict[str, Any]) -> bool:
        with self._seq_lock:
            seq = self._seq.get(topic, 0)
            self._seq[topic] = seq + 1
        msg["seq"] = seq
        try:
            self._queue.put_nowait((topic, msg))
            return True
        except queue.Full:
            self.dropped_queue += 1
            return False

    def _open(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.PUB)
        try:
            sock.setsockopt(zmq.SNDHWM, self.settings.sndhwm)
            sock.setsockopt(zmq.LINGER, self.settings.linger_ms)
            if self.settings.bind:
                sock.bind(self.settings.endpoint)
            else:
                sock.connect(self.settings.endpoint)
        except zmq.ZMQError:
            sock.close(linger=0)
            raise
        return sock

    def _run(self) -> None:
        try:
            sock = self._open()
        except zmq.ZMQError as e:
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                topic, msg = item
                try:
                    payload = self._encode(msg)
                except (TypeError, ValueError) as e:
                    log.error("cannot encode message on %s: %s", topic, e)
                    self.dropped_socket += 1
                    continue
                try:
                    sock.send_multipart([topic.encode(), payload], flags=zmq.NOBLOCK)
                    self.sent += 1
                except zmq.Again:
                    self.dropped_socket += 1
        finally:
            sock.close(linger=self.settings.linger_ms)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._queue.put(_STOP)
        self._thread.join()
        if self._own_ctx:
            self._ctx.term()
