"""``open_source``: the one way the streamer makes a source from a URI."""

from __future__ import annotations

from configs.sources import SourceSettings
from streamer.base import Source
from streamer.sources.file import FileSource
from streamer.sources.live import LiveSource
from streamer.sources.threaded import FramePrep
from streamer.sources.uri import classify_uri
from streamer.values import EventCallback


def open_source(
    uri: str, stream_id: str, settings: SourceSettings, on_event: EventCallback, *, prepare: FramePrep | None = None
) -> Source:
    """Make the right source for ``uri``; nothing is opened until ``start()``.

    Live: ``rtsp://``, ``rtsps://``, HLS (``http(s)://...m3u8``), other ``http(s)://`` URLs
    except plain media files (``.mp4``, ``.mkv``, ...), ``rtmp://``, ``srt://``, ``udp://``,
    ``rtp://``, ``tcp://``, and V4L2 cameras (``/dev/videoN``, ``v4l2:///dev/videoN``).
    Anything else is a file (or other input) FFmpeg reads, not live.

    Args:
        uri: What to read.
        stream_id: Name of the stream in frames and events (non-empty).
        settings: Timeouts, reconnect policy, queue size, file pacing.
        on_event: Called from the source's thread with each ``StreamEvent``; exceptions it
            raises are logged and ignored.
        prepare: Called on the source's thread with each frame before it is queued (the
            pipeline's ``FramePath.prepare``); exceptions it raises are logged and ignored.

    Returns:
        A started-on-demand ``Source``; it never raises once started.

    Raises:
        ValueError: ``uri`` or ``stream_id`` is empty.

    Example:
        >>> src = open_source("rtsp://10.0.0.5/live", "door", SourceSettings(), print)
        >>> src.live
        True
    """
    target = classify_uri(uri)
    if target.live:
        return LiveSource(target, stream_id, settings, on_event, prepare=prepare)
    return FileSource(target, stream_id, settings, on_event, prepare=prepare)
