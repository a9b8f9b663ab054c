"""Which worker serves which source, under which epoch: the driver's single source of truth
(no Ray, no sockets: plain bookkeeping, tested on its own).

Each source (a ``SourceRecord``, its ``SourceState``) is ``pending`` (waiting for capacity),
``assigned`` to one worker under one epoch, ``removing`` (asked to stop; its terminal event
is awaited), or finished (``ended``, ``failed``, ``removed``). Every assignment of a source
takes the next epoch of that source. A worker takes sources up to its capacity (``weight``
units each); a new one goes to the worker with the lowest fill (then fewest streams, then
oldest), so streams spread evenly. When a worker joins, ``next_rebalance`` names the stream
to move to it, one at a time, until loads are even within a tolerance.

Example:
    >>> a = Assignment()
    >>> a.add_worker("w0", 2); a.add_worker("w1", 2)
    >>> for sid in ("cam0", "cam1", "cam2"):
    ...     _ = a.add_source(sid, f"rtsp://h/{sid}")
    >>> [a.place(sid) for sid in a.pending()]
    [('w0', 1), ('w1', 1), ('w0', 1)]
    >>> a.drop_worker("w0"), a.place("cam0"), a.place("cam2")
    ((['cam0', 'cam2'], []), ('w1', 2), None)
    >>> a.add_worker("w2", 2); a.place("cam2"); a.plan_rebalance()   # a worker joins: loads 2, 1
    ('w2', 2)
    []
    >>> a.add_worker("w3", 2); a.plan_rebalance()                    # another: 2, 1, 0
    [('cam0', 'w1', 'w3')]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from enum import StrEnum

from configs.core.errors import ConfigError


class SourceState(StrEnum):
    """Where a source stands (its value is what ``streamer cluster status`` shows)."""

    PENDING = "pending"
    """Waiting for a worker with room."""
    ASSIGNED = "assigned"
    """Served by one worker under one epoch."""
    REMOVING = "removing"
    """Asked to stop; its terminal event is awaited."""
    ENDED = "ended"
    FAILED = "failed"
    REMOVED = "removed"

    @property
    def active(self) -> bool:
        return self in ACTIVE

    @property
    def running(self) -> bool:
        """On a worker (assigned, or being removed there)."""
        return self in (SourceState.ASSIGNED, SourceState.REMOVING)


ACTIVE = (SourceState.PENDING, SourceState.ASSIGNED, SourceState.REMOVING)


@dataclass
class SourceRecord:
    """One source as the driver knows it."""

    stream_id: str
    uri: str
    weight: int = 1
    state: SourceState = SourceState.PENDING
    worker: str | None = None
    epoch: int = 0
    """The last epoch handed out (0: never assigned)."""
    reason: str | None = None
    """Why it finished, or why it is pending."""
    previous: str | None = None
    """The worker it last ran on."""
    displaced: str | None = None
    """Why it lost its worker, until it runs on another (the ``moved`` event's reason)."""
    avoid: str | None = None
    """A worker that refused it: not chosen for its next placement."""
    since_s: float = field(default_factory=time.time)

    @property
    def active(self) -> bool:
        return self.state.active


class Assignment:
    """Sources, workers' capacities, and who serves what."""

    def __init__(self) -> None:
        self.sources: dict[str, SourceRecord] = {}
        self.capacity: dict[str, int] = {}
        """Workers that take streams, with their capacity in weight units (insertion = age)."""

    # ---- workers

    def add_worker(self, worker: str, capacity: int) -> None:
        self.capacity[worker] = capacity

    def drop_worker(self, worker: str, cause: str = "worker lost") -> tuple[list[str], list[str]]:
        """The worker takes nothing more. Its active sources go back to pending, displaced by
        ``cause`` (first list), except those being removed, which finish as removed (second)."""
        self.capacity.pop(worker, None)
        moved, removed = [], []
        for s in self.sources.values():
            if s.worker == worker and s.active:
                if s.state == SourceState.REMOVING:
                    self._finish(s, SourceState.REMOVED, "removed")
                    removed.append(s.stream_id)
                    continue
                s.state, s.worker, s.previous, s.since_s = SourceState.PENDING, None, worker, time.time()
                s.displaced = cause
                moved.append(s.stream_id)
        return moved, removed

    def load(self, worker: str) -> int:
        return sum(s.weight for s in self.sources.values() if s.worker == worker and s.active)

    def streams_of(self, worker: str) -> list[str]:
        return sorted(s.stream_id for s in self.sources.values() if s.worker == worker and s.active)

    # ---- sources

    def add_source(self, stream_id: str, uri: str, weight: int = 1) -> SourceRecord:
        """A new source, pending. ConfigError when an active source has that id."""
        old = self.sources.get(stream_id)
        if old is not None and old.active:
            raise ConfigError(f"stream id {stream_id!r} is in use")
        src = SourceRecord(stream_id, uri, weight, epoch=old.epoch if old else 0)
        self.sources[stream_id] = src
        return src

    def pending(self) -> list[str]:
        return [s.stream_id for s in self.sources.values() if s.state == SourceState.PENDING]

    def place(self, stream_id: str, exclude: tuple[str, ...] = ()) -> tuple[str, int] | None:
        """Assign a pending source to the least-filled worker with room: ``(worker, epoch)``,
        or None when no worker has room (it stays pending)."""
        src = self.sources[stream_id]
        assert src.state == SourceState.PENDING, src
        fits = [
            (self.load(w) / cap, len(self.streams_of(w)), i, w)
            for i, (w, cap) in enumerate(self.capacity.items())
            if w not in exclude and w != src.avoid and self.load(w) + src.weight <= cap
        ]
        if not fits:
            return None
        worker = min(fits)[3]
        src.state, src.worker, src.epoch, src.since_s = SourceState.ASSIGNED, worker, src.epoch + 1, time.time()
        src.avoid = None
        return worker, src.epoch

    def next_rebalance(self, tolerance: int = 1) -> tuple[str, str, str] | None:
        """The next stream to move to even the loads: ``(stream, from, to)``, from the most
        loaded worker to the least loaded one with room, when their loads differ by more than
        ``tolerance``; None when even. Each move strictly narrows the gap (a stream lighter
        than it), so repeated moves end."""
        if len(self.capacity) < 2:
            return None
        loads = {w: self.load(w) for w in self.capacity}
        order = list(self.capacity)
        heavy = max(order, key=lambda w: (loads[w], len(self.streams_of(w))))
        light = min(order, key=lambda w: (loads[w], order.index(w)))
        gap = loads[heavy] - loads[light]
        if gap <= tolerance:
            return None
        room = self.capacity[light] - loads[light]
        movable = [
            s
            for s in self.sources.values()
            if s.worker == heavy and s.state == SourceState.ASSIGNED and s.weight < gap and s.weight <= room
        ]
        if not movable:
            return None
        src = max(movable, key=lambda s: (s.weight, s.since_s))  # the heaviest that helps, then the newest
        return src.stream_id, heavy, light

    def plan_rebalance(self, tolerance: int = 1) -> list[tuple[str, str, str]]:
        """Every move ``next_rebalance`` would make, in order (nothing changes here)."""
        trial, moves = Assignment(), []
        trial.capacity = dict(self.capacity)
        trial.sources = {k: replace(v) for k, v in self.sources.items()}
        while (move := trial.next_rebalance(tolerance)) is not None:
            moves.append(move)
            trial.sources[move[0]].worker = move[2]
        return moves

    def displace(self, stream_id: str, cause: str) -> None:
        """Take an assigned source off its (live) worker: pending again, displaced by
        ``cause`` (the ``moved`` event's reason), not placed back on that worker next."""
        src = self.sources[stream_id]
        assert src.state == SourceState.ASSIGNED, src
        src.state, src.previous, src.avoid, src.worker = SourceState.PENDING, src.worker, src.worker, None
        src.displaced, src.since_s = cause, time.time()

    def unplace(self, stream_id: str, reason: str) -> None:
        """An assignment that did not take (the worker refused): pending again, not on that
        worker next time."""
        src = self.sources[stream_id]
        src.state, src.previous, src.avoid, src.worker = SourceState.PENDING, src.worker, src.worker, None
        src.reason = reason

    def removing(self, stream_id: str) -> SourceRecord:
        """Mark an active source for removal. ConfigError when none runs under that id."""
        src = self.sources.get(stream_id)
        if src is None or not src.active or src.state == SourceState.REMOVING:
            raise ConfigError(f"no running stream {stream_id!r}")
        if src.state == SourceState.PENDING:
            self._finish(src, SourceState.REMOVED, "removed")
        else:
            src.state = SourceState.REMOVING
        return src

    def finish(self, stream_id: str, epoch: int, kind: str, reason: str | None) -> bool:
        """The terminal event of ``epoch`` passed (``kind``: ended or failed): the source is
        done (False: a stale epoch)."""
        src = self.sources.get(stream_id)
        if src is None or src.epoch != epoch or not src.active:
            return False
        self._finish(src, SourceState.REMOVED if src.state == SourceState.REMOVING else SourceState(kind), reason)
        return True

    def _finish(self, src: SourceRecord, state: SourceState, reason: str | None) -> None:
        src.state, src.reason, src.previous, src.worker, src.since_s = state, reason, src.worker, None, time.time()

    def active(self) -> list[SourceRecord]:
        return [s for s in self.sources.values() if s.active]

    def running(self) -> list[str]:
        """The streams on a worker now (assigned or being removed), sorted."""
        return sorted(s.stream_id for s in self.sources.values() if s.state.running)
