"""The streamer's one queue mechanism: the three full-queue policies, the end, the worker
thread, and the scoring hand-off built on the same core. Orderings and counts only."""

from __future__ import annotations

import threading
import time

import pytest

from streamer.pipeline.handoff import EndNotice, ScoreSlots
from streamer.queues import BoundedQueue, QueueWorker
from tests.streamer.helpers import score_job


def test_drop_oldest_keeps_the_newest_and_counts():
    q = BoundedQueue(3, "drop_oldest")
    assert all(q.put(i) for i in range(10))
    assert q.dropped == 7
    assert [q.get(0), q.get(0), q.get(0), q.get(0)] == [7, 8, 9, None]


def test_drop_newest_refuses_and_counts():
    q = BoundedQueue(2, "drop_newest")
    assert [q.put(i) for i in range(5)] == [True, True, False, False, False]
    assert q.dropped == 3 and [q.get(0), q.get(0), q.get(0)] == [0, 1, None]


def test_block_waits_for_room_or_close():
    q = BoundedQueue(1, "block")
    assert q.put("a")
    results = []
    writer = threading.Thread(target=lambda: results.append(q.put("b")))
    writer.start()
    writer.join(0.2)
    assert writer.is_alive(), "put on a full blocking queue returned"
    assert q.get(0) == "a"
    writer.join(30)
    assert results == [True] and q.get(0) == "b"

    assert q.put("c")
    writer = threading.Thread(target=lambda: results.append(q.put("d")))
    writer.start()
    q.close()
    writer.join(30)
    assert results == [True, False]
    assert not q.drained
    assert q.get() == "c" and q.get() is None and q.drained
    assert q.dropped == 0


def test_get_times_out_and_close_wakes_a_waiting_get():
    q = BoundedQueue(2, "drop_oldest")
    t0 = time.monotonic()
    assert q.get(timeout=0.05) is None
    assert time.monotonic() - t0 >= 0.04
    got = []
    reader = threading.Thread(target=lambda: got.append(q.get()))
    reader.start()
    q.close()
    reader.join(30)
    assert got == [None] and q.drained


def test_worker_handles_in_order_survives_a_bad_item_and_finishes():
    handled, finished = [], threading.Event()
    release = threading.Event()

    def handle(item: int) -> None:
        release.wait(30)
        if item == 2:
            raise RuntimeError("bad item")
        handled.append(item)

    w = QueueWorker("test", 3, handle, finish=finished.set)
    accepted = [w.submit(i) for i in range(6)]  # the worker is blocked on item 0: the queue fills
    release.set()
    w.close()
    assert finished.is_set() and w.errors == 1
    kept = [i for i, ok in enumerate(accepted) if ok]
    assert handled == [i for i in kept if i != 2]
    assert w.dropped == accepted.count(False) and w.dropped >= 2
    assert not w.submit(9)  # closed


def test_worker_setup_error_is_reported_and_nothing_runs():
    def setup() -> None:
        raise OSError("address in use")

    w = QueueWorker("test", 2, lambda item: None, setup=setup)
    assert w.started.wait(30)
    assert isinstance(w.setup_error, OSError)
    assert not w.submit(1)
    w.close()


def test_slots_keep_only_the_newest_frame_per_stream():
    slots = ScoreSlots()
    slots.offer(score_job("a", [1]))
    slots.offer(score_job("a", [1, 2]))
    slots.offer(score_job("b", [3]))
    jobs, ends = slots.take(0.01)
    assert slots.replaced == 1 and ends == []
    assert sorted((j.frame.stream_id, len(j.tracks)) for j in jobs) == [("a", 2), ("b", 1)]


def test_slots_keep_ends_in_order_and_drop_a_finished_streams_job():
    slots = ScoreSlots()
    slots.offer(score_job("a", [1]))
    slots.offer(score_job("b", [2]))
    slots.end(EndNotice("a", 1))
    slots.end(EndNotice("a"))
    jobs, ends = slots.take(0)
    assert [j.frame.stream_id for j in jobs] == ["b"]
    assert ends == [EndNotice("a", 1), EndNotice("a")]
    assert not slots.finished
    slots.close()
    assert slots.finished and slots.take(0) == ([], [])


@pytest.mark.parametrize("policy", ["block", "drop_oldest", "drop_newest"])
def test_bad_size_is_refused(policy):
    with pytest.raises(ValueError, match="maxsize"):
        BoundedQueue(0, policy)
