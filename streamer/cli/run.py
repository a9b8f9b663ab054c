"""``streamer run``: the service. SIGINT/SIGTERM stop the sources, drain what is queued,
publish the end events, close the socket and exit 0.

Example:
    $ streamer run cam0=rtsp://10.0.0.5/live lobby.mp4 --set publisher.endpoint=tcp://0.0.0.0:5556
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streamer.config import StreamerSettings, dump_settings, load_settings
from streamer.pipeline import Pipeline, StreamSpec

log = logging.getLogger("streamer")

_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


def _default_id(uri: str) -> str:
    stem = Path(uri.split("?", 1)[0].rstrip("/")).stem or "stream"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem)


def parse_sources(items: list[str]) -> list[StreamSpec]:
    """``ID=URI`` or ``URI`` (id from the file or path name, made unique).

    Example:
        >>> [s.stream_id for s in parse_sources(["cam0=rtsp://h/x", "a/lobby.mp4", "b/lobby.mp4"])]
        ['cam0', 'lobby', 'lobby-2']
    """
    specs: list[StreamSpec] = []
    seen: set[str] = set()
    for item in items:
        head, sep, tail = item.partition("=")
        if sep and _ID.match(head) and "://" not in head:
            sid, uri = head, tail
        else:
            sid, uri = _default_id(item), item
        base, k = sid, 2
        while sid in seen:
            sid, k = f"{base}-{k}", k + 1
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


def run_command(args: argparse.Namespace) -> int:
    settings: StreamerSettings = load_settings(args.config, args.overrides)
    log.info("resolved configuration:\n%s", dump_settings(settings))
    items = list(args.sources)
    source_settings = settings.sources
    if args.demo:
        from streamer.demo import demo_clip

        items.append(f"demo={demo_clip(settings.engine.cache_dir)}")
        # The sample clip plays like a camera unless the user said otherwise.
        if not args.sources and not any(o.startswith("sources.realtime") for o in args.overrides):
            source_settings = source_settings.model_copy(update={"realtime": True})
    if not items:
        log.error("no SOURCE given (try: streamer run --demo)")
        return 2
    specs = parse_sources(items)

    from streamer.publisher import ZmqPublisher

    try:
        publisher = ZmqPublisher(settings.publisher)
    except RuntimeError as e:
        log.error("%s", e)
        return 1
    stop = threading.Event()
    try:
        pipe = Pipeline(settings, specs, publisher, preview=args.preview, source_settings=source_settings)
        log.info(
            "publishing on %s (%s) for %s; engine %s",
            settings.publisher.endpoint,
            "bind" if settings.publisher.bind else "connect",
            ", ".join(f"{s.stream_id}={s.uri}" for s in specs),
            pipe.engine.fingerprint,
        )
        with stop_on_signals(stop):
            report = pipe.run(stop)
    finally:
        publisher.close()
    failed = [sid for sid, s in report["streams"].items() if s["errors"]]
    log.info(
        "done: %d frames, %d faces, %d messages published, %d dropped%s",
        sum(s["frames"] for s in report["streams"].values()),
        sum(s["faces"] for s in report["streams"].values()),
        publisher.sent,
        publisher.dropped,
        f"; frame errors in {', '.join(failed)}" if failed else "",
    )
    return 0
