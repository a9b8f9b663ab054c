"""The detection thread: reads every source, detects faces for all streams of a tick in one
call (``detect_frames``), tracks per stream, publishes each processed frame (through the
``TrackReporter``) and hands the newest tracked frame of each stream to the scoring thread
(drop-to-latest). Streams added while running arrive through its inbox; engine changes from
the scoring thread are applied between ticks.

It owns the per-stream trackers (no locks) and never waits for the engine: a faces message
carries each track's latest result from the scoring thread's board (null until first scored).

Example (plain text: the pipeline builds it)::

    thread = DetectionThread(detector, slots, reporter, stats,
                             detection=settings.detector, pipeline=settings.pipeline)
    thread.inbox.put(StreamState("cam0", source, create_tracker("cam0", settings.tracker)))
    thread.start(); thread.join()    # returns when every stream is done
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from configs.streamer import DetectorSettings, PipelineSettings
from streamer.base import FaceDetector, Source, Tracker
from streamer.detect.frames import FrameError, detect_frames
from streamer.frames import Frame
from streamer.pipeline.handoff import EndNotice, EngineChange, ScoreJob, ScoreSlots
from streamer.pipeline.reporter import TrackReporter
from streamer.pipeline.stats import PipelineStats
from streamer.values import Detections

log = logging.getLogger(__name__)

TERMINAL_GRACE_S = 2.0
"""How long a drained stream waits for its source's terminal event before one is made up."""


@dataclass
class StreamState:
    """One stream as the detection thread sees it."""

    stream_id: str
    source: Source
    tracker: Tracker
    last_index: int = 0
    since_full: int = 1 << 30
    """Frames since the last full-frame detection (huge = the next frame gets one)."""
    finishing_since: float | None = None
    finished: bool = False


def search_boxes(st: StreamState, full_frame_every: int) -> np.ndarray | None:
    """None when this frame of ``st`` gets a full-frame pass (every ``full_frame_every``-th
    frame, and the first), else where its tracks are expected: maybe none, when the scene is
    empty, so an empty scene costs the least and a face entering it is found at the next pass.

    Example:
        >>> class NoTracks:
        ...     def predicted_boxes(self): return np.zeros((0, 4), np.float32)
        >>> st = StreamState("cam", source=None, tracker=NoTracks())
        >>> ["full" if search_boxes(st, 3) is None else "regions" for _ in range(7)]
        ['full', 'regions', 'regions', 'full', 'regions', 'regions', 'full']
    """
    if full_frame_every <= 1 or st.since_full + 1 >= full_frame_every:
        st.since_full = 0
        return None
    st.since_full += 1
    return st.tracker.predicted_boxes()


