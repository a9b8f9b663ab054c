"""``streamer analyze``: recorded videos to tables (Parquet, CSV) and an offline HTML report,
one folder per video under ``--out`` plus ``index.html`` and ``manifest.json`` (docs/analyze.md).

Unpaced (as fast as the machine goes), every frame decoded and tracked; a rerun skips the
videos already done with the same settings. SIGINT/SIGTERM stop after writing what is whole.
Exit codes as ``streamer run``'s: 0 every video done (or skipped), 1 some failed (the others
are written), 4 none could be read, 2 and 3 for configuration and model errors, 130 stopped.

Example (plain text)::

    $ streamer analyze sessions/ extra/*.mp4 --out results -c offline
    $ streamer analyze interview.mp4 --out results --classes "engaged,confused,bored" --every-frame
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from configs.core.cli import add_config_args
from configs.core.errors import ConfigError

log = logging.getLogger("streamer")


def add_analyze_arguments(p: argparse.ArgumentParser) -> None:
    """The command line of ``streamer analyze`` (light: imports nothing heavy)."""
    from streamer.cli.classes import add_class_arguments

    p.add_argument("videos", nargs="*", metavar="VIDEO", help="video files, folders (searched recursively) or globs")
    p.add_argument("--demo", action="store_true", help="add the built-in sample clip (720p, 10 s)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="where tables, report and manifest go")
    add_config_args(p, "scheduler.max_hz=5")
    add_class_arguments(p)
    p.add_argument("--every-frame", action="store_true", help="score every track on every frame (slower)")
    p.add_argument("--no-thumbnails", action="store_true", help="leave face thumbnails out of the report")
    p.add_argument("--no-report", action="store_true", help="write the tables only, no HTML")
    bars = p.add_mutually_exclusive_group()
    bars.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show bars")
    bars.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress bars")


def analyze_command(args: argparse.Namespace) -> int:
    import threading

    from configs import dump_settings, load_settings
    from streamer.analysis.runner import Analyzer
    from streamer.cli.classes import class_overrides
    from streamer.cli.run import stop_on_signals

    class_overrides(args)
    settings = load_settings(args.config, args.overrides)
    videos = list(args.videos)
    if args.demo:
        from streamer.sources.demo import demo_clip

        videos.append(str(demo_clip(settings.engine.cache_dir)))
    if not videos:
        raise ConfigError("no VIDEO given (try: streamer analyze --demo --out results -c offline)")
    log.debug("resolved configuration:\n%s", dump_settings(settings))
    analyzer = Analyzer(
        settings,
        out=args.out,
        every_frame=args.every_frame,
        thumbnails=not args.no_thumbnails,
        report=not args.no_report,
        progress=args.progress,
    )
    log.info(
        "engine %s, classes %s; analysis %s", analyzer.engine.fingerprint, analyzer.engine.classes, analyzer.fingerprint
    )
    stop = threading.Event()
    with stop_on_signals(stop):
        run = analyzer.run(videos, stop, keep=False)
    for o in run.outcomes:
        if o.status == "failed":
            log.error("%s: failed: %s", o.name, o.reason)
        else:
            speed = f" ({o.frames / o.process_s:.1f} frames/s)" if o.process_s else ""
            log.info("%s: %s, %d frames%s, %d faces, %d tracks", o.name, o.status, o.frames, speed, o.faces, o.tracks)
    done = sum(o.status == "done" for o in run.outcomes)
    skipped = sum(o.status == "skipped" for o in run.outcomes)
    failed = sum(o.status == "failed" for o in run.outcomes)
    where = args.out / "index.html" if not args.no_report else args.out
    log.info("done: %d analyzed, %d already done, %d failed -> %s", done, skipped, failed, where)
    code = run.exit_code
    if code:
        log.error("exit %d: %s", code, code.name.lower().replace("_", " "))
    return int(code)
