"""The fence under an operator's faults, end to end (offline engine, Haar detector, looped
realtime clips), in a network namespace of its own (``netns.py``), twice: on a local Ray the
driver starts, and on two Ray nodes started with ``ray start`` (``raynodes.py``) that the
driver joins. Two workers, placed by GPU capacity (half of one logical GPU each on the local
Ray; one per node, each node declaring one), one stream each (capacity 1: a lost worker's
stream has nowhere to go but back to it), one subscriber on the forwarder.

In order, on ONE cluster: everything on loopback; the driver SIGSTOPped for two heartbeat
timeouts, then resumed: no healthy stream is moved or ended; one worker SIGSTOPped until the
driver declares it lost, then resumed: it stops its stale pipeline instance before it takes
its stream back (``moved w0 -> w0``), and nothing of the old instance is published under the
new epoch (no old frame, no old track's end, no old ``ended``); the driver killed (with its
local Ray; on the nodes, the driver alone) and restarted on the same endpoints: the
subscriber client sees a new run and no duplicate (on the nodes, the epochs go on); then
SIGTERM, and checks over every message, per run: frames never go backwards within an epoch,
epochs never go back, one ``seq`` per topic, no stream ended but by the stop. Every wait is
on messages or on the driver's status; the pauses are the faults themselves.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from streamer.client import Subscriber
from tests.streamer.clusterkit import (
    Cluster,
    assert_in_order,
    own_network_namespace,
    sockets_off_loopback,
    start_cluster,
    stop_cluster,
)
from tests.streamer.helpers import LIVENESS_S, wait_for
from tests.streamer.raynodes import RayNodes

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.timeout(1200)]

SOURCES = ["s1", "s2"]
HEARTBEAT_TIMEOUT_S = 10.0
"""Long enough that a busy machine's slow heartbeat is no loss."""
PAUSE_S = 2 * HEARTBEAT_TIMEOUT_S
"""How long the driver is stopped: well past the heartbeat timeout."""
START_S = 3 * LIVENESS_S


COMMON = (
    "engine.device=auto",
    "cluster.worker_cpus=1",
    "cluster.streams_per_worker=1",
    "cluster.heartbeat_interval_s=1",
    f"cluster.heartbeat_timeout_s={HEARTBEAT_TIMEOUT_S}",
    "cluster.lost_kill_s=1000",
    "cluster.replace_workers=false",
)
SETTINGS = (
    # Two workers from GPU capacity (logical GPUs: the engine stays on the CPU): one GPU at
    # half a GPU each, though the three CPUs would hold three.
    *COMMON,
    "cluster.local_cpus=3",
    "cluster.local_gpus=1",
    "cluster.worker_gpus=0.5",
)
NODES = ("local", "two nodes")


@pytest.fixture(scope="module", params=NODES)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, face_clip: Path):
    d = tmp_path_factory.mktemp("fence")
    with contextlib.ExitStack() as stack:
        settings, env = SETTINGS, None
        if request.param == "two nodes":  # a GPU each, so one worker each
            ray_nodes = stack.enter_context(RayNodes(d))
            address = ray_nodes.start_head(cpus=2, gpus=1)
            ray_nodes.add_node("b", cpus=2, gpus=1)
            settings, env = (*COMMON, "cluster.worker_gpus=1", f"cluster.address={address}"), ray_nodes.env
        c = start_cluster(d, SOURCES, face_clip, *settings, env=env)
        c.settings, c.env, c.nodes = settings, env, request.param  # type: ignore[attr-defined]
        try:
            yield c
        finally:
            stop_cluster(c)


def flowing(cluster: Cluster, n: int = 10) -> None:
    """Every stream gets ``n`` more faces messages."""
    counts = {s: len(cluster.faces(s)) for s in SOURCES}
    wait_for(
        lambda: all(len(cluster.faces(s)) >= counts[s] + n for s in SOURCES) or cluster.proc.poll() is not None,
        LIVENESS_S,
        "every stream flowing on",
    )
    assert cluster.proc.poll() is None, cluster.tail()


