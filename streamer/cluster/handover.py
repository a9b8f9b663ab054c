"""The messages the driver publishes itself when a stream changes hands: the lost epoch's
open episodes and tracks end (a dead worker never sends their ``ended``), then one stream
event ``moved`` says from which worker to which, under which new epoch, and why. A stream
whose worker is gone while it was being removed (or at shutdown) gets its terminal
``ended`` from the driver instead.

They are built from the driver's ``StateBoard`` (what subscribers were told) and go out
through the forwarder right after the old epoch is fenced, before the new worker starts:
subscribers see the old epoch close, the move, then the new epoch's ``started``.

Example:
    >>> stream = {"tracks": {"4": {"started": {"frame_index": 2, "track_age": 0}, "episode": None,
    ...                            "face": {"track_age": 30}, "frame_index": 32}}}
    >>> [(t, m["scope"], m["kind"], m.get("track_id")) for t, m in
    ...  close_tracks(stream, "cam0", 1, "0123456789ab", "worker_lost", now_s=5.0)]
    [('events.cam0', 'track', 'ended', 4)]
    >>> t, m = moved_event("cam0", "0123456789ab", "w1", "w2", 2, "worker w1 died", now_s=5.0)
    >>> m["kind"], m["details"], m["epoch"]
    ('moved', {'from': 'w1', 'to': 'w2', 'epoch': 2}, 2)
"""

from __future__ import annotations

import time
from typing import Any

from streamer.net.wire import events_topic
from streamer.output.state import SCHEMA_VERSION

Message = tuple[str, dict[str, Any]]


def _event(scope: str, kind: str, sid: str, engine: str, now_s: float, reason: str | None) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "type": "event",
        "scope": scope,
        "kind": kind,
        "stream_id": sid,
        "wall_time_s": now_s,
        "reason": reason,
        "details": {},
        "engine": engine,
    }


def close_tracks(
    stream: dict[str, Any] | None, sid: str, epoch: int, engine: str, reason: str, now_s: float | None = None
) -> list[Message]:
    """``ended`` for every open episode and track of ``stream`` (its ``StateBoard`` entry),
    in track id order, each episode before its track; tagged with the lost ``epoch``."""
    now_s = time.time() if now_s is None else now_s
    out: list[Message] = []
    for tid, tr in sorted((stream or {}).get("tracks", {}).items(), key=lambda kv: int(kv[0])):
        started = tr.get("started") or {}
        episode = tr.get("episode")
        if episode:
            msg = {k: v for k, v in episode.items() if k != "seq"}
            msg.update(kind="ended", reason=reason, wall_time_s=now_s, offset_s=None, duration_s=None, epoch=epoch)
            out.append((events_topic(sid), msg))
        msg = _event("track", "ended", sid, engine, now_s, reason)
        face = tr.get("face") or {}
        msg.update(
            track_id=int(tid),
            frame_index=tr.get("frame_index", started.get("frame_index", 0)) or 0,
            track_age=face.get("track_age", started.get("track_age", 0)) or 0,
            epoch=epoch,
        )
        out.append((events_topic(sid), msg))
    return out


def moved_event(
    sid: str,
    engine: str,
    from_worker: str | None,
    to_worker: str | None,
    epoch: int | None,
    cause: str,
    now_s: float | None = None,
) -> Message:
    """The stream left ``from_worker`` (None: it was waiting for capacity) for ``to_worker``
    (None: no worker has room yet; it waits) under ``epoch``; ``cause`` says why."""
    msg = _event("stream", "moved", sid, engine, time.time() if now_s is None else now_s, cause)
    msg["details"] = {"from": from_worker, "to": to_worker, "epoch": epoch}
    if epoch is not None:
        msg["epoch"] = epoch
    return events_topic(sid), msg


def ended_event(sid: str, engine: str, epoch: int, reason: str, now_s: float | None = None) -> Message:
    """A terminal ``ended`` the driver publishes for a stream its worker can no longer end."""
    msg = _event("stream", "ended", sid, engine, time.time() if now_s is None else now_s, reason)
    msg["epoch"] = epoch
    return events_topic(sid), msg
