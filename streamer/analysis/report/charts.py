"""The report's charts, drawn with matplotlib (no pyplot, no display) and embedded as PNG data
URIs, so a page needs no network and no file beside it.

Example:
    >>> colors = class_colors(["engaged", "bored"])
    >>> colors["bored"]
    '#ff7f0e'
    >>> png_uri(distribution_figure({"engaged": 3, "bored": 1}, colors)).startswith("data:image/png;base64,")
    True
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from streamer.analysis.tables import prob_columns

DPI = 90


def class_colors(classes: Sequence[str]) -> dict[str, str]:
    """One colour per class, in class order (tab10, tab20 past ten classes)."""
    cmap = colormaps["tab10" if len(classes) <= 10 else "tab20"]
    return {c: to_hex(cmap(i % cmap.N)) for i, c in enumerate(classes)}


def png_uri(fig: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)  # fixed margins: a "tight" box would draw it twice
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


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


def distribution_figure(counts: Mapping[str, int | float], colors: Mapping[str, str], title: str = "") -> Figure:
    """A horizontal bar per class: its share of the scored faces."""
    names = list(counts)
    total = float(sum(counts.values())) or 1.0
    shares = [100.0 * counts[n] / total for n in names]
    height = 0.35 * len(names) + 0.9
    fig = Figure(figsize=(6.0, height))
    left = min(0.45, 0.1 + 0.012 * max(len(n) for n in names))  # room for the class names
    fig.subplots_adjust(left=left, right=0.95, top=1 - 0.35 / height, bottom=0.55 / height)
    ax = fig.add_subplot()
    ax.barh(names[::-1], shares[::-1], color=[colors.get(n, "#888888") for n in names[::-1]])
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of scored faces")
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    for y, share in enumerate(shares[::-1]):
        ax.text(min(share + 1.0, 88.0), y, f"{share:.0f} %", va="center", fontsize=8)
    return fig
