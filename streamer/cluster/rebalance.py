"""Rebalancing: when a worker joins (a new or replacement worker ready, a lost one rejoined),
streams move to it until the workers' loads are even within ``cluster.rebalance_tolerance``;
``request`` (``streamer cluster rebalance``) does it on demand. Each move is a
``Placement.shift``: the same handover and fencing as a lost worker's move, under the next
epoch, with a ``moved`` event whose reason starts with ``rebalance``.

Damped, so that a flapping worker moves nothing and moves never pile up: automatic moves
start only once the set of ready workers has not changed for ``rebalance_hold_s``, and one
move runs at a time (the next waits until the previous stream resumed on its new worker, or
``rebalance_hold_s`` passed). Which stream moves where: ``Assignment.next_rebalance`` (each
move strictly narrows the gap, so rebalancing ends).

Example (plain text: needs a driver)::

    rebalancer = Rebalancer(assignment, placement, settings.cluster)
    rebalancer.step()                  # each tick of the driver's loop, its lock held
    rebalancer.request()               # on demand: the moves it will make
"""

from __future__ import annotations

import logging
import time
from typing import Any

from configs.cluster import ClusterSettings
from streamer.cluster.assignment import Assignment
from streamer.cluster.placement import Placement

log = logging.getLogger("streamer.cluster")


class Rebalancer:
    """Moves streams to even the workers' loads: after a join (damped), or when asked."""

    def __init__(self, assignment: Assignment, placement: Placement, cs: ClusterSettings) -> None:
        self.assignment = assignment
        self.placement = placement
        self.cs = cs
        self._workers: frozenset[str] = frozenset()
        self._changed_s = time.monotonic()
        self._joined = False
        """A worker joined since the loads were last even."""
        self._asked = False
        """``request`` was called: rebalance now, whatever ``cs.rebalance`` says."""
        self._move: dict[str, Any] | None = None
        self._move_s = 0.0

    def request(self) -> dict[str, Any]:
        """Rebalance now (no hold): the moves planned, ``(stream, from, to)``."""
        planned = self.assignment.plan_rebalance(self.cs.rebalance_tolerance)
        self._asked = bool(planned)
        return {"planned": [{"stream": s, "from": a, "to": b} for s, a, b in planned]}

    def step(self, now: float | None = None) -> None:
        """Start the next move when one is due; called each tick (the driver's lock held)."""
        now = time.monotonic() if now is None else now
        workers = frozenset(self.assignment.capacity)
        if workers != self._workers:
            self._joined |= bool(workers - self._workers)
            self._workers, self._changed_s = workers, now
        if self._busy(now):
            return
        due = self._asked or (self.cs.rebalance and self._joined and now - self._changed_s >= self.cs.rebalance_hold_s)
        if not due:
            return
        move = self.assignment.next_rebalance(self.cs.rebalance_tolerance)
        if move is None:
            self._asked = self._joined = False
            return
        sid, heavy, light = move
        loads = f"{self.assignment.load(heavy)} on {heavy}, {self.assignment.load(light)} on {light}"
        cause = f"rebalance: {loads}" + (" (asked)" if self._asked else " (a worker joined)")
        self._move, self._move_s = self.placement.shift(sid, light, cause), now

    def _busy(self, now: float) -> bool:
        """A move is under way: its stream has not resumed yet (for at most the hold)."""
        if self._move is None:
            return False
        src = self.assignment.sources.get(self._move["stream"])
        done = (
            self._move.get("resumed_at") is not None
            or src is None
            or not src.state.running
            or src.epoch != self._move.get("epoch")
            or now - self._move_s >= max(self.cs.rebalance_hold_s, 1.0)
        )
        if done:
            self._move = None
        return not done
