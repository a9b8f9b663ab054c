"""``streamer cluster`` end to end on a local Ray cluster (offline engine, Haar detector,
looped realtime clips): 2 workers, 5 sources, one subscriber on the forwarder.

The tests run in order on ONE cluster (a module fixture): every source served exactly once;
a source added (answered once it opened) and removed through the driver, a missing file
added (refused with the reason); new prompts through the driver on every
worker; one worker SIGSTOPped past the heartbeat
timeout, then resumed (it is fenced, its streams move, it rejoins empty); the other worker
SIGKILLed (its streams move to the rejoined one; the gap per moved stream is measured and
printed; a replacement starts); then SIGTERM, and
checks over every message the subscriber got: no stream ever served by two epochs at once,
one ``seq`` per topic, track ids unique across epochs, the schemas. Stale-epoch messages
sent straight to the forwarder (what a "dead" worker that comes back sends) never get out. Every wait is on
messages or on the driver's status, never on the clock. The module runs in a network
namespace of its own (``netns.py``): Ray and every socket on loopback, which it checks.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import zmq

from streamer.cli import main
from streamer.client import StateSubscriber
from streamer.cluster.epochs import split_track_id
from streamer.net.endpoints import request
from tests.streamer.clusterkit import Cluster, own_network_namespace, sockets_off_loopback, start_cluster, stop_cluster
from tests.streamer.helpers import LIVENESS_S, validators, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.timeout(1200)]

SOURCES = [f"cam{i}" for i in range(5)]
HEARTBEAT_TIMEOUT_S = 10.0
BOUND_S = HEARTBEAT_TIMEOUT_S + 1.0 + 5.0
"""The configured move bound: heartbeat timeout + interval + ``sources.open_timeout_s``."""
START_S = 3 * LIVENESS_S
"""Ray and two workers loading their engines at once on two busy cores (a minute or more)."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, face_clip: Path):
    c = start_cluster(
        tmp_path_factory.mktemp("cluster"),
        SOURCES,
        face_clip,
        "cluster.local_cpus=3",  # two workers, and room for a replacement
        "cluster.workers=2",
        "cluster.worker_cpus=1",
        "cluster.streams_per_worker=5",  # survivors always have room: no move waits for a replacement
        f"cluster.heartbeat_timeout_s={HEARTBEAT_TIMEOUT_S}",
        "cluster.lost_kill_s=1000",
        "cluster.rebalance=false",  # failover alone here: test_cluster_rebalance_e2e.py moves streams to joiners
    )
    try:
        yield c
    finally:
        stop_cluster(c)


def test_every_source_served_once_through_one_endpoint(cluster: Cluster, capsys):
    wait_for(
        lambda: all(len(cluster.faces(s)) >= 10 for s in SOURCES) or cluster.proc.poll() is not None,
        START_S,
        "faces of every source on the forwarder",
    )
    assert cluster.proc.poll() is None, cluster.tail()
    st = cluster.status()
    ready = [w for w in st["workers"] if w["state"] == "ready"]
    assert len(ready) == 2, st["workers"]
    # Loopback only: the test's own network namespace, Ray on 127.0.0.1, no socket elsewhere.
    assert own_network_namespace()
    assert {w["node_ip"] for w in ready} == {"127.0.0.1"}
    assert sockets_off_loopback() == []
    served = sorted(s for w in ready for s in w["streams"])
    assert served == SOURCES, "every source on exactly one worker"
    assert sorted(len(w["streams"]) for w in ready) == [2, 3], "spread by capacity over every worker"
    assert all(st["sources"][s]["state"] == "assigned" and st["sources"][s]["epoch"] == 1 for s in SOURCES)
    # The workers' own view (their heartbeats) agrees with the driver's.
    wait_for(
        lambda: all(sorted(w["running"]) == w["streams"] for w in cluster.ready()), LIVENESS_S, "workers' heartbeats"
    )
    for s in SOURCES:
        assert {m["epoch"] for m in cluster.faces(s)} == {1}
        assert [m["kind"] for m in cluster.col.of(f"events.{s}") if m["scope"] == "stream"] == ["started"]

    # `streamer cluster status` prints the same, readably.
    assert main(["cluster", "status", "--set", f"control.endpoint={cluster.control}"]) == 0
    out = capsys.readouterr().out
    assert all(w["id"] in out for w in ready) and "pending: none" in out, out

    # A late joiner gets the whole state through the driver, then the updates after it.
    snap = request(cluster.snapshot, {"op": "snapshot"}, LIVENESS_S)
    assert not [e.message for e in validators()["snapshot"].iter_errors(snap)]
    with StateSubscriber(cluster.endpoint, cluster.snapshot, timeout_s=LIVENESS_S) as late:
        assert sorted(late.state["streams"]) == SOURCES
        assert all(late.state["streams"][s]["started"]["epoch"] == 1 for s in SOURCES)
        seen = set()
        for topic, _ in late.updates(timeout_s=LIVENESS_S):
            seen.add(topic)
            if {f"faces.{s}" for s in SOURCES} <= seen:
                break
        assert late.gaps == 0
    assert {f"faces.{s}" for s in SOURCES} <= seen


