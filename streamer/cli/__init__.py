"""The ``streamer`` command: ``run``, ``analyze``, ``subscribe``, ``keys``, ``bench``, ``build-engine``
and ``cluster``.

Exit codes (``configs.core.errors.ExitCode``, docs/streamer.md): 0 every stream ended normally or
was stopped; 1 some stream failed; 2 bad command line or configuration; 3 a model, head or
backend could not be loaded; 4 no stream could start; 70 internal error.

Example (plain text)::

    $ streamer run --demo -c offline
    $ streamer run cam0=rtsp://10.0.0.5/live clip.mp4 -c configs/default.yaml --set scheduler.max_hz=4
    $ streamer analyze recordings/ --out results -c offline --classes "engaged,confused,bored"
    $ streamer subscribe tcp://127.0.0.1:5556 --stream cam0
    $ streamer keys /etc/expstream/keys server alice
    $ streamer bench --streams 4 --json
    $ streamer bench --engine-only --batch-sizes 1,64
    $ streamer build-engine --backend tensorrt
    $ streamer cluster -c site.yaml --sources sources.yaml
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from configs.core.cli import add_config_args, add_log_level, run_cli, shorthand
from configs.core.errors import ModelError
from streamer.cli.classes import add_class_arguments, class_overrides

OFFLINE_HINT = "to try ExpStream without any download: streamer run --demo -c offline"


def _run_parser(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser(
        "run",
        help="run the pipeline on video sources and publish results",
        fromfile_prefix_chars="@",
        epilog="@FILE reads arguments from FILE, one per line: keeps passwords in source URIs out of the "
        "process list (ps shows every argument to every local user).",
    )
    run.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="file path or URL (rtsp://...), optionally ID=URI to name the stream; @FILE: one per line",
    )
    add_config_args(run, "scheduler.max_hz=4")
    shorthand(run, "--preview", key="preview.path", metavar="OUT.mp4", help="also write an annotated video")
    shorthand(run, "--web", key="web.listen", metavar="[HOST:]PORT", help="serve the live view in a browser")
    shorthand(
        run,
        "--out",
        key="publisher.path",
        also={"publisher.kind": "jsonl"},
        metavar="FILE.jsonl",
        help="write every message to a JSON-lines file instead of ZeroMQ",
    )
    run.add_argument("--demo", action="store_true", help="add the built-in sample clip as a source")
    add_class_arguments(run)


def _analyze_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="recorded videos to tables (Parquet, CSV) and an offline HTML report",
        description="Analyze video files as fast as the machine goes: every frame decoded and tracked; per "
        "video one row per face per frame, per track and per episode, and a report page; a rerun skips "
        "what is done (docs/analyze.md).",
    )
    from streamer.cli.analyze import add_analyze_arguments  # light: argparse only

    add_analyze_arguments(p)


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
    subs.add_argument("--server-key", metavar="FILE", help="CurveZMQ: the streamer's public key (NAME.key)")
    subs.add_argument("--client-key", metavar="FILE", help="CurveZMQ: this client's secret key (NAME.key_secret)")


def _keys_parser(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser(
        "keys",
        help="write CurveZMQ key pairs (the server's and its clients')",
        description="Write CurveZMQ key pairs: DIR/NAME.key (public: give it away) and DIR/NAME.key_secret "
        "(secret, mode 0600). The server's secret file goes to security.server_secret_key; each client's "
        "public file into the security.authorized_clients directory (docs/operations.md).",
    )
    keys.add_argument("directory", help="where to write the key files")
    keys.add_argument("names", nargs="+", metavar="NAME", help="one key pair per name, e.g. server alice")
    keys.add_argument("--force", action="store_true", help="replace existing key files")


def _bench_parser(sub: argparse._SubParsersAction, *, arguments: bool = True) -> None:
    bench = sub.add_parser(
        "bench",
        help="pipeline throughput on N copies of a clip; --engine-only: the engine alone",
        description="Pipeline throughput on N copies of a clip, or with --engine-only the engine "
        "alone (faces/s and latency per model x backend x batch, open_clip eager as the baseline).",
    )
    if arguments:  # its module imports the pipeline's stats (and torch): not for light commands
        # per command: `streamer subscribe` and --help stay light (no torch)
        from streamer.cli.bench import add_bench_arguments

        add_bench_arguments(bench)
        add_class_arguments(bench)


def _build_engine_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build-engine",
        help="export/compile the inference engine ahead of time",
        description="Build (and cache) the inference engine ahead of time: exports, compiles and "
        "prompt embeddings land in engine.cache_dir, so `streamer run` starts fast.",
    )
    add_config_args(p, "engine.device=cuda")
    shorthand(p, "--backend", key="engine.backend", metavar="NAME", help="auto, torch, compile, onnxruntime, tensorrt")


def _cluster_parser(sub: argparse._SubParsersAction, *, arguments: bool = True) -> None:
    p = sub.add_parser(
        "cluster",
        help="run on a Ray cluster: one worker per GPU, streams moved when one dies, one endpoint",
        description="Run the service on a Ray cluster (one pipeline per worker actor), behind one "
        "forwarder subscribers connect to; `streamer cluster status` asks a running driver.",
    )
    if arguments:  # its module imports the settings root: not for light commands
        # per command: `streamer subscribe` and --help stay light (no torch)
        from streamer.cli.cluster import add_cluster_arguments

        add_cluster_arguments(p)


LIGHT_COMMANDS = ("subscribe", "keys")
"""Commands that must start fast: they import neither torch nor the engine."""


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option or its value)."""
    words = iter(argv)
    for word in words:
        if word == "--log-level":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; for ``command`` in ``LIGHT_COMMANDS`` without the heavy
    subcommands' arguments (so parsing imports nothing heavy)."""
    parser = argparse.ArgumentParser(
        prog="streamer", description="ExpStream: facial expressions of live video over ZeroMQ"
    )
    add_log_level(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    _analyze_parser(sub)
    _subscribe_parser(sub)
    _keys_parser(sub)
    _bench_parser(sub, arguments=command not in LIGHT_COMMANDS)
    _build_engine_parser(sub)
    _cluster_parser(sub, arguments=command not in LIGHT_COMMANDS)
    return parser


def _run(args: argparse.Namespace) -> int:
    # per command: `streamer subscribe` and --help stay light (no torch)
    from streamer.cli.run import run_command

    class_overrides(args)
    return run_command(args)


def _analyze(args: argparse.Namespace) -> int:
    # per command: `streamer subscribe` and --help stay light (no torch)
    from streamer.cli.analyze import analyze_command

    return analyze_command(args)


def _subscribe(args: argparse.Namespace) -> int:
    # per command: `streamer subscribe` and --help stay light (no torch)
    from streamer.cli.subscribe import subscribe_command

    return subscribe_command(args)


def _keys(args: argparse.Namespace) -> int:
    # per command: `streamer subscribe` and --help stay light (no torch)
    from streamer.net.security import write_key_pair

    for name in args.names:
        public, secret = write_key_pair(args.directory, name, overwrite=args.force)
        print(f"{name}: public {public}  secret {secret}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    # per command: `streamer subscribe` and --help stay light (no torch)
    from streamer.cli.bench import bench_command

    class_overrides(args)
    return bench_command(args)


def _build_engine(args: argparse.Namespace) -> int:
    # per command: `streamer subscribe` and --help stay light (no torch)
    from streamer.cli.build_engine import build_engine_command

    return build_engine_command(args)


def _cluster(args: argparse.Namespace) -> int:
    # per command: `streamer subscribe` and --help stay light (no torch)
    from streamer.cli.cluster import cluster_command

    return cluster_command(args)


class StoppedEarly(BaseException):
    """SIGTERM reached ``streamer run`` before its service had started (loading settings,
    models, binding sockets): it unwinds start-up like Ctrl-C does, closing what was opened."""


def _stop_early(signum: int, _frame: object) -> None:
    raise StoppedEarly(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamer`` command; returns the exit code. ``streamer run``
    handles SIGTERM from here on: before its service runs, start-up is abandoned and the
    exit code is 0 ("stopped before start-up finished"); once it runs, the service stops
    cleanly (``streamer.cli.run``)."""
    early = (
        _command(sys.argv[1:] if argv is None else argv) == "run"
        and threading.current_thread() is threading.main_thread()
    )
    previous = signal.signal(signal.SIGTERM, _stop_early) if early else None
    try:
        return _main(argv)
    except StoppedEarly as e:
        logging.getLogger("streamer").warning("%s received: stopped before start-up finished", e)
        return 0
    finally:
        if early:
            signal.signal(signal.SIGTERM, previous)


def console() -> None:
    """The installed ``streamer`` command. ``analyze`` leaves at once when it is done: its
    files are written and closed, and tearing down torch, onnxruntime and their thread pools
    would add seconds (2-4 s on 2 cores) to every run of a command that is timed per clip."""
    code = main()
    if _command(sys.argv[1:]) == "analyze":
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


def _main(argv: Sequence[str] | None) -> int:
    handlers = {
        "run": _run,
        "analyze": _analyze,
        "subscribe": _subscribe,
        "keys": _keys,
        "bench": _bench,
        "build-engine": _build_engine,
        "cluster": _cluster,
    }
    parser = build_parser(_command(sys.argv[1:] if argv is None else argv))
    parser.set_defaults(argv=list(argv) if argv is not None else None)  # reports name their command
    return run_cli("streamer", parser, argv, handlers, hints={ModelError: OFFLINE_HINT})
