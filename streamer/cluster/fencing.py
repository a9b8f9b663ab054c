"""A worker's half of the fence: ``FencedPublisher`` publishes a stream only while the
worker holds its assignment epoch, and stamps every message with that epoch and with
cluster-wide track ids (``streamer.cluster.epochs``).

The driver hands each assignment of a stream to a worker a new epoch (1, 2, ... per stream).
A message of a stream the worker does not hold (revoked, or never assigned) is dropped and
counted here. The forwarder's half (``streamer.cluster.forwarder``) drops the stale epochs
that a worker which does not yet know it lost a stream (a stalled or partitioned one) still
sends.

Example:
    >>> from streamer.pipeline import NullPublisher
    >>> pub = FencedPublisher(NullPublisher())
    >>> pub.send("faces.cam0", {"type": "faces", "stream_id": "cam0", "faces": []}), pub.fenced
    (False, 1)
    >>> pub.hold("cam0", 2)
    >>> msg = {"type": "faces", "stream_id": "cam0", "faces": [{"track_id": 4}]}
    >>> pub.send("faces.cam0", msg), msg["epoch"], msg["faces"][0]["track_id"]
    (True, 2, 4294967300)
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from streamer.base import Publisher
from streamer.cluster.epochs import is_terminal, stamp
from streamer.values import PublisherStats

log = logging.getLogger(__name__)


class FencedPublisher(Publisher):
    """Publishes only the streams this worker holds, each message stamped with its epoch.

    ``hold(sid, epoch)`` before the stream starts; ``revoke(sid)`` stops its messages at
    once (the driver moved it); after a stream's terminal event its epoch is released here,
    since nothing of that epoch may follow.
    """

    def __init__(self, inner: Publisher) -> None:
        self.inner = inner
        self.fenced = 0
        """Messages dropped because this worker did not hold their stream's epoch."""
        self._epochs: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def stats(self) -> PublisherStats:  # type: ignore[override]
        return self.inner.stats

    @property
    def queue_depth(self) -> int:
        return self.inner.queue_depth

    def hold(self, stream_id: str, epoch: int) -> None:
        with self._lock:
            self._epochs[stream_id] = epoch

    def revoke(self, stream_id: str) -> int | None:
        """Stop publishing ``stream_id``; the epoch it had (None: not held)."""
        with self._lock:
            return self._epochs.pop(stream_id, None)

    def epochs(self) -> dict[str, int]:
        with self._lock:
            return dict(self._epochs)

    def send(self, topic: str, msg: dict[str, Any]) -> bool:
        sid = msg.get("stream_id")
        with self._lock:
            epoch = self._epochs.get(sid) if isinstance(sid, str) else None
            if epoch is None:
                self.fenced += 1
                return False
            if is_terminal(msg):
                del self._epochs[sid]
        return self.inner.send(topic, stamp(msg, epoch))

    def close(self) -> None:
        self.inner.close()
