"""Where workers go (``streamer/cluster/nodes.py``), without Ray: each node's worker slots
from its declared resources, the node chosen for each new worker, and the supervisor pinning
new workers there (the multi-node end-to-end test: ``test_cluster_nodes_e2e.py``)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from configs import load_settings
from streamer.cli.cluster import status_text
from streamer.cluster import supervisor as supervisor_module
from streamer.cluster.assignment import Assignment
from streamer.cluster.nodes import NodeRoom, Suspects, choose_node, rooms, slots
from streamer.cluster.supervisor import Supervisor
from streamer.cluster.workers import WorkerSlot, WorkerState

GPU_WORKER = {"num_cpus": 0.5, "num_gpus": 1}
CPU_WORKER = {"num_cpus": 2.0, "num_gpus": 0}


def ray_node(node_id: str, alive: bool = True, **resources: float) -> dict[str, Any]:
    return {"NodeID": node_id, "Alive": alive, "NodeManagerAddress": f"10.0.0.{len(node_id)}", "Resources": resources}


@pytest.mark.parametrize(
    ("resources", "reserve", "expected"),
    [
        ({"CPU": 2.0, "GPU": 1.0}, GPU_WORKER, 1),  # the GPUs decide
        ({"CPU": 1.0, "GPU": 4.0}, GPU_WORKER, 2),  # the CPUs decide
        ({"CPU": 16.0, "GPU": 2.0}, CPU_WORKER, 8),  # a CPU worker ignores GPUs
        ({"CPU": 8.0}, GPU_WORKER, 0),  # no GPU: no GPU worker
        ({"CPU": 2.0, "GPU": 1.5}, {"num_cpus": 0.1, "num_gpus": 0.5}, 3),  # fractions
        ({"CPU": 1.0}, {"num_cpus": 0.1}, 10),  # 1.0 / 0.1 is 10, not 9
        ({}, CPU_WORKER, 0),  # a head that offers nothing (compose, KubeRay)
    ],
)
def test_slots_count_what_a_worker_reserves(resources, reserve, expected):
    assert slots(resources, reserve) == expected


def test_rooms_are_the_alive_nodes_in_rays_order():
    nodes = [ray_node("a", CPU=2.0, GPU=1.0), ray_node("dead", alive=False, CPU=8.0, GPU=8.0), ray_node("bb", GPU=2.0)]
    assert rooms(nodes, {"num_cpus": 1, "num_gpus": 1}) == [NodeRoom("a", "10.0.0.1", 1), NodeRoom("bb", "10.0.0.2", 0)]


def test_new_workers_go_by_free_slots_then_fill():
    nodes = [NodeRoom("head", "h", 1), NodeRoom("b", "b", 2), NodeRoom("c", "c", 4)]
    placed: list[str | None] = []
    for _ in range(8):
        placed.append(choose_node(nodes, placed))
    assert placed == ["c", "c", "b", "c", "head", "b", "c", None]
    # a node's workers died: the next ones refill it; unknown nodes (dead, or a worker that
    # went wherever Ray found room) take no slot of a live node
    assert choose_node(nodes, ["c", "c", "c", "c", "b", "gone", None]) == "head"
    assert choose_node([], []) is None
    # a suspect node (a worker of it lost or dead lately) takes none while another has room
    assert choose_node(nodes, [], avoid={"c"}) == "b"
    assert choose_node(nodes, ["b", "b"], avoid={"c"}) == "head"
    assert choose_node(nodes, ["b", "b", "head"], avoid={"c"}) is None


def test_a_node_is_suspect_for_a_while_after_a_failure():
    s = Suspects(hold_s=60.0)
    s.mark("b", 100.0)
    s.mark(None, 100.0)  # a worker whose node is unknown marks nothing
    assert s.now(100.0) == {"b"} and s.now(159.9) == {"b"} and s.now(160.0) == set()
    s.mark("b", 150.0)
    assert s.now(160.0) == {"b"}


class FakeActor:
    pass


HEAD, B = "a" * 56, "b" * 56
"""Ray node ids (28 bytes in hex: Ray checks them)."""


def test_the_supervisor_pins_each_new_worker_to_the_chosen_node(monkeypatch):
    started: list[dict[str, Any]] = []

    def start(wid: str, settings: dict, resources: dict, log_level: str, engine_version: int = 1) -> WorkerSlot:
        started.append(resources)
        return WorkerSlot(wid, FakeActor(), object())

    nodes = [ray_node(HEAD, CPU=2.0, GPU=1.0), ray_node(B, CPU=2.0, GPU=2.0)]
    monkeypatch.setattr(supervisor_module, "next_node", _choose_from(nodes))
    monkeypatch.setattr(supervisor_module.WorkerSlot, "start", staticmethod(start))
    settings = load_settings(None, ["cluster.worker_gpus=1", "cluster.worker_cpus=0.5"])
    sup = Supervisor(settings, Assignment(), 2, threading.RLock())
    ids = sup.start(4, dict(GPU_WORKER), "tcp://127.0.0.1:5560")
    assert sorted(ids) == ["w0", "w1", "w2", "w3"]
    assert [sup.workers[w].node for w in ("w0", "w1", "w2", "w3")] == [B, HEAD, B, None]
    pinned = [r.get("scheduling_strategy") for r in started]
    assert [s.node_id if s else None for s in pinned] == [B, HEAD, B, None]
    assert all(s.soft for s in pinned if s), "a node gone before the worker is placed: Ray places it elsewhere"
    assert all(r["num_gpus"] == 1 and r["num_cpus"] == 0.5 for r in started)
    # a worker reports where it runs; that is what counts from then on
    sup.workers["w3"].status = {"node_id": HEAD}
    sup.workers["w0"].state = WorkerState.DEAD
    assert sup._start_worker().node == B
    sup.workers["w4"].state = WorkerState.DEAD
    sup.suspects.mark(B, time.monotonic())  # what _died and _lost do: B just lost a worker
    assert sup._start_worker().node is None, "not pinned to a suspect node: wherever Ray finds room"
    line = sup.workers["w1"].describe(2, 0, [])
    assert line["node_id"] == HEAD
    text = status_text({"workers": [{**line, "node_ip": "10.0.0.1", "node_id": "0123456789abcdef"}]})
    assert "10.0.0.1/01234567" in text


def _choose_from(nodes: list[dict[str, Any]]) -> Any:
    """``next_node`` over these ``ray.nodes()`` instead of Ray's."""

    def next_node(placed: Any, reserve: dict[str, Any], avoid: Any = ()) -> tuple[str | None, list[NodeRoom]]:
        found = rooms(nodes, reserve)
        return choose_node(found, placed, avoid), found

    return next_node