def test_add_and_remove_a_source_through_the_driver(cluster: Cluster):
    added = cluster.request({"op": "add_source", "id": "cam5", "uri": str(cluster.clip)})
    assert added["ok"] and added["worker"] and added["epoch"] == 1, added
    assert added["state"] == "running", "answered once its worker opened it"
    assert "cam5" in added["streams"]
    missing = cluster.request({"op": "add_source", "id": "nofile", "uri": str(cluster.clip.with_name("none.mp4"))})
    assert not missing["ok"] and missing["error"].startswith("add_source nofile: the source failed: "), missing
    assert "No such file" in missing["error"], "the reason says why"
    wait_for(lambda: cluster.events("nofile", "failed"), LIVENESS_S, "the missing file's failed event")
    wait_for(lambda: cluster.status()["sources"]["nofile"]["state"] == "failed", LIVENESS_S, "the driver's view")
    assert "nofile" not in cluster.status()["streams"]
    again = cluster.request({"op": "add_source", "id": "cam5", "uri": str(cluster.clip)})
    assert not again["ok"] and "in use" in again["error"]
    wait_for(lambda: len(cluster.faces("cam5")) >= 5, LIVENESS_S, "faces of the added source")
    assert cluster.status()["sources"]["cam5"]["worker"] == added["worker"]

    assert cluster.request({"op": "remove_source", "id": "cam5"})["ok"]
    wait_for(lambda: cluster.events("cam5", "ended"), LIVENESS_S, "the removed source's end")
    assert cluster.events("cam5", "ended")[0]["reason"] == "removed"
    wait_for(lambda: cluster.status()["sources"]["cam5"]["state"] == "removed", LIVENESS_S, "the driver's view")
    assert "cam5" not in cluster.status()["streams"]
    assert not cluster.request({"op": "remove_source", "id": "nope"})["ok"]
    assert not cluster.request({"op": "frobnicate"})["ok"]


def test_engine_change_through_the_driver_reaches_every_worker(cluster: Cluster):
    before = cluster.status()
    bad = cluster.request({"op": "set_prompts", "prompts": {"templates": ["no placeholder"]}})
    assert not bad["ok"] and cluster.status()["engine"] == before["engine"], "a refused change changes nothing"
    custom = {"calm": ["a photo of a calm face."], "tense": ["a photo of a tense face."]}
    changed = cluster.request({"op": "set_prompts", "prompts": {"custom": custom}})
    assert changed["ok"] and changed["classes"] == ["calm", "tense"] and changed["engine"] != before["engine"]
    assert changed["workers_failed"] == {}
    counts = {s: len(cluster.faces(s)) for s in SOURCES}

    def changed_everywhere() -> bool:
        return all(
            len(cluster.faces(s)) > counts[s] and cluster.faces(s)[-1]["engine"] == changed["engine"] for s in SOURCES
        )

    wait_for(changed_everywhere, LIVENESS_S, "the new engine on every stream")
    wait_for(
        lambda: {w["engine"] for w in cluster.status()["workers"] if w["state"] == "ready"} == {changed["engine"]},
        LIVENESS_S,
        "every worker's heartbeat with the new engine",
    )


def moved_to(cluster: Cluster, sid: str, victim: str) -> dict[str, Any] | None:
    found = [m for m in cluster.events(sid, "moved") if m["details"]["from"] == victim and m["details"]["to"]]
    return found[0] if found else None


