"""Video files (and plain media files over HTTP): decoded as fast as the consumer reads them,
or at their native rate (``realtime``), once or in a loop.

Timestamps are the file's own: a jump forward or backward beyond ``discontinuity_s`` is a
"discontinuity" event (the frames go on, ``pts_s`` as the file has it) and realtime pacing
restarts from the new timestamp, so a file that jumps +1000 s does not stall.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from configs.sources import SourceSettings
from streamer.sources.decoding import (
    STREAM_ERRORS,
    DemuxCounts,
    decoded_frames,
    describe_error,
    open_input,
    stream_details,
    video_stream,
)
from streamer.sources.threaded import FramePrep, ThreadedSource
from streamer.sources.uri import SourceTarget, redact_uri
from streamer.values import EventCallback

log = logging.getLogger(__name__)


@dataclass
class _Pass:
    """One pass over the file."""

    decoded: int = 0
    next_pts_s: float = 0.0
    """Where the next pass's timestamps start (looping)."""
    indexed_frames: int = 0
    """Frames the container's index declares (0 without an index)."""
    counts: DemuxCounts = field(default_factory=DemuxCounts)


class FileSource(ThreadedSource):
    """A finite source. Not live: with a full queue the decoder waits (backpressure), unless
    ``settings.realtime``, which paces frames at the clip's rate and drops the oldest when
    the consumer falls behind, like a camera.

    Events: "started" once opened; "discontinuity" when timestamps jump; "ended" at the end
    of the file (or of ``stop()``), with ``details.truncated`` true when the file ends early
    (its last packet cut short, or fewer packets than its index declares); "failed" when it
    cannot be opened, has no video, or no frame of it decodes.
    """

    def __init__(
        self,
        target: SourceTarget,
        stream_id: str,
        settings: SourceSettings,
        on_event: EventCallback,
        *,
        prepare: FramePrep | None = None,
    ) -> None:
        super().__init__(target.url, stream_id, settings, on_event, live=False, prepare=prepare)
        self._target = target

    def _run(self) -> None:
        pts_offset_s = 0.0
        passes = 0
        played = _Pass()
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
                    played = self._play(container, stream, pts_offset_s)
            except STREAM_ERRORS as e:
                self._fail(f"cannot decode {redact_uri(self.uri)}: {describe_error(e)}")
                return
            passes += 1
            if played.decoded == 0 and not self.stopping:
                last = self.stats.last_error or "the file holds no decodable frame"
                self._fail(f"no frame decoded from {redact_uri(self.uri)} ({last})")
                return
            if not self.settings.loop:
                break
            pts_offset_s = played.next_pts_s
        if not self.stopping:
            self._end(passes, played)

    def _end(self, passes: int, played: _Pass) -> None:
        if played.counts.truncated(played.indexed_frames):
            expected = f" of {played.indexed_frames}" if played.indexed_frames else ""
            reason = f"end of file: truncated ({played.counts.packets}{expected} packets)"
            self._finish("ended", reason, passes=passes, truncated=True, decode_errors=self.stats.decode_errors)
        else:
            self._finish("ended", "end of file", passes=passes, truncated=False, decode_errors=self.stats.decode_errors)

    def _play(self, container: Any, stream: Any, pts_offset_s: float) -> _Pass:
        """Decode one pass; realtime files wait for each frame's time (at most
        ``discontinuity_s``; a jump restarts the clock)."""
        rate = stream.average_rate or stream.guessed_rate
        frame_s = 1.0 / float(rate) if rate else 0.0
        gap_s = self.settings.discontinuity_s
        played = _Pass(next_pts_s=pts_offset_s, indexed_frames=max(0, stream.frames or 0))
        clock: tuple[float, float] | None = None  # (monotonic, media time) pacing starts from
        prev_s: float | None = None
        frames = decoded_frames(
            container, stream, lambda: self.stopping, self._on_decode_error, self.stats, played.counts
        )
        for av_frame in frames:
            media_s = av_frame.time if av_frame.time is not None else played.next_pts_s - pts_offset_s
            if prev_s is not None and not 0.0 <= media_s - prev_s <= gap_s:
                self._discontinuity(prev_s + pts_offset_s, media_s + pts_offset_s)
                clock = None
            prev_s = media_s
            if self.settings.realtime:
                if clock is None:
                    clock = (time.monotonic(), media_s)
                wait_s = min(gap_s, clock[0] + (media_s - clock[1]) - time.monotonic())
                if wait_s > 0 and self._stop_requested.wait(wait_s):
                    break
            played.decoded += 1
            played.next_pts_s = pts_offset_s + media_s + frame_s
            if not self._deliver(av_frame, pts_offset_s):
                break
        return played

    def _discontinuity(self, from_s: float, to_s: float) -> None:
        self.stats.discontinuities += 1
        jump_s = to_s - from_s
        self._emit(
            "discontinuity",
            f"timestamps jumped {jump_s:+.3f} s",
            pts_from_s=round(from_s, 6),
            pts_to_s=round(to_s, 6),
            jump_s=round(jump_s, 6),
        )

    def _on_decode_error(self, e: Exception) -> None:
        self.stats.decode_errors += 1
        self.stats.last_error = describe_error(e)
        log.debug("source %s: skipped a packet: %s", self.stream_id, self.stats.last_error)

    def _fail(self, reason: str) -> None:
        self.stats.last_error = reason
        self._finish("failed", reason)
