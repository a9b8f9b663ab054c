"""The scoring thread: owns the engine, the smoother, the scheduler and the re-linker.

Each tick it takes every stream's newest tracked frame, lets the scheduler pick the tracks
due for (re-)scoring across all streams, cuts their crops, sets aside the blurred ones
(abstentions), scores the rest in ONE engine batch, re-links tracks that just started to
ones that just ended, smooths per track and writes each track's latest result to the
results board the detection thread reads when it publishes. Between ticks it applies a
pending engine change (``request_engine``): new engine, fresh smoothing, a new generation.

Example (plain text: the pipeline builds it)::

    thread = ScoringThread(engine, slots, results, stats, scheduler=settings.scheduler,
                           crops=settings.crops, abstain=settings.abstain, tracker=settings.tracker,
                           frame_path=frame_path, on_engine_change=detection.engine_changes.put)
    thread.start(); ...; slots.close(); thread.join()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from configs.analytics import AbstainSettings
from configs.streamer import CropSettings, SchedulerSettings, TrackerSettings
from streamer.base import ExpressionScorer, FramePath
from streamer.pipeline.handoff import EndNotice, EngineChange, ResultsBoard, ScoreJob, ScoreSlots
from streamer.pipeline.stats import PipelineStats
from streamer.stages.abstain import blur_reasons
from streamer.stages.relink import Relinker
from streamer.stages.scheduler import ScoringScheduler
from streamer.values import Abstention, FaceResult, TrackKey

log = logging.getLogger(__name__)


class ScoringThread(threading.Thread):
    """Crops -> engine (one batch per tick, all streams) -> smoother -> results board."""

    def __init__(
        self,
        engine: ExpressionScorer,
        slots: ScoreSlots,
        results: ResultsBoard,
        stats: PipelineStats,
        *,
        scheduler: SchedulerSettings,
        crops: CropSettings,
        abstain: AbstainSettings,
        tracker: TrackerSettings,
        frame_path: FramePath,
        on_engine_change: Callable[[EngineChange], None] | None = None,
        media_clock: bool = False,
    ) -> None:
        """``slots`` is what it scores, ``results`` where it writes (it alone); ``tracker``
        gives the re-linking settings; ``frame_path`` cuts and stacks the crops (on the host
        or the device); ``on_engine_change`` is given each ``EngineChange`` once it is in use
        here (the detection thread's inbox); ``media_clock``: the scheduler's rate counts in
        the frames' media time instead of wall time (lockstep analysis of files)."""
        super().__init__(name="scoring", daemon=True)
        self.engine = engine
        self.slots = slots
        self.results = results
        self.stats = stats
        self.scheduler_settings = scheduler
        self.crop_settings = crops
        self.abstain_settings = abstain
        self.frame_path = frame_path
        self.on_engine_change = on_engine_change
        self.media_clock = media_clock
        self.smoother = engine.make_smoother()
        self.scheduler = ScoringScheduler(scheduler.max_hz, scheduler.max_batch)
        self.relinker = Relinker(tracker)
        self.generation = 0
        self._pending: tuple[ExpressionScorer, EngineChange] | None = None
        self._pending_lock = threading.Lock()

    def request_engine(self, engine: ExpressionScorer, change: EngineChange) -> None:
        """Use ``engine`` from the next tick on (any thread); ``change`` (its generation,
        fingerprint and classes) goes to ``on_engine_change`` once it is in use."""
        with self._pending_lock:
            self._pending = (engine, change)

    def run(self) -> None:
        while not self.slots.finished:
            self._apply_pending_engine()
            jobs, ends = self.slots.take(timeout_s=0.1)
            if jobs:
                try:
                    self.score(jobs)
                except Exception:  # one bad batch must not end scoring for every stream
                    log.exception("scoring failed for %d frame(s); skipped", len(jobs))
                    for job in jobs:
                        self.stats.stream(job.frame.stream_id).errors += 1
                finally:
                    self.slots.settle(jobs)
            for notice in ends:
                self.forget(notice)

    def _apply_pending_engine(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        engine, change = pending
        self.engine = engine
        self.smoother = engine.make_smoother()
        self.scheduler = ScoringScheduler(self.scheduler_settings.max_hz, self.scheduler_settings.max_batch)
        self.relinker.clear()
        self.results.clear()
        self.generation = change.generation
        if self.on_engine_change is not None:
            self.on_engine_change(change)

    def _crops(self, jobs: list[ScoreJob], chosen: set[TrackKey]) -> tuple[list[TrackKey], list[ScoreJob], Any]:
        """The chosen tracks' crops in one batch, with their keys and frames."""
        keys: list[TrackKey] = []
        frames_of: list[ScoreJob] = []
        batches: list[Any] = []
        for job in jobs:
            sid = job.frame.stream_id
            ids = job.tracks.track_ids.tolist()
            sel = [i for i, tid in enumerate(ids) if (sid, tid) in chosen]
            if not sel:
                continue
            t = job.tracks
            kps = None if t.kps is None else t.kps[sel]
            size, c = self.engine.crop_size, self.crop_settings
            try:
                crops = self.frame_path.crop(job.frame.image, t.bbox_xyxy[sel], kps, size, c.align, c.box_expand)
            except (ValueError, cv2.error) as e:
                log.warning("%s frame %d: cannot crop faces (%s); skipped", sid, job.frame.index, e)
                self.stats.stream(sid).errors += 1
                continue
            batches.append(crops)
            keys.extend((sid, ids[i]) for i in sel)
            frames_of.extend([job] * len(sel))
        return keys, frames_of, self.frame_path.stack(batches)

    def score(self, jobs: list[ScoreJob]) -> None:
        """Score the due tracks of these frames (one per stream) in one engine batch."""
        now = time.monotonic()
        chosen = set(self._select(jobs, now))
        if not chosen:
            return
        with self.stats.time("crop"):
            keys, jobs_of, crops = self._crops(jobs, chosen)
            blurred = blur_reasons(crops, self.abstain_settings)
        for key, job, reason in zip(keys, jobs_of, blurred, strict=True):
            if reason is not None:
                self.results.put(key, Abstention(reason, job.frame.index, now, self.generation))
        sharp = [i for i, r in enumerate(blurred) if r is None]
        if not sharp:
            return
        keys, jobs_of, crops = [keys[i] for i in sharp], [jobs_of[i] for i in sharp], crops[sharp]
        for sid in {k[0] for k in keys}:
            self.stats.stream(sid).scored += sum(1 for k in keys if k[0] == sid)
        with self.stats.time("engine", items=len(keys)):
            out = self.engine.score(crops)
        with self.stats.time("smooth", items=len(keys)):
            feats = out.projected_features() if self.smoother.needs_features or self.relinker.enabled else None
            probs = out.probs
            ok = self._finite(keys, probs, feats)
            if not ok.all():
                keys = [k for k, good in zip(keys, ok, strict=True) if good]
                jobs_of = [j for j, good in zip(jobs_of, ok, strict=True) if good]
                probs, feats = probs[ok], None if feats is None else feats[ok]
                if not keys:
                    return
            relinked = self._relink(keys, feats)
            smoothed = self.smoother.update(keys, probs, feats if self.smoother.needs_features else None)
            self._write_results(keys, jobs_of, probs, smoothed, relinked)

    def _select(self, jobs: list[ScoreJob], now: float) -> list[TrackKey]:
        """The scheduler's choice: one call on wall time, or one per frame on its media time."""
        if not self.media_clock:
            return self.scheduler.select(
                [(j.frame.stream_id, t) for j in jobs for t in j.tracks.track_ids.tolist()], now
            )
        chosen: list[TrackKey] = []
        for j in jobs:
            at = j.frame.pts_s if j.frame.pts_s is not None else now
            chosen += self.scheduler.select([(j.frame.stream_id, t) for t in j.tracks.track_ids.tolist()], at)
        return chosen

    def _relink(self, keys: list[TrackKey], feats: np.ndarray | None) -> dict[TrackKey, int]:
        """Tracks scored for the first time that continue a track that just ended: their
        smoother state is carried over (before this observation is added)."""
        if feats is None or not self.relinker.enabled:
            return {}
        relinked: dict[TrackKey, int] = {}
        for i, key in enumerate(keys):
            if key not in self.results:
                match = self.relinker.match(key, feats[i])
                if match is not None:
                    old_tid, state = match
                    if state is not None:
                        self.smoother.put_state(key, state)
                    relinked[key] = old_tid
                    self.stats.relinks += 1
            self.relinker.observe(key, feats[i])
        return relinked

    def _write_results(self, keys, jobs_of, probs, smoothed, relinked: dict[TrackKey, int]) -> None:
        top = smoothed.argmax(axis=1)
        classes = self.engine.classes
        done = time.monotonic()
        for i, key in enumerate(keys):
            prev = self.results.get(key)
            if isinstance(prev, FaceResult):
                self.stats.rescore_gaps_s.append(done - prev.scored_at_s)
            frame = jobs_of[i].frame
            carried = prev.relinked_from if isinstance(prev, FaceResult) else None
            result = FaceResult(
                probs[i],
                smoothed[i],
                classes[top[i]],
                float(smoothed[i, top[i]]),
                frame.index,
                done,
                frame.pts_s if frame.pts_s is not None else frame.wall_time_s,
                self.generation,
                relinked.get(key, carried),
            )
            self.results.put(key, result)

    def _finite(self, keys: list[TrackKey], probs: np.ndarray, feats: np.ndarray | None) -> np.ndarray:
        """bool [N]: crops whose scores (and features) are finite. The others are per-face
        errors (counted, logged): their tracks keep their previous result, and no NaN ever
        reaches the smoother or a message."""
        ok = np.isfinite(probs).all(axis=1)
        if feats is not None:
            ok &= np.isfinite(feats).all(axis=1)
        bad = [keys[i] for i in np.flatnonzero(~ok).tolist()]
        for sid, _ in bad:
            self.stats.stream(sid).errors += 1
        if bad:
            shown = ", ".join(f"{sid}/{tid}" for sid, tid in bad[:5])
            log.warning("non-finite scores for %d crop(s) (tracks %s); skipped", len(bad), shown)
        return ok

    def forget(self, notice: EndNotice) -> None:
        """Free a finished track's (or a whole stream's) state; a finished track's appearance
        and smoothing state wait a while in the re-linker."""
        if notice.track_id is None:
            self.smoother.end_stream(notice.stream_id)
            self.scheduler.forget_stream(notice.stream_id)
            self.relinker.forget_stream(notice.stream_id)
            self.results.forget_stream(notice.stream_id)
            return
        key = (notice.stream_id, notice.track_id)
        self.relinker.ended(key, self.smoother.take_state(key))
        self.scheduler.forget(key)
        self.results.forget(key)
