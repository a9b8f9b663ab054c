"""The service's extra endpoints: ``snapshot`` (state for late joiners, the ZeroMQ Guide's
Clone pattern) and ``control`` (live prompt, head and source changes). Both are off by
default and bind loopback addresses when turned on (docs/messages.md).

Example:
    >>> SnapshotSettings().endpoint is None, ControlSettings(endpoint="tcp://127.0.0.1:5558").endpoint
    (True, 'tcp://127.0.0.1:5558')
"""

from __future__ import annotations

from pydantic import Field, field_validator

from configs.base import StrictSettings
from configs.streamer import check_endpoint


def _endpoint(value: str | None) -> str | None:
    return None if value is None else check_endpoint(value)


class SnapshotSettings(StrictSettings):
    """A ROUTER socket answering "what is the state now" with every active stream and track
    and the ``seq`` per topic the answer is consistent with."""

    endpoint: str | None = None
    """Where to bind it, e.g. tcp://127.0.0.1:5557; null = off."""

    @field_validator("endpoint")
    @classmethod
    def _check(cls, v: str | None) -> str | None:
        return _endpoint(v)


class ControlSettings(StrictSettings):
    """A REP socket taking JSON requests: new prompts or head, add or remove a source, status."""

    endpoint: str | None = None
    """Where to bind it, e.g. tcp://127.0.0.1:5558; null = off. While it is on, ``streamer run``
    keeps running when no stream is left (sources can be added), until SIGINT/SIGTERM."""
    max_request_bytes: int = Field(1 << 20, ge=1024, le=64 << 20)
    """Larger requests are dropped unread: ZeroMQ disconnects the client as soon as it announces
    the size (``ZMQ_MAXMSGSIZE``), and no answer comes."""

    @field_validator("endpoint")
    @classmethod
    def _check(cls, v: str | None) -> str | None:
        return _endpoint(v)
