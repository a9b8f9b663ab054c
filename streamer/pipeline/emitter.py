"""The one place where the pipeline's output leaves: faces messages, track events and stream
events go to the publisher (and frames to the preview), in an order subscribers can rely on.

A stream's terminal event (``ended`` or ``failed``) may come from its source's thread before
the detection thread has published the stream's last frames and track ends; it is held
until the detection thread calls ``stream_finished``, so it is always the stream's last
message. Sources call ``source_event`` from their own threads; everything else is called
from the detection thread. Event messages are stamped (``wall_time_s``) as they are
published, under one lock, so per topic ``wall_time_s`` never decreases with ``seq``.

Example (plain text)::

    emitter = Emitter(publisher, MessageContext(engine.fingerprint, engine.classes), stats)
    source = open_source(uri, "cam0", settings.sources, emitter.source_event)
    ...
    emitter.faces(frame, tracks, results)
    emitter.stream_finished("cam0")     # publishes the held "ended" (or "failed") last
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from streamer.base import Publisher
from streamer.frames import Frame
from streamer.output.messages import (
    MessageContext,
    engine_changed_message,
    episode_event_message,
    events_topic,
    faces_message,
    faces_topic,
    stream_event_message,
    track_event_message,
)
from streamer.output.preview import PreviewWriter
from streamer.pipeline.stats import PipelineStats
from streamer.stages.episodes import EpisodeEvent
from streamer.values import Abstention, FaceResult, StreamEvent, TrackEvent, Tracks

log = logging.getLogger(__name__)

FrameTap = Callable[[Frame, Tracks, list[FaceResult | Abstention | None]], None]
"""Sees every published frame with its tracks and results (analyze's thumbnails, the live view's pictures)."""


class Emitter:
    """Publishes what the pipeline produces and keeps each stream's terminal event last."""

    def __init__(
        self,
        publisher: Publisher,
        ctx: MessageContext,
        stats: PipelineStats,
        *,
        publish_empty: bool = True,
        preview: PreviewWriter | None = None,
        on_frame: FrameTap | None = None,
    ) -> None:
        self.publisher = publisher
        self.ctx = ctx
        self.stats = stats
        self.publish_empty = publish_empty
        self.preview = preview
        self.taps: list[FrameTap] = [on_frame] if on_frame is not None else []
        """Called on the detection thread with every published frame, its tracks and results
        (``streamer analyze``'s thumbnails, the live view's pictures): each must return at once."""
        self._lock = threading.Lock()
        self._terminal: dict[str, StreamEvent] = {}
        """The terminal event of each stream (held until it finishes, then published)."""
        self._finished: set[str] = set()
        self._event_lock = threading.Lock()
        self._last_event_s = 0.0

    def source_event(self, event: StreamEvent) -> None:
        """A source's event (any thread). Terminal events are held; a second one is ignored."""
        st = self.stats.stream(event.stream_id)
        st.last_event = event.kind
        if event.kind == "started":
            st.started = True
        if event.terminal:
            with self._lock:
                if event.stream_id in self._terminal:
                    return
                self._terminal[event.stream_id] = event
                if event.stream_id not in self._finished:
                    return
        self._send_stream_event(event)

    def terminal_seen(self, stream_id: str) -> bool:
        with self._lock:
            return stream_id in self._terminal

    def track_events(self, events: list[TrackEvent]) -> None:
        for event in events:
            with self._event_lock:
                msg = track_event_message(event, self.ctx, self._stamp())
                self.publisher.send(events_topic(event.stream_id), msg)

    def _stamp(self) -> float:
        """Publication time of the next event message (with the lock held; never decreasing)."""
        self._last_event_s = max(time.time(), self._last_event_s)
        return self._last_event_s

    def episode_events(self, events: list[EpisodeEvent]) -> None:
        for event in events:
            self.publisher.send(events_topic(event.stream_id), episode_event_message(event, self.ctx))

    def engine_changed(self, ctx: MessageContext, stream_ids: list[str]) -> None:
        """From now on every message carries ``ctx``; each active stream is told first."""
        self.ctx = ctx
        for sid in stream_ids:
            self.publisher.send(events_topic(sid), engine_changed_message(sid, ctx))

    def reopen(self, stream_id: str) -> None:
        """A finished stream's id is used again by a newly added source."""
        with self._lock:
            self._finished.discard(stream_id)
            self._terminal.pop(stream_id, None)
        st = self.stats.stream(stream_id)  # counters go on; the state is the new source's
        st.started, st.outcome, st.last_event, st.reason = False, None, None, None

    def faces(self, frame: Frame, tracks: Tracks, results: list[FaceResult | Abstention | None]) -> None:
        now = time.time()
        if len(tracks) or self.publish_empty:
            self.publisher.send(faces_topic(frame.stream_id), faces_message(frame, tracks, results, self.ctx, now))
        self.stats.latency.add(frame.stream_id, now, now - frame.wall_time_s)  # frame-to-publish
        if self.preview is not None:
            self.preview.put(frame, tracks, results)
        for tap in self.taps:
            tap(frame, tracks, results)

    def stream_finished(self, stream_id: str) -> None:
        """The stream's last frames and track ends are out: publish its terminal event (an
        "ended" is made up when the source never sent one)."""
        with self._lock:
            self._finished.add(stream_id)
            event = self._terminal.setdefault(stream_id, StreamEvent(stream_id, "ended", time.time(), "end of stream"))
        self._send_stream_event(event)

    def _send_stream_event(self, event: StreamEvent) -> None:
        if event.terminal:
            st = self.stats.stream(event.stream_id)
            st.outcome, st.reason = event.kind, event.reason
        with self._event_lock:
            msg = stream_event_message(event, self.ctx, self._stamp())
            self.publisher.send(events_topic(event.stream_id), msg)
