"""The ``trainer`` command: extract, fit, eval, bench-fit.

Example:
    $ trainer extract --config configs/train-offline.yaml --images faces/ --out feats/
    $ trainer fit --config configs/train-offline.yaml --store feats/ --out head.safetensors
    $ trainer eval --config configs/train-offline.yaml --head head.safetensors \
          --images RAFDB/test --layout raf-db --out eval/
    $ trainer bench-fit --pairs 50000 --dim 768 --device cpu
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from engine.config import ConfigError, add_config_args

log = logging.getLogger("trainer")


def _common(p: argparse.ArgumentParser) -> None:
    add_config_args(p, "ExpStream YAML with engine and trainer sections", "trainer.fit.epochs=2")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="trainer", description="Distil the Exp-CLIP head and evaluate it zero-shot.")
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
    fi.add_argument("--epochs", type=int, default=None)
    fi.add_argument("--lr", type=float, default=None)
    fi.add_argument("--batch-size", type=int, default=None)
    fi.add_argument("--seed", type=int, default=None)
    fi.add_argument("--device", default=None)

    ev = sub.add_parser("eval", help="zero-shot UAR/WAR of the head and plain CLIP")
    _common(ev)
    src = ev.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="labelled folder ROOT/<class>/*.jpg")
    src.add_argument("--video-list", help="reference annotation file: path num_frames label")
    ev.add_argument("--layout", default="auto", help="raf-db, affectnet, ferplus, names, imagefolder or auto")
    ev.add_argument(
        "--class-map",
        action="append",
        default=[],
        metavar="FOLDER=CLASS",
        help="folder -> class (repeatable)",
    )
    ev.add_argument("--video-root", default=None, help="base of relative paths in --video-list")
    ev.add_argument("--head", default=None, help="head to evaluate (default: engine.head of the config)")
    ev.add_argument("--no-baseline", action="store_true", help="skip the plain-CLIP run")
    ev.add_argument("--out", required=True, help="folder for report.json and confusion PNGs")

    bf = sub.add_parser("bench-fit", help="time the fit on synthetic stored pairs")
    bf.add_argument("--pairs", type=int, default=50_000)
    bf.add_argument("--dim", type=int, default=768, help="CLIP embedding size D (768 = ViT-L/14)")
    bf.add_argument("--out-dim", type=int, default=4096)
    bf.add_argument("--epochs", type=int, default=5)
    bf.add_argument("--batch-size", type=int, default=512)
    bf.add_argument("--device", default="cpu")
    bf.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    bf.add_argument("--json", default=None, help="also write the result here")

    be = sub.add_parser("bench-extract", help="extraction throughput, real shapes, random weights")
    be.add_argument("--clip-model", default="ViT-L-14", help="open_clip model name")
    be.add_argument("--clip-config-file", default=None, help="extra open_clip model config")
    be.add_argument("--teacher-arch", default="blip2-flan-t5-xxl", help="blip2-flan-t5-xxl|-xl|tiny")
    be.add_argument("--images", type=int, default=1024)
    be.add_argument("--batch-size", type=int, default=64)
    be.add_argument("--device", default="cuda")
    be.add_argument("--json", default=None, help="also write the result here")
    return ap


def _config(args: argparse.Namespace):  # -> TrainerConfig
    from trainer.config import load_trainer_config

    return load_trainer_config(args.config, args.overrides)


def _cmd_extract(args: argparse.Namespace) -> int:
    from trainer.extract import extract_features

    cfg = _config(args)
    s = extract_features(cfg, args.images, args.out, args.videos, progress=not args.quiet)
    print(
        f"extract: {s.found} files, {s.duplicates} duplicates skipped, "
        f"{s.done_before} already stored, "
        f"{s.computed} computed in {s.seconds:.1f}s ({s.images_per_s:.1f} images/s), "
        f"{s.shards_written} shards written, {len(s.unreadable)} unreadable"
        + (f", {s.harvested_faces} faces harvested" if args.videos else "")
    )
    for path, reason in s.unreadable:
        print(f"  unreadable: {path} ({reason})")
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from engine.config import validate
    from trainer.config import FitSettings
    from trainer.fit import fit_store

    cfg = _config(args)
    changes = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "lr": args.lr,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "device": args.device,
        }.items()
        if v is not None
    }
    settings = validate(FitSettings, {**cfg.trainer.fit.model_dump(), **changes}, "trainer.fit")

    def show(e) -> None:  # EpochLog
        print(
            f"epoch {e.epoch}/{settings.epochs}: loss {e.loss:.4f}  "
            f"in-batch acc {e.accuracy:.2f}%  "
            f"({e.batches} batches, {e.seconds:.1f}s)",
            flush=True,
        )

    r = fit_store(args.store, settings, args.out, args.export_expclip, on_epoch=show)
    print(
        f"fit: {r.pairs} pairs, {r.seconds:.1f}s; head saved to {args.out}"
        + (f", authors' format to {args.export_expclip}" if args.export_expclip else "")
    )
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from trainer.evaluate import evaluate

    overrides = list(args.overrides) + (["trainer.eval.baseline=false"] if args.no_baseline else [])
    args.overrides = overrides
    cfg = _config(args)
    class_map = {}
    for item in args.class_map:
        folder, sep, cls = item.partition("=")
        if not sep:
            raise ConfigError(f"--class-map {item!r}: expected FOLDER=CLASS")
        class_map[folder] = cls
    r = evaluate(
        cfg,
        args.out,
        images=args.images,
        video_list=args.video_list,
        layout=args.layout,
        class_map=class_map,
        video_root=args.video_root,
        head=args.head,
    )
    for name, m in r["models"].items():
        print(f"{name}: UAR {m['uar']:.2f}  WAR {m['war']:.2f}  ({r['samples']} samples)")
    print(f"eval: report and confusion matrices in {args.out}")
    return 0


def _cmd_bench_fit(args: argparse.Namespace) -> int:
    from trainer.bench import bench_fit

    r = bench_fit(args.pairs, args.dim, args.out_dim, args.epochs, args.batch_size, args.device, args.threads)
    print(json.dumps(r, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2))
    return 0


def _quiet_progress_bars() -> None:
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()


def _cmd_bench_extract(args: argparse.Namespace) -> int:
    from trainer.bench_extract import bench_extract

    r = bench_extract(
        args.clip_model,
        args.teacher_arch,
        args.images,
        args.batch_size,
        args.device,
        config_file=args.clip_config_file,
    )
    print(json.dumps(r, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``trainer`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if getattr(args, "quiet", False):
        _quiet_progress_bars()
    logging.basicConfig(
        level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handlers = {
        "extract": _cmd_extract,
        "fit": _cmd_fit,
        "eval": _cmd_eval,
        "bench-fit": _cmd_bench_fit,
        "bench-extract": _cmd_bench_extract,
    }
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl-C
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("trainer: interrupted; finished shards are kept, rerun to resume", file=sys.stderr)
        return 130
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError, ImportError) as e:
        print(f"trainer {args.command}: error: {e}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
