"""What the page shows, as one JSON document (``GET /api/state``): built from the state
board's snapshot (what the snapshot endpoint answers, so the page and ZeroMQ subscribers
never disagree), the event feed, per-stream health (``Pipeline.snapshot()`` in one
process; the driver's status in a cluster) and, in a cluster, which worker serves each
stream under which epoch. A stream's tracks are those in its latest faces message (in
view); tracks not yet ended but missing from it are only counted (``out_of_view``).

Every field is picked by name: the page never gets a URI, a key path or a feature vector.

Example:
    >>> from streamer.web.feed import EventFeed
    >>> snap = {"classes": ["neutral", "happiness"], "seq": {"faces.cam0": 7}, "streams": {"cam0": {
    ...     "started": None, "last_event": None, "frame": {"frame_index": 7, "size_wh": [640, 360]},
    ...     "tracks": {"3": {"frame_index": 7, "episode": None, "face": {"track_id": 3,
    ...         "label": "happiness", "score": 0.8, "smoothed_probs": [0.2, 0.8], "probs": [0.1, 0.9]}}}}}}
    >>> doc = page_state(snap, EventFeed(5))
    >>> t = doc["streams"]["cam0"]["tracks"][0]
    >>> t["track_id"], t["label"], t["bars"], doc["streams"]["cam0"]["seq"]
    (3, 'happiness', [0.2, 0.8], 7)
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from streamer.web.feed import EventFeed, _number, _text

if TYPE_CHECKING:
    from streamer.pipeline import Pipeline

HEALTH_EVERY_S = 1.0
"""Health is computed at most this often, however many browsers poll."""
LATENCY_WINDOW_S = 10.0
"""Latency percentiles over the last this many seconds."""


def _track(tid: str, tr: dict[str, Any]) -> dict[str, Any]:
    face = tr.get("face") or {}
    episode = tr.get("episode") or {}
    bars = face.get("smoothed_probs")
    return {
        "track_id": int(tid),
        "label": _text(face.get("label"), 64),
        "score": _number(face.get("score")),
        "bars": [float(p) for p in bars] if isinstance(bars, list) else None,
        "abstain": _text(face.get("abstain"), 64),
        "predicted": bool(face.get("predicted", False)),
        "episode": _text(episode.get("label"), 64),
        "frame_index": _number(tr.get("frame_index")),
    }


def _stream(sid: str, st: dict[str, Any], seq: dict[str, int]) -> dict[str, Any]:
    started, last = st.get("started") or {}, st.get("last_event") or {}
    frame = st.get("frame") or {}
    details = started.get("details") or {}
    kind = last.get("kind")
    tracks = sorted(st.get("tracks", {}).items(), key=lambda kv: int(kv[0]))
    in_view = [(tid, tr) for tid, tr in tracks if tr.get("frame_index") == frame.get("frame_index")]
    return {
        "state": "reconnecting" if kind == "reconnecting" else ("running" if started else "starting"),
        "reason": _text(last.get("reason")) if kind == "reconnecting" else None,
        "frame_index": _number(frame.get("frame_index")),
        "size_wh": frame.get("size_wh") if isinstance(frame.get("size_wh"), list) else None,
        "source_fps": _number(details.get("fps")),
        "epoch": _number(started.get("epoch")),
        "seq": seq.get(f"faces.{sid}"),
        "tracks": [_track(tid, tr) for tid, tr in in_view],
        "out_of_view": len(tracks) - len(in_view),
    }


def page_state(
    snapshot: dict[str, Any],
    feed: EventFeed,
    health: dict[str, dict[str, Any]] | None = None,
    placement: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The page's document: streams (tracks, state, health, worker and epoch), classes,
    recent events. Streams that ended stay listed with their outcome and reason."""
    seq = snapshot.get("seq") or {}
    streams = {sid: _stream(sid, st, seq) for sid, st in snapshot.get("streams", {}).items()}
    for sid, out in feed.outcomes().items():
        if sid not in streams:
            streams[sid] = {"state": out["kind"], "reason": out["reason"], "tracks": [], "epoch": out.get("epoch")}
    for sid, where in (placement or {}).items():
        st = streams.setdefault(sid, {"state": _text(where.get("state"), 32), "reason": None, "tracks": []})
        st["reason"] = st.get("reason") or _text(where.get("reason"))
        st["worker"], st["epoch"] = _text(where.get("worker"), 64), _number(where.get("epoch"))
    for sid, h in (health or {}).items():
        if sid in streams:
            streams[sid]["health"] = h
    return {
        "wall_time_s": time.time(),
        "engine": _text(snapshot.get("engine"), 64),
        "classes": [_text(c, 64) for c in snapshot.get("classes") or []],
        "streams": dict(sorted(streams.items())),
        "events": feed.recent(),
    }


class PipelineHealth:
    """Per-stream fps, drops, queue depth and frame-to-publish latency of one process,
    from ``Pipeline.snapshot()``; recomputed at most every ``HEALTH_EVERY_S``."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._lock = threading.Lock()
        self._last: tuple[float, dict[str, tuple[int, float]], dict[str, dict[str, Any]]] = (-1e9, {}, {})

    def __call__(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            then, frames_then, health = self._last
            now = time.monotonic()
            if now - then < HEALTH_EVERY_S:
                return health
            snap = self.pipeline.snapshot()
            frames_now: dict[str, tuple[int, float]] = {}
            health = {}
            since = time.time() - LATENCY_WINDOW_S
            for sid, s in snap.streams.items():
                frames_now[sid] = (s.stats.frames, now)
                f0, t0 = frames_then.get(sid, (s.stats.frames, now))
                src = s.source
                health[sid] = {
                    "fps": round((s.stats.frames - f0) / (now - t0), 1) if now > t0 else None,
                    "frames": s.stats.frames,
                    "decoded": src.frames_decoded if src is not None else 0,
                    "dropped": (src.frames_dropped if src is not None else 0) + s.stats.frames_failed,
                    "queue": s.queue_depth,
                    "latency_ms": self.pipeline.stats.latency.percentiles_ms(sid, since),
                    "outcome": s.stats.outcome,
                    "reason": _text(s.stats.reason),
                }
            self._last = (now, frames_now, health)
            return health
