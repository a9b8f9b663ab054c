"""The report's HTML: one page per video (``DIR/<video>/report.html``) and an index
(``DIR/index.html``). Everything is inline (CSS, SVG charts, PNG thumbnails as data URIs): the pages open from disk in a
browser with no network, and no script runs.

Example:
    >>> bar = share_bar({"engaged": 3, "bored": 1}, {"engaged": "#1f77b4", "bored": "#ff7f0e"})
    >>> bar.count("<span"), "75%" in bar
    (2, True)
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
import pandas as pd

from streamer.analysis.report.svg import class_colors, distribution_svg, timeline_svg
from streamer.analysis.tables import VideoTables

MAX_TRACKS = 60
"""Tracks drawn on a video's page (the longest first); every track is in ``tracks.csv``."""

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px auto; padding: 0 16px; max-width: 1100px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: left; }
.track { display: flex; gap: 16px; align-items: flex-start; border-top: 1px solid #ccc; padding: 12px 0; }
.thumb { width: 128px; min-width: 128px; height: 128px; background: #eee; display: flex; align-items: center;
  justify-content: center; color: #777; font-size: 12px; }
.thumb img { max-width: 128px; max-height: 128px; }
.bar { display: flex; height: 14px; width: 260px; background: #eee; margin: 4px 0; }
.bar span { display: block; height: 100%; }
figure { margin: 6px 0; } svg { max-width: 100%; height: auto; }
.muted { color: #666; } .failed { color: #b00; } pre { background: #f6f6f6; padding: 8px; overflow-x: auto; }
"""


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def share_bar(counts: Mapping[str, int], colors: Mapping[str, str]) -> str:
    """A stacked bar of label shares, in CSS (title text per part)."""
    total = sum(counts.values()) or 1
    parts = [
        f"<span style='width:{100 * n / total:.1f}%;background:{colors.get(c, '#888')}' "
        f"title='{html.escape(c)}: {100 * n / total:.0f}%'></span>"
        for c, n in counts.items()
        if n
    ]
    return f"<div class='bar'>{''.join(parts)}</div>"


def thumb_uri(rgb: np.ndarray) -> str:
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("cannot encode a thumbnail as PNG")
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")


def label_counts(faces: pd.DataFrame, classes: list[str]) -> dict[str, int]:
    """Scored face rows per label, in class order."""
    counts = faces["label"].dropna().value_counts()
    return {c: int(counts.get(c, 0)) for c in classes}


def _track_card(tables: VideoTables, row: Any, colors: dict[str, str], thumb: np.ndarray | None) -> str:
    classes = tables.meta["classes"]
    tid = int(row.track_id)
    faces = tables.faces[tables.faces["track_id"] == tid]
    episodes = tables.episodes[tables.episodes["track_id"] == tid]
    img = f"<img src='{thumb_uri(thumb)}' alt='track {tid}'>" if thumb is not None else "<span>no thumbnail</span>"
    dominant = html.escape(str(row.dominant)) if isinstance(row.dominant, str) else "-"
    chart = timeline_svg(faces, episodes, classes, colors)
    return (
        f"<div class='track' id='track-{tid}'><div class='thumb'>{img}</div><div>"
        f"<b>track {tid}</b> <span class='muted'>{row.first_s:.2f} s - {row.last_s:.2f} s, "
        f"{row.frames_seen} frames, scored {row.scores} times, {row.episodes} episode(s)</span><br>"
        f"dominant: <b>{dominant}</b>{share_bar(label_counts(faces, classes), colors)}"
        f"<figure aria-label='timeline of track {tid}'>{chart}</figure></div></div>"
    )


def video_page(tables: VideoTables, thumbs: Mapping[int, tuple[float, int, np.ndarray]]) -> str:
    """The page of one video: summary, overall class distribution, one card per track
    (thumbnail, distribution, timeline with episodes), engine and settings."""
    meta = tables.meta
    classes = list(meta["classes"])
    colors = class_colors(classes)
    name = html.escape(meta["video"])
    frames = tables.frames
    duration = float(frames["time_s"].max() - frames["time_s"].min()) if len(frames) else 0.0
    parts = [
        f"<p><a href='../index.html'>all videos</a></p><h1>{name}</h1>",
        f"<p class='muted'>{html.escape(meta['path'])}</p>",
        f"<table><tr><th>frames</th><td>{len(frames)}</td><th>duration</th><td>{duration:.1f} s</td>"
        f"<th>faces</th><td>{len(tables.faces)}</td><th>tracks</th><td>{len(tables.tracks)}</td>"
        f"<th>episodes</th><td>{len(tables.episodes)}</td></tr></table>",
        f"<p>classes: {', '.join(html.escape(c) for c in classes)}<br>engine {html.escape(meta['engine'])}, "
        f"analysis {html.escape(meta['analysis'])}</p>",
    ]
    counts = label_counts(tables.faces, classes)
    if sum(counts.values()):
        chart = distribution_svg(counts, colors, "all tracks")
        parts.append(f"<h2>Class distribution</h2><figure aria-label='class distribution'>{chart}</figure>")
    tracks = tables.tracks.sort_values(["frames_seen", "track_id"], ascending=[False, True]).head(MAX_TRACKS)
    parts.append(f"<h2>Tracks ({len(tables.tracks)})</h2>")
    if len(tables.tracks) > MAX_TRACKS:
        parts.append(f"<p class='muted'>the {MAX_TRACKS} longest are drawn; every track is in tracks.csv</p>")
    if not len(tracks):
        parts.append("<p>no face was found in this video</p>")
    for row in tracks.sort_values("track_id").itertuples(index=False):
        best = thumbs.get(int(row.track_id))
        parts.append(_track_card(tables, row, colors, None if best is None else best[2]))
    settings = html.escape(json.dumps(meta.get("settings", {}), indent=2))
    parts.append(f"<h2>Engine and settings</h2><details><summary>settings</summary><pre>{settings}</pre></details>")
    return _page(f"{meta['video']}: expressions", "\n".join(parts))


def index_page(rows: list[dict[str, Any]], overall: dict[str, int], classes: list[str]) -> str:
    """The index: every video with its outcome (a link to its page when done) and the class
    distribution over every analyzed video."""
    colors = class_colors(classes)
    lines = ["<h1>Expression analysis</h1>", "<table><tr><th>video</th><th>status</th><th>frames</th>"]
    lines[-1] += "<th>faces</th><th>tracks</th><th>classes</th></tr>"
    for r in rows:
        name = html.escape(r["name"])
        link = f"<a href='{html.escape(r['name'])}/report.html'>{name}</a>" if r["status"] != "failed" else name
        status = (
            r["status"]
            if r["status"] != "failed"
            else f"<span class='failed'>failed: {html.escape(r['reason'] or '')}</span>"
        )
        bar = share_bar(r.get("counts", {}), colors) if r.get("counts") else ""
        lines.append(
            f"<tr><td>{link}</td><td>{status}</td><td>{r.get('frames', 0)}</td><td>{r.get('faces', 0)}</td>"
            f"<td>{r.get('tracks', 0)}</td><td>{bar}</td></tr>"
        )
    lines.append("</table>")
    if sum(overall.values()):
        chart = distribution_svg(overall, colors, "every video")
        figure = f"<figure aria-label='class distribution, every video'>{chart}</figure>"
        lines.append(f"<h2>Class distribution</h2>{figure}")
    return _page("Expression analysis", "\n".join(lines))
