"""``Pipeline``: sources -> detection thread -> scoring thread -> emitter -> publisher.

Threads (docs/design.md): a decode thread per source (bounded queue), ONE detection thread
across all streams (owns the trackers), ONE scoring thread (owns engine, smoother and
scheduler; one engine batch per tick across streams), one publisher thread (owns the socket),
an optional preview thread. A dead stream ends with its events and never stops the others.

Example (plain text)::

    pipe = Pipeline(settings, [StreamSpec("cam0", "rtsp://10.0.0.5/live")], publisher)
    snapshot = pipe.run(stop_event)     # returns when all streams are done or stop is set
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2

from configs import Settings
from configs.core.errors import ConfigError
from configs.engine import EngineSettings
from configs.streamer import PipelineSettings
from streamer.base import ExpressionScorer, FaceDetector, Publisher, Source
from streamer.detect import create_detector
from streamer.device.path import frame_path_for
from streamer.output.messages import MessageContext
from streamer.output.preview import PreviewWriter
from streamer.pipeline.detection_thread import DetectionThread, StreamState
from streamer.pipeline.emitter import Emitter, FrameTap
from streamer.pipeline.handoff import EngineChange, ResultsBoard, ScoreSlots
from streamer.pipeline.reporter import TrackReporter
from streamer.pipeline.scoring_thread import ScoringThread
from streamer.pipeline.stats import PipelineStats, RateMeter, StatsSnapshot, stats_line
from streamer.pipeline.tuning import fit_and_log, warm_up
from streamer.sources import open_source
from streamer.stages.tracking import create_tracker
from streamer.values import PublisherStats, StreamEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamSpec:
    """A source to run: its id (used in topics) and URI (file path, rtsp://, ...)."""

    stream_id: str
    uri: str


class NullPublisher(Publisher):
    """Counts messages without sending them (``streamer bench``)."""

    def __init__(self) -> None:
        self.stats = PublisherStats()

    def send(self, topic: str, msg: dict[str, Any]) -> bool:
        self.stats.sent += 1
        return True

    def close(self) -> None:
        pass


class Pipeline:
    """The running service for a set of streams (which may change while it runs)."""

    def __init__(
        self,
        settings: Settings,
        streams: list[StreamSpec],
        publisher: Publisher,
        *,
        engine: ExpressionScorer | None = None,
        detector: FaceDetector | None = None,
        keep_alive: bool = False,
        warm: bool = True,
        lockstep: bool = False,
        on_frame: FrameTap | None = None,
    ) -> None:
        """``lockstep``: frames published with their own scores, scoring rate in media time
        (``streamer analyze``); ``on_frame``: the emitter's frame tap."""
        if not streams and not keep_alive:
            raise ValueError("Pipeline needs at least one stream (or keep_alive for sources added later)")
        ids = [s.stream_id for s in streams]
        if len(set(ids)) != len(ids):
            raise ValueError(f"stream ids must be unique, got {ids}")
        settings = fit_and_log(settings)
        self.settings = settings
        self._warm = warm  # run each model once on blank pictures before the first frame
        self.specs = streams
        self.publisher = publisher
        self.stats = PipelineStats()
        if engine is None:
            from engine import open_scorer  # torch and open_clip load only for a full engine

            engine = open_scorer(settings.engine, settings.pipeline.torch_threads)
        self.engine = engine
        self.detector = detector if detector is not None else create_detector(settings.detector)
        apply_thread_limits(settings.pipeline)
        self.frame_path = frame_path_for(settings.pipeline.frames, settings.engine.device, self.detector)
        path = settings.preview.path
        self.preview = PreviewWriter(path, settings.preview, len(streams) > 1 or keep_alive) if path else None
        self.emitter = Emitter(
            publisher,
            MessageContext(engine.fingerprint, engine.classes),
            self.stats,
            publish_empty=settings.publisher.publish_empty,
            preview=self.preview,
            on_frame=on_frame,
        )
        self.sources: dict[str, Source] = {}
        self._slots = ScoreSlots()
        results = ResultsBoard()
        reporter = TrackReporter(
            self.emitter, results, self.stats, engine.classes, abstain=settings.abstain, episodes=settings.episodes
        )
        self._detection = DetectionThread(
            self.detector,
            self._slots,
            reporter,
            self.stats,
            detection=settings.detector,
            pipeline=settings.pipeline,
            keep_alive=keep_alive,
            lockstep=lockstep,
        )
        self._scoring = ScoringThread(
            engine,
            self._slots,
            results,
            self.stats,
            scheduler=settings.scheduler,
            crops=settings.crops,
            abstain=settings.abstain,
            tracker=settings.tracker,
            frame_path=self.frame_path,
            on_engine_change=self._detection.engine_changes.put,
            media_clock=lockstep,
        )
        self._lock = threading.Lock()
        self._engine_lock = threading.Lock()
        self._running = False

    def _open(self, spec: StreamSpec) -> StreamState | None:
        try:
            src = open_source(
                spec.uri,
                spec.stream_id,
                self.settings.sources,
                self.emitter.source_event,
                prepare=self.frame_path.prepare,
            )
        except Exception as e:  # a bad URI fails its stream, not the service
            log.error("stream %s: cannot open: %s", spec.stream_id, e)
            self.emitter.source_event(StreamEvent(spec.stream_id, "failed", time.time(), f"cannot open source: {e}"))
            self.emitter.stream_finished(spec.stream_id)
            return None
        self.sources[spec.stream_id] = src
        return StreamState(spec.stream_id, src, create_tracker(spec.stream_id, self.settings.tracker))

    def add_source(self, spec: StreamSpec) -> None:
        """Add a stream while running (any thread). ConfigError when its id is in use."""
        with self._lock:
            old = self.sources.get(spec.stream_id)
            if old is not None and not old.done:
                raise ConfigError(f"stream id {spec.stream_id!r} is in use")
            self.emitter.reopen(spec.stream_id)
            state = self._open(spec)
            if state is None:
                return
            self._detection.inbox.put(state)
            if self._running:
                state.source.start()
        log.info("stream %s added", spec.stream_id)

    def remove_source(self, stream_id: str) -> None:
        """Stop a stream while running (any thread): it ends with reason "removed" after its
        queued frames. ConfigError when no such stream runs."""
        with self._lock:
            src = self.sources.get(stream_id)
            if src is None or src.done:
                raise ConfigError(f"no running stream {stream_id!r}")
        threading.Thread(target=src.stop, args=("removed",), name=f"remove:{stream_id}", daemon=True).start()
        log.info("stream %s removed", stream_id)

    def running_streams(self) -> list[str]:
        with self._lock:
            return sorted(sid for sid, s in self.sources.items() if not s.done)

    def change_engine(self, settings: EngineSettings, timeout_s: float = 120.0) -> EngineChange:
        """Build an engine for ``settings`` off the hot path (sharing the frozen CLIP), swap it
        in between two engine batches, and return once every later message carries it. A
        failure while building (bad prompts, head file) raises and changes nothing."""
        with self._engine_lock:
            new = self.engine.derive(settings)
            change = EngineChange(self._scoring.generation + 1, new.fingerprint, list(new.classes))
            self._scoring.request_engine(new, change)
            if not change.applied.wait(timeout_s):
                raise TimeoutError(f"the engine change was not applied within {timeout_s} s")
            self.engine = new
            return change

    def snapshot(self) -> StatsSnapshot:
        """Counters, stage timings, drops and queue depths right now."""
        self.stats.score_jobs_replaced = self._slots.replaced
        pub = self.publisher.stats
        sources = dict(self.sources)
        drops = {
            "source": sum(s.stats.frames_dropped for s in sources.values()),
            "score": self._slots.replaced,
            "publish": pub.dropped,
        }
        queues = {f"src:{sid}": s.queue_depth for sid, s in sources.items()}
        queues["publish"] = self.publisher.queue_depth
        if self.preview is not None:
            drops["preview"] = self.preview.dropped
            queues["preview"] = self.preview.queue_depth
        return self.stats.snapshot(sources, drops, queues, pub.sent)

    def run(
        self, stop: threading.Event | None = None, on_stats: Callable[[StatsSnapshot], None] | None = None
    ) -> StatsSnapshot:
        """Run until every stream is done (or, with ``keep_alive``, until ``stop``) or ``stop``
        is set; return the final snapshot.

        On stop: sources stop (each emits "ended"), queued frames are drained and
        published, track and stream end events go out, then threads are joined.
        """
        stop = stop or threading.Event()
        if self._warm:
            warm_up(self.detector, self.engine, self.settings)
        with self._lock:
            for spec in self.specs:
                state = self._open(spec)
                if state is not None:
                    self._detection.inbox.put(state)
            self.stats.started_s = time.monotonic()
            self._scoring.start()
            self._detection.start()
            for src in self.sources.values():
                src.start()
            self._running = True
        meter = RateMeter()
        next_stats = time.monotonic() + self.settings.stats.interval_s
        stopping = False
        try:
            while self._detection.is_alive():
                self._detection.join(timeout=0.1)
                if stop.is_set() and not stopping:
                    stopping = True
                    log.info("stopping: %d source(s)", len(self.sources))
                    self._detection.stop_when_idle()
                    self._stop_sources()
                if time.monotonic() >= next_stats:
                    next_stats += self.settings.stats.interval_s
                    snap = self.snapshot()
                    if self.settings.stats.enabled:
                        log.info("%s", stats_line(snap, meter))
                    if on_stats is not None:
                        on_stats(snap)
        finally:
            self._detection.stop_when_idle()
            self._stop_sources()
            self._detection.join()
            self._slots.close()
            self._scoring.join()
            if self.preview is not None:
                self.preview.close()
        return self.snapshot()

    def _stop_sources(self) -> None:
        """Stop every source in parallel (each ``stop`` may wait for its thread)."""
        with self._lock:
            sources = list(self.sources.values())
        threads = [threading.Thread(target=s.stop, daemon=True) for s in sources]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def apply_thread_limits(settings: PipelineSettings) -> None:
    """``pipeline.torch_threads`` / ``pipeline.opencv_threads`` (0 = leave the default;
    ``fit_to_machine`` has resolved ``auto``)."""
    if settings.torch_threads and "torch" in sys.modules:  # a torch-free engine has its own threads
        import torch

        torch.set_num_threads(settings.torch_threads)
    if settings.opencv_threads:
        cv2.setNumThreads(settings.opencv_threads)
