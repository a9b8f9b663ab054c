"""``streamer bench`` in pipeline mode: one run, or a sweep of streams x faces, on a file, a
URL, the demo clip or a synthetic workload; a table on stdout and the JSON report.

Example (plain text)::

    $ streamer bench --faces 4 --resolution 1920x1080 --streams 8 --seconds 20 --realtime
    $ streamer bench --sweep streams=1,2,4,8 faces=1,4,16 --max-latency-ms 150 --json out/sweep.json
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from configs import Settings, dump_settings, load_settings
from configs.core.errors import ConfigError
from streamer.base import Publisher
from streamer.benchmark.report import (
    command_line,
    config_fingerprint,
    machine,
    runs_table,
    stages_table,
    sweep_table,
    versions,
)
from streamer.benchmark.runner import run_streams
from streamer.benchmark.sweep import parse_sweep, sweep
from streamer.benchmark.workload import Workload, WorkloadClip, make_workload

log = logging.getLogger("streamer")

FACES_FROM = ("detector", "truth", "truth+detector")
SWEEP_SECONDS = 10.0


def _synthetic(args: argparse.Namespace, sweep_faces: list[int] | None) -> bool:
    return bool(sweep_faces or args.faces or args.resolution or args.faces_from != "detector")


def _workload(args: argparse.Namespace, faces: int) -> Workload:
    w, h = args.resolution or (1280, 720)
    return Workload(w, h, fps=args.fps, codec=args.codec, seconds=args.duration, faces=faces, seed=args.workload_seed)


def _source_fps(uri: str) -> float | None:
    """The frame rate a file declares (None for what cannot be probed quickly, e.g. live URLs)."""
    import av

    from streamer.sources.uri import classify_uri

    if classify_uri(uri).live:
        return None
    try:
        with av.open(uri) as c:
            rate = c.streams.video[0].average_rate or c.streams.video[0].guessed_rate
            return float(rate) if rate else None
    except (av.error.FFmpegError, OSError, IndexError):
        return None


def _detector_for(settings: Settings, faces_from: str, clip: WorkloadClip | None, real: Any) -> Any:
    if faces_from == "detector":
        return real
    from streamer.benchmark.truth import TruthDetector

    if clip is None:
        raise ConfigError("--faces-from truth needs a synthetic workload (--faces, --resolution or --sweep faces=)")
    size = (settings.detector.input_size, settings.detector.input_size)
    return TruthDetector(clip.truth, size, cost=real if faces_from == "truth+detector" else None)


def _publisher(settings: Settings, stack: ExitStack) -> Publisher:
    """``--publish``: the service's publishing side (``streamer.service.outlets.Outlets``: its
    one ZeroMQ context, CurveZMQ security, state board and snapshot endpoint), over ZeroMQ
    whatever ``publisher.kind`` says; closed with ``stack``."""
    from streamer.service.outlets import Outlets

    outlets = stack.enter_context(Outlets(settings.replace(publisher=settings.publisher.replace(kind="zmq"))))
    publisher = outlets.publish()
    outlets.serve_snapshot()
    return publisher


def pipeline_bench(
    args: argparse.Namespace, argv: list[str], on_report: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Run what the arguments ask for; returns the JSON report (also printed as tables).
    ``on_report`` gets the report so far after every run (a sweep cut short keeps its runs)."""
    from engine import ExpressionEngine
    from streamer.detect import create_detector

    try:
        plan = parse_sweep(args.sweep) if args.sweep else None
    except ValueError as e:
        raise ConfigError(str(e)) from e
    overrides = list(args.overrides)
    if plan is not None:
        overrides.append("sources.realtime=true")  # a sweep asks what keeps up with cameras
    if args.faces_from != "detector":
        overrides.append("detector.full_frame_every=1")  # the truth is read from whole pictures
    settings = load_settings(args.config, overrides)
    log.debug("resolved configuration:\n%s", dump_settings(settings))
    seconds = args.seconds if args.seconds > 0 or plan is None else SWEEP_SECONDS
    faces_axis: list[int | None] = list((plan or {}).get("faces") or [args.faces or None])
    synthetic = _synthetic(args, (plan or {}).get("faces"))
    if synthetic and args.source:
        raise ConfigError("give either a SOURCE or a synthetic workload (--faces/--resolution/--sweep faces=)")
    streams_axis = plan["streams"] if plan else [max(1, args.streams)]

    engine = ExpressionEngine(settings.engine)
    real_detector = create_detector(settings.detector)
    clips: dict[int | None, WorkloadClip] = {}

    def source_for(faces: int | None) -> tuple[str, float | None, WorkloadClip | None]:
        if synthetic:
            if faces not in clips:
                clips[faces] = make_workload(_workload(args, faces or 4), settings.engine.cache_dir)
            clip = clips[faces]
            return str(clip.path), float(clip.truth.workload.fps), clip
        if args.source:
            return args.source, _source_fps(args.source), None
        from streamer.sources.demo import demo_clip

        uri = str(demo_clip(settings.engine.cache_dir))
        return uri, _source_fps(uri), None

    def one(faces: int | None, n: int) -> dict[str, Any]:
        uri, fps, clip = source_for(faces)
        with ExitStack() as stack:
            publisher = _publisher(settings, stack) if args.publish else None
            run = run_streams(
                settings,
                uri,
                n,
                engine=engine,
                detector=_detector_for(settings, args.faces_from, clip, real_detector),
                seconds=seconds,
                warmup_s=args.warmup_s if seconds > 0 else 0.0,
                fps=fps,
                max_latency_ms=args.max_latency_ms,
                publisher=publisher,
            )
        run["faces"] = faces if synthetic else None
        run["source"] = uri
        run["workload"] = clip.truth.workload.__dict__ if clip else None
        run["faces_per_frame_truth"] = round(clip.truth.faces_per_frame(), 2) if clip else None
        return run

    load_before = machine()["load_avg_1_5_15"]
    settings_dict = settings.model_dump(mode="json")
    done: list[dict[str, Any]] = []

    def report_of(runs: list[dict[str, Any]], summary: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "command": command_line(argv),
            "machine": {**machine(), "load_avg_before": load_before},
            "versions": versions(),
            "config": {
                "fingerprint": config_fingerprint(settings_dict),
                "engine": engine.describe(),
                "detector": settings.detector.name,
                "faces_from": args.faces_from,
                "frames": settings.pipeline.frames,
                "hwaccel": settings.sources.hwaccel,
                "realtime_sources": settings.sources.realtime,
                "settings": settings_dict,
            },
            "seconds": seconds,
            "warmup_s": args.warmup_s if seconds > 0 else 0.0,
            "max_latency_ms": args.max_latency_ms,
            "runs": runs,
            "sweep": summary,
        }

    def measured(faces: int | None, n: int) -> dict[str, Any]:
        run = one(faces, n)
        done.append(run)
        if on_report is not None:
            on_report(report_of(done, None))
        return run

    if plan is not None:
        runs, summary = sweep(streams_axis, faces_axis, measured)
    else:
        runs, summary = [measured(faces_axis[0], streams_axis[0])], None
    report = report_of(runs, summary)
    print(runs_table(runs))
    print()
    print(stages_table(runs[-1]))
    if summary is not None:
        print()
        print(sweep_table(summary))
    return report
