"""The sources' common core: a decode thread feeding a bounded queue, plus lifecycle events.

``ThreadedSource`` (a ``streamer.base.Source``) owns the thread, the queue, the frame
numbering and the event plumbing; implementations (``FileSource``, ``LiveSource``) only write
``_run``, the body of the thread.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, Literal

from configs.core.logs import redact_secrets
from configs.sources import SourceSettings
from streamer.base import Source
from streamer.frames import Frame, FrameImage
from streamer.queues import BoundedQueue
from streamer.sources.uri import redact_uri
from streamer.values import EventCallback, SourceStats, StreamEvent

log = logging.getLogger(__name__)


FramePrep = Callable[[Frame], None]
"""Called on the decode thread with each frame before it is queued (the pipeline's frame
path, ``FramePath.prepare``: colour conversion off the detection thread, or planes to the
GPU). A raising call costs only the preparation: the frame is queued all the same."""


class ThreadedSource(Source):
    """One video stream decoded on its own thread into a bounded queue.

    Lifecycle: ``start()`` -> ``read()`` until ``done`` -> ``stop()``. Every source emits
    exactly one terminal event ("ended" or "failed"); nothing it does raises into the
    caller's thread. ``prepare`` (a ``FramePrep``) is called with each frame before it is
    queued.

    Example (plain text)::

        src = open_source("clip.mp4", "cam1", SourceSettings(), print)
        src.start()
        while not src.done:
            frame = src.read(timeout=1.0)
    """

    def __init__(
        self,
        uri: str,
        stream_id: str,
        settings: SourceSettings,
        on_event: EventCallback,
        *,
        live: bool,
        prepare: FramePrep | None = None,
    ) -> None:
        if not stream_id:
            raise ValueError("stream_id must be non-empty")
        self.uri = uri
        self.stream_id = stream_id
        self.settings = settings
        self.live = live
        self.stats = SourceStats()
        self._on_event = on_event
        # Realtime files behave like cameras: a slow consumer loses old frames, not time.
        policy = "drop_oldest" if live or settings.realtime else "block"
        self._buffer: BoundedQueue[Frame] = BoundedQueue(settings.queue_size, policy)
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._lifecycle_lock = threading.Lock()
        self._terminal_sent = False
        self._stop_reason = "stopped"
        self._next_index = 0
        self._prepare = prepare

    # ---- public API ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the decode thread. A second call, or a call after ``stop()``, does nothing."""
        with self._lifecycle_lock:
            if self._thread is not None or self._stop_requested.is_set():
                log.warning("source %s: start() ignored (already started or stopped)", self)
                return
            self._thread = threading.Thread(target=self._thread_main, name=f"source:{self.stream_id}", daemon=True)
            self._thread.start()

    @property
    def queue_depth(self) -> int:
        """Frames decoded and waiting to be read."""
        return len(self._buffer)

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame, or None when none arrived within ``timeout`` seconds.

        With ``timeout=None`` it waits until a frame arrives or the source is ``done``.
        """
        return self._buffer.get(timeout)

    @property
    def done(self) -> bool:
        """True once the stream has ended or failed AND every queued frame was read."""
        return self._buffer.drained

    def stop(self, reason: str = "stopped") -> None:
        """Ask the thread to stop and join it; emits "ended" (with ``reason``) unless the
        stream already ended or failed. Idempotent; frames still queued stay readable.

        A source blocked in a silent connection notices within ``read_timeout_s``; the join
        waits that long at most, then leaves the (daemon) thread to finish on its own.
        """
        self._stop_reason = reason
        self._stop_requested.set()
        self._buffer.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.settings.open_timeout_s + self.settings.read_timeout_s + 1.0)
            if thread.is_alive():
                log.warning("source %s: decode thread still busy after stop()", self)
        self._finish("ended", reason)

    @property
    def stopping(self) -> bool:
        """True once ``stop()`` was called."""
        return self._stop_requested.is_set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.stream_id!r}, {redact_uri(self.uri)!r})"

    # ---- for implementations -------------------------------------------------------------

    @abstractmethod
    def _run(self) -> None:
        """Body of the decode thread: open, decode, ``_deliver`` frames, emit events, and end
        with ``_finish`` (or just return: a stop or a plain return then ends the stream)."""

    def _deliver(self, av_frame: Any, pts_offset_s: float = 0.0) -> bool:
        """Wrap a decoded PyAV frame (no pixel conversion) and queue it; False once stopped."""
        now = time.time()
        pts_s = None if av_frame.time is None else av_frame.time + pts_offset_s
        frame = Frame(
            stream_id=self.stream_id,
            index=self._next_index,
            pts_s=pts_s,
            wall_time_s=now,
            image=FrameImage.from_av(av_frame),
        )
        self._next_index += 1
        self.stats.frames_decoded += 1
        self.stats.last_frame_wall_s = now
        if self._prepare is not None:
            t0 = time.perf_counter()
            try:
                self._prepare(frame)
            except Exception as e:  # the detection thread converts it instead, and reports errors
                log.debug("source %s: preparing frame %d failed: %s", self.stream_id, frame.index, e)
            self.stats.prepare_s += time.perf_counter() - t0
        queued = self._buffer.put(frame)
        self.stats.frames_dropped = self._buffer.dropped
        if not queued and self._buffer.closed:
            self.stats.frames_discarded += 1
        return queued

    def _emit(self, kind: str, reason: str | None = None, **details: Any) -> None:
        """Send an event to ``on_event``; a raising callback is logged, never propagated."""
        details.setdefault("uri", redact_uri(self.uri))
        if reason is not None:
            reason = redact_secrets(reason)  # e.g. an exception text that quotes the URI
        event = StreamEvent(self.stream_id, kind, time.time(), reason, details)
        level = logging.WARNING if kind in ("reconnecting", "failed") else logging.INFO
        log.log(level, "source %s: %s%s", self.stream_id, kind, f" ({reason})" if reason else "")
        try:
            self._on_event(event)
        except Exception:  # the caller's callback must not kill the decode thread
            log.exception("source %s: on_event callback raised on %r", self.stream_id, kind)

    def _finish(self, kind: Literal["ended", "failed"], reason: str, **details: Any) -> None:
        """Emit the one terminal event (later calls do nothing) and close the queue."""
        with self._lifecycle_lock:
            if self._terminal_sent:
                return
            self._terminal_sent = True
        if kind == "failed":
            self.stats.last_error = self.stats.last_error or reason
        self._emit(kind, reason, frames_decoded=self.stats.frames_decoded, **details)
        self._buffer.close()

    # ---- thread boundary ------------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            self._run()
        except Exception as e:  # thread boundary: a bug must end this stream, not the process
            log.exception("source %s: decode thread crashed", self.stream_id)
            self._finish("failed", f"internal error: {type(e).__name__}: {e}")
        finally:
            if self._stop_requested.is_set():
                self._finish("ended", self._stop_reason)
            else:
                self._finish("ended", "end of stream")
