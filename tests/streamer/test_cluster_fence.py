"""The fence's pieces that need no Ray: a driver that did not look at its workers for a
while (paused) judges them afresh instead of declaring them lost, a dead worker's status
line shows it dead, and the subscriber client drops duplicates but not a restarted
publisher's (a restarted driver's) messages, which carry a new run. The worker's fence:
``test_cluster.py``; the whole cluster: ``test_cluster_fence_e2e.py``."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import zmq

from configs import load_settings
from streamer.cli.cluster import status_text
from streamer.client import Subscriber
from streamer.cluster.assignment import Assignment
from streamer.cluster.supervisor import Supervisor
from streamer.cluster.workers import WorkerSlot, WorkerState
from tests.streamer.helpers import LIVENESS_S, wait_for


class FakeActor:
    """Records the driver's calls; each returns a fresh reference."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        actor = self

        class Method:
            def remote(self, *args: Any) -> object:
                actor.calls.append(name)
                return object()

        return Method()


class Moves:
    engine = None

    def __init__(self) -> None:
        self.away: list[str] = []

    def move_away(self, worker: str, cause: str, *, replace: bool = True, avoid: tuple[str, ...] = ()) -> None:
        self.away.append(worker)


def ready_worker(sup: Supervisor, wid: str) -> WorkerSlot:
    w = WorkerSlot(wid, FakeActor(), object(), state=WorkerState.READY, was_ready=True)
    w.last_seen_s = w.ping_sent_s = time.monotonic()
    sup.workers[wid] = w
    return w


def test_a_paused_driver_judges_its_workers_afresh():
    settings = load_settings(None, ["cluster.heartbeat_timeout_s=5", "cluster.heartbeat_interval_s=1"])
    sup = Supervisor(settings, Assignment(), 2, threading.RLock())
    sup.placement = moves = Moves()  # type: ignore[assignment]
    w0, w1 = ready_worker(sup, "w0"), ready_worker(sup, "w1")
    sup.check(set())
    # The driver is stopped for 15 s (three heartbeat timeouts): when it resumes, its clock
    # says nobody answered for 15 s, but it is the one that did not look.
    for w in (w0, w1):
        assert w.last_seen_s is not None
        w.last_seen_s -= 15.0
    assert sup._checked_s is not None
    sup._checked_s -= 15.0
    sup.check(set())
    assert moves.away == [] and w0.state == w1.state == WorkerState.READY, "a pause of the observer is no failure"
    assert "status" in w0.actor.calls, "asked for a fresh heartbeat at once"

    # A worker that stays silent while the driver looks is lost, as before.
    w0.last_seen_s = time.monotonic() - 6.0
    sup.check(set())
    assert moves.away == ["w0"] and w0.state == WorkerState.LOST and w1.state == WorkerState.READY


def test_a_dead_worker_shows_dead():
    w = WorkerSlot("w3", FakeActor(), object(), state=WorkerState.DEAD, cause="ActorDiedError: gone")
    w.status = {"pid": 7, "node_ip": "10.0.0.3", "cpu_percent": 187.0, "fps": {"cam0": 14.0}, "streams": ["cam0"]}
    line = w.describe(3, 0, [])
    assert line["state"] == "dead" and line["pid"] == 7 and line["node_ip"] == "10.0.0.3"
    assert line["cpu_percent"] is None and line["fps"] == {} and line["running"] == []
    reply = {
        "workers": [line],
        "sources": {"cam0": {"state": "ended", "reason": "end of stream"}, "cam1": {"state": "assigned"}},
    }
    text = status_text(reply)
    row = next(r for r in text.splitlines() if r.startswith("w3"))
    assert row.split()[:4] == ["w3", "dead", "10.0.0.3", "7"] and " - " in row and "187" not in row
    assert "1 assigned, 1 ended" in text and "ended cam0: end of stream" in text


def test_the_subscriber_drops_duplicates_and_keeps_a_restarted_publishers_messages():
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    try:
        with Subscriber(f"tcp://127.0.0.1:{port}", streams=["cam0"], context=ctx) as sub:
            assert pub.poll(int(LIVENESS_S * 1000)) and pub.recv()[:1] == b"\x01"
            assert pub.poll(int(LIVENESS_S * 1000)) and pub.recv()[:1] == b"\x01"  # events and faces
            sent = [("a", 0), ("a", 1), ("a", 2), ("a", 1), ("a", 3), ("b", 0), ("b", 1), ("a", 3), ("b", 1)]
            for run, seq in sent:  # run "b": the driver restarted; its seq and epochs begin again
                msg = {"type": "faces", "stream_id": "cam0", "run": run, "seq": seq, "epoch": 1, "frame_index": seq}
                pub.send_multipart([b"faces.cam0", json.dumps(msg).encode()])
            got: list[tuple[str, int]] = []

            def received_all() -> bool:
                while (m := sub.recv(0)) is not None:
                    got.append((m[1]["run"], m[1]["seq"]))
                return sub.received + sub.duplicates == len(sent)

            wait_for(received_all, LIVENESS_S, "every message at the subscriber")
    finally:
        pub.close(0)
        ctx.term()
    assert got == [("a", 0), ("a", 1), ("a", 2), ("a", 3), ("b", 0), ("b", 1)]
    assert sub.duplicates == 3 and sub.restarts == 1 and sub.missed == 0 and sub.run == "b"
