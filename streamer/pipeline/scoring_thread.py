"""The scoring thread: owns the engine, the smoother and the scheduler.

Each tick it takes every stream's newest tracked frame, lets the scheduler pick the tracks
due for (re-)scoring across all streams, cuts their crops, scores them in ONE engine batch,
smooths per track and writes each track's latest ``FaceResult`` to the results board the
detection thread reads when it publishes.

Example (plain text)::

    thread = ScoringThread(engine, slots, settings, stats)
    thread.start(); ...; slots.close(); thread.join()
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import cv2

from configs import Settings
from streamer.align import crop_faces
from streamer.base import ExpressionScorer, FaceResult, TrackKey
from streamer.device.path import FramePath, stack_crops
from streamer.pipeline.handoff import EndNotice, ScoreJob, ScoreSlots
from streamer.scheduler import ScoringScheduler
from streamer.stats import PipelineStats

log = logging.getLogger(__name__)


class ScoringThread(threading.Thread):
    """Crops -> engine (one batch per tick, all streams) -> smoother -> results board."""

    def __init__(
        self,
        engine: ExpressionScorer,
        slots: ScoreSlots,
        settings: Settings,
        stats: PipelineStats,
        frame_path: FramePath | None = None,
    ) -> None:
        super().__init__(name="scoring", daemon=True)
        self.crop = frame_path.crop if frame_path is not None else crop_faces
        """Cuts a frame's crops: on the host (``streamer.align``) or the device path's."""
        self.engine = engine
        self.slots = slots
        self.settings = settings
        self.stats = stats
        self.smoother = engine.make_smoother()
        self.scheduler = ScoringScheduler(settings.scheduler.max_hz, settings.scheduler.max_batch)
        self.results: dict[TrackKey, FaceResult] = {}
        """Latest result per track. Written only here; the detection thread only reads."""

    def run(self) -> None:
        while not self.slots.finished:
            jobs, ends = self.slots.take(timeout_s=0.1)
            if jobs:
                try:
                    self.score(jobs)
                except Exception:  # one bad batch must not end scoring for every stream
                    log.exception("scoring failed for %d frame(s); skipped", len(jobs))
                    for job in jobs:
                        self.stats.stream(job.frame.stream_id).errors += 1
            for notice in ends:
                self.forget(notice)

    def _crops(self, jobs: list[ScoreJob], chosen: set[TrackKey]) -> tuple[list[TrackKey], list[int], Any]:
        """The chosen tracks' crops in one batch, with their keys and frame indices."""
        keys: list[TrackKey] = []
        frame_of: list[int] = []
        batches: list[Any] = []
        for job in jobs:
            sid = job.frame.stream_id
            ids = job.tracks.track_ids.tolist()
            sel = [i for i, tid in enumerate(ids) if (sid, tid) in chosen]
            if not sel:
                continue
            t = job.tracks
            kps = None if t.kps is None else t.kps[sel]
            size, c = self.engine.crop_size, self.settings.crops
            try:
                crops = self.crop(job.frame.image, t.bbox_xyxy[sel], kps, size, c.align, c.box_expand)
            except (ValueError, cv2.error) as e:
                log.warning("%s frame %d: cannot crop faces (%s); skipped", sid, job.frame.index, e)
                self.stats.stream(sid).errors += 1
                continue
            batches.append(crops)
            keys.extend((sid, ids[i]) for i in sel)
            frame_of.extend([job.frame.index] * len(sel))
            self.stats.stream(sid).scored += len(sel)
        return keys, frame_of, stack_crops(batches)

    def score(self, jobs: list[ScoreJob]) -> None:
        """Score the due tracks of these frames (one per stream) in one engine batch."""
        candidates = [(j.frame.stream_id, tid) for j in jobs for tid in j.tracks.track_ids.tolist()]
        chosen = set(self.scheduler.select(candidates, time.monotonic()))
        if not chosen:
            return
        with self.stats.time("crop"):
            keys, frame_of, crops = self._crops(jobs, chosen)
        if not keys:
            return
        with self.stats.time("engine", items=len(keys)):
            out = self.engine.score(crops)
        with self.stats.time("smooth", items=len(keys)):
            feats = out.projected_features() if self.smoother.needs_features else None
            smoothed = self.smoother.update(keys, out.probs, feats)
            top = smoothed.argmax(axis=1)
            classes = self.engine.classes
            done = time.monotonic()
            for i, key in enumerate(keys):
                prev = self.results.get(key)
                if prev is not None:
                    self.stats.rescore_gaps_s.append(done - prev.scored_at_s)
                self.results[key] = FaceResult(
                    out.probs[i], smoothed[i], classes[top[i]], float(smoothed[i, top[i]]), frame_of[i], done
                )

    def forget(self, notice: EndNotice) -> None:
        """Free a finished track's (or a whole stream's) state."""
        if notice.track_id is None:
            self.smoother.end_stream(notice.stream_id)
            self.scheduler.forget_stream(notice.stream_id)
            for key in [k for k in self.results if k[0] == notice.stream_id]:
                self.results.pop(key, None)
            return
        key = (notice.stream_id, notice.track_id)
        self.smoother.end_track(key)
        self.scheduler.forget(key)
        self.results.pop(key, None)
