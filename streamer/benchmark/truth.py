"""``TruthDetector``: the faces of a synthetic workload clip (``workload``), read from its
ground truth by the frame tag each picture carries, with or without a real detector running
beside it for its cost.

Why: the benchmark sweeps faces per frame, which only a known number of faces makes
meaningful, and the machines it runs on may lack real detector weights (SCRFD's cannot be
downloaded there). With ``cost`` set (e.g. the torch SCRFD on a GPU), every batch also goes
through that detector, so its time is paid, and its output is discarded.

Example (plain text: needs a workload clip)::

    det = TruthDetector(clip.truth, input_size_wh=(640, 640))
    detect_frames(det, [frame.image], settings.detector)     # the clip's faces, frame pixels
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from streamer.base import FaceDetector
from streamer.benchmark.workload import Truth, read_tag
from streamer.values import Detections


class TruthDetector(FaceDetector):
    """Faces from the ground truth of the frame each picture's tag names."""

    name = "truth"

    def __init__(self, truth: Truth, input_size_wh: tuple[int, int], cost: FaceDetector | None = None) -> None:
        self.truth = truth
        self.cost = cost
        self.input_size_wh = cost.input_size_wh if cost is not None else input_size_wh
        self.tensor_device = cost.tensor_device if cost is not None else None
        """The cost detector's: it gets the same pictures."""
        self.frame_wh = (truth.workload.width, truth.workload.height)
        self.with_kps = True

    def _faces(self, picture: Any) -> Detections:
        if not isinstance(picture, np.ndarray):
            picture = picture.cpu().numpy()
        h, w = picture.shape[:2]
        rows = self.truth.frames[read_tag(picture, self.frame_wh) % len(self.truth.frames)]
        sx, sy = w / self.frame_wh[0], h / self.frame_wh[1]
        boxes = rows[:, :4] * np.array([sx, sy, sx, sy], np.float32)
        kps = rows[:, 4:].reshape(-1, 5, 2) * np.array([sx, sy], np.float32)
        return Detections(boxes.astype(np.float32), np.ones(len(rows), np.float32), kps.astype(np.float32))

    def detect(self, image_bgr: np.ndarray) -> Detections:
        return self.detect_batch([image_bgr])[0]

    def detect_batch(self, images_bgr: Sequence[Any]) -> list[Detections]:
        if self.cost is not None and images_bgr:
            self.cost.detect_batch(images_bgr)  # paid for its time; its faces are not used
        return [self._faces(img) for img in images_bgr]
