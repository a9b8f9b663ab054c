"""What a benchmark report records beside its figures — the machine, the versions, the
configuration's fingerprint, the command — and the readable tables.

Example:
    >>> fp = config_fingerprint({"engine": {"model": {"name": "ViT-B-32"}}})
    >>> len(fp)
    12
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "torchvision", "open_clip_torch", "av", "opencv-python", "numpy", "onnxruntime", "insightface")


def config_fingerprint(settings: dict[str, Any]) -> str:
    """sha256 of the resolved settings (sorted JSON), first 12 hex digits."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """CPU, cores, memory, load, GPU and OS of this machine."""
    out: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "os": platform.platform(),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        out["memory_gib"] = round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    try:
        # versions are reported when present
        import torch

        if torch.cuda.is_available():
            out["gpu"] = torch.cuda.get_device_name(0)
            out["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    except ImportError:
        pass
    return out


def versions() -> dict[str, Any]:
    """Python, the packages that matter for speed, FFmpeg under PyAV, and this checkout."""
    out: dict[str, Any] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        # versions are reported when present
        import av

        out["ffmpeg"] = {k: ".".join(map(str, v)) for k, v in av.library_versions.items()}
    except (ImportError, AttributeError):
        pass
    try:
        root = Path(__file__).resolve().parents[2]
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        out["expstream_commit"] = rev.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["expstream_commit"] = None
    return out


def command_line(argv: list[str]) -> str:
    return "streamer " + shlex.join(argv) if argv else " ".join(sys.argv)


def _fmt(v: Any, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def runs_table(runs: list[dict[str, Any]]) -> str:
    """One Markdown row per run."""
    head = (
        "| faces | streams | fps/stream (min) | faces/frame | faces/s | crops scored/s "
        "| latency p50 / p95 / p99 ms | drops | real time |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in runs:
        t, lat = r["total"], r["total"]["latency_ms"]
        ok = "yes" if r["realtime"]["ok"] else "no: " + "; ".join(r["realtime"]["reasons"])
        lines.append(
            f"| {_fmt(r.get('faces'))} | {r['streams']} | {t['fps_per_stream_min']:.1f} | {t['faces_per_frame']:.2f} "
            f"| {t['faces_per_s']:.1f} | {t['crops_scored_per_s']:.1f} "
            f"| {_fmt(lat['p50'], '.0f')} / {_fmt(lat['p95'], '.0f')} / {_fmt(lat['p99'], '.0f')} "
            f"| {t['drops_share']:.1%} | {ok} |"
        )
    return "\n".join(lines)


def stages_table(run: dict[str, Any]) -> str:
    """Per-stage time of one run, and CPU per thread."""
    lines = ["| stage | calls | mean ms | busy (share of the window) |", "|---|---|---|---|"]
    for st in run["stages"].values():
        lines.append(f"| {st['what']} | {st['calls']} | {st['mean_ms']:.2f} | {st['busy_share']:.0%} |")
    lines += ["", "| thread | CPU s | cores |", "|---|---|---|"]
    for name, c in run["cpu_per_thread"].items():
        lines.append(f"| {name} | {c['cpu_s']:.2f} | {c['cores']:.2f} |")
    if run.get("gpu"):
        lines += ["", "GPU: " + ", ".join(f"{k} {v}" for k, v in run["gpu"].items() if v is not None)]
    return "\n".join(lines)


def sweep_table(sweep: dict[str, Any]) -> str:
    lines = ["| faces per frame | streams tried | most streams in real time |", "|---|---|---|"]
    for faces, s in sweep.items():
        lines.append(f"| {faces} | {', '.join(map(str, s['tried']))} | {s['max_realtime_streams']} |")
    return "\n".join(lines)
