"""The published message bodies, schema version 1 (docs/messages.md,
``streamer/schemas/{faces,events,snapshot}.v1.json``).

Faces of one frame are turned into JSON-able lists column by column (one ``tolist`` per
array, not per number). Fields added after the first release are optional: a face carries
``abstain``, ``predicted`` and ``relinked_from`` only when they apply.

Example (plain text)::

    msg = faces_message(frame, tracks, results, ctx, now_s=time.time())
    msg["faces"][0]["label"]     # 'happiness'
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from configs.core.logs import redact_secrets
from streamer.frames import Frame
from streamer.net.wire import events_topic, faces_topic
from streamer.stages.episodes import EpisodeEvent
from streamer.values import Abstention, FaceResult, StreamEvent, TrackEvent, Tracks

SCHEMA_VERSION = 1

__all__ = [
    "SCHEMA_VERSION",
    "MessageContext",
    "engine_changed_message",
    "episode_event_message",
    "events_topic",
    "faces_message",
    "faces_topic",
    "stream_event_message",
    "track_event_message",
]


@dataclass(frozen=True)
class MessageContext:
    """What every message repeats: which engine produced it."""

    engine_fingerprint: str
    classes: list[str]


def _face(
    tid: int, box: list[float], det: float, age: int, r: FaceResult | Abstention | None, predicted: bool
) -> dict[str, Any]:
    scored = r if isinstance(r, FaceResult) else None
    face = {
        "track_id": tid,
        "bbox_xyxy": box,
        "det_score": det,
        "label": None if scored is None else scored.label,
        "score": None if scored is None else round(scored.score, 4),
        "probs": None if scored is None else np.round(scored.probs, 4).tolist(),
        "smoothed_probs": None if scored is None else np.round(scored.smoothed_probs, 4).tolist(),
        "track_age": age,
        "scored_frame_index": None if r is None else r.frame_index,
    }
    if isinstance(r, Abstention):
        face["abstain"] = r.reason
    if predicted:
        face["predicted"] = True
    if scored is not None and scored.relinked_from is not None:
        face["relinked_from"] = scored.relinked_from
    return face


def faces_message(
    frame: Frame,
    tracks: Tracks,
    results: list[FaceResult | Abstention | None],
    ctx: MessageContext,
    now_s: float | None = None,
) -> dict[str, Any]:
    """One processed frame: every confirmed track seen in it with its latest scores
    (``label``/``score``/``probs`` are null until the track's first crop is scored, and for
    an abstention)."""
    now_s = time.time() if now_s is None else now_s
    boxes = np.round(tracks.bbox_xyxy, 1).tolist()
    det_scores = np.round(tracks.det_scores, 4).tolist()
    predicted = [False] * len(tracks) if tracks.predicted is None else tracks.predicted.tolist()
    ids, ages = tracks.track_ids.tolist(), tracks.ages.tolist()
    faces = [_face(ids[i], boxes[i], det_scores[i], ages[i], results[i], predicted[i]) for i in range(len(tracks))]
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


def _event(scope: str, kind: str, stream_id: str, ctx: MessageContext, now_s: float | None) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "type": "event",
        "scope": scope,
        "kind": kind,
        "stream_id": stream_id,
        "wall_time_s": time.time() if now_s is None else now_s,
        "reason": None,
        "details": {},
        "engine": ctx.engine_fingerprint,
    }


def stream_event_message(event: StreamEvent, ctx: MessageContext, now_s: float | None = None) -> dict[str, Any]:
    """A source's ``StreamEvent`` (started / reconnecting / resumed / discontinuity / ended /
    failed), stamped ``now_s`` (publication time); the source's own time of the change is
    ``source_time_s``."""
    msg = _event("stream", event.kind, event.stream_id, ctx, now_s)
    msg["source_time_s"] = event.wall_time_s
    msg["reason"] = None if event.reason is None else redact_secrets(event.reason)
    msg["details"] = _jsonable(event.details or {})
    return msg


def track_event_message(event: TrackEvent, ctx: MessageContext, now_s: float | None = None) -> dict[str, Any]:
    """A track started (confirmed), ended, or was re-linked to one that ended just before."""
    msg = _event("track", event.kind, event.stream_id, ctx, now_s)
    msg.update(track_id=event.track_id, frame_index=event.frame_index, track_age=event.age)
    if event.relinked_from is not None:
        msg["relinked_from"] = event.relinked_from
    return msg


def episode_event_message(event: EpisodeEvent, ctx: MessageContext, now_s: float | None = None) -> dict[str, Any]:
    """An expression episode started or ended on a track (``scope: episode``)."""
    msg = _event("episode", event.kind, event.stream_id, ctx, now_s)
    msg["reason"] = event.reason
    msg.update(
        track_id=event.track_id,
        episode_id=event.episode_id,
        label=event.label,
        onset_s=event.onset_s,
        offset_s=event.offset_s,
        duration_s=event.duration_s,
        peak_score=event.peak_score,
        peak_time_s=event.peak_time_s,
        mean_probs=event.mean_probs,
        observations=event.observations,
    )
    return msg


def engine_changed_message(stream_id: str, ctx: MessageContext, now_s: float | None = None) -> dict[str, Any]:
    """The engine changed (new prompts or head): every later message of the stream carries
    the new fingerprint and classes (``scope: engine``, ``kind: changed``)."""
    msg = _event("engine", "changed", stream_id, ctx, now_s)
    msg["classes"] = ctx.classes
    return msg


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