class DetectionThread(threading.Thread):
    """Read -> detect (batched over streams) -> track -> publish -> offer to scoring."""

    def __init__(
        self,
        detector: FaceDetector,
        slots: ScoreSlots,
        reporter: TrackReporter,
        stats: PipelineStats,
        *,
        detection: DetectorSettings,
        pipeline: PipelineSettings,
        keep_alive: bool = False,
        lockstep: bool = False,
    ) -> None:
        """Streams arrive through ``inbox``; ``detection`` is the ``detector`` section
        (cadence, region search, minimum face size), ``pipeline`` the read timeout and the
        streams per tick. ``lockstep``: wait for each offered frame to be scored before
        publishing it (results depend on the file alone, not on thread timing: ``streamer analyze``)."""
        super().__init__(name="detection", daemon=True)
        self.streams: list[StreamState] = []
        self.detector = detector
        self.slots = slots
        self.reporter = reporter
        self.emitter = reporter.emitter
        self.detection_settings = detection
        self.pipeline_settings = pipeline
        self.stats = stats
        self.keep_alive = keep_alive
        """Keep running with no stream left (sources may be added) until ``stop_when_idle``."""
        self.lockstep = lockstep
        self.inbox: queue.SimpleQueue[StreamState] = queue.SimpleQueue()
        """Streams added while running (any thread puts, this thread takes)."""
        self.engine_changes: queue.SimpleQueue[EngineChange] = queue.SimpleQueue()
        self._rr = 0

    def stop_when_idle(self) -> None:
        self.keep_alive = False

    def run(self) -> None:
        try:
            while True:
                self._take_inbox()
                active = [s for s in self.streams if not s.finished]
                if not active and not self.keep_alive:
                    break
                if not active:
                    time.sleep(self.pipeline_settings.read_timeout_s)
                    continue
                frames = self._gather(active)
                if frames:
                    self.tick(frames)
        finally:
            self._take_inbox()
            self.slots.close()

    def _take_inbox(self) -> None:
        """New streams join; engine changes take effect (between ticks)."""
        while not self.inbox.empty():
            self.streams.append(self.inbox.get())
        while not self.engine_changes.empty():
            active = [s.stream_id for s in self.streams if not s.finished]
            self.reporter.engine_changed(self.engine_changes.get(), active)

    def _gather(self, active: list[StreamState]) -> list[tuple[StreamState, Frame]]:
        """At most one frame per stream; waits briefly on one stream when none has any."""
        frames = []
        limit = self.pipeline_settings.max_streams_per_tick
        n = len(active)
        for k in range(n):
            st = active[(self._rr + k) % n]
            if len(frames) >= limit:
                break
            frame = st.source.read(0)
            if frame is not None:
                frames.append((st, frame))
            elif st.source.done:
                self._finish(st)
        self._rr = (self._rr + 1) % max(1, n)
        if not frames:
            waiting = [s for s in active if not s.finished and s.finishing_since is None]
            if waiting:
                st = waiting[self._rr % len(waiting)]
                frame = st.source.read(self.pipeline_settings.read_timeout_s)
                if frame is not None:
                    frames.append((st, frame))
            else:
                time.sleep(self.pipeline_settings.read_timeout_s)
        return frames

    def _search_boxes(self, st: StreamState) -> np.ndarray | None:
        return search_boxes(st, self.detection_settings.full_frame_every)

    def tick(self, frames: list[tuple[StreamState, Frame]]) -> None:
        """Detect, track and publish one frame per stream."""
        self.stats.ticks += 1
        boxes = [self._search_boxes(st) for st, _ in frames]
        images = [f.image for _, f in frames]
        found = detect_frames(self.detector, images, self.detection_settings, boxes, self.stats.time)
        for (st, frame), dets in zip(frames, found, strict=True):
            if isinstance(dets, FrameError):
                self._frame_error(st, frame, dets.stage, dets.error)
                continue
            try:
                self._track_and_publish(st, frame, dets)
            except Exception as e:  # one broken frame is skipped, the stream goes on
                self._frame_error(st, frame, "track/publish", e)

    def _track_and_publish(self, st: StreamState, frame: Frame, dets: Detections) -> None:
        with self.stats.time("track"):
            tracks, events = st.tracker.update(dets, frame.index)
        st.last_index = frame.index
        self.reporter.track_events(events)
        for ev in events:
            if ev.kind == "ended":
                self.slots.end(EndNotice(st.stream_id, ev.track_id))
        to_score, reasons = self.reporter.scorable(tracks)
        if len(to_score):
            self.slots.offer(ScoreJob(frame, to_score))
            if self.lockstep:
                self.slots.wait_scored(st.stream_id)
        with self.stats.time("publish"):
            self.reporter.frame(frame, tracks, reasons)
        s = self.stats.stream(st.stream_id)
        s.frames += 1
        s.faces += len(tracks)

    def _frame_error(self, st: StreamState, frame: Frame, stage: str, e: BaseException) -> None:
        s = self.stats.stream(st.stream_id)
        s.errors += 1
        s.frames_failed += 1
        log.warning(
            "%s frame %d: %s failed (%s: %s); frame skipped", st.stream_id, frame.index, stage, type(e).__name__, e
        )

    def _finish(self, st: StreamState) -> None:
        """End a drained stream: its tracks end, scoring forgets it, then its terminal event."""
        now = time.monotonic()
        if st.finishing_since is None:
            st.finishing_since = now
            self.reporter.stream_finishing(st.stream_id)
            self.reporter.track_events(st.tracker.end(st.last_index))
            self.slots.end(EndNotice(st.stream_id))
        if self.emitter.terminal_seen(st.stream_id) or now - st.finishing_since >= TERMINAL_GRACE_S:
            st.finished = True
            self.emitter.stream_finished(st.stream_id)
