"""The report's charts as SVG inline in its HTML (no namespace needed there): a track's
timeline (smoothed probability per class, its episodes as bars underneath) and a class
distribution. Written as markup, not drawn with
matplotlib: a page of six tracks took ~0.8 s of CPU to rasterise and ~0.6 s to import
matplotlib, most of what ``streamer analyze`` spends after the pipeline on 2 cores; markup
costs milliseconds, stays sharp at any zoom, and each line, bar and episode names its class
on hover (``<title>``). Notebooks keep matplotlib (``streamer.analysis.report.charts``).

Long tracks are drawn at one point per pixel column (the mean of the frames in it), so a
page's size does not grow with the video's length.

Example:
    >>> colors = class_colors(["engaged", "bored"])
    >>> colors["bored"]
    '#ff7f0e'
    >>> svg = distribution_svg({"engaged": 3, "bored": 1}, colors, "all tracks")
    >>> svg.startswith("<svg") and svg.count("<rect") == 2 and "75 %" in svg
    True
    >>> nice_ticks(0.0, 9.7)
    [0.0, 2.0, 4.0, 6.0, 8.0]
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from streamer.analysis.tables import prob_columns

TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
TAB20 = (
    "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd", "#c5b0d5",
    "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d", "#17becf", "#9edae5",
)  # fmt: skip
"""matplotlib's ``tab10`` and ``tab20`` palettes, so the report and ``plot_track`` agree."""

WIDTH, HEIGHT = 900, 250
PLOT_X0, PLOT_X1, PLOT_Y0, PLOT_Y1 = 66, 750, 12, 172
"""The probability panel; the episode band lies under it, the legend to its right."""
BAND_Y0, BAND_Y1 = 182, 200
FONT = "font-family='system-ui, sans-serif' font-size='11'"


def class_colors(classes: Sequence[str]) -> dict[str, str]:
    """One colour per class, in class order (tab10, tab20 past ten classes)."""
    palette = TAB10 if len(classes) <= 10 else TAB20
    return {c: palette[i % len(palette)] for i, c in enumerate(classes)}