def stream_events(cluster: Cluster, sid: str) -> list[dict[str, Any]]:
    return [m for m in cluster.col.of(f"events.{sid}") if m["scope"] == "stream"]


def test_every_stream_served_on_loopback(cluster: Cluster):
    wait_for(
        lambda: all(len(cluster.faces(s)) >= 10 for s in SOURCES) or cluster.proc.poll() is not None,
        START_S,
        "faces of every source on the forwarder",
    )
    assert cluster.proc.poll() is None, cluster.tail()
    ready = cluster.ready()
    assert sorted(s for w in ready for s in w["streams"]) == SOURCES and len(ready) == 2
    st = cluster.status()
    assert len(st["workers"]) == 2 and [w["gpus"] for w in ready] == [["0"], ["0"]], "placed by GPU capacity"
    # Loopback only: the test's own network namespace, Ray on 127.0.0.1, and every socket
    # of the cluster (Ray's, the driver's, the workers', the subscriber's) bound to and
    # connected with loopback.
    assert own_network_namespace()
    assert {w["node_ip"] for w in ready} == {"127.0.0.1"}
    assert cluster.status()["ingest"].startswith("tcp://127.0.0.1:")
    assert sockets_off_loopback() == []


def test_a_paused_driver_drops_no_healthy_stream(cluster: Cluster):
    before = cluster.status()
    cluster.pause(cluster.proc.pid)
    try:
        time.sleep(PAUSE_S)  # the fault: the driver neither looks nor forwards for this long
    finally:
        cluster.resume(cluster.proc.pid)
    flowing(cluster)
    st = cluster.status()
    assert [w["state"] for w in st["workers"]] == ["ready", "ready"], st["workers"]
    assert st["moves"] == [], "a pause of the driver is no failure of its workers"
    for sid in SOURCES:
        src = st["sources"][sid]
        assert (src["state"], src["worker"], src["epoch"]) == ("assigned", before["sources"][sid]["worker"], 1)
        assert [m["kind"] for m in stream_events(cluster, sid)] == ["started"], "no stream moved or ended"


def test_a_lost_worker_gets_its_stream_back_cleanly(cluster: Cluster):
    victim = cluster.ready()[0]
    (sid,) = victim["streams"]
    cluster.pause(victim["pid"])  # a hung process or a partitioned node: alive but silent
    try:
        wait_for(lambda: cluster.worker(victim["id"])["state"] == "lost", LIVENESS_S, f"{victim['id']} lost")
        # Its stream has nowhere else to go (the other worker is full): it waits.
        assert cluster.status()["sources"][sid]["state"] == "pending"
    finally:
        cluster.resume(victim["pid"])  # it comes back, its old pipeline instance still running

    def back() -> bool:
        src = cluster.status()["sources"][sid]
        return src["state"] == "assigned" and src["epoch"] == 2 and len(cluster.faces(sid, 2)) >= 10

    wait_for(back, LIVENESS_S, f"{sid} served again under epoch 2")
    flowing(cluster)
    w = cluster.worker(victim["id"])
    assert w["state"] == "ready" and w["streams"] == [sid] and w["running"] == [sid] and w["stale"] == [], w
    moved = [m for m in stream_events(cluster, sid) if m["kind"] == "moved" and m["details"]["to"]]
    assert [(m["details"]["from"], m["details"]["to"], m["epoch"]) for m in moved] == [(victim["id"], victim["id"], 2)]
    # After the move, nothing of epoch 1: the new instance's own messages, from its own start.
    mine = [m for _, m in list(cluster.col.messages) if m["stream_id"] == sid]
    after = mine[mine.index(moved[0]) + 1 :]
    assert after and not [m for m in after if m.get("epoch") != 2], "a message of the stale instance got out"
    events = [m for m in after if m["type"] == "event" and m["scope"] != "engine"]
    assert (events[0]["scope"], events[0]["kind"]) == ("stream", "started"), events[:5]
    new_frames = [m["frame_index"] for m in after if m["type"] == "faces"]
    assert new_frames == sorted(new_frames), "frames went backwards within epoch 2 (the old instance's leftovers)"
    started: set[int] = set()
    for m in events:
        if m["scope"] == "track" and m["kind"] == "started":
            started.add(m["track_id"])
        elif m["scope"] == "track" and m["kind"] == "ended":
            assert m["track_id"] in started, f"a track of the old instance ended under epoch 2: {m}"
    assert not [m for m in stream_events(cluster, sid) if m["kind"] in ("ended", "failed")], "the stream ended"


