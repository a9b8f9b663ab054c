"""The forwarder's engine fence: after an engine change's reply, no faces message of an
older engine reaches subscribers, and per stream a faces message never carries an older
engine than one already passed (light: no Ray, no sockets; the forwarder's thread owns it).

The driver numbers the cluster's engine settings (version 1 at start, + 1 per change:
``streamer.cluster.engines``) and tells the fence which fingerprint each version has
(``learn``). Every worker starts a stream instance only on the current version, and a
worker's pipeline switches every stream at once, so per stream the engines of its messages
only go forward. What that cannot cover is a message emitted before its worker switched and
still on its way (a publish queue, the socket, the forwarder's backlog) when the change is
answered: ``raise_floor`` at the end of a change makes such a faces message stale, and it
is dropped (the forwarder counts it: ``stale_engine``). Events always pass: a track's or
stream's end must not be lost, and an event of the old engine was emitted before its
stream's first message of the new one.

A fingerprint not learned yet passes: it is an engine being tried on one worker (its version
is known once the try succeeded). One fingerprint may come back (prompts A, then B, then A
again): it then stands for its newest version.

Example:
    >>> fence = EngineFence()
    >>> fence.learn("a" * 12, 1); fence.learn("b" * 12, 2)
    >>> faces = lambda e: {"type": "faces", "stream_id": "cam0", "engine": e * 12}
    >>> fence.admit("cam0", faces("a")), fence.admit("cam0", faces("b")), fence.admit("cam0", faces("a"))
    (True, True, False)
    >>> fence.raise_floor(2), fence.admit("cam1", faces("a")), fence.fingerprint()
    ({}, False, 'bbbbbbbbbbbb')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class EngineFence:
    """Engine versions by fingerprint, the floor every faces message must reach, and per
    stream the newest version passed."""

    def __init__(self, last_seq: Callable[[], dict[str, int]] | None = None) -> None:
        self._last_seq = last_seq or dict
        """The forwarder's last ``seq`` per topic (``TopicSeqs.last``, read on its thread)."""
        self.versions: dict[str, int] = {}
        """Fingerprint -> its newest version."""
        self.floor = 0
        """Faces messages of an older version are dropped (set once a change is done everywhere)."""
        self.seen: dict[str, int] = {}
        """Stream -> the newest version of its messages that passed."""
        self._newest: tuple[int, str] | None = None

    def learn(self, fingerprint: str, version: int) -> None:
        """``fingerprint`` is the engine of ``version``."""
        self.versions[fingerprint] = version
        if self._newest is None or version >= self._newest[0]:
            self._newest = (version, fingerprint)

    def raise_floor(self, version: int) -> dict[str, int]:
        """From now on no faces message of an engine older than ``version`` passes; the last
        ``seq`` per topic before that (every later faces message is of ``version`` or newer)."""
        self.floor = max(self.floor, version)
        return self._last_seq()

    def admit(self, stream_id: str, msg: dict[str, Any]) -> bool:
        """Whether ``msg`` (of ``stream_id``, its epoch already checked) may pass."""
        version = self.versions.get(msg.get("engine"))  # type: ignore[arg-type]
        if version is None:
            return True
        newest = self.seen.get(stream_id, 0)
        if msg.get("type") == "faces" and version < max(self.floor, newest):
            return False
        if version > newest:
            self.seen[stream_id] = version
        return True

    def fingerprint(self) -> str | None:
        """The fingerprint of the newest version learned (the driver stamps its own messages
        with it: never older than any message of any stream)."""
        return None if self._newest is None else self._newest[1]
