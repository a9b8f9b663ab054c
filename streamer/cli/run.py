"""``streamer run``: the service. SIGINT/SIGTERM stop the sources, drain what is queued,
publish the end events and close the socket.

Exit codes: 0 every stream ended normally (or was stopped); 1 some stream failed; 4 no
stream could start; 2 and 3 for configuration and model errors (``configs.core.errors.ExitCode``).

Example (plain text)::

    $ streamer run cam0=rtsp://10.0.0.5/live lobby.mp4 --set publisher.endpoint=tcp://127.0.0.1:5556
    $ streamer run @/etc/expstream/sources.txt -c /etc/expstream/streamer.yaml   # keys: docs/operations.md
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from configs import Settings, dump_settings, load_settings
from configs.core.errors import ConfigError, ExitCode
from streamer.net.wire import MAX_STREAM_ID, check_stream_id
from streamer.pipeline import Pipeline, StreamSpec
from streamer.pipeline.stats import StatsSnapshot
from streamer.sources import redact_uri

if TYPE_CHECKING:
    from streamer.service.metrics import MetricsServer

log = logging.getLogger("streamer")
_ID_PREFIX = re.compile(r"[A-Za-z0-9_.-]+")
"""What an ``ID=`` before a URI looks like (``check_stream_id`` then checks its length)."""


def _default_id(uri: str) -> str:
    stem = Path(uri.split("?", 1)[0].rstrip("/")).stem or "stream"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:MAX_STREAM_ID]


def parse_sources(items: list[str]) -> list[StreamSpec]:
    """``ID=URI`` or ``URI`` (id from the file or path name, made unique with ``-2``, ``-3``).
    The same explicit ``ID=`` twice is an error, and so is an ``ID=`` longer than a stream id
    may be; ids made from long names are cut to fit.

    Example:
        >>> [s.stream_id for s in parse_sources(["cam0=rtsp://h/x", "a/lobby.mp4", "b/lobby.mp4"])]
        ['cam0', 'lobby', 'lobby-2']
    """
    explicit: list[tuple[str | None, str]] = []
    for item in items:
        head, sep, tail = item.partition("=")
        if sep and _ID_PREFIX.fullmatch(head):
            explicit.append((check_stream_id(head), tail))
        else:
            explicit.append((None, item))
    named = [sid for sid, _ in explicit if sid is not None]
    dupes = sorted({sid for sid in named if named.count(sid) > 1})
    if dupes:
        raise ConfigError(f"stream id {', '.join(dupes)} given twice; each ID= must be unique")
    seen: set[str] = set(named)
    specs: list[StreamSpec] = []
    for sid, uri in explicit:
        if sid is None:
            base = sid = _default_id(uri)
            k = 2
            while sid in seen:
                sid, k = f"{base[: MAX_STREAM_ID - len(str(k)) - 1]}-{k}", k + 1
            seen.add(sid)
        specs.append(StreamSpec(sid, uri))
    return specs


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (main thread only); previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def exit_code(snap: StatsSnapshot) -> ExitCode:
    """0 all streams ended normally; 1 some failed; 4 none could start."""
    streams = [s.stats for s in snap.streams.values()]
    if streams and not any(s.started for s in streams):
        return ExitCode.NO_STREAM
    if any(s.outcome == "failed" for s in streams):
        return ExitCode.STREAM_FAILED
    return ExitCode.OK


def _sources(args: argparse.Namespace, settings: Settings) -> tuple[list[str], Settings]:
    items = list(args.sources)
    if args.demo:
        from streamer.sources.demo import demo_clip

        items.append(f"demo={demo_clip(settings.engine.cache_dir)}")
        # The sample clip plays like a camera unless the user said otherwise.
        if not args.sources and not any(o.startswith("sources.realtime") for o in args.overrides):
            settings = settings.replace(sources=settings.sources.replace(realtime=True))
    return items, settings


def _where(settings: Settings) -> str:
    p = settings.publisher
    if p.kind == "jsonl":
        return f"writing {p.path}"
    return f"publishing on {p.endpoint} ({'bind' if p.bind else 'connect'})"


def run_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, args.overrides)
    items, settings = _sources(args, settings)
    keep_alive = settings.control.endpoint is not None
    if not items and not keep_alive:
        raise ConfigError("no SOURCE given (try: streamer run --demo; or turn on control.endpoint to add them later)")
    specs = parse_sources(items)
    log.info("resolved configuration:\n%s", dump_settings(settings))

    import zmq

    from streamer.net.endpoints import RequestServer
    from streamer.net.security import ServerSecurity
    from streamer.output.publisher import create_publisher
    from streamer.output.state import StateBoard

    stop = threading.Event()
    board = StateBoard()
    with ExitStack() as cleanup:
        ctx = zmq.Context()
        cleanup.callback(ctx.term)
        security = ServerSecurity(settings.security, ctx)
        cleanup.callback(security.close)
        metrics = _metrics_server(settings)
        if metrics is not None:
            cleanup.callback(metrics.close)
        if settings.publisher.kind == "zmq":
            security.warn_if_exposed("publisher.endpoint", settings.publisher.endpoint)
        publisher = create_publisher(settings.publisher, observer=board.apply, security=security)
        cleanup.callback(publisher.close)
        servers: list[RequestServer] = []
        if settings.snapshot.endpoint:
            security.warn_if_exposed("snapshot.endpoint", settings.snapshot.endpoint)
            servers.append(
                RequestServer(
                    "snapshot",
                    settings.snapshot.endpoint,
                    lambda req: board.snapshot(),
                    secure=security.secure,
                    context=ctx,
                )
            )
            cleanup.callback(servers[-1].close)
        pipe = Pipeline(settings, specs, publisher, keep_alive=keep_alive)
        if metrics is not None:
            metrics.attach(pipe)
        if settings.control.endpoint:
            from streamer.service.control import control_server

            security.warn_if_exposed("control.endpoint", settings.control.endpoint)
            servers.append(control_server(settings.control, pipe, secure=security.secure, context=ctx))
            cleanup.callback(servers[-1].close)
        log.info(
            "%s (%s) for %s; engine %s%s",
            _where(settings),
            f"CurveZMQ, server key {security.public_key}" if security.enabled else "not encrypted",
            ", ".join(f"{s.stream_id}={redact_uri(s.uri)}" for s in specs) or "no stream yet",
            pipe.engine.fingerprint,
            "".join(f"; {s.name} on {s.endpoint}" for s in servers),
        )
        with stop_on_signals(stop):
            snap = pipe.run(stop)
    code = exit_code(snap)
    failed = [f"{sid} ({s.stats.reason})" for sid, s in snap.streams.items() if s.stats.outcome == "failed"]
    log.info(
        "done: %d frames, %d faces, %d messages published, %d dropped%s",
        snap.frames,
        snap.faces,
        publisher.stats.sent,
        publisher.stats.dropped,
        f"; failed: {', '.join(failed)}" if failed else "",
    )
    if code != ExitCode.OK:
        log.error("exit %d: %s", code, code.name.lower().replace("_", " "))
    return int(code)


def _metrics_server(settings: Settings) -> MetricsServer | None:
    if not settings.metrics.enabled:
        return None
    from streamer.service.metrics import MetricsServer

    return MetricsServer(settings.metrics)
