"""Decoded frames as they travel between the streamer's stages.

A ``Frame`` keeps the decoder's own picture (usually YUV 4:2:0) and converts only what a
stage asks for: a small BGR image for the detector (scaled and converted in one swscale
pass) and RGB face regions for the engine. Full-frame RGB conversion costs ~4x decoding a
1080p frame (docs/BENCHMARKS.md); this module never does it for 4:2:0 input.

Pictures can be prepared ahead, off the detection thread: ``prepare_bgr`` (the source's
decode thread calls it through the pipeline's frame path, ``streamer.device``) caches the
detector's picture (``keep_device_bgr`` one made on a torch device), and ``memo`` keeps any
other per-frame result (device planes) once.

Example:
    >>> img = FrameImage.from_bgr(np.zeros((720, 1280, 3), np.uint8))  # decoders give FrameImage.from_av
    >>> img.to_bgr((640, 360)).shape             # detector input
    (360, 640, 3)
    >>> img.region_rgb(100, 80, 260, 240).shape   # one face region, RGB
    (160, 160, 3)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

_I420 = ("yuv420p", "yuvj420p")
PLANAR_FORMATS = (*_I420, "nv12")
"""Decoder formats whose planes ``yuv_planes`` returns (4:2:0; nv12 is what NVDEC gives)."""


class FrameImage:
    """One picture, converted lazily and only where needed. Thread-safe for readers."""

    def __init__(self, *, av_frame: Any = None, bgr: np.ndarray | None = None) -> None:
        if (av_frame is None) == (bgr is None):
            raise ValueError("FrameImage needs exactly one of av_frame or bgr")
        if bgr is not None and (bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3):
            raise ValueError(f"bgr must be uint8 [H, W, 3], got {bgr.dtype} {bgr.shape}")
        self._av = av_frame
        self._bgr = bgr
        self._yuv: np.ndarray | None = None
        self._rgb: np.ndarray | None = None
        self._lock = threading.Lock()
        self._memo: dict[Hashable, Any] = {}
        self._memo_lock = threading.RLock()

    @classmethod
    def from_av(cls, frame: Any) -> FrameImage:
        return cls(av_frame=frame)

    @classmethod
    def from_bgr(cls, bgr: np.ndarray) -> FrameImage:
        return cls(bgr=bgr)

    @property
    def size_wh(self) -> tuple[int, int]:
        if self._bgr is not None:
            return self._bgr.shape[1], self._bgr.shape[0]
        return self._av.width, self._av.height

    @property
    def format(self) -> str:
        return "bgr24" if self._bgr is not None else self._av.format.name

    def memo(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """``make()`` once per ``key`` for this picture (thread-safe); later calls return it."""
        with self._memo_lock:
            if key not in self._memo:
                self._memo[key] = make()
            return self._memo[key]

    def prepared(self, key: Hashable) -> Any:
        """What ``memo`` holds for ``key``, or None."""
        with self._memo_lock:
            return self._memo.get(key)

    def to_bgr(self, size_wh: tuple[int, int] | None = None) -> np.ndarray:
        """BGR uint8 [H, W, 3], scaled to ``size_wh`` (scaling and conversion in one pass;
        the one ``prepare_bgr`` made, when it was called for this size)."""
        w, h = size_wh or self.size_wh
        if self._bgr is not None:
            if (w, h) == self.size_wh:
                return self._bgr
            return cv2.resize(self._bgr, (w, h), interpolation=cv2.INTER_AREA)
        ready = self.prepared(("bgr", w, h))
        if ready is not None:
            return ready
        return self._av.reformat(width=w, height=h, format="bgr24", interpolation="BILINEAR").to_ndarray()

    def prepare_bgr(self, size_wh: tuple[int, int]) -> np.ndarray:
        """``to_bgr(size_wh)``, computed now and kept (the decode thread calls it)."""
        return self.memo(("bgr", *size_wh), lambda: self.to_bgr(size_wh))

    def keep_device_bgr(self, size_wh: tuple[int, int], make: Callable[[], Any]) -> Any:
        """``make()``, the detector's picture at ``size_wh`` made on a torch device (the device
        frame path calls it on the decode thread), computed now and kept for ``device_bgr``."""
        return self.memo(("device_bgr", *size_wh), make)

    def device_bgr(self, size_wh: tuple[int, int]) -> Any:
        """The torch uint8 BGR [h, w, 3] picture ``keep_device_bgr`` kept for ``size_wh``, or None."""
        return self.prepared(("device_bgr", *size_wh))

    def yuv_planes(self) -> tuple[str, np.ndarray] | None:
        """The decoder's own 4:2:0 picture without conversion: (format, uint8 [H * 3/2, W]),
        I420 (Y, then U, then V) for yuv420p/yuvj420p, Y then interleaved UV for nv12; None
        for other formats, odd sizes or BGR input. Cached."""
        w, h = self.size_wh
        if self._bgr is not None or self._av.format.name not in PLANAR_FORMATS or w % 2 or h % 2:
            return None
        if self._av.format.name == "nv12":
            return "nv12", self.memo("nv12", lambda: self._av.to_ndarray())
        yuv = self._planes()
        assert yuv is not None
        return "i420", yuv

    def _planes(self) -> np.ndarray | None:
        """The I420 picture as [H * 3/2, W] (cached), or None when not 4:2:0 with even size."""
        w, h = self.size_wh
        if self._bgr is not None or self._av.format.name not in _I420 or w % 2 or h % 2:
            return None
        with self._lock:
            if self._yuv is None:
                self._yuv = self._av.to_ndarray(format="yuv420p")
            return self._yuv

    def _full_rgb(self) -> np.ndarray:
        """Full-frame RGB, only for inputs that are not 4:2:0 (cached)."""
        with self._lock:
            if self._rgb is None:
                if self._bgr is not None:
                    self._rgb = cv2.cvtColor(self._bgr, cv2.COLOR_BGR2RGB)
                else:
                    self._rgb = self._av.to_ndarray(format="rgb24")
            return self._rgb

    def region_rgb(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """RGB uint8 pixels of the box [x0, x1) x [y0, y1), clipped to the picture.

        Raises ValueError when the clipped box is empty.
        """
        w, h = self.size_wh
        x0, y0 = max(0, int(x0)), max(0, int(y0))
        x1, y1 = min(w, int(x1)), min(h, int(y1))
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise ValueError(f"empty region ({x0}, {y0}, {x1}, {y1}) in a {w}x{h} picture")
        yuv = self._planes()
        if yuv is None:
            return np.ascontiguousarray(self._full_rgb()[y0:y1, x0:x1])
        # 4:2:0 chroma is subsampled 2x2: align the box to even coordinates.
        x0, y0 = x0 & ~1, y0 & ~1
        x1, y1 = min(w, (x1 + 1) & ~1), min(h, (y1 + 1) & ~1)
        flat_yuv = yuv.reshape(-1)
        n_y, n_c = w * h, (w // 2) * (h // 2)
        y_plane = flat_yuv[:n_y].reshape(h, w)
        u_plane = flat_yuv[n_y : n_y + n_c].reshape(h // 2, w // 2)
        v_plane = flat_yuv[n_y + n_c : n_y + 2 * n_c].reshape(h // 2, w // 2)
        cw, ch = x1 - x0, y1 - y0
        buf = np.empty((ch * 3 // 2, cw), np.uint8)
        buf[:ch] = y_plane[y0:y1, x0:x1]
        u = u_plane[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2].reshape(-1)
        v = v_plane[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2].reshape(-1)
        flat = buf[ch:].reshape(-1)
        flat[: u.size] = u
        flat[u.size :] = v
        return cv2.cvtColor(buf, cv2.COLOR_YUV2RGB_I420)


@dataclass(frozen=True)
class Frame:
    """One decoded frame of one stream."""

    stream_id: str
    index: int
    """0-based count of frames decoded from this stream (dropped frames included)."""
    pts_s: float | None
    """Presentation time in seconds (None when the container gives none)."""
    wall_time_s: float
    """``time.time()`` when the frame was decoded (latency is measured from it)."""
    image: FrameImage

    def __post_init__(self) -> None:
        if not self.stream_id:
            raise ValueError("Frame.stream_id must be non-empty")
        if self.index < 0:
            raise ValueError(f"Frame.index must be >= 0, got {self.index}")

    @property
    def size_wh(self) -> tuple[int, int]:
        return self.image.size_wh
