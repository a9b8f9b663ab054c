"""Scoring scheduler: at most max_hz per track, new tracks first, batch cap, forgetting."""

from __future__ import annotations

import pytest

from streamer.stages.scheduler import ScoringScheduler


def test_rate_limit_per_track():
    s = ScoringScheduler(max_hz=2.0, max_batch=10)
    keys = [("a", 1), ("a", 2)]
    assert s.select(keys, 0.0) == keys
    assert s.select(keys, 0.49) == []
    assert s.select(keys, 0.5) == keys


def test_new_tracks_first_then_longest_waiting_and_cap():
    s = ScoringScheduler(max_hz=10.0, max_batch=2)
    assert s.select([("a", 1)], 0.0) == [("a", 1)]
    assert s.select([("a", 2)], 0.05) == [("a", 2)]
    # both old ones are due at 1.0; a new one arrives: it goes first, then the oldest
    assert s.select([("a", 2), ("a", 1), ("b", 7)], 1.0) == [("b", 7), ("a", 1)]
    assert s.select([("a", 2), ("a", 1), ("b", 7)], 1.01) == [("a", 2)]


def test_forget_track_and_stream():
    s = ScoringScheduler(max_hz=1.0, max_batch=8)
    s.select([("a", 1), ("a", 2), ("b", 1)], 0.0)
    s.forget(("a", 1))
    assert s.select([("a", 1)], 0.1) == [("a", 1)]  # treated as new again
    s.forget_stream("a")
    assert len(s) == 1
    assert s.select([("a", 2), ("b", 1)], 0.2) == [("a", 2)]


@pytest.mark.parametrize(("hz", "batch"), [(0, 1), (-1, 1), (1, 0)])
def test_rejects_bad_limits(hz, batch):
    with pytest.raises(ValueError):
        ScoringScheduler(hz, batch)
