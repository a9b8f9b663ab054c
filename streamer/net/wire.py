"""How messages travel: topics, and the JSON / msgpack payload encodings. Light on purpose
(no numpy, no torch): subscribers and the client helper import only this, ``streamer.output.state``
and ``streamer.client``.

Example:
    >>> payload = encode({"type": "faces", "seq": 3}, "json")
    >>> payload, decode(payload)
    (b'{"type":"faces","seq":3}', {'type': 'faces', 'seq': 3})
    >>> faces_topic("cam0"), events_topic("cam0"), stream_of("events.cam0")
    ('faces.cam0', 'events.cam0', 'cam0')
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

MAX_STREAM_ID = 64
"""The longest stream id (it is part of every topic and log line)."""
STREAM_ID = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_STREAM_ID}}}")
"""What a stream id may hold (it is part of topic names); use ``fullmatch``."""
STREAM_ID_RULE = f"letters, digits, '_', '.' and '-', at most {MAX_STREAM_ID}"


def is_stream_id(text: object) -> bool:
    """Whether ``text`` is a whole stream id (no trailing newline, not too long).

    Example:
        >>> is_stream_id("cam0"), is_stream_id("cam0\\n"), is_stream_id("c" * 65), is_stream_id(7)
        (True, False, False, False)
    """
    return isinstance(text, str) and STREAM_ID.fullmatch(text) is not None


def check_stream_id(stream_id: str) -> str:
    """A stream id: letters, digits, ``_``, ``.`` and ``-``, at most ``MAX_STREAM_ID`` of them
    (it is part of topic names). ConfigError otherwise.

    Example:
        >>> check_stream_id("cam0")
        'cam0'
    """
    if not is_stream_id(stream_id):
        from configs.core.errors import ConfigError

        raise ConfigError(f"stream id {stream_id!r}: use {STREAM_ID_RULE}")
    return stream_id


def faces_topic(stream_id: str) -> str:
    return f"faces.{stream_id}"


def events_topic(stream_id: str) -> str:
    return f"events.{stream_id}"


def stream_of(topic: str) -> str:
    """The stream id of a ``faces.<id>`` or ``events.<id>`` topic."""
    return topic.split(".", 1)[1]


def _json(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":"), allow_nan=False).encode()


def _msgpack(msg: dict[str, Any]) -> bytes:
    import msgpack

    return msgpack.packb(msg, use_bin_type=True)


ENCODINGS = ("json", "msgpack")


def encode(msg: dict[str, Any], encoding: str = "json") -> bytes:
    """A message as bytes. JSON is strict: NaN or Infinity raise ValueError, never written."""
    return _json(msg) if encoding == "json" else _msgpack(msg)


def decode(payload: bytes, encoding: str = "auto") -> dict[str, Any]:
    """Decode a payload (``auto``: JSON if it starts with ``{``, else msgpack)."""
    if encoding == "json" or (encoding == "auto" and payload[:1] == b"{"):
        return json.loads(payload)
    import msgpack

    return msgpack.unpackb(payload, raw=False)


def new_run_id() -> str:
    """The identity of one publishing run (``run`` in every message, next to ``seq``): a
    subscriber that sees it change knows the publisher restarted and ``seq`` began again.

    Example:
        >>> a, b = new_run_id(), new_run_id()
        >>> len(a), a != b
        (16, True)
    """
    return secrets.token_hex(8)
