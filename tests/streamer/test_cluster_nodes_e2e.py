"""``streamer cluster`` on a Ray of two nodes on this machine (``raynodes.py``: a head from
``ray start --head`` and a second raylet from ``ray start --address``, each with its own
declared resources), in a network namespace of its own (``netns.py``). Offline engine, Haar
detector, looped realtime clips, one subscriber on the forwarder.

In order, on ONE Ray: the forwarder's throughput with a publisher on each node
(``streamer.benchmark.forwarder_nodes``, printed); then a driver joins that Ray
(``cluster.address``) and starts as many workers as the nodes' logical GPUs hold (the head
declares 1 GPU, node b 2; each worker reserves 1 GPU and half a CPU, so the CPUs would hold
more): 1 on the head, 2 on b, each on a GPU of its own, as ``streamer cluster status``
shows; node b is killed (its raylet and everything it started, the two workers included):
its streams move to the head's worker, which has room, under the next epoch (the gap per
stream printed), the replacement workers wait for room; a node c joins: the replacements
start there and streams move to them (rebalancing); then SIGTERM and checks over every
message: every stream served again after each move, epochs never go back, no ``(run, topic,
seq)`` twice, frames in order per epoch (``assert_in_order``). Every wait is bounded and on
messages, the driver's status or Ray's node list; the Ray nodes are killed even when a test
fails.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streamer.cli import main
from tests.streamer.clusterkit import (
    Cluster,
    assert_in_order,
    own_network_namespace,
    sockets_off_loopback,
    start_cluster,
    stop_cluster,
)
from tests.streamer.helpers import LIVENESS_S, ROOT, wait_for
from tests.streamer.raynodes import RayNode, RayNodes

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.timeout(1800)]

SOURCES = [f"cam{i}" for i in range(4)]
HEARTBEAT_TIMEOUT_S = 10.0
START_S = 3 * LIVENESS_S
NODE = {"cpus": 2, "gpus": 2}
"""Node b's (and the later node c's) declared resources: two 1-GPU workers."""
SETTINGS = (
    "engine.device=auto",  # workers reserve GPUs (logical here: the engine stays on the CPU)
    "cluster.worker_gpus=1",
    "cluster.worker_cpus=0.5",
    "cluster.streams_per_worker=4",  # the head's worker alone holds every stream
    "cluster.heartbeat_interval_s=1",
    f"cluster.heartbeat_timeout_s={HEARTBEAT_TIMEOUT_S}",
    "cluster.lost_kill_s=1000",
    "cluster.rebalance_hold_s=2",
)


class Site:
    """The Ray nodes and the cluster driver on them."""

    def __init__(self, ray_nodes: RayNodes, b: RayNode, address: str) -> None:
        self.ray_nodes, self.b, self.address = ray_nodes, b, address
        self.cluster: Cluster | None = None
        self.killed_at: float | None = None

    def node_names(self) -> dict[str, str]:
        """Node id -> the name given here (a custom resource each node declares)."""
        return {
            n["NodeID"]: next(k.removeprefix("node_") for k in n["Resources"] if k.startswith("node_"))
            for n in self.ray_nodes.alive_nodes()
        }


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("nodes")
    with RayNodes(d) as ray_nodes:
        ray_nodes.env["PYTHONPATH"] = str(ROOT)  # the nodes' Ray workers import this tree
        address = ray_nodes.start_head(cpus=2, gpus=1, resources={"node_head": 1})
        b = ray_nodes.add_node("b", cpus=NODE["cpus"], gpus=NODE["gpus"], resources={"node_b": 1})
        s = Site(ray_nodes, b, address)
        try:
            yield s
        finally:
            if s.cluster is not None:
                stop_cluster(s.cluster)


@pytest.fixture(scope="module")
def cluster(site: Site, face_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    d = tmp_path_factory.mktemp("driver")
    site.cluster = start_cluster(
        d, SOURCES, face_clip, f"cluster.address={site.address}", *SETTINGS, env=site.ray_nodes.env
    )
    return site.cluster


def test_forwarder_throughput_with_a_publisher_on_each_node(site: Site):
    cmd = [sys.executable, "-m", "streamer.benchmark.forwarder_nodes", "--address", site.address]
    cmd += ["--messages", "10000", "--faces", "4", "--ingest", "tcp://127.0.0.1:*"]
    done = subprocess.run(cmd, cwd=ROOT, env=site.ray_nodes.env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if "messages/s" in x)
    print(line)
    assert line.startswith("2 nodes x 10000") and "20000 of 20000" in line and "fenced 0" in line
    # the same messages from one process on this machine, now, for comparison
    one = [sys.executable, "-m", "streamer.benchmark.forwarder", "--messages", "20000", "--faces", "4"]
    done = subprocess.run(one, cwd=ROOT, env=site.ray_nodes.env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    print("one process:", done.stdout.strip().splitlines()[-1])


def workers_by_node(cluster: Cluster, site: Site) -> dict[str, list[dict[str, Any]]]:
    names = site.node_names()
    out: dict[str, list[dict[str, Any]]] = {}
    for w in cluster.ready():
        out.setdefault(names.get(w["node_id"], w["node_id"]), []).append(w)
    return out


def test_workers_spread_over_nodes_by_declared_capacity(cluster: Cluster, site: Site, capsys):
    wait_for(
        lambda: all(len(cluster.faces(s)) >= 10 for s in SOURCES) or cluster.proc.poll() is not None,
        START_S,
        "faces of every source on the forwarder",
    )
    assert cluster.proc.poll() is None, cluster.tail()
    assert own_network_namespace() and sockets_off_loopback() == []
    by_node = workers_by_node(cluster, site)
    assert {k: len(v) for k, v in by_node.items()} == {"head": 1, "b": 2}, by_node
    assert [w["gpus"] for w in by_node["head"]] == [["0"]]
    assert sorted(g for w in by_node["b"] for g in w["gpus"]) == ["0", "1"], "a GPU of its own each"
    served = sorted(s for ws in by_node.values() for w in ws for s in w["streams"])
    assert served == SOURCES, "every source on exactly one worker"
    assert main(["cluster", "status", "--set", f"control.endpoint={cluster.control}"]) == 0
    out = capsys.readouterr().out
    for ws in by_node.values():
        for w in ws:
            assert f"127.0.0.1/{w['node_id'][:8]}" in out, out
    print(out)


def gap_of(cluster: Cluster, sid: str, old: int, new: int, since: float) -> tuple[float, float]:
    """(last faces of epoch ``old`` to first of epoch ``new``; ``since`` to that first), as
    the subscriber received them."""
    got = [(t, m["epoch"]) for t, topic, m in list(cluster.col.timed) if topic == f"faces.{sid}"]
    first_new = min(t for t, e in got if e == new)
    return first_new - max(t for t, e in got if e == old), first_new - since


def final_moves(cluster: Cluster, sid: str) -> list[dict[str, Any]]:
    """The stream's ``moved`` events that named a worker, in order."""
    return [m for m in cluster.events(sid, "moved") if m["details"]["to"]]


