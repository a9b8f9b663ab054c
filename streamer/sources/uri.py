"""Which kind of source a URI names, and how to show it without its password."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from configs.core.logs import redact_secrets

Kind = Literal["rtsp", "hls", "http", "network", "v4l2", "file"]

# Plain media files served over HTTP(S); other HTTP URLs (MJPEG / MPEG-TS camera endpoints,
# HLS playlists) are live. ".ts" is missing on purpose: HTTP MPEG-TS is usually a live feed.
HTTP_FILE_SUFFIXES = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".mpg", ".mpeg", ".wmv", ".3gp",
)  # fmt: skip
# Other network protocols FFmpeg can read that carry live streams.
LIVE_SCHEMES = ("rtmp", "rtmps", "srt", "udp", "rtp", "tcp")

_V4L2_DEVICE = re.compile(r"^/dev/video\d+$")


@dataclass(frozen=True)
class SourceTarget:
    """What ``open_source`` will open."""

    kind: Kind
    live: bool
    url: str
    """What FFmpeg opens (``v4l2:///dev/video0`` becomes ``/dev/video0``)."""
    format: str | None = None
    """FFmpeg input format to force (``"v4l2"``), or None to let FFmpeg probe."""


def classify_uri(uri: str) -> SourceTarget:
    """Decide the kind of source ``uri`` names (rules in docs/sources.md).

    Example:
        >>> classify_uri("rtsp://cam/stream").kind, classify_uri("v4l2:///dev/video0").url
        ('rtsp', '/dev/video0')
        >>> classify_uri("https://host/clip.mp4").live, classify_uri("https://h/a.m3u8").live
        (False, True)
    """
    if not uri:
        raise ValueError("source URI is empty")
    scheme, _, rest = uri.partition("://")
    scheme = scheme.lower() if rest else ""
    if scheme in ("rtsp", "rtsps"):
        return SourceTarget("rtsp", True, uri)
    if scheme in ("http", "https"):
        path = urlsplit(uri).path.lower()
        if path.endswith(".m3u8"):
            return SourceTarget("hls", True, uri)
        if path.endswith(HTTP_FILE_SUFFIXES):
            return SourceTarget("http", False, uri)
        return SourceTarget("http", True, uri)
    if scheme in LIVE_SCHEMES:
        return SourceTarget("network", True, uri)
    if scheme == "v4l2":
        return SourceTarget("v4l2", True, rest, format="v4l2")
    if _V4L2_DEVICE.match(uri):
        return SourceTarget("v4l2", True, uri, format="v4l2")
    return SourceTarget("file", False, uri)


def redact_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (for logs and published events); also
    for URIs no parser accepts (``configs.core.cli.redact_secrets`` does the work).

    Example:
        >>> redact_uri("rtsp://admin:secret@10.0.0.5:554/live")
        'rtsp://admin:***@10.0.0.5:554/live'
        >>> redact_uri("rtsp://admin:secret@[::1/live")
        'rtsp://admin:***@[::1/live'
    """
    return redact_secrets(uri)
