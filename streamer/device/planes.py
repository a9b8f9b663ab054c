"""Decoded 4:2:0 pictures uploaded to a torch device once per frame: one small copy (1.5
bytes per pixel instead of 3 for RGB), through pinned host buffers and a side CUDA stream
per uploading thread, so the copy of one frame overlaps the compute on others.

On the CPU the "upload" is a zero-copy view of the decoder's planes: the same code runs in
the tests.

Example (plain text: needs a decoded frame)::

    uploader = PlaneUploader(torch.device("cuda"))
    planes = uploader.planes(frame.image)      # Planes on the GPU (cached on the frame)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from streamer.device.colour import Planes
from streamer.frames import FrameImage

RING = 8
"""Pinned staging buffers per uploading thread (a buffer is reused once its copy is done)."""


@dataclass
class _Slot:
    buffer: torch.Tensor
    done: torch.cuda.Event | None = None


class _Staging(threading.local):
    """Per-thread pinned buffers and the thread's copy stream."""

    def __init__(self) -> None:
        self.slots: dict[tuple[int, int], list[_Slot]] = {}
        self.next: dict[tuple[int, int], int] = {}
        self.stream: torch.cuda.Stream | None = None


class PlaneUploader:
    """Puts each frame's planes on ``device`` (once per frame, any thread)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._staging = _Staging()

    def planes(self, image: FrameImage) -> Planes | None:
        """The picture's planes on the device; None when it is not 4:2:0 (the caller then
        uses the host path)."""
        return image.memo(("planes", str(self.device)), lambda: self._upload(image))

    def _upload(self, image: FrameImage) -> Planes | None:
        got = image.yuv_planes()
        if got is None:
            return None
        fmt, packed = got
        host = torch.from_numpy(packed)
        if self.device.type != "cuda":
            return Planes.from_packed(fmt, host.to(self.device))
        return Planes.from_packed(fmt, self._to_cuda(host))

    def _to_cuda(self, host: torch.Tensor) -> torch.Tensor:
        st = self._staging
        key = (int(host.shape[0]), int(host.shape[1]))
        if key not in st.slots:
            st.slots[key] = [_Slot(torch.empty(key, dtype=torch.uint8, pin_memory=True)) for _ in range(RING)]
            st.next[key] = 0
        if st.stream is None:
            st.stream = torch.cuda.Stream(self.device)
        i = st.next[key]
        st.next[key] = (i + 1) % RING
        slot = st.slots[key][i]
        if slot.done is not None:
            slot.done.synchronize()  # the buffer's previous copy has finished
        slot.buffer.copy_(host)
        with torch.cuda.stream(st.stream):
            dev = slot.buffer.to(self.device, non_blocking=True)
            slot.done = torch.cuda.Event()
            slot.done.record(st.stream)
        # Consumers run on the default stream: order them after the copy, and tell the
        # allocator the tensor is used there.
        torch.cuda.default_stream(self.device).wait_event(slot.done)
        dev.record_stream(torch.cuda.default_stream(self.device))
        return dev
