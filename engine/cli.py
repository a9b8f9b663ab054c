"""Engine entry points, reached through ``streamer bench --engine-only`` and
``streamer build-engine`` (and ``python -m engine.cli bench|build-engine``).

Example:
    $ streamer bench --engine-only --models ExpStream-Tiny,ViT-B-32 --backends torch,onnxruntime \\
        --batch-sizes 1,8,64 --json out/bench.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import configs
from engine.backends import BACKENDS, BackendUnavailable
from engine.config import ConfigError, add_config_args, engine_settings_from
from engine.models import ModelLoadError

log = logging.getLogger(__name__)


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


def bench_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="streamer bench --engine-only",
        description="Engine speed: faces/s and latency per model x backend x batch size, "
        "with plain open_clip eager measured in the same run as the baseline.",
    )
    add_config_args(p, "base config (default: the packaged offline config)", "engine.max_batch=256")
    p.add_argument(
        "--models", type=_csv, default=["ExpStream-Tiny", "ViT-B-32"], help="comma-separated open_clip names"
    )
    p.add_argument("--backends", type=_csv, default=["torch"], help=f"comma-separated: {', '.join(BACKENDS)}")
    p.add_argument("--batch-sizes", type=_ints, default=[1, 8, 64])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--precision", default="auto", help="auto (fp16 on CUDA, fp32 on CPU), fp32, fp16, bf16")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--max-seconds", type=float, default=10.0, help="time cap per measurement")
    p.add_argument("--json", type=Path, help="write rows + environment as JSON here")
    return p


def bench_main(argv: list[str] | None = None) -> int:
    """``streamer bench --engine-only``: print a Markdown table; optionally write JSON."""
    from engine.bench import environment, format_table, rows_as_dicts, run_bench

    args = bench_parser().parse_args(argv)
    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown:
        print(f"error: unknown backend(s) {unknown}; allowed: {', '.join(BACKENDS)}", file=sys.stderr)
        return 2
    overrides = [
        f"engine.device={args.device}",
        f"engine.precision={args.precision}",
        "engine.head=random",
        *args.overrides,
    ]
    overrides.append(f"engine.max_batch={max(args.batch_sizes)}")
    try:
        base = engine_settings_from(args.config or configs.path("offline.yaml"), overrides)
        rows, skipped = run_bench(
            args.models, args.backends, args.batch_sizes, base, [], args.warmup, args.iters, args.max_seconds
        )
    except (ConfigError, ModelLoadError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_table(rows))
    for s in skipped:
        print(f"skipped {s['model']}/{s['backend']}: {s['reason']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "argv": argv if argv is not None else sys.argv[1:],
            "environment": environment(),
            "rows": rows_as_dicts(rows),
            "skipped": skipped,
        }
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


def build_engine_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="streamer build-engine",
        description="Build (and cache) the inference engine ahead of time: exports, compiles and "
        "prompt embeddings, so `streamer run` starts fast.",
    )
    add_config_args(p, "config file or packaged config name (default: default)", "engine.device=cuda")
    p.add_argument("--backend", default="tensorrt", help=f"auto or one of {', '.join(BACKENDS)}")
    return p


def build_engine_main(argv: list[str] | None = None) -> int:
    """``streamer build-engine``: build the backend once; its artefacts land in engine.cache_dir."""
    from engine.engine import ExpressionEngine

    args = build_engine_parser().parse_args(argv)
    try:
        settings = engine_settings_from(
            args.config or configs.path("default.yaml"), [f"engine.backend={args.backend}", *args.overrides]
        )
        engine = ExpressionEngine(settings)
    except (ConfigError, ModelLoadError, BackendUnavailable, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    artefact = getattr(engine.backend, "path", None)
    print(json.dumps({**engine.describe(), "artefact": str(artefact) if artefact else None}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.cli bench|build-engine ...``"""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] not in ("bench", "build-engine"):
        print("usage: python -m engine.cli {bench,build-engine} ...", file=sys.stderr)
        return 2
    return bench_main(argv[1:]) if argv[0] == "bench" else build_engine_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
