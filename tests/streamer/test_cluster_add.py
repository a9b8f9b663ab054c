"""The cluster's ``add_source`` answer without Ray (``streamer.cluster.adding``): the
worker's word on its new instance (running, failed with the reason, still connecting)
becomes the reply one process would give; a worker gone before it answered is said so; and
the control endpoint answers other requests while such a reply is worked on
(``streamer.net.endpoints.Later``). With a cluster:
``test_cluster_e2e.py::test_add_and_remove_a_source_through_the_driver``."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from configs.core.errors import SourceError
from streamer.cluster.adding import ANSWER_MARGIN_S, await_open
from streamer.cluster.workers import WorkerSlot
from streamer.net.endpoints import Later, RequestServer, answer, request
from streamer.net.sockets import Sockets
from tests.streamer.helpers import LIVENESS_S, free_endpoint, wait_for
from tests.streamer.test_cluster_fence import FakeActor


@pytest.fixture
def worker_says(monkeypatch: pytest.MonkeyPatch):
    import ray

    said: dict[str, Any] = {}

    def get(ref: object, timeout: float | None = None) -> Any:
        said["timeout"] = timeout
        if isinstance(said["answer"], BaseException):
            raise said["answer"]
        return said["answer"]

    monkeypatch.setattr(ray, "get", get)
    return said


def test_the_reply_is_the_workers_word_on_its_instance(worker_says: dict[str, Any]):
    actor = FakeActor()
    slot = WorkerSlot("w1", actor, object())
    worker_says["answer"] = {"state": "running", "reason": None}
    assert await_open(slot, "cam9", 3, 10.0) == {"stream": "cam9", "worker": "w1", "epoch": 3, "state": "running"}
    assert actor.calls == ["opened"] and worker_says["timeout"] == 10.0 + ANSWER_MARGIN_S

    worker_says["answer"] = {"state": "reconnecting", "reason": None}
    assert await_open(slot, "cam9", 3, 10.0)["state"] == "reconnecting"

    worker_says["answer"] = {"state": "failed", "reason": "cannot open: No such file or directory"}
    with pytest.raises(SourceError, match=r"^add_source cam9: the source failed: cannot open: No such file"):
        await_open(slot, "cam9", 3, 10.0)
    reply = answer(lambda req: await_open(slot, "cam9", 3, 10.0), {"op": "add_source"})
    assert reply == {"ok": False, "error": "add_source cam9: the source failed: cannot open: No such file or directory"}


def test_a_worker_gone_before_it_answered(worker_says: dict[str, Any]):
    import ray

    worker_says["answer"] = ray.exceptions.GetTimeoutError("no answer")
    got = await_open(WorkerSlot("w1", FakeActor(), object()), "cam9", 1, 1.0)
    assert got["state"] == "starting" and got["reason"].startswith("worker w1: GetTimeoutError")


def test_the_endpoint_answers_other_requests_while_a_later_reply_is_worked_on():
    release = threading.Event()

    def refuse() -> dict[str, Any]:
        raise SourceError("add_source cam9: the source failed: no")

    def handler(req: dict[str, Any]) -> dict[str, Any] | Later:
        if req["op"] == "slow":
            return Later(lambda: {"done": release.wait(LIVENESS_S)})
        if req["op"] == "refused":
            return Later(refuse)
        return {"streams": []}

    sockets, endpoint = Sockets(), free_endpoint()
    server = RequestServer("control", endpoint, handler, sockets)
    slow: dict[str, Any] = {}
    asker = threading.Thread(target=lambda: slow.update(request(endpoint, {"op": "slow"}, LIVENESS_S)))
    try:
        asker.start()
        wait_for(lambda: server.requests == 1, LIVENESS_S, "the slow request at the endpoint")
        assert request(endpoint, {"op": "status"}, LIVENESS_S) == {"ok": True, "streams": []}
        assert slow == {}, "still being worked on"
        release.set()
        asker.join(LIVENESS_S)
        assert slow == {"ok": True, "done": True}
        refused = request(endpoint, {"op": "refused"}, LIVENESS_S)
        assert refused == {"ok": False, "error": "add_source cam9: the source failed: no"} and server.errors == 1
    finally:
        release.set()
        server.close()
        sockets.close()
