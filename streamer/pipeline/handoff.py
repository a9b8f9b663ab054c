"""The drop-to-latest hand-off between the detection thread and the scoring thread.

The detection thread ``offer``s each stream's newest tracked frame; an unread older frame of
the same stream is replaced (counted), so a slow engine never makes detection wait. Track
and stream ends travel in order on the same object, so the scoring thread frees per-track
state only after it has scored everything that was offered before the end.

Example (plain text)::

    slots = ScoreSlots()
    slots.offer(ScoreJob(frame, tracks))
    jobs, ends = slots.take(timeout_s=0.1)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from streamer.frames import Frame
from streamer.queues import Closable
from streamer.values import Tracks


@dataclass(frozen=True)
class ScoreJob:
    """One stream's newest frame with its confirmed tracks."""

    frame: Frame
    tracks: Tracks


@dataclass(frozen=True)
class EndNotice:
    """A track ended (``track_id`` set) or a whole stream ended (``track_id`` None)."""

    stream_id: str
    track_id: int | None = None


class ScoreSlots(Closable):
    """One slot per stream holding its newest ``ScoreJob``, plus an ordered list of ends."""

    def __init__(self) -> None:
        super().__init__()
        self._jobs: dict[str, ScoreJob] = {}
        self._ends: list[EndNotice] = []
        self.replaced = 0
        """Jobs overwritten before the scoring thread took them."""

    def __len__(self) -> int:
        with self._cond:
            return len(self._jobs)

    def offer(self, job: ScoreJob) -> None:
        with self._cond:
            if job.frame.stream_id in self._jobs:
                self.replaced += 1
            self._jobs[job.frame.stream_id] = job
            self._cond.notify_all()

    def end(self, notice: EndNotice) -> None:
        with self._cond:
            if notice.track_id is None:
                # A stream's unscored last frame is of no use once the stream is over.
                self._jobs.pop(notice.stream_id, None)
            self._ends.append(notice)
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        """Closed (no more offers) and everything taken."""
        with self._cond:
            return self._closed and not self._jobs and not self._ends

    def take(self, timeout_s: float) -> tuple[list[ScoreJob], list[EndNotice]]:
        """Every waiting job (one per stream) and the ends, waiting up to ``timeout_s``."""
        with self._cond:
            self._wait(lambda: bool(self._jobs or self._ends), timeout_s)
            jobs, ends = list(self._jobs.values()), self._ends
            self._jobs, self._ends = {}, []
            return jobs, ends


@dataclass(frozen=True)
class EngineChange:
    """The scoring thread switched engines (new prompts or head): what the detection thread
    needs to switch what it publishes at the same point, and an event set once it has."""

    generation: int
    fingerprint: str
    classes: list[str]
    applied: threading.Event = field(default_factory=threading.Event, compare=False)
