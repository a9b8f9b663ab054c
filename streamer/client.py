"""The Python client of a running streamer: subscribe, decode, count what was missed, and
start from the complete state however late you join.

Light on purpose: it imports ZeroMQ and the standard library (msgpack only for msgpack
payloads), never numpy, torch, the engine or the settings, so a subscriber starts in a
fraction of a second (``streamer subscribe`` is built on it). Messages are described in
docs/messages.md; with CurveZMQ (docs/operations.md) pass the server's public key file and
this client's secret key file.

``Subscriber`` receives what is published from now on. ``StateSubscriber`` is the ZeroMQ
Guide's Clone pattern: subscribe first, ask the snapshot endpoint for the state, then apply
only the updates newer than the ``seq`` the snapshot is consistent with, per topic. Every
message names its publisher's ``run``; when it changes the publisher restarted (its ``seq``
began again): ``StateSubscriber`` re-reads the snapshot, logs it and goes on.

Example (plain text: needs a running streamer)::

    from streamer.client import StateSubscriber, Subscriber

    with Subscriber("tcp://10.0.0.2:5556", streams=["cam0"],
                    server_key="keys/server.key", client_key="keys/alice.key_secret") as sub:
        while (got := sub.recv(timeout_s=5.0)) is not None:
            topic, msg = got
            print(topic, msg["seq"])
        print(sub.received, "received,", sub.missed, "missed")

    with StateSubscriber("tcp://127.0.0.1:5556", "tcp://127.0.0.1:5557") as sub:
        print(sub.state["streams"].keys())        # every active stream, its tracks, open episodes
        for topic, msg in sub.updates():          # then only newer messages, no gap, no duplicate
            print(topic, msg["type"], msg["seq"])
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import zmq

from streamer.net.endpoints import request
from streamer.net.wire import decode, stream_of
from streamer.output.state import StateBoard

log = logging.getLogger(__name__)

KEPT_RUNS = 8
"""Publisher runs whose last ``seq`` per topic a ``Subscriber`` remembers."""
KINDS = ("events", "faces")
"""Subscribed in this order: once a faces message arrives, the events subscription is in force too."""


class Subscriber:
    """A SUB socket subscribed to ``kinds`` (faces, events) of ``streams`` (all when empty).

    ``missed`` counts messages lost on the way (``seq`` gaps per topic): ZeroMQ drops a slow
    subscriber's messages past its high-water mark by design. ``restarts`` counts publisher
    restarts seen (a new ``run``: its ``seq`` begins again, which is no gap). A message is
    known by its ``(run, topic, seq)``: one that repeats a message already received, or comes
    after a newer one of its run and topic, is dropped and counted in ``duplicates`` (a
    restarted publisher's, or a restarted cluster driver's, messages are new: their run is).
    """

    def __init__(
        self,
        endpoint: str,
        streams: Iterable[str] = (),
        kinds: Iterable[str] = KINDS,
        *,
        bind: bool = False,
        server_key: str | Path | None = None,
        client_key: str | Path | None = None,
        rcvhwm: int = 1000,
        context: zmq.Context | None = None,
    ) -> None:
        wanted = list(kinds)
        unknown = [k for k in wanted if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown message kinds {unknown}; allowed: {', '.join(KINDS)}")
        kinds = [k for k in KINDS if k in wanted]
        if (server_key is None) != (client_key is None):
            raise ValueError("CurveZMQ needs both server_key and client_key")
        self.streams = set(streams)
        self.received = 0
        self.missed = 0
        self.restarts = 0
        self.duplicates = 0
        self.run: str | None = None
        """The publisher's run of the latest message."""
        self._last_seq: dict[tuple[str | None, str], int] = {}
        self._runs: list[str] = []
        """Runs seen, oldest first (at most ``KEPT_RUNS``: their ``seq`` are remembered)."""
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        try:
            self._sock.setsockopt(zmq.RCVHWM, rcvhwm)
            self._sock.setsockopt(zmq.LINGER, 0)
            if server_key is not None and client_key is not None:
                # only with keys: the plain subscriber stays light
                from streamer.net.security import secure_client

                secure_client(self._sock, server_key, client_key)
            for kind in kinds:
                for sid in sorted(self.streams) or [""]:
                    self._sock.setsockopt_string(zmq.SUBSCRIBE, f"{kind}.{sid}")
            if bind:
                self._sock.bind(endpoint)
            else:
                self._sock.connect(endpoint)
        except Exception:
            self.close()
            raise

    def recv(self, timeout_s: float | None = None) -> tuple[str, dict[str, Any]] | None:
        """The next ``(topic, message)``; None when nothing arrived within ``timeout_s``
        (None = wait as long as it takes)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            wait_ms = -1 if deadline is None else max(0, int(1000 * (deadline - time.monotonic())))
            if not self._sock.poll(wait_ms):
                return None
            topic_b, payload = self._sock.recv_multipart()
            topic = topic_b.decode()
            if self.streams and stream_of(topic) not in self.streams:
                continue  # subscriptions are prefixes: "faces.cam1" also matches "faces.cam10"
            msg = decode(payload)
            if self._count(topic, msg.get("seq"), msg.get("run")):
                return topic, msg

    def _count(self, topic: str, seq: Any, run: Any) -> bool:
        """Count a message; False: a duplicate (dropped)."""
        run = run if isinstance(run, str) else None
        if run is not None and run not in self._runs:
            if self._runs:
                self.restarts += 1
            self._runs.append(run)
            if len(self._runs) > KEPT_RUNS:
                gone = self._runs.pop(0)
                self._last_seq = {k: v for k, v in self._last_seq.items() if k[0] != gone}
        if isinstance(seq, int):
            last = self._last_seq.get((run, topic))
            if last is not None and seq <= last:
                self.duplicates += 1
                return False
            if last is not None and seq > last + 1:
                self.missed += seq - last - 1
            self._last_seq[(run, topic)] = seq
        self.received += 1
        if run is not None:
            self.run = run
        return True

    def close(self) -> None:
        """Close the socket (and the context it made). Idempotent."""
        if not self._sock.closed:
            self._sock.close(linger=0)
        if self._own_ctx and not self._ctx.closed:
            self._ctx.term()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StateSubscriber:
    """Snapshot + updates for the streams ``streams`` (all when empty)."""

    def __init__(
        self,
        endpoint: str,
        snapshot_endpoint: str,
        streams: Iterable[str] = (),
        *,
        server_key: str | Path | None = None,
        client_key: str | Path | None = None,
        context: zmq.Context | None = None,
        timeout_s: float = 10.0,
        join_timeout_s: float = 2.0,
    ) -> None:
        self.sub = Subscriber(endpoint, streams, server_key=server_key, client_key=client_key, context=context)
        self.board = StateBoard()
        self.skipped = 0
        """Updates dropped because the snapshot already held them."""
        self.gaps = 0
        """Messages missed after the snapshot (seq gaps: the publisher or ZeroMQ dropped them)."""
        self.resyncs = 0
        """Publisher restarts seen (a new ``run``), each followed by a fresh snapshot."""
        self._snapshot_endpoint = snapshot_endpoint
        self._request = (timeout_s, context, server_key, client_key)
        self._pending: list[tuple[str, dict[str, Any]]] = []
        try:
            # A first update proves the subscription is in force (at most join_timeout_s);
            # updates that arrive while the snapshot is on its way are kept, not lost.
            first = self.sub.recv(join_timeout_s)
            if first is not None:
                self._pending.append(first)
            self.board.restore(self._snapshot())
        except BaseException:
            self.sub.close()
            raise

    def _snapshot(self) -> dict[str, Any]:
        snap = request(self._snapshot_endpoint, {"op": "snapshot"}, *self._request)
        if not snap.get("ok"):
            raise ConnectionError(f"snapshot refused: {snap.get('error')}")
        if self.sub.streams:
            snap["streams"] = {k: v for k, v in snap["streams"].items() if k in self.sub.streams}
        return snap

    def _resync(self, run: str) -> None:
        """The publisher restarted (``run`` is new): start again from its snapshot, or, when
        none of that run can be had, from its messages (the old run's ``seq`` forgotten)."""
        self.resyncs += 1
        old = self.board.run
        try:
            snap = self._snapshot()
        except (ConnectionError, TimeoutError) as e:
            snap = {"run": None, "error": str(e)}
        if snap.get("run") == run:
            self.board.restore(snap)
            how = "state re-read from its snapshot"
        else:
            self.board.new_run(run)
            how = f"no snapshot of the new run ({snap.get('error') or 'the snapshot is of another run'}); going on"
        log.warning("publisher restarted (run %s -> %s): %s", old, run, how)

    @property
    def state(self) -> dict[str, Any]:
        """The current state (a copy): streams with their tracks, engine, classes, seq."""
        return self.board.snapshot()

    def _fresh(self, topic: str, msg: dict[str, Any]) -> bool:
        run, known = msg.get("run"), self.board.run
        if isinstance(run, str) and known is not None and run != known:
            self._resync(run)
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
            got = self._pending.pop(0) if self._pending else self.sub.recv(timeout_s)
            if got is None:
                return
            topic, msg = got
            if self._fresh(topic, msg):
                self.board.apply(topic, msg)
                yield topic, msg

    def close(self) -> None:
        self.sub.close()

    def __enter__(self) -> StateSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
