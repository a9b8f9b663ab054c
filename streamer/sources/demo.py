"""The built-in sample source for ``streamer run --demo`` and ``streamer bench``: a clip of
insightface's bundled group photo (six faces) panning across a 720p frame, generated on
first use and cached under ``~/.cache/expstream/demo/``.

Example:
    >>> path = demo_clip()            # ~/.cache/expstream/demo/group-1280x720-30fps-10s.mp4
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import av
import cv2
import numpy as np

log = logging.getLogger(__name__)

DEFAULT_CACHE = "~/.cache/expstream"


def group_photo_bgr() -> np.ndarray:
    """insightface's ``t1.jpg`` (six faces), BGR uint8."""
    try:
        import insightface  # ~2 s to import: only the demo clip needs its sample photo
    except ImportError as e:
        raise ImportError("the demo clip is made from insightface's sample photo: pip install insightface") from e
    path = Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"
    img = cv2.imread(str(path))
    if img is None:
        raise FileNotFoundError(f"cannot read insightface's sample photo {path}")
    return img


def write_pan_clip(
    path: str | Path,
    seconds: float = 10.0,
    fps: int = 30,
    size_wh: tuple[int, int] = (1280, 720),
    shift_px: int = 120,
    *,
    there_and_back: bool = True,
    gop: int | None = None,
    low_latency: bool = False,
) -> Path:
    """Write an H.264 (yuv420p) clip of the group photo panning ``shift_px`` to the right
    and, with ``there_and_back``, back again (so it can loop); a keyframe every ``gop``
    frames (default: one per second); ``low_latency`` encodes without B-frames."""
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
    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = (
            {"preset": "ultrafast", "tune": "zerolatency"} if low_latency else {"preset": "veryfast", "crf": "23"}
        )
        stream.gop_size = gop or fps
        for i in range(n):
            phase = i / max(1, n - 1)
            x = round(shift_px * (1 - abs(2 * phase - 1)) if there_and_back else shift_px * phase)
            view = np.ascontiguousarray(base[:, canvas_w - w - x : canvas_w - x])
            for packet in stream.encode(av.VideoFrame.from_ndarray(view, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)
    return path


def demo_clip(
    cache_dir: str | Path = DEFAULT_CACHE, seconds: float = 10.0, fps: int = 30, size_wh: tuple[int, int] = (1280, 720)
) -> Path:
    """The cached demo clip, made on first use."""
    folder = Path(cache_dir).expanduser() / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"group-{size_wh[0]}x{size_wh[1]}-{fps}fps-{seconds:g}s.mp4"
    if not path.is_file():
        log.info("making the demo clip %s (once)", path)
        write_pan_clip(path, seconds, fps, size_wh)
    return path