def test_killing_a_node_moves_its_streams_to_the_other(cluster: Cluster, site: Site):
    by_node = workers_by_node(cluster, site)
    (survivor,) = by_node["head"]
    victims = {w["id"] for w in by_node["b"]}
    st = cluster.status()
    moved = {s: st["sources"][s]["epoch"] for w in by_node["b"] for s in w["streams"]}
    assert moved, "node b served streams"
    site.killed_at = killed_at = time.monotonic()
    killed_wall = time.time()  # the driver's move records carry wall-clock times
    site.ray_nodes.kill_node(site.b)

    def on_survivor() -> bool:
        """Each moved stream's last move is to the head's worker, and its faces flow there."""
        for sid in moved:
            evs = final_moves(cluster, sid)
            if not evs or evs[-1]["details"]["to"] != survivor["id"] or len(cluster.faces(sid, evs[-1]["epoch"])) < 3:
                return cluster.proc.poll() is not None
        return True

    wait_for(on_survivor, LIVENESS_S, "faces of node b's streams from the head's worker")
    assert cluster.proc.poll() is None, cluster.tail()
    st = cluster.status()
    for sid, old in moved.items():
        evs = final_moves(cluster, sid)
        # Ray reports the node's workers unreachable one by one; the first one's streams skip
        # the others of its node (suspect), so each stream moves once, to the other node.
        assert [(e["details"]["from"], e["epoch"]) for e in evs] == [(evs[0]["details"]["from"], old + 1)], evs
        assert evs[0]["details"]["from"] in victims
        assert st["sources"][sid]["epoch"] == evs[-1]["epoch"] and st["sources"][sid]["worker"] == survivor["id"]
        gap, since_kill = gap_of(cluster, sid, old, evs[-1]["epoch"], killed_at)
        move = [m for m in st["moves"] if m["stream"] == sid][-1]
        print(
            f"node b killed: {sid} "
            + " -> ".join([e["details"]["from"] for e in evs] + [survivor["id"]])
            + f" (epoch {evs[-1]['epoch']}): moved {move['at'] - killed_wall:.2f} s after the kill; subscriber saw "
            f"no faces for {gap:.2f} s ({since_kill:.2f} s after the kill); driver measured {move['gap_s']} s; "
            f"cause: {evs[0]['reason'][:90]}"
        )
    # The driver declares node b's workers dead, Ray the node; the replacements wait for room.
    wait_for(
        lambda: all(w["state"] == "dead" for w in cluster.status()["workers"] if w["id"] in victims),
        LIVENESS_S,
        "the driver declaring node b's workers dead",
    )
    print(f"node b's workers dead for the driver {time.monotonic() - killed_at:.1f} s after the kill (at the latest)")
    wait_for(lambda: len(site.ray_nodes.alive_nodes()) == 1, LIVENESS_S, "Ray declaring node b dead")
    print(f"node b dead for Ray {time.monotonic() - killed_at:.1f} s after the kill (at the latest: polled)")
    st = cluster.status()
    states = Counter(w["state"] for w in st["workers"])
    assert states == {"ready": 1, "dead": 2, "starting": 2}, st["workers"]
    assert all(w["node_id"] is None for w in st["workers"] if w["state"] == "starting"), "not pinned to node b"
    assert all(s["worker"] == survivor["id"] for s in st["sources"].values())
    counts = {s: len(cluster.faces(s)) for s in SOURCES}
    wait_for(lambda: all(len(cluster.faces(s)) >= counts[s] + 10 for s in SOURCES), LIVENESS_S, "every stream")


