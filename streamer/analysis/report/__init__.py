"""The offline HTML report of ``streamer analyze``: a page per video and an index
(``pages``) with inline SVG charts (``svg``). Nothing is fetched when a page opens.
``charts`` draws the same timeline with matplotlib, for notebooks (``AnalysisResult.plot_track``).

Example (plain text: needs an analysis folder)::

    write_video_page(Path("results/clip"), tables, thumbs.best)
    write_index(Path("results"), manifest, outcomes)      # results/index.html
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streamer.analysis.report.pages import index_page, label_counts, video_page
from streamer.analysis.tables import VideoTables

__all__ = ["write_index", "write_video_page"]


def write_video_page(folder: Path, tables: VideoTables, thumbs: Mapping[int, tuple[float, int, np.ndarray]]) -> None:
    (folder / "report.html").write_text(video_page(tables, thumbs), encoding="utf-8")


def write_index(out: Path, manifest: Any, outcomes: Sequence[Any]) -> None:
    """``out/index.html`` over every video of the manifest (earlier runs' included) and this
    run's failed inputs."""
    rows: list[dict[str, Any]] = []
    classes: list[str] = []
    overall: dict[str, int] = {}
    for name, e in sorted(manifest.entries.items()):
        row = {"name": name, **{k: e.get(k) for k in ("status", "reason", "frames", "faces", "tracks")}}
        faces_file = out / name / "faces.parquet"
        if e.get("status") != "failed" and faces_file.is_file():
            faces = pd.read_parquet(faces_file, columns=["label"])
            names = [c for c in (e.get("classes") or []) if c]
            names = names or sorted(faces["label"].dropna().unique().tolist())
            row["counts"] = label_counts(faces, names)
            classes += [c for c in names if c not in classes]
            for c, n in row["counts"].items():
                overall[c] = overall.get(c, 0) + n
        rows.append(row)
    known = set(manifest.entries)
    rows += [
        {"name": o.name, "status": "failed", "reason": o.reason}
        for o in outcomes
        if o.status == "failed" and o.name not in known
    ]
    (out / "index.html").write_text(index_page(rows, overall, classes), encoding="utf-8")
