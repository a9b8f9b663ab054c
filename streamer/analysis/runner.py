"""``Analyzer``: the pipeline over a list of video files, one after the other, unpaced (files
block their decoder instead of dropping: every frame is decoded, tracked and published) and
in lockstep (each frame is published with its own scores, the scoring rate counts in media
time), so the results depend on the files and the settings alone. The engine and the detector
are loaded once for every video.

With an output folder, each video's tables and report page are written into a temporary
folder renamed into place once complete, and the manifest is updated: a run killed mid-way
leaves only whole outputs, and its rerun skips them and gives the same files as an
uninterrupted run. A file that cannot be read fails alone (reason in the manifest and the
summary); the others go on.

Example (plain text: loads an engine)::

    analyzer = Analyzer(load_settings("offline"), out=Path("results"))
    run = analyzer.run(["recordings/", "extra/*.mp4"])
    run.exit_code, [o.status for o in run.outcomes]      # 0 ['done', 'skipped', 'done']
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from configs import Settings
from configs.core.errors import ExitCode
from streamer.analysis.collect import Collector, Thumbnails
from streamer.analysis.files import Manifest, expand_inputs, file_key, video_names
from streamer.analysis.progress import Progress, estimate_frames
from streamer.analysis.tables import VideoTables, build_tables, read_tables, write_tables
from streamer.base import ExpressionScorer, FaceDetector
from streamer.pipeline import Pipeline, StreamSpec
from streamer.pipeline.tuning import fit_and_log

log = logging.getLogger("streamer")

RESULT_SECTIONS = ("engine", "detector", "tracker", "crops", "scheduler", "abstain", "episodes")
"""The settings that change what an analysis finds (part of its fingerprint and its metadata)."""
EVERY_FRAME_HZ = 1000.0
"""``--every-frame``: the largest scoring rate ``scheduler.max_hz`` allows, above any clip's frame rate."""


def analysis_settings(settings: Settings, *, every_frame: bool, quiet_stats: bool) -> Settings:
    """``settings`` as analysis needs them: files unpaced and played once, every frame
    published, no preview video; ``every_frame`` scores each track on every frame."""
    s = settings.replace(
        sources=settings.sources.replace(realtime=False, loop=False),
        publisher=settings.publisher.replace(publish_empty=True),
        preview=settings.preview.replace(path=None),
        stats=settings.stats.replace(enabled=settings.stats.enabled and not quiet_stats),
    )
    if every_frame:
        s = s.replace(scheduler=s.scheduler.replace(max_hz=EVERY_FRAME_HZ))
    return s


def result_settings(settings: Settings) -> dict[str, Any]:
    """The sections in ``RESULT_SECTIONS`` as plain data, caches left out."""
    data = {name: getattr(settings, name).model_dump(mode="json") for name in RESULT_SECTIONS}
    data["engine"].pop("cache_dir", None)
    data["engine"]["model"].pop("cache_dir", None)
    data["thumbnails_blurred"] = settings.preview.blur_faces
    return data


@dataclass
class VideoOutcome:
    """What became of one input."""

    name: str
    path: str
    status: Literal["done", "skipped", "failed"]
    reason: str | None = None
    frames: int = 0
    faces: int = 0
    tracks: int = 0
    seconds: float = 0.0
    """Wall time of the whole video: engine start, every frame, tables and report."""
    process_s: float = 0.0
    """Wall time of the pipeline alone (decode, detect, track, score): ``frames / process_s`` is its speed."""


@dataclass
class AnalysisRun:
    """Every input's outcome, the tables of the videos analyzed (or read back when skipped),
    and the exit code (``streamer run``'s: 0, 1 some failed, 4 none could be read, 130 stopped)."""

    outcomes: list[VideoOutcome] = field(default_factory=list)
    tables: dict[str, VideoTables] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def exit_code(self) -> ExitCode:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        failed = [o for o in self.outcomes if o.status == "failed"]
        if failed and len(failed) == len(self.outcomes):
            return ExitCode.NO_STREAM
        return ExitCode.STREAM_FAILED if failed else ExitCode.OK


