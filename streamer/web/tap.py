"""The live view's pictures: ``FrameTap`` keeps, per stream, the latest processed frame (with
its tracks and results) at most ``web.fps`` times a second, and draws and encodes a JPEG of
it only when a browser asks.

The pipeline's side (``put``, called by the ``Emitter`` on the detection thread for every
frame) is one clock read and, a few times a second, one dict assignment: no copy, no
drawing, no encoding, no lock. Everything else happens on the web server's pool: the frame
is converted straight to the scaled-down size (one swscale pass), faces are blurred
(``preview.blur_faces``), boxes, track ids and smoothed labels drawn with the preview's own
drawing (``streamer.output.preview``), then JPEG-encoded once per kept frame however many
browsers look.

Example (plain text: needs frames)::

    tap = FrameTap(settings.web, blur=settings.preview.blur_faces)
    emitter.taps.append(tap.put)
    index, jpeg = tap.jpeg("cam0")      # (None, None) until the stream's first frame
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import cv2
import numpy as np

from configs.web import WebSettings
from streamer.frames import Frame
from streamer.output.preview import annotate, blur_faces
from streamer.values import Abstention, FaceResult, Tracks

log = logging.getLogger(__name__)

Results = list[FaceResult | Abstention | None]


def scaled_tracks(tracks: Tracks, scale: float) -> Tracks:
    """``tracks`` with boxes and landmarks multiplied by ``scale`` (for a scaled picture)."""
    kps = None if tracks.kps is None else (tracks.kps * scale).astype(np.float32)
    box = (tracks.bbox_xyxy * scale).astype(np.float32)
    return Tracks(tracks.track_ids, box, tracks.det_scores, tracks.ages, kps, tracks.predicted)


def picture_size(size_wh: tuple[int, int], max_width: int) -> tuple[tuple[int, int], float]:
    """The size to send (even sides, never wider than ``max_width``, never scaled up) and the scale.

    Example:
        >>> picture_size((1920, 1080), 640)
        ((640, 360), 0.3333333333333333)
        >>> picture_size((320, 240), 640)
        ((320, 240), 1.0)
    """
    w, h = size_wh
    scale = min(1.0, max_width / w)
    return (max(2, round(w * scale) & ~1), max(2, round(h * scale) & ~1)), scale


class FrameTap:
    """Latest frame per stream at a bounded rate; JPEGs drawn on demand."""

    def __init__(
        self, settings: WebSettings, *, blur: bool, landmarks: bool = False, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self.blur = blur
        self.landmarks = landmarks
        self._period_s = 1.0 / settings.fps
        self._last_s: dict[str, float] = {}
        self._latest: dict[str, tuple[Frame, Tracks, Results]] = {}
        self._encoded: dict[str, tuple[int, bytes]] = {}
        self._encode_lock = threading.Lock()
        self.kept = 0
        """Frames kept for the page (the others were never touched)."""
        self.encoded = 0
        """JPEGs drawn and encoded."""
        self.errors = 0

    def put(self, frame: Frame, tracks: Tracks, results: Results) -> None:
        """The pipeline's hook (detection thread): keep the frame if the stream's last kept
        one is older than ``1 / web.fps``; else return at once."""
        now = self._clock()
        if now - self._last_s.get(frame.stream_id, -1e9) < self._period_s:
            return
        self._last_s[frame.stream_id] = now
        self._latest[frame.stream_id] = (frame, tracks, results)
        self.kept += 1

    def forget(self, stream_id: str) -> None:
        """Drop what is kept of a stream (it ended)."""
        self._latest.pop(stream_id, None)
        self._encoded.pop(stream_id, None)

    def streams(self) -> list[str]:
        return sorted(self._latest)

    def jpeg(self, stream_id: str) -> tuple[int | None, bytes | None]:
        """(frame index, JPEG bytes) of the stream's latest kept frame, drawn now unless it
        already was; (None, None) when no frame was kept. Blocking: call it off the loop."""
        latest = self._latest.get(stream_id)
        if latest is None:
            return None, None
        frame = latest[0]
        with self._encode_lock:
            done = self._encoded.get(stream_id)
            if done is not None and done[0] == frame.index:
                return done
            try:
                data = self._draw(*latest)
            except Exception:  # one bad frame costs one picture, never the server
                self.errors += 1
                (log.exception if self.errors == 1 else log.debug)("web: cannot draw a picture of %s", stream_id)
                return done if done is not None else (None, None)
            self._encoded[stream_id] = (frame.index, data)
            self.encoded += 1
            return frame.index, data

    def _draw(self, frame: Frame, tracks: Tracks, results: Results) -> bytes:
        size_wh, scale = picture_size(frame.size_wh, self.settings.width)
        bgr = np.array(frame.image.to_bgr(size_wh))  # a copy: the frame's own picture stays as it was
        small = scaled_tracks(tracks, bgr.shape[1] / frame.size_wh[0]) if scale != 1.0 else tracks
        if self.blur:
            blur_faces(bgr, small.bbox_xyxy)
        annotate(bgr, small, results, self.landmarks)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.settings.jpeg_quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return buf.tobytes()
