"""The streamer's queues: one closable, condition-guarded mechanism for every hand-off between
threads, and a worker thread that drains one into a handler.

``BoundedQueue`` holds items between a producer and a consumer with a policy for a full
queue: ``block`` (files: backpressure), ``drop_oldest`` (live sources: the consumer always
gets the freshest frames) or ``drop_newest`` (publisher, preview: the producer never waits).
Drops are counted. ``close()`` ends it: puts are refused (a blocked ``put`` wakes up), gets
return what is queued, then None. ``QueueWorker`` runs one thread per queue and ends it by
closing the queue instead of a sentinel.

Example:
    >>> q = BoundedQueue(2, "drop_oldest")
    >>> for i in range(3):
    ...     _ = q.put(i)
    >>> q.get(0), q.dropped
    (1, 1)
    >>> q.close(); q.get(0), q.get(0), q.drained
    (2, None, True)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, Literal, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
FullPolicy = Literal["block", "drop_oldest", "drop_newest"]


class Closable:
    """A condition variable with an end: the shared core of every queue here."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._closed = False

    def close(self) -> None:
        """End it: refuse further input and wake every waiter. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _wait(self, ready: Callable[[], bool], timeout_s: float | None) -> bool:
        """With the lock held: wait until ``ready()`` or closed, at most ``timeout_s`` (None =
        no limit). Returns ``ready()``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not ready() and not self._closed:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            self._cond.wait(remaining)
        return ready()


class BoundedQueue(Closable, Generic[T]):
    """A bounded FIFO with a policy for a full queue, a drop counter and an end."""

    def __init__(self, maxsize: int, policy: FullPolicy) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        super().__init__()
        self.maxsize = maxsize
        self.policy = policy
        self.dropped = 0
        self._items: deque[T] = deque()

    def put(self, item: T) -> bool:
        """Queue ``item``; False when it was not queued (closed, or full under drop_newest)."""
        with self._cond:
            if self.policy == "block":
                self._wait(lambda: len(self._items) < self.maxsize, None)
            if self._closed:
                return False
            if len(self._items) >= self.maxsize:
                self.dropped += 1
                if self.policy == "drop_newest":
                    return False
                self._items.popleft()
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item; None when none arrives within ``timeout`` seconds (None = wait
        until an item arrives or the queue is closed and empty)."""
        with self._cond:
            if not self._wait(lambda: bool(self._items), timeout):
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def drained(self) -> bool:
        """True once the queue is closed and every queued item was taken."""
        with self._cond:
            return self._closed and not self._items

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class QueueWorker(Generic[T]):
    """One thread that hands every item of a queue (``drop_newest`` unless told otherwise) to
    ``handle``; a raising handler is logged and counted in ``errors``, never fatal.

    ``setup`` runs first on the worker's thread (to own a socket or a file there); if it
    raises, the worker ends and ``setup_error`` holds the exception (read it after
    ``started`` is set). ``close()`` lets it finish what is queued, calls ``finish`` on the
    worker's thread and joins.
    """

    def __init__(
        self,
        name: str,
        maxsize: int,
        handle: Callable[[T], None],
        *,
        setup: Callable[[], None] | None = None,
        finish: Callable[[], None] | None = None,
        policy: FullPolicy = "drop_newest",
    ) -> None:
        self.queue: BoundedQueue[T] = BoundedQueue(maxsize, policy)
        self.errors = 0
        self.started = threading.Event()
        self.setup_error: BaseException | None = None
        self._handle = handle
        self._setup = setup
        self._finish = finish
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> bool:
        """Queue ``item`` without waiting; False when the queue is full (counted) or closed."""
        return self.queue.put(item)

    @property
    def dropped(self) -> int:
        return self.queue.dropped

    def _run(self) -> None:
        try:
            if self._setup is not None:
                self._setup()
        except Exception as e:  # reported to the owner through setup_error
            self.setup_error = e
            self.queue.close()
            return
        finally:
            self.started.set()
        try:
            while (item := self.queue.get()) is not None:
                try:
                    self._handle(item)
                except Exception:  # one bad item must not stop the worker
                    self.errors += 1
                    log.exception("%s: an item failed; skipped", self._thread.name)
        finally:
            if self._finish is not None:
                self._finish()

    def close(self) -> None:
        """Finish what is queued, then stop. Idempotent."""
        self.queue.close()
        if self._thread is not threading.current_thread():
            self._thread.join()
