"""The floor plan holds: layers run configs < engine < streamer < trainer with no arrow back
up, the ground floor (``configs.core``) imports none of them, no two modules import each
other round a cycle, and no module grows past 300 lines (docs/design.md).

Every import counts, wherever it stands: at the top, inside a function, or under
``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"configs": 0, "engine": 1, "streamer": 2, "trainer": 3}
MAX_LINES = 300


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in LAYERS:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = f
    return mods


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports (``from pkg import mod`` names the module)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        out.update(t for t in targets if t.split(".")[0] in LAYERS)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_no_import_runs_back_up_the_layers():
    upward = [
        f"{m} imports {t}"
        for m, targets in GRAPH.items()
        for t in targets
        if LAYERS[t.split(".")[0]] > LAYERS[m.split(".")[0]]
    ]
    assert not upward, "\n".join(upward)


def test_the_ground_floor_imports_nothing_of_expstream():
    floor = {m: t for m, t in GRAPH.items() if m == "configs.core" or m.startswith("configs.core.")}
    assert floor, "configs/core/ is the ground floor"
    bad = [f"{m} imports {x}" for m, t in floor.items() for x in t if not x.startswith("configs.core")]
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    """Tarjan's strongly connected components over every import; a package's ``__init__``
    importing its own submodules is not a cycle of its own making, so edges from a package
    to its children are left out."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def edges(m: str) -> list[str]:
        return [t for t in GRAPH[m] if t in GRAPH and t != m and not t.startswith(m + ".")]

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in GRAPH:
        if m not in index:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("pkg", sorted(LAYERS))
def test_no_module_is_past_300_lines(pkg):
    long = {
        str(p.relative_to(ROOT)): n
        for m, p in MODULES.items()
        if m.split(".")[0] == pkg and (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these by responsibility: {long}"
