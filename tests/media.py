"""Test media made on the fly: real faces from insightface's bundled group photo.

``make_face_clip`` writes an H.264 MP4 in which the six-face photo pans slowly across the
frame, so detected faces move and a tracker must follow them.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np


def group_photo_bgr() -> np.ndarray:
    """insightface's t1.jpg (six faces), BGR uint8."""
    import insightface

    path = Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"
    img = cv2.imread(str(path))
    if img is None:
        raise FileNotFoundError(f"cannot read {path}")
    return img


def make_face_clip(
    path: str | Path,
    seconds: float = 2.0,
    fps: int = 15,
    size_wh: tuple[int, int] = (640, 360),
    shift_px: int = 40,
    gop: int | None = None,
) -> Path:
    """Write an H.264 clip of the group photo panning ``shift_px`` pixels to the right
    over the clip (yuv420p, constant frame rate, keyframe every ``gop`` frames)."""
    path = Path(path)
    photo = group_photo_bgr()
    w, h = size_wh
    scale = min((w + shift_px) / photo.shape[1], h / photo.shape[0])
    photo = cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)))
    canvas_w = max(w + shift_px, photo.shape[1])
    base = np.full((h, canvas_w, 3), 40, np.uint8)
    y0 = (h - photo.shape[0]) // 2
    base[y0 : y0 + photo.shape[0], : photo.shape[1]] = photo
    n = max(1, round(seconds * fps))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        stream.gop_size = gop or fps
        for i in range(n):
            x = round(shift_px * i / max(1, n - 1))
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(base[:, canvas_w - w - x : canvas_w - x]), format="bgr24"
            )
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_corrupt_file(path: str | Path, size: int = 4096, seed: int = 0) -> Path:
    """A file with an .mp4 name and random bytes: no demuxer can read it."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path
