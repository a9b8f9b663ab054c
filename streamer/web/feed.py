"""The live view's feed: recent episodes and stream events, and how each stream ended,
taken from the published messages themselves (an observer beside the ``StateBoard``, fed
the same messages in the same ``seq`` order), so the page says what subscribers were told.

Only the fields the page shows are kept, each checked: no URI (a redacted one even), no
path, no feature vector ever reaches the page through here.

Example:
    >>> feed = EventFeed(10)
    >>> feed.apply("events.cam0", {"type": "event", "scope": "stream", "kind": "failed",
    ...     "stream_id": "cam0", "wall_time_s": 5.0, "reason": "cannot open source: no such file",
    ...     "details": {"uri": "rtsp://u:p@cam/x"}})
    >>> feed.outcomes()["cam0"]["reason"], "uri" in feed.recent()[0]
    ('cannot open source: no such file', False)
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from configs.core.logs import redact_secrets

STREAM_KINDS = ("started", "reconnecting", "resumed", "discontinuity", "ended", "failed", "moved")
"""Stream events listed on the page."""


def _text(value: Any, limit: int = 300) -> str | None:
    return None if value is None else redact_secrets(str(value))[:limit]


def _number(value: Any) -> float | int | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def feed_entry(msg: dict[str, Any]) -> dict[str, Any] | None:
    """What the page lists of one message (None: not listed)."""
    scope, kind = msg.get("scope"), msg.get("kind")
    if msg.get("type") != "event" or not (scope == "episode" or (scope == "stream" and kind in STREAM_KINDS)):
        return None
    entry: dict[str, Any] = {
        "scope": scope,
        "kind": kind,
        "stream_id": _text(msg.get("stream_id"), 64),
        "wall_time_s": _number(msg.get("wall_time_s")),
        "reason": _text(msg.get("reason")),
    }
    if _number(msg.get("epoch")) is not None:
        entry["epoch"] = msg["epoch"]
    if scope == "episode":
        entry.update(
            track_id=_number(msg.get("track_id")),
            label=_text(msg.get("label"), 64),
            peak_score=_number(msg.get("peak_score")),
            duration_s=_number(msg.get("duration_s")),
        )
    elif kind == "moved":
        details = msg.get("details") or {}
        entry.update({k: _text(details.get(k), 64) for k in ("from", "to")})
    elif kind in ("reconnecting", "discontinuity"):
        details = msg.get("details") or {}
        entry.update({k: _number(details.get(k)) for k in ("attempt", "delay_s", "gap_s") if k in details})
    return entry


class EventFeed:
    """The last ``size`` listed events, and each stream's terminal event; thread-safe."""

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self._recent: deque[dict[str, Any]] = deque(maxlen=size)
        self._outcomes: dict[str, dict[str, Any]] = {}

    def apply(self, topic: str, msg: dict[str, Any]) -> None:
        """Observe one published message (the publisher's or forwarder's thread)."""
        entry = feed_entry(msg)
        if entry is None:
            return
        with self._lock:
            self._recent.append(entry)
            if entry["scope"] == "stream":
                if entry["kind"] in ("ended", "failed"):
                    self._outcomes[entry["stream_id"]] = entry
                elif entry["kind"] == "started":
                    self._outcomes.pop(entry["stream_id"], None)

    def recent(self) -> list[dict[str, Any]]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._recent))

    def outcomes(self) -> dict[str, dict[str, Any]]:
        """Stream id -> its ``ended`` or ``failed`` entry (streams that have ended)."""
        with self._lock:
            return dict(self._outcomes)
