"""The published message bodies, schema version 1 (docs/messages.md,
``streamer/schemas/{faces,events}.v1.json``).

Faces of one frame are turned into JSON-able lists column by column (one ``tolist`` per
array, not per number).

Example (plain text)::

    msg = faces_message(frame, tracks, results, ctx, now_s=time.time())
    msg["faces"][0]["label"]
    # -> 'happiness'
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.cli import redact_secrets
from streamer.base import FaceResult, Frame, StreamEvent, TrackEvent, Tracks

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class MessageContext:
    """What every message repeats: which engine produced it."""

    engine_fingerprint: str
    classes: list[str]


def faces_topic(stream_id: str) -> str:
    return f"faces.{stream_id}"


def events_topic(stream_id: str) -> str:
    return f"events.{stream_id}"


def faces_message(
    frame: Frame,
    tracks: Tracks,
    results: list[FaceResult | None],
    ctx: MessageContext,
    now_s: float | None = None,
) -> dict[str, Any]:
    """One processed frame: every confirmed track seen in it with its latest scores
    (``label``/``score``/``probs`` are null until the track's first crop is scored)."""
    now_s = time.time() if now_s is None else now_s
    boxes = np.round(tracks.bbox_xyxy, 1).tolist()
    det_scores = np.round(tracks.det_scores, 4).tolist()
    faces = []
    for i, (tid, age) in enumerate(zip(tracks.track_ids.tolist(), tracks.ages.tolist(), strict=True)):
        r = results[i]
        faces.append(
            {
                "track_id": tid,
                "bbox_xyxy": boxes[i],
                "det_score": det_scores[i],
                "label": None if r is None else r.label,
                "score": None if r is None else round(r.score, 4),
                "probs": None if r is None else np.round(r.probs, 4).tolist(),
                "smoothed_probs": None if r is None else np.round(r.smoothed_probs, 4).tolist(),
                "track_age": age,
                "scored_frame_index": None if r is None else r.frame_index,
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "type": "faces",
        "stream_id": frame.stream_id,
        "frame_index": frame.index,
        "pts_s": frame.pts_s,
        "wall_time_s": frame.wall_time_s,
        "latency_ms": round((now_s - frame.wall_time_s) * 1000.0, 2),
        "engine": ctx.engine_fingerprint,
        "classes": ctx.classes,
        "size_wh": list(frame.size_wh),
        "faces": faces,
    }


def stream_event_message(event: StreamEvent, ctx: MessageContext, now_s: float | None = None) -> dict[str, Any]:
    """A source's ``StreamEvent`` (started / reconnecting / resumed / discontinuity / ended /
    failed), stamped ``now_s`` (publication time); the source's own time of the change is
    ``source_time_s``."""
    return {
        "schema_version": SCHEMA_VERSION,
        "type": "event",
        "scope": "stream",
        "kind": event.kind,
        "stream_id": event.stream_id,
        "wall_time_s": time.time() if now_s is None else now_s,
        "source_time_s": event.wall_time_s,
        "reason": None if event.reason is None else redact_secrets(event.reason),
        "details": _jsonable(event.details or {}),
        "engine": ctx.engine_fingerprint,
    }


def track_event_message(event: TrackEvent, ctx: MessageContext, now_s: float | None = None) -> dict[str, Any]:
    """A track started (confirmed) or ended."""
    return {
        "schema_version": SCHEMA_VERSION,
        "type": "event",
        "scope": "track",
        "kind": event.kind,
        "stream_id": event.stream_id,
        "wall_time_s": time.time() if now_s is None else now_s,
        "reason": None,
        "details": {},
        "track_id": event.track_id,
        "frame_index": event.frame_index,
        "track_age": event.age,
        "engine": ctx.engine_fingerprint,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str):
        return redact_secrets(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_secrets(str(value))
