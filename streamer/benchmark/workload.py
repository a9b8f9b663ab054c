"""Synthetic benchmark clips: real faces from the images insightface ships (the six faces of
its group photo ``t1.jpg`` and its aligned single face), N faces per frame moving across
the picture, each leaving at one edge while a new one enters at the other, at any
resolution, frame rate, codec and length. Each clip comes with its ground truth (a face
box and 5 points per face per frame) and carries its frame number in a 16-bit tag drawn in
the top-left corner, so ``TruthDetector`` can find the faces of any decoded frame, looped
or not.

Clips are cached under ``<engine.cache_dir>/workloads/``.

Example (plain text: encodes a video)::

    clip = make_workload(Workload(1920, 1080, fps=30, codec="h264", seconds=10, faces=4))
    clip.path, clip.truth.faces_per_frame()   # (.../w1920x1080-30fps-h264-10s-4faces-s0-v1.mp4, 3.9)
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from streamer.sources.demo import group_photo_bgr

log = logging.getLogger(__name__)

CODECS = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9", "av1": "libsvtav1", "mpeg4": "mpeg4"}
"""``--codec`` names and the FFmpeg encoders that write them."""

GROUP_FACES = ((35, 255, 185, 405), (255, 135, 395, 275), (445, 255, 595, 405), (715, 335, 860, 480))
GROUP_FACES += ((885, 35, 1035, 185), (1100, 260, 1245, 405))
"""The six faces of insightface's ``t1.jpg`` (x0, y0, x1, y1), marked by hand."""

# insightface's ArcFace 5-point template in a 112 x 112 aligned face (eyes, nose, mouth corners).
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]], np.float32
)
TAG_BITS = 16
RENDER_VERSION = 1
"""Part of each clip's cache name: bump it when ``render`` changes what it draws."""


