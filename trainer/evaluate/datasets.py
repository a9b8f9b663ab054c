"""Labelled evaluation data: image folders (RAF-DB, AffectNet-7/8, FERPlus layouts, or
any folder-to-class mapping) and video lists in the reference annotation format.

Example:
    >>> segment_indices(86, 16)[:3]   # the reference's 16 frames at segment centres
    [2, 8, 13]

    ``image_folder("RAFDB/test", classes, layout="raf-db")`` and
    ``read_video_list("annotation/AFEW_validation.txt", num_classes=7)`` read the datasets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from configs.core.errors import ConfigError
from trainer.images import DEFAULT_EXTENSIONS, list_images

# Official label ids of each dataset's release, as folder names.
LAYOUTS: dict[str, dict[str, str]] = {
    "raf-db": {
        "1": "surprise",
        "2": "fear",
        "3": "disgust",
        "4": "happiness",
        "5": "sadness",
        "6": "anger",
        "7": "neutral",
    },
    "affectnet": {
        "0": "neutral",
        "1": "happiness",
        "2": "sadness",
        "3": "surprise",
        "4": "fear",
        "5": "disgust",
        "6": "anger",
        "7": "contempt",
    },
    "ferplus": {
        "0": "neutral",
        "1": "happiness",
        "2": "surprise",
        "3": "sadness",
        "4": "anger",
        "5": "disgust",
        "6": "fear",
        "7": "contempt",
    },
}
SYNONYMS: dict[str, str] = {
    "happy": "happiness",
    "happiness": "happiness",
    "joy": "happiness",
    "sad": "sadness",
    "sadness": "sadness",
    "neutral": "neutral",
    "angry": "anger",
    "anger": "anger",
    "surprise": "surprise",
    "surprised": "surprise",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "contempt": "contempt",
    "anxiety": "anxiety",
    "helplessness": "helplessness",
    "disappointment": "disappointment",
}
LAYOUT_NAMES = (*LAYOUTS, "names", "imagefolder", "auto")


@dataclass(frozen=True)
class LabelledImages:
    paths: list[Path]
    labels: list[int]
    mapping: dict[str, str]
    """Folder name -> class name actually used."""


@dataclass(frozen=True)
class VideoClip:
    path: Path
    num_frames: int
    label: int


def folder_mapping(
    folders: Sequence[str],
    classes: Sequence[str],
    layout: str = "auto",
    class_map: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Map class folders to class names. ``class_map`` entries override the layout."""
    if layout not in LAYOUT_NAMES:
        raise ConfigError(f"layout: got {layout!r}; allowed: {', '.join(LAYOUT_NAMES)}")
    user = dict(class_map or {})
    mapping: dict[str, str] = {}
    for f in folders:
        if f in user:
            mapping[f] = user[f]
        elif layout in LAYOUTS and f in LAYOUTS[layout]:
            mapping[f] = LAYOUTS[layout][f]
        elif layout in ("names", "auto") and f.lower() in SYNONYMS:
            mapping[f] = SYNONYMS[f.lower()]
        elif layout == "imagefolder":  # the reference: sorted folder i -> classes[i]
            i = sorted(folders).index(f)
            if i >= len(classes):
                raise ConfigError(f"layout imagefolder: {len(folders)} folders but only {len(classes)} classes")
            mapping[f] = classes[i]
        else:
            raise ConfigError(
                f"class folder {f!r} maps to no class with layout {layout!r}; "
                f"give --class-map {f}=CLASS "
                f"or a --layout among {', '.join(LAYOUT_NAMES)}"
            )
    wrong = {f: c for f, c in mapping.items() if c not in classes}
    if wrong:
        raise ConfigError(
            f"class folders map to classes outside the prompt set: {wrong}; prompt classes are "
            f"{list(classes)} (set engine.prompts.classes, e.g. basic8 for contempt)"
        )
    return mapping


def image_folder(
    root: str | Path,
    classes: Sequence[str],
    layout: str = "auto",
    class_map: Mapping[str, str] | None = None,
    extensions: Sequence[str] = DEFAULT_EXTENSIONS,
) -> LabelledImages:
    """A labelled image folder ``root/<class folder>/**/image``."""
    r = Path(root).expanduser()
    if not r.is_dir():
        raise ConfigError(f"eval images: no such folder {r}")
    folders = sorted(p.name for p in r.iterdir() if p.is_dir())
    if not folders:
        raise ConfigError(f"eval images: {r} has no class folders (expected ROOT/<class>/*.jpg)")
    mapping = folder_mapping(folders, classes, layout, class_map)
    paths, labels = [], []
    for f in folders:
        for p in list_images([r / f], extensions):
            paths.append(p)
            labels.append(list(classes).index(mapping[f]))
    return LabelledImages(paths, labels, mapping)


def read_video_list(path: str | Path, num_classes: int, root: str | Path | None = None) -> list[VideoClip]:
    """Parse ``path num_frames label`` lines (label = index in the class order). Relative
    paths resolve against ``root`` or the list file's folder."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"video list: no such file {p}")
    base = Path(root).expanduser() if root else p.parent
    clips = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        try:
            vpath, frames, label = " ".join(parts[:-2]), int(parts[-2]), int(parts[-1])
        except (ValueError, IndexError) as e:
            raise ConfigError(f"{p}:{n}: expected 'path num_frames label', got {line!r}") from e
        if not 0 <= label < num_classes:
            raise ConfigError(f"{p}:{n}: label {label} outside [0, {num_classes}) for the prompt classes")
        q = Path(vpath).expanduser()
        clips.append(VideoClip(q if q.is_absolute() else base / q, frames, label))
    return clips


def segment_indices(num_frames: int, num_segments: int = 16) -> list[int]:
    """The reference's test sampling: the centre frame of each of ``num_segments`` equal
    segments; clips with <= ``num_segments`` frames use frame 0 throughout, as the
    reference did (``_get_test_indices`` with duration 1)."""
    if num_frames > num_segments:
        tick = num_frames / float(num_segments)
        return [int(tick / 2.0 + tick * x) for x in range(num_segments)]
    return [0] * num_segments
