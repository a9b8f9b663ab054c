"""Abstentions: faces published without a label, and not scored, because they cannot be
judged: ``too_small`` (shorter box side below ``abstain.min_face_px``), ``not_frontal``
(the nose far off the eyes' midline, from the 5 keypoints: ``abstain.max_yaw``) and
``blurred`` (variance of the Laplacian of the grey crop below ``abstain.min_sharpness``).
Size and pose are checked on every frame by the detection thread (they cost nothing); blur
is measured on the crop the scoring thread has cut anyway.

Example:
    >>> boxes = np.array([[0, 0, 20, 20], [0, 0, 80, 90]], np.float32)
    >>> geometry_reasons(boxes, None, AbstainSettings(min_face_px=32))
    ['too_small', None]
    >>> frontal = np.array([[[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]]], np.float32)
    >>> profile = np.array([[[30, 40], [45, 40], [60, 60], [35, 80], [50, 80]]], np.float32)
    >>> yaw_asymmetry(frontal).round(2).tolist(), yaw_asymmetry(profile).round(2).tolist()
    ([0.0], [1.0])
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from configs.analytics import AbstainSettings

REASONS = ("too_small", "not_frontal", "blurred")


def yaw_asymmetry(kps: np.ndarray) -> np.ndarray:
    """Per face, in [0, 1]: where the nose projects on the line through the eyes, 0 midway
    (frontal), 1 on or beyond one eye (profile). ``kps`` float32 [N, 5, 2]: eyes, nose,
    mouth corners."""
    left, right, nose = kps[:, 0], kps[:, 1], kps[:, 2]
    axis = right - left
    t = ((nose - left) * axis).sum(axis=1) / np.maximum((axis * axis).sum(axis=1), 1e-6)
    return np.clip(np.abs(2.0 * t - 1.0), 0.0, 1.0)


def sharpness(crop_rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the grey crop (higher = sharper)."""
    grey = cv2.cvtColor(np.ascontiguousarray(crop_rgb), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def geometry_reasons(boxes_xyxy: np.ndarray, kps: np.ndarray | None, settings: AbstainSettings) -> list[str | None]:
    """Per face: ``too_small``, ``not_frontal`` or None, from its box and keypoints."""
    reasons: list[str | None] = [None] * len(boxes_xyxy)
    if len(boxes_xyxy) == 0:
        return reasons
    side = np.minimum(boxes_xyxy[:, 2] - boxes_xyxy[:, 0], boxes_xyxy[:, 3] - boxes_xyxy[:, 1])
    yaw = yaw_asymmetry(kps) if kps is not None and settings.max_yaw < 1.0 else np.zeros(len(boxes_xyxy))
    for i in range(len(boxes_xyxy)):
        if settings.min_face_px and side[i] < settings.min_face_px:
            reasons[i] = "too_small"
        elif yaw[i] > settings.max_yaw:
            reasons[i] = "not_frontal"
    return reasons


def blur_reasons(crops_rgb: Any, settings: AbstainSettings) -> list[str | None]:
    """Per crop (uint8 RGB [N, S, S, 3], numpy or a torch tensor on any device): ``blurred``
    or None. Device crops are copied to the host only when the check is on."""
    if not settings.min_sharpness:
        return [None] * len(crops_rgb)
    if not isinstance(crops_rgb, np.ndarray):
        crops_rgb = crops_rgb.cpu().numpy()
    return ["blurred" if sharpness(c) < settings.min_sharpness else None for c in crops_rgb]
