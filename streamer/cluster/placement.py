"""Streams changing hands: placing a source on a worker under a new epoch, moving the
streams of a lost or dead worker, moving one stream to another worker (rebalancing:
``shift``), removing a source, and reading what the forwarder saw
(epochs that ended, first messages of moved streams). The driver calls it with its lock
held; it talks to the workers through Ray and to subscribers through the forwarder.

A move, in order: the old epoch is fenced at the forwarder and its open episodes and tracks
end (``close``); the stream is placed on the least-filled live worker with room, a ``moved``
event names it and the new epoch, the new epoch opens at the forwarder, and only then is the
worker told to start the stream (``place``), on the cluster's current engine version
(``engines``: the worker brings its engine up to it first). Every step that publishes runs on the
forwarder's thread (``Forwarder.call``), so it is atomic with the traffic.

Example (plain text: needs Ray and workers)::

    placement = Placement(assignment, forwarder, board, workers)
    placement.move_away("w1", "worker w1 gone: ActorDiedError")
    placement.place_pending()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from streamer.cluster.assignment import Assignment, SourceState
from streamer.cluster.engines import EngineChanger
from streamer.cluster.forwarder import Forwarder
from streamer.cluster.handover import close_tracks, ended_event, moved_event
from streamer.cluster.workers import WorkerSlot, error_text
from streamer.output.state import StateBoard

log = logging.getLogger("streamer.cluster")

Terminal = tuple[int, str, str | None]
"""``(epoch, kind, reason)`` of a stream's terminal event that passed the forwarder."""


