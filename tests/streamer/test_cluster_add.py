"""The cluster's ``add_source`` answer without Ray (``streamer.cluster.adding``): the
worker's word on its new instance (running, failed with the reason, still connecting)
becomes the reply one process would give; a worker gone before it answered is said so.
With a cluster: ``test_cluster_e2e.py::test_add_and_remove_a_source_through_the_driver``."""

from __future__ import annotations

from typing import Any

import pytest

from configs.core.errors import SourceError
from streamer.cluster.adding import ANSWER_MARGIN_S, await_open
from streamer.cluster.workers import WorkerSlot
from streamer.net.endpoints import answer
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
