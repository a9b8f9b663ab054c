"""The forwarder's one ``seq`` per topic, and the lease that lets it survive a driver restart
without ever repeating (no Ray, no sockets: tested on its own).

``TopicSeqs`` numbers each topic from ``floor`` (0 for a fresh cluster) in memory. A driver
that keeps its state in the Ray cluster (``streamer.cluster.memory``) cannot save every
``seq`` it sends (one write per message), so ``LeasedSeqs`` works from a **lease**: one bound
``B``, saved before any ``seq`` at or above it is used, so every topic's ``seq`` stays below
the saved bound. A restarted driver numbers every topic from the last saved bound: ``seq``
goes on increasing on every topic, with a gap (at most ``block`` on the fastest topic, more on
quiet ones) and never a repeat. The lease is extended ahead of need, on a thread of its own,
once the highest ``seq`` is within half a block of the bound; the forwarder waits only when a
topic reaches the bound before the extension was saved (the store unreachable, or a burst of
more than half a block before one write came back).

Example:
    >>> saved = []
    >>> seqs = LeasedSeqs(100, saved.append, block=10)    # the previous driver's bound: 100
    >>> saved                                             # leased before the first seq
    [110]
    >>> [seqs.take("faces.cam0") for _ in range(3)], seqs.take("events.cam0"), seqs.take("faces.cam0", gap=2)
    ([100, 101, 102], 100, 105)
    >>> seqs.wait_saved(); saved[-1] > 105                # half a block from the bound: extended
    True
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

log = logging.getLogger("streamer.cluster")

SEQ_BLOCK = 1000
"""``seq`` values leased per write: a restart skips at most this many on the busiest topic;
a topic at 30 messages per second extends the lease about every 17 s."""
RETRY_S = 1.0
"""Wait between two attempts to save a lease extension the store refused."""


class TopicSeqs:
    """One ``seq`` per topic, from ``floor`` up, a publisher's gap carried over as a gap."""

    def __init__(self, floor: int = 0) -> None:
        self.floor = floor
        self._next: dict[str, int] = {}

    def take(self, topic: str, gap: int = 0) -> int:
        """The next ``seq`` of ``topic``, ``gap`` values after the last one."""
        seq = self._next.get(topic, self.floor) + gap
        self._next[topic] = seq + 1
        return seq

    def last(self) -> dict[str, int]:
        """The last ``seq`` taken per topic."""
        return {topic: n - 1 for topic, n in self._next.items()}

    def close(self) -> None:
        """Nothing to release."""


class LeasedSeqs(TopicSeqs):
    """``TopicSeqs`` that never uses a ``seq`` at or above the bound ``save`` last saved."""

    def __init__(self, floor: int, save: Callable[[int], None], block: int = SEQ_BLOCK) -> None:
        super().__init__(floor)
        self.block = block
        self._save = save
        self._lock = threading.Lock()
        self._pending: Future[None] | None = None
        self._closed = False
        self.waits = 0
        """Times a topic reached the bound before its extension was saved (the forwarder waited)."""
        save(floor + block)  # before anything is sent: the first lease
        self.bound = floor + block
        """Every ``seq`` taken is below it, and it is saved."""

    def take(self, topic: str, gap: int = 0) -> int:
        seq = super().take(topic, gap)
        while True:
            with self._lock:
                if self._pending is None and seq + self.block // 2 >= self.bound:
                    self._pending = self._extend(seq + self.block)
                if seq < self.bound or self._closed:
                    return seq
                pending = self._pending
            self.waits += 1
            assert pending is not None
            pending.result()

    def wait_saved(self) -> None:
        """Until no extension is on its way (tests, and a clean stop)."""
        with self._lock:
            pending = self._pending
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Stop retrying a save that keeps failing (the driver is stopping)."""
        self._closed = True

    def _extend(self, bound: int) -> Future[None]:
        """Save ``bound`` on a thread of its own (retrying until it is saved); the bound moves
        up only once it is."""
        fut: Future[None] = Future()

        def save() -> None:
            while True:
                try:
                    self._save(bound)
                    break
                except Exception as e:  # the store unreachable: no seq past the old bound meanwhile
                    if self._closed:
                        break
                    log.warning("cluster: cannot save the seq lease (%s); retrying", e)
                    time.sleep(RETRY_S)
            with self._lock:
                if not self._closed:
                    self.bound = max(self.bound, bound)
                self._pending = None
            fut.set_result(None)

        threading.Thread(target=save, name="seq-lease", daemon=True).start()
        return fut
