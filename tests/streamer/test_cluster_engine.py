"""The cluster's versioned engine without Ray: the forwarder's engine fence (a faces
message of an engine older than its stream's, or than the floor a finished change set, is
dropped; events pass), and the driver's supervisor bringing a worker that answers with an
older engine version up to date before it takes any stream. The whole path on Ray:
``test_cluster_engine_e2e.py``."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from configs import load_settings
from streamer.cluster.assignment import Assignment
from streamer.cluster.engines import EngineVersion
from streamer.cluster.supervisor import Supervisor
from streamer.cluster.workers import WorkerSlot, WorkerState
from streamer.service.requests import new_engine, parse_request
from tests.streamer.helpers import LIVENESS_S, Collector, wait_for
from tests.streamer.test_cluster import event, faces, forwarder, worker_publisher  # noqa: F401  (a fixture)
from tests.streamer.test_cluster_fence import FakeActor, Moves

OLD, NEW = "0123456789ab", "ba9876543210"
CUSTOM = {"calm": ["a calm face."], "tense": ["a tense face."]}


def test_the_forwarder_drops_faces_of_an_older_engine_and_passes_events(forwarder):  # noqa: F811
    col = Collector(forwarder.publish_endpoint)
    wait_for(lambda: forwarder.stats.subscriptions >= 1, LIVENESS_S, "the subscriber's subscription")
    a = worker_publisher(forwarder.ingest_endpoint)
    fence = forwarder.engines

    def send(sid: str, engine: str, i: int) -> None:
        msg = faces(f"{sid}@1", i, [])
        msg["engine"] = engine
        a.send(f"faces.{sid}@1", msg)

    try:
        forwarder.call(lambda: [forwarder.set_epoch(s, 1) for s in ("cam0", "cam1")])
        a.hold("cam0", 1), a.hold("cam1", 1)
        forwarder.call(lambda: fence.learn(OLD, 1))
        send("cam0", OLD, 0)
        send("cam0", NEW, 1)  # an engine being tried (not learned yet): passes
        forwarder.call(lambda: fence.learn(NEW, 2))  # the change is committed
        send("cam0", NEW, 2)
        send("cam0", OLD, 3)  # cam0 has had version 2: an older one is stale
        send("cam1", OLD, 0)  # cam1's worker has not switched yet: passes
        wait_for(lambda: len(col.of("faces.cam1")) == 1, LIVENESS_S, "cam1's old-engine message")
        seq = forwarder.call(lambda: fence.raise_floor(2))  # the change is done everywhere
        assert seq["faces.cam1"] == 0 and seq["faces.cam0"] == 2, "the last seq per topic before the floor"
        send("cam1", OLD, 1)  # on its way when the change was answered: dropped
        late = event("cam1@1", "track", "ended", track_id=1, frame_index=1, track_age=1)
        a.send("events.cam1@1", late)  # events always pass
        send("cam1", NEW, 2)
        wait_for(lambda: len(col.of("faces.cam1")) == 2, LIVENESS_S, "cam1 on the new engine")
        wait_for(lambda: len(col.of("events.cam1")) == 1, LIVENESS_S, "the old engine's event")
    finally:
        a.close()
    col.close()
    assert [(m["frame_index"], m["engine"]) for m in col.of("faces.cam0")] == [(0, OLD), (1, NEW), (2, NEW)]
    assert [(m["frame_index"], m["engine"]) for m in col.of("faces.cam1")] == [(0, OLD), (2, NEW)]
    assert forwarder.stats.stale_engine == 2 and forwarder.stats.fenced == 0
    assert fence.fingerprint() == NEW


class Answers:
    """``ray.get`` for fake references: what each call returns."""

    def __init__(self) -> None:
        self.values: dict[int, Any] = {}

    def get(self, ref: object, timeout: float | None = None) -> Any:
        return self.values[id(ref)]


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Answers:
    import ray

    got = Answers()
    monkeypatch.setattr(ray, "get", got.get)
    return got


def test_a_worker_behind_the_engine_version_is_brought_up_to_date_before_it_takes_streams(answers: Answers):
    settings = load_settings(None, [])
    assignment = Assignment()
    sup = Supervisor(settings, assignment, 2, threading.RLock())
    sup.placement = Moves()  # type: ignore[assignment]
    sup._ingest = "tcp://127.0.0.1:5560"  # what start() sets
    req = parse_request({"op": "set_prompts", "prompts": {"custom": CUSTOM}})
    changed = new_engine(settings.engine, req)  # type: ignore[arg-type]
    with sup.lock:  # a change committed while the worker was starting with version 1
        sup.engines.current = version = EngineVersion(2, changed, NEW, ["calm", "tense"])
        sup.committed(version)
    actor = FakeActor()
    w = WorkerSlot("w0", actor, object())
    sup.workers["w0"] = w
    w.ping_ref = ping = object()
    answers.values[id(ping)] = {"engine": OLD, "engine_version": 1, "pid": 7}
    sup.check({ping})
    assert w.state == WorkerState.STARTING and "w0" not in assignment.capacity, "no stream before its engine is current"
    assert actor.calls[-1] == "set_engine" and w.engine_ref is not None
    answers.values[id(w.engine_ref)] = {"engine": NEW, "engine_version": 2}
    sup.check({w.engine_ref})
    assert w.state == WorkerState.READY and "w0" in assignment.capacity and w.engine_ref is None
    assert sup.engine == NEW and sup.classes == ["calm", "tense"]
    assert sup.settings.engine == changed, "new workers start with the change"


def test_a_worker_that_cannot_take_the_engine_version_goes(answers: Answers, monkeypatch: pytest.MonkeyPatch):
    import ray

    settings = load_settings(None, ["cluster.replace_workers=false"])
    sup = Supervisor(settings, Assignment(), 2, threading.RLock())
    sup.placement = moves = Moves()  # type: ignore[assignment]
    sup.engines.current = EngineVersion(3, settings.engine, NEW, ["a", "b"])
    w = WorkerSlot("w1", FakeActor(), object(), state=WorkerState.REJOINING, was_ready=True)
    sup.workers["w1"] = w
    w.sync_ref = sync = object()
    answers.values[id(sync)] = {"revoked": [], "stopping": [], "engine_version": 2}
    sup.check({sync})
    assert w.state == WorkerState.REJOINING and w.engine_ref is not None, "rejoins only on the current engine"

    def refuse(ref: object, timeout: float | None = None) -> Any:
        raise ray.exceptions.RayError("cannot build the engine")

    monkeypatch.setattr(ray, "get", refuse)
    monkeypatch.setattr(ray, "kill", lambda actor, no_restart=True: None)
    sup.check({w.engine_ref})
    assert w.state == WorkerState.DEAD and moves.away == ["w1"] and "version 3" in (w.cause or "")
