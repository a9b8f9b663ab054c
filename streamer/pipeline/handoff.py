"""What the detection thread and the scoring thread hand each other.

Forward, ``ScoreSlots``, drop-to-latest: the detection thread ``offer``s each stream's newest
tracked frame; an unread older frame of the same stream is replaced (counted), so a slow
engine never makes detection wait. Track and stream ends travel in order on the same object,
so the scoring thread frees per-track state only after it has scored everything that was
offered before the end.

Back, ``ResultsBoard``: each track's latest result, written by the scoring thread only and
read by the detection thread when it publishes. The pipeline makes both and hands them to
the two threads when it builds them.

Example (plain text: needs a decoded frame and its tracks)::

    slots = ScoreSlots()
    slots.offer(ScoreJob(frame, tracks))
    jobs, ends = slots.take(timeout_s=0.1)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from streamer.frames import Frame
from streamer.queues import Closable
from streamer.values import Abstention, FaceResult, TrackKey, Tracks


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
        self._busy: set[str] = set()
        """Streams whose taken job the scoring thread has not settled yet (lockstep)."""
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
            self._busy.update(self._jobs_streams(jobs))
            return jobs, ends

    @staticmethod
    def _jobs_streams(jobs: list[ScoreJob]) -> set[str]:
        return {j.frame.stream_id for j in jobs}

    def settle(self, jobs: list[ScoreJob]) -> None:
        """The scoring thread is done with these jobs (their results are on the board)."""
        with self._cond:
            self._busy -= self._jobs_streams(jobs)
            self._cond.notify_all()

    def wait_scored(self, stream_id: str) -> None:
        """Lockstep: wait until the stream's offered job has been taken and settled (or the
        slots are closed), so the frame is published with its own results."""
        with self._cond:
            self._wait(lambda: stream_id not in self._jobs and stream_id not in self._busy, None)


class ResultsBoard(Mapping[TrackKey, FaceResult | Abstention]):
    """The latest result (or blur abstention) of each track being scored. The scoring thread
    alone writes (``put``, ``forget``, ``forget_stream``, ``clear``); any thread reads it as a
    read-only mapping. Each call is atomic.

    Example:
        >>> board = ResultsBoard()
        >>> board.put(("cam0", 1), Abstention("blurred", frame_index=7))
        >>> board.put(("cam1", 1), Abstention("blurred", frame_index=9))
        >>> board.forget_stream("cam0")
        >>> list(board), board.get(("cam1", 1)).frame_index
        ([('cam1', 1)], 9)
    """

    def __init__(self) -> None:
        self._results: dict[TrackKey, FaceResult | Abstention] = {}
        self._lock = threading.Lock()

    def __getitem__(self, key: TrackKey) -> FaceResult | Abstention:
        with self._lock:
            return self._results[key]

    def get(self, key: TrackKey, default: FaceResult | Abstention | None = None) -> FaceResult | Abstention | None:
        with self._lock:
            return self._results.get(key, default)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._results

    def __iter__(self) -> Iterator[TrackKey]:
        with self._lock:
            return iter(list(self._results))

    def __len__(self) -> int:
        with self._lock:
            return len(self._results)

    def put(self, key: TrackKey, result: FaceResult | Abstention) -> None:
        with self._lock:
            self._results[key] = result

    def forget(self, key: TrackKey) -> None:
        """The track ended."""
        with self._lock:
            self._results.pop(key, None)

    def forget_stream(self, stream_id: str) -> None:
        """The stream ended: every one of its tracks goes."""
        with self._lock:
            self._results = {k: r for k, r in self._results.items() if k[0] != stream_id}

    def clear(self) -> None:
        """The engine changed: no earlier result is published again."""
        with self._lock:
            self._results.clear()


@dataclass(frozen=True)
class EngineChange:
    """The scoring thread switched engines (new prompts or head): what the detection thread
    needs to switch what it publishes at the same point, and an event set once it has."""

    generation: int
    fingerprint: str
    classes: list[str]
    applied: threading.Event = field(default_factory=threading.Event, compare=False)
