"""The cluster's one endpoint: workers publish to the forwarder's XSUB, subscribers connect
to its XPUB, exactly the shape of ``zmq.proxy(xsub, xpub)``. Unlike a bare ``zmq.proxy`` it
reads each message, because three things need it:

- **Fencing.** A message passes only when its ``epoch`` is the one the driver gave its
  stream (``set_epoch``); a worker that was declared lost and comes back, or that has not
  yet heard it lost a stream, is dropped here (``stats.fenced``), so subscribers never see
  a stream served twice. A faces message of an older engine than its stream's, or one still
  on its way when an engine change was answered, is dropped too (``engines``, ``enginefence``).
- **One ``seq`` per topic.** Each worker numbers its own messages; a moved stream would
  restart at 0. The forwarder renumbers per topic, so ``seq`` counts on across moves, and a
  gap in a worker's numbering (a drop between worker and forwarder) stays a gap.
- **State for late joiners.** ``observer`` (a ``StateBoard``) sees every message just before
  it is sent, as in one process; the driver's snapshot endpoint answers from it.

A stream's terminal event (``ended``/``failed``) closes its epoch here. ``notices`` (a
queue) tells the driver when an epoch's first faces message passed (the end of a move's gap)
and when a stream ended. Everything runs on one thread; ``call(fn)`` runs ``fn`` on it between
two messages (the driver's handovers: fence, then publish its own messages, atomically).
Both sockets come from the driver's ``Sockets`` (CurveZMQ servers: workers and subscribers
are its clients); without one the forwarder makes a plain one of its own.

Example (plain text: binds ports)::

    fwd = Forwarder("tcp://127.0.0.1:*", "tcp://127.0.0.1:5556", outlets.sockets, observer=board.apply)
    fwd.call(lambda: fwd.set_epoch("cam0", 1))
    ...
    fwd.close()
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import zmq

from streamer.cluster.enginefence import EngineFence
from streamer.cluster.epochs import is_terminal
from streamer.cluster.numbering import TopicSeqs
from streamer.net.sockets import Sockets, bound_endpoint
from streamer.net.wire import decode, encode, new_run_id

log = logging.getLogger(__name__)
INGEST_MAX_MESSAGE_BYTES = 16 << 20
"""Largest message frame a worker may publish to the driver (``ZMQ_MAXMSGSIZE``): far above
any faces message, far below what would hurt the driver."""

T = TypeVar("T")


@dataclass
class ForwarderStats:
    """Counters of the forwarder (written by its thread)."""

    forwarded: int = 0
    """Messages sent to subscribers (the driver's own included)."""
    fenced: int = 0
    """Worker messages dropped: their stream's epoch is not the current one."""
    malformed: int = 0
    """Worker messages that could not be read (not two frames, not JSON/msgpack, no stream)."""
    ingest_gaps: int = 0
    """Messages a worker numbered that never reached the forwarder."""
    dropped_socket: int = 0
    """Messages the XPUB would not take without blocking."""
    subscriptions: int = 0
    """Subscriptions that reached the XPUB."""
    stale_engine: int = 0
    """Faces messages dropped: an engine older than the stream's (``enginefence``)."""


@dataclass(frozen=True)
class Notice:
    """What the driver learns from the traffic: ``first`` (the first faces message of an
    epoch passed; ``previous_s`` = when the stream's last faces message of an earlier epoch
    passed: the move's gap) or ``ended`` (the epoch's terminal event passed; ``kind``
    ended/failed, ``reason``)."""

    what: str
    stream_id: str
    epoch: int
    at_s: float
    previous_s: float | None = None
    kind: str | None = None
    reason: str | None = None


@dataclass
class _Stream:
    epoch: int | None = None
    seen_epoch: int | None = None
    last_s: float | None = None
    faces_epoch: int | None = None
    faces_s: float | None = None
    in_seq: dict[str, int] = field(default_factory=dict)
    terminal: tuple[int, str, str | None] | None = None


class Forwarder:
    """XSUB (bind, workers connect) -> fence and renumber -> XPUB (bind, subscribers connect)."""

    def __init__(
        self,
        ingest_endpoint: str,
        publish_endpoint: str,
        sockets: Sockets | None = None,
        *,
        observer: Callable[[str, dict[str, Any]], None] | None = None,
        sndhwm: int = 1000,
        seqs: TopicSeqs | None = None,
    ) -> None:
        self.stats = ForwarderStats()
        self.notices: queue.Queue[Notice] = queue.Queue()
        self.observer = observer
        self._own: Sockets | None = None
        if sockets is None:
            sockets = self._own = Sockets()
        self._streams: dict[str, _Stream] = {}
        self.seqs = seqs or TopicSeqs()
        """One ``seq`` per topic (leased in the Ray cluster when the driver's state is kept)."""
        self.engines = EngineFence(self.seqs.last)
        self.run = new_run_id()
        """The driver's run, stamped on every message it forwards (workers' runs are theirs)."""
        self._encoding = "json"
        self._calls: deque[tuple[Callable[[], Any], Future]] = deque()
        self._stop = threading.Event()
        try:
            self._front = sockets.server(
                zmq.XSUB,
                ingest_endpoint,
                what="cluster.ingest_endpoint",
                max_message_bytes=INGEST_MAX_MESSAGE_BYTES,
                RCVHWM=sndhwm * 4,
            )
            try:
                self._back = sockets.server(
                    zmq.XPUB, publish_endpoint, what="publisher.endpoint", SNDHWM=sndhwm, XPUB_VERBOSE=1
                )
            except zmq.ZMQError:
                self._front.close(0)
                raise
        except BaseException:
            if self._own is not None:
                self._own.close()
            raise
        self.ingest_endpoint = bound_endpoint(self._front)
        self.publish_endpoint = bound_endpoint(self._back)
        self._front.send(b"\x01")  # subscribe to everything: the state needs every message
        self._thread = threading.Thread(target=self._run, name="forwarder", daemon=True)
        self._thread.start()

    # ---- any thread ------------------------------------------------------------------------

    def call(self, fn: Callable[[], T], timeout_s: float = 30.0) -> T:
        """Run ``fn`` on the forwarder's thread between two messages; its result."""
        if threading.current_thread() is self._thread:
            return fn()
        fut: Future = Future()
        self._calls.append((fn, fut))
        return fut.result(timeout_s)

    def last_seen(self, stream_id: str) -> float | None:
        """When a message of ``stream_id`` last passed (monotonic seconds)."""
        st = self._streams.get(stream_id)
        return None if st is None else st.last_s

    def close(self) -> None:
        """Stop forwarding and close the sockets. Idempotent."""
        self._stop.set()
        self._thread.join()
        if self._own is not None:
            self._own.close()

    # ---- the forwarder's thread (directly, or inside ``call``) -----------------------------

    def set_epoch(self, stream_id: str, epoch: int | None) -> None:
        """From now on only ``epoch`` of ``stream_id`` passes (None: nothing of it passes)."""
        self._streams.setdefault(stream_id, _Stream()).epoch = epoch

    def epoch(self, stream_id: str) -> int | None:
        """The epoch of ``stream_id`` that passes now (None: none)."""
        st = self._streams.get(stream_id)
        return None if st is None else st.epoch

    def terminal(self, stream_id: str) -> tuple[int, str, str | None] | None:
        """``(epoch, kind, reason)`` of the last terminal event of ``stream_id`` that passed."""
        st = self._streams.get(stream_id)
        return None if st is None else st.terminal

    def publish(self, topic: str, msg: dict[str, Any]) -> None:
        """Send the driver's own message (no fence): next ``seq`` of its topic, observed."""
        self._send(topic, msg, gap=0)

    # ---- internals -------------------------------------------------------------------------

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._front, zmq.POLLIN)
        poller.register(self._back, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                self._run_calls()
                ready = dict(poller.poll(20))
                if self._back in ready:
                    self._read_subscriptions()
                if self._front in ready:
                    for _ in range(1000):  # then look at calls again
                        try:
                            frames = self._front.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._ingest(frames)
        finally:
            self._run_calls()
            self._front.close(0)
            self._back.close(linger=1000)

    def _run_calls(self) -> None:
        while self._calls:
            fn, fut = self._calls.popleft()
            try:
                fut.set_result(fn())
            except BaseException as e:  # handed to the caller, who re-raises it
                fut.set_exception(e)

    def _read_subscriptions(self) -> None:
        while True:
            try:
                frame = self._back.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if frame[:1] == b"\x01":
                self.stats.subscriptions += 1

    def _ingest(self, frames: list[bytes]) -> None:
        try:
            topic, payload = frames[0].decode(), frames[1]
            if len(frames) != 2:
                raise ValueError(f"{len(frames)} frames")
            msg = decode(payload)
            sid, epoch, seq = msg["stream_id"], msg.get("epoch"), msg.get("seq")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            self.stats.malformed += 1
            log.warning("forwarder: unreadable message dropped (%s)", e)
            return
        st = self._streams.get(sid)
        if st is None or st.epoch is None or epoch != st.epoch:
            self.stats.fenced += 1
            return
        if not self.engines.admit(sid, msg):
            self.stats.stale_engine += 1
            return
        self._encoding = "json" if payload[:1] == b"{" else "msgpack"
        gap = 0
        last = st.in_seq.get(topic)
        if isinstance(seq, int):
            if st.seen_epoch == epoch and last is not None and seq > last + 1:
                gap = seq - last - 1
                self.stats.ingest_gaps += gap
            st.in_seq[topic] = seq
        now = time.monotonic()
        if st.seen_epoch != epoch:
            st.seen_epoch = epoch
            st.in_seq = {topic: seq} if isinstance(seq, int) else {}
        if msg.get("type") == "faces":
            if st.faces_epoch != epoch:
                self.notices.put(Notice("first", sid, epoch, now, previous_s=st.faces_s))
                st.faces_epoch = epoch
            st.faces_s = now
        st.last_s = now
        self._send(topic, msg, gap)
        if is_terminal(msg):
            st.epoch = None  # nothing of this epoch may follow its terminal event
            st.terminal = (epoch, msg["kind"], msg.get("reason"))
            self.notices.put(Notice("ended", sid, epoch, now, kind=msg["kind"], reason=msg.get("reason")))

    def _send(self, topic: str, msg: dict[str, Any], gap: int) -> None:
        msg["seq"] = self.seqs.take(topic, gap)
        msg["run"] = self.run
        try:
            payload = encode(msg, self._encoding)
        except (TypeError, ValueError) as e:
            log.error("forwarder: cannot encode a message on %s: %s", topic, e)
            self.stats.dropped_socket += 1
            return
        if self.observer is not None:  # before sending: no subscriber sees a message the state lacks
            self.observer(topic, msg)
        try:
            self._back.send_multipart([topic.encode(), payload], zmq.NOBLOCK)
            self.stats.forwarded += 1
        except zmq.Again:
            self.stats.dropped_socket += 1
