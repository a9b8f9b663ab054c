"""ExpStream's service: ``streamer run`` and the rest (docs/design.md). ``streamer.analyze``
(recorded videos to DataFrames, ``streamer.analysis.api``) is imported on first use, so
``import streamer`` stays light.

Example (plain text: loads an engine)::

    from streamer import analyze
    res = analyze("clip.mp4", classes=["engaged", "confused", "bored"], config="offline")
"""

from __future__ import annotations

from typing import Any

__all__ = ["analyze"]


def __getattr__(name: str) -> Any:
    if name == "analyze":
        from streamer.analysis.api import analyze  # pandas, pyarrow and the pipeline load here

        return analyze
    raise AttributeError(f"module 'streamer' has no attribute {name!r}")
