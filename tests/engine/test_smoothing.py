"""Per-track smoothers: maths, lifecycle and the hard cap."""

from __future__ import annotations

import numpy as np
import pytest

from engine.smoothing import EmaSmoother, WindowSmoother, make_smoother, softmax


def unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def test_ema_is_the_recurrence():
    sm = EmaSmoother(alpha=0.25)
    p1, p2 = np.array([[0.6, 0.4]], np.float32), np.array([[0.2, 0.8]], np.float32)
    np.testing.assert_allclose(sm.update([("a", 1)], p1), p1)
    np.testing.assert_allclose(sm.update([("a", 1)], p2), 0.25 * p2 + 0.75 * p1, rtol=1e-6)


def test_tracks_and_streams_do_not_mix():
    sm = EmaSmoother(alpha=0.5)
    sm.update([("a", 1), ("b", 1)], np.array([[1, 0], [0, 1]], np.float32))
    out = sm.update([("a", 1), ("b", 1)], np.array([[0, 1], [0, 1]], np.float32))
    np.testing.assert_allclose(out, [[0.5, 0.5], [0, 1]])


def test_window_is_mean_of_last_t_features_normalised_and_scored():
    emb = np.stack([unit([1, 0, 0]), unit([0, 1, 0])])
    sm = WindowSmoother(emb, logit_scale=100.0, window=2)
    feats = [unit([1, 0.1, 0]), unit([0.2, 1, 0]), unit([0, 1, 0.3])]
    probs = np.zeros((1, 2), np.float32)
    for f in feats:
        out = sm.update([("s", 7)], probs, f[None])
    mean = unit(np.mean(feats[-2:], axis=0))
    np.testing.assert_allclose(out[0], softmax(100.0 * emb @ mean), rtol=1e-5)


def test_end_track_end_stream_and_cap():
    sm = make_smoother("ema", max_tracks=3)
    p = np.full((1, 2), 0.5, np.float32)
    for tid in range(3):
        sm.update([("cam", tid)], p)
    sm.update([("other", 0)], p)
    assert len(sm) == 3 and sm.evictions == 1 and ("cam", 0) not in sm
    sm.end_track(("cam", 1))
    assert ("cam", 1) not in sm
    assert sm.end_stream("cam") == 1 and len(sm) == 1


def test_cap_evicts_least_recently_updated():
    sm = make_smoother("ema", max_tracks=2)
    p = np.full((1, 2), 0.5, np.float32)
    sm.update([("s", 1)], p)
    sm.update([("s", 2)], p)
    sm.update([("s", 1)], p)  # 1 is now the most recent
    sm.update([("s", 3)], p)
    assert ("s", 2) not in sm and ("s", 1) in sm


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"name": "median"}, "unknown smoother 'median'; allowed: ema, window, none"),
        ({"name": "window"}, "needs class_embeddings"),
        ({"name": "ema", "alpha": 0.0}, "alpha must be in"),
        ({"name": "ema", "max_tracks": 0}, "max_tracks must be >= 1"),
    ],
)
def test_bad_smoother_arguments(kwargs, error):
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match=error):
        make_smoother(name, **kwargs)


def test_engine_smoother_from_config(offline):
    from engine import ExpressionEngine

    eng = ExpressionEngine(offline("engine.smoothing.method=window", "engine.smoothing.window=4"))
    sm = eng.make_smoother()
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    out = eng.score(crops)
    first = sm.update([("c", 1)], out.probs[:1], out.projected_features()[:1])
    np.testing.assert_allclose(first, out.probs[:1], atol=1e-5)  # one frame: window == raw
    assert isinstance(sm, WindowSmoother) and sm.window == 4
