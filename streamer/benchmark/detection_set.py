"""The face-detection benchmark's pictures and their ground truth: the face photos installed
packages ship (insightface, scikit-image, matplotlib), face-free pictures for false faces,
and compositions of the photos' faces on face-free backgrounds at known positions, one set
per condition (scale, blur, JPEG quality, rotation, occlusion).

Ground truth of the photos: the face boxes below, marked once by eye on each full picture
(brow to chin, ear to ear) and written down. OpenCV's wheels ship no sample pictures, so
none come from there. A package that is missing only removes its pictures (listed as
skipped).

Example:
    >>> shifted(np.array([[10, 10, 30, 40]], np.float32), 2.0, 5, 5).tolist()
    [[25.0, 25.0, 65.0, 85.0]]
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

PHOTOS: dict[str, tuple[str, str, tuple[tuple[int, int, int, int], ...]]] = {
    # name: (package, file inside it, face boxes x0 y0 x1 y1 in the full picture)
    "t1": (
        "insightface",
        "data/images/t1.jpg",
        (
            (59, 259, 165, 399),
            (269, 149, 367, 271),
            (466, 269, 576, 417),
            (745, 346, 843, 479),
            (904, 61, 1009, 205),
            (1133, 273, 1224, 398),
        ),
    ),
    "tom_hanks": ("insightface", "data/images/Tom_Hanks_54745.png", ((8, 1, 86, 112),)),
    "astronaut": ("skimage", "data/astronaut.png", ((178, 57, 273, 177),)),
    "cameraman": ("skimage", "data/camera.png", ((195, 114, 256, 195),)),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", ((178, 107, 354, 328),)),
}
"""Tom Hanks is an aligned 112 x 112 crop (the face fills it, no context); the cameraman's
face is half turned; everyone else faces the camera more or less."""

NO_FACES: dict[str, tuple[str, str]] = {
    **{f"mask_{c}": ("insightface", f"data/images/mask_{c}.jpg") for c in ("blue", "green", "white", "black")},
    **{n: ("skimage", f"data/{n}.png") for n in ("chelsea", "coffee", "brick", "grass", "gravel")},
    "rocket": ("skimage", "data/rocket.jpg"),
    "hubble": ("skimage", "data/hubble_deep_field.jpg"),
}
"""Pictures without a human face (chelsea is a cat), also the compositions' backgrounds."""

CANVAS_WH = (640, 480)
BASE_PX = 64
"""Face size of every composed condition except the scale sweep."""
MARGIN = 0.3
"""Context kept around a face when it is cut out, per side, relative to its size."""


@dataclass(frozen=True)
class Picture:
    """One benchmark picture: BGR uint8 and its faces, float32 [N, 4] (x0, y0, x1, y1)."""

    condition: str
    name: str
    image: np.ndarray
    faces: np.ndarray