def gaps_of(cluster: Cluster, moved: dict[str, int]) -> dict[str, float]:
    """Per moved stream: from the last faces message of its old epoch to the first of the new
    one, as the subscriber received them."""
    out = {}
    for sid, old in moved.items():
        got = [(t, m["epoch"]) for t, topic, m in list(cluster.col.timed) if topic == f"faces.{sid}"]
        last_old = max(t for t, e in got if e == old)
        first_new = min(t for t, e in got if e == old + 1)
        out[sid] = first_new - last_old
    return out


def check_move(cluster: Cluster, victim: dict[str, Any], moved: dict[str, int]) -> None:
    wait_for(
        lambda: all(moved_to(cluster, s, victim["id"]) for s in moved), LIVENESS_S, f"moved events from {victim['id']}"
    )
    wait_for(
        lambda: all(len(cluster.faces(s, e + 1)) >= 3 for s, e in moved.items()),
        LIVENESS_S,
        "faces of the moved streams from their new workers",
    )
    st = cluster.status()
    driver_gaps = {m["stream"]: m["gap_s"] for m in st["moves"] if m["from"] == victim["id"]}
    for sid, gap in gaps_of(cluster, moved).items():
        ev = moved_to(cluster, sid, victim["id"])
        assert ev is not None
        print(
            f"moved {sid}: {victim['id']} -> {ev['details']['to']} (epoch {ev['epoch']}): subscriber saw no faces "
            f"for {gap:.2f} s; driver measured {driver_gaps.get(sid)} s; bound {BOUND_S:g} s"
        )
        assert 0 < gap <= BOUND_S + LIVENESS_S
        assert ev["details"]["to"] != victim["id"] and ev["epoch"] == moved[sid] + 1 == ev["details"]["epoch"]
        assert victim["id"] in ev["reason"]
        assert st["sources"][sid]["worker"] == ev["details"]["to"] and st["sources"][sid]["epoch"] == moved[sid] + 1
        # On the stream's events: the old epoch's tracks end, then the move, then the new start.
        events = cluster.col.of(f"events.{sid}")
        i = events.index(ev)
        assert all(m.get("epoch", 0) <= moved[sid] for m in events[:i])
        assert [m["kind"] for m in events[i + 1 :] if m["scope"] == "stream"][:1] == ["started"]
        started = {m["track_id"] for m in events[:i] if m["scope"] == "track" and m["kind"] == "started"}
        ended = {m["track_id"] for m in events[:i] if m["scope"] == "track" and m["kind"] == "ended"}
        assert started <= ended, "every track of the lost epoch ended before the move"


def keeps_receiving(cluster: Cluster, streams: list[str]) -> None:
    counts = {s: len(cluster.faces(s)) for s in streams}
    wait_for(
        lambda: all(len(cluster.faces(s)) >= counts[s] + 10 for s in streams), LIVENESS_S, "every stream flowing on"
    )


