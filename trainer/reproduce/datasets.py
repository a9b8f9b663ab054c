"""The paper's benchmarks under one data root: found in a known layout, or reported absent.

Layouts looked for, in this order (docs/training.md, "Reproducing the paper"):

* the authors' own tree: ROOT mirrors their ``/data/EECS-IoannisLab/datasets/``. Static
  datasets are ``Static_FER_Datasets/<RAFDB|AffectNet7|AffectNet8|FERPlus>_Face/test/``
  read as ``datasets.ImageFolder`` (sorted folder i = class i); video datasets are their
  annotation lists (``DFEW_set_1_test.txt`` ... as shipped in their repository's
  ``annotation/``) copied to ``ROOT/annotation/``, whose absolute paths under their prefix
  are read under ROOT;
* the official releases: RAF-DB ``RAF-DB/basic/EmoLabel/list_patition_label.txt`` with
  ``basic/Image/aligned/``; AffectNet ``AffectNet/val_set/{images,annotations}`` (``*_exp.npy``);
  DFEW ``DFEW/EmoLabel_DataSplit/test(single-labeled)/set_{1..5}.csv`` with the frame folders
  ``DFEW/Clip/clip_224x224/<id>/``;
* label folders: ``RAF-DB/test/<1..7>``, ``AffectNet/val/<0..7>``, ``FERPlus/test/<0..7>``
  (each dataset's label ids, or class names).

Example (plain text)::

    found = locate(BENCHMARKS_BY_KEY["dfew"], Path("/data"), classes)   # Located or Absent
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from trainer.evaluate.datasets import LAYOUTS, SYNONYMS, VideoClip, folder_mapping, read_video_list
from trainer.images import DEFAULT_EXTENSIONS, list_images

AUTHORS_PREFIX = "/data/EECS-IoannisLab/datasets/"
"""Where the authors' annotation lists say their data was; read under the data root instead."""


@dataclass(frozen=True)
class Benchmark:
    """One column of the paper's Table 2."""

    key: str
    title: str
    classes: str
    """The class set scored (basic7, basic8, mafw11)."""
    kind: Literal["images", "videos"]
    folds: int
    """Test folds averaged, as the reference did (DFEW and MAFW: 5)."""


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("raf-db", "RAF-DB", "basic7", "images", 1),
    Benchmark("affectnet-7", "AffectNet-7", "basic7", "images", 1),
    Benchmark("affectnet-8", "AffectNet-8", "basic8", "images", 1),
    Benchmark("ferplus", "FERPlus", "basic8", "images", 1),
    Benchmark("dfew", "DFEW", "basic7", "videos", 5),
    Benchmark("ferv39k", "FERV39k", "basic7", "videos", 1),
    Benchmark("mafw", "MAFW", "mafw11", "videos", 5),
    Benchmark("afew", "AFEW", "basic7", "videos", 1),
)
BENCHMARKS_BY_KEY = {b.key: b for b in BENCHMARKS}


@dataclass(frozen=True)
class Fold:
    """One test split: labelled image paths, or video clips."""

    paths: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    clips: list[VideoClip] | None = None

    def __len__(self) -> int:
        return len(self.clips) if self.clips is not None else len(self.paths)


@dataclass(frozen=True)
class Located:
    benchmark: Benchmark
    layout: str
    where: str
    folds: list[Fold]


@dataclass(frozen=True)
class Absent:
    benchmark: Benchmark
    looked: list[str]
    """Where each layout was looked for (and why it did not count)."""


Finder = Callable[[Path, Sequence[str]], "tuple[str, str, list[Fold]] | str"]
"""(root, classes) -> (layout, where, folds), or a string saying where it looked."""


def _images(folder: Path) -> list[Path]:
    return list_images([folder], DEFAULT_EXTENSIONS)


def _authors_images(name: str) -> Finder:
    def find(root: Path, classes: Sequence[str]) -> tuple[str, str, list[Fold]] | str:
        d = root / "Static_FER_Datasets" / f"{name}_Face" / "test"
        if not d.is_dir():
            return str(d)
        folders = sorted(p.name for p in d.iterdir() if p.is_dir())
        mapping = folder_mapping(folders, classes, "imagefolder")  # the reference's ImageFolder
        paths, labels = [], []
        for f in folders:
            for p in _images(d / f):
                paths.append(p)
                labels.append(list(classes).index(mapping[f]))
        return "authors' face crops (ImageFolder: sorted folder i = class i)", str(d), [Fold(paths, labels)]

    return find


def _label_folders(rel: str, layout: str) -> Finder:
    def find(root: Path, classes: Sequence[str]) -> tuple[str, str, list[Fold]] | str:
        d = root / rel
        if not d.is_dir():
            return str(d)
        paths, labels = [], []
        for f in sorted(p.name for p in d.iterdir() if p.is_dir()):
            cls = LAYOUTS[layout].get(f) or SYNONYMS.get(f.lower())
            if cls in classes:  # e.g. AffectNet-7 leaves contempt out
                for p in _images(d / f):
                    paths.append(p)
                    labels.append(list(classes).index(cls))
        return f"label folders ({layout} ids or class names)", str(d), [Fold(paths, labels)]

    return find


