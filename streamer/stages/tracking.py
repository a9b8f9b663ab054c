"""Per-stream face tracking, chosen by name (``tracker.name``): roboflow ``trackers``'
ByteTrack (``bytetrack``), OC-SORT (``ocsort``) or SORT (``sort``), each with the same
track lifecycle events.

One tracker per stream, owned by the detection thread (no locks). Keypoints ride along with
their detections through the tracker (trackers re-order detections; the original index
travels in ``sv.Detections.data``), so aligned crops need no re-matching.

Example:
    >>> tr = create_tracker("cam0", TrackerSettings(name="bytetrack", min_consecutive_frames=2))
    >>> dets = Detections(np.array([[10, 10, 60, 70]], np.float32), np.array([0.9], np.float32))
    >>> [tr.update(dets, frame_index=i)[1] for i in range(2)][1]   # confirmed on its 2nd frame
    [TrackEvent(stream_id='cam0', track_id=0, kind='started', frame_index=1, age=0, relinked_from=None)]
"""

from __future__ import annotations

import warnings
from abc import abstractmethod

import numpy as np

from configs.core.errors import ConfigError
from configs.streamer import TrackerSettings
from streamer.base import Tracker
from streamer.values import Detections, TrackEvent, Tracks

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import supervision as sv
    from trackers import ByteTrackTracker, OCSORTTracker, SORTTracker
    from trackers.core.base import BaseTracker


def lost_track_buffer(settings: TrackerSettings) -> int:
    """``tracker.lost_track_s`` as ``trackers`` counts it: in 30 FPS frames (each tracker
    rescales it by ``frame_rate``)."""
    return max(0, round(settings.lost_track_s * 30.0))


class LibraryTracker(Tracker):
    """One stream's tracker around an algorithm of roboflow ``trackers`` (``_algorithm``);
    reports ``started`` when a track is confirmed (gets an id) and ``ended`` when the
    algorithm drops it (lost longer than ``lost_track_s``)."""

    def __init__(self, stream_id: str, settings: TrackerSettings) -> None:
        self.stream_id = stream_id
        self.settings = settings
        self._tracker = self._algorithm(settings)
        self._start_frame: dict[int, int] = {}

    @staticmethod
    @abstractmethod
    def _algorithm(settings: TrackerSettings) -> BaseTracker:
        """The ``trackers`` algorithm, configured from ``settings``."""

    @property
    def live_ids(self) -> list[int]:
        """Ids of confirmed tracks the tracker still keeps (seen or briefly lost)."""
        return sorted(self._start_frame)

    def predicted_boxes(self) -> np.ndarray:
        """Current box estimates of every track the tracker keeps (tentative and lost ones
        included), float32 [N, 4] in frame pixels: where to look for faces next."""
        if not self._tracker.tracks:
            return np.zeros((0, 4), np.float32)
        return np.array([t.get_state_bbox() for t in self._tracker.tracks], np.float32).reshape(-1, 4)

    def update(self, dets: Detections, frame_index: int) -> tuple[Tracks, list[TrackEvent]]:
        """Matched tracks (and, for ``coast_s``, confirmed tracks the detector missed, at their
        predicted boxes), with started/ended events."""
        n = len(dets)
        sv_dets = sv.Detections(
            xyxy=dets.bbox_xyxy.astype(np.float64),
            confidence=dets.scores,
            data={"det_index": np.arange(n)},
        )
        out = self._tracker.update(sv_dets)
        ids = np.asarray(out.tracker_id, np.int64)
        keep = ids >= 0
        ids = ids[keep]
        idx = np.zeros(0, np.int64)
        if len(out):
            idx = np.asarray(out.data["det_index"], np.int64)[keep]

        events: list[TrackEvent] = []
        for tid in ids.tolist():
            if tid not in self._start_frame:
                self._start_frame[tid] = frame_index
                events.append(TrackEvent(self.stream_id, tid, "started", frame_index))
        alive = {t.tracker_id for t in self._tracker.tracks}
        for tid in [t for t in self._start_frame if t not in alive]:
            events.append(self._ended(tid, frame_index))

        starts = np.array([self._start_frame.get(t, frame_index) for t in ids.tolist()], np.int64)
        tracks = Tracks(
            track_ids=ids,
            bbox_xyxy=dets.bbox_xyxy[idx],
            det_scores=dets.scores[idx],
            ages=frame_index - starts,
            kps=None if dets.kps is None else dets.kps[idx],
        )
        return self._with_coasting(tracks, set(ids.tolist()), frame_index), events

    def _with_coasting(self, tracks: Tracks, matched: set[int], frame_index: int) -> Tracks:
        """``tracks`` plus confirmed tracks missed for at most ``coast_s``, marked predicted.
        A confirmed track the algorithm matched but did not report (OC-SORT hides a track
        that comes back until it has been seen ``min_consecutive_frames`` times again) is
        published the same way, so it never drops out of the messages for a frame."""
        if not self.settings.coast_s:
            return tracks
        max_missed = self.settings.coast_s * self.settings.frame_rate
        coasting = [
            t
            for t in self._tracker.tracks
            if t.tracker_id in self._start_frame and t.tracker_id not in matched and t.time_since_update <= max_missed
        ]
        if not coasting:
            return tracks
        n = len(coasting)
        ids = np.array([t.tracker_id for t in coasting], np.int64)
        boxes = np.array([t.get_state_bbox() for t in coasting], np.float32).reshape(n, 4)
        starts = np.array([self._start_frame[t] for t in ids.tolist()], np.int64)
        kps = None if tracks.kps is None else np.concatenate([tracks.kps, np.zeros((n, 5, 2), np.float32)])
        return Tracks(
            np.concatenate([tracks.track_ids, ids]),
            np.concatenate([tracks.bbox_xyxy, boxes]),
            np.concatenate([tracks.det_scores, np.zeros(n, np.float32)]),
            np.concatenate([tracks.ages, frame_index - starts]),
            kps,
            np.concatenate([np.zeros(len(tracks), bool), np.ones(n, bool)]),
        )

    def _ended(self, tid: int, frame_index: int) -> TrackEvent:
        start = self._start_frame.pop(tid)
        return TrackEvent(self.stream_id, tid, "ended", frame_index, age=frame_index - start)

    def end(self, frame_index: int) -> list[TrackEvent]:
        events = [self._ended(tid, frame_index) for tid in sorted(self._start_frame)]
        self._tracker.reset()
        return events


