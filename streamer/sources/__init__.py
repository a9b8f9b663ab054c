"""Video sources: files, RTSP, HLS/HTTP and V4L2 cameras decoded by PyAV, one thread each.

Example:
    >>> from streamer.sources import SourceSettings, open_source
    >>> src = open_source("rtsp://10.0.0.5/live", "door", SourceSettings(), print)
    >>> src.start()  # doctest: +SKIP
    >>> frame = src.read(timeout=1.0)  # doctest: +SKIP
    >>> src.stop()  # doctest: +SKIP
"""

from streamer.frames import Frame, FrameImage
from streamer.sources.backoff import Backoff, backoff_delay
from streamer.sources.base import EventCallback, Source, SourceStats, StreamEvent
from streamer.sources.buffer import FrameBuffer
from streamer.sources.factory import open_source
from streamer.sources.file import FileSource
from streamer.sources.live import LiveSource
from streamer.sources.settings import SourceSettings
from streamer.sources.uri import SourceTarget, classify_uri, redact_uri

__all__ = [
    "Backoff",
    "EventCallback",
    "FileSource",
    "Frame",
    "FrameBuffer",
    "FrameImage",
    "LiveSource",
    "Source",
    "SourceSettings",
    "SourceStats",
    "SourceTarget",
    "StreamEvent",
    "backoff_delay",
    "classify_uri",
    "open_source",
    "redact_uri",
]
