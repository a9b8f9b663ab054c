"""The bounded frame queue between a source's decode thread and its consumer."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class FrameBuffer(Generic[T]):
    """A bounded FIFO with two policies for a full queue, and an end.

    ``drop_oldest=True`` (live sources): ``put`` never blocks; when full, the oldest item is
    discarded and counted in ``dropped``, so the consumer always gets the freshest frames.
    ``drop_oldest=False`` (files): ``put`` blocks until there is room (backpressure).

    ``close()`` ends the stream: ``put`` is refused from then on (a blocked ``put`` wakes up
    and returns False), while ``get`` still returns what is queued, then None.

    Example:
        >>> buf = FrameBuffer(2, drop_oldest=True)
        >>> for i in range(3):
        ...     _ = buf.put(i)
        >>> buf.get(0), buf.dropped
        (1, 1)
    """

    def __init__(self, maxsize: int, *, drop_oldest: bool) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self._items: deque[T] = deque()
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item: T) -> bool:
        """Queue ``item``; False (item not queued) when the buffer is closed."""
        with self._cond:
            while not self._closed and len(self._items) >= self.maxsize:
                if self.drop_oldest:
                    self._items.popleft()
                    self.dropped += 1
                else:
                    self._cond.wait()
            if self._closed:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item; None when none arrives within ``timeout`` seconds (None = wait
        until an item arrives or the buffer is closed and empty)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """End the stream: refuse further puts and wake every waiter. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def drained(self) -> bool:
        """True once the buffer is closed and every queued item was taken."""
        with self._cond:
            return self._closed and not self._items

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
