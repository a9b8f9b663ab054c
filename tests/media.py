"""Test media made on the fly: real faces from insightface's bundled group photo.

``make_face_clip`` writes an H.264 MP4 in which the six-face photo pans slowly across the
frame, so detected faces move and a tracker must follow them. It is the demo clip's writer
(``streamer.sources.demo``) with test-sized defaults.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamer.sources.demo import group_photo_bgr, write_pan_clip

__all__ = ["concat_files", "group_photo_bgr", "make_corrupt_file", "make_face_clip", "truncate_file", "write_video"]


def make_face_clip(
    path: str | Path,
    seconds: float = 2.0,
    fps: int = 15,
    size_wh: tuple[int, int] = (640, 360),
    shift_px: int = 40,
    gop: int | None = None,
) -> Path:
    """Write an H.264 clip of the group photo panning ``shift_px`` pixels to the right
    over the clip (yuv420p, constant frame rate, no B-frames, keyframe every ``gop`` frames)."""
    return write_pan_clip(path, seconds, fps, size_wh, shift_px, there_and_back=False, gop=gop, low_latency=True)


def make_corrupt_file(path: str | Path, size: int = 4096, seed: int = 0) -> Path:
    """A file with an .mp4 name and random bytes: no demuxer can read it."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def write_video(
    path: str | Path,
    frames: int = 15,
    size_wh: tuple[int, int] = (64, 48),
    *,
    fps: int = 15,
    container: str | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    start_s: float = 0.0,
    jump_at: int | None = None,
    jump_s: float = 0.0,
    faststart: bool = False,
) -> Path:
    """A small synthetic clip (a bright bar moving over grey) with chosen timestamps: frame
    ``i`` is stamped ``start_s + i / fps``, plus ``jump_s`` from frame ``jump_at`` on.
    ``faststart`` puts an MP4's index first (so a cut file still opens)."""
    path = Path(path)
    w, h = size_wh
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format=container, options=options) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(frames):
            img = np.full((h, w, 3), 90, np.uint8)
            img[:, (7 * i) % w] = 255
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            jumped = jump_at is not None and i >= jump_at
            frame.pts = round((start_s + (jump_s if jumped else 0.0)) * fps) + i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def concat_files(path: str | Path, *parts: Path) -> Path:
    """The bytes of ``parts`` one after the other (MPEG-TS pieces play as one stream)."""
    path = Path(path)
    path.write_bytes(b"".join(Path(p).read_bytes() for p in parts))
    return path


def truncate_file(src: str | Path, dest: str | Path, fraction: float) -> Path:
    """The first ``fraction`` of ``src``'s bytes (``head -c``)."""
    data = Path(src).read_bytes()
    dest = Path(dest)
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest
