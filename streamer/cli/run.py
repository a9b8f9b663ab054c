"""``streamer run``: the service. SIGINT/SIGTERM stop the sources, drain what is queued,
publish the end events and close the socket.

Exit codes: 0 every stream ended normally (or was stopped); 1 some stream failed; 4 no
stream could start; 2 and 3 for configuration and model errors (``configs.core.errors.ExitCode``).
Only the start-up streams (the SOURCE arguments) count: a stream added through the control
endpoint is answered there and reported in /metrics. SIGTERM before start-up finished: 0,
"stopped before start-up finished".

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
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from configs import Settings, dump_settings, load_settings
from configs.core.errors import ConfigError, ExitCode
from streamer.net.wire import MAX_STREAM_ID, check_stream_id
from streamer.pipeline import StreamSpec
from streamer.pipeline.stats import StatsSnapshot

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


def exit_code(snap: StatsSnapshot, startup: Collection[str] | None = None) -> ExitCode:
    """0 all streams ended normally; 1 some failed; 4 none could start. Only the start-up
    streams (``startup``, the ids given on the command line; None: every stream) count:
    one added through the control endpoint was answered there, and its failure is in
    /metrics and the log, not in the exit code.

    Example:
        >>> from streamer.pipeline.stats import PipelineStats
        >>> stats = PipelineStats()
        >>> stats.stream("cam0").started, stats.stream("added").outcome = True, "failed"
        >>> int(exit_code(stats.snapshot(), ["cam0"])), int(exit_code(stats.snapshot()))
        (0, 1)
    """
    streams = [s.stats for sid, s in snap.streams.items() if startup is None or sid in startup]
    if streams and not any(s.started for s in streams):
        return ExitCode.NO_STREAM
    if any(s.outcome == "failed" for s in streams):
        return ExitCode.STREAM_FAILED
    return ExitCode.OK


DROP_HINT_PERCENT = 2.0
"""Above this share of a stream's frames dropped, the summary says what to change."""


def summary(snap: StatsSnapshot, sent: int, dropped: int) -> list[str]:
    """The end-of-run lines: per stream, how many of its decoded frames were processed and
    where the others were dropped; then the totals; then, for a stream that dropped more than
    a few percent, what to change.

    Example:
        >>> from streamer.pipeline.stats import PipelineStats
        >>> from types import SimpleNamespace
        >>> from streamer.values import SourceStats
        >>> stats = PipelineStats()
        >>> stats.stream("cam0").frames = 97
        >>> src = SimpleNamespace(stats=SourceStats(frames_decoded=100, frames_dropped=3), queue_depth=0)
        >>> snap = stats.snapshot({"cam0": src}, {}, {}, 97)
        >>> stream, done, hint = summary(snap, 97, 0)
        >>> stream
        'cam0: 97 of 100 decoded frames processed, 3 dropped at the source (the pipeline fell behind), 0 faces'
        >>> done
        'done: 97 frames, 0 faces, 0 crops scored, 97 messages published, 0 dropped by the publisher'
        >>> hint.split(":")[0]
        'cam0 dropped 3.0 % of its frames'
    """
    lines, slow = [], []
    failed = [f"{sid} ({s.stats.reason})" for sid, s in snap.streams.items() if s.stats.outcome == "failed"]
    for sid, s in snap.streams.items():
        src, st = s.source, s.stats
        if src is None:
            lines.append(f"{sid}: never opened ({st.reason})")
            continue
        lost = src.frames_dropped + st.frames_failed
        text = f"{sid}: {st.frames} of {src.frames_decoded} decoded frames processed"
        if src.frames_dropped:
            text += f", {src.frames_dropped} dropped at the source (the pipeline fell behind)"
        if st.frames_failed:
            text += f", {st.frames_failed} lost to errors"
        lines.append(text + f", {st.faces} faces")
        if src.frames_decoded and 100.0 * lost / src.frames_decoded > DROP_HINT_PERCENT:
            slow.append((sid, 100.0 * lost / src.frames_decoded))
    lines.append(
        f"done: {snap.frames} frames, {snap.faces} faces, {snap.scored} crops scored"
        + (
            f" (a track re-scored every {snap.rescore.mean_s:.2f} s on average, p95 {snap.rescore.p95_s:.2f} s)"
            if snap.rescore.mean_s and snap.rescore.p95_s
            else ""
        )
        + f", {sent} messages published, {dropped} dropped by the publisher"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    lines += [
        f"{sid} dropped {pct:.1f} % of its frames: to keep up, raise detector.full_frame_every, lower "
        "scheduler.max_hz or detector.input_size, or run the engine on a GPU (docs/BENCHMARKS.md)"
        for sid, pct in slow
    ]
    return lines


def _sources(args: argparse.Namespace, settings: Settings) -> tuple[list[str], Settings]:
    items = list(args.sources)
    if args.demo:
        from streamer.sources.demo import demo_clip

        items.append(f"demo={demo_clip(settings.engine.cache_dir)}")
        # The sample clip plays like a camera unless the user said otherwise.
        if not args.sources and not any(o.startswith("sources.realtime") for o in args.overrides):
            settings = settings.replace(sources=settings.sources.replace(realtime=True))
    return items, settings


def run_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, args.overrides)
    items, settings = _sources(args, settings)
    if not items and settings.control.endpoint is None:
        raise ConfigError("no SOURCE given (try: streamer run --demo; or turn on control.endpoint to add them later)")
    specs = parse_sources(items)
    log.info("resolved configuration:\n%s", dump_settings(settings))

    from streamer.service.assembly import Service

    stop = threading.Event()
    with Service(settings, specs) as svc, stop_on_signals(stop):
        snap = svc.run(stop)
    code = exit_code(snap, {s.stream_id for s in specs})
    for line in summary(snap, svc.publisher.stats.sent, svc.publisher.stats.dropped):
        log.info("%s", line)
    if code != ExitCode.OK:
        log.error("exit %d: %s", code, code.name.lower().replace("_", " "))
    return int(code)
