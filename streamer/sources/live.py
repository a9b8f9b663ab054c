"""Live sources (RTSP, HLS / HTTP streams, cameras): never fall behind, and come back.

Any end of the demux loop counts as a disconnect: PyAV ends an RTSP stream *normally* when
the server goes away, so an error is not the only sign of one.
"""

from __future__ import annotations

import logging
import random
import time

from configs.sources import SourceSettings
from streamer.sources.backoff import Backoff
from streamer.sources.decoding import (
    AUTH_ERRORS,
    STREAM_ERRORS,
    decoded_frames,
    describe_error,
    open_input,
    stream_details,
    video_stream,
)
from streamer.sources.threaded import FramePrep, ThreadedSource
from streamer.sources.uri import SourceTarget
from streamer.values import EventCallback

log = logging.getLogger(__name__)


class LiveSource(ThreadedSource):
    """A stream that may drop and return. The queue drops the oldest frame when full.

    Events: "started" the first time the stream opens; on a disconnect (error, silence
    longer than ``read_timeout_s``, or a normal end of stream) "reconnecting" with
    ``details`` ``attempt`` and ``delay_s``, then a capped exponential backoff with jitter;
    "resumed" once frames flow again (the attempt count then restarts); "failed" after
    ``max_reconnects`` consecutive failed attempts. With ``reconnect=False`` a disconnect
    ends the source instead ("ended" after a normal end, "failed" after an error). A refused
    login (401 Unauthorized, 403 Forbidden) is not retried: it "failed" at once with that
    reason and ``details.auth_failed`` (retrying cannot fix a wrong password, and cameras
    lock accounts out after repeated failures).

    ``index`` keeps counting across reconnects; ``pts_s`` is the stream's own clock and
    usually restarts after a reconnect.
    """

    def __init__(
        self,
        target: SourceTarget,
        stream_id: str,
        settings: SourceSettings,
        on_event: EventCallback,
        *,
        prepare: FramePrep | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(target.url, stream_id, settings, on_event, live=True, prepare=prepare)
        self._target = target
        self._backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s, settings.backoff_jitter, rng)
        self._started = False
        self._outage_since: float | None = None  # monotonic start of the current outage
        self._attempt = 0  # failed reconnect attempts in the current outage
        self._auth_failed = False

    def _run(self) -> None:
        while not self.stopping:
            error = self._session()
            if self.stopping:
                return
            reason = error or "stream ended"
            if self._auth_failed:
                hint = "check the user name and password in the URI; not retried"
                self._finish("failed", f"authentication refused ({reason}); {hint}", auth_failed=True)
                return
            if not self.settings.reconnect:
                if error:
                    self._finish("failed", reason)
                else:
                    self._finish("ended", reason)
                return
            limit = self.settings.max_reconnects
            if limit is not None and self._attempt >= limit:
                self._finish(
                    "failed",
                    f"gave up after {self._attempt} reconnect attempts; last: {reason}",
                    attempts=self._attempt,
                )
                return
            self._attempt += 1
            delay_s = self._backoff.delay(self._attempt)
            self.stats.reconnects += 1
            if self._outage_since is None:
                self._outage_since = time.monotonic()
            self._emit("reconnecting", reason, attempt=self._attempt, delay_s=round(delay_s, 3))
            if self._stop_requested.wait(delay_s):
                return

    def _session(self) -> str | None:
        """Open the stream and deliver frames until it ends; the error as text, or None after
        a normal end (or a stop)."""
        try:
            with open_input(self._target, self.settings) as container:
                stream = video_stream(container, self.settings, live=True)
                if not self._started:
                    self._started = True
                    self._emit("started", **stream_details(stream))
                for av_frame in decoded_frames(
                    container, stream, lambda: self.stopping, self._on_decode_error, self.stats
                ):
                    if self._outage_since is not None:
                        self._resume(self._outage_since)
                    if not self._deliver(av_frame):
                        return None
        except STREAM_ERRORS as e:
            self._auth_failed = isinstance(e, AUTH_ERRORS)
            self.stats.last_error = describe_error(e)
            return self.stats.last_error
        return None

    def _resume(self, outage_since: float) -> None:
        down_s = time.monotonic() - outage_since
        self._emit("resumed", attempts=self._attempt, downtime_s=round(down_s, 3))
        self._outage_since = None
        self._attempt = 0

    def _on_decode_error(self, e: Exception) -> None:
        self.stats.decode_errors += 1
        self.stats.last_error = describe_error(e)
        log.debug("source %s: skipped a packet: %s", self.stream_id, self.stats.last_error)
