"""Face crops for the engine, cut at the engine's input size so it never resizes twice.

With keypoints: insightface's 5-point similarity alignment (``estimate_norm``, the ArcFace
template scaled to ``size``). Without: a square box ``box_expand`` times the face's longer
side, clipped at the frame border. Either way only the face's region is converted to RGB
(``FrameImage.region_rgb``) and the transform is offset to that region.

Example:
    >>> image = FrameImage.from_bgr(np.zeros((120, 160, 3), np.uint8))
    >>> crop_faces(image, np.array([[40, 30, 90, 100]], np.float32), None, size=64).shape
    (1, 64, 64, 3)
"""

from __future__ import annotations

import cv2
import numpy as np

from streamer.frames import FrameImage

_TEMPLATE_SIZE = 112
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]], np.float64
)
"""insightface's ArcFace 5-point template (eyes, nose tip, mouth corners) in a 112 x 112 crop
(``insightface.utils.face_align.arcface_dst``)."""


def similarity_transform(kps: np.ndarray, size: int) -> np.ndarray:
    """2x3 matrix mapping frame pixels to a ``size`` x ``size`` aligned crop: insightface's
    ``estimate_norm`` (scikit-image's least-squares similarity from the 5 keypoints to the
    ArcFace template), scaled. Called through scikit-image directly: importing insightface
    costs ~1 s (it imports onnx) and box crops never need it; a test checks both agree."""
    from skimage.transform import SimilarityTransform

    src = np.asarray(kps, np.float64)
    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        m = SimilarityTransform.from_estimate(src, ARCFACE_TEMPLATE).params[:2]
    else:
        t = SimilarityTransform()
        t.estimate(src, ARCFACE_TEMPLATE)
        m = t.params[:2]
    return np.asarray(m, np.float64) * (size / _TEMPLATE_SIZE)


def source_box(m: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """Frame-pixel bounding box of the crop ``m`` produces (x0, y0, x1, y1)."""
    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64)
    pts = corners @ inv.T
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 1
    return int(x0), int(y0), int(x1), int(y1)


def square_box(bbox_xyxy: np.ndarray, expand: float) -> tuple[int, int, int, int]:
    """Square around the box centre, side = ``expand`` x the longer side."""
    x0, y0, x1, y1 = (float(v) for v in bbox_xyxy)
    side = max(x1 - x0, y1 - y0) * expand
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2)


def _clip(box: tuple[int, int, int, int], size_wh: tuple[int, int]) -> tuple[int, int, int, int]:
    w, h = size_wh
    return max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])


def aligned_crop(image: FrameImage, kps: np.ndarray, size: int) -> np.ndarray:
    """One 5-point aligned face, uint8 RGB [size, size, 3] (black outside the frame)."""
    m = similarity_transform(kps, size)
    x0, y0, x1, y1 = _clip(source_box(m, size), image.size_wh)
    region = image.region_rgb(x0, y0, x1, y1)
    # region_rgb may widen the box to even coordinates for 4:2:0 input; offset by what it used.
    w, h = image.size_wh
    even = image.format in ("yuv420p", "yuvj420p") and w % 2 == 0 and h % 2 == 0
    rx0, ry0 = (x0 & ~1, y0 & ~1) if even else (x0, y0)
    m_region = m.copy()
    m_region[:, 2] += m[:, :2] @ np.array([rx0, ry0], np.float64)
    return cv2.warpAffine(region, m_region, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)


def box_crop(image: FrameImage, bbox_xyxy: np.ndarray, size: int, expand: float) -> np.ndarray:
    """One square box crop clipped at the border and resized, uint8 RGB [size, size, 3]."""
    x0, y0, x1, y1 = _clip(square_box(bbox_xyxy, expand), image.size_wh)
    region = image.region_rgb(x0, y0, x1, y1)
    interp = cv2.INTER_AREA if region.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(region, (size, size), interpolation=interp)


def crop_faces(
    image: FrameImage,
    bbox_xyxy: np.ndarray,
    kps: np.ndarray | None,
    size: int,
    align: str = "auto",
    expand: float = 1.25,
) -> np.ndarray:
    """All faces of one frame as one uint8 RGB batch [N, size, size, 3].

    ``align="auto"`` aligns on keypoints when given, ``"box"`` always uses square boxes.
    Raises ValueError for a face entirely outside the picture.
    """
    n = len(bbox_xyxy)
    out = np.empty((n, size, size, 3), np.uint8)
    use_kps = kps is not None and align == "auto"
    for i in range(n):
        if use_kps:
            out[i] = aligned_crop(image, kps[i], size)
        else:
            out[i] = box_crop(image, bbox_xyxy[i], size, expand)
    return out
