"""``--preview out.mp4``: an annotated copy of the stream (boxes, track ids, labels),
encoded with PyAV on its own thread.

Only the preview converts whole frames to BGR; it is off by default and never slows the
pipeline: when its queue is full, preview frames are dropped and counted.

Example (plain text)::

    pv = PreviewWriter("out.mp4", PreviewSettings(), several_streams=False)
    pv.put(frame, tracks, results)
    pv.close()
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from configs.streamer import PreviewSettings
from streamer.frames import Frame
from streamer.queues import QueueWorker
from streamer.values import Abstention, FaceResult, Tracks

log = logging.getLogger(__name__)


def preview_path(path: str | Path, stream_id: str, several_streams: bool) -> Path:
    """``out.mp4`` for one stream, ``out.<stream_id>.mp4`` for each of several."""
    p = Path(path)
    return p.with_name(f"{p.stem}.{stream_id}{p.suffix or '.mp4'}") if several_streams else p


def blur_faces(bgr: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
    """Blur each face box of ``bgr`` in place (strongly enough that nobody is recognisable)."""
    h, w = bgr.shape[:2]
    for x0, y0, x1, y1 in np.round(boxes_xyxy).astype(int).tolist():
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 - x0 > 1 and y1 - y0 > 1:
            k = max(3, (max(x1 - x0, y1 - y0) // 4) | 1)
            bgr[y0:y1, x0:x1] = cv2.GaussianBlur(bgr[y0:y1, x0:x1], (k, k), 0)
    return bgr


def _caption(tid: int, r: FaceResult | Abstention | None) -> str:
    if isinstance(r, Abstention):
        return f"#{tid} ({r.reason})"
    return f"#{tid} " + (f"{r.label} {r.score:.2f}" if r is not None else "...")


def annotate(
    bgr: np.ndarray, tracks: Tracks, results: list[FaceResult | Abstention | None], landmarks: bool = False
) -> np.ndarray:
    """Draw boxes, track ids and labels onto ``bgr`` (in place) and return it; with
    ``landmarks``, the detector's five points too (where it gives them)."""
    for i, tid in enumerate(tracks.track_ids.tolist()):
        x0, y0, x1, y1 = (round(v) for v in tracks.bbox_xyxy[i])
        r = results[i]
        colour = (0, 200, 0) if isinstance(r, FaceResult) else (0, 200, 200)
        cv2.rectangle(bgr, (x0, y0), (x1, y1), colour, 2)
        cv2.putText(bgr, _caption(tid, r), (x0, max(12, y0 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
        if landmarks and tracks.kps is not None:
            for x, y in tracks.kps[i].tolist():
                cv2.circle(bgr, (round(x), round(y)), 2, (255, 80, 0), -1, cv2.LINE_AA)
    return bgr


class PreviewWriter:
    """One H.264 file per stream, written by a background worker."""

    def __init__(self, path: str | Path, settings: PreviewSettings, several_streams: bool) -> None:
        self.path = Path(path)
        self.settings = settings
        self.several = several_streams
        self.written = 0
        self.paths: dict[str, Path] = {}
        self._outs: dict[str, tuple[Any, Any]] = {}
        self._worker: QueueWorker[tuple[Frame, Tracks, list[FaceResult | Abstention | None]]] = QueueWorker(
            "preview", settings.queue_size, lambda item: self._write(*item), finish=self._finish
        )

    @property
    def queue_depth(self) -> int:
        return len(self._worker.queue)

    @property
    def dropped(self) -> int:
        """Frames not written: queue full, or drawing/encoding failed."""
        return self._worker.dropped + self._worker.errors

    def put(self, frame: Frame, tracks: Tracks, results: list[FaceResult | Abstention | None]) -> None:
        """Queue a frame for drawing; never waits (a full queue drops it, counted)."""
        self._worker.submit((frame, tracks, results))

    def _open(self, stream_id: str, size_wh: tuple[int, int]) -> tuple[Any, Any]:
        path = preview_path(self.path, stream_id, self.several)
        path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(path), "w")
        stream = container.add_stream("libx264", rate=round(self.settings.fps))
        stream.width, stream.height = size_wh[0] & ~1, size_wh[1] & ~1
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast"}
        self.paths[stream_id] = path
        return container, stream

    def _write(self, frame: Frame, tracks: Tracks, results: list[FaceResult | Abstention | None]) -> None:
        out = self._outs.get(frame.stream_id)
        if out is None:
            out = self._outs[frame.stream_id] = self._open(frame.stream_id, frame.size_wh)
        container, stream = out
        bgr = np.array(frame.image.to_bgr()[: stream.height, : stream.width])
        if self.settings.blur_faces:
            blur_faces(bgr, tracks.bbox_xyxy)
        annotate(bgr, tracks, results, self.settings.landmarks)
        for packet in stream.encode(av.VideoFrame.from_ndarray(bgr, format="bgr24")):
            container.mux(packet)
        self.written += 1

    def _finish(self) -> None:
        for container, stream in self._outs.values():
            try:
                for packet in stream.encode():
                    container.mux(packet)
                container.close()
            except Exception:  # one broken file must not keep the others from closing
                log.exception("preview: cannot finish %s", container.name)

    def close(self) -> None:
        """Write what is queued and finish the files."""
        self._worker.close()
