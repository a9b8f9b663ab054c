"""The cluster's status reply (streamer/cluster/status.py), from the driver's own records:
no Ray, fakes for the supervisor's engine and workers."""

from __future__ import annotations

from types import SimpleNamespace

from streamer.cluster.assignment import Assignment
from streamer.cluster.forwarder import ForwarderStats
from streamer.cluster.status import status_reply


class FakeWorker:
    def __init__(self, wid: str) -> None:
        self.id = wid

    def describe(self, capacity: int, load: int, streams: list[str]) -> dict:
        return {"id": self.id, "capacity": capacity, "load": load, "streams": streams}


def test_the_status_reply_names_every_source_and_worker_and_hides_passwords():
    a = Assignment()
    a.add_worker("w0", 2)
    a.add_source("cam0", "rtsp://admin:hunter2@10.0.0.5/live")
    a.add_source("cam1", "/videos/lobby.mp4", weight=2)
    assert a.place("cam0") == ("w0", 1)
    sup = SimpleNamespace(
        engine="e" * 12,
        classes=["happy", "sad"],
        engines=SimpleNamespace(current=SimpleNamespace(version=3)),
        workers={"w0": FakeWorker("w0")},
    )
    fwd = SimpleNamespace(publish_endpoint="tcp://127.0.0.1:5556", stats=ForwarderStats())
    moves = [{"stream": "cam0", "from": "w9", "to": "w0"}]
    st = status_reply(a, sup, 2, fwd, "tcp://127.0.0.1:5560", moves)  # type: ignore[arg-type]
    assert st["streams"] == ["cam0"] and st["engine_version"] == 3 and st["classes"] == ["happy", "sad"]
    assert st["workers"] == [{"id": "w0", "capacity": 2, "load": 1, "streams": ["cam0"]}]
    assert "hunter2" not in str(st) and st["sources"]["cam0"]["uri"].startswith("rtsp://")
    assert (st["sources"]["cam0"]["worker"], st["sources"]["cam0"]["epoch"]) == ("w0", 1)
    assert st["sources"]["cam1"]["state"] == "pending" and st["sources"]["cam1"]["weight"] == 2
    assert st["moves"] == moves and st["moves"][0] is not moves[0]  # a copy, safe outside the lock
    assert st["forwarder"]["forwarded"] == 0
