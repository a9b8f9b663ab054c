"""The ``streamer`` command: ``run``, ``subscribe``, ``bench``, ``build-engine`` and ``cluster``.

Exit codes (``engine.errors.ExitCode``, docs/streamer.md): 0 every stream ended normally or
was stopped; 1 some stream failed; 2 bad command line or configuration; 3 a model, head or
backend could not be loaded; 4 no stream could start; 70 internal error.

Example (plain text)::

    $ streamer run --demo -c offline
    $ streamer run cam0=rtsp://10.0.0.5/live clip.mp4 -c configs/default.yaml --set scheduler.max_hz=4
    $ streamer subscribe tcp://127.0.0.1:5556 --stream cam0
    $ streamer bench --streams 4 --json
    $ streamer bench --engine-only --batch-sizes 1,64
    $ streamer build-engine --backend tensorrt
    $ streamer cluster -c site.yaml --sources sources.yaml
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from engine.cli import add_config_args, add_log_level, run_cli, shorthand
from engine.errors import ModelError

OFFLINE_HINT = "to try ExpStream without any download: streamer run --demo -c offline"


def _run_parser(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the pipeline on video sources and publish results")
    run.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="file path or URL (rtsp://...), optionally ID=URI to name the stream",
    )
    add_config_args(run, "scheduler.max_hz=4")
    shorthand(run, "--preview", key="preview.path", metavar="OUT.mp4", help="also write an annotated video")
    shorthand(
        run,
        "--out",
        key="publisher.path",
        also={"publisher.kind": "jsonl"},
        metavar="FILE.jsonl",
        help="write every message to a JSON-lines file instead of ZeroMQ",
    )
    run.add_argument("--demo", action="store_true", help="add the built-in sample clip as a source")


def _subscribe_parser(sub: argparse._SubParsersAction) -> None:
    subs = sub.add_parser("subscribe", help="print what a running streamer publishes")
    subs.add_argument("endpoint", nargs="?", default="tcp://127.0.0.1:5556")
    subs.add_argument("--stream", action="append", default=[], metavar="ID", help="only this stream (repeatable)")
    subs.add_argument("--raw", action="store_true", help="print each message as one JSON line")
    subs.add_argument("--topics", choices=["all", "faces", "events"], default="all")
    subs.add_argument("--count", type=int, default=0, help="exit after this many messages (0 = never)")
    subs.add_argument("--idle-timeout", type=float, default=0.0, help="exit after this many silent seconds (0 = never)")
    subs.add_argument("--bind", action="store_true", help="bind instead of connect (streamer publishes with connect)")
    subs.add_argument(
        "--state",
        metavar="SNAPSHOT_ENDPOINT",
        help="first print the whole current state from this snapshot endpoint, then only newer updates",
    )


def _bench_parser(sub: argparse._SubParsersAction) -> None:
    from streamer.cli.bench import add_bench_arguments

    bench = sub.add_parser(
        "bench",
        help="pipeline throughput on N copies of a clip; --engine-only: the engine alone",
        description="Pipeline throughput on N copies of a clip, or with --engine-only the engine "
        "alone (faces/s and latency per model x backend x batch, open_clip eager as the baseline).",
    )
    add_bench_arguments(bench)


def _build_engine_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build-engine",
        help="export/compile the inference engine ahead of time",
        description="Build (and cache) the inference engine ahead of time: exports, compiles and "
        "prompt embeddings land in engine.cache_dir, so `streamer run` starts fast.",
    )
    add_config_args(p, "engine.device=cuda")
    shorthand(p, "--backend", key="engine.backend", metavar="NAME", help="auto, torch, compile, onnxruntime, tensorrt")


def _cluster_parser(sub: argparse._SubParsersAction) -> None:
    from streamer.cli.cluster import add_cluster_arguments

    p = sub.add_parser(
        "cluster",
        help="run on a Ray cluster: one worker per GPU, streams moved when one dies, one endpoint",
        description="Run the service on a Ray cluster (one pipeline per worker actor), behind one "
        "forwarder subscribers connect to; `streamer cluster status` asks a running driver.",
    )
    add_cluster_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamer", description="ExpStream: facial expressions of live video over ZeroMQ"
    )
    add_log_level(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    _subscribe_parser(sub)
    _bench_parser(sub)
    _build_engine_parser(sub)
    _cluster_parser(sub)
    return parser


def _run(args: argparse.Namespace) -> int:
    from streamer.cli.run import run_command

    return run_command(args)


def _subscribe(args: argparse.Namespace) -> int:
    from streamer.cli.subscribe import subscribe_command

    return subscribe_command(args)


def _bench(args: argparse.Namespace) -> int:
    from streamer.cli.bench import bench_command

    return bench_command(args)


def _build_engine(args: argparse.Namespace) -> int:
    from streamer.cli.build_engine import build_engine_command

    return build_engine_command(args)


def _cluster(args: argparse.Namespace) -> int:
    from streamer.cli.cluster import cluster_command

    return cluster_command(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamer`` command; returns the exit code."""
    handlers = {
        "run": _run,
        "subscribe": _subscribe,
        "bench": _bench,
        "build-engine": _build_engine,
        "cluster": _cluster,
    }
    parser = build_parser()
    parser.set_defaults(argv=list(argv) if argv is not None else None)  # reports name their command
    return run_cli("streamer", parser, argv, handlers, hints={ModelError: OFFLINE_HINT})
