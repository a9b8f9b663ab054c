"""The ``sources`` section: how video sources open, time out, reconnect and buffer (docs/sources.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from configs.base import StrictSettings


class SourceSettings(StrictSettings):
    """Settings shared by every source of a streamer (see docs/sources.md).

    Example:
        >>> s = SourceSettings(max_reconnects=3, queue_size=2)
        >>> s.rtsp_transport, s.max_reconnects
        ('tcp', 3)
    """

    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    """RTSP lower transport. TCP (interleaved) survives NAT and loses no packets; UDP has
    lower latency on a clean LAN but shows losses as broken frames."""

    open_timeout_s: float = Field(5.0, gt=0, le=300)
    """Seconds a live source may take to connect and read the stream headers."""

    read_timeout_s: float = Field(5.0, gt=0, le=300)
    """Seconds of silence after which a live source counts as disconnected. Also bounds how
    long ``stop()`` can wait for a source stuck in a silent connection."""

    reconnect: bool = True
    """Live sources: reconnect after a disconnect. When False a disconnect ends the source
    ("ended" after a normal end of stream, "failed" after an error)."""

    backoff_initial_s: float = Field(0.5, gt=0, le=60)
    """Delay before the first reconnect attempt of an outage; doubles with each attempt."""

    backoff_max_s: float = Field(30.0, gt=0, le=3600)
    """Cap on the doubling delay (applied before jitter)."""

    backoff_jitter: float = Field(0.25, ge=0, le=1)
    """Random spread of each delay as a fraction: the delay is drawn uniformly from
    ``[d * (1 - jitter), d * (1 + jitter)]``, so many cameras behind one failed switch do not
    reconnect in lockstep."""

    max_reconnects: int | None = Field(None, ge=0, le=1_000_000)
    """Consecutive failed reconnect attempts allowed per outage before the source "failed";
    the count restarts once frames flow again. None = retry forever."""

    queue_size: int = Field(4, ge=1, le=1024)
    """Frames buffered per source. Live sources (and realtime files) drop the OLDEST frame
    when full and count it; other files block the decoder instead (backpressure)."""

    realtime: bool = False
    """Files: deliver frames at the clip's native rate (like a camera) instead of as fast as
    the consumer takes them."""

    discontinuity_s: float = Field(5.0, gt=0, le=3600)
    """Files: a timestamp step beyond this many seconds forward (or any step backward) is a
    discontinuity: a "discontinuity" event, and realtime pacing restarts from the new
    timestamp instead of waiting for it. Also the longest a realtime file waits for one frame."""

    loop: bool = False
    """Files: restart at the end instead of ending (demo / benchmark). ``pts_s`` keeps
    increasing across passes; ``index`` always does."""

    decode_threads: int = Field(0, ge=0, le=64)
    """Decoder threads per source; 0 lets FFmpeg choose."""

    hwaccel: Literal["none", "auto", "cuda"] = "none"
    """Hardware decoding through PyAV/FFmpeg: auto or cuda = NVDEC where the loaded FFmpeg
    offers it (frames come back as nv12); when it cannot open, decoding falls back to
    software and the log says so once."""

    @model_validator(mode="after")
    def _check_backoff(self) -> SourceSettings:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s ({self.backoff_max_s}) must be >= backoff_initial_s ({self.backoff_initial_s})"
            )
        return self
