"""Subscribing from Python with the complete state, however late you join (the ZeroMQ
Guide's Clone pattern): subscribe first, ask the snapshot endpoint for the state, then apply
only the updates newer than the ``seq`` the snapshot is consistent with, per topic. Light:
imports pyzmq and the wire format, never numpy or torch.

Example (plain text: needs a running ``streamer run`` with ``snapshot.endpoint`` set)::

    from streamer.client import StateSubscriber

    with StateSubscriber("tcp://127.0.0.1:5556", "tcp://127.0.0.1:5557") as sub:
        print(sub.state["streams"].keys())        # every active stream, its tracks, open episodes
        for topic, msg in sub.updates():          # then only newer messages, no gap, no duplicate
            print(topic, msg["type"], msg["seq"])
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import zmq

from streamer.endpoints import request
from streamer.state import StateBoard
from streamer.wire import decode, stream_of


class StateSubscriber:
    """Snapshot + updates for the streams ``streams`` (all when None)."""

    def __init__(
        self,
        endpoint: str,
        snapshot_endpoint: str,
        streams: Sequence[str] | None = None,
        topics: Sequence[str] = ("faces", "events"),
        context: zmq.Context | None = None,
        timeout_s: float = 10.0,
        join_timeout_s: float = 2.0,
    ) -> None:
        self.endpoint = endpoint
        self.snapshot_endpoint = snapshot_endpoint
        self.streams = set(streams or [])
        self.board = StateBoard()
        self.skipped = 0
        """Updates dropped because the snapshot already held them."""
        self.gaps = 0
        """Messages missed after the snapshot (seq gaps: the publisher or ZeroMQ dropped them)."""
        self._ctx = context or zmq.Context.instance()
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        # events before faces: once a faces message arrives, both subscriptions are in force
        for kind in sorted(topics, key=lambda k: k != "events"):
            for sid in streams or [None]:
                self._sub.setsockopt_string(zmq.SUBSCRIBE, f"{kind}.{sid}" if sid else f"{kind}.")
        self._sub.connect(endpoint)
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._sync(timeout_s, join_timeout_s)

    def _sync(self, timeout_s: float, join_timeout_s: float) -> None:
        """Wait (at most ``join_timeout_s``) for a first update, which proves the subscription is
        in force, then ask for the snapshot; updates that arrive meanwhile are kept, not lost."""
        if self._sub.poll(int(join_timeout_s * 1000)):
            self._pending.append(self._recv())
        snap = request(self.snapshot_endpoint, {"op": "snapshot"}, timeout_s, self._ctx)
        if not snap.get("ok"):
            raise ConnectionError(f"snapshot refused: {snap.get('error')}")
        if self.streams:
            snap["streams"] = {k: v for k, v in snap["streams"].items() if k in self.streams}
        self.board.restore(snap)
        while self._sub.poll(0):
            self._pending.append(self._recv())

    @property
    def state(self) -> dict[str, Any]:
        """The current state (a copy): streams with their tracks, engine, classes, seq."""
        return self.board.snapshot()

    def _recv(self) -> tuple[str, dict[str, Any]]:
        topic, payload = self._sub.recv_multipart()
        return topic.decode(), decode(payload)

    def _fresh(self, topic: str, msg: dict[str, Any]) -> bool:
        if self.streams and stream_of(topic) not in self.streams:
            return False  # "faces.cam1" also matches the prefix of "faces.cam10"
        last = self.board.seq(topic)
        seq = msg.get("seq")
        if last is not None and isinstance(seq, int):
            if seq <= last:
                self.skipped += 1
                return False
            self.gaps += seq - last - 1
        return True

    def updates(self, timeout_s: float | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every update newer than the state, applied to it before it is yielded. Stops after
        ``timeout_s`` seconds without a message (None: never)."""
        while True:
            if self._pending:
                topic, msg = self._pending.pop(0)
            else:
                deadline = None if timeout_s is None else time.monotonic() + timeout_s
                wait_ms = -1 if deadline is None else max(0, int(1000 * (deadline - time.monotonic())))
                if not self._sub.poll(wait_ms):
                    return
                topic, msg = self._recv()
            if self._fresh(topic, msg):
                self.board.apply(topic, msg)
                yield topic, msg

    def close(self) -> None:
        self._sub.close(0)

    def __enter__(self) -> StateSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
