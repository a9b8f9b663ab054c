"""The ``trainer`` command: extract, fit, eval, reproduce, bench-fit, bench-extract.

Every command reads the same config file as ``streamer`` (``-c``, ``--set``); flags such as
``--epochs`` are shorthands for one ``--set``. Exit codes as ``streamer``'s (0 done, 2 bad
command line or configuration, 3 a model or teacher could not be loaded, 70 internal error),
and 130 when interrupted (finished shards are kept: rerun to resume).

Example (plain text)::

    $ trainer extract -c train-offline --images faces/ --out feats/
    $ trainer fit -c train-offline --store feats/ --out head.safetensors --epochs 2
    $ trainer eval -c train-offline --head head.safetensors --images RAFDB/test --layout raf-db --out eval/
    $ trainer reproduce --head expclip-l14 --data /data --out repro/
    $ trainer bench-fit --pairs 50000 --dim 768 --device cpu
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from configs import Settings, load_settings
from configs.core.cli import add_config_args, add_log_level, run_cli, shorthand
from configs.core.errors import ConfigError
from engine.runtime import resolve_device
from trainer.benchmark.extraction import bench_extract
from trainer.benchmark.fitting import bench_fit
from trainer.evaluate import evaluate
from trainer.extract import extract_features
from trainer.fit import EpochLog, fit_store
from trainer.reproduce import format_table, load_published, reproduce, reproduce_settings

log = logging.getLogger("trainer")


def _common(p: argparse.ArgumentParser) -> None:
    add_config_args(p, "trainer.fit.epochs=2")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")


def _fit_shorthands(p: argparse.ArgumentParser) -> None:
    shorthand(p, "--epochs", key="trainer.fit.epochs", type=int, metavar="N")
    shorthand(p, "--batch-size", key="trainer.fit.batch_size", type=int, metavar="N")
    shorthand(p, "--device", key="trainer.fit.device", metavar="DEV")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="trainer", description="Distil the Exp-CLIP head and evaluate it zero-shot.")
    add_log_level(ap)
    sub = ap.add_subparsers(dest="command", required=True)

    ex = sub.add_parser("extract", help="compute and store CLIP + teacher features once")
    _common(ex)
    ex.add_argument("--images", nargs="*", default=[], help="image folders or files (recursive)")
    ex.add_argument("--videos", nargs="*", default=[], help="video files or folders: faces are harvested first")
    ex.add_argument("--out", required=True, help="feature store folder (resumable)")

    fi = sub.add_parser("fit", help="train the head on a feature store")
    _common(fi)
    fi.add_argument("--store", required=True, help="folder written by `trainer extract`")
    fi.add_argument("--out", required=True, help="head file to write (.safetensors, the engine's format)")
    fi.add_argument("--export-expclip", default=None, metavar="PATH", help="also write the authors' .pth format")
    _fit_shorthands(fi)
    shorthand(fi, "--lr", key="trainer.fit.lr", type=float, metavar="LR")
    shorthand(fi, "--seed", key="trainer.fit.seed", type=int, metavar="N")

    ev = sub.add_parser("eval", help="zero-shot UAR/WAR of the head and plain CLIP")
    _common(ev)
    src = ev.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="labelled folder ROOT/<class>/*.jpg")
    src.add_argument("--video-list", help="reference annotation file: path num_frames label")
    ev.add_argument("--layout", default="auto", help="raf-db, affectnet, ferplus, names, imagefolder or auto")
    ev.add_argument(
        "--class-map", action="append", default=[], metavar="FOLDER=CLASS", help="folder -> class (repeatable)"
    )
    ev.add_argument("--video-root", default=None, help="base of relative paths in --video-list")
    shorthand(ev, "--head", key="engine.head", metavar="HEAD", help="head to evaluate")
    shorthand(ev, "--no-baseline", key="trainer.eval.baseline", const=False, help="skip the plain-CLIP run")
    ev.add_argument("--out", required=True, help="folder for report.json and confusion PNGs")

    rp = sub.add_parser("reproduce", help="UAR/WAR on the paper's datasets beside its Table 2 and the authors' log")
    _common(rp)
    rp.add_argument("--data", required=True, metavar="ROOT", help="folder holding the datasets (docs/training.md)")
    rp.add_argument("--out", required=True, help="folder for reproduce.json, per-dataset reports and PNGs")
    shorthand(rp, "--head", key="engine.head", metavar="HEAD", help="released head name or head file")
    shorthand(rp, "--prompts", key="engine.prompts.set", metavar="SET", help="prompt set (default a_photo_of_a_face)")
    shorthand(rp, "--no-baseline", key="trainer.eval.baseline", const=False, help="skip the plain-CLIP run")
    rp.add_argument("--datasets", default=None, metavar="A,B", help="subset, e.g. raf-db,dfew (default: all eight)")
    rp.add_argument(
        "--paper-row",
        default=None,
        choices=["expclip-l14", "expclip-b16", "expclip-b32"],
        help="Table 2 row to compare with (default: the released head's, else the backbone's)",
    )

    bf = sub.add_parser("bench-fit", help="time the fit on synthetic stored pairs")
    add_config_args(bf, "trainer.fit.epochs=2")
    bf.add_argument("--pairs", type=int, default=50_000)
    bf.add_argument("--dim", type=int, default=768, help="CLIP embedding size D (768 = ViT-L/14)")
    bf.add_argument("--out-dim", type=int, default=4096)
    _fit_shorthands(bf)
    bf.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    bf.add_argument("--json", default=None, help="also write the result here")

    be = sub.add_parser("bench-extract", help="extraction throughput, real shapes, random weights")
    add_config_args(be, "engine.device=cuda")
    shorthand(be, "--clip-model", key="engine.model.name", metavar="NAME", help="open_clip model name")
    shorthand(be, "--clip-config-file", key="engine.model.config_file", metavar="PATH", help="extra open_clip config")
    shorthand(be, "--batch-size", key="trainer.extract.batch_size", type=int, metavar="N")
    shorthand(be, "--device", key="engine.device", metavar="DEV")
    be.add_argument("--teacher-arch", default="blip2-flan-t5-xxl", help="blip2-flan-t5-xxl|-xl|tiny")
    be.add_argument("--images", type=int, default=1024)
    be.add_argument("--draws", type=int, default=0, help="time K stochastic (reference) targets per image")
    be.add_argument("--json", default=None, help="also write the result here")
    return ap


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, args.overrides)


def _cmd_extract(args: argparse.Namespace) -> int:

    s = extract_features(_settings(args), args.images, args.out, args.videos, progress=not args.quiet)
    print(
        f"extract: {s.found} files, {s.duplicates} duplicates skipped, "
        f"{s.done_before} already stored, "
        f"{s.computed} computed in {s.seconds:.1f}s ({s.images_per_s:.1f} images/s), "
        f"{s.shards_written} shards written, {len(s.unreadable)} unreadable"
        + (f", {s.harvested_faces} faces harvested" if args.videos else "")
    )
    targets = f"{s.draws} stochastic draws per face (reference)" if s.targets == "reference" else "1 clean per face"
    print(
        f"  teacher targets: {targets}; teacher {s.teacher_seconds:.1f}s, CLIP {s.clip_seconds:.1f}s; "
        f"store {s.store_bytes / 2**20:.2f} MiB"
    )
    for path, reason in s.unreadable:
        print(f"  unreadable: {path} ({reason})")
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:

    settings = _settings(args).trainer.fit

    def show(e: EpochLog) -> None:
        draw = f", teacher draw {e.draw}" if e.draw is not None else ""
        print(
            f"epoch {e.epoch}/{settings.epochs}: loss {e.loss:.4f}  in-batch acc {e.accuracy:.2f}%  "
            f"({e.batches} batches, {e.seconds:.1f}s{draw})",
            flush=True,
        )

    r = fit_store(args.store, settings, args.out, args.export_expclip, on_epoch=show)
    print(
        f"fit: {r.pairs} pairs, {r.seconds:.1f}s; head saved to {args.out}"
        + (f", authors' format to {args.export_expclip}" if args.export_expclip else "")
    )
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:

    class_map = {}
    for item in args.class_map:
        folder, sep, cls = item.partition("=")
        if not sep:
            raise ConfigError(f"--class-map {item!r}: expected FOLDER=CLASS")
        class_map[folder] = cls
    r = evaluate(
        _settings(args),
        args.out,
        images=args.images,
        video_list=args.video_list,
        layout=args.layout,
        class_map=class_map,
        video_root=args.video_root,
    )
    for name, m in r["models"].items():
        print(f"{name}: UAR {m['uar']:.2f}  WAR {m['war']:.2f}  ({r['samples']} samples)")
    print(f"eval: report and confusion matrices in {args.out}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:

    cfg = reproduce_settings(args.config, args.overrides)
    subset = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets else None
    rep = reproduce(cfg, args.data, args.out, subset, args.paper_row)
    print(format_table(rep, load_published()))
    print(f"reproduce: reports in {args.out}")
    return 0


def _print_json(result: dict, path: str | None) -> None:
    print(json.dumps(result, indent=2))
    if path:
        Path(path).write_text(json.dumps(result, indent=2))


def _cmd_bench_fit(args: argparse.Namespace) -> int:

    fit = _settings(args).trainer.fit
    _print_json(bench_fit(fit, args.pairs, args.dim, args.out_dim, args.threads), args.json)
    return 0


def _cmd_bench_extract(args: argparse.Namespace) -> int:

    s = _settings(args)
    r = bench_extract(
        s.engine.model.name,
        args.teacher_arch,
        args.images,
        s.trainer.extract.batch_size,
        str(resolve_device(s.engine.device)),
        config_file=s.engine.model.config_file,
        draws=args.draws,
    )
    _print_json(r, args.json)
    return 0


def _quiet_progress_bars() -> None:
    try:
        # optional: transformers comes with the train extra
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trainer`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-q" in argv or "--quiet" in argv:
        _quiet_progress_bars()
        argv = ["--log-level", "WARNING", *argv]
    handlers = {
        "extract": _cmd_extract,
        "fit": _cmd_fit,
        "eval": _cmd_eval,
        "reproduce": _cmd_reproduce,
        "bench-fit": _cmd_bench_fit,
        "bench-extract": _cmd_bench_extract,
    }
    return run_cli("trainer", build_parser(), argv, handlers, sigterm_interrupts=True)


if __name__ == "__main__":
    raise SystemExit(main())
