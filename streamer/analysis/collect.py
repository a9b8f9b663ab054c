"""What one video's run leaves behind, gathered in the process: an in-process ``Publisher``
that keeps the rows of every faces message and the episode and stream events, and a frame tap
that keeps each track's clearest face for the report.

Both are called on the pipeline's detection thread (a source's events on its own thread), so
the collector takes a lock; nothing leaves the process.

Example (plain text: needs a pipeline)::

    collector, thumbs = Collector(on_frame=bar.update), Thumbnails(blur=False)
    Pipeline(settings, [StreamSpec("clip", path)], collector, on_frame=thumbs, lockstep=True).run()
    collector.rows.frames[:2], collector.rows.outcome   # [(0, 0.0, 1), (1, 0.033, 1)] ('ended', 'end of file')
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from streamer.base import Publisher
from streamer.frames import Frame
from streamer.output.preview import blur_faces
from streamer.values import Abstention, FaceResult, PublisherStats, Tracks

FACE_FIELDS = (
    "frame",
    "time_s",
    "track_id",
    "x0",
    "y0",
    "x1",
    "y1",
    "det_score",
    "predicted",
    "label",
    "score",
    "abstain",
    "scored_frame",
    "relinked_from",
)
"""The fixed fields of a face row, in order (probabilities follow: ``raw`` and ``smoothed``)."""


@dataclass
class Collected:
    """Rows of one video's run, in publication order."""

    faces: list[tuple[Any, ...]] = field(default_factory=list)
    """``FACE_FIELDS`` then the raw and smoothed probability lists (None before a score)."""
    frames: list[tuple[int, float | None, int]] = field(default_factory=list)
    """(frame index, media time, faces in it) per processed frame."""
    episodes: list[dict[str, Any]] = field(default_factory=list)
    """Every ``episode ended`` event message."""
    outcome: tuple[str, str | None] | None = None
    """The stream's terminal event: (``ended`` or ``failed``, reason)."""
    fingerprint: str = ""
    classes: list[str] = field(default_factory=list)


class Collector(Publisher):
    """A ``Publisher`` that keeps rows (``rows``) instead of sending messages; ``on_frame`` is
    called after each faces message (progress)."""

    def __init__(self, on_frame: Callable[[], None] | None = None) -> None:
        self.rows = Collected()
        self.stats = PublisherStats()
        self._on_frame = on_frame
        self._lock = threading.Lock()

    def send(self, topic: str, msg: dict[str, Any]) -> bool:
        with self._lock:
            self.stats.sent += 1
            if msg["type"] == "faces":
                self._faces(msg)
            elif msg["scope"] == "episode" and msg["kind"] == "ended":
                self.rows.episodes.append(msg)
            elif msg["scope"] == "stream" and msg["kind"] in ("ended", "failed"):
                self.rows.outcome = (msg["kind"], msg["reason"])
        if msg["type"] == "faces" and self._on_frame is not None:
            self._on_frame()
        return True

    def _faces(self, msg: dict[str, Any]) -> None:
        rows = self.rows
        rows.fingerprint, rows.classes = msg["engine"], msg["classes"]
        t = msg["pts_s"]
        rows.frames.append((msg["frame_index"], t, len(msg["faces"])))
        for f in msg["faces"]:
            rows.faces.append(
                (
                    msg["frame_index"],
                    t,
                    f["track_id"],
                    *f["bbox_xyxy"],
                    f["det_score"],
                    bool(f.get("predicted", False)),
                    f["label"],
                    f["score"],
                    f.get("abstain"),
                    f["scored_frame_index"],
                    f.get("relinked_from"),
                    f["probs"],
                    f["smoothed_probs"],
                )
            )

    def close(self) -> None:
        pass


THUMB_PX = 128
"""Longest side of a thumbnail."""


class Thumbnails:
    """Per track, the clearest face seen: the largest detected (not predicted) box times its
    detection score, cut from the frame with a margin and scaled to ``THUMB_PX``; blurred
    when ``blur`` (``preview.blur_faces``). A frame tap: call it with each processed frame."""

    def __init__(self, blur: bool) -> None:
        self.blur = blur
        self.best: dict[int, tuple[float, int, np.ndarray]] = {}
        """track id -> (quality, frame index, RGB thumbnail)."""

    def __call__(self, frame: Frame, tracks: Tracks, results: list[FaceResult | Abstention | None]) -> None:
        predicted = np.zeros(len(tracks), bool) if tracks.predicted is None else tracks.predicted
        for i, tid in enumerate(tracks.track_ids.tolist()):
            x0, y0, x1, y1 = tracks.bbox_xyxy[i].tolist()
            quality = float(tracks.det_scores[i]) * min(x1 - x0, y1 - y0)
            old = self.best.get(tid)
            if predicted[i] or (old is not None and quality <= old[0] * 1.05):
                continue  # a face at most 5 % clearer is not worth cutting again
            pad = 0.25 * max(x1 - x0, y1 - y0)
            try:
                rgb = frame.image.region_rgb(int(x0 - pad), int(y0 - pad), int(x1 + pad), int(y1 + pad))
            except ValueError:
                continue
            scale = THUMB_PX / max(rgb.shape[:2])
            if scale < 1.0:
                rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            if self.blur:
                blur_faces(rgb, np.array([[0, 0, rgb.shape[1], rgb.shape[0]]], np.float32))
            self.best[tid] = (quality, frame.index, np.ascontiguousarray(rgb))
