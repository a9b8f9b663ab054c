"""The detection thread: reads every source, detects faces for all streams of a tick,
tracks per stream, publishes each processed frame and hands the newest tracked frame of
each stream to the scoring thread (drop-to-latest).

It owns the per-stream trackers (no locks) and never waits for the engine: a faces
message carries each track's latest result from the scoring thread's board (null until
first scored).

Example:
    >>> stage = DetectionStage(streams, detector, slots, scoring.results, emit, settings, stats)
    >>> stage.start(); stage.join()    # returns when every stream is done
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamer.base import Detections, FaceDetector, FaceResult, TrackEvent, Tracks
from streamer.config import StreamerSettings
from streamer.detect import fit_size, scale_detections
from streamer.detect.roi import detect_in_regions
from streamer.frames import Frame
from streamer.pipeline.handoff import EndNotice, ScoreJob, ScoreSlots
from streamer.stats import PipelineStats
from streamer.tracking import ByteTracker

log = logging.getLogger(__name__)

TERMINAL_GRACE_S = 2.0
"""How long a drained stream waits for its source's terminal event before one is made up."""


@dataclass
class StreamState:
    """One stream as the detection thread sees it."""

    stream_id: str
    source: Any
    tracker: ByteTracker
    last_index: int = 0
    since_full: int = 1 << 30
    """Frames since the last full-frame detection (huge = the next frame gets one)."""
    finishing_since: float | None = None
    finished: bool = False


class Outputs:
    """Where the detection thread sends what it produces (publisher, preview)."""

    def __init__(
        self,
        faces: Callable[[Frame, Tracks, list[FaceResult | None]], None],
        track_event: Callable[[TrackEvent], None],
        stream_end: Callable[[str], None],
    ) -> None:
        self.faces = faces
        self.track_event = track_event
        self.stream_end = stream_end


class DetectionStage(threading.Thread):
    """Read -> scale -> detect (batched over streams) -> track -> publish -> offer to scoring."""

    def __init__(
        self,
        streams: list[StreamState],
        detector: FaceDetector,
        slots: ScoreSlots,
        results: Mapping[tuple[str, int], FaceResult],
        outputs: Outputs,
        terminal_seen: Callable[[str], bool],
        settings: StreamerSettings,
        stats: PipelineStats,
    ) -> None:
        super().__init__(name="detection", daemon=True)
        self.streams = streams
        self.detector = detector
        self.slots = slots
        self.results = results
        self.outputs = outputs
        self.terminal_seen = terminal_seen
        self.settings = settings
        self.stats = stats
        self._rr = 0

    def run(self) -> None:
        try:
            while True:
                active = [s for s in self.streams if not s.finished]
                if not active:
                    break
                frames = self._gather(active)
                if frames:
                    self.tick(frames)
        finally:
            self.slots.close()

    def _gather(self, active: list[StreamState]) -> list[tuple[StreamState, Frame]]:
        """At most one frame per stream; waits briefly on one stream when none has any."""
        frames = []
        limit = self.settings.pipeline.max_streams_per_tick
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
                frame = st.source.read(self.settings.pipeline.read_timeout_s)
                if frame is not None:
                    frames.append((st, frame))
            else:
                time.sleep(self.settings.pipeline.read_timeout_s)
        return frames

    def tick(self, frames: list[tuple[StreamState, Frame]]) -> None:
        """Detect, track and publish one frame per stream."""
        self.stats.ticks += 1
        smalls, kept = [], []
        with self.stats.time("to_bgr", items=len(frames)):
            for st, frame in frames:
                try:
                    size = fit_size(frame.size_wh, self.detector.input_size_wh)
                    smalls.append(frame.image.to_bgr(size))
                    kept.append((st, frame))
                except Exception as e:  # a broken frame is skipped, the stream goes on
                    self._frame_error(st, frame, "convert", e)
        if not kept:
            return
        batch = self._detect(kept, smalls)
        if batch is None:
            return
        ds = self.settings.detector
        for (st, frame), small, dets in zip(kept, smalls, batch, strict=True):
            sx = frame.size_wh[0] / small.shape[1]
            sy = frame.size_wh[1] / small.shape[0]
            try:
                self._track_and_publish(st, frame, scale_detections(dets, sx, sy, ds.min_face_px))
            except Exception as e:
                self._frame_error(st, frame, "track/publish", e)

    def _detect(self, kept: list[tuple[StreamState, Frame]], smalls: list[np.ndarray]) -> list[Detections] | None:
        """Full-frame detection (batched across streams) where due, region detection elsewhere."""
        ds = self.settings.detector
        out: list[Detections | None] = [None] * len(kept)
        full: list[int] = []
        for i, (st, frame) in enumerate(kept):
            boxes = st.tracker.predicted_boxes() if ds.full_frame_every > 1 else None
            if boxes is None or st.since_full + 1 >= ds.full_frame_every or len(boxes) == 0:
                full.append(i)
                st.since_full = 0
                continue
            st.since_full += 1
            small = smalls[i]
            scale = np.array([small.shape[1] / frame.size_wh[0], small.shape[0] / frame.size_wh[1]] * 2, np.float32)
            with self.stats.time("detect_roi"):
                try:
                    out[i] = detect_in_regions(
                        self.detector, small, boxes * scale, ds.roi_expand, ds.nms_threshold, ds.roi_max_px
                    )
                except Exception as e:
                    self._frame_error(st, frame, "detect", e)
                    out[i] = Detections.empty()
        if full:
            with self.stats.time("detect", items=len(full)):
                try:
                    found = self.detector.detect_batch([smalls[i] for i in full])
                except Exception as e:
                    for i in full:
                        self._frame_error(*kept[i], "detect", e)
                    return None
            for i, d in zip(full, found, strict=True):
                out[i] = d
        return [d if d is not None else Detections.empty() for d in out]

    def _track_and_publish(self, st: StreamState, frame: Frame, dets: Detections) -> None:
        with self.stats.time("track"):
            tracks, events = st.tracker.update(dets, frame.index)
        st.last_index = frame.index
        for ev in events:
            self.outputs.track_event(ev)
            if ev.kind == "ended":
                self.slots.end(EndNotice(st.stream_id, ev.track_id))
        if len(tracks):
            self.slots.offer(ScoreJob(frame, tracks))
        with self.stats.time("publish"):
            sid = st.stream_id
            results = [self.results.get((sid, tid)) for tid in tracks.track_ids.tolist()]
            self.outputs.faces(frame, tracks, results)
        s = self.stats.stream(sid)
        s.frames += 1
        s.faces += len(tracks)

    def _frame_error(self, st: StreamState, frame: Frame, stage: str, e: BaseException) -> None:
        self.stats.stream(st.stream_id).errors += 1
        log.warning(
            "%s frame %d: %s failed (%s: %s); frame skipped", st.stream_id, frame.index, stage, type(e).__name__, e
        )

    def _finish(self, st: StreamState) -> None:
        """End a drained stream: its tracks end, scoring forgets it, then its terminal event."""
        now = time.monotonic()
        if st.finishing_since is None:
            st.finishing_since = now
            for ev in st.tracker.end(st.last_index):
                self.outputs.track_event(ev)
            self.slots.end(EndNotice(st.stream_id))
        if self.terminal_seen(st.stream_id) or now - st.finishing_since >= TERMINAL_GRACE_S:
            st.finished = True
            self.stats.stream(st.stream_id).ended = True
            self.outputs.stream_end(st.stream_id)
