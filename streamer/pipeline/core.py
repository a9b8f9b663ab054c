"""``Pipeline``: sources -> detection/tracking thread -> scoring thread -> publisher.

Threads (STYLE.md #4): one decode thread per source (bounded queue), ONE detection thread
across all streams (owns the trackers), ONE scoring thread (owns engine, smoother and
scheduler; one engine batch per tick across streams), one publisher thread (owns the
socket), and an optional preview thread. A dead stream ends with its events and never
stops the others.

Example:
    >>> pipe = Pipeline(settings, [StreamSpec("cam0", "rtsp://10.0.0.5/live")])
    >>> report = pipe.run(stop_event)     # returns when all streams are done or stop is set
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamer.base import FaceDetector, FaceResult, Publisher, TrackEvent, Tracks
from streamer.config import StreamerSettings
from streamer.frames import Frame
from streamer.messages import (
    MessageContext,
    events_topic,
    faces_message,
    faces_topic,
    stream_event_message,
    track_event_message,
)
from streamer.pipeline.detection import DetectionStage, Outputs, StreamState
from streamer.pipeline.handoff import ScoreSlots
from streamer.pipeline.scoring import ScoringStage
from streamer.preview import PreviewWriter
from streamer.sources import SourceSettings, StreamEvent, open_source
from streamer.stats import PipelineStats, RateMeter, stats_line
from streamer.tracking import ByteTracker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamSpec:
    """A source to run: its id (used in topics) and URI (file path, rtsp://, ...)."""

    stream_id: str
    uri: str


class NullPublisher(Publisher):
    """Counts messages without sending them (``streamer bench``)."""

    def __init__(self) -> None:
        self.sent = 0
        self.dropped = 0
        self.queue_depth = 0

    def send(self, topic: str, msg: dict[str, Any]) -> bool:
        self.sent += 1
        return True

    def close(self) -> None:
        pass


class Pipeline:
    """The running service for a set of streams."""

    def __init__(
        self,
        settings: StreamerSettings,
        streams: list[StreamSpec],
        publisher: Publisher,
        *,
        engine: Any = None,
        detector: FaceDetector | None = None,
        preview: str | None = None,
        source_settings: SourceSettings | None = None,
    ) -> None:
        if not streams:
            raise ValueError("Pipeline needs at least one stream")
        ids = [s.stream_id for s in streams]
        if len(set(ids)) != len(ids):
            raise ValueError(f"stream ids must be unique, got {ids}")
        self.settings = settings
        self.specs = streams
        self.publisher = publisher
        self.source_settings = source_settings or settings.sources
        self.stats = PipelineStats()
        apply_thread_limits(settings)
        if engine is None:
            from engine import ExpressionEngine

            engine = ExpressionEngine(settings.engine)
        self.engine = engine
        if detector is None:
            from streamer.detect import create_detector

            detector = create_detector(settings.detector)
        self.detector = detector
        self.ctx = MessageContext(engine.fingerprint, engine.classes)
        preview_path = preview or settings.preview.path
        self.preview = PreviewWriter(preview_path, settings.preview, len(streams) > 1) if preview_path else None
        self._lock = threading.Lock()
        self._held_terminal: dict[str, StreamEvent] = {}
        self._terminal_done: set[str] = set()
        self.sources: dict[str, Any] = {}

    # ------------------------------------------------------------ events

    def _on_source_event(self, event: StreamEvent) -> None:
        """Called on source threads. Terminal events wait until the stream's last frames and
        track ends are published, so subscribers see them last."""
        if event.kind in ("ended", "failed"):
            with self._lock:
                if event.stream_id not in self._terminal_done:
                    self._held_terminal.setdefault(event.stream_id, event)
                    return
                if event.stream_id in self._held_terminal:
                    return
                self._held_terminal[event.stream_id] = event
        self.publisher.send(events_topic(event.stream_id), stream_event_message(event, self.ctx))

    def _terminal_seen(self, stream_id: str) -> bool:
        with self._lock:
            return stream_id in self._held_terminal

    def _stream_end(self, stream_id: str) -> None:
        with self._lock:
            self._terminal_done.add(stream_id)
            event = self._held_terminal.get(stream_id)
            if event is None:
                event = self._held_terminal[stream_id] = StreamEvent(stream_id, "ended", time.time(), "end of stream")
        self.publisher.send(events_topic(stream_id), stream_event_message(event, self.ctx))

    def _track_event(self, event: TrackEvent) -> None:
        self.publisher.send(events_topic(event.stream_id), track_event_message(event, self.ctx))

    def _faces(self, frame: Frame, tracks: Tracks, results: list[FaceResult | None]) -> None:
        if len(tracks) or self.settings.publisher.publish_empty:
            self.publisher.send(faces_topic(frame.stream_id), faces_message(frame, tracks, results, self.ctx))
        if self.preview is not None:
            self.preview.put(frame, tracks, results)

    # ------------------------------------------------------------ running

    def _open_sources(self) -> list[StreamState]:
        states = []
        for spec in self.specs:
            try:
                src = open_source(spec.uri, spec.stream_id, self.source_settings, self._on_source_event)
            except Exception as e:  # a bad URI fails its stream, not the service
                log.error("stream %s: cannot open %s: %s", spec.stream_id, spec.uri, e)
                self._on_source_event(StreamEvent(spec.stream_id, "failed", time.time(), f"cannot open source: {e}"))
                self._stream_end(spec.stream_id)
                self.stats.stream(spec.stream_id).ended = True
                continue
            self.sources[spec.stream_id] = src
            states.append(StreamState(spec.stream_id, src, ByteTracker(spec.stream_id, self.settings.tracker)))
        return states

    def snapshot(self) -> dict[str, Any]:
        """Counters, stage timings, drops and queue depths right now."""
        src_drops = sum(s.stats.frames_dropped for s in self.sources.values())
        drops = {
            "source": src_drops,
            "score": self.stats.score_jobs_replaced,
            "publish": getattr(self.publisher, "dropped", 0),
        }
        queues = {f"src:{sid}": _queue_depth(s) for sid, s in self.sources.items()}
        queues["publish"] = getattr(self.publisher, "queue_depth", 0)
        if self.preview is not None:
            drops["preview"] = self.preview.dropped
            queues["preview"] = self.preview.queue_depth
        extra = {
            "drops": drops,
            "queues": queues,
            "sources": {
                sid: {
                    "frames_decoded": s.stats.frames_decoded,
                    "frames_dropped": s.stats.frames_dropped,
                    "reconnects": s.stats.reconnects,
                }
                for sid, s in self.sources.items()
            },
            "published": getattr(self.publisher, "sent", 0),
        }
        return self.stats.snapshot(extra)

    def run(
        self,
        stop: threading.Event | None = None,
        on_stats: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Run until every stream is done or ``stop`` is set; return the final snapshot.

        On stop: sources stop (each emits "ended"), queued frames are drained and
        published, track and stream end events go out, then threads are joined.
        """
        stop = stop or threading.Event()
        slots = ScoreSlots()
        scoring = ScoringStage(self.engine, slots, self.settings, self.stats)
        states = self._open_sources()
        outputs = Outputs(self._faces, self._track_event, self._stream_end)
        detection = DetectionStage(
            states, self.detector, slots, scoring.results, outputs, self._terminal_seen, self.settings, self.stats
        )
        self.stats.started_s = time.monotonic()
        scoring.start()
        detection.start()
        for st in states:
            st.source.start()
        meter = RateMeter()
        next_stats = time.monotonic() + self.settings.stats.interval_s
        stopping = False
        try:
            while detection.is_alive():
                detection.join(timeout=0.1)
                self.stats.score_jobs_replaced = slots.replaced
                if stop.is_set() and not stopping:
                    stopping = True
                    log.info("stopping: %d source(s)", len(self.sources))
                    self._stop_sources()
                if time.monotonic() >= next_stats:
                    next_stats += self.settings.stats.interval_s
                    snap = self.snapshot()
                    if self.settings.stats.enabled:
                        log.info("%s", stats_line(snap, meter))
                    if on_stats is not None:
                        on_stats(snap)
        finally:
            self._stop_sources()
            detection.join()
            slots.close()
            scoring.join()
            if self.preview is not None:
                self.preview.close()
        self.stats.score_jobs_replaced = slots.replaced
        return self.snapshot()

    def _stop_sources(self) -> None:
        """Stop every source in parallel (each ``stop`` may wait for its thread)."""
        threads = [threading.Thread(target=s.stop, daemon=True) for s in self.sources.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def apply_thread_limits(settings: StreamerSettings) -> None:
    """``pipeline.torch_threads`` / ``pipeline.opencv_threads`` (0 = leave the default)."""
    if settings.pipeline.torch_threads:
        import torch

        torch.set_num_threads(settings.pipeline.torch_threads)
    if settings.pipeline.opencv_threads:
        import cv2

        cv2.setNumThreads(settings.pipeline.opencv_threads)


def _queue_depth(source: Any) -> int:
    return int(getattr(source, "queue_depth", 0))