class Placement:
    """Places, moves and removes streams; keeps the record of every move and its gap."""

    def __init__(
        self, assignment: Assignment, forwarder: Forwarder, board: StateBoard, workers: dict[str, WorkerSlot]
    ) -> None:
        self.assignment = assignment
        self.forwarder = forwarder
        self.board = board
        self.workers = workers
        self.engines: EngineChanger | None = None
        """The cluster's engine version: assignments carry it, the driver's messages its fingerprint."""
        self.moves: list[dict[str, Any]] = []
        self.calls: dict[Any, tuple[str, str, int, str]] = {}
        """Outstanding ``assign``/``remove`` calls: ref -> (op, stream, epoch, worker)."""
        self.on_epoch: Callable[[str, int, str], None] | None = None
        """Told ``(stream, epoch, worker)`` of each epoch handed out, before anyone hears of it
        (``streamer.cluster.memory`` keeps it, so a restarted driver never hands it out again)."""

    # ---- placing

    def place_pending(self) -> None:
        for sid in self.assignment.pending():
            self.place(sid)

    def place(self, sid: str, exclude: tuple[str, ...] = ()) -> None:
        """Give a pending source to the least-filled worker with room (not in ``exclude``), if any."""
        src = self.assignment.sources[sid]
        placed = self.assignment.place(sid, exclude)
        if placed is None:
            return
        wid, epoch = placed
        if self.on_epoch is not None:
            self.on_epoch(sid, epoch, wid)
        msgs = []
        if src.displaced:
            msgs.append(moved_event(sid, self._engine_of(sid), src.previous, wid, epoch, src.displaced))
            for move in reversed(self.moves):
                if move["stream"] == sid:
                    move.update(to=wid, epoch=epoch, placed_at=time.time())
                    break
            log.warning("stream %s moved %s -> %s (epoch %d): %s", sid, src.previous, wid, epoch, src.displaced)
            src.displaced = None
        fwd = self.forwarder

        def open_epoch() -> None:
            fwd.set_epoch(sid, epoch)
            for topic, msg in msgs:
                fwd.publish(topic, msg)

        fwd.call(open_epoch)
        order = self.engines.current.order() if self.engines is not None else (0, None)
        ref = self.workers[wid].actor.assign.remote(sid, src.uri, epoch, *order)
        self.calls[ref] = ("assign", sid, epoch, wid)

    def move_away(self, worker: str, cause: str, *, replace: bool = True, avoid: tuple[str, ...] = ()) -> None:
        """Fence and close ``worker``'s streams; with ``replace``, place them elsewhere,
        on a worker not in ``avoid`` while one has room (one with no room yet waits, and a
        ``moved`` event with no ``to`` says so)."""
        moved, removed = self.assignment.drop_worker(worker, cause)
        for sid in removed:
            self.close(sid, self.assignment.sources[sid].epoch, "removed", terminal="removed")
        for sid in moved:
            src = self.assignment.sources[sid]
            closed = self.close(sid, src.epoch, "worker_lost")
            if closed is not None:  # it had ended on its own just before: nothing to move
                self.assignment.finish(sid, src.epoch, closed[1], closed[2])
                continue
            self._record(sid, worker, cause)
            if not replace:
                continue
            self.place(sid, exclude=avoid)
            if avoid and src.state == SourceState.PENDING:  # none outside ``avoid`` has room
                self.place(sid)
            if src.displaced:  # no worker has room: say so, it waits
                self.publish([moved_event(sid, self._engine_of(sid), worker, None, None, cause)])
                src.displaced = f"{cause} (waited for a worker with room)"

    def shift(self, sid: str, to: str, cause: str) -> dict[str, Any] | None:
        """Move a running stream off its live worker onto ``to`` (rebalancing), with a lost
        worker's handover: its epoch fenced and its tracks ended here, the old worker told to
        revoke it, then placed under the next epoch. The move's record (None: it had just
        ended, nothing moved)."""
        src = self.assignment.sources[sid]
        worker, epoch = src.worker, src.epoch
        assert worker is not None, src
        closed = self.close(sid, epoch, "rebalanced")
        if closed is not None:
            self.assignment.finish(sid, epoch, closed[1], closed[2])
            return None
        ref = self.workers[worker].actor.revoke.remote(sid, epoch)
        self.calls[ref] = ("revoke", sid, epoch, worker)
        self.assignment.displace(sid, cause)
        move = self._record(sid, worker, cause)
        self.place(sid, exclude=tuple(w for w in self.assignment.capacity if w != to))
        if src.displaced:  # no room after all: it waits, like any displaced stream
            self.publish([moved_event(sid, self._engine_of(sid), worker, None, None, cause)])
        return move

    def _record(self, sid: str, worker: str, cause: str) -> dict[str, Any]:
        last = self.forwarder.last_seen(sid)
        move = {
            "stream": sid,
            "from": worker,
            "to": None,
            "epoch": None,
            "cause": cause,
            "at": time.time(),
            "silent_s": None if last is None else round(time.monotonic() - last, 3),
            "gap_s": None,
        }
        self.moves.append(move)
        return move

    # ---- removing

    def remove(self, sid: str) -> None:
        """Stop a source: its worker ends it (``ended``, reason ``removed``)."""
        src = self.assignment.removing(sid)
        if src.state == SourceState.REMOVING and src.worker is not None:
            ref = self.workers[src.worker].actor.remove.remote(sid, src.epoch)
            self.calls[ref] = ("remove", sid, src.epoch, src.worker)

    # ---- publishing through the forwarder

    def close(
        self, sid: str, epoch: int, reason: str, *, terminal: str | None = None, closed_ok: bool = False
    ) -> Terminal | None:
        """Fence ``epoch`` of ``sid`` and end its open tracks (and the stream, with
        ``terminal``) on the subscribers' side. When its terminal event already passed:
        nothing is published; returns that ``(epoch, kind, reason)``. ``closed_ok``: close a
        stream the subscribers still hold even when no epoch is open (a displaced one)."""
        fwd, board = self.forwarder, self.board

        def close() -> Terminal | None:
            stream = board.snapshot()["streams"].get(sid)
            if fwd.epoch(sid) != epoch and not (closed_ok and fwd.epoch(sid) is None and stream is not None):
                return fwd.terminal(sid)
            fwd.set_epoch(sid, None)
            engine = self._engine_of(sid, stream)
            for topic, msg in close_tracks(stream, sid, epoch, engine, reason):
                fwd.publish(topic, msg)
            if terminal is not None and stream is not None:
                fwd.publish(*ended_event(sid, engine, epoch, terminal))
            return None

        return fwd.call(close)

    def publish(self, msgs: list[tuple[str, dict[str, Any]]]) -> None:
        fwd = self.forwarder
        fwd.call(lambda: [fwd.publish(t, m) for t, m in msgs])

    def _engine_of(self, sid: str, stream: dict[str, Any] | None = None) -> str:
        """The fingerprint to put on the driver's messages about ``sid``: the cluster's current
        engine (no stream has a newer one: its fingerprint never goes back)."""
        started = (stream or {}).get("started") or {}
        current = self.engines.current.fingerprint if self.engines is not None else None
        return current or started.get("engine") or "0" * 12

    # ---- what came back

    def drain_notices(self) -> None:
        """Streams that ended (their terminal event passed) and moved streams that resumed."""
        while not self.forwarder.notices.empty():
            n = self.forwarder.notices.get_nowait()
            if n.what == "ended":
                if self.assignment.finish(n.stream_id, n.epoch, n.kind or "ended", n.reason):
                    log.info("stream %s %s (%s)", n.stream_id, n.kind, n.reason)
                continue
            for move in self.moves:
                if move["stream"] == n.stream_id and move["epoch"] == n.epoch and move["gap_s"] is None:
                    move["gap_s"] = None if n.previous_s is None else round(n.at_s - n.previous_s, 3)
                    move["resumed_at"] = time.time()
                    log.info(
                        "stream %s resumed on %s (epoch %d): no message for %s s",
                        n.stream_id,
                        move["to"],
                        n.epoch,
                        move["gap_s"],
                    )

    def check_calls(self, ready: set[Any]) -> None:
        """Results of ``assign``/``remove`` calls: a refused assignment goes back to pending
        (not on that worker next); a removal of a stream that was not running ends it here."""
        import ray

        for ref in [r for r in self.calls if r in ready]:
            op, sid, epoch, wid = self.calls.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError:
                continue  # the worker is gone: its lifetime call says so
            except ray.exceptions.RayError as e:
                log.error("worker %s: %s %s (epoch %d) failed: %s", wid, op, sid, epoch, error_text(e))
                src = self.assignment.sources.get(sid)
                if op == "assign" and src is not None and src.state == SourceState.ASSIGNED and src.epoch == epoch:
                    self.close(sid, epoch, "worker_lost")
                    self.assignment.unplace(sid, error_text(e))
                continue
            closed = op == "remove" and not result.get("running")
            if closed and self.close(sid, epoch, "removed", terminal="removed") is None:
                self.assignment.finish(sid, epoch, "removed", "removed")
