"""OpenCV's bundled frontal-face Haar cascade (``detector.name: haar``): an explicit choice
only, and a weak one.

It finds upright, frontal faces: on the benchmark (docs/BENCHMARKS.md, "Face detection")
about half of the faces at any size, a third of those tilted by 15 degrees, a tenth at 30,
none with covered eyes, and some false faces in texture. It gives no keypoints (crops fall
back to square boxes, ``abstain.max_yaw`` cannot judge the pose) and no calibrated
confidence (scores are 1.0). RetinaFace (``detector.name: retinaface``) needs no download
either and found more faces than Haar in every condition measured.

Example:
    >>> det = HaarDetector(DetectorSettings(name="haar", input_size=640))
    >>> len(det.detect(np.zeros((360, 640, 3), np.uint8)))   # a blank picture has no face
    0
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from configs.streamer import DetectorSettings
from streamer.base import FaceDetector
from streamer.values import Detections

CASCADE = "haarcascade_frontalface_default.xml"


class HaarDetector(FaceDetector):
    """Viola-Jones frontal faces on the grey picture."""

    name = "haar"

    def __init__(self, settings: DetectorSettings) -> None:
        data_dir = getattr(getattr(cv2, "data", None), "haarcascades", None)
        path = Path(data_dir or "") / CASCADE
        if data_dir is None or not path.is_file():
            raise FileNotFoundError(
                f"OpenCV's {CASCADE} is not available ({path}); install opencv-python 4.x, which ships it"
            )
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise RuntimeError(f"cannot load Haar cascade {path}")
        self.settings = settings
        self.input_size_wh = (settings.input_size, settings.input_size)

    def detect(self, image_bgr: np.ndarray) -> Detections:
        grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
        found = self._cascade.detectMultiScale(
            grey,
            scaleFactor=self.settings.haar_scale_factor,
            minNeighbors=self.settings.haar_min_neighbors,
            minSize=(16, 16),
        )
        if len(found) == 0:
            return Detections.empty()
        xywh = np.asarray(found, np.float32).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        return Detections(boxes, np.ones(len(boxes), np.float32))