def _file(package: str, rel: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / rel
    return path if path.is_file() else None


def _read(package: str, rel: str) -> np.ndarray | None:
    path = _file(package, rel)
    return None if path is None else cv2.imread(str(path), cv2.IMREAD_COLOR)


def photos() -> tuple[list[Picture], list[Picture], list[str]]:
    """(photos with faces, pictures without, what was skipped and why)."""
    with_faces, without, skipped = [], [], []
    for name, (package, rel, boxes) in PHOTOS.items():
        img = _read(package, rel)
        if img is None:
            skipped.append(f"{name}: {package} not installed")
            continue
        with_faces.append(Picture("photos", name, img, np.asarray(boxes, np.float32)))
    for name, (package, rel) in NO_FACES.items():
        img = _read(package, rel)
        if img is None:
            skipped.append(f"{name}: {package} not installed")
            continue
        without.append(Picture("no faces", name, img, np.zeros((0, 4), np.float32)))
    return with_faces, without, skipped


def shifted(boxes: np.ndarray, scale: float, dx: float, dy: float) -> np.ndarray:
    """Boxes scaled by ``scale`` about the origin, then moved by (dx, dy)."""
    return (boxes * scale + np.array([dx, dy, dx, dy], np.float32)).astype(np.float32)


def sprites(faces: list[Picture]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each face cut out with ``MARGIN`` of context (reflected at picture borders), and its
    box in the cut; then every one mirrored, for twice the faces."""
    out = []
    for pic in faces:
        if pic.name == "tom_hanks":  # no context around that face to cut
            continue
        for box in pic.faces:
            side = math.sqrt((box[2] - box[0]) * (box[3] - box[1]))
            m = round(side * MARGIN)
            x0, y0, x1, y1 = (round(float(v)) for v in box)
            pad = cv2.copyMakeBorder(pic.image, m, m, m, m, cv2.BORDER_REFLECT)
            cut = np.ascontiguousarray(pad[y0 : y1 + 2 * m, x0 : x1 + 2 * m])
            b = np.array([m, m, m + x1 - x0, m + y1 - y0], np.float32)
            out.append((cut, b))
            w = cut.shape[1]
            out.append((np.ascontiguousarray(cut[:, ::-1]), np.array([w - b[2], b[1], w - b[0], b[3]], np.float32)))
    return out


def _background(backgrounds: list[np.ndarray], i: int) -> np.ndarray:
    if not backgrounds:
        rng = np.random.default_rng(i)
        small = rng.integers(40, 200, (12, 16, 3), dtype=np.uint8)
        return cv2.resize(small, CANVAS_WH, interpolation=cv2.INTER_CUBIC)
    return cv2.resize(backgrounds[i % len(backgrounds)], CANVAS_WH, interpolation=cv2.INTER_AREA)


def _feather(h: int, w: int, border: int) -> np.ndarray:
    """float32 [h, w, 1]: 1 inside, falling to 0 over ``border`` px at the edges."""
    ys = np.minimum(np.arange(h), np.arange(h)[::-1])[:, None]
    xs = np.minimum(np.arange(w), np.arange(w)[::-1])[None, :]
    return np.clip(np.minimum(ys, xs) / max(1, border), 0, 1).astype(np.float32)[..., None]


def _place(canvas: np.ndarray, cut: np.ndarray, x: int, y: int) -> None:
    h, w = cut.shape[:2]
    alpha = _feather(h, w, max(2, min(h, w) // 8))
    region = canvas[y : y + h, x : x + w].astype(np.float32)
    canvas[y : y + h, x : x + w] = (cut * alpha + region * (1 - alpha)).round().astype(np.uint8)


def _occlude(cut: np.ndarray, box: np.ndarray, kind: str) -> None:
    x0, y0, x1, y1 = (round(float(v)) for v in box)
    h = y1 - y0
    if kind == "lower half":  # a scarf or a medical mask
        cut[y0 + h // 2 : y1, x0:x1] = (200, 200, 200)
    elif kind == "eyes":  # sunglasses
        cut[y0 + h // 4 : y0 + h // 2, x0:x1] = (20, 20, 20)
    elif kind == "side half":  # a hand, a pillar
        cut[y0:y1, x0 : (x0 + x1) // 2] = (90, 110, 130)


def compose(
    condition: str,
    sprite_list: list[tuple[np.ndarray, np.ndarray]],
    backgrounds: list[np.ndarray],
    face_px: int,
    *,
    rotate_deg: float = 0.0,
    occlusion: str | None = None,
    seed: int = 0,
) -> list[Picture]:
    """Every sprite once, scaled so its face box is ``face_px`` (square root of its area),
    rotated by +/- ``rotate_deg``, occluded, on ``CANVAS_WH`` backgrounds in a grid."""
    rng = np.random.default_rng(seed)
    cuts = []
    for i, (cut, box) in enumerate(sprite_list):
        k = face_px / math.sqrt((box[2] - box[0]) * (box[3] - box[1]))
        size = (max(2, round(cut.shape[1] * k)), max(2, round(cut.shape[0] * k)))
        small = cv2.resize(cut, size, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
        b = shifted(box[None], k, 0, 0)[0]
        if occlusion:
            _occlude(small, b, occlusion)
        if rotate_deg:
            angle = rotate_deg if i % 2 == 0 else -rotate_deg
            centre = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
            m = cv2.getRotationMatrix2D(centre, angle, 1.0)
            small = cv2.warpAffine(small, m, (small.shape[1], small.shape[0]), borderMode=cv2.BORDER_REFLECT)
        cuts.append((small, b))  # a rotated face keeps its box size about its (fixed) centre
    cell_w = max(c.shape[1] for c, _ in cuts) + 8
    cell_h = max(c.shape[0] for c, _ in cuts) + 8
    cols, rows = max(1, CANVAS_WH[0] // cell_w), max(1, CANVAS_WH[1] // cell_h)
    out = []
    for start in range(0, len(cuts), cols * rows):
        canvas = _background(backgrounds, len(out) + seed)
        faces = []
        for j, (cut, b) in enumerate(cuts[start : start + cols * rows]):
            cx, cy = (j % cols) * cell_w, (j // cols) * cell_h
            x = cx + int(rng.integers(0, max(1, cell_w - cut.shape[1])))
            y = cy + int(rng.integers(0, max(1, cell_h - cut.shape[0])))
            x, y = min(x, CANVAS_WH[0] - cut.shape[1]), min(y, CANVAS_WH[1] - cut.shape[0])
            _place(canvas, cut, x, y)
            faces.append(shifted(b[None], 1.0, x, y)[0])
        out.append(Picture(condition, f"{condition} #{len(out)}", canvas, np.asarray(faces, np.float32)))
    return out


def degrade(pictures: list[Picture], condition: str, *, blur_sigma: float = 0.0, jpeg: int = 0) -> list[Picture]:
    """The same pictures blurred (Gaussian, whole picture) or JPEG-compressed at quality ``jpeg``."""
    out = []
    for p in pictures:
        img = p.image
        if blur_sigma:
            img = cv2.GaussianBlur(img, (0, 0), blur_sigma)
        if jpeg:
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, jpeg])
            assert ok
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        out.append(Picture(condition, p.name.replace(p.condition, condition), img, p.faces))
    return out


SCALES_PX = (24, 32, 48, 64, 96, 128, 192, 256)


def conditions(faces: list[Picture], backgrounds: list[Picture]) -> list[Picture]:
    """Every composed picture of every condition, in table order."""
    sp = sprites(faces)
    bgs = [b.image for b in backgrounds]
    out: list[Picture] = []
    for px in SCALES_PX:
        out += compose(f"scale {px} px", sp, bgs, px, seed=px)
    base = [p for p in out if p.condition == f"scale {BASE_PX} px"]  # what blur and JPEG degrade
    for sigma in (1.0, 2.0, 4.0):
        out += degrade(base, f"blur sigma {sigma:g} px", blur_sigma=sigma)
    for q in (30, 15, 8):
        out += degrade(base, f"JPEG quality {q}", jpeg=q)
    for deg in (15, 30):
        out += compose(f"rotated {deg} deg", sp, bgs, BASE_PX, rotate_deg=deg, seed=2)
    for kind in ("lower half", "eyes", "side half"):
        out += compose(f"occluded: {kind}", sp, bgs, BASE_PX, occlusion=kind, seed=3)
    return out
