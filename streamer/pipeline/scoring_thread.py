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

import cv2
import numpy as np

from configs import Settings
from streamer.align import crop_faces
from streamer.base import ExpressionScorer, FaceResult, TrackKey
from streamer.pipeline.handoff import EndNotice, ScoreJob, ScoreSlots
from streamer.scheduler import ScoringScheduler
from streamer.stats import PipelineStats

log = logging.getLogger(__name__)


class ScoringThread(threading.Thread):
    """Crops -> engine (one batch per tick, all streams) -> smoother -> results board."""

    def __init__(self, engine: ExpressionScorer, slots: ScoreSlots, settings: Settings, stats: PipelineStats) -> None:
        super().__init__(name="scoring", daemon=True)
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

    def _crops(self, jobs: list[ScoreJob], chosen: set[TrackKey]) -> tuple[list[TrackKey], list[int], np.ndarray]:
        """The chosen tracks' crops in one batch, with their keys and frame indices."""
        keys: list[TrackKey] = []
        frame_of: list[int] = []
        batches: list[np.ndarray] = []
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
                crops = crop_faces(job.frame.image, t.bbox_xyxy[sel], kps, size, c.align, c.box_expand)
            except (ValueError, cv2.error) as e:
                log.warning("%s frame %d: cannot crop faces (%s); skipped", sid, job.frame.index, e)
                self.stats.stream(sid).errors += 1
                continue
            batches.append(crops)
            keys.extend((sid, ids[i]) for i in sel)
            frame_of.extend([job.frame.index] * len(sel))
            self.stats.stream(sid).scored += len(sel)
        return keys, frame_of, np.concatenate(batches) if batches else np.zeros((0, 1, 1, 3), np.uint8)

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
            probs = out.probs
            ok = self._finite(keys, probs, feats)
            if not ok.all():
                keys, frame_of = [k for k, good in zip(keys, ok, strict=True) if good], np.asarray(frame_of)[ok]
                probs, feats = probs[ok], None if feats is None else feats[ok]
                if not keys:
                    return
            smoothed = self.smoother.update(keys, probs, feats)
            top = smoothed.argmax(axis=1)
            classes = self.engine.classes
            done = time.monotonic()
            for i, key in enumerate(keys):
                prev = self.results.get(key)
                if prev is not None:
                    self.stats.rescore_gaps_s.append(done - prev.scored_at_s)
                self.results[key] = FaceResult(
                    probs[i], smoothed[i], classes[top[i]], float(smoothed[i, top[i]]), int(frame_of[i]), done
                )

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
