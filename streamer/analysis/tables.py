"""One video's results as pandas DataFrames, written as Parquet (pyarrow) and CSV with the
engine fingerprint and classes in the metadata (docs/analyze.md lists every column).

- ``faces``: one row per face per processed frame: time, frame, track, box, detection score,
  the raw (``raw_<class>``) and smoothed (``p_<class>``) probabilities of the track's latest
  score, label, abstention reason.
- ``frames``: one row per processed frame (time, faces in it), frames without faces included.
- ``tracks``: one row per track: first/last time, frames seen and scored, dominant class, mean
  smoothed probabilities (``mean_<class>``), episode count.
- ``episodes``: one row per expression episode (the pipeline's episode stage).

Example:
    >>> raw_columns(["engaged", "bored"]), prob_columns(["engaged", "bored"])
    (['raw_engaged', 'raw_bored'], ['p_engaged', 'p_bored'])
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from streamer.analysis.collect import FACE_FIELDS, Collected

TABLES = ("faces", "frames", "tracks", "episodes")
META_KEY = b"expstream"
"""The Parquet schema metadata key holding ``meta`` as JSON (also written as ``meta.json``)."""
_NULLABLE_INTS = ("scored_frame", "relinked_from")


def raw_columns(classes: Sequence[str]) -> list[str]:
    return [f"raw_{c}" for c in classes]


def prob_columns(classes: Sequence[str]) -> list[str]:
    return [f"p_{c}" for c in classes]


def mean_columns(classes: Sequence[str]) -> list[str]:
    return [f"mean_{c}" for c in classes]


@dataclass
class VideoTables:
    """The four tables of one video and what describes them (``meta``: video, engine
    fingerprint, classes, settings)."""

    faces: pd.DataFrame
    frames: pd.DataFrame
    tracks: pd.DataFrame
    episodes: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    def table(self, name: str) -> pd.DataFrame:
        return getattr(self, name)


def _probs(values: list[list[float] | None], n: int) -> np.ndarray:
    out = np.full((len(values), n), np.nan)
    for i, v in enumerate(values):
        if v is not None:
            out[i] = v
    return out


def face_table(rows: Collected, video: str, classes: Sequence[str]) -> pd.DataFrame:
    fixed = [r[: len(FACE_FIELDS)] for r in rows.faces]
    df = pd.DataFrame.from_records(fixed, columns=list(FACE_FIELDS))
    df = df.astype({"frame": "int64", "time_s": "float64", "track_id": "int64", "predicted": "bool"})
    for col in ("x0", "y0", "x1", "y1"):  # the messages' precision, without float32 digits
        df[col] = df[col].astype("float64").round(1)
    for col in ("det_score", "score"):
        df[col] = df[col].astype("float64").round(4)
    for col in _NULLABLE_INTS:
        df[col] = df[col].astype("Int64")
    for col in ("label", "abstain"):
        df[col] = df[col].astype("str").where(df[col].notna(), None) if len(df) else df[col].astype("str")
    n = len(classes)
    raw = pd.DataFrame(_probs([r[-2] for r in rows.faces], n).round(4), columns=raw_columns(classes))
    smooth = pd.DataFrame(_probs([r[-1] for r in rows.faces], n).round(4), columns=prob_columns(classes))
    df.insert(0, "video", pd.Series([video] * len(df), dtype="str"))
    return pd.concat([df, raw, smooth], axis=1)


def frame_table(rows: Collected, video: str) -> pd.DataFrame:
    df = pd.DataFrame.from_records(rows.frames, columns=["frame", "time_s", "faces"])
    df = df.astype({"frame": "int64", "time_s": "float64", "faces": "int64"})
    df.insert(0, "video", pd.Series([video] * len(df), dtype="str"))
    return df


def episode_table(rows: Collected, video: str, classes: Sequence[str]) -> pd.DataFrame:
    cols = ["track_id", "episode_id", "label", "onset_s", "offset_s", "duration_s", "peak_score", "peak_time_s"]
    cols += ["observations", "reason"]
    df = pd.DataFrame.from_records([[e[c] for c in cols] for e in rows.episodes], columns=cols)
    df = df.astype({"track_id": "int64", "episode_id": "int64", "observations": "int64", "label": "str"})
    df = df.astype({"reason": "str"})
    for col in ("onset_s", "offset_s", "duration_s", "peak_score", "peak_time_s"):
        df[col] = df[col].astype("float64")
    mean_probs = _probs([e["mean_probs"] for e in rows.episodes], len(classes)).round(4)
    means = pd.DataFrame(mean_probs, columns=mean_columns(classes))
    df.insert(0, "video", pd.Series([video] * len(df), dtype="str"))
    return pd.concat([df, means], axis=1)


def track_table(faces: pd.DataFrame, episodes: pd.DataFrame, video: str, classes: Sequence[str]) -> pd.DataFrame:
    """One row per track, from its face rows and its episodes."""
    rows = []
    probs, means = prob_columns(classes), mean_columns(classes)
    for tid, g in faces.groupby("track_id", sort=True):
        scored = g[g["label"].notna()]  # frames published with a label (the track's latest score)
        counts = scored["label"].value_counts()
        dominant = str(counts.index[0]) if len(counts) else None
        relinked = g["relinked_from"].dropna()
        row = {
            "video": video,
            "track_id": int(tid),
            "first_s": float(g["time_s"].min()),
            "last_s": float(g["time_s"].max()),
            "first_frame": int(g["frame"].min()),
            "last_frame": int(g["frame"].max()),
            "frames_seen": len(g),
            "frames_labelled": len(scored),
            "scores": int(scored["scored_frame"].nunique()),
            "dominant": dominant,
            "dominant_share": float(counts.iloc[0] / len(scored)) if len(counts) else math.nan,
            "episodes": int((episodes["track_id"] == tid).sum()),
            "relinked_from": int(relinked.iloc[0]) if len(relinked) else None,
        }
        mean = scored[probs].mean().round(4).tolist() if len(scored) else [math.nan] * len(probs)
        row.update(zip(means, mean, strict=True))
        rows.append(row)
    cols = ["video", "track_id", "first_s", "last_s", "first_frame", "last_frame", "frames_seen", "frames_labelled"]
    cols.append("scores")
    cols += ["dominant", "dominant_share", "episodes", "relinked_from", *means]
    df = pd.DataFrame.from_records(rows, columns=cols)
    ints = ("track_id", "first_frame", "last_frame", "frames_seen", "frames_labelled", "scores", "episodes")
    df = df.astype({c: "int64" for c in ints} | {"video": "str", "relinked_from": "Int64"})
    df["dominant"] = df["dominant"].astype("str").where(df["dominant"].notna(), None) if len(df) else df["dominant"]
    for col in ("first_s", "last_s", "dominant_share", *means):
        df[col] = df[col].astype("float64")
    return df


def build_tables(rows: Collected, video: str, meta: dict[str, Any]) -> VideoTables:
    """The four tables of one video's collected rows."""
    classes = list(rows.classes or meta.get("classes", []))
    faces = face_table(rows, video, classes)
    episodes = episode_table(rows, video, classes)
    tracks = track_table(faces, episodes, video, classes)
    return VideoTables(faces, frame_table(rows, video), tracks, episodes, {**meta, "classes": classes})


def write_tables(tables: VideoTables, folder: Path) -> None:
    """``<table>.parquet`` and ``<table>.csv`` for each table, and ``meta.json``, into ``folder``."""
    blob = json.dumps(tables.meta, sort_keys=True).encode()
    for name in TABLES:
        df = tables.table(name)
        arrow = pa.Table.from_pandas(df, preserve_index=False)
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), META_KEY: blob})
        pq.write_table(arrow, folder / f"{name}.parquet")
        df.to_csv(folder / f"{name}.csv", index=False)
    (folder / "meta.json").write_text(json.dumps(tables.meta, indent=2, sort_keys=True) + "\n")


def read_tables(folder: Path) -> VideoTables:
    """The tables ``write_tables`` wrote (from Parquet) and their metadata."""
    frames = {name: pd.read_parquet(folder / f"{name}.parquet") for name in TABLES}
    meta = json.loads(pq.read_schema(folder / "faces.parquet").metadata[META_KEY])
    return VideoTables(**frames, meta=meta)
