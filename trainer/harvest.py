"""Harvesting face crops from videos, so they can be extracted like an image folder.

Frames are sampled every ``trainer.extract.harvest.every_s`` seconds with PyAV; faces are
found and cut exactly as the streamer does (``detect_frames`` with the ``detector`` section,
``crop_faces`` with the ``crops`` section: 5-point alignment with keypoints, else square
boxes) and saved as PNG under ``out_dir/<video stem>-<hash>/``. A finished video leaves a ``done.json`` so a rerun skips
it; a video that cannot be decoded is listed and skipped, never fatal.

Example (plain text)::

    stats = harvest_videos(["cams/lobby.mp4"], "feats/harvest", load_settings("offline"))
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image
from tqdm import tqdm

from configs import Settings
from configs.core.errors import ConfigError, MissingDependency

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = ("mp4", "mkv", "avi", "mov", "webm", "m4v", "ts")

FaceCutter = Callable[[Any], np.ndarray]
"""PyAV video frame -> uint8 RGB faces [K, S, S, 3]."""


@dataclass
class HarvestStats:
    videos: int = 0
    skipped_done: int = 0
    frames: int = 0
    faces: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def streamer_face_cutter(settings: Settings) -> FaceCutter:
    """The streamer's own detection (``detect_frames`` with the ``detector`` section) and
    crops (the ``crops`` section) as one frame -> faces function.

    Imported lazily: the trainer needs the streamer only to harvest videos.
    """
    try:
        # the streamer only for harvesting videos (MissingDependency below)
        from streamer.detect import FrameError, create_detector, detect_frames
        from streamer.frames import FrameImage
        from streamer.stages.align import crop_faces
    except ImportError as e:
        raise MissingDependency(
            f"video harvesting uses the streamer's face detector and alignment, which could not "
            f"be imported ({e}); harvest faces another way and pass the folder with --images"
        ) from e
    det = create_detector(settings.detector)
    harvest, crops = settings.trainer.extract.harvest, settings.crops

    def cut(frame: Any) -> np.ndarray:
        image = FrameImage.from_av(frame)
        (dets,) = detect_frames(det, [image], settings.detector)
        if isinstance(dets, FrameError):
            raise ValueError(f"{dets.stage} failed: {dets.error}")
        dets = dets.select(np.arange(min(len(dets), harvest.max_faces_per_frame)))
        return crop_faces(image, dets.bbox_xyxy, dets.kps, harvest.crop_size, crops.align, crops.box_expand)

    return cut


def _video_key(path: Path) -> str:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
    return f"{path.stem}-{digest}"


def harvest_video(path: Path, out: Path, cut: FaceCutter, every_s: float) -> tuple[int, int]:
    """Sample, detect, crop and save one video's faces. Returns (frames, faces)."""

    out.mkdir(parents=True, exist_ok=True)
    frames = faces = 0
    next_t = 0.0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or 25)
        for i, frame in enumerate(container.decode(stream)):
            t = float(frame.pts * stream.time_base) if frame.pts is not None else i / rate
            if t + 1e-6 < next_t:
                continue
            next_t = t + every_s
            frames += 1
            try:
                crops = cut(frame)
            except ValueError as e:  # a face outside the picture: skip this frame's faces
                log.debug("harvest: %s at %.2fs: %s", path, t, e)
                continue
            for k, crop in enumerate(crops):
                Image.fromarray(crop).save(out / f"t{round(t * 1000):09d}-f{k}.png")
                faces += 1
    return frames, faces


def _video_files(videos: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for v in videos:
        p = Path(v).expanduser()
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*") if q.suffix.lower().lstrip(".") in VIDEO_EXTENSIONS))
        elif p.is_file():
            files.append(p)
        else:
            raise ConfigError(f"video input {p}: no such file or folder")
    return files


def harvest_videos(
    videos: Iterable[str | Path],
    out_dir: str | Path,
    settings: Settings,
    progress: bool = False,
    cut: FaceCutter | None = None,
) -> HarvestStats:
    """Harvest faces from video files (or folders of them) into ``out_dir``."""

    files = _video_files(videos)
    stats = HarvestStats()
    root = Path(out_dir).expanduser()
    for path in tqdm(files, desc="harvesting", unit="video", disable=not progress):
        dest = root / _video_key(path)
        if (dest / "done.json").is_file():
            stats.skipped_done += 1
            continue
        cut = cut or streamer_face_cutter(settings)
        try:
            frames, faces = harvest_video(path, dest, cut, settings.trainer.extract.harvest.every_s)
        except (av.error.FFmpegError, OSError) as e:
            stats.failed.append((str(path), f"{type(e).__name__}: {e}"))
            log.warning("harvest: skipping %s (%s)", path, e)
            continue
        done = {"video": str(path), "frames": frames, "faces": faces}
        (dest / "done.json").write_text(json.dumps(done))
        stats.videos += 1
        stats.frames += frames
        stats.faces += faces
    return stats