def test_a_node_that_joins_hosts_the_replacements(cluster: Cluster, site: Site):
    site.ray_nodes.add_node("c", cpus=NODE["cpus"], gpus=NODE["gpus"], resources={"node_c": 1})

    def even() -> bool:
        by_node = workers_by_node(cluster, site)
        loads = sorted(len(w["streams"]) for ws in by_node.values() for w in ws)
        return (len(by_node.get("c", [])) == 2 and loads == [1, 1, 2]) or cluster.proc.poll() is not None

    wait_for(even, START_S, "the replacements ready on node c and the loads even")
    assert cluster.proc.poll() is None, cluster.tail()

    def rebalanced_moves() -> list[dict]:
        return [m for m in cluster.status()["moves"] if m["cause"].startswith("rebalance")]

    # A move's gap is measured when the new worker's first message arrives, which can come
    # after the loads look even.
    wait_for(
        lambda: all(m["gap_s"] is not None for m in rebalanced_moves()) or cluster.proc.poll() is not None,
        LIVENESS_S,
        "the first message of each rebalanced stream from its new worker",
    )
    rebalanced = rebalanced_moves()
    assert len(rebalanced) >= 2 and all(m["gap_s"] is not None for m in rebalanced), rebalanced
    print("after node c joined:", [(m["stream"], m["from"], m["to"], m["gap_s"]) for m in rebalanced])
    counts = {s: len(cluster.faces(s)) for s in SOURCES}
    wait_for(lambda: all(len(cluster.faces(s)) >= counts[s] + 10 for s in SOURCES), LIVENESS_S, "every stream")


def test_stop_and_no_stream_was_served_twice(cluster: Cluster):
    import signal

    cluster.proc.send_signal(signal.SIGTERM)
    assert cluster.proc.wait(LIVENESS_S) == 0, cluster.tail()
    wait_for(lambda: all(cluster.events(s, "ended") for s in SOURCES), LIVENESS_S, "every stream's end")
    assert all(cluster.events(s, "ended")[-1]["reason"] == "stopped" for s in SOURCES)
    messages = list(cluster.col.messages)
    assert_in_order(messages)
    keys = Counter((m["run"], topic, m["seq"]) for topic, m in messages)
    assert not [k for k, n in keys.items() if n > 1], "a (run, topic, seq) twice"
    assert len({m["run"] for _, m in messages}) == 1
    for sid in SOURCES:
        epochs = [m["epoch"] for m in cluster.faces(sid)]
        assert epochs[0] == 1 and epochs == sorted(epochs)
