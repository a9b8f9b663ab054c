"""The live view in a browser (``streamer run --web [HOST:]PORT``, docs/web.md): one page
from the package (``static/``: no build step, no CDN) with a tile per stream (its live
annotated picture, the tracks in view with their class bars, its health), and a feed of
recent episodes and stream events.

Pieces: ``tap.FrameTap`` (bounded-rate pictures, drawn on demand), ``feed.EventFeed`` (recent
events, observed beside the state board), ``view.page_state`` (the page's JSON, from the
board's snapshot), ``app.LiveView`` (aiohttp, token, TLS). ``serve_live_view`` assembles it
for one process, ``serve_cluster_view`` for a cluster's driver (every stream of every worker
with its worker and epoch; pictures stay with each process).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamer.web.app import LiveView
from streamer.web.feed import EventFeed
from streamer.web.tap import FrameTap
from streamer.web.view import PipelineHealth

if TYPE_CHECKING:
    from configs import Settings
    from streamer.pipeline import Pipeline
    from streamer.service.outlets import Outlets

__all__ = ["EventFeed", "FrameTap", "LiveView", "serve_cluster_view", "serve_live_view", "watch"]


def watch(outlets: Outlets, settings: Settings) -> EventFeed:
    """An event feed observing every message the outlets publish (before the first one)."""
    feed = EventFeed(settings.web.events)
    outlets.watchers.append(feed.apply)
    return feed


def serve_live_view(settings: Settings, outlets: Outlets, feed: EventFeed, pipeline: Pipeline) -> LiveView:
    """The page of one process: its board, ``feed``, pictures tapped from ``pipeline``'s
    emitter and its health; closed with the outlets."""
    tap = FrameTap(settings.web, blur=settings.preview.blur_faces, landmarks=settings.preview.landmarks)

    def forget_ended(topic: str, msg: dict[str, Any]) -> None:
        if msg.get("scope") == "stream" and msg.get("kind") in ("ended", "failed"):
            tap.forget(msg.get("stream_id", ""))

    view = LiveView(settings.web, outlets.board, feed, tap=tap, health=PipelineHealth(pipeline))
    outlets.on_close(view.close)
    outlets.watchers.append(forget_ended)
    pipeline.emitter.taps.append(tap.put)
    return view


def cluster_placement(status: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(stream -> worker, epoch, state, reason; stream -> fps) from a driver's status reply.

    Example:
        >>> status = {"sources": {"cam0": {"uri": "rtsp://u:***@h/x", "state": "assigned", "worker": "w1",
        ...     "epoch": 2, "reason": None}}, "workers": [{"id": "w1", "fps": {"cam0": 14.9}}]}
        >>> cluster_placement(status)
        ({'cam0': {'worker': 'w1', 'epoch': 2, 'state': 'assigned', 'reason': None}}, {'cam0': {'fps': 14.9}})
    """
    where = {
        sid: {"worker": s.get("worker"), "epoch": s.get("epoch"), "state": s.get("state"), "reason": s.get("reason")}
        for sid, s in status.get("sources", {}).items()
    }
    health = {sid: {"fps": fps} for w in status.get("workers", []) for sid, fps in (w.get("fps") or {}).items()}
    return where, health


def serve_cluster_view(
    settings: Settings, outlets: Outlets, feed: EventFeed, status: Callable[[], dict[str, Any]]
) -> LiveView:
    """The driver's page: its board and ``feed``, with each stream's worker, epoch and fps
    from ``status()`` (the driver's status reply); no pictures (they stay on the workers)."""
    view = LiveView(settings.web, outlets.board, feed, placement=lambda: cluster_placement(status()))
    outlets.on_close(view.close)
    return view
