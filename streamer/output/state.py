"""The state a late subscriber needs, rebuilt from the messages themselves (the ZeroMQ
Guide's Clone pattern): every active stream with its ``started`` details, every active
track with its latest face entry and open episode, the engine's fingerprint and classes,
and per topic the ``seq`` of the last message applied, with the publisher's ``run`` those
numbers belong to (a restarted publisher counts from 0 again under a new run).

The service applies every message it publishes, on the publisher's thread and in ``seq``
order (``StateBoard.apply`` is the publisher's observer), and a snapshot endpoint hands out
``StateBoard.snapshot()``. A client (``streamer.client.StateSubscriber``) subscribes first,
then asks for the snapshot, then applies only updates newer than the snapshot's ``seq`` for
their topic, with this same class. No numpy, no torch: clients import it cheaply.

Example:
    >>> board = StateBoard()
    >>> board.apply("events.cam0", {"type": "event", "scope": "stream", "kind": "started",
    ...     "stream_id": "cam0", "seq": 0, "details": {"fps": 30.0}, "engine": "0123456789ab"})
    >>> board.apply("events.cam0", {"type": "event", "scope": "track", "kind": "started",
    ...     "stream_id": "cam0", "seq": 1, "track_id": 4, "engine": "0123456789ab"})
    >>> snap = board.snapshot()
    >>> sorted(snap["streams"]), sorted(snap["streams"]["cam0"]["tracks"]), snap["seq"]
    (['cam0'], ['4'], {'events.cam0': 1})
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

SCHEMA_VERSION = 1


class StateBoard:
    """Streams, tracks and per-topic ``seq``, kept current by ``apply``; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, dict[str, Any]] = {}
        self._seq: dict[str, int] = {}
        self._engine: str | None = None
        self._classes: list[str] | None = None
        self._run: str | None = None

    def apply(self, topic: str, msg: dict[str, Any]) -> None:
        """Fold one message (as published, with its ``seq``) into the state."""
        with self._lock:
            if isinstance(msg.get("seq"), int):
                self._seq[topic] = msg["seq"]
            if msg.get("run"):
                self._run = msg["run"]
            if msg.get("engine"):
                self._engine = msg["engine"]
            if msg.get("type") == "faces":
                self._faces(msg)
            elif msg.get("type") == "event":
                self._event(msg)

    def _stream(self, sid: str) -> dict[str, Any]:
        st = self._streams.get(sid)
        if st is None:
            st = self._streams[sid] = {"started": None, "last_event": None, "frame": None, "tracks": {}}
        return st

    def _faces(self, msg: dict[str, Any]) -> None:
        self._classes = msg.get("classes", self._classes)
        st = self._stream(msg["stream_id"])
        st["frame"] = {k: msg.get(k) for k in ("frame_index", "pts_s", "wall_time_s", "size_wh")}
        for face in msg.get("faces", []):
            tr = st["tracks"].setdefault(str(face["track_id"]), {"started": None, "episode": None})
            tr["face"] = face
            tr["frame_index"] = msg.get("frame_index")

    def _event(self, msg: dict[str, Any]) -> None:
        sid, scope, kind = msg["stream_id"], msg.get("scope"), msg.get("kind")
        if scope == "stream":
            if kind in ("ended", "failed"):
                self._streams.pop(sid, None)
                return
            st = self._stream(sid)
            st["last_event"] = msg
            if kind == "started":
                st["started"] = msg
            return
        st = self._stream(sid)
        if scope == "engine":
            self._classes = msg.get("classes", self._classes)
            for tr in st["tracks"].values():
                tr.pop("face", None)  # scores of the old engine are gone
            return
        tid = str(msg.get("track_id"))
        if scope == "track":
            if kind == "ended":
                st["tracks"].pop(tid, None)
            elif kind == "started":
                st["tracks"].setdefault(tid, {"started": None, "episode": None})["started"] = msg
            elif kind == "relinked":
                st["tracks"].setdefault(tid, {"started": None, "episode": None})["relinked"] = msg
        elif scope == "episode":
            tr = st["tracks"].setdefault(tid, {"started": None, "episode": None})
            tr["episode"] = msg if kind == "started" else None

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of the state: what the snapshot endpoint answers."""
        with self._lock:
            return {
                "schema_version": SCHEMA_VERSION,
                "type": "snapshot",
                "wall_time_s": time.time(),
                "engine": self._engine,
                "classes": self._classes,
                "seq": dict(self._seq),
                "run": self._run,
                "streams": copy.deepcopy(self._streams),
            }

    def restore(self, snap: dict[str, Any]) -> None:
        """Start from a snapshot (the client side)."""
        with self._lock:
            self._streams = copy.deepcopy(snap.get("streams", {}))
            self._seq = dict(snap.get("seq", {}))
            self._engine = snap.get("engine")
            self._classes = snap.get("classes")
            self._run = snap.get("run")

    @property
    def run(self) -> str | None:
        """The publisher's run the ``seq`` values belong to (None: not known yet)."""
        with self._lock:
            return self._run

    def new_run(self, run: str) -> None:
        """The publisher restarted and no snapshot of its new run could be had: forget the
        old run's ``seq`` values (its streams and tracks stay until the new run's messages
        replace or end them)."""
        with self._lock:
            self._run, self._seq = run, {}

    def seq(self, topic: str) -> int | None:
        """The ``seq`` of the last message applied on ``topic`` (None: none yet)."""
        with self._lock:
            return self._seq.get(topic)
