"""Expression episodes on constructed probability sequences: enter and hold, a flicker that
must not open one, leave with hysteresis, close at track / stream end and on engine change."""

from __future__ import annotations

import numpy as np
import pytest

from configs.analytics import EpisodeSettings
from streamer.stages.episodes import EpisodeTracker

CLASSES = ["happiness", "sadness", "neutral", "surprise"]
KEY = ("cam0", 7)


def probs(**p: float) -> np.ndarray:
    """A probability vector with the given classes, the rest shared equally."""
    v = np.zeros(len(CLASSES))
    for name, value in p.items():
        v[CLASSES.index(name)] = value
    rest = [i for i, c in enumerate(CLASSES) if c not in p]
    v[rest] = (1.0 - sum(p.values())) / len(rest)
    return v


def run(tracker: EpisodeTracker, seq: list[tuple[float, np.ndarray]], key=KEY) -> list:
    return [e for t, p in seq for e in tracker.observe(key, t, p)]


def tracker(**kw) -> EpisodeTracker:
    return EpisodeTracker(EpisodeSettings(**{"p_on": 0.6, "p_off": 0.4, "t_on_s": 0.5, "t_off_s": 0.5, **kw}), CLASSES)


def test_enter_hold_and_leave_with_hysteresis():
    ep = tracker()
    seq = [(0.0, probs(surprise=0.5)), (0.2, probs(surprise=0.65)), (0.4, probs(surprise=0.8))]
    assert run(ep, seq) == []  # above p_on since 0.2, not yet for 0.5 s
    started = run(ep, [(0.7, probs(surprise=0.82))])
    assert [(e.kind, e.label, e.onset_s, e.episode_id) for e in started] == [("started", "surprise", 0.2, 1)]
    # 0.45 is below p_on but above p_off: the episode holds (hysteresis)
    assert run(ep, [(1.0, probs(surprise=0.45)), (1.3, probs(surprise=0.7))]) == []
    # below p_off from 1.5; a return at 1.7 resets the count; below again from 1.9 for 0.5 s
    assert run(ep, [(1.5, probs(surprise=0.3)), (1.7, probs(surprise=0.5)), (1.9, probs(surprise=0.2))]) == []
    ended = run(ep, [(2.2, probs(surprise=0.1)), (2.4, probs(surprise=0.1))])
    assert len(ended) == 1
    e = ended[0]
    assert (e.kind, e.label, e.reason) == ("ended", "surprise", "dropped")
    assert (e.onset_s, e.offset_s, e.duration_s) == (0.2, 1.9, 1.7)
    assert (e.peak_score, e.peak_time_s) == (0.82, 0.7)
    # mean over the observations from onset while the class held (0.2 ... 1.7)
    held = [0.65, 0.8, 0.82, 0.45, 0.7, 0.5]
    assert e.mean_probs[CLASSES.index("surprise")] == pytest.approx(np.mean(held), abs=1e-4)
    assert e.observations == len(held)
    assert len(ep) == 0  # state freed


@pytest.mark.parametrize(
    "seq",
    [
        # above p_on for less than t_on, then gone
        [
            (0.0, probs(surprise=0.9)),
            (0.3, probs(surprise=0.9)),
            (0.4, probs(surprise=0.2)),
            (0.6, probs(surprise=0.9)),
        ],
        # the top class flips between two classes every observation
        [(t / 5, probs(surprise=0.7) if i % 2 else probs(happiness=0.7)) for i, t in enumerate(range(10))],
        # the resting class never opens an episode
        [(t / 5, probs(neutral=0.95)) for t in range(10)],
    ],
)
def test_flickers_and_the_resting_class_open_nothing(seq):
    assert run(tracker(), seq) == []


def test_open_episode_closes_at_track_end_stream_end_and_engine_change():
    ep = tracker(t_on_s=0.0)
    assert [e.kind for e in run(ep, [(1.0, probs(happiness=0.9))])] == ["started"]
    assert ep.open_episode(KEY).label == "happiness"
    (e,) = ep.end_track(KEY)
    assert (e.reason, e.offset_s, e.duration_s) == ("track_ended", 1.0, 0.0)
    run(ep, [(2.0, probs(happiness=0.9))], key=("cam0", 1))
    run(ep, [(2.0, probs(sadness=0.9))], key=("cam0", 2))
    run(ep, [(2.0, probs(sadness=0.9))], key=("cam1", 3))
    assert sorted(e.track_id for e in ep.end_stream("cam0")) == [1, 2]
    assert [e.reason for e in ep.end_all("engine_changed")] == ["engine_changed"]
    assert len(ep) == 0 and ep.end_track(KEY) == []


def test_episode_ids_count_per_stream_and_disabled_does_nothing():
    ep = tracker(t_on_s=0.0, t_off_s=0.0)
    seq = [(0, probs(happiness=0.9)), (1, probs(happiness=0.1)), (2, probs(sadness=0.9)), (3, probs(sadness=0.1))]
    got = [(e.kind, e.episode_id) for e in run(ep, seq)]
    assert got == [("started", 1), ("ended", 1), ("started", 2), ("ended", 2)]
    assert run(tracker(enabled=False), seq) == []


def test_settings_refuse_inverted_thresholds():
    with pytest.raises(ValueError, match="p_off"):
        EpisodeSettings(p_on=0.4, p_off=0.6)