def nice_ticks(lo: float, hi: float, most: int = 7) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) in [lo, hi]: the finest such
    spacing that gives at most ``most`` of them and at least one."""
    span = max(hi - lo, 1e-9)
    exp = math.floor(math.log10(span / max(1, most - 1)))
    for step in sorted(m * 10.0**e for e in range(exp - 1, exp + 3) for m in (1, 2, 5)):
        first = math.ceil(lo / step - 1e-9) * step
        count = math.floor((hi - first) / step + 1e-9) + 1
        if 1 <= count <= most:
            return [round(first + i * step, 10) for i in range(count)]
    return [lo]


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _columns(t: np.ndarray, v: np.ndarray, x0: float, x1: float, t0: float, t1: float) -> list[tuple[float, float]]:
    """(x, value) per pixel column holding a known value: the mean of the values in it."""
    known = ~np.isnan(v)
    t, v = t[known], v[known]
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    if not len(t):
        return []
    x = x0 + (t - t0) / max(t1 - t0, 1e-9) * (x1 - x0)
    col = np.clip(np.floor(x - x0).astype(np.int64), 0, int(x1 - x0))
    _, first = np.unique(col, return_index=True)
    sums = np.add.reduceat(v, first)
    xs = np.add.reduceat(x, first)
    counts = np.diff(np.append(first, len(v)))
    return list(zip((xs / counts).tolist(), (sums / counts).tolist(), strict=True))


def timeline_svg(faces: pd.DataFrame, episodes: pd.DataFrame, classes: Sequence[str], colors: Mapping[str, str]) -> str:
    """One track over time: its smoothed probability per class (a line each; frames without
    a score, yet or abstained, are skipped) and its episodes (bars in the class's colour)."""
    t = faces["time_s"].to_numpy(np.float64)
    t0 = float(t.min()) if len(t) else 0.0
    t1 = max(float(t.max()) if len(t) else 1.0, t0 + 1e-3)

    def xpos(s: float) -> float:
        return PLOT_X0 + (s - t0) / (t1 - t0) * (PLOT_X1 - PLOT_X0)

    def ypos(p: float) -> float:
        return PLOT_Y1 - p * (PLOT_Y1 - PLOT_Y0)

    out = [
        f"<svg viewBox='0 0 {WIDTH} {HEIGHT}' width='{WIDTH}' height='{HEIGHT}' "
        f"role='img' {FONT}><rect x='{PLOT_X0}' y='{PLOT_Y0}' width='{PLOT_X1 - PLOT_X0}' "
        f"height='{PLOT_Y1 - PLOT_Y0}' fill='none' stroke='#999'/>"
    ]
    for p in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = ypos(p)
        out.append(f"<line x1='{PLOT_X0}' x2='{PLOT_X1}' y1='{y:.1f}' y2='{y:.1f}' stroke='#ddd'/>")
        out.append(f"<text x='{PLOT_X0 - 6}' y='{y + 4:.1f}' text-anchor='end'>{p:g}</text>")
    out.append(
        f"<text x='12' y='{(PLOT_Y0 + PLOT_Y1) / 2:.0f}' text-anchor='middle' "
        f"transform='rotate(-90 12 {(PLOT_Y0 + PLOT_Y1) / 2:.0f})'>probability</text>"
    )
    for s in nice_ticks(t0, t1):
        x = xpos(s)
        out.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{PLOT_Y0}' y2='{BAND_Y1}' stroke='#eee'/>")
        out.append(f"<text x='{x:.1f}' y='{BAND_Y1 + 16}' text-anchor='middle'>{s:g}</text>")
    out.append(f"<text x='{(PLOT_X0 + PLOT_X1) / 2:.0f}' y='{HEIGHT - 6}' text-anchor='middle'>time (s)</text>")
    for i, (c, col) in enumerate(zip(classes, prob_columns(classes), strict=True)):
        pts = _columns(t, faces[col].to_numpy(np.float64), PLOT_X0, PLOT_X1, t0, t1)
        color = colors.get(c, "#888888")
        if pts:
            path = " ".join(f"{x:.1f},{ypos(v):.1f}" for x, v in pts)
            out.append(
                f"<polyline class='series' data-class='{_esc(c)}' points='{path}' fill='none' stroke='{color}' "
                f"stroke-width='1.5'><title>{_esc(c)}</title></polyline>"
            )
        y = PLOT_Y0 + 6 + 15 * i
        key = f"x1='{PLOT_X1 + 12}' x2='{PLOT_X1 + 30}' y1='{y}' y2='{y}'"
        out.append(f"<line {key} stroke='{color}' stroke-width='3'/>")
        out.append(f"<text x='{PLOT_X1 + 36}' y='{y + 4}'>{_esc(c)}</text>")
    out.append(f"<text x='{PLOT_X0 - 6}' y='{BAND_Y1 - 5}' text-anchor='end' fill='#666'>episodes</text>")
    out.append(
        f"<rect x='{PLOT_X0}' y='{BAND_Y0}' width='{PLOT_X1 - PLOT_X0}' height='{BAND_Y1 - BAND_Y0}' "
        "fill='#f4f4f4' stroke='#ccc'/>"
    )
    for e in episodes.itertuples(index=False):
        start, end = float(e.onset_s), float(e.offset_s)
        x0, x1 = xpos(start), xpos(max(end, start + 1e-3))
        label = str(e.label)
        out.append(
            f"<rect class='episode' x='{x0:.1f}' y='{BAND_Y0}' width='{max(x1 - x0, 1.0):.1f}' "
            f"height='{BAND_Y1 - BAND_Y0}' fill='{colors.get(label, '#888888')}'>"
            f"<title>{_esc(label)}: {start:.2f} s - {end:.2f} s</title></rect>"
        )
    out.append("</svg>")
    return "".join(out)


def distribution_svg(counts: Mapping[str, int | float], colors: Mapping[str, str], title: str = "") -> str:
    """A horizontal bar per class: its share of the scored faces, with the percentage."""
    names = list(counts)
    total = float(sum(counts.values())) or 1.0
    label_w = 14 + 7 * max((len(n) for n in names), default=1)
    bar_x0, bar_x1, row_h, top = label_w, label_w + 380, 20, 26 if title else 6
    height = top + row_h * len(names) + 8
    width = bar_x1 + 50
    out = [f"<svg viewBox='0 0 {width} {height}' width='{width}' height='{height}' role='img' {FONT}>"]
    if title:
        out.append(f"<text x='4' y='16' font-weight='bold'>{_esc(title)}</text>")
    for i, n in enumerate(names):
        share = 100.0 * counts[n] / total
        y = top + row_h * i
        w = (bar_x1 - bar_x0) * share / 100.0
        out.append(f"<text x='{bar_x0 - 6}' y='{y + 14}' text-anchor='end'>{_esc(n)}</text>")
        out.append(
            f"<rect x='{bar_x0}' y='{y + 3}' width='{w:.1f}' height='{row_h - 6}' fill='{colors.get(n, '#888888')}'>"
            f"<title>{_esc(n)}: {share:.1f} %</title></rect>"
        )
        out.append(f"<text x='{bar_x0 + w + 4:.1f}' y='{y + 14}'>{share:.0f} %</text>")
    out.append("</svg>")
    return "".join(out)
