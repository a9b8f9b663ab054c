"""The PyAV calls every source shares: open, pick the video stream, decode packet by packet."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import av
import av.error

from configs.core.errors import SourceError
from configs.core.logs import redact_secrets
from configs.sources import SourceSettings
from streamer.device.hwaccel import hwaccel_for, software_fallback
from streamer.sources.uri import SourceTarget
from streamer.values import SourceStats

log = logging.getLogger(__name__)

# After this many packets in a row the decoder rejects, the stream counts as broken.
MAX_CONSECUTIVE_DECODE_ERRORS = 50


class NoVideoStreamError(SourceError):
    """The input opened but holds no video stream."""


class BrokenStreamError(SourceError):
    """The decoder rejected too many packets in a row."""


# What opening and reading a stream can raise (PyAV's own errors subclass FFmpegError; OSError
# covers failures outside FFmpeg, e.g. a device node that vanished).
STREAM_ERRORS: tuple[type[Exception], ...] = (av.error.FFmpegError, OSError, SourceError)
# The server refused the login (RTSP and HTTP alike): retrying with the same URI cannot help.
AUTH_ERRORS: tuple[type[Exception], ...] = (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError)


def describe_error(e: BaseException) -> str:
    """A one-line reason naming the error, for events and logs.

    FFmpeg errors drop the URL PyAV appends to their text; any other URL in the text has its
    password redacted.
    """
    if isinstance(e, av.error.FFmpegError) and e.strerror:
        return f"{type(e).__name__}: {e.strerror}"
    return redact_secrets(f"{type(e).__name__}: {e}")


def input_options(target: SourceTarget, settings: SourceSettings) -> dict[str, str]:
    """FFmpeg demuxer/protocol options for ``target``.

    RTSP: chosen transport, socket timeout (microseconds), video only, and fast open
    (``analyzeduration=0, probesize=32`` cut opening from ~1.1 s to ~0.05 s; the SDP already
    carries the H.264 parameters). HTTP/HLS: socket timeout. Other live protocols get only
    the PyAV-level timeouts (``open_input``), since FFmpeg's ``timeout`` means different
    things per protocol (for RTMP it even means "listen").
    """
    read_us = str(round(settings.read_timeout_s * 1e6))
    if target.kind == "rtsp":
        return {
            "rtsp_transport": settings.rtsp_transport,
            "timeout": read_us,
            "allowed_media_types": "video",
            "analyzeduration": "0",
            "probesize": "32",
        }
    if target.kind in ("http", "hls"):
        return {"timeout": read_us}
    return {}


def open_input(target: SourceTarget, settings: SourceSettings) -> Any:
    """Open ``target`` for reading. Network and live inputs get PyAV's open/read timeouts,
    which also interrupt a peer that accepts the connection and then goes silent.
    ``sources.hwaccel`` asks for hardware decoding, with a logged fallback to software."""
    remote = target.live or target.kind != "file"
    timeout = (settings.open_timeout_s, settings.read_timeout_s) if remote else None
    kwargs: dict[str, Any] = {"format": target.format, "options": input_options(target, settings), "timeout": timeout}
    hw = hwaccel_for(settings.hwaccel)
    if hw is not None:
        try:
            return av.open(target.url, mode="r", hwaccel=hw, **kwargs)
        except av.error.FFmpegError as e:  # no usable device: decode in software (logged once)
            software_fallback(settings.hwaccel, e)
    return av.open(target.url, mode="r", **kwargs)


def video_stream(container: Any, settings: SourceSettings, *, live: bool) -> Any:
    """The first video stream, with its decoder threads configured.

    Files use frame + slice threads (throughput); live sources keep PyAV's slice threading,
    because frame threading holds back one frame per thread (latency).
    """
    if not container.streams.video:
        raise NoVideoStreamError(f"no video stream in {container.name!r}")
    stream = container.streams.video[0]
    stream.codec_context.thread_count = settings.decode_threads
    if not live:
        stream.codec_context.thread_type = "AUTO"
    return stream


def stream_details(stream: Any) -> dict[str, Any]:
    """JSON-able facts about a video stream for the "started" event."""
    ctx = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate
    return {
        "codec": ctx.name,
        "size_wh": [ctx.width, ctx.height],
        "fps": float(rate) if rate else None,
    }


@dataclass
class DemuxCounts:
    """What the demuxer handed over in one pass (for telling a truncated file)."""

    packets: int = 0
    """Packets with data (the final empty flush packet is not counted)."""
    corrupt: int = 0
    """Packets the demuxer flagged corrupt (e.g. cut short by the end of the file)."""
    last_corrupt: bool = False
    """The last packet with data was flagged corrupt: the input ends inside it."""

    def truncated(self, indexed_frames: int) -> bool:
        """The input ended early: its last packet was cut, or it holds fewer packets than
        its index (``indexed_frames``, 0 when the container has none) promises."""
        return self.last_corrupt or 0 < self.packets < indexed_frames


def decoded_frames(
    container: Any,
    stream: Any,
    should_stop: Callable[[], bool],
    on_decode_error: Callable[[Exception], None],
    stats: SourceStats | None = None,
    counts: DemuxCounts | None = None,
) -> Iterator[Any]:
    """Yield the stream's decoded frames until the input ends or ``should_stop()``.

    A packet the decoder rejects is reported to ``on_decode_error`` and skipped (one bad
    frame must not end a stream); ``MAX_CONSECUTIVE_DECODE_ERRORS`` in a row raise
    ``BrokenStreamError``. Demuxer errors (lost connection, timeout) propagate. With
    ``stats``, the time spent decoding is added to ``stats.decode_s``; ``counts``, when
    given, tallies the packets.
    """
    consecutive = 0
    for packet in container.demux(stream):
        if should_stop():
            return
        if counts is not None and packet.size:
            counts.packets += 1
            counts.last_corrupt = packet.is_corrupt
            counts.corrupt += packet.is_corrupt
        t0 = time.perf_counter()
        try:
            frames = packet.decode()
        except av.error.FFmpegError as e:
            consecutive += 1
            on_decode_error(e)
            if consecutive >= MAX_CONSECUTIVE_DECODE_ERRORS:
                raise BrokenStreamError(
                    f"{consecutive} packets in a row failed to decode; last: {describe_error(e)}"
                ) from e
            continue
        finally:
            if stats is not None:
                stats.decode_s += time.perf_counter() - t0
        consecutive = 0
        yield from frames