class FakeForwarder:
    """What ``Placement`` asks of the forwarder, on the caller's thread."""

    def __init__(self) -> None:
        self.epochs: dict[str, int | None] = {}
        self.published: list[tuple[str, dict[str, Any]]] = []

    def call(self, fn: Any) -> Any:
        return fn()

    def set_epoch(self, sid: str, epoch: int | None) -> None:
        self.epochs[sid] = epoch

    def epoch(self, sid: str) -> int | None:
        return self.epochs.get(sid)

    def publish(self, topic: str, msg: dict[str, Any]) -> None:
        self.published.append((topic, msg))

    def terminal(self, sid: str) -> None:
        return None

    def last_seen(self, sid: str) -> None:
        return None


class Board:
    def snapshot(self) -> dict[str, Any]:
        return {"streams": {}}


class Calls:
    def remote(self, *args: Any) -> object:
        return object()


class CallableActor:
    assign = Calls()


def placed(capacities: dict[str, int], sources: int) -> tuple[Assignment, Any]:
    """Workers with these capacities, ``sources`` streams placed (least filled first)."""
    from streamer.cluster.placement import Placement

    a = Assignment()
    for wid, cap in capacities.items():
        a.add_worker(wid, cap)
    workers = {wid: WorkerSlot(wid, CallableActor(), object()) for wid in capacities}
    placement = Placement(a, FakeForwarder(), Board(), workers)  # type: ignore[arg-type]
    for i in range(sources):
        a.add_source(f"cam{i}", f"rtsp://h/cam{i}")
    placement.place_pending()
    return a, placement


def test_a_lost_workers_streams_avoid_the_other_workers_of_its_node_while_another_has_room():
    # w0 and w1 on node b, w2 on the head
    a, placement = placed({"w0": 2, "w1": 2, "w2": 2}, 3)
    assert [a.sources[f"cam{i}"].worker for i in range(3)] == ["w0", "w1", "w2"]
    placement.move_away("w0", "worker w0 gone: node b", avoid=("w1",))
    assert a.sources["cam0"].worker == "w2", "not w1 (as filled, older) but on the same node"
    assert a.sources["cam0"].epoch == 2
    # the head's worker is full: the stream goes to the suspect node's worker after all
    a, placement = placed({"w0": 2, "w1": 2, "w2": 1}, 3)
    placement.move_away("w0", "worker w0 gone: node b", avoid=("w1",))
    assert a.sources["cam0"].worker == "w1" and a.sources["cam0"].epoch == 2