class Analyzer:
    """Runs the pipeline over files; writes tables, report and manifest when ``out`` is given."""

    def __init__(
        self,
        settings: Settings,
        *,
        out: Path | None = None,
        every_frame: bool = False,
        thumbnails: bool = True,
        report: bool = True,
        progress: bool | None = None,
        engine: ExpressionScorer | None = None,
        detector: FaceDetector | None = None,
    ) -> None:
        """``progress``: bars on stderr (None: when it is a terminal); ``engine`` and
        ``detector``: ready ones instead of those the settings describe (tests, benchmarks)."""
        self.progress_enabled = progress
        quiet = progress if progress is not None else sys.stderr.isatty()  # bars, not stats lines
        analysis = analysis_settings(settings, every_frame=every_frame, quiet_stats=bool(quiet))
        self.settings = fit_and_log(analysis, lockstep=True)  # detection and scoring take turns
        self.out = out
        self.thumbnails = thumbnails and out is not None and report
        self.report = report and out is not None
        if engine is None:
            from engine import open_scorer  # torch and open_clip load here, unless a compiled engine serves

            engine = open_scorer(self.settings.engine, self.settings.pipeline.torch_threads)
        if detector is None:
            from streamer.detect import create_detector

            detector = create_detector(self.settings.detector)
        self.engine, self.detector = engine, detector
        self.results = result_settings(self.settings)
        digest = hashlib.sha256(json.dumps([self.results, every_frame], sort_keys=True).encode()).hexdigest()
        self.fingerprint = f"{engine.fingerprint}-{digest[:8]}"
        """The engine's fingerprint and a hash of every setting that changes the results."""
        self._warm = True

    def run(self, items: list[str], stop: threading.Event | None = None, keep: bool = True) -> AnalysisRun:
        """Analyze every video ``items`` name (files, folders, globs); ``keep``: return the
        tables (read back from ``out`` for videos skipped as done)."""
        stop = stop or threading.Event()
        paths, bad = expand_inputs(items)
        run = AnalysisRun([VideoOutcome(item, item, "failed", reason) for item, reason in bad])
        for item, reason in bad:
            log.error("%s: %s", item, reason)
        manifest = Manifest({}) if self.out is None else Manifest.load(self.out)
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            manifest.not_found = [{"input": item, "reason": reason} for item, reason in bad]
            manifest.record(None)
        names = video_names(paths)
        todo = []
        for path, name in zip(paths, names, strict=True):
            key = file_key(path)
            if manifest.done(name, key, self.fingerprint):
                e = manifest.entries[name]
                run.outcomes.append(
                    VideoOutcome(name, str(path), "skipped", None, e["frames"], e["faces"], e["tracks"])
                )
                if keep and self.out is not None:
                    run.tables[name] = read_tables(self.out / name)
            else:
                todo.append((path, name, key))
        bars = Progress(sum(estimate_frames(p) for p, _, _ in todo), self.progress_enabled)
        try:
            for path, name, key in todo:
                if stop.is_set():
                    run.interrupted = True
                    break
                outcome, tables = self._one(path, name, bars, stop)
                if outcome is None:
                    run.interrupted = True
                    break
                run.outcomes.append(outcome)
                entry = {"key": key, "fingerprint": self.fingerprint, "classes": list(self.engine.classes)}
                entry.update(outcome.__dict__)
                manifest.record(name, entry)
                if tables is not None and keep:
                    run.tables[name] = tables
        finally:
            bars.close()
        if self.report and self.out is not None:
            from streamer.analysis.report import write_index

            write_index(self.out, manifest, run.outcomes)
        return run

    def _one(self, path: Path, name: str, bars: Progress, stop: threading.Event):
        """Analyze one video: (outcome, tables), or (None, None) when ``stop`` cut it short."""
        t0 = time.monotonic()
        bars.start_video(name, estimate_frames(path))
        collector = Collector(on_frame=bars.tick)
        thumbs = Thumbnails(self.settings.preview.blur_faces) if self.thumbnails else None
        try:
            pipe = Pipeline(
                self.settings,
                [StreamSpec(name[:64], str(path))],
                collector,
                engine=self.engine,
                detector=self.detector,
                warm=self._warm,
                lockstep=True,
                on_frame=thumbs,
            )
            self._warm = False
            p0 = time.monotonic()
            pipe.run(stop)
            process_s = round(time.monotonic() - p0, 3)
        finally:
            bars.end_video()
        if stop.is_set():
            log.warning("%s: stopped before its end; not written (a rerun does it again)", name)
            return None, None
        rows = collector.rows
        kind, reason = rows.outcome or ("failed", "the stream never ended")
        if kind == "failed":
            log.error("%s: failed: %s", name, reason)
            return VideoOutcome(name, str(path), "failed", reason, seconds=round(time.monotonic() - t0, 2)), None
        meta = {"video": name, "path": str(path), "engine": rows.fingerprint or self.engine.fingerprint}
        meta.update(analysis=self.fingerprint, end=reason, settings=self.results)
        tables = build_tables(rows, name, {**meta, "classes": list(self.engine.classes)})
        counts = len(tables.frames), len(tables.faces), len(tables.tracks)
        outcome = VideoOutcome(name, str(path), "done", None, *counts, process_s=process_s)
        if self.out is not None:
            self._write(name, tables, thumbs)
        outcome.seconds = round(time.monotonic() - t0, 2)
        fps = counts[0] / max(process_s, 1e-6)
        log.info(
            "%s: %d frames in %.1f s (%.1f frames/s), %d faces, %d tracks", name, counts[0], process_s, fps, *counts[1:]
        )
        return outcome, tables

    def _write(self, name: str, tables: VideoTables, thumbs: Thumbnails | None) -> None:
        """Tables and report page into ``out/.name.part-PID``, renamed ``out/name`` once whole."""
        assert self.out is not None
        for stale in self.out.glob(f".{name}.part-*"):  # left by a killed run
            shutil.rmtree(stale, ignore_errors=True)
        tmp = self.out / f".{name}.part-{os.getpid()}"
        tmp.mkdir(parents=True)
        write_tables(tables, tmp)
        if self.report:
            from streamer.analysis.report import write_video_page

            write_video_page(tmp, tables, {} if thumbs is None else thumbs.best)
        final = self.out / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
