"""Progress bars for ``streamer analyze`` (tqdm): one for the whole run, one for the video in
hand, each with frames, frames/s and the time left; silent when stderr is not a terminal.

Example:
    >>> bars = Progress(total_frames=10, enabled=False)
    >>> bars.start_video("clip", 10); bars.tick(); bars.end_video(); bars.close()
    >>> bars.frames_done
    1
"""

from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm


def estimate_frames(path: Path) -> int:
    """The number of frames the container declares (or duration x rate); 0 when unknown."""
    import av  # PyAV: a header read, no decoding

    try:
        with av.open(str(path), options={"analyzeduration": "0"}) as c:
            if not c.streams.video:
                return 0
            s = c.streams.video[0]
            if s.frames:
                return int(s.frames)
            rate = s.average_rate or s.guessed_rate
            if c.duration and rate:
                return int(c.duration / 1_000_000 * float(rate))
    except Exception:  # a bad file is reported by its run, not here
        return 0
    return 0


class Progress:
    """The overall bar and the current video's bar."""

    def __init__(self, total_frames: int, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.frames_done = 0
        self._all = tqdm(total=total_frames or None, desc="all", unit="frame", disable=not self.enabled, position=0)
        self._one: tqdm | None = None

    def start_video(self, name: str, frames: int) -> None:
        self._one = tqdm(
            total=frames or None, desc=name, unit="frame", disable=not self.enabled, position=1, leave=False
        )

    def tick(self) -> None:
        """One frame processed (called on the pipeline's detection thread)."""
        self.frames_done += 1
        self._all.update(1)
        if self._one is not None:
            self._one.update(1)

    def end_video(self) -> None:
        if self._one is not None:
            self._one.close()
            self._one = None

    def close(self) -> None:
        self.end_video()
        self._all.close()