def test_a_stalled_worker_is_fenced_and_rejoins_empty(cluster: Cluster):
    ready = cluster.ready()
    victim = max(ready, key=lambda w: len(w["streams"]))
    st = cluster.status()
    moved = {s: st["sources"][s]["epoch"] for s in victim["streams"]}
    assert moved
    os.kill(victim["pid"], signal.SIGSTOP)  # alive but silent: a hung process or a partitioned node
    try:
        check_move(cluster, victim, moved)
    finally:
        os.kill(victim["pid"], signal.SIGCONT)  # it comes back, still believing it serves them

    def rejoined() -> bool:
        w = next(w for w in cluster.status()["workers"] if w["id"] == victim["id"])
        return w["state"] == "ready" and w["streams"] == [] and w["running"] == [] and w["stale"] == []

    wait_for(rejoined, LIVENESS_S, f"{victim['id']} rejoining with no stream")
    keeps_receiving(cluster, SOURCES)
    # Nothing of the stale epochs reached the subscriber after their move.
    st = cluster.status()
    came_back = next(w for w in st["workers"] if w["id"] == victim["id"])
    print(f"after the comeback: forwarder {st['forwarder']}; {victim['id']} dropped {came_back['fenced']} itself")

    # Whatever the stale worker managed to send before it was told, the forwarder's fence
    # is what keeps it out; make it certain: send stale-epoch messages straight to the ingest.
    fenced = st["forwarder"]["fenced"]
    ctx = zmq.Context()
    zombie = ctx.socket(zmq.XPUB)
    zombie.connect(st["ingest"])
    assert zombie.poll(int(LIVENESS_S * 1000)) and zombie.recv()[:1] == b"\x01", "the forwarder's subscription"
    template = cluster.faces(next(iter(moved)), next(iter(moved.values())))[-1]
    for sid, old in moved.items():
        stale = {**template, "stream_id": sid, "epoch": old, "frame_index": 10**9, "seq": 10**9}
        zombie.send_multipart([f"faces.{sid}".encode(), json.dumps(stale).encode()])
    wait_for(lambda: cluster.status()["forwarder"]["fenced"] >= fenced + len(moved), LIVENESS_S, "the fence")
    zombie.close(0)
    ctx.term()
    print(f"stale-epoch messages sent to the forwarder: {len(moved)}; fenced now {cluster.status()['forwarder']}")
    keeps_receiving(cluster, list(moved))
    timed = [m for _, _, m in list(cluster.col.timed)]
    for sid, old in moved.items():
        i = next(k for k, m in enumerate(timed) if m is moved_to(cluster, sid, victim["id"]))
        assert not [m for m in timed[i:] if m["stream_id"] == sid and m.get("epoch") == old], "a stale epoch got out"


def test_sigkill_a_worker_moves_its_streams(cluster: Cluster):
    ready = cluster.ready()
    victim = max(ready, key=lambda w: len(w["streams"]))
    st = cluster.status()
    moved = {s: st["sources"][s]["epoch"] for s in victim["streams"]}
    assert moved
    os.kill(victim["pid"], signal.SIGKILL)
    check_move(cluster, victim, moved)
    keeps_receiving(cluster, SOURCES)
    st = cluster.status()
    assert next(w for w in st["workers"] if w["id"] == victim["id"])["state"] == "dead"
    # A replacement is started (Ray places it where the dead worker's CPU was freed).
    assert [w["state"] for w in st["workers"]].count("dead") == 1 and len(st["workers"]) == 3


def test_stop_ends_every_stream_and_no_stream_was_ever_served_twice(cluster: Cluster):
    cluster.proc.send_signal(signal.SIGTERM)
    assert cluster.proc.wait(LIVENESS_S) == 0, cluster.tail()
    wait_for(lambda: all(cluster.events(s, "ended") for s in SOURCES), LIVENESS_S, "every stream's end")
    assert all(cluster.events(s, "ended")[-1]["reason"] == "stopped" for s in SOURCES)
    timed = list(cluster.col.timed)
    v = validators()
    for _, topic, msg in timed:
        errors = [e.message for e in v[topic.split(".", 1)[0]].iter_errors(msg)]
        assert not errors, (topic, errors, msg)

    epochs: dict[str, list[int]] = defaultdict(list)
    frames: dict[tuple[str, int], list[int]] = defaultdict(list)
    seqs: dict[str, list[int]] = defaultdict(list)
    track_starts: dict[tuple[str, int], int] = defaultdict(int)
    for _, topic, m in timed:
        sid = m["stream_id"]
        seqs[topic].append(m["seq"])
        if "epoch" in m:
            epochs[sid].append(m["epoch"])
        if m["type"] == "faces":
            frames[(sid, m["epoch"])].append(m["frame_index"])
            assert all(split_track_id(f["track_id"])[0] == m["epoch"] for f in m["faces"])
        elif m["scope"] == "track" and m["kind"] == "started":
            track_starts[(sid, m["track_id"])] += 1
    for sid, es in epochs.items():
        assert es == sorted(es), f"{sid}: an older epoch after a newer one: served twice at some moment"
    assert max(max(es) for es in epochs.values()) >= 3, "a stream moved twice"
    for key, idx in frames.items():
        assert all(a < b for a, b in itertools.pairwise(idx)), f"{key}: frames out of order"
    for topic, ss in seqs.items():
        assert all(a < b for a, b in itertools.pairwise(ss)), f"{topic}: seq not increasing"
    assert all(n == 1 for n in track_starts.values()), "a track id started twice"