def test_a_restarted_driver_serves_again_under_a_new_run(cluster: Cluster, tmp_path: Path, face_clip: Path):
    """kill -9 of the driver (and its local Ray, if it started one), then a restart on the same endpoints: the
    subscriber client (connected throughout) counts one restart and no duplicate; every
    message is known by its ``(run, topic, seq)``, every frame by its ``(run, epoch,
    frame_index)``: none repeats (on a local Ray ``seq`` and epochs begin again)."""
    got: list[tuple[str, dict[str, Any]]] = []
    stop = threading.Event()
    sub = Subscriber(cluster.endpoint)

    def read() -> None:
        while not stop.is_set():
            if (m := sub.recv(0.1)) is not None:
                got.append(m)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: len([t for t, _ in got if t.startswith("faces.")]) >= 10, LIVENESS_S, "the client's messages")
        first_run = got[-1][1]["run"]
        os.killpg(cluster.proc.pid, signal.SIGKILL)  # the driver and its local Ray, at once
        cluster.proc.wait()
        cluster.earlier.append(cluster.proc)
        again = start_cluster(tmp_path, SOURCES, face_clip, *cluster.settings, again=cluster, env=cluster.env)
        cluster.proc, cluster.log = again.proc, again.log

        def served_again() -> bool:
            new = {m["stream_id"] for t, m in list(got) if t.startswith("faces.") and m["run"] != first_run}
            return new == set(SOURCES) or cluster.proc.poll() is not None

        wait_for(served_again, START_S, "every stream from the restarted driver")
        flowing(cluster)
    finally:
        stop.set()
        reader.join()
        sub.close()
    runs = [m["run"] for _, m in got]
    first_new = runs.index(next(r for r in runs if r != first_run))
    assert set(runs[first_new:]) == {runs[first_new]} != {first_run}, "the old run, then the new one"
    assert sub.restarts == 1 and sub.duplicates == 0
    known = [(m["run"], t, m["seq"]) for t, m in got]
    frames = [(m["run"], m["stream_id"], m["epoch"], m["frame_index"]) for t, m in got if m["type"] == "faces"]
    assert len(set(known)) == len(known) and len(set(frames)) == len(frames)
    before = [m for _, m in got][:first_new]
    after = [m for _, m in got][first_new:]
    if cluster.nodes == "local":  # nothing outlived the local Ray
        assert min(m["epoch"] for m in after if "epoch" in m) == 1, "epochs begin again"
    else:  # the driver's state was kept in the Ray it joined: epochs go on, per stream
        for sid in SOURCES:
            old = max(m["epoch"] for m in before if m.get("stream_id") == sid and "epoch" in m)
            assert min(m["epoch"] for m in after if m.get("stream_id") == sid and "epoch" in m) > old
    timed = [(t, m["run"]) for t, topic, m in list(cluster.col.timed) if topic.startswith("faces.")]
    gap = min(t for t, r in timed if r != first_run) - max(t for t, r in timed if r == first_run)
    print(f"driver killed and restarted: the subscriber saw no faces for {gap:.2f} s")


def test_stop_and_no_message_went_backwards(cluster: Cluster):
    cluster.proc.send_signal(signal.SIGTERM)
    assert cluster.proc.wait(LIVENESS_S) == 0, cluster.tail()
    wait_for(lambda: all(cluster.events(s, "ended") for s in SOURCES), LIVENESS_S, "every stream's end")
    assert_in_order(list(cluster.col.messages))
    for sid in SOURCES:
        ends = [m for m in stream_events(cluster, sid) if m["kind"] in ("ended", "failed")]
        assert [(m["kind"], m["reason"]) for m in ends] == [("ended", "stopped")], "ended only by the stop"
