"""Test media made on the fly: real faces from insightface's bundled group photo.

``make_face_clip`` writes an H.264 MP4 in which the six-face photo pans slowly across the
frame, so detected faces move and a tracker must follow them. It is the demo clip's writer
(``streamer.demo``) with test-sized defaults.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamer.demo import group_photo_bgr, write_pan_clip

__all__ = ["group_photo_bgr", "make_corrupt_file", "make_face_clip"]


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
