"""``streamer bench``: the whole pipeline on N copies of a clip, as fast as it goes.

Sources run unpaced (files block instead of dropping, so every frame is tracked), or at the
clip's own rate with ``--realtime`` (like a camera: frames the pipeline cannot take are
dropped and counted); messages
are built but not sent unless ``--publish``. Reports per-stream fps, faces/s, how often
each track was re-scored and per-stage timings. ``--engine-only`` is handled by the engine's
own benchmark (``engine.cli.bench_main``).

Example:
    $ streamer bench --streams 4 --set detector.name=haar --json
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from typing import Any

from streamer.config import dump_settings, load_settings
from streamer.pipeline import NullPublisher, Pipeline, StreamSpec

log = logging.getLogger("streamer")


def summarise(report: dict[str, Any], settings_desc: dict[str, Any]) -> dict[str, Any]:
    """Throughput figures from a pipeline report."""
    elapsed = report["elapsed_s"]
    streams = report["streams"]
    frames = sum(s["frames"] for s in streams.values())
    faces = sum(s["faces"] for s in streams.values())
    scored = sum(s["scored"] for s in streams.values())
    per_stream = {sid: round(s["frames"] / elapsed, 2) for sid, s in streams.items()}
    decoded = sum(s["frames_decoded"] for s in report["sources"].values())
    return {
        "streams": len(streams),
        "elapsed_s": elapsed,
        "frames": frames,
        "frames_decoded": decoded,
        "frames_dropped": report["drops"]["source"],
        "fps_per_stream": per_stream,
        "fps_total": round(frames / elapsed, 2),
        "faces_per_frame": round(faces / max(1, frames), 2),
        "faces_per_s": round(faces / elapsed, 1),
        "crops_scored_per_s": round(scored / elapsed, 2),
        "rescore_interval_s": report["rescore_interval"],
        "score_jobs_replaced": report["score_jobs_replaced"],
        "stages_ms": report["stages_ms"],
        "errors": sum(s["errors"] for s in streams.values()),
        "config": settings_desc,
    }


def bench_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, args.overrides)
    log.debug("resolved configuration:\n%s", dump_settings(settings))
    if args.source:
        uri = args.source
    else:
        from streamer.demo import demo_clip

        uri = str(demo_clip(settings.engine.cache_dir))
    src_settings = settings.sources.model_copy(update={"realtime": args.realtime, "loop": args.seconds > 0})
    specs = [StreamSpec(f"bench{i}", uri) for i in range(max(1, args.streams))]
    if args.publish:
        from streamer.publisher import ZmqPublisher

        publisher: Any = ZmqPublisher(settings.publisher)
    else:
        publisher = NullPublisher()
    stop = threading.Event()
    try:
        pipe = Pipeline(settings, specs, publisher, source_settings=src_settings)
        if args.seconds > 0:
            threading.Timer(args.seconds, stop.set).start()
        report = pipe.run(stop)
    finally:
        publisher.close()
    det = settings.detector
    desc = {
        "source": uri,
        "model": settings.engine.model.name,
        "engine": pipe.engine.describe(),
        "detector": det.name if det.name == "haar" else f"{det.name}:{det.model}",
        "detector_input": det.input_size,
        "max_hz": settings.scheduler.max_hz,
    }
    summary = summarise(report, desc)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return 0


def format_summary(s: dict[str, Any]) -> str:
    lines = [
        f"{s['streams']} stream(s), {s['frames']} frames in {s['elapsed_s']:.1f} s "
        f"({s['frames_decoded']} decoded, {s['frames_dropped']} dropped, {s['errors']} errors)",
        "fps per stream: " + ", ".join(f"{k} {v}" for k, v in s["fps_per_stream"].items()),
        f"faces/frame {s['faces_per_frame']}, faces/s {s['faces_per_s']}, crops scored/s {s['crops_scored_per_s']}",
        f"re-score interval per track: {s['rescore_interval_s']}",
        "stage           calls    items  mean_ms  per_item_ms",
    ]
    for name, st in s["stages_ms"].items():
        lines.append(f"{name:<14} {st['calls']:>6} {st['items']:>8} {st['mean_ms']:>8.2f} {st['per_item_ms']:>12.2f}")
    return "\n".join(lines)
