"""A worker's half of the fence: ``FencedPublisher`` publishes only the pipeline instances
the worker holds, each message stamped with the epoch of the instance that produced it and
with cluster-wide track ids (``streamer.cluster.epochs``).

The driver hands each assignment of a stream to a worker a new epoch (1, 2, ... per stream),
and the worker runs it as its own pipeline instance, named ``instance_key(stream, epoch)``
(``cam0@2``). The instance's name is on every message it produces, so a message is stamped
with its producer's epoch and renamed to its stream here, whenever it is sent: leftovers of
an older instance of the same stream can never pass as the new one's. A message of an
instance the worker does not hold (revoked, or never assigned) is dropped and counted, its
terminal event included: a stale instance can neither publish nor end its stream. The
forwarder's half (``streamer.cluster.forwarder``) drops the stale epochs that a worker which
does not yet know it lost a stream (a stalled or partitioned one) still sends.

Example:
    >>> from streamer.pipeline import NullPublisher
    >>> pub = FencedPublisher(NullPublisher())
    >>> pub.send("faces.cam0", {"type": "faces", "stream_id": "cam0", "faces": []}), pub.fenced
    (False, 1)
    >>> pub.hold("cam0", 2)
    'cam0@2'
    >>> msg = {"type": "faces", "stream_id": "cam0@2", "faces": [{"track_id": 4}]}
    >>> pub.send("faces.cam0@2", msg), msg["stream_id"], msg["epoch"], msg["faces"][0]["track_id"]
    (True, 'cam0', 2, 4294967300)
    >>> pub.revoke("cam0@2"), pub.send("faces.cam0@2", {"type": "faces", "stream_id": "cam0@2"}), pub.fenced
    (True, False, 2)
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from streamer.base import Publisher
from streamer.cluster.epochs import instance_key, is_terminal, stamp
from streamer.values import PublisherStats

log = logging.getLogger(__name__)


class FencedPublisher(Publisher):
    """Publishes only the pipeline instances this worker holds, each message stamped with the
    epoch of its instance and named by its stream.

    ``hold(sid, epoch)`` before the instance starts (its key is the pipeline's stream id);
    ``revoke(key)`` stops its messages at once (the driver moved the stream); after an
    instance's terminal event it is released here, since nothing of it may follow.
    """

    def __init__(self, inner: Publisher) -> None:
        self.inner = inner
        self.fenced = 0
        """Messages dropped because this worker did not hold the instance that produced them."""
        self._held: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()

    @property
    def stats(self) -> PublisherStats:  # type: ignore[override]
        return self.inner.stats

    @property
    def queue_depth(self) -> int:
        return self.inner.queue_depth

    def hold(self, stream_id: str, epoch: int) -> str:
        """Publish the instance of ``epoch`` of ``stream_id`` from now on; its key."""
        key = instance_key(stream_id, epoch)
        with self._lock:
            self._held[key] = (stream_id, epoch)
        return key

    def revoke(self, key: str) -> bool:
        """Stop publishing the instance ``key`` (False: it was not held)."""
        with self._lock:
            return self._held.pop(key, None) is not None

    def held(self) -> dict[str, tuple[str, int]]:
        """Instance key -> ``(stream id, epoch)`` of every instance published now."""
        with self._lock:
            return dict(self._held)

    def epochs(self) -> dict[str, int]:
        """Stream id -> the newest epoch held of it."""
        out: dict[str, int] = {}
        for sid, epoch in self.held().values():
            out[sid] = max(epoch, out.get(sid, 0))
        return out

    def send(self, topic: str, msg: dict[str, Any]) -> bool:
        key = msg.get("stream_id")
        with self._lock:
            held = self._held.get(key) if isinstance(key, str) and topic.endswith(f".{key}") else None
            if held is None:
                self.fenced += 1
                return False
            if is_terminal(msg):
                del self._held[key]
        assert isinstance(key, str)
        sid, epoch = held
        msg["stream_id"] = sid
        return self.inner.send(topic[: -len(key)] + sid, stamp(msg, epoch))

    def close(self) -> None:
        self.inner.close()
