"""An engine change while streams move, end to end on a local Ray (offline engine, Haar
detector, looped realtime clips), in a network namespace of its own (``netns.py``): two
workers, three streams (2 + 1). The worker with two streams is SIGKILLed and, as soon as its
replacement is starting (on the settings of before), new prompts (new classes) are sent: the
change runs while the victim's streams resume on the survivor and the replacement loads its
engine; the replacement must be brought up to the new engine before it joins, and then a
stream moves to it (rebalancing).

What must hold (docs/deployment.md, "Engine changes"): the reply names the new engine; every
faces message sent after the reply's ``seq`` (per topic: the forwarder's last message before
the change was done everywhere) carries the new fingerprint and classes; per stream, no
message of the old engine follows one of the new (the fingerprint never goes back),
whichever worker served it; every stream is served on the new engine, the replacement's
included; and the usual order (``assert_in_order``)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.streamer.clusterkit import Cluster, assert_in_order, start_cluster, stop_cluster
from tests.streamer.helpers import LIVENESS_S, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.timeout(900)]

SOURCES = [f"cam{i}" for i in range(3)]
START_S = 3 * LIVENESS_S
CUSTOM = {"calm": ["a photo of a calm face."], "tense": ["a photo of a tense face."]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, face_clip: Path):
    c = start_cluster(
        tmp_path_factory.mktemp("engine"),
        SOURCES,
        face_clip,
        "cluster.local_cpus=3",  # two workers, and room for a replacement
        "cluster.workers=2",
        "cluster.worker_cpus=1",
        "cluster.streams_per_worker=3",
        "cluster.rebalance_hold_s=1",
        "cluster.heartbeat_timeout_s=30",  # only deaths here: no worker taken for lost on a busy machine
    )
    try:
        yield c
    finally:
        stop_cluster(c)


def fingerprint_goes_back(messages: list[tuple[str, dict[str, Any]]], old: str, new: str) -> list[str]:
    """Per stream, every message of the ``old`` engine that came after one of the ``new``."""
    switched: set[str] = set()
    back = []
    for topic, m in messages:
        sid = m["stream_id"]
        if m["engine"] == new:
            switched.add(sid)
        elif m["engine"] == old and sid in switched:
            back.append(f"{topic} seq {m['seq']} epoch {m.get('epoch')}: {m['type']} {m.get('kind', '')}")
    return back


def test_an_engine_change_during_a_move_reaches_every_stream_and_never_goes_back(cluster: Cluster, capsys):
    wait_for(
        lambda: all(len(cluster.faces(s)) >= 10 for s in SOURCES) or cluster.proc.poll() is not None,
        START_S,
        "faces of every source on the forwarder",
    )
    assert cluster.proc.poll() is None, cluster.tail()
    before = cluster.status()
    old = before["engine"]
    victim = max(cluster.ready(), key=lambda w: len(w["streams"]))
    assert len(victim["streams"]) == 2, before["workers"]

    reply: dict[str, Any] = {}

    def change() -> None:
        reply.update(cluster.request({"op": "set_prompts", "prompts": {"custom": CUSTOM}}))
        reply["at"] = time.monotonic()

    os.kill(victim["pid"], signal.SIGKILL)

    def replacement_starting() -> bool:
        return any(w["state"] == "starting" for w in cluster.status()["workers"])

    wait_for(replacement_starting, LIVENESS_S, "the victim's replacement starting (on the old settings)")
    changer = threading.Thread(target=change, daemon=True)
    changer.start()  # while the victim's streams resume on the survivor and its replacement loads
    changer.join(LIVENESS_S * 3)
    assert "at" in reply, "no reply to set_prompts"
    assert reply["ok"], (reply, cluster.tail())
    new = reply["engine"]
    assert reply["classes"] == ["calm", "tense"] and new != old, reply

    def settled() -> bool:
        ready = cluster.ready()
        return (
            len(ready) == 2
            and victim["id"] not in {w["id"] for w in ready}
            and sorted(w["load"] for w in ready) == [1, 2]
        )

    wait_for(settled, START_S, "the replacement ready and a stream moved to it")
    st = cluster.status()
    joiner = next(
        w for w in st["workers"] if w["state"] == "ready" and w["id"] not in {x["id"] for x in before["workers"]}
    )
    assert joiner["streams"], st["workers"]
    counts = {s: len(cluster.faces(s)) for s in SOURCES}
    wait_for(lambda: all(len(cluster.faces(s)) >= counts[s] + 10 for s in SOURCES), LIVENESS_S, "every stream served")
    timed = list(cluster.col.timed)
    messages = [(t, m) for _, t, m in timed]

    # After the reply: what the forwarder sent after the floor (the reply's seq per topic).
    after = [(t, m) for t, m in messages if m["type"] == "faces" and m["seq"] > reply["seq"].get(t, -1)]
    stale = [
        (t, m["seq"], m["engine"], m["classes"])
        for t, m in after
        if m["engine"] != new or m["classes"] != ["calm", "tense"]
    ]
    assert not stale, f"faces messages of the old engine after the reply: {stale[:5]}"
    for s in SOURCES:
        assert any(m["stream_id"] == s for _, m in after), f"{s}: no faces message after the reply"
    for s in joiner["streams"]:
        assert all(m["engine"] == new for m in cluster.faces(s, st["sources"][s]["epoch"])), s
    back = fingerprint_goes_back(messages, old, new)
    assert not back, f"the old engine after the new one: {back[:5]}"
    assert_in_order(messages)
    assert {w["engine"] for w in cluster.ready()} == {new}, "every worker's heartbeat: the new engine"
    assert f"worker {joiner['id']}: engine version 1, bringing it to 2" in cluster.log.read_text(), (
        "the replacement, started before the change, was brought up to date before it took a stream"
    )
    st = cluster.status()
    assert st["engine"] == new and st["classes"] == ["calm", "tense"] and st["engine_version"] == 2, st
    with capsys.disabled():
        print(f"\nengine change during a move: reply after the kill; forwarder {st['forwarder']}; moves {st['moves']}")
