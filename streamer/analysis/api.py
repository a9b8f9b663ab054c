"""``analyze``: recorded videos to pandas DataFrames, for notebooks. The same run as
``streamer analyze`` (the same tables for the same settings), returned in memory, and also
written (tables, report, manifest) when ``out`` is given.

Example (plain text: loads an engine)::

    from streamer import analyze

    res = analyze("session.mp4", classes=["engaged", "confused", "bored"], config="offline")
    res.tracks[["track_id", "first_s", "last_s", "dominant"]]
    res.faces.groupby("track_id")["p_engaged"].mean()
    fig = res.plot_track(1)          # a matplotlib Figure: probabilities over time, episodes
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from configs import load_settings
from configs.core.errors import ConfigError
from streamer.analysis.runner import AnalysisRun, Analyzer, VideoOutcome
from streamer.analysis.tables import TABLES, VideoTables
from streamer.base import ExpressionScorer, FaceDetector


@dataclass
class AnalysisResult:
    """The tables of every video analyzed (a ``video`` column tells them apart), each video's
    metadata (engine fingerprint, classes, settings) and every input's outcome."""

    faces: pd.DataFrame
    frames: pd.DataFrame
    tracks: pd.DataFrame
    episodes: pd.DataFrame
    outcomes: list[VideoOutcome] = field(default_factory=list)
    meta: dict[str, dict] = field(default_factory=dict)
    exit_code: int = 0

    @classmethod
    def of(cls, run: AnalysisRun) -> AnalysisResult:
        videos = list(run.tables.values())
        frames = {name: _concat([v.table(name) for v in videos]) for name in TABLES}
        meta = {name: v.meta for name, v in run.tables.items()}
        return cls(**frames, outcomes=run.outcomes, meta=meta, exit_code=int(run.exit_code))

    @property
    def classes(self) -> list[str]:
        """The classes scored (of the first video: every video of one run has the same)."""
        return list(next(iter(self.meta.values()))["classes"]) if self.meta else []

    def plot_track(self, track_id: int, video: str | None = None) -> Figure:
        """A figure of one track: smoothed probability per class over time, episodes as bars.
        ``video`` is needed when several videos were analyzed."""
        from streamer.analysis.report.charts import class_colors, timeline_figure

        names = list(self.meta)
        if video is None:
            if len(names) != 1:
                raise ValueError(f"plot_track: several videos analyzed, name one of {names}")
            video = names[0]
        if video not in self.meta:
            raise ValueError(f"plot_track: no video {video!r}; analyzed: {names}")
        faces = self.faces[(self.faces["video"] == video) & (self.faces["track_id"] == track_id)]
        if not len(faces):
            raise ValueError(f"plot_track: video {video!r} has no track {track_id}")
        episodes = self.episodes[(self.episodes["video"] == video) & (self.episodes["track_id"] == track_id)]
        classes = self.meta[video]["classes"]
        return timeline_figure(faces, episodes, classes, class_colors(classes), f"{video}: track {track_id}")


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def analyze(
    videos: str | Path | Sequence[str | Path],
    classes: Sequence[str] | None = None,
    *,
    config: str | None = None,
    overrides: Sequence[str] = (),
    prompts: str | Path | None = None,
    every_frame: bool = False,
    out: str | Path | None = None,
    thumbnails: bool = True,
    report: bool = True,
    progress: bool = False,
    stop: threading.Event | None = None,
    engine: ExpressionScorer | None = None,
    detector: FaceDetector | None = None,
) -> AnalysisResult:
    """Analyze video files (paths, folders or glob patterns) and return their tables.

    Args:
        videos: one or several files, folders or patterns.
        classes: zero-shot classes (the ``--classes`` of the command line), or None for the
            configuration's.
        config: a YAML file or packaged config name (``offline`` needs no download).
        overrides: ``KEY=VALUE`` settings, as ``--set``.
        prompts: a YAML mapping class -> [prompt, ...] instead of ``classes``.
        every_frame: score every track on every frame (default: ``scheduler.max_hz`` per second of video).
        out: also write tables, report and manifest there (videos done before are read back).
        thumbnails, report: as ``--no-thumbnails`` and ``--no-report``.
        progress: progress bars on stderr.
        stop: set it to stop after the video in hand (that video is not returned).
        engine, detector: ready ones instead of those the settings describe.

    Raises:
        ConfigError: bad settings or classes; ``ModelError`` when the engine cannot load.
    """
    items = [str(videos)] if isinstance(videos, str | Path) else [str(v) for v in videos]
    overrides = list(overrides)
    if prompts is not None:
        if classes is not None:
            raise ConfigError("give classes or prompts, not both (the prompts file names its own classes)")
        overrides.append(f"engine.prompts.custom={json.dumps(str(prompts))}")
    if classes is not None:
        from streamer.cli.classes import with_classes

        overrides = with_classes(config, overrides, list(classes))
    settings = load_settings(config, overrides)
    analyzer = Analyzer(
        settings,
        out=None if out is None else Path(out),
        every_frame=every_frame,
        thumbnails=thumbnails,
        report=report,
        progress=progress,
        engine=engine,
        detector=detector,
    )
    return AnalysisResult.of(analyzer.run(items, stop))


__all__ = ["AnalysisResult", "VideoTables", "analyze"]
