"""Detection inside regions around live tracks: the cheap frames between full-frame passes.

With ``detector.full_frame_every = N > 1`` the detector scans the whole (scaled) picture on
every N-th frame of a stream and, on the frames between, only squares ``roi_expand`` times
the size of each live track's predicted box. Every frame still gets real detections for the
tracker; faces that newly enter are found at the next full pass. Worth it for slow CPU
detectors (haar: ~2 ms per region vs ~80 ms per 640x360 frame on the benchmark machine).

Example:
    >>> regions(np.array([[10, 10, 30, 40]]), expand=2.0, size_wh=(100, 100)).tolist()
    [[0, 0, 50, 55]]
"""

from __future__ import annotations

import cv2
import numpy as np

from streamer.base import FaceDetector
from streamer.values import Detections


def regions(boxes_xyxy: np.ndarray, expand: float, size_wh: tuple[int, int]) -> np.ndarray:
    """Integer squares (x0, y0, x1, y1) around each box, ``expand`` x its longer side,
    clipped to the picture; int32 [N, 4]."""
    if len(boxes_xyxy) == 0:
        return np.zeros((0, 4), np.int32)
    b = np.asarray(boxes_xyxy, np.float32)
    centre = (b[:, :2] + b[:, 2:]) / 2
    half = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])[:, None] * expand / 2
    lo = np.floor(centre - half)
    hi = np.ceil(centre + half)
    out = np.concatenate([lo, hi], axis=1)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, size_wh[0])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, size_wh[1])
    return out.astype(np.int32)


def nms(dets: Detections, iou: float) -> Detections:
    """Drop boxes overlapping a higher-scoring one by more than ``iou`` (regions overlap)."""
    if len(dets) < 2:
        return dets
    xywh = dets.bbox_xyxy.copy()
    xywh[:, 2:] -= xywh[:, :2]
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), dets.scores.tolist(), 0.0, iou)
    return dets.select(np.sort(np.asarray(keep, np.int64).reshape(-1)))


def detect_in_regions(
    detector: FaceDetector,
    image_bgr: np.ndarray,
    boxes_xyxy: np.ndarray,
    expand: float = 2.0,
    iou: float = 0.4,
    max_side_px: int = 0,
) -> Detections:
    """Faces found inside the squares around ``boxes_xyxy``, in ``image_bgr`` coordinates.

    Regions larger than ``max_side_px`` (0 = no limit) are scaled down first: the detector's
    cost grows with pixels, and a face filling half a region needs few of them.
    """
    h, w = image_bgr.shape[:2]
    crops, places = [], []
    for x0, y0, x1, y1 in regions(boxes_xyxy, expand, (w, h)).tolist():
        if x1 - x0 < 8 or y1 - y0 < 8:
            continue
        crop = image_bgr[y0:y1, x0:x1]
        k = 1.0
        if max_side_px and max(crop.shape[:2]) > max_side_px:
            k = max_side_px / max(crop.shape[:2])
            crop = cv2.resize(
                crop, (max(1, round(crop.shape[1] * k)), max(1, round(crop.shape[0] * k))), interpolation=cv2.INTER_AREA
            )
        crops.append(np.ascontiguousarray(crop))
        places.append((np.array([x0, y0], np.float32), k))
    parts: list[Detections] = []
    # one call for every region of the frame: a batched detector runs them together (RetinaFace:
    # one onnxruntime run instead of one per track, ~35 % less time for six faces on a CPU)
    for found, (shift, k) in zip(detector.detect_batch(crops) if crops else [], places, strict=True):
        if len(found):
            kps = None if found.kps is None else found.kps / k + shift
            parts.append(Detections(found.bbox_xyxy / k + np.tile(shift, 2), found.scores, kps))
    if not parts:
        return Detections.empty()
    kps_all = None if any(p.kps is None for p in parts) else np.concatenate([p.kps for p in parts])
    merged = Detections(
        np.concatenate([p.bbox_xyxy for p in parts]), np.concatenate([p.scores for p in parts]), kps_all
    )
    return nms(merged, iou)
