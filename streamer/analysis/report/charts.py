"""A track's timeline as a matplotlib figure, for notebooks (``AnalysisResult.plot_track``);
the HTML report draws the same chart as SVG (``streamer.analysis.report.svg``), in the same
colours.

Example:
    >>> faces = pd.DataFrame({"time_s": [0.0, 0.5], "p_a": [0.2, 0.7]})
    >>> fig = timeline_figure(faces, pd.DataFrame(), ["a"], {"a": "#1f77b4"})
    >>> len(fig.axes), [float(y) for y in fig.axes[0].get_ylim()]
    (2, [0.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
from matplotlib.figure import Figure

from streamer.analysis.report.svg import class_colors
from streamer.analysis.tables import prob_columns

__all__ = ["class_colors", "timeline_figure"]


def timeline_figure(
    faces: pd.DataFrame, episodes: pd.DataFrame, classes: Sequence[str], colors: Mapping[str, str], title: str = ""
) -> Figure:
    """One track over time: its smoothed probability per class (lines) and its episodes
    (bars in the class's colour underneath)."""
    fig = Figure(figsize=(9.0, 2.6))
    grid = fig.add_gridspec(2, 1, height_ratios=(5, 1), hspace=0.08, left=0.08, right=0.84, top=0.9, bottom=0.17)
    top = fig.add_subplot(grid[0])
    bottom = fig.add_subplot(grid[1], sharex=top)
    t = faces["time_s"].to_numpy()
    for c, col in zip(classes, prob_columns(classes), strict=True):
        known = faces[col].notna().to_numpy()  # frames without a score (yet, or abstained) are skipped
        top.plot(t[known], faces[col].to_numpy()[known], color=colors[c], linewidth=1.4, label=c, marker=".", ms=2)
    top.set_ylim(0.0, 1.0)
    top.set_ylabel("probability")
    top.grid(alpha=0.3)
    top.tick_params(labelbottom=False)
    if title:
        top.set_title(title, fontsize=10, loc="left")
    top.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    for e in episodes.itertuples(index=False):
        start, end = float(e.onset_s), float(e.offset_s)
        bottom.broken_barh([(start, max(end - start, 1e-3))], (0.1, 0.8), color=colors.get(e.label, "#888888"))
    bottom.set_yticks([])
    bottom.set_ylabel("episodes", rotation=0, ha="right", va="center", fontsize=8)
    bottom.set_xlabel("time (s)")
    if len(t):
        bottom.set_xlim(float(t.min()), max(float(t.max()), float(t.min()) + 1e-3))
    return fig
