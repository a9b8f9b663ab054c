"""The reproduction as text: our UAR / WAR beside the paper's Table 2 and the authors' log,
with the differences; absent benchmarks say so and where they were looked for.

Example:
    >>> row_title("expclip-l14"), row_title("clip-l14"), row_title(None)
    ('Exp-CLIP L/14', 'CLIP L/14', 'n/a')
"""

from __future__ import annotations

from trainer.reproduce.paper import BenchmarkResult, Reproduction
from trainer.reproduce.results import Pair, Published

W = 16
"""Width of each (UAR / WAR) column."""
_ENGINE_TITLES = {"head": "Exp-CLIP head", "clip": "plain CLIP (engine.head=none, the paper's baseline)"}


def row_title(row: str | None) -> str:
    """``expclip-l14`` -> ``Exp-CLIP L/14``; ``clip-b32`` -> ``CLIP B/32``."""
    if not row:
        return "n/a"
    family, _, size = row.partition("-")
    name = {"expclip": "Exp-CLIP", "clip": "CLIP"}.get(family, family)
    return f"{name} {size[0].upper()}/{size[1:]}" if size else name


def baseline_row(paper_row: str | None) -> str | None:
    """The paper's plain-CLIP row for the backbone of an Exp-CLIP row."""
    return f"clip-{paper_row.partition('-')[2]}" if paper_row else None


def _pair(p: Pair | None) -> str:
    return "n/a" if p is None else f"{p[0]:.2f} / {p[1]:.2f}"


def _diff(ours: Pair | None, theirs: Pair | None) -> str:
    if ours is None or theirs is None:
        return "-"
    return f"{ours[0] - theirs[0]:+.2f} / {ours[1] - theirs[1]:+.2f}"


def _lines(
    results: list[BenchmarkResult], engine: str, paper: str | None, log: str | None, pub: Published, prompts: str
) -> list[str]:
    cols = ("ours", "paper", "ours-paper", "log", "ours-log")
    head = f"{'dataset':<12} {'samples':>7}  " + " ".join(f"{c:<{W}}" for c in cols)
    lines = [head.rstrip(), "-" * len(head.rstrip())]
    for r in results:
        key = r.benchmark.key
        theirs, logged = pub.paper(paper, key), pub.log(log, prompts, key)
        ours = r.ours.get(engine) if r.status == "done" else None
        count = str(r.samples) if r.status == "done" else "-"
        cells = (_pair(ours) if r.status == "done" else "absent", _pair(theirs), _diff(ours, theirs))
        cells += (_pair(logged), _diff(ours, logged))
        lines.append((f"{r.benchmark.title:<12} {count:>7}  " + " ".join(f"{c:<{W}}" for c in cells)).rstrip())
    return lines


def format_table(rep: Reproduction, pub: Published) -> str:
    """The comparison table(s) as printed by ``trainer reproduce``."""
    out = [
        f"Zero-shot UAR / WAR (%): head {rep.head} on {rep.backbone}, prompts {rep.prompts}, resize {rep.resize}",
        f"paper = {row_title(rep.paper_row)} in Table 2; log = the authors' log of {row_title(rep.paper_row)}, "
        f"{rep.prompts} section (n/a where they published none)",
    ]
    engines = list(dict.fromkeys(n for r in rep.results for n in r.ours)) or ["head"]
    for engine in engines:
        paper = rep.paper_row if engine == "head" else baseline_row(rep.paper_row)
        log = rep.paper_row if engine == "head" else None
        out += ["", f"{_ENGINE_TITLES.get(engine, engine)} vs {row_title(paper)}"]
        out += _lines(rep.results, engine, paper, log, pub, rep.prompts)
    absent = [r for r in rep.results if r.status == "absent"]
    if absent:
        out.append("")
        out += [f"absent: {r.benchmark.title} (looked for {'; '.join(r.looked)})" for r in absent]
    skipped = [r for r in rep.results if r.skipped]
    out += [f"note: {r.benchmark.title}: {r.skipped} unreadable samples skipped" for r in skipped]
    return "\n".join(out)
