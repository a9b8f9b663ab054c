"""What the detection thread says about each tracked frame, in order: track events, then
episode and re-link events, then the faces message with each track's latest result (or
abstention). Owned by the detection thread, like the trackers.

It decides which tracks are worth scoring (matched, big and frontal enough: the rest are
published as abstentions), feeds every new smoothed result to the episode tracker, announces
re-linked tracks once, and switches fingerprint and classes at an engine change so that no
message mixes the old engine's scores with the new one's.

Example (plain text: needs an emitter and tracked frames)::

    reporter = TrackReporter(emitter, results, stats, engine.classes,
                             abstain=settings.abstain, episodes=settings.episodes)
    to_score, reasons = reporter.scorable(tracks)
    reporter.frame(frame, tracks, reasons)
"""

from __future__ import annotations

import logging

import numpy as np

from configs.analytics import AbstainSettings, EpisodeSettings
from streamer.frames import Frame
from streamer.output.messages import MessageContext
from streamer.pipeline.emitter import Emitter
from streamer.pipeline.handoff import EngineChange, ResultsBoard
from streamer.pipeline.stats import PipelineStats
from streamer.stages.abstain import geometry_reasons
from streamer.stages.episodes import EpisodeTracker
from streamer.values import Abstention, FaceResult, TrackEvent, TrackKey, Tracks

log = logging.getLogger(__name__)


class TrackReporter:
    """Publishes tracked frames and everything derived from them, for every stream."""

    def __init__(
        self,
        emitter: Emitter,
        results: ResultsBoard,
        stats: PipelineStats,
        classes: list[str],
        *,
        abstain: AbstainSettings,
        episodes: EpisodeSettings,
    ) -> None:
        """``results`` is the scoring thread's board (read here, never written)."""
        self.emitter = emitter
        self.results = results
        self.stats = stats
        self.abstain_settings = abstain
        self.episode_settings = episodes
        self.generation = 0
        self.episodes = EpisodeTracker(episodes, classes)
        self._fed: dict[TrackKey, float] = {}
        """scored_at_s of the last result each track fed to the episode tracker."""
        self._announced: set[TrackKey] = set()

    def scorable(self, tracks: Tracks) -> tuple[Tracks, list[str | None]]:
        """The tracks to hand to scoring (matched, not abstaining) and each track's abstention
        reason (None when it can be judged)."""
        reasons = geometry_reasons(tracks.bbox_xyxy, tracks.kps, self.abstain_settings)
        keep = tracks.matched & np.array([r is None for r in reasons], bool)
        return tracks.select(keep), reasons

    def track_events(self, events: list[TrackEvent]) -> None:
        """Track started/ended events; an ended track's open episode closes first."""
        for ev in events:
            if ev.kind == "ended":
                key = (ev.stream_id, ev.track_id)
                self.emitter.episode_events(self.episodes.end_track(key))
                self._fed.pop(key, None)
                self._announced.discard(key)
        self.emitter.track_events(events)

    def frame(self, frame: Frame, tracks: Tracks, reasons: list[str | None]) -> None:
        """The faces message of one tracked frame, after the episode and re-link events its
        new results cause."""
        sid = frame.stream_id
        results: list[FaceResult | Abstention | None] = []
        stream_stats = self.stats.stream(sid)
        for tid, reason in zip(tracks.track_ids.tolist(), reasons, strict=True):
            key = (sid, tid)
            if reason is not None:
                results.append(Abstention(reason, frame.index, generation=self.generation))
                stream_stats.abstained += 1
                self.stats.abstentions[reason] += 1
                continue
            r = self.results.get(key)
            if r is None or r.generation != self.generation:
                results.append(None)
                continue
            if isinstance(r, Abstention):
                if self._fed.get(key) != r.scored_at_s:
                    self._fed[key] = r.scored_at_s
                    stream_stats.abstained += 1
                    self.stats.abstentions[r.reason] += 1
            else:
                self._observe(key, r, frame.index)
            results.append(r)
        self.emitter.faces(frame, tracks, results)

    def _observe(self, key: TrackKey, r: FaceResult, frame_index: int) -> None:
        if self._fed.get(key) == r.scored_at_s:
            return
        self._fed[key] = r.scored_at_s
        if r.relinked_from is not None and key not in self._announced:
            self._announced.add(key)
            self.emitter.track_events([TrackEvent(key[0], key[1], "relinked", frame_index, 0, r.relinked_from)])
        self.emitter.episode_events(self.episodes.observe(key, r.frame_time_s, r.smoothed_probs))

    def stream_finishing(self, stream_id: str) -> None:
        """Close the stream's open episodes (before its tracks' end events)."""
        self.emitter.episode_events(self.episodes.end_stream(stream_id))
        for key in [k for k in self._fed if k[0] == stream_id]:
            self._fed.pop(key, None)
        self._announced = {k for k in self._announced if k[0] != stream_id}

    def engine_changed(self, change: EngineChange, stream_ids: list[str]) -> None:
        """Switch to the new engine's fingerprint and classes: open episodes close, each active
        stream gets an ``engine changed`` event, and older results are no longer published."""
        self.emitter.episode_events(self.episodes.end_all("engine_changed"))
        self.generation = change.generation
        self.episodes = EpisodeTracker(self.episode_settings, change.classes)
        self._fed.clear()
        self._announced.clear()
        self.emitter.engine_changed(MessageContext(change.fingerprint, change.classes), stream_ids)
        log.info("engine changed to %s (%d classes)", change.fingerprint, len(change.classes))
        change.applied.set()
