"""Which node a new worker goes to: each alive Ray node holds as many workers as its declared
resources fit (what ``ray start --num-cpus/--num-gpus/--resources`` said, or what Ray
detected), and each new worker goes to the node with the most of those slots still free.

Why the driver chooses rather than Ray: Ray's ``DEFAULT`` strategy picks at random among
the few best nodes and its ``SPREAD`` is best effort, so neither says how many workers a
node of a given size gets; placement groups would hold resources for workers that are not
there (and re-place a lost node's bundles on their own). So each worker is created with
``NodeAffinitySchedulingStrategy(node_id, soft=True)`` (Ray's documented semantics: on that
node as long as it is alive and feasible, waiting there for free resources; if the node is
gone or infeasible, anywhere Ray finds room). When no node has a free slot the worker gets
no affinity and waits for room anywhere (a node that joins later takes it).

A node where one of the driver's workers was lost or died is suspect for ``SUSPECT_S``: new
workers go elsewhere meanwhile (or, if no other node has a free slot, wherever Ray finds
room). A killed node's raylet stays in Ray's list of alive nodes until Ray's own health
check gives up on it (16.4 s after the kill in the multi-node test); a replacement pinned there
in that time would wait on a node that is gone and die with it.

A node's slots count only what the driver's workers reserve (``num_cpus``, ``num_gpus``):
a worker never spans nodes, and 1.5 GPUs hold one 1-GPU worker.

Example:
    >>> rooms = [NodeRoom("head", "10.0.0.1", 1), NodeRoom("b", "10.0.0.2", 2)]
    >>> placed: list[str] = []
    >>> for _ in range(4):
    ...     placed.append(choose_node(rooms, placed))
    >>> placed
    ['b', 'head', 'b', None]
    >>> slots({"CPU": 16.0, "GPU": 2.0}, {"num_cpus": 2, "num_gpus": 1}), slots({"CPU": 3.0}, {"num_cpus": 1.5})
    (2, 2)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

RESERVED = {"num_cpus": "CPU", "num_gpus": "GPU"}
"""The actor options a worker reserves, and the Ray resource each one counts against."""
SUSPECT_S = 60.0
"""How long a node where a worker was lost or died takes no new worker by choice: longer
than Ray takes to declare a dead node dead (its health check: 5 missed checks 3 s apart by
default), short enough that a node that had one crash is used again soon."""


@dataclass(frozen=True)
class NodeRoom:
    """One alive node and how many workers its declared resources hold."""

    node_id: str
    address: str
    slots: int


def slots(resources: dict[str, float], reserve: dict[str, Any]) -> int:
    """Workers reserving ``reserve`` (actor options) that fit in a node's ``resources``
    (Ray counts resources to 1e-4: a little slack keeps 1.0 / 0.1 from becoming 9)."""
    fits = [
        int(float(resources.get(name, 0.0)) / float(reserve[option]) + 1e-6)
        for option, name in RESERVED.items()
        if float(reserve.get(option) or 0) > 0
    ]
    return min(fits) if fits else 0


def rooms(nodes: Iterable[dict[str, Any]], reserve: dict[str, Any]) -> list[NodeRoom]:
    """The alive nodes of ``ray.nodes()`` with their worker slots, in Ray's order."""
    return [
        NodeRoom(str(n["NodeID"]), str(n.get("NodeManagerAddress", "")), slots(n.get("Resources", {}), reserve))
        for n in nodes
        if n.get("Alive")
    ]


def choose_node(rooms: list[NodeRoom], placed: Iterable[str | None], avoid: Iterable[str] = ()) -> str | None:
    """The node for one more worker, given the nodes of the live workers (``placed``): the
    most free slots, then the lowest fill, then Ray's order, never one in ``avoid``; None
    when every other node is full."""
    count, skip = Counter(placed), set(avoid)
    free = [
        (-(r.slots - count[r.node_id]), count[r.node_id] / r.slots, i, r.node_id)
        for i, r in enumerate(rooms)
        if r.slots > count[r.node_id] and r.node_id not in skip
    ]
    return min(free)[3] if free else None


class Suspects:
    """Nodes where a worker was lost or died, and when (the driver's clock)."""

    def __init__(self, hold_s: float = SUSPECT_S) -> None:
        self.hold_s = hold_s
        self._at: dict[str, float] = {}

    def mark(self, node_id: str | None, now_s: float) -> None:
        if node_id is not None:
            self._at[node_id] = now_s

    def now(self, now_s: float) -> set[str]:
        """The nodes still suspect at ``now_s``."""
        return {n for n, t in self._at.items() if now_s - t < self.hold_s}


def affinity(node_id: str | None) -> dict[str, Any]:
    """The actor options that pin a worker to ``node_id`` (none for None)."""
    if node_id is None:
        return {}
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=True)}


def next_node(
    placed: Iterable[str | None], reserve: dict[str, Any], avoid: Iterable[str] = ()
) -> tuple[str | None, list[NodeRoom]]:
    """Ask Ray for its alive nodes now and choose the node of one more worker; also the
    nodes, for the log."""
    import ray

    found = rooms(ray.nodes(), reserve)
    return choose_node(found, placed, avoid), found
