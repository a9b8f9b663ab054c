"""The Python client of a running streamer: subscribe, decode, count what was missed.

Light on purpose: it imports ZeroMQ and the standard library (msgpack only for msgpack
payloads), never torch, the engine or the settings, so a subscriber starts in a fraction of
a second (``streamer subscribe`` is built on it). Messages are described in
docs/messages.md; with CurveZMQ (docs/operations.md) pass the server's public key file and
this client's secret key file.

Example (plain text: needs a running streamer)::

    from streamer.client import Subscriber
    with Subscriber("tcp://10.0.0.2:5556", streams=["cam0"],
                    server_key="keys/server.key", client_key="keys/alice.key_secret") as sub:
        while (got := sub.recv(timeout_s=5.0)) is not None:
            topic, msg = got
            print(topic, msg["seq"])
        print(sub.received, "received,", sub.missed, "missed")
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import zmq

KINDS = ("faces", "events")


def decode(payload: bytes, encoding: str = "auto") -> dict[str, Any]:
    """Decode a payload (``auto``: JSON if it starts with ``{``, else msgpack).

    Example:
        >>> decode(b'{"seq": 3}')
        {'seq': 3}
    """
    if encoding == "json" or (encoding == "auto" and payload[:1] == b"{"):
        return json.loads(payload)
    import msgpack

    return msgpack.unpackb(payload, raw=False)


class Subscriber:
    """A SUB socket subscribed to ``kinds`` (faces, events) of ``streams`` (all when empty).

    ``missed`` counts messages lost on the way (``seq`` gaps per topic): ZeroMQ drops a slow
    subscriber's messages past its high-water mark by design.
    """

    def __init__(
        self,
        endpoint: str,
        streams: Iterable[str] = (),
        kinds: Iterable[str] = KINDS,
        *,
        bind: bool = False,
        server_key: str | Path | None = None,
        client_key: str | Path | None = None,
        rcvhwm: int = 1000,
        context: zmq.Context | None = None,
    ) -> None:
        kinds = list(kinds)
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown message kinds {unknown}; allowed: {', '.join(KINDS)}")
        if (server_key is None) != (client_key is None):
            raise ValueError("CurveZMQ needs both server_key and client_key")
        self.streams = set(streams)
        self.received = 0
        self.missed = 0
        self._last_seq: dict[str, int] = {}
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        try:
            self._sock.setsockopt(zmq.RCVHWM, rcvhwm)
            if server_key is not None and client_key is not None:
                from streamer.security import secure_client

                secure_client(self._sock, server_key, client_key)
            for kind in kinds:
                for sid in sorted(self.streams) or [""]:
                    self._sock.setsockopt_string(zmq.SUBSCRIBE, f"{kind}.{sid}")
            if bind:
                self._sock.bind(endpoint)
            else:
                self._sock.connect(endpoint)
        except Exception:
            self.close()
            raise

    def recv(self, timeout_s: float | None = None) -> tuple[str, dict[str, Any]] | None:
        """The next ``(topic, message)``; None when nothing arrived within ``timeout_s``
        (None = wait as long as it takes)."""
        while True:
            if timeout_s is not None and not self._sock.poll(int(timeout_s * 1000)):
                return None
            topic_b, payload = self._sock.recv_multipart()
            topic = topic_b.decode()
            if self.streams and topic.split(".", 1)[-1] not in self.streams:
                continue  # subscriptions are prefixes: "faces.cam1" also matches "faces.cam10"
            msg = decode(payload)
            self._count(topic, msg.get("seq"))
            return topic, msg

    def _count(self, topic: str, seq: Any) -> None:
        self.received += 1
        if isinstance(seq, int):
            last = self._last_seq.get(topic)
            if last is not None and seq > last + 1:
                self.missed += seq - last - 1
            self._last_seq[topic] = seq

    def close(self) -> None:
        """Close the socket (and the context it made). Idempotent."""
        if not self._sock.closed:
            self._sock.close(linger=0)
        if self._own_ctx and not self._ctx.closed:
            self._ctx.term()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
