"""The ``streamer`` command: ``run``, ``subscribe``, ``bench``, ``build-engine``.

Example:
    $ streamer run --demo
    $ streamer run cam0=rtsp://10.0.0.5/live clip.mp4 -c configs/default.yaml --set scheduler.max_hz=4
    $ streamer subscribe tcp://127.0.0.1:5556 --stream cam0
    $ streamer bench --streams 4 --json
    $ streamer bench --engine-only --batch-sizes 1,64   # forwarded to the engine benchmark
    $ streamer build-engine --backend tensorrt      # forwarded to the engine's builder
"""

from __future__ import annotations

import argparse
import logging
import sys

from engine.backends import BackendUnavailable
from engine.config import ConfigError, add_config_args
from engine.head import HeadFormatError
from engine.models import ModelLoadError


def _add_config_args(p: argparse.ArgumentParser) -> None:
    add_config_args(
        p,
        "YAML config file or a packaged config's name (default, offline); defaults fill missing keys",
        "scheduler.max_hz=4",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamer", description="ExpStream: facial expressions of live video over ZeroMQ"
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the pipeline on video sources and publish results")
    run.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="file path or URL (rtsp://...), optionally ID=URI to name the stream",
    )
    _add_config_args(run)
    run.add_argument("--preview", metavar="OUT.mp4", help="also write an annotated video")
    run.add_argument("--demo", action="store_true", help="add the built-in sample clip as a source")

    subs = sub.add_parser("subscribe", help="print what a running streamer publishes")
    subs.add_argument("endpoint", nargs="?", default="tcp://127.0.0.1:5556")
    subs.add_argument("--stream", action="append", default=[], metavar="ID", help="only this stream (repeatable)")
    subs.add_argument("--raw", action="store_true", help="print each message as one JSON line")
    subs.add_argument("--topics", choices=["all", "faces", "events"], default="all")
    subs.add_argument("--count", type=int, default=0, help="exit after this many messages (0 = never)")
    subs.add_argument("--idle-timeout", type=float, default=0.0, help="exit after this many silent seconds (0 = never)")
    subs.add_argument("--bind", action="store_true", help="bind instead of connect (streamer publishes with connect)")

    bench = sub.add_parser("bench", help="pipeline throughput on N copies of a clip (--engine-only: engine alone)")
    bench.add_argument("source", nargs="?", help="video file (default: the demo clip)")
    _add_config_args(bench)
    bench.add_argument("-n", "--streams", type=int, default=1, help="concurrent copies of the source")
    bench.add_argument(
        "--seconds", type=float, default=0.0, help="loop the source and stop after this long (0 = play each copy once)"
    )
    bench.add_argument("--realtime", action="store_true", help="play at the clip's frame rate, like a camera")
    bench.add_argument("--publish", action="store_true", help="publish over ZeroMQ (default: build messages only)")
    bench.add_argument("--json", action="store_true", help="print the report as JSON")
    bench.add_argument("--engine-only", action="store_true", help="forward the other arguments to the engine benchmark")

    sub.add_parser("build-engine", help="export/compile an inference engine (arguments go to the engine's builder)")
    return parser


def _forwarded(argv: list[str]) -> int | None:
    """``bench --engine-only ...`` and ``build-engine ...`` belong to the engine's CLI."""
    if argv[:1] == ["build-engine"]:
        from engine.cli import build_engine_main

        return build_engine_main(argv[1:])
    if argv[:1] == ["bench"] and "--engine-only" in argv:
        from engine.cli import bench_main

        return bench_main([a for a in argv[1:] if a != "--engine-only"])
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``streamer`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    rest = argv
    level = "INFO"
    if rest[:1] == ["--log-level"] and len(rest) > 1:
        level, rest = rest[1], rest[2:]
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    forwarded = _forwarded(rest)
    if forwarded is not None:
        return forwarded
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            from streamer.cli.run import run_command

            return run_command(args)
        if args.command == "subscribe":
            from streamer.cli.subscribe import subscribe_command

            return subscribe_command(args)
        if args.command == "bench":
            from streamer.cli.bench import bench_command

            return bench_command(args)
    except ConfigError as e:
        print(f"streamer: {e}", file=sys.stderr)
        return 2
    except (ModelLoadError, HeadFormatError, BackendUnavailable) as e:
        print(f"streamer: {e}", file=sys.stderr)
        if isinstance(e, ModelLoadError | HeadFormatError):
            print("streamer: to try ExpStream without any download: streamer run --demo -c offline", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
