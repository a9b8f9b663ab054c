"""``streamer bench``: throughput of the whole pipeline on N copies of a clip, or with
``--engine-only`` of the engine alone.

Pipeline mode (``streamer.benchmark``): N copies of a file, a URL, the demo clip or a
synthetic workload (resolution, fps, codec, length, faces per frame), unpaced or at the
clip's rate with ``--realtime`` (like a camera: frames the pipeline cannot take are dropped
and counted); messages are built but not sent unless ``--publish``. It reports per stream
and in total frames/s, faces/s, crops scored/s, frame-to-publish latency p50/p95/p99,
dropped frames by stage, per-stage time, CPU per thread and, on CUDA, GPU utilisation and
memory; ``--sweep streams=... faces=...`` finds, per face count, the most streams kept in
real time.

Engine-only mode: faces/s and latency per model x backend x batch size on random weights
(speed does not depend on their values), with plain open_clip eager measured in the same
run as the baseline (``streamer.benchmark.engine``).

Example (plain text)::

    $ streamer bench --streams 4 --set detector.name=haar --json out/bench.json
    $ streamer bench -c offline --sweep streams=1,2 faces=1,4 --seconds 5 --json out/sweep.json
    $ streamer bench --engine-only --models ExpStream-Tiny,ViT-B-32 --backends torch,onnxruntime
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from configs import load_settings
from configs.core.cli import add_config_args, shorthand
from configs.core.errors import ConfigError

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
    pipe.add_argument("source", nargs="?", help="video file or URL (default: the demo clip, or a synthetic workload)")
    pipe.add_argument("-n", "--streams", type=int, default=1, help="concurrent copies of the source")
    pipe.add_argument(
        "--seconds",
        type=float,
        default=0.0,
        help="loop the source and measure this long after the warm-up (0 = play each copy once; sweeps: 10)",
    )
    pipe.add_argument("--warmup-s", type=float, default=3.0, help="seconds run before measuring (first batches)")
    shorthand(pipe, "--realtime", key="sources.realtime", const=True, help="play at the clip's frame rate")
    shorthand(pipe, "--frames", key="pipeline.frames", metavar="PATH", help="frame path: inline, host, device")
    shorthand(pipe, "--hwaccel", key="sources.hwaccel", metavar="HW", help="hardware decoding: none, auto, cuda")
    pipe.add_argument("--publish", action="store_true", help="publish over ZeroMQ (default: build messages only)")
    pipe.add_argument(
        "--sweep",
        nargs="+",
        metavar="AXIS=N,N",
        help="streams=1,2,4,8 [faces=1,4,16]: per face count, the most streams kept in real time",
    )
    pipe.add_argument(
        "--max-latency-ms", type=float, default=150.0, help="real time needs frame-to-publish p99 under this"
    )
    pipe.add_argument(
        "--faces-from",
        choices=["detector", "truth", "truth+detector"],
        default="detector",
        help="faces found by the configured detector, or read from a synthetic workload's ground truth "
        "(truth+detector: the detector still runs on every batch, for its cost)",
    )
    wl = p.add_argument_group(
        "synthetic workload (used with --faces, --resolution, --sweep faces=, --faces-from truth)"
    )
    wl.add_argument("--faces", type=int, default=0, help="faces per frame (real faces from insightface's images)")
    wl.add_argument("--resolution", type=_resolution, default=None, metavar="WxH", help="default 1280x720")
    wl.add_argument("--fps", type=int, default=30)
    wl.add_argument("--codec", default="h264", choices=["h264", "hevc", "vp9", "av1", "mpeg4"])
    wl.add_argument("--duration", type=float, default=10.0, help="clip length in seconds (looped when shorter)")
    wl.add_argument("--workload-seed", type=int, default=0)
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


def _argv(args: argparse.Namespace) -> list[str]:
    return list(sys.argv[1:] if getattr(args, "argv", None) is None else args.argv)


def _resolution(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1920x1080, got {text!r}") from e
    return w, h


def bench_command(args: argparse.Namespace) -> int:
    return engine_bench(args) if args.engine_only else pipeline_bench(args)


def engine_bench(args: argparse.Namespace) -> int:
    """``--engine-only``: a Markdown table per model x backend x batch size."""
    from engine.backends import BACKENDS
    from streamer.benchmark.engine import environment, format_table, rows_as_dicts, run_bench

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
    from streamer.benchmark.report import command_line, machine, versions

    argv = _argv(args)
    report = {
        "command": command_line(argv),
        "argv": argv,
        "machine": machine(),
        "versions": versions(),
        "environment": environment(),
        "rows": rows_as_dicts(rows),
        "skipped": skipped,
    }
    _write_json(args.json, report)
    return 0


def pipeline_bench(args: argparse.Namespace) -> int:
    """One pipeline run, or a sweep of streams x faces (``streamer.benchmark``)."""
    from streamer.benchmark.command import pipeline_bench as run

    def partial(report: dict[str, Any]) -> None:
        if args.json is not None and str(args.json) != "-":
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2))

    _write_json(args.json, run(args, _argv(args), partial))
    return 0
