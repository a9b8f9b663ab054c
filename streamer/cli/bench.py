"""``streamer bench``: throughput of the whole pipeline on N copies of a clip, or with
``--engine-only`` of the engine alone.

Pipeline mode: sources run unpaced (files block instead of dropping, so every frame is
tracked), or at the clip's own rate with ``--realtime`` (like a camera: frames the pipeline
cannot take are dropped and counted); messages are built but not sent unless ``--publish``.
It reports per-stream fps, faces/s, how often each track was re-scored and per-stage timings.

Engine-only mode: faces/s and latency per model x backend x batch size on random weights
(speed does not depend on their values), with plain open_clip eager measured in the same
run as the baseline (``engine.bench``).

Example (plain text)::

    $ streamer bench --streams 4 --set detector.name=haar --json out/bench.json
    $ streamer bench --engine-only --models ExpStream-Tiny,ViT-B-32 --backends torch,onnxruntime
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from configs import Settings, dump_settings, load_settings
from engine.cli import add_config_args, shorthand
from engine.errors import ConfigError
from streamer.stats import BenchSummary, summarise

log = logging.getLogger("streamer")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: str) -> list[int]:
    try:
        values = [int(t) for t in _csv(text)]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from e
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {text!r}")
    return values


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p, "detector.name=haar")
    shorthand(p, "--device", key="engine.device", metavar="DEV", help="auto, cpu, cuda, cuda:N")
    shorthand(p, "--precision", key="engine.precision", metavar="P", help="auto, fp32, fp16, bf16, fp8, int8")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the report as JSON here ('-' = stdout only)")
    pipe = p.add_argument_group("pipeline mode (default)")
    pipe.add_argument("source", nargs="?", help="video file (default: the demo clip)")
    pipe.add_argument("-n", "--streams", type=int, default=1, help="concurrent copies of the source")
    pipe.add_argument(
        "--seconds", type=float, default=0.0, help="loop the source and stop after this long (0 = play each copy once)"
    )
    shorthand(pipe, "--realtime", key="sources.realtime", const=True, help="play at the clip's frame rate")
    pipe.add_argument("--publish", action="store_true", help="publish over ZeroMQ (default: build messages only)")
    eng = p.add_argument_group("engine-only mode (--engine-only; config default: the packaged offline one)")
    eng.add_argument("--engine-only", action="store_true", help="benchmark the engine alone")
    eng.add_argument(
        "--models", type=_csv, default=["ExpStream-Tiny", "ViT-B-32"], help="comma-separated open_clip names"
    )
    eng.add_argument("--backends", type=_csv, default=["torch"], help="comma-separated backend names")
    eng.add_argument("--batch-sizes", type=_ints, default=[1, 8, 64])
    eng.add_argument("--warmup", type=int, default=3)
    eng.add_argument("--iters", type=int, default=20)
    eng.add_argument("--max-seconds", type=float, default=10.0, help="time cap per measurement")


def _write_json(path: Path | None, report: dict[str, Any]) -> None:
    if path is None:
        return
    text = json.dumps(report, indent=2)
    if str(path) == "-":
        print(text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")


def bench_command(args: argparse.Namespace) -> int:
    return engine_bench(args) if args.engine_only else pipeline_bench(args)


def engine_bench(args: argparse.Namespace) -> int:
    """``--engine-only``: a Markdown table per model x backend x batch size."""
    from engine.backends import BACKENDS
    from engine.bench import environment, format_table, rows_as_dicts, run_bench

    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown:
        raise ConfigError(f"--backends: unknown {unknown}; allowed: {', '.join(BACKENDS)}")
    overrides = ["engine.head=random", *args.overrides, f"engine.max_batch={max(args.batch_sizes)}"]
    base = load_settings(args.config or "offline", overrides).engine
    rows, skipped = run_bench(
        args.models, args.backends, args.batch_sizes, base, args.warmup, args.iters, args.max_seconds
    )
    print(format_table(rows))
    for s in skipped:
        print(f"skipped {s['model']}/{s['backend']}: {s['reason']}")
    report = {"argv": sys.argv[1:], "environment": environment(), "rows": rows_as_dicts(rows), "skipped": skipped}
    _write_json(args.json, report)
    return 0


def pipeline_bench(args: argparse.Namespace) -> int:
    """The whole pipeline on ``--streams`` copies of one clip."""
    from streamer.pipeline import NullPublisher, Pipeline, StreamSpec

    settings = load_settings(args.config, args.overrides)
    log.debug("resolved configuration:\n%s", dump_settings(settings))
    uri = args.source or _demo(settings)
    settings = settings.replace(sources=settings.sources.replace(loop=args.seconds > 0))
    specs = [StreamSpec(f"bench{i}", uri) for i in range(max(1, args.streams))]
    if args.publish:
        from streamer.publisher import ZmqPublisher

        publisher: Any = ZmqPublisher(settings.publisher)
    else:
        publisher = NullPublisher()
    stop = threading.Event()
    try:
        pipe = Pipeline(settings, specs, publisher)
        if args.seconds > 0:
            threading.Timer(args.seconds, stop.set).start()
        report = pipe.run(stop)
    finally:
        publisher.close()
    summary = summarise(report, _describe(settings, uri, pipe.engine.describe()))
    print(format_summary(summary))
    _write_json(args.json, asdict(summary))
    return 0


def _demo(settings: Settings) -> str:
    from streamer.demo import demo_clip

    return str(demo_clip(settings.engine.cache_dir))


def _describe(settings: Settings, uri: str, engine: dict[str, Any]) -> dict[str, Any]:
    det = settings.detector
    return {
        "source": uri,
        "model": settings.engine.model.name,
        "engine": engine,
        "detector": det.name if det.name == "haar" else f"{det.name}:{det.model}",
        "detector_input": det.input_size,
        "max_hz": settings.scheduler.max_hz,
        "realtime": settings.sources.realtime,
    }


def format_summary(s: BenchSummary) -> str:
    r = s.rescore_interval_s
    lines = [
        f"{s.streams} stream(s), {s.frames} frames in {s.elapsed_s:.1f} s "
        f"({s.frames_decoded} decoded, {s.frames_dropped} dropped, {s.errors} errors)",
        "fps per stream: " + ", ".join(f"{k} {v}" for k, v in s.fps_per_stream.items()),
        f"faces/frame {s.faces_per_frame}, faces/s {s.faces_per_s}, crops scored/s {s.crops_scored_per_s}",
        f"re-score interval per track: mean {r.mean_s} s, p95 {r.p95_s} s, max {r.max_s} s ({r.count} gaps)",
        "stage           calls    items  mean_ms  per_item_ms",
    ]
    for name, st in s.stages_ms.items():
        lines.append(f"{name:<14} {st['calls']:>6} {st['items']:>8} {st['mean_ms']:>8.2f} {st['per_item_ms']:>12.2f}")
    return "\n".join(lines)