@dataclass(frozen=True)
class Workload:
    """What a synthetic clip looks like."""

    width: int = 1280
    height: int = 720
    fps: int = 30
    codec: str = "h264"
    seconds: float = 10.0
    faces: int = 4
    """Face slots: this many faces are in view at almost every moment."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.width < 160 or self.height < 120 or self.width % 2 or self.height % 2:
            raise ValueError(f"workload size {self.width}x{self.height}: even, at least 160x120")
        if self.codec not in CODECS:
            raise ValueError(f"workload codec {self.codec!r}; allowed: {', '.join(CODECS)}")
        if not 1 <= self.faces <= 64 or self.fps < 1 or self.seconds <= 0:
            raise ValueError("workload: faces 1-64, fps >= 1, seconds > 0")
        if self.frames >= 1 << TAG_BITS:
            raise ValueError(f"workload: at most {(1 << TAG_BITS) - 1} frames")

    @property
    def frames(self) -> int:
        return max(1, round(self.seconds * self.fps))

    @property
    def name(self) -> str:
        return (
            f"w{self.width}x{self.height}-{self.fps}fps-{self.codec}-{self.seconds:g}s-{self.faces}faces"
            f"-s{self.seed}-v{RENDER_VERSION}"
        )


@dataclass(frozen=True)
class Truth:
    """Ground truth of a clip: per frame, float32 [N, 14] rows (box x0 y0 x1 y1, then 5 points)."""

    workload: Workload
    frames: list[np.ndarray]

    def faces_per_frame(self) -> float:
        return float(np.mean([len(f) for f in self.frames]))

    def save(self, path: Path) -> None:
        data = {"workload": asdict(self.workload), "frames": [np.round(f, 2).tolist() for f in self.frames]}
        path.write_text(json.dumps(data))

    @classmethod
    def load(cls, path: Path) -> Truth:
        data = json.loads(Path(path).read_text())
        frames = [np.asarray(f, np.float32).reshape(-1, 14) for f in data["frames"]]
        return cls(Workload(**data["workload"]), frames)


@dataclass(frozen=True)
class WorkloadClip:
    path: Path
    truth: Truth


def tag_geometry(width: int, height: int) -> tuple[int, int]:
    """(block side, band height) of the frame tag: 16 square blocks in the top-left corner,
    big enough to read back from the detector's scaled-down picture."""
    block = max(8, (height // 24) & ~1)
    return block, block + block // 2


def _sprites() -> list[tuple[np.ndarray, np.ndarray]]:
    """(BGR picture, [5, 2] points in it) per face; each picture is square, the face in it
    spans the middle 2/3 (box = [s/6, 5s/6])."""
    # slow to import: only for the sprites
    import insightface

    photo = group_photo_bgr()
    out = []
    for x0, y0, x1, y1 in GROUP_FACES:
        side = max(x1 - x0, y1 - y0)
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, side * 0.75
        pad = cv2.copyMakeBorder(photo, 400, 400, 400, 400, cv2.BORDER_REFLECT)
        a, b = round(cx - half) + 400, round(cy - half) + 400
        pic = pad[b : b + round(2 * half), a : a + round(2 * half)]
        s = pic.shape[0]
        kps = ARCFACE_112 / 112.0 * (s * 2 / 3) + s / 6  # the template in the face box (approximate)
        out.append((np.ascontiguousarray(pic), kps))
    hanks = cv2.imread(str(Path(insightface.__file__).parent / "data" / "images" / "Tom_Hanks_54745.png"))
    if hanks is not None:  # an aligned 112 x 112 face: the template points are its own
        s = 168
        pic = cv2.copyMakeBorder(hanks, 28, 28, 28, 28, cv2.BORDER_REPLICATE)
        out.append((cv2.resize(pic, (s, s), interpolation=cv2.INTER_LINEAR), (ARCFACE_112 + 28) * s / 168))
    return out


def _background(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A static, softly textured background (some detail for the encoder, no faces)."""
    small = rng.integers(40, 140, (max(2, h // 40), max(2, w // 40), 3), dtype=np.uint8)
    bg = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(-6, 7, (h, w, 1), dtype=np.int16)
    return np.clip(bg.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def draw_tag(img: np.ndarray, value: int) -> None:
    """Write ``value`` in the frame's top-left tag (bit i = block i, white = 1)."""
    block, band = tag_geometry(img.shape[1], img.shape[0])
    img[:band, : block * TAG_BITS] = 0
    for i in range(TAG_BITS):
        if value >> i & 1:
            img[:block, i * block : (i + 1) * block] = 255


def read_tag(picture: np.ndarray, frame_wh: tuple[int, int]) -> int:
    """The tag of a BGR picture of a ``frame_wh`` frame, at any scale."""
    block, _ = tag_geometry(*frame_wh)
    sx, sy = picture.shape[1] / frame_wh[0], picture.shape[0] / frame_wh[1]
    y = min(picture.shape[0] - 1, int(block / 2 * sy))
    xs = [min(picture.shape[1] - 1, int((i + 0.5) * block * sx)) for i in range(TAG_BITS)]
    row = np.asarray(picture[y, xs]).reshape(TAG_BITS, -1).mean(axis=1)
    return int(sum(1 << i for i in range(TAG_BITS) if row[i] > 127))


def _layout(wl: Workload) -> tuple[int, int, int]:
    """(rows, face side, band height) so ``faces`` lanes fit below the tag."""
    _, band = tag_geometry(wl.width, wl.height)
    rows = max(1, math.ceil(math.sqrt(wl.faces * (wl.height - band) / wl.width)))
    per_row = math.ceil(wl.faces / rows)
    lane_h = (wl.height - band) / rows
    side = int(min(lane_h * 0.9, wl.width / (per_row + 1) * 0.8, wl.height / 2.5))
    return rows, max(24, side), band


def render(wl: Workload) -> tuple[list[np.ndarray], Truth]:
    """The clip's frames (BGR) and its ground truth."""
    rng = np.random.default_rng(wl.seed)
    sprites = _sprites()
    rows, side, band = _layout(wl)
    lane_h = (wl.height - band) / rows
    bg = _background(wl.width, wl.height, rng)
    scaled = [(cv2.resize(p, (side, side), interpolation=cv2.INTER_AREA), k * side / p.shape[0]) for p, k in sprites]
    period = wl.width + side
    speeds = [period / (wl.fps * rng.uniform(3.0, 6.0)) for _ in range(rows)]  # px per frame: 3-6 s to cross
    slots = []
    for i in range(wl.faces):
        row = i % rows
        order = i // rows
        per_row = math.ceil(wl.faces / rows)
        speed = speeds[row]  # one speed per lane: faces never overtake each other
        x0 = (order + rng.uniform(0.1, 0.9)) * period / per_row
        y = band + row * lane_h + (lane_h - side) / 2
        slots.append((x0, y, speed, rng.uniform(0, 2 * math.pi), i))
    frames, truth = [], []
    for t in range(wl.frames):
        img = bg.copy()
        faces = []
        for x0, y, speed, phase, i in slots:
            pos = x0 + speed * t
            lap = int(pos // period)
            x = int(pos - lap * period) - side
            yy = int(y + math.sin(phase + t / wl.fps) * lane_h * 0.04)
            yy = min(max(band, yy), wl.height - side)
            pic, kps = scaled[(i + lap * 3) % len(scaled)]  # a new face each lap
            a, b = max(0, x), min(wl.width, x + side)
            if b > a:
                img[yy : yy + side, a:b] = pic[:, a - x : b - x]
            box = np.array([x + side / 6, yy + side / 6, x + side * 5 / 6, yy + side * 5 / 6], np.float32)
            vis = (min(box[2], wl.width) - max(box[0], 0)) / (box[2] - box[0])
            if vis >= 0.5:
                pts = kps + np.array([x, yy], np.float32)
                clipped = np.array([max(0, box[0]), box[1], min(wl.width, box[2]), box[3]], np.float32)
                faces.append(np.concatenate([clipped, pts.reshape(-1)]))
        draw_tag(img, t)
        frames.append(img)
        truth.append(np.asarray(faces, np.float32).reshape(-1, 14))
    return frames, Truth(wl, truth)


def make_workload(wl: Workload, cache_dir: str | Path = "~/.cache/expstream") -> WorkloadClip:
    """The clip and its truth, encoded once and cached."""
    folder = Path(cache_dir).expanduser() / "workloads"
    folder.mkdir(parents=True, exist_ok=True)
    ext = "webm" if wl.codec == "vp9" else "mp4"
    path, truth_path = folder / f"{wl.name}.{ext}", folder / f"{wl.name}.json"
    if path.is_file() and truth_path.is_file():
        return WorkloadClip(path, Truth.load(truth_path))
    log.info("making the workload clip %s (once)", path)
    frames, truth = render(wl)
    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), "w", format="webm" if ext == "webm" else "mp4") as out:
        stream = out.add_stream(CODECS[wl.codec], rate=wl.fps)
        stream.width, stream.height, stream.pix_fmt = wl.width, wl.height, "yuv420p"
        if wl.codec in ("h264", "hevc"):
            stream.options = {"preset": "veryfast", "crf": "23", "bf": "0"}  # cameras send no B-frames
        stream.gop_size = wl.fps
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)
    truth.save(truth_path)
    return WorkloadClip(path, truth)
