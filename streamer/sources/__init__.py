"""Video sources: files, RTSP, HLS/HTTP and V4L2 cameras decoded by PyAV, one thread each.

Example (plain text: needs a camera)::

    from configs.sources import SourceSettings
    from streamer.sources import open_source
    src = open_source("rtsp://10.0.0.5/live", "door", SourceSettings(), print)
    src.start()
    frame = src.read(timeout=1.0)
    src.stop()
"""

from streamer.sources.backoff import Backoff, backoff_delay
from streamer.sources.factory import open_source
from streamer.sources.file import FileSource
from streamer.sources.live import LiveSource
from streamer.sources.threaded import ThreadedSource
from streamer.sources.uri import SourceTarget, classify_uri, redact_uri

__all__ = [
    "Backoff",
    "FileSource",
    "LiveSource",
    "SourceTarget",
    "ThreadedSource",
    "backoff_delay",
    "classify_uri",
    "open_source",
    "redact_uri",
]
