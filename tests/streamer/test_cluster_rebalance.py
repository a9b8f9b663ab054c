"""Rebalancing without Ray: which stream moves where (``Assignment.next_rebalance``), and when
(``Rebalancer``: after a join, once the workers held still for the hold; one move at a time;
on demand at once). The moves themselves on a running cluster: ``test_cluster_rebalance_e2e.py``."""

from __future__ import annotations

from typing import Any

from configs.cluster import ClusterSettings
from streamer.cluster.assignment import Assignment
from streamer.cluster.rebalance import Rebalancer


class Shifts:
    """``Placement.shift`` on the bookkeeping alone; keeps every move."""

    def __init__(self, a: Assignment) -> None:
        self.a = a
        self.moves: list[dict[str, Any]] = []

    def shift(self, sid: str, to: str, cause: str) -> dict[str, Any]:
        old = self.a.sources[sid].worker
        self.a.displace(sid, cause)
        placed = self.a.place(sid, exclude=tuple(w for w in self.a.capacity if w != to))
        assert placed is not None and placed[0] == to
        move = {"stream": sid, "from": old, "to": to, "epoch": placed[1], "cause": cause}
        self.moves.append(move)
        return move


def cluster(streams: int, capacity: int = 8) -> Assignment:
    a = Assignment()
    a.add_worker("w0", capacity)
    for i in range(streams):
        a.add_source(f"cam{i}", f"rtsp://h/{i}")
        a.place(f"cam{i}")
    return a


def test_next_rebalance_evens_loads_within_the_tolerance_and_respects_capacity():
    a = cluster(5)
    assert a.next_rebalance() is None, "one worker: nothing to even"
    a.add_worker("w1", 8)
    assert a.plan_rebalance() == [("cam4", "w0", "w1"), ("cam3", "w0", "w1")], "newest first, to 3 + 2"
    assert a.plan_rebalance(tolerance=3) == [("cam4", "w0", "w1")]
    assert a.sources["cam4"].worker == "w0", "planning changes nothing"
    a.add_worker("w2", 1)
    assert [m[2] for m in a.plan_rebalance()] == ["w1", "w2", "w1"], "room counts: w2 takes one"
    # Weights: a stream as heavy as the gap would only swap the imbalance: it stays.
    b = Assignment()
    b.add_worker("w0", 8)
    b.add_source("big", "rtsp://h/big", weight=3)
    b.place("big")
    b.add_worker("w1", 8)
    assert b.plan_rebalance() == []


def test_the_rebalancer_waits_for_the_workers_to_hold_still_and_moves_one_at_a_time():
    a = cluster(4)
    shifts = Shifts(a)
    r = Rebalancer(a, shifts, ClusterSettings(rebalance_hold_s=10))  # type: ignore[arg-type]
    r.step(now=0.0)
    a.add_worker("w1", 8)
    r.step(now=1.0)
    a.drop_worker("w1")  # it flaps: gone again, and back
    r.step(now=3.0)
    a.add_worker("w1", 8)
    r.step(now=5.0)
    r.step(now=14.0)
    assert shifts.moves == [], "the workers changed 9 s ago: hold"
    r.step(now=15.0)
    assert [(m["stream"], m["to"]) for m in shifts.moves] == [("cam3", "w1")]
    assert shifts.moves[0]["cause"].startswith("rebalance: ") and "joined" in shifts.moves[0]["cause"]
    r.step(now=16.0)
    assert len(shifts.moves) == 1, "the next move waits until the previous stream resumed"
    shifts.moves[0]["resumed_at"] = 16.5
    r.step(now=17.0)
    assert [(m["stream"], m["to"]) for m in shifts.moves] == [("cam3", "w1"), ("cam2", "w1")]
    r.step(now=17.0 + 10.0)  # not resumed, but the hold passed: it goes on (and finds the loads even)
    r.step(now=40.0)
    assert len(shifts.moves) == 2 and (a.load("w0"), a.load("w1")) == (2, 2)


def test_rebalancing_on_demand_and_off():
    a = cluster(4)
    shifts = Shifts(a)
    r = Rebalancer(a, shifts, ClusterSettings(rebalance=False, rebalance_hold_s=10))  # type: ignore[arg-type]
    r.step(now=0.0)
    a.add_worker("w1", 8)
    r.step(now=100.0)
    assert shifts.moves == [], "automatic rebalancing is off"
    assert r.request() == {
        "planned": [{"stream": "cam3", "from": "w0", "to": "w1"}, {"stream": "cam2", "from": "w0", "to": "w1"}]
    }
    r.step(now=100.0)
    assert shifts.moves[0]["cause"].endswith("(asked)"), "on demand: no hold"
    shifts.moves[0]["resumed_at"] = 1.0
    r.step(now=101.0)
    r.step(now=200.0)
    assert [m["stream"] for m in shifts.moves] == ["cam3", "cam2"] and r.request() == {"planned": []}