class ByteTracker(LibraryTracker):
    """ByteTrack: detections at or above ``high_score_threshold`` are matched first, lower
    ones only keep existing tracks alive; new tracks need ``activation_threshold``."""

    @staticmethod
    def _algorithm(settings: TrackerSettings) -> ByteTrackTracker:
        return ByteTrackTracker(
            lost_track_buffer=lost_track_buffer(settings),
            frame_rate=settings.frame_rate,
            track_activation_threshold=settings.activation_threshold,
            minimum_consecutive_frames=settings.min_consecutive_frames,
            minimum_iou_threshold=settings.match_iou,
            high_conf_det_threshold=settings.high_score_threshold,
        )


class OcSortTracker(LibraryTracker):
    """OC-SORT: motion from observations (steadier through misses and non-linear motion);
    detections below ``activation_threshold`` are ignored."""

    @staticmethod
    def _algorithm(settings: TrackerSettings) -> OCSORTTracker:
        return OCSORTTracker(
            lost_track_buffer=lost_track_buffer(settings),
            frame_rate=settings.frame_rate,
            minimum_consecutive_frames=settings.min_consecutive_frames,
            minimum_iou_threshold=settings.match_iou,
            high_conf_det_threshold=settings.activation_threshold,
        )


class SortTracker(LibraryTracker):
    """SORT: one IoU association per frame (the cheapest); new tracks need
    ``activation_threshold``."""

    @staticmethod
    def _algorithm(settings: TrackerSettings) -> SORTTracker:
        return SORTTracker(
            lost_track_buffer=lost_track_buffer(settings),
            frame_rate=settings.frame_rate,
            track_activation_threshold=settings.activation_threshold,
            minimum_consecutive_frames=settings.min_consecutive_frames,
            minimum_iou_threshold=settings.match_iou,
        )


TRACKERS: dict[str, type[LibraryTracker]] = {"bytetrack": ByteTracker, "ocsort": OcSortTracker, "sort": SortTracker}


def create_tracker(stream_id: str, settings: TrackerSettings) -> Tracker:
    """The tracker ``settings.name`` names, for one stream."""
    try:
        cls = TRACKERS[settings.name]
    except KeyError as e:
        raise ConfigError(f"tracker.name: unknown tracker {settings.name!r}; allowed: {', '.join(TRACKERS)}") from e
    return cls(stream_id, settings)
