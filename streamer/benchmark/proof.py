"""The summary ``scripts/gpu_proof.sh`` writes last (``$OUT/summary.md``): every step's
status, the engine and sweep tables, and each target of docs/BENCHMARKS.md checked against
what was measured (met, missed, or not measured).

Example (plain text)::

    python -m streamer.benchmark.proof out/    # prints summary.md's text
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from streamer.benchmark.engine import BenchRow, format_table
from streamer.benchmark.report import runs_table, sweep_table

ENGINE_REPORTS = ("engine-eager-l14", "engine-eager-b16", "engine-eager-b32", "engine-compile", "engine-fp8")


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _row(rows: list[dict[str, Any]], model: str, backend: str, batch: int) -> dict[str, Any] | None:
    for r in rows:
        if r["model"] == model and r["backend"] == backend and r["batch"] == batch:
            return r
    return None


def _verdict(ok: bool | None, text: str) -> str:
    return f"- {'MET' if ok else 'MISSED' if ok is not None else 'NOT MEASURED'}: {text}"


def engine_targets(out: Path, big: str) -> list[str]:
    rows = [r for name in ENGINE_REPORTS for r in (_load(out / f"{name}.json") or {}).get("rows", [])]
    lines = []
    base = _row(rows, big, "openclip-eager", 64)
    best64 = [r for r in rows if r["model"] == big and r["batch"] == 64 and r["backend"] in ("torch", "compile")]
    best64 = [r for r in best64 if r["precision"] != "fp8"]
    if base and best64:
        top = min(best64, key=lambda r: r["model_ms"])
        x = base["model_ms"] / top["model_ms"]
        lines.append(
            _verdict(x >= 1.25, f"{big} batch 64 fp16 {top['backend']} {x:.2f}x open_clip eager (target >= 1.25x)")
        )
    else:
        lines.append(_verdict(None, f"{big} batch 64 vs open_clip eager (target >= 1.25x)"))
    b1 = [r for r in rows if r["model"] == big and r["batch"] == 1 and r["e2e_ms"] is not None]
    if b1:
        top = min(b1, key=lambda r: r["e2e_ms"])
        lines.append(
            _verdict(
                top["e2e_ms"] < 2.0,
                f"{big} batch 1 end to end {top['e2e_ms']:.2f} ms ({top['backend']}; target < 2 ms)",
            )
        )
    else:
        lines.append(_verdict(None, f"{big} batch 1 end to end (target < 2 ms)"))
    f8 = [r for r in rows if r["model"] == big and r["batch"] == 64 and r["precision"] == "fp8"]
    eager64 = _row(rows, big, "torch", 64)
    if f8 and eager64:
        x = eager64["model_ms"] / f8[0]["model_ms"]
        agree = f8[0].get("top1_agreement")
        lines.append(
            _verdict(x >= 1.8, f"{big} fp8 batch 64 {x:.2f}x eager fp16, top-1 agreement {agree} (target >= 1.8x)")
        )
    else:
        lines.append(_verdict(None, f"{big} fp8 batch 64 (target >= 1.8x eager fp16)"))
    return lines


def sweep_target(report: dict[str, Any] | None, label: str, faces: int, streams: int, p99_ms: float) -> str:
    text = f"{label}, {faces} faces/frame: >= {streams} streams in real time with p99 < {p99_ms:g} ms"
    if not report or not report.get("sweep") or str(faces) not in report["sweep"]:
        return _verdict(None, text)
    best = report["sweep"][str(faces)]["max_realtime_streams"]
    ok = best >= streams and report["max_latency_ms"] <= p99_ms
    return _verdict(ok, f"{text}: measured {best}")


def summary(out: Path, big: str = "ViT-L-14") -> str:

    lines = ["# GPU proof", ""]
    steps = out / "steps.tsv"
    if steps.is_file():
        lines += ["| step | exit | seconds |", "|---|---|---|"]
        for line in steps.read_text().splitlines():
            parts = line.split("\t")
            lines.append("| " + " | ".join(parts[:3]) + " |")
    facts = next((r for n in ENGINE_REPORTS if (r := _load(out / f"{n}.json"))), {})
    if facts.get("machine"):
        lines += ["", f"machine: {json.dumps(facts['machine'])}", f"versions: {json.dumps(facts.get('versions'))}"]
    lines += ["", "## Targets", *engine_targets(out, big)]
    sweeps = {name: _load(out / f"{name}.json") for name in ("sweep-l14", "sweep-b16")}
    lines.append(sweep_target(sweeps["sweep-l14"], "ViT-L/14", 4, 32, 150))
    lines.append(sweep_target(sweeps["sweep-b16"], "ViT-B/16", 4, 64, 150))
    for name in ENGINE_REPORTS:
        rep = _load(out / f"{name}.json")
        if rep:
            lines += ["", f"## {name}", format_table([BenchRow(**r) for r in rep["rows"]])]
    for name, rep in sweeps.items():
        if rep:
            lines += ["", f"## {name} ({rep['config']['engine']['model']})", runs_table(rep["runs"])]
            if rep.get("sweep"):
                lines += ["", sweep_table(rep["sweep"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    text = summary(folder, sys.argv[2] if len(sys.argv) > 2 else "ViT-L-14")
    (folder / "summary.md").write_text(text)
    print(text)
