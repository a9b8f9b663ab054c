"""``--sweep streams=1,2,4,8 faces=1,4,16``: for each face count, streams are added in the
given order until a run is no longer real time (``runner``); the answer per face count is
the largest number of streams that was.

Example:
    >>> parse_sweep(["streams=1,2,4", "faces=1,4"])
    {'streams': [1, 2, 4], 'faces': [1, 4]}
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

AXES = ("streams", "faces")


def parse_sweep(items: list[str]) -> dict[str, list[int]]:
    """``["streams=1,2", "faces=4"]`` -> ``{"streams": [1, 2], "faces": [4]}`` (sorted, unique)."""
    out: dict[str, list[int]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or key not in AXES:
            raise ValueError(f"--sweep: expected {' or '.join(a + '=N,N,...' for a in AXES)}, got {item!r}")
        try:
            nums = sorted({int(v) for v in values.split(",") if v.strip()})
        except ValueError as e:
            raise ValueError(f"--sweep {key}: expected integers, got {values!r}") from e
        if not nums or nums[0] < 1:
            raise ValueError(f"--sweep {key}: values must be >= 1, got {values!r}")
        out[key] = nums
    if "streams" not in out:
        raise ValueError("--sweep needs streams=N,N,...")
    return out


def sweep(
    streams: list[int], faces: list[int | None], run: Callable[[int | None, int], dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``run(faces, streams)`` for each face count, streams ascending until one is not real
    time. Returns every run and, per face count, the streams tried and the most in real time."""
    runs: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for f in faces:
        best = 0
        tried = []
        for n in streams:
            r = run(f, n)
            runs.append(r)
            tried.append(n)
            log.info("faces %s, %d stream(s): real time %s %s", f, n, r["realtime"]["ok"], r["realtime"]["reasons"])
            if not r["realtime"]["ok"]:
                break
            best = n
        summary[str(f)] = {"tried": tried, "max_realtime_streams": best}
    return runs, summary
