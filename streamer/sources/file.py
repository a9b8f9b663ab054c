"""Video files (and plain media files over HTTP): decoded as fast as the consumer reads them,
or at their native rate (``realtime``), once or in a loop."""

from __future__ import annotations

import logging
import time
from typing import Any

from configs.sources import SourceSettings
from streamer.base import EventCallback
from streamer.sources.decoding import (
    STREAM_ERRORS,
    decoded_frames,
    describe_error,
    open_input,
    stream_details,
    video_stream,
)
from streamer.sources.threaded import ThreadedSource
from streamer.sources.uri import SourceTarget, redact_uri

log = logging.getLogger(__name__)


class FileSource(ThreadedSource):
    """A finite source. Not live: with a full queue the decoder waits (backpressure), unless
    ``settings.realtime``, which paces frames at the clip's rate and drops the oldest when
    the consumer falls behind, like a camera.

    Events: "started" once opened; "ended" at the end of the file (or of ``stop()``);
    "failed" when it cannot be opened, has no video, or no frame of it decodes.
    """

    def __init__(
        self,
        target: SourceTarget,
        stream_id: str,
        settings: SourceSettings,
        on_event: EventCallback,
    ) -> None:
        super().__init__(target.url, stream_id, settings, on_event, live=False)
        self._target = target

    def _run(self) -> None:
        pts_offset_s = 0.0
        passes = 0
        while not self.stopping:
            try:
                container = open_input(self._target, self.settings)
            except STREAM_ERRORS as e:
                self._fail(f"cannot open {redact_uri(self.uri)}: {describe_error(e)}")
                return
            try:
                with container:
                    stream = video_stream(container, self.settings, live=False)
                    if passes == 0:
                        self._emit("started", **stream_details(stream))
                    decoded, next_pts_s = self._play(container, stream, pts_offset_s)
            except STREAM_ERRORS as e:
                self._fail(f"cannot decode {redact_uri(self.uri)}: {describe_error(e)}")
                return
            passes += 1
            if decoded == 0 and not self.stopping:
                last = self.stats.last_error or "the file holds no decodable frame"
                self._fail(f"no frame decoded from {redact_uri(self.uri)} ({last})")
                return
            if not self.settings.loop:
                break
            pts_offset_s = next_pts_s
        if not self.stopping:
            self._finish("ended", "end of file", passes=passes)

    def _play(self, container: Any, stream: Any, pts_offset_s: float) -> tuple[int, float]:
        """Decode one pass; returns (frames decoded, pts where a next pass should start)."""
        rate = stream.average_rate or stream.guessed_rate
        frame_s = 1.0 / float(rate) if rate else 0.0
        decoded = 0
        next_pts_s = pts_offset_s
        clock: tuple[float, float] | None = None  # (monotonic, media time) of the first frame
        for av_frame in decoded_frames(container, stream, lambda: self.stopping, self._on_decode_error, self.stats):
            media_s = av_frame.time if av_frame.time is not None else next_pts_s - pts_offset_s
            if self.settings.realtime:
                if clock is None:
                    clock = (time.monotonic(), media_s)
                wait_s = clock[0] + (media_s - clock[1]) - time.monotonic()
                if wait_s > 0 and self._stop_requested.wait(wait_s):
                    break
            decoded += 1
            next_pts_s = pts_offset_s + media_s + frame_s
            if not self._deliver(av_frame, pts_offset_s):
                break
        return decoded, next_pts_s

    def _on_decode_error(self, e: Exception) -> None:
        self.stats.decode_errors += 1
        self.stats.last_error = describe_error(e)
        log.debug("source %s: skipped a packet: %s", self.stream_id, self.stats.last_error)

    def _fail(self, reason: str) -> None:
        self.stats.last_error = reason
        self._finish("failed", reason)
