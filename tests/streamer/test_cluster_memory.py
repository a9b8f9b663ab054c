"""The driver's state that survives it, without Ray: the ``seq`` lease never lets a ``seq``
out that a restarted driver could send again (also while the store is slow or failing), a
restarted driver's epochs go on above the saved ones (for a source added later too), each
epoch is saved before its worker is told, the forwarder numbers from the lease, and a driver
waits for the previous driver of its key to be gone (and refuses to share the key with one
that runs).
End to end on a Ray that outlives the driver: ``test_cluster_restart_e2e.py``."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from configs.core.errors import ConfigError
from streamer.cluster import memory, numbering
from streamer.cluster.assignment import Assignment, SourceState
from streamer.cluster.forwarder import Forwarder
from streamer.cluster.memory import DictKV, DriverMemory
from streamer.cluster.numbering import LeasedSeqs, TopicSeqs
from streamer.cluster.placement import Placement
from tests.streamer.helpers import LIVENESS_S, Collector, free_endpoint, wait_for


class SlowStore:
    """A store whose writes take a while (and fail the first ``fail`` times)."""

    def __init__(self, delay_s: float = 0.005, fail: int = 0) -> None:
        self.saved: list[int] = []
        self.delay_s, self.fail = delay_s, fail
        self.lock = threading.Lock()

    def save(self, bound: int) -> None:
        time.sleep(self.delay_s)
        if self.fail:
            self.fail -= 1
            raise ConnectionError("GCS unreachable")
        with self.lock:
            self.saved.append(bound)

    def bound(self) -> int:
        with self.lock:
            return max(self.saved)


def test_no_seq_is_taken_at_or_above_the_saved_bound():
    store = SlowStore()
    seqs = LeasedSeqs(0, store.save, block=8)
    topics = [f"faces.cam{i}" for i in range(3)]
    taken: dict[str, list[int]] = {t: [] for t in topics}
    for i in range(600):
        t = topics[i % 3]
        seq = seqs.take(t, gap=3 if i == 300 else 0)
        assert seq < store.bound(), (seq, store.bound())
        taken[t].append(seq)
    assert all(ts == sorted(set(ts)) for ts in taken.values())
    seqs.wait_saved()
    again = LeasedSeqs(store.bound(), store.save, block=8)  # the driver restarted
    assert all(again.take(t) > max(ts) for t, ts in taken.items())


def test_the_lease_waits_for_a_failing_store(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(numbering, "RETRY_S", 0.01)
    store = SlowStore(delay_s=0, fail=0)
    seqs = LeasedSeqs(100, store.save, block=4)
    assert store.saved == [104]
    store.fail = 3  # the next extension fails three times before it is saved
    got = [seqs.take("events.cam0") for _ in range(10)]
    assert got == list(range(100, 110))
    assert all(s < store.bound() for s in got) and store.fail == 0 and seqs.waits > 0, "104 waited for its lease"


def test_a_restarted_driver_goes_on_above_every_saved_epoch_and_seq():
    kv = DictKV()
    first = DriverMemory(kv, "site")
    a = Assignment()
    a.add_worker("w0", 4)
    for sid in ("cam0", "cam1"):
        a.add_source(sid, f"rtsp://h/{sid}")
    first.restore(a)
    first.run = "run-one"
    seqs = first.seqs(block=10)
    for sid in ("cam0", "cam1", "cam0"):  # cam0 assigned twice (a move)
        src = a.sources[sid]
        src.state = SourceState.PENDING
        _, epoch = a.place(sid)
        first.epoch_taken(sid, epoch, "w0")
    sent = [seqs.take("faces.cam0") for _ in range(25)]

    kv_after = dict(kv.data)
    again = DriverMemory(kv, "site")
    assert again.epochs == {"cam0": 2, "cam1": 1} and again.placement["cam0"] == ["w0", 2]
    assert again.previous["run"] == "run-one"
    b = Assignment()
    b.add_worker("w0", 4)
    b.add_source("cam1", "rtsp://h/cam1")  # cam0 is no longer in the sources file
    again.restore(b)
    assert b.place("cam1") == ("w0", 2)
    assert b.sources["cam0"].state == SourceState.REMOVED and not b.pending()
    b.add_source("cam0", "rtsp://h/cam0")  # added back later by a control request
    assert b.place("cam0") == ("w0", 3)
    assert again.seqs(block=10).take("faces.cam0") > max(sent)
    assert again.seqs(block=10).take("events.new") >= int(kv_after["site/seq"]), "a new topic: above every seq too"


def test_a_driver_waits_for_the_previous_one_of_its_key_to_be_gone(monkeypatch: pytest.MonkeyPatch):
    kv = DictKV()
    prev = DriverMemory(kv, "site", job="01000000")
    prev.restore(Assignment())
    answers = iter([True, True, False])  # Ray counts the killed driver's job gone a moment later

    def running(job: str) -> bool:
        alive = job == "01000000" and next(answers)
        if alive:  # it hands out epochs until it is gone
            prev.epoch_taken("cam0", 5, "w0")
        return alive

    again = DriverMemory(kv, "site", job="02000000", running=running)
    b = Assignment()
    b.add_worker("w0", 1)
    b.add_source("cam0", "x")
    again.restore(b)
    assert b.place("cam0") == ("w0", 6), "above what it handed out while this driver waited"
    assert again.previous["job"] == "01000000" and DriverMemory(kv, "site").previous["job"] == "02000000"
    monkeypatch.setattr(memory, "TAKEOVER_S", 0.0)
    twin = DriverMemory(kv, "site", job="03000000", running=lambda job: True)  # the other driver still runs
    with pytest.raises(ConfigError, match=r"02000000 .* still runs under that key"):
        twin.restore(Assignment())
    assert DriverMemory(kv, "site").previous["job"] == "02000000", "the refused driver wrote nothing"


def test_nothing_is_kept_with_a_local_ray():
    mem = DriverMemory.open("expstream", local_ray=True)
    a = Assignment()
    a.add_source("cam0", "x")
    mem.restore(a)
    mem.epoch_taken("cam0", 1, "w0")
    assert not mem.kept and type(mem.seqs()) is TopicSeqs and mem.seqs().take("faces.cam0") == 0


def test_an_epoch_is_saved_before_its_worker_hears_of_it():
    order: list[str] = []
    a = Assignment()
    a.add_worker("w0", 2)
    a.add_source("cam0", "x")
    fwd = SimpleNamespace(call=lambda fn: fn(), set_epoch=lambda *_: order.append("fence opened"), publish=print)
    worker: Any = SimpleNamespace(actor=SimpleNamespace(assign=SimpleNamespace(remote=lambda *a: order.append("told"))))
    placement = Placement(a, fwd, None, {"w0": worker})  # type: ignore[arg-type]
    placement.on_epoch = lambda sid, epoch, wid: order.append(f"saved {sid} {epoch} {wid}")
    placement.place("cam0")
    assert order == ["saved cam0 1 w0", "fence opened", "told"]


def test_the_forwarder_numbers_from_the_lease():
    fwd = Forwarder("tcp://127.0.0.1:*", free_endpoint(), seqs=TopicSeqs(5000))
    col = Collector(fwd.publish_endpoint)
    try:
        wait_for(lambda: fwd.stats.subscriptions >= 1, LIVENESS_S, "the subscription")
        msg = {"type": "event", "scope": "stream", "kind": "started", "stream_id": "cam0"}
        fwd.call(lambda: [fwd.publish("events.cam0", dict(msg)) for _ in range(2)])
        wait_for(lambda: len(col.of("events.cam0")) == 2, LIVENESS_S, "the driver's messages")
        assert [m["seq"] for m in col.of("events.cam0")] == [5000, 5001]
    finally:
        col.close()
        fwd.close()