def _rafdb_official(root: Path, classes: Sequence[str]) -> tuple[str, str, list[Fold]] | str:
    base = root / "RAF-DB" / "basic"
    listing = base / "EmoLabel" / "list_patition_label.txt"
    if not listing.is_file():
        return str(listing)
    paths, labels = [], []
    for line in listing.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("test_"):
            paths.append(base / "Image" / "aligned" / f"{Path(parts[0]).stem}_aligned.jpg")
            labels.append(list(classes).index(LAYOUTS["raf-db"][parts[1]]))
    return "official release (EmoLabel list, aligned faces)", str(base), [Fold(paths, labels)]


def _affectnet_official(root: Path, classes: Sequence[str]) -> tuple[str, str, list[Fold]] | str:
    base = root / "AffectNet" / "val_set"
    if not (base / "annotations").is_dir() or not (base / "images").is_dir():
        return str(base)
    paths, labels = [], []
    for npy in sorted((base / "annotations").glob("*_exp.npy")):
        cls = LAYOUTS["affectnet"].get(str(np.load(npy, allow_pickle=False).item()))
        if cls in classes:
            paths.append(base / "images" / f"{npy.name.removesuffix('_exp.npy')}.jpg")
            labels.append(list(classes).index(cls))
    return "official release (val_set, *_exp.npy labels)", str(base), [Fold(paths, labels)]


def _under_root(clip: VideoClip, root: Path) -> VideoClip:
    text = str(clip.path)
    return replace(clip, path=root / text[len(AUTHORS_PREFIX) :]) if text.startswith(AUTHORS_PREFIX) else clip


def _authors_lists(names: Sequence[str]) -> Finder:
    def find(root: Path, classes: Sequence[str]) -> tuple[str, str, list[Fold]] | str:
        lists = [root / "annotation" / n for n in names]
        if not all(p.is_file() for p in lists):
            return ", ".join(str(p) for p in lists if not p.is_file())
        folds = [Fold(clips=[_under_root(c, root) for c in read_video_list(p, len(classes), root)]) for p in lists]
        return "authors' annotation lists (paths under their prefix read under ROOT)", str(root / "annotation"), folds

    return find


def _dfew_official(root: Path, classes: Sequence[str]) -> tuple[str, str, list[Fold]] | str:
    split = root / "DFEW" / "EmoLabel_DataSplit" / "test(single-labeled)"
    lists = [split / f"set_{k}.csv" for k in range(1, 6)]
    if not all(p.is_file() for p in lists):
        return ", ".join(str(p) for p in lists if not p.is_file())
    frames = root / "DFEW" / "Clip" / "clip_224x224"
    folds = []
    for p in lists:
        with p.open(newline="") as f:
            rows = list(csv.DictReader(f))
        clips = []
        for row in rows:  # labels 1..7 = happy, sad, neutral, angry, surprise, disgust, fear
            folder = frames / str(row["video_name"]).zfill(5)
            n = sum(1 for _ in folder.glob("*.jpg"))  # the authors counted the frames this way
            clips.append(VideoClip(folder, n, int(row["label"]) - 1))
        folds.append(Fold(clips=clips))
    return "official release (EmoLabel_DataSplit csv, Clip/clip_224x224 frames)", str(root / "DFEW"), folds


FINDERS: dict[str, list[Finder]] = {
    "raf-db": [_authors_images("RAFDB"), _rafdb_official, _label_folders("RAF-DB/test", "raf-db")],
    "affectnet-7": [_authors_images("AffectNet7"), _affectnet_official, _label_folders("AffectNet/val", "affectnet")],
    "affectnet-8": [_authors_images("AffectNet8"), _affectnet_official, _label_folders("AffectNet/val", "affectnet")],
    "ferplus": [_authors_images("FERPlus"), _label_folders("FERPlus/test", "ferplus")],
    "dfew": [_authors_lists([f"DFEW_set_{k}_test.txt" for k in range(1, 6)]), _dfew_official],
    "ferv39k": [_authors_lists(["FERV39k_test.txt"])],
    "mafw": [_authors_lists([f"MAFW_set_{k}_test.txt" for k in range(1, 6)])],
    "afew": [_authors_lists(["AFEW_validation.txt"])],
}
"""Layouts tried per benchmark, first found wins."""


def locate(benchmark: Benchmark, root: str | Path, classes: Sequence[str]) -> Located | Absent:
    """Find ``benchmark`` under ``root`` in the first layout present that holds samples."""
    r = Path(root).expanduser()
    looked = []
    for find in FINDERS[benchmark.key]:
        found = find(r, classes)
        if isinstance(found, str):
            looked.append(found)
            continue
        layout, where, folds = found
        if all(len(f) == 0 for f in folds):
            looked.append(f"{where} (no samples)")
            continue
        return Located(benchmark, layout, where, folds)
    return Absent(benchmark, looked)
